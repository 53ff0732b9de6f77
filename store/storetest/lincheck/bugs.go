package lincheck

import (
	"context"
	"time"

	"github.com/deckhandhq/deckhand/store"
)

// Bug is a deliberately broken store: a backend's tests wrap their correct replicas in it
// and show the checker reports a violation, so the checker is known to be able to fail.
type Bug struct {
	Name string
	// Wrap breaks replica i's store.
	Wrap func(i int, s store.Store) store.Store
	// Needs names the faults that make the bug show (none: the leaders' hand-offs do); a
	// backend injects those it has.
	Needs []string
}

// Bugs are the known-bad variants every backend's checker must catch.
var Bugs = []Bug{
	{Name: "ReadsFromLocalState", Wrap: func(_ int, s store.Store) store.Store { return staleReads{s} }, Needs: []string{FaultPartitionFollower}},
	{Name: "FenceCompareDropped", Wrap: func(_ int, s store.Store) store.Store { return noFence{s} }},
	{Name: "ResumedWatchSkipsEvents", Wrap: func(_ int, s store.Store) store.Store { return skippingWatch{s} }, Needs: []string{FaultKillLeader, FaultPartitionFollower}}, // a restart or a partition ends a watch,
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

// skippingWatch loses, without announcing it, the first revision its replica delivers after
// a silence (a resumed watch, or a watch whose replica was cut off, paused or restarted
// under it), as a replica whose watch hub missed a restore would.
type skippingWatch struct{ store.Store }

// silence is how long a watch goes without events before skippingWatch loses the next.
const silence = time.Second

func (s skippingWatch) Watch(ctx context.Context, prefix string, after int64) (<-chan store.Event, error) {
	ch, err := s.Store.Watch(ctx, prefix, after)
	if err != nil {
		return ch, err
	}
	out := make(chan store.Event)
	go func() {
		defer close(out)
		var dropping int64 // the revision being dropped
		last := time.Now()
		first := after > 0
		for ev := range ch {
			if ev.Err == nil && (dropping == ev.Revision || first || time.Since(last) > silence) {
				first, dropping, last = false, ev.Revision, time.Now()
				continue
			}
			last = time.Now()
			select {
			case out <- ev:
			case <-ctx.Done():
				return
			}
		}
	}()
	return out, nil
}
