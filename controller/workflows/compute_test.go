package workflows

import (
	"fmt"
	"maps"
	"slices"
	"strings"
	"testing"
	"time"

	"google.golang.org/protobuf/proto"
	"google.golang.org/protobuf/types/known/durationpb"
	"google.golang.org/protobuf/types/known/timestamppb"

	"github.com/deckhandhq/deckhand/controller/tasks"
	"github.com/deckhandhq/deckhand/internal/features"
	apiv1 "github.com/deckhandhq/deckhand/proto/deckhand/api/v1"
	storagev1 "github.com/deckhandhq/deckhand/proto/deckhand/storage/v1"
	taskv1 "github.com/deckhandhq/deckhand/proto/deckhand/task/v1"
	"github.com/deckhandhq/deckhand/store"
)

// fakeView is compute's view from maps.
type fakeView struct {
	tasks            map[string]*apiv1.TaskRecord
	cluster          *apiv1.Cluster
	modRev, storeRev int64
	ready            map[string]bool
	features         map[string][]string // by node
	clusterReads     int
	held             map[string]*apiv1.TaskRecord // results waiting for the pass, as records
}

func (v *fakeView) Task(id string) (*apiv1.TaskRecord, error) {
	if r, ok := v.tasks[id]; ok {
		return r, nil
	}
	return nil, fmt.Errorf("%w: %s", tasks.ErrNotFound, id)
}

func (v *fakeView) Cluster() (*apiv1.Cluster, int64, int64, error) {
	v.clusterReads++
	if v.cluster == nil {
		return nil, 0, v.storeRev, nil
	}
	return proto.Clone(v.cluster).(*apiv1.Cluster), v.modRev, v.storeRev, nil
}

func (v *fakeView) Ready(n string) bool { return v.ready[n] }

func (v *fakeView) Reads(n, f string) bool { return features.Has(v.features[n], f) }

func (v *fakeView) Held(id string) (heldWrite, bool) {
	r, ok := v.held[id]
	if !ok {
		return heldWrite{}, false
	}
	b, err := proto.Marshal(r)
	if err != nil {
		panic(err)
	}
	return heldWrite{rec: r, cmp: store.ModRevisionIs(tasks.Prefix+id, 7), put: store.Put(tasks.Prefix+id, b)}, true
}

func rec(id, wf, step string, st taskv1.TaskState, outputs map[string]string, e *taskv1.TaskError) *apiv1.TaskRecord {
	return &apiv1.TaskRecord{Task: &taskv1.Task{Id: id, WorkflowId: wf, Step: step}, State: st,
		Result: &taskv1.TaskResult{Outputs: outputs, Error: e}}
}

func runningStep(name string, attempt uint32, startedAgo time.Duration, deps ...string) *storagev1.StepRecord {
	s := st(name, running, deps...)
	s.Attempts, s.TaskId = attempt, taskID("wf", name, attempt)
	s.Started = timestamppb.New(t0.Add(-startedAgo))
	s.Timeout = durationpb.New(10 * time.Minute)
	return s
}

// barrier is an apply's step that waits for every one of deps (see plan.allEnded).
func barrier(deps ...string) *storagev1.StepRecord {
	return &storagev1.StepRecord{Name: "all/recorded", Action: ActionBarrier, State: pending, DependsOn: deps, Finally: true, ContinueOnFailure: true}
}

// finally makes s a step that runs once its dependencies ended, in any way.
func finally(s *storagev1.StepRecord) *storagev1.StepRecord {
	s.Finally, s.ContinueOnFailure, s.Lane, s.Node = true, true, "", strings.Split(s.GetName(), "/")[0]
	return s
}

func withTask(s *storagev1.StepRecord, t *taskv1.TaskSpec) *storagev1.StepRecord {
	s.Task = t
	return s
}

func joinTask() *taskv1.TaskSpec {
	return &taskv1.TaskSpec{Kind: &taskv1.TaskSpec_KubeadmJoin{KubeadmJoin: &taskv1.KubeadmJoinSpec{}}}
}

func tokenTask() *taskv1.TaskSpec {
	return &taskv1.TaskSpec{Kind: &taskv1.TaskSpec_KubeadmToken{KubeadmToken: &taskv1.KubeadmTokenSpec{}}}
}

func noop() *taskv1.TaskSpec {
	return &taskv1.TaskSpec{Kind: &taskv1.TaskSpec_Drain{Drain: &taskv1.DrainSpec{}}}
}

// fillTasks gives every step without a task spec one, so that a dispatched step makes a
// valid task.
func fillTasks(l *loaded) *loaded {
	for _, s := range l.wf.GetSteps() {
		if s.GetTask() == nil && s.GetAction() == "" {
			s.Task = noop()
		}
		if s.GetNode() == "" && !s.GetAnyControlPlane() && s.GetNodeFrom() == "" {
			s.Node = s.GetLane()
		}
	}
	return l
}

const (
	tokenValue = "abcdef.0123456789abcdef"
	caHash     = "sha256:1111111111111111111111111111111111111111111111111111111111111111"
)

