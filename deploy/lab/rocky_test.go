package lab_test

import (
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/deckhandhq/deckhand/internal/testkit/gpgkit"
	"github.com/deckhandhq/deckhand/internal/testkit/rpmkit"
	"github.com/deckhandhq/deckhand/internal/testkit/testwait"
)

// rockyCluster is a cluster of node-1 and node-2 (both made Rocky Linux), its packages and
// containerd from the repositories the test serves.
const rockyCluster = `apiVersion: deckhand.dev/v1alpha1
kind: Cluster
metadata: {name: rocky}
spec:
  kubernetesVersion: %s
  imageRepository: %s.1:5000
  insecureRegistries: [%s.1:5000]
  cgroupDriver: cgroupfs
  kubeProxy: {conntrackMaxPerCore: 0}
  packages: {source: repository, baseURL: "%s/k8s"}
  runtime:
    repository: {baseURL: "%s/docker/el/$releasever", gpgKeyURL: "%s/docker/gpg", gpgKeyFingerprint: "%s"}
  nodes:
  - {name: node-1, role: control-plane}
  - {name: node-2, role: worker}
`

// rockyOSRelease is Rocky Linux 9.5's /etc/os-release (the fields Deckhand reads).
const rockyOSRelease = `NAME="Rocky Linux"
VERSION="9.5 (Blue Onyx)"
ID="rocky"
ID_LIKE="rhel centos fedora"
VERSION_ID="9.5"
PLATFORM_ID="platform:el9"
PRETTY_NAME="Rocky Linux 9.5 (Blue Onyx)"
`

