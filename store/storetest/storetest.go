// Package storetest is the contract suite every store backend must pass: run it from the
// backend's tests with a Harness that builds fresh clusters of that backend.
package storetest

import (
	"context"
	"errors"
	"fmt"
	"slices"
	"sync"
	"testing"
	"time"

	"github.com/deckhandhq/deckhand/internal/testkit/testwait"
	"github.com/deckhandhq/deckhand/store"
)

// Cluster is a running set of replicas of one backend, created for one test.
type Cluster interface {
	// Size is the number of replicas.
	Size() int
	// Store returns replica i's view of the store.
	Store(i int) store.Store
	// Elector returns replica i's elector.
	Elector(i int) store.Elector
	// Restart stops every replica without any graceful hand-off and starts them again from
	// their data on disk.
	Restart(t testing.TB)
}

// Lagger is implemented by clusters that can make one replica miss history: the
// WatcherSeesEveryRevisionOrErrCompacted case uses it (and is skipped without it).
type Lagger interface {
	// Follower returns a replica that can be cut off while the others keep a quorum and
	// take writes through Store(Writer()).
	Follower(t testing.TB) int
	// Writer returns a replica that keeps taking writes while Follower is cut off.
	Writer(t testing.TB) int
	// Cut disconnects replica i from the rest; Heal reconnects it.
	Cut(t testing.TB, i int)
	Heal(t testing.TB, i int)
	// Forget makes the replicas still connected discard the history up to revision rev, so
	// the cut-off replica cannot be sent the events it missed one by one (raft: a snapshot
	// and log truncation, the follower then installs the snapshot; etcd: a compaction).
	Forget(t testing.TB, rev int64)
}

// Harness builds clusters for the suite.
type Harness struct {
	// New starts a fresh cluster; the harness cleans it up with t.Cleanup.
	New func(t testing.TB) Cluster
}

// Run runs the whole contract suite.
func Run(t *testing.T, h Harness) {
	t.Run("GetPutAndRevisions", func(t *testing.T) { testRevisions(t, h) })
	t.Run("CompareAndSwapConflicts", func(t *testing.T) { testCAS(t, h) })
	t.Run("PrefixIsolation", func(t *testing.T) { testPrefix(t, h) })
	t.Run("ReadYourWritesOnEveryReplica", func(t *testing.T) { testLinearizable(t, h) })
	t.Run("WatchFromRevisionInOrder", func(t *testing.T) { testWatch(t, h) })
	t.Run("CompactionGivesErrCompacted", func(t *testing.T) { testCompaction(t, h) })
	t.Run("WatcherSeesEveryRevisionOrErrCompacted", func(t *testing.T) { testLaggingWatcher(t, h) })
	t.Run("AcknowledgedWritesSurviveRestart", func(t *testing.T) { testRestart(t, h) })
	t.Run("FencingRejectsDeposedLeader", func(t *testing.T) { testFencing(t, h) })
	t.Run("InvalidRequests", func(t *testing.T) { testInvalid(t, h) })
}

func ctxT(t testing.TB) context.Context {
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	t.Cleanup(cancel)
	return ctx
}

func put(t testing.TB, s store.Store, key, val string) int64 {
	t.Helper()
	rev, err := s.Txn(ctxT(t), store.Txn{Then: []store.Op{store.Put(key, []byte(val))}})
	if err != nil {
		t.Fatalf("put %s: %v", key, err)
	}
	return rev
}