// TestCompute is the engine's decisions, one pass each: what a user sees in deckctl
// workflow describe after it (step states, errors, which tasks run where) and what the
// engine writes.
func TestCompute(t *testing.T) {
	type want struct {
		states  map[string]storagev1.StepRecordState // steps not named keep their state
		reasons map[string]string                    // step → its error's reason
		create  []string                             // "STEP on NODE" for each task created
		cancel  []string                             // task IDs
		missing []string                             // task IDs
		over    storagev1.WorkflowRecordState        // 0: not over
		wake    time.Duration                        // after t0; 0: none
		again   bool
		check   func(t *testing.T, l *loaded, d *decisions)
	}
	pendingAfter := func(s *storagev1.StepRecord, d time.Duration) *storagev1.StepRecord {
		s.NotBefore = timestamppb.New(t0.Add(d))
		return s
	}
	always := func(s *storagev1.StepRecord) *storagev1.StepRecord { s.Always = true; return s }
	ephemeral := func(s *storagev1.StepRecord) *storagev1.StepRecord { s.Ephemeral = true; return s }
	anyCP := func(s *storagev1.StepRecord) *storagev1.StepRecord { s.AnyControlPlane = true; s.Node = ""; return s }
	attempts := func(s *storagev1.StepRecord, n, max uint32) *storagev1.StepRecord {
		s.Attempts, s.MaxAttempts, s.TaskId = n, max, taskID("wf", s.GetName(), n)
		return s
	}
	joinWithInputs := func() *storagev1.StepRecord {
		s := withTask(st("n2/join", pending, "n2/token"), joinTask())
		s.Inputs = []*storagev1.StepInputRecord{{Field: "token", Step: "n2/token", Output: "token"}, {Field: "ca_cert_hash", Step: "n2/token", Output: "ca_cert_hash"}}
		return s
	}
	tokenDone := func() *storagev1.StepRecord {
		s := withTask(attempts(st("n2/token", succeeded), 1, 3), tokenTask())
		s.Node = "n1"
		return ephemeral(s)
	}
	tokenRec := rec("wf.n2.token.1", "wf", "n2/token", taskv1.TaskState_TASK_STATE_SUCCEEDED, map[string]string{"token": tokenValue, "ca_cert_hash": caHash}, nil)

	for _, c := range []struct {
		name    string
		wf      *loaded
		dry     bool
		view    fakeView
		want    want
		maxPass int
		// maxWrite bounds a pass's write (0: no bound).
		maxWrite int
		// maxBytes bounds the bytes of the steps and tasks one pass writes (0: no bound).
		maxBytes int
	}{
		{name: "a first pass starts the steps without dependencies",
			wf:   wfOf(0, st("n1/a", pending), st("n1/b", pending, "n1/a"), st("n2/a", pending)),
			want: want{states: map[string]storagev1.StepRecordState{"n1/a": running, "n1/b": pending, "n2/a": running}, create: []string{"n1/a on n1", "n2/a on n2"}}},
		{name: "lanes: concurrency 1 starts one node; its next step goes on in its lane",
			wf:   wfOf(1, st("n1/a", succeeded), st("n1/b", pending, "n1/a"), st("n2/a", pending)),
			want: want{states: map[string]storagev1.StepRecordState{"n1/b": running, "n2/a": pending}, create: []string{"n1/b on n1"}}},
		{name: "lanes: a finished lane makes room for the next",
			wf:   wfOf(1, st("n1/a", succeeded), runningStep("n1/b", 1, time.Minute, "n1/a"), st("n2/a", pending)),
			view: fakeView{tasks: map[string]*apiv1.TaskRecord{"wf.n1.b.1": rec("wf.n1.b.1", "wf", "n1/b", taskv1.TaskState_TASK_STATE_SUCCEEDED, nil, nil)}},
			want: want{states: map[string]storagev1.StepRecordState{"n1/b": succeeded, "n2/a": running}, create: []string{"n2/a on n2"}}},
		{name: "a result held for the pass ends its step and is written with it; the next step starts",
			wf: wfOf(0, runningStep("n1/a", 1, time.Minute), st("n1/b", pending, "n1/a")),
			view: fakeView{tasks: map[string]*apiv1.TaskRecord{"wf.n1.a.1": rec("wf.n1.a.1", "wf", "n1/a", taskv1.TaskState_TASK_STATE_RUNNING, nil, nil)},
				held: map[string]*apiv1.TaskRecord{"wf.n1.a.1": rec("wf.n1.a.1", "wf", "n1/a", taskv1.TaskState_TASK_STATE_SUCCEEDED, map[string]string{"x": "1"}, nil)}},
			want: want{states: map[string]storagev1.StepRecordState{"n1/a": succeeded, "n1/b": running}, create: []string{"n1/b on n1"},
				check: func(t *testing.T, l *loaded, d *decisions) {
					if !slices.Equal(d.recorded, []string{"wf.n1.a.1"}) || len(d.recordIfs) != 1 || len(d.recordOps) != 1 || d.recordOps[0].Key != tasks.Prefix+"wf.n1.a.1" {
						t.Errorf("recorded %v, %d compares, %v", d.recorded, len(d.recordIfs), d.recordOps)
					}
					if got := l.step("n1/a").GetOutputs()["x"]; got != "1" {
						t.Errorf("the step's outputs from the held result: %q", got)
					}
				}}},
		{name: "a step started in the pass takes its inputs from the held result the pass records",
			wf: fillTasks(wfOf(0, st("n1/a", succeeded), func() *storagev1.StepRecord {
				s := withTask(runningStep("n2/token", 1, time.Second), tokenTask())
				s.Node = "n1"
				return ephemeral(s)
			}(), joinWithInputs())),
			view: fakeView{tasks: map[string]*apiv1.TaskRecord{"wf.n2.token.1": rec("wf.n2.token.1", "wf", "n2/token", taskv1.TaskState_TASK_STATE_RUNNING, nil, nil)},
				held: map[string]*apiv1.TaskRecord{"wf.n2.token.1": rec("wf.n2.token.1", "wf", "n2/token", taskv1.TaskState_TASK_STATE_SUCCEEDED, map[string]string{"token": tokenValue, "ca_cert_hash": caHash}, nil)}},
			want: want{states: map[string]storagev1.StepRecordState{"n2/token": succeeded, "n2/join": running}, create: []string{"n2/join on n2"},
				check: func(t *testing.T, l *loaded, d *decisions) {
					if j := d.create[0].GetSpec().GetKubeadmJoin(); j.GetToken() != tokenValue || j.GetCaCertHash() != caHash {
						t.Errorf("the join's token %q and CA hash %q, want the held result's", j.GetToken(), j.GetCaCertHash())
					}
				}}},
		{name: "a held result of a failed task ends the attempt, written with the step; the retry waits for its backoff",
			wf: wfOf(0, runningStep("n1/a", 1, time.Minute), st("n1/b", pending, "n1/a")),
			view: fakeView{tasks: map[string]*apiv1.TaskRecord{"wf.n1.a.1": rec("wf.n1.a.1", "wf", "n1/a", taskv1.TaskState_TASK_STATE_RUNNING, nil, nil)},
				held: map[string]*apiv1.TaskRecord{"wf.n1.a.1": rec("wf.n1.a.1", "wf", "n1/a", taskv1.TaskState_TASK_STATE_FAILED, nil, &taskv1.TaskError{Reason: "PULL_FAILED"})}},
			want: want{states: map[string]storagev1.StepRecordState{"n1/a": pending, "n1/b": pending}, reasons: map[string]string{"n1/a": "PULL_FAILED"}, wake: 2 * time.Second,
				check: func(t *testing.T, l *loaded, d *decisions) {
					if !slices.Equal(d.recorded, []string{"wf.n1.a.1"}) {
						t.Errorf("recorded %v", d.recorded)
					}
				}}},
		{name: "held results past the write's room wait for the next pass, unrecorded",
			wf: wfOf(0, runningStep("n1/a", 1, time.Minute), runningStep("n2/a", 1, time.Minute), runningStep("n3/a", 1, time.Minute)),
			view: fakeView{tasks: map[string]*apiv1.TaskRecord{
				"wf.n1.a.1": rec("wf.n1.a.1", "wf", "n1/a", taskv1.TaskState_TASK_STATE_RUNNING, nil, nil),
				"wf.n2.a.1": rec("wf.n2.a.1", "wf", "n2/a", taskv1.TaskState_TASK_STATE_RUNNING, nil, nil),
				"wf.n3.a.1": rec("wf.n3.a.1", "wf", "n3/a", taskv1.TaskState_TASK_STATE_RUNNING, nil, nil)},
				held: map[string]*apiv1.TaskRecord{
					"wf.n1.a.1": rec("wf.n1.a.1", "wf", "n1/a", taskv1.TaskState_TASK_STATE_SUCCEEDED, nil, nil),
					"wf.n2.a.1": rec("wf.n2.a.1", "wf", "n2/a", taskv1.TaskState_TASK_STATE_SUCCEEDED, nil, nil),
					"wf.n3.a.1": rec("wf.n3.a.1", "wf", "n3/a", taskv1.TaskState_TASK_STATE_SUCCEEDED, nil, nil)}},
			maxWrite: 7, // the header, the cluster record and two steps with their task records (a third needs 8)
			want: want{states: map[string]storagev1.StepRecordState{"n1/a": succeeded, "n2/a": succeeded, "n3/a": running}, again: true, wake: 9*time.Minute + time.Millisecond,
				check: func(t *testing.T, l *loaded, d *decisions) {
					if !slices.Equal(d.recorded, []string{"wf.n1.a.1", "wf.n2.a.1"}) {
						t.Errorf("recorded %v", d.recorded)
					}
				}}},
		{name: "a big step still running takes no room: the results after it are recorded in the same pass",
			wf: wfOf(0, runningStep("n1/a", 1, time.Minute), func() *storagev1.StepRecord {
				s := runningStep("n2/a", 2, time.Minute) // outputs of its first attempt: 20 KB
				s.Outputs = map[string]string{"log": strings.Repeat("x", 20000)}
				return s
			}(), runningStep("n3/a", 1, time.Minute)),
			view: fakeView{tasks: map[string]*apiv1.TaskRecord{
				"wf.n1.a.1": rec("wf.n1.a.1", "wf", "n1/a", taskv1.TaskState_TASK_STATE_RUNNING, nil, nil),
				"wf.n2.a.2": rec("wf.n2.a.2", "wf", "n2/a", taskv1.TaskState_TASK_STATE_RUNNING, nil, nil),
				"wf.n3.a.1": rec("wf.n3.a.1", "wf", "n3/a", taskv1.TaskState_TASK_STATE_RUNNING, nil, nil)},
				held: map[string]*apiv1.TaskRecord{
					"wf.n1.a.1": rec("wf.n1.a.1", "wf", "n1/a", taskv1.TaskState_TASK_STATE_SUCCEEDED, nil, nil),
					"wf.n3.a.1": rec("wf.n3.a.1", "wf", "n3/a", taskv1.TaskState_TASK_STATE_SUCCEEDED, nil, nil)}},
			maxBytes: 8000, // the two small steps and their records fit; the running one would not
			want: want{states: map[string]storagev1.StepRecordState{"n1/a": succeeded, "n3/a": succeeded}, wake: 9*time.Minute + time.Millisecond,
				check: func(t *testing.T, l *loaded, d *decisions) {
					if !slices.Equal(d.recorded, []string{"wf.n1.a.1", "wf.n3.a.1"}) || d.again {
						t.Errorf("recorded %v, again %v; want both held results in this pass", d.recorded, d.again)
					}
				}}},
		{name: "the pass that would end the workflow counts the task records of its held results: the end waits for the next pass",
			wf: func() *loaded {
				l := wfOf(0, runningStep("n1/a", 1, time.Minute), runningStep("n2/a", 1, time.Minute))
				l.wf.Nodes = []string{"n1", "n2"}
				return l
			}(),
			view: fakeView{tasks: map[string]*apiv1.TaskRecord{
				"wf.n1.a.1": rec("wf.n1.a.1", "wf", "n1/a", taskv1.TaskState_TASK_STATE_RUNNING, nil, nil),
				"wf.n2.a.1": rec("wf.n2.a.1", "wf", "n2/a", taskv1.TaskState_TASK_STATE_RUNNING, nil, nil)},
				held: map[string]*apiv1.TaskRecord{
					"wf.n1.a.1": rec("wf.n1.a.1", "wf", "n1/a", taskv1.TaskState_TASK_STATE_SUCCEEDED, nil, nil),
					"wf.n2.a.1": rec("wf.n2.a.1", "wf", "n2/a", taskv1.TaskState_TASK_STATE_SUCCEEDED, nil, nil)}},
			maxWrite: 7, // the header, the cluster record, two steps, two task records: the two locks do not fit
			want: want{states: map[string]storagev1.StepRecordState{"n1/a": succeeded, "n2/a": succeeded}, again: true,
				check: func(t *testing.T, l *loaded, d *decisions) {
					if len(d.recorded) != 2 || d.over {
						t.Errorf("recorded %v, over %v", d.recorded, d.over)
					}
				}}},
		{name: "a step still running within its time changes nothing",
			wf:   wfOf(0, runningStep("n1/a", 1, time.Minute)),
			view: fakeView{tasks: map[string]*apiv1.TaskRecord{"wf.n1.a.1": rec("wf.n1.a.1", "wf", "n1/a", taskv1.TaskState_TASK_STATE_RUNNING, nil, nil)}},
			want: want{states: map[string]storagev1.StepRecordState{"n1/a": running}, wake: 9*time.Minute + time.Millisecond}},
		{name: "retry: a failed attempt is pending again after the backoff, and the engine wakes then",
			wf:   wfOf(0, runningStep("n1/a", 2, time.Minute)),
			view: fakeView{tasks: map[string]*apiv1.TaskRecord{"wf.n1.a.2": rec("wf.n1.a.2", "wf", "n1/a", taskv1.TaskState_TASK_STATE_FAILED, nil, &taskv1.TaskError{Reason: "PULL_FAILED"})}},
			want: want{states: map[string]storagev1.StepRecordState{"n1/a": pending}, reasons: map[string]string{"n1/a": "PULL_FAILED"}, wake: 4 * time.Second}},
		{name: "retry: not before its backoff ends",
			wf:   wfOf(0, pendingAfter(attempts(st("n1/a", pending), 1, 3), time.Second)),
			want: want{states: map[string]storagev1.StepRecordState{"n1/a": pending}, wake: time.Second}},
		{name: "retry: after its backoff, the next attempt under the next task ID",
			wf: wfOf(0, pendingAfter(attempts(st("n1/a", pending), 1, 3), -time.Second)),
			want: want{states: map[string]storagev1.StepRecordState{"n1/a": running}, create: []string{"n1/a on n1"},
				check: func(t *testing.T, l *loaded, d *decisions) {
					if id := d.create[0].GetId(); id != "wf.n1.a.2" {
						t.Errorf("second attempt's task ID %s, want wf.n1.a.2", id)
					}
				}}},
		{name: "attempt limit: the last attempt fails the workflow with the step's error",
			wf:   wfOf(0, runningStep("n1/a", 3, time.Minute), st("n1/b", pending, "n1/a")),
			view: fakeView{tasks: map[string]*apiv1.TaskRecord{"wf.n1.a.3": rec("wf.n1.a.3", "wf", "n1/a", taskv1.TaskState_TASK_STATE_FAILED, nil, &taskv1.TaskError{Reason: "PREFLIGHT_FAILED"})}},
			want: want{states: map[string]storagev1.StepRecordState{"n1/a": failedSt, "n1/b": pending}, reasons: map[string]string{"n1/a": "PREFLIGHT_FAILED"}, over: storagev1.WorkflowRecordState_WORKFLOW_RECORD_STATE_FAILED,
				check: func(t *testing.T, l *loaded, d *decisions) {
					if l.wf.GetFailedStep() != "n1/a" || l.wf.GetError().GetReason() != "PREFLIGHT_FAILED" {
						t.Errorf("workflow failed at %q with %v, want n1/a PREFLIGHT_FAILED", l.wf.GetFailedStep(), l.wf.GetError())
					}
				}}},
		{name: "always: a failed join still deletes its token, and the workflow waits for that",
			wf: wfOf(0, tokenDone(), withTask(attempts(st("n2/join", failedSt, "n2/token"), 3, 3), joinTask()), st("n2/record", pending, "n2/join"),
				always(&storagev1.StepRecord{Name: "n2/token-delete", Lane: "n2", NodeFrom: "n2/token", State: pending, MaxAttempts: 3, DependsOn: []string{"n2/token", "n2/join"},
					Task: tokenTask(), Inputs: []*storagev1.StepInputRecord{{Field: "delete_token_id", Step: "n2/token", Output: "token"}}})),
			view: fakeView{tasks: map[string]*apiv1.TaskRecord{"wf.n2.token.1": tokenRec}},
			want: want{states: map[string]storagev1.StepRecordState{"n2/record": pending, "n2/token-delete": running}, create: []string{"n2/token-delete on n1"},
				check: func(t *testing.T, l *loaded, d *decisions) {
					if got := d.create[0].GetSpec().GetKubeadmToken().GetDeleteTokenId(); got != "abcdef" {
						t.Errorf("token-delete deletes %q, want the minted token's ID abcdef", got)
					}
				}}},
		{name: "always: with the token never minted, the delete has nothing to do",
			wf: wfOf(0, withTask(attempts(st("n2/token", failedSt), 3, 3), tokenTask()),
				always(&storagev1.StepRecord{Name: "n2/token-delete", Lane: "n2", Node: "n1", State: pending, MaxAttempts: 3, DependsOn: []string{"n2/token"},
					Task: tokenTask(), Inputs: []*storagev1.StepInputRecord{{Field: "delete_token_id", Step: "n2/token", Output: "token"}}})),
			want: want{states: map[string]storagev1.StepRecordState{"n2/token-delete": skipped}, reasons: map[string]string{"n2/token-delete": "NOTHING_TO_DO"}, over: storagev1.WorkflowRecordState_WORKFLOW_RECORD_STATE_FAILED}},
		{name: "timeout: a task past its step's timeout is cancelled, and the step says TIMEOUT",
			wf:   wfOf(0, runningStep("n1/a", 1, 11*time.Minute)),
			view: fakeView{tasks: map[string]*apiv1.TaskRecord{"wf.n1.a.1": rec("wf.n1.a.1", "wf", "n1/a", taskv1.TaskState_TASK_STATE_RUNNING, nil, nil)}},
			want: want{states: map[string]storagev1.StepRecordState{"n1/a": running}, reasons: map[string]string{"n1/a": "TIMEOUT"}, cancel: []string{"wf.n1.a.1"}}},
		{name: "timeout: its cancellation counts as a TIMEOUT failure",
			wf: wfOf(0, func() *storagev1.StepRecord {
				s := runningStep("n1/a", 3, 11*time.Minute)
				s.MaxAttempts, s.Error = 3, &taskv1.TaskError{Reason: "TIMEOUT"}
				return s
			}()),
			view: fakeView{tasks: map[string]*apiv1.TaskRecord{"wf.n1.a.3": rec("wf.n1.a.3", "wf", "n1/a", taskv1.TaskState_TASK_STATE_CANCELLED, nil, &taskv1.TaskError{Reason: "CANCELLED"})}},
			want: want{states: map[string]storagev1.StepRecordState{"n1/a": failedSt}, reasons: map[string]string{"n1/a": "TIMEOUT"}, over: storagev1.WorkflowRecordState_WORKFLOW_RECORD_STATE_FAILED}},
		{name: "cancel: a task cancelled by a person fails its step with its own error",
			wf:   wfOf(0, runningStep("n1/a", 3, time.Minute)),
			view: fakeView{tasks: map[string]*apiv1.TaskRecord{"wf.n1.a.3": rec("wf.n1.a.3", "wf", "n1/a", taskv1.TaskState_TASK_STATE_CANCELLED, nil, &taskv1.TaskError{Reason: "CANCELLED"})}},
			want: want{states: map[string]storagev1.StepRecordState{"n1/a": failedSt}, reasons: map[string]string{"n1/a": "CANCELLED"}, over: storagev1.WorkflowRecordState_WORKFLOW_RECORD_STATE_FAILED}},
		{name: "outputs feed inputs: the join's task carries the token, the step never does",
			wf:   wfOf(0, tokenDone(), joinWithInputs()),
			view: fakeView{tasks: map[string]*apiv1.TaskRecord{"wf.n2.token.1": tokenRec}},
			want: want{states: map[string]storagev1.StepRecordState{"n2/join": running}, create: []string{"n2/join on n2"},
				check: func(t *testing.T, l *loaded, d *decisions) {
					j := d.create[0].GetSpec().GetKubeadmJoin()
					if j.GetToken() != tokenValue || j.GetCaCertHash() != caHash {
						t.Errorf("join task got token %q hash %q", j.GetToken(), j.GetCaCertHash())
					}
					if b, _ := proto.Marshal(l.step("n2/join")); strings.Contains(string(b), tokenValue) {
						t.Error("the join step holds the token")
					}
				}}},
		{name: "outputs feed inputs: a producer whose record is gone fails the consumer, naming the output",
			wf: wfOf(0, tokenDone(), joinWithInputs()),
			want: want{states: map[string]storagev1.StepRecordState{"n2/join": failedSt}, reasons: map[string]string{"n2/join": "INPUT_MISSING"}, over: storagev1.WorkflowRecordState_WORKFLOW_RECORD_STATE_FAILED,
				check: func(t *testing.T, l *loaded, d *decisions) {
					if m := l.step("n2/join").GetError().GetMessage(); !strings.Contains(m, "produced no token") {
						t.Errorf("error %q does not name the missing output", m)
					}
				}}},
		{name: "outputs feed inputs: a producer whose record is gone still gives its public outputs (a retry after retention)",
			wf: wfOf(0, func() *storagev1.StepRecord {
				s := attempts(st("n2/registered", succeeded), 1, 3)
				s.Outputs = map[string]string{"pod_cidr": "10.244.2.0/24", "address": "10.250.0.12"}
				return s
			}(), func() *storagev1.StepRecord {
				s := withTask(st("n2/network", pending, "n2/registered"), &taskv1.TaskSpec{Kind: &taskv1.TaskSpec_Network{Network: &taskv1.NetworkSpec{}}})
				s.Inputs = []*storagev1.StepInputRecord{{Field: "pod_cidr", Step: "n2/registered", Output: "pod_cidr"}}
				return s
			}()),
			want: want{states: map[string]storagev1.StepRecordState{"n2/network": running}, create: []string{"n2/network on n2"},
				check: func(t *testing.T, l *loaded, d *decisions) {
					if len(d.create) == 0 {
						return // reported above
					}
					if got := d.create[0].GetSpec().GetNetwork().GetPodCidr(); got != "10.244.2.0/24" {
						t.Errorf("network task pod CIDR %q, want the registered step's 10.244.2.0/24", got)
					}
				}}},
		{name: "dry-run: a producer that did not run leaves placeholders; actions are skipped",
			wf: func() *loaded {
				tok := tokenDone()
				tok.State = skipped
				return wfOf(0, tok, joinWithInputs(), &storagev1.StepRecord{Name: "n2/record", Lane: "n2", Action: ActionRecordNode, State: pending, DependsOn: []string{"n2/token"}})
			}(),
			dry: true,
			want: want{states: map[string]storagev1.StepRecordState{"n2/join": running, "n2/record": skipped}, create: []string{"n2/join on n2"},
				check: func(t *testing.T, l *loaded, d *decisions) {
					if j := d.create[0].GetSpec().GetKubeadmJoin(); j.GetToken() != placeholders["token"] || !d.create[0].GetDryRun() {
						t.Errorf("dry-run join task: token %q, dry_run %v", j.GetToken(), d.create[0].GetDryRun())
					}
					if d.clusterChanged {
						t.Error("a dry-run changed the cluster record")
					}
				}}},
		{name: "NotReady: a step for any control plane waits, saying why",
			wf:   wfOf(0, anyCP(st("n2/drain", pending))),
			view: fakeView{cluster: testCluster("n1", "n2"), modRev: 5, ready: map[string]bool{"n2": true}},
			want: want{states: map[string]storagev1.StepRecordState{"n2/drain": pending}, reasons: map[string]string{"n2/drain": "WAITING"}}},
		{name: "NotReady: a control plane Ready again takes the step",
			wf:   wfOf(0, anyCP(st("n2/drain", pending))),
			view: fakeView{cluster: testCluster("n1", "n2"), modRev: 5, ready: map[string]bool{"n1": true, "n2": true}},
			want: want{states: map[string]storagev1.StepRecordState{"n2/drain": running}, create: []string{"n2/drain on n1"}}},
		{name: "NotReady: a node going NotReady mid-step leaves the step to its task and timeout",
			wf:   wfOf(0, runningStep("n2/join", 1, time.Minute)),
			view: fakeView{tasks: map[string]*apiv1.TaskRecord{"wf.n2.join.1": rec("wf.n2.join.1", "wf", "n2/join", taskv1.TaskState_TASK_STATE_RUNNING, nil, nil)}, ready: map[string]bool{}},
			want: want{states: map[string]storagev1.StepRecordState{"n2/join": running}, wake: 9*time.Minute + time.Millisecond}},
		{name: "failover: a step marked running whose task was never written gets it, same ID",
			wf:   wfOf(0, runningStep("n1/a", 1, time.Second)),
			want: want{states: map[string]storagev1.StepRecordState{"n1/a": running}, missing: []string{"wf.n1.a.1"}, wake: 10*time.Minute - time.Second + time.Millisecond}},
		{name: "a task ID taken by a task this workflow did not create fails the step",
			wf:   wfOf(0, st("n1/a", pending)),
			view: fakeView{tasks: map[string]*apiv1.TaskRecord{"wf.n1.a.1": rec("wf.n1.a.1", "", "", taskv1.TaskState_TASK_STATE_SUCCEEDED, nil, nil)}},
			want: want{states: map[string]storagev1.StepRecordState{"n1/a": failedSt}, reasons: map[string]string{"n1/a": "TASK_ID_TAKEN"}, over: storagev1.WorkflowRecordState_WORKFLOW_RECORD_STATE_FAILED}},
		{name: "actions: record-node adds the node with its pod CIDR and address; routes wait for the write",
			wf: wfOf(0, withTask(st("n3/join", succeeded), &taskv1.TaskSpec{Kind: &taskv1.TaskSpec_KubeadmJoin{KubeadmJoin: &taskv1.KubeadmJoinSpec{Role: taskv1.NodeRole_NODE_ROLE_WORKER}}}),
				func() *storagev1.StepRecord {
					s := st("n3/registered", succeeded)
					s.Outputs = map[string]string{"pod_cidr": "10.244.2.0/24", "address": "10.250.0.12"}
					return s
				}(),
				&storagev1.StepRecord{Name: "n3/record", Lane: "n3", Action: ActionRecordNode, State: pending, DependsOn: []string{"n3/join"}},
				&storagev1.StepRecord{Name: "n1/routes", Node: "n1", State: pending, MaxAttempts: 3, Task: &taskv1.TaskSpec{Kind: &taskv1.TaskSpec_Network{Network: &taskv1.NetworkSpec{}}},
					Inputs: []*storagev1.StepInputRecord{{Field: "routes"}}, DependsOn: []string{"n3/record"}}),
			view: fakeView{cluster: testCluster("n1", "n2"), modRev: 7, storeRev: 9},
			want: want{states: map[string]storagev1.StepRecordState{"n3/record": succeeded, "n1/routes": pending}, again: true,
				check: func(t *testing.T, l *loaded, d *decisions) {
					n := clusterNode(d.cluster, "n3")
					if !d.clusterChanged || d.clusterRev != 7 || n.GetPodCidr() != "10.244.2.0/24" || n.GetAddress() != "10.250.0.12" || len(d.cluster.GetNodes()) != 3 {
						t.Errorf("cluster write %v at rev %d: %v", d.clusterChanged, d.clusterRev, d.cluster)
					}
				}}},
		{name: "a network step that waits for no action of the pass starts before the pass records a node, from the record as read",
			// A big apply records a node in almost every pass: the joining nodes' network steps
			// must not wait for a pass that records none.
			wf: wfOf(0, st("n3/join", succeeded),
				func() *storagev1.StepRecord {
					s := st("n3/registered", succeeded)
					s.Outputs = map[string]string{"pod_cidr": "10.244.2.0/24", "address": "10.250.0.12"}
					return s
				}(),
				&storagev1.StepRecord{Name: "n3/record", Lane: "n3", Action: ActionRecordNode, State: pending, DependsOn: []string{"n3/join"}},
				&storagev1.StepRecord{Name: "n4/network", Node: "n4", Lane: "n4", State: pending, MaxAttempts: 3, Task: &taskv1.TaskSpec{Kind: &taskv1.TaskSpec_Network{Network: &taskv1.NetworkSpec{PodCidr: "10.244.3.0/24"}}},
					Inputs: []*storagev1.StepInputRecord{{Field: "routes"}}}),
			view: fakeView{cluster: testCluster("n1", "n2"), modRev: 7, storeRev: 9},
			want: want{states: map[string]storagev1.StepRecordState{"n3/record": succeeded, "n4/network": running}, create: []string{"n4/network on n4"},
				check: func(t *testing.T, l *loaded, d *decisions) {
					if !d.clusterChanged || len(d.cluster.GetNodes()) != 3 {
						t.Errorf("n3 is not recorded: %v", d.cluster)
					}
					// n3 is in its routes all the same: from its registered step, as every node
					// of the workflow registered so far.
					if rs := d.create[0].GetSpec().GetNetwork().GetRoutes(); len(rs) != 3 || rs[2].GetCidr() != "10.244.2.0/24" {
						t.Errorf("n4's routes %v, want n1's, n2's and n3's", rs)
					}
					if g := d.create[0].GetSpec().GetNetwork().GetGeneration(); g != 9 {
						t.Errorf("route list generation %d, want the store revision read, 9", g)
					}
				}}},
		{name: "a barrier waits while one of its steps runs, and so do the steps after it",
			wf: wfOf(0, st("n1/record", succeeded), runningStep("n2/record", 1, time.Second),
				barrier("n1/record", "n2/record"), finally(st("n1/routes", pending, "all/recorded"))),
			view: fakeView{tasks: map[string]*apiv1.TaskRecord{"wf.n2.record.1": rec("wf.n2.record.1", "wf", "n2/record", taskv1.TaskState_TASK_STATE_RUNNING, nil, nil)}},
			want: want{states: map[string]storagev1.StepRecordState{"all/recorded": pending, "n1/routes": pending}, wake: 9*time.Minute + 59*time.Second + time.Millisecond}},
		{name: "a barrier ends once its steps ended, also when one failed, and the steps after it start in the same pass",
			wf: wfOf(0, st("n1/record", succeeded), st("n2/record", failedSt),
				barrier("n1/record", "n2/record"), finally(st("n1/routes", pending, "all/recorded")), finally(st("n2/routes", pending, "all/recorded"))),
			want: want{states: map[string]storagev1.StepRecordState{"all/recorded": succeeded, "n1/routes": running, "n2/routes": running},
				create: []string{"n1/routes on n1", "n2/routes on n2"}}},
		{name: "actions: forgetting the last node deletes the cluster record",
			wf:   wfOf(0, &storagev1.StepRecord{Name: "n1/forget", Lane: "n1", Action: ActionForgetNode, State: pending}),
			view: fakeView{cluster: testCluster("n1"), modRev: 3},
			want: want{states: map[string]storagev1.StepRecordState{"n1/forget": succeeded}, over: storagev1.WorkflowRecordState_WORKFLOW_RECORD_STATE_SUCCEEDED,
				check: func(t *testing.T, l *loaded, d *decisions) {
					if !d.clusterChanged || d.cluster != nil || d.clusterRev != 3 {
						t.Errorf("want the cluster record deleted if still at rev 3: changed %v, %v, rev %d", d.clusterChanged, d.cluster, d.clusterRev)
					}
				}}},
		{name: "actions: a cluster recorded meanwhile by someone else fails record-cluster",
			wf:   wfOf(0, &storagev1.StepRecord{Name: "n9/record", Lane: "n9", Action: ActionRecordCluster, State: pending}),
			view: fakeView{cluster: testCluster("n1"), modRev: 3},
			want: want{states: map[string]storagev1.StepRecordState{"n9/record": failedSt}, reasons: map[string]string{"n9/record": "ACTION_FAILED"}, over: storagev1.WorkflowRecordState_WORKFLOW_RECORD_STATE_FAILED}},
		{name: "a pass creates at most maxCreate tasks and looks again for the rest",
			wf:      wfOf(0, st("n1/a", pending), st("n2/a", pending), st("n3/a", pending)),
			maxPass: 2,
			want:    want{states: map[string]storagev1.StepRecordState{"n1/a": running, "n2/a": running, "n3/a": pending}, create: []string{"n1/a on n1", "n2/a on n2"}, again: true}},
		{name: "a pass creates tasks up to its bytes; the first always, however big",
			wf:       wfOf(0, st("n1/a", pending), st("n2/a", pending), st("n3/a", pending)),
			maxBytes: 1,
			want:     want{states: map[string]storagev1.StepRecordState{"n1/a": running, "n2/a": pending, "n3/a": pending}, create: []string{"n1/a on n1"}, again: true}},
		{name: "a workflow holding more nodes than one write carries starts as many steps as the write carries",
			// Header and cluster record, then a step and its task each: 2 + 3 x 2 = 8. The
			// nodes' release counts only when the workflow ends.
			wf:       holding(10, wfOf(0, st("n1/a", pending), st("n2/a", pending), st("n3/a", pending), st("n4/a", pending))),
			maxWrite: 8,
			want:     want{states: map[string]storagev1.StepRecordState{"n1/a": running, "n2/a": running, "n3/a": running}, create: []string{"n1/a on n1", "n2/a on n2", "n3/a on n3"}, again: true}},
		{name: "the last steps' results and the nodes' release not fitting in one write: the next pass ends the workflow",
			wf:       holding(10, wfOf(0, runningStep("n1/a", 1, time.Minute), runningStep("n2/a", 1, time.Minute))),
			maxWrite: 8,
			view: fakeView{tasks: map[string]*apiv1.TaskRecord{
				"wf.n1.a.1": rec("wf.n1.a.1", "wf", "n1/a", taskv1.TaskState_TASK_STATE_SUCCEEDED, nil, nil),
				"wf.n2.a.1": rec("wf.n2.a.1", "wf", "n2/a", taskv1.TaskState_TASK_STATE_SUCCEEDED, nil, nil)}},
			want: want{states: map[string]storagev1.StepRecordState{"n1/a": succeeded, "n2/a": succeeded}, again: true,
				check: func(t *testing.T, l *loaded, d *decisions) {
					if l.wf.GetState() != storagev1.WorkflowRecordState_WORKFLOW_RECORD_STATE_RUNNING {
						t.Errorf("the workflow is %v after the pass that recorded its last steps, want running until a pass of its own", l.wf.GetState())
					}
					next, err := compute(l, &fakeView{}, time.Now(), engineSettings{maxCreate: 1, maxWrite: 8})
					if err != nil || !next.over || len(next.steps) != 0 || l.wf.GetState() != storagev1.WorkflowRecordState_WORKFLOW_RECORD_STATE_SUCCEEDED {
						t.Errorf("next pass: over %v, %d steps, state %v, err %v; want it to end the workflow, succeeded, alone", next.over, len(next.steps), l.wf.GetState(), err)
					}
				}}},
		{name: "all steps done: the workflow succeeded",
			wf:   wfOf(0, st("n1/a", succeeded), st("n1/b", skipped, "n1/a")),
			want: want{over: storagev1.WorkflowRecordState_WORKFLOW_RECORD_STATE_SUCCEEDED}},
	} {
		t.Run(c.name, func(t *testing.T) {
			l := fillTasks(c.wf)
			l.wf.Spec = &apiv1.WorkflowSpec{DryRun: c.dry}
			before := map[string]storagev1.StepRecordState{}
			for _, s := range l.wf.GetSteps() {
				before[s.GetName()] = s.GetState()
			}
			v := c.view
			mc := c.maxPass
			if mc == 0 {
				mc = 32
			}
			d, err := compute(l, &v, t0, engineSettings{backoff: 2 * time.Second, maxCreate: mc, maxWrite: c.maxWrite, maxBytes: c.maxBytes})
			if err != nil {
				t.Fatal(err)
			}
			for _, s := range l.wf.GetSteps() {
				want, ok := c.want.states[s.GetName()]
				if !ok {
					want = before[s.GetName()]
				}
				if s.GetState() != want {
					t.Errorf("step %s is %v, want %v (error %v)", s.GetName(), s.GetState(), want, s.GetError())
				}
				if r := c.want.reasons[s.GetName()]; s.GetError().GetReason() != r && !(r == "" && s.GetState() == succeeded) {
					t.Errorf("step %s error %v, want reason %q", s.GetName(), s.GetError(), r)
				}
			}
			var created []string
			for _, tk := range d.create {
				created = append(created, tk.GetStep()+" on "+tk.GetNode())
			}
			if !slices.Equal(created, c.want.create) {
				t.Errorf("created %q, want %q", created, c.want.create)
			}
			if !slices.Equal(d.cancel, c.want.cancel) {
				t.Errorf("cancelled %q, want %q", d.cancel, c.want.cancel)
			}
			var missing []string
			for _, tk := range d.missing {
				missing = append(missing, tk.GetId())
			}
			if !slices.Equal(missing, c.want.missing) {
				t.Errorf("missing tasks created %q, want %q", missing, c.want.missing)
			}
			if over := c.want.over != 0; d.over != over || over && l.wf.GetState() != c.want.over {
				t.Errorf("over %v in state %v, want %v", d.over, l.wf.GetState(), c.want.over)
			}
			var wake time.Duration
			if !d.wake.IsZero() {
				wake = d.wake.Sub(t0)
			}
			if wake != c.want.wake {
				t.Errorf("wake after %v, want %v", wake, c.want.wake)
			}
			if d.again != c.want.again {
				t.Errorf("again %v, want %v", d.again, c.want.again)
			}
			// A pass that writes stamps the workflow's header (deckctl and clients see when it
			// last moved); one that writes nothing leaves it.
			if stamped := l.wf.GetUpdated().AsTime().Equal(t0); stamped != d.dirty() {
				t.Errorf("header updated %v after a pass that wrote %d steps (over %v)", l.wf.GetUpdated().AsTime(), len(d.steps), d.over)
			}
			// Exactly the changed steps are written.
			for _, i := range d.steps {
				s := l.wf.GetSteps()[i]
				if s.GetState() == before[s.GetName()] && s.GetError() == nil && len(d.create) == 0 && len(d.cancel) == 0 {
					t.Errorf("step %s written unchanged", s.GetName())
				}
			}
			if c.want.check != nil {
				c.want.check(t, l, d)
			}
		})
	}
}

