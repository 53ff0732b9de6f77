package preflight_test

import (
	"context"
	"fmt"
	"io"
	"log/slog"
	"net"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/deckhandhq/deckhand/agent/preflight"
	"github.com/deckhandhq/deckhand/agent/tasks"
	"github.com/deckhandhq/deckhand/internal/testkit/testcluster"
	taskv1 "github.com/deckhandhq/deckhand/proto/deckhand/task/v1"
)

func write(t *testing.T, root, p, content string) {
	t.Helper()
	full := filepath.Join(root, p)
	if err := os.MkdirAll(filepath.Dir(full), 0o755); err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(full, []byte(content), 0o644); err != nil {
		t.Fatal(err)
	}
}

// seeded is a host with every fixable problem kubeadm users meet.
func seeded(t *testing.T) string {
	root := testcluster.HostRoot(t, "pf")
	testcluster.InstallSim(t, root)
	write(t, root, "proc/swaps", "Filename\tType\tSize\tUsed\tPriority\n/swapfile file 1048572 0 -2\n")
	write(t, root, "etc/fstab", "UUID=abc / ext4 defaults 0 1\n/swapfile none swap sw 0 0\n")
	write(t, root, "etc/hosts", "127.0.0.1 localhost\n")
	write(t, root, "var/lib/deckhand-sim/firewalld/running", "")
	write(t, root, "proc/sys/net/ipv4/ip_forward", "0\n")
	write(t, root, "proc/net/tcp", "  sl  local_address rem_address   st\n")
	// The kubelet is installed (its unit is there) but not enabled.
	write(t, root, "lib/systemd/system/kubelet.service", "[Service]\nExecStart=/usr/bin/kubelet\n")
	// A real CRI socket: something listens on it.
	os.MkdirAll(filepath.Join(root, "run/containerd"), 0o755)
	ln, err := net.Listen("unix", filepath.Join(root, "run/containerd/containerd.sock"))
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { ln.Close() })
	return root
}

func task(id string, fix, dry bool) *taskv1.Task {
	return &taskv1.Task{Id: id, Node: "cp-1", DryRun: dry, Spec: &taskv1.TaskSpec{Kind: &taskv1.TaskSpec_Preflight{Preflight: &taskv1.PreflightSpec{Role: taskv1.NodeRole_NODE_ROLE_CONTROL_PLANE, Fix: fix}}}}
}

func run(t *testing.T, r *tasks.Runner, tk *taskv1.Task) *taskv1.TaskResult {
	t.Helper()
	done := make(chan *taskv1.TaskResult, 1)
	r.Start(context.Background(), tk, func(*taskv1.TaskEvent) {}, func(res *taskv1.TaskResult) { done <- res })
	select {
	case res := <-done:
		return res
	case <-time.After(60 * time.Second):
		t.Fatal("preflight did not finish")
	}
	return nil
}

func snapshot(t *testing.T, root string) string {
	var b strings.Builder
	filepath.Walk(root, func(p string, info os.FileInfo, err error) error {
		if err == nil && info.Mode().IsRegular() && !strings.Contains(p, "/usr/bin/") {
			data, _ := os.ReadFile(p)
			b.WriteString(strings.TrimPrefix(p, root) + "=" + string(data) + "\n")
		}
		return nil
	})
	return b.String()
}

