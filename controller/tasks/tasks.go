// Package tasks keeps task records in the store and gets them to the agents: a task is
// written PENDING, whichever replica holds the node's session sends the assignment, the
// agent's events are appended as they stream in, and its result closes the record. Any
// replica can read a task and its log; after a failover or a reconnect the assignment is
// sent again under the same ID and the agent answers with the task's events so far and its
// result (from its journal once it ended), never running it twice. Each event is stored
// once (EventKey), however often it is sent; events and results are retried while the store
// has no leader.
package tasks

import (
	"context"
	"crypto/rand"
	"crypto/sha256"
	"errors"
	"fmt"
	"regexp"
	"slices"
	"strings"
	"sync/atomic"
	"time"

	"google.golang.org/protobuf/proto"
	"google.golang.org/protobuf/types/known/timestamppb"

	"github.com/deckhandhq/deckhand/controller/nodes"
	apiv1 "github.com/deckhandhq/deckhand/proto/deckhand/api/v1"
	taskv1 "github.com/deckhandhq/deckhand/proto/deckhand/task/v1"
	"github.com/deckhandhq/deckhand/store"
)

// Key prefixes.
const (
	Prefix       = "/tasks/"
	EventsPrefix = "/taskevents/"
)

var (
	// ErrNotFound: no task with that ID.
	ErrNotFound = errors.New("task not found")
	// ErrInvalid: the request is malformed.
	ErrInvalid = errors.New("invalid task")
	// ErrHasResult: a result for a task whose record holds one already (a result is
	// recorded once).
	ErrHasResult = errors.New("task already holds a result")
	// ErrExists: a different task already has that ID.
	ErrExists = errors.New("task ID already used")

	idRE = regexp.MustCompile(`^[A-Za-z0-9][A-Za-z0-9._-]{0,127}$`)
)

// Service reads and writes task records.
type Service struct {
	st      store.Store
	nodes   *nodes.Registry
	now     func() time.Time
	deleted atomic.Uint64 // records removed by Sweep
}

// New returns a Service. now may be nil (time.Now).
func New(st store.Store, reg *nodes.Registry, now func() time.Time) *Service {
	if now == nil {
		now = time.Now
	}
	return &Service{st: st, nodes: reg, now: now}
}

// Now is the service's clock.
func (s *Service) Now() time.Time { return s.now() }

// Terminal reports whether a state is final.
func Terminal(s taskv1.TaskState) bool {
	switch s {
	case taskv1.TaskState_TASK_STATE_SUCCEEDED, taskv1.TaskState_TASK_STATE_FAILED, taskv1.TaskState_TASK_STATE_CANCELLED:
		return true
	}
	return false
}

// NewID makes a task ID.
func NewID() string { return "t-" + strings.ToLower(rand.Text()[:12]) }

// ReservedPrefix starts every workflow ID, and so every workflow step's task ID
// (WORKFLOW.STEP.ATTEMPT): only the workflow engine creates tasks under it, so nobody can
// pre-create the record a step will read its result from.
const ReservedPrefix = "wf-"

// ErrGuard: a condition the caller added to the create (for example "no workflow holds the
// node") did not hold; nothing was written.
var ErrGuard = errors.New("task create precondition failed")

