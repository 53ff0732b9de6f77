package workflows

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"log/slog"
	"net/netip"
	"strings"
	"sync"
	"sync/atomic"
	"time"

	"google.golang.org/protobuf/proto"
	"google.golang.org/protobuf/types/known/timestamppb"

	"github.com/deckhandhq/deckhand/controller/tasks"
	"github.com/deckhandhq/deckhand/internal/backoff"
	"github.com/deckhandhq/deckhand/internal/features"
	"github.com/deckhandhq/deckhand/internal/tasksecrets"
	apiv1 "github.com/deckhandhq/deckhand/proto/deckhand/api/v1"
	storagev1 "github.com/deckhandhq/deckhand/proto/deckhand/storage/v1"
	taskv1 "github.com/deckhandhq/deckhand/proto/deckhand/task/v1"
	"github.com/deckhandhq/deckhand/store"
)

// Dry-run stand-ins for outputs of steps that did not really run.
var placeholders = map[string]string{
	"token":           "abcdef.0123456789abcdef",
	"ca_cert_hash":    "sha256:" + strings.Repeat("0", 64),
	"certificate_key": strings.Repeat("0", 64),
	"delete_token_id": "abcdef",
	"api_server":      "127.0.0.1:6443",
	"pod_cidr":        "10.244.0.0/24",
}

// passSettings are the bounds of one pass's write, from the store's transaction limits: at
// most a quarter of its operations in new tasks (a step and its task record each: 32 on
// etcd's default 128, 512 on raftstore), so that many steps ready at once (the routes
// steps of every node, a wave of 500 lanes) start over several passes; all of its
// operations in the whole write; three quarters of its bytes in the header, the cluster
// record, steps and tasks as the pass counts them, the rest a margin for what it counts
// loosely (a routes task carries a route to every other node and its step the changes it
// made: 32 of them for a 1,000-node cluster were more than etcd takes in one request).
func passSettings(backoff time.Duration, l store.TxnLimits) engineSettings {
	return engineSettings{backoff: backoff, maxCreate: max(1, l.Ops/4), maxWrite: l.Ops, maxBytes: l.Bytes / 4 * 3}
}

// Engine runs workflows on the leader.
type Engine struct {
	svc *Service
	log *slog.Logger

	// Backoff is the first retry delay; it doubles per attempt up to 30 s.
	Backoff time.Duration
	// Tick is how often every running workflow is looked at even without events (retry
	// backoff, step timeouts, control planes becoming Ready).
	Tick time.Duration
	// Retention bounds the finished task records kept; RetentionEvery is how often the
	// leader deletes those past it.
	Retention      tasks.Retention
	RetentionEvery time.Duration

	fence    store.Compare
	cache    map[string]*loaded
	mu       sync.Mutex
	tasks    map[string]*apiv1.TaskRecord // terminal records of workflow tasks, from the watch
	dirty    chan dirtyMark
	nodeRecs map[string]*apiv1.Node       // read once per pass
	live     map[string]*apiv1.TaskRecord // records of running steps' tasks, as first read (the engine's goroutine only)
	// liveStale asks the next round to forget live: a tick, a restart of the tasks watch
	// (it may have missed ends), a record it could not read, a task record deleted.
	liveStale atomic.Bool
	timers    map[string]wakeTimer // per workflow: when to look again without an event

	// Under mu: whether Run is running (this replica leads), the results agents sent that
	// wait for a pass to record them (by workflow, then task; see TakeResult), a count that
	// orders them, and the tasks whose end a pass wrote and the watch is yet to report.
	leading bool
	held    map[string]map[string]*heldResult
	heldSeq uint64
	echo    map[string][]byte // the bytes the pass wrote, to tell its write from another's

	// Results of steps' tasks offered to TakeResult: recorded by a pass, or left to the
	// session.
	byPass, bySession atomic.Uint64
}

// ResultsRecorded counts the results of workflow steps' tasks offered to this replica's
// engine: those a pass recorded with the end of their step, and those it left to their
// session (not leading, no pass in time, the write failed).
func (e *Engine) ResultsRecorded() (byPass, bySession uint64) {
	return e.byPass.Load(), e.bySession.Load()
}

// heldWait bounds how long a result waits for a pass to record it before its session
// writes it alone.
const heldWait = time.Second