func TestPreflightFindsAndFixesSeededProblems(t *testing.T) {
	root := seeded(t)
	r, _ := tasks.NewRunner(t.TempDir(), root, map[string]tasks.Handler{"preflight": preflight.Run}, slog.New(slog.NewTextHandler(io.Discard, nil)))

	// Without --fix: each problem is found and said how to fix; nothing changes.
	before := snapshot(t, root)
	res := run(t, r, task("pf-check", false, false))
	if res.GetState() != taskv1.TaskState_TASK_STATE_FAILED || res.GetError().GetReason() != "PREFLIGHT_FAILED" {
		t.Fatalf("check: %v", res)
	}
	out := res.GetOutputs()
	for check, want := range map[string]string{
		"Swap":                "fail: swap is on",
		"Hostname":            "fail: hostname \"cp-1\"",
		"Firewalld-6443/tcp":  "fail: port 6443/tcp is closed by firewalld (zone public): run with --fix or open it: firewall-cmd --permanent --zone=public --add-port=6443/tcp && firewall-cmd --zone=public --add-port=6443/tcp",
		"Firewalld-10250/tcp": "fail:",
		"KernelModules":       "fail: modules not loaded: [overlay br_netfilter]",
		"Sysctl":              "fail: not set to 1: [net.ipv4.ip_forward",
		"Service-Kubelet":     "warn: kubelet service is not enabled",
		"CRI":                 "pass",
		"Port-6443":           "pass",
	} {
		if !strings.HasPrefix(out["check."+check], want) {
			t.Errorf("check %s = %q, want prefix %q", check, out["check."+check], want)
		}
	}
	if snapshot(t, root) != before {
		t.Fatal("preflight without --fix changed the host")
	}

	// A dry-run of --fix shows the per-host changes and makes none.
	res = run(t, r, task("pf-dry", true, true))
	if res.GetState() != taskv1.TaskState_TASK_STATE_SUCCEEDED || len(res.GetChanges()) < 8 {
		t.Fatalf("dry-run fix: %v", res)
	}
	if snapshot(t, root) != before {
		t.Fatal("dry-run of --fix changed the host")
	}
	var diff []string
	for _, c := range res.GetChanges() {
		diff = append(diff, c.GetTarget()+" "+c.GetDetail())
	}
	for _, want := range []string{"swapoff -a", "/etc/fstab", "/etc/hosts", "firewall-cmd --permanent --zone=public --add-port=6443/tcp", "/etc/modules-load.d/kubernetes.conf", "modprobe br_netfilter", "/etc/sysctl.d/99-kubernetes.conf", "sysctl --system", "systemctl enable kubelet"} {
		if !strings.Contains(strings.Join(diff, "\n"), want) {
			t.Errorf("dry-run does not show %q:\n%s", want, strings.Join(diff, "\n"))
		}
	}

	// --fix fixes every fixable item; a second run passes with no changes.
	res = run(t, r, task("pf-fix", true, false))
	if res.GetState() != taskv1.TaskState_TASK_STATE_SUCCEEDED {
		t.Fatalf("fix: %v", res)
	}
	res = run(t, r, task("pf-again", true, false))
	if res.GetState() != taskv1.TaskState_TASK_STATE_SUCCEEDED || len(res.GetChanges()) != 0 {
		t.Fatalf("second run: %v", res)
	}
	for k, v := range res.GetOutputs() {
		if !strings.HasPrefix(v, "pass") && !(k == "check.FileExisting" && strings.HasPrefix(v, "warn")) {
			t.Errorf("after --fix %s = %s", k, v)
		}
	}
	fstab, _ := os.ReadFile(filepath.Join(root, "etc/fstab"))
	if !strings.Contains(string(fstab), "# /swapfile none swap") || !strings.Contains(string(fstab), "UUID=abc / ext4") {
		t.Fatalf("fstab: %s", fstab)
	}
}

func TestPreflightPortInUseIsNotFixable(t *testing.T) {
	root := seeded(t)
	// 6443 in LISTEN state (0A), as /proc/net/tcp shows a running API server.
	write(t, root, "proc/net/tcp", "  sl  local_address rem_address   st\n   0: 00000000:192B 00000000:0000 0A 00000000:00000000 00:00000000 00000000     0        0 1 1 0000000000000000 100 0 0 10 0\n")
	r, _ := tasks.NewRunner(t.TempDir(), root, map[string]tasks.Handler{"preflight": preflight.Run}, slog.New(slog.NewTextHandler(io.Discard, nil)))
	res := run(t, r, task("pf-port", true, false))
	if res.GetState() != taskv1.TaskState_TASK_STATE_FAILED || !strings.Contains(res.GetError().GetMessage(), "port 6443 is in use") {
		t.Fatalf("busy port: %v", res)
	}
}

func changed(res *taskv1.TaskResult) string {
	var b strings.Builder
	for _, c := range res.GetChanges() {
		b.WriteString(c.GetTarget() + " " + c.GetDetail() + "\n")
	}
	return b.String()
}

