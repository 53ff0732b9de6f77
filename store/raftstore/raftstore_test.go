package raftstore

import (
	"context"
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/hashicorp/raft"
	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/status"

	"github.com/deckhandhq/deckhand/internal/pki"
	"github.com/deckhandhq/deckhand/internal/testkit/testnet"
	"github.com/deckhandhq/deckhand/store"
)

func putVal(ctx context.Context, s store.Store, k, v string) error {
	_, err := s.Txn(ctx, store.Txn{Then: []store.Op{store.Put(k, []byte(v))}})
	return err
}

func TestKillLeaderKeepsAcknowledgedWrites(t *testing.T) {
	c := newCluster(t, 3, nil)
	old := c.leader()
	var mu sync.Mutex
	acked := map[string]bool{}
	var stop atomic.Bool
	var wg sync.WaitGroup
	for w := range 6 {
		wg.Add(1)
		go func() {
			defer wg.Done()
			for i := 0; !stop.Load(); i++ {
				// Write through the replicas that survive, so writers keep going.
				idx := (old + 1 + w%2) % 3
				k := fmt.Sprintf("/ack/%d/%d", w, i)
				ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
				err := putVal(ctx, c.nodes[idx].st, k, "v")
				cancel()
				if err == nil {
					mu.Lock()
					acked[k] = true
					mu.Unlock()
				}
			}
		}()
	}
	waitFor(t, 10*time.Second, func() error {
		mu.Lock()
		defer mu.Unlock()
		if len(acked) < 50 {
			return fmt.Errorf("%d writes acknowledged", len(acked))
		}
		return nil
	})
	c.kill(old)
	mu.Lock()
	atKill := len(acked)
	mu.Unlock()
	// A new leader appears among the survivors and writes go on.
	waitFor(t, 15*time.Second, func() error {
		mu.Lock()
		defer mu.Unlock()
		if len(acked) < atKill+50 {
			return fmt.Errorf("%d writes acknowledged since the kill", len(acked)-atKill)
		}
		return nil
	})
	stop.Store(true)
	wg.Wait()
	nl := c.leader()
	if nl == old {
		t.Fatalf("killed replica %d still reported as leader", old)
	}
	for _, i := range []int{(old + 1) % 3, (old + 2) % 3} {
		ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
		kvs, _, err := c.nodes[i].st.List(ctx, "/ack/")
		cancel()
		if err != nil {
			t.Fatalf("replica %d list: %v", i, err)
		}
		have := map[string]bool{}
		for _, kv := range kvs {
			have[kv.Key] = true
		}
		for k := range acked {
			if !have[k] {
				t.Fatalf("replica %d lost acknowledged write %s", i, k)
			}
		}
	}
	// The killed replica comes back and catches up.
	if err := c.start(c.nodes[old], nil); err != nil {
		t.Fatal(err)
	}
	waitFor(t, 15*time.Second, func() error {
		kvs, _, err := c.nodes[old].st.List(context.Background(), "/ack/", store.Stale())
		if err != nil {
			return err
		}
		if len(kvs) < len(acked) {
			return fmt.Errorf("restarted replica has %d of %d keys", len(kvs), len(acked))
		}
		return nil
	})
}

