package workflows

import (
	"context"
	"errors"
	"io"
	"log/slog"
	"strings"
	"testing"
	"time"

	"google.golang.org/protobuf/proto"
	"google.golang.org/protobuf/types/known/timestamppb"

	"github.com/deckhandhq/deckhand/controller/nodes"
	"github.com/deckhandhq/deckhand/controller/tasks"
	"github.com/deckhandhq/deckhand/internal/testkit/teststore"
	apiv1 "github.com/deckhandhq/deckhand/proto/deckhand/api/v1"
	taskv1 "github.com/deckhandhq/deckhand/proto/deckhand/task/v1"
	"github.com/deckhandhq/deckhand/store"
)

// engineFixture is a store with enrolled nodes, the services, and an engine whose passes the
// test drives by hand (no leader election: the fence is a compare that always holds).
type engineFixture struct {
	st  store.Store
	svc *Service
	e   *Engine
}

func newEngineFixture(t *testing.T, names ...string) *engineFixture {
	t.Helper()
	st := teststore.New(t)
	reg := nodes.New(st, nil)
	ctx := context.Background()
	for _, n := range names {
		if err := reg.Enroll(ctx, n, "machine-"+n, "serial-"+n); err != nil {
			t.Fatal(err)
		}
	}
	ts := tasks.New(st, reg, nil)
	svc := New(st, reg, ts, nil)
	e := NewEngine(svc, slog.New(slog.NewTextHandler(io.Discard, nil)))
	e.fence = store.Absent("/test/no-such-key")
	e.cache = map[string]*loaded{}
	e.tasks = map[string]*apiv1.TaskRecord{}
	e.dirty = make(chan dirtyMark, 1024)
	return &engineFixture{st: st, svc: svc, e: e}
}

func initSpec(node string) *apiv1.WorkflowSpec {
	return &apiv1.WorkflowSpec{Kind: &apiv1.WorkflowSpec_Init{Init: &apiv1.InitWorkflow{Node: node, Cluster: &taskv1.ClusterSpec{
		KubernetesVersion: "v1.33.13", PodSubnet: "10.244.0.0/16", ServiceSubnet: "10.96.0.0/12"}}}}
}

func diagnosticsSpec() *taskv1.TaskSpec {
	return &taskv1.TaskSpec{Kind: &taskv1.TaskSpec_Diagnostics{Diagnostics: &taskv1.DiagnosticsSpec{}}}
}

// forge writes a SUCCEEDED task record under id that the engine did not create (what an
// operator could do before IDs were reserved and created once).
func (f *engineFixture) forge(t *testing.T, id, node string) []byte {
	t.Helper()
	rec := &apiv1.TaskRecord{Task: &taskv1.Task{Id: id, Node: node, Spec: diagnosticsSpec()}, State: taskv1.TaskState_TASK_STATE_SUCCEEDED,
		Result: &taskv1.TaskResult{TaskId: id, State: taskv1.TaskState_TASK_STATE_SUCCEEDED}, Created: timestamppb.Now()}
	b, _ := proto.Marshal(rec)
	if _, err := f.st.Txn(context.Background(), store.Txn{Then: []store.Op{store.Put(tasks.Prefix+id, b)}}); err != nil {
		t.Fatal(err)
	}
	return b
}

func (f *engineFixture) step(t *testing.T, wf, name string) *apiv1.Step {
	t.Helper()
	w, err := f.svc.Get(context.Background(), wf)
	if err != nil {
		t.Fatal(err)
	}
	for _, s := range w.GetSteps() {
		if s.GetName() == name {
			return s
		}
	}
	t.Fatalf("no step %s in %s", name, wf)
	return nil
}

