package cli_test

import (
	"bytes"
	"context"
	"encoding/json"
	"fmt"
	"os"
	"path/filepath"
	"regexp"
	"slices"
	"strings"
	"sync"
	"testing"
	"time"

	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/status"
	"google.golang.org/protobuf/encoding/protojson"

	"github.com/deckhandhq/deckhand/cmd/deckctl/internal/cli"
	"github.com/deckhandhq/deckhand/controller/api"
	"github.com/deckhandhq/deckhand/internal/pki"
	"github.com/deckhandhq/deckhand/internal/testkit/sim/simrecords"
	"github.com/deckhandhq/deckhand/internal/testkit/testcluster"
	"github.com/deckhandhq/deckhand/internal/testkit/testetcd"
	apiv1 "github.com/deckhandhq/deckhand/proto/deckhand/api/v1"
)

const version = "v1.33.13"

// lab is 3 controllers and simulated hosts sharing one simulated Kubernetes cluster, with
// a package repository and an image mirror.
type lab struct {
	*testcluster.Cluster
	sim, mirror, repo string
}

func newLab(t *testing.T, hosts ...string) *lab {
	return newLabOn(t, func() *testcluster.Cluster { return testcluster.New(t, 3) }, hosts...)
}

// newLabOn is a lab whose controllers newControllers starts.
func newLabOn(t *testing.T, newControllers func() *testcluster.Cluster, hosts ...string) *lab {
	l := &lab{sim: testcluster.SimCluster(t)}
	l.Cluster = newControllers()
	l.mirror = testcluster.Mirror(t, version, 4<<10, 1)
	l.repo = testcluster.PackageRepo(t, "v1.33")
	l.StartHosts(hosts...)
	return l
}

// doc is a cluster document with cp as control planes and workers.
func (l *lab) doc(t *testing.T, concurrency int, cps []string, workers ...string) string {
	var b strings.Builder
	fmt.Fprintf(&b, "apiVersion: deckhand.dev/v1alpha1\nkind: Cluster\nmetadata:\n  name: test\nspec:\n  kubernetesVersion: %s\n  cgroupDriver: cgroupfs\n  mirrors: [%s]\n  packages:\n    baseURL: %s\n  concurrency: %d\n  nodes:\n", version, l.mirror, l.repo, concurrency)
	for _, n := range cps {
		fmt.Fprintf(&b, "  - {name: %s, role: control-plane}\n", n)
	}
	for _, n := range workers {
		fmt.Fprintf(&b, "  - {name: %s, role: worker}\n", n)
	}
	p := filepath.Join(t.TempDir(), "cluster.yaml")
	if err := os.WriteFile(p, []byte(b.String()), 0o600); err != nil {
		t.Fatal(err)
	}
	return p
}

// deckctl runs the CLI in-process against the lab's controllers.
func (l *lab) deckctl(args ...string) (string, string, error) {
	var out, errOut bytes.Buffer
	root := cli.NewRoot(&out, &errOut)
	root.SetArgs(append([]string{"--config", l.AdminConfig(), "--controller", strings.Join(l.Addrs(), ","), "--timeout", "90s"}, args...))
	err := root.Execute()
	return out.String(), errOut.String(), err
}

func (l *lab) mustDeckctl(t *testing.T, args ...string) string {
	t.Helper()
	type result struct {
		out, errOut string
		err         error
	}
	done := make(chan result, 1)
	go func() {
		out, errOut, err := l.deckctl(args...)
		done <- result{out, errOut, err}
	}()
	select {
	case r := <-done:
		if r.err != nil {
			t.Fatalf("deckctl %s: %v\nstdout:\n%s\nstderr:\n%s\n%s", strings.Join(args, " "), r.err, r.out, r.errOut, l.describeLatest())
		}
		return r.out + r.errOut
	case <-time.After(4 * time.Minute):
		t.Fatalf("deckctl %s did not finish in 4m\n%s", strings.Join(args, " "), l.describeLatest())
	}
	return ""
}

// describeLatest describes the newest workflow, for failure messages.
func (l *lab) describeLatest() string {
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	resp, err := apiv1.NewWorkflowServiceClient(l.Client()).ListWorkflows(ctx, &apiv1.ListWorkflowsRequest{})
	if err != nil || len(resp.GetWorkflows()) == 0 {
		return fmt.Sprintf("no workflow to describe (%v)", err)
	}
	out, errOut, err := l.deckctl("workflow", "describe", resp.GetWorkflows()[0].GetId())
	return fmt.Sprintf("newest workflow:\n%s%s%v", out, errOut, err)
}

func (l *lab) records(t *testing.T) []simrecords.Record {
	t.Helper()
	recs, err := simrecords.Read(l.sim)
	if err != nil {
		t.Fatal(err)
	}
	return recs
}