func testRevisions(t *testing.T, h Harness) {
	c := h.New(t)
	s := c.Store(0)
	ctx := ctxT(t)
	_, rev0, err := s.Get(ctx, "/a/missing")
	if !errors.Is(err, store.ErrNotFound) {
		t.Fatalf("get missing key: got %v, want ErrNotFound", err)
	}
	r1 := put(t, s, "/a/1", "one")
	if r1 <= rev0 {
		t.Fatalf("revision did not grow: %d then %d", rev0, r1)
	}
	r2 := put(t, s, "/a/1", "uno")
	r3 := put(t, s, "/a/2", "two")
	if !(r1 < r2 && r2 < r3) {
		t.Fatalf("revisions not strictly increasing: %d %d %d", r1, r2, r3)
	}
	kv, rev, err := s.Get(ctx, "/a/1")
	if err != nil {
		t.Fatal(err)
	}
	if string(kv.Value) != "uno" || kv.CreateRevision != r1 || kv.ModRevision != r2 || kv.Version != 2 {
		t.Fatalf("got %+v, want value uno create %d mod %d version 2", kv, r1, r2)
	}
	if rev < r3 {
		t.Fatalf("read revision %d is older than the acknowledged write %d", rev, r3)
	}
	// A transaction that changes nothing (delete of a missing key) keeps the revision.
	r4, err := s.Txn(ctx, store.Txn{Then: []store.Op{store.Delete("/a/none")}})
	if err != nil {
		t.Fatal(err)
	}
	if r4 != r3 {
		t.Fatalf("no-op delete moved revision from %d to %d", r3, r4)
	}
	r5, err := s.Txn(ctx, store.Txn{Then: []store.Op{store.Delete("/a/1")}})
	if err != nil || r5 != r3+1 {
		t.Fatalf("delete: rev %d err %v, want %d", r5, err, r3+1)
	}
	if _, _, err := s.Get(ctx, "/a/1"); !errors.Is(err, store.ErrNotFound) {
		t.Fatalf("deleted key still readable: %v", err)
	}
	// Concurrent writers each get a distinct revision.
	var mu sync.Mutex
	seen := map[int64]bool{}
	var wg sync.WaitGroup
	for i := range 32 {
		wg.Add(1)
		go func() {
			defer wg.Done()
			rev, err := s.Txn(ctx, store.Txn{Then: []store.Op{store.Put(fmt.Sprintf("/c/%d", i), []byte("x"))}})
			if err != nil {
				t.Error(err)
				return
			}
			mu.Lock()
			defer mu.Unlock()
			if seen[rev] {
				t.Errorf("revision %d acknowledged twice", rev)
			}
			seen[rev] = true
		}()
	}
	wg.Wait()
}

