package lincheck

import (
	"fmt"
	"maps"
	"math/rand"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/deckhandhq/deckhand/store"
)

func put(key, value string) store.Txn {
	return store.Txn{Then: []store.Op{store.Put(key, []byte(value))}}
}

func TestLinearizabilityVerdicts(t *testing.T) {
	k := keyName(0)
	w1 := &op{client: 0, call: 0, ret: 10, in: input{kind: kindTxn, txn: put(k, "a")}, value: "a", out: output{rev: 2, outcome: outApplied}}
	cas := &op{client: 1, call: 20, ret: 30, in: input{kind: kindTxn, txn: store.Txn{If: []store.Compare{store.ModRevisionIs(k, 2)}, Then: []store.Op{store.Put(k, []byte("b"))}}}, value: "b", out: output{rev: 3, outcome: outApplied}}
	log := map[int64][]wevent{2: {{rev: 2, typ: store.EventPut, key: k, value: "a"}}, 3: {{rev: 3, typ: store.EventPut, key: k, value: "b"}}}
	for _, tc := range []struct {
		name    string
		ops     []*op
		illegal bool
	}{
		{"read after the write sees it", []*op{w1, {client: 2, call: 11, ret: 12, in: input{kind: kindGet, key: k}, out: output{rev: 2, found: true, kvs: []store.KV{{Key: k, Value: []byte("a"), CreateRevision: 2, ModRevision: 2, Version: 1}}}}}, false},
		{"read after the write misses it (stale)", []*op{w1, {client: 2, call: 11, ret: 12, in: input{kind: kindGet, key: k}, out: output{rev: 1}}}, true},
		{"read concurrent with the write may miss it", []*op{w1, {client: 2, call: 5, ret: 12, in: input{kind: kindGet, key: k}, out: output{rev: 1}}}, false},
		{"list at a revision shows that revision", []*op{w1, cas, {client: 2, call: 31, ret: 32, in: input{kind: kindList, key: keyPrefix}, out: output{rev: 3, kvs: []store.KV{{Key: k, Value: []byte("b"), CreateRevision: 2, ModRevision: 3, Version: 2}}}}}, false},
		{"list with a lost update", []*op{w1, cas, {client: 2, call: 31, ret: 32, in: input{kind: kindList, key: keyPrefix}, out: output{rev: 3, kvs: []store.KV{{Key: k, Value: []byte("a"), CreateRevision: 2, ModRevision: 2, Version: 1}}}}}, true},
		{"a CAS on a stale revision that applied", []*op{w1, cas, {client: 2, call: 31, ret: 40, in: input{kind: kindTxn, txn: store.Txn{If: []store.Compare{store.ModRevisionIs(k, 2)}, Then: []store.Op{store.Put(k, []byte("c"))}}}, value: "c", out: output{rev: 4, outcome: outApplied}}}, true},
		{"create-if-absent that conflicted on an existing key", []*op{w1, {client: 2, call: 11, ret: 12, in: input{kind: kindTxn, txn: store.Txn{If: []store.Compare{store.Absent(k)}, Then: []store.Op{store.Put(k, []byte("d"))}}}, value: "d", out: output{outcome: outConflict}}}, false},
	} {
		t.Run(tc.name, func(t *testing.T) {
			rep := &Report{}
			l := map[int64][]wevent{}
			for rev, evs := range log {
				l[rev] = evs
			}
			index := map[string]int64{}
			for _, o := range tc.ops {
				if o.in.kind == kindTxn && o.out.outcome == outApplied {
					index[o.value] = o.out.rev
					l[o.out.rev] = []wevent{{rev: o.out.rev, typ: store.EventPut, key: o.in.txn.Then[0].Key, value: o.value}}
				}
			}
			checkLinearizable(rep, &recorder{ops: tc.ops}, index, l, Config{CheckTimeout: 10 * time.Second})
			if got := rep.Linearizable == "Illegal"; got != tc.illegal {
				t.Fatalf("illegal = %v, want %v (%s; %v)", got, tc.illegal, rep.Linearizable, rep.Violations)
			}
		})
	}
}