// Create writes a PENDING task run directly (not by a workflow) for node. The ID is
// created once: an ID that already names a different task is ErrExists; the same request
// again (same node, spec and dry-run) returns the existing record, an idempotent retry.
// guards are extra compares of the same transaction; when one fails, nothing is written and
// the error is ErrGuard.
func (s *Service) Create(ctx context.Context, t *taskv1.Task, guards ...store.Compare) (*apiv1.TaskRecord, error) {
	if t.GetSpec().GetKind() == nil {
		return nil, fmt.Errorf("%w: spec: give exactly one task kind", ErrInvalid)
	}
	if t.GetWorkflowId() != "" || t.GetStep() != "" {
		return nil, fmt.Errorf("%w: a task run directly names no workflow or step", ErrInvalid)
	}
	if t.GetId() == "" {
		t.Id = NewID()
	}
	if err := ValidateID(t.GetId()); err != nil {
		return nil, err
	}
	if strings.HasPrefix(t.GetId(), ReservedPrefix) {
		return nil, fmt.Errorf("%w: id %q: IDs starting with %q are reserved for workflow steps; choose another --id or leave it empty for a generated one", ErrInvalid, t.GetId(), ReservedPrefix)
	}
	// The node must be enrolled: this replica's records say so without a quorum round trip
	// (a fan-out creates a thousand tasks at once); one it does not know yet is looked up
	// linearizably before it is refused.
	if _, _, err := s.nodes.Get(ctx, t.GetNode(), store.Stale()); err != nil {
		if _, _, err := s.nodes.Get(ctx, t.GetNode()); err != nil {
			return nil, err
		}
	}
	cmp, op, rec, err := newRecord(t, s.now())
	if err != nil {
		return nil, err
	}
	_, err = s.st.Txn(ctx, store.Txn{If: append([]store.Compare{cmp}, guards...), Then: []store.Op{op}})
	if errors.Is(err, store.ErrConflict) {
		old, _, gerr := s.Get(ctx, t.GetId())
		switch {
		case errors.Is(gerr, ErrNotFound):
			return nil, ErrGuard
		case gerr != nil:
			return nil, gerr
		case proto.Equal(old.GetTask(), t):
			return old, nil
		}
		return nil, fmt.Errorf("%w: task ID %s is taken by another task (node %s, created %s); a task ID is used once: choose another --id, or leave it empty for a generated one",
			ErrExists, t.GetId(), old.GetTask().GetNode(), old.GetCreated().AsTime().UTC().Format(time.RFC3339))
	}
	if err != nil {
		return nil, err
	}
	return rec, nil
}

// ValidateID checks the shape of a task ID.
func ValidateID(id string) error {
	if !idRE.MatchString(id) {
		return fmt.Errorf("%w: id %q: use letters, digits, '.', '_' and '-', at most 128, starting with a letter or digit", ErrInvalid, id)
	}
	return nil
}

// PutNew is the write that creates t as a PENDING task, for the workflow engine, which
// creates a step's task in the transaction that starts the step: the compare makes the
// create conditional on the ID being free, so the engine never overwrites (or later reads
// the result of) a record it did not create. The caller vouches for the node.
func PutNew(t *taskv1.Task, now time.Time) (store.Compare, store.Op, error) {
	if t.GetWorkflowId() == "" || !strings.HasPrefix(t.GetId(), t.GetWorkflowId()+".") {
		return store.Compare{}, store.Op{}, fmt.Errorf("%w: task %q: a step's task ID starts with its workflow ID %q", ErrInvalid, t.GetId(), t.GetWorkflowId())
	}
	cmp, op, _, err := newRecord(t, now)
	return cmp, op, err
}

func newRecord(t *taskv1.Task, now time.Time) (store.Compare, store.Op, *apiv1.TaskRecord, error) {
	if err := ValidateID(t.GetId()); err != nil {
		return store.Compare{}, store.Op{}, nil, err
	}
	if t.GetSpec().GetKind() == nil {
		return store.Compare{}, store.Op{}, nil, fmt.Errorf("%w: task %q: spec: give exactly one task kind", ErrInvalid, t.GetId())
	}
	ts := timestamppb.New(now)
	rec := &apiv1.TaskRecord{Task: t, State: taskv1.TaskState_TASK_STATE_PENDING, Created: ts, Updated: ts}
	b, err := proto.Marshal(rec)
	if err != nil {
		return store.Compare{}, store.Op{}, nil, err
	}
	return store.Absent(Prefix + t.GetId()), store.Put(Prefix+t.GetId(), b), rec, nil
}

// Decode parses a stored task record.
func Decode(kv *store.KV) (*apiv1.TaskRecord, error) {
	var rec apiv1.TaskRecord
	if err := proto.Unmarshal(kv.Value, &rec); err != nil {
		return nil, fmt.Errorf("task record %s: %w", kv.Key, err)
	}
	return &rec, nil
}