func TestIsolatedMinorityRefusesWritesPromptly(t *testing.T) {
	c := newCluster(t, 3, nil)
	ctx := context.Background()
	li := c.leader()
	fi := (li + 1) % 3
	if err := putVal(ctx, c.nodes[fi].st, "/before", "x"); err != nil {
		t.Fatal(err)
	}
	waitFor(t, 10*time.Second, func() error {
		_, _, err := c.nodes[fi].st.Get(ctx, "/before", store.Stale())
		return err
	})

	// An isolated follower: its write fails with ErrNoLeader within the apply timeout.
	c.net.Isolate(c.nodes[fi].addr, true)
	start := time.Now()
	err := putVal(ctx, c.nodes[fi].st, "/isolated", "x")
	took := time.Since(start)
	if !errors.Is(err, store.ErrNoLeader) {
		t.Fatalf("write on isolated follower: got %v, want ErrNoLeader", err)
	}
	if took > testConfig().ApplyTimeout+2*time.Second {
		t.Fatalf("isolated write took %v; want it refused within the apply timeout", took)
	}
	if !strings.Contains(err.Error(), "quorum") {
		t.Fatalf("error does not say what is wrong: %v", err)
	}
	// Linearizable reads fail the same way; a stale read still answers.
	if _, _, err := c.nodes[fi].st.Get(ctx, "/before"); !errors.Is(err, store.ErrNoLeader) {
		t.Fatalf("linearizable read on isolated follower: got %v, want ErrNoLeader", err)
	}
	if kv, _, err := c.nodes[fi].st.Get(ctx, "/before", store.Stale()); err != nil || string(kv.Value) != "x" {
		t.Fatalf("stale read on isolated follower: %v %v", kv, err)
	}
	// The majority keeps working.
	if err := putVal(ctx, c.nodes[li].st, "/majority", "x"); err != nil {
		t.Fatalf("majority write: %v", err)
	}
	c.net.Isolate(c.nodes[fi].addr, false)
	waitFor(t, 15*time.Second, func() error {
		kv, _, err := c.nodes[fi].st.Get(ctx, "/majority")
		if err != nil {
			return err
		}
		if string(kv.Value) != "x" {
			return fmt.Errorf("got %q", kv.Value)
		}
		return nil
	})

	// An isolated leader steps down; its writes fail promptly and the others elect a leader.
	li = c.leader()
	c.net.Isolate(c.nodes[li].addr, true)
	start = time.Now()
	err = putVal(ctx, c.nodes[li].st, "/old-leader", "x")
	took = time.Since(start)
	if !errors.Is(err, store.ErrNoLeader) {
		t.Fatalf("write on isolated leader: got %v, want ErrNoLeader", err)
	}
	if took > testConfig().ApplyTimeout+2*time.Second {
		t.Fatalf("isolated leader write took %v", took)
	}
	other := (li + 1) % 3
	waitFor(t, 15*time.Second, func() error {
		return putVal(ctx, c.nodes[other].st, "/new-leader", "x")
	})
	c.net.Isolate(c.nodes[li].addr, false)
	waitFor(t, 15*time.Second, func() error {
		_, _, err := c.nodes[li].st.Get(ctx, "/new-leader")
		return err
	})
	// The old leader's refused write never appears.
	if _, _, err := c.nodes[other].st.Get(ctx, "/old-leader"); err == nil {
		t.Log("note: the isolated leader's write committed after healing (it was reported as outcome unknown)")
	}
}

func TestSnapshotRestoreAndCatchUp(t *testing.T) {
	c := newCluster(t, 3, func(cfg *Config) {
		cfg.SnapshotThreshold = 64
		cfg.TrailingLogs = 16
		cfg.SnapshotInterval = time.Hour
	})
	ctx := context.Background()
	li := c.leader()
	for i := range 300 {
		if err := putVal(ctx, c.nodes[li].st, fmt.Sprintf("/snap/%03d", i), fmt.Sprint(i)); err != nil {
			t.Fatal(err)
		}
	}
	for _, nd := range c.nodes {
		if err := nd.st.raft.Snapshot().Error(); err != nil {
			t.Fatalf("snapshot: %v", err)
		}
	}
	snaps, _ := filepath.Glob(filepath.Join(c.nodes[li].dir, "snapshots", "*", "state.bin"))
	if len(snaps) == 0 {
		t.Fatal("no snapshot file on disk")
	}
	_, revBefore, _ := c.nodes[li].st.List(ctx, "/snap/")
	// Restore from disk: every replica restarts from its snapshot plus trailing logs.
	c.Restart(t)
	kvs, revAfter, err := c.nodes[0].st.List(ctx, "/snap/")
	if err != nil || len(kvs) != 300 || revAfter < revBefore {
		t.Fatalf("after restore: %d keys at rev %d (before %d), err %v", len(kvs), revAfter, revBefore, err)
	}
	// A new replica far behind the log gets the snapshot installed.
	nd := &node{dir: t.TempDir()}
	c.nodes = append(c.nodes, nd)
	if err := c.start(nd, []string{c.nodes[0].addr}); err != nil {
		t.Fatal(err)
	}
	waitFor(t, 15*time.Second, func() error {
		kvs, _, err := nd.st.List(ctx, "/snap/", store.Stale())
		if err != nil {
			return err
		}
		if len(kvs) != 300 {
			return fmt.Errorf("new replica has %d of 300 keys", len(kvs))
		}
		return nil
	})
	if kv, _, err := nd.st.Get(ctx, "/snap/123", store.Stale()); err != nil || string(kv.Value) != "123" {
		t.Fatalf("new replica value: %v %v", kv, err)
	}
}

