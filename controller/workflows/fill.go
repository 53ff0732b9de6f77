package workflows

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"sync"

	"google.golang.org/protobuf/proto"

	"github.com/deckhandhq/deckhand/internal/podnet"
	taskv1 "github.com/deckhandhq/deckhand/proto/deckhand/task/v1"
	"github.com/deckhandhq/deckhand/store"
)

// RouteFiller fills the routes of a network task the engine stored with routes_from_record
// (a peer's routes update, see renderSpec) when a replica's dispatcher sends it: from the
// cluster record as this replica's store has it, read once per revision and shared by the
// wave of updates that follows a join.
type RouteFiller struct {
	st store.Store

	mu   sync.Mutex
	last *filledView // the newest read
}

// filledView is the cluster record's pod network as read at store revision readAt.
type filledView struct {
	readAt int64
	view   []netNode
}

// NewRouteFiller reads the cluster record from st.
func NewRouteFiller(st store.Store) *RouteFiller { return &RouteFiller{st: st} }

// Fill returns t itself when it has no routes to fill, and otherwise a copy with the route
// list of t's node: every other recorded node with a pod CIDR and an address, from the
// cluster record read at a revision no lower than the spec's generation (the revision the
// engine read when it created the task). The list keeps that generation: one sent late
// (its agent was away) never outranks a list the engine rendered since. It is packed when
// every route packs (the dispatcher unpacks it for an agent that does not read packed
// routes).
func (f *RouteFiller) Fill(ctx context.Context, t *taskv1.Task) (*taskv1.Task, error) {
	n := t.GetSpec().GetNetwork()
	if !n.GetRoutesFromRecord() {
		return t, nil
	}
	if len(n.GetRoutes()) > 0 || !bytes.Equal(n.GetPackedRoutes(), podnet.UnfilledRoutes()) {
		return nil, errors.New("network.routes_from_record is set with a route list: give one or the other")
	}
	v, err := f.viewAt(ctx, int64(n.GetGeneration()))
	if err != nil {
		return nil, fmt.Errorf("read the cluster record for the routes of %s: %w", t.GetNode(), err)
	}
	t = proto.Clone(t).(*taskv1.Task)
	n = t.GetSpec().GetNetwork()
	n.RoutesFromRecord, n.PackedRoutes = false, nil
	setRoutes(n, v.view, t.GetNode(), true)
	return t, nil
}

// viewAt returns the record's network view read at revision gen or later: the last read
// when it is that recent, else a read of this replica's copy, linearizable when that lags
// behind gen (an etcd member's copy may).
func (f *RouteFiller) viewAt(ctx context.Context, gen int64) (*filledView, error) {
	f.mu.Lock()
	last := f.last
	f.mu.Unlock()
	if last != nil && last.readAt >= gen {
		return last, nil
	}
	cl, _, rev, err := readClusterRead(ctx, f.st, store.Stale())
	if err == nil && rev < gen {
		cl, _, rev, err = readClusterRead(ctx, f.st)
	}
	if err != nil {
		return nil, err
	}
	v := &filledView{readAt: rev, view: networkView(cl, nil)}
	f.mu.Lock()
	if f.last == nil || f.last.readAt < v.readAt {
		f.last = v
	}
	f.mu.Unlock()
	return v, nil
}
