package workflows

import (
	"errors"
	"fmt"
	"slices"
	"strings"
	"testing"

	"google.golang.org/protobuf/proto"

	"github.com/deckhandhq/deckhand/internal/lbconf"
	apiv1 "github.com/deckhandhq/deckhand/proto/deckhand/api/v1"
	storagev1 "github.com/deckhandhq/deckhand/proto/deckhand/storage/v1"
	taskv1 "github.com/deckhandhq/deckhand/proto/deckhand/task/v1"
)

func lbDoc(lb string, cps []string, workers ...string) []byte {
	var b strings.Builder
	b.WriteString("apiVersion: deckhand.dev/v1alpha1\nkind: Cluster\nmetadata:\n  name: t\nspec:\n  kubernetesVersion: v1.33.13\n  loadBalancer: " + lb + "\n  nodes:\n")
	for i, n := range cps {
		fmt.Fprintf(&b, "  - {name: %s, role: control-plane, address: 10.250.0.%d}\n", n, 10+i)
	}
	for i, n := range workers {
		fmt.Fprintf(&b, "  - {name: %s, role: worker, address: 10.250.0.%d}\n", n, 20+i)
	}
	return []byte(b.String())
}

func lbCluster(lb *taskv1.LoadBalancerSettings, cps int, nodes ...string) *apiv1.Cluster {
	cl := testCluster(nodes...)
	cl.Spec.LoadBalancer = lb
	cl.Spec.ControlPlaneEndpoint = lbOf(cl.Spec).Endpoint()
	for i := range cps {
		cl.Nodes[i].Role = taskv1.NodeRole_NODE_ROLE_CONTROL_PLANE
	}
	return cl
}

// stepOrder fails unless each of the names is a step, each after the one before it in
// the DAG (a path of dependencies leads from it back to the one before).
func after(t *testing.T, p *plan, names ...string) {
	t.Helper()
	var reaches func(from, to string) bool
	reaches = func(from, to string) bool {
		s := p.step(from)
		if s == nil {
			return false
		}
		for _, d := range s.GetDependsOn() {
			if d == to || reaches(d, to) {
				return true
			}
		}
		return false
	}
	for i, n := range names {
		if p.step(n) == nil {
			t.Fatalf("no step %s; steps: %v", n, stepNames(p))
		}
		if i > 0 && !reaches(n, names[i-1]) {
			t.Errorf("%s does not wait for %s", n, names[i-1])
		}
	}
}

func stepNames(p *plan) []string {
	var out []string
	for _, s := range p.steps {
		out = append(out, s.GetName())
	}
	return out
}

func withSuffix(p *plan, suffix string) []string {
	var out []string
	for _, s := range p.steps {
		if strings.HasSuffix(s.GetName(), suffix) {
			out = append(out, s.GetName())
		}
	}
	slices.Sort(out)
	return out
}

