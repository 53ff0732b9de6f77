package workflows

import (
	"fmt"
	"slices"
	"strings"

	apiv1 "github.com/deckhandhq/deckhand/proto/deckhand/api/v1"
	taskv1 "github.com/deckhandhq/deckhand/proto/deckhand/task/v1"
)

// decideCertsRenew picks the control planes a certificate renewal goes through, one after
// another in the cluster record's order: every control plane (cps), or those asked for,
// each of which must be one.
func decideCertsRenew(cps, asked []string) ([]string, error) {
	if len(cps) == 0 {
		return nil, fmt.Errorf("the cluster records no control plane: nothing holds kubeadm certificates")
	}
	if len(asked) == 0 {
		return slices.Clone(cps), nil
	}
	for i, n := range asked {
		if !slices.Contains(cps, n) {
			return nil, fmt.Errorf("certs_renew.nodes[%d]: %q is not a control plane of the cluster (its control planes: %s); a worker's kubelet renews its own certificate", i, n, strings.Join(cps, ", "))
		}
		if slices.Index(asked, n) != i {
			return nil, fmt.Errorf("certs_renew.nodes[%d]: %q is given twice", i, n)
		}
	}
	var out []string
	for _, n := range cps {
		if slices.Contains(asked, n) {
			out = append(out, n)
		}
	}
	return out, nil
}

// certsRenewSteps: a health check of the control planes and etcd, then each control plane
// renewed in turn (kubeadm certs renew all, its static pods restarted one by one, its API
// server ready again) while the others serve.
func (p *plan) certsRenewSteps(nodes, cps []string) {
	h := p.add(nodes[0], "health", "check the API server, that every control plane is Ready and every etcd member healthy", nil,
		spec(&taskv1.ClusterHealthSpec{Nodes: cps}))
	h.Node, h.AnyControlPlane, h.SelfAllowed, h.MaxAttempts = "", true, true, 1
	prev := h.Name
	for _, n := range nodes {
		s := p.add(n, "renew", "kubeadm certs renew all, then restart the static pods one at a time", []string{prev}, spec(&taskv1.CertsRenewSpec{}))
		prev = s.Name
		p.hold(n)
		p.changes = append(p.changes, fmt.Sprintf("renew the certificates of control plane %s (kubeadm certs renew all; kube-apiserver, kube-controller-manager, kube-scheduler restarted)", n))
	}
}

// controlPlanes lists the cluster record's control planes, in its order.
func controlPlanes(cl *apiv1.Cluster) []string {
	var out []string
	for _, n := range cl.GetNodes() {
		if n.GetRole() == taskv1.NodeRole_NODE_ROLE_CONTROL_PLANE {
			out = append(out, n.GetName())
		}
	}
	return out
}
