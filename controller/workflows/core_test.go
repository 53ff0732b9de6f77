package workflows

import (
	"fmt"
	"testing"
	"time"

	"google.golang.org/protobuf/types/known/durationpb"
	"google.golang.org/protobuf/types/known/timestamppb"

	apiv1 "github.com/deckhandhq/deckhand/proto/deckhand/api/v1"
	storagev1 "github.com/deckhandhq/deckhand/proto/deckhand/storage/v1"
	taskv1 "github.com/deckhandhq/deckhand/proto/deckhand/task/v1"
)

var t0 = time.Date(2026, 11, 30, 12, 0, 0, 0, time.UTC)

const (
	pending   = storagev1.StepRecordState_STEP_RECORD_STATE_PENDING
	running   = storagev1.StepRecordState_STEP_RECORD_STATE_RUNNING
	succeeded = storagev1.StepRecordState_STEP_RECORD_STATE_SUCCEEDED
	failedSt  = storagev1.StepRecordState_STEP_RECORD_STATE_FAILED
	skipped   = storagev1.StepRecordState_STEP_RECORD_STATE_SKIPPED
	cancelled = storagev1.StepRecordState_STEP_RECORD_STATE_CANCELLED
)

func TestBackoffDoublesUpTo30s(t *testing.T) {
	for attempts, want := range map[uint32]time.Duration{0: 2 * time.Second, 1: 2 * time.Second, 2: 4 * time.Second, 3: 8 * time.Second, 5: 30 * time.Second, 1000: 30 * time.Second} {
		if got := backoffFor(2*time.Second, attempts); got != want {
			t.Errorf("backoffFor(2s, %d) = %v, want %v", attempts, got, want)
		}
	}
}

