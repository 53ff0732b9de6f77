package etcdstore

import (
	"fmt"
	"math/rand"
	"testing"
	"time"

	"github.com/deckhandhq/deckhand/internal/testkit/testetcd"
	"github.com/deckhandhq/deckhand/store"
	"github.com/deckhandhq/deckhand/store/storetest/lincheck"
)

// linCluster is three etcd 3.5 members (the Kubernetes kit's, built from the Go module
// proxy, not Debian's 3.4, whose own watch bugs would be reported as ours) behind peer
// proxies, and one store per member that talks to its member only, as a controller replica
// next to its etcd member does. A fault hits etcd; the stores keep running through it.
type linCluster struct {
	etcd   *testetcd.Cluster
	stores []*Store
	wrap   func(i int, s store.Store) store.Store
	// snapshots counts the snapshot faults after which the follower did install a snapshot.
	snapshots, snapshotFaults int
}

const snapshotReceived = "received and saved database snapshot"

func newLinCluster(t *testing.T) *linCluster {
	t.Helper()
	e := testetcd.Start(t, testetcd.Options{
		Members:   3,
		Binary:    testetcd.KitBinary(t, "3.5"),
		PeerProxy: true,
		// Snapshot every 100 entries and keep 20 for slow followers: a member that misses
		// a fault's worth of writes catches up from a snapshot.
		Args: []string{"--snapshot-count", "100", "--experimental-snapshot-catchup-entries", "20"},
	})
	if v := e.Version(); v[:4] != "3.5." {
		t.Fatalf("etcd %s, want 3.5.x", v)
	}
	l := &linCluster{etcd: e}
	for i := range 3 {
		l.stores = append(l.stores, open(t, testConfig(fmt.Sprintf("replica-%d", i), []string{e.Endpoint(i)})))
	}
	return l
}

func (l *linCluster) Size() int { return len(l.stores) }

func (l *linCluster) Store(i int) store.Store {
	if l.wrap != nil {
		return l.wrap(i, l.stores[i])
	}
	return l.stores[i]
}

func (l *linCluster) Elector(i int) store.Elector { return l.stores[i] }

func (l *linCluster) follower(r *rand.Rand) int {
	return (l.etcd.Leader() + 1 + r.Intn(l.Size()-1)) % l.Size()
}

// faults are real process and network faults: SIGKILL and restart, SIGSTOP and SIGCONT, and
// a partition of a member's peer links (testetcd's peer proxies; its clients still reach it).
func (l *linCluster) faults() []lincheck.Fault {
	return []lincheck.Fault{
		{Name: lincheck.FaultKillLeader, Inject: func(t testing.TB, r *rand.Rand) (func(), error) {
			li := l.etcd.Leader()
			l.etcd.Kill(li)
			return func() { l.etcd.Restart(li) }, nil
		}},
		{Name: lincheck.FaultPartitionFollower, Inject: func(t testing.TB, r *rand.Rand) (func(), error) {
			f := l.follower(r)
			l.etcd.Partition(f, true)
			return func() { l.etcd.Partition(f, false) }, nil
		}},
		{Name: "partition-leader", Inject: func(t testing.TB, r *rand.Rand) (func(), error) {
			li := l.etcd.Leader()
			l.etcd.Partition(li, true)
			return func() { l.etcd.Partition(li, false) }, nil
		}},
		{Name: "pause-leader", Inject: func(t testing.TB, r *rand.Rand) (func(), error) {
			// Held past the election timeout (1s) and the sessions' TTL (2s).
			li := l.etcd.Leader()
			l.etcd.Pause(li)
			return func() { l.etcd.Resume(li) }, nil
		}},
		{Name: "lose-quorum", Inject: func(t testing.TB, r *rand.Rand) (func(), error) {
			// The leader killed while a follower is partitioned: no quorum until both end.
			li := l.etcd.Leader()
			f := (li + 1 + r.Intn(l.Size()-1)) % l.Size()
			l.etcd.Partition(f, true)
			l.etcd.Kill(li)
			return func() {
				l.etcd.Partition(f, false)
				l.etcd.Restart(li)
			}, nil
		}},
		{Name: "crash-all", Inject: func(t testing.TB, r *rand.Rand) (func(), error) {
			// Every member SIGKILLed at once, then all restarted from their disks.
			l.etcd.KillAll()
			return func() { l.etcd.RestartAll() }, nil
		}},
		{Name: "snapshot-lagging-follower", Inject: func(t testing.TB, r *rand.Rand) (func(), error) {
			// Killed for the whole hold, it restarts more than 20 entries behind a leader
			// that has snapshotted: the leader sends it a snapshot.
			li := l.etcd.Leader()
			f := (li + 1 + r.Intn(l.Size()-1)) % l.Size()
			before, index := l.etcd.LogCount(f, snapshotReceived), l.etcd.RaftIndex(li)
			l.etcd.Kill(f)
			return func() {
				// Behind by more than a snapshot's worth of entries (100) plus the 20 kept.
				deadline := time.Now().Add(10 * time.Second)
				for l.etcd.RaftIndex(li) < index+150 && time.Now().Before(deadline) {
					time.Sleep(50 * time.Millisecond) // polling the leader's raft index against a deadline
				}
				l.etcd.Restart(f)
				l.snapshotFaults++
				deadline = time.Now().Add(10 * time.Second)
				for time.Now().Before(deadline) {
					if l.etcd.LogCount(f, snapshotReceived) > before {
						l.snapshots++
						return
					}
					time.Sleep(50 * time.Millisecond) // polling the member's log against a deadline
				}
				t.Logf("member %d restarted without receiving a snapshot (leader %d's raft index %d at the kill, %d now)", f, li, index, l.etcd.RaftIndex(li))
			}, nil
		}},
	}
}

func linConfig(seed int64, faults []lincheck.Fault) lincheck.Config {
	return lincheck.Config{Seed: seed, Faults: faults, NumFaults: len(faults), Hold: 2500 * time.Millisecond, Gap: 800 * time.Millisecond}
}

// TestLincheckUnderFaults: clients, watchers and leaders on three members while seven faults
// (leader SIGKILL and restart, partitions of a follower and of the leader, the leader paused
// past its lease, a lagging follower caught up by snapshot, the leader killed while a
// follower is partitioned, every member killed at once) come and go; the history is
// linearizable, every watcher replays the write log exactly, and no two terms' fenced
// writes interleave.
func TestLincheckUnderFaults(t *testing.T) {
	lincheck.Schedules(t, "etcdstore", func(t *testing.T, seed int64) *lincheck.Report {
		l := newLinCluster(t)
		rep := lincheck.Run(t, l, linConfig(seed, l.faults()))
		t.Logf("snapshots installed on a lagging follower: %d of %d", l.snapshots, l.snapshotFaults)
		return rep
	})
}

// TestLincheckCatchesBugs: each deliberately broken store is reported, by the check meant to
// catch it.
func TestLincheckCatchesBugs(t *testing.T) {
	lincheck.CatchesBugs(t, func(t *testing.T, wrap func(int, store.Store) store.Store) (lincheck.Cluster, []lincheck.Fault) {
		l := newLinCluster(t)
		l.wrap = wrap
		return l, l.faults()
	}, linConfig)
}