// joinedOnce checks the emulator ran kubeadm join exactly once for each node.
func (l *lab) joinedOnce(t *testing.T, nodes ...string) {
	t.Helper()
	recs := l.records(t)
	for _, n := range nodes {
		if got := simrecords.Count(recs, "kubeadm-join", n); got != 1 {
			t.Errorf("kubeadm join ran %d times for %s; records:\n%v", got, n, recs)
		}
	}
}

// noMintedTokens checks that every token a workflow minted is gone from the cluster.
func (l *lab) noMintedTokens(t *testing.T) {
	t.Helper()
	recs := l.records(t)
	have, err := simrecords.Tokens(l.sim)
	if err != nil {
		t.Fatal(err)
	}
	live := map[string]bool{}
	for _, id := range have {
		live[id] = true
	}
	minted := 0
	for _, r := range recs {
		if r.Command == "token-create" {
			minted++
			if live[r.Subject] {
				t.Errorf("minted token %s still exists on the control plane", r.Subject)
			}
		}
	}
	if minted == 0 {
		t.Error("no token was minted")
	}
}

func (l *lab) clusterNodes(t *testing.T) map[string]string {
	t.Helper()
	ns, err := simrecords.Nodes(l.sim)
	if err != nil {
		t.Fatal(err)
	}
	return ns
}

func workflowID(t *testing.T, out string) string {
	t.Helper()
	for _, f := range strings.Fields(out) {
		if strings.HasPrefix(f, "wf-") {
			return strings.TrimRight(f, ":")
		}
	}
	t.Fatalf("no workflow ID in %q", out)
	return ""
}

func (l *lab) waitWorkflow(t *testing.T, id string, timeout time.Duration) *apiv1.Workflow {
	t.Helper()
	var wf *apiv1.Workflow
	testcluster.WaitFor(t, timeout, func() error {
		var err error
		if wf, err = l.Workflow(id); err != nil {
			return err
		}
		switch wf.GetState() {
		case apiv1.WorkflowState_WORKFLOW_STATE_SUCCEEDED, apiv1.WorkflowState_WORKFLOW_STATE_FAILED, apiv1.WorkflowState_WORKFLOW_STATE_CANCELLED:
			return nil
		}
		return fmt.Errorf("workflow %s is %s", id, wf.GetState())
	})
	return wf
}

