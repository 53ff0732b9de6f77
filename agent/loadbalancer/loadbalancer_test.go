package loadbalancer_test

import (
	"context"
	"fmt"
	"io"
	"log/slog"
	"net"
	"net/netip"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/deckhandhq/deckhand/agent/loadbalancer"
	"github.com/deckhandhq/deckhand/agent/tasks"
	"github.com/deckhandhq/deckhand/internal/lbconf"
	"github.com/deckhandhq/deckhand/internal/testkit/testcluster"
	taskv1 "github.com/deckhandhq/deckhand/proto/deckhand/task/v1"
)

// node is a host root with stand-ins for the tools the task calls: systemctl keeps the
// units' state in files and records every call; haproxy and keepalived accept any
// configuration (the real tools check the rendered files in internal/lbconf's tests).
type node struct {
	t      *testing.T
	root   string
	runner *tasks.Runner
	port   int // where haproxy "listens": a real listener of the test
	n      int
}

func newNode(t *testing.T) *node {
	t.Helper()
	root := t.TempDir()
	write := func(p, content string, mode os.FileMode) { testcluster.WriteFile(t, root, p, content, mode) }
	state := filepath.Join(root, "svc-state")
	write("svc-state/.keep", "", 0o644)
	write("usr/bin/systemctl", fmt.Sprintf(`#!/bin/sh
echo "$*" >>%[1]s/calls
case "$1" in
is-enabled) [ -e %[1]s/enabled-$2 ] ;;
is-active) [ -e %[1]s/active-$2 ] ;;
enable) touch %[1]s/enabled-$2 ;;
disable) rm -f %[1]s/enabled-$2 ;;
start|reload) touch %[1]s/active-$2 ;;
stop) rm -f %[1]s/active-$2 ;;
esac
`, state), 0o755)
	write("usr/sbin/haproxy", "#!/bin/sh\nexit 0\n", 0o755)
	write("usr/sbin/keepalived", "#!/bin/sh\nexit 0\n", 0o755)
	write("etc/os-release", "ID=debian\n", 0o644)
	write(lbconf.HAProxyConfigPath, "# the package's haproxy.cfg\n", 0o644)
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { ln.Close() })
	go func() {
		for {
			c, err := ln.Accept()
			if err != nil {
				return
			}
			c.Close()
		}
	}()
	r, err := tasks.NewRunner(t.TempDir(), root, map[string]tasks.Handler{"load_balancer": loadbalancer.Run}, slog.New(slog.NewTextHandler(io.Discard, nil)))
	if err != nil {
		t.Fatal(err)
	}
	return &node{t: t, root: root, runner: r, port: ln.Addr().(*net.TCPAddr).Port}
}

func (n *node) spec(gen uint64, backends ...string) *taskv1.LoadBalancerSpec {
	return &taskv1.LoadBalancerSpec{Settings: &taskv1.LoadBalancerSettings{Type: lbconf.Local, Port: uint32(n.port)}, Backends: backends, Generation: gen}
}

// run runs the task and returns its result and the systemctl calls it made.
func (n *node) run(s *taskv1.LoadBalancerSpec, dry bool) (*taskv1.TaskResult, []string) {
	n.t.Helper()
	n.n++
	_ = os.Remove(filepath.Join(n.root, "svc-state/calls"))
	done := make(chan *taskv1.TaskResult, 1)
	n.runner.Start(context.Background(), &taskv1.Task{Id: fmt.Sprintf("lb-%d", n.n), Node: "node-1", DryRun: dry, Spec: &taskv1.TaskSpec{Kind: &taskv1.TaskSpec_LoadBalancer{LoadBalancer: s}}},
		func(*taskv1.TaskEvent) {}, func(res *taskv1.TaskResult) { done <- res })
	res := <-done
	b, _ := os.ReadFile(filepath.Join(n.root, "svc-state/calls"))
	var calls []string
	for _, l := range strings.Split(strings.TrimSpace(string(b)), "\n") {
		if l != "" && !strings.HasPrefix(l, "is-") {
			calls = append(calls, l)
		}
	}
	return res, calls
}

func (n *node) file(p string) string {
	b, _ := os.ReadFile(filepath.Join(n.root, p))
	return string(b)
}

