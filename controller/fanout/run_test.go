package fanout_test

import (
	"context"
	"fmt"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/deckhandhq/deckhand/controller/fanout"
	"github.com/deckhandhq/deckhand/controller/nodes"
	"github.com/deckhandhq/deckhand/controller/tasks"
	"github.com/deckhandhq/deckhand/internal/testkit/teststore"
	apiv1 "github.com/deckhandhq/deckhand/proto/deckhand/api/v1"
	taskv1 "github.com/deckhandhq/deckhand/proto/deckhand/task/v1"
	"github.com/deckhandhq/deckhand/store"
)

// fleet is a store with n enrolled nodes and fake agents that end every task they are
// given at once (n-001's fails), except on the nodes in stuck.
type fleet struct {
	st      store.Store
	svc     *tasks.Service
	mu      sync.Mutex
	maxOpen int            // most tasks of a run not ended, seen after a create
	created map[string]int // task ID → creates that wrote it
}

func newFleet(t *testing.T, n int, stuck map[string]bool) (*fleet, []string) {
	t.Helper()
	ctx := context.Background()
	st := teststore.New(t)
	reg := nodes.New(st, nil)
	var names []string
	for i := range n {
		name := fmt.Sprintf("n-%03d", i)
		if err := reg.Enroll(ctx, name, "m", "s"); err != nil {
			t.Fatal(err)
		}
		names = append(names, name)
	}
	f := &fleet{st: st, svc: tasks.New(st, reg, nil), created: map[string]int{}}
	actx, cancel := context.WithCancel(ctx)
	t.Cleanup(cancel)
	go store.Follow(actx, st, tasks.Prefix, store.Follower{Event: func(ev store.Event) {
		rec, err := tasks.Decode(ev.KV)
		if err != nil || ev.Type != store.EventPut || rec.GetState() != taskv1.TaskState_TASK_STATE_PENDING || stuck[rec.GetTask().GetNode()] {
			return
		}
		state := taskv1.TaskState_TASK_STATE_SUCCEEDED
		if rec.GetTask().GetNode() == "n-001" {
			state = taskv1.TaskState_TASK_STATE_FAILED
		}
		go f.svc.Finish(actx, rec.GetTask().GetNode(), &taskv1.TaskResult{TaskId: rec.GetTask().GetId(), State: state,
			Error: &taskv1.TaskError{Reason: "BROKEN", Message: "n-001 is broken"}})
	}})
	return f, names
}

func (f *fleet) backend() fanout.Backend {
	return fanout.Backend{
		Store: f.st,
		Create: func(ctx context.Context, t *taskv1.Task) (*apiv1.TaskRecord, error) {
			rec, err := f.svc.Create(ctx, t)
			if err != nil {
				return nil, err
			}
			// The tasks of this run not ended, this one included.
			kvs, _, err := f.st.List(ctx, tasks.Prefix+strings.SplitN(t.GetId(), ".", 2)[0]+".")
			if err != nil {
				return nil, err
			}
			open := 0
			for _, kv := range kvs {
				if r, _ := tasks.Decode(kv); !tasks.Terminal(r.GetState()) {
					open++
				}
			}
			f.mu.Lock()
			f.created[t.GetId()]++
			f.maxOpen = max(f.maxOpen, open)
			f.mu.Unlock()
			return rec, nil
		},
		Cancel: f.svc.CancelFor,
		View:   func(r *apiv1.TaskRecord) *apiv1.TaskRecord { return r },
		Now:    time.Now,
	}
}

func collect(into *[]*apiv1.RunTasksResponse) func(*apiv1.RunTasksResponse) error {
	return func(m *apiv1.RunTasksResponse) error {
		*into = append(*into, m)
		return nil
	}
}

func ended(msgs []*apiv1.RunTasksResponse) (map[string]taskv1.TaskState, map[string]*apiv1.SkippedNode) {
	e, s := map[string]taskv1.TaskState{}, map[string]*apiv1.SkippedNode{}
	for _, m := range msgs {
		for _, r := range m.GetEnded() {
			e[r.GetTask().GetNode()] = r.GetState()
		}
		for _, k := range m.GetSkipped() {
			s[k.GetNode()] = k
		}
	}
	return e, s
}

// 40 nodes at concurrency 5: never more than 5 tasks open at once, each node's task once,
// the failed one reported failed, the summary's counts right.
func TestRunBoundsConcurrencyAndReportsEveryNode(t *testing.T) {
	f, names := newFleet(t, 40, nil)
	var msgs []*apiv1.RunTasksResponse
	ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
	defer cancel()
	err := fanout.Run(ctx, f.backend(), fanout.Request{ID: "r1", Selected: names, Run: names, Spec: &taskv1.TaskSpec{Kind: &taskv1.TaskSpec_Ping{Ping: &taskv1.PingSpec{}}},
		Concurrency: 5, Timeout: time.Minute}, collect(&msgs))
	if err != nil {
		t.Fatal(err)
	}
	if len(msgs[0].GetNodes()) != 40 {
		t.Errorf("first message lists %d nodes", len(msgs[0].GetNodes()))
	}
	last := msgs[len(msgs)-1].GetSummary()
	if !last.GetDone() || last.GetTotal() != 40 || last.GetSucceeded() != 39 || last.GetFailed() != 1 || last.GetP99() == nil {
		t.Fatalf("last summary %v", last)
	}
	e, _ := ended(msgs)
	if len(e) != 40 || e["n-001"] != taskv1.TaskState_TASK_STATE_FAILED {
		t.Fatalf("ended %v", e)
	}
	if f.maxOpen > 5 || f.maxOpen < 2 {
		t.Errorf("at most %d tasks open at once, want 2 to 5", f.maxOpen)
	}
	for id, n := range f.created {
		if n != 1 {
			t.Errorf("%s created %d times", id, n)
		}
	}
}