func TestJoinReplacesStaleMemberAndRemove(t *testing.T) {
	c := newCluster(t, 3, nil)
	ctx := context.Background()
	victim := (c.leader() + 1) % 3
	oldID := c.nodes[victim].st.ID()
	addr := c.nodes[victim].addr
	c.kill(victim)
	// The machine lost its disk: same address, fresh data dir, new ID.
	c.nodes[victim] = &node{dir: t.TempDir(), addr: addr}
	if err := c.start(c.nodes[victim], []string{c.nodes[(victim+1)%3].addr}); err != nil {
		t.Fatal(err)
	}
	newID := c.nodes[victim].st.ID()
	if newID == oldID {
		t.Fatal("fresh data dir reused the old ID")
	}
	// Every replica's configuration (read locally, so a follower or the new replica may lag
	// behind the leader for a moment) ends with the new ID in place of the stale one.
	for i := range c.nodes {
		waitFor(t, 10*time.Second, func() error {
			members, err := c.nodes[i].st.Members()
			if err != nil {
				return err
			}
			var ids []string
			for _, m := range members {
				ids = append(ids, m.GetId())
			}
			if slices.Contains(ids, oldID) || !slices.Contains(ids, newID) || len(ids) != 3 {
				return fmt.Errorf("replica %d sees members %v; want 3 with %s and without the stale %s", i, ids, newID, oldID)
			}
			return nil
		})
	}
	if err := putVal(ctx, c.nodes[victim].st, "/after-replace", "x"); err != nil {
		t.Fatal(err)
	}
	// Remove a follower through another follower (forwarded to the leader).
	li := c.leader()
	f1, f2 := (li+1)%3, (li+2)%3
	members, err := c.nodes[f1].st.Remove(ctx, c.nodes[f2].st.ID(), "")
	if err != nil {
		t.Fatalf("remove: %v", err)
	}
	if len(members) != 2 {
		t.Fatalf("after remove: %d members", len(members))
	}
	c.kill(f2)
	if err := putVal(ctx, c.nodes[f1].st, "/two-left", "x"); err != nil {
		t.Fatalf("write with 2 of 2 members: %v", err)
	}
	if _, err := c.nodes[li].st.Remove(ctx, "no-such-replica", ""); err == nil {
		t.Fatal("removing an unknown replica succeeded")
	}
}

func TestSingleReplicaCannotRemoveItself(t *testing.T) {
	c := newCluster(t, 1, nil)
	_, err := c.nodes[0].st.Remove(context.Background(), c.nodes[0].st.ID(), "")
	if err == nil || !strings.Contains(err.Error(), "last voter") {
		t.Fatalf("removing the last voter: %v", err)
	}
}

func TestOpenRefusesForeignDataDirAndUnreachableJoin(t *testing.T) {
	a := newCluster(t, 1, nil)
	b := newCluster(t, 1, nil)
	dirB := b.nodes[0].dir
	b.kill(0)
	before := dirListing(t, dirB)

	// B's data dir cannot join cluster A.
	nd := &node{dir: dirB}
	err := a.start(nd, []string{a.nodes[0].addr})
	if !errors.Is(err, ErrForeignCluster) {
		t.Fatalf("joining with a foreign data dir: got %v, want ErrForeignCluster", err)
	}
	if after := dirListing(t, dirB); after != before {
		t.Fatalf("refused start changed the data dir:\nbefore %s\nafter  %s", before, after)
	}
	// An unreachable join address fails fast with a clear error and leaves nothing behind.
	fresh := filepath.Join(t.TempDir(), "fresh")
	nd = &node{dir: fresh}
	c := &cluster{t: t, net: testnet.New(), ca: sharedCA(), cfgFn: func(cfg *Config) { cfg.JoinTimeout = 300 * time.Millisecond }}
	t.Cleanup(c.closeAll)
	err = c.start(nd, []string{"127.0.0.1:1"})
	if !errors.Is(err, ErrJoinUnreachable) {
		t.Fatalf("unreachable join: got %v, want ErrJoinUnreachable", err)
	}
	if _, serr := os.Stat(filepath.Join(fresh, "member.json")); !os.IsNotExist(serr) {
		t.Fatalf("failed join left a member file: %v", serr)
	}
}

func dirListing(t *testing.T, dir string) string {
	t.Helper()
	var b strings.Builder
	filepath.Walk(dir, func(p string, info os.FileInfo, err error) error {
		if err != nil {
			return err
		}
		if !info.IsDir() {
			data, _ := os.ReadFile(p)
			fmt.Fprintf(&b, "%s:%d:%x ", strings.TrimPrefix(p, dir), len(data), hashBytes(data))
		}
		return nil
	})
	return b.String()
}

func hashBytes(b []byte) uint64 {
	var h uint64 = 14695981039346656037
	for _, c := range b {
		h ^= uint64(c)
		h *= 1099511628211
	}
	return h
}

