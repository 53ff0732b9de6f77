package lincheck

import (
	"cmp"
	"context"
	"errors"
	"fmt"
	"maps"
	"path/filepath"
	"slices"
	"strings"
	"time"

	"github.com/anishathalye/porcupine"

	"github.com/deckhandhq/deckhand/store"
)

// maxViolations bounds what one report lists of one kind.
const maxViolations = 10

func (r *Report) violate(format string, args ...any) {
	r.Violations = append(r.Violations, fmt.Sprintf(format, args...))
}

// check runs the three checks over what the run recorded.
func check(rep *Report, rec *recorder, watchers []*watcher, cfg Config) {
	log := replayWatches(rep, watchers)
	index := map[string]int64{} // unique written value -> the revision that wrote it
	for rev, evs := range log {
		for _, e := range evs {
			if e.typ != store.EventPut || !(strings.HasPrefix(e.key, keyPrefix) || e.key == fenceKey) {
				continue
			}
			if prev, dup := index[e.value]; dup && prev != rev {
				rep.violate("value %q of %s written twice, at revisions %d and %d", e.value, e.key, prev, rev)
			}
			index[e.value] = rev
		}
	}
	checkFence(rep, rec, index)
	checkErrors(rep, rec)
	checkReadRevisions(rep, rec)
	checkLinearizable(rep, rec, index, log, cfg)
}

// sentinels are the errors a caller can act on (store.go); a failure must be one of them,
// or the caller's own deadline.
var sentinels = []error{store.ErrNotFound, store.ErrConflict, store.ErrFenced, store.ErrCompacted,
	store.ErrNoLeader, store.ErrClosed, store.ErrInvalid, context.DeadlineExceeded, context.Canceled}

// checkErrors reports failures that are none of the store's sentinel errors: a caller cannot
// tell whether such a write happened or whether to retry.
func checkErrors(rep *Report, rec *recorder) {
	rec.mu.Lock()
	defer rec.mu.Unlock()
	kinds := map[string]int{}
	for _, o := range rec.ops {
		if o.err == nil || slices.ContainsFunc(sentinels, func(s error) bool { return errors.Is(o.err, s) }) {
			continue
		}
		kinds[o.err.Error()]++
	}
	for _, msg := range slices.Sorted(maps.Keys(kinds))[:min(len(kinds), maxViolations)] {
		rep.violate("%d operations failed with an error that is no store sentinel: %s", kinds[msg], msg)
	}
}

// replayWatches checks every watcher against the others and returns the write log, the
// union of their events by revision.
func replayWatches(rep *Report, watchers []*watcher) map[int64][]wevent {
	log := map[int64][]wevent{}
	from := map[int64]int{}
	type stream struct {
		revs []int64
		by   map[int64][]wevent
		gaps []gap
	}
	streams := make([]stream, len(watchers))
	bad := 0
	for i, w := range watchers {
		w.mu.Lock()
		evs, gaps := slices.Clone(w.events), slices.Clone(w.gaps)
		w.mu.Unlock()
		rep.WatchEvents += len(evs)
		rep.CompactedGaps += len(gaps)
		st := stream{by: map[int64][]wevent{}, gaps: gaps}
		for n, e := range evs {
			if n > 0 && e.rev < evs[n-1].rev {
				if bad++; bad <= maxViolations {
					rep.violate("watcher on replica %d: revision %d delivered after %d (out of order)", i, e.rev, evs[n-1].rev)
				}
			}
			if n > 0 && e.rev == evs[n-1].rev || len(st.by[e.rev]) == 0 {
				if len(st.by[e.rev]) == 0 {
					st.revs = append(st.revs, e.rev)
				}
				st.by[e.rev] = append(st.by[e.rev], e)
				continue
			}
			if bad++; bad <= maxViolations {
				rep.violate("watcher on replica %d: revision %d delivered twice", i, e.rev)
			}
		}
		streams[i] = st
		for _, rev := range st.revs {
			got := st.by[rev]
			if want, ok := log[rev]; !ok {
				log[rev], from[rev] = got, i
			} else if !sameEvents(want, got) {
				if bad++; bad <= maxViolations {
					rep.violate("revision %d: replica %d's watcher saw %s, replica %d's saw %s", rev, from[rev], describeEvents(want), i, describeEvents(got))
				}
			}
		}
	}
	// No watcher skips a revision of the log without announcing it with ErrCompacted.
	all := slices.Sorted(func(yield func(int64) bool) {
		for rev := range log {
			if !yield(rev) {
				return
			}
		}
	})
	for i, st := range streams {
		if len(st.revs) == 0 {
			continue
		}
		last := st.revs[len(st.revs)-1]
		for _, rev := range all {
			if rev > last {
				break
			}
			if _, ok := st.by[rev]; ok || inGaps(st.gaps, rev) {
				continue
			}
			if bad++; bad <= maxViolations {
				rep.violate("watcher on replica %d skipped revision %d (%s) without ErrCompacted", i, rev, describeEvents(log[rev]))
			}
		}
	}
	// Every revision is some write's: one that no watcher delivered, and none announced
	// skipping, was lost by all of them (and the unknown writes could not be resolved). The
	// log starts at the first revision delivered (etcd's revision 1 is its empty store).
	if len(all) > 0 {
		for rev := all[0]; rev < all[len(all)-1]; rev++ {
			if _, ok := log[rev]; ok {
				continue
			}
			announced := false
			for _, st := range streams {
				announced = announced || inGaps(st.gaps, rev)
			}
			if !announced {
				if bad++; bad <= maxViolations {
					rep.violate("no watcher delivered revision %d, and none announced skipping it", rev)
				}
			}
		}
	}
	if bad > maxViolations {
		rep.violate("... and %d more watch violations", bad-maxViolations)
	}
	return log
}