// heldResult is a result an agent sent, waiting for the pass that records it.
type heldResult struct {
	node string
	res  *taskv1.TaskResult
	seq  uint64
	// taken: a pass read it and may be writing it; only that pass answers it then (were
	// the session to write it meanwhile, the pass's whole write would fail its compare).
	taken bool
	// unacked: a pass read its record still pending (the result overtook its task's
	// acknowledgement): it stays held, and the acknowledgement's write asks for a pass.
	unacked bool
	since   time.Time // when it was handed over
	done    chan bool // capacity 1: whether a pass recorded it (false: the session writes it)
}

// NewEngine returns an engine for svc.
func NewEngine(svc *Service, log *slog.Logger) *Engine {
	return &Engine{svc: svc, log: log, Backoff: 2 * time.Second, Tick: time.Second,
		Retention: tasks.DefaultRetention(), RetentionEvery: time.Minute}
}

// retain deletes finished task records past the retention every RetentionEvery while this
// replica leads; a task of a workflow that has not finished is kept.
func (e *Engine) retain(ctx context.Context) {
	for backoff.Sleep(ctx, e.RetentionEvery) {
		kvs, _, err := e.svc.st.List(ctx, Prefix)
		if err != nil {
			continue
		}
		active := map[string]bool{}
		for _, kv := range kvs {
			var wf storagev1.WorkflowRecord
			if proto.Unmarshal(kv.Value, &wf) != nil || !terminal(wf.GetState()) {
				active[strings.TrimPrefix(kv.Key, Prefix)] = true
			}
		}
		n, err := e.svc.tasks.Sweep(ctx, e.fence, e.Retention, func(r *apiv1.TaskRecord) bool { return active[r.GetTask().GetWorkflowId()] })
		if n > 0 {
			e.log.Info("deleted finished task records past the retention", "deleted", n, "retention_period", e.Retention.Period, "retention_count", e.Retention.Count)
		}
		if err != nil && ctx.Err() == nil && !errors.Is(err, store.ErrFenced) {
			e.log.Warn("task retention", "err", err)
		}
	}
}

var errFenced = errors.New("leadership lost")

// Run drives every running workflow until ctx ends or leadership is lost. fence is the
// leadership's compare, added to every write.
func (e *Engine) Run(ctx context.Context, fence store.Compare) {
	e.fence = fence
	e.cache = map[string]*loaded{}
	e.tasks = map[string]*apiv1.TaskRecord{}
	e.live = map[string]*apiv1.TaskRecord{}
	e.liveStale.Store(false)
	e.timers = map[string]wakeTimer{}
	e.mu.Lock()
	e.dirty = make(chan dirtyMark, 8192)
	e.leading, e.held, e.echo = true, map[string]map[string]*heldResult{}, map[string][]byte{}
	e.mu.Unlock()
	defer func() {
		for _, t := range e.timers {
			t.timer.Stop()
		}
		// The results no pass recorded go back to their sessions, which write them.
		e.mu.Lock()
		e.leading = false
		for _, byTask := range e.held {
			for _, h := range byTask {
				h.done <- false
			}
		}
		e.held, e.echo = nil, nil
		e.mu.Unlock()
	}()
	wctx, cancel := context.WithCancel(ctx)
	// The goroutines of this term end before Run returns: the next term's Run assigns the
	// fields they use (dirty, tasks, fence).
	var wg sync.WaitGroup
	defer wg.Wait()
	defer cancel()
	wg.Go(func() { e.follow(wctx, tasks.Prefix) })
	wg.Go(func() { e.follow(wctx, Prefix) })
	wg.Go(func() { e.retain(wctx) })
	tick := time.NewTicker(e.Tick)
	defer tick.Stop()
	all := true
	for ctx.Err() == nil {
		due := map[string]int64{}
		if all {
			ids, err := e.running(ctx)
			if err != nil {
				if ctx.Err() == nil {
					e.log.Warn("list workflows", "err", err)
				}
			}
			for _, id := range ids {
				due[id] = anyChange
			}
			all = false
		} else {
			select {
			case <-ctx.Done():
				return
			case m := <-e.dirty:
				addMark(due, m)
			case <-tick.C:
				all = true
				e.liveStale.Store(true)
				continue
			}
		}
		// Take everything queued so one pass handles a burst of events.
		for more := true; more; {
			select {
			case m := <-e.dirty:
				addMark(due, m)
			default:
				more = false
			}
		}
		e.newRound()
		for id, rev := range due {
			if id == "" {
				all = true
				continue
			}
			if l := e.cache[id]; l != nil && !passDue(rev, l.hdrRev) {
				continue
			}
			if err := e.reconcile(ctx, id); err != nil {
				if errors.Is(err, errFenced) || errors.Is(err, store.ErrFenced) {
					e.log.Info("workflow engine stopping: leadership lost")
					return
				}
				if ctx.Err() == nil {
					e.log.Warn("workflow step", "workflow", id, "err", err)
				}
			}
		}
	}
}