func TestSettle(t *testing.T) {
	task := func(st taskv1.TaskState, res *taskv1.TaskResult) *apiv1.TaskRecord {
		return &apiv1.TaskRecord{State: st, Result: res}
	}
	step := func(attempts, max uint32, startedAgo, timeout time.Duration, errReason string) *storagev1.StepRecord {
		s := &storagev1.StepRecord{Name: "n1/join", Lane: "n1", State: running, TaskId: "wf.n1-join.1", Attempts: attempts, MaxAttempts: max,
			Started: timestamppb.New(t0.Add(-startedAgo)), Timeout: durationpb.New(timeout)}
		if errReason != "" {
			s.Error = &taskv1.TaskError{Reason: errReason}
		}
		return s
	}
	for _, c := range []struct {
		name       string
		s          *storagev1.StepRecord
		rec        *apiv1.TaskRecord
		want       settlement
		state      storagev1.StepRecordState
		reason     string
		notBefore  time.Duration // after t0, when pending again
		outputs    map[string]string
		finishedAt bool
	}{
		{name: "running within its time", s: step(1, 3, time.Minute, 10*time.Minute, ""), rec: task(taskv1.TaskState_TASK_STATE_RUNNING, nil),
			want: stillRunning, state: running},
		{name: "running past its timeout: cancel it", s: step(1, 3, 11*time.Minute, 10*time.Minute, ""), rec: task(taskv1.TaskState_TASK_STATE_RUNNING, nil),
			want: timedOut, state: running, reason: "TIMEOUT"},
		{name: "timed out already: wait for the cancel", s: step(1, 3, 11*time.Minute, 10*time.Minute, "TIMEOUT"), rec: task(taskv1.TaskState_TASK_STATE_RUNNING, nil),
			want: stillRunning, state: running, reason: "TIMEOUT"},
		{name: "no timeout set", s: step(1, 3, 100*time.Hour, 0, ""), rec: task(taskv1.TaskState_TASK_STATE_PENDING, nil),
			want: stillRunning, state: running},
		{name: "succeeded: public outputs only", s: step(1, 3, time.Minute, 10*time.Minute, ""),
			rec:  task(taskv1.TaskState_TASK_STATE_SUCCEEDED, &taskv1.TaskResult{Outputs: map[string]string{"joined": "worker", "token": "abcdef.0123456789abcdef"}}),
			want: settledStep, state: succeeded, outputs: map[string]string{"joined": "worker", "token_id": "abcdef"}, finishedAt: true},
		{name: "failed with attempts left: pending after the backoff", s: step(1, 3, time.Minute, 10*time.Minute, ""),
			rec:  task(taskv1.TaskState_TASK_STATE_FAILED, &taskv1.TaskResult{Error: &taskv1.TaskError{Reason: "JOIN_FAILED"}}),
			want: settledStep, state: pending, reason: "JOIN_FAILED", notBefore: 2 * time.Second},
		{name: "failed on its last attempt", s: step(3, 3, time.Minute, 10*time.Minute, ""),
			rec:  task(taskv1.TaskState_TASK_STATE_FAILED, &taskv1.TaskResult{Error: &taskv1.TaskError{Reason: "JOIN_FAILED"}}),
			want: settledStep, state: failedSt, reason: "JOIN_FAILED", finishedAt: true},
		{name: "failed without an error: one is named", s: step(3, 3, time.Minute, 10*time.Minute, ""), rec: task(taskv1.TaskState_TASK_STATE_FAILED, nil),
			want: settledStep, state: failedSt, reason: "TASK_FAILED", finishedAt: true},
		{name: "cancelled after a timeout: the timeout is the error", s: step(3, 3, 11*time.Minute, 10*time.Minute, "TIMEOUT"),
			rec:  task(taskv1.TaskState_TASK_STATE_CANCELLED, &taskv1.TaskResult{Error: &taskv1.TaskError{Reason: "CANCELLED"}}),
			want: settledStep, state: failedSt, reason: "TIMEOUT", finishedAt: true},
		{name: "cancelled by someone else: its own error", s: step(1, 1, time.Minute, 10*time.Minute, ""),
			rec:  task(taskv1.TaskState_TASK_STATE_CANCELLED, &taskv1.TaskResult{Error: &taskv1.TaskError{Reason: "CANCELLED"}}),
			want: settledStep, state: failedSt, reason: "CANCELLED", finishedAt: true},
	} {
		got := settle("wf", c.s, c.rec, t0, 2*time.Second)
		if got != c.want || c.s.GetState() != c.state || c.s.GetError().GetReason() != c.reason {
			t.Errorf("%s: %v, step %v %q; want %v, %v %q", c.name, got, c.s.GetState(), c.s.GetError().GetReason(), c.want, c.state, c.reason)
		}
		if c.notBefore > 0 && !c.s.GetNotBefore().AsTime().Equal(t0.Add(c.notBefore)) {
			t.Errorf("%s: not before %v, want t0+%v", c.name, c.s.GetNotBefore().AsTime(), c.notBefore)
		}
		if c.outputs != nil && fmt.Sprint(c.s.GetOutputs()) != fmt.Sprint(c.outputs) {
			t.Errorf("%s: outputs %v, want %v (a secret output reaches the step only as its public ID)", c.name, c.s.GetOutputs(), c.outputs)
		}
		if c.finishedAt != (c.s.GetFinished() != nil) {
			t.Errorf("%s: finished %v", c.name, c.s.GetFinished())
		}
	}
}

// wf builds a loaded workflow from steps given as name, state and dependencies.
func wfOf(concurrency uint32, steps ...*storagev1.StepRecord) *loaded {
	w := &storagev1.WorkflowRecord{Id: "wf", Concurrency: concurrency, Steps: steps, State: storagev1.WorkflowRecordState_WORKFLOW_RECORD_STATE_RUNNING}
	return &loaded{wf: w, stepKV: index(w)}
}

func st(name string, state storagev1.StepRecordState, deps ...string) *storagev1.StepRecord {
	lane, _, _ := cutSlash(name)
	return &storagev1.StepRecord{Name: name, Lane: lane, State: state, DependsOn: deps, MaxAttempts: 3}
}

func cutSlash(s string) (string, string, bool) {
	for i := range s {
		if s[i] == '/' {
			return s[:i], s[i+1:], true
		}
	}
	return s, "", false
}