func TestApplyJoinResetPlan(t *testing.T) {
	l := newLab(t, "node-1", "node-2", "node-3", "node-4", "node-5")
	doc := l.doc(t, 2, []string{"node-1"}, "node-2", "node-3", "node-4")

	// A plan before anything exists: an init and three joins.
	plan := l.mustDeckctl(t, "plan", "-f", doc)
	for _, want := range []string{"init node-1", "join node-2 as worker", "join node-4 as worker"} {
		if !strings.Contains(plan, want) {
			t.Fatalf("plan lacks %q:\n%s", want, plan)
		}
	}

	// A dry-run runs every task as a dry-run and shows the changes per host; nothing
	// happens to the cluster.
	dry := l.mustDeckctl(t, "apply", "-f", doc, "--dry-run")
	for _, want := range []string{"changes per host", "node-1:", "node-4:", "kubeadm init", "succeeded"} {
		if !strings.Contains(dry, want) {
			t.Fatalf("dry-run output lacks %q:\n%s", want, dry)
		}
	}
	if recs := l.records(t); len(recs) != 0 {
		t.Fatalf("a dry-run changed the cluster: %v", recs)
	}
	if c := l.mustDeckctl(t, "cluster"); !strings.Contains(c, "No cluster yet") {
		t.Fatalf("a dry-run recorded a cluster:\n%s", c)
	}

	// Apply with the live view (plain lines: not a terminal).
	out := l.mustDeckctl(t, "apply", "-f", doc)
	for _, want := range []string{"node-1/init", "node-3/join", "succeeded"} {
		if !strings.Contains(out, want) {
			t.Fatalf("apply output lacks %q:\n%s", want, out)
		}
	}
	nodes := l.clusterNodes(t)
	if len(nodes) != 4 || nodes["node-1"] != "control-plane" || nodes["node-4"] != "worker" {
		t.Fatalf("cluster nodes after apply: %v", nodes)
	}
	l.joinedOnce(t, "node-2", "node-3", "node-4")
	l.noMintedTokens(t)
	// The pod network: each node routes every other node's podCIDR via its address, the
	// workers that joined in parallel included.
	l.podRoutes(t, "node-1", "node-2", "node-3", "node-4")
	// The inventory shows what the workflow installed (facts sent again after the tasks).
	testcluster.WaitFor(t, 30*time.Second, func() error {
		out, _, err := l.deckctl("nodes")
		if err != nil || !regexp.MustCompile(`(?m)^node-2\s+Ready\s+worker\s.*containerd.*v1\.33\.13`).MatchString(out) {
			return fmt.Errorf("nodes: %v\n%s", err, out)
		}
		return nil
	})
	if c := l.mustDeckctl(t, "cluster"); strings.Count(c, "worker") != 3 || !strings.Contains(c, "sha256:") || !strings.Contains(c, "Pod network: bridge, pods from 10.244.0.0/16") {
		t.Fatalf("deckctl cluster:\n%s", c)
	}

	// The applied document: nothing to do.
	if plan := l.mustDeckctl(t, "plan", "-f", doc); !strings.Contains(plan, "No changes") {
		t.Fatalf("plan after apply:\n%s", plan)
	}

	// Join node-5 by name: prepared, token minted just in time, joined, Ready, token gone.
	out = l.mustDeckctl(t, "join", "node-5")
	if !strings.Contains(out, "node-5/ready") || !strings.Contains(out, "succeeded") {
		t.Fatalf("join output:\n%s", out)
	}
	l.joinedOnce(t, "node-5")
	l.noMintedTokens(t)
	l.podRoutes(t, "node-1", "node-2", "node-3", "node-4", "node-5")
	if plan := l.mustDeckctl(t, "plan", "-f", doc); !strings.Contains(plan, "No changes") || !strings.Contains(plan, "node-5 is in the cluster") {
		t.Fatalf("plan with an extra node:\n%s", plan)
	}

	// Reset node-3: drained through the control plane, deleted, cleaned.
	l.mustDeckctl(t, "reset", "node-3")
	recs := l.records(t)
	if simrecords.Count(recs, "kubectl-drain", "node-3") != 1 || simrecords.Count(recs, "kubectl-delete-node", "node-3") != 1 || simrecords.Count(recs, "kubeadm-reset", "node-3") != 1 {
		t.Fatalf("reset records: %v", recs)
	}
	if _, ok := l.clusterNodes(t)["node-3"]; ok {
		t.Fatal("node-3 still in the cluster")
	}
	root := l.Agents["node-3"].Root
	for _, p := range []string{"etc/kubernetes/kubelet.conf", "etc/kubernetes/pki/ca.crt", "var/lib/kubelet/config.yaml"} {
		if testcluster.Exists(root, p) {
			t.Fatalf("reset left %s", p)
		}
	}
	if plan := l.mustDeckctl(t, "plan", "-f", doc); !strings.Contains(plan, "join node-3 as worker") {
		t.Fatalf("plan after reset:\n%s", plan)
	}
	// The others dropped their route to node-3's pods; node-3 has none left.
	l.podRoutes(t, "node-1", "node-2", "node-4", "node-5")
	if rs := l.routesOf(t, "node-3"); len(rs) != 0 {
		t.Fatalf("node-3 keeps pod routes after its reset: %v", rs)
	}
	if rs := l.natRulesOf(t, "node-3"); len(rs) != 0 {
		t.Fatalf("node-3 keeps the pod network's NAT rule after its reset: %v", rs)
	}

	// A join and a reset of the same node at once: one runs, the other is refused with
	// the holder's name.
	detached := l.mustDeckctl(t, "join", "node-3", "--detach")
	id := workflowID(t, detached)
	if ns := l.mustDeckctl(t, "nodes"); !strings.Contains(ns, id) || !strings.Contains(ns, "control-plane") {
		t.Fatalf("deckctl nodes shows no role or holder:\n%s", ns)
	}
	_, errOut, err := l.deckctl("reset", "node-3")
	if err == nil || !strings.Contains(err.Error(), id) || !strings.Contains(err.Error(), "NODE_LOCKED") {
		t.Fatalf("conflicting reset: %v %s", err, errOut)
	}
	_, err = apiv1.NewWorkflowServiceClient(l.Client()).CreateWorkflow(context.Background(), &apiv1.CreateWorkflowRequest{Spec: &apiv1.WorkflowSpec{
		Kind: &apiv1.WorkflowSpec_Reset_{Reset_: &apiv1.ResetWorkflow{Node: "node-3"}}}})
	if status.Code(err) != codes.FailedPrecondition || api.Reason(err) != apiv1.ErrorReason_ERROR_REASON_NODE_LOCKED {
		t.Fatalf("conflict through the API: %v", err)
	}
	if wf := l.waitWorkflow(t, id, 2*time.Minute); wf.GetState() != apiv1.WorkflowState_WORKFLOW_STATE_SUCCEEDED {
		t.Fatalf("join after reset: %v", wf)
	}
	if got := simrecords.Count(l.records(t), "kubeadm-join", "node-3"); got != 2 {
		t.Fatalf("node-3 joined %d times over its two lives", got)
	}
	l.noMintedTokens(t)

	// The join token is a secret: a viewer sees it neither in the workflow nor in the task.
	joinTask := id + ".node-3.join.1"
	ctx := context.Background()
	full, err := apiv1.NewTaskServiceClient(l.Client()).GetTask(ctx, &apiv1.GetTaskRequest{Id: joinTask})
	token := full.GetTask().GetTask().GetSpec().GetKubeadmJoin().GetToken()
	if err != nil || len(token) != 23 {
		t.Fatalf("join task as admin: %v %v", full, err)
	}
	viewer := l.ClientAs(pki.RoleViewer, "viewer")
	vt, err := apiv1.NewTaskServiceClient(viewer).GetTask(ctx, &apiv1.GetTaskRequest{Id: joinTask})
	vw, err2 := apiv1.NewWorkflowServiceClient(viewer).GetWorkflow(ctx, &apiv1.GetWorkflowRequest{Id: id})
	if err != nil || err2 != nil || strings.Contains(protojson.Format(vt), token) || strings.Contains(protojson.Format(vw), token) {
		t.Fatalf("a viewer can read the join token: %v %v", err, err2)
	}
	if aw, _ := l.Workflow(id); strings.Contains(protojson.Format(aw), token) {
		t.Fatal("the workflow record holds the join token")
	}

	// Workflows are listed and described from any replica, logs per node.
	for i := range l.Controllers {
		resp, err := apiv1.NewWorkflowServiceClient(l.ClientTo(i)).ListWorkflows(context.Background(), &apiv1.ListWorkflowsRequest{})
		if err != nil || len(resp.GetWorkflows()) != 5 { // dry-run, apply, join, reset, join
			t.Fatalf("replica %d lists %d workflows: %v", i, len(resp.GetWorkflows()), err)
		}
	}
	if d := l.mustDeckctl(t, "workflow", "describe", id); !strings.Contains(d, "node-3/join") || !strings.Contains(d, "succeeded") {
		t.Fatalf("describe:\n%s", d)
	}
	if lg := l.mustDeckctl(t, "logs", id, "--node", "node-3"); !strings.Contains(lg, "node-3/join") || strings.Contains(lg, "node-1/") {
		t.Fatalf("logs --node:\n%s", lg)
	}
}

