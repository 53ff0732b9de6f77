package raftstore

import (
	"math/rand"
	"sync"
	"testing"
	"time"

	"github.com/deckhandhq/deckhand/store"
	"github.com/deckhandhq/deckhand/store/storetest/lincheck"
)

// linCluster adapts the in-process harness to lincheck: replicas are read under a lock the
// faults take while they kill, restart or snapshot, and an optional bug wraps every store.
type linCluster struct {
	c    *cluster
	mu   sync.RWMutex
	wrap func(i int, s store.Store) store.Store
	// snapshots counts the snapshot faults after which the follower did install a snapshot.
	snapshots, snapshotFaults int
}

func (l *linCluster) Size() int { return l.c.Size() }

func (l *linCluster) Store(i int) store.Store {
	l.mu.RLock()
	defer l.mu.RUnlock()
	st := l.c.nodes[i].st
	if st == nil {
		return nil
	}
	if l.wrap != nil {
		return l.wrap(i, st)
	}
	return st
}

func (l *linCluster) Elector(i int) store.Elector {
	l.mu.RLock()
	defer l.mu.RUnlock()
	if st := l.c.nodes[i].st; st != nil {
		return st
	}
	return nil
}

// follower picks a replica other than the leader.
func (l *linCluster) follower(r *rand.Rand) int {
	return (l.c.leader() + 1 + r.Intn(l.c.Size()-1)) % l.c.Size()
}

func (l *linCluster) isolate(i int, on bool) {
	l.c.net.Isolate(l.c.nodes[i].addr, on)
}

// faults are the raftstore faults: all real, in process. A pause cannot stop a goroutine,
// so a paused leader is a leader cut off from everyone (its raft and its gRPC) past its lease
// and the election timeout, that then comes back; its local clients keep calling it.
func (l *linCluster) faults() []lincheck.Fault {
	return []lincheck.Fault{
		{Name: lincheck.FaultKillLeader, Inject: func(t testing.TB, r *rand.Rand) (func(), error) {
			l.mu.Lock()
			defer l.mu.Unlock()
			li := l.c.leader()
			l.c.kill(li)
			return func() {
				l.mu.Lock()
				defer l.mu.Unlock()
				if err := l.c.start(l.c.nodes[li], nil); err != nil {
					t.Fatalf("restart replica %d: %v", li, err)
				}
			}, nil
		}},
		{Name: lincheck.FaultPartitionFollower, Inject: func(t testing.TB, r *rand.Rand) (func(), error) {
			l.mu.Lock()
			f := l.follower(r)
			l.mu.Unlock()
			l.isolate(f, true)
			return func() { l.isolate(f, false) }, nil
		}},
		{Name: "pause-leader", Inject: func(t testing.TB, r *rand.Rand) (func(), error) {
			l.mu.Lock()
			li := l.c.leader()
			l.mu.Unlock()
			l.isolate(li, true)
			return func() { l.isolate(li, false) }, nil
		}},
		{Name: "lose-quorum", Inject: func(t testing.TB, r *rand.Rand) (func(), error) {
			// The leader killed while a follower is cut off: no quorum until both end.
			l.mu.Lock()
			defer l.mu.Unlock()
			li := l.c.leader()
			f := (li + 1 + r.Intn(l.c.Size()-1)) % l.c.Size()
			l.isolate(f, true)
			l.c.kill(li)
			return func() {
				l.mu.Lock()
				defer l.mu.Unlock()
				l.isolate(f, false)
				if err := l.c.start(l.c.nodes[li], nil); err != nil {
					t.Fatalf("restart replica %d: %v", li, err)
				}
			}, nil
		}},
		{Name: "crash-all", Inject: func(t testing.TB, r *rand.Rand) (func(), error) {
			// Every replica killed at once, then all restarted from their disks.
			l.mu.Lock()
			defer l.mu.Unlock()
			l.c.closeAll()
			return func() {
				l.mu.Lock()
				defer l.mu.Unlock()
				for i, nd := range l.c.nodes {
					if err := l.c.start(nd, nil); err != nil {
						t.Fatalf("restart replica %d: %v", i, err)
					}
				}
			}, nil
		}},
		{Name: "snapshot-lagging-follower", Inject: func(t testing.TB, r *rand.Rand) (func(), error) {
			l.mu.Lock()
			f := l.follower(r)
			l.mu.Unlock()
			l.isolate(f, true)
			return func() {
				// The others snapshot and keep one entry of log: the follower, behind by the
				// whole hold, must install the leader's snapshot.
				l.mu.Lock()
				for i, nd := range l.c.nodes {
					if i == f || nd.st == nil {
						continue
					}
					r := nd.st.raft
					rc := r.ReloadableConfig()
					short := rc
					short.TrailingLogs = 1
					if err := r.ReloadConfig(short); err == nil {
						_ = r.Snapshot().Error()
						_ = r.ReloadConfig(rc)
					}
				}
				before := l.c.nodes[f].st.raft.Stats()["last_snapshot_index"]
				l.mu.Unlock()
				l.isolate(f, false)
				l.snapshotFaults++
				deadline := time.Now().Add(10 * time.Second)
				for time.Now().Before(deadline) {
					l.mu.RLock()
					now := l.c.nodes[f].st.raft.Stats()["last_snapshot_index"]
					l.mu.RUnlock()
					if now != before {
						l.snapshots++
						return
					}
					time.Sleep(50 * time.Millisecond) // polling the follower's raft against a deadline
				}
				t.Logf("replica %d healed without installing a snapshot", f)
			}, nil
		}},
	}
}

func linConfig(seed int64, faults []lincheck.Fault) lincheck.Config {
	return lincheck.Config{Seed: seed, Faults: faults, NumFaults: len(faults), Hold: 1500 * time.Millisecond, Gap: 700 * time.Millisecond}
}

// TestLincheckUnderFaults: clients, watchers and leaders on three replicas while six faults
// (leader kill and restart, a partitioned follower, a leader cut off past its lease, a
// snapshot installed on a lagging follower, the leader killed while a follower is cut off,
// every replica killed at once) come and go; the history is linearizable, every watcher replays the
// write log exactly, and no two terms' fenced writes interleave.
func TestLincheckUnderFaults(t *testing.T) {
	lincheck.Schedules(t, "raftstore", func(t *testing.T, seed int64) *lincheck.Report {
		l := &linCluster{c: newCluster(t, 3, nil)}
		rep := lincheck.Run(t, l, linConfig(seed, l.faults()))
		t.Logf("snapshots installed on a lagging follower: %d of %d", l.snapshots, l.snapshotFaults)
		return rep
	})
}

// TestLincheckCatchesBugs: each deliberately broken store is reported, by the check meant to
// catch it.
func TestLincheckCatchesBugs(t *testing.T) {
	lincheck.CatchesBugs(t, func(t *testing.T, wrap func(int, store.Store) store.Store) (lincheck.Cluster, []lincheck.Fault) {
		l := &linCluster{wrap: wrap}
		l.c = newCluster(t, 3, nil)
		return l, l.faults()
	}, linConfig)
}