// TestRealLabRocky runs the packages and runtime tasks' dnf path for real: node-2 of a lab
// (no cluster applied) is made a Rocky Linux 9.5 host (its os-release, no containerd, runc
// or CNI plugins, an rpm database of its own in its /var), and the lab's file server serves
// signed dnf repositories built here with the real rpmbuild, rpmsign and createrepo_c: the
// Kubernetes packages at two versions (with the kubelet's unit and kubeadm's drop-in, as
// pkgs.k8s.io's), and containerd.io with the distribution's CNI plugins. The agent's tasks
// run the real dnf: a containerd repository key of another fingerprint is refused before
// anything is installed; containerd.io installs, starts and answers on the CRI socket; a
// repository with a package its key did not sign is refused by dnf, nothing installed; kubelet, kubeadm and
// kubectl install at the version asked, stay there through a dnf upgrade (the exclude
// hold), a second run changes nothing, --download-only fetches the next version into dnf's
// cache without installing it, and installing that version upgrades them.
//
// node-3 runs the real firewalld (with a D-Bus system bus of its own in its /run):
// preflight --fix opens a worker's ports in it, permanently and at once, and a connection to
// the kubelet's port that firewalld refused before gets through after.
func TestRealLabRocky(t *testing.T) {
	rpmkit.Require(t)
	for _, tool := range []string{"firewalld", "dbus-daemon"} {
		if _, err := exec.LookPath(tool); err != nil {
			t.Fatalf("%s is not installed: apt-get install firewalld dbus (.ci/run does)", tool)
		}
	}
	files := t.TempDir()
	key, impostor := gpgkit.New(t, "Deckhand Lab Repo"), gpgkit.New(t, "Impostor")
	buildRockyRepos(t, files, key, impostor)

	dir := filepath.Join(os.TempDir(), fmt.Sprintf("dh-lab-rocky-%d", os.Getpid()))
	env := []string{"DECKHAND_LAB_DIR=" + dir, "DECKHAND_LAB_APPLY=0", "DECKHAND_LAB_FILES=" + files}
	t.Cleanup(func() {
		cmd := exec.Command("../../scripts/lab-down.sh")
		cmd.Env = append(os.Environ(), env...)
		_ = cmd.Run()
	})
	run(t, 30*time.Minute, env, "make", "lab")
	l := loadLab(t, dir)
	serve := "http://" + l.net + ".1:5000/files"

	// node-2 becomes a Rocky Linux host.
	sh := func(node, script string) string {
		t.Helper()
		out, err := l.onHost(node, "sh", "-ec", script)
		if err != nil {
			t.Fatalf("on %s: %s: %v\n%s", node, script, err, out)
		}
		return out
	}
	sh("node-2", "cat >/etc/os-release <<'EOF'\n"+rockyOSRelease+"EOF\n"+
		"rm -f /usr/bin/containerd /usr/bin/containerd-shim /usr/bin/containerd-shim-runc-v1 /usr/bin/containerd-shim-runc-v2 /usr/bin/ctr /usr/sbin/runc /usr/bin/runc /lib/systemd/system/containerd.service\n"+
		"rm -rf /usr/lib/cni /var/lib/rpm /var/cache/dnf\nmkdir -p /etc/dnf/vars /var/lib/rpm\necho 9 >/etc/dnf/vars/releasever\n")
	// The agent's facts are sent every minute (the lab's --facts-interval): the next shows it.
	testwait.For(t, 2*time.Minute, func() error {
		out, err := l.deckctl("node", "describe", "node-2")
		if err != nil || !strings.Contains(out, "Rocky Linux 9.5 (Blue Onyx) (dnf)") {
			return fmt.Errorf("deckctl node describe node-2: %v\n%s", err, out)
		}
		return nil
	})
	// What an apply would change, before anything does: node-1 is made Rocky Linux too (its
	// os-release only: it keeps the machine's containerd), and the dry-run lists the dnf
	// repositories and commands, and changes nothing.
	sh("node-1", "cat >/etc/os-release <<'EOF'\n"+rockyOSRelease+"EOF\n")
	doc := filepath.Join(t.TempDir(), "cluster.yaml")
	if err := os.WriteFile(doc, []byte(fmt.Sprintf(rockyCluster, upgradeFrom, l.net, l.net, serve, serve, serve, key.Fingerprint)), 0o644); err != nil {
		t.Fatal(err)
	}
	dry, err := l.deckctl("apply", "-f", doc, "--dry-run", "--timeout", "10m")
	t.Logf("deckctl apply --dry-run:\n%s", dry)
	if err != nil {
		t.Fatalf("deckctl apply --dry-run: %v", err)
	}
	for _, want := range []string{"/etc/yum.repos.d/kubernetes.repo", "dnf install -y kubelet-1.33.13 kubeadm-1.33.13 kubectl-1.33.13 --disableexcludes=kubernetes",
		"/etc/yum.repos.d/deckhand-containerd.repo", "dnf install -y --disableexcludes=deckhand-containerd containerd.io containernetworking-plugins"} {
		if !strings.Contains(dry, want) {
			errorf(t, "deckctl apply --dry-run does not show %q", want)
		}
	}
	if out, err := l.onHost("node-2", "ls", "/etc/yum.repos.d"); err == nil && strings.TrimSpace(out) != "" {
		t.Fatalf("the dry-run wrote %s", out)
	}

	task := func(want string, args ...string) string {
		t.Helper()
		out, err := l.deckctl(append([]string{"task", "run", "node-2"}, args...)...)
		if (err == nil) != (want == "") || (want != "" && !strings.Contains(out, want)) {
			t.Fatalf("deckctl task run node-2 %s: %v, want failure %q\n%s", strings.Join(args, " "), err, want, out)
		}
		return out
	}
	rpmQ := func(pkg string) string {
		out, err := l.onHost("node-2", "rpm", "-q", "--qf", "%{VERSION}", pkg)
		if err != nil {
			return "not installed"
		}
		return strings.TrimSpace(out)
	}

	// containerd: the key of another fingerprint is refused; nothing installed.
	runtime := []string{"runtime", "--cgroup-driver", "cgroupfs", "--image-repository", l.net + ".1:5000", "--insecure-registry", l.net + ".1:5000",
		"--repository-url", serve + "/docker/el/$releasever", "--gpg-key-url", serve + "/docker/gpg"}
	out := task("GPG_KEY_MISMATCH", append(runtime, "--gpg-key-fingerprint", impostor.Fingerprint)...)
	if !strings.Contains(out, "has fingerprint "+key.Fingerprint+", not the pinned "+impostor.Fingerprint) || rpmQ("containerd.io") != "not installed" {
		t.Fatalf("a key of another fingerprint: containerd.io %s\n%s", rpmQ("containerd.io"), out)
	}
	out = task("", append(runtime, "--gpg-key-fingerprint", strings.ToLower(key.Fingerprint[:4])+" "+key.Fingerprint[4:])...)
	if v := rpmQ("containerd.io"); v != containerdVersion(t) || !strings.Contains(out, "runtime_ready: true") {
		t.Fatalf("containerd.io %s after the runtime task:\n%s", v, out)
	}
	if repo := sh("node-2", "cat /etc/yum.repos.d/deckhand-containerd.repo"); !strings.Contains(repo, "exclude=containerd.io") || !strings.Contains(repo, "gpgkey=file:///etc/pki/rpm-gpg/deckhand-containerd.asc") {
		t.Fatalf("the containerd repository file:\n%s", repo)
	}
	if v := rpmQ("containernetworking-plugins"); v == "not installed" || !strings.Contains(sh("node-2", "ls -l /opt/cni/bin"), "/usr/libexec/cni/bridge") {
		t.Fatalf("the CNI plugins: %s\n%s", v, sh("node-2", "ls -l /opt/cni/bin"))
	}

	// Kubernetes: packages their repository's key did not sign are refused by dnf.
	packages := func(base, version string, extra ...string) []string {
		return append([]string{"packages", "--kubernetes-version", version, "--base-url", serve + "/" + base}, extra...)
	}
	out = task("INSTALL_FAILED", packages("k8s-impostor", upgradeFrom)...)
	if !strings.Contains(strings.ToLower(out), "gpg") || rpmQ("kubelet") != "not installed" {
		t.Fatalf("packages signed by another key: kubelet %s\n%s", rpmQ("kubelet"), out)
	}
	out = task("", packages("k8s", upgradeFrom)...)
	v := strings.TrimPrefix(upgradeFrom, "v")
	for _, p := range []string{"kubelet", "kubeadm", "kubectl"} {
		if got := rpmQ(p); got != v {
			t.Fatalf("%s %s after the packages task, want %s (the repository has %s too)\n%s", p, got, v, upgradeTo, out)
		}
	}
	if !strings.Contains(out, "kubelet_version: "+upgradeFrom) {
		t.Fatalf("the task's outputs:\n%s", out)
	}
	if repo := sh("node-2", "cat /etc/yum.repos.d/kubernetes.repo"); !strings.Contains(repo, "exclude=kubelet kubeadm kubectl") {
		t.Fatalf("kubernetes.repo holds nothing back:\n%s", repo)
	}
	if enabled, err := l.onHost("node-2", "systemctl", "is-enabled", "kubelet"); err != nil || strings.TrimSpace(enabled) != "enabled" {
		t.Fatalf("the kubelet after the packages task: %v %q", err, enabled)
	}
	// An operator's dnf upgrade leaves them: they are excluded.
	sh("node-2", "dnf -y upgrade")
	if got := rpmQ("kubelet"); got != v {
		t.Fatalf("dnf upgrade moved the kubelet to %s", got)
	}
	if out := task("", packages("k8s", upgradeFrom)...); !strings.Contains(out, "no changes") {
		t.Fatalf("a second packages run changed the host:\n%s", out)
	}
	// The next version into dnf's cache only (an upgrade's staging), then installed.
	task("", packages("k8s", upgradeTo, "--download-only")...)
	if got := rpmQ("kubelet"); got != v {
		t.Fatalf("--download-only installed kubelet %s", got)
	}
	next := strings.TrimPrefix(upgradeTo, "v")
	if cached := sh("node-2", "find /var/cache/dnf -name 'kube*-"+next+"-*.rpm' | wc -l"); strings.TrimSpace(cached) != "3" {
		t.Fatalf("%s of the three packages of %s in dnf's cache after --download-only", strings.TrimSpace(cached), upgradeTo)
	}
	task("", packages("k8s", upgradeTo)...)
	for _, p := range []string{"kubelet", "kubeadm", "kubectl"} {
		if got := rpmQ(p); got != next {
			t.Fatalf("%s %s after installing %s", p, got, upgradeTo)
		}
	}

	rockyFirewalld(t, l)
}