// routesOf are the pod routes Deckhand owns on a simulated host: CIDR -> via.
func (l *lab) routesOf(t *testing.T, node string) map[string]string {
	t.Helper()
	b, err := os.ReadFile(filepath.Join(l.Agents[node].Root, "var/lib/deckhand-sim/routes.json"))
	if os.IsNotExist(err) {
		return nil
	}
	var rs []struct{ Dst, Gateway, Protocol string }
	if err := json.Unmarshal(b, &rs); err != nil {
		t.Fatal(err)
	}
	out := map[string]string{}
	for _, r := range rs {
		if r.Protocol == "221" {
			out[r.Dst] = r.Gateway
		}
	}
	return out
}

// podRoutes checks that each of nodes routes exactly the others' podCIDRs via their
// addresses, as the cluster record has them, and that those are all different.
func (l *lab) podRoutes(t *testing.T, nodes ...string) {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	resp, err := apiv1.NewWorkflowServiceClient(l.Client()).GetCluster(ctx, &apiv1.GetClusterRequest{})
	if err != nil {
		t.Fatal(err)
	}
	rec := map[string]*apiv1.ClusterNode{}
	cidrs := map[string]bool{}
	for _, n := range resp.GetCluster().GetNodes() {
		rec[n.GetName()] = n
		if n.GetPodCidr() == "" || n.GetAddress() == "" || cidrs[n.GetPodCidr()] {
			t.Fatalf("cluster record of %s: podCIDR %q address %q (each node its own)", n.GetName(), n.GetPodCidr(), n.GetAddress())
		}
		cidrs[n.GetPodCidr()] = true
	}
	for _, n := range nodes {
		want := map[string]string{}
		for _, o := range nodes {
			if o != n {
				want[rec[o].GetPodCidr()] = rec[o].GetAddress()
			}
		}
		if got := l.routesOf(t, n); fmt.Sprint(got) != fmt.Sprint(want) {
			t.Fatalf("pod routes of %s: %v, want %v", n, got, want)
		}
		if !testcluster.Exists(l.Agents[n].Root, "etc/cni/net.d/10-deckhand-bridge.conflist") {
			t.Fatalf("%s has no CNI configuration", n)
		}
		// Pods keep their addresses between nodes; only what leaves the pod subnet is
		// masqueraded, by one rule.
		sub := resp.GetCluster().GetSpec().GetPodSubnet()
		if got, want := l.natRulesOf(t, n), []string{"-s " + sub + " ! -d " + sub + ` -m comment --comment "deckhand pod network" -j MASQUERADE`}; !slices.Equal(got, want) {
			t.Fatalf("Deckhand NAT rules of %s: %q, want %q", n, got, want)
		}
	}
}

// natRulesOf lists the Deckhand NAT rules of node's simulated iptables (after the chain).
func (l *lab) natRulesOf(t *testing.T, node string) []string {
	t.Helper()
	b, err := os.ReadFile(filepath.Join(l.Agents[node].Root, "var/lib/deckhand-sim/netfilter/iptables.rules"))
	if err != nil && !os.IsNotExist(err) {
		t.Fatal(err)
	}
	var out []string
	for _, line := range strings.Split(string(b), "\n") {
		if r, ok := strings.CutPrefix(line, "-A POSTROUTING "); ok && strings.Contains(r, `"deckhand pod network"`) {
			out = append(out, r)
		}
	}
	return out
}

