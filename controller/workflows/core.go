package workflows

import (
	"fmt"
	"time"

	"google.golang.org/protobuf/types/known/timestamppb"

	"github.com/deckhandhq/deckhand/controller/tasks"
	apiv1 "github.com/deckhandhq/deckhand/proto/deckhand/api/v1"
	taskv1 "github.com/deckhandhq/deckhand/proto/deckhand/task/v1"
)

// The pure decisions of a reconcile pass (Engine.reconcile is the shell around them: it
// loads the workflow and the task records, calls these, and writes what changed in one
// fenced transaction). None of them reads the store, the clock or the network; each has
// table tests in core_test.go.

// backoffFor is the delay before attempt number attempts+1 of a step: first doubling per
// attempt, at most 30 s.
func backoffFor(first time.Duration, attempts uint32) time.Duration {
	d := first
	for i := uint32(1); i < attempts && d < maxBackoff; i++ {
		d *= 2
	}
	return min(d, maxBackoff)
}

const maxBackoff = 30 * time.Second

// settlement is what a running step's task record means for the step.
type settlement int

const (
	stillRunning settlement = iota // the task runs, within its time
	timedOut                       // the task overran the step's timeout: cancel it (the step's error says so)
	settledStep                    // the task ended: the step is updated
)

// settle applies the task record rec of running step s at now: a finished task makes the
// step succeed (with its public outputs), or pending again after a backoff while attempts
// are left, or failed; a task still running past the step's timeout is to be cancelled,
// and its cancellation then counts as a TIMEOUT failure.
func settle(wfID string, s *apiv1.Step, rec *apiv1.TaskRecord, now time.Time, backoff time.Duration) settlement {
	if !tasks.Terminal(rec.GetState()) {
		if to := s.GetTimeout().AsDuration(); to > 0 && now.Sub(s.GetStarted().AsTime()) > to && s.GetError().GetReason() != "TIMEOUT" {
			s.Error = &taskv1.TaskError{Reason: "TIMEOUT", Message: fmt.Sprintf("%s did not finish within %v", s.GetName(), to),
				Hint: "look at the step's log (deckctl logs " + wfID + " --node " + s.GetLane() + ")"}
			return timedOut
		}
		return stillRunning
	}
	res := rec.GetResult()
	s.Changes = res.GetChanges()
	if rec.GetState() == taskv1.TaskState_TASK_STATE_SUCCEEDED {
		s.State = apiv1.StepState_STEP_STATE_SUCCEEDED
		s.Outputs = publicOutputs(res.GetOutputs())
		s.Error = nil
		s.Finished = timestamppb.New(now)
		return settledStep
	}
	if s.GetError().GetReason() != "TIMEOUT" || rec.GetState() != taskv1.TaskState_TASK_STATE_CANCELLED {
		s.Error = res.GetError()
		if s.Error == nil {
			s.Error = &taskv1.TaskError{Reason: "TASK_FAILED", Message: "the task " + s.GetTaskId() + " failed"}
		}
	}
	if s.GetAttempts() < s.GetMaxAttempts() {
		s.State = apiv1.StepState_STEP_STATE_PENDING
		s.NotBefore = timestamppb.New(now.Add(backoff))
	} else {
		s.State = apiv1.StepState_STEP_STATE_FAILED
		s.Finished = timestamppb.New(now)
	}
	return settledStep
}

// eligible says whether pending step s may start at now as far as the workflow goes: once
// a step failed only clean-up (always) steps start; its dependencies have ended the way it
// needs; its retry backoff is over. (Whether its lane has room is admission's business, and
// on which node it runs the shell's.)
func eligible(l *loaded, s *apiv1.Step, failed bool, now time.Time) bool {
	if s.GetState() != apiv1.StepState_STEP_STATE_PENDING || failed && !s.GetAlways() {
		return false
	}
	if ok, _ := satisfied(l, s); !ok {
		return false
	}
	nb := s.GetNotBefore()
	return nb == nil || !now.Before(nb.AsTime())
}

// admission bounds how many lanes (a node's own steps) run at once: the workflow's
// concurrency. A lane counts from its first dispatched step until all of its steps ended;
// a step waiting for its retry keeps its lane's place.
type admission struct {
	limit  int
	lanes  map[string]bool // started
	active int             // started and unfinished
}

func newAdmission(wf *apiv1.Workflow) *admission {
	a := &admission{limit: int(wf.GetConcurrency()), lanes: map[string]bool{}}
	unfinished := map[string]bool{}
	for _, s := range wf.GetSteps() {
		if s.GetLane() != "" && (s.GetAttempts() > 0 || s.GetState() == apiv1.StepState_STEP_STATE_SUCCEEDED) {
			a.lanes[s.GetLane()] = true
		}
		if !stepDone(s.GetState()) {
			unfinished[s.GetLane()] = true
		}
	}
	for lane := range a.lanes {
		if unfinished[lane] {
			a.active++
		}
	}
	return a
}

// admits says whether step s may start now as far as the concurrency goes.
func (a *admission) admits(s *apiv1.Step) bool {
	return a.limit <= 0 || s.GetLane() == "" || a.lanes[s.GetLane()] || a.active < a.limit
}

// start counts s as started.
func (a *admission) start(s *apiv1.Step) {
	if s.GetLane() != "" && !a.lanes[s.GetLane()] {
		a.lanes[s.GetLane()] = true
		a.active++
	}
}

// outcome says whether the workflow is over and how: it is when no step runs and no pending
// step can still run. A failed step (not continue-on-failure) fails it; steps that can
// never run block it.
func outcome(l *loaded) (over bool, state apiv1.WorkflowState, failedStep string, err *taskv1.TaskError) {
	wf := l.wf
	for _, s := range wf.GetSteps() {
		if s.GetState() == apiv1.StepState_STEP_STATE_RUNNING {
			return false, wf.GetState(), "", nil
		}
	}
	failed := firstFailed(wf)
	alive := mayRun(l, failed != nil)
	for _, s := range wf.GetSteps() {
		if alive(s) {
			return false, wf.GetState(), "", nil
		}
	}
	switch {
	case failed != nil:
		return true, apiv1.WorkflowState_WORKFLOW_STATE_FAILED, failed.GetName(), failed.GetError()
	case allDone(wf):
		return true, apiv1.WorkflowState_WORKFLOW_STATE_SUCCEEDED, "", nil
	}
	return true, apiv1.WorkflowState_WORKFLOW_STATE_FAILED, "", &taskv1.TaskError{Reason: "BLOCKED", Message: "no step can run", Hint: "deckctl workflow describe " + wf.GetId()}
}
