package runtime_test

import (
	"archive/tar"
	"compress/gzip"
	"context"
	"crypto/sha256"
	"encoding/hex"
	"io"
	"log/slog"
	"os"
	"os/exec"
	"path/filepath"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/deckhandhq/deckhand/agent/runtime"
	"github.com/deckhandhq/deckhand/agent/tasks"
	"github.com/deckhandhq/deckhand/internal/testkit/testcluster"
	taskv1 "github.com/deckhandhq/deckhand/proto/deckhand/task/v1"
)

// simHost makes a simulated host root with the systemctl simulation installed, the way
// the lab does. containerd itself is the real binary from the machine.
func simHost(t *testing.T) string {
	t.Helper()
	if _, err := exec.LookPath("containerd"); err != nil {
		t.Fatalf("containerd is not installed (apt-get install containerd runc containernetworking-plugins): %v", err)
	}
	root := testcluster.HostRoot(t, "rt")
	testcluster.InstallSim(t, root)
	return root
}

func runtimeTask(id string, dry bool) *taskv1.Task {
	return &taskv1.Task{Id: id, Node: "n1", DryRun: dry, Spec: &taskv1.TaskSpec{Kind: &taskv1.TaskSpec_Runtime{Runtime: &taskv1.RuntimeSpec{
		Source:            taskv1.RuntimeSource_RUNTIME_SOURCE_PACKAGE,
		KubernetesVersion: "v1.33.13",
		CgroupDriver:      "cgroupfs",
		Registry:          &taskv1.RegistrySettings{ImageRepository: "registry.k8s.io", Mirrors: []string{"http://127.0.0.1:5999", "https://mirror.example.com"}},
	}}}}
}

func run(t *testing.T, r *tasks.Runner, task *taskv1.Task) (*taskv1.TaskResult, []string) {
	t.Helper()
	var logs []string
	done := make(chan *taskv1.TaskResult, 1)
	r.Start(context.Background(), task, func(ev *taskv1.TaskEvent) {
		if l := ev.GetLog(); l != nil {
			logs = append(logs, l.GetText())
		}
	}, func(res *taskv1.TaskResult) { done <- res })
	select {
	case res := <-done:
		return res, logs
	case <-time.After(90 * time.Second):
		t.Fatal("runtime task did not finish")
	}
	return nil, nil
}

