package network_test

import (
	"context"
	"encoding/json"
	"fmt"
	"io"
	"log/slog"
	"net/netip"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"testing"
	"time"

	hostpkg "github.com/deckhandhq/deckhand/agent/host"
	"github.com/deckhandhq/deckhand/agent/network"
	"github.com/deckhandhq/deckhand/agent/tasks"
	"github.com/deckhandhq/deckhand/internal/podnet"
	"github.com/deckhandhq/deckhand/internal/testkit/testcluster"
	taskv1 "github.com/deckhandhq/deckhand/proto/deckhand/task/v1"
)

// The configuration containerd reads, parsed back: the node's pod CIDR for host-local, the
// bridge as the pods' gateway that masquerades nothing (a pod reached from another node sees
// the other pod's address), portmap for hostPorts.
func TestConflist(t *testing.T) {
	s, err := podnet.Parse(&taskv1.NetworkSpec{Provider: "bridge", PodCidr: "10.244.3.0/24", ClusterPodSubnet: "10.244.0.0/16", Mtu: 1450})
	if err != nil {
		t.Fatal(err)
	}
	b, err := network.Conflist(s)
	if err != nil {
		t.Fatal(err)
	}
	var c struct {
		CNIVersion string `json:"cniVersion"`
		Name       string `json:"name"`
		Plugins    []struct {
			Type         string          `json:"type"`
			Bridge       string          `json:"bridge"`
			IsGateway    bool            `json:"isGateway"`
			IPMasq       *bool           `json:"ipMasq"`
			HairpinMode  bool            `json:"hairpinMode"`
			MTU          int             `json:"mtu"`
			Capabilities map[string]bool `json:"capabilities"`
			IPAM         struct {
				Type   string                `json:"type"`
				Ranges [][]map[string]string `json:"ranges"`
				Routes []map[string]string   `json:"routes"`
			} `json:"ipam"`
		} `json:"plugins"`
	}
	if err := json.Unmarshal(b, &c); err != nil {
		t.Fatalf("not JSON: %v\n%s", err, b)
	}
	if c.CNIVersion != "1.0.0" || c.Name != "deckhand" || len(c.Plugins) != 2 {
		t.Fatalf("conflist header or plugins: %s", b)
	}
	br, pm := c.Plugins[0], c.Plugins[1]
	if br.Type != "bridge" || br.Bridge != "cni0" || !br.IsGateway || br.IPMasq == nil || *br.IPMasq || !br.HairpinMode || br.MTU != 1450 {
		t.Errorf("bridge plugin: %+v", br)
	}
	if br.IPAM.Type != "host-local" || len(br.IPAM.Ranges) != 1 || len(br.IPAM.Ranges[0]) != 1 || br.IPAM.Ranges[0][0]["subnet"] != "10.244.3.0/24" ||
		len(br.IPAM.Routes) != 1 || br.IPAM.Routes[0]["dst"] != "0.0.0.0/0" {
		t.Errorf("ipam: %+v", br.IPAM)
	}
	if pm.Type != "portmap" || !pm.Capabilities["portMappings"] {
		t.Errorf("portmap plugin: %+v", pm)
	}
	s.MTU = 0
	if b, _ := network.Conflist(s); strings.Contains(string(b), "mtu") {
		t.Errorf("an MTU of 0 is the kernel's default, not written:\n%s", b)
	}
}

func route(s string) podnet.Route {
	c, via, _ := strings.Cut(s, " via ")
	r := podnet.Route{CIDR: netip.MustParsePrefix(c)}
	if via != "" {
		r.Via = netip.MustParseAddr(via)
	}
	return r
}

func routes(ss ...string) []podnet.Route {
	var out []podnet.Route
	for _, s := range ss {
		out = append(out, route(s))
	}
	return out
}

