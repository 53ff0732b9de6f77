package workflows

import (
	"fmt"
	"math/rand/v2"
	"testing"
	"time"

	"google.golang.org/protobuf/proto"

	apiv1 "github.com/deckhandhq/deckhand/proto/deckhand/api/v1"
	storagev1 "github.com/deckhandhq/deckhand/proto/deckhand/storage/v1"
	taskv1 "github.com/deckhandhq/deckhand/proto/deckhand/task/v1"
	"github.com/deckhandhq/deckhand/store"
)

// The engine keeps its copy of a workflow across passes and remembers, per step, the
// dependencies already ended: whatever order steps run, end, fail or retry in, every pass
// decides what a pass over a freshly loaded copy decides.
func TestKeptCopyDecidesAsAFreshOne(t *testing.T) {
	// Mostly successes: once a step failed only always and finally steps start, and the
	// decisions about the rest would not be looked at.
	states := []storagev1.StepRecordState{succeeded, succeeded, succeeded, succeeded, succeeded, skipped, cancelled, failedSt}
	for seed := range uint64(200) {
		r := rand.New(rand.NewPCG(seed, 1))
		n := 5 + r.IntN(40)
		var steps []*storagev1.StepRecord
		for i := range n {
			s := st(fmt.Sprintf("n%d/s%d", r.IntN(4), i), pending)
			for j := range i {
				if r.IntN(4) == 0 {
					s.DependsOn = append(s.DependsOn, steps[j].GetName())
				}
			}
			s.Always, s.Finally, s.ContinueOnFailure = r.IntN(8) == 0, r.IntN(6) == 0, r.IntN(5) == 0
			if r.IntN(10) == 0 {
				s.Lane = "" // a peer's step: no lane, no place in the concurrency
			}
			steps = append(steps, s)
		}
		kept := wfOf(0, steps...)
		for round := range 3 * n {
			// Steps move forward: pending to running, running to an end or (a retry)
			// back to pending.
			for range 1 + r.IntN(3) {
				s := steps[r.IntN(n)]
				switch s.GetState() {
				case pending:
					s.State, s.Attempts = running, s.GetAttempts()+1
				case running:
					if r.IntN(4) == 0 {
						s.State = pending
					} else {
						s.State = states[r.IntN(len(states))]
					}
				}
			}
			var first *storagev1.StepRecord
			for _, s := range steps {
				if first == nil && s.GetState() == failedSt && !s.GetContinueOnFailure() {
					first = s
				}
			}
			if got := kept.firstFailed(); got != first {
				t.Fatalf("seed %d round %d: the kept copy's first failed step is %s, the steps' %s", seed, round, got.GetName(), first.GetName())
			}
			from, _ := kept.low()
			for i, s := range steps {
				if ended := stepDone(s.GetState()); i < from && !ended || i == from && ended {
					t.Fatalf("seed %d round %d: the kept copy's steps below %d have ended; step %d is %v", seed, round, from, i, s.GetState())
				}
			}
			// The admission from the kept copy, against every step looked at.
			adm := newAdmission(kept)
			started, unfinished := map[string]bool{}, map[string]bool{}
			for _, s := range steps {
				if s.GetAttempts() > 0 || s.GetState() == succeeded {
					started[s.GetLane()] = true
				}
				if !stepDone(s.GetState()) {
					unfinished[s.GetLane()] = true
				}
			}
			active := 0
			for lane := range started {
				if lane != "" && unfinished[lane] {
					active++
				}
			}
			if adm.active != active {
				t.Fatalf("seed %d round %d: the kept copy's admission counts %d lanes active, the steps %d", seed, round, adm.active, active)
			}
			for _, s := range steps {
				if !stepDone(s.GetState()) && s.GetLane() != "" && adm.lanes[s.GetLane()] != started[s.GetLane()] {
					t.Fatalf("seed %d round %d: lane %s started: the kept copy's admission says %v, the steps %v", seed, round, s.GetLane(), adm.lanes[s.GetLane()], started[s.GetLane()])
				}
			}
			failed := first != nil
			fresh := wfOf(0, cloneSteps(steps)...)
			aliveKept, aliveFresh := mayRun(kept, failed), mayRun(fresh, failed)
			for i, s := range steps {
				got := eligible(kept, i, failed, aliveKept, t0)
				// The rules themselves, every dependency looked at, on a fresh copy.
				want := oracleEligible(fresh, i, failed, aliveFresh)
				if got != want {
					t.Fatalf("seed %d round %d: step %s (deps %v, always %v, finally %v): the kept copy says eligible %v, the rules %v",
						seed, round, s.GetName(), s.GetDependsOn(), s.GetAlways(), s.GetFinally(), got, want)
				}
			}
		}
	}
}

