package kubeadm

import (
	"context"
	"net/netip"
	"os"
	"os/exec"
	"path/filepath"
	"slices"
	"testing"

	"github.com/deckhandhq/deckhand/agent/host"
)

func TestPodNetworkLink(t *testing.T) {
	addr := []netip.Addr{netip.MustParseAddr("10.244.1.0")}
	cases := []struct {
		l    link
		want bool
	}{
		{link{Name: "cni0", Kind: "bridge"}, true},
		{link{Name: "flannel.1", Kind: "vxlan"}, true},
		{link{Name: "kube-ipvs0", Kind: "dummy"}, true},
		{link{Name: "vxlan.calico", Kind: "vxlan"}, true},
		{link{Name: "cali1a2b3c4d5e6", Kind: "veth"}, true},
		{link{Name: "cilium_host", Kind: "veth"}, true},
		{link{Name: "cilium_vxlan", Kind: "vxlan"}, true},
		{link{Name: "tunl0", Kind: "ipip", Addrs: addr}, true},
		// The ipip module's tunl0 without Calico's address: nothing to clean.
		{link{Name: "tunl0", Kind: "ipip"}, false},
		// A tunl0 that is not ipip's is someone else's.
		{link{Name: "tunl0", Kind: "gre", Addrs: addr}, false},
		{link{Name: "eth0"}, false},
		{link{Name: "lo"}, false},
		{link{Name: "docker0", Kind: "bridge"}, false},
		{link{Name: "cni1", Kind: "bridge"}, false},
		{link{Name: "flannel.2", Kind: "vxlan"}, false},
		{link{Name: "vxlan.other", Kind: "vxlan"}, false},
		{link{Name: "kube-bridge", Kind: "bridge"}, false},
		{link{Name: "veth1234", Kind: "veth"}, false},
	}
	for _, c := range cases {
		if got := podNetworkLink(c.l); got != c.want {
			t.Errorf("podNetworkLink(%+v) = %v, want %v", c.l, got, c.want)
		}
	}
}

func TestClusterRule(t *testing.T) {
	cases := []struct {
		line string
		want bool
	}{
		{":KUBE-SERVICES - [0:0]", true},
		{"-A KUBE-SERVICES -d 10.96.0.1/32 -p tcp -j KUBE-SVC-NPX46M4PTMTKRN6Y", true},
		{`-A PREROUTING -m comment --comment "kubernetes service portals" -j KUBE-SERVICES`, true},
		{":CNI-HOSTPORT-DNAT - [0:0]", true},
		{"-A CNI-DN-1a2b3c -p tcp -m tcp --dport 8080 -j DNAT --to-destination 10.244.1.5:80", true},
		{"-A PREROUTING -m addrtype --dst-type LOCAL -j CNI-HOSTPORT-DNAT", true},
		{":FLANNEL-POSTRTG - [0:0]", true},
		{`-A POSTROUTING -m comment --comment "flanneld masq" -j FLANNEL-POSTRTG`, true},
		{"-A FORWARD --jump FLANNEL-FWD", true},
		{":cali-FORWARD - [0:0]", true},
		{`-A FORWARD -m comment --comment "cali:wUHhoiAYhphO9Mso" -j cali-FORWARD`, true},
		{"-A cali-from-wl-dispatch -i cali1234 -g cali-fw-cali1234", true},
		{"-A cali-x --goto cali-y", true},
		{":CILIUM_INPUT - [0:0]", true},
		{`-A INPUT -m comment --comment "cilium-feeder: CILIUM_INPUT" -j CILIUM_INPUT`, true},
		// The host's own: policies, rules, chains, masquerades.
		{":INPUT DROP [0:0]", false},
		{"-A INPUT -p tcp -m tcp --dport 22 -j ACCEPT", false},
		{":DOCKER - [0:0]", false},
		{"-A FORWARD -j DOCKER", false},
		{"-A POSTROUTING -s 192.168.50.0/24 -o eth1 -j MASQUERADE", false},
		{`-A POSTROUTING -m comment --comment "deckhand pod network" -j MASQUERADE`, false},
		{":CALICO-LOOKALIKE - [0:0]", false},
		{":KUBEX - [0:0]", false},
		{"*filter", false},
		{"COMMIT", false},
	}
	for _, c := range cases {
		if got := clusterRule(c.line); got != c.want {
			t.Errorf("clusterRule(%q) = %v, want %v", c.line, got, c.want)
		}
	}
	rules := "*filter\n:INPUT DROP [0:0]\n:FORWARD ACCEPT [0:0]\n:FLANNEL-FWD - [0:0]\n:cali-FORWARD - [0:0]\n-A INPUT -p tcp --dport 22 -j ACCEPT\n-A FORWARD -j FLANNEL-FWD\n-A FORWARD -j cali-FORWARD\n-A FLANNEL-FWD -s 10.244.0.0/16 -j ACCEPT\nCOMMIT\n"
	kept, removed, chains := withoutCluster(rules)
	if want := "*filter\n:INPUT DROP [0:0]\n:FORWARD ACCEPT [0:0]\n-A INPUT -p tcp --dport 22 -j ACCEPT\nCOMMIT\n"; kept != want || removed != 5 || !slices.Equal(chains, []string{"FLANNEL-FWD", "cali-FORWARD"}) {
		t.Fatalf("withoutCluster: %d removed, chains %q, kept:\n%s", removed, chains, kept)
	}
}