// newRound starts a round of passes: node records are read again when first asked, and
// running tasks' records too when the watch may have missed a change (liveStale).
func (e *Engine) newRound() {
	if e.liveStale.Swap(false) {
		clear(e.live)
	}
	e.nodeRecs = nil
}

// A dirtyMark asks for a pass over workflow id ("" for every running one). rev is the
// revision of a change to the workflow's header seen by the watch; anyChange asks for a
// pass whatever the engine's copy holds (a task ended, a timer fired, a pass left work).
type dirtyMark struct {
	id  string
	rev int64
}

const anyChange int64 = 0

// addMark merges m into due, the marks taken for one round of passes.
func addMark(due map[string]int64, m dirtyMark) {
	if cur, ok := due[m.id]; ok && (cur == anyChange || (m.rev != anyChange && m.rev <= cur)) {
		return
	}
	due[m.id] = m.rev
}

// passDue says whether marks up to rev call for a pass over a workflow whose copy the
// engine holds at header revision held. The engine follows headers only, and a header
// change at or before held is in the copy already: most often the engine's own write
// coming back through the watch, which would otherwise cost a pass that changes nothing
// (four passes in ten of a big apply).
func passDue(rev, held int64) bool { return rev == anyChange || rev > held }

// follow turns store changes into dirty workflow IDs; "" asks for a full pass.
func (e *Engine) follow(ctx context.Context, prefix string) {
	store.Follow(ctx, e.svc.st, prefix, store.Follower{
		// Each (re)start of the watch may have missed changes: a full pass.
		NoKeys: true,
		Listed: func([]*store.KV) {
			if prefix == tasks.Prefix {
				e.liveStale.Store(true)
			}
			e.mark("")
		},
		Event: func(ev store.Event) {
			if ev.Type != store.EventPut {
				if prefix == tasks.Prefix {
					// A running task's record gone: the tick's next full pass creates it again.
					e.liveStale.Store(true)
				}
				return
			}
			if prefix == tasks.Prefix {
				// Only an ended task of a workflow moves it: the rest is not decoded.
				h, err := tasks.Peek(ev.KV)
				if err == nil && h.WorkflowID != "" && !tasks.Terminal(h.State) && e.holds(h.WorkflowID, h.ID) {
					// A held result that overtook its task's acknowledgement: the pass
					// that read the record pending records it now.
					e.mark(h.WorkflowID)
					return
				}
				if err == nil && (h.WorkflowID == "" || !tasks.Terminal(h.State) || e.ownEnd(h.ID, ev.KV.Value)) {
					return
				}
				var rec *apiv1.TaskRecord
				if err == nil {
					rec, err = tasks.DecodeWithoutSpec(ev.KV)
				}
				if err != nil {
					// Unreadable: the engine's own read of it reports the error on its passes.
					e.liveStale.Store(true)
					return
				}
				e.putTask(rec)
				e.mark(rec.GetTask().GetWorkflowId())
				return
			}
			e.markRev(strings.TrimPrefix(ev.KV.Key, Prefix), ev.KV.ModRevision)
		},
	})
}

func (e *Engine) mark(id string) { e.markRev(id, anyChange) }

func (e *Engine) markRev(id string, rev int64) {
	select {
	case e.dirty <- dirtyMark{id, rev}:
	default:
	}
}

// The task cache is written by follow and read by reconcile.
func (e *Engine) putTask(rec *apiv1.TaskRecord) {
	e.mu.Lock()
	e.tasks[rec.GetTask().GetId()] = rec
	e.mu.Unlock()
}

// ownEnd says whether task id's end, as the watch reports it (value), is a pass's own write
// of a held result (see TakeResult): that pass puts the record in the cache once its write
// returns, before any other pass, so the watch neither decodes it nor asks for a pass.
// Another writer's end of the task (a cancel, the session's write) is not the pass's.
func (e *Engine) ownEnd(id string, value []byte) bool {
	e.mu.Lock()
	defer e.mu.Unlock()
	want, ok := e.echo[id]
	if !ok {
		return false
	}
	delete(e.echo, id)
	return bytes.Equal(want, value)
}