// A VIP cluster: every control plane runs haproxy and keepalived before its kubeadm init or
// join, workers do not; once all joined, every control plane forwards to all of them.
func TestApplyWithAVirtualIP(t *testing.T) {
	p, err := build(&apiv1.WorkflowSpec{Kind: &apiv1.WorkflowSpec_Apply{Apply: &apiv1.ApplyWorkflow{
		ClusterYaml: lbDoc("{type: vip, address: 10.250.0.100}", []string{"cp-1", "cp-2", "cp-3"}, "w-1")}}}, nil, enrolledSet("cp-1", "cp-2", "cp-3", "w-1"))
	if err != nil {
		t.Fatal(err)
	}
	after(t, p, "cp-1/runtime", "cp-1/load-balancer", "cp-1/init")
	after(t, p, "cp-2/runtime", "cp-2/load-balancer", "cp-2/token", "cp-2/join")
	after(t, p, "cp-1/record", "cp-3/token")
	if got := withSuffix(p, "/load-balancer"); !slices.Equal(got, []string{"cp-1/load-balancer", "cp-2/load-balancer", "cp-3/load-balancer"}) {
		t.Errorf("load-balancer steps %v: want one per control plane, none on the worker", got)
	}
	if got := withSuffix(p, "/lb-update"); !slices.Equal(got, []string{"cp-1/lb-update", "cp-2/lb-update", "cp-3/lb-update"}) {
		t.Errorf("lb-update steps %v, want every control plane's", got)
	}
	for _, rec := range []string{"cp-3/record", "w-1/record"} {
		after(t, p, rec, "cp-1/lb-update")
	}
	lb := p.step("cp-2/load-balancer")
	if b := lb.GetTask().GetLoadBalancer().GetBackends(); !slices.Equal(b, []string{"10.250.0.11:6443"}) {
		t.Errorf("cp-2's own load balancer starts with %v, want its own API server (the recorded ones are added when it runs)", b)
	}
	if in := lb.GetInputs(); len(in) != 1 || in[0].GetField() != "backends" || in[0].GetStep() != "" {
		t.Errorf("inputs %v: the backends are resolved from the cluster when dispatched", in)
	}
	if ep := p.step("cp-1/init").GetTask().GetKubeadmInit().GetCluster().GetControlPlaneEndpoint(); ep != "10.250.0.100:8443" {
		t.Errorf("kubeadm init's endpoint %q, want the VIP", ep)
	}
	if pp := p.step("cp-2/preflight").GetTask().GetPreflight().GetExtraPorts(); !slices.Equal(pp, []uint32{8443}) {
		t.Errorf("a control plane's preflight opens %v, want the load balancer's port", pp)
	}
	if pp := p.step("w-1/preflight").GetTask().GetPreflight().GetExtraPorts(); len(pp) != 0 {
		t.Errorf("a worker's preflight opens %v", pp)
	}
	if !p.step("cp-2/preflight").GetTask().GetPreflight().GetAllowVrrp() || p.step("w-1/preflight").GetTask().GetPreflight().GetAllowVrrp() {
		t.Error("VRRP is to be let in on the control planes (keepalived), and only there")
	}
}

// A local proxy: every node runs haproxy before its init or join, and every node's list
// follows the control planes.
func TestApplyWithLocalProxies(t *testing.T) {
	p, err := build(&apiv1.WorkflowSpec{Kind: &apiv1.WorkflowSpec_Apply{Apply: &apiv1.ApplyWorkflow{
		ClusterYaml: lbDoc("{type: local}", []string{"cp-1", "cp-2"}, "w-1")}}}, nil, enrolledSet("cp-1", "cp-2", "w-1"))
	if err != nil {
		t.Fatal(err)
	}
	after(t, p, "w-1/runtime", "w-1/load-balancer", "w-1/token", "w-1/join")
	// A worker's proxy forwards to the control planes recorded when it starts: the init's
	// (a proxy started beside the init had nothing to forward to, and the join hung).
	after(t, p, "cp-1/record", "w-1/load-balancer")
	after(t, p, "cp-1/record", "cp-2/load-balancer")
	if got := withSuffix(p, "/lb-update"); !slices.Equal(got, []string{"cp-1/lb-update", "cp-2/lb-update", "w-1/lb-update"}) {
		t.Errorf("lb-update steps %v, want every node's", got)
	}
	if b := p.step("w-1/load-balancer").GetTask().GetLoadBalancer().GetBackends(); len(b) != 0 {
		t.Errorf("a worker's proxy starts with %v: it has no API server of its own", b)
	}
}

