package tasks

import (
	"context"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"net/netip"
	"slices"
	"strings"
	"testing"
	"time"

	"google.golang.org/protobuf/proto"

	"github.com/deckhandhq/deckhand/controller/nodes"
	"github.com/deckhandhq/deckhand/controller/sessions"
	"github.com/deckhandhq/deckhand/internal/features"
	"github.com/deckhandhq/deckhand/internal/podnet"
	"github.com/deckhandhq/deckhand/internal/testkit/teststore"
	agentv1 "github.com/deckhandhq/deckhand/proto/deckhand/agent/v1"
	apiv1 "github.com/deckhandhq/deckhand/proto/deckhand/api/v1"
	taskv1 "github.com/deckhandhq/deckhand/proto/deckhand/task/v1"
	"github.com/deckhandhq/deckhand/store"
)

func quietDispatcher(reg *sessions.Registry) *Dispatcher {
	return NewDispatcher(nil, reg, slog.New(slog.NewTextHandler(io.Discard, nil)))
}

func taskRec(id string, state taskv1.TaskState) *apiv1.TaskRecord {
	return &apiv1.TaskRecord{Task: &taskv1.Task{Id: id, Node: "n1"}, State: state}
}

// wire names a message as the agent sees it: "assign ID" or "cancel ID".
func wire(m *agentv1.SessionResponse) string {
	if a := m.GetAssignment(); a != nil {
		return "assign " + a.GetTask().GetId()
	}
	if c := m.GetCancel(); c != nil {
		return "cancel " + c.GetTaskId()
	}
	return fmt.Sprintf("other %v", m)
}

// An agent that reads slowly gets its assignments in the order they were offered, and a
// task's cancel after its assignment: a cancel that overtook its assignment would be
// dropped by the agent and the task would run anyway.
func TestSessionGetsAssignmentsAndCancelsInOrder(t *testing.T) {
	reg := sessions.NewRegistry(nil)
	s := reg.Open(context.Background(), "n1", "serial-1", nil)
	t.Cleanup(func() { reg.Close(s, context.Canceled) })
	d := quietDispatcher(reg)

	const n = 200
	var want []string
	for i := range n {
		id := fmt.Sprintf("task-%03d", i)
		d.offer(context.Background(), taskRec(id, taskv1.TaskState_TASK_STATE_PENDING))
		want = append(want, "assign "+id)
	}
	for _, i := range []int{3, 150, n - 1} {
		id := fmt.Sprintf("task-%03d", i)
		d.offer(context.Background(), taskRec(id, taskv1.TaskState_TASK_STATE_CANCELLED))
		want = append(want, "cancel "+id)
	}
	// The reader starts only now: everything above waits for it.
	deadline := time.After(10 * time.Second)
	for i, w := range want {
		select {
		case m := <-s.Out:
			if got := wire(m); got != w {
				t.Fatalf("message %d on the wire is %q, want %q", i, got, w)
			}
		case <-deadline:
			t.Fatalf("only %d of %d messages reached the session", i, len(want))
		}
	}
}

