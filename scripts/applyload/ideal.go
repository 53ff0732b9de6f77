package main

import (
	"fmt"
	"time"

	apiv1 "github.com/deckhandhq/deckhand/proto/deckhand/api/v1"
)

// idealSchedule is the wall time the apply's own plan takes under the engine's policy when
// nothing but its tasks costs: every task takes T, controller actions, skipped steps,
// dispatch and recording take no time, and
// steps start as the engine starts them (in plan order once their dependencies ended, at
// most concurrency lanes in flight; a lane counts from its first started step until all of
// its steps ended; steps without a lane, the routes steps, are not counted). It also
// returns the longest chain of tasks any step waited for, in tasks.
//
// It is the bound the measured wall time is set against: it follows the plan as it is (the
// worker lane's token, join, registered, network and ready steps on its critical path), not
// a formula that goes stale when the plan changes.
func idealSchedule(steps []*apiv1.Step, concurrency int, T time.Duration) (time.Duration, int, error) {
	n := len(steps)
	idx := make(map[string]int, n)
	for i, s := range steps {
		idx[s.GetName()] = i
	}
	waiting := make([]int, n) // dependencies not ended
	dependents := make([][]int, n)
	for i, s := range steps {
		for _, d := range s.GetDependsOn() {
			j, ok := idx[d]
			if !ok {
				return 0, 0, fmt.Errorf("step %s depends on %s, which the workflow does not have", s.GetName(), d)
			}
			waiting[i]++
			dependents[j] = append(dependents[j], i)
		}
	}
	left := map[string]int{} // per lane: steps not ended
	for _, s := range steps {
		if l := s.GetLane(); l != "" {
			left[l]++
		}
	}
	started := make([]bool, n)
	ends := make([]int64, n) // in units of T
	depth := make([]int, n)  // tasks on the longest chain ending with this step
	laneOn := map[string]bool{}
	active, ended := 0, 0
	var now int64
	var running []int
	finish := func(i int) {
		ended++
		if l := steps[i].GetLane(); l != "" {
			if left[l]--; left[l] == 0 {
				active--
			}
		}
		for _, j := range dependents[i] {
			waiting[j]--
			depth[j] = max(depth[j], depth[i])
		}
	}
	for ended < n {
		// Start everything that may start now; an action ends at once and may let more
		// steps start at the same instant.
		for more := true; more; {
			more = false
			for i, s := range steps {
				if started[i] || waiting[i] > 0 {
					continue
				}
				l := s.GetLane()
				if concurrency > 0 && l != "" && !laneOn[l] && active >= concurrency {
					continue
				}
				if l != "" && !laneOn[l] {
					laneOn[l] = true
					active++
				}
				started[i] = true
				if s.GetAction() != "" || s.GetState() == apiv1.StepState_STEP_STATE_SKIPPED {
					// An action, or a step that had nothing to do (no token to delete, a
					// node gone): no task ran.
					finish(i)
					more = true
					continue
				}
				depth[i]++
				ends[i] = now + 1
				running = append(running, i)
			}
		}
		if len(running) == 0 {
			if ended < n {
				return 0, 0, fmt.Errorf("%d steps can never start (a dependency cycle or a lane that never ends)", n-ended)
			}
			break
		}
		// Every running task ends one T after it started: the earliest ends next.
		next := ends[running[0]]
		for _, i := range running {
			next = min(next, ends[i])
		}
		now = next
		kept := running[:0]
		for _, i := range running {
			if ends[i] == now {
				finish(i)
			} else {
				kept = append(kept, i)
			}
		}
		running = kept
	}
	longest := 0
	for _, d := range depth {
		longest = max(longest, d)
	}
	return time.Duration(now) * T, longest, nil
}