func TestDiff(t *testing.T) {
	for _, c := range []struct {
		name             string
		want, have       []podnet.Route
		replace, removed string
	}{
		{"nothing", nil, nil, "[]", "[]"},
		{"in step", routes("10.244.1.0/24 via 10.0.0.2"), routes("10.244.1.0/24 via 10.0.0.2"), "[]", "[]"},
		{"first routes", routes("10.244.1.0/24 via 10.0.0.2", "10.244.2.0/24 via 10.0.0.3"), nil, "[10.244.1.0/24 via 10.0.0.2 10.244.2.0/24 via 10.0.0.3]", "[]"},
		{"a node joined", routes("10.244.1.0/24 via 10.0.0.2", "10.244.2.0/24 via 10.0.0.3"), routes("10.244.1.0/24 via 10.0.0.2"), "[10.244.2.0/24 via 10.0.0.3]", "[]"},
		{"a node left", routes("10.244.1.0/24 via 10.0.0.2"), routes("10.244.1.0/24 via 10.0.0.2", "10.244.2.0/24 via 10.0.0.3"), "[]", "[10.244.2.0/24]"},
		{"every node left", nil, routes("10.244.1.0/24 via 10.0.0.2", "10.244.2.0/24 via 10.0.0.3"), "[]", "[10.244.1.0/24 10.244.2.0/24]"},
		{"a node's address changed", routes("10.244.1.0/24 via 10.0.0.9"), routes("10.244.1.0/24 via 10.0.0.2"), "[10.244.1.0/24 via 10.0.0.9]", "[]"},
		{"a node rejoined with another CIDR", routes("10.244.5.0/24 via 10.0.0.2"), routes("10.244.1.0/24 via 10.0.0.2"), "[10.244.5.0/24 via 10.0.0.2]", "[10.244.1.0/24]"},
		{"owned route without a gateway", routes("10.244.1.0/24 via 10.0.0.2"), routes("10.244.1.0/24"), "[10.244.1.0/24 via 10.0.0.2]", "[]"},
		{"the same destination twice (two tables' worth)", routes("10.244.1.0/24 via 10.0.0.2"), routes("10.244.1.0/24 via 10.0.0.2", "10.244.1.0/24 via 10.0.0.2"), "[10.244.1.0/24 via 10.0.0.2]", "[]"},
	} {
		rep, rem := network.Diff(c.want, c.have)
		if got := fmt.Sprint(rep); got != c.replace && !(got == "[]" && c.replace == "[]") {
			t.Errorf("%s: replace %s, want %s", c.name, got, c.replace)
		}
		if got := fmt.Sprint(rem); got != c.removed {
			t.Errorf("%s: remove %s, want %s", c.name, got, c.removed)
		}
	}
}

func TestParseRoutes(t *testing.T) {
	// As ip 6.1 prints `ip -j -4 route show proto 221`: a host route without /32.
	out := `[{"dst":"10.244.1.0/24","gateway":"10.250.99.2","dev":"v0","flags":[]},{"dst":"10.244.9.9","gateway":"10.250.99.3","dev":"v0","flags":[]}]`
	rs, err := network.ParseRoutes([]byte(out + "\n"))
	if err != nil || fmt.Sprint(rs) != "[10.244.1.0/24 via 10.250.99.2 10.244.9.9/32 via 10.250.99.3]" {
		t.Fatalf("%v %v", rs, err)
	}
	if rs, err := network.ParseRoutes([]byte("[]\n")); err != nil || len(rs) != 0 {
		t.Fatalf("no routes: %v %v", rs, err)
	}
	if rs, err := network.ParseRoutes([]byte(`[{"dst":"default","gateway":"10.0.0.1","protocol":"221"}]`)); err != nil || fmt.Sprint(rs) != "[0.0.0.0/0 via 10.0.0.1]" {
		t.Fatalf("the default route: %v %v", rs, err)
	}
	for _, bad := range []string{"10.244.1.0/24 via 10.0.0.1 dev eth0", `[{"dst":"default-ish"}]`} {
		if _, err := network.ParseRoutes([]byte(bad)); err == nil {
			t.Errorf("%q parsed", bad)
		}
	}
	own, err := network.ParseAddrs([]byte(`[{"ifindex":3,"ifname":"v0","addr_info":[{"family":"inet","local":"10.250.99.1","prefixlen":24}]},{"ifname":"lo","addr_info":[{"local":"127.0.0.1"}]}]`))
	if err != nil || !own[netip.MustParseAddr("10.250.99.1")] || !own[netip.MustParseAddr("127.0.0.1")] || len(own) != 2 {
		t.Fatalf("addresses: %v %v", own, err)
	}
}

type host struct {
	root string
	r    *tasks.Runner
	n    int
}

func newHost(t *testing.T) *host {
	root := testcluster.HostRoot(t, "node-1")
	testcluster.InstallSim(t, root) // the simulated ip: never the routes of the machine running the test
	// What the runtime task leaves: Debian's plugins linked into containerd's directory.
	for _, p := range testcluster.SimCNIPlugins {
		link := filepath.Join(root, network.PluginDir, p)
		if err := os.MkdirAll(filepath.Dir(link), 0o755); err != nil {
			t.Fatal(err)
		}
		if err := os.Symlink("../../../usr/lib/cni/"+p, link); err != nil {
			t.Fatal(err)
		}
	}
	r, err := tasks.NewRunner(t.TempDir(), root, map[string]tasks.Handler{"network": network.Run}, slog.New(slog.NewTextHandler(io.Discard, nil)))
	if err != nil {
		t.Fatal(err)
	}
	return &host{root: root, r: r}
}

func (h *host) run(t *testing.T, dry bool, gen uint64, rs ...string) *taskv1.TaskResult {
	t.Helper()
	return h.runSpec(t, dry, &taskv1.NetworkSpec{Provider: "bridge", PodCidr: "10.244.1.0/24", ClusterPodSubnet: "10.244.0.0/16", Generation: gen}, rs...)
}

