package kubectl_test

import (
	"context"
	"fmt"
	"io"
	"log/slog"
	"os"
	"path/filepath"
	"strings"
	"sync"
	"testing"
	"time"

	"google.golang.org/protobuf/types/known/durationpb"

	"github.com/deckhandhq/deckhand/agent/kubeadm"
	"github.com/deckhandhq/deckhand/agent/kubectl"
	"github.com/deckhandhq/deckhand/agent/tasks"
	"github.com/deckhandhq/deckhand/internal/testkit/sim/simrecords"
	"github.com/deckhandhq/deckhand/internal/testkit/testcluster"
	taskv1 "github.com/deckhandhq/deckhand/proto/deckhand/task/v1"
)

type node struct {
	name, root string
	r          *tasks.Runner
}

func newNode(t *testing.T, name string) *node {
	t.Helper()
	root := testcluster.HostRoot(t, name)
	testcluster.InstallSim(t, root)
	testcluster.SimKubeadm(t, root)
	r, err := tasks.NewRunner(t.TempDir(), root, map[string]tasks.Handler{
		"kubeadm_init": kubeadm.Init, "kubeadm_token": kubeadm.Token, "kubeadm_join": kubeadm.Join,
		"drain": kubectl.Drain, "delete_node": kubectl.DeleteNode, "node_ready": kubectl.NodeReady,
		"kubeconfig_sign": kubectl.KubeconfigSign, "etcd_members": kubectl.EtcdMembers,
	}, slog.New(slog.NewTextHandler(io.Discard, nil)))
	if err != nil {
		t.Fatal(err)
	}
	return &node{name: name, root: root, r: r}
}

// logs collects a task's log lines as they stream.
type logs struct {
	mu    sync.Mutex
	lines []string
}

func (l *logs) add(ev *taskv1.TaskEvent) {
	if line := ev.GetLog(); line != nil {
		l.mu.Lock()
		l.lines = append(l.lines, line.GetText())
		l.mu.Unlock()
	}
}

func (l *logs) String() string {
	l.mu.Lock()
	defer l.mu.Unlock()
	return strings.Join(l.lines, "\n")
}

// start runs a task in the background.
func (n *node) start(task *taskv1.Task) (<-chan *taskv1.TaskResult, *logs) {
	task.Node = n.name
	l := &logs{}
	done := make(chan *taskv1.TaskResult, 1)
	n.r.Start(context.Background(), task, l.add, func(res *taskv1.TaskResult) { done <- res })
	return done, l
}

func wait(t *testing.T, done <-chan *taskv1.TaskResult) *taskv1.TaskResult {
	t.Helper()
	select {
	case res := <-done:
		return res
	case <-time.After(60 * time.Second):
		t.Fatal("task did not finish")
	}
	return nil
}

func (n *node) run(t *testing.T, id string, spec *taskv1.TaskSpec) (*taskv1.TaskResult, string) {
	t.Helper()
	done, l := n.start(&taskv1.Task{Id: id, Spec: spec})
	res := wait(t, done)
	return res, l.String()
}

func drain(name string, timeout time.Duration, force bool) *taskv1.TaskSpec {
	return &taskv1.TaskSpec{Kind: &taskv1.TaskSpec_Drain{Drain: &taskv1.DrainSpec{NodeName: name, Timeout: durationpb.New(timeout), Force: force}}}
}

func deleteNode(name string) *taskv1.TaskSpec {
	return &taskv1.TaskSpec{Kind: &taskv1.TaskSpec_DeleteNode{DeleteNode: &taskv1.DeleteNodeSpec{NodeName: name}}}
}

func nodeReady(name string, timeout time.Duration) *taskv1.TaskSpec {
	return &taskv1.TaskSpec{Kind: &taskv1.TaskSpec_NodeReady{NodeReady: &taskv1.NodeReadySpec{NodeName: name, Timeout: durationpb.New(timeout)}}}
}

