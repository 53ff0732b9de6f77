package client

import (
	"context"
	"fmt"
	"slices"
	"sync"
	"testing"
	"time"

	"google.golang.org/grpc"
	"google.golang.org/protobuf/types/known/timestamppb"

	apiv1 "github.com/deckhandhq/deckhand/proto/deckhand/api/v1"
	taskv1 "github.com/deckhandhq/deckhand/proto/deckhand/task/v1"
)

// fakeWorkflows streams a workflow as a controller does: a new stream gets every event
// recorded so far, then the workflow; then each event and change as the test makes it.
type fakeWorkflows struct {
	apiv1.UnimplementedWorkflowServiceServer
	mu      sync.Mutex
	wf      *apiv1.Workflow
	events  []*taskv1.TaskEvent
	changed chan struct{} // closed and replaced on each change
}

func (f *fakeWorkflows) set(state apiv1.WorkflowState, steps ...apiv1.StepState) {
	wf := &apiv1.Workflow{Id: "wf-1", State: state}
	for i, s := range steps {
		wf.Steps = append(wf.Steps, &apiv1.Step{Name: fmt.Sprintf("step-%d", i+1), State: s, Attempts: 1})
	}
	f.mu.Lock()
	defer f.mu.Unlock()
	f.wf = wf
	f.notify()
}

// log records a log line of task step-1's task, at second at.
func (f *fakeWorkflows) log(at int64, text string) {
	f.mu.Lock()
	defer f.mu.Unlock()
	f.events = append(f.events, &taskv1.TaskEvent{TaskId: "wf-1.step-1.1", Time: &timestamppb.Timestamp{Seconds: at},
		Event: &taskv1.TaskEvent_Log{Log: &taskv1.LogLine{Stream: "stdout", Text: text}}})
	f.notify()
}

func (f *fakeWorkflows) notify() {
	close(f.changed)
	f.changed = make(chan struct{})
}

func (f *fakeWorkflows) WatchWorkflow(_ *apiv1.WatchWorkflowRequest, s grpc.ServerStreamingServer[apiv1.WatchWorkflowResponse]) error {
	var sentWF *apiv1.Workflow
	sentEvents := 0
	for {
		f.mu.Lock()
		wf, events, changed := f.wf, f.events[sentEvents:], f.changed
		f.mu.Unlock()
		for _, ev := range events {
			if err := s.Send(&apiv1.WatchWorkflowResponse{Update: &apiv1.WatchWorkflowResponse_Event{Event: ev}}); err != nil {
				return err
			}
			sentEvents++
		}
		if wf != sentWF {
			if err := s.Send(&apiv1.WatchWorkflowResponse{Update: &apiv1.WatchWorkflowResponse_Workflow{Workflow: wf}}); err != nil {
				return err
			}
			sentWF = wf
			if Done(wf) {
				return nil
			}
		}
		select {
		case <-changed:
		case <-s.Context().Done():
			return s.Context().Err()
		}
	}
}

// A workflow watched through a controller that dies is followed on another to its end;
// each step change is reported once.
func TestWatchWorkflowAcrossAFailover(t *testing.T) {
	fc := newFakeCluster(t)
	wfs := &fakeWorkflows{changed: make(chan struct{})}
	fc.workflows = wfs
	wfs.set(apiv1.WorkflowState_WORKFLOW_STATE_RUNNING, apiv1.StepState_STEP_STATE_RUNNING, apiv1.StepState_STEP_STATE_PENDING)
	fc.listen("a")
	fc.listen("b")
	fc.serve("a", "b")
	fc.writeControllers(fc.addrs("a", "b")...)
	c := dial(t, Options{ConfigFile: fc.config, NoRefresh: true})

	var mu sync.Mutex
	var seen []string
	changed := make(chan struct{}, 16)
	type result struct {
		wf  *apiv1.Workflow
		err error
	}
	done := make(chan result, 1)
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	go func() {
		wf, err := c.WatchWorkflow(ctx, "wf-1", func(_ *apiv1.Workflow, s *apiv1.Step) {
			mu.Lock()
			seen = append(seen, s.GetName()+" "+s.GetState().String())
			mu.Unlock()
			changed <- struct{}{}
		})
		done <- result{wf, err}
	}()
	for range 2 { // both steps as first seen
		select {
		case <-changed:
		case <-ctx.Done():
			t.Fatal("no step seen")
		}
	}
	if c.Current() != fc.ctl["a"].addr {
		t.Fatalf("watching through %s, want a", c.Current())
	}
	fc.down("a")
	wfs.set(apiv1.WorkflowState_WORKFLOW_STATE_SUCCEEDED, apiv1.StepState_STEP_STATE_SUCCEEDED, apiv1.StepState_STEP_STATE_SUCCEEDED)
	r := <-done
	if r.err != nil || r.wf.GetState() != apiv1.WorkflowState_WORKFLOW_STATE_SUCCEEDED {
		t.Fatalf("WatchWorkflow: %v %v, want the workflow succeeded", r.wf.GetState(), r.err)
	}
	mu.Lock()
	defer mu.Unlock()
	want := []string{"step-1 STEP_STATE_RUNNING", "step-2 STEP_STATE_PENDING", "step-1 STEP_STATE_SUCCEEDED", "step-2 STEP_STATE_SUCCEEDED"}
	if !slices.Equal(seen, want) {
		t.Fatalf("step changes %v, want %v", seen, want)
	}
}

