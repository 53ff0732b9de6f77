// Package kubepkgs names the Kubernetes packages Deckhand installs on a node (kubelet,
// kubeadm, kubectl), for the agent's packages task and the API's check of it.
package kubepkgs

import (
	"fmt"
	"slices"
)

// Tools are the packages, in the order they are installed and reported.
var Tools = []string{"kubelet", "kubeadm", "kubectl"}

// Components checks the components a packages task names: kubelet, kubeadm and kubectl,
// each at most once; none is all three. They come back in Tools' order.
func Components(names []string) ([]string, error) {
	if len(names) == 0 {
		return slices.Clone(Tools), nil
	}
	var out []string
	for i, n := range names {
		if !slices.Contains(Tools, n) || slices.Contains(out, n) {
			return nil, fmt.Errorf("components[%d] %q: give each of kubelet, kubeadm and kubectl at most once", i, n)
		}
		out = append(out, n)
	}
	slices.SortFunc(out, func(a, b string) int { return slices.Index(Tools, a) - slices.Index(Tools, b) })
	return out, nil
}