// Get returns a task and its record's revision.
func (s *Service) Get(ctx context.Context, id string) (*apiv1.TaskRecord, int64, error) {
	kv, err := s.ReadKV(ctx, id, true)
	if err != nil {
		return nil, 0, err
	}
	rec, err := Decode(kv)
	return rec, kv.ModRevision, err
}

// List returns tasks, filtered by node and workflow when given.
func (s *Service) List(ctx context.Context, node, workflow string) ([]*apiv1.TaskRecord, error) {
	kvs, _, err := s.st.List(ctx, Prefix)
	if err != nil {
		return nil, err
	}
	var out []*apiv1.TaskRecord
	for _, kv := range kvs {
		rec, err := Decode(kv)
		if err != nil {
			return nil, err
		}
		if (node == "" || rec.GetTask().GetNode() == node) && (workflow == "" || rec.GetTask().GetWorkflowId() == workflow) {
			out = append(out, rec)
		}
	}
	return out, nil
}

// update is a read-modify-write with CAS; fn returns false to write nothing. A task's
// state only moves forward (pending, running, ended), and every fn writes nothing once it
// is past the state it changes, so the first read is this replica's own state, without the
// round trip to a quorum a linearizable read costs (most of an agent's ack and result):
// a stale record fails the CAS and is read again, linearizably; one that already moved on
// is not stale in what fn looks at. A record not found locally is read linearizably too.
func (s *Service) update(ctx context.Context, id string, fn func(*apiv1.TaskRecord) bool) (*apiv1.TaskRecord, error) {
	for attempt := 0; ; attempt++ {
		kv, err := s.ReadKV(ctx, id, attempt > 0)
		if err != nil {
			return nil, err
		}
		rec, err := Decode(kv)
		if err != nil {
			return nil, err
		}
		if !fn(rec) {
			return rec, nil
		}
		rec.Updated = timestamppb.New(s.now())
		b, err := proto.Marshal(rec)
		if err != nil {
			return nil, err
		}
		_, err = s.st.Txn(ctx, store.Txn{If: []store.Compare{store.ModRevisionIs(Prefix+id, kv.ModRevision)}, Then: []store.Op{store.Put(Prefix+id, b)}})
		if errors.Is(err, store.ErrConflict) {
			continue
		}
		return rec, err
	}
}

// ReadKV reads task id's stored record as it is to be changed or acted on: this replica's
// own copy unless fresh (see update), and linearizably also when this replica does not have
// it (on etcd a stale read may come from a member that lags), before it is taken as missing.
func (s *Service) ReadKV(ctx context.Context, id string, fresh bool) (*store.KV, error) {
	var opts []store.ReadOption
	if !fresh {
		opts = append(opts, store.Stale())
	}
	kv, _, err := s.st.Get(ctx, Prefix+id, opts...)
	if !fresh && errors.Is(err, store.ErrNotFound) {
		kv, _, err = s.st.Get(ctx, Prefix+id)
	}
	if errors.Is(err, store.ErrNotFound) {
		return nil, fmt.Errorf("%w: %s", ErrNotFound, id)
	}
	return kv, err
}

// Started marks node's task RUNNING once its agent acknowledged it (another node's task is
// left alone: an agent cannot touch a task it was not sent).
func (s *Service) Started(ctx context.Context, node, id string) error {
	return s.amend(ctx, id, func(h Head) (bool, taskv1.TaskState, *taskv1.TaskResult) {
		if h.State != taskv1.TaskState_TASK_STATE_PENDING || h.Node != node {
			return false, 0, nil
		}
		return true, taskv1.TaskState_TASK_STATE_RUNNING, nil
	})
}

// Finish records a result (ignored when the task already ended).
func (s *Service) Finish(ctx context.Context, node string, res *taskv1.TaskResult) error {
	return s.amend(ctx, res.GetTaskId(), func(h Head) (bool, taskv1.TaskState, *taskv1.TaskResult) {
		return finishing(h, node, res)
	})
}

