package raftstore

import (
	"bufio"
	"fmt"
	"io"
	"strings"
	"sync"

	"github.com/google/btree"
	"github.com/hashicorp/raft"
	"google.golang.org/protobuf/encoding/protodelim"
	"google.golang.org/protobuf/proto"

	storagev1 "github.com/deckhandhq/deckhand/proto/deckhand/storage/v1"
	"github.com/deckhandhq/deckhand/store"
)

// snapshotFormat is the version of the snapshot record stream.
const snapshotFormat = 1

// fsm is the replicated state machine: a revisioned KV map plus a bounded watch history.
// It is deterministic: its state depends only on the log entries it applied, in order.
type fsm struct {
	mu           sync.RWMutex
	kv           *btree.BTreeG[*store.KV]
	revision     int64
	compactRev   int64
	history      []store.Event // events with Revision > compactRev, in order
	historyLimit int
	appliedIndex uint64
	applied      *sync.Cond // signalled when appliedIndex grows

	// Recently applied request IDs and their results, oldest first, so a retried command
	// is answered instead of applied twice. Part of the replicated state (snapshotted).
	requests     map[string]*storagev1.TxnResult
	requestOrder []string
	requestHead  int

	// notify is called with the events of each applied batch, under no lock, in order.
	notify func(events []store.Event)
	// restored is called, with the FSM lock held, when a snapshot replaced the state: the
	// watchers of the old state cannot be continued without a gap.
	restored func(revision int64)
}

func kvLess(a, b *store.KV) bool { return a.Key < b.Key }

func newFSM(historyLimit int, notify func([]store.Event), restored func(revision int64)) *fsm {
	f := &fsm{kv: btree.NewG(32, kvLess), historyLimit: historyLimit, notify: notify, restored: restored, requests: map[string]*storagev1.TxnResult{}}
	f.applied = sync.NewCond(f.mu.RLocker())
	return f
}

var _ raft.BatchingFSM = (*fsm)(nil)

// Apply implements raft.FSM.
func (f *fsm) Apply(l *raft.Log) interface{} {
	return f.ApplyBatch([]*raft.Log{l})[0]
}

// ApplyBatch implements raft.BatchingFSM: one lock and one notification per batch.
func (f *fsm) ApplyBatch(logs []*raft.Log) []interface{} {
	out := make([]interface{}, len(logs))
	var events []store.Event
	f.mu.Lock()
	for i, l := range logs {
		if l.Index > f.appliedIndex {
			f.appliedIndex = l.Index
		}
		if l.Type != raft.LogCommand {
			continue
		}
		var cmd storagev1.Command
		if err := proto.Unmarshal(l.Data, &cmd); err != nil {
			panic(fmt.Sprintf("raftstore: log entry %d is not a Command: %v", l.Index, err))
		}
		if id := cmd.GetRequestId(); id != "" {
			if res, seen := f.requests[id]; seen {
				out[i] = res
				continue
			}
		}
		switch k := cmd.Kind.(type) {
		case *storagev1.Command_Txn:
			res, evs := f.applyTxn(k.Txn)
			events = append(events, evs...)
			out[i] = res
			f.remember(cmd.GetRequestId(), res)
		case *storagev1.Command_Compact:
			out[i] = f.applyCompact(k.Compact.GetRevision())
		default:
			if !cmd.GetIgnorable() {
				panic(fmt.Sprintf("raftstore: log entry %d has an unknown command kind; upgrade this replica", l.Index))
			}
			out[i] = &storagev1.TxnResult{Outcome: storagev1.TxnOutcome_TXN_OUTCOME_INVALID, Revision: f.revision, Detail: "ignored unknown command"}
		}
	}
	f.mu.Unlock()
	f.applied.Broadcast()
	if len(events) > 0 && f.notify != nil {
		f.notify(events)
	}
	return out
}

// maxRequests bounds the remembered request IDs (a retry comes within seconds): the latest
// maxRequests are, in a ring (requestOrder, oldest at requestHead once full), so that
// forgetting the oldest costs nothing (a copy of the 10,000 IDs on every write was most of
// the controller's allocations under a fan-out) and every replica remembers exactly the
// same IDs, whichever build it runs.
const maxRequests = 10_000