// fakeCluster runs workflows through compute the way the engine does, against an in-memory
// store with its transaction rules (task IDs created once, the cluster record only at the
// revision read) and agents that succeed at once, and can fail the leader over between
// any two passes.
type fakeCluster struct {
	t       *testing.T
	stored  []byte // the workflow as written (header and steps)
	view    fakeView
	created map[string]int
	now     time.Time
	podNet  int
	// failJoins: these nodes' joins fail at every attempt.
	failJoins map[string]bool
}

func (f *fakeCluster) load() *loaded {
	var wf storagev1.WorkflowRecord
	if err := proto.Unmarshal(f.stored, &wf); err != nil {
		f.t.Fatal(err)
	}
	return &loaded{wf: &wf, stepKV: index(&wf)}
}

// agentsWork finishes every running task with the outputs its kind has; the first attempt
// of each kubeadm join fails (a retry after a backoff runs under the failovers too).
func (f *fakeCluster) agentsWork(tasks []*taskv1.Task) {
	for _, tk := range tasks {
		out := map[string]string{}
		switch KindOf(tk.GetSpec()) {
		case "kubeadm_init":
			out = map[string]string{"ca_cert_hash": caHash, "token": tokenValue, "api_server": "10.250.0.10:6443"}
		case "kubeadm_token":
			if tk.GetSpec().GetKubeadmToken().GetDeleteTokenId() == "" {
				out = map[string]string{"token": tokenValue, "ca_cert_hash": caHash, "api_server": "10.250.0.10:6443"}
			}
			if tk.GetSpec().GetKubeadmToken().GetControlPlane() {
				out["certificate_key"] = strings.Repeat("ab", 32)
			}
		case "node_ready":
			f.podNet++
			out = map[string]string{"pod_cidr": fmt.Sprintf("10.244.%d.0/24", f.podNet), "address": fmt.Sprintf("10.250.0.%d", 10+f.podNet)}
		case "kubeadm_join":
			if strings.HasSuffix(tk.GetId(), ".1") || f.failJoins[tk.GetNode()] {
				f.view.tasks[tk.GetId()] = &apiv1.TaskRecord{Task: tk, State: taskv1.TaskState_TASK_STATE_FAILED,
					Result: &taskv1.TaskResult{Error: &taskv1.TaskError{Reason: "JOIN_FAILED", Message: "the API server did not answer"}}}
				continue
			}
		}
		f.view.tasks[tk.GetId()] = &apiv1.TaskRecord{Task: tk, State: taskv1.TaskState_TASK_STATE_SUCCEEDED, Result: &taskv1.TaskResult{Outputs: out}}
	}
}