func TestEligible(t *testing.T) {
	always := func(s *storagev1.StepRecord) *storagev1.StepRecord { s.Always = true; return s }
	cof := func(s *storagev1.StepRecord) *storagev1.StepRecord { s.ContinueOnFailure = true; return s }
	later := func(s *storagev1.StepRecord) *storagev1.StepRecord {
		s.NotBefore = timestamppb.New(t0.Add(time.Second))
		return s
	}
	finally := func(s *storagev1.StepRecord) *storagev1.StepRecord {
		s.Finally = true
		return s
	}
	earlier := func(s *storagev1.StepRecord) *storagev1.StepRecord {
		s.NotBefore = timestamppb.New(t0.Add(-time.Second))
		return s
	}
	for _, c := range []struct {
		name   string
		steps  []*storagev1.StepRecord
		failed bool
		want   bool // for the last step
	}{
		{"no dependencies", []*storagev1.StepRecord{st("a/x", pending)}, false, true},
		{"not pending", []*storagev1.StepRecord{st("a/x", running)}, false, false},
		{"dependency succeeded", []*storagev1.StepRecord{st("a/x", succeeded), st("a/y", pending, "a/x")}, false, true},
		{"dependency skipped", []*storagev1.StepRecord{st("a/x", skipped), st("a/y", pending, "a/x")}, false, true},
		{"dependency running", []*storagev1.StepRecord{st("a/x", running), st("a/y", pending, "a/x")}, false, false},
		{"dependency failed", []*storagev1.StepRecord{st("a/x", failedSt), st("a/y", pending, "a/x")}, false, false},
		{"dependency failed, continue on failure", []*storagev1.StepRecord{cof(st("a/x", failedSt)), st("a/y", pending, "a/x")}, false, true},
		{"dependency unknown", []*storagev1.StepRecord{st("a/y", pending, "a/nope")}, false, false},
		{"always step after a failure", []*storagev1.StepRecord{st("a/x", failedSt), always(st("a/del", pending, "a/x"))}, true, true},
		{"always step after a cancel", []*storagev1.StepRecord{st("a/x", cancelled), always(st("a/del", pending, "a/x"))}, true, true},
		{"always step waits for its dependency", []*storagev1.StepRecord{st("a/x", running), always(st("a/del", pending, "a/x"))}, false, false},
		{"once a step failed only always steps start", []*storagev1.StepRecord{st("b/x", failedSt), st("a/x", pending)}, true, false},
		{"retry backoff not over", []*storagev1.StepRecord{later(st("a/x", pending))}, false, false},
		{"retry backoff over", []*storagev1.StepRecord{earlier(st("a/x", pending))}, false, true},
		// A finally step (routes after an apply's records) runs once its dependencies ended
		// or can no longer run, also after another step failed.
		{"finally step after a failed join", []*storagev1.StepRecord{st("b/join", failedSt), st("b/record", pending, "b/join"), st("a/record", succeeded),
			finally(st("a/routes", pending, "a/record", "b/record"))}, true, true},
		{"finally step waits for a record that can still run", []*storagev1.StepRecord{st("b/join", running), st("b/record", pending, "b/join"), st("a/record", succeeded),
			finally(st("a/routes", pending, "a/record", "b/record"))}, false, false},
		{"finally step waits for a running dependency", []*storagev1.StepRecord{st("b/record", running), st("a/record", failedSt),
			finally(st("a/routes", pending, "a/record", "b/record"))}, true, false},
		{"finally step with an unknown dependency", []*storagev1.StepRecord{finally(st("a/routes", pending, "a/nope"))}, false, false},
		// An always step still waits for a dependency that can no longer run: the etcd
		// check after a reset never runs when the drain failed before the reset.
		{"always step after a dependency that cannot run", []*storagev1.StepRecord{st("a/drain", failedSt), st("a/reset", pending, "a/drain"),
			always(st("a/etcd-check", pending, "a/reset"))}, true, false},
		// A paused workflow starts no gate step (a node's first change); the rest goes on.
		{"gate while paused", []*storagev1.StepRecord{st("a/stage", succeeded), gate(st("a/kubeadm", pending, "a/stage")), st("pause", pending)}, false, false},
		{"not a gate while paused", []*storagev1.StepRecord{st("a/kubeadm", succeeded), st("a/upgrade", pending, "a/kubeadm"), st("pause", pending)}, false, true},
		{"gate while not paused", []*storagev1.StepRecord{st("a/stage", succeeded), gate(st("a/kubeadm", pending, "a/stage"))}, false, true},
	} {
		steps := c.steps
		paused := steps[len(steps)-1].GetName() == "pause"
		if paused {
			steps = steps[:len(steps)-1]
		}
		l := wfOf(0, steps...)
		l.wf.Paused = paused
		if got := eligible(l, len(steps)-1, c.failed, mayRun(l, c.failed), t0); got != c.want {
			t.Errorf("%s: eligible = %v, want %v", c.name, got, c.want)
		}
	}
}

