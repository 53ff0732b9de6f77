package workflows

import (
	"fmt"
	"net/netip"
	"slices"

	"google.golang.org/protobuf/types/known/durationpb"

	"github.com/deckhandhq/deckhand/internal/lbconf"
	apiv1 "github.com/deckhandhq/deckhand/proto/deckhand/api/v1"
	storagev1 "github.com/deckhandhq/deckhand/proto/deckhand/storage/v1"
	taskv1 "github.com/deckhandhq/deckhand/proto/deckhand/task/v1"
)

// The API servers' load balancer (spec.loadBalancer). A node that runs a part of it (every
// control plane for a VIP, every node for a local proxy) gets a load-balancer step before
// its kubeadm init or join, so the cluster's endpoint answers there from the start; after a
// control plane joins or leaves, every such node gets an lb-update step whose list of API
// servers is resolved when it is dispatched, from the cluster record as it is then (the
// routes steps' way); a reset node's part is removed after its kubeadm reset.

// lbPriority is every control plane's VRRP priority: keepalived's nopreempt keeps the address
// where it is while that node is healthy, so no node needs to win back.
const lbPriority = 100

// lbOf is the cluster's load balancer (type external when it has none).
func lbOf(c *taskv1.ClusterSpec) lbconf.Settings {
	s, err := lbconf.ParseSettings("load_balancer", func(n string) string { return n }, c.GetLoadBalancer())
	if err != nil {
		return lbconf.Settings{Type: lbconf.External}
	}
	return s
}

// runsLB says whether a node of role runs a part of the cluster's load balancer.
func runsLB(c *taskv1.ClusterSpec, role taskv1.NodeRole) bool {
	switch lbOf(c).Type {
	case lbconf.VIP:
		return role == taskv1.NodeRole_NODE_ROLE_CONTROL_PLANE
	case lbconf.Local:
		return true
	}
	return false
}

// apiServer is a control plane's API server as a load balancer's backend.
func apiServer(addr string) string {
	a, err := netip.ParseAddr(addr)
	if err != nil {
		return ""
	}
	return netip.AddrPortFrom(a, lbconf.APIServerPort).String()
}

// loadBalancer adds node's part of the load balancer after deps, when it runs one; it
// returns the step's name, or "" when the node runs none. A control plane lists its own API
// server (it answers once kubeadm has started it), the recorded ones are added when the step
// is dispatched.
func (p *plan) loadBalancer(node, addr string, role taskv1.NodeRole, s settings, deps []string) (string, error) {
	if !runsLB(s.cluster, role) {
		return "", nil
	}
	lb := lbOf(s.cluster)
	if lb.Type == lbconf.VIP && addr == "" && lb.Interface == "" {
		return "", fmt.Errorf("%w: %s: its address is not known (no facts yet), and keepalived runs VRRP on the interface holding it: give the node's address (spec.nodes[].address, --address) or spec.loadBalancer.interface", ErrInvalid, node)
	}
	spec := &taskv1.LoadBalancerSpec{Settings: s.cluster.GetLoadBalancer(), Priority: lbPriority, NodeAddress: addr}
	if role == taskv1.NodeRole_NODE_ROLE_CONTROL_PLANE && addr != "" {
		spec.Backends = []string{apiServer(addr)}
	}
	what := "haproxy on 127.0.0.1:" + fmt.Sprint(lb.Port) + " to every API server"
	if lb.Type == lbconf.VIP {
		what = "haproxy and keepalived holding " + lb.Endpoint() + " among the control planes"
	}
	st := p.add(node, "load-balancer", "the API servers' load balancer: "+what, deps, specOf(spec))
	st.Inputs = []*storagev1.StepInputRecord{{Field: "backends"}}
	return st.Name, nil
}

// peerLB adds, after deps, an lb-update step on each of nodes (name → address): its list of
// API servers is the cluster's control planes when it is dispatched. Like a routes step it
// takes no lock and its failure does not fail the workflow: the next join or reset updates
// that node again.
func (p *plan) peerLB(nodes map[string]string, s settings, deps []string) {
	names := make([]string, 0, len(nodes))
	for n := range nodes {
		names = append(names, n)
	}
	slices.Sort(names)
	if len(names) > 0 {
		deps = p.allEnded(deps)
	}
	for _, n := range names {
		st := p.add(n, "lb-update", "update the load balancer's list of API servers", deps,
			specOf(&taskv1.LoadBalancerSpec{Settings: s.cluster.GetLoadBalancer(), Priority: lbPriority, NodeAddress: nodes[n]}))
		st.Inputs = []*storagev1.StepInputRecord{{Field: "backends"}}
		st.Lane = ""
		// Finally: once the joins it follows ended, also when one of them failed, so the
		// control planes that did join are in every list.
		st.ContinueOnFailure, st.MaxAttempts, st.Finally = true, 2, true
		st.Timeout = durationpb.New(peerRoutesTimeout)
	}
}

// lbNodes are the nodes of cl (and those of extra: joined by this workflow, name → role and
// address) that run a part of its load balancer, but not skip.
func lbNodes(cl *apiv1.Cluster, s settings, extra map[string]*apiv1.ClusterNode, skip string) map[string]string {
	out := map[string]string{}
	for _, n := range cl.GetNodes() {
		if n.GetName() != skip && runsLB(s.cluster, n.GetRole()) {
			out[n.GetName()] = n.GetAddress()
		}
	}
	for name, n := range extra {
		if name != skip && runsLB(s.cluster, n.GetRole()) {
			out[name] = n.GetAddress()
		}
	}
	return out
}

// removeLB adds the removal of node's part of the load balancer after its kubeadm reset (a
// node whose reset failed is still in the cluster and keeps it).
func (p *plan) removeLB(node string, role taskv1.NodeRole, s settings, after string) {
	if !runsLB(s.cluster, role) {
		return
	}
	st := p.add(node, "lb-remove", "stop the load balancer here and put back the packages' configuration", []string{after},
		specOf(&taskv1.LoadBalancerSpec{Settings: s.cluster.GetLoadBalancer(), Remove: true}))
	st.ContinueOnFailure = true
}

// backendsFor is a load balancer's list of API servers: the step's own (a joining control
// plane's) and every control plane of the recorded cluster with a known address.
func backendsFor(cl *apiv1.Cluster, own []string) []string {
	out := slices.Clone(own)
	for _, n := range cl.GetNodes() {
		if n.GetRole() != taskv1.NodeRole_NODE_ROLE_CONTROL_PLANE {
			continue
		}
		if b := apiServer(n.GetAddress()); b != "" && !slices.Contains(out, b) {
			out = append(out, b)
		}
	}
	slices.Sort(out)
	return out
}

// plannedBackends are the API servers of the control planes workflow l installs a load
// balancer on (each step's own, in its template): in a dry-run, where none is recorded, what
// a node's load balancer would forward to.
func plannedBackends(l *loaded) []string {
	var out []string
	for _, s := range l.wf.GetSteps() {
		for _, b := range s.GetTask().GetLoadBalancer().GetBackends() {
			if !slices.Contains(out, b) {
				out = append(out, b)
			}
		}
	}
	slices.Sort(out)
	return out
}

func specOf(lb *taskv1.LoadBalancerSpec) *taskv1.TaskSpec { return spec(lb) }