// A module built into the kernel has no /sys/module/NAME when it has no parameters
// (br_netfilter), and a host without /lib/modules cannot modprobe anything: such a module
// is present, and only listing it for boot is left to fix.
func TestPreflightKernelModulesBuiltIntoTheKernel(t *testing.T) {
	for name, files := range map[string]map[string]string{
		"loaded": {"sys/module/overlay/refcnt": "1\n", "sys/module/br_netfilter/refcnt": "0\n"},
		"listed in modules.builtin": {
			"proc/sys/kernel/osrelease":             "6.18.0-dh\n",
			"lib/modules/6.18.0-dh/modules.builtin": "kernel/fs/ext4/ext4.ko\nkernel/fs/overlayfs/overlay.ko\nkernel/net/bridge/br_netfilter.ko\n",
		},
		"seen by their effect (no /lib/modules)": {
			"proc/filesystems": "nodev\tsysfs\nnodev\toverlay\n\text4\n",
			"proc/sys/net/bridge/bridge-nf-call-iptables": "0\n",
		},
	} {
		t.Run(name, func(t *testing.T) {
			root := seeded(t)
			for p, content := range files {
				write(t, root, p, content)
			}
			r, _ := tasks.NewRunner(t.TempDir(), root, map[string]tasks.Handler{"preflight": preflight.Run}, slog.New(slog.NewTextHandler(io.Discard, nil)))
			res := run(t, r, task("pf-mod", false, false))
			if got := res.GetOutputs()["check.KernelModules"]; !strings.HasPrefix(got, "warn: modules not loaded: []; loaded at boot: false") {
				t.Fatalf("KernelModules = %q", got)
			}
			if !strings.HasPrefix(name, "seen") {
				return // (the simulated sysctl needs the bridge settings for a fix run)
			}
			res = run(t, r, task("pf-mod-fix", true, false))
			if res.GetState() != taskv1.TaskState_TASK_STATE_SUCCEEDED || strings.Contains(changed(res), "modprobe") {
				t.Fatalf("fix: %v\n%s", res.GetState(), changed(res))
			}
			conf, _ := os.ReadFile(filepath.Join(root, "etc/modules-load.d/kubernetes.conf"))
			if string(conf) != "overlay\nbr_netfilter\n" {
				t.Fatalf("modules-load.d: %q", conf)
			}
			res = run(t, r, task("pf-mod-again", true, false))
			if got := res.GetOutputs()["check.KernelModules"]; !strings.HasPrefix(got, "pass") || len(res.GetChanges()) != 0 {
				t.Fatalf("second run: %q %s", got, changed(res))
			}
		})
	}
	// A module named like another's prefix is not it.
	root := seeded(t)
	write(t, root, "proc/sys/kernel/osrelease", "6.18.0-dh\n")
	write(t, root, "lib/modules/6.18.0-dh/modules.builtin", "kernel/fs/overlayfs/overlay2.ko\nkernel/net/bridge/br_netfilter_x.ko\n")
	r, _ := tasks.NewRunner(t.TempDir(), root, map[string]tasks.Handler{"preflight": preflight.Run}, slog.New(slog.NewTextHandler(io.Discard, nil)))
	if got := run(t, r, task("pf-mod-other", false, false)).GetOutputs()["check.KernelModules"]; !strings.HasPrefix(got, "fail: modules not loaded: [overlay br_netfilter]") {
		t.Fatalf("KernelModules = %q", got)
	}
}

// Preflight runs before the packages step: on a host without the kubelet, enabling its
// unit would fail the fix ("Unit file kubelet.service does not exist"); packages enables it.
func TestPreflightLeavesAKubeletNotYetInstalledToPackages(t *testing.T) {
	root := seeded(t)
	os.Remove(filepath.Join(root, "lib/systemd/system/kubelet.service"))
	r, _ := tasks.NewRunner(t.TempDir(), root, map[string]tasks.Handler{"preflight": preflight.Run}, slog.New(slog.NewTextHandler(io.Discard, nil)))
	res := run(t, r, task("pf-nokubelet", true, false))
	if res.GetState() != taskv1.TaskState_TASK_STATE_SUCCEEDED {
		t.Fatalf("fix: %v", res)
	}
	if got := res.GetOutputs()["check.Service-Kubelet"]; got != "warn: kubelet is not installed yet: the packages step installs and enables it" {
		t.Fatalf("Service-Kubelet = %q", got)
	}
	if strings.Contains(changed(res), "systemctl enable") {
		t.Fatalf("preflight enabled a kubelet that is not installed:\n%s", changed(res))
	}
}