// finishing decides what node's result res changes in a record whose head is h: nothing
// once the task ended or when it is another node's; else its end, in res's state (a result
// in a state that is not final is a failure).
func finishing(h Head, node string, res *taskv1.TaskResult) (bool, taskv1.TaskState, *taskv1.TaskResult) {
	if Terminal(h.State) || h.Node != node {
		return false, 0, nil
	}
	state := res.GetState()
	if !Terminal(state) {
		state = taskv1.TaskState_TASK_STATE_FAILED
	}
	return true, state, res
}

// Finishing is the write by which Finish would record node's result res in the task record
// kv, for a writer that records it with other changes in one transaction (the workflow
// engine, in the write that ends the task's step): the compare that the record is still kv,
// the put, and the record it makes, without its spec (what DecodeWithoutSpec reads). ok is
// false when Finish would write nothing (the task ended, or is another node's).
func Finishing(kv *store.KV, node string, res *taskv1.TaskResult, now time.Time) (cmp store.Compare, put store.Op, rec *apiv1.TaskRecord, ok bool, err error) {
	h, err := Peek(kv)
	if err != nil {
		return cmp, put, nil, false, err
	}
	change, state, r := finishing(h, node, res)
	if !change {
		return cmp, put, nil, false, nil
	}
	if h.HasResult {
		return cmp, put, nil, false, fmt.Errorf("%w: %s (state %s)", ErrHasResult, h.ID, h.State)
	}
	more, err := amendment(state, now, r)
	if err != nil {
		return cmp, put, nil, false, err
	}
	b := append(slices.Clip(kv.Value), more...)
	rec, err = DecodeWithoutSpec(&store.KV{Key: kv.Key, Value: b, ModRevision: kv.ModRevision})
	if err != nil {
		return cmp, put, nil, false, err
	}
	return store.ModRevisionIs(kv.Key, kv.ModRevision), store.Put(kv.Key, b), rec, true, nil
}

// amend is update for the changes an agent makes (see amendment): decide reads the record's
// head and says whether to change it, to which state and with which result. A result is
// recorded once: none is amended into a record that holds one (only an ended task does, and
// no decide changes an ended task).
func (s *Service) amend(ctx context.Context, id string, decide func(Head) (bool, taskv1.TaskState, *taskv1.TaskResult)) error {
	for attempt := 0; ; attempt++ {
		kv, err := s.ReadKV(ctx, id, attempt > 0)
		if err != nil {
			return err
		}
		h, err := Peek(kv)
		if err != nil {
			return err
		}
		ok, state, res := decide(h)
		if !ok {
			return nil
		}
		if res != nil && h.HasResult {
			return fmt.Errorf("%w: %s (state %s); the result sent again is not recorded", ErrHasResult, id, h.State)
		}
		more, err := amendment(state, s.now(), res)
		if err != nil {
			return err
		}
		b := append(slices.Clip(kv.Value), more...)
		_, err = s.st.Txn(ctx, store.Txn{If: []store.Compare{store.ModRevisionIs(Prefix+id, kv.ModRevision)}, Then: []store.Op{store.Put(Prefix+id, b)}})
		if errors.Is(err, store.ErrConflict) {
			continue
		}
		return err
	}
}

// Cancel ends a task that has not finished: PENDING and RUNNING become CANCELLED (the
// replica holding the session tells the agent to stop).
func (s *Service) Cancel(ctx context.Context, id string) (*apiv1.TaskRecord, error) {
	return s.CancelFor(ctx, id, "CANCELLED", "cancelled by a user")
}

// CancelFor is Cancel with the reason and message the task's result gives.
func (s *Service) CancelFor(ctx context.Context, id, reason, message string) (*apiv1.TaskRecord, error) {
	return s.update(ctx, id, func(r *apiv1.TaskRecord) bool {
		if Terminal(r.GetState()) {
			return false
		}
		r.State = taskv1.TaskState_TASK_STATE_CANCELLED
		r.Result = &taskv1.TaskResult{TaskId: id, State: taskv1.TaskState_TASK_STATE_CANCELLED, Error: &taskv1.TaskError{Reason: reason, Message: message}}
		return true
	})
}