func TestRuntimeConfigureAndVerifyOnRealContainerd(t *testing.T) {
	root := simHost(t)
	// The agent holds every capability.
	os.MkdirAll(filepath.Join(root, "proc/self"), 0o755)
	os.WriteFile(filepath.Join(root, "proc/self/status"), []byte("Name:\tdeckhand-agent\nCapEff:\t000001ffffffffff\n"), 0o644)
	log := slog.New(slog.NewTextHandler(io.Discard, nil))
	r, err := tasks.NewRunner(t.TempDir(), root, map[string]tasks.Handler{"runtime": runtime.Run}, log)
	if err != nil {
		t.Fatal(err)
	}

	// Dry-run first: the changes are listed and nothing on disk moves.
	before := listing(t, root)
	res, dryLogs := run(t, r, runtimeTask("rt-dry", true))
	// A dry-run's log says what it would do, not what it did.
	for _, l := range dryLogs {
		if strings.HasPrefix(l, "wrote ") {
			t.Fatalf("the dry-run's log says %q after 'nothing will be changed':\n%s", l, strings.Join(dryLogs, "\n"))
		}
	}
	if !slices.ContainsFunc(dryLogs, func(l string) bool { return strings.HasPrefix(l, "would write /etc/containerd/config.toml") }) {
		t.Fatalf("the dry-run's log does not say it would write containerd's config:\n%s", strings.Join(dryLogs, "\n"))
	}
	if res.GetState() != taskv1.TaskState_TASK_STATE_SUCCEEDED {
		t.Fatalf("dry-run: %v", res)
	}
	if after := listing(t, root); after != before {
		t.Fatalf("dry-run changed the disk:\nbefore %s\nafter  %s", before, after)
	}
	dryTargets := targets(res)
	for _, want := range []string{"/etc/containerd/config.toml", "/etc/crictl.yaml", "/etc/containerd/certs.d/registry.k8s.io/hosts.toml", "systemctl enable containerd", "systemctl start containerd"} {
		if !strings.Contains(dryTargets, want) {
			t.Fatalf("dry-run does not list %q: %s", want, dryTargets)
		}
	}

	// The real run makes exactly those changes, starts containerd and verifies it over CRI.
	res, logs := run(t, r, runtimeTask("rt-1", false))
	if res.GetState() != taskv1.TaskState_TASK_STATE_SUCCEEDED {
		t.Fatalf("runtime task: %v\nlog: %v", res, logs)
	}
	if targets(res) != dryTargets {
		t.Fatalf("dry-run said %s, the run did %s", dryTargets, targets(res))
	}
	out := res.GetOutputs()
	if out["runtime_ready"] != "true" || out["runtime_name"] != "containerd" || out["sandbox_image"] != "registry.k8s.io/pause:3.10" {
		t.Fatalf("outputs: %v", out)
	}
	if out["network_ready"] != "false" || !strings.Contains(strings.Join(logs, "\n"), "network not ready") {
		t.Fatalf("the missing CNI config is not reported: %v %v", out, logs)
	}
	cfg, _ := os.ReadFile(filepath.Join(root, "etc/containerd/config.toml"))
	if !strings.Contains(string(cfg), `sandbox_image = "registry.k8s.io/pause:3.10"`) || !strings.Contains(string(cfg), "SystemdCgroup = false") ||
		!strings.Contains(string(cfg), "restrict_oom_score_adj = false") || !strings.Contains(string(cfg), `bin_dir = "/opt/cni/bin"`) {
		t.Fatalf("config.toml:\n%s", cfg)
	}
	// Debian's plugins (the simulated host has them in /usr/lib/cni) are linked into
	// /opt/cni/bin, where pod network manifests install theirs; the dry-run listed them.
	for _, p := range testcluster.SimCNIPlugins {
		link := filepath.Join(root, "opt/cni/bin", p)
		if target, err := os.Readlink(link); err != nil || target != "../../../usr/lib/cni/"+p {
			t.Errorf("/opt/cni/bin/%s: %q %v, want a link to ../../../usr/lib/cni/%s", p, target, err, p)
		}
		if _, err := os.Stat(link); err != nil {
			t.Errorf("/opt/cni/bin/%s does not resolve inside the host: %v", p, err)
		}
	}
	if !strings.Contains(dryTargets, "/opt/cni/bin/bridge") {
		t.Errorf("the dry-run does not list the links: %s", dryTargets)
	}
	hosts, _ := os.ReadFile(filepath.Join(root, "etc/containerd/certs.d/registry.k8s.io/hosts.toml"))
	if strings.Index(string(hosts), "127.0.0.1:5999") > strings.Index(string(hosts), "mirror.example.com") {
		t.Fatalf("mirrors out of order in hosts.toml:\n%s", hosts)
	}

	// A second run (new ID) finds nothing to change and containerd still answers.
	res, _ = run(t, r, runtimeTask("rt-2", false))
	if res.GetState() != taskv1.TaskState_TASK_STATE_SUCCEEDED || len(res.GetChanges()) != 0 || res.GetOutputs()["runtime_ready"] != "true" {
		t.Fatalf("second run: %v", res)
	}

	// Bad input changes nothing and names the field.
	bad := runtimeTask("rt-bad", false)
	bad.GetSpec().GetRuntime().GetRegistry().Mirrors = []string{"ftp://mirror"}
	before = listing(t, root)
	res, _ = run(t, r, bad)
	if res.GetState() != taskv1.TaskState_TASK_STATE_FAILED || res.GetError().GetReason() != "INVALID_ARGUMENT" || !strings.Contains(res.GetError().GetMessage(), "mirrors[0]") {
		t.Fatalf("bad mirror: %v", res)
	}
	if listing(t, root) != before {
		t.Fatal("a refused task changed the disk")
	}
}

func targets(res *taskv1.TaskResult) string {
	var out []string
	for _, c := range res.GetChanges() {
		out = append(out, c.GetKind()+" "+c.GetTarget())
	}
	return strings.Join(out, "; ")
}

// listing describes the simulated host's files (not containerd's own state).
func listing(t *testing.T, root string) string {
	t.Helper()
	var b strings.Builder
	filepath.Walk(filepath.Join(root, "etc"), func(p string, info os.FileInfo, err error) error {
		if err == nil && !info.IsDir() {
			data, _ := os.ReadFile(p)
			b.WriteString(strings.TrimPrefix(p, root) + "=" + string(data) + "\n")
		}
		return nil
	})
	return b.String()
}