// On a host with several networks the /etc/hosts fix maps the node's name to the node's
// address the workflow gives, not to the host's first interface; an existing entry that
// points at another network is reported and left alone, a loopback one (Debian's
// 127.0.1.1) passes.
func TestPreflightHostsEntryUsesTheNodeAddress(t *testing.T) {
	addrTask := func(id, addr string) *taskv1.Task {
		tk := task(id, true, false)
		tk.GetSpec().GetPreflight().NodeAddress = addr
		return tk
	}
	root := seeded(t)
	r, _ := tasks.NewRunner(t.TempDir(), root, map[string]tasks.Handler{"preflight": preflight.Run}, slog.New(slog.NewTextHandler(io.Discard, nil)))
	if res := run(t, r, addrTask("pf-addr", "192.168.56.11")); res.GetState() != taskv1.TaskState_TASK_STATE_SUCCEEDED {
		t.Fatalf("fix: %v", res)
	}
	hosts, _ := os.ReadFile(filepath.Join(root, "etc/hosts"))
	if string(hosts) != "127.0.0.1 localhost\n192.168.56.11 cp-1\n" {
		t.Fatalf("/etc/hosts = %q, want the node's address for cp-1", hosts)
	}
	for i, c := range []struct{ hosts, want string }{
		{"127.0.0.1 localhost\n10.0.2.15 cp-1\n", "warn: cp-1 resolves to 10.0.2.15 through /etc/hosts, not to the node's address 192.168.56.11"},
		{"127.0.0.1 localhost\n127.0.1.1 cp-1 cp-1.lan\n", "pass: cp-1 resolves to 127.0.1.1"},
		{"127.0.0.1 localhost\n192.168.56.11 cp-1\n", "pass: cp-1 resolves to 192.168.56.11"},
	} {
		write(t, root, "etc/hosts", c.hosts)
		res := run(t, r, addrTask(fmt.Sprintf("pf-addr-%d", i), "192.168.56.11"))
		if got := res.GetOutputs()["check.Hostname"]; !strings.HasPrefix(got, c.want) {
			t.Errorf("%q: Hostname = %q, want %q", c.hosts, got, c.want)
		}
		if got, _ := os.ReadFile(filepath.Join(root, "etc/hosts")); string(got) != c.hosts {
			t.Errorf("%q: /etc/hosts changed to %q", c.hosts, got)
		}
	}
}

// A VIP control plane's keepalived advertises with VRRP: --fix lets it through firewalld,
// now and across reboots; a node that runs no VIP is not asked to.
func TestPreflightLetsVRRPIn(t *testing.T) {
	root := seeded(t)
	r, _ := tasks.NewRunner(t.TempDir(), root, map[string]tasks.Handler{"preflight": preflight.Run}, slog.New(slog.NewTextHandler(io.Discard, nil)))
	plain := run(t, r, task("pf-novrrp", false, false))
	if _, ok := plain.GetOutputs()["check.Firewalld-vrrp"]; ok {
		t.Fatalf("a node with no VIP was checked for VRRP: %v", plain.GetOutputs())
	}
	vip := func(id string, fix bool) *taskv1.Task {
		tk := task(id, fix, false)
		tk.GetSpec().GetPreflight().AllowVrrp = true
		return tk
	}
	res := run(t, r, vip("pf-vrrp-check", false))
	if !strings.HasPrefix(res.GetOutputs()["check.Firewalld-vrrp"], "fail:") {
		t.Fatalf("VRRP dropped by firewalld is not reported: %v", res.GetOutputs())
	}
	res = run(t, r, vip("pf-vrrp-fix", true))
	if got := changed(res); !strings.Contains(got, "firewall-cmd --permanent --zone=public --add-protocol=vrrp") || !strings.Contains(got, "firewall-cmd --zone=public --add-protocol=vrrp") {
		t.Fatalf("--fix did not let VRRP in now and permanently:\n%s", got)
	}
	res = run(t, r, vip("pf-vrrp-again", true))
	if !strings.HasPrefix(res.GetOutputs()["check.Firewalld-vrrp"], "pass") {
		t.Fatalf("after the fix: %v", res.GetOutputs()["check.Firewalld-vrrp"])
	}
}