// holds says whether a result of task id of workflow wf is held (see TakeResult).
func (e *Engine) holds(wf, id string) bool {
	e.mu.Lock()
	defer e.mu.Unlock()
	return e.held[wf][id] != nil
}

// TakeResult records node's result res of a workflow step's task in the pass that ends
// the step (see tasks.ResultTaker): it hands res to the engine, asks for a pass over the
// task's workflow and waits, at most heldWait, for the pass's write. false when this
// replica does not lead, when no pass recorded it in time (the workflow is not running,
// the step was not running in the engine's copy, the write failed: the caller writes it
// then, and a write that lost to the other fails its compare and changes nothing).
func (e *Engine) TakeResult(ctx context.Context, node string, res *taskv1.TaskResult) (recorded bool) {
	id := res.GetTaskId()
	wf, _, ok := strings.Cut(id, ".")
	if !ok || !strings.HasPrefix(wf, tasks.ReservedPrefix) {
		return false
	}
	defer func() {
		if recorded {
			e.byPass.Add(1)
		} else {
			e.bySession.Add(1)
		}
	}()
	h := &heldResult{node: node, res: res, since: time.Now(), done: make(chan bool, 1)}
	e.mu.Lock()
	if !e.leading || e.held[wf][id] != nil {
		e.mu.Unlock()
		return false
	}
	e.heldSeq++
	h.seq = e.heldSeq
	if e.held[wf] == nil {
		e.held[wf] = map[string]*heldResult{}
	}
	e.held[wf][id] = h
	dirty := e.dirty
	e.mu.Unlock()
	select {
	case dirty <- dirtyMark{wf, anyChange}:
	default: // full: the tick's pass, or heldWait
	}
	t := time.NewTimer(heldWait)
	defer t.Stop()
	select {
	case recorded := <-h.done:
		return recorded
	case <-t.C:
	case <-ctx.Done():
	}
	e.mu.Lock()
	if e.held[wf][id] == h && !h.taken {
		e.dropHeld(wf, id)
		e.mu.Unlock()
		return false
	}
	e.mu.Unlock()
	return <-h.done // a pass took it: it answers once its write returns
}

// dropHeld forgets held result id of workflow wf (under mu).
func (e *Engine) dropHeld(wf, id string) {
	delete(e.held[wf], id)
	if len(e.held[wf]) == 0 {
		delete(e.held, wf)
	}
}

// heldNow is the count of results held so far: a pass settles those held before it began.
func (e *Engine) heldNow() uint64 {
	e.mu.Lock()
	defer e.mu.Unlock()
	return e.heldSeq
}

// heldFor is the write that records the held result of task id, read against its record
// as this replica stores it (the pass's write fails if it changed since).
func (e *Engine) heldFor(ctx context.Context, id string) (heldWrite, bool) {
	wf, _, _ := strings.Cut(id, ".")
	e.mu.Lock()
	h := e.held[wf][id]
	if h != nil {
		h.taken = true // answered when this pass ends (settleHeld)
	}
	e.mu.Unlock()
	if h == nil {
		return heldWrite{}, false
	}
	kv, err := e.svc.tasks.ReadKV(ctx, id, false)
	if err != nil {
		return heldWrite{}, false
	}
	// A record still pending waits for its acknowledgement's write (a short task's result
	// may overtake it), which would fail this pass's whole write: the result stays held,
	// and the write's watch event asks for the pass that records it (or the session
	// writes it after heldWait). A copy read from a store member that lags (etcd) reads
	// pending too: when the ack's event came before the result was held, nothing wakes a
	// pass for it, and its session writes it after heldWait.
	if p, err := tasks.Peek(kv); err != nil || p.State == taskv1.TaskState_TASK_STATE_PENDING {
		if err == nil && p.Node == h.node { // another node's result: Finish ignores it
			e.mu.Lock()
			h.unacked = true
			e.mu.Unlock()
		}
		return heldWrite{}, false
	}
	cmp, put, rec, ok, err := tasks.Finishing(kv, h.node, h.res, e.svc.now())
	if err != nil || !ok {
		return heldWrite{}, false // the session writes it, and Finish says what it says
	}
	return heldWrite{rec: rec, cmp: cmp, put: put}, true
}