func (f *fsm) remember(id string, res *storagev1.TxnResult) {
	if id == "" {
		return
	}
	f.requests[id] = res
	if len(f.requestOrder) < maxRequests {
		f.requestOrder = append(f.requestOrder, id)
		return
	}
	delete(f.requests, f.requestOrder[f.requestHead])
	f.requestOrder[f.requestHead] = id
	f.requestHead = (f.requestHead + 1) % maxRequests
}

// rememberedInOrder returns the remembered request IDs, oldest first.
func (f *fsm) rememberedInOrder() []string {
	return append(append(make([]string, 0, len(f.requestOrder)), f.requestOrder[f.requestHead:]...), f.requestOrder[:f.requestHead]...)
}

func (f *fsm) applyTxn(t *storagev1.Txn) (*storagev1.TxnResult, []store.Event) {
	res := &storagev1.TxnResult{Revision: f.revision}
	fenced := false
	for _, c := range t.GetCompares() {
		cur, _ := f.kv.Get(&store.KV{Key: c.GetKey()})
		ok := false
		switch c.GetTarget() {
		case storagev1.CompareTarget_COMPARE_TARGET_MOD_REVISION:
			var rev int64
			if cur != nil {
				rev = cur.ModRevision
			}
			ok = rev == c.GetModRevision()
		case storagev1.CompareTarget_COMPARE_TARGET_VALUE:
			ok = cur != nil && string(cur.Value) == string(c.GetValue())
		default:
			res.Outcome = storagev1.TxnOutcome_TXN_OUTCOME_INVALID
			res.Detail = fmt.Sprintf("compare on %q: unknown target %v", c.GetKey(), c.GetTarget())
			return res, nil
		}
		if !ok {
			res.FailedKeys = append(res.FailedKeys, c.GetKey())
			fenced = fenced || c.GetFence()
		}
	}
	if len(res.FailedKeys) > 0 {
		res.Outcome = storagev1.TxnOutcome_TXN_OUTCOME_CONFLICT
		if fenced {
			res.Outcome = storagev1.TxnOutcome_TXN_OUTCOME_FENCED
		}
		return res, nil
	}
	if len(t.GetOps()) == 0 {
		res.Outcome = storagev1.TxnOutcome_TXN_OUTCOME_APPLIED
		return res, nil
	}
	rev := f.revision + 1
	var events []store.Event
	for _, op := range t.GetOps() {
		switch o := op.GetOp().(type) {
		case *storagev1.Op_Put:
			kv := &store.KV{Key: o.Put.GetKey(), Value: o.Put.GetValue(), CreateRevision: rev, ModRevision: rev, Version: 1}
			if cur, ok := f.kv.Get(kv); ok {
				kv.CreateRevision = cur.CreateRevision
				kv.Version = cur.Version + 1
			}
			f.kv.ReplaceOrInsert(kv)
			events = append(events, store.Event{Type: store.EventPut, KV: kv, Revision: rev})
		case *storagev1.Op_Delete:
			if cur, ok := f.kv.Delete(&store.KV{Key: o.Delete.GetKey()}); ok {
				events = append(events, deleteEvent(cur, rev))
			}
		case *storagev1.Op_DeletePrefix:
			var doomed []*store.KV
			f.ascendPrefix(o.DeletePrefix.GetPrefix(), func(kv *store.KV) bool {
				doomed = append(doomed, kv)
				return true
			})
			for _, kv := range doomed {
				f.kv.Delete(kv)
				events = append(events, deleteEvent(kv, rev))
			}
		default:
			res.Outcome = storagev1.TxnOutcome_TXN_OUTCOME_INVALID
			res.Detail = "unknown op"
			// Validation happens before proposal, so this is unreachable for well-formed
			// clients; ops already applied in this entry stay applied on every replica alike.
		}
	}
	if len(events) == 0 {
		// Only deletes of missing keys: nothing changed, the revision stays.
		res.Outcome = storagev1.TxnOutcome_TXN_OUTCOME_APPLIED
		return res, nil
	}
	f.revision = rev
	f.history = append(f.history, events...)
	if over := len(f.history) - f.historyLimit; over > 0 {
		f.compactRev = f.history[over-1].Revision
		// Never split one revision's events: drop everything at or below compactRev.
		i := over
		for i < len(f.history) && f.history[i].Revision <= f.compactRev {
			i++
		}
		f.history = append([]store.Event(nil), f.history[i:]...)
	}
	if res.Outcome == storagev1.TxnOutcome_TXN_OUTCOME_UNSPECIFIED {
		res.Outcome = storagev1.TxnOutcome_TXN_OUTCOME_APPLIED
	}
	res.Revision = rev
	return res, events
}

