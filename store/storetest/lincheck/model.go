package lincheck

import (
	"fmt"
	"maps"
	"slices"
	"strings"

	"github.com/anishathalye/porcupine"

	"github.com/deckhandhq/deckhand/store"
)

// The model is the whole checked keyspace (a handful of keys, so a prefix List stays one
// partition). Every write and every read returns a revision, which pins its place among the
// others. The model knows the revisions of every write of the history that applied (the
// checked writes: acknowledged, or unknown and found in the log), so it admits a write only
// right after the checked write before it, and a read at revision R only between the last
// checked write at or below R and the next. That makes the search linear: a wrong choice is
// refused at once instead of at the return of some write whose outcome was unknown (those
// stay open to the end of the history), which made one search in fifty run past its bound
// before. For the writes it admits what the plain revision order admits: every checked
// write must be linearized, in increasing revisions, so each comes right after the previous.
// Reads between the same two checked writes are left unordered among themselves (revisions
// the model does not know, the backend's own records and the leaders' fenced writes, lie
// between them; they show the same checked keyspace, and ordering them by revision too made
// the search backtrack five times over): checkReadRevisions checks their revisions against
// real time instead.

type opKind int

const (
	kindGet opKind = iota + 1
	kindList
	kindTxn
)

// input is what a client asked.
type input struct {
	kind opKind
	key  string // Get key or List prefix
	txn  store.Txn
}

type outcome int

const (
	outApplied  outcome = iota + 1
	outConflict         // a compare failed: nothing written
)

// output is what the store answered (resolved unknown writes included).
type output struct {
	rev     int64
	outcome outcome    // writes
	found   bool       // Get
	kvs     []store.KV // Get (one) and List
}

type modelKV struct {
	value                string
	create, mod, version int64
}

// state is immutable: a step copies what it changes.
type state struct {
	rev int64 // the last checked write linearized
	kvs map[string]modelKV
}

// revisions are the checked writes' revisions, sorted.
type revisions []int64

// atOrBelow returns the highest checked revision at or below r (0: none).
func (rs revisions) atOrBelow(r int64) int64 {
	i, _ := slices.BinarySearch(rs, r+1)
	if i == 0 {
		return 0
	}
	return rs[i-1]
}

func (s state) holds(c store.Compare) bool {
	kv, ok := s.kvs[c.Key]
	switch c.Target {
	case store.CompareModRevision:
		if !ok {
			return c.ModRevision == 0
		}
		return kv.mod == c.ModRevision
	case store.CompareValue:
		return ok && kv.value == string(c.Value)
	}
	return false
}

func (s state) apply(t store.Txn, rev int64) state {
	next := state{rev: rev, kvs: maps.Clone(s.kvs)}
	for _, op := range t.Then {
		switch op.Type {
		case store.OpPut:
			kv, ok := next.kvs[op.Key]
			if !ok {
				kv = modelKV{create: rev}
			}
			kv.value, kv.mod = string(op.Value), rev
			kv.version++
			next.kvs[op.Key] = kv
		case store.OpDelete:
			delete(next.kvs, op.Key)
		case store.OpDeletePrefix:
			for k := range next.kvs {
				if strings.HasPrefix(k, op.Key) {
					delete(next.kvs, k)
				}
			}
		}
	}
	return next
}

func sameKV(m modelKV, kv store.KV) bool {
	return m.value == string(kv.Value) && m.create == kv.CreateRevision && m.mod == kv.ModRevision && m.version == kv.Version
}

// step is the model's transition for the checked writes revs.
func (revs revisions) step(st any, in any, out any) (bool, any) {
	s, i, o := st.(state), in.(input), out.(output)
	// read pins an operation that read the store at revision r: after the checked writes at
	// or below r, before the next.
	read := func(r int64) bool { return s.rev == revs.atOrBelow(r) }
	switch i.kind {
	case kindGet:
		if !read(o.rev) {
			return false, s
		}
		kv, ok := s.kvs[i.key]
		if ok != o.found || (ok && !sameKV(kv, o.kvs[0])) {
			return false, s
		}
		return true, s
	case kindList:
		if !read(o.rev) {
			return false, s
		}
		var keys []string
		for k := range s.kvs {
			if strings.HasPrefix(k, i.key) {
				keys = append(keys, k)
			}
		}
		slices.Sort(keys)
		if len(keys) != len(o.kvs) {
			return false, s
		}
		for n, k := range keys {
			if o.kvs[n].Key != k || !sameKV(s.kvs[k], o.kvs[n]) {
				return false, s
			}
		}
		return true, s
	case kindTxn:
		ok := true
		for _, c := range i.txn.If {
			ok = ok && s.holds(c)
		}
		switch o.outcome {
		case outApplied:
			if !ok || s.rev != revs.atOrBelow(o.rev-1) {
				return false, s
			}
			return true, s.apply(i.txn, o.rev)
		case outConflict:
			// A conflict that says at which revision its compare failed is a read there.
			return !ok && (o.rev == 0 || read(o.rev)), s
		}
	}
	return false, s
}

func equal(a, b any) bool {
	x, y := a.(state), b.(state)
	return x.rev == y.rev && maps.Equal(x.kvs, y.kvs)
}

func describe(in any, out any) string {
	i, o := in.(input), out.(output)
	switch i.kind {
	case kindGet:
		if !o.found {
			return fmt.Sprintf("get %s -> absent @%d", i.key, o.rev)
		}
		kv := o.kvs[0]
		return fmt.Sprintf("get %s -> %q c%d m%d v%d @%d", i.key, kv.Value, kv.CreateRevision, kv.ModRevision, kv.Version, o.rev)
	case kindList:
		var parts []string
		for _, kv := range o.kvs {
			parts = append(parts, fmt.Sprintf("%s=%q(m%d)", kv.Key, kv.Value, kv.ModRevision))
		}
		return fmt.Sprintf("list %s -> [%s] @%d", i.key, strings.Join(parts, " "), o.rev)
	}
	res := "conflict"
	if o.outcome == outApplied {
		res = fmt.Sprintf("applied @%d", o.rev)
	}
	return fmt.Sprintf("txn %s -> %s", describeTxn(i.txn), res)
}

func describeTxn(t store.Txn) string {
	var b strings.Builder
	for _, c := range t.If {
		if c.Target == store.CompareValue {
			fmt.Fprintf(&b, "if %s=%q ", c.Key, c.Value)
		} else {
			fmt.Fprintf(&b, "if %s@%d ", c.Key, c.ModRevision)
		}
	}
	for _, op := range t.Then {
		if op.Type == store.OpPut {
			fmt.Fprintf(&b, "put %s=%q ", op.Key, op.Value)
		} else {
			fmt.Fprintf(&b, "del %s ", op.Key)
		}
	}
	return strings.TrimSpace(b.String())
}

func describeState(st any) string {
	s := st.(state)
	keys := slices.Sorted(maps.Keys(s.kvs))
	var parts []string
	for _, k := range keys {
		kv := s.kvs[k]
		parts = append(parts, fmt.Sprintf("%s=%q(c%d m%d v%d)", k, kv.value, kv.create, kv.mod, kv.version))
	}
	return fmt.Sprintf("@%d {%s}", s.rev, strings.Join(parts, " "))
}

// kvModel is the model of a history whose checked writes applied at revs (sorted).
func kvModel(revs revisions) porcupine.Model {
	return porcupine.Model{
		Init:              func() any { return state{kvs: map[string]modelKV{}} },
		Step:              revs.step,
		Equal:             equal,
		DescribeOperation: describe,
		DescribeState:     describeState,
	}
}
