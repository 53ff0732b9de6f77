package nodes_test

import (
	"context"
	"testing"
	"time"

	"github.com/deckhandhq/deckhand/controller/nodes"
	"github.com/deckhandhq/deckhand/internal/testkit/teststore"
	apiv1 "github.com/deckhandhq/deckhand/proto/deckhand/api/v1"
	"github.com/deckhandhq/deckhand/store"
)

// The liveness view follows every write to the records it caches: a state change, a deleted
// node, a node enrolled again under its old name.
func TestLivenessListerFollowsTheRecords(t *testing.T) {
	ctx := context.Background()
	clock := time.Date(2026, 1, 1, 0, 0, 0, 0, time.UTC)
	reg := nodes.New(teststore.New(t), func() time.Time { return clock })
	lister := reg.NewLivenessLister()
	always := store.Compare{Key: "/no-such-key", Target: store.CompareModRevision}
	list := func() map[string]nodes.Liveness {
		t.Helper()
		views, err := lister.List(ctx)
		if err != nil {
			t.Fatal(err)
		}
		out := map[string]nodes.Liveness{}
		for _, v := range views {
			out[v.Name] = v
		}
		return out
	}
	for _, n := range []string{"a", "b"} {
		if err := reg.Enroll(ctx, n, "m-"+n, "1"); err != nil {
			t.Fatal(err)
		}
	}
	got := list()
	if len(got) != 2 || got["a"].State != apiv1.NodeState_NODE_STATE_ENROLLED || !got["b"].Enrolled.Equal(clock) {
		t.Fatalf("after enrolling a and b: %+v", got)
	}
	if _, err := reg.SetState(ctx, "a", apiv1.NodeState_NODE_STATE_READY, always); err != nil {
		t.Fatal(err)
	}
	if got := list(); got["a"].State != apiv1.NodeState_NODE_STATE_READY || got["b"].State != apiv1.NodeState_NODE_STATE_ENROLLED {
		t.Fatalf("after a became Ready: %+v", got)
	}
	if err := reg.Delete(ctx, "b"); err != nil {
		t.Fatal(err)
	}
	if got := list(); len(got) != 1 || got["a"].State != apiv1.NodeState_NODE_STATE_READY {
		t.Fatalf("after deleting b: %+v", got)
	}
	clock = clock.Add(time.Hour)
	if err := reg.Enroll(ctx, "b", "m-b2", "2"); err != nil {
		t.Fatal(err)
	}
	if got := list(); len(got) != 2 || !got["b"].Enrolled.Equal(clock) || got["b"].State != apiv1.NodeState_NODE_STATE_ENROLLED {
		t.Fatalf("after enrolling b again: %+v", got)
	}
}