func (h *host) runSpec(t *testing.T, dry bool, spec *taskv1.NetworkSpec, rs ...string) *taskv1.TaskResult {
	t.Helper()
	for _, r := range rs {
		c, via, _ := strings.Cut(r, " via ")
		spec.Routes = append(spec.Routes, &taskv1.NetworkRoute{Cidr: c, Via: via})
	}
	h.n++
	done := make(chan *taskv1.TaskResult, 1)
	h.r.Start(context.Background(), &taskv1.Task{Id: fmt.Sprintf("net-%d", h.n), Node: "node-1", DryRun: dry, Spec: &taskv1.TaskSpec{Kind: &taskv1.TaskSpec_Network{Network: spec}}},
		func(*taskv1.TaskEvent) {}, func(res *taskv1.TaskResult) { done <- res })
	select {
	case res := <-done:
		return res
	case <-time.After(30 * time.Second):
		t.Fatal("network task did not finish")
	}
	return nil
}

// packedSpec is node-1's network spec at generation gen with routes rs packed.
func packedSpec(t *testing.T, gen uint64, rs ...string) *taskv1.NetworkSpec {
	spec := &taskv1.NetworkSpec{Provider: "bridge", PodCidr: "10.244.1.0/24", ClusterPodSubnet: "10.244.0.0/16", Generation: gen}
	for _, r := range rs {
		c, via, _ := strings.Cut(r, " via ")
		var ok bool
		if spec.PackedRoutes, ok = podnet.AppendPacked(spec.PackedRoutes, netip.MustParsePrefix(c), netip.MustParseAddr(via)); !ok {
			t.Fatalf("%s does not pack", r)
		}
	}
	return spec
}

// routes are the simulated host's routing table, "CIDR via ADDR proto N" sorted.
func (h *host) routes(t *testing.T) []string {
	b, err := os.ReadFile(filepath.Join(h.root, "var/lib/deckhand-sim/routes.json"))
	if os.IsNotExist(err) {
		return nil
	}
	var rs []struct{ Dst, Gateway, Protocol string }
	if err := json.Unmarshal(b, &rs); err != nil {
		t.Fatal(err)
	}
	var out []string
	for _, r := range rs {
		out = append(out, r.Dst+" via "+r.Gateway+" proto "+r.Protocol)
	}
	slices.Sort(out)
	return out
}

func changes(res *taskv1.TaskResult) string {
	var out []string
	for _, c := range res.GetChanges() {
		out = append(out, c.GetTarget())
	}
	return strings.Join(out, "\n")
}

func TestRunKeepsExactlyTheOwnedRoutes(t *testing.T) {
	h := newHost(t)
	// A route some other daemon owns (proto static): never touched, even for a CIDR Deckhand
	// would route.
	os.MkdirAll(filepath.Join(h.root, "var/lib/deckhand-sim"), 0o755)
	os.WriteFile(filepath.Join(h.root, "var/lib/deckhand-sim/routes.json"), []byte(`[{"dst":"192.168.7.0/24","gateway":"10.250.0.1","dev":"eth0","protocol":"4"}]`), 0o644)

	dry := h.run(t, true, 5, "10.244.2.0/24 via 10.250.0.12", "10.244.0.0/24 via 10.250.0.10")
	if dry.GetState() != taskv1.TaskState_TASK_STATE_SUCCEEDED || !strings.Contains(changes(dry), "ip -4 route replace 10.244.0.0/24 via 10.250.0.10 proto 221") ||
		!strings.Contains(changes(dry), network.ConfPath) {
		t.Fatalf("dry-run: %v\n%s", dry, changes(dry))
	}
	if got := h.routes(t); len(got) != 1 || testcluster.Exists(h.root, network.ConfPath) {
		t.Fatalf("the dry-run changed the host: %v", got)
	}

	res := h.run(t, false, 5, "10.244.2.0/24 via 10.250.0.12", "10.244.0.0/24 via 10.250.0.10")
	if res.GetState() != taskv1.TaskState_TASK_STATE_SUCCEEDED || res.GetOutputs()["pod_cidr"] != "10.244.1.0/24" {
		t.Fatalf("first run: %v", res)
	}
	want := []string{"10.244.0.0/24 via 10.250.0.10 proto 221", "10.244.2.0/24 via 10.250.0.12 proto 221", "192.168.7.0/24 via 10.250.0.1 proto 4"}
	if got := h.routes(t); !slices.Equal(got, want) {
		t.Fatalf("routes after the first run:\n%v\nwant\n%v", got, want)
	}
	conf, err := os.ReadFile(filepath.Join(h.root, network.ConfPath))
	if err != nil || !strings.Contains(string(conf), `"subnet": "10.244.1.0/24"`) {
		t.Fatalf("conflist: %v\n%s", err, conf)
	}

	if again := h.run(t, false, 5, "10.244.0.0/24 via 10.250.0.10", "10.244.2.0/24 via 10.250.0.12"); len(again.GetChanges()) != 0 {
		t.Fatalf("a second run changed something:\n%s", changes(again))
	}

	// The same routes packed (what a controller sends an agent that reads them): nothing to
	// change either.
	if again := h.runSpec(t, false, packedSpec(t, 5, "10.244.2.0/24 via 10.250.0.12", "10.244.0.0/24 via 10.250.0.10")); again.GetState() != taskv1.TaskState_TASK_STATE_SUCCEEDED || len(again.GetChanges()) != 0 {
		t.Fatalf("the same routes packed: %v\n%s", again, changes(again))
	}

	// node-3 (10.244.2.0/24) left, node-4 joined: a packed list.
	res = h.runSpec(t, false, packedSpec(t, 7, "10.244.0.0/24 via 10.250.0.10", "10.244.3.0/24 via 10.250.0.13"))
	if c := changes(res); !strings.Contains(c, "ip -4 route del 10.244.2.0/24 proto 221") || !strings.Contains(c, "ip -4 route replace 10.244.3.0/24 via 10.250.0.13 proto 221") ||
		strings.Contains(c, "10.244.0.0/24") {
		t.Fatalf("changes when a node left and one joined:\n%s", c)
	}
	want = []string{"10.244.0.0/24 via 10.250.0.10 proto 221", "10.244.3.0/24 via 10.250.0.13 proto 221", "192.168.7.0/24 via 10.250.0.1 proto 4"}
	if got := h.routes(t); !slices.Equal(got, want) {
		t.Fatalf("routes after a leave and a join:\n%v\nwant\n%v", got, want)
	}

	// A list sent earlier (generation 6) that runs late leaves the newer one in place.
	if late := h.run(t, false, 6, "10.244.0.0/24 via 10.250.0.10"); late.GetState() != taskv1.TaskState_TASK_STATE_SUCCEEDED || strings.Contains(changes(late), "route") {
		t.Fatalf("an older route list changed the routes: %v\n%s", late, changes(late))
	}
	if got := h.routes(t); !slices.Equal(got, want) {
		t.Fatalf("routes after an older list: %v", got)
	}
}