func testCAS(t *testing.T, h Harness) {
	c := h.New(t)
	s := c.Store(0)
	ctx := ctxT(t)
	// Create only if absent.
	r1, err := s.Txn(ctx, store.Txn{If: []store.Compare{store.Absent("/lock")}, Then: []store.Op{store.Put("/lock", []byte("a"))}})
	if err != nil {
		t.Fatalf("create absent: %v", err)
	}
	_, err = s.Txn(ctx, store.Txn{If: []store.Compare{store.Absent("/lock")}, Then: []store.Op{store.Put("/lock", []byte("b"))}})
	if !errors.Is(err, store.ErrConflict) {
		t.Fatalf("second create: got %v, want ErrConflict", err)
	}
	kv, _, _ := s.Get(ctx, "/lock")
	if string(kv.Value) != "a" {
		t.Fatalf("failed txn wrote: value %q", kv.Value)
	}
	// Update at the right revision succeeds, at a stale one fails and writes nothing.
	r2, err := s.Txn(ctx, store.Txn{If: []store.Compare{store.ModRevisionIs("/lock", r1)}, Then: []store.Op{store.Put("/lock", []byte("c")), store.Put("/other", []byte("x"))}})
	if err != nil {
		t.Fatalf("CAS at current revision: %v", err)
	}
	_, err = s.Txn(ctx, store.Txn{If: []store.Compare{store.ModRevisionIs("/lock", r1)}, Then: []store.Op{store.Put("/lock", []byte("d")), store.Put("/other2", []byte("y"))}})
	if !errors.Is(err, store.ErrConflict) {
		t.Fatalf("CAS at stale revision: got %v, want ErrConflict", err)
	}
	if _, _, err := s.Get(ctx, "/other2"); !errors.Is(err, store.ErrNotFound) {
		t.Fatalf("failed txn applied part of its ops: %v", err)
	}
	if _, err := s.Txn(ctx, store.Txn{If: []store.Compare{store.ValueIs("/lock", []byte("c"))}, Then: []store.Op{store.Put("/lock", []byte("e"))}}); err != nil {
		t.Fatalf("value compare: %v", err)
	}
	if _, err := s.Txn(ctx, store.Txn{If: []store.Compare{store.ValueIs("/lock", []byte("c"))}, Then: []store.Op{store.Put("/lock", []byte("f"))}}); !errors.Is(err, store.ErrConflict) {
		t.Fatalf("stale value compare: got %v, want ErrConflict", err)
	}
	_ = r2
	// N concurrent increments with CAS retry: no lost update.
	put(t, s, "/counter", "0")
	const workers, each = 8, 5
	var wg sync.WaitGroup
	for range workers {
		wg.Add(1)
		go func() {
			defer wg.Done()
			for range each {
				for {
					kv, _, err := s.Get(ctx, "/counter")
					if err != nil {
						t.Error(err)
						return
					}
					var n int
					fmt.Sscan(string(kv.Value), &n)
					_, err = s.Txn(ctx, store.Txn{If: []store.Compare{store.ModRevisionIs("/counter", kv.ModRevision)}, Then: []store.Op{store.Put("/counter", []byte(fmt.Sprint(n+1)))}})
					if err == nil {
						break
					}
					if !errors.Is(err, store.ErrConflict) {
						t.Error(err)
						return
					}
				}
			}
		}()
	}
	wg.Wait()
	kv, _, _ = s.Get(ctx, "/counter")
	if string(kv.Value) != fmt.Sprint(workers*each) {
		t.Fatalf("counter = %s after %d CAS increments: lost updates", kv.Value, workers*each)
	}
}

func testPrefix(t *testing.T, h Harness) {
	c := h.New(t)
	s := c.Store(0)
	ctx := ctxT(t)
	put(t, s, "/nodes/a", "1")
	put(t, s, "/nodes/b", "2")
	put(t, s, "/nodesx/c", "3")
	put(t, s, "/node", "4")
	last := put(t, s, "/tasks/a", "5")
	kvs, rev, err := s.List(ctx, "/nodes/")
	if err != nil {
		t.Fatal(err)
	}
	if len(kvs) != 2 || kvs[0].Key != "/nodes/a" || kvs[1].Key != "/nodes/b" {
		t.Fatalf("list /nodes/ = %v, want exactly /nodes/a and /nodes/b in order", keys(kvs))
	}
	if rev < last {
		t.Fatalf("list revision %d older than acknowledged %d", rev, last)
	}
	if _, err := s.Txn(ctx, store.Txn{Then: []store.Op{store.DeletePrefix("/nodes/")}}); err != nil {
		t.Fatal(err)
	}
	all, _, _ := s.List(ctx, "/")
	got := keys(all)
	want := []string{"/node", "/nodesx/c", "/tasks/a"}
	if fmt.Sprint(filterReserved(got)) != fmt.Sprint(want) {
		t.Fatalf("after delete prefix /nodes/: %v, want %v", got, want)
	}
}

// filterReserved drops backend-reserved keys (under /_deckhand/) from a listing of "/".
func filterReserved(ks []string) []string {
	var out []string
	for _, k := range ks {
		if len(k) >= 11 && k[:11] == "/_deckhand/" {
			continue
		}
		out = append(out, k)
	}
	return out
}

func keys(kvs []*store.KV) []string {
	out := make([]string, len(kvs))
	for i, kv := range kvs {
		out[i] = kv.Key
	}
	return out
}