// An agent that takes nothing has its session closed once MaxQueuedPerSession messages
// wait, as unavailable (it reconnects and is sent its tasks again); until then nothing is
// dropped.
func TestSessionThatTakesNothingIsClosed(t *testing.T) {
	reg := sessions.NewRegistry(nil)
	s := reg.Open(context.Background(), "n1", "serial-1", nil)
	d := quietDispatcher(reg)
	// The session's channel holds cap(s.Out) and the drain goroutine one more in hand.
	held := cap(s.Out) + 1
	i := 0
	offer := func() {
		d.offer(context.Background(), taskRec(fmt.Sprintf("task-%05d", i), taskv1.TaskState_TASK_STATE_PENDING))
		i++
	}
	for range held + MaxQueuedPerSession - 1 {
		offer()
	}
	// Wait until the drain goroutine holds one message, blocked on the full channel: then
	// exactly MaxQueuedPerSession-1 wait in the queue.
	waiting := func() int {
		d.mu.Lock()
		defer d.mu.Unlock()
		return len(d.boxes[s].queue)
	}
	deadline := time.Now().Add(10 * time.Second)
	for len(s.Out) < cap(s.Out) || waiting() != MaxQueuedPerSession-1 {
		if time.Now().After(deadline) {
			t.Fatalf("the session's channel holds %d messages and %d wait, want %d and %d", len(s.Out), waiting(), cap(s.Out), MaxQueuedPerSession-1)
		}
		time.Sleep(time.Millisecond)
	}
	if s.Context().Err() != nil {
		t.Fatalf("session closed below the bound: %v", context.Cause(s.Context()))
	}
	offer() // the MaxQueuedPerSession-th waiting: still fits
	if s.Context().Err() != nil {
		t.Fatalf("session closed at the bound: %v", context.Cause(s.Context()))
	}
	offer() // one more: the agent is not keeping up
	select {
	case <-s.Context().Done():
	case <-time.After(10 * time.Second):
		t.Fatal("the session stayed open with more than MaxQueuedPerSession messages waiting")
	}
	if cause := context.Cause(s.Context()); !errors.Is(cause, sessions.ErrBacklog) {
		t.Fatalf("session closed with %v, want ErrBacklog", cause)
	}
	if reg.Get("n1") != nil {
		t.Fatal("the closed session is still registered")
	}
}

// serviceWithNode is a task service on a fresh store with node enrolled (serial
// "serial-"+node).
func serviceWithNode(t *testing.T, node string) *Service {
	t.Helper()
	st := teststore.New(t)
	nreg := nodes.New(st, nil)
	if err := nreg.Enroll(context.Background(), node, "machine-"+node, "serial-"+node); err != nil {
		t.Fatal(err)
	}
	return New(st, nreg, nil)
}

// A cancel lost with an earlier session (the agent reconnected, or the session was closed
// with the cancel still queued) is sent again when the agent's heartbeat says the task
// still runs, once; tasks that ended otherwise, or that the controller does not know, get
// nothing.
func TestCancelLostWithASessionIsSentAgain(t *testing.T) {
	ctx := context.Background()
	svc := serviceWithNode(t, "n1")
	diag := &taskv1.TaskSpec{Kind: &taskv1.TaskSpec_Diagnostics{Diagnostics: &taskv1.DiagnosticsSpec{}}}
	for _, id := range []string{"t-cancelled", "t-done", "t-new"} {
		if _, err := svc.Create(ctx, &taskv1.Task{Id: id, Node: "n1", Spec: diag}); err != nil {
			t.Fatal(err)
		}
	}
	if _, err := svc.Cancel(ctx, "t-cancelled"); err != nil {
		t.Fatal(err)
	}
	if err := svc.Finish(ctx, "n1", &taskv1.TaskResult{TaskId: "t-done", State: taskv1.TaskState_TASK_STATE_SUCCEEDED}); err != nil {
		t.Fatal(err)
	}
	reg := sessions.NewRegistry(nil)
	s := reg.Open(ctx, "n1", "serial-n1", nil)
	t.Cleanup(func() { reg.Close(s, context.Canceled) })
	d := NewDispatcher(svc, reg, slog.New(slog.NewTextHandler(io.Discard, nil)))

	running := []string{"t-cancelled", "t-done", "t-unknown"}
	d.Running(ctx, s, running)
	d.Running(ctx, s, running) // a second heartbeat: already sent
	rec, _, err := svc.Get(ctx, "t-new")
	if err != nil {
		t.Fatal(err)
	}
	d.offer(context.Background(), rec)
	// FIFO: what was queued by the heartbeats comes before the new assignment.
	for i, want := range []string{"cancel t-cancelled", "assign t-new"} {
		select {
		case m := <-s.Out:
			if got := wire(m); got != want {
				t.Fatalf("message %d on the wire is %q, want %q", i, got, want)
			}
		case <-time.After(10 * time.Second):
			t.Fatalf("message %d (%s) never reached the session", i, want)
		}
	}
}