// A record already under the ID a step's task will get is neither overwritten nor adopted:
// the step fails, naming the ID, and the record stays as it was.
func TestEngineNeverOverwritesATaskRecordItDidNotCreate(t *testing.T) {
	f := newEngineFixture(t, "n1")
	ctx := context.Background()
	wf, err := f.svc.Create(ctx, initSpec("n1"), "test")
	if err != nil {
		t.Fatal(err)
	}
	id := taskID(wf.GetId(), "n1/preflight", 1)
	forged := f.forge(t, id, "n1")
	if err := f.e.reconcile(ctx, wf.GetId()); err != nil {
		t.Fatal(err)
	}
	s := f.step(t, wf.GetId(), "n1/preflight")
	if s.GetState() != apiv1.StepState_STEP_STATE_FAILED || s.GetError().GetReason() != "TASK_ID_TAKEN" || !strings.Contains(s.GetError().GetMessage(), id) {
		t.Fatalf("step over a foreign record: %v", s)
	}
	kv, _, err := f.st.Get(ctx, tasks.Prefix+id)
	if err != nil || string(kv.Value) != string(forged) {
		t.Fatalf("the foreign record was overwritten: %v", err)
	}
}

// A running step whose record was replaced by one the engine did not create does not take
// its result: the forged "success" fails the step instead.
func TestEngineDoesNotAdoptAForeignResult(t *testing.T) {
	f := newEngineFixture(t, "n1")
	ctx := context.Background()
	wf, err := f.svc.Create(ctx, initSpec("n1"), "test")
	if err != nil {
		t.Fatal(err)
	}
	if err := f.e.reconcile(ctx, wf.GetId()); err != nil {
		t.Fatal(err)
	}
	s := f.step(t, wf.GetId(), "n1/preflight")
	if s.GetState() != apiv1.StepState_STEP_STATE_RUNNING {
		t.Fatalf("preflight not started: %v", s)
	}
	rec, _, err := f.svc.tasks.Get(ctx, s.GetTaskId())
	if err != nil || rec.GetTask().GetWorkflowId() != wf.GetId() || rec.GetTask().GetSpec().GetPreflight() == nil {
		t.Fatalf("the engine's own task: %v %v", rec, err)
	}
	f.forge(t, s.GetTaskId(), "n1")
	if err := f.e.reconcile(ctx, wf.GetId()); err != nil {
		t.Fatal(err)
	}
	s = f.step(t, wf.GetId(), "n1/preflight")
	if s.GetState() != apiv1.StepState_STEP_STATE_FAILED || s.GetError().GetReason() != "TASK_ID_TAKEN" {
		t.Fatalf("a forged result was adopted: %v", s)
	}
}

// Direct tasks: the workflow prefix is reserved, a taken ID is refused (the same request
// again is an idempotent retry), and a node a workflow holds refuses direct tasks, naming
// the workflow.
func TestDirectTasksAreCreatedOnceAndNotOnHeldNodes(t *testing.T) {
	f := newEngineFixture(t, "n1", "n2")
	ctx := context.Background()
	wf, err := f.svc.Create(ctx, initSpec("n1"), "test")
	if err != nil {
		t.Fatal(err)
	}
	_, err = f.svc.CreateTask(ctx, &taskv1.Task{Id: taskID(wf.GetId(), "n1/preflight", 2), Node: "n2", Spec: diagnosticsSpec()})
	if !errors.Is(err, tasks.ErrInvalid) || !strings.Contains(err.Error(), "reserved for workflow steps") {
		t.Fatalf("direct task under a workflow step's ID: %v", err)
	}
	_, err = f.svc.CreateTask(ctx, &taskv1.Task{Node: "n1", Spec: diagnosticsSpec()})
	var le *LockedError
	if !errors.As(err, &le) || le.Workflow != wf.GetId() || le.Node != "n1" || !strings.Contains(err.Error(), wf.GetId()) {
		t.Fatalf("direct task on a held node: %v", err)
	}
	first, err := f.svc.CreateTask(ctx, &taskv1.Task{Id: "diag-1", Node: "n2", Spec: diagnosticsSpec()})
	if err != nil {
		t.Fatal(err)
	}
	again, err := f.svc.CreateTask(ctx, &taskv1.Task{Id: "diag-1", Node: "n2", Spec: diagnosticsSpec()})
	if err != nil || !proto.Equal(again, first) {
		t.Fatalf("the same request again: %v %v", again, err)
	}
	pre := &taskv1.TaskSpec{Kind: &taskv1.TaskSpec_Preflight{Preflight: &taskv1.PreflightSpec{Role: taskv1.NodeRole_NODE_ROLE_WORKER}}}
	if _, err := f.svc.CreateTask(ctx, &taskv1.Task{Id: "diag-1", Node: "n2", Spec: pre}); !errors.Is(err, tasks.ErrExists) || !strings.Contains(err.Error(), "diag-1") {
		t.Fatalf("a different task under a taken ID: %v", err)
	}
	got, _, err := f.svc.tasks.Get(ctx, "diag-1")
	if err != nil || got.GetTask().GetSpec().GetDiagnostics() == nil {
		t.Fatalf("the taken ID's record changed: %v %v", got, err)
	}
}

