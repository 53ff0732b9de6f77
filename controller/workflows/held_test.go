package workflows

import (
	"context"
	"sync/atomic"
	"testing"
	"time"

	"github.com/deckhandhq/deckhand/controller/tasks"
	apiv1 "github.com/deckhandhq/deckhand/proto/deckhand/api/v1"
	taskv1 "github.com/deckhandhq/deckhand/proto/deckhand/task/v1"
	"github.com/deckhandhq/deckhand/store"
)

// On the leader, an agent's result of a step's task is recorded in the write that ends the
// step and starts the next (TakeResult): the task record and the step change at one
// revision, and the next step runs. A result from another node, or one sent once the
// engine stopped leading, is not taken: the session writes it (and Finish ignores what it
// must), nor one whose task's acknowledgement is not stored within heldWait (writing the
// pending record would fail the pass's write).
func TestEngineRecordsAResultInTheWriteThatEndsItsStep(t *testing.T) {
	f := newEngineFixture(t, "n1", "n2")
	ctx := context.Background()
	stop := f.lead(t)
	wf, err := f.svc.Create(ctx, initSpec("n1"), "test")
	if err != nil {
		t.Fatal(err)
	}
	running := func(name string) (string, int) { return f.running(t, wf.GetId(), name) }
	for _, name := range []string{"n1/preflight", "n1/packages"} {
		id, i := running(name)
		// Not n2's to end: not taken, and the record is as it was.
		if f.e.TakeResult(ctx, "n2", &taskv1.TaskResult{TaskId: id, State: taskv1.TaskState_TASK_STATE_SUCCEEDED}) {
			t.Fatalf("%s: a result from another node was taken", name)
		}
		if rec, _, err := f.svc.tasks.Get(ctx, id); err != nil || tasks.Terminal(rec.GetState()) {
			t.Fatalf("%s: after another node's result: %v %v", name, rec.GetState(), err)
		}
		// Not acknowledged (its ack's write lost): after heldWait, the session writes it.
		if f.e.TakeResult(ctx, "n1", &taskv1.TaskResult{TaskId: id, State: taskv1.TaskState_TASK_STATE_SUCCEEDED}) {
			t.Fatalf("%s: a result was taken into a record still pending", name)
		}
		if err := f.svc.tasks.Started(ctx, "n1", id); err != nil { // the agent's ack
			t.Fatal(err)
		}
		if !f.e.TakeResult(ctx, "n1", &taskv1.TaskResult{TaskId: id, State: taskv1.TaskState_TASK_STATE_SUCCEEDED, Outputs: map[string]string{"seen": name}}) {
			t.Fatalf("%s: its node's result was not taken", name)
		}
		rec, _, err := f.svc.tasks.Get(ctx, id)
		if err != nil || rec.GetState() != taskv1.TaskState_TASK_STATE_SUCCEEDED || rec.GetResult().GetOutputs()["seen"] != name {
			t.Fatalf("%s: task record after the result was taken: %v %v", name, rec, err)
		}
		tkv, _, err := f.st.Get(ctx, tasks.Prefix+id)
		if err != nil {
			t.Fatal(err)
		}
		skv, _, err := f.st.Get(ctx, stepKey(wf.GetId(), i))
		if err != nil {
			t.Fatal(err)
		}
		if tkv.ModRevision != skv.ModRevision {
			t.Fatalf("%s: the task record written at revision %d, its step at %d: not one write", name, tkv.ModRevision, skv.ModRevision)
		}
		if s := f.step(t, wf.GetId(), name); s.GetState() != apiv1.StepState_STEP_STATE_SUCCEEDED || s.GetOutputs()["seen"] != name {
			t.Fatalf("%s after its result: %v", name, s)
		}
	}
	id, _ := running("n1/runtime")
	stop()
	if f.e.TakeResult(ctx, "n1", &taskv1.TaskResult{TaskId: id, State: taskv1.TaskState_TASK_STATE_SUCCEEDED}) {
		t.Fatal("a result was taken by an engine that stopped leading")
	}
}