// A worker's firewall lets kube-proxy's health port and the NodePort range in (kubeadm's list
// of a worker's ports), which are not checked free: kube-proxy listens there once it runs.
func TestPreflightOpensAWorkersNodePorts(t *testing.T) {
	root := seeded(t)
	r, _ := tasks.NewRunner(t.TempDir(), root, map[string]tasks.Handler{"preflight": preflight.Run}, slog.New(slog.NewTextHandler(io.Discard, nil)))
	tk := task("pf-worker", true, false)
	tk.GetSpec().GetPreflight().Role = taskv1.NodeRole_NODE_ROLE_WORKER
	res := run(t, r, tk)
	got := changed(res)
	for _, want := range []string{"firewall-cmd --permanent --zone=public --add-port=30000-32767/tcp", "firewall-cmd --zone=public --add-port=10256/tcp", "firewall-cmd --permanent --zone=public --add-port=10250/tcp"} {
		if !strings.Contains(got, want) {
			t.Errorf("a worker's --fix did not run %q:\n%s", want, got)
		}
	}
	if strings.Contains(got, "6443") {
		t.Errorf("a worker's --fix opened the API server's port:\n%s", got)
	}
	if _, ok := res.GetOutputs()["check.Port-30000"]; ok {
		t.Error("the NodePort range was checked free")
	}
}

// The pod network provider's ports (flannel's VXLAN 8472/udp) are opened on every node,
// control planes too, and recorded so the reset closes them again; a bad one is refused
// before anything changes.
func TestPreflightOpensTheNetworkProvidersPorts(t *testing.T) {
	root := seeded(t)
	r, _ := tasks.NewRunner(t.TempDir(), root, map[string]tasks.Handler{"preflight": preflight.Run}, slog.New(slog.NewTextHandler(io.Discard, nil)))
	dry := task("pf-net-dry", true, true)
	dry.GetSpec().GetPreflight().NetworkPorts = []string{"8472/udp"}
	if got := changed(run(t, r, dry)); !strings.Contains(got, "firewall-cmd --permanent --zone=public --add-port=8472/udp") {
		t.Fatalf("the dry-run does not list the provider's port:\n%s", got)
	}
	tk := task("pf-net", true, false)
	tk.GetSpec().GetPreflight().NetworkPorts = []string{"8472/udp"}
	got := changed(run(t, r, tk))
	for _, want := range []string{"firewall-cmd --permanent --zone=public --add-port=8472/udp", "firewall-cmd --zone=public --add-port=8472/udp"} {
		if !strings.Contains(got, want) {
			t.Errorf("--fix did not run %q:\n%s", want, got)
		}
	}
	if rules, _ := os.ReadFile(filepath.Join(root, "var/lib/deckhand/firewall.rules")); !strings.Contains(string(rules), "8472/udp") {
		t.Errorf("the provider's port is not recorded for the reset to close: %q", rules)
	}
	bad := task("pf-net-bad", true, false)
	bad.GetSpec().GetPreflight().NetworkPorts = []string{"8472/sctp"}
	res := run(t, r, bad)
	if res.GetError().GetReason() != "INVALID_ARGUMENT" || !strings.Contains(res.GetError().GetMessage(), "network_ports[0]") || len(res.GetChanges()) != 0 {
		t.Fatalf("a bad provider port: %v", res)
	}
}

// A Rocky Linux 9 host with SELinux enforcing, as it comes: preflight fails it and says how
// to fix it; a dry-run of --fix shows setenforce 0 and /etc/selinux/config; --fix sets it
// permissive now and at boot, keeping the rest of the file; a second run changes nothing.
func TestPreflightSetsSELinuxPermissive(t *testing.T) {
	root := seeded(t)
	write(t, root, "etc/os-release", "NAME=\"Rocky Linux\"\nVERSION_ID=\"9.5\"\nID=\"rocky\"\nID_LIKE=\"rhel centos fedora\"\nPRETTY_NAME=\"Rocky Linux 9.5 (Blue Onyx)\"\n")
	write(t, root, "sys/fs/selinux/enforce", "1")
	const config = "# This file controls the state of SELinux on the system.\nSELINUX=enforcing\nSELINUXTYPE=targeted\n"
	write(t, root, "etc/selinux/config", config)
	r, _ := tasks.NewRunner(t.TempDir(), root, map[string]tasks.Handler{"preflight": preflight.Run}, slog.New(slog.NewTextHandler(io.Discard, nil)))

	res := run(t, r, task("se-check", false, false))
	out := res.GetOutputs()
	if got := out["check.SELinux"]; !strings.HasPrefix(got, "fail: SELinux is enforcing now and enforcing at boot") || !strings.Contains(got, "setenforce 0") {
		t.Fatalf("SELinux check: %q", got)
	}
	if got := out["check.OS"]; got != "pass: Rocky Linux 9.5 (Blue Onyx)" {
		t.Fatalf("OS check: %q", got)
	}
	if !strings.Contains(res.GetError().GetMessage(), "SELinux: SELinux is enforcing") {
		t.Fatalf("the failure does not name SELinux: %v", res.GetError())
	}

	before := snapshot(t, root)
	res = run(t, r, task("se-dry", true, true))
	if snapshot(t, root) != before {
		t.Fatal("a dry-run changed the host")
	}
	diff := changed(res)
	for _, want := range []string{"setenforce 0", "/etc/selinux/config"} {
		if !strings.Contains(diff, want) {
			t.Errorf("the dry-run does not show %q:\n%s", want, diff)
		}
	}
	if got := res.GetOutputs()["check.SELinux"]; !strings.HasPrefix(got, "would fix") {
		t.Errorf("dry-run SELinux: %q", got)
	}

	if res := run(t, r, task("se-fix", true, false)); res.GetState() != taskv1.TaskState_TASK_STATE_SUCCEEDED {
		t.Fatalf("fix: %v", res)
	}
	if b, _ := os.ReadFile(filepath.Join(root, "sys/fs/selinux/enforce")); string(b) != "0" {
		t.Fatalf("SELinux now: %q, want permissive (0)", b)
	}
	if b, _ := os.ReadFile(filepath.Join(root, "etc/selinux/config")); string(b) != strings.Replace(config, "SELINUX=enforcing", "SELINUX=permissive", 1) {
		t.Fatalf("/etc/selinux/config after the fix:\n%s", b)
	}
	res = run(t, r, task("se-again", true, false))
	if got := res.GetOutputs()["check.SELinux"]; got != "pass: SELinux is permissive (at boot: permissive)" || strings.Contains(changed(res), "selinux") {
		t.Fatalf("second run: %q\n%s", got, changed(res))
	}
}