func testLinearizable(t *testing.T, h Harness) {
	c := h.New(t)
	ctx := ctxT(t)
	// A write acknowledged on any replica is visible to a default read on every replica.
	for i := range 20 {
		w := c.Store(i % c.Size())
		val := fmt.Sprint(i)
		rev := put(t, w, "/lin", val)
		for j := range c.Size() {
			kv, readRev, err := c.Store(j).Get(ctx, "/lin")
			if err != nil {
				t.Fatalf("replica %d read: %v", j, err)
			}
			if string(kv.Value) != val || readRev < rev {
				t.Fatalf("replica %d read %q at rev %d after write %q at rev %d: stale read", j, kv.Value, readRev, val, rev)
			}
		}
	}
	// Stale reads converge.
	rev := put(t, c.Store(0), "/stale", "x")
	for j := range c.Size() {
		waitFor(t, 10*time.Second, func() error {
			kv, r, err := c.Store(j).Get(ctx, "/stale", store.Stale())
			if err != nil {
				return err
			}
			if r < rev || string(kv.Value) != "x" {
				return fmt.Errorf("replica %d at rev %d", j, r)
			}
			return nil
		})
	}
}

func testWatch(t *testing.T, h Harness) {
	c := h.New(t)
	s := c.Store(0)
	ctx := ctxT(t)
	start := put(t, s, "/w/0", "0")
	var want []string
	for i := 1; i <= 50; i++ {
		put(t, s, fmt.Sprintf("/w/%d", i), fmt.Sprint(i))
		want = append(want, fmt.Sprintf("PUT /w/%d", i))
		if i%10 == 0 {
			if _, err := s.Txn(ctx, store.Txn{Then: []store.Op{store.Delete(fmt.Sprintf("/w/%d", i-1))}}); err != nil {
				t.Fatal(err)
			}
			want = append(want, fmt.Sprintf("DELETE /w/%d", i-1))
		}
		put(t, s, fmt.Sprintf("/other/%d", i), "x") // outside the prefix
	}
	// Watch from the past on every replica (history), then live events.
	for j := range c.Size() {
		wctx, cancel := context.WithCancel(ctx)
		ch, err := c.Store(j).Watch(wctx, "/w/", start)
		if err != nil {
			t.Fatalf("replica %d watch: %v", j, err)
		}
		got := collect(t, ch, len(want))
		if fmt.Sprint(got) != fmt.Sprint(want) {
			t.Fatalf("replica %d watch history:\n got %v\nwant %v", j, got, want)
		}
		// Live: a write after the watch started is delivered.
		put(t, s, "/w/live", "x")
		live := collect(t, ch, 1)
		if live[0] != "PUT /w/live" {
			t.Fatalf("replica %d live event %v", j, live)
		}
		if _, err := s.Txn(ctx, store.Txn{Then: []store.Op{store.Delete("/w/live")}}); err != nil {
			t.Fatal(err)
		}
		collect(t, ch, 1)
		cancel()
		// The channel closes after cancel.
		deadline := time.After(10 * time.Second)
	drain:
		for {
			select {
			case _, ok := <-ch:
				if !ok {
					break drain
				}
			case <-deadline:
				t.Fatalf("replica %d: watch channel not closed after cancel", j)
			}
		}
	}
	// Revisions delivered to a watch strictly follow the writes, with no gaps or repeats
	// under concurrent writers.
	from := put(t, s, "/cw/start", "x")
	ch, err := s.Watch(ctx, "/cw/", from)
	if err != nil {
		t.Fatal(err)
	}
	var wg sync.WaitGroup
	revs := make(chan int64, 64)
	for i := range 64 {
		wg.Add(1)
		go func() {
			defer wg.Done()
			rev, err := s.Txn(ctx, store.Txn{Then: []store.Op{store.Put(fmt.Sprintf("/cw/%d", i), []byte("x"))}})
			if err != nil {
				t.Error(err)
			}
			revs <- rev
		}()
	}
	wg.Wait()
	close(revs)
	acked := map[int64]bool{}
	for r := range revs {
		acked[r] = true
	}
	var prev int64 = from
	for range 64 {
		select {
		case ev := <-ch:
			if ev.Err != nil {
				t.Fatal(ev.Err)
			}
			if ev.Revision <= prev {
				t.Fatalf("watch revisions out of order: %d after %d", ev.Revision, prev)
			}
			if !acked[ev.Revision] {
				t.Fatalf("watch delivered revision %d that no writer was acknowledged", ev.Revision)
			}
			prev = ev.Revision
		case <-time.After(10 * time.Second):
			t.Fatal("watch stalled under concurrent writers")
		}
	}
}