// A follower that falls behind and installs the leader's snapshot ends its open watches
// with ErrCompacted instead of jumping over the revisions it never applied.
func TestFollowerWatchEndsWithErrCompactedOnSnapshotInstall(t *testing.T) {
	c := newCluster(t, 3, nil)
	ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
	defer cancel()
	li := c.leader()
	fi := (li + 1) % 3
	leader, follower := c.nodes[li].st, c.nodes[fi].st
	if err := putVal(ctx, leader, "/lw/start", "x"); err != nil {
		t.Fatal(err)
	}
	_, rev, err := follower.List(ctx, "/lw/")
	if err != nil {
		t.Fatal(err)
	}
	ch, err := follower.Watch(ctx, "/lw/", rev)
	if err != nil {
		t.Fatal(err)
	}
	c.Cut(t, fi)
	var last int64
	for i := range 300 {
		if last, err = leader.Txn(ctx, store.Txn{Then: []store.Op{store.Put(fmt.Sprintf("/lw/%03d", i), []byte("x"))}}); err != nil {
			t.Fatal(err)
		}
	}
	c.Forget(t, last)
	c.Heal(t, fi)
	if err := putVal(ctx, leader, "/lw/after", "x"); err != nil {
		t.Fatal(err)
	}
	select {
	case ev, ok := <-ch:
		if !ok || !errors.Is(ev.Err, store.ErrCompacted) {
			t.Fatalf("follower's watch after a snapshot install: got %+v (open %v), want ErrCompacted", ev, ok)
		}
	case <-time.After(20 * time.Second):
		t.Fatal("follower's watch got nothing after the snapshot install")
	}
	// The follower caught up: a new watch from its current revision works.
	waitFor(t, 15*time.Second, func() error {
		_, _, err := follower.Get(ctx, "/lw/after", store.Stale())
		return err
	})
}

// A damaged data dir is refused with one line that says what is wrong and how to recover,
// and every file is left as it was; the undamaged copy starts with every write.
func TestOpenRefusesDamagedDataDir(t *testing.T) {
	c := newCluster(t, 1, func(cfg *Config) { cfg.SnapshotInterval = time.Hour })
	ctx := context.Background()
	for i := range 100 {
		if err := putVal(ctx, c.nodes[0].st, fmt.Sprintf("/d/%03d", i), "x"); err != nil {
			t.Fatal(err)
		}
		if i == 49 {
			if err := c.nodes[0].st.raft.Snapshot().Error(); err != nil {
				t.Fatal(err)
			}
		}
	}
	c.kill(0)
	good := c.nodes[0].dir

	randomBytes := func(n int) []byte {
		b := make([]byte, n)
		for i := range b {
			b[i] = byte(i*7919 + i/13) // deterministic noise
		}
		return b
	}
	cases := []struct {
		name   string
		damage func(dir string) error
		wants  []string
	}{
		{"raft.db emptied beside a snapshot", func(d string) error { return os.Truncate(filepath.Join(d, "raft.db"), 0) }, []string{"raft.db is empty", "snapshots exist"}},
		{"raft.db deleted beside a snapshot", func(d string) error { return os.Remove(filepath.Join(d, "raft.db")) }, []string{"raft.db is missing", "snapshots exist"}},
		{"raft.db overwritten with random bytes", func(d string) error {
			fi, err := os.Stat(filepath.Join(d, "raft.db"))
			if err != nil {
				return err
			}
			return os.WriteFile(filepath.Join(d, "raft.db"), randomBytes(int(fi.Size())), 0o600)
		}, []string{"raft.db cannot be read"}},
		{"random bytes inside raft.db", func(d string) error {
			f, err := os.OpenFile(filepath.Join(d, "raft.db"), os.O_WRONLY, 0)
			if err != nil {
				return err
			}
			defer f.Close()
			_, err = f.WriteAt(randomBytes(64<<10), 16<<10)
			return err
		}, []string{"raft.db cannot be read"}},
		{"member.json deleted", func(d string) error { return os.Remove(filepath.Join(d, "member.json")) }, []string{"no member.json"}},
		{"raft.db and snapshots deleted", func(d string) error {
			if err := os.Remove(filepath.Join(d, "raft.db")); err != nil {
				return err
			}
			return os.RemoveAll(filepath.Join(d, "snapshots"))
		}, []string{"member.json says", "raft.db is missing"}},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			dir := copyDir(t, good)
			if err := tc.damage(dir); err != nil {
				t.Fatal(err)
			}
			before := treeWithModes(t, dir)
			err := c.start(&node{dir: dir}, nil)
			if err == nil {
				t.Fatal("a damaged data dir started")
			}
			msg := err.Error()
			t.Log(msg)
			for _, w := range append(tc.wants, "is damaged", "--data-dir", "backup") {
				if !strings.Contains(msg, w) {
					t.Errorf("message %q does not mention %q", msg, w)
				}
			}
			if strings.Contains(msg, "\n") {
				t.Errorf("message is not one line: %q", msg)
			}
			if after := treeWithModes(t, dir); after != before {
				t.Errorf("refused start changed the data dir:\nbefore %s\nafter  %s", before, after)
			}
		})
	}
	// The undamaged data dir restarts with every acknowledged write.
	nd := &node{dir: copyDir(t, good)}
	if err := c.start(nd, nil); err != nil {
		t.Fatal(err)
	}
	c.nodes = append(c.nodes, nd)
	waitFor(t, 15*time.Second, func() error {
		kvs, _, err := nd.st.List(ctx, "/d/", store.Stale())
		if err != nil || len(kvs) != 100 {
			return fmt.Errorf("%d of 100 keys, %v", len(kvs), err)
		}
		return nil
	})
}