// tarGz packs files (archive name → source path on this machine) into a .tar.gz.
func tarGz(t *testing.T, dst string, files map[string]string) {
	t.Helper()
	f, err := os.Create(dst)
	if err != nil {
		t.Fatal(err)
	}
	defer f.Close()
	zw, _ := gzip.NewWriterLevel(f, gzip.NoCompression) // -race makes deflate slow; stored blocks are still gzip
	tw := tar.NewWriter(zw)
	for name, src := range files {
		data, err := os.ReadFile(src)
		if err != nil {
			t.Fatal(err)
		}
		tw.WriteHeader(&tar.Header{Name: name, Mode: 0o755, Size: int64(len(data)), Typeflag: tar.TypeReg})
		tw.Write(data)
	}
	tw.Close()
	zw.Close()
}

func TestRuntimeFromReleaseTarball(t *testing.T) {
	root := simHost(t)
	// A release-shaped tarball made of this machine's real containerd binaries.
	which := func(b string) string {
		p, err := exec.LookPath(b)
		if err != nil {
			t.Fatal(err)
		}
		return p
	}
	os.MkdirAll(filepath.Join(root, "tmp"), 0o755)
	tarball := filepath.Join(root, "tmp", "containerd.tar.gz")
	tarGz(t, tarball, map[string]string{
		"bin/containerd": which("containerd"), "bin/ctr": which("ctr"), "bin/containerd-shim-runc-v2": which("containerd-shim-runc-v2"),
	})
	data, _ := os.ReadFile(tarball)
	sum := sha256.Sum256(data)
	spec := func(digest string) *taskv1.Task {
		tk := runtimeTask("tb-"+digest[:6], false)
		rt := tk.GetSpec().GetRuntime()
		rt.Source = taskv1.RuntimeSource_RUNTIME_SOURCE_TARBALL
		rt.ContainerdTarball = "/tmp/containerd.tar.gz"
		rt.RuncBinary = "/tmp/runc"
		rt.Sha256 = map[string]string{"/tmp/containerd.tar.gz": digest}
		return tk
	}
	runc, _ := os.ReadFile(which("runc"))
	os.WriteFile(filepath.Join(root, "tmp", "runc"), runc, 0o755)
	log := slog.New(slog.NewTextHandler(io.Discard, nil))
	r, _ := tasks.NewRunner(t.TempDir(), root, map[string]tasks.Handler{"runtime": runtime.Run}, log)

	// A wrong digest refuses the artifact and installs nothing.
	res, _ := run(t, r, spec(strings.Repeat("0", 64)))
	if res.GetState() != taskv1.TaskState_TASK_STATE_FAILED || res.GetError().GetReason() != "CHECKSUM_MISMATCH" || len(res.GetChanges()) != 0 {
		t.Fatalf("wrong digest: %v", res)
	}
	// The location may name any file on the node: its digest is never shown.
	if strings.Contains(res.String(), hex.EncodeToString(sum[:])) {
		t.Fatalf("the mismatch message shows the local file's digest: %v", res.GetError())
	}
	if _, err := os.Stat(filepath.Join(root, "usr/local/bin/containerd")); !os.IsNotExist(err) {
		t.Fatal("a refused tarball was unpacked")
	}

	res, logs := run(t, r, spec(hex.EncodeToString(sum[:])))
	if res.GetState() != taskv1.TaskState_TASK_STATE_SUCCEEDED || res.GetOutputs()["runtime_ready"] != "true" {
		t.Fatalf("tarball install: %v\n%v", res, logs)
	}
	for _, p := range []string{"usr/local/bin/containerd", "usr/local/sbin/runc", "etc/systemd/system/containerd.service"} {
		if _, err := os.Stat(filepath.Join(root, p)); err != nil {
			t.Fatalf("%s not installed: %v", p, err)
		}
	}
	again := spec(hex.EncodeToString(sum[:]))
	again.Id = "tb-again"
	if res, _ = run(t, r, again); res.GetState() != taskv1.TaskState_TASK_STATE_SUCCEEDED || len(res.GetChanges()) != 0 {
		t.Fatalf("second tarball run: %v", res.GetChanges())
	}
}