// sendNetwork offers d a pending network task of spec for session s and returns its record
// and the routes that reached the agent, as "packed [...]" or "list [...]".
func sendNetwork(t *testing.T, d *Dispatcher, s *sessions.Session, spec *taskv1.NetworkSpec) (*apiv1.TaskRecord, string) {
	t.Helper()
	rec := taskRec("net-1", taskv1.TaskState_TASK_STATE_PENDING)
	rec.Task.Spec = &taskv1.TaskSpec{Kind: &taskv1.TaskSpec_Network{Network: proto.Clone(spec).(*taskv1.NetworkSpec)}}
	d.offer(context.Background(), rec)
	var m *agentv1.SessionResponse
	select {
	case m = <-s.Out:
	case <-time.After(10 * time.Second):
		t.Fatal("no assignment reached the session")
	}
	sent := m.GetAssignment().GetTask().GetSpec().GetNetwork()
	p, err := podnet.Parse(sent)
	if err != nil {
		t.Fatalf("the agent is sent a spec it refuses: %v", err)
	}
	if len(sent.GetRoutes()) > 0 && len(sent.GetPackedRoutes()) > 0 {
		t.Fatalf("the agent is sent its routes in both forms")
	}
	form := "list"
	if len(sent.GetPackedRoutes()) > 0 {
		form = "packed"
	}
	return rec, form + " " + fmt.Sprint(p.Routes)
}

// A network task's packed routes reach an agent whose hello listed the feature as they are,
// and an agent whose hello did not (one release behind, replaced before the node's record
// followed) as the route list: it would read no routes and remove every one it owns.
func TestPackedRoutesReachOnlyAgentsThatReadThem(t *testing.T) {
	var packed []byte
	for _, r := range [][2]string{{"10.244.2.0/24", "10.250.0.12"}, {"10.244.0.0/24", "10.250.0.10"}} {
		packed, _ = podnet.AppendPacked(packed, netip.MustParsePrefix(r[0]), netip.MustParseAddr(r[1]))
	}
	spec := &taskv1.NetworkSpec{Provider: "bridge", PodCidr: "10.244.1.0/24", ClusterPodSubnet: "10.244.0.0/16", PackedRoutes: packed}
	for _, c := range []struct {
		features []string
		want     string
	}{
		{[]string{"other", features.PackedRoutes}, "packed [10.244.0.0/24 via 10.250.0.10 10.244.2.0/24 via 10.250.0.12]"},
		{nil, "list [10.244.0.0/24 via 10.250.0.10 10.244.2.0/24 via 10.250.0.12]"},
		{[]string{"other"}, "list [10.244.0.0/24 via 10.250.0.10 10.244.2.0/24 via 10.250.0.12]"},
	} {
		reg := sessions.NewRegistry(nil)
		s := reg.Open(context.Background(), "n1", "serial-1", c.features)
		d := quietDispatcher(reg)
		rec, got := sendNetwork(t, d, s, spec)
		if got != c.want {
			t.Errorf("features %q: the agent is sent %s, want %s", c.features, got, c.want)
		}
		if !proto.Equal(rec.GetTask().GetSpec().GetNetwork(), spec) {
			t.Errorf("features %q: the stored record's spec was changed", c.features)
		}
		reg.Close(s, context.Canceled)
	}
}

// fillerFunc is a Filler from a function.
type fillerFunc func(ctx context.Context, t *taskv1.Task) (*taskv1.Task, error)

func (f fillerFunc) Fill(ctx context.Context, t *taskv1.Task) (*taskv1.Task, error) { return f(ctx, t) }

