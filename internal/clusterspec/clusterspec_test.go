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