// A node whose agent never answers holds the run only until its timeout: its task is
// cancelled with DEADLINE_EXCEEDED and the nodes not started are reported skipped.
func TestRunDeadline(t *testing.T) {
	f, names := newFleet(t, 6, map[string]bool{"n-000": true})
	var msgs []*apiv1.RunTasksResponse
	ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
	defer cancel()
	err := fanout.Run(ctx, f.backend(), fanout.Request{ID: "r2", Selected: names, Run: names, Spec: &taskv1.TaskSpec{Kind: &taskv1.TaskSpec_Ping{Ping: &taskv1.PingSpec{}}},
		Concurrency: 1, Timeout: time.Second}, collect(&msgs))
	if err != nil {
		t.Fatal(err)
	}
	e, s := ended(msgs)
	if e["n-000"] != taskv1.TaskState_TASK_STATE_CANCELLED || len(s) != 5 {
		t.Fatalf("ended %v skipped %v", e, s)
	}
	for _, k := range s {
		if k.GetReason() != fanout.ReasonDeadline {
			t.Errorf("%s skipped: %v", k.GetNode(), k)
		}
	}
	rec, _, err := f.svc.Get(ctx, "r2.n-000")
	if err != nil || rec.GetResult().GetError().GetReason() != fanout.ReasonDeadline {
		t.Fatalf("the stuck task: %v %v", rec, err)
	}
	if last := msgs[len(msgs)-1].GetSummary(); !last.GetDone() || last.GetFailed() != 6 {
		t.Fatalf("last summary %v", last)
	}
}

// A run whose caller went away resumes with the same ID: the tasks started are not
// created again, those that ended meanwhile are reported, the rest start.
func TestRunResumes(t *testing.T) {
	f, names := newFleet(t, 30, nil)
	spec := &taskv1.TaskSpec{Kind: &taskv1.TaskSpec_Ping{Ping: &taskv1.PingSpec{}}}
	ctx, cancel := context.WithCancel(context.Background())
	b := f.backend()
	create, creates := b.Create, atomic.Int32{}
	b.Create = func(ctx context.Context, t *taskv1.Task) (*apiv1.TaskRecord, error) {
		if creates.Add(1) == 6 {
			cancel() // the caller goes away after 5 nodes started
		}
		return create(ctx, t)
	}
	var first []*apiv1.RunTasksResponse
	err := fanout.Run(ctx, b, fanout.Request{ID: "r3", Selected: names, Run: names, Spec: spec, Concurrency: 4, Timeout: time.Minute}, collect(&first))
	if err == nil {
		t.Fatal("the first call ended without its caller")
	}
	var msgs []*apiv1.RunTasksResponse
	ctx2, cancel2 := context.WithTimeout(context.Background(), time.Minute)
	defer cancel2()
	if err := fanout.Run(ctx2, f.backend(), fanout.Request{ID: "r3", Selected: names, Run: names, Spec: spec, Concurrency: 4, Timeout: time.Minute}, collect(&msgs)); err != nil {
		t.Fatal(err)
	}
	e, _ := ended(msgs)
	if last := msgs[len(msgs)-1].GetSummary(); len(e) != 30 || !last.GetDone() || last.GetSucceeded() != 29 {
		t.Fatalf("resumed: %d ended, %v", len(e), last)
	}
	kvs, _, err := f.st.List(ctx2, tasks.Prefix+"r3.")
	if err != nil || len(kvs) != 30 {
		t.Fatalf("%d tasks stored, want 30: %v", len(kvs), err)
	}
}

// A node whose create is still in flight at the deadline is cancelled once its create
// answers, not reported skipped while its task goes on to run.
func TestRunDeadlineWithACreateInFlight(t *testing.T) {
	f, names := newFleet(t, 3, map[string]bool{"n-000": true, "n-002": true})
	b := f.backend()
	create, release := b.Create, make(chan struct{})
	b.Create = func(ctx context.Context, t *taskv1.Task) (*apiv1.TaskRecord, error) {
		if t.GetNode() == "n-002" {
			<-release // answers only after the deadline passed
		}
		return create(ctx, t)
	}
	var msgs []*apiv1.RunTasksResponse
	released := false
	send := func(m *apiv1.RunTasksResponse) error {
		msgs = append(msgs, m)
		if e, _ := ended(msgs); e["n-000"] == taskv1.TaskState_TASK_STATE_CANCELLED && !released {
			released = true // the deadline passed: n-000 was cancelled
			close(release)
		}
		return nil
	}
	ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
	defer cancel()
	err := fanout.Run(ctx, b, fanout.Request{ID: "r4", Selected: names, Run: names, Spec: &taskv1.TaskSpec{Kind: &taskv1.TaskSpec_Ping{Ping: &taskv1.PingSpec{}}},
		Concurrency: 3, Timeout: time.Second}, send)
	if err != nil {
		t.Fatal(err)
	}
	e, s := ended(msgs)
	if e["n-002"] != taskv1.TaskState_TASK_STATE_CANCELLED || s["n-002"] != nil {
		t.Fatalf("n-002 (created after the deadline): ended %v skipped %v", e, s)
	}
	rec, _, err := f.svc.Get(ctx, "r4.n-002")
	if err != nil || rec.GetState() != taskv1.TaskState_TASK_STATE_CANCELLED {
		t.Fatalf("n-002's task is left %v (%v): it would run", rec.GetState(), err)
	}
}
