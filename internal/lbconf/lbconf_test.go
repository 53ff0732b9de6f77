package lbconf

import (
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"

	taskv1 "github.com/deckhandhq/deckhand/proto/deckhand/task/v1"
)

func TestParseSettings(t *testing.T) {
	doc := func(n string) string {
		return map[string]string{"virtual_router_id": "virtualRouterId"}[n] + map[bool]string{true: n}[n != "virtual_router_id"]
	}
	for _, c := range []struct {
		name     string
		in       *taskv1.LoadBalancerSettings
		endpoint string
		field    string // of the error; "" when valid
		msg      string
	}{
		{name: "none is external", in: nil},
		{name: "external", in: &taskv1.LoadBalancerSettings{Type: "external"}},
		{name: "external with a VIP", in: &taskv1.LoadBalancerSettings{Type: "external", Address: "10.0.0.100"}, field: "spec.loadBalancer", msg: "takes no other setting"},
		{name: "vip with defaults", in: &taskv1.LoadBalancerSettings{Type: "vip", Address: "10.0.0.100"}, endpoint: "10.0.0.100:8443"},
		{name: "vip on a port", in: &taskv1.LoadBalancerSettings{Type: "vip", Address: "192.168.1.10", Port: 443, Interface: "ens3", VirtualRouterId: 7}, endpoint: "192.168.1.10:443"},
		{name: "vip without an address", in: &taskv1.LoadBalancerSettings{Type: "vip"}, field: "spec.loadBalancer.address", msg: "is required for type vip"},
		{name: "vip with a name", in: &taskv1.LoadBalancerSettings{Type: "vip", Address: "lb.example.com"}, field: "spec.loadBalancer.address", msg: "not an IP address"},
		{name: "vip IPv6", in: &taskv1.LoadBalancerSettings{Type: "vip", Address: "fd00::1"}, field: "spec.loadBalancer.address", msg: "not IPv4"},
		{name: "vip loopback", in: &taskv1.LoadBalancerSettings{Type: "vip", Address: "127.0.0.5"}, field: "spec.loadBalancer.address", msg: "not a unicast address"},
		{name: "vip on the API servers' port", in: &taskv1.LoadBalancerSettings{Type: "vip", Address: "10.0.0.100", Port: 6443}, field: "spec.loadBalancer.port", msg: "API servers' own port"},
		{name: "port out of range", in: &taskv1.LoadBalancerSettings{Type: "vip", Address: "10.0.0.100", Port: 70000}, field: "spec.loadBalancer.port", msg: "not a port"},
		{name: "interface with a shell", in: &taskv1.LoadBalancerSettings{Type: "vip", Address: "10.0.0.100", Interface: "eth0; reboot"}, field: "spec.loadBalancer.interface", msg: "not a network interface name"},
		{name: "interface too long", in: &taskv1.LoadBalancerSettings{Type: "vip", Address: "10.0.0.100", Interface: "abcdefghijklmnop"}, field: "spec.loadBalancer.interface"},
		{name: "router ID out of range", in: &taskv1.LoadBalancerSettings{Type: "vip", Address: "10.0.0.100", VirtualRouterId: 256}, field: "spec.loadBalancer.virtualRouterId", msg: "1..255"},
		{name: "local", in: &taskv1.LoadBalancerSettings{Type: "local"}, endpoint: "127.0.0.1:7443"},
		{name: "local with a VIP", in: &taskv1.LoadBalancerSettings{Type: "local", Address: "10.0.0.100"}, field: "spec.loadBalancer", msg: "they are for type vip"},
		{name: "unknown type", in: &taskv1.LoadBalancerSettings{Type: "kube-vip"}, field: "spec.loadBalancer.type", msg: "use external, vip, local"},
	} {
		t.Run(c.name, func(t *testing.T) {
			s, err := ParseSettings("spec.loadBalancer", doc, c.in)
			if c.field != "" {
				fe, ok := err.(*FieldError)
				if !ok || fe.Field != c.field || !strings.Contains(fe.Msg, c.msg) {
					t.Fatalf("error %v, want one naming %s saying %q", err, c.field, c.msg)
				}
				return
			}
			if err != nil {
				t.Fatal(err)
			}
			if s.Endpoint() != c.endpoint {
				t.Errorf("endpoint %q, want %q", s.Endpoint(), c.endpoint)
			}
		})
	}
}

func vipSpec() *taskv1.LoadBalancerSpec {
	return &taskv1.LoadBalancerSpec{Settings: &taskv1.LoadBalancerSettings{Type: "vip", Address: "10.250.9.100"},
		Backends: []string{"10.250.9.12:6443", "10.250.9.11:6443"}, Priority: 150, NodeAddress: "10.250.9.11", Generation: 42}
}

