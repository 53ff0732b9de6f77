package images_test

import (
	"context"
	"io"
	"log/slog"
	"net"
	"os"
	"os/exec"
	"path/filepath"
	"slices"
	"strings"
	"sync"
	"testing"
	"time"

	"google.golang.org/protobuf/types/known/durationpb"

	"github.com/deckhandhq/deckhand/agent/images"
	"github.com/deckhandhq/deckhand/agent/runtime"
	"github.com/deckhandhq/deckhand/agent/tasks"
	"github.com/deckhandhq/deckhand/internal/kubeimages"
	"github.com/deckhandhq/deckhand/internal/testkit/testcluster"
	taskv1 "github.com/deckhandhq/deckhand/proto/deckhand/task/v1"
)

const version = "v1.33.13"

// mirror is a real OCI registry serving test-built images under the control-plane names.
func mirror(t *testing.T) string { return mirrorSized(t, 64<<10) }

func mirrorSized(t testing.TB, layerSize int64) string {
	return testcluster.Mirror(t, version, layerSize, 2)
}

// stalled is a mirror that accepts connections and never answers.
func stalled(t testing.TB) string {
	t.Helper()
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	var mu sync.Mutex
	var conns []net.Conn
	go func() {
		for {
			c, err := ln.Accept()
			if err != nil {
				return
			}
			mu.Lock()
			conns = append(conns, c)
			mu.Unlock()
		}
	}()
	t.Cleanup(func() {
		ln.Close()
		mu.Lock()
		for _, c := range conns {
			c.Close()
		}
		mu.Unlock()
	})
	return "http://" + ln.Addr().String()
}

func task(id string, dry bool, spec *taskv1.TaskSpec) *taskv1.Task {
	return &taskv1.Task{Id: id, Node: "n1", DryRun: dry, Spec: spec}
}

func run(t testing.TB, r *tasks.Runner, tk *taskv1.Task) (*taskv1.TaskResult, []string) {
	t.Helper()
	var mu sync.Mutex
	var logs []string
	done := make(chan *taskv1.TaskResult, 1)
	r.Start(context.Background(), tk, func(ev *taskv1.TaskEvent) {
		if l := ev.GetLog(); l != nil {
			mu.Lock()
			logs = append(logs, l.GetText())
			mu.Unlock()
		}
	}, func(res *taskv1.TaskResult) { done <- res })
	select {
	case res := <-done:
		mu.Lock()
		defer mu.Unlock()
		return res, logs
	case <-time.After(3 * time.Minute):
		t.Fatal("task did not finish")
	}
	return nil, nil
}