func TestLoadBalancerTask(t *testing.T) {
	n := newNode(t)
	ok := func(res *taskv1.TaskResult) {
		t.Helper()
		if res.GetState() != taskv1.TaskState_TASK_STATE_SUCCEEDED {
			t.Fatalf("task %v: %v", res.GetState(), res.GetError())
		}
	}

	// A dry-run changes nothing and says what it would write and run.
	res, calls := n.run(n.spec(5, "10.0.0.11:6443"), true)
	ok(res)
	if len(calls) != 0 || !strings.HasPrefix(n.file(lbconf.HAProxyConfigPath), "# the package's") {
		t.Fatalf("a dry-run ran %v or wrote the configuration", calls)
	}
	var changed []string
	for _, c := range res.GetChanges() {
		changed = append(changed, c.GetTarget())
	}
	if all := strings.Join(changed, "\n"); !strings.Contains(all, lbconf.HAProxyConfigPath) || !strings.Contains(all, "systemctl start haproxy") {
		t.Fatalf("the dry-run's changes do not list the configuration and the start:\n%s", all)
	}

	// The first run keeps the package's file aside, writes Deckhand's, enables and starts.
	res, calls = n.run(n.spec(5, "10.0.0.11:6443"), false)
	ok(res)
	if got := strings.Join(calls, ","); got != "enable haproxy,start haproxy" {
		t.Fatalf("first run: systemctl %s", got)
	}
	if cfg := n.file(lbconf.HAProxyConfigPath); !strings.HasPrefix(cfg, lbconf.Marker) || !strings.Contains(cfg, "server api-1 10.0.0.11:6443\n") {
		t.Fatalf("haproxy.cfg:\n%s", cfg)
	}
	if res.GetOutputs()["endpoint"] != fmt.Sprintf("127.0.0.1:%d", n.port) || res.GetOutputs()["backends"] != "1" {
		t.Fatalf("outputs %v", res.GetOutputs())
	}

	// The same list again (an lb-update after a worker's join): nothing is reloaded.
	res, calls = n.run(n.spec(6, "10.0.0.11:6443"), false)
	ok(res)
	if len(calls) != 0 {
		t.Fatalf("an unchanged list: systemctl %v", calls)
	}

	// A run cut short between writing the file and the reload (the agent restarted) leaves
	// its mark; the next run reloads although the file is already the new one.
	if err := os.WriteFile(filepath.Join(n.root, "var/lib/deckhand/loadbalancer/haproxy.reload"), nil, 0o600); err != nil {
		t.Fatal(err)
	}
	res, calls = n.run(n.spec(7, "10.0.0.11:6443"), false)
	ok(res)
	if got := strings.Join(calls, ","); got != "reload haproxy" {
		t.Fatalf("after an interrupted run: systemctl %s, want a reload", got)
	}

	// A second control plane: reloaded with both; an older list sent late changes nothing.
	res, calls = n.run(n.spec(9, "10.0.0.12:6443", "10.0.0.11:6443"), false)
	ok(res)
	if got := strings.Join(calls, ","); got != "reload haproxy" || !strings.Contains(n.file(lbconf.HAProxyConfigPath), "server api-2 10.0.0.12:6443\n") {
		t.Fatalf("a new list: systemctl %s\n%s", got, n.file(lbconf.HAProxyConfigPath))
	}
	res, calls = n.run(n.spec(8, "10.0.0.11:6443"), false)
	ok(res)
	if len(calls) != 0 || !strings.Contains(n.file(lbconf.HAProxyConfigPath), "10.0.0.12:6443") {
		t.Fatalf("an older list applied: systemctl %v", calls)
	}

	// Removal: stopped, disabled, the package's file back, Deckhand's state gone.
	res, calls = n.run(&taskv1.LoadBalancerSpec{Settings: &taskv1.LoadBalancerSettings{Type: lbconf.Local}, Remove: true}, false)
	ok(res)
	if got := strings.Join(calls, ","); got != "stop haproxy,disable haproxy" {
		t.Fatalf("remove: systemctl %s", got)
	}
	if cfg := n.file(lbconf.HAProxyConfigPath); cfg != "# the package's haproxy.cfg\n" {
		t.Fatalf("haproxy.cfg after the removal:\n%s", cfg)
	}
	if _, err := os.Stat(filepath.Join(n.root, "var/lib/deckhand/loadbalancer")); !os.IsNotExist(err) {
		t.Fatalf("Deckhand's state is still there: %v", err)
	}
	// Again, on a node where Deckhand configured nothing: nothing is touched.
	res, calls = n.run(&taskv1.LoadBalancerSpec{Settings: &taskv1.LoadBalancerSettings{Type: lbconf.Local}, Remove: true}, false)
	ok(res)
	if len(calls) != 0 {
		t.Fatalf("a second removal: systemctl %v", calls)
	}
}

// VRRP runs on the interface that holds the node's address.
func TestInterfaceOf(t *testing.T) {
	out := []byte(`[{"ifname":"lo","addr_info":[{"local":"127.0.0.1"}]},{"ifname":"eth0","addr_info":[{"local":"10.250.0.21"},{"local":"10.250.0.100"}]},{"ifname":"eth1","addr_info":[{"local":"192.168.5.2"}]}]`)
	for addr, want := range map[string]string{"10.250.0.21": "eth0", "192.168.5.2": "eth1"} {
		if got, err := loadbalancer.InterfaceOf(out, mustAddr(t, addr)); err != nil || got != want {
			t.Errorf("%s: %q %v, want %s", addr, got, err, want)
		}
	}
	if _, err := loadbalancer.InterfaceOf(out, mustAddr(t, "10.9.9.9")); err == nil || !strings.Contains(err.Error(), "holds 10.9.9.9") {
		t.Errorf("an address no interface holds: %v", err)
	}
	bad := []byte(`[{"ifname":"eth0;reboot","addr_info":[{"local":"10.250.0.21"}]}]`)
	if _, err := loadbalancer.InterfaceOf(bad, mustAddr(t, "10.250.0.21")); err == nil {
		t.Error("an interface name keepalived must not be given was taken")
	}
}

func mustAddr(t *testing.T, s string) netip.Addr {
	t.Helper()
	a, err := netip.ParseAddr(s)
	if err != nil {
		t.Fatal(err)
	}
	return a
}