func collect(t testing.TB, ch <-chan store.Event, n int) []string {
	t.Helper()
	var out []string
	for len(out) < n {
		select {
		case ev, ok := <-ch:
			if !ok {
				t.Fatalf("watch closed after %d of %d events: %v", len(out), n, out)
			}
			if ev.Err != nil {
				t.Fatalf("watch error after %v: %v", out, ev.Err)
			}
			out = append(out, ev.Type.String()+" "+ev.KV.Key)
		case <-time.After(10 * time.Second):
			t.Fatalf("watch got %d of %d events: %v", len(out), n, out)
		}
	}
	return out
}

func testCompaction(t *testing.T, h Harness) {
	c := h.New(t)
	s := c.Store(0)
	ctx := ctxT(t)
	first := put(t, s, "/k/1", "a")
	put(t, s, "/k/2", "b")
	third := put(t, s, "/k/3", "c")
	if err := s.Compact(ctx, third); err != nil {
		t.Fatal(err)
	}
	for j := range c.Size() {
		// Every replica applies the compaction; poll, the followers may lag.
		waitFor(t, 10*time.Second, func() error {
			_, err := c.Store(j).Watch(ctx, "/k/", first)
			if errors.Is(err, store.ErrCompacted) {
				return nil
			}
			return fmt.Errorf("replica %d: watch from compacted revision: %v, want ErrCompacted", j, err)
		})
	}
	// Watching from the compaction point itself still works and sees the next write.
	ch, err := s.Watch(ctx, "/k/", third)
	if err != nil {
		t.Fatalf("watch from compact revision: %v", err)
	}
	put(t, s, "/k/4", "d")
	if got := collect(t, ch, 1); got[0] != "PUT /k/4" {
		t.Fatalf("after compaction got %v", got)
	}
	// Data itself is untouched by compaction.
	if kvs, _, err := s.List(ctx, "/k/"); err != nil || len(kvs) != 4 {
		t.Fatalf("list after compaction: %d keys, %v", len(kvs), err)
	}
}