// Where the agent lacks CAP_SYS_RESOURCE (a container, an LXC guest, a root without it),
// containerd cannot lower a container's oom_score_adj below its own: the runtime task has
// it restrict oom_score_adj instead, and says why.
func TestRuntimeWithoutCapSysResourceRestrictsOOMScoreAdj(t *testing.T) {
	root := simHost(t)
	os.MkdirAll(filepath.Join(root, "proc/self"), 0o755)
	os.WriteFile(filepath.Join(root, "proc/self/status"), []byte("Name:\tdeckhand-agent\nCapPrm:\t000001fffeffffff\nCapEff:\t000001fffeffffff\n"), 0o644)
	r, _ := tasks.NewRunner(t.TempDir(), root, map[string]tasks.Handler{"runtime": runtime.Run}, slog.New(slog.NewTextHandler(io.Discard, nil)))
	res, logs := run(t, r, runtimeTask("rt-nocap", false))
	if res.GetState() != taskv1.TaskState_TASK_STATE_SUCCEEDED || res.GetOutputs()["runtime_ready"] != "true" {
		t.Fatalf("runtime task: %v\nlog: %v", res, logs)
	}
	cfg, _ := os.ReadFile(filepath.Join(root, "etc/containerd/config.toml"))
	if !strings.Contains(string(cfg), "restrict_oom_score_adj = true") {
		t.Fatalf("config.toml:\n%s", cfg)
	}
	if !strings.Contains(strings.Join(logs, "\n"), "lacks CAP_SYS_RESOURCE") {
		t.Fatalf("no log line says why: %v", logs)
	}
}

// Without a cgroup driver, the runtime follows the host: systemd when systemd is its init,
// cgroupfs otherwise (a cgroupfs host used to be switched to SystemdCgroup = true). The
// systemd driver on a host without systemd is refused, naming the field and the host.
func TestRuntimeCgroupDriverFollowsTheHost(t *testing.T) {
	for _, c := range []struct {
		name        string
		systemd     bool
		want        string
		driver, err string
	}{
		{"systemd host, driver empty", true, "", "systemd", ""},
		{"host without systemd, driver empty", false, "", "cgroupfs", ""},
		{"host without systemd, cgroupfs", false, "cgroupfs", "cgroupfs", ""},
		{"systemd host, cgroupfs", true, "cgroupfs", "cgroupfs", ""},
		{"host without systemd, systemd", false, "systemd", "", "cgroup_driver: \"systemd\" cannot work on n1: its init is not systemd"},
	} {
		t.Run(c.name, func(t *testing.T) {
			root := simHost(t)
			if !c.systemd {
				os.RemoveAll(filepath.Join(root, "run/systemd"))
			}
			// A config.toml of before, so the dry-run's change shows the new content.
			os.MkdirAll(filepath.Join(root, "etc/containerd"), 0o755)
			os.WriteFile(filepath.Join(root, "etc/containerd/config.toml"), []byte("# before\n"), 0o644)
			r, err := tasks.NewRunner(t.TempDir(), root, map[string]tasks.Handler{"runtime": runtime.Run}, slog.New(slog.NewTextHandler(io.Discard, nil)))
			if err != nil {
				t.Fatal(err)
			}
			tk := runtimeTask("rt-dry", true)
			tk.GetSpec().GetRuntime().CgroupDriver = c.want
			res, logs := run(t, r, tk)
			if c.err != "" {
				if res.GetState() != taskv1.TaskState_TASK_STATE_FAILED || res.GetError().GetReason() != "INVALID_ARGUMENT" || !strings.Contains(res.GetError().GetMessage(), c.err) {
					t.Fatalf("got %v, want INVALID_ARGUMENT saying %q", res, c.err)
				}
				return
			}
			if res.GetState() != taskv1.TaskState_TASK_STATE_SUCCEEDED || res.GetOutputs()["cgroup_driver"] != c.driver {
				t.Fatalf("got %v (%v), want cgroup driver %s", res, logs, c.driver)
			}
			var cfg string
			for _, ch := range res.GetChanges() {
				if ch.GetTarget() == "/etc/containerd/config.toml" {
					cfg = ch.GetDetail()
				}
			}
			if want := "SystemdCgroup = " + map[string]string{"systemd": "true", "cgroupfs": "false"}[c.driver]; !strings.Contains(cfg, want) {
				t.Fatalf("config.toml would not say %s:\n%s", want, cfg)
			}
		})
	}
}
