package fanout

import (
	"errors"
	"slices"
	"strings"
	"testing"
	"time"

	"google.golang.org/protobuf/types/known/timestamppb"

	agentv1 "github.com/deckhandhq/deckhand/proto/deckhand/agent/v1"
	apiv1 "github.com/deckhandhq/deckhand/proto/deckhand/api/v1"
	taskv1 "github.com/deckhandhq/deckhand/proto/deckhand/task/v1"
)

func node(name, role, os string, state apiv1.NodeState) *apiv1.Node {
	return &apiv1.Node{Name: name, ClusterRole: role, State: state, Facts: &agentv1.Facts{OsId: os, Arch: "amd64"}}
}

var fleet = []*apiv1.Node{
	node("w-2", "worker", "debian", apiv1.NodeState_NODE_STATE_READY),
	node("cp-1", "control-plane", "debian", apiv1.NodeState_NODE_STATE_READY),
	node("w-1", "worker", "rocky", apiv1.NodeState_NODE_STATE_READY),
	node("new", "", "debian", apiv1.NodeState_NODE_STATE_LOST),
}

func names(ns []*apiv1.Node) string {
	var out []string
	for _, n := range ns {
		out = append(out, n.GetName())
	}
	return strings.Join(out, ",")
}

func TestSelect(t *testing.T) {
	for _, tc := range []struct {
		name string
		sel  *apiv1.NodeSelector
		want string // nodes, or the error's field
		err  string
	}{
		{"all, in name order", &apiv1.NodeSelector{All: true}, "cp-1,new,w-1,w-2", ""},
		{"names, duplicates once", &apiv1.NodeSelector{Names: []string{"w-1", "cp-1", "w-1"}}, "cp-1,w-1", ""},
		{"role", &apiv1.NodeSelector{Match: map[string]string{"role": "worker"}}, "w-1,w-2", ""},
		{"role and os", &apiv1.NodeSelector{Match: map[string]string{"role": "worker", "os": "debian"}}, "w-2", ""},
		{"no role yet", &apiv1.NodeSelector{Match: map[string]string{"role": "none"}}, "new", ""},
		{"state", &apiv1.NodeSelector{Match: map[string]string{"state": "lost"}}, "new", ""},
		{"arch", &apiv1.NodeSelector{Match: map[string]string{"arch": "amd64"}}, "cp-1,new,w-1,w-2", ""},
		{"nothing given", &apiv1.NodeSelector{}, "", "nodes: give exactly one"},
		{"two given", &apiv1.NodeSelector{All: true, Names: []string{"w-1"}}, "", "nodes: give exactly one"},
		{"unknown name", &apiv1.NodeSelector{Names: []string{"w-1", "w-9"}}, "", "nodes.names: not enrolled: w-9"},
		{"unknown key", &apiv1.NodeSelector{Match: map[string]string{"colour": "red"}}, "", `nodes.match: key "colour": use role, os, arch, state`},
		{"empty value", &apiv1.NodeSelector{Match: map[string]string{"os": ""}}, "", "nodes.match: os has no value"},
		{"matches nothing", &apiv1.NodeSelector{Match: map[string]string{"os": "arch"}}, "", "nodes: the selection matches no enrolled node"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			got, err := Select(fleet, tc.sel)
			if tc.err != "" {
				if !errors.Is(err, ErrInvalid) || !strings.Contains(err.Error(), tc.err) {
					t.Fatalf("err = %v, want one containing %q", err, tc.err)
				}
				return
			}
			if err != nil || names(got) != tc.want {
				t.Fatalf("Select = %s, %v; want %s", names(got), err, tc.want)
			}
		})
	}
}

func TestSelectBounded(t *testing.T) {
	many := make([]*apiv1.Node, MaxNodes+1)
	for i := range many {
		many[i] = node("n", "", "", apiv1.NodeState_NODE_STATE_READY)
	}
	if _, err := Select(many, &apiv1.NodeSelector{All: true}); err == nil || !strings.Contains(err.Error(), "at most 20000") {
		t.Fatalf("%d nodes: %v", len(many), err)
	}
}

func TestPlan(t *testing.T) {
	now := time.Date(2026, 12, 1, 12, 0, 0, 0, time.UTC)
	lost := node("gone", "worker", "debian", apiv1.NodeState_NODE_STATE_NOT_READY)
	lost.StateChanged = timestamppb.New(now.Add(-90 * time.Second))
	held := node("held", "worker", "debian", apiv1.NodeState_NODE_STATE_READY)
	held.LockedBy = "wf-upgrade"
	gone := node("gone-too", "worker", "debian", apiv1.NodeState_NODE_STATE_LOST)
	run, skipped := Plan([]*apiv1.Node{fleet[1], lost, held, fleet[0], gone}, now, map[string]bool{"gone-too": true})
	if !slices.Equal(run, []string{"cp-1", "w-2", "gone-too"}) {
		t.Errorf("run = %v", run)
	}
	if len(skipped) != 2 || skipped[0].Reason != ReasonNotReady || !strings.Contains(skipped[0].Message, "not-ready since 1m30s") ||
		skipped[1].Reason != ReasonLocked || !strings.Contains(skipped[1].Message, "wf-upgrade") {
		t.Errorf("skipped = %+v", skipped)
	}
}