// rockyFirewalld runs the real firewalld on node-3 and its preflight --fix against it.
func rockyFirewalld(t *testing.T, l *realLab) {
	holder, err := os.ReadFile(filepath.Join(l.dir, "node-3", "holder.pid"))
	if err != nil {
		t.Fatal(err)
	}
	in := func(argv ...string) *exec.Cmd {
		return exec.Command("nsenter", append([]string{"-t", strings.TrimSpace(string(holder)), "-m", "-n", "-u", "--"}, argv...)...)
	}
	start := func(log string, argv ...string) {
		cmd := in(argv...)
		f, err := os.Create(filepath.Join(l.dir, log))
		if err != nil {
			t.Fatal(err)
		}
		cmd.Stdout, cmd.Stderr = f, f
		cmd.SysProcAttr = &syscall.SysProcAttr{Setsid: true}
		if err := cmd.Start(); err != nil {
			t.Fatal(err)
		}
		t.Cleanup(func() {
			_ = cmd.Process.Signal(syscall.SIGTERM)
			done := make(chan struct{})
			go func() { _ = cmd.Wait(); close(done) }()
			select {
			case <-done:
			case <-time.After(10 * time.Second):
				_ = cmd.Process.Kill()
				<-done
			}
			f.Close()
		})
	}
	if out, err := in("mkdir", "-p", "/run/dbus").CombinedOutput(); err != nil {
		t.Fatalf("%v\n%s", err, out)
	}
	start("node-3-dbus.log", "dbus-daemon", "--system", "--nofork", "--nopidfile")
	testwait.For(t, 30*time.Second, func() error {
		_, err := os.Stat(filepath.Join("/proc", strings.TrimSpace(string(holder)), "root", "run", "dbus", "system_bus_socket"))
		return err
	})
	start("node-3-firewalld.log", "firewalld", "--nofork", "--nopid")
	testwait.For(t, 60*time.Second, func() error {
		out, err := l.onHost("node-3", "firewall-cmd", "--state")
		if err != nil || strings.TrimSpace(out) != "running" {
			return fmt.Errorf("firewall-cmd --state: %v %s", err, out)
		}
		return nil
	})
	// The kubelet's port: something listens there, and firewalld refuses the connection.
	start("node-3-listener.log", "python3", "-m", "http.server", "--bind", l.net+".23", "10250")
	reach := func() error {
		out, err := l.onHost("node-2", "timeout", "3", "bash", "-c", "exec 3<>/dev/tcp/"+l.net+".23/10250")
		if err != nil {
			return fmt.Errorf("node-2 to node-3:10250: %v %s", err, out)
		}
		return nil
	}
	// The listener answers on node-3 itself (its own traffic goes through lo, which firewalld
	// lets through), and firewalld refuses node-2.
	testwait.For(t, 30*time.Second, func() error {
		out, err := l.onHost("node-3", "timeout", "3", "bash", "-c", "exec 3<>/dev/tcp/"+l.net+".23/10250")
		if err != nil {
			return fmt.Errorf("the listener on node-3:10250 from node-3: %v %s", err, out)
		}
		return nil
	})
	if err := reach(); err == nil {
		t.Fatal("node-3's firewalld let node-2 reach port 10250 before preflight opened it")
	}
	// No runtime runs on node-3 (no cluster was applied), and the listener stands in for the
	// kubelet on its port: those two checks are not this test's.
	preflight := []string{"task", "run", "node-3", "preflight", "--role", "worker", "--fix", "--ignore", "CRI", "--ignore", "Port-10250"}
	out, err := l.deckctl(preflight...)
	if err != nil {
		t.Fatalf("preflight --fix on node-3: %v\n%s", err, out)
	}
	for _, want := range []string{"firewall-cmd --permanent --zone=public --add-port=10250/tcp", "firewall-cmd --zone=public --add-port=10250/tcp", "firewall-cmd --permanent --zone=public --add-port=30000-32767/tcp"} {
		if !strings.Contains(out, want) {
			t.Fatalf("preflight --fix did not run %q:\n%s", want, out)
		}
	}
	for _, list := range [][]string{{"firewall-cmd", "--list-ports"}, {"firewall-cmd", "--permanent", "--list-ports"}} {
		got, err := l.onHost("node-3", list...)
		if err != nil || !strings.Contains(got, "10250/tcp") || !strings.Contains(got, "10256/tcp") || !strings.Contains(got, "30000-32767/tcp") {
			t.Fatalf("%v: %v %q", list, err, got)
		}
	}
	testwait.For(t, 10*time.Second, reach)
	if out, err := l.deckctl(preflight...); err != nil || !strings.Contains(out, "no changes") {
		t.Fatalf("a second preflight --fix: %v\n%s", err, out)
	}
}

