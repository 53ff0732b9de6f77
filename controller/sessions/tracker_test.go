package sessions

import (
	"context"
	"slices"
	"testing"
	"time"

	"github.com/deckhandhq/deckhand/controller/nodes"
	apiv1 "github.com/deckhandhq/deckhand/proto/deckhand/api/v1"
)

// The leader's liveness decision: a node's state follows its last heartbeat this term; a
// node without one keeps a full grace from the takeover and is never made better; a node
// that never connected, or whose heartbeat predates its enrollment, is left alone.
func TestTransitions(t *testing.T) {
	cfg := TrackerConfig{Interval: 2 * time.Second, NotReadyAfter: 10 * time.Second, LostAfter: time.Minute}
	now := time.Date(2026, 1, 1, 12, 0, 0, 0, time.UTC)
	enrolled := now.Add(-time.Hour)
	const (
		enr      = apiv1.NodeState_NODE_STATE_ENROLLED
		ready    = apiv1.NodeState_NODE_STATE_READY
		notReady = apiv1.NodeState_NODE_STATE_NOT_READY
		lost     = apiv1.NodeState_NODE_STATE_LOST
	)
	cases := []struct {
		name     string
		state    apiv1.NodeState
		seenAgo  time.Duration // 0: no heartbeat this term
		takeover time.Duration // how long ago this leader took over
		want     apiv1.NodeState
	}{
		{"fresh heartbeat, first time Ready", enr, time.Second, time.Hour, ready},
		{"fresh heartbeat, already Ready", ready, time.Second, time.Hour, ready},
		{"fresh heartbeat revives a NotReady node", notReady, time.Second, time.Hour, ready},
		{"fresh heartbeat revives a Lost node", lost, time.Second, time.Hour, ready},
		{"silent past NotReadyAfter", ready, 10 * time.Second, time.Hour, notReady},
		{"silent past LostAfter", notReady, time.Minute, time.Hour, lost},
		{"no heartbeat, never connected", enr, 0, time.Hour, enr},
		{"no heartbeat, unspecified", apiv1.NodeState_NODE_STATE_UNSPECIFIED, 0, time.Hour, apiv1.NodeState_NODE_STATE_UNSPECIFIED},
		{"no heartbeat, inside the takeover's grace", ready, 0, time.Second, ready},
		{"no heartbeat, past the takeover's grace", ready, 0, 10 * time.Second, notReady},
		{"no heartbeat, long after the takeover", ready, 0, time.Hour, lost},
		{"no heartbeat, never better than recorded", lost, 0, time.Second, lost},
		{"no heartbeat, NotReady stays NotReady in the grace", notReady, 0, time.Second, notReady},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			seen := map[string]time.Time{}
			if tc.seenAgo > 0 {
				seen["n"] = now.Add(-tc.seenAgo)
			}
			all := []nodes.Liveness{{Name: "n", State: tc.state, Enrolled: enrolled}}
			got := transitions(all, seen, now, now.Add(-tc.takeover), cfg)
			if tc.want == tc.state {
				if len(got) != 0 {
					t.Fatalf("want no change, got %+v", got)
				}
				return
			}
			want := []transition{{node: "n", from: tc.state, to: tc.want}}
			if !slices.Equal(got, want) {
				t.Fatalf("got %+v, want %+v", got, want)
			}
		})
	}

	t.Run("a heartbeat from before the enrollment is an earlier node's", func(t *testing.T) {
		// b was deleted and enrolled again after its last heartbeat: no evidence for the new b.
		all := []nodes.Liveness{{Name: "b", State: ready, Enrolled: now.Add(-time.Second)}}
		got := transitions(all, map[string]time.Time{"b": now.Add(-2 * time.Second)}, now, now.Add(-time.Hour), cfg)
		if want := []transition{{node: "b", from: ready, to: lost}}; !slices.Equal(got, want) {
			t.Fatalf("got %+v, want %+v", got, want)
		}
	})

	t.Run("a heartbeat at the enrollment's instant is the new node's", func(t *testing.T) {
		all := []nodes.Liveness{{Name: "b", State: enr, Enrolled: now.Add(-time.Second)}}
		got := transitions(all, map[string]time.Time{"b": now.Add(-time.Second)}, now, now.Add(-time.Hour), cfg)
		if want := []transition{{node: "b", from: enr, to: ready}}; !slices.Equal(got, want) {
			t.Fatalf("got %+v, want %+v", got, want)
		}
	})

	t.Run("only the nodes that change, in the list's order", func(t *testing.T) {
		all := []nodes.Liveness{
			{Name: "a", State: ready, Enrolled: enrolled},
			{Name: "b", State: ready, Enrolled: enrolled},
			{Name: "c", State: notReady, Enrolled: enrolled},
			{Name: "d", State: enr, Enrolled: enrolled},
		}
		seen := map[string]time.Time{"a": now, "b": now.Add(-20 * time.Second), "c": now}
		got := transitions(all, seen, now, now.Add(-time.Hour), cfg)
		want := []transition{{node: "b", from: ready, to: notReady}, {node: "c", from: notReady, to: ready}}
		if !slices.Equal(got, want) {
			t.Fatalf("got %+v, want %+v", got, want)
		}
	})
}