func gate(s *storagev1.StepRecord) *storagev1.StepRecord { s.Gate = true; return s }

func TestAdmissionBoundsLanes(t *testing.T) {
	retrying := st("b/join", pending)
	retrying.Attempts = 1
	for _, c := range []struct {
		name  string
		limit uint32
		steps []*storagev1.StepRecord
		try   []string // steps offered in order
		want  []string // admitted
	}{
		{"no limit", 0, []*storagev1.StepRecord{st("a/x", pending), st("b/x", pending), st("c/x", pending)}, []string{"a/x", "b/x", "c/x"}, []string{"a/x", "b/x", "c/x"}},
		{"two lanes at a time", 2, []*storagev1.StepRecord{st("a/x", pending), st("b/x", pending), st("c/x", pending)}, []string{"a/x", "b/x", "c/x"}, []string{"a/x", "b/x"}},
		{"a started lane's next step", 1, []*storagev1.StepRecord{st("a/x", succeeded), st("a/y", pending, "a/x"), st("b/x", pending)}, []string{"a/y", "b/x"}, []string{"a/y"}},
		{"a lane whose started steps all ended, with steps left, keeps its place", 1, []*storagev1.StepRecord{st("a/x", succeeded), st("a/y", succeeded), st("b/x", failedSt), st("a/z", pending), st("c/x", pending)}, []string{"c/x", "a/z"}, []string{"a/z"}},
		{"a finished lane frees its place", 1, []*storagev1.StepRecord{st("a/x", succeeded), st("b/x", pending)}, []string{"b/x"}, []string{"b/x"}},
		{"a step waiting for its retry keeps its lane's place", 1, []*storagev1.StepRecord{retrying, st("c/x", pending)}, []string{"c/x", "b/join"}, []string{"b/join"}},
		{"steps without a lane are not bounded", 1, []*storagev1.StepRecord{st("a/x", running), {Name: "routes", State: pending}}, []string{"routes"}, []string{"routes"}},
	} {
		l := wfOf(c.limit, c.steps...)
		a := newAdmission(l)
		var got []string
		for _, name := range c.try {
			s := l.step(name)
			if a.admits(s) {
				a.start(s)
				got = append(got, name)
			}
		}
		if fmt.Sprint(got) != fmt.Sprint(c.want) {
			t.Errorf("%s: admitted %v, want %v", c.name, got, c.want)
		}
	}
}

func TestOutcome(t *testing.T) {
	always := func(s *storagev1.StepRecord) *storagev1.StepRecord { s.Always = true; return s }
	cof := func(s *storagev1.StepRecord) *storagev1.StepRecord { s.ContinueOnFailure = true; return s }
	withErr := func(s *storagev1.StepRecord) *storagev1.StepRecord {
		s.Error = &taskv1.TaskError{Reason: "JOIN_FAILED"}
		return s
	}
	for _, c := range []struct {
		name   string
		steps  []*storagev1.StepRecord
		over   bool
		state  storagev1.WorkflowRecordState
		failed string
		reason string
	}{
		{"a step runs", []*storagev1.StepRecord{st("a/x", succeeded), st("a/y", running)}, false, 0, "", ""},
		{"a step can still run", []*storagev1.StepRecord{st("a/x", succeeded), st("a/y", pending, "a/x")}, false, 0, "", ""},
		{"all done", []*storagev1.StepRecord{st("a/x", succeeded), st("a/y", skipped)}, true, storagev1.WorkflowRecordState_WORKFLOW_RECORD_STATE_SUCCEEDED, "", ""},
		{"a failed step, its clean-up done", []*storagev1.StepRecord{withErr(st("a/x", failedSt)), st("a/y", pending, "a/x"), always(st("a/del", succeeded, "a/x"))},
			true, storagev1.WorkflowRecordState_WORKFLOW_RECORD_STATE_FAILED, "a/x", "JOIN_FAILED"},
		{"a failed step, its clean-up still to run", []*storagev1.StepRecord{withErr(st("a/x", failedSt)), always(st("a/del", pending, "a/x"))}, false, 0, "", ""},
		{"a failure that may continue", []*storagev1.StepRecord{cof(st("a/x", failedSt)), st("a/y", succeeded, "a/x")}, true, storagev1.WorkflowRecordState_WORKFLOW_RECORD_STATE_SUCCEEDED, "", ""},
		{"blocked: a dependency that does not exist", []*storagev1.StepRecord{st("a/y", pending, "a/nope")}, true, storagev1.WorkflowRecordState_WORKFLOW_RECORD_STATE_FAILED, "", "BLOCKED"},
		{"blocked: a cycle", []*storagev1.StepRecord{st("a/x", pending, "a/y"), st("a/y", pending, "a/x")}, true, storagev1.WorkflowRecordState_WORKFLOW_RECORD_STATE_FAILED, "", "BLOCKED"},
	} {
		over, state, failed, err := outcome(wfOf(0, c.steps...))
		if over != c.over || (over && (state != c.state || failed != c.failed || err.GetReason() != c.reason)) {
			t.Errorf("%s: over %v %v %q %q, want %v %v %q %q", c.name, over, state, failed, err.GetReason(), c.over, c.state, c.failed, c.reason)
		}
	}
}

