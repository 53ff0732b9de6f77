package tasks

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"strings"
	"sync"
	"sync/atomic"
	"time"

	"google.golang.org/protobuf/proto"

	"github.com/deckhandhq/deckhand/controller/sessions"
	"github.com/deckhandhq/deckhand/internal/backoff"
	"github.com/deckhandhq/deckhand/internal/features"
	"github.com/deckhandhq/deckhand/internal/podnet"
	agentv1 "github.com/deckhandhq/deckhand/proto/deckhand/agent/v1"
	apiv1 "github.com/deckhandhq/deckhand/proto/deckhand/api/v1"
	taskv1 "github.com/deckhandhq/deckhand/proto/deckhand/task/v1"
	"github.com/deckhandhq/deckhand/store"
)

// MaxQueuedPerSession bounds the assignments and cancels waiting for one agent's session
// on this replica. An agent that lets more pile up (it stopped reading) has its session
// closed as unavailable: it reconnects, and SessionOpened sends it every task it still has
// to run; nothing is dropped while the session lives.
const MaxQueuedPerSession = 4096

// Dispatcher runs on every replica: it sends assignments and cancellations to the agents
// whose sessions this replica holds, and writes what they send back.
type Dispatcher struct {
	svc      *Service
	sessions *sessions.Registry
	log      *slog.Logger

	// Taker, when set, is offered each result of a workflow step's task before it is
	// written alone (see ResultTaker).
	Taker ResultTaker
	// Filler fills what a task's record leaves for the sending replica to fill (a peer's
	// routes, see NetworkSpec.routes_from_record); without one such a task is sent as it
	// is stored, and its agent refuses it.
	Filler Filler

	mu    sync.Mutex
	boxes map[*sessions.Session]*outbox

	events chan *taskv1.TaskEvent
	// queued counts the events put on events (under evMu, so the count and the channel's
	// order agree), written those stored: a result waits until written reaches the count
	// at its arrival, so the events an agent sent before it are stored first.
	evMu    sync.Mutex
	queued  uint64
	written atomic.Uint64

	flushMu sync.Mutex
	// unwritten is the batch of events a failed write left (the store had no leader for a
	// moment): it is written first, before anything newer is taken from events.
	unwritten []*taskv1.TaskEvent
	failing   bool // the last write failed (logged once per failing streak)
}

// outbox is what a dispatcher holds for one session: the tasks sent on it and the messages
// waiting, in the order they were decided. One goroutine per session (drain) moves them to
// the session in that order, so a task's cancel never overtakes its assignment.
type outbox struct {
	sent      map[string]bool // assigned, not cancelled
	cancelled map[string]bool // cancel queued
	ended     map[string]bool // reported running, but its record had ended (not cancelled)
	queue     []*agentv1.SessionResponse
	wake      chan struct{} // capacity 1: something was queued
}

// NewDispatcher wires a dispatcher for this replica.
func NewDispatcher(svc *Service, reg *sessions.Registry, log *slog.Logger) *Dispatcher {
	return &Dispatcher{svc: svc, sessions: reg, log: log, boxes: map[*sessions.Session]*outbox{},
		events: make(chan *taskv1.TaskEvent, 4096)}
}

// A ResultTaker records the result of a workflow step's task in the write that ends the
// step (the workflow engine, on the replica that leads): one commit where writing the
// result alone and then the step's end takes two, one after the other, for every step.
// TakeResult reports whether it recorded res, node's result, and returns once that write
// committed; false leaves the result to the caller, who writes it (also after a while, or
// when this replica does not lead). Either way the result is recorded once: each write is
// conditional on the task record being unchanged since read.
type ResultTaker interface {
	TakeResult(ctx context.Context, node string, res *taskv1.TaskResult) bool
}

// A Filler completes a stored task for sending (the workflow engine's RouteFiller): it
// returns t itself when there is nothing to fill.
type Filler interface {
	Fill(ctx context.Context, t *taskv1.Task) (*taskv1.Task, error)
}

// Run follows task records until ctx ends.
func (d *Dispatcher) Run(ctx context.Context) {
	go d.flushEvents(ctx)
	offer := func(kv *store.KV) {
		// Most changes of a record (its ack, its events, its result) need nothing sent: only
		// a task to assign is decoded in full.
		h, err := Peek(kv)
		if err != nil || !d.wants(h) {
			return
		}
		if rec, err := Decode(kv); err == nil {
			d.offer(ctx, rec)
		}
	}
	store.Follow(ctx, d.svc.st, Prefix, store.Follower{
		Listed: func(kvs []*store.KV) {
			for _, kv := range kvs {
				offer(kv)
			}
		},
		Event: func(ev store.Event) {
			if ev.Type == store.EventPut {
				offer(ev.KV)
			}
		},
	})
}