func copyDir(t *testing.T, src string) string {
	t.Helper()
	dst := filepath.Join(t.TempDir(), "data")
	err := filepath.WalkDir(src, func(p string, d os.DirEntry, err error) error {
		if err != nil {
			return err
		}
		info, err := d.Info()
		if err != nil {
			return err
		}
		target := filepath.Join(dst, strings.TrimPrefix(p, src))
		if d.IsDir() {
			return os.MkdirAll(target, info.Mode().Perm())
		}
		b, err := os.ReadFile(p)
		if err != nil {
			return err
		}
		return os.WriteFile(target, b, info.Mode().Perm())
	})
	if err != nil {
		t.Fatal(err)
	}
	return dst
}

// treeWithModes lists every file and directory with its mode and content hash.
func treeWithModes(t *testing.T, dir string) string {
	t.Helper()
	var b strings.Builder
	_ = filepath.WalkDir(dir, func(p string, d os.DirEntry, err error) error {
		if err != nil {
			return err
		}
		info, _ := d.Info()
		var data []byte
		if !d.IsDir() {
			data, _ = os.ReadFile(p)
		}
		fmt.Fprintf(&b, "%s %v %d %x\n", strings.TrimPrefix(p, dir), info.Mode(), len(data), hashBytes(data))
		return nil
	})
	return b.String()
}

// The data dir holds the CA key in every snapshot: a data dir created beforehand with 0755
// ends 0700 and, after a snapshot, nothing in it is readable by group or others.
func TestDataDirIsPrivate(t *testing.T) {
	dir := filepath.Join(t.TempDir(), "data")
	if err := os.Mkdir(dir, 0o755); err != nil {
		t.Fatal(err)
	}
	if err := os.Chmod(dir, 0o755); err != nil { // whatever the umask
		t.Fatal(err)
	}
	c := &cluster{t: t, net: testnet.New(), ca: sharedCA()}
	t.Cleanup(c.closeAll)
	nd := &node{dir: dir}
	c.nodes = append(c.nodes, nd)
	if err := c.start(nd, nil); err != nil {
		t.Fatal(err)
	}
	c.waitStable()
	ctx := context.Background()
	for i := range 20 {
		if err := putVal(ctx, nd.st, fmt.Sprintf("/p/%d", i), "secret"); err != nil {
			t.Fatal(err)
		}
	}
	if err := nd.st.raft.Snapshot().Error(); err != nil {
		t.Fatal(err)
	}
	checkPrivate := func() {
		t.Helper()
		snaps, _ := filepath.Glob(filepath.Join(dir, "snapshots", "*", "state.bin"))
		if len(snaps) == 0 {
			t.Fatal("no snapshot on disk")
		}
		_ = filepath.WalkDir(dir, func(p string, d os.DirEntry, err error) error {
			if err != nil {
				t.Fatal(err)
			}
			info, _ := d.Info()
			if perm := info.Mode().Perm(); perm&0o077 != 0 {
				t.Errorf("%s is %v: readable by other users", strings.TrimPrefix(p, dir), perm)
			}
			return nil
		})
		if info, _ := os.Stat(dir); info.Mode().Perm() != 0o700 {
			t.Errorf("data dir is %v, want 0700", info.Mode().Perm())
		}
	}
	checkPrivate()
	// A data dir loosened while stopped is tightened again at the next start.
	c.kill(0)
	if err := os.Chmod(dir, 0o755); err != nil {
		t.Fatal(err)
	}
	if err := os.Chmod(filepath.Join(dir, "member.json"), 0o644); err != nil {
		t.Fatal(err)
	}
	if err := c.start(nd, nil); err != nil {
		t.Fatal(err)
	}
	checkPrivate()
}