// simCluster is a simulated cluster: control plane cp-1 and the given workers, joined.
func simCluster(t *testing.T, workers ...string) (string, *node, map[string]*node) {
	t.Helper()
	dir := t.TempDir()
	t.Setenv("DECKHAND_SIM_CLUSTER", dir)
	spec := &taskv1.ClusterSpec{KubernetesVersion: "v1.33.13", ControlPlaneEndpoint: "10.250.0.10:6443", PodSubnet: "10.244.0.0/16", ServiceSubnet: "10.96.0.0/12", CgroupDriver: "systemd"}
	cp := newNode(t, "cp-1")
	if res, l := cp.run(t, "init", &taskv1.TaskSpec{Kind: &taskv1.TaskSpec_KubeadmInit{KubeadmInit: &taskv1.KubeadmInitSpec{
		Cluster: spec, Node: &taskv1.NodeSpec{Name: "cp-1", AdvertiseAddress: "10.250.0.10"}}}}); res.GetState() != taskv1.TaskState_TASK_STATE_SUCCEEDED {
		t.Fatalf("init: %v\n%s", res, l)
	}
	ws := map[string]*node{}
	for _, w := range workers {
		tok, _ := cp.run(t, "token-"+w, &taskv1.TaskSpec{Kind: &taskv1.TaskSpec_KubeadmToken{KubeadmToken: &taskv1.KubeadmTokenSpec{}}})
		n := newNode(t, w)
		if res, l := n.run(t, "join", &taskv1.TaskSpec{Kind: &taskv1.TaskSpec_KubeadmJoin{KubeadmJoin: &taskv1.KubeadmJoinSpec{
			Cluster: spec, Node: &taskv1.NodeSpec{Name: w}, Role: taskv1.NodeRole_NODE_ROLE_WORKER,
			Token: tok.GetOutputs()["token"], CaCertHash: tok.GetOutputs()["ca_cert_hash"]}}}); res.GetState() != taskv1.TaskState_TASK_STATE_SUCCEEDED {
			t.Fatalf("join %s: %v\n%s", w, res, l)
		}
		ws[w] = n
	}
	return dir, cp, ws
}

func records(t *testing.T, dir string) []simrecords.Record {
	t.Helper()
	recs, err := simrecords.Read(dir)
	if err != nil {
		t.Fatal(err)
	}
	return recs
}

func wantFailed(t *testing.T, what string, res *taskv1.TaskResult, reason string, inMsg ...string) {
	t.Helper()
	if res.GetState() != taskv1.TaskState_TASK_STATE_FAILED || res.GetError().GetReason() != reason {
		t.Fatalf("%s: want %s, got %v", what, reason, res)
	}
	for _, s := range inMsg {
		if !strings.Contains(res.GetError().GetMessage(), s) {
			t.Fatalf("%s: message %q does not say %q", what, res.GetError().GetMessage(), s)
		}
	}
	if res.GetError().GetHint() == "" {
		t.Fatalf("%s: no hint: %v", what, res.GetError())
	}
}

