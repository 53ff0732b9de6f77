package lincheck

import (
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