// A replica restarting with --join (a systemd unit that keeps the flag) while no join
// address answers (every controller is rebooting) starts from its data dir instead of
// exiting; it re-announces itself in the background.
func TestRestartWithUnreachableJoinStartsFromDataDir(t *testing.T) {
	c := newCluster(t, 1, nil)
	if err := putVal(context.Background(), c.nodes[0].st, "/r/1", "x"); err != nil {
		t.Fatal(err)
	}
	c.kill(0)
	if err := c.start(c.nodes[0], []string{"127.0.0.1:1"}); err != nil {
		t.Fatalf("restart with an unreachable --join: %v", err)
	}
	c.waitStable()
	if _, _, err := c.nodes[0].st.Get(context.Background(), "/r/1"); err != nil {
		t.Fatal(err)
	}
}

// A removal checked against one configuration must not apply to another: what the checks
// saw (the leader, the healthy replicas, the majority) may no longer hold.
func TestRemoveWithAStaleCheckedConfigurationIsRefused(t *testing.T) {
	c := newCluster(t, 3, nil)
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	li := c.leader()
	f1, f2 := (li+1)%3, (li+2)%3
	_, checked, err := c.nodes[f1].st.Configuration()
	if err != nil {
		t.Fatal(err)
	}
	// The membership changes after the check.
	if _, err := c.nodes[li].st.Remove(ctx, c.nodes[f2].st.ID(), ""); err != nil {
		t.Fatalf("remove: %v", err)
	}
	// Through a follower (forwarded to the leader) and on the leader itself.
	for _, via := range []int{f1, li} {
		_, err := c.nodes[via].st.Remove(ctx, c.nodes[li].st.ID(), checked)
		if !IsMembershipChanged(err) || !strings.Contains(err.Error(), "the membership changed since it was checked; run it again") {
			t.Fatalf("removal via replica %d checked as %s: got %v, want the membership-changed refusal", via, checked, err)
		}
	}
	members, now, err := c.nodes[li].st.Configuration()
	if err != nil || len(members) != 2 {
		t.Fatalf("members after the refused removals: %v %v", members, err)
	}
	// Checked against the current configuration, the removal goes ahead.
	if members, err = c.nodes[li].st.Remove(ctx, c.nodes[f1].st.ID(), now); err != nil || len(members) != 1 {
		t.Fatalf("removal checked as %s (current): %v %v", now, members, err)
	}
}

// foreignCluster starts a one-replica cluster with a CA of its own: a stale --join address
// where another cluster's controller now runs.
func foreignCluster(t *testing.T) *cluster {
	t.Helper()
	ca, err := pki.NewCA("another-cluster")
	if err != nil {
		t.Fatal(err)
	}
	c := &cluster{t: t, net: testnet.New(), ca: ca}
	t.Cleanup(c.closeAll)
	c.nodes = []*node{{dir: t.TempDir()}}
	if err := c.start(c.nodes[0], nil); err != nil {
		t.Fatal(err)
	}
	c.waitStable()
	return c
}

// A --join list whose first address is stale (another cluster's controller answers there)
// still joins through the next address.
func TestJoinSkipsAForeignAddressAndJoinsThroughTheNext(t *testing.T) {
	a := newCluster(t, 1, nil)
	b := foreignCluster(t)
	a.cfgFn = func(cfg *Config) { cfg.JoinTimeout = time.Minute }
	nd := &node{dir: t.TempDir()}
	a.nodes = append(a.nodes, nd)
	start := time.Now()
	if err := a.start(nd, []string{b.nodes[0].addr, a.nodes[0].addr}); err != nil {
		t.Fatalf("join with a foreign first address: %v", err)
	}
	if nd.st.ClusterID() != a.nodes[0].st.ClusterID() {
		t.Fatalf("joined cluster %s, want %s", nd.st.ClusterID(), a.nodes[0].st.ClusterID())
	}
	if took := time.Since(start); took > 5*time.Second {
		t.Fatalf("join took %v", took)
	}
}