// A routes update stored with routes_from_record reaches the agent filled (by the Filler:
// the engine's reads the cluster record), as a route list for an agent that does not read
// packed routes, the record left as it was stored.
func TestStoredRoutesAreFilledAsTheTaskIsSent(t *testing.T) {
	for _, c := range []struct {
		features []string
		form     string
	}{{features.Agent(), "packed"}, {nil, "list"}} {
		reg := sessions.NewRegistry(nil)
		s := reg.Open(context.Background(), "n1", "serial-1", c.features)
		d := quietDispatcher(reg)
		packed, _ := podnet.AppendPacked(nil, netip.MustParsePrefix("10.244.2.0/24"), netip.MustParseAddr("10.250.0.12"))
		d.Filler = fillerFunc(func(_ context.Context, t *taskv1.Task) (*taskv1.Task, error) {
			t = proto.Clone(t).(*taskv1.Task)
			n := t.GetSpec().GetNetwork()
			n.RoutesFromRecord, n.PackedRoutes = false, packed
			return t, nil
		})
		stored := &taskv1.NetworkSpec{Provider: "bridge", PodCidr: "10.244.1.0/24", ClusterPodSubnet: "10.244.0.0/16", Generation: 7,
			RoutesFromRecord: true, PackedRoutes: podnet.UnfilledRoutes()}
		rec, got := sendNetwork(t, d, s, stored)
		if got != c.form+" [10.244.2.0/24 via 10.250.0.12]" {
			t.Errorf("features %q: the agent is sent %s, want the filled route as %s", c.features, got, c.form)
		}
		if !proto.Equal(rec.GetTask().GetSpec().GetNetwork(), stored) {
			t.Errorf("the stored record's spec was changed")
		}
		reg.Close(s, context.Canceled)
	}
}

// A task that cannot be sent as its agent reads it is never sent; it ends, saying why:
// packed routes that cannot be listed for an agent that does not read them (no controller
// makes them: a bug), and routes the replica could not fill.
func TestTasksThatCannotBeSentEnd(t *testing.T) {
	ctx := context.Background()
	for _, c := range []struct {
		name    string
		spec    *taskv1.NetworkSpec // past the API's check, as a bug would write it
		filler  Filler
		reason  string
		message string
	}{
		{"unlistable packed routes", &taskv1.NetworkSpec{PackedRoutes: make([]byte, 10)}, nil,
			"AGENT_CANNOT_READ", "packed_routes: 10 bytes"},
		{"routes not filled", &taskv1.NetworkSpec{RoutesFromRecord: true, PackedRoutes: podnet.UnfilledRoutes()},
			fillerFunc(func(context.Context, *taskv1.Task) (*taskv1.Task, error) {
				return nil, errors.New("cluster record: no leader")
			}),
			"CONTROLLER_CANNOT_FILL", "cluster record: no leader"},
	} {
		t.Run(c.name, func(t *testing.T) {
			svc := serviceWithNode(t, "n1")
			c.spec.Provider, c.spec.PodCidr, c.spec.ClusterPodSubnet = "bridge", "10.244.1.0/24", "10.244.0.0/16"
			spec := &taskv1.TaskSpec{Kind: &taskv1.TaskSpec_Network{Network: c.spec}}
			if _, err := svc.Create(ctx, &taskv1.Task{Id: "t-net", Node: "n1", Spec: spec}); err != nil {
				t.Fatal(err)
			}
			reg := sessions.NewRegistry(nil)
			s := reg.Open(ctx, "n1", "serial-n1", nil)
			t.Cleanup(func() { reg.Close(s, context.Canceled) })
			d := NewDispatcher(svc, reg, slog.New(slog.NewTextHandler(io.Discard, nil)))
			d.Filler = c.filler
			rec, _, err := svc.Get(ctx, "t-net")
			if err != nil {
				t.Fatal(err)
			}
			d.offer(context.Background(), rec)
			deadline := time.Now().Add(10 * time.Second)
			for {
				rec, _, err := svc.Get(ctx, "t-net")
				if err != nil {
					t.Fatal(err)
				}
				if rec.GetState() == taskv1.TaskState_TASK_STATE_CANCELLED {
					if e := rec.GetResult().GetError(); e.GetReason() != c.reason || !strings.Contains(e.GetMessage(), c.message) {
						t.Fatalf("the task ended with %v, want %s saying %q", e, c.reason, c.message)
					}
					break
				}
				if time.Now().After(deadline) {
					t.Fatalf("the task is still %v", rec.GetState())
				}
				time.Sleep(10 * time.Millisecond) // polling the record with a deadline
			}
			select {
			case m := <-s.Out:
				t.Fatalf("the agent was sent %s", wire(m))
			default:
			}
		})
	}
}