// containerdVersion is the machine's containerd's version, which the containerd.io the test
// packages carries ("1.6.20").
func containerdVersion(t *testing.T) string {
	out, err := exec.Command("containerd", "--version").Output()
	if err != nil {
		t.Fatal(err)
	}
	f := strings.Fields(string(out))
	if len(f) < 3 {
		t.Fatalf("containerd --version: %q", out)
	}
	v, _, _ := strings.Cut(f[2], "~")
	return strings.TrimPrefix(v, "v")
}

// buildRockyRepos builds the dnf repositories the Rocky host installs from, under dir:
// k8s (kubelet, kubeadm and kubectl of both kits, signed by key), k8s-impostor (the same
// at the first version, its kubectl signed by impostor instead), and docker/el/9 (containerd.io and
// containernetworking-plugins, signed by key; the key at docker/gpg).
func buildRockyRepos(t *testing.T, dir string, key, impostor *gpgkit.Key) {
	k8s := filepath.Join(dir, "k8s")
	for _, version := range []string{upgradeFrom, upgradeTo} {
		kit := strings.TrimSpace(run(t, 30*time.Minute, nil, "scripts/k8s.sh", version))
		kit = kit[strings.LastIndex(kit, "\n")+1:]
		v := strings.TrimPrefix(version, "v")
		rpms := []string{
			rpmkit.Build(t, k8s, rpmkit.Package{Name: "kubelet", Version: v, Release: "150500.1.1",
				Files: map[string]string{"/usr/bin/kubelet": filepath.Join(kit, "kubelet")},
				Contents: map[string]string{"/usr/lib/systemd/system/kubelet.service": "[Unit]\nDescription=kubelet: The Kubernetes Node Agent\n\n[Service]\nExecStart=/usr/bin/kubelet\nRestart=always\nRestartSec=10\n\n[Install]\nWantedBy=multi-user.target\n",
					"/etc/sysconfig/kubelet": "KUBELET_EXTRA_ARGS=\n"}}),
			rpmkit.Build(t, k8s, rpmkit.Package{Name: "kubeadm", Version: v, Release: "150500.1.1",
				Files: map[string]string{"/usr/bin/kubeadm": filepath.Join(kit, "kubeadm")},
				Contents: map[string]string{"/usr/lib/systemd/system/kubelet.service.d/10-kubeadm.conf": "[Service]\n" +
					"Environment=\"KUBELET_KUBECONFIG_ARGS=--bootstrap-kubeconfig=/etc/kubernetes/bootstrap-kubelet.conf --kubeconfig=/etc/kubernetes/kubelet.conf\"\n" +
					"Environment=\"KUBELET_CONFIG_ARGS=--config=/var/lib/kubelet/config.yaml\"\nEnvironmentFile=-/var/lib/kubelet/kubeadm-flags.env\nEnvironmentFile=-/etc/sysconfig/kubelet\n" +
					"ExecStart=\nExecStart=/usr/bin/kubelet $KUBELET_KUBECONFIG_ARGS $KUBELET_CONFIG_ARGS $KUBELET_KUBEADM_ARGS $KUBELET_EXTRA_ARGS\n"}}),
			rpmkit.Build(t, k8s, rpmkit.Package{Name: "kubectl", Version: v, Release: "150500.1.1",
				Files: map[string]string{"/usr/bin/kubectl": filepath.Join(kit, "kubectl")}}),
		}
		rpmkit.Sign(t, key, rpms...)
	}
	rpmkit.Repo(t, k8s, key)
	// A tampered repository: it publishes the right key, but its kubectl was signed by the
	// impostor (kubelet and kubeadm are the real ones). dnf checks every package against
	// the keys it trusts, whichever repository they come from.
	bad := filepath.Join(dir, "k8s-impostor")
	if err := os.MkdirAll(bad, 0o755); err != nil {
		t.Fatal(err)
	}
	signed, _ := filepath.Glob(filepath.Join(k8s, "*-"+strings.TrimPrefix(upgradeFrom, "v")+"-*.rpm"))
	for _, f := range signed {
		to := filepath.Join(bad, filepath.Base(f))
		if !strings.HasPrefix(filepath.Base(f), "kubectl-") {
			if err := os.Link(f, to); err != nil {
				t.Fatal(err)
			}
			continue
		}
		b, err := os.ReadFile(f)
		if err == nil {
			err = os.WriteFile(to, b, 0o644)
		}
		if err != nil {
			t.Fatal(err)
		}
		rpmkit.Sign(t, impostor, to)
	}
	rpmkit.Repo(t, bad, key)

	docker := filepath.Join(dir, "docker", "el", "9")
	bins := map[string]string{"/usr/bin/runc": "/usr/sbin/runc"}
	for _, b := range []string{"containerd", "containerd-shim", "containerd-shim-runc-v1", "containerd-shim-runc-v2", "ctr"} {
		bins["/usr/bin/"+b] = "/usr/bin/" + b
	}
	unit, err := os.ReadFile("/lib/systemd/system/containerd.service")
	if err != nil {
		t.Fatal(err)
	}
	plugins := map[string]string{}
	entries, _ := os.ReadDir("/usr/lib/cni")
	for _, e := range entries {
		plugins["/usr/libexec/cni/"+e.Name()] = filepath.Join("/usr/lib/cni", e.Name())
	}
	rpmkit.Sign(t, key,
		rpmkit.Build(t, docker, rpmkit.Package{Name: "containerd.io", Version: containerdVersion(t), Release: "3.1.el9", Files: bins,
			Contents: map[string]string{"/usr/lib/systemd/system/containerd.service": string(unit)}}),
		rpmkit.Build(t, docker, rpmkit.Package{Name: "containernetworking-plugins", Version: "1.5.1", Release: "1.el9", Files: plugins}))
	rpmkit.Repo(t, docker, key)
	if err := os.WriteFile(filepath.Join(dir, "docker", "gpg"), key.Armored, 0o644); err != nil {
		t.Fatal(err)
	}
}