// A read at a revision below one a finished operation showed is stale, also when only
// revisions the model does not know lie between (the same checked keyspace).
func TestReadRevisionVerdicts(t *testing.T) {
	k := keyName(0)
	read := func(client int, call, ret, rev int64) *op {
		return &op{client: client, call: call, ret: ret, in: input{kind: kindGet, key: k}, out: output{rev: rev}}
	}
	for _, tc := range []struct {
		name  string
		ops   []*op
		stale bool
	}{
		{"revisions rise with time", []*op{read(0, 0, 10, 5), read(1, 11, 20, 7)}, false},
		{"a read after one at a higher revision", []*op{read(0, 0, 10, 7), read(1, 11, 20, 5)}, true},
		{"concurrent reads in any order", []*op{read(0, 0, 10, 7), read(1, 5, 20, 5)}, false},
		{"a read after an acknowledged write", []*op{{client: 0, call: 0, ret: 10, in: input{kind: kindTxn, txn: put(k, "a")}, out: output{rev: 9, outcome: outApplied}}, read(1, 11, 20, 8)}, true},
		{"an unknown write does not count", []*op{{client: 0, call: 0, ret: 10, in: input{kind: kindTxn, txn: put(k, "a")}, unknown: true, out: output{rev: 9}}, read(1, 11, 20, 8)}, false},
	} {
		rep := &Report{}
		checkReadRevisions(rep, &recorder{ops: tc.ops})
		if got := len(rep.Violations) > 0; got != tc.stale {
			t.Errorf("%s: violations %q, want stale: %v", tc.name, rep.Violations, tc.stale)
		}
	}
}

func TestWatchReplayVerdicts(t *testing.T) {
	ev := func(rev int64, v string) wevent {
		return wevent{rev: rev, typ: store.EventPut, key: "/lc/k0", value: v}
	}
	full := []wevent{ev(1, "a"), ev(2, "b"), ev(3, "c")}
	for _, tc := range []struct {
		name  string
		other []wevent
		gaps  []gap
		want  string // a violation containing this; "" for none
	}{
		{"the same log", full, nil, ""},
		{"a silent gap", []wevent{ev(1, "a"), ev(3, "c")}, nil, "skipped revision 2"},
		{"an announced gap", []wevent{ev(1, "a"), ev(3, "c")}, []gap{{from: 1, to: 2}}, ""},
		{"a duplicate", []wevent{ev(1, "a"), ev(2, "b"), ev(1, "a"), ev(3, "c")}, nil, "out of order"},
		{"a different value", []wevent{ev(1, "a"), ev(2, "x"), ev(3, "c")}, nil, "revision 2:"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			rep := &Report{}
			replayWatches(rep, []*watcher{{events: full}, {events: tc.other, gaps: tc.gaps}})
			got := strings.Join(rep.Violations, "\n")
			if (tc.want == "") != (got == "") || !strings.Contains(got, tc.want) {
				t.Fatalf("violations %q, want one with %q", got, tc.want)
			}
		})
	}
}

func TestFenceVerdicts(t *testing.T) {
	w := func(term int, v string, rev int64) *fencedWrite {
		return &fencedWrite{term: term, value: v, rev: rev, applied: true}
	}
	for _, tc := range []struct {
		name   string
		writes []*fencedWrite
		bad    bool
	}{
		{"terms one after another", []*fencedWrite{w(1, "a", 1), w(1, "b", 2), w(2, "c", 3), w(3, "d", 5)}, false},
		{"a deposed term writes again", []*fencedWrite{w(1, "a", 1), w(2, "c", 3), w(1, "b", 4)}, true},
		{"a write answered ErrFenced was applied", []*fencedWrite{w(1, "a", 1), {term: 1, value: "b"}}, true},
	} {
		t.Run(tc.name, func(t *testing.T) {
			index := map[string]int64{}
			for _, fw := range tc.writes {
				index[fw.value] = fw.rev
			}
			if tc.name == "a write answered ErrFenced was applied" {
				index["b"] = 2
			}
			rep := &Report{}
			checkFence(rep, &recorder{fence: tc.writes}, index)
			if got := len(rep.Violations) > 0; got != tc.bad {
				t.Fatalf("violations %v, want any: %v", rep.Violations, tc.bad)
			}
		})
	}
}