// takerFunc is a ResultTaker from a function.
type takerFunc func(ctx context.Context, node string, res *taskv1.TaskResult) bool

func (f takerFunc) TakeResult(ctx context.Context, node string, res *taskv1.TaskResult) bool {
	return f(ctx, node, res)
}

// A workflow step's result goes to the taker first (the workflow engine, which records it
// in the write that ends the step) and is written by the session only when the taker says
// it did not record it; a task run directly never goes to the taker.
func TestResultsGoToTheTakerFirst(t *testing.T) {
	svc := serviceWithNode(t, "n1")
	ctx := context.Background()
	d := NewDispatcher(svc, sessions.NewRegistry(nil), slog.New(slog.NewTextHandler(io.Discard, nil)))
	var offered []string
	taken := map[string]bool{}
	d.Taker = takerFunc(func(_ context.Context, node string, res *taskv1.TaskResult) bool {
		offered = append(offered, node+" "+res.GetTaskId())
		return taken[res.GetTaskId()]
	})
	for _, id := range []string{"wf-abc.n1.a.1", "wf-abc.n1.b.1"} {
		cmp, op, err := PutNew(&taskv1.Task{Id: id, Node: "n1", WorkflowId: "wf-abc", Step: "n1/x", Spec: &taskv1.TaskSpec{Kind: &taskv1.TaskSpec_Diagnostics{Diagnostics: &taskv1.DiagnosticsSpec{}}}}, time.Now())
		if err != nil {
			t.Fatal(err)
		}
		if _, err := svc.st.Txn(ctx, store.Txn{If: []store.Compare{cmp}, Then: []store.Op{op}}); err != nil {
			t.Fatal(err)
		}
	}
	direct, err := svc.Create(ctx, &taskv1.Task{Node: "n1", Spec: &taskv1.TaskSpec{Kind: &taskv1.TaskSpec_Diagnostics{Diagnostics: &taskv1.DiagnosticsSpec{}}}})
	if err != nil {
		t.Fatal(err)
	}
	taken["wf-abc.n1.a.1"] = true
	for _, id := range []string{"wf-abc.n1.a.1", "wf-abc.n1.b.1", direct.GetTask().GetId()} {
		d.Result(ctx, "n1", &taskv1.TaskResult{TaskId: id, State: taskv1.TaskState_TASK_STATE_SUCCEEDED})
	}
	if want := []string{"n1 wf-abc.n1.a.1", "n1 wf-abc.n1.b.1"}; !slices.Equal(offered, want) {
		t.Fatalf("offered to the taker %v, want %v", offered, want)
	}
	for id, want := range map[string]taskv1.TaskState{
		"wf-abc.n1.a.1":          taskv1.TaskState_TASK_STATE_PENDING, // the taker's to write
		"wf-abc.n1.b.1":          taskv1.TaskState_TASK_STATE_SUCCEEDED,
		direct.GetTask().GetId(): taskv1.TaskState_TASK_STATE_SUCCEEDED,
	} {
		if rec, _, err := svc.Get(ctx, id); err != nil || rec.GetState() != want {
			t.Errorf("%s: %v %v, want %v", id, rec.GetState(), err, want)
		}
	}
}