// settleHeld ends a pass over workflow wf for the results held for it: those it recorded
// learn whether its write committed; the others held before it began (seq) go back to
// their sessions unless another pass follows (keep) or they wait for their task's
// acknowledgement (unacked: its write asks for a pass).
func (e *Engine) settleHeld(wf string, recorded []string, committed, keep bool, seq uint64) {
	e.mu.Lock()
	defer e.mu.Unlock()
	for _, id := range recorded {
		if !committed {
			delete(e.echo, id)
		}
		if h := e.held[wf][id]; h != nil {
			e.dropHeld(wf, id)
			h.done <- committed
		}
	}
	for id, h := range e.held[wf] {
		switch {
		case !keep && h.seq <= seq && !h.unacked:
			e.dropHeld(wf, id)
			h.done <- false
		case h.taken && time.Since(h.since) >= heldWait:
			// Read but not written by this pass, and waited long enough: its session
			// writes it now.
			e.dropHeld(wf, id)
			h.done <- false
		default:
			h.taken = false // the next pass's again, or the session's after heldWait
		}
	}
}

func (e *Engine) cachedTask(id string) *apiv1.TaskRecord {
	e.mu.Lock()
	defer e.mu.Unlock()
	return e.tasks[id]
}

func (e *Engine) forgetTasks(wf string) {
	e.mu.Lock()
	defer e.mu.Unlock()
	for id := range e.tasks {
		if strings.HasPrefix(id, wf+".") {
			delete(e.tasks, id)
		}
	}
	for id := range e.echo { // ends a restarted watch did not bring back
		if strings.HasPrefix(id, wf+".") {
			delete(e.echo, id)
		}
	}
}

// running lists the IDs of workflows that are not finished.
func (e *Engine) running(ctx context.Context) ([]string, error) {
	kvs, _, err := e.svc.st.List(ctx, Prefix)
	if err != nil {
		return nil, err
	}
	var ids []string
	for _, kv := range kvs {
		var wf storagev1.WorkflowRecord
		if proto.Unmarshal(kv.Value, &wf) == nil && !terminal(wf.GetState()) {
			ids = append(ids, wf.GetId())
		} else {
			delete(e.cache, wf.GetId())
		}
	}
	return ids, nil
}

// node is node name's record as a pass reads it (nil when there is none).
func (e *Engine) node(ctx context.Context, name string) *apiv1.Node {
	if e.nodeRecs == nil {
		e.nodeRecs = map[string]*apiv1.Node{}
		if ns, err := e.svc.nodes.List(ctx, store.Stale()); err == nil {
			for _, n := range ns {
				e.nodeRecs[n.GetName()] = n
			}
		}
	}
	return e.nodeRecs[name]
}

func (e *Engine) task(ctx context.Context, id string) (*apiv1.TaskRecord, error) {
	if rec := e.cachedTask(id); rec != nil {
		delete(e.live, id)
		return rec, nil
	}
	// A task read running stays so for the engine until the watch reports its end (follow
	// caches the ended record and marks the workflow): a running step's record is read
	// once a round of ticks, not on every pass (500 reads a pass at concurrency 500). The
	// tick's full pass, a restarted watch, a record the watch could not read and a task
	// record deleted make the next round read them again (liveStale): the read below may
	// be answered by a store member behind the watch (etcd), and the next tick corrects it.
	if rec, ok := e.live[id]; ok {
		return rec, nil
	}
	// A local read: the engine runs on the leader, whose store has applied every write it
	// made, and each of its writes is fenced and guarded. A linearizable read would wait for
	// the raft loop (busy with other writes' fsyncs) once per running step and pass.
	kv, err := e.svc.tasks.ReadKV(ctx, id, false)
	if err != nil {
		return nil, err
	}
	rec, err := tasks.DecodeWithoutSpec(kv) // the step holds the spec
	if err != nil {
		return nil, err
	}
	if tasks.Terminal(rec.GetState()) {
		e.putTask(rec)
	} else {
		if e.live == nil {
			e.live = map[string]*apiv1.TaskRecord{}
		}
		e.live[id] = rec
	}
	return rec, nil
}

// satisfied says whether step s may start given its dependencies; never means it cannot
// start in this run of the workflow.
func satisfied(l *loaded, i int) (ok, never bool) {
	ok = true
	s := l.wf.Steps[i]
	deps := l.deps(i)
	for _, ds := range deps[l.depsFrom(i, func(ds *storagev1.StepRecord) bool { return depLets(s, ds.GetState(), ds.GetContinueOnFailure()) }):] {
		if ds == nil {
			return false, true
		}
		st := ds.GetState()
		if s.GetAlways() {
			if !stepDone(st) {
				ok = false
			}
			continue
		}
		switch {
		case depLets(s, st, ds.GetContinueOnFailure()):
		case st == storagev1.StepRecordState_STEP_RECORD_STATE_FAILED, st == storagev1.StepRecordState_STEP_RECORD_STATE_CANCELLED:
			return false, true
		default:
			ok = false
		}
	}
	return ok, false
}