func deleteEvent(kv *store.KV, rev int64) store.Event {
	return store.Event{Type: store.EventDelete, KV: &store.KV{Key: kv.Key, CreateRevision: kv.CreateRevision, ModRevision: rev}, Revision: rev}
}

func (f *fsm) applyCompact(rev int64) *storagev1.TxnResult {
	if rev > f.revision {
		rev = f.revision
	}
	if rev > f.compactRev {
		f.compactRev = rev
		i := 0
		for i < len(f.history) && f.history[i].Revision <= rev {
			i++
		}
		f.history = append([]store.Event(nil), f.history[i:]...)
	}
	return &storagev1.TxnResult{Outcome: storagev1.TxnOutcome_TXN_OUTCOME_APPLIED, Revision: f.revision}
}

func (f *fsm) ascendPrefix(prefix string, fn func(*store.KV) bool) {
	f.kv.AscendGreaterOrEqual(&store.KV{Key: prefix}, func(kv *store.KV) bool {
		if !strings.HasPrefix(kv.Key, prefix) {
			return false
		}
		return fn(kv)
	})
}

// get reads one key from local state. KVs are immutable once stored, so they are shared.
func (f *fsm) get(key string) (*store.KV, int64) {
	f.mu.RLock()
	defer f.mu.RUnlock()
	kv, _ := f.kv.Get(&store.KV{Key: key})
	return kv, f.revision
}

func (f *fsm) list(prefix string) ([]*store.KV, int64) {
	f.mu.RLock()
	defer f.mu.RUnlock()
	var out []*store.KV
	f.ascendPrefix(prefix, func(kv *store.KV) bool {
		out = append(out, kv)
		return true
	})
	return out, f.revision
}

// waitApplied blocks until the FSM applied index reaches idx or done is closed.
func (f *fsm) waitApplied(idx uint64, done <-chan struct{}) bool {
	stop := make(chan struct{})
	defer close(stop)
	go func() {
		select {
		case <-done:
			f.applied.Broadcast()
		case <-stop:
		}
	}()
	f.mu.RLock()
	defer f.mu.RUnlock()
	for f.appliedIndex < idx {
		select {
		case <-done:
			return false
		default:
		}
		f.applied.Wait()
	}
	return true
}

// historySince returns the retained events with Revision > after, or ErrCompacted.
// Call with f.mu held.
func (f *fsm) historySinceLocked(prefix string, after int64) ([]store.Event, error) {
	if after < f.compactRev {
		return nil, fmt.Errorf("watch after revision %d: history starts after %d: %w", after, f.compactRev, store.ErrCompacted)
	}
	var out []store.Event
	for _, ev := range f.history {
		if ev.Revision > after && strings.HasPrefix(ev.KV.Key, prefix) {
			out = append(out, ev)
		}
	}
	return out, nil
}

// Snapshot implements raft.FSM. KVs are immutable, so a clone of the tree is a consistent,
// cheap point-in-time copy (copy-on-write).
func (f *fsm) Snapshot() (raft.FSMSnapshot, error) {
	f.mu.RLock()
	defer f.mu.RUnlock()
	reqs := make([]*storagev1.AppliedRequest, 0, len(f.requestOrder))
	for _, id := range f.rememberedInOrder() {
		reqs = append(reqs, &storagev1.AppliedRequest{RequestId: id, Result: f.requests[id]})
	}
	return &fsmSnapshot{kv: f.kv.Clone(), revision: f.revision, compactRev: f.compactRev, requests: reqs}, nil
}

type fsmSnapshot struct {
	kv         *btree.BTreeG[*store.KV]
	revision   int64
	compactRev int64
	requests   []*storagev1.AppliedRequest
}