// testLaggingWatcher: a watcher on a replica that is cut off while history it has not seen
// is discarded either sees every revision in order or ends with ErrCompacted, never a gap.
// A watch that ends with another error (its replica lost the quorum) is watched again from
// the last delivered revision, as callers do; that watch too must continue without a gap
// or fail with ErrCompacted.
func testLaggingWatcher(t *testing.T, h Harness) {
	c := h.New(t)
	lag, ok := c.(Lagger)
	if !ok || c.Size() < 2 {
		t.Skip("the harness cannot cut a replica off")
	}
	ctx := ctxT(t)
	fi, wi := lag.Follower(t), lag.Writer(t)
	w := c.Store(wi)
	start := put(t, w, "/lag/0000", "x")
	ch, err := c.Store(fi).Watch(ctx, "/lag/", start)
	if err != nil {
		t.Fatal(err)
	}
	put(t, w, "/lag/0001", "x")
	if got := collect(t, ch, 1); got[0] != "PUT /lag/0001" {
		t.Fatalf("watch before the cut: %v", got)
	}
	write := func(key string) {
		waitFor(t, 20*time.Second, func() error {
			_, err := w.Txn(ctx, store.Txn{Then: []store.Op{store.Put(key, []byte("x"))}})
			return err
		})
	}
	lag.Cut(t, fi)
	for i := 2; i < 200; i++ {
		write(fmt.Sprintf("/lag/%04d", i))
	}
	kvs, last, err := w.List(ctx, "/lag/")
	if err != nil {
		t.Fatal(err)
	}
	lag.Forget(t, last)
	lag.Heal(t, fi)
	write("/lag/after")
	// The revisions the watcher must see, in order: each key's last write (a write retried
	// after an unknown outcome may have written a key twice; the earlier one may show too).
	kvs, _, err = w.List(ctx, "/lag/")
	if err != nil {
		t.Fatal(err)
	}
	final := map[string]int64{}
	var want []int64
	for _, kv := range kvs {
		final[kv.Key] = kv.ModRevision
		if kv.ModRevision > start+1 {
			want = append(want, kv.ModRevision)
		}
	}
	slices.Sort(want)
	end := want[len(want)-1]

	prev := start + 1 // the revision of /lag/0001
	next := 0         // index in want of the next revision to see
	for {
		select {
		case ev, ok := <-ch:
			if !ok {
				t.Fatalf("watch closed without an error after revision %d", prev)
			}
			if ev.Err != nil {
				if errors.Is(ev.Err, store.ErrCompacted) {
					t.Logf("watch ended with ErrCompacted after revision %d of %d: %v", prev, end, ev.Err)
					return
				}
				// Not a gap: watch again from where it stopped, as a caller does.
				t.Logf("watch ended after revision %d: %v; watching again", prev, ev.Err)
				var werr error
				waitFor(t, 20*time.Second, func() error {
					ch, werr = c.Store(fi).Watch(ctx, "/lag/", prev)
					if errors.Is(werr, store.ErrCompacted) {
						return nil
					}
					return werr
				})
				if werr != nil {
					t.Logf("watching again after revision %d: %v", prev, werr)
					return
				}
				continue
			}
			if ev.Revision <= prev {
				t.Fatalf("watch went back: revision %d after %d", ev.Revision, prev)
			}
			if ev.Revision < want[next] && final[ev.KV.Key] > ev.Revision {
				prev = ev.Revision // an earlier write of a key written twice
				continue
			}
			if ev.Revision != want[next] {
				t.Fatalf("watch skipped from revision %d to %d (%s) without ErrCompacted; the next write under the prefix was at %d", prev, ev.Revision, ev.KV.Key, want[next])
			}
			prev = ev.Revision
			next++
			if next == len(want) {
				t.Logf("watch delivered every revision up to %d", end)
				return
			}
		case <-time.After(20 * time.Second):
			t.Fatalf("watch stalled at revision %d of %d", prev, end)
		}
	}
}

func testRestart(t *testing.T, h Harness) {
	c := h.New(t)
	ctx := ctxT(t)
	var mu sync.Mutex
	acked := map[string]string{}
	var wg sync.WaitGroup
	for w := range 8 {
		wg.Add(1)
		go func() {
			defer wg.Done()
			for i := range 25 {
				k, v := fmt.Sprintf("/d/%d/%d", w, i), fmt.Sprintf("v%d", i)
				if _, err := c.Store((w+i)%c.Size()).Txn(ctx, store.Txn{Then: []store.Op{store.Put(k, []byte(v))}}); err != nil {
					t.Error(err)
					return
				}
				mu.Lock()
				acked[k] = v
				mu.Unlock()
			}
		}()
	}
	wg.Wait()
	_, revBefore, err := c.Store(0).List(ctx, "/d/")
	if err != nil {
		t.Fatal(err)
	}
	c.Restart(t)
	ctx = ctxT(t)
	kvs, revAfter, err := c.Store(0).List(ctx, "/d/")
	if err != nil {
		t.Fatalf("list after restart: %v", err)
	}
	got := map[string]string{}
	for _, kv := range kvs {
		got[kv.Key] = string(kv.Value)
	}
	for k, v := range acked {
		if got[k] != v {
			t.Fatalf("acknowledged write %s=%s lost after restart (got %q)", k, v, got[k])
		}
	}
	if revAfter < revBefore {
		t.Fatalf("revision went back from %d to %d across restart", revBefore, revAfter)
	}
	// Writes continue with higher revisions.
	if r := put(t, c.Store(c.Size()-1), "/d/after", "x"); r <= revAfter {
		t.Fatalf("revision after restart %d not above %d", r, revAfter)
	}
}