func TestPullThroughMirrorsExportRemoveImport(t *testing.T) {
	good, stall := mirror(t), stalled(t)
	root := testcluster.HostRoot(t, "img")
	testcluster.InstallSim(t, root)
	os.MkdirAll(filepath.Join(root, "var", "tmp"), 0o1777)
	log := slog.New(slog.NewTextHandler(io.Discard, nil))
	r, err := tasks.NewRunner(t.TempDir(), root, map[string]tasks.Handler{"runtime": runtime.Run, "images": images.Run}, log)
	if err != nil {
		t.Fatal(err)
	}
	reg := &taskv1.RegistrySettings{ImageRepository: "registry.k8s.io", Mirrors: []string{stall, good}}
	res, logs := run(t, r, task("rt", false, &taskv1.TaskSpec{Kind: &taskv1.TaskSpec_Runtime{Runtime: &taskv1.RuntimeSpec{KubernetesVersion: version, CgroupDriver: "cgroupfs", Registry: reg}}}))
	if res.GetState() != taskv1.TaskState_TASK_STATE_SUCCEEDED {
		t.Fatalf("runtime: %v %v", res, logs)
	}
	hostsPath := filepath.Join(root, "etc/containerd/certs.d/registry.k8s.io/hosts.toml")
	hostsBefore, _ := os.ReadFile(hostsPath)
	imagesSpec := func(action taskv1.ImagesAction) *taskv1.TaskSpec {
		return &taskv1.TaskSpec{Kind: &taskv1.TaskSpec_Images{Images: &taskv1.ImagesSpec{
			Action: action, KubernetesVersion: version, Registry: reg, PullTimeout: durationpb.New(2 * time.Second), ArchivePath: "/var/tmp/control-plane.tar",
		}}}
	}
	pull := imagesSpec(taskv1.ImagesAction_IMAGES_ACTION_PULL)
	want, _ := kubeimages.ControlPlaneImages(version, "registry.k8s.io")

	// Dry-run: the seven pulls are listed and none happens.
	res, _ = run(t, r, task("pull-dry", true, pull))
	if res.GetState() != taskv1.TaskState_TASK_STATE_SUCCEEDED || len(res.GetChanges()) != len(want) {
		t.Fatalf("dry-run pull: %v", res)
	}
	res, _ = run(t, r, task("list-0", false, imagesSpec(taskv1.ImagesAction_IMAGES_ACTION_LIST)))
	if res.GetOutputs()["count"] != "0" {
		t.Fatalf("dry-run pulled images: %v", res.GetOutputs())
	}

	// The real pull: the stalled mirror costs one timeout, then the good one serves all.
	start := time.Now()
	res, logs = run(t, r, task("pull-1", false, pull))
	if res.GetState() != taskv1.TaskState_TASK_STATE_SUCCEEDED || len(res.GetChanges()) != len(want) {
		t.Fatalf("pull: %v\n%s", res, strings.Join(logs, "\n"))
	}
	t.Logf("pulled %d images in %v with the first mirror stalled", len(want), time.Since(start).Round(time.Millisecond))
	if fails := strings.Count(strings.Join(logs, "\n"), "failed after"); fails != 1 {
		t.Fatalf("the stalled mirror was tried %d times, want once:\n%s", fails, strings.Join(logs, "\n"))
	}
	if after, _ := os.ReadFile(hostsPath); string(after) != string(hostsBefore) {
		t.Fatalf("hosts.toml not restored:\n%s\nwant\n%s", after, hostsBefore)
	}
	res, _ = run(t, r, task("list-1", false, imagesSpec(taskv1.ImagesAction_IMAGES_ACTION_LIST)))
	for _, w := range want {
		if !strings.Contains(res.GetOutputs()["images"], w) {
			t.Fatalf("%s missing after pull: %v", w, res.GetOutputs())
		}
	}
	// Second pull: no changes.
	if res, _ = run(t, r, task("pull-2", false, pull)); len(res.GetChanges()) != 0 {
		t.Fatalf("second pull: %v", res.GetChanges())
	}

	// Export, remove, import: the images come back from the archive alone.
	exp := imagesSpec(taskv1.ImagesAction_IMAGES_ACTION_EXPORT)
	if res, logs = run(t, r, task("export-1", false, exp)); res.GetState() != taskv1.TaskState_TASK_STATE_SUCCEEDED {
		t.Fatalf("export: %v %v", res, logs)
	}
	if res, _ = run(t, r, task("export-2", false, exp)); len(res.GetChanges()) != 0 {
		t.Fatalf("second export: %v", res.GetChanges())
	}
	if res, _ = run(t, r, task("remove-1", false, imagesSpec(taskv1.ImagesAction_IMAGES_ACTION_REMOVE))); len(res.GetChanges()) != len(want) {
		t.Fatalf("remove: %v", res)
	}
	if res, _ = run(t, r, task("list-2", false, imagesSpec(taskv1.ImagesAction_IMAGES_ACTION_LIST))); res.GetOutputs()["count"] != "0" {
		t.Fatalf("after remove: %v", res.GetOutputs())
	}
	imp := imagesSpec(taskv1.ImagesAction_IMAGES_ACTION_IMPORT)
	if res, logs = run(t, r, task("import-1", false, imp)); res.GetState() != taskv1.TaskState_TASK_STATE_SUCCEEDED || len(res.GetChanges()) != 1 {
		t.Fatalf("import: %v %v", res, logs)
	}
	if res, _ = run(t, r, task("import-2", false, imp)); len(res.GetChanges()) != 0 {
		t.Fatalf("second import: %v", res.GetChanges())
	}
	res, _ = run(t, r, task("list-3", false, imagesSpec(taskv1.ImagesAction_IMAGES_ACTION_LIST)))
	for _, w := range want {
		if !strings.Contains(res.GetOutputs()["images"], w) {
			t.Fatalf("%s missing after import: %v", w, res.GetOutputs())
		}
	}

	// Bad input: named fields, nothing changed.
	for name, spec := range map[string]*taskv1.ImagesSpec{
		"kubernetes_version": {Action: taskv1.ImagesAction_IMAGES_ACTION_PULL, KubernetesVersion: "v1.99.0", Registry: reg},
		"image_repository":   {Action: taskv1.ImagesAction_IMAGES_ACTION_PULL, KubernetesVersion: version, Registry: &taskv1.RegistrySettings{ImageRepository: "Not A Repo!"}},
		"mirrors[0]":         {Action: taskv1.ImagesAction_IMAGES_ACTION_PULL, KubernetesVersion: version, Registry: &taskv1.RegistrySettings{Mirrors: []string{"ftp://m"}}},
		"archive_path":       {Action: taskv1.ImagesAction_IMAGES_ACTION_IMPORT, Registry: reg, ArchivePath: "/etc/os-release"},
	} {
		res, _ := run(t, r, task("bad-"+strings.NewReplacer("[", "", "]", "").Replace(name), false, &taskv1.TaskSpec{Kind: &taskv1.TaskSpec_Images{Images: spec}}))
		if res.GetState() != taskv1.TaskState_TASK_STATE_FAILED || res.GetError().GetReason() != "INVALID_ARGUMENT" || !strings.Contains(res.GetError().GetMessage(), name) || len(res.GetChanges()) != 0 {
			t.Errorf("%s: %v", name, res)
		}
	}
}

