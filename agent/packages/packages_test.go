package packages_test

import (
	"context"
	"crypto/sha256"
	"encoding/hex"
	"io"
	"log/slog"
	"net/http"
	"net/http/httptest"
	"os"
	"path/filepath"
	goruntime "runtime"
	"strings"
	"testing"
	"time"

	"github.com/deckhandhq/deckhand/agent/packages"
	"github.com/deckhandhq/deckhand/agent/tasks"
	"github.com/deckhandhq/deckhand/internal/testkit/testcluster"
	taskv1 "github.com/deckhandhq/deckhand/proto/deckhand/task/v1"
)

func run(t *testing.T, r *tasks.Runner, tk *taskv1.Task) *taskv1.TaskResult {
	t.Helper()
	done := make(chan *taskv1.TaskResult, 1)
	r.Start(context.Background(), tk, func(*taskv1.TaskEvent) {}, func(res *taskv1.TaskResult) { done <- res })
	select {
	case res := <-done:
		return res
	case <-time.After(60 * time.Second):
		t.Fatal("packages task did not finish")
	}
	return nil
}

func pkgTask(id string, dry bool, spec *taskv1.PackagesSpec) *taskv1.Task {
	return &taskv1.Task{Id: id, Node: "n1", DryRun: dry, Spec: &taskv1.TaskSpec{Kind: &taskv1.TaskSpec_Packages{Packages: spec}}}
}

func newRunner(t *testing.T) (*tasks.Runner, string) {
	root := testcluster.HostRoot(t, "pkg")
	testcluster.InstallSim(t, root)
	r, err := tasks.NewRunner(t.TempDir(), root, map[string]tasks.Handler{"packages": packages.Run}, slog.New(slog.NewTextHandler(io.Discard, nil)))
	if err != nil {
		t.Fatal(err)
	}
	return r, root
}

func TestPackagesFromTheRepository(t *testing.T) {
	// A mirror of pkgs.k8s.io: the v1.33 repository's key.
	mux := http.NewServeMux()
	mux.HandleFunc("/core:/stable:/v1.33/deb/Release.key", func(w http.ResponseWriter, _ *http.Request) {
		io.WriteString(w, "-----BEGIN PGP PUBLIC KEY BLOCK-----\ntest\n-----END PGP PUBLIC KEY BLOCK-----\n")
	})
	srv := httptest.NewServer(mux)
	defer srv.Close()
	r, root := newRunner(t)
	spec := &taskv1.PackagesSpec{KubernetesVersion: "v1.33.13", Source: taskv1.PackageSource_PACKAGE_SOURCE_REPOSITORY, BaseUrl: srv.URL + "/core:/stable:/v1.33/deb", Hold: true}

	res := run(t, r, pkgTask("p-dry", true, spec))
	if res.GetState() != taskv1.TaskState_TASK_STATE_SUCCEEDED || len(res.GetChanges()) < 4 {
		t.Fatalf("dry-run: %v", res)
	}
	if _, err := os.Stat(filepath.Join(root, "etc/apt/sources.list.d/kubernetes.list")); !os.IsNotExist(err) {
		t.Fatal("dry-run wrote the apt source")
	}
	res = run(t, r, pkgTask("p-1", false, spec))
	if res.GetState() != taskv1.TaskState_TASK_STATE_SUCCEEDED {
		t.Fatalf("install: %v", res)
	}
	for _, tool := range []string{"kubelet", "kubeadm", "kubectl"} {
		if res.GetOutputs()[tool+"_version"] != "v1.33.13" {
			t.Fatalf("versions: %v", res.GetOutputs())
		}
		if _, err := os.Stat(filepath.Join(root, "var/lib/deckhand-sim/apt", tool+".hold")); err != nil {
			t.Fatalf("%s not held", tool)
		}
	}
	if _, err := os.Stat(filepath.Join(root, "var/lib/deckhand-sim/systemd/kubelet.enabled")); err != nil {
		t.Fatal("the kubelet is not enabled after installing it")
	}
	src, _ := os.ReadFile(filepath.Join(root, "etc/apt/sources.list.d/kubernetes.list"))
	if string(src) != "deb [signed-by=/etc/apt/keyrings/kubernetes-apt-keyring.asc] "+srv.URL+"/core:/stable:/v1.33/deb/ /\n" {
		t.Fatalf("apt source: %q", src)
	}
	if res = run(t, r, pkgTask("p-2", false, spec)); res.GetState() != taskv1.TaskState_TASK_STATE_SUCCEEDED || len(res.GetChanges()) != 0 {
		t.Fatalf("second run: %v", res)
	}
	// A version the repository does not serve fails with the package manager's reason.
	other := &taskv1.PackagesSpec{KubernetesVersion: "v1.34.12", BaseUrl: spec.GetBaseUrl(), Hold: true}
	if res = run(t, r, pkgTask("p-3", false, other)); res.GetState() != taskv1.TaskState_TASK_STATE_FAILED || !strings.Contains(res.GetError().GetMessage(), "not found") {
		t.Fatalf("wrong minor for the repository: %v", res)
	}
}