func inGaps(gaps []gap, rev int64) bool {
	for _, g := range gaps {
		if rev > g.from && rev <= g.to {
			return true
		}
	}
	return false
}

func sameEvents(a, b []wevent) bool {
	key := func(e wevent) string { return fmt.Sprintf("%d %s %q", e.typ, e.key, e.value) }
	x, y := make([]string, len(a)), make([]string, len(b))
	for i, e := range a {
		x[i] = key(e)
	}
	for i, e := range b {
		y[i] = key(e)
	}
	slices.Sort(x)
	slices.Sort(y)
	return slices.Equal(x, y)
}

func describeEvents(evs []wevent) string {
	var parts []string
	for _, e := range evs {
		if e.typ == store.EventPut {
			parts = append(parts, fmt.Sprintf("put %s=%q", e.key, e.value))
		} else {
			parts = append(parts, "del "+e.key)
		}
	}
	return "[" + strings.Join(parts, ", ") + "]"
}

// writeMatches reports whether the events at a revision are exactly what txn writes there.
func writeMatches(t store.Txn, evs []wevent) bool {
	want := map[string]string{}
	deletes := map[string]bool{}
	var prefixes []string
	for _, op := range t.Then {
		switch op.Type {
		case store.OpPut:
			want[op.Key] = string(op.Value)
			delete(deletes, op.Key) // a put after a delete of the same key: one put event
		case store.OpDelete:
			deletes[op.Key] = true
		case store.OpDeletePrefix:
			prefixes = append(prefixes, op.Key)
		}
	}
	for _, e := range evs {
		switch {
		case e.typ == store.EventPut && want[e.key] == e.value:
			delete(want, e.key)
		case e.typ == store.EventDelete && deletes[e.key]:
			delete(deletes, e.key) // a delete of a missing key has no event
		case e.typ == store.EventDelete && slices.ContainsFunc(prefixes, func(p string) bool { return strings.HasPrefix(e.key, p) }):
		default:
			return false
		}
	}
	return len(want) == 0
}

// checkFence checks that the fenced writes of two terms never interleave, and that what
// leaders were told about their writes matches the log.
func checkFence(rep *Report, rec *recorder, index map[string]int64) {
	rec.mu.Lock()
	writes := slices.Clone(rec.fence)
	rep.Terms = rec.terms
	rec.mu.Unlock()
	var applied []*fencedWrite
	for _, w := range writes {
		rep.FencedWrites++
		rev, inLog := index[w.value]
		switch {
		case w.applied && rev != w.rev:
			rep.violate("fenced write %q acknowledged at revision %d, in the log at %d", w.value, w.rev, rev)
		case !w.applied && !w.unknown && inLog:
			rep.violate("fenced write %q answered ErrFenced but applied at revision %d", w.value, rev)
		}
		if inLog {
			applied = append(applied, &fencedWrite{term: w.term, value: w.value, rev: rev, applied: true})
		}
	}
	slices.SortFunc(applied, func(a, b *fencedWrite) int { return int(a.rev - b.rev) })
	ended := map[int]int64{} // term -> revision of the first write of a later term
	bad := 0
	for n, w := range applied {
		if n > 0 && applied[n-1].term != w.term {
			if _, ok := ended[applied[n-1].term]; !ok {
				ended[applied[n-1].term] = w.rev
			}
		}
		if at, ok := ended[w.term]; ok {
			if bad++; bad <= maxViolations {
				rep.violate("fencing: term %d wrote %q at revision %d after another term wrote at revision %d", w.term, w.value, w.rev, at)
			}
		}
	}
}