// oracleEligible is eligible as the rules say it, looking at every dependency of step i
// (no cursor, nothing remembered).
func oracleEligible(l *loaded, i int, failed bool, alive func(*storagev1.StepRecord) bool) bool {
	s := l.wf.Steps[i]
	if s.GetState() != pending || failed && !s.GetAlways() && !s.GetFinally() || s.GetGate() && l.wf.GetPaused() {
		return false
	}
	for _, name := range s.GetDependsOn() {
		ds := l.step(name)
		switch st := ds.GetState(); {
		case ds == nil:
			return false
		case s.GetFinally():
			if !stepDone(st) && (st != pending || alive(ds)) {
				return false
			}
		case !depLets(s, st, ds.GetContinueOnFailure()):
			return false
		}
	}
	return s.GetNotBefore() == nil || !t0.Before(s.GetNotBefore().AsTime())
}

func cloneSteps(steps []*storagev1.StepRecord) []*storagev1.StepRecord {
	out := make([]*storagev1.StepRecord, len(steps))
	for i, s := range steps {
		out[i] = proto.Clone(s).(*storagev1.StepRecord)
	}
	return out
}

// A pass's bounds follow the store's transaction limits: etcd's defaults or raftstore's.
func TestPassSettings(t *testing.T) {
	for _, c := range []struct {
		limits               store.TxnLimits
		create, write, bytes int
	}{
		{store.DefaultTxnLimits, 32, 128, 1179648},
		{store.TxnLimits{Ops: 2048, Bytes: 4 << 20}, 512, 2048, 3 << 20},
		{store.TxnLimits{Ops: 2, Bytes: 10}, 1, 2, 6},
	} {
		got := passSettings(time.Second, c.limits)
		if got.maxCreate != c.create || got.maxWrite != c.write || got.maxBytes != c.bytes || got.backoff != time.Second {
			t.Errorf("passSettings(%+v) = %+v; want create %d, write %d, bytes %d", c.limits, got, c.create, c.write, c.bytes)
		}
	}
}

// A pass computes the pod network's nodes once for all the routes steps it renders, and
// the next pass sees the nodes registered since.
func TestRoutesOfEachPassFollowTheNodesRegisteredBeforeIt(t *testing.T) {
	network := func(node string) *storagev1.StepRecord {
		return &storagev1.StepRecord{Name: node + "/network", Node: node, Lane: node, State: pending, MaxAttempts: 3,
			Task:   &taskv1.TaskSpec{Kind: &taskv1.TaskSpec_Network{Network: &taskv1.NetworkSpec{PodCidr: "10.244.9.0/24"}}},
			Inputs: []*storagev1.StepInputRecord{{Field: "routes"}}, DependsOn: []string{node + "/go"}}
	}
	reg := st("n3/registered", running)
	reg.TaskId = "wf.n3.registered.1"
	l := wfOf(0, reg, st("n4/go", succeeded), network("n4"), st("n5/go", pending), network("n5"))
	view := fakeView{cluster: testCluster("n1", "n2"), tasks: map[string]*apiv1.TaskRecord{
		"wf.n3.registered.1": rec("wf.n3.registered.1", "wf", "n3/registered", taskv1.TaskState_TASK_STATE_RUNNING, nil, nil)}}
	routes := func(d *decisions, node string) int {
		for _, c := range d.create {
			if c.GetNode() == node {
				return len(c.GetSpec().GetNetwork().GetRoutes())
			}
		}
		for _, s := range l.wf.GetSteps() {
			t.Logf("%s %v %v", s.GetName(), s.GetState(), s.GetError())
		}
		t.Fatalf("no task for %s", node)
		return 0
	}
	d, err := compute(l, &view, t0, engineSettings{maxCreate: 32})
	if err != nil {
		t.Fatal(err)
	}
	if n := routes(d, "n4"); n != 2 {
		t.Errorf("n4 has %d routes, want n1's and n2's (n3 is not registered yet)", n)
	}
	// n3 registers; n5 may go: the next pass routes n5 to n3 too.
	res := rec("wf.n3.registered.1", "wf", "n3/registered", taskv1.TaskState_TASK_STATE_SUCCEEDED, nil, nil)
	res.Result.Outputs = map[string]string{"pod_cidr": "10.244.3.0/24", "address": "10.250.0.13"}
	view.tasks["wf.n3.registered.1"] = res
	l.step("n5/go").State = succeeded
	if d, err = compute(l, &view, t0, engineSettings{maxCreate: 32}); err != nil {
		t.Fatal(err)
	}
	if n := routes(d, "n5"); n != 3 {
		t.Errorf("n5 has %d routes, want n1's, n2's and n3's", n)
	}
}
