package lincheck

import (
	"context"
	"slices"
	"strings"
	"testing"
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
	// Expect: the report must hold a violation containing one of these (the check that
	// should catch the bug, not any).
	Expect []string
}

// Bugs are the known-bad variants every backend's checker must catch.
var Bugs = []Bug{
	{Name: "ReadsFromLocalState", Wrap: func(_ int, s store.Store) store.Store { return staleReads{s} }, Needs: []string{FaultPartitionFollower},
		Expect: []string{"not linearizable", "stale read"}},
	{Name: "FenceCompareDropped", Wrap: func(_ int, s store.Store) store.Store { return noFence{s} },
		Expect: []string{"fencing:", "answered ErrFenced but applied"}},
	{Name: "ResumedWatchSkipsEvents", Wrap: func(_ int, s store.Store) store.Store { return skippingWatch{s} }, Needs: []string{FaultKillLeader, FaultPartitionFollower}, // a restart or a partition ends a watch
		Expect: []string{"skipped revision", "no watcher delivered revision"}},
}

// CatchesBugs runs one short schedule per Bug and fails t unless each is reported with the
// violation it expects. cluster builds the backend's replicas with each store wrapped and
// returns the faults it provides; config shapes a schedule with some of them.
func CatchesBugs(t *testing.T, cluster func(t *testing.T, wrap func(int, store.Store) store.Store) (Cluster, []Fault), config func(seed int64, faults []Fault) Config) {
	for _, bug := range Bugs {
		t.Run(bug.Name, func(t *testing.T) {
			seed := Seed()
			c, all := cluster(t, bug.Wrap)
			var faults []Fault
			for _, f := range all {
				if slices.Contains(bug.Needs, f.Name) {
					faults = append(faults, f)
				}
			}
			cfg := config(seed, faults)
			cfg.NumFaults = 2 * len(faults)
			if len(faults) == 0 {
				cfg.NumFaults, cfg.Gap, cfg.ResignEvery = 0, 5*time.Second, 5 // hand-offs only
			}
			cfg.VisualizeDir = t.TempDir() // an expected violation leaves nothing behind
			rep := Run(t, c, cfg)
			t.Log(rep.String())
			for _, v := range rep.Violations {
				if slices.ContainsFunc(bug.Expect, func(e string) bool { return strings.Contains(v, e) }) {
					t.Logf("caught: %s (%d violations in all)", v, len(rep.Violations))
					return
				}
			}
			t.Fatalf("seed %d: no violation names %q for a store whose %s; found %q", seed, bug.Expect, bug.Name, rep.Violations)
		})
	}
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
