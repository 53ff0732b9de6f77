package cli

import (
	"testing"
	"time"

	"google.golang.org/protobuf/types/known/timestamppb"

	apiv1 "github.com/deckhandhq/deckhand/proto/deckhand/api/v1"
)

func TestUpgradeProgress(t *testing.T) {
	t0 := time.Date(2026, 11, 30, 10, 0, 0, 0, time.UTC)
	at := func(d time.Duration) *timestamppb.Timestamp { return timestamppb.New(t0.Add(d)) }
	chain := func(n string, deps []string, started, finished time.Duration) []*apiv1.Step {
		k := &apiv1.Step{Name: n + "/kubeadm", Lane: n, Gate: true, DependsOn: deps, State: apiv1.StepState_STEP_STATE_PENDING}
		r := &apiv1.Step{Name: n + "/ready", Lane: n, DependsOn: []string{n + "/kubeadm"}, State: apiv1.StepState_STEP_STATE_PENDING}
		if started >= 0 {
			k.State, k.Started = apiv1.StepState_STEP_STATE_SUCCEEDED, at(started)
		}
		if finished >= 0 {
			r.State, r.Finished = apiv1.StepState_STEP_STATE_SUCCEEDED, at(finished)
		}
		return []*apiv1.Step{k, r}
	}
	upgrade := &apiv1.WorkflowSpec{Kind: &apiv1.WorkflowSpec_Upgrade{Upgrade: &apiv1.UpgradeWorkflow{KubernetesVersion: "v1.34.12"}}}
	var steps []*apiv1.Step
	steps = append(steps, chain("cp-1", []string{"stage"}, 0, 2*time.Minute)...)
	steps = append(steps, chain("cp-2", []string{"cp-1/ready"}, 2*time.Minute, 4*time.Minute)...)
	steps = append(steps, chain("w-1", []string{"cp-2/ready"}, 4*time.Minute, -1)...)
	steps = append(steps, chain("w-2", []string{"cp-2/ready"}, 4*time.Minute, -1)...)
	steps = append(steps, chain("w-3", []string{"w-1/ready", "w-2/ready"}, -1, -1)...)
	wf := &apiv1.Workflow{Spec: upgrade, Steps: steps}
	// Two nodes took 2m each; the batch of w-1 and w-2 started 1m ago: 1m for it, 2m for
	// the last batch.
	want := "upgraded 2 of 5 node(s); batch 3 of 4: w-1, w-2; about 3m0s left (2m0s a node so far)"
	if got := upgradeProgress(wf, t0.Add(5*time.Minute)); got != want {
		t.Errorf("progress:\n got %q\nwant %q", got, want)
	}
	wf.Paused = true
	if got := upgradeProgress(wf, t0.Add(5*time.Minute)); got != want+"; paused" {
		t.Errorf("paused: %q", got)
	}
	// Nothing done yet: no estimate.
	fresh := &apiv1.Workflow{Spec: upgrade, Steps: append(chain("cp-1", []string{"stage"}, -1, -1), chain("w-1", []string{"cp-1/ready"}, -1, -1)...)}
	if got := upgradeProgress(fresh, t0); got != "upgraded 0 of 2 node(s); batch 1 of 2: cp-1" {
		t.Errorf("fresh: %q", got)
	}
	if got := upgradeProgress(&apiv1.Workflow{Spec: &apiv1.WorkflowSpec{Kind: &apiv1.WorkflowSpec_Apply{}}}, t0); got != "" {
		t.Errorf("an apply: %q", got)
	}
}
