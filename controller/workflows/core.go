package workflows

import (
	"fmt"
	"strings"
	"time"

	"google.golang.org/protobuf/proto"
	"google.golang.org/protobuf/types/known/timestamppb"

	"github.com/deckhandhq/deckhand/controller/tasks"
	"github.com/deckhandhq/deckhand/internal/features"
	"github.com/deckhandhq/deckhand/internal/podnet"
	apiv1 "github.com/deckhandhq/deckhand/proto/deckhand/api/v1"
	storagev1 "github.com/deckhandhq/deckhand/proto/deckhand/storage/v1"
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
func settle(wfID string, s *storagev1.StepRecord, rec *apiv1.TaskRecord, now time.Time, backoff time.Duration) settlement {
	if !tasks.Terminal(rec.GetState()) {
		if timesOut(s, now) {
			s.Error = &taskv1.TaskError{Reason: "TIMEOUT", Message: fmt.Sprintf("%s did not finish within %v", s.GetName(), s.GetTimeout().AsDuration()),
				Hint: "look at the step's log (deckctl logs " + wfID + " --node " + s.GetLane() + ")"}
			return timedOut
		}
		return stillRunning
	}
	res := rec.GetResult()
	s.Changes = res.GetChanges()
	if rec.GetState() == taskv1.TaskState_TASK_STATE_SUCCEEDED {
		s.State = storagev1.StepRecordState_STEP_RECORD_STATE_SUCCEEDED
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
		s.State = storagev1.StepRecordState_STEP_RECORD_STATE_PENDING
		s.NotBefore = timestamppb.New(now.Add(backoff))
	} else {
		s.State = storagev1.StepRecordState_STEP_RECORD_STATE_FAILED
		s.Finished = timestamppb.New(now)
	}
	return settledStep
}

// timesOut says whether running step s has outrun its timeout at now and is not yet marked
// for it (its task's cancel then asked for).
func timesOut(s *storagev1.StepRecord, now time.Time) bool {
	to := s.GetTimeout().AsDuration()
	return to > 0 && now.Sub(s.GetStarted().AsTime()) > to && s.GetError().GetReason() != "TIMEOUT"
}

// eligible says whether pending step s may start at now as far as the workflow goes: once
// a step failed only clean-up (always) and finally steps start; its dependencies have ended
// the way it needs (a finally step's: ended, or can no longer run, as alive says); its retry
// backoff is over. (Whether its lane has room is admission's business, and on which node it
// runs the shell's.)
func eligible(l *loaded, i int, failed bool, alive func(*storagev1.StepRecord) bool, now time.Time) bool {
	s := l.wf.Steps[i]
	if s.GetState() != storagev1.StepRecordState_STEP_RECORD_STATE_PENDING || failed && !s.GetAlways() && !s.GetFinally() {
		return false
	}
	if s.GetGate() && l.wf.GetPaused() {
		return false // paused: no node starts
	}
	if s.GetFinally() {
		deps := l.deps(i)
		for _, ds := range deps[l.depsFrom(i, func(*storagev1.StepRecord) bool { return true }):] {
			if ds == nil {
				return false
			}
			if st := ds.GetState(); !stepDone(st) && (st != storagev1.StepRecordState_STEP_RECORD_STATE_PENDING || alive(ds)) {
				return false
			}
		}
	} else if ok, _ := satisfied(l, i); !ok {
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

func newAdmission(l *loaded) *admission {
	wf := l.wf
	a := &admission{limit: int(wf.GetConcurrency()), lanes: map[string]bool{}}
	// The steps below from have ended: a lane of theirs that has steps left is started when
	// one of those was (low remembers), and a lane with none left is asked about by no step.
	from, _ := l.low()
	// A lane's steps are next to each other in a plan: one map lookup per run of steps of
	// the same lane, not one per step (this runs on every pass over every step).
	const started, unfinished = 1, 2
	lanes := map[string]uint8{}
	var last string
	var cur uint8
	flush := func() {
		if last != "" && cur != 0 {
			lanes[last] |= cur
		}
	}
	for _, s := range wf.GetSteps()[from:] {
		if lane := s.GetLane(); lane != last {
			flush()
			last, cur = lane, 0
		}
		if s.GetAttempts() > 0 || s.GetState() == storagev1.StepRecordState_STEP_RECORD_STATE_SUCCEEDED {
			cur |= started
		}
		if !stepDone(s.GetState()) {
			cur |= unfinished
		}
	}
	flush()
	for lane, f := range lanes {
		if lane != "" && (f&started != 0 || l.startedBelow[lane]) { // steps of no lane (peers' routes) hold no place
			a.lanes[lane] = true
			if f&unfinished != 0 {
				a.active++
			}
		}
	}
	return a
}

// admits says whether step s may start now as far as the concurrency goes.
func (a *admission) admits(s *storagev1.StepRecord) bool {
	return a.limit <= 0 || s.GetLane() == "" || a.lanes[s.GetLane()] || a.active < a.limit
}

// start counts s as started.
func (a *admission) start(s *storagev1.StepRecord) {
	if s.GetLane() != "" && !a.lanes[s.GetLane()] {
		a.lanes[s.GetLane()] = true
		a.active++
	}
}

// outcome says whether the workflow is over and how: it is when no step runs and no pending
// step can still run. A failed step (not continue-on-failure) fails it; steps that can
// never run block it.
func outcome(l *loaded) (over bool, state storagev1.WorkflowRecordState, failedStep string, err *taskv1.TaskError) {
	wf := l.wf
	from, _ := l.low() // the steps below have ended: none runs, none can
	for _, s := range wf.GetSteps()[from:] {
		if s.GetState() == storagev1.StepRecordState_STEP_RECORD_STATE_RUNNING {
			return false, wf.GetState(), "", nil
		}
	}
	failed := l.firstFailed()
	alive := mayRun(l, failed != nil)
	for _, s := range wf.GetSteps()[from:] {
		if alive(s) {
			return false, wf.GetState(), "", nil
		}
	}
	switch {
	case failed != nil:
		return true, storagev1.WorkflowRecordState_WORKFLOW_RECORD_STATE_FAILED, failed.GetName(), failed.GetError()
	case allDone(wf):
		return true, storagev1.WorkflowRecordState_WORKFLOW_RECORD_STATE_SUCCEEDED, "", nil
	}
	return true, storagev1.WorkflowRecordState_WORKFLOW_RECORD_STATE_FAILED, "", &taskv1.TaskError{Reason: "BLOCKED", Message: "no step can run", Hint: "deckctl workflow describe " + wf.GetId()}
}

// fixedNode is the node a step runs on when it is known without the cluster: its own, or
// that of the step it follows (NodeFrom: the control plane that drained, minted a token).
func fixedNode(l *loaded, s *storagev1.StepRecord) (string, bool) {
	if s.GetNode() != "" {
		return s.GetNode(), true
	}
	if from := s.GetNodeFrom(); from != "" {
		if p := l.step(from); p != nil && p.GetNode() != "" && p.GetState() != storagev1.StepRecordState_STEP_RECORD_STATE_SKIPPED {
			return p.GetNode(), true
		}
	}
	return "", false
}

// pickNode chooses, for a step that may run on any control plane, a Ready control plane of
// the recorded cluster other than the step's own lane (the node it is about); none Ready
// (one going NotReady mid-workflow) means waiting, with the reason.
func pickNode(s *storagev1.StepRecord, cl *apiv1.Cluster, ready func(string) bool) (string, string) {
	for _, n := range cl.GetNodes() {
		if n.GetRole() == taskv1.NodeRole_NODE_ROLE_CONTROL_PLANE && n.GetName() != s.GetLane() && ready(n.GetName()) {
			return n.GetName(), ""
		}
	}
	if self := clusterNode(cl, s.GetLane()); s.GetSelfAllowed() && self != nil && self.GetRole() == taskv1.NodeRole_NODE_ROLE_CONTROL_PLANE && ready(self.GetName()) {
		return self.GetName(), ""
	}
	if cl == nil {
		return "", "waiting for the cluster's first control plane"
	}
	return "", "waiting for a Ready control-plane node"
}

// renderSpec fills step s's inputs into a copy of its task spec: from the outputs of the
// steps that produce them (outputs by step name: a token, a CA hash, a pod CIDR), or from the
// recorded cluster cl at store revision gen (a network step's routes and pod CIDR). In a
// dry-run a missing output becomes a placeholder; a token-delete step whose token was never
// minted has nothing to do (a skipError). reads, asked only when s has a routes input (nil:
// never), says whether the node's agent has a feature beyond the task API of the release
// before (see package features): NetworkSpec.packed_routes, and the refusal of a spec left
// with routes_from_record set. A peer's routes update (no lane) on an agent that refuses
// one is stored with routes_from_record instead of its list, for the replica that sends it
// to fill (see RouteFiller): the peers' update after a join into 1,000 nodes is 1,000
// records of a few bytes, where each would hold 9 KiB of routes written three times.
func renderSpec(l *loaded, s *storagev1.StepRecord, cl *apiv1.Cluster, gen int64, outputs map[string]map[string]string, dry bool, reads func(feature string) bool) (*taskv1.TaskSpec, error) {
	t := proto.Clone(s.GetTask()).(*taskv1.TaskSpec)
	var view []netNode
	for _, in := range s.GetInputs() {
		if in.GetStep() == "" && in.GetField() == "backends" {
			if s.GetLane() == "" && !dry && clusterNode(cl, s.GetNode()) == nil {
				// A peer's update on a node whose own join failed (or that left): it runs
				// no part of the load balancer to update.
				return nil, &skipError{fmt.Sprintf("%s is not a node of the cluster: it has no load balancer to update", s.GetNode())}
			}
			lb := t.GetLoadBalancer()
			lb.Backends, lb.Generation = backendsFor(cl, lb.GetBackends()), uint64(gen)
			if len(lb.Backends) == 0 && dry {
				// Nothing is recorded in a dry-run: the control planes this workflow would record.
				lb.Backends = plannedBackends(l)
			}
			if len(lb.Backends) == 0 {
				if s.GetLane() != "" {
					// A node's own load balancer, before its join: without an API server to
					// forward to, its join could never reach the cluster.
					return nil, fmt.Errorf("backends: no control plane of the cluster has a known address to forward to")
				}
				return nil, &skipError{"no control plane with a known address to forward to"}
			}
			continue
		}
		if in.GetStep() == "" {
			if view == nil {
				view = l.networkView(cl)
			}
			n := t.GetNetwork()
			switch in.GetField() {
			case "routes":
				n.Generation = uint64(gen)
				if s.GetLane() == "" && !dry && l.viewRecorded(cl) && reads != nil && reads(features.RoutesFromRecord) {
					// The filler reads the cluster record alone: only when it holds every
					// node of the view (a node of this workflow that registered, then failed
					// before it was recorded, is routed to from the view's list).
					n.RoutesFromRecord, n.PackedRoutes = true, podnet.UnfilledRoutes()
					continue
				}
				setRoutes(n, view, s.GetNode(), reads != nil && reads(features.PackedRoutes))
			case "pod_cidr":
				for _, v := range view {
					if v.name == s.GetNode() {
						n.PodCidr = v.podCIDR
					}
				}
				if n.GetPodCidr() == "" {
					return nil, &skipError{fmt.Sprintf("%s is not a node of the cluster with a podCIDR any more: it has no routes to update", s.GetNode())}
				}
			default:
				return nil, fmt.Errorf("unknown input field %q", in.GetField())
			}
			continue
		}
		val := outputs[in.GetStep()][in.GetOutput()]
		if in.GetField() == "delete_token_id" {
			val, _, _ = strings.Cut(val, ".")
			if val == "" && !dry {
				// The step failed before it minted a token, or found the work done (an
				// init that had run already): there is no token of this workflow's to delete.
				return nil, &skipError{fmt.Sprintf("%s minted no token: nothing to delete", in.GetStep())}
			}
		}
		if val == "" {
			if !dry {
				return nil, fmt.Errorf("%s: step %s produced no %s", in.GetField(), in.GetStep(), in.GetOutput())
			}
			val = placeholders[in.GetField()]
			if in.GetField() == "pod_cidr" {
				val = placeholderPodCIDR(t.GetNetwork().GetClusterPodSubnet())
			}
		}
		switch in.GetField() {
		case "token":
			t.GetKubeadmJoin().Token = val
		case "ca_cert_hash":
			t.GetKubeadmJoin().CaCertHash = val
		case "certificate_key":
			t.GetKubeadmJoin().CertificateKey = val
		case "delete_token_id":
			t.GetKubeadmToken().DeleteTokenId = val
		case "api_server":
			if c := t.GetKubeadmJoin().GetCluster(); c != nil && c.GetControlPlaneEndpoint() == "" {
				c.ControlPlaneEndpoint = val
			}
		case "pod_cidr":
			t.GetNetwork().PodCidr = val
		default:
			return nil, fmt.Errorf("unknown input field %q", in.GetField())
		}
	}
	return t, nil
}

// retrySet names the steps a retry runs again: every step that did not succeed (or was
// skipped), the ephemeral steps whose outputs those consume (a join token may be gone), and
// the clean-up (always) and finally steps after any of them (the routes and load balancer
// lists that must include the nodes the retry joins).
func retrySet(l *loaded) map[string]bool {
	again := map[string]bool{}
	for _, st := range l.wf.GetSteps() {
		if st.GetState() != storagev1.StepRecordState_STEP_RECORD_STATE_SUCCEEDED && st.GetState() != storagev1.StepRecordState_STEP_RECORD_STATE_SKIPPED {
			again[st.GetName()] = true
		}
	}
	for changed := true; changed; {
		changed = false
		for _, st := range l.wf.GetSteps() {
			if !again[st.GetName()] {
				continue
			}
			for _, in := range st.GetInputs() {
				if p := l.step(in.GetStep()); p != nil && p.GetEphemeral() && !again[p.GetName()] {
					again[p.GetName()], changed = true, true
				}
			}
		}
		for _, st := range l.wf.GetSteps() {
			if again[st.GetName()] || !st.GetAlways() && !st.GetFinally() {
				continue
			}
			for _, d := range st.GetDependsOn() {
				if again[d] {
					again[st.GetName()], changed = true, true
				}
			}
		}
	}
	return again
}

// resetForRetry makes step st pending again with a fresh allowance of attempts; a step that
// may run on any control plane chooses its node again.
func resetForRetry(st *storagev1.StepRecord) {
	st.State = storagev1.StepRecordState_STEP_RECORD_STATE_PENDING
	st.MaxAttempts = st.GetAttempts() + max(1, min(st.GetMaxAttempts(), defaultAttempts))
	st.Error, st.NotBefore, st.Finished = nil, nil, nil
	if st.GetAnyControlPlane() || st.GetNodeFrom() != "" {
		st.Node = ""
	}
}

// cancelSteps cancels the running and pending steps of wf at now; it returns the tasks of
// the running ones (to cancel on their nodes) and the indexes of the changed steps, the
// running ones first.
func cancelSteps(wf *storagev1.WorkflowRecord, now time.Time) (tasks []string, first, rest []int) {
	for i, st := range wf.GetSteps() {
		switch st.GetState() {
		case storagev1.StepRecordState_STEP_RECORD_STATE_RUNNING:
			tasks = append(tasks, st.GetTaskId())
			st.State = storagev1.StepRecordState_STEP_RECORD_STATE_CANCELLED
			st.Finished = timestamppb.New(now)
			first = append(first, i)
		case storagev1.StepRecordState_STEP_RECORD_STATE_PENDING:
			st.State = storagev1.StepRecordState_STEP_RECORD_STATE_CANCELLED
			rest = append(rest, i)
		}
	}
	return tasks, first, rest
}