// kit is the real Kubernetes build kit (scripts/k8s.sh), or the test fails with the one
// command that builds it.
func kit(t *testing.T) string {
	t.Helper()
	base := os.Getenv("DECKHAND_KIT_DIR") // where scripts/k8s.sh puts kits
	if base == "" {
		cache := os.Getenv("XDG_CACHE_HOME")
		if cache == "" {
			cache = filepath.Join(os.Getenv("HOME"), ".cache")
		}
		base = filepath.Join(cache, "deckhand", "kit")
	}
	dirs, _ := filepath.Glob(filepath.Join(base, "k8s-"+version+"-*"))
	for _, d := range dirs {
		if st, err := os.Stat(filepath.Join(d, "kubeadm")); err == nil && st.Mode()&0o111 != 0 {
			return d
		}
	}
	t.Fatalf("no Kubernetes kit %s with a kubeadm; build it once: scripts/k8s.sh %s", version, version)
	return ""
}

// With kubeadm installed, the images pulled are what that kubeadm lists: its etcd, CoreDNS
// and pause tags are its own constants (kubeadm v1.33.13 lists CoreDNS v1.12.0 even for a
// v1.32 control plane, where the v1.32 table says v1.11.3). Before kubeadm is installed,
// the table is the plan.
func TestPullListsWhatTheInstalledKubeadmLists(t *testing.T) {
	const v132, repo = "v1.32.5", "10.250.0.1:5000/k8s"
	spec := &taskv1.TaskSpec{Kind: &taskv1.TaskSpec_Images{Images: &taskv1.ImagesSpec{
		Action: taskv1.ImagesAction_IMAGES_ACTION_PULL, KubernetesVersion: v132, Registry: &taskv1.RegistrySettings{ImageRepository: repo}}}}
	pulls := func(root string) []string {
		r, err := tasks.NewRunner(t.TempDir(), root, map[string]tasks.Handler{"images": images.Run}, slog.New(slog.NewTextHandler(io.Discard, nil)))
		if err != nil {
			t.Fatal(err)
		}
		// A dry-run with no runtime running: it reports every image it would pull.
		res, logs := run(t, r, task("pull", true, spec))
		if res.GetState() != taskv1.TaskState_TASK_STATE_SUCCEEDED {
			t.Fatalf("dry-run pull: %v\n%v", res, logs)
		}
		var out []string
		for _, c := range res.GetChanges() {
			out = append(out, c.GetTarget())
		}
		return out
	}
	table, err := kubeimages.ControlPlaneImages(v132, repo)
	if err != nil {
		t.Fatal(err)
	}
	if _, err := exec.LookPath("kubeadm"); err == nil {
		t.Fatal("a kubeadm on the test's PATH would stand in for the host's: remove it from PATH")
	}
	if got := pulls(t.TempDir()); !slices.Equal(got, table) {
		t.Fatalf("without kubeadm: %q, want the table's %q", got, table)
	}

	root := t.TempDir()
	os.MkdirAll(filepath.Join(root, "usr/local/bin"), 0o755)
	if err := os.Symlink(filepath.Join(kit(t), "kubeadm"), filepath.Join(root, "usr/local/bin/kubeadm")); err != nil {
		t.Fatal(err)
	}
	want := []string{repo + "/kube-apiserver:" + v132, repo + "/kube-controller-manager:" + v132, repo + "/kube-scheduler:" + v132, repo + "/kube-proxy:" + v132,
		repo + "/coredns:v1.12.0", repo + "/pause:3.10", repo + "/etcd:3.5.24-0"}
	if got := pulls(root); !slices.Equal(got, want) {
		t.Fatalf("with kubeadm v1.33.13 installed: %q, want what it lists %q", got, want)
	}

	// An upgrade stages v1.34.12's images while kubeadm v1.33.13 is installed, which would
	// list its own etcd 3.5.24-0, CoreDNS v1.12.0 and pause 3.10: the table's v1.34 tags
	// (etcd 3.6.5-0...) instead, and once the upgrade staged kubeadm v1.34.12, what it lists.
	const v134 = "v1.34.12"
	spec.GetImages().KubernetesVersion = v134
	want = []string{repo + "/kube-apiserver:" + v134, repo + "/kube-controller-manager:" + v134, repo + "/kube-scheduler:" + v134, repo + "/kube-proxy:" + v134,
		repo + "/coredns:v1.12.1", repo + "/pause:3.10.1", repo + "/etcd:3.6.5-0"}
	if got := pulls(root); !slices.Equal(got, want) {
		t.Fatalf("%s's images with kubeadm v1.33.13 installed: %q, want the table's %q", v134, got, want)
	}
	// The staged kubeadm stands in as a script whose list differs from the table's.
	staged := filepath.Join(root, "var/lib/deckhand/staged", v134)
	os.MkdirAll(staged, 0o755)
	listed := []string{repo + "/kube-apiserver:" + v134, repo + "/kube-controller-manager:" + v134, repo + "/kube-scheduler:" + v134, repo + "/kube-proxy:" + v134,
		repo + "/coredns:v1.12.9", repo + "/pause:3.10.9", repo + "/etcd:3.6.9-0"}
	script := "#!/bin/sh\ncase \"$1\" in\nversion) echo " + v134 + " ;;\nconfig) printf '%s\\n' " + strings.Join(listed, " ") + " ;;\nesac\n"
	if err := os.WriteFile(filepath.Join(staged, "kubeadm"), []byte(script), 0o755); err != nil {
		t.Fatal(err)
	}
	if got := pulls(root); !slices.Equal(got, listed) {
		t.Fatalf("%s's images with its kubeadm staged: %q, want what it lists %q", v134, got, listed)
	}
	// A staged kubeadm of another release is not asked.
	if err := os.WriteFile(filepath.Join(staged, "kubeadm"), []byte(strings.Replace(script, "echo "+v134, "echo v1.34.11", 1)), 0o755); err != nil {
		t.Fatal(err)
	}
	if got := pulls(root); !slices.Equal(got, want) {
		t.Fatalf("%s's images with a kubeadm of another release staged: %q, want the table's %q", v134, got, want)
	}
}