func TestDrainDeleteAndReadyOfAWorker(t *testing.T) {
	dir, cp, _ := simCluster(t, "w-1")

	if res, l := cp.run(t, "ready", nodeReady("w-1", 30*time.Second)); res.GetState() != taskv1.TaskState_TASK_STATE_SUCCEEDED || res.GetOutputs()["ready"] != "w-1" {
		t.Fatalf("node_ready of a joined worker: %v\n%s", res, l)
	}

	res, l := cp.run(t, "drain", drain("w-1", 0, false))
	if res.GetState() != taskv1.TaskState_TASK_STATE_SUCCEEDED || res.GetOutputs()["drained"] != "w-1" {
		t.Fatalf("drain: %v\n%s", res, l)
	}
	for _, want := range []string{"node/w-1 patched", "evicting pod default/web-0", "node/w-1 drained"} {
		if !strings.Contains(l, want) {
			t.Fatalf("the drain's log lacks kubectl's %q:\n%s", want, l)
		}
	}
	var cmds []string
	for _, c := range res.GetChanges() {
		cmds = append(cmds, c.GetTarget())
	}
	if want := "kubectl --kubeconfig /etc/kubernetes/admin.conf drain w-1 --ignore-daemonsets --delete-emptydir-data --timeout=5m0s"; len(cmds) != 2 ||
		!strings.HasPrefix(cmds[0], `kubectl --kubeconfig /etc/kubernetes/admin.conf patch node w-1 --type=merge -p {"metadata":{"annotations":{"deckhand.dev/cordoned":"drain"},"resourceVersion":`) ||
		!strings.HasSuffix(cmds[0], `"spec":{"unschedulable":true}}`) || cmds[1] != want {
		t.Fatalf("drain commands %q, want the cordon with Deckhand's mark in one patch, then %q", cmds, want)
	}
	recs := records(t, dir)
	if simrecords.Count(recs, simrecords.KubectlCordon, "w-1") != 1 || simrecords.Count(recs, simrecords.KubectlDrain, "w-1") != 1 {
		t.Fatalf("want one cordon and one drain of w-1, records:\n%v", recs)
	}

	// Draining again succeeds and evicts nothing more.
	if res, l := cp.run(t, "drain-again", drain("w-1", time.Minute, false)); res.GetState() != taskv1.TaskState_TASK_STATE_SUCCEEDED || !strings.Contains(l, "already cordoned") {
		t.Fatalf("second drain: %v\n%s", res, l)
	}
	if n := simrecords.Count(records(t, dir), simrecords.KubectlDrain, "w-1"); n != 1 {
		t.Fatalf("the second drain evicted again: %d drains recorded", n)
	}

	if res, l := cp.run(t, "delete", deleteNode("w-1")); res.GetState() != taskv1.TaskState_TASK_STATE_SUCCEEDED || res.GetOutputs()["deleted"] != "w-1" {
		t.Fatalf("delete_node: %v\n%s", res, l)
	}
	nodes, err := simrecords.Nodes(dir)
	if err != nil || len(nodes) != 1 || nodes["cp-1"] != "control-plane" {
		t.Fatalf("nodes after deleting w-1: %v %v", nodes, err)
	}
	// A node already gone: delete and drain succeed, and say so.
	if res, _ := cp.run(t, "delete-again", deleteNode("w-1")); res.GetState() != taskv1.TaskState_TASK_STATE_SUCCEEDED {
		t.Fatalf("second delete_node: %v", res)
	}
	if n := simrecords.Count(records(t, dir), simrecords.KubectlDeleteNode, "w-1"); n != 1 {
		t.Fatalf("%d deletions of w-1 recorded, want 1", n)
	}
	if res, _ := cp.run(t, "drain-gone", drain("w-1", 0, false)); res.GetState() != taskv1.TaskState_TASK_STATE_SUCCEEDED || res.GetOutputs()["absent"] != "true" {
		t.Fatalf("drain of a deleted node: %v", res)
	}
	res, _ = cp.run(t, "ready-gone", nodeReady("w-1", time.Second))
	wantFailed(t, "node_ready of a deleted node", res, "NODE_NOT_READY", `nodes "w-1" not found`)
	if !strings.Contains(res.GetError().GetHint(), "deckctl task run w-1 diagnostics") {
		t.Fatalf("node_ready hint: %q", res.GetError().GetHint())
	}
}

// An API server that has just started (behind the load balancer, its RBAC not synced)
// answers the cluster admin Forbidden for a moment: the drain's read, cordon and eviction go
// on past it, each of them, and the drain succeeds with one cordon and one drain.
func TestDrainGoesOnPastAForbiddenAnswer(t *testing.T) {
	dir, cp, _ := simCluster(t, "w-1")
	// The node's read answers Forbidden, then the cordon's patch, then the eviction.
	if err := os.WriteFile(filepath.Join(dir, "forbidden"), []byte("get\npatch\ndrain\n"), 0o644); err != nil {
		t.Fatal(err)
	}
	res, l := cp.run(t, "drain", drain("w-1", 0, false))
	if res.GetState() != taskv1.TaskState_TASK_STATE_SUCCEEDED || res.GetOutputs()["drained"] != "w-1" {
		t.Fatalf("drain past three Forbidden answers: %v\n%s", res, l)
	}
	if n := strings.Count(l, "answered Forbidden"); n != 3 {
		t.Fatalf("the drain's log tells %d Forbidden answers, want 3:\n%s", n, l)
	}
	recs := records(t, dir)
	if simrecords.Count(recs, simrecords.KubectlCordon, "w-1") != 1 || simrecords.Count(recs, simrecords.KubectlDrain, "w-1") != 1 {
		t.Fatalf("want one cordon and one drain of w-1, records:\n%v", recs)
	}
}

// Right after a control plane's upgrade the kube-controller-manager's lease can lapse: the
// drain waits for a leader (its endpoints controller takes evicted pods out of their
// Services) before it evicts, and says so.
func TestDrainWaitsForAControllerManagerLeader(t *testing.T) {
	dir, cp, _ := simCluster(t, "w-1")
	if err := os.WriteFile(filepath.Join(dir, "kcm-lease-lapsed"), []byte("2"), 0o644); err != nil {
		t.Fatal(err)
	}
	res, l := cp.run(t, "drain", drain("w-1", 0, false))
	if res.GetState() != taskv1.TaskState_TASK_STATE_SUCCEEDED || res.GetOutputs()["drained"] != "w-1" {
		t.Fatalf("drain after a lapsed lease: %v\n%s", res, l)
	}
	wait, evict := strings.Index(l, "waiting for a kube-controller-manager that holds its lease"), strings.Index(l, "evicting pod")
	if wait < 0 || !strings.Contains(l, "cp-1_sim last renewed it ") || !strings.Contains(l, "holds its lease again") || evict < wait {
		t.Fatalf("the drain did not wait for the lease before evicting:\n%s", l)
	}
}