// A steady fleet costs the leader no allocation per evaluation: it runs twice per heartbeat
// interval over every node, and its garbage was most of what an idle controller made.
func TestTransitionsOfASteadyFleetAllocateNothing(t *testing.T) {
	cfg := TrackerConfig{Interval: 2 * time.Second, NotReadyAfter: 10 * time.Second, LostAfter: time.Minute}
	now := time.Date(2026, 1, 1, 12, 0, 0, 0, time.UTC)
	all := make([]nodes.Liveness, 1000)
	seen := map[string]time.Time{}
	for i := range all {
		all[i] = nodes.Liveness{Name: "node-" + time.Duration(i).String(), State: apiv1.NodeState_NODE_STATE_READY, Enrolled: now.Add(-time.Hour)}
		seen[all[i].Name] = now.Add(-time.Second)
	}
	if allocs := testing.AllocsPerRun(10, func() { _ = transitions(all, seen, now, now.Add(-time.Hour), cfg) }); allocs != 0 {
		t.Fatalf("%v allocations per evaluation of a steady fleet, want 0", allocs)
	}
}

// The tracker folds this replica's sessions into what it has seen without a copy of either.
func TestEachSeenReportsEverySession(t *testing.T) {
	clock := time.Date(2026, 1, 1, 12, 0, 0, 0, time.UTC)
	r := NewRegistry(func() time.Time { return clock })
	ctx := context.Background()
	a := r.Open(ctx, "a", "1", nil)
	clock = clock.Add(time.Second)
	b := r.Open(ctx, "b", "2", nil)
	r.Touch(a)
	r.Touch(b)
	clock = clock.Add(time.Second)
	r.Touch(b)
	got := map[string]time.Time{}
	r.EachSeen(func(n string, at time.Time) { got[n] = at })
	start := time.Date(2026, 1, 1, 12, 0, 0, 0, time.UTC)
	if len(got) != 2 || !got["a"].Equal(start.Add(time.Second)) || !got["b"].Equal(start.Add(2*time.Second)) {
		t.Fatalf("EachSeen: %v", got)
	}
	r.Close(a, context.Canceled)
	got = map[string]time.Time{}
	r.EachSeen(func(n string, at time.Time) { got[n] = at })
	if _, ok := got["a"]; ok || len(got) != 1 {
		t.Fatalf("after closing a: %v", got)
	}
}

// A follower's digest tells the leader how long ago each of its agents was heard from.
func TestDigestGivesEverySessionsAge(t *testing.T) {
	clock := time.Date(2026, 1, 1, 12, 0, 0, 0, time.UTC)
	r := NewRegistry(func() time.Time { return clock })
	ctx := context.Background()
	a := r.Open(ctx, "a", "1", nil)
	r.Touch(a)
	clock = clock.Add(1500 * time.Millisecond)
	r.Touch(r.Open(ctx, "b", "2", nil))
	clock = clock.Add(250 * time.Millisecond)
	got := map[string]uint64{}
	for _, s := range r.Digest() {
		got[s.GetNode()] = s.GetLastSeenMsAgo()
	}
	if len(got) != 2 || got["a"] != 1750 || got["b"] != 250 {
		t.Fatalf("Digest: %v; want a 1750 ms ago, b 250 ms ago", got)
	}
}