func TestRunRefuses(t *testing.T) {
	h := newHost(t)
	if err := os.MkdirAll(filepath.Join(h.root, "var/lib/deckhand-sim"), 0o755); err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(filepath.Join(h.root, "var/lib/deckhand-sim/address"), []byte("198.18.0.5\n"), 0o644); err != nil {
		t.Fatal(err)
	}
	res := h.run(t, false, 1, "10.244.2.0/24 via 198.18.0.5")
	if res.GetError().GetReason() != "INVALID_ARGUMENT" || !strings.Contains(res.GetError().GetMessage(), "an address of this node") {
		t.Fatalf("a route via this node's own address: %v", res)
	}
	res = h.run(t, false, 1, "10.244.1.0/24 via 198.18.0.6")
	if res.GetError().GetReason() != "INVALID_ARGUMENT" || !strings.Contains(res.GetError().GetMessage(), "network.routes[0].cidr") {
		t.Fatalf("a route to its own pods: %v", res)
	}
	os.Remove(filepath.Join(h.root, "usr/lib/cni/portmap"))
	res = h.run(t, false, 1)
	if res.GetError().GetReason() != "CNI_PLUGINS_MISSING" || !strings.Contains(res.GetError().GetMessage(), "portmap") || !strings.Contains(res.GetError().GetHint(), "runtime task") ||
		!strings.Contains(res.GetError().GetMessage(), "/opt/cni/bin") {
		t.Fatalf("a missing plugin: %v", res)
	}
	if got := h.routes(t); len(got) != 0 || testcluster.Exists(h.root, network.ConfPath) {
		t.Fatalf("a refused task changed the host: routes %v", got)
	}
}

// A route to a pod CIDR that Deckhand did not make (an administrator's static route, another
// pod network's) is never replaced: ip route replace matches on the destination, whatever the
// protocol, so the task refuses and names the route instead.
func TestRunRefusesToReplaceARouteItDoesNotOwn(t *testing.T) {
	h := newHost(t)
	foreign := `[{"dst":"10.244.2.0/24","gateway":"10.250.0.99","dev":"eth0","protocol":"4"}]`
	os.MkdirAll(filepath.Join(h.root, "var/lib/deckhand-sim"), 0o755)
	os.WriteFile(filepath.Join(h.root, "var/lib/deckhand-sim/routes.json"), []byte(foreign), 0o644)
	for _, dry := range []bool{true, false} {
		res := h.run(t, dry, 1, "10.244.0.0/24 via 10.250.0.10", "10.244.2.0/24 via 10.250.0.12")
		if res.GetError().GetReason() != "ROUTE_CONFLICT" || !strings.Contains(res.GetError().GetMessage(), "10.244.2.0/24 via 10.250.0.99") ||
			!strings.Contains(res.GetError().GetHint(), "ip route del 10.244.2.0/24") {
			t.Fatalf("dry-run %v: a route Deckhand does not own, to a CIDR it would route: %v", dry, res)
		}
		if c := changes(res); strings.Contains(c, "route replace") {
			t.Fatalf("dry-run %v: the refused task changed routes:\n%s", dry, c)
		}
	}
	if got := h.routes(t); !slices.Equal(got, []string{"10.244.2.0/24 via 10.250.0.99 proto 4"}) {
		t.Fatalf("routes after the refusal: %v", got)
	}
}