// Joining and resetting control planes of a running VIP cluster keeps every other control
// plane's list; a worker's join or reset touches no load balancer.
func TestJoinAndResetKeepTheLoadBalancers(t *testing.T) {
	vip := &taskv1.LoadBalancerSettings{Type: "vip", Address: "10.250.0.100"}
	cl := lbCluster(vip, 2, "cp-1", "cp-2", "w-1")
	all := enrolledSet("cp-1", "cp-2", "cp-3", "w-1", "w-2")
	for _, c := range []struct {
		name                string
		spec                *apiv1.WorkflowSpec
		lb, updates, remove []string
	}{
		{"join a control plane", &apiv1.WorkflowSpec{Kind: &apiv1.WorkflowSpec_Join{Join: &apiv1.JoinWorkflow{Node: "cp-3", ControlPlane: true, Address: "10.250.0.13"}}},
			[]string{"cp-3/load-balancer"}, []string{"cp-1/lb-update", "cp-2/lb-update"}, nil},
		{"join a worker", &apiv1.WorkflowSpec{Kind: &apiv1.WorkflowSpec_Join{Join: &apiv1.JoinWorkflow{Node: "w-2", Address: "10.250.0.22"}}}, nil, nil, nil},
		{"reset a control plane", &apiv1.WorkflowSpec{Kind: &apiv1.WorkflowSpec_Reset_{Reset_: &apiv1.ResetWorkflow{Node: "cp-2"}}},
			nil, []string{"cp-1/lb-update"}, []string{"cp-2/lb-remove"}},
		{"reset a worker", &apiv1.WorkflowSpec{Kind: &apiv1.WorkflowSpec_Reset_{Reset_: &apiv1.ResetWorkflow{Node: "w-1"}}}, nil, nil, nil},
	} {
		t.Run(c.name, func(t *testing.T) {
			p, err := build(c.spec, cl, all)
			if err != nil {
				t.Fatal(err)
			}
			for suffix, want := range map[string][]string{"/load-balancer": c.lb, "/lb-update": c.updates, "/lb-remove": c.remove} {
				if got := withSuffix(p, suffix); !slices.Equal(got, want) {
					t.Errorf("%s steps %v, want %v", suffix, got, want)
				}
			}
			if c.remove != nil {
				after(t, p, "cp-2/reset", "cp-2/lb-remove")
				after(t, p, "cp-2/forget", "cp-1/lb-update")
			}
			if c.updates != nil && c.lb != nil {
				after(t, p, "cp-3/record", "cp-1/lb-update")
			}
		})
	}
}

// A VIP control plane whose address is not known yet (no facts) cannot pick VRRP's
// interface: the plan says which node and what to give.
func TestVIPNeedsTheNodesAddress(t *testing.T) {
	doc := []byte("apiVersion: deckhand.dev/v1alpha1\nkind: Cluster\nmetadata:\n  name: t\nspec:\n  kubernetesVersion: v1.33.13\n  loadBalancer: {type: vip, address: 10.250.0.100}\n  nodes:\n  - {name: cp-1, role: control-plane}\n")
	_, err := build(&apiv1.WorkflowSpec{Kind: &apiv1.WorkflowSpec_Apply{Apply: &apiv1.ApplyWorkflow{ClusterYaml: doc}}}, nil, enrolledSet("cp-1"))
	if !errors.Is(err, ErrInvalid) || !strings.Contains(err.Error(), "cp-1") || !strings.Contains(err.Error(), "spec.loadBalancer.interface") {
		t.Fatalf("error %v, want one naming cp-1 and how to fix it", err)
	}
}

