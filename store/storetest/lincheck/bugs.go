package lincheck

import (
	"context"

	"github.com/deckhandhq/deckhand/store"
)

// Bug is a deliberately broken store: a backend's tests wrap their correct replicas in it
// and show the checker reports a violation, so the checker is known to be able to fail.
type Bug struct {
	Name string
	// Wrap breaks replica i's store.
	Wrap func(i int, s store.Store) store.Store
	// Needs names the fault the bug needs to show ("" for none: the leaders' hand-offs).
	Needs string
}

// Bugs are the known-bad variants every backend's checker must catch.
var Bugs = []Bug{
	{Name: "ReadsFromLocalState", Wrap: func(_ int, s store.Store) store.Store { return staleReads{s} }, Needs: FaultPartitionFollower},
	{Name: "FenceCompareDropped", Wrap: func(_ int, s store.Store) store.Store { return noFence{s} }},
	{Name: "ResumedWatchSkipsEvents", Wrap: func(_ int, s store.Store) store.Store { return skippingWatch{s} }, Needs: FaultKillLeader},
}

// Names of the faults backends provide (a bug names the one it needs).
const (
	FaultKillLeader        = "kill-leader"
	FaultPartitionFollower = "partition-follower"
)

// staleReads serves every read from the replica's local copy, as a follower that answered
// without asking the leader would.
type staleReads struct{ store.Store }

func (s staleReads) Get(ctx context.Context, key string, opts ...store.ReadOption) (*store.KV, int64, error) {
	return s.Store.Get(ctx, key, append(opts, store.Stale())...)
}

func (s staleReads) List(ctx context.Context, prefix string, opts ...store.ReadOption) ([]*store.KV, int64, error) {
	return s.Store.List(ctx, prefix, append(opts, store.Stale())...)
}

// noFence drops the leadership fence from every transaction.
type noFence struct{ store.Store }

func (s noFence) Txn(ctx context.Context, t store.Txn) (int64, error) {
	var kept []store.Compare
	for _, c := range t.If {
		if !c.Fence {
			kept = append(kept, c)
		}
	}
	t.If = kept
	return s.Store.Txn(ctx, t)
}

// skippingWatch loses the first revisions of a watch resumed after a revision, without
// announcing it, as a replica whose watch hub missed a restore would.
type skippingWatch struct{ store.Store }

func (s skippingWatch) Watch(ctx context.Context, prefix string, after int64) (<-chan store.Event, error) {
	ch, err := s.Store.Watch(ctx, prefix, after)
	if err != nil || after == 0 {
		return ch, err
	}
	out := make(chan store.Event)
	go func() {
		defer close(out)
		var skipped int64
		for ev := range ch {
			if ev.Err == nil && (skipped == 0 || skipped == ev.Revision) {
				skipped = ev.Revision // drop the first revision, all its events
				continue
			}
			select {
			case out <- ev:
			case <-ctx.Done():
				return
			}
		}
	}()
	return out, nil
}