// checkReadRevisions reports a read whose revision is below that of an operation that
// returned before the read was called (a stale read the model cannot see: only revisions it
// does not know lie between). Writes count with the revision they were acknowledged at.
func checkReadRevisions(rep *Report, rec *recorder) {
	rec.mu.Lock()
	ops := slices.Clone(rec.ops)
	rec.mu.Unlock()
	var done, reads []*op
	for _, o := range ops {
		switch {
		case o.failed || o.unknown || o.out.rev == 0:
		case o.in.kind != kindTxn:
			reads = append(reads, o)
			done = append(done, o)
		case o.out.outcome == outApplied:
			done = append(done, o)
		}
	}
	slices.SortFunc(done, func(a, b *op) int { return cmp.Compare(a.ret, b.ret) })
	slices.SortFunc(reads, func(a, b *op) int { return cmp.Compare(a.call, b.call) })
	var floor int64 // the highest revision of the operations that returned before
	var by *op
	n, bad := 0, 0
	for _, r := range reads {
		for ; n < len(done) && done[n].ret < r.call; n++ {
			if done[n].out.rev > floor {
				floor, by = done[n].out.rev, done[n]
			}
		}
		if r.out.rev < floor {
			if bad++; bad <= maxViolations {
				rep.violate("stale read: %s (client %d) after %s (client %d) had returned", describe(r.in, r.out), r.client, describe(by.in, by.out), by.client)
			}
		}
	}
	if bad > maxViolations {
		rep.violate("... and %d more stale reads", bad-maxViolations)
	}
}

// checkLinearizable resolves unknown writes from the log and checks the history with
// Porcupine.
func checkLinearizable(rep *Report, rec *recorder, index map[string]int64, log map[int64][]wevent, cfg Config) {
	rec.mu.Lock()
	ops := slices.Clone(rec.ops)
	rec.mu.Unlock()
	var end int64
	for _, o := range ops {
		end = max(end, o.ret)
	}
	var history []porcupine.Operation
	bad := 0
	for _, o := range ops {
		if o.failed {
			continue
		}
		rep.Ops++
		if o.in.kind != kindTxn {
			rep.Reads++
		} else {
			rep.Writes++
		}
		ret, out := o.ret, o.out
		if o.in.kind == kindTxn {
			rev, inLog := index[o.value]
			switch {
			case o.unknown && inLog:
				rep.Unknown++
				rep.Resolved++
				// Applied at some point after its call: maybe after the client gave up.
				out, ret = output{rev: rev, outcome: outApplied}, end+1
			case o.unknown:
				rep.Unknown++
				continue // not in the log: it never wrote (or its compare failed)
			case o.out.outcome == outApplied && (!inLog || rev != o.out.rev):
				if bad++; bad <= maxViolations {
					rep.violate("write %s acknowledged at revision %d, in the log at %d (0: absent)", describeTxn(o.in.txn), o.out.rev, rev)
				}
			case o.out.outcome == outConflict && inLog:
				if bad++; bad <= maxViolations {
					rep.violate("write %s answered ErrConflict but applied at revision %d", describeTxn(o.in.txn), rev)
				}
			}
			if inLog && !writeMatches(o.in.txn, log[rev]) {
				if bad++; bad <= maxViolations {
					rep.violate("revision %d holds %s, not exactly the write %s", rev, describeEvents(log[rev]), describeTxn(o.in.txn))
				}
			}
		}
		history = append(history, porcupine.Operation{ClientId: o.client, Input: o.in, Call: o.call, Output: out, Return: ret})
	}
	var revs revisions
	for _, o := range history {
		if out := o.Output.(output); out.outcome == outApplied {
			revs = append(revs, out.rev)
		}
	}
	slices.Sort(revs)
	model := kvModel(revs)
	start := time.Now()
	// The verbose check keeps, at every backtrack, the longest linearization through each
	// operation (a copy of the search's whole stack): four fifths of a long check's time, so
	// it runs only to show a history already found illegal.
	res := porcupine.CheckOperationsTimeout(model, history, cfg.CheckTimeout)
	rep.CheckTime = time.Since(start)
	rep.Linearizable = string(res)
	switch res {
	case porcupine.Illegal:
		if cfg.VisualizeDir == "" {
			rep.violate("not linearizable: %s", rep.String())
			break
		}
		_, info := porcupine.CheckOperationsVerbose(model, history, cfg.CheckTimeout)
		path := filepath.Join(cfg.VisualizeDir, fmt.Sprintf("lincheck-%d.html", rep.Seed))
		if err := porcupine.VisualizePath(model, info, path); err != nil {
			path = "(visualization not written: " + err.Error() + ")"
		}
		rep.violate("not linearizable: %s; the longest linearizable prefix ends %s; visualization: %s", rep.String(), lastOps(info), path)
	case porcupine.Unknown:
		// Not decided: no violation found, none ruled out (Schedules says which counts it).
		rep.Undecided = true
	}
}

// lastOps describes the end of the longest partial linearization Porcupine found.
func lastOps(info porcupine.LinearizationInfo) string {
	var best []porcupine.Operation
	for _, part := range info.PartialLinearizationsOperations() {
		for _, lin := range part {
			if len(lin) > len(best) {
				best = lin
			}
		}
	}
	var parts []string
	for _, o := range best[max(0, len(best)-3):] {
		parts = append(parts, describe(o.Input, o.Output))
	}
	return strings.Join(parts, "; ")
}
