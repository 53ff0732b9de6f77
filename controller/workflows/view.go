package workflows

import (
	apiv1 "github.com/deckhandhq/deckhand/proto/deckhand/api/v1"
	storagev1 "github.com/deckhandhq/deckhand/proto/deckhand/storage/v1"
)

// View is the API's view of a stored workflow: what a client sees of the engine's record.
// Every field is chosen here, so a field the engine adds to its records stays internal
// until it is added to the API and to this view.
func View(r *storagev1.WorkflowRecord) *apiv1.Workflow {
	if r == nil {
		return nil
	}
	w := &apiv1.Workflow{
		Id: r.GetId(), Spec: r.GetSpec(), State: apiv1.WorkflowState(r.GetState()), Created: r.GetCreated(), Updated: r.GetUpdated(),
		FailedStep: r.GetFailedStep(), Nodes: r.GetNodes(), Concurrency: r.GetConcurrency(), Error: r.GetError(), CreatedBy: r.GetCreatedBy(),
		Paused: r.GetPaused(),
	}
	for _, s := range r.GetSteps() {
		w.Steps = append(w.Steps, viewStep(s))
	}
	return w
}

func viewStep(s *storagev1.StepRecord) *apiv1.Step {
	v := &apiv1.Step{
		Name: s.GetName(), Node: s.GetNode(), DependsOn: s.GetDependsOn(), Task: s.GetTask(), State: apiv1.StepState(s.GetState()),
		Attempts: s.GetAttempts(), MaxAttempts: s.GetMaxAttempts(), Timeout: s.GetTimeout(), TaskId: s.GetTaskId(),
		Outputs: s.GetOutputs(), Error: s.GetError(), Started: s.GetStarted(), Finished: s.GetFinished(),
		Always: s.GetAlways(), Ephemeral: s.GetEphemeral(), Action: s.GetAction(), ContinueOnFailure: s.GetContinueOnFailure(),
		NodeFrom: s.GetNodeFrom(), AnyControlPlane: s.GetAnyControlPlane(), NotBefore: s.GetNotBefore(), Lane: s.GetLane(),
		Summary: s.GetSummary(), Changes: s.GetChanges(), Finally: s.GetFinally(), SelfAllowed: s.GetSelfAllowed(), Gate: s.GetGate(),
	}
	for _, in := range s.GetInputs() {
		v.Inputs = append(v.Inputs, &apiv1.StepInput{Field: in.GetField(), Step: in.GetStep(), Output: in.GetOutput()})
	}
	return v
}

func viewed(r *storagev1.WorkflowRecord, err error) (*apiv1.Workflow, error) {
	if err != nil {
		return nil, err
	}
	return View(r), nil
}