// run drives the workflow to its end; the leader dies in pass failAt (-1: never) before
// its write: the next leader loads what was written and nothing of that pass happened. It
// returns the finished workflow.
func (f *fakeCluster) run(failAt int) *storagev1.WorkflowRecord {
	l := f.load()
	for pass := 0; pass < 500; pass++ {
		f.now = f.now.Add(time.Second)
		d, err := compute(l, &f.view, f.now, engineSettings{backoff: time.Second, maxCreate: 4})
		if err != nil {
			f.t.Fatal(err)
		}
		if pass == failAt {
			l = f.load()
			continue
		}
		for _, tk := range d.missing {
			f.t.Errorf("pass %d: task %s of a running step missing: a step ran without its task", pass, tk.GetId())
		}
		for _, tk := range d.create {
			if _, ok := f.view.tasks[tk.GetId()]; ok {
				f.t.Fatalf("pass %d: task %s created again: the transaction would fail for ever", pass, tk.GetId())
			}
		}
		if d.clusterChanged && d.clusterRev != f.view.modRev {
			f.t.Fatalf("pass %d: cluster written against rev %d, it is at %d", pass, d.clusterRev, f.view.modRev)
		}
		// The write.
		f.view.storeRev++
		if d.dirty() {
			b, err := proto.Marshal(l.wf)
			if err != nil {
				f.t.Fatal(err)
			}
			f.stored = b
		}
		for _, tk := range d.create {
			f.created[tk.GetId()]++
			f.view.tasks[tk.GetId()] = &apiv1.TaskRecord{Task: tk, State: taskv1.TaskState_TASK_STATE_RUNNING}
		}
		if d.clusterChanged {
			f.view.cluster, f.view.modRev = d.cluster, f.view.storeRev
		}
		if terminal(l.wf.GetState()) {
			return l.wf
		}
		f.agentsWork(d.create)
	}
	f.t.Fatal("the workflow did not end in 500 passes")
	return nil
}