// A reset's clean-up removes the owned routes, the NAT rule, the bridge and host-local's
// reservations, and nothing else; a second clean-up changes nothing.
func TestCleanUp(t *testing.T) {
	h := newHost(t)
	os.MkdirAll(filepath.Join(h.root, "var/lib/deckhand-sim"), 0o755)
	os.WriteFile(filepath.Join(h.root, "var/lib/deckhand-sim/routes.json"), []byte(`[{"dst":"192.168.7.0/24","gateway":"10.250.0.1","dev":"eth0","protocol":"4"}]`), 0o644)
	os.MkdirAll(filepath.Join(h.root, "var/lib/deckhand-sim/netfilter"), 0o755)
	os.WriteFile(filepath.Join(h.root, "var/lib/deckhand-sim/netfilter/iptables.rules"), []byte(hostRules), 0o644)
	if res := h.run(t, false, 3, "10.244.2.0/24 via 10.250.0.12"); res.GetState() != taskv1.TaskState_TASK_STATE_SUCCEEDED {
		t.Fatal(res)
	}
	if !strings.Contains(h.nat(t), masq) {
		t.Fatalf("no NAT rule before the clean-up:\n%s", h.nat(t))
	}
	for _, f := range []string{"var/lib/deckhand-sim/links/cni0", "var/lib/cni/networks/deckhand/10.244.1.2", "var/lib/cni/networks/deckhand/last_reserved_ip.0"} {
		os.MkdirAll(filepath.Dir(filepath.Join(h.root, f)), 0o755)
		os.WriteFile(filepath.Join(h.root, f), nil, 0o644)
	}
	r, err := tasks.NewRunner(t.TempDir(), h.root, map[string]tasks.Handler{"kubeadm_reset": func(ctx context.Context, _ *taskv1.Task, hh *hostpkg.Host, e *tasks.Emitter) (map[string]string, error) {
		return nil, network.CleanUp(ctx, hh, e)
	}}, slog.New(slog.NewTextHandler(io.Discard, nil)))
	if err != nil {
		t.Fatal(err)
	}
	clean := func(id string) *taskv1.TaskResult {
		done := make(chan *taskv1.TaskResult, 1)
		r.Start(context.Background(), &taskv1.Task{Id: id, Node: "node-1", Spec: &taskv1.TaskSpec{Kind: &taskv1.TaskSpec_KubeadmReset{KubeadmReset: &taskv1.KubeadmResetSpec{}}}},
			func(*taskv1.TaskEvent) {}, func(res *taskv1.TaskResult) { done <- res })
		return <-done
	}
	res := clean("clean-1")
	if res.GetState() != taskv1.TaskState_TASK_STATE_SUCCEEDED || !strings.Contains(changes(res), "ip link delete cni0") ||
		!strings.Contains(changes(res), "iptables -w -t nat -D POSTROUTING -s 10.244.0.0/16") {
		t.Fatalf("clean-up: %v\n%s", res, changes(res))
	}
	if got, want := h.nat(t), strings.Replace(hostRules, staleRule+"\n", "", 1); got != want {
		t.Fatalf("NAT rules after the clean-up:\n%s\nwant\n%s", got, want)
	}
	if got := h.routes(t); !slices.Equal(got, []string{"192.168.7.0/24 via 10.250.0.1 proto 4"}) {
		t.Fatalf("routes after the clean-up: %v", got)
	}
	for _, f := range []string{"var/lib/deckhand-sim/links/cni0", "var/lib/cni/networks/deckhand/10.244.1.2", "var/lib/deckhand/network.generation"} {
		if testcluster.Exists(h.root, f) {
			t.Errorf("%s is still there", f)
		}
	}
	if again := clean("clean-2"); again.GetState() != taskv1.TaskState_TASK_STATE_SUCCEEDED || len(again.GetChanges()) != 0 {
		t.Fatalf("a second clean-up: %v", again)
	}
}

// nat is the simulated host's iptables ruleset, as iptables-save prints it.
func (h *host) nat(t *testing.T) string {
	t.Helper()
	b, err := os.ReadFile(filepath.Join(h.root, "var/lib/deckhand-sim/netfilter/iptables.rules"))
	if err != nil && !os.IsNotExist(err) {
		t.Fatal(err)
	}
	return string(b)
}

