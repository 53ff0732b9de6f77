package cli

import (
	"fmt"
	"slices"
	"strings"
	"time"

	apiv1 "github.com/deckhandhq/deckhand/proto/deckhand/api/v1"
)

// upgradeProgress is the live view's line about an upgrade: nodes upgraded of all, the
// batch under way (the nodes whose upgrade starts together: control planes one by one, then
// each worker batch) and an estimate of the time left from the nodes done so far (their
// mean time, batch after batch). Empty for any other workflow.
func upgradeProgress(wf *apiv1.Workflow, now time.Time) string {
	if wf.GetSpec().GetUpgrade() == nil {
		return ""
	}
	steps := map[string]*apiv1.Step{}
	for _, s := range wf.GetSteps() {
		steps[s.GetName()] = s
	}
	// Batches: the gate steps (a node's first change) in plan order, grouped by what they
	// wait for.
	var batches [][]string
	var keys []string
	for _, s := range wf.GetSteps() {
		if !s.GetGate() {
			continue
		}
		key := strings.Join(s.GetDependsOn(), ",")
		if i := slices.Index(keys, key); i >= 0 {
			batches[i] = append(batches[i], s.GetLane())
			continue
		}
		keys, batches = append(keys, key), append(batches, []string{s.GetLane()})
	}
	if len(batches) == 0 {
		return ""
	}
	done := func(n string) bool {
		r := steps[n+"/ready"]
		return r != nil && r.GetState() == apiv1.StepState_STEP_STATE_SUCCEEDED
	}
	var upgraded int
	var spent time.Duration
	for _, b := range batches {
		for _, n := range b {
			if done(n) {
				upgraded++
				spent += steps[n+"/ready"].GetFinished().AsTime().Sub(steps[n+"/kubeadm"].GetStarted().AsTime())
			}
		}
	}
	total := 0
	current, left := -1, 0
	for i, b := range batches {
		total += len(b)
		if slices.ContainsFunc(b, func(n string) bool { return !done(n) }) {
			if current < 0 {
				current = i
			}
			left++
		}
	}
	out := fmt.Sprintf("upgraded %d of %d node(s)", upgraded, total)
	if current >= 0 {
		out += fmt.Sprintf("; batch %d of %d: %s", current+1, len(batches), strings.Join(batches[current], ", "))
		if upgraded > 0 {
			mean := spent / time.Duration(upgraded)
			// The batch under way has had part of its time already.
			eta := mean * time.Duration(left)
			if k := steps[batches[current][0]+"/kubeadm"]; k.GetStarted() != nil {
				eta -= min(mean, now.Sub(k.GetStarted().AsTime()))
			}
			out += fmt.Sprintf("; about %s left (%s a node so far)", max(eta, 0).Round(time.Second), mean.Round(time.Second))
		}
	}
	if wf.GetPaused() {
		out += "; paused"
	}
	return out
}