// depLets says whether a dependency in state st lets step s (not a finally step) start:
// an always step's once it ended, another's once it succeeded, was skipped or failed with
// continueOnFailure.
func depLets(s *storagev1.StepRecord, st storagev1.StepRecordState, continueOnFailure bool) bool {
	if s.GetAlways() {
		return stepDone(st)
	}
	return st == storagev1.StepRecordState_STEP_RECORD_STATE_SUCCEEDED || st == storagev1.StepRecordState_STEP_RECORD_STATE_SKIPPED ||
		st == storagev1.StepRecordState_STEP_RECORD_STATE_FAILED && continueOnFailure
}

// reconcile moves one workflow forward: it loads the workflow (or takes its working copy),
// lets compute decide, and writes the decisions in one fenced transaction.
func (e *Engine) reconcile(ctx context.Context, id string) (err error) {
	// A pass changes the cached steps in place; one that ends in an error wrote none of it,
	// so the cache must not keep it (a timed-out step whose cancel failed would never be
	// cancelled again, a settled step's successors would start while the store says running).
	defer func() {
		if err != nil {
			delete(e.cache, id)
		}
	}()
	// The results held for this workflow: the pass records some in its write; the rest go
	// back to their sessions when no other pass follows (the steps were not running),
	// unless they wait for their task's acknowledgement (see heldFor).
	var recorded []string
	committed, keep := false, false
	defer func(seq uint64) { e.settleHeld(id, recorded, committed, keep && err == nil, seq) }(e.heldNow())
	l := e.cache[id]
	if l == nil {
		var err error
		if l, err = load(ctx, e.svc.st, id); err != nil {
			if errors.Is(err, ErrNotFound) {
				return nil
			}
			return err
		}
		e.cache[id] = l
	} else if kv, _, err := e.svc.st.Get(ctx, headerKey(id), store.Stale()); err == nil && kv.ModRevision != l.hdrRev {
		// Changed by someone else (cancel, retry): start from the store.
		delete(e.cache, id)
		keep = true // the pass below settles them
		return e.reconcile(ctx, id)
	}
	wf := l.wf
	if terminal(wf.GetState()) {
		e.forget(id)
		return nil
	}
	now := e.svc.now()
	d, err := compute(l, &storeView{e: e, ctx: ctx}, now, passSettings(e.Backoff, store.LimitsOf(e.svc.st)))
	if err != nil {
		return err
	}
	recorded, keep = d.recorded, d.again
	for _, tid := range d.cancel {
		if _, err := e.svc.tasks.Cancel(ctx, tid); err != nil && !errors.Is(err, tasks.ErrNotFound) {
			return err
		}
	}
	for _, t := range d.missing {
		if err := e.createTask(ctx, t); err != nil {
			return err
		}
	}
	e.wakeAt(id, d.wake, now)
	if !d.dirty() {
		if d.again {
			e.mark(id)
		}
		return nil
	}
	e.log.Debug("workflow pass", "workflow", id, "changed_steps", len(d.steps), "state", wf.GetState())
	ops, err := putOps(wf, d.steps)
	if err != nil {
		return err
	}
	if terminal(wf.GetState()) {
		for _, n := range wf.GetNodes() {
			ops = append(ops, store.Delete(lockKey(n)))
		}
	}
	// The tasks are created with their steps, in one write: no step runs without its task,
	// and each task only if its ID is free; the cluster record only if unchanged since read.
	ifs := []store.Compare{e.fence, store.ModRevisionIs(headerKey(id), l.hdrRev)}
	ifs = append(ifs, d.createIfs...)
	ops = append(ops, d.createOps...)
	// The results this pass records, each only into the record it read.
	ifs = append(ifs, d.recordIfs...)
	ops = append(ops, d.recordOps...)
	if len(d.recorded) > 0 {
		e.mu.Lock()
		for i, tid := range d.recorded {
			e.echo[tid] = d.recordOps[i].Value // the watch brings the write back: no pass for it
		}
		e.mu.Unlock()
	}
	if d.clusterChanged {
		ifs = append(ifs, store.ModRevisionIs(ClusterKey, d.clusterRev))
		if d.cluster == nil {
			ops = append(ops, store.Delete(ClusterKey))
		} else {
			b, err := proto.Marshal(d.cluster)
			if err != nil {
				return err
			}
			ops = append(ops, store.Put(ClusterKey, b))
		}
	}
	rev, err := e.svc.st.Txn(ctx, store.Txn{If: ifs, Then: ops})
	if errors.Is(err, store.ErrConflict) {
		delete(e.cache, id)
		e.mark(id)
		keep = true // the pass marked next settles them
		return nil
	}
	if err != nil {
		delete(e.cache, id)
		return err
	}
	l.hdrRev = rev
	committed = true
	if len(d.recorded) > 0 {
		e.mu.Lock()
		for i, tid := range d.recorded {
			e.tasks[tid] = d.recordRecs[i]
		}
		e.mu.Unlock()
		for _, tid := range d.recorded {
			delete(e.live, tid)
		}
	}
	if d.again {
		e.mark(id)
	}
	if terminal(wf.GetState()) {
		e.log.Info("workflow ended", "workflow", id, "kind", Kind(wf.GetSpec()), "state", stateName(wf.GetState()), "failed_step", wf.GetFailedStep())
		e.forget(id)
	}
	return nil
}