// The uncordon after an upgrade lets pods back onto a node Deckhand cordoned for its drain,
// and never onto one an operator had cordoned before: that one stays cordoned.
func TestUncordonOnlyWhatDeckhandCordoned(t *testing.T) {
	dir, cp, _ := simCluster(t, "w-1", "w-2")
	uncordon := func(name string) *taskv1.TaskSpec {
		return &taskv1.TaskSpec{Kind: &taskv1.TaskSpec_Drain{Drain: &taskv1.DrainSpec{NodeName: name, Uncordon: true}}}
	}
	cordoned := func(name string) bool {
		_, err := os.Stat(filepath.Join(dir, "cordoned", name))
		return err == nil
	}
	// An operator cordoned w-2 before the upgrade (kubectl cordon w-2).
	os.MkdirAll(filepath.Join(dir, "cordoned"), 0o755)
	os.WriteFile(filepath.Join(dir, "cordoned", "w-2"), []byte("cordoned"), 0o644)

	for _, n := range []string{"w-1", "w-2"} {
		if res, l := cp.run(t, "drain-"+n, drain(n, time.Minute, false)); res.GetState() != taskv1.TaskState_TASK_STATE_SUCCEEDED {
			t.Fatalf("drain %s: %v\n%s", n, res, l)
		}
	}
	res, l := cp.run(t, "uncordon-w-1", uncordon("w-1"))
	if res.GetState() != taskv1.TaskState_TASK_STATE_SUCCEEDED || res.GetOutputs()["uncordoned"] != "w-1" || cordoned("w-1") {
		t.Fatalf("uncordon of the node Deckhand cordoned: %v (still cordoned: %v)\n%s", res, cordoned("w-1"), l)
	}
	if b, _ := os.ReadFile(filepath.Join(dir, "annotations", "w-1")); strings.Contains(string(b), "deckhand.dev/cordoned") {
		t.Fatalf("w-1 keeps Deckhand's cordon mark after its uncordon: %q", b)
	}
	res, l = cp.run(t, "uncordon-w-2", uncordon("w-2"))
	if res.GetState() != taskv1.TaskState_TASK_STATE_SUCCEEDED || res.GetOutputs()["left_cordoned"] != "w-2" || !cordoned("w-2") {
		t.Fatalf("uncordon of the node an operator cordoned: %v (still cordoned: %v)\n%s", res, cordoned("w-2"), l)
	}
	if !strings.Contains(l, "was cordoned before Deckhand drained it") {
		t.Fatalf("the uncordon does not say why w-2 stays cordoned:\n%s", l)
	}
	if n := simrecords.Count(records(t, dir), simrecords.KubectlUncordon, "w-2"); n != 0 {
		t.Fatalf("w-2 was uncordoned %d times", n)
	}
	// A mark left on a node uncordoned by hand since goes with the next uncordon, which
	// changes nothing else.
	os.WriteFile(filepath.Join(dir, "annotations", "w-1"), []byte("deckhand.dev/cordoned=drain\n"), 0o644)
	if res, l := cp.run(t, "uncordon-stale-w-1", uncordon("w-1")); res.GetState() != taskv1.TaskState_TASK_STATE_SUCCEEDED || cordoned("w-1") {
		t.Fatalf("uncordon of a node with a stale mark: %v\n%s", res, l)
	}
	if b, _ := os.ReadFile(filepath.Join(dir, "annotations", "w-1")); strings.Contains(string(b), "deckhand.dev/cordoned") {
		t.Fatalf("the stale mark is still on w-1: %q", b)
	}
	if n := simrecords.Count(records(t, dir), simrecords.KubectlUncordon, "w-1"); n != 1 {
		t.Fatalf("w-1 was uncordoned %d times, want once (the stale mark's removal uncordons nothing)", n)
	}
	// Again: nothing changes on either.
	for _, n := range []string{"w-1", "w-2"} {
		if res, _ := cp.run(t, "uncordon-again-"+n, uncordon(n)); res.GetState() != taskv1.TaskState_TASK_STATE_SUCCEEDED || len(res.GetChanges()) != 0 {
			t.Fatalf("a second uncordon of %s: %v", n, res)
		}
	}
}