func TestNFTTables(t *testing.T) {
	out := "table inet filter\ntable ip kube-proxy\ntable ip nat\ntable ip6 kube-proxy\ntable inet kube-proxy\n"
	if got := nftTables(out, kubeProxyNFTables); !slices.Equal(got, []string{"ip kube-proxy", "ip6 kube-proxy"}) {
		t.Fatalf("kube-proxy's tables: %q", got)
	}
	if got := nftTables("table inet filter\n", kubeProxyNFTables); len(got) != 0 {
		t.Fatalf("a host without kube-proxy's tables: %q", got)
	}
}

// What a reset could not remove is named in its leftovers: the links, the directories,
// kube-proxy's nftables tables; the host's own links and tables are not named.
func TestPodNetworkLeftovers(t *testing.T) {
	root := t.TempDir()
	bin := filepath.Join(root, "usr", "bin")
	if out, err := exec.Command("go", "build", "-o", filepath.Join(bin, "ip"), "github.com/deckhandhq/deckhand/internal/testkit/sim/hostsim").CombinedOutput(); err != nil {
		t.Fatalf("build the host simulation: %v\n%s", err, out)
	}
	sim, err := os.ReadFile(filepath.Join(bin, "ip"))
	if err != nil {
		t.Fatal(err)
	}
	seed := map[string]string{
		"usr/bin/nft": string(sim), "run/flannel/subnet.env": "",
		"var/lib/deckhand-sim/nft-tables":          "table inet filter\ntable ip kube-proxy\n",
		"var/lib/deckhand-sim/links/flannel.1":     "kind vxlan\n",
		"var/lib/deckhand-sim/links/tunl0":         "kind ipip\n10.244.1.193/32\n",
		"var/lib/deckhand-sim/links/docker0":       "kind bridge\n172.17.0.1/16\n",
		"var/lib/deckhand-sim/links/cilium_net":    "kind veth\n",
		"var/lib/deckhand-sim/links/vxlan.calicoX": "kind vxlan\n",
	}
	for f, c := range seed {
		os.MkdirAll(filepath.Dir(filepath.Join(root, f)), 0o755)
		os.WriteFile(filepath.Join(root, f), []byte(c), 0o755)
	}
	left, err := podNetworkLeftovers(context.Background(), &host.Host{Root: root})
	if err != nil {
		t.Fatal(err)
	}
	want := []string{"link cilium_net", "link flannel.1", "link tunl0", "/run/flannel", "nftables table ip kube-proxy"}
	if !slices.Equal(left, want) {
		t.Fatalf("leftovers %q, want %q", left, want)
	}
}