// forget drops what the engine keeps of an ended workflow.
func (e *Engine) forget(id string) {
	delete(e.cache, id)
	e.forgetTasks(id)
	for tid := range e.live {
		if strings.HasPrefix(tid, id+".") {
			delete(e.live, tid)
		}
	}
	if t, ok := e.timers[id]; ok {
		t.timer.Stop()
		delete(e.timers, id)
	}
}

// storeView is compute's view of the store for one pass: finished task records from the
// engine's cache, others, the cluster and node states read when first asked.
type storeView struct {
	e   *Engine
	ctx context.Context
}

func (v *storeView) Task(id string) (*apiv1.TaskRecord, error) { return v.e.task(v.ctx, id) }

func (v *storeView) Cluster() (*apiv1.Cluster, int64, int64, error) {
	kv, rev, err := v.e.svc.st.Get(v.ctx, ClusterKey)
	if errors.Is(err, store.ErrNotFound) {
		return nil, 0, rev, nil
	}
	if err != nil {
		return nil, 0, 0, err
	}
	var cl apiv1.Cluster
	if err := proto.Unmarshal(kv.Value, &cl); err != nil {
		return nil, 0, 0, fmt.Errorf("cluster record: %w", err)
	}
	return &cl, kv.ModRevision, rev, nil
}

func (v *storeView) Ready(node string) bool {
	return v.e.node(v.ctx, node).GetState() == apiv1.NodeState_NODE_STATE_READY
}

func (v *storeView) Reads(node, feature string) bool {
	return features.Has(v.e.node(v.ctx, node).GetAgentFeatures(), feature)
}

func (v *storeView) Held(id string) (heldWrite, bool) { return v.e.heldFor(v.ctx, id) }

// wakeAt makes sure workflow id is looked at again at when (a retry's backoff or a step's
// timeout ends) even if no event comes: one timer per workflow, moved earlier when needed.
func (e *Engine) wakeAt(id string, when, now time.Time) {
	if when.IsZero() {
		return
	}
	if e.timers == nil {
		e.timers = map[string]wakeTimer{}
	}
	if t, ok := e.timers[id]; ok {
		if !t.at.After(when) && t.at.After(now) {
			return
		}
		t.timer.Stop()
	}
	dirty := e.dirty // this term's: a timer firing after Run ended never touches the next term's
	e.timers[id] = wakeTimer{at: when, timer: time.AfterFunc(max(0, when.Sub(now)), func() {
		select {
		case dirty <- dirtyMark{id, anyChange}:
		default:
		}
	})}
}

type wakeTimer struct {
	at    time.Time
	timer *time.Timer
}