func testFencing(t *testing.T, h Harness) {
	c := h.New(t)
	ctx := ctxT(t)
	old, oldIdx := campaignAny(t, c)
	fence := old.Fence()
	if _, err := c.Store(oldIdx).Txn(ctx, store.Txn{If: []store.Compare{fence}, Then: []store.Op{store.Put("/fenced", []byte("old-ok"))}}); err != nil {
		t.Fatalf("write as leader: %v", err)
	}
	if err := old.Resign(ctx); err != nil {
		t.Fatalf("resign: %v", err)
	}
	select {
	case <-old.Context().Done():
	case <-time.After(10 * time.Second):
		t.Fatal("leadership context still live after resign")
	}
	next, nextIdx := campaignAny(t, c)
	// The deposed leader's write is rejected, from its own replica and from any other.
	for _, i := range []int{oldIdx, nextIdx} {
		_, err := c.Store(i).Txn(ctx, store.Txn{If: []store.Compare{fence}, Then: []store.Op{store.Put("/fenced", []byte("old-late"))}})
		if !errors.Is(err, store.ErrFenced) {
			t.Fatalf("deposed leader's write via replica %d: got %v, want ErrFenced", i, err)
		}
	}
	if _, err := c.Store(nextIdx).Txn(ctx, store.Txn{If: []store.Compare{next.Fence()}, Then: []store.Op{store.Put("/fenced", []byte("new"))}}); err != nil {
		t.Fatalf("new leader's write: %v", err)
	}
	kv, _, err := c.Store(0).Get(ctx, "/fenced")
	if err != nil || string(kv.Value) != "new" {
		t.Fatalf("fenced key = %v, %v; want new", kv, err)
	}
	_ = next.Resign(ctx)
}

// campaignAny campaigns on every replica and returns the first leadership won.
func campaignAny(t testing.TB, c Cluster) (store.Leadership, int) {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	type won struct {
		l store.Leadership
		i int
	}
	ch := make(chan won, c.Size())
	for i := range c.Size() {
		go func() {
			l, err := c.Elector(i).Campaign(ctx)
			if err == nil {
				ch <- won{l, i}
			}
		}()
	}
	select {
	case w := <-ch:
		cancel()
		return w.l, w.i
	case <-ctx.Done():
		t.Fatal("no replica won a campaign within 30s")
	}
	return nil, 0
}

func testInvalid(t *testing.T, h Harness) {
	c := h.New(t)
	s := c.Store(0)
	ctx := ctxT(t)
	for name, txn := range map[string]store.Txn{
		"empty put key":       {Then: []store.Op{store.Put("", []byte("x"))}},
		"empty delete prefix": {Then: []store.Op{store.DeletePrefix("")}},
		"empty compare key":   {If: []store.Compare{store.Absent("")}, Then: []store.Op{store.Put("/x", nil)}},
	} {
		if _, err := s.Txn(ctx, txn); !errors.Is(err, store.ErrInvalid) {
			t.Errorf("%s: got %v, want ErrInvalid", name, err)
		}
	}
	if _, _, err := s.Get(ctx, ""); !errors.Is(err, store.ErrInvalid) {
		t.Errorf("get empty key: got %v, want ErrInvalid", err)
	}
	if _, err := s.Watch(ctx, "/", -1); !errors.Is(err, store.ErrInvalid) {
		t.Errorf("watch negative revision: got %v, want ErrInvalid", err)
	}
}

// waitFor polls cond until it returns nil or the deadline passes, then fails with the last
// error.
func waitFor(t testing.TB, timeout time.Duration, cond func() error) {
	t.Helper()
	testwait.For(t, timeout, cond)
}