// A pass whose write takes longer than a result waits (heldWait) still records the result
// it read: its session does not write it meanwhile (that write would fail the pass's whole
// write), and TakeResult answers once the pass's write returned.
func TestASlowPassStillRecordsTheResultItRead(t *testing.T) {
	f := newEngineFixture(t, "n1")
	var slow atomic.Bool
	hs := &hookStore{Store: f.st, before: func(int) error {
		if slow.CompareAndSwap(true, false) {
			time.Sleep(heldWait + 300*time.Millisecond) // a commit that stalls (fault injection)
		}
		return nil
	}}
	f.svc.st = hs
	ctx := context.Background()
	wf, id := f.preflightRunning(t)
	if err := f.svc.tasks.Started(ctx, "n1", id); err != nil {
		t.Fatal(err)
	}
	slow.Store(true)
	t0 := time.Now()
	if !f.e.TakeResult(ctx, "n1", &taskv1.TaskResult{TaskId: id, State: taskv1.TaskState_TASK_STATE_SUCCEEDED}) {
		t.Fatalf("the result was left to the session after %v, while the pass that read it was writing it", time.Since(t0))
	}
	if rec, _, err := f.svc.tasks.Get(ctx, id); err != nil || rec.GetState() != taskv1.TaskState_TASK_STATE_SUCCEEDED {
		t.Fatalf("task record: %v %v", rec.GetState(), err)
	}
	if s := f.step(t, wf.GetId(), "n1/preflight"); s.GetState() != apiv1.StepState_STEP_STATE_SUCCEEDED {
		t.Fatalf("preflight after its result: %v", s)
	}
	if byPass, bySession := f.e.ResultsRecorded(); byPass != 1 || bySession != 0 {
		t.Fatalf("results recorded by a pass %d, left to the session %d; want 1 and 0", byPass, bySession)
	}
}

// A result that overtakes its task's acknowledgement (a short task) is held while the pass
// that read the record pending leaves it: the acknowledgement's write wakes another pass,
// which records it, well before the session would (heldWait), with no tick to help.
func TestAResultThatOvertookItsAckIsRecordedOnceTheAckIsWritten(t *testing.T) {
	f := newEngineFixture(t, "n1")
	f.e.Tick = time.Hour // no pass but those the store's changes ask for
	ctx := context.Background()
	wf, id := f.preflightRunning(t)
	byPass, _ := f.e.ResultsRecorded()
	taken := make(chan bool, 1)
	go func() {
		taken <- f.e.TakeResult(ctx, "n1", &taskv1.TaskResult{TaskId: id, State: taskv1.TaskState_TASK_STATE_SUCCEEDED})
	}()
	// A pass read the record, still pending, and left the result held.
	unacked := func() bool {
		f.e.mu.Lock()
		defer f.e.mu.Unlock()
		h := f.e.held[wf.GetId()][id]
		return h != nil && h.unacked && !h.taken
	}
	for deadline := time.Now().Add(10 * time.Second); !unacked(); {
		if time.Now().After(deadline) {
			t.Fatal("no pass read the held result's pending task record")
		}
		time.Sleep(time.Millisecond) // polling the engine, under the deadline above
	}
	if err := f.svc.tasks.Started(ctx, "n1", id); err != nil { // the agent's ack, written late
		t.Fatal(err)
	}
	if !<-taken {
		t.Fatal("the result was left to the session: the acknowledgement's write did not wake a pass")
	}
	if now, _ := f.e.ResultsRecorded(); now != byPass+1 {
		t.Fatalf("results recorded by a pass: %d, want %d", now, byPass+1)
	}
	if s := f.step(t, wf.GetId(), "n1/preflight"); s.GetState() != apiv1.StepState_STEP_STATE_SUCCEEDED {
		t.Fatalf("preflight after its result: %v", s)
	}
}

// lead runs the engine as the leader (its fence always holds) until the test ends or stop,
// which returns once Run did.
func (f *engineFixture) lead(t *testing.T) (stop func()) {
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan struct{})
	go func() {
		defer close(done)
		f.e.Run(ctx, store.Absent("/test/no-such-key"))
	}()
	stop = func() {
		cancel()
		<-done
	}
	t.Cleanup(stop)
	return stop
}

// preflightRunning runs the engine as the leader, creates an init workflow of n1 and waits
// until its preflight step runs; it returns the workflow and the step's task ID.
func (f *engineFixture) preflightRunning(t *testing.T) (*apiv1.Workflow, string) {
	t.Helper()
	f.lead(t)
	wf, err := f.svc.Create(context.Background(), initSpec("n1"), "test")
	if err != nil {
		t.Fatal(err)
	}
	id, _ := f.running(t, wf.GetId(), "n1/preflight")
	return wf, id
}

// running waits until step name of workflow wf runs with its task created, and returns
// the task's ID and the step's index.
func (f *engineFixture) running(t *testing.T, wf, name string) (string, int) {
	t.Helper()
	ctx := context.Background()
	for deadline := time.Now().Add(10 * time.Second); ; {
		w, err := f.svc.Get(ctx, wf)
		if err != nil {
			t.Fatal(err)
		}
		for i, s := range w.GetSteps() {
			if s.GetName() == name && s.GetState() == apiv1.StepState_STEP_STATE_RUNNING {
				if _, _, err := f.svc.tasks.Get(ctx, s.GetTaskId()); err == nil {
					return s.GetTaskId(), i
				}
			}
		}
		if time.Now().After(deadline) {
			t.Fatalf("%s never ran: %v", name, w.GetSteps())
		}
		time.Sleep(5 * time.Millisecond) // polling the store, under the deadline above
	}
}