func TestNodeChoice(t *testing.T) {
	cp := taskv1.NodeRole_NODE_ROLE_CONTROL_PLANE
	cl := &apiv1.Cluster{Nodes: []*apiv1.ClusterNode{{Name: "cp-1", Role: cp}, {Name: "cp-2", Role: cp}, {Name: "w-1", Role: taskv1.NodeRole_NODE_ROLE_WORKER}}}
	drain := &storagev1.StepRecord{Name: "cp-1/drain", Lane: "cp-1", Node: "cp-2", State: succeeded}
	skippedDrain := &storagev1.StepRecord{Name: "w-1/drain", Lane: "w-1", Node: "cp-1", State: skipped}
	l := wfOf(0, drain, skippedDrain)
	for _, c := range []struct {
		name  string
		s     *storagev1.StepRecord
		cl    *apiv1.Cluster
		ready map[string]bool
		node  string
		wait  string
	}{
		{"its own node", &storagev1.StepRecord{Node: "w-1"}, cl, nil, "w-1", ""},
		{"the node of the step it follows", &storagev1.StepRecord{NodeFrom: "cp-1/drain", Lane: "cp-1", AnyControlPlane: true}, cl, nil, "cp-2", ""},
		{"a skipped step's node is not taken", &storagev1.StepRecord{NodeFrom: "w-1/drain", Lane: "w-1", AnyControlPlane: true}, cl, map[string]bool{"cp-2": true}, "cp-2", ""},
		{"any Ready control plane but its own", &storagev1.StepRecord{Lane: "cp-1", AnyControlPlane: true}, cl, map[string]bool{"cp-1": true, "cp-2": true}, "cp-2", ""},
		{"the other control plane went NotReady: wait", &storagev1.StepRecord{Lane: "cp-1", AnyControlPlane: true}, cl, map[string]bool{"cp-1": true}, "", "waiting for a Ready control-plane node"},
		{"a worker is never chosen", &storagev1.StepRecord{Lane: "x", AnyControlPlane: true}, cl, map[string]bool{"w-1": true}, "", "waiting for a Ready control-plane node"},
		{"its own node when allowed and no other is Ready", &storagev1.StepRecord{Lane: "cp-1", AnyControlPlane: true, SelfAllowed: true}, cl, map[string]bool{"cp-1": true}, "cp-1", ""},
		{"another control plane first, also when its own is allowed", &storagev1.StepRecord{Lane: "cp-1", AnyControlPlane: true, SelfAllowed: true}, cl, map[string]bool{"cp-1": true, "cp-2": true}, "cp-2", ""},
		{"a worker's own node is never chosen", &storagev1.StepRecord{Lane: "w-1", AnyControlPlane: true, SelfAllowed: true}, cl, map[string]bool{"w-1": true}, "", "waiting for a Ready control-plane node"},
		{"no cluster yet", &storagev1.StepRecord{Lane: "x", AnyControlPlane: true}, nil, nil, "", "waiting for the cluster's first control plane"},
	} {
		node, wait := "", ""
		if n, ok := fixedNode(l, c.s); ok {
			node = n
		} else {
			node, wait = pickNode(c.s, c.cl, func(n string) bool { return c.ready[n] })
		}
		if node != c.node || wait != c.wait {
			t.Errorf("%s: %q %q, want %q %q", c.name, node, wait, c.node, c.wait)
		}
	}
}