// Only a foreign cluster's address: waiting cannot help, so the join fails at once (not
// after --join-timeout) with one line naming the address and what to check.
func TestJoinAForeignClusterFailsAtOnce(t *testing.T) {
	a := newCluster(t, 1, nil)
	b := foreignCluster(t)
	a.cfgFn = func(cfg *Config) { cfg.JoinTimeout = time.Minute }
	nd := &node{dir: t.TempDir()}
	start := time.Now()
	err := a.start(nd, []string{b.nodes[0].addr})
	took := time.Since(start)
	if !errors.Is(err, ErrJoinRefused) || strings.Contains(err.Error(), "\n") || !strings.Contains(err.Error(), b.nodes[0].addr) || !strings.Contains(err.Error(), "check --join") {
		t.Fatalf("join of a foreign cluster: got %v, want one ErrJoinRefused line naming %s and --join", err, b.nodes[0].addr)
	}
	if took > 10*time.Second {
		t.Fatalf("the refused join took %v (--join-timeout 1m)", took)
	}
	if _, serr := os.Stat(filepath.Join(nd.dir, "member.json")); !os.IsNotExist(serr) {
		t.Fatalf("refused join left a member file: %v", serr)
	}
	t.Logf("refused in %v: %v", took, err)
}

// A new replica with the leader's name is a conflict, not a stale entry of the leader: the
// join is refused at once and the leader stays.
func TestJoinWithTheLeadersNameIsRefusedAtOnce(t *testing.T) {
	a := newCluster(t, 2, func(cfg *Config) { cfg.JoinTimeout = time.Minute })
	li := a.leader()
	leaderID := a.nodes[li].st.ID()
	a.cfgFn = func(cfg *Config) { cfg.JoinTimeout = time.Minute; cfg.ID = leaderID }
	nd := &node{dir: t.TempDir()}
	start := time.Now()
	// Through the follower: the leader's refusal must come back through the forwarding.
	err := a.start(nd, []string{a.nodes[1-li].addr})
	if !errors.Is(err, ErrJoinRefused) || !strings.Contains(err.Error(), "--name") || time.Since(start) > 10*time.Second {
		t.Fatalf("join with the leader's name: got %v after %v, want a refusal naming --name at once", err, time.Since(start))
	}
	members, err := a.nodes[li].st.Members()
	if err != nil || len(members) != 2 {
		t.Fatalf("members after the refused join: %v %v", members, err)
	}
}

// An ordinary stop is never taken for a removal: the removal watcher's tick and Close race
// (raft is shut down by Close), and a replica once marked removed refuses every restart.
func TestStopIsNotARemoval(t *testing.T) {
	c := newCluster(t, 1, func(cfg *Config) {
		// A tick every 5 ms makes the race with Close likely on every stop.
		cfg.HeartbeatTimeout = 10 * time.Millisecond
		cfg.ElectionTimeout = 10 * time.Millisecond
		cfg.LeaderLeaseTimeout = 10 * time.Millisecond
	})
	nd := c.nodes[0]
	for i := range 40 {
		c.kill(0)
		meta, err := readMember(nd.dir)
		if err != nil {
			t.Fatal(err)
		}
		if meta.Removed {
			t.Fatalf("stop %d marked the replica removed", i)
		}
		if err := c.start(nd, nil); err != nil {
			t.Fatalf("restart %d: %v", i, err)
		}
	}
}

// A transaction over the store's limits is refused before it is proposed, naming the limit;
// one at the limit is applied.
func TestTxnOverTheLimitsIsRefused(t *testing.T) {
	c := newCluster(t, 1, nil)
	st := c.nodes[0].st
	l := st.TxnLimits()
	ops := func(n, size int) store.Txn {
		var tx store.Txn
		for i := range n {
			tx.Then = append(tx.Then, store.Put(fmt.Sprintf("/limits/%d", i), make([]byte, size)))
		}
		return tx
	}
	ctx := context.Background()
	if _, err := st.Txn(ctx, ops(l.Ops+1, 1)); !errors.Is(err, store.ErrInvalid) || !strings.Contains(err.Error(), "operations") {
		t.Errorf("%d operations: %v, want refused", l.Ops+1, err)
	}
	if _, err := st.Txn(ctx, ops(2, l.Bytes/2)); !errors.Is(err, store.ErrInvalid) || !strings.Contains(err.Error(), "bytes") {
		t.Errorf("%d bytes: %v, want refused", l.Bytes, err)
	}
	if _, err := st.Txn(ctx, ops(l.Ops, 1)); err != nil {
		t.Errorf("%d operations: %v", l.Ops, err)
	}
	if kvs, _, err := st.List(ctx, "/limits/"); err != nil || len(kvs) != l.Ops {
		t.Errorf("after the writes: %d keys, %v; want %d (none of the refused ones)", len(kvs), err, l.Ops)
	}
}