func TestDrainBlockedByADisruptionBudget(t *testing.T) {
	dir, cp, _ := simCluster(t, "w-1")
	os.MkdirAll(filepath.Join(dir, "drain-blocked"), 0o755)
	os.WriteFile(filepath.Join(dir, "drain-blocked", "w-1"), nil, 0o644)

	for _, force := range []bool{false, true} {
		res, l := cp.run(t, fmt.Sprintf("drain-force-%v", force), drain("w-1", 2*time.Minute, force))
		wantFailed(t, fmt.Sprintf("blocked drain (force %v)", force), res, "DRAIN_FAILED", "drain w-1", "disruption budget", "global timeout reached: 2m0s")
		if !strings.Contains(res.GetError().GetHint(), "--force") {
			t.Fatalf("the hint does not offer the way out: %q", res.GetError().GetHint())
		}
		if !strings.Contains(l, "evicting pod default/web-0") {
			t.Fatalf("kubectl's output is not in the task log:\n%s", l)
		}
	}
	recs := records(t, dir)
	if simrecords.Count(recs, simrecords.KubectlDrain, "w-1") != 0 || simrecords.Count(recs, simrecords.KubectlCordon, "w-1") != 1 {
		t.Fatalf("a blocked drain leaves the node cordoned, not drained; records:\n%v", recs)
	}
	// Once the budget allows it, the drain goes through.
	os.Remove(filepath.Join(dir, "drain-blocked", "w-1"))
	if res, _ := cp.run(t, "drain-unblocked", drain("w-1", time.Minute, false)); res.GetState() != taskv1.TaskState_TASK_STATE_SUCCEEDED {
		t.Fatalf("drain after the budget allows it: %v", res)
	}
}

func TestNodeReadyWaitsForTheKubelet(t *testing.T) {
	_, cp, ws := simCluster(t, "w-1")
	active := filepath.Join(ws["w-1"].root, "var/lib/deckhand-sim/systemd/kubelet.active")
	if err := os.Remove(active); err != nil { // the kubelet stopped
		t.Fatal(err)
	}
	res, l := cp.run(t, "ready-short", nodeReady("w-1", time.Second))
	wantFailed(t, "node_ready with the kubelet down", res, "NODE_NOT_READY", "not Ready after 1s", "Ready is False")
	if !strings.Contains(l, "node w-1 is not Ready yet: Ready is False") {
		t.Fatalf("no progress in the log:\n%s", l)
	}

	done, lg := cp.start(&taskv1.Task{Id: "ready-long", Spec: nodeReady("w-1", time.Minute)})
	testcluster.WaitFor(t, 30*time.Second, func() error {
		if !strings.Contains(lg.String(), "not Ready yet") {
			return fmt.Errorf("node_ready has not seen the node unready yet:\n%s", lg)
		}
		return nil
	})
	select {
	case res := <-done:
		t.Fatalf("node_ready finished while the kubelet is down: %v", res)
	default:
	}
	if err := os.WriteFile(active, nil, 0o644); err != nil { // the kubelet is back
		t.Fatal(err)
	}
	if res := wait(t, done); res.GetState() != taskv1.TaskState_TASK_STATE_SUCCEEDED {
		t.Fatalf("node_ready after the kubelet came back: %v\n%s", res, lg)
	}
}

func TestRefusals(t *testing.T) {
	dir, cp, ws := simCluster(t, "w-1")
	w := ws["w-1"]
	for kind, spec := range map[string]*taskv1.TaskSpec{"drain": drain("w-1", 0, false), "delete_node": deleteNode("w-1"), "node_ready": nodeReady("w-1", 0)} {
		res, _ := w.run(t, "on-worker-"+kind, spec)
		wantFailed(t, kind+" on a worker", res, "NOT_A_CONTROL_PLANE", "/etc/kubernetes/admin.conf")
	}
	for i, name := range []string{"", "W-1", "w_1", "-w1", "w-1.example", strings.Repeat("a", 64)} {
		for kind, spec := range map[string]*taskv1.TaskSpec{"drain": drain(name, 0, false), "delete_node": deleteNode(name), "node_ready": nodeReady(name, 0)} {
			res, _ := cp.run(t, fmt.Sprintf("bad-%s-%d", kind, i), spec)
			wantFailed(t, fmt.Sprintf("%s of %q", kind, name), res, "INVALID_ARGUMENT", "node_name")
		}
	}
	if recs := records(t, dir); simrecords.Count(recs, simrecords.KubectlCordon, "w-1")+simrecords.Count(recs, simrecords.KubectlDeleteNode, "w-1") != 0 {
		t.Fatalf("a refused task changed the cluster: %v", recs)
	}
}