// A watch that follows a workflow's log reports each line once, in order, across a
// failover: the new controller's stream starts with the whole log again, and the lines
// written while no stream was open are not lost. A line the workflow logged twice is
// shown twice.
func TestWatchDeliversEventsOnceAcrossAFailover(t *testing.T) {
	fc := newFakeCluster(t)
	wfs := &fakeWorkflows{changed: make(chan struct{})}
	fc.workflows = wfs
	wfs.set(apiv1.WorkflowState_WORKFLOW_STATE_RUNNING, apiv1.StepState_STEP_STATE_RUNNING)
	wfs.log(1, "pulling images")
	wfs.log(2, "pulled 3 images")
	fc.listen("a")
	fc.listen("b")
	fc.serve("a", "b")
	fc.writeControllers(fc.addrs("a", "b")...)
	c := dial(t, Options{ConfigFile: fc.config, NoRefresh: true})

	lines := make(chan string, 16)
	var states []apiv1.WorkflowState
	reconnects := 0
	type result struct {
		wf  *apiv1.Workflow
		err error
	}
	done := make(chan result, 1)
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	go func() {
		wf, err := c.Watch(ctx, "wf-1", WatchHandlers{
			Workflow:  func(wf *apiv1.Workflow) { states = append(states, wf.GetState()) },
			Event:     func(ev *taskv1.TaskEvent) { lines <- ev.GetLog().GetText() },
			Reconnect: func(error) { reconnects++ },
		})
		close(lines)
		done <- result{wf, err}
	}()
	var got []string
	next := func() {
		t.Helper()
		select {
		case l, ok := <-lines:
			if !ok {
				t.Fatalf("the watch ended after %v", got)
			}
			got = append(got, l)
		case <-ctx.Done():
			t.Fatalf("lines so far %v; no more", got)
		}
	}
	next()
	next()
	if c.Current() != fc.ctl["a"].addr {
		t.Fatalf("watching through %s, want a", c.Current())
	}
	fc.down("a")
	wfs.log(3, "kubeadm join")
	wfs.log(1, "pulling images") // the same line again, logged again
	next()
	next()
	wfs.log(4, "joined")
	wfs.set(apiv1.WorkflowState_WORKFLOW_STATE_SUCCEEDED, apiv1.StepState_STEP_STATE_SUCCEEDED)
	for l := range lines {
		got = append(got, l)
	}
	r := <-done
	if r.err != nil || r.wf.GetState() != apiv1.WorkflowState_WORKFLOW_STATE_SUCCEEDED {
		t.Fatalf("Watch: %v %v, want the workflow succeeded", r.wf.GetState(), r.err)
	}
	if c.Current() != fc.ctl["b"].addr {
		t.Fatalf("the watch ended on %q, want b", c.Current())
	}
	want := []string{"pulling images", "pulled 3 images", "kubeadm join", "pulling images", "joined"}
	if !slices.Equal(got, want) {
		t.Fatalf("log lines %q, want %q", got, want)
	}
	// The new stream's first state equals the last one shown: it is not shown again.
	wantStates := []apiv1.WorkflowState{apiv1.WorkflowState_WORKFLOW_STATE_RUNNING, apiv1.WorkflowState_WORKFLOW_STATE_SUCCEEDED}
	if !slices.Equal(states, wantStates) || reconnects != 1 {
		t.Fatalf("states %v and %d reconnects, want %v and 1", states, reconnects, wantStates)
	}
}