// SessionOpened sends a newly connected node every task it still has to run: those it
// runs or finished meanwhile included, which it answers with their events and result. The
// list is retried until it is read or the session ends (the store may have no leader for a
// moment: the agent may have come here because a controller died).
func (d *Dispatcher) SessionOpened(ctx context.Context, s *sessions.Session) {
	var recs []*apiv1.TaskRecord
	failed := false
	err := retry(ctx, func() error {
		var err error
		if recs, err = d.svc.List(ctx, s.Node, ""); err != nil && !failed {
			failed = true
			d.log.Warn("list tasks for a new session; retrying", "node", s.Node, "err", err)
		}
		return err
	})
	if err != nil {
		return
	}
	for _, rec := range recs {
		d.offer(ctx, rec)
	}
}

// SessionClosed forgets what was sent on s and what still waited for it (its drain
// goroutine ends with the session's context).
func (d *Dispatcher) SessionClosed(s *sessions.Session) {
	d.mu.Lock()
	delete(d.boxes, s)
	d.mu.Unlock()
}

// wants says whether offer would send something for a record with head h: an assignment
// not sent yet, or the cancel of one sent. It reads what offer decides on; offer decides.
func (d *Dispatcher) wants(h Head) bool {
	s := d.sessions.Get(h.Node)
	if s == nil {
		return false
	}
	d.mu.Lock()
	defer d.mu.Unlock()
	b := d.boxes[s]
	sent := b != nil && b.sent[h.ID]
	return h.State == taskv1.TaskState_TASK_STATE_CANCELLED && sent || !Terminal(h.State) && !sent
}

// offer decides what rec means for its node's session on this replica (an assignment, a
// cancel or nothing) and queues it on the session's outbox, in one critical section so
// the order of the decisions is the order on the wire.
func (d *Dispatcher) offer(ctx context.Context, rec *apiv1.TaskRecord) {
	s := d.sessions.Get(rec.GetTask().GetNode())
	if s == nil {
		return
	}
	id := rec.GetTask().GetId()
	var task *taskv1.Task
	var unsendable error
	if !Terminal(rec.GetState()) {
		// Made ready before the decision, outside d.mu: filling may read the store (once
		// per store revision, for a wave of routes updates).
		task, unsendable = d.ready(ctx, rec.GetTask(), s)
		if unsendable != nil && (ctx.Err() != nil || s.Context().Err() != nil) {
			return // not filled because this replica or the session is closing: nothing to decide
		}
	}
	d.mu.Lock()
	b := d.box(s)
	if b == nil {
		d.mu.Unlock()
		return // closing: do not re-create its entry
	}
	var msg *agentv1.SessionResponse
	switch {
	case rec.GetState() == taskv1.TaskState_TASK_STATE_CANCELLED && b.sent[id]:
		delete(b.sent, id)
		b.cancelled[id] = true
		msg = cancelMsg(id)
	case !Terminal(rec.GetState()) && !b.sent[id]:
		if err := unsendable; err != nil {
			// Never sent in a form the agent would misread: the task ends, saying why.
			reason := "AGENT_CANNOT_READ"
			if errors.Is(err, errUnfilled) {
				reason = "CONTROLLER_CANNOT_FILL"
			}
			go func() {
				if _, err := d.svc.CancelFor(s.Context(), id, reason, err.Error()); err != nil && s.Context().Err() == nil {
					d.log.Warn("cancel a task that cannot be sent", "task", id, "node", s.Node, "err", err)
				}
			}()
			break
		}
		b.sent[id] = true
		msg = &agentv1.SessionResponse{Msg: &agentv1.SessionResponse_Assignment{Assignment: &agentv1.TaskAssignment{Task: task}}}
	}
	full := msg != nil && !b.push(msg)
	d.mu.Unlock()
	if full {
		d.closeBacklogged(s)
	}
}

// errUnfilled marks a task the Filler could not fill.
var errUnfilled = errors.New("the controller could not fill the task")

// ready is stored task t as it is sent on session s: filled (see Filler), in the form its
// agent reads.
func (d *Dispatcher) ready(ctx context.Context, t *taskv1.Task, s *sessions.Session) (*taskv1.Task, error) {
	if d.Filler != nil {
		var err error
		if t, err = d.Filler.Fill(ctx, t); err != nil {
			return nil, fmt.Errorf("%w: %w", errUnfilled, err)
		}
	}
	return readable(t, s)
}