// A new leader resumes a workflow from what the old one wrote, whichever pass the old one
// died in before writing it, a join's failed first attempt and its retry included: the same
// outcome, the same tasks (each created once: a second create is fatal above), the same
// cluster record.
func TestComputeResumesAfterAFailoverAtAnyPass(t *testing.T) {
	specs := map[string]struct {
		spec *apiv1.WorkflowSpec
		cl   *apiv1.Cluster
	}{
		"apply: a control plane and two workers": {&apiv1.WorkflowSpec{Kind: &apiv1.WorkflowSpec_Apply{Apply: &apiv1.ApplyWorkflow{ClusterYaml: applyDoc([]string{"cp-1"}, "w-1", "w-2")}}}, nil},
		"apply: three control planes behind a VIP and a worker": {&apiv1.WorkflowSpec{Kind: &apiv1.WorkflowSpec_Apply{Apply: &apiv1.ApplyWorkflow{
			ClusterYaml: lbDoc("{type: vip, address: 10.250.0.100}", []string{"cp-1", "w-2", "w-3"}, "w-1")}}}, nil},
		"join a worker":  {&apiv1.WorkflowSpec{Kind: &apiv1.WorkflowSpec_Join{Join: &apiv1.JoinWorkflow{Node: "w-2"}}}, testCluster("cp-1", "w-1")},
		"reset a worker": {&apiv1.WorkflowSpec{Kind: &apiv1.WorkflowSpec_Reset_{Reset_: &apiv1.ResetWorkflow{Node: "w-1"}}}, testCluster("cp-1", "w-1", "w-2")},
	}
	for name, c := range specs {
		t.Run(name, func(t *testing.T) {
			p, err := build(c.spec, c.cl, enrolledSet("cp-1", "w-1", "w-2", "w-3"))
			if err != nil {
				t.Fatal(err)
			}
			start := func() *fakeCluster {
				wf := &storagev1.WorkflowRecord{Id: "wf-x", Spec: c.spec, State: storagev1.WorkflowRecordState_WORKFLOW_RECORD_STATE_RUNNING, Steps: p.steps, Nodes: p.nodes, Concurrency: p.concurrency}
				b, err := proto.Marshal(wf)
				if err != nil {
					t.Fatal(err)
				}
				var cl *apiv1.Cluster
				var mod int64
				if c.cl != nil {
					cl, mod = proto.Clone(c.cl).(*apiv1.Cluster), 1
				}
				return &fakeCluster{t: t, stored: b, created: map[string]int{}, now: t0,
					view: fakeView{tasks: map[string]*apiv1.TaskRecord{}, cluster: cl, modRev: mod, storeRev: 1, ready: map[string]bool{"cp-1": true, "w-1": true, "w-2": true, "w-3": true}}}
			}
			ref := start()
			want := ref.run(-1)
			if want.GetState() != storagev1.WorkflowRecordState_WORKFLOW_RECORD_STATE_SUCCEEDED {
				t.Fatalf("without a failover the workflow %v: %v at %s", want.GetState(), want.GetError(), want.GetFailedStep())
			}
			wantTasks := slices.Sorted(maps.Keys(ref.created))
			passes := int(ref.view.storeRev)
			if c.spec.GetReset_() == nil && !slices.ContainsFunc(wantTasks, func(id string) bool { return strings.HasSuffix(id, ".join.2") }) {
				t.Fatalf("no join was retried (tasks %q): the failovers never meet a retry", wantTasks)
			}
			for k := 0; k < passes; k++ {
				f := start()
				got := f.run(k)
				if got.GetState() != want.GetState() {
					t.Fatalf("failover in pass %d: workflow %v (%v at %s)", k, got.GetState(), got.GetError(), got.GetFailedStep())
				}
				if ts := slices.Sorted(maps.Keys(f.created)); !slices.Equal(ts, wantTasks) {
					t.Fatalf("failover in pass %d: tasks %q, want %q", k, ts, wantTasks)
				}
				if !slices.Equal(names(f.view.cluster), names(ref.view.cluster)) {
					t.Fatalf("failover in pass %d: cluster nodes %v, want %v", k, names(f.view.cluster), names(ref.view.cluster))
				}
			}
		})
	}
}