// An upgrade installs the packages in steps: the new release staged (downloaded, nothing
// installed changes), kubeadm first, then the kubelet and kubectl with a kubelet restart.
func TestPackagesUpgradeInSteps(t *testing.T) {
	mux := http.NewServeMux()
	for _, minor := range []string{"v1.33", "v1.34"} {
		mux.HandleFunc("/core:/stable:/"+minor+"/deb/Release.key", func(w http.ResponseWriter, _ *http.Request) {
			io.WriteString(w, "-----BEGIN PGP PUBLIC KEY BLOCK-----\ntest\n-----END PGP PUBLIC KEY BLOCK-----\n")
		})
	}
	srv := httptest.NewServer(mux)
	defer srv.Close()
	r, root := newRunner(t)
	old := &taskv1.PackagesSpec{KubernetesVersion: "v1.33.13", BaseUrl: srv.URL + "/core:/stable:/v1.33/deb", Hold: true}
	if res := run(t, r, pkgTask("u-0", false, old)); res.GetState() != taskv1.TaskState_TASK_STATE_SUCCEEDED {
		t.Fatalf("install: %v", res)
	}
	target := func(components ...string) *taskv1.PackagesSpec {
		return &taskv1.PackagesSpec{KubernetesVersion: "v1.34.12", BaseUrl: srv.URL + "/core:/stable:/v1.34/deb", Hold: true, Components: components}
	}
	versions := func(res *taskv1.TaskResult) string {
		o := res.GetOutputs()
		return o["kubelet_version"] + " " + o["kubeadm_version"] + " " + o["kubectl_version"]
	}

	stage := target("kubeadm", "kubelet", "kubectl")
	stage.DownloadOnly = true
	res := run(t, r, pkgTask("u-1", false, stage))
	if res.GetState() != taskv1.TaskState_TASK_STATE_SUCCEEDED || versions(res) != "v1.33.13 v1.33.13 v1.33.13" {
		t.Fatalf("staging: %v", res)
	}
	for _, tool := range []string{"kubelet", "kubeadm", "kubectl"} {
		if b, err := os.ReadFile(filepath.Join(root, "var/lib/deckhand-sim/apt", tool+".downloaded")); err != nil || string(b) != "1.34.12-1.1" {
			t.Errorf("%s was not downloaded for the upgrade: %q %v", tool, b, err)
		}
	}

	res = run(t, r, pkgTask("u-2", false, target("kubeadm")))
	if res.GetState() != taskv1.TaskState_TASK_STATE_SUCCEEDED || versions(res) != "v1.33.13 v1.34.12 v1.33.13" {
		t.Fatalf("kubeadm first: %v", res)
	}
	kubelet := target("kubectl", "kubelet")
	kubelet.RestartKubelet = true
	res = run(t, r, pkgTask("u-3", false, kubelet))
	if res.GetState() != taskv1.TaskState_TASK_STATE_SUCCEEDED || versions(res) != "v1.34.12 v1.34.12 v1.34.12" {
		t.Fatalf("kubelet and kubectl: %v", res)
	}
	restarted := false
	for _, c := range res.GetChanges() {
		restarted = restarted || strings.Contains(c.GetDetail()+c.GetTarget(), "restart the kubelet on v1.34.12")
	}
	if !restarted {
		t.Errorf("the kubelet was not restarted on its new version: %v", res.GetChanges())
	}
	// Again: nothing to install, nothing restarted.
	if res = run(t, r, pkgTask("u-4", false, kubelet)); res.GetState() != taskv1.TaskState_TASK_STATE_SUCCEEDED || len(res.GetChanges()) != 0 {
		t.Fatalf("second run: %v", res)
	}

	bad := target("kubelet", "kube-proxy")
	if res = run(t, r, pkgTask("u-5", false, bad)); res.GetState() != taskv1.TaskState_TASK_STATE_FAILED || !strings.Contains(res.GetError().GetMessage(), `components[1] "kube-proxy"`) {
		t.Fatalf("an unknown component: %v", res)
	}
}