// The engine reads a running step's task record once and then waits for the watch to
// report its end. A record deleted meanwhile is noticed all the same (the step's task is
// created again, same ID, rather than the step waiting forever), the task's end settles
// the step, and so does an end the watch missed while it was down.
func TestEngineFollowsRunningTasksItReadOnce(t *testing.T) {
	f := newEngineFixture(t, "n1")
	ctx := context.Background()
	var stop func()
	follow := func() {
		fctx, cancel := context.WithCancel(ctx)
		done := make(chan struct{})
		go func() {
			defer close(done)
			f.e.follow(fctx, tasks.Prefix)
		}()
		stop = func() {
			cancel()
			<-done
		}
	}
	follow()
	t.Cleanup(func() { stop() })
	waitFor := func(what string, ok func() bool) {
		t.Helper()
		for deadline := time.Now().Add(10 * time.Second); !ok(); {
			if time.Now().After(deadline) {
				t.Fatalf("timed out waiting until %s", what)
			}
			time.Sleep(5 * time.Millisecond)
		}
	}
	waitFor("the watch started", func() bool { return f.e.liveStale.Swap(false) })
	wf, err := f.svc.Create(ctx, initSpec("n1"), "test")
	if err != nil {
		t.Fatal(err)
	}
	pass := func() {
		t.Helper()
		f.e.newRound()
		if err := f.e.reconcile(ctx, wf.GetId()); err != nil {
			t.Fatal(err)
		}
	}
	running := func(name string) string {
		t.Helper()
		pass() // reads the running step's task
		s := f.step(t, wf.GetId(), name)
		if s.GetState() != apiv1.StepState_STEP_STATE_RUNNING || f.e.live[s.GetTaskId()] == nil {
			t.Fatalf("%s running, its record read: %v, %v", name, s, f.e.live[s.GetTaskId()])
		}
		return s.GetTaskId()
	}
	succeed := func(id string) {
		t.Helper()
		if err := f.svc.tasks.Finish(ctx, "n1", &taskv1.TaskResult{TaskId: id, State: taskv1.TaskState_TASK_STATE_SUCCEEDED}); err != nil {
			t.Fatal(err)
		}
	}
	pass()
	id := running("n1/preflight")
	if _, err := f.st.Txn(ctx, store.Txn{Then: []store.Op{store.Delete(tasks.Prefix + id)}}); err != nil {
		t.Fatal(err)
	}
	waitFor("the watch saw the record go", f.e.liveStale.Load)
	pass()
	if rec, _, err := f.svc.tasks.Get(ctx, id); err != nil || rec.GetState() != taskv1.TaskState_TASK_STATE_PENDING {
		t.Fatalf("the lost task record was not created again: %v %v", rec, err)
	}
	running("n1/preflight")
	succeed(id)
	waitFor("the watch saw the task end", func() bool { return f.e.cachedTask(id) != nil })
	pass()
	if s := f.step(t, wf.GetId(), "n1/preflight"); s.GetState() != apiv1.StepState_STEP_STATE_SUCCEEDED {
		t.Fatalf("preflight after its task succeeded: %v", s)
	}

	// The next step's task ends while the watch is down: its restart makes the engine read
	// the record again.
	pass()
	next := running("n1/packages")
	stop()
	succeed(next)
	follow()
	waitFor("the watch restarted", f.e.liveStale.Load)
	pass()
	if s := f.step(t, wf.GetId(), "n1/packages"); s.GetState() != apiv1.StepState_STEP_STATE_SUCCEEDED {
		t.Fatalf("packages after its task succeeded while the watch was down: %v", s)
	}
}