// A load balancer's list is resolved when its step runs: its own API server and every
// recorded control plane's, sorted, with the store revision as its generation.
func TestBackendsAreResolvedFromTheCluster(t *testing.T) {
	cl := lbCluster(&taskv1.LoadBalancerSettings{Type: "local"}, 2, "cp-1", "cp-2", "w-1")
	step := &storagev1.StepRecord{Name: "cp-3/load-balancer", Node: "cp-3", Lane: "cp-3", Task: specOf(&taskv1.LoadBalancerSpec{Backends: []string{"10.250.0.13:6443"}}),
		Inputs: []*storagev1.StepInputRecord{{Field: "backends"}}}
	l := wfOf(0, step)
	t0spec := proto.Clone(step.GetTask())
	got, err := renderSpec(l, step, cl, 77, nil, false, nil)
	if err != nil {
		t.Fatal(err)
	}
	lb := got.GetLoadBalancer()
	if want := []string{"10.250.0.10:6443", "10.250.0.11:6443", "10.250.0.13:6443"}; !slices.Equal(lb.GetBackends(), want) || lb.GetGeneration() != 77 {
		t.Errorf("backends %v generation %d, want %v at 77", lb.GetBackends(), lb.GetGeneration(), want)
	}
	if !proto.Equal(step.GetTask(), t0spec) {
		t.Error("rendering changed the step's template")
	}
	upd := &storagev1.StepRecord{Name: "w-1/lb-update", Node: "w-1", Task: specOf(&taskv1.LoadBalancerSpec{}), Inputs: []*storagev1.StepInputRecord{{Field: "backends"}}}
	noAddr := lbCluster(&taskv1.LoadBalancerSettings{Type: "local"}, 1, "cp-1", "w-1")
	noAddr.Nodes[0].Address = ""
	var skip *skipError
	if _, err := renderSpec(wfOf(0, upd), upd, noAddr, 5, nil, false, nil); !errors.As(err, &skip) {
		t.Errorf("an update with no control plane to forward to: %v, want the step skipped", err)
	}
	// A peer's update on a node whose join failed: not in the cluster, nothing installed.
	gone := &storagev1.StepRecord{Name: "w-9/lb-update", Node: "w-9", Task: specOf(&taskv1.LoadBalancerSpec{}), Inputs: []*storagev1.StepInputRecord{{Field: "backends"}}}
	if _, err := renderSpec(wfOf(0, gone), gone, cl, 5, nil, false, nil); !errors.As(err, &skip) {
		t.Errorf("an update on a node not in the cluster: %v, want the step skipped", err)
	}
	own := &storagev1.StepRecord{Name: "w-1/load-balancer", Node: "w-1", Lane: "w-1", Task: specOf(&taskv1.LoadBalancerSpec{}), Inputs: []*storagev1.StepInputRecord{{Field: "backends"}}}
	if _, err := renderSpec(wfOf(0, own), own, noAddr, 5, nil, false, nil); err == nil || errors.As(err, &skip) {
		t.Errorf("a node's own load balancer with no control plane to forward to: %v, want the step failed (its join could never reach the cluster)", err)
	}
}

// deckctl init --load-balancer vip: the same steps as a document's, the VIP as the endpoint
// of the recorded cluster.
func TestInitWithAVirtualIP(t *testing.T) {
	p, err := build(&apiv1.WorkflowSpec{Kind: &apiv1.WorkflowSpec_Init{Init: &apiv1.InitWorkflow{Node: "cp-1", Address: "10.250.0.10",
		Cluster: &taskv1.ClusterSpec{KubernetesVersion: "v1.33.13", LoadBalancer: &taskv1.LoadBalancerSettings{Type: "vip", Address: "10.250.0.100"}}}}}, nil, enrolledSet("cp-1"))
	if err != nil {
		t.Fatal(err)
	}
	after(t, p, "cp-1/load-balancer", "cp-1/init")
	in := p.step("cp-1/init").GetTask().GetKubeadmInit()
	if in.GetCluster().GetControlPlaneEndpoint() != "10.250.0.100:8443" || !in.GetUploadCerts() {
		t.Errorf("init: endpoint %q, upload certs %v: want the VIP, and the certificates uploaded for the next control planes", in.GetCluster().GetControlPlaneEndpoint(), in.GetUploadCerts())
	}
	_, err = build(&apiv1.WorkflowSpec{Kind: &apiv1.WorkflowSpec_Init{Init: &apiv1.InitWorkflow{Node: "cp-1", Address: "10.250.0.10",
		Cluster: &taskv1.ClusterSpec{KubernetesVersion: "v1.33.13", ControlPlaneEndpoint: "lb:6443", LoadBalancer: &taskv1.LoadBalancerSettings{Type: "vip", Address: "10.250.0.100"}}}}}, nil, enrolledSet("cp-1"))
	if !errors.Is(err, ErrInvalid) || !strings.Contains(err.Error(), "control_plane_endpoint") {
		t.Errorf("an endpoint beside a VIP: %v, want a refusal naming control_plane_endpoint", err)
	}
}