func TestPackagesAsBinaries(t *testing.T) {
	r, root := newRunner(t)
	sim, err := os.ReadFile(filepath.Join(root, "usr/bin/systemctl")) // the hostsim binary
	if err != nil {
		t.Fatal(err)
	}
	mux := http.NewServeMux()
	for _, tool := range []string{"kubelet", "kubeadm", "kubectl"} {
		mux.HandleFunc("/release/v1.33.13/bin/linux/"+goruntime.GOARCH+"/"+tool, func(w http.ResponseWriter, _ *http.Request) { w.Write(sim) })
	}
	srv := httptest.NewServer(mux)
	defer srv.Close()
	sum := sha256.Sum256(sim)
	digest := hex.EncodeToString(sum[:])
	// The served binaries are simulations; they report the version the test says they are.
	for _, tool := range []string{"kubelet", "kubeadm", "kubectl"} {
		os.MkdirAll(filepath.Join(root, "var/lib/deckhand-sim/versions"), 0o755)
		os.WriteFile(filepath.Join(root, "var/lib/deckhand-sim/versions", tool), []byte("v1.33.13"), 0o644)
	}
	spec := func(d string) *taskv1.PackagesSpec {
		return &taskv1.PackagesSpec{KubernetesVersion: "v1.33.13", Source: taskv1.PackageSource_PACKAGE_SOURCE_BINARIES, BaseUrl: srv.URL + "/release",
			Sha256: map[string]string{"kubelet": d, "kubeadm": digest, "kubectl": digest}}
	}
	res := run(t, r, pkgTask("b-bad", false, spec(strings.Repeat("0", 64))))
	if res.GetState() != taskv1.TaskState_TASK_STATE_FAILED || res.GetError().GetReason() != "CHECKSUM_MISMATCH" || !strings.Contains(res.GetError().GetMessage(), "sha256[kubelet]") {
		t.Fatalf("wrong digest: %v", res)
	}
	// A reader of the task learns only that the digest differs, never the actual one.
	if strings.Contains(res.String(), digest) || !strings.Contains(res.GetError().GetMessage(), strings.Repeat("0", 64)) {
		t.Fatalf("the mismatch message shows the actual digest or not the expected one: %v", res.GetError())
	}
	if _, err := os.Stat(filepath.Join(root, "usr/local/bin/kubelet")); !os.IsNotExist(err) {
		t.Fatal("a binary with a wrong digest was installed")
	}
	// A dry-run shows the binaries, the kubelet unit and its enabling, and makes none of them.
	res = run(t, r, pkgTask("b-dry", true, spec(digest)))
	var targets []string
	for _, c := range res.GetChanges() {
		targets = append(targets, c.GetTarget())
	}
	if res.GetState() != taskv1.TaskState_TASK_STATE_SUCCEEDED || strings.Join(targets, ",") != "/usr/local/bin/kubelet,/usr/local/bin/kubeadm,/usr/local/bin/kubectl,"+
		"/etc/systemd/system/kubelet.service,/etc/systemd/system/kubelet.service.d/10-kubeadm.conf,systemctl daemon-reload,systemctl enable kubelet" {
		t.Fatalf("dry-run: %v %v", res.GetState(), targets)
	}
	if _, err := os.Stat(filepath.Join(root, "etc/systemd/system/kubelet.service")); !os.IsNotExist(err) {
		t.Fatal("the dry-run wrote the kubelet unit")
	}
	res = run(t, r, pkgTask("b-1", false, spec(digest)))
	if res.GetState() != taskv1.TaskState_TASK_STATE_SUCCEEDED || res.GetOutputs()["kubeadm_version"] != "v1.33.13" || len(res.GetChanges()) != 7 {
		t.Fatalf("binaries: %v", res)
	}
	// kubeadm restarts the kubelet through systemd: the unit runs /usr/local/bin/kubelet
	// with the flags kubeadm writes, and Debian's place for extra arguments.
	unit, _ := os.ReadFile(filepath.Join(root, "etc/systemd/system/kubelet.service"))
	dropIn, _ := os.ReadFile(filepath.Join(root, "etc/systemd/system/kubelet.service.d/10-kubeadm.conf"))
	if !strings.Contains(string(unit), "\nExecStart=/usr/local/bin/kubelet\nRestart=always\n") || !strings.Contains(string(unit), "WantedBy=multi-user.target") {
		t.Fatalf("kubelet.service:\n%s", unit)
	}
	for _, want := range []string{
		"\nEnvironment=\"KUBELET_KUBECONFIG_ARGS=--bootstrap-kubeconfig=/etc/kubernetes/bootstrap-kubelet.conf --kubeconfig=/etc/kubernetes/kubelet.conf\"\n",
		"\nEnvironment=\"KUBELET_CONFIG_ARGS=--config=/var/lib/kubelet/config.yaml\"\n",
		"\nEnvironmentFile=-/var/lib/kubelet/kubeadm-flags.env\n",
		"\nEnvironmentFile=-/etc/default/kubelet\n",
		"\nExecStart=\nExecStart=/usr/local/bin/kubelet $KUBELET_KUBECONFIG_ARGS $KUBELET_CONFIG_ARGS $KUBELET_KUBEADM_ARGS $KUBELET_EXTRA_ARGS\n",
	} {
		if !strings.Contains(string(dropIn), want) {
			t.Errorf("10-kubeadm.conf lacks %q:\n%s", want, dropIn)
		}
	}
	if _, err := os.Stat(filepath.Join(root, "var/lib/deckhand-sim/systemd/kubelet.enabled")); err != nil {
		t.Fatal("the kubelet is not enabled")
	}
	if res = run(t, r, pkgTask("b-2", false, spec(digest))); len(res.GetChanges()) != 0 {
		t.Fatalf("second run: %v", res.GetChanges())
	}

	// On a RHEL-family host the extra arguments live in /etc/sysconfig/kubelet; changing
	// the drop-in reloads systemd again.
	os.WriteFile(filepath.Join(root, "etc/os-release"), []byte("ID=rocky\nID_LIKE=\"rhel centos fedora\"\n"), 0o644)
	res = run(t, r, pkgTask("b-rpm", false, spec(digest)))
	dropIn, _ = os.ReadFile(filepath.Join(root, "etc/systemd/system/kubelet.service.d/10-kubeadm.conf"))
	if !strings.Contains(string(dropIn), "\nEnvironmentFile=-/etc/sysconfig/kubelet\n") || len(res.GetChanges()) != 2 || res.GetChanges()[1].GetTarget() != "systemctl daemon-reload" {
		t.Fatalf("rpm family: %v\n%s", res.GetChanges(), dropIn)
	}
}