// Writes on every replica while the leader hands leadership over (a controller resigning, a
// rolling restart) wait for the new leader. They used to fail at once with raft's bare
// "leadership transfer in progress", on the leader and, forwarded, on the followers as an
// unclassified gRPC error: no store sentinel, so callers could not tell that nothing was
// written and a retry was safe. Found by the lincheck checker (store/storetest/lincheck).
func TestWritesDuringLeadershipTransferWaitForTheNewLeader(t *testing.T) {
	c := newCluster(t, 3, nil)
	ctx, cancel := context.WithTimeout(context.Background(), 60*time.Second)
	defer cancel()
	var (
		mu     sync.Mutex
		failed []error
		writes atomic.Int64
	)
	stop := make(chan struct{})
	var wg sync.WaitGroup
	for i := range 3 {
		st := c.nodes[i].st
		wg.Add(1)
		go func() {
			defer wg.Done()
			for n := 0; ; n++ {
				select {
				case <-stop:
					return
				default:
				}
				_, err := st.Txn(ctx, store.Txn{Then: []store.Op{store.Put(fmt.Sprintf("/transfer/%d", i), []byte(fmt.Sprint(n)))}})
				writes.Add(1)
				// Losing leadership with the write in flight is an unknown outcome, reported as
				// ErrNoLeader (re-read, then retry); nothing else may fail.
				if err != nil && !errors.Is(err, store.ErrNoLeader) {
					mu.Lock()
					failed = append(failed, err)
					mu.Unlock()
				}
			}
		}()
	}
	for transfers := 0; transfers < 5; {
		li := c.leader()
		err := waitFuture(ctx, c.nodes[li].st.raft.LeadershipTransfer())
		switch {
		case err == nil:
			transfers++
		case errors.Is(err, raft.ErrNotLeader) && ctx.Err() == nil:
			// It had just lost leadership to the previous transfer's target: ask again.
		default:
			t.Fatalf("leadership transfer from replica %d: %v", li, err)
		}
	}
	close(stop)
	wg.Wait()
	if len(failed) > 0 {
		t.Fatalf("%d of %d writes failed during 5 leadership transfers, the first: %v", len(failed), writes.Load(), failed[0])
	}
}

// A follower tells its caller what a failed forward means: every gRPC answer of the leader
// becomes a store sentinel (an Unknown, the leader failing with the write in hand, used to
// come back as a bare "forward to leader: rpc error: code = Unknown"; found by lincheck).
func TestForwardedErrorsAreStoreSentinels(t *testing.T) {
	for _, tc := range []struct {
		code codes.Code
		want error
	}{
		{codes.Aborted, store.ErrConflict},
		{codes.InvalidArgument, store.ErrInvalid},
		{codes.DeadlineExceeded, store.ErrNoLeader},
		{codes.Canceled, store.ErrNoLeader},
		{codes.Unknown, store.ErrNoLeader},
	} {
		err := statusToStoreErr(status.Error(tc.code, "leadership lost while committing; the write may or may not have been applied"))
		if !errors.Is(err, tc.want) {
			t.Errorf("%v: got %v, want %v", tc.code, err, tc.want)
		}
	}
}

// Writes in flight when a replica stops fail with ErrClosed, not raft's bare "raft is
// already shutdown" (found by lincheck, a replica killed under its clients).
func TestWritesInFlightWhenTheStoreClosesFailWithErrClosed(t *testing.T) {
	for attempt := 0; attempt < 1; attempt++ {
		c := newCluster(t, 1, nil)
		st := c.nodes[0].st
		var mu sync.Mutex
		var bad []error
		var wg sync.WaitGroup
		for i := range 16 {
			wg.Add(1)
			go func() {
				defer wg.Done()
				for n := 0; ; n++ {
					_, err := st.Txn(context.Background(), store.Txn{Then: []store.Op{store.Put(fmt.Sprintf("/closing/%d", i), []byte(fmt.Sprint(n)))}})
					if err == nil {
						continue
					}
					if !errors.Is(err, store.ErrClosed) && !errors.Is(err, store.ErrNoLeader) {
						mu.Lock()
						bad = append(bad, err)
						mu.Unlock()
					}
					return
				}
			}()
		}
		time.Sleep(50 * time.Millisecond) // let the writers get going: this is the load, not a wait
		c.kill(0)
		wg.Wait()
		if len(bad) > 0 {
			t.Fatalf("%d writes failed with no store sentinel when the store closed, the first: %v", len(bad), bad[0])
		}
	}
}