const (
	// hostRules: the host's own filter rules, kube-proxy's NAT jump, an administrator's
	// masquerade for a LAN, and a Deckhand rule left from a cluster made with another
	// pod subnet.
	hostRules = `*filter
:INPUT DROP [0:0]
:FORWARD ACCEPT [0:0]
:OUTPUT ACCEPT [0:0]
-A INPUT -p tcp -m tcp --dport 22 -j ACCEPT
COMMIT
*nat
:PREROUTING ACCEPT [0:0]
:INPUT ACCEPT [0:0]
:OUTPUT ACCEPT [0:0]
:POSTROUTING ACCEPT [0:0]
:KUBE-POSTROUTING - [0:0]
-A POSTROUTING -m comment --comment "kubernetes postrouting rules" -j KUBE-POSTROUTING
-A POSTROUTING -s 10.200.0.0/16 ! -d 10.200.0.0/16 -m comment --comment "deckhand pod network" -j MASQUERADE
-A POSTROUTING -s 192.168.50.0/24 -o eth1 -j MASQUERADE
COMMIT
`
	masq      = `-A POSTROUTING -s 10.244.0.0/16 ! -d 10.244.0.0/16 -m comment --comment "deckhand pod network" -j MASQUERADE`
	masqAdd   = "iptables -w -t nat -A POSTROUTING -s 10.244.0.0/16 ! -d 10.244.0.0/16 -m comment --comment deckhand pod network -j MASQUERADE"
	staleDel  = "iptables -w -t nat -D POSTROUTING -s 10.200.0.0/16 ! -d 10.200.0.0/16 -m comment --comment deckhand pod network -j MASQUERADE"
	staleRule = `-A POSTROUTING -s 10.200.0.0/16 ! -d 10.200.0.0/16 -m comment --comment "deckhand pod network" -j MASQUERADE`
)

// Pods reach outside the cluster through exactly one Deckhand NAT rule, for the cluster's
// pod subnet: added once, a stale one (another pod subnet) replaced, every other rule of
// the host kept as it was, in its place; a dry-run says so and changes nothing.
func TestRunKeepsOneNATRule(t *testing.T) {
	h := newHost(t)
	os.MkdirAll(filepath.Join(h.root, "var/lib/deckhand-sim/netfilter"), 0o755)
	os.WriteFile(filepath.Join(h.root, "var/lib/deckhand-sim/netfilter/iptables.rules"), []byte(hostRules), 0o644)

	dry := h.run(t, true, 1)
	if c := changes(dry); dry.GetState() != taskv1.TaskState_TASK_STATE_SUCCEEDED || !strings.Contains(c, staleDel) || !strings.Contains(c, masqAdd) {
		t.Fatalf("dry-run: %v\n%s", dry, c)
	}
	if got := h.nat(t); got != hostRules {
		t.Fatalf("the dry-run changed the NAT rules:\n%s", got)
	}

	res := h.run(t, false, 1)
	if res.GetState() != taskv1.TaskState_TASK_STATE_SUCCEEDED {
		t.Fatalf("run: %v", res)
	}
	want := strings.Replace(hostRules, staleRule+"\n", "", 1)
	want = strings.Replace(want, "-j MASQUERADE\nCOMMIT\n", "-j MASQUERADE\n"+masq+"\nCOMMIT\n", 1)
	if got := h.nat(t); got != want {
		t.Fatalf("NAT rules after the run:\n%s\nwant\n%s", got, want)
	}
	if again := h.run(t, false, 1); again.GetState() != taskv1.TaskState_TASK_STATE_SUCCEEDED || len(again.GetChanges()) != 0 {
		t.Fatalf("a second run changed something: %v\n%s", again, changes(again))
	}

	// Two copies (an interrupted run, a hand-made one): one is removed, one kept.
	twice := strings.Replace(want, masq+"\n", masq+"\n"+masq+"\n", 1)
	os.WriteFile(filepath.Join(h.root, "var/lib/deckhand-sim/netfilter/iptables.rules"), []byte(twice), 0o644)
	res = h.run(t, false, 1)
	if c := changes(res); len(res.GetChanges()) != 1 || !strings.Contains(c, "iptables -w -t nat -D POSTROUTING -s 10.244.0.0/16") {
		t.Fatalf("two copies of the rule: %v\n%s", res, c)
	}
	if got := h.nat(t); got != want {
		t.Fatalf("NAT rules after removing a copy:\n%s\nwant\n%s", got, want)
	}
}

// A host without any NAT table yet (no iptables-save file): the task makes the rule.
func TestRunAddsTheNATRuleToAFreshHost(t *testing.T) {
	h := newHost(t)
	res := h.runSpec(t, false, &taskv1.NetworkSpec{Provider: "bridge", PodCidr: "172.20.3.0/24", ClusterPodSubnet: "172.20.0.0/16", Generation: 1})
	if c := changes(res); res.GetState() != taskv1.TaskState_TASK_STATE_SUCCEEDED ||
		!strings.Contains(c, "iptables -w -t nat -A POSTROUTING -s 172.20.0.0/16 ! -d 172.20.0.0/16 -m comment --comment deckhand pod network -j MASQUERADE") {
		t.Fatalf("run: %v\n%s", res, c)
	}
	if got := h.nat(t); !strings.Contains(got, "*nat\n") || !strings.Contains(got, `-A POSTROUTING -s 172.20.0.0/16 ! -d 172.20.0.0/16 -m comment --comment "deckhand pod network" -j MASQUERADE`) {
		t.Fatalf("NAT rules:\n%s", got)
	}
}