// stepState returns a step's state in a workflow read through the API.
func (l *lab) stepState(id, step string) apiv1.StepState {
	wf, err := l.Workflow(id)
	if err != nil {
		return apiv1.StepState_STEP_STATE_UNSPECIFIED
	}
	for _, s := range wf.GetSteps() {
		if s.GetName() == step {
			return s.GetState()
		}
	}
	return apiv1.StepState_STEP_STATE_UNSPECIFIED
}

func TestApplySurvivesLeaderFailover(t *testing.T) {
	l := newLab(t, "node-1", "node-2", "node-3", "node-4")
	doc := l.doc(t, 3, []string{"node-1"}, "node-2", "node-3", "node-4")
	id := workflowID(t, l.mustDeckctl(t, "apply", "-f", doc, "--detach"))

	// Kill the leader while the workers are between preparation and join.
	testcluster.WaitFor(t, 2*time.Minute, func() error {
		if st := l.stepState(id, "node-1/init"); st != apiv1.StepState_STEP_STATE_SUCCEEDED {
			return fmt.Errorf("init is %s", st)
		}
		return nil
	})
	if wf, _ := l.Workflow(id); wf.GetState() != apiv1.WorkflowState_WORKFLOW_STATE_RUNNING {
		t.Fatalf("the apply ended before the failover: %v", wf.GetState())
	}
	leader := l.Leader()
	l.Kill(leader)
	l.WaitLeader()

	// The live view follows the workflow to the end from the surviving controllers.
	out, errOut, err := l.deckctl("workflow", "watch", id)
	if err != nil || !strings.Contains(out, "succeeded") {
		wf, _ := l.Workflow(id)
		t.Fatalf("watch after failover: %v\n%s\n%s\nworkflow: %v", err, out, errOut, wf)
	}
	nodes := l.clusterNodes(t)
	if len(nodes) != 4 {
		t.Fatalf("cluster nodes: %v", nodes)
	}
	l.joinedOnce(t, "node-2", "node-3", "node-4")
	if got := simrecords.Count(l.records(t), "kubeadm-init", "node-1"); got != 1 {
		t.Fatalf("kubeadm init ran %d times", got)
	}
	l.noMintedTokens(t)
}

func TestAgentRestartMidJoin(t *testing.T) {
	l := newLab(t, "node-1", "node-2")
	if _, _, err := l.deckctl("init", "node-1", "--kubernetes-version", version, "--network-provider", "weave"); err == nil ||
		!strings.Contains(err.Error(), "network_provider") || !strings.Contains(err.Error(), "bridge") {
		t.Fatalf("init with an unknown network provider: %v", err)
	}
	// deckctl init with flags instead of a document.
	out := l.mustDeckctl(t, "init", "node-1", "--kubernetes-version", version, "--mirror", l.mirror,
		"--package-base-url", l.repo, "--cgroup-driver", "cgroupfs", "--kube-proxy-mode", "iptables", "--conntrack-max-per-core", "0")
	if !strings.Contains(out, "node-1/init") || !strings.Contains(out, "succeeded") {
		t.Fatalf("init:\n%s", out)
	}
	// kubeadm init was told the kubelet's cgroup driver and kube-proxy's settings (0: leave
	// nf_conntrack_max alone).
	cfg, err := os.ReadFile(filepath.Join(l.Agents["node-1"].Root, "etc/kubernetes/deckhand/kubeadm-init.yaml"))
	if err != nil || !strings.Contains(string(cfg), "cgroupDriver: cgroupfs\n") ||
		!strings.Contains(string(cfg), "conntrack:\n  maxPerCore: 0\nkind: KubeProxyConfiguration\nmode: iptables\n") {
		t.Fatalf("kubeadm-init.yaml: %v\n%s", err, cfg)
	}
	if _, _, err := l.deckctl("init", "node-2", "--kubernetes-version", version); err == nil || !strings.Contains(err.Error(), "already exists") {
		t.Fatalf("a second init: %v", err)
	}

	// node-2's kubeadm join takes a while; restart its agent while it runs.
	root := l.Agents["node-2"].Root
	if err := os.MkdirAll(filepath.Join(root, "var/lib/deckhand-sim"), 0o755); err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(filepath.Join(root, "var/lib/deckhand-sim/kubeadm-join-delay"), []byte("3s"), 0o644); err != nil {
		t.Fatal(err)
	}
	id := workflowID(t, l.mustDeckctl(t, "join", "node-2", "--detach"))
	testcluster.WaitFor(t, 2*time.Minute, func() error {
		if st := l.stepState(id, "node-2/join"); st != apiv1.StepState_STEP_STATE_RUNNING {
			return fmt.Errorf("join step is %s", st)
		}
		if !testcluster.Exists(root, "etc/kubernetes/deckhand/kubeadm-join.yaml") {
			return fmt.Errorf("kubeadm join has not started")
		}
		return nil
	})
	l.RestartAgent("node-2")
	wf := l.waitWorkflow(t, id, 2*time.Minute)
	if wf.GetState() != apiv1.WorkflowState_WORKFLOW_STATE_SUCCEEDED {
		t.Fatalf("join after an agent restart: %v", wf)
	}
	l.joinedOnce(t, "node-2")
	l.noMintedTokens(t)
}