func TestRenderSpecFeedsOutputsToInputs(t *testing.T) {
	tok := &storagev1.StepRecord{Name: "w-1/token", State: succeeded, TaskId: "t1", Ephemeral: true}
	join := &storagev1.StepRecord{Name: "w-1/join", Node: "w-1", State: pending,
		Task: spec(&taskv1.KubeadmJoinSpec{Cluster: &taskv1.ClusterSpec{KubernetesVersion: "v1.33.13"}}),
		Inputs: []*storagev1.StepInputRecord{{Field: "token", Step: "w-1/token", Output: "token"}, {Field: "ca_cert_hash", Step: "w-1/token", Output: "ca_cert_hash"},
			{Field: "api_server", Step: "w-1/token", Output: "api_server"}}}
	del := &storagev1.StepRecord{Name: "w-1/token-delete", State: pending, Always: true, Task: spec(&taskv1.KubeadmTokenSpec{}),
		Inputs: []*storagev1.StepInputRecord{{Field: "delete_token_id", Step: "w-1/token", Output: "token"}}}
	l := wfOf(0, tok, join, del)
	outs := map[string]map[string]string{"w-1/token": {"token": "abcdef.0123456789abcdef", "ca_cert_hash": "sha256:ab", "api_server": "10.0.0.1:6443"}}

	got, err := renderSpec(l, join, nil, 0, outs, false, nil)
	if err != nil || got.GetKubeadmJoin().GetToken() != "abcdef.0123456789abcdef" || got.GetKubeadmJoin().GetCaCertHash() != "sha256:ab" ||
		got.GetKubeadmJoin().GetCluster().GetControlPlaneEndpoint() != "10.0.0.1:6443" {
		t.Fatalf("rendered join: %v, %v", got, err)
	}
	if join.GetTask().GetKubeadmJoin().GetToken() != "" {
		t.Fatal("the token reached the step's template: secrets must stay in the task record only")
	}
	if got, err := renderSpec(l, del, nil, 0, outs, false, nil); err != nil || got.GetKubeadmToken().GetDeleteTokenId() != "abcdef" {
		t.Fatalf("token delete gets the token's ID only: %v, %v", got, err)
	}
	// The token step failed before it minted one: nothing to delete.
	if _, err := renderSpec(l, del, nil, 0, nil, false, nil); err == nil || fmt.Sprintf("%T", err) != "*workflows.skipError" {
		t.Fatalf("token delete without a token: %v, want a skip", err)
	}
	// A missing output fails the step, except in a dry run, which uses placeholders.
	if _, err := renderSpec(l, join, nil, 0, nil, false, nil); err == nil {
		t.Fatal("a join without its token rendered")
	}
	if got, err := renderSpec(l, join, nil, 0, nil, true, nil); err != nil || got.GetKubeadmJoin().GetToken() != placeholders["token"] {
		t.Fatalf("dry-run join: %v, %v", got, err)
	}
	// Inputs from the cluster record: a routes step of a node that left has nothing to do.
	routes := &storagev1.StepRecord{Name: "w-2/routes", Node: "w-2", State: pending, Task: spec(&taskv1.NetworkSpec{}),
		Inputs: []*storagev1.StepInputRecord{{Field: "pod_cidr"}, {Field: "routes"}}}
	cl := &apiv1.Cluster{Nodes: []*apiv1.ClusterNode{{Name: "w-1", PodCidr: "10.244.1.0/24", Address: "10.0.0.21"}, {Name: "w-2", PodCidr: "10.244.2.0/24", Address: "10.0.0.22"}}}
	got, err = renderSpec(wfOf(0, routes), routes, cl, 42, nil, false, nil)
	if err != nil || got.GetNetwork().GetPodCidr() != "10.244.2.0/24" || got.GetNetwork().GetGeneration() != 42 || len(got.GetNetwork().GetRoutes()) != 1 {
		t.Fatalf("routes of w-2: %v, %v", got, err)
	}
	if _, err := renderSpec(wfOf(0, routes), routes, &apiv1.Cluster{}, 43, nil, false, nil); err == nil || fmt.Sprintf("%T", err) != "*workflows.skipError" {
		t.Fatalf("routes of a node that left: %v, want a skip", err)
	}
}