// One node of an apply failing to join does not keep the others from each other: the
// routes and load balancer lists that follow the apply's records are finally steps, run
// once those records ended or can no longer run, from the cluster record as it is then.
func TestAFailedJoinStillUpdatesThePeers(t *testing.T) {
	for _, c := range []struct {
		name      string
		doc       []byte
		fail      string
		recorded  []string
		succeeded []string // peer steps that must have run
	}{
		// One node at a time: w-1 joins and is recorded, then w-2's join fails.
		{"workers", []byte(strings.Replace(string(lbDoc("{type: local}", []string{"cp-1"}, "w-1", "w-2")), "  nodes:\n", "  concurrency: 1\n  nodes:\n", 1)),
			"w-2", []string{"cp-1", "w-1"}, []string{"cp-1/routes", "w-1/routes"}},
		// Control planes join one after another: w-2 is recorded, then w-3's join fails.
		{"control planes", lbDoc("{type: local}", []string{"cp-1", "w-2", "w-3"}, "w-1"),
			"w-3", []string{"cp-1", "w-1", "w-2"}, []string{"cp-1/routes", "w-1/routes", "w-2/routes", "cp-1/lb-update", "w-1/lb-update", "w-2/lb-update"}},
	} {
		t.Run(c.name, func(t *testing.T) {
			spec := &apiv1.WorkflowSpec{Kind: &apiv1.WorkflowSpec_Apply{Apply: &apiv1.ApplyWorkflow{ClusterYaml: c.doc}}}
			p, err := build(spec, nil, enrolledSet("cp-1", "w-1", "w-2", "w-3"))
			if err != nil {
				t.Fatal(err)
			}
			wf := &storagev1.WorkflowRecord{Id: "wf-x", Spec: spec, State: storagev1.WorkflowRecordState_WORKFLOW_RECORD_STATE_RUNNING, Steps: p.steps, Nodes: p.nodes, Concurrency: p.concurrency}
			b, err := proto.Marshal(wf)
			if err != nil {
				t.Fatal(err)
			}
			f := &fakeCluster{t: t, stored: b, created: map[string]int{}, now: t0, failJoins: map[string]bool{c.fail: true},
				view: fakeView{tasks: map[string]*apiv1.TaskRecord{}, storeRev: 1, ready: map[string]bool{"cp-1": true, "w-1": true, "w-2": true, "w-3": true}}}
			got := f.run(-1)
			if got.GetState() != storagev1.WorkflowRecordState_WORKFLOW_RECORD_STATE_FAILED || got.GetFailedStep() != c.fail+"/join" {
				t.Fatalf("workflow %v, failed at %q; want failed at %s/join", got.GetState(), got.GetFailedStep(), c.fail)
			}
			if !slices.Equal(slices.Sorted(slices.Values(names(f.view.cluster))), c.recorded) {
				t.Fatalf("cluster nodes %v, want %v", names(f.view.cluster), c.recorded)
			}
			state := map[string]storagev1.StepRecordState{}
			for _, s := range got.GetSteps() {
				state[s.GetName()] = s.GetState()
				if (strings.HasSuffix(s.GetName(), "/routes") || strings.HasSuffix(s.GetName(), "/lb-update")) && !s.GetFinally() {
					t.Errorf("%s is not a finally step", s.GetName())
				}
			}
			for _, name := range c.succeeded {
				if state[name] != storagev1.StepRecordState_STEP_RECORD_STATE_SUCCEEDED {
					t.Errorf("%s is %v: the nodes that joined must get their routes and lists", name, state[name])
				}
			}
			// The failed node is not in the cluster: nothing to route to it or from it, no
			// load balancer installed on it.
			for _, peer := range []string{c.fail + "/routes", c.fail + "/lb-update"} {
				if s, ok := state[peer]; ok && s != storagev1.StepRecordState_STEP_RECORD_STATE_SKIPPED {
					t.Errorf("%s is %v, want skipped", peer, s)
				}
			}
			if _, ok := state[c.fail+"/routes"]; !ok {
				t.Errorf("no %s/routes step", c.fail)
			}
			if _, ok := state[c.fail+"/lb-update"]; !ok && c.name == "control planes" {
				t.Errorf("no %s/lb-update step", c.fail)
			}

			// The cause fixed, a retry joins the node and runs the peers' routes again:
			// cp-1's last route list has every other node of the cluster.
			l := f.load()
			for _, st := range l.wf.GetSteps() {
				if retrySet(l)[st.GetName()] {
					resetForRetry(st)
				}
			}
			l.wf.State, l.wf.FailedStep, l.wf.Error = storagev1.WorkflowRecordState_WORKFLOW_RECORD_STATE_RUNNING, "", nil
			if f.stored, err = proto.Marshal(l.wf); err != nil {
				t.Fatal(err)
			}
			f.failJoins = nil
			if got := f.run(-1); got.GetState() != storagev1.WorkflowRecordState_WORKFLOW_RECORD_STATE_SUCCEEDED {
				t.Fatalf("the retry: %v at %s (%v)", got.GetState(), got.GetFailedStep(), got.GetError())
			}
			var last *taskv1.Task
			for id, rec := range f.view.tasks {
				if strings.Contains(id, ".cp-1.routes.") && (last == nil || id > last.GetId()) {
					last = rec.GetTask()
				}
			}
			if n := len(f.view.cluster.GetNodes()); last == nil || len(last.GetSpec().GetNetwork().GetRoutes()) != n-1 {
				t.Errorf("cp-1's routes after the retry: %v, want one to each of the %d other nodes", last.GetSpec().GetNetwork().GetRoutes(), n-1)
			}
		})
	}
}