func TestResetStopsOnDrainFailureRetryAndForce(t *testing.T) {
	l := newLab(t, "node-1", "node-2")
	l.mustDeckctl(t, "apply", "-f", l.doc(t, 2, []string{"node-1"}, "node-2"))
	blocked := filepath.Join(l.sim, "drain-blocked", "node-2")
	if err := os.MkdirAll(filepath.Dir(blocked), 0o755); err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(blocked, nil, 0o644); err != nil {
		t.Fatal(err)
	}

	// A drain a PodDisruptionBudget blocks stops the reset before anything is removed; the
	// workflow stays failed with the step, its error and what to do next.
	out, errOut, err := l.deckctl("reset", "node-2", "--drain-timeout", "5s")
	if err == nil || !strings.Contains(out, "failed at step node-2/drain") || !strings.Contains(out, "deckctl workflow retry") {
		t.Fatalf("blocked drain: %v\n%s\n%s", err, out, errOut)
	}
	id := workflowID(t, out)
	if _, ok := l.clusterNodes(t)["node-2"]; !ok || simrecords.Count(l.records(t), "kubeadm-reset", "node-2") != 0 {
		t.Fatal("a failed drain went on to delete or reset the node")
	}
	if d := l.mustDeckctl(t, "workflow", "describe", id); !strings.Contains(d, "DRAIN_FAILED") && !strings.Contains(d, "disruption budget") {
		t.Fatalf("describe of the failed reset:\n%s", d)
	}

	// Fixed by hand, then retried: it resumes from the drain and completes.
	if err := os.Remove(blocked); err != nil {
		t.Fatal(err)
	}
	if out := l.mustDeckctl(t, "workflow", "retry", id); !strings.Contains(out, "succeeded") {
		t.Fatalf("retry:\n%s", out)
	}
	recs := l.records(t)
	if simrecords.Count(recs, "kubeadm-reset", "node-2") != 1 || simrecords.Count(recs, "kubectl-delete-node", "node-2") != 1 {
		t.Fatalf("records after the retry: %v\n%s", recs, l.mustDeckctl(t, "workflow", "describe", id))
	}
	wf, _ := l.Workflow(id)
	for _, s := range wf.GetSteps() {
		if s.GetName() == "node-2/drain" && s.GetAttempts() != 2 {
			t.Fatalf("drain ran %d times, want 2 (the failure and the retry)", s.GetAttempts())
		}
	}

	// With --force, a blocked drain is recorded and the reset goes on.
	l.mustDeckctl(t, "join", "node-2")
	if err := os.WriteFile(blocked, nil, 0o644); err != nil {
		t.Fatal(err)
	}
	if out := l.mustDeckctl(t, "reset", "node-2", "--force", "--drain-timeout", "5s"); !strings.Contains(out, "succeeded") {
		t.Fatalf("forced reset:\n%s", out)
	}
	if _, ok := l.clusterNodes(t)["node-2"]; ok {
		t.Fatal("node-2 still in the cluster after a forced reset")
	}
	l.noMintedTokens(t)
}

// Two controllers on one real etcd (--store etcd): enrollment, members, a join workflow, and
// the leading controller killed in the middle of it.
func TestEtcdControllersRunAJoinThroughAFailover(t *testing.T) {
	etcd := testetcd.Start(t, testetcd.Options{})
	l := newLabOn(t, func() *testcluster.Cluster { return testcluster.NewEtcd(t, 2, etcd.Endpoints()) }, "node-1", "node-2")
	members := l.mustDeckctl(t, "members", "-o", "json")
	if strings.Count(members, `"etcd"`) != 2 || !regexp.MustCompile(`"leader":\s*true`).MatchString(members) {
		t.Fatalf("members with --store etcd:\n%s", members)
	}
	l.mustDeckctl(t, "apply", "-f", l.doc(t, 2, []string{"node-1"}))

	id := workflowID(t, l.mustDeckctl(t, "join", "node-2", "--detach"))
	testcluster.WaitFor(t, 2*time.Minute, func() error {
		if st := l.stepState(id, "node-2/packages"); st != apiv1.StepState_STEP_STATE_SUCCEEDED {
			return fmt.Errorf("packages is %s", st)
		}
		return nil
	})
	leader := l.Leader()
	l.Kill(leader)
	testcluster.WaitFor(t, 30*time.Second, func() error {
		if i := l.Leader(); i < 0 || i == leader {
			return fmt.Errorf("no new leader")
		}
		return nil
	})
	out, errOut, err := l.deckctl("workflow", "watch", id)
	if err != nil || !strings.Contains(out, "succeeded") {
		t.Fatalf("join through an etcd failover: %v\n%s\n%s", err, out, errOut)
	}
	l.joinedOnce(t, "node-2")
	l.noMintedTokens(t)
}