func rec(run, node string, state taskv1.TaskState, took time.Duration) *apiv1.TaskRecord {
	t0 := time.Date(2026, 12, 1, 12, 0, 0, 0, time.UTC)
	return &apiv1.TaskRecord{Task: &taskv1.Task{Id: TaskID(run, node), Node: node}, State: state,
		Created: timestamppb.New(t0), Updated: timestamppb.New(t0.Add(took))}
}

func TestTracker(t *testing.T) {
	const (
		ok      = taskv1.TaskState_TASK_STATE_SUCCEEDED
		failed  = taskv1.TaskState_TASK_STATE_FAILED
		running = taskv1.TaskState_TASK_STATE_RUNNING
	)
	tr := NewTracker("r", []string{"a", "b", "c", "d", "e"}, []Skip{{"z", ReasonNotReady, "lost"}})
	// A resumed run: d was started by the previous call and e had ended.
	if tr.Observe(rec("r", "d", running, 0)) || !tr.Observe(rec("r", "e", ok, 3*time.Millisecond)) {
		t.Fatal("resumed records")
	}
	if got := tr.Next(2); !slices.Equal(got, []string{"a"}) {
		t.Fatalf("Next(2) with d running = %v, want [a]", got)
	}
	for _, r := range []*apiv1.TaskRecord{
		rec("other", "b", ok, 0), // another run's task
		rec("r", "zz", ok, 0),    // a node not in the run
		rec("r", "z", ok, 0),     // a skipped node
	} {
		if tr.Observe(r) {
			t.Errorf("Observe(%s) counted", r.GetTask().GetId())
		}
	}
	if !tr.Observe(rec("r", "a", ok, time.Millisecond)) || tr.Observe(rec("r", "a", ok, time.Millisecond)) {
		t.Fatal("a ends once")
	}
	if got := tr.Next(2); !slices.Equal(got, []string{"b"}) {
		t.Fatalf("Next = %v, want [b]", got)
	}
	tr.Observe(rec("r", "d", failed, 10*time.Millisecond))
	if !tr.Skipped("b") || tr.Skipped("b") {
		t.Fatal("b skipped once")
	}
	s := tr.Summary(time.Second)
	if s.GetTotal() != 6 || s.GetSucceeded() != 2 || s.GetFailed() != 3 || s.GetPending() != 1 || s.GetRunning() != 0 || s.GetDone() {
		t.Fatalf("summary %v", s)
	}
	if s.GetP50().AsDuration() != 3*time.Millisecond || s.GetP99().AsDuration() != 10*time.Millisecond {
		t.Errorf("p50 %v p99 %v", s.GetP50().AsDuration(), s.GetP99().AsDuration())
	}
	if w := tr.Waiting(); !slices.Equal(w, []string{"c"}) {
		t.Fatalf("waiting %v", w)
	}
	tr.Next(5)
	tr.Observe(rec("r", "c", ok, 0))
	if !tr.Done() || !tr.Summary(0).GetDone() {
		t.Fatal("not done")
	}
}

func TestPercentile(t *testing.T) {
	var ds []time.Duration
	for i := 1; i <= 100; i++ {
		ds = append(ds, time.Duration(i))
	}
	for _, tc := range []struct {
		in     []time.Duration
		p      int
		expect time.Duration
	}{{nil, 50, 0}, {ds[:1], 99, 1}, {ds, 50, 50}, {ds, 99, 99}, {ds[:10], 99, 10}, {ds[:10], 50, 5}} {
		if got := Percentile(tc.in, tc.p); got != tc.expect {
			t.Errorf("Percentile(%d values, %d) = %d, want %d", len(tc.in), tc.p, got, tc.expect)
		}
	}
}

func TestLimits(t *testing.T) {
	if c, d, err := Limits(0, 0); err != nil || c != DefaultConcurrency || d != DefaultTimeout {
		t.Errorf("defaults: %d %s %v", c, d, err)
	}
	for _, tc := range []struct {
		c     int32
		d     time.Duration
		field string
	}{{-1, 0, "concurrency"}, {MaxConcurrency + 1, 0, "concurrency"}, {1, -time.Second, "timeout"}, {1, MaxTimeout + 1, "timeout"}} {
		if _, _, err := Limits(tc.c, tc.d); err == nil || !strings.Contains(err.Error(), tc.field+":") {
			t.Errorf("Limits(%d, %s) = %v, want an error naming %s", tc.c, tc.d, err, tc.field)
		}
	}
}