// readable is task t as the agent of session s reads it. The engine renders a task for the
// features the node's record lists, but the record follows a new session's hello only once
// its facts are written: an agent replaced by one of the release before, and sent a route
// list packed meanwhile, would read no routes at all and remove every route it owns. So
// the session, which knows what its agent said, has the last word; a packed list it cannot
// turn into routes (neither the engine nor the API makes one) is an error, never sent.
func readable(t *taskv1.Task, s *sessions.Session) (*taskv1.Task, error) {
	n := t.GetSpec().GetNetwork()
	if len(n.GetPackedRoutes()) == 0 || features.Has(s.Features, features.PackedRoutes) {
		return t, nil
	}
	routes, err := podnet.RouteList(n.GetPackedRoutes())
	if err != nil {
		return nil, fmt.Errorf("the agent of %s does not read packed routes (network.packed-routes), and these cannot be listed: %w", s.Node, err)
	}
	t = proto.Clone(t).(*taskv1.Task)
	n = t.GetSpec().GetNetwork()
	n.Routes, n.PackedRoutes = routes, nil
	return t, nil
}

func cancelMsg(id string) *agentv1.SessionResponse {
	return &agentv1.SessionResponse{Msg: &agentv1.SessionResponse_Cancel{Cancel: &agentv1.TaskCancel{TaskId: id, Reason: "cancelled by a user"}}}
}

// box returns s's outbox, made (with its drain goroutine) on first use; nil when s is
// closing. d.mu is held.
func (d *Dispatcher) box(s *sessions.Session) *outbox {
	if s.Context().Err() != nil {
		return nil
	}
	b := d.boxes[s]
	if b == nil {
		b = &outbox{sent: map[string]bool{}, cancelled: map[string]bool{}, ended: map[string]bool{}, wake: make(chan struct{}, 1)}
		d.boxes[s] = b
		go d.drain(s, b)
	}
	return b
}

// push queues msg and wakes the drain goroutine; false when MaxQueuedPerSession already
// wait. d.mu is held.
func (b *outbox) push(msg *agentv1.SessionResponse) bool {
	if len(b.queue) >= MaxQueuedPerSession {
		return false
	}
	b.queue = append(b.queue, msg)
	select {
	case b.wake <- struct{}{}:
	default:
	}
	return true
}

// closeBacklogged closes a session whose agent does not take its messages.
func (d *Dispatcher) closeBacklogged(s *sessions.Session) {
	d.log.Warn("closing an agent's session: it does not take its tasks (it reconnects and gets them again)", "node", s.Node, "waiting", MaxQueuedPerSession)
	d.sessions.Close(s, fmt.Errorf("%w: %d messages waiting", sessions.ErrBacklog, MaxQueuedPerSession))
}

// MaxRunningChecks bounds the task records one heartbeat makes a replica read.
const MaxRunningChecks = 16

// Running looks at the tasks an agent says it runs (its heartbeat). A task this session
// neither assigned nor cancelled, whose record is CANCELLED, lost its cancel with an
// earlier session (the agent reconnected, or its session was closed with the cancel still
// queued): the cancel is sent again, once per session. One whose record has not ended is
// assigned on this session, so the agent reports it here.
func (d *Dispatcher) Running(ctx context.Context, s *sessions.Session, ids []string) {
	if len(ids) == 0 {
		return // most heartbeats: an idle node
	}
	var check []string
	d.mu.Lock()
	b := d.boxes[s]
	for _, id := range ids {
		if len(check) == MaxRunningChecks {
			break
		}
		if b == nil || (!b.sent[id] && !b.cancelled[id] && !b.ended[id]) {
			check = append(check, id)
		}
	}
	d.mu.Unlock()
	for _, id := range check {
		rec, _, err := d.svc.Get(ctx, id)
		if err != nil || rec.GetTask().GetNode() != s.Node {
			continue // not (yet) known here, or not this node's
		}
		if !Terminal(rec.GetState()) {
			d.offer(ctx, rec)
			continue
		}
		d.mu.Lock()
		b := d.box(s)
		full := false
		switch {
		case b == nil || b.sent[id] || b.cancelled[id]:
		case rec.GetState() == taskv1.TaskState_TASK_STATE_CANCELLED:
			b.cancelled[id] = true
			full = !b.push(cancelMsg(id))
		default:
			b.ended[id] = true // finished for the controller: the agent reports it when done
		}
		d.mu.Unlock()
		if full {
			d.closeBacklogged(s)
			return
		}
	}
}

// drain moves b's messages to s, oldest first, until the session ends.
func (d *Dispatcher) drain(s *sessions.Session, b *outbox) {
	done := s.Context().Done()
	for {
		d.mu.Lock()
		var msg *agentv1.SessionResponse
		if len(b.queue) > 0 {
			msg = b.queue[0]
			b.queue[0] = nil
			b.queue = b.queue[1:]
		}
		d.mu.Unlock()
		if msg == nil {
			select {
			case <-b.wake:
				continue
			case <-done:
				return
			}
		}
		select {
		case s.Out <- msg:
		case <-done:
			return
		}
	}
}