// syncBuffer is a bytes.Buffer a running deckctl writes while the test reads it.
type syncBuffer struct {
	mu sync.Mutex
	b  bytes.Buffer
}

func (s *syncBuffer) Write(p []byte) (int, error) {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.b.Write(p)
}

func (s *syncBuffer) String() string {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.b.String()
}

// running is a deckctl command running in the background.
type running struct {
	args        []string
	out, errOut syncBuffer
	done        chan error
}

// start runs deckctl with args in the background, talking to controller addr only: it
// learns the others from it, as a user's DECKHAND_CONTROLLER naming one controller does.
func (l *lab) start(addr string, args ...string) *running {
	r := &running{args: args, done: make(chan error, 1)}
	root := cli.NewRoot(&r.out, &r.errOut)
	root.SetArgs(append([]string{"--config", l.AdminConfig(), "--controller", addr, "--timeout", "20s"}, args...))
	go func() { r.done <- root.Execute() }()
	return r
}

// wait waits for the command to end and fails the test when it failed.
func (r *running) wait(t *testing.T, l *lab) (string, string) {
	t.Helper()
	select {
	case err := <-r.done:
		if err != nil {
			t.Fatalf("deckctl %s: %v\nstdout:\n%s\nstderr:\n%s\n%s", strings.Join(r.args, " "), err, r.out.String(), r.errOut.String(), l.describeLatest())
		}
	case <-time.After(4 * time.Minute):
		t.Fatalf("deckctl %s did not finish in 4m\nstdout:\n%s\nstderr:\n%s\n%s", strings.Join(r.args, " "), r.out.String(), r.errOut.String(), l.describeLatest())
	}
	return r.out.String(), r.errOut.String()
}

// lineCounts counts the lines of out.
func lineCounts(out string) map[string]int {
	n := map[string]int{}
	for _, line := range strings.Split(strings.TrimRight(out, "\n"), "\n") {
		n[line]++
	}
	return n
}

// deckctl join's live view and deckctl logs -f follow a join to its end when the controller
// they are connected to is killed in the middle of it: they go on through another
// controller, and logs -f prints what was logged after the kill, each line once.
// Before, the live view could not reach another controller and logs -f ended with the
// dead controller's error.
func TestLiveViewAndLogsFollowSurviveTheirControllerDying(t *testing.T) {
	l := newLab(t, "node-1", "node-2")
	l.mustDeckctl(t, "apply", "-f", l.doc(t, 2, []string{"node-1"}))
	root := l.Agents["node-2"].Root
	if err := os.MkdirAll(filepath.Join(root, "var/lib/deckhand-sim"), 0o755); err != nil {
		t.Fatal(err)
	}
	// kubeadm join waits before it joins; what it prints comes when it exits, after the kill.
	if err := os.WriteFile(filepath.Join(root, "var/lib/deckhand-sim/kubeadm-join-delay"), []byte("10s"), 0o644); err != nil {
		t.Fatal(err)
	}
	// The victim is neither the leader nor node-2's agent's controller: this test is about
	// the watch (TestApplySurvivesLeaderFailover kills a leader).
	leader, victim := l.WaitLeader(), -1
	for i, ctl := range l.Controllers {
		if i != leader && ctl.ID() != l.Agents["node-2"].Connected() {
			victim = i
			break
		}
	}
	addr := l.Controllers[victim].Addr

	join := l.start(addr, "join", "node-2")
	var id string
	testcluster.WaitFor(t, time.Minute, func() error {
		if m := regexp.MustCompile(`workflow (wf-[a-z0-9]+): join node-2`).FindStringSubmatch(join.errOut.String()); m != nil {
			id = m[1]
			return nil
		}
		return fmt.Errorf("no workflow in the live view yet:\n%s", join.errOut.String())
	})
	logs := l.start(addr, "logs", "-f", id)
	testcluster.WaitFor(t, 2*time.Minute, func() error {
		if out := logs.out.String(); !regexp.MustCompile(`node-2/join .* kubeadm_join task started`).MatchString(out) {
			return fmt.Errorf("logs -f has not shown the join starting yet:\n%s", out)
		}
		if !testcluster.Exists(root, "etc/kubernetes/deckhand/kubeadm-join.yaml") {
			return fmt.Errorf("kubeadm join has not started")
		}
		return nil
	})
	l.Kill(victim)
	if simrecords.Count(l.records(t), "kubeadm-join", "node-2") != 0 {
		t.Fatal("kubeadm join finished before the kill: make its delay longer")
	}

	out, errOut := join.wait(t, l)
	if !strings.Contains(out, "workflow "+id+" (join node-2) succeeded") {
		t.Fatalf("the live view after the kill:\nstdout:\n%s\nstderr:\n%s", out, errOut)
	}
	if !strings.Contains(errOut, "reconnecting to a controller") || len(regexp.MustCompile(`node-2/join +succeeded`).FindAllString(errOut, -1)) != 1 {
		t.Fatalf("the live view should say it reconnected and show the join succeeding once:\n%s", errOut)
	}
	followed, _ := logs.wait(t, l)
	all, _, err := l.deckctl("logs", id)
	if err != nil {
		t.Fatalf("deckctl logs: %v", err)
	}
	if !strings.Contains(followed, "This node has joined the cluster") {
		t.Fatalf("logs -f lost what kubeadm join printed after the kill:\n%s\ndeckctl logs:\n%s\nlive view:\n%s", followed, all, errOut)
	}
	// Every line once: what logs -f printed is what deckctl logs prints now, and all of
	// kubeadm join's lines.
	want, got := lineCounts(all), lineCounts(followed)
	for line, n := range got {
		if n > want[line] {
			t.Errorf("logs -f printed %q %d times, deckctl logs %d", line, n, want[line])
		}
	}
	for line, n := range want {
		if strings.HasPrefix(line, "node-2/join ") && got[line] != n {
			t.Errorf("logs -f printed %q %d times, deckctl logs %d", line, got[line], n)
		}
	}
	if t.Failed() {
		t.Fatalf("logs -f:\n%s\ndeckctl logs:\n%s", followed, all)
	}
	l.joinedOnce(t, "node-2")
}

