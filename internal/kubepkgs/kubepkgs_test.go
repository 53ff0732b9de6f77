package kubepkgs

import (
	"slices"
	"testing"
)

func TestComponents(t *testing.T) {
	for _, c := range []struct {
		in, want []string
		ok       bool
	}{
		{nil, Tools, true},
		{[]string{"kubeadm"}, []string{"kubeadm"}, true},
		{[]string{"kubectl", "kubelet"}, []string{"kubelet", "kubectl"}, true},
		{[]string{"kubelet", "kubelet"}, nil, false},
		{[]string{"kube-proxy"}, nil, false},
		{[]string{""}, nil, false},
	} {
		got, err := Components(c.in)
		if (err == nil) != c.ok || !slices.Equal(got, c.want) {
			t.Errorf("Components(%q) = %q, %v", c.in, got, err)
		}
	}
}