// simulated builds the history of clients running against a correct in-memory store: each
// operation takes effect at some moment between its call and its return; some writes lose
// their answer (unknown outcome, applied or not), and revisions the checker does not know
// (a leader's fenced writes) come between. corrupt changes the value one read returned.
func simulated(seed int64, clients, n int, corrupt bool) (*recorder, map[string]int64, map[int64][]wevent) {
	r := rand.New(rand.NewSource(seed))
	kvs := map[string]store.KV{}
	var rev int64 = 1
	index, log := map[string]int64{}, map[int64][]wevent{}
	type flight struct {
		o       *op
		applied bool
		lost    bool // the answer is lost: the write's outcome is unknown
	}
	inFlight := make([]*flight, clients)
	var ops []*op
	var tick int64
	apply := func(o *op) {
		t := o.in.txn
		for _, c := range t.If {
			kv, ok := kvs[c.Key]
			if c.Target == store.CompareModRevision && kv.ModRevision != c.ModRevision || c.Target == store.CompareValue && (!ok || string(kv.Value) != string(c.Value)) {
				o.out = output{rev: rev, outcome: outConflict}
				return
			}
		}
		rev++
		for _, p := range t.Then {
			kv, ok := kvs[p.Key]
			if !ok {
				kv = store.KV{Key: p.Key, CreateRevision: rev}
			}
			kv.Value, kv.ModRevision, kv.Version = p.Value, rev, kv.Version+1
			kvs[p.Key] = kv
			log[rev] = append(log[rev], wevent{rev: rev, typ: store.EventPut, key: p.Key, value: string(p.Value)})
		}
		index[o.value] = rev
		o.out = output{rev: rev, outcome: outApplied}
	}
	for started := 0; started < n || slices.ContainsFunc(inFlight, func(f *flight) bool { return f != nil }); {
		tick++
		if r.Intn(10) == 0 { // a write outside the checked keyspace
			rev++
			log[rev] = []wevent{{rev: rev, typ: store.EventPut, key: fenceKey, value: fmt.Sprintf("t-%d", rev)}}
		}
		c := r.Intn(clients)
		f := inFlight[c]
		switch {
		case f == nil && started < n:
			started++
			key := keyName(r.Intn(4))
			o := &op{client: c, call: tick, value: fmt.Sprintf("c%d-%d", c, started)}
			switch p := r.Intn(10); {
			case p < 3:
				o.in = input{kind: kindGet, key: key}
			case p < 4:
				o.in = input{kind: kindList, key: keyPrefix}
			case p < 6:
				o.in = input{kind: kindTxn, txn: store.Txn{If: []store.Compare{store.ModRevisionIs(key, kvs[key].ModRevision)}, Then: []store.Op{store.Put(key, []byte(o.value))}}}
			case p < 7:
				o.in = input{kind: kindTxn, txn: store.Txn{If: []store.Compare{store.Absent(key)}, Then: []store.Op{store.Put(key, []byte(o.value))}}}
			default:
				o.in = input{kind: kindTxn, txn: put(key, o.value)}
			}
			inFlight[c] = &flight{o: o, lost: o.in.kind == kindTxn && r.Intn(30) == 0}
			ops = append(ops, o)
		case f == nil:
		case !f.applied:
			f.applied = true
			if f.lost && r.Intn(2) == 0 {
				break // lost before it reached the store
			}
			switch f.o.in.kind {
			case kindGet:
				kv, ok := kvs[f.o.in.key]
				f.o.out = output{rev: rev, found: ok}
				if ok {
					f.o.out.kvs = []store.KV{kv}
				}
			case kindList:
				f.o.out = output{rev: rev}
				for _, k := range slices.Sorted(maps.Keys(kvs)) {
					f.o.out.kvs = append(f.o.out.kvs, kvs[k])
				}
			default:
				apply(f.o)
			}
		default:
			f.o.ret = tick
			if f.lost {
				f.o.unknown, f.o.out = true, output{}
			}
			inFlight[c] = nil
		}
	}
	if corrupt {
		for _, o := range ops[len(ops)/2:] {
			if o.in.kind == kindGet && o.out.found {
				o.out.kvs[0].Value = []byte("never written")
				break
			}
		}
	}
	return &recorder{ops: ops}, index, log
}

// TestLongHistoriesAreDecided: a history of 20,000 operations from 12 clients, with unknown
// outcomes left open to its end, is decided (this is the shape of history whose check ran
// past its minute before the model pinned each operation to the writes' revision order),
// and one wrong read in it is found.
func TestLongHistoriesAreDecided(t *testing.T) {
	for _, corrupt := range []bool{false, true} {
		rec, index, log := simulated(7, 12, 20000, corrupt)
		rep := &Report{}
		checkLinearizable(rep, rec, index, log, Config{CheckTimeout: 2 * time.Minute})
		want := "Ok"
		if corrupt {
			want = "Illegal"
		}
		t.Logf("corrupt=%v: %d ops, %d unknown (%d applied), checked in %v: %s", corrupt, rep.Ops, rep.Unknown, rep.Resolved, rep.CheckTime, rep.Linearizable)
		if rep.Linearizable != want {
			t.Fatalf("corrupt=%v: verdict %s, want %s (%v)", corrupt, rep.Linearizable, want, rep.Violations)
		}
	}
}