func TestRetrySetAndCancel(t *testing.T) {
	tok := &storagev1.StepRecord{Name: "w-1/token", State: succeeded, Ephemeral: true, Node: "cp-1", AnyControlPlane: true}
	join := &storagev1.StepRecord{Name: "w-1/join", State: failedSt, Attempts: 2, MaxAttempts: 2, DependsOn: []string{"w-1/token"},
		Inputs: []*storagev1.StepInputRecord{{Field: "token", Step: "w-1/token", Output: "token"}}, Error: &taskv1.TaskError{Reason: "JOIN_FAILED"}}
	del := &storagev1.StepRecord{Name: "w-1/token-delete", State: succeeded, Always: true, DependsOn: []string{"w-1/join"}, NodeFrom: "w-1/token", Node: "cp-1"}
	prep := &storagev1.StepRecord{Name: "w-1/preflight", State: succeeded}
	other := &storagev1.StepRecord{Name: "w-2/join", State: cancelled}
	// The failed join's record never ran; the peers' routes ran without it (finally): a retry
	// runs them again, so they include the node it joins.
	rec := &storagev1.StepRecord{Name: "w-1/record", State: pending, DependsOn: []string{"w-1/join"}}
	routes := &storagev1.StepRecord{Name: "cp-1/routes", State: succeeded, Finally: true, DependsOn: []string{"w-1/record"}}
	l := wfOf(0, prep, tok, join, del, other, rec, routes)
	again := retrySet(l)
	want := map[string]bool{"cp-1/routes": true, "w-1/join": true, "w-1/record": true, "w-1/token": true, "w-1/token-delete": true, "w-2/join": true}
	if fmt.Sprint(again) != fmt.Sprint(want) {
		t.Fatalf("retry runs %v again, want %v (the failed and cancelled steps, the token they consume, the clean-up and finally steps after them)", again, want)
	}
	for _, s := range []*storagev1.StepRecord{tok, join, del} {
		resetForRetry(s)
	}
	if join.GetState() != pending || join.GetMaxAttempts() != 4 || join.GetError() != nil || tok.GetNode() != "" || del.GetNode() != "" {
		t.Fatalf("after the reset: join %v, token node %q, delete node %q", join, tok.GetNode(), del.GetNode())
	}

	w := &storagev1.WorkflowRecord{Steps: []*storagev1.StepRecord{{Name: "a", State: succeeded}, {Name: "b", State: running, TaskId: "t-b"}, {Name: "c", State: pending}, {Name: "d", State: failedSt}}}
	tasks, first, rest := cancelSteps(w, t0)
	if fmt.Sprint(tasks, first, rest) != "[t-b] [1] [2]" || w.Steps[1].GetState() != cancelled || w.Steps[2].GetState() != cancelled ||
		w.Steps[0].GetState() != succeeded || w.Steps[3].GetState() != failedSt || !w.Steps[1].GetFinished().AsTime().Equal(t0) {
		t.Fatalf("cancel: %v %v %v, steps %v", tasks, first, rest, w.Steps)
	}
}

// The engine's own write comes back through the watch as a header change at the revision
// it holds: no pass. Any later change, or a mark that is not a header change, is one.
func TestPassDueAfterMarks(t *testing.T) {
	for _, c := range []struct {
		name  string
		marks []dirtyMark
		held  int64
		want  bool
	}{
		{"own write echoed", []dirtyMark{{"w", 10}}, 10, false},
		{"older header change", []dirtyMark{{"w", 7}}, 10, false},
		{"someone else's later write", []dirtyMark{{"w", 11}}, 10, true},
		{"a task ended", []dirtyMark{{"w", anyChange}}, 10, true},
		{"echo, then a task ended", []dirtyMark{{"w", 10}, {"w", anyChange}}, 10, true},
		{"a task ended, then an echo", []dirtyMark{{"w", anyChange}, {"w", 10}}, 10, true},
		{"echo, then a later write", []dirtyMark{{"w", 9}, {"w", 12}, {"w", 10}}, 10, true},
		{"echoes only", []dirtyMark{{"w", 9}, {"w", 10}}, 10, false},
	} {
		due := map[string]int64{}
		for _, m := range c.marks {
			addMark(due, m)
		}
		if got := passDue(due["w"], c.held); got != c.want {
			t.Errorf("%s: passDue after %v holding %d = %v, want %v", c.name, c.marks, c.held, got, c.want)
		}
	}
}