// deckctl plan lists the load balancer and pod network steps per node, and a dry-run of
// the apply shows every host's files, packages and firewall rules, changing nothing.
func TestPlanAndDryRunShowTheLoadBalancerAndNetwork(t *testing.T) {
	l := newLab(t, "node-1", "node-2")
	for _, n := range []string{"node-1", "node-2"} {
		// firewalld runs on both hosts (the simulated firewall-cmd answers)
		p := filepath.Join(l.Agents[n].Root, "var/lib/deckhand-sim/firewalld/running")
		if err := os.MkdirAll(filepath.Dir(p), 0o755); err != nil {
			t.Fatal(err)
		}
		if err := os.WriteFile(p, nil, 0o644); err != nil {
			t.Fatal(err)
		}
	}
	base, err := os.ReadFile(l.doc(t, 2, []string{"node-1"}, "node-2"))
	if err != nil {
		t.Fatal(err)
	}
	doc := filepath.Join(t.TempDir(), "cluster.yaml")
	text := strings.Replace(string(base), "  nodes:\n", "  loadBalancer: {type: local}\n  network: {provider: flannel}\n  nodes:\n", 1)
	// The load balancer forwards to the control plane's address: give it (a simulated host
	// has 192.0.2.2).
	text = strings.Replace(text, "{name: node-1, role: control-plane}", "{name: node-1, role: control-plane, address: 192.0.2.2}", 1)
	if err := os.WriteFile(doc, []byte(text), 0o600); err != nil {
		t.Fatal(err)
	}

	plan := l.mustDeckctl(t, "plan", "-f", doc)
	for _, want := range []string{
		"Steps:",
		"node-1: preflight, packages, runtime, images, load-balancer, init, token-delete, registered, network-provider, network, record",
		"node-2: preflight, packages, runtime, images, load-balancer, token, join, token-delete, registered, network, ready, record",
	} {
		if !strings.Contains(plan, want) {
			t.Errorf("plan lacks %q:\n%s", want, plan)
		}
	}

	dry := l.mustDeckctl(t, "apply", "-f", doc, "--dry-run")
	for _, want := range []string{
		// firewall rules, per host
		"firewall-cmd --permanent --zone=public --add-port=8472/udp", "firewall-cmd --permanent --zone=trusted --add-source=10.244.0.0/16",
		"firewall-cmd --permanent --zone=public --add-port=6443/tcp", "firewall-cmd --zone=public --add-port=6443/tcp",
		// the load balancer's package and file
		"haproxy", "/etc/haproxy/haproxy.cfg",
		// flannel's manifest and the CNI configuration
		"/etc/kubernetes/deckhand/manifests/flannel.yaml", "/etc/cni/net.d/10-deckhand-bridge.conflist",
		"node-1:", "node-2:",
	} {
		if !strings.Contains(dry, want) {
			t.Errorf("the dry-run lacks %q:\n%s", want, dry)
		}
	}
	if recs := l.records(t); len(recs) != 0 {
		t.Fatalf("a dry-run changed the cluster: %v", recs)
	}
}
