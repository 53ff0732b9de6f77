package client

import (
	"context"
	"fmt"
	"slices"
	"sync"
	"testing"
	"time"

	"google.golang.org/grpc"

	apiv1 "github.com/deckhandhq/deckhand/proto/deckhand/api/v1"
)

// fakeWorkflows streams a workflow's state: every change the test makes is sent to every
// watcher, as a controller does.
type fakeWorkflows struct {
	apiv1.UnimplementedWorkflowServiceServer
	mu      sync.Mutex
	wf      *apiv1.Workflow
	changed chan struct{} // closed and replaced on each change
}

func (f *fakeWorkflows) set(state apiv1.WorkflowState, steps ...apiv1.StepState) {
	f.mu.Lock()
	defer f.mu.Unlock()
	wf := &apiv1.Workflow{Id: "wf-1", State: state}
	for i, s := range steps {
		wf.Steps = append(wf.Steps, &apiv1.Step{Name: fmt.Sprintf("step-%d", i+1), State: s, Attempts: 1})
	}
	f.wf = wf
	close(f.changed)
	f.changed = make(chan struct{})
}

func (f *fakeWorkflows) WatchWorkflow(_ *apiv1.WatchWorkflowRequest, s grpc.ServerStreamingServer[apiv1.WatchWorkflowResponse]) error {
	for {
		f.mu.Lock()
		wf, changed := f.wf, f.changed
		f.mu.Unlock()
		if err := s.Send(&apiv1.WatchWorkflowResponse{Update: &apiv1.WatchWorkflowResponse_Workflow{Workflow: wf}}); err != nil {
			return err
		}
		if Done(wf) {
			return nil
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