func TestParseNATRules(t *testing.T) {
	// As iptables 1.8 prints `iptables -t nat -S POSTROUTING`.
	out := "-P POSTROUTING ACCEPT\n" +
		"-A POSTROUTING -m comment --comment \"kubernetes postrouting rules\" -j KUBE-POSTROUTING\n" +
		"-A POSTROUTING -s 10.244.0.0/16 ! -d 10.244.0.0/16 -m comment --comment \"deckhand pod network\" -j MASQUERADE\n" +
		"-A POSTROUTING -m comment --comment \"not the deckhand pod network\" -j MASQUERADE\n" +
		"-A POSTROUTING -s 10.1.0.0/16 -m comment --comment \"say \\\"deckhand pod network\\\"\" -j MASQUERADE\n"
	rs, err := network.ParseNATRules([]byte(out))
	if err != nil || len(rs) != 1 || !slices.Equal(rs[0], network.MasqueradeRule(netip.MustParsePrefix("10.244.0.0/16"))) {
		t.Fatalf("%q %v", rs, err)
	}
	if args, err := network.SplitRule(`-A X -m comment --comment "a \"b\" \\c" -j Y`); err != nil || !slices.Equal(args, []string{"-A", "X", "-m", "comment", "--comment", `a "b" \c`, "-j", "Y"}) {
		t.Fatalf("quoted argument: %q %v", args, err)
	}
	if _, err := network.ParseNATRules([]byte("-A POSTROUTING -m comment --comment \"deckhand pod network -j MASQUERADE\n")); err == nil {
		t.Fatal("an unterminated quote parsed")
	}
}

// FuzzParseNATRules: iptables' output is outside input; the parser never panics, and every
// rule it returns carries Deckhand's comment.
func FuzzParseNATRules(f *testing.F) {
	f.Add([]byte("-P POSTROUTING ACCEPT\n-A POSTROUTING -s 10.244.0.0/16 ! -d 10.244.0.0/16 -m comment --comment \"deckhand pod network\" -j MASQUERADE\n"))
	f.Add([]byte(`-A POSTROUTING -m comment --comment "a \"b\"" -j X`))
	f.Fuzz(func(t *testing.T, out []byte) {
		rs, err := network.ParseNATRules(out)
		if err != nil {
			return
		}
		for _, r := range rs {
			if !slices.Contains(r, network.NATComment) {
				t.Fatalf("%q: %q is not Deckhand's", out, r)
			}
		}
	})
}

// FuzzParseRoutes: ip's output is outside input; the parser never panics, and a route it
// returns is a valid prefix.
func FuzzParseRoutes(f *testing.F) {
	f.Add([]byte(`[{"dst":"10.244.1.0/24","gateway":"10.250.99.2","dev":"v0","flags":[]},{"dst":"10.244.9.9","gateway":"10.250.99.3"}]`))
	f.Add([]byte(`[{"dst":"default","gateway":"192.0.2.1","dev":"eth0","flags":[]}]`))
	f.Add([]byte(`[]`))
	f.Fuzz(func(t *testing.T, out []byte) {
		rs, err := network.ParseRoutes(out)
		if err != nil {
			return
		}
		for _, r := range rs {
			if !r.CIDR.IsValid() {
				t.Fatalf("%q: invalid destination in %v", out, rs)
			}
		}
	})
}

// flannelSpec is node-1's network task under flannel: no routes (flannel routes), the
// CNI configuration from flannel's subnet.env.
func flannelSpec() *taskv1.NetworkSpec {
	return &taskv1.NetworkSpec{Provider: "flannel", PodCidr: "10.244.1.0/24", ClusterPodSubnet: "10.244.0.0/16"}
}

func writeSubnetEnv(t *testing.T, root, content string) {
	t.Helper()
	p := filepath.Join(root, "run/flannel/subnet.env")
	if err := os.MkdirAll(filepath.Dir(p), 0o755); err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(p, []byte(content), 0o644); err != nil {
		t.Fatal(err)
	}
}