// A dry-run of a new cluster behind local proxies ends, as `deckctl apply --dry-run` promises:
// a worker's proxy, which forwards only to recorded control planes and so none in a dry-run
// (nothing is recorded), lists the API servers of the control planes this workflow would
// record, and its task shows what it would install and write.
func TestDryRunOfLocalProxiesEnds(t *testing.T) {
	spec := &apiv1.WorkflowSpec{DryRun: true, Kind: &apiv1.WorkflowSpec_Apply{Apply: &apiv1.ApplyWorkflow{ClusterYaml: lbDoc("{type: local}", []string{"cp-1"}, "w-1")}}}
	p, err := build(spec, nil, enrolledSet("cp-1", "w-1"))
	if err != nil {
		t.Fatal(err)
	}
	wf := &storagev1.WorkflowRecord{Id: "wf-x", Spec: spec, State: storagev1.WorkflowRecordState_WORKFLOW_RECORD_STATE_RUNNING, Steps: p.steps, Nodes: p.nodes, Concurrency: p.concurrency}
	b, err := proto.Marshal(wf)
	if err != nil {
		t.Fatal(err)
	}
	f := &fakeCluster{t: t, stored: b, created: map[string]int{}, now: t0,
		view: fakeView{tasks: map[string]*apiv1.TaskRecord{}, storeRev: 1, ready: map[string]bool{"cp-1": true, "w-1": true}}}
	got := f.run(-1)
	if got.GetState() != storagev1.WorkflowRecordState_WORKFLOW_RECORD_STATE_SUCCEEDED {
		t.Fatalf("dry-run %v: %v at %s", got.GetState(), got.GetError(), got.GetFailedStep())
	}
	var lb *taskv1.LoadBalancerSpec
	for _, r := range f.view.tasks {
		if r.GetTask().GetStep() == "w-1/load-balancer" {
			lb = r.GetTask().GetSpec().GetLoadBalancer()
		}
	}
	if !slices.Equal(lb.GetBackends(), []string{"10.250.0.10:6443"}) {
		t.Errorf("w-1's dry-run load balancer forwards to %v, want cp-1's API server", lb.GetBackends())
	}
}

// A control plane whose join failed after its load balancer started is not in the cluster
// record; resetting it stops its haproxy and keepalived too (left running, its keepalived
// would still take the VIP whenever it wins VRRP).
func TestResetOfANodeWhoseJoinFailedRemovesItsLoadBalancer(t *testing.T) {
	cl := lbCluster(&taskv1.LoadBalancerSettings{Type: "vip", Address: "10.250.0.100"}, 1, "cp-1")
	p, err := build(&apiv1.WorkflowSpec{Kind: &apiv1.WorkflowSpec_Reset_{Reset_: &apiv1.ResetWorkflow{Node: "cp-2"}}}, cl, enrolledSet("cp-1", "cp-2"))
	if err != nil {
		t.Fatal(err)
	}
	after(t, p, "cp-2/reset", "cp-2/lb-remove")
	if !p.step("cp-2/lb-remove").GetTask().GetLoadBalancer().GetRemove() {
		t.Error("lb-remove does not remove")
	}
	if got := withSuffix(p, "/lb-update"); len(got) != 0 {
		t.Errorf("lb-update steps %v: the recorded control planes' lists never had it", got)
	}
	// A cluster without Deckhand's load balancer has none to remove.
	p, err = build(&apiv1.WorkflowSpec{Kind: &apiv1.WorkflowSpec_Reset_{Reset_: &apiv1.ResetWorkflow{Node: "cp-2"}}}, testCluster("cp-1"), enrolledSet("cp-1", "cp-2"))
	if err != nil {
		t.Fatal(err)
	}
	if got := withSuffix(p, "/lb-remove"); len(got) != 0 {
		t.Errorf("lb-remove steps %v in a cluster without a load balancer", got)
	}
	// No cluster at all: the init failed, maybe after its load balancer started; its
	// settings were never recorded, and removing needs none.
	p, err = build(&apiv1.WorkflowSpec{Kind: &apiv1.WorkflowSpec_Reset_{Reset_: &apiv1.ResetWorkflow{Node: "cp-1"}}}, nil, enrolledSet("cp-1"))
	if err != nil {
		t.Fatal(err)
	}
	after(t, p, "cp-1/reset", "cp-1/lb-remove")
	if _, err := lbconf.Parse(p.step("cp-1/lb-remove").GetTask().GetLoadBalancer()); err != nil {
		t.Errorf("the removal after a failed init is not a task the agent takes: %v", err)
	}
}