// mayRun returns whether a pending step can still run in this run of the workflow: its
// dependencies have ended the way it needs, or run, or can still run themselves. Once a step
// failed, only clean-up (always) steps run.
func mayRun(l *loaded, failedMode bool) func(*storagev1.StepRecord) bool {
	memo := map[string]bool{}
	var alive func(s *storagev1.StepRecord) bool
	alive = func(s *storagev1.StepRecord) bool {
		if v, ok := memo[s.GetName()]; ok {
			return v
		}
		memo[s.GetName()] = false // a cycle never runs
		if s.GetState() != storagev1.StepRecordState_STEP_RECORD_STATE_PENDING || (failedMode && !s.GetAlways() && !s.GetFinally()) {
			return false
		}
		for _, d := range s.GetDependsOn() {
			ds := l.step(d)
			if ds == nil {
				return false
			}
			if s.GetFinally() {
				continue // whatever its dependencies do, it runs once they end or cannot run
			}
			st := ds.GetState()
			ok := st == storagev1.StepRecordState_STEP_RECORD_STATE_RUNNING || alive(ds)
			if s.GetAlways() {
				ok = ok || stepDone(st)
			} else {
				ok = ok || st == storagev1.StepRecordState_STEP_RECORD_STATE_SUCCEEDED || st == storagev1.StepRecordState_STEP_RECORD_STATE_SKIPPED ||
					(st == storagev1.StepRecordState_STEP_RECORD_STATE_FAILED && ds.GetContinueOnFailure())
			}
			if !ok {
				return false
			}
		}
		memo[s.GetName()] = true
		return true
	}
	return alive
}

func allDone(wf *storagev1.WorkflowRecord) bool {
	for _, s := range wf.GetSteps() {
		if !stepDone(s.GetState()) {
			return false
		}
	}
	return true
}

func publicOutputs(in map[string]string) map[string]string {
	out := map[string]string{}
	for k, v := range in {
		if tasksecrets.Output(k) { // secret outputs never leave the task record (only writers read them there)
			if k == "token" {
				out["token_id"], _, _ = strings.Cut(v, ".")
			}
			continue
		}
		out[k] = v
	}
	return out
}

// failStep fails step s at now with reason, message and hint.
func failStep(s *storagev1.StepRecord, now time.Time, reason, msg, hint string) {
	s.State = storagev1.StepRecordState_STEP_RECORD_STATE_FAILED
	s.Error = &taskv1.TaskError{Reason: reason, Message: msg, Hint: hint}
	s.Finished = timestamppb.New(now)
}

// newTask is the task of step s (its spec still the step's template).
func newTask(wf *storagev1.WorkflowRecord, s *storagev1.StepRecord) *taskv1.Task {
	return &taskv1.Task{Id: s.GetTaskId(), Node: s.GetNode(), Spec: s.GetTask(), DryRun: wf.GetSpec().GetDryRun(),
		Timeout: s.GetTimeout(), WorkflowId: wf.GetId(), Step: s.GetName()}
}

// createTask creates a running step's missing task (records written before tasks were
// created with their steps).
func (e *Engine) createTask(ctx context.Context, t *taskv1.Task) error {
	cmp, op, err := tasks.PutNew(t, e.svc.now())
	if err != nil {
		return err
	}
	_, err = e.svc.st.Txn(ctx, store.Txn{If: []store.Compare{e.fence, cmp}, Then: []store.Op{op}})
	if errors.Is(err, store.ErrConflict) {
		return nil // created meanwhile: the next pass reads it (and checks whose it is)
	}
	return err
}

// ownTask says whether rec is the task this engine created for step s of workflow wf. Only
// the engine sets a task's workflow and step (a direct task names none).
func ownTask(rec *apiv1.TaskRecord, wf string, s *storagev1.StepRecord) bool {
	t := rec.GetTask()
	return t.GetWorkflowId() == wf && t.GetStep() == s.GetName() && t.GetId() == s.GetTaskId()
}

func idTakenMessage(rec *apiv1.TaskRecord, wf string, s *storagev1.StepRecord) string {
	by := "run directly"
	if w := rec.GetTask().GetWorkflowId(); w != "" {
		by = "of workflow " + w + " step " + rec.GetTask().GetStep()
	}
	return fmt.Sprintf("task ID %s of step %s is taken by a task this workflow did not create (%s, on node %s): its result is not the step's",
		s.GetTaskId(), s.GetName(), by, rec.GetTask().GetNode())
}

// skipError: the step has nothing to do (a routes step for a node that left meanwhile).
type skipError struct{ why string }

func (e *skipError) Error() string { return e.why }

// placeholderPodCIDR stands in, in a dry-run, for the pod CIDR a node has not been given:
// the first /24 of the cluster's pod subnet (kube-controller-manager's default node size),
// or the subnet itself when it is smaller, so the agent's checks pass as they would.
func placeholderPodCIDR(clusterPodSubnet string) string {
	c, err := netip.ParsePrefix(clusterPodSubnet)
	if err != nil || !c.Addr().Is4() {
		return placeholders["pod_cidr"]
	}
	if c.Bits() >= 24 {
		return c.Masked().String()
	}
	return netip.PrefixFrom(c.Masked().Addr(), 24).String()
}