// Ack records that the agent took the task; another node's task is ignored.
func (d *Dispatcher) Ack(ctx context.Context, node string, ack *agentv1.TaskAck) {
	id := ack.GetTaskId()
	if err := d.svc.Started(ctx, node, id); err != nil && !errors.Is(err, ErrNotFound) {
		d.log.Warn("mark task running", "task", id, "err", err)
	}
}

// Event queues a task event for storage; only events of tasks sent on this session count,
// so an agent cannot write into another node's task.
func (d *Dispatcher) Event(s *sessions.Session, ev *taskv1.TaskEvent) {
	d.mu.Lock()
	ok := d.boxes[s] != nil && d.boxes[s].sent[ev.GetTaskId()]
	d.mu.Unlock()
	if !ok {
		return
	}
	d.evMu.Lock()
	select {
	case d.events <- ev:
		d.queued++
	default:
		d.log.Warn("dropping task event: the store is not keeping up", "node", s.Node, "task", ev.GetTaskId())
	}
	d.evMu.Unlock()
}

// Result records a task's result from node, after the events queued before it. Both are
// retried until written or the session ends: an agent sends a result once per session, so
// one lost to a store without a leader for a moment (an election) would wait for the
// agent's next session.
// Results may be recorded concurrently (a session writes several at once): each waits only
// for the events queued before it.
func (d *Dispatcher) Result(ctx context.Context, node string, res *taskv1.TaskResult) {
	d.evMu.Lock()
	mark := d.queued
	d.evMu.Unlock()
	err := retry(ctx, func() error {
		for d.written.Load() < mark {
			if n, err := d.flushNow(ctx); err != nil || n == 0 {
				return err // nothing left to write: the events before mark are stored
			}
		}
		return nil
	})
	if err != nil {
		return // the session ended: the agent sends the events and result again on its next one
	}
	// A result may overtake its task's acknowledgement (a short task): the taker records it
	// once the acknowledgement is written, and Finish records it whether or not that write
	// comes first (it changes only a pending record).
	if d.Taker != nil && strings.HasPrefix(res.GetTaskId(), ReservedPrefix) && d.Taker.TakeResult(ctx, node, res) {
		return
	}
	err = retry(ctx, func() error {
		err := d.svc.Finish(ctx, node, res)
		if errors.Is(err, ErrNotFound) || errors.Is(err, ErrHasResult) {
			return backoff.Permanent(err)
		}
		return err
	})
	if err != nil && ctx.Err() == nil {
		d.log.Warn("record task result", "task", res.GetTaskId(), "node", node, "err", err)
	}
}

// retry calls fn until it succeeds, fails permanently or ctx ends, waiting longer after
// each failure (at most a second).
func retry(ctx context.Context, fn func() error) error {
	wait := 50 * time.Millisecond
	for {
		err := fn()
		if err == nil || backoff.IsPermanent(err) {
			return err
		}
		if !backoff.Sleep(ctx, wait) {
			return err
		}
		wait = min(2*wait, time.Second)
	}
}

func (d *Dispatcher) flushEvents(ctx context.Context) {
	tick := time.NewTicker(100 * time.Millisecond)
	defer tick.Stop()
	for {
		select {
		case <-ctx.Done():
			return
		case <-tick.C:
			_, _ = d.flushNow(ctx)
		}
	}
}

// flushNow writes the queued events in one transaction: those a failed write left first,
// else up to 512 from the queue, and returns how many it wrote. A failed batch is kept for
// the next call, whatever the failure (the caller's session ended included: the batch
// holds other sessions' events too, and an event written twice is one key).
func (d *Dispatcher) flushNow(ctx context.Context) (int, error) {
	d.flushMu.Lock()
	defer d.flushMu.Unlock()
	batch := d.unwritten
	for len(batch) < 512 {
		select {
		case ev := <-d.events:
			batch = append(batch, ev)
			continue
		default:
		}
		break
	}
	if len(batch) == 0 {
		return 0, nil
	}
	err := d.svc.AppendEvents(ctx, batch)
	if err == nil {
		d.written.Add(uint64(len(batch)))
		if d.failing {
			d.log.Info("storing task events again", "events", len(batch))
		}
		d.unwritten, d.failing = nil, false
		return len(batch), nil
	}
	d.unwritten = batch
	if ctx.Err() == nil {
		if !d.failing {
			d.log.Warn("store task events; retrying", "err", err, "events", len(batch))
		}
		d.failing = true
	}
	return 0, err
}