func TestDryRunChangesNothing(t *testing.T) {
	dir, cp, _ := simCluster(t, "w-1")
	before := records(t, dir)
	for kind, spec := range map[string]*taskv1.TaskSpec{"drain": drain("w-1", 0, true), "delete_node": deleteNode("w-1")} {
		done, _ := cp.start(&taskv1.Task{Id: "dry-" + kind, Spec: spec, DryRun: true})
		res := wait(t, done)
		if res.GetState() != taskv1.TaskState_TASK_STATE_SUCCEEDED || len(res.GetOutputs()) != 0 || len(res.GetChanges()) == 0 {
			t.Fatalf("dry-run %s: %v", kind, res)
		}
	}
	// node_ready does not wait in a dry-run, even for a node that is not there.
	start := time.Now()
	done, _ := cp.start(&taskv1.Task{Id: "dry-ready", Spec: nodeReady("w-9", time.Minute), DryRun: true})
	if res := wait(t, done); res.GetState() != taskv1.TaskState_TASK_STATE_SUCCEEDED || len(res.GetOutputs()) != 0 || time.Since(start) > 20*time.Second {
		t.Fatalf("dry-run node_ready: %v after %v", res, time.Since(start))
	}
	if after := records(t, dir); len(after) != len(before) {
		t.Fatalf("a dry-run changed the cluster: %v", after[len(before):])
	}
	if nodes, _ := simrecords.Nodes(dir); nodes["w-1"] != "worker" {
		t.Fatalf("a dry-run deleted w-1: %v", nodes)
	}
}

func registered(name string, timeout time.Duration) *taskv1.TaskSpec {
	s := nodeReady(name, timeout)
	s.GetNodeReady().Wait = taskv1.NodeWait_NODE_WAIT_REGISTERED
	return s
}

// node_ready tells each node's podCIDR (one /24 each of the pod subnet) and InternalIP, in
// both modes; REGISTERED does not wait for Ready.
func TestNodeReadyTellsPodCIDRAndAddress(t *testing.T) {
	_, cp, ws := simCluster(t, "w-1", "w-2")
	seen := map[string]string{}
	for _, n := range []string{"cp-1", "w-1", "w-2"} {
		res, l := cp.run(t, "registered-"+n, registered(n, 30*time.Second))
		o := res.GetOutputs()
		if res.GetState() != taskv1.TaskState_TASK_STATE_SUCCEEDED || o["registered"] != n || !strings.HasPrefix(o["pod_cidr"], "10.244.") || !strings.HasSuffix(o["pod_cidr"], ".0/24") || o["address"] == "" {
			t.Fatalf("registered %s: %v\n%s", n, res, l)
		}
		if other, dup := seen[o["pod_cidr"]]; dup {
			t.Fatalf("%s and %s share the podCIDR %s", n, other, o["pod_cidr"])
		}
		seen[o["pod_cidr"]] = n
		ready, _ := cp.run(t, "ready-"+n, nodeReady(n, 30*time.Second))
		if ready.GetOutputs()["pod_cidr"] != o["pod_cidr"] || ready.GetOutputs()["address"] != o["address"] {
			t.Fatalf("ready %s tells other values: %v, registered said %v", n, ready.GetOutputs(), o)
		}
	}
	// With the kubelet down the node is registered but not Ready.
	if err := os.Remove(filepath.Join(ws["w-1"].root, "var/lib/deckhand-sim/systemd/kubelet.active")); err != nil {
		t.Fatal(err)
	}
	if res, l := cp.run(t, "registered-down", registered("w-1", 5*time.Second)); res.GetState() != taskv1.TaskState_TASK_STATE_SUCCEEDED {
		t.Fatalf("registered with the kubelet down: %v\n%s", res, l)
	}
	res, _ := cp.run(t, "registered-missing", registered("w-9", time.Second))
	wantFailed(t, "registered of a node that never joined", res, "NODE_NOT_READY", "not registered with a podCIDR after 1s", `nodes "w-9" not found`)
}