func TestPackagesBadInput(t *testing.T) {
	r, root := newRunner(t)
	for field, spec := range map[string]*taskv1.PackagesSpec{
		"kubernetes_version": {KubernetesVersion: "v1.99.0"},
		"base_url":           {KubernetesVersion: "v1.33.13", BaseUrl: "ftp://mirror"},
	} {
		res := run(t, r, pkgTask("bad-"+field, false, spec))
		if res.GetState() != taskv1.TaskState_TASK_STATE_FAILED || res.GetError().GetReason() != "INVALID_ARGUMENT" || !strings.Contains(res.GetError().GetMessage(), field) || len(res.GetChanges()) != 0 {
			t.Errorf("%s: %v", field, res)
		}
	}
	if _, err := os.Stat(filepath.Join(root, "etc/apt")); !os.IsNotExist(err) {
		t.Fatal("bad input changed the host")
	}
}

// A base URL with a newline would add its own section to the yum repository file (a
// repository with gpgcheck=0): the renderer refuses it, and so does the task, before writing.
func TestRepositoryFilesRefuseValuesThatChangeTheirStructure(t *testing.T) {
	for _, base := range []string{
		"https://mirror.example/rpm\n[evil]\nbaseurl=https://evil.example/\ngpgcheck=0",
		"https://mirror.example/rpm\r\ngpgcheck=0",
		"https://mirror.example/deb /",
		"file:///srv/repo",
		"https://mirror.example/rpm#x",
	} {
		if out, err := packages.YumRepo(base, true); err == nil || !strings.Contains(err.Error(), "base_url") {
			t.Errorf("YumRepo(%q) = %q, %v", base, out, err)
		}
		if out, err := packages.AptSource(base); err == nil {
			t.Errorf("AptSource(%q) = %q", base, out)
		}
	}
	good, err := packages.YumRepo("https://pkgs.k8s.io/core:/stable:/v1.33/rpm", true)
	if err != nil || strings.Count(good, "[") != 1 || !strings.Contains(good, "gpgcheck=1\n") {
		t.Fatalf("a good repository: %q %v", good, err)
	}

	r, root := newRunner(t)
	os.MkdirAll(filepath.Join(root, "etc"), 0o755)
	os.WriteFile(filepath.Join(root, "etc/os-release"), []byte("ID=rocky\nID_LIKE=\"rhel centos fedora\"\n"), 0o644)
	spec := &taskv1.PackagesSpec{KubernetesVersion: "v1.33.13", BaseUrl: "https://mirror.example/rpm\n[evil]\ngpgcheck=0", Hold: true}
	res := run(t, r, pkgTask("inject", false, spec))
	if res.GetState() != taskv1.TaskState_TASK_STATE_FAILED || res.GetError().GetReason() != "INVALID_ARGUMENT" || !strings.Contains(res.GetError().GetMessage(), "base_url") {
		t.Fatalf("a base URL with a newline: %v", res)
	}
	if _, err := os.Stat(filepath.Join(root, "etc/yum.repos.d/kubernetes.repo")); !os.IsNotExist(err) {
		t.Fatal("the repository file was written")
	}
}