// A step that may run on any control plane but prefers the node an earlier step ran on (the
// etcd check and the Node's deletion after a reset, where the drain ran) goes elsewhere once
// that node is down; one that must run where the earlier one ran stays there.
func TestResolvePrefersTheEarlierNodeWhileItIsReady(t *testing.T) {
	cl := testCluster("cp-1", "w-1")
	cl.Nodes = append(cl.Nodes, &apiv1.ClusterNode{Name: "cp-2", Role: taskv1.NodeRole_NODE_ROLE_CONTROL_PLANE},
		&apiv1.ClusterNode{Name: "cp-3", Role: taskv1.NodeRole_NODE_ROLE_CONTROL_PLANE})
	drain := &storagev1.StepRecord{Name: "cp-3/drain", Node: "cp-2", State: storagev1.StepRecordState_STEP_RECORD_STATE_SUCCEEDED}
	check := &storagev1.StepRecord{Name: "cp-3/etcd-check", NodeFrom: "cp-3/drain", AnyControlPlane: true, Lane: "cp-3", State: storagev1.StepRecordState_STEP_RECORD_STATE_PENDING}
	del := &storagev1.StepRecord{Name: "cp-3/token-delete", NodeFrom: "cp-3/drain", Lane: "cp-3", State: storagev1.StepRecordState_STEP_RECORD_STATE_PENDING}
	l := wfOf(0, drain, check, del)
	for _, c := range []struct {
		ready           map[string]bool
		check, checkWhy string
	}{
		{map[string]bool{"cp-1": true, "cp-2": true, "cp-3": true}, "cp-2", ""},
		{map[string]bool{"cp-1": true, "cp-3": true}, "cp-1", ""},
		{map[string]bool{"cp-3": true}, "", "waiting for a Ready control-plane node"},
	} {
		w := &clusterWork{v: &fakeView{cluster: cl, ready: c.ready}}
		if n, why, err := resolve(l, check, w); err != nil || n != c.check || why != c.checkWhy {
			t.Errorf("ready %v: the etcd check goes to %q (%q, %v), want %q (%q)", c.ready, n, why, err, c.check, c.checkWhy)
		}
		// A step that must run where the earlier one ran stays there.
		if n, _, _ := resolve(l, del, w); n != "cp-2" {
			t.Errorf("ready %v: the pinned step goes to %q, want cp-2", c.ready, n)
		}
	}
}

// holding makes l's workflow hold n nodes (n1..nN), as one whose release takes n operations.
func holding(n int, l *loaded) *loaded {
	for i := 1; i <= n; i++ {
		l.wf.Nodes = append(l.wf.Nodes, fmt.Sprintf("n%d", i))
	}
	return l
}
