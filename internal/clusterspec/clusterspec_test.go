package clusterspec

import (
	"errors"
	"strings"
	"testing"
)

func doc(extra string) []byte {
	return []byte("apiVersion: deckhand.dev/v1alpha1\nkind: Cluster\nmetadata:\n  name: lab\nspec:\n  kubernetesVersion: v1.33.13\n" + extra +
		"  nodes:\n  - {name: node-1, role: control-plane}\n")
}

// kube-proxy's settings reach the cluster spec kubeadm init is given; a host where
// nf_conntrack_max is read-only needs conntrackMaxPerCore 0, which is not the same as absent.
func TestKubeProxySettings(t *testing.T) {
	c, err := Parse(doc("  kubeProxy: {mode: iptables, conntrackMaxPerCore: 0}\n"))
	if err != nil {
		t.Fatal(err)
	}
	kp := c.Spec.GetKubeProxy()
	if kp.GetMode() != "iptables" || kp.ConntrackMaxPerCore == nil || kp.GetConntrackMaxPerCore() != 0 {
		t.Fatalf("kube_proxy = %v", kp)
	}
	c, err = Parse(doc("  kubeProxy: {mode: nftables}\n"))
	if err != nil || c.Spec.GetKubeProxy().ConntrackMaxPerCore != nil || c.Spec.GetKubeProxy().GetMode() != "nftables" {
		t.Fatalf("mode only: %v %v", c.Spec.GetKubeProxy(), err)
	}
	if c, err = Parse(doc("")); err != nil || c.Spec.GetKubeProxy() != nil {
		t.Fatalf("no kubeProxy: %v %v", c.Spec.GetKubeProxy(), err)
	}

	for extra, field := range map[string]string{
		"  kubeProxy: {mode: userspace}\n":           "spec.kubeProxy.mode",
		"  kubeProxy: {conntrackMaxPerCore: -1}\n":   "spec.kubeProxy.conntrackMaxPerCore",
		"  kubeProxy: {conntrackMax: 0}\n":           "conntrackMax",
		"  kubeProxy: {conntrackMaxPerCore: lots}\n": "conntrackMaxPerCore",
	} {
		_, err := Parse(doc(extra))
		if !errors.Is(err, ErrInvalid) || !strings.Contains(err.Error(), field) {
			t.Errorf("%q: %v, want an error naming %s", extra, err, field)
		}
	}
}

// A node's address in the document reaches the plan as given; a bad one is refused naming
// spec.nodes[i].address.
func TestNodeAddress(t *testing.T) {
	nodes := func(extra string) []byte {
		return []byte("apiVersion: deckhand.dev/v1alpha1\nkind: Cluster\nspec:\n  kubernetesVersion: v1.33.13\n  nodes:\n" +
			"  - {name: node-1, role: control-plane, address: 192.168.56.11}\n  - {name: node-2, role: worker}\n" + extra)
	}
	c, err := Parse(nodes(""))
	if err != nil {
		t.Fatal(err)
	}
	if c.Nodes[0].Address != "192.168.56.11" || c.Nodes[1].Address != "" {
		t.Fatalf("nodes = %+v", c.Nodes)
	}
	for extra, want := range map[string]string{
		"  - {name: node-3, role: worker, address: node-3.lan}\n":        "spec.nodes[2].address: \"node-3.lan\" is not an IP address",
		"  - {name: node-3, role: worker, address: 127.0.0.1}\n":         "spec.nodes[2].address: 127.0.0.1 is not a unicast address",
		"  - {name: node-3, role: worker, address: 192.168.56.0/24}\n":   "spec.nodes[2].address",
		"  - {name: node-3, role: worker, address: 192.168.56.11}\n":     "spec.nodes[2].address: 192.168.56.11 is node-1's address too",
		"  - {name: node-3, role: worker, address: '::ffff:10.0.0.1'}\n": "spec.nodes[2].address",
		"  - {name: node-3, role: worker, address: [192.168.56.13]}\n":   "address",
		"  - {name: node-3, role: worker, addresss: 192.168.56.13}\n":    "addresss",
		"  - {name: node-3, role: worker, address: 'fe80::1%eth0'}\n":    "spec.nodes[2].address",
		"  - {name: node-3, role: worker, address: 'fd00::13'}\n" + "":   "",
	} {
		_, err := Parse(nodes(extra))
		if want == "" {
			if err != nil {
				t.Errorf("%q: %v", extra, err)
			}
			continue
		}
		if !errors.Is(err, ErrInvalid) || !strings.Contains(err.Error(), want) {
			t.Errorf("%q: %v, want an error with %q", extra, err, want)
		}
	}
}