func TestParseTask(t *testing.T) {
	for _, c := range []struct {
		name  string
		edit  func(*taskv1.LoadBalancerSpec)
		field string
	}{
		{name: "valid", edit: func(*taskv1.LoadBalancerSpec) {}},
		{name: "external", edit: func(s *taskv1.LoadBalancerSpec) { s.Settings = nil }, field: "settings.type"},
		{name: "no backends", edit: func(s *taskv1.LoadBalancerSpec) { s.Backends = nil }, field: "backends"},
		{name: "a backend without a port", edit: func(s *taskv1.LoadBalancerSpec) { s.Backends[1] = "10.250.9.11" }, field: "backends[1]"},
		{name: "a backend named", edit: func(s *taskv1.LoadBalancerSpec) { s.Backends[0] = "node-1:6443" }, field: "backends[0]"},
		{name: "a backend twice", edit: func(s *taskv1.LoadBalancerSpec) { s.Backends[1] = s.Backends[0] }, field: "backends[1]"},
		{name: "too many backends", edit: func(s *taskv1.LoadBalancerSpec) {
			for i := range MaxBackends {
				s.Backends = append(s.Backends, fmt.Sprintf("10.250.8.%d:6443", i+1))
			}
		}, field: "backends"},
		{name: "priority zero", edit: func(s *taskv1.LoadBalancerSpec) { s.Priority = 0 }, field: "priority"},
		{name: "priority 255 (the address owner's, never a backup's)", edit: func(s *taskv1.LoadBalancerSpec) { s.Priority = 255 }, field: "priority"},
		{name: "no node address nor interface", edit: func(s *taskv1.LoadBalancerSpec) { s.NodeAddress = "" }, field: "node_address"},
		{name: "remove needs no backends", edit: func(s *taskv1.LoadBalancerSpec) { s.Remove, s.Backends = true, nil }},
	} {
		t.Run(c.name, func(t *testing.T) {
			s := vipSpec()
			c.edit(s)
			_, err := Parse(s)
			if c.field == "" && err != nil {
				t.Fatal(err)
			}
			if fe, ok := err.(*FieldError); c.field != "" && (!ok || fe.Field != c.field) {
				t.Fatalf("error %v, want one naming %s", err, c.field)
			}
		})
	}
}

// The files are what haproxy and keepalived accept: checked by the real tools.
func TestConfigsPassTheRealTools(t *testing.T) {
	for _, tool := range []string{"haproxy", "keepalived", "ip"} {
		if _, err := exec.LookPath(tool); err != nil {
			t.Fatalf("%s is not installed: apt-get install -y haproxy keepalived iproute2 (.ci/run installs them)", tool)
		}
	}
	dir := t.TempDir()
	for _, typ := range []string{VIP, Local} {
		in := vipSpec()
		if typ == Local {
			in.Settings = &taskv1.LoadBalancerSettings{Type: Local}
		}
		s, err := Parse(in)
		if err != nil {
			t.Fatal(err)
		}
		cfg := HAProxyConfig(s)
		f := filepath.Join(dir, typ+".cfg")
		if err := os.WriteFile(f, cfg, 0o644); err != nil {
			t.Fatal(err)
		}
		if out, err := exec.Command("haproxy", "-c", "-f", f).CombinedOutput(); err != nil {
			t.Errorf("haproxy -c refuses the %s configuration: %v\n%s\n%s", typ, err, out, cfg)
		}
		want := map[string]string{VIP: "bind 0.0.0.0:8443", Local: "bind 127.0.0.1:7443"}[typ]
		if !strings.Contains(string(cfg), want+"\n") || !strings.Contains(string(cfg), "server api-1 10.250.9.11:6443\n    server api-2 10.250.9.12:6443\n") {
			t.Errorf("%s configuration does not %s to both API servers in order:\n%s", typ, want, cfg)
		}
	}

	// keepalived checks its interface exists: in a network namespace of the test's own,
	// with a veth pair inside it (no packet leaves it).
	ns := fmt.Sprintf("deckhand-lbconf-%d", os.Getpid())
	run := func(args ...string) {
		t.Helper()
		if out, err := exec.Command(args[0], args[1:]...).CombinedOutput(); err != nil {
			t.Fatalf("%v: %v\n%s", args, err, out)
		}
	}
	run("ip", "netns", "add", ns)
	t.Cleanup(func() { _ = exec.Command("ip", "netns", "del", ns).Run() })
	run("ip", "-n", ns, "link", "add", "lbtest0", "type", "veth", "peer", "name", "lbtest1")
	s, err := Parse(vipSpec())
	if err != nil {
		t.Fatal(err)
	}
	for name, cfg := range map[string][]byte{"valid": KeepalivedConfig(s, "lbtest0", "/usr/bin/pgrep"), "an interface that is not there": KeepalivedConfig(s, "nosuch0", "/usr/bin/pgrep")} {
		f := filepath.Join(dir, "keepalived.conf")
		if err := os.WriteFile(f, cfg, 0o644); err != nil {
			t.Fatal(err)
		}
		out, err := exec.Command("ip", "netns", "exec", ns, "keepalived", "--config-test", "-f", f).CombinedOutput()
		if (err == nil) != (name == "valid") {
			t.Errorf("keepalived --config-test on %s: %v\n%s\n%s", name, err, out, cfg)
		}
	}
}