func (s *fsmSnapshot) Persist(sink raft.SnapshotSink) error {
	w := bufio.NewWriterSize(sink, 256<<10)
	err := func() error {
		hdr := &storagev1.SnapshotHeader{Format: snapshotFormat, Revision: s.revision, CompactRevision: s.compactRev, KeyCount: uint64(s.kv.Len()), AppliedRequestCount: uint64(len(s.requests))}
		if _, err := protodelim.MarshalTo(w, hdr); err != nil {
			return err
		}
		var werr error
		s.kv.Ascend(func(kv *store.KV) bool {
			rec := &storagev1.SnapshotRecord{Record: &storagev1.SnapshotRecord_Kv{Kv: &storagev1.KeyValue{
				Key: kv.Key, Value: kv.Value, CreateRevision: kv.CreateRevision, ModRevision: kv.ModRevision, Version: kv.Version,
			}}}
			_, werr = protodelim.MarshalTo(w, rec)
			return werr == nil
		})
		if werr != nil {
			return werr
		}
		for _, r := range s.requests {
			if _, err := protodelim.MarshalTo(w, &storagev1.SnapshotRecord{Record: &storagev1.SnapshotRecord_AppliedRequest{AppliedRequest: r}}); err != nil {
				return err
			}
		}
		return w.Flush()
	}()
	if err != nil {
		_ = sink.Cancel()
		return fmt.Errorf("persist snapshot: %w", err)
	}
	return sink.Close()
}

func (s *fsmSnapshot) Release() {}

// Restore implements raft.FSM: it builds fresh state and swaps it in.
func (f *fsm) Restore(rc io.ReadCloser) error {
	defer rc.Close()
	r := bufio.NewReaderSize(rc, 256<<10)
	opts := protodelim.UnmarshalOptions{MaxSize: 64 << 20}
	var hdr storagev1.SnapshotHeader
	if err := opts.UnmarshalFrom(r, &hdr); err != nil {
		return fmt.Errorf("restore snapshot: read header: %w", err)
	}
	if hdr.GetFormat() != snapshotFormat {
		return fmt.Errorf("restore snapshot: format %d is not supported by this version (want %d)", hdr.GetFormat(), snapshotFormat)
	}
	kv := btree.NewG(32, kvLess)
	for i := uint64(0); i < hdr.GetKeyCount(); i++ {
		var rec storagev1.SnapshotRecord
		if err := opts.UnmarshalFrom(r, &rec); err != nil {
			return fmt.Errorf("restore snapshot: record %d of %d: %w", i, hdr.GetKeyCount(), err)
		}
		p := rec.GetKv()
		if p == nil {
			return fmt.Errorf("restore snapshot: record %d: unknown record kind", i)
		}
		kv.ReplaceOrInsert(&store.KV{Key: p.GetKey(), Value: p.GetValue(), CreateRevision: p.GetCreateRevision(), ModRevision: p.GetModRevision(), Version: p.GetVersion()})
	}
	requests := map[string]*storagev1.TxnResult{}
	var order []string
	for i := uint64(0); i < hdr.GetAppliedRequestCount(); i++ {
		var rec storagev1.SnapshotRecord
		if err := opts.UnmarshalFrom(r, &rec); err != nil {
			return fmt.Errorf("restore snapshot: applied request %d of %d: %w", i, hdr.GetAppliedRequestCount(), err)
		}
		ar := rec.GetAppliedRequest()
		if ar == nil {
			return fmt.Errorf("restore snapshot: applied request %d: unexpected record", i)
		}
		requests[ar.GetRequestId()] = ar.GetResult()
		order = append(order, ar.GetRequestId())
	}
	f.mu.Lock()
	f.kv = kv
	// A snapshot holds at most maxRequests; should one hold more, the newest are kept.
	for _, id := range order[:max(0, len(order)-maxRequests)] {
		delete(requests, id)
	}
	f.requests = requests
	f.requestOrder = order[max(0, len(order)-maxRequests):]
	f.requestHead = 0
	f.revision = hdr.GetRevision()
	// Watch history before the snapshot is not retained: watchers older than it re-list.
	f.compactRev = hdr.GetRevision()
	f.history = nil
	if f.restored != nil {
		f.restored(f.revision)
	}
	f.mu.Unlock()
	return nil
}