// An OS Deckhand does not support is refused by name, unless the check is ignored.
func TestPreflightRefusesAnUnsupportedOS(t *testing.T) {
	root := seeded(t)
	write(t, root, "etc/os-release", "ID=alpine\nVERSION_ID=3.20.3\nPRETTY_NAME=\"Alpine Linux v3.20\"\n")
	r, _ := tasks.NewRunner(t.TempDir(), root, map[string]tasks.Handler{"preflight": preflight.Run}, slog.New(slog.NewTextHandler(io.Discard, nil)))
	res := run(t, r, task("os", true, false))
	if got := res.GetOutputs()["check.OS"]; !strings.HasPrefix(got, `fail: Alpine Linux v3.20 (ID "alpine") is not supported: Deckhand supports Debian 11+`) || !strings.Contains(got, "--ignore OS") {
		t.Fatalf("OS check: %q", got)
	}
	if res.GetState() != taskv1.TaskState_TASK_STATE_FAILED || !strings.Contains(res.GetError().GetMessage(), "OS: Alpine Linux v3.20") {
		t.Fatalf("an unsupported OS: %v", res)
	}
	ignored := task("os-ignored", true, false)
	ignored.GetSpec().GetPreflight().Ignore = []string{"OS"}
	if res := run(t, r, ignored); res.GetState() != taskv1.TaskState_TASK_STATE_SUCCEEDED {
		t.Fatalf("with the OS check ignored: %v", res.GetError())
	}
}

// The ports go into the zone of the interface holding the node's address (here loopback's,
// put in firewalld's internal zone), and the record keeps the zone for the reset.
func TestPreflightOpensPortsInTheInterfacesZone(t *testing.T) {
	root := seeded(t)
	write(t, root, "var/lib/deckhand-sim/firewalld/zone-of-lo", "internal\n")
	r, _ := tasks.NewRunner(t.TempDir(), root, map[string]tasks.Handler{"preflight": preflight.Run}, slog.New(slog.NewTextHandler(io.Discard, nil)))
	tk := task("pf-zone", true, false)
	tk.GetSpec().GetPreflight().NodeAddress = "127.0.0.1"
	res := run(t, r, tk)
	got := changed(res)
	for _, want := range []string{"firewall-cmd --permanent --zone=internal --add-port=6443/tcp", "firewall-cmd --zone=internal --add-port=6443/tcp"} {
		if !strings.Contains(got, want) {
			t.Errorf("--fix did not run %q:\n%s", want, got)
		}
	}
	if rules, _ := os.ReadFile(filepath.Join(root, "var/lib/deckhand/firewall.rules")); !strings.Contains(string(rules), "firewalld port 6443/tcp zone=internal") {
		t.Errorf("the record of the zone's port: %q", rules)
	}
}
