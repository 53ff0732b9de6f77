package testcluster

import (
	"crypto/sha256"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"runtime"
	"sync"
	"testing"
)

var (
	simOnce sync.Once
	simDir  string
	simErr  error
)

// SimTools are the host tools the hostsim SIMULATION stands in for.
// ip, iptables (with the -save and -restore tools), ipvsadm and nft are among them so that
// no test's network or reset task ever reads or changes the routes, links, rules, IPVS
// services or nftables tables of the machine the test runs on (the agent would find the
// real ones on its PATH).
var SimTools = []string{"systemctl", "firewall-cmd", "swapoff", "setenforce", "modprobe", "sysctl", "apt-get", "apt-mark", "ip", "iptables",
	"iptables-save", "iptables-restore", "ip6tables-save", "ip6tables-restore", "ipvsadm", "nft"}

// SimCNIPlugins are the CNI plugins a simulated host has in /usr/lib/cni.
var SimCNIPlugins = []string{"bridge", "host-local", "portmap", "loopback"}

// SimKubeadm installs the kubeadm, kubectl and kubelet SIMULATIONS into ROOT/usr/bin (as
// if the packages task had run), for tests of the kubeadm tasks.
func SimKubeadm(t testing.TB, root string) {
	t.Helper()
	data, err := os.ReadFile(filepath.Join(root, "usr", "bin", "systemctl"))
	if err != nil {
		t.Fatal(err)
	}
	for _, tool := range []string{"kubeadm", "kubectl", "kubelet"} {
		if err := os.WriteFile(filepath.Join(root, "usr", "bin", tool), data, 0o755); err != nil {
			t.Fatal(err)
		}
	}
}

// InstallSim puts the hostsim SIMULATION into a simulated host root (ROOT/usr/bin, under
// each tool's name), the way the lab does, so tasks that manage services, the firewall and
// kernel settings act on that root, and containerd really runs. Stop what it started with
// StopSim.
func InstallSim(t testing.TB, root string) {
	t.Helper()
	simOnce.Do(func() {
		// One directory per user and checkout, shared by every test process of that
		// checkout: each process builds the binary (from Go's build cache) into a
		// temporary name and renames it into place, so concurrent packages never see half
		// a binary and no directory piles up. Checkouts (git worktrees) of other code on
		// the same machine get their own, or one's tests would run another's simulation.
		_, self, _, _ := runtime.Caller(0)
		checkout := sha256.Sum256([]byte(filepath.Dir(filepath.Dir(filepath.Dir(self)))))
		simDir = filepath.Join(os.TempDir(), fmt.Sprintf("deckhand-sim-uid%d-%x", os.Getuid(), checkout[:6]))
		if simErr = os.MkdirAll(simDir, 0o700); simErr != nil {
			return
		}
		tmp, err := os.MkdirTemp(simDir, "build-")
		if err != nil {
			simErr = err
			return
		}
		defer os.RemoveAll(tmp)
		out, err := exec.Command("go", "build", "-o", tmp, "github.com/deckhandhq/deckhand/internal/testkit/sim/hostsim").CombinedOutput()
		if err != nil {
			simErr = &buildError{err: err, out: string(out)}
			return
		}
		simErr = os.Rename(filepath.Join(tmp, "hostsim"), filepath.Join(simDir, "hostsim"))
	})
	if simErr != nil {
		t.Fatal(simErr)
	}
	bin := filepath.Join(root, "usr", "bin")
	if err := os.MkdirAll(bin, 0o755); err != nil {
		t.Fatal(err)
	}
	data, err := os.ReadFile(filepath.Join(simDir, "hostsim"))
	if err != nil {
		t.Fatal(err)
	}
	for _, tool := range SimTools {
		if err := os.WriteFile(filepath.Join(bin, tool), data, 0o755); err != nil {
			t.Fatal(err)
		}
	}
	// The distribution's CNI plugins, as containerd's packages bring them (the simulated
	// host has its distribution packages already; nothing in it runs a pod).
	cni := filepath.Join(root, "usr", "lib", "cni")
	if err := os.MkdirAll(cni, 0o755); err != nil {
		t.Fatal(err)
	}
	for _, p := range SimCNIPlugins {
		if err := os.WriteFile(filepath.Join(cni, p), data, 0o755); err != nil {
			t.Fatal(err)
		}
	}
	t.Cleanup(func() { StopSim(root) })
}

// StopSim stops the services the simulation started in root.
func StopSim(root string) {
	_ = exec.Command(filepath.Join(root, "usr", "bin", "systemctl"), "stop", "containerd").Run()
}

type buildError struct {
	err error
	out string
}

func (e *buildError) Error() string {
	return "build the hostsim simulation: " + e.err.Error() + "\n" + e.out
}

// WriteFile writes a file of a host root (p relative to it), its directories too.
func WriteFile(t testing.TB, root, p, content string, mode os.FileMode) {
	t.Helper()
	if err := os.MkdirAll(filepath.Dir(filepath.Join(root, p)), 0o755); err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(filepath.Join(root, p), []byte(content), mode); err != nil {
		t.Fatal(err)
	}
}