// Under flannel the task waits for flanneld to write subnet.env on the node, configures the
// pods' network from it (its MTU, the VXLAN overhead taken off) and adds no routes.
func TestRunWithFlannelWaitsForItsSubnetFile(t *testing.T) {
	h := newHost(t)
	dry := h.runSpec(t, true, flannelSpec())
	if dry.GetState() != taskv1.TaskState_TASK_STATE_SUCCEEDED || testcluster.Exists(h.root, network.ConfPath) {
		t.Fatalf("a dry-run before flannel runs: %v (it must not wait, nor write)", dry)
	}

	h.n++
	done := make(chan *taskv1.TaskResult, 1)
	waiting := make(chan struct{}, 1)
	h.r.Start(context.Background(), &taskv1.Task{Id: "net-flannel", Node: "node-1", Spec: &taskv1.TaskSpec{Kind: &taskv1.TaskSpec_Network{Network: flannelSpec()}}},
		func(ev *taskv1.TaskEvent) {
			if strings.Contains(ev.GetLog().GetText(), "waiting up to") {
				select {
				case waiting <- struct{}{}:
				default:
				}
			}
		}, func(res *taskv1.TaskResult) { done <- res })
	select {
	case <-waiting:
	case res := <-done:
		t.Fatalf("the task did not wait for subnet.env: %v", res)
	case <-time.After(30 * time.Second):
		t.Fatal("the task never said it waits for flannel")
	}
	writeSubnetEnv(t, h.root, "FLANNEL_NETWORK=10.244.0.0/16\nFLANNEL_SUBNET=10.244.1.1/24\nFLANNEL_MTU=1450\nFLANNEL_IPMASQ=false\n")
	var res *taskv1.TaskResult
	select {
	case res = <-done:
	case <-time.After(30 * time.Second):
		t.Fatal("the task did not finish once subnet.env was there")
	}
	if res.GetState() != taskv1.TaskState_TASK_STATE_SUCCEEDED || res.GetOutputs()["pod_cidr"] != "10.244.1.0/24" {
		t.Fatalf("flannel network task: %v", res)
	}
	conf, _ := os.ReadFile(filepath.Join(h.root, network.ConfPath))
	if !strings.Contains(string(conf), `"mtu": 1450`) || !strings.Contains(string(conf), `"subnet": "10.244.1.0/24"`) {
		t.Errorf("conflist under flannel:\n%s", conf)
	}
	if got := h.routes(t); len(got) != 0 {
		t.Errorf("flannel routes, but the task added %v", got)
	}

	// An MTU above flannel's would send packets its VXLAN tunnel cannot carry.
	big := flannelSpec()
	big.Mtu = 1500
	if res = h.runSpec(t, false, big); res.GetError().GetReason() != "INVALID_ARGUMENT" || !strings.Contains(res.GetError().GetMessage(), "network.mtu: 1500") {
		t.Fatalf("an MTU above flannel's: %v", res)
	}

	// flanneld leased another subnet than the Node's pod CIDR: refused, nothing rewritten.
	writeSubnetEnv(t, h.root, "FLANNEL_SUBNET=10.244.7.1/24\nFLANNEL_MTU=1450\n")
	res = h.runSpec(t, false, flannelSpec())
	if res.GetError().GetReason() != "SUBNET_MISMATCH" || !strings.Contains(res.GetError().GetMessage(), "10.244.7.0/24") {
		t.Fatalf("a subnet.env of another subnet: %v", res)
	}
	if again, _ := os.ReadFile(filepath.Join(h.root, network.ConfPath)); string(again) != string(conf) {
		t.Errorf("a refused task rewrote the CNI configuration:\n%s", again)
	}
	writeSubnetEnv(t, h.root, "FLANNEL_SUBNET=10.244.1.1/24\n")
	if res = h.runSpec(t, false, flannelSpec()); res.GetError().GetReason() != "PROVIDER_NOT_RUNNING" || !strings.Contains(res.GetError().GetMessage(), "FLANNEL_MTU") {
		t.Fatalf("a subnet.env without an MTU: %v", res)
	}
	// Routes are flannel's: a spec with some is refused.
	if res = h.runSpec(t, false, flannelSpec(), "10.244.2.0/24 via 10.250.0.12"); res.GetError().GetReason() != "INVALID_ARGUMENT" || !strings.Contains(res.GetError().GetMessage(), "routes between nodes itself") {
		t.Fatalf("routes under flannel: %v", res)
	}
}

func TestParseSubnetEnv(t *testing.T) {
	env, err := network.ParseSubnetEnv([]byte("FLANNEL_NETWORK=10.244.0.0/16\nFLANNEL_SUBNET=10.244.3.1/24\nFLANNEL_MTU=8950\nFLANNEL_IPMASQ=false\n"))
	if err != nil || env.Subnet.String() != "10.244.3.1/24" || env.MTU != 8950 {
		t.Fatalf("ParseSubnetEnv = %+v, %v", env, err)
	}
	for _, bad := range []string{"", "FLANNEL_SUBNET=x\nFLANNEL_MTU=1450", "FLANNEL_SUBNET=fd00::1/64\nFLANNEL_MTU=1450", "FLANNEL_SUBNET=10.244.3.1/24\nFLANNEL_MTU=100"} {
		if _, err := network.ParseSubnetEnv([]byte(bad)); err == nil {
			t.Errorf("ParseSubnetEnv(%q) accepted it", bad)
		}
	}
}