// EventKey is where ev is stored: under its task, in the order of the time its agent gave
// it, and named by its content, so an event sent again (an agent replays a task's events on
// a new session when its controller died before storing them) is the same key.
func EventKey(ev *taskv1.TaskEvent) string {
	b, err := proto.MarshalOptions{Deterministic: true}.Marshal(ev)
	if err != nil {
		b = []byte(err.Error())
	}
	h := sha256.Sum256(b)
	return fmt.Sprintf("%s%s/%020d-%x", EventsPrefix, ev.GetTaskId(), ev.GetTime().AsTime().UnixNano(), h[:8])
}

// AppendEvents stores a batch of task events in one write, for any replica to read. Each
// event is stored once: one already stored (sent again) is left as it is.
func (s *Service) AppendEvents(ctx context.Context, events []*taskv1.TaskEvent) error {
	vals := make(map[string][]byte, len(events))
	keys := make([]string, 0, len(events))
	for _, ev := range events {
		k := EventKey(ev)
		if _, dup := vals[k]; dup {
			continue
		}
		b, err := proto.Marshal(ev)
		if err != nil {
			return err
		}
		vals[k] = b
		keys = append(keys, k)
	}
	for len(keys) > 0 {
		cmps := make([]store.Compare, 0, len(keys))
		ops := make([]store.Op, 0, len(keys))
		for _, k := range keys {
			cmps = append(cmps, store.Absent(k))
			ops = append(ops, store.Put(k, vals[k]))
		}
		_, err := s.st.Txn(ctx, store.Txn{If: cmps, Then: ops})
		if !errors.Is(err, store.ErrConflict) {
			return err
		}
		// Some were stored already: write the others.
		var missing []string
		for _, k := range keys {
			switch _, _, err := s.st.Get(ctx, k); {
			case errors.Is(err, store.ErrNotFound):
				missing = append(missing, k)
			case err != nil:
				return err
			}
		}
		if len(missing) == len(keys) {
			return fmt.Errorf("store task events: %w", err)
		}
		keys = missing
	}
	return nil
}

// Events returns a task's recorded events in order and the revision read at.
func (s *Service) Events(ctx context.Context, id string) ([]*taskv1.TaskEvent, int64, error) {
	kvs, rev, err := s.st.List(ctx, EventsPrefix+id+"/")
	if err != nil {
		return nil, 0, err
	}
	out := make([]*taskv1.TaskEvent, 0, len(kvs))
	for _, kv := range kvs {
		var ev taskv1.TaskEvent
		if err := proto.Unmarshal(kv.Value, &ev); err != nil {
			return nil, 0, err
		}
		out = append(out, &ev)
	}
	return out, rev, nil
}

// Wait returns the task's record once it ended (watching it, reading it again when the
// watch ends early), or ctx's error.
func (s *Service) Wait(ctx context.Context, id string) (*apiv1.TaskRecord, error) {
	for {
		rec, done, err := s.waitOnce(ctx, id)
		if done || err != nil {
			return rec, err
		}
		if err := ctx.Err(); err != nil {
			return nil, err
		}
	}
}

// waitOnce reads the task and watches it from there; not done (and no error) means the
// watch ended early (compacted, the store's watch restarted): read again.
func (s *Service) waitOnce(ctx context.Context, id string) (*apiv1.TaskRecord, bool, error) {
	key := Prefix + id
	rec, rev, err := s.Get(ctx, id)
	if err != nil || Terminal(rec.GetState()) {
		return rec, true, err
	}
	wctx, cancel := context.WithCancel(ctx)
	defer cancel()
	ch, err := s.st.Watch(wctx, key, rev)
	if errors.Is(err, store.ErrCompacted) {
		return nil, false, nil
	}
	if err != nil {
		return nil, true, err
	}
	for ev := range ch {
		switch {
		case errors.Is(ev.Err, store.ErrCompacted):
			return nil, false, nil
		case ev.Err != nil:
			return nil, true, ev.Err
		case ev.Type != store.EventPut || ev.KV.Key != key:
			continue
		}
		if rec, err := Decode(ev.KV); err == nil && Terminal(rec.GetState()) {
			return rec, true, nil
		}
	}
	return nil, false, nil
}
