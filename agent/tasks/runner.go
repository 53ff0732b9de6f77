// Package tasks is the agent's task framework: it runs typed tasks (never shell strings)
// with a Host that honours dry-run, streams log lines and progress, journals every result
// under the data dir, and answers a task it has already finished with the recorded
// result instead of running it again, also across an agent restart.
//
// A recorded result answers only the same task: the journal keeps a digest of the spec and
// the dry-run flag with each result, and a task ID that comes back with another spec is
// refused (TASK_ID_REUSED), never answered with the other task's result.
//
// Nothing a viewer can read carries a secret: every log line and progress item, the error
// and hint, the non-secret outputs and the changes are masked (package secret) by value
// (the spec's token and certificate key, what a task declares with Emitter.Secret, the
// secret outputs it returns) and by pattern. The secret outputs themselves go to the
// controller, which shows them to writers only. Which fields and outputs are secret is
// declared once, in internal/tasksecrets.
package tasks

import (
	"bytes"
	"context"
	"crypto/sha256"
	"errors"
	"fmt"
	"log/slog"
	"os"
	"path/filepath"
	"regexp"
	"slices"
	"sync"
	"time"

	"google.golang.org/protobuf/proto"
	"google.golang.org/protobuf/types/known/timestamppb"

	"github.com/deckhandhq/deckhand/agent/host"
	"github.com/deckhandhq/deckhand/internal/secret"
	"github.com/deckhandhq/deckhand/internal/tasksecrets"
	"github.com/deckhandhq/deckhand/internal/wirelimits"
	taskv1 "github.com/deckhandhq/deckhand/proto/deckhand/task/v1"
)

// Handler runs one kind of task.
type Handler func(ctx context.Context, t *taskv1.Task, h *host.Host, e *Emitter) (outputs map[string]string, err error)

// Error is a task failure a user can act on.
type Error struct {
	Reason string
	Msg    string
	Hint   string
}

func (e *Error) Error() string { return e.Msg }

// Errorf builds a task Error.
func Errorf(reason, hint, format string, args ...any) *Error {
	return &Error{Reason: reason, Msg: fmt.Sprintf(format, args...), Hint: hint}
}

// Emitter streams a running task's events. Every log line and progress item is masked
// first (package secret): the secrets the task carries and any it declares with Secret by
// value, and tokens, certificate keys and private keys by pattern.
type Emitter struct {
	taskID   string
	send     func(*taskv1.TaskEvent)
	artifact []byte
	mask     *secret.Masker

	mu    sync.Mutex
	lines map[string]*secret.LineMasker // by stream
	// dry: the task is a dry-run (Did says what it would do).
	dry bool
}

func newEmitter(taskID string, send func(*taskv1.TaskEvent), mask *secret.Masker, dry bool) *Emitter {
	return &Emitter{taskID: taskID, send: send, mask: mask, lines: map[string]*secret.LineMasker{}, dry: dry}
}

// Attach sets the task's artifact (for example a diagnostics bundle), sent with the result.
func (e *Emitter) Attach(data []byte) { e.artifact = data }

// Secret declares values the task learned that are secrets (a token kubeadm printed, a
// key it made): from now on they are masked in everything the task reports.
func (e *Emitter) Secret(values ...string) { e.mask.Add(values...) }

// Log sends one log line, masked.
func (e *Emitter) Log(stream, text string) {
	e.mu.Lock()
	lm := e.lines[stream]
	if lm == nil {
		lm = &secret.LineMasker{M: e.mask}
		e.lines[stream] = lm
	}
	text = lm.Line(text)
	e.mu.Unlock()
	e.send(&taskv1.TaskEvent{TaskId: e.taskID, Time: timestamppb.Now(), Event: &taskv1.TaskEvent_Log{Log: &taskv1.LogLine{Stream: stream, Text: text}}})
}

// Logf sends one agent log line.
func (e *Emitter) Logf(format string, args ...any) { e.Log("agent", fmt.Sprintf(format, args...)) }

// Did logs a change the task made, or in a dry-run the change it would make: did and would
// are the two sentences ("wrote %s", "would write %s") with the same arguments.
func (e *Emitter) Did(did, would string, args ...any) {
	if e.dry {
		e.Logf(would, args...)
		return
	}
	e.Logf(did, args...)
}

// Progress reports progress on an item.
func (e *Emitter) Progress(item string, done, total uint64, unit string) {
	e.send(&taskv1.TaskEvent{TaskId: e.taskID, Time: timestamppb.Now(), Event: &taskv1.TaskEvent_Progress{Progress: &taskv1.Progress{Item: e.mask.Mask(item), Done: done, Total: total, Unit: unit}}})
}

// Kind is the name of a spec's kind, as in the oneof ("runtime", "images", ...).
func Kind(s *taskv1.TaskSpec) string {
	if s == nil || s.GetKind() == nil {
		return ""
	}
	oneof := s.ProtoReflect().Descriptor().Oneofs().ByName("kind")
	if fd := s.ProtoReflect().WhichOneof(oneof); fd != nil {
		return string(fd.Name())
	}
	return ""
}

// Runner runs tasks for one agent.
type Runner struct {
	journal   string
	root      string
	criSocket string
	handlers  map[string]Handler
	log       *slog.Logger

	mu      sync.Mutex
	running map[string]running
	// finished keeps the events of the last MaxFinishedReplays tasks that ended in this
	// process (oldest first in finishedOrder), replayed with their journaled result.
	finished      map[string]*sink
	finishedOrder []string
	// early holds the IDs of cancels that arrived before their task (at most MaxEarlyCancels,
	// oldest forgotten first, in the order of earlyOrder).
	early      map[string]bool
	earlyOrder []string
}

// MaxEarlyCancels bounds the cancels an agent keeps for tasks it was not assigned (yet). A
// controller sends a task's cancel after its assignment, but a cancel can still come first
// (another controller's session, a reconnect): the task is then reported cancelled when it
// arrives, without running. Past the bound the oldest is forgotten.
const MaxEarlyCancels = 1024

// ReasonCancelledBeforeStart is the error reason of a task whose cancel arrived before it.
const ReasonCancelledBeforeStart = "CANCELLED_BEFORE_START"

type running struct {
	cancel context.CancelFunc
	digest [sha256.Size]byte
	out    *sink
}

// MaxReplayBytes bounds the events the runner keeps of one task to send again when the task
// is assigned again (a new session, after the old one's controller died with what it had
// not stored yet). Later events are sent once only.
const MaxReplayBytes = 512 << 10

// MaxFinishedReplays is how many ended tasks keep their events for a new session.
const MaxFinishedReplays = 32

// sink is where one task's events and result go: the callbacks of the session that
// assigned it last. It keeps the events sent so far (up to MaxReplayBytes) and sends them
// again to a new session, before anything newer, so a session that ended with events or
// the result in flight loses neither (the controller stores each event once).
type sink struct {
	mu     sync.Mutex // held while sending, so a replay and newer events keep their order
	emit   func(*taskv1.TaskEvent)
	done   func(*taskv1.TaskResult)
	events []*taskv1.TaskEvent
	size   int
}

func (s *sink) event(ev *taskv1.TaskEvent) {
	s.mu.Lock()
	defer s.mu.Unlock()
	if n := proto.Size(ev); s.size+n <= MaxReplayBytes {
		s.events = append(s.events, ev)
		s.size += n
	}
	s.emit(ev)
}

// rebind sends the kept events to emit and makes emit and done the task's callbacks; s.mu
// is held (the caller locked it).
func (s *sink) rebind(emit func(*taskv1.TaskEvent), done func(*taskv1.TaskResult)) {
	s.emit, s.done = emit, done
	for _, ev := range s.events {
		emit(ev)
	}
}

func (s *sink) result(res *taskv1.TaskResult) {
	s.mu.Lock()
	done := s.done
	s.mu.Unlock()
	done(res)
}

// Option configures a Runner.
type Option func(*Runner)

// WithCRISocket makes the tasks use the container runtime's CRI socket at path (a host
// path under the root, or a unix:// URL of one) instead of containerd's default.
func WithCRISocket(path string) Option { return func(r *Runner) { r.criSocket = path } }

var idRE = regexp.MustCompile(`^[A-Za-z0-9][A-Za-z0-9._-]{0,127}$`)

// NewRunner journals into dataDir/tasks and runs handlers against root.
func NewRunner(dataDir, root string, handlers map[string]Handler, log *slog.Logger, opts ...Option) (*Runner, error) {
	dir := filepath.Join(dataDir, "tasks")
	if err := os.MkdirAll(dir, 0o700); err != nil {
		return nil, fmt.Errorf("task journal %s: %w", dir, err)
	}
	r := &Runner{journal: dir, root: root, handlers: handlers, log: log, running: map[string]running{}, early: map[string]bool{}, finished: map[string]*sink{}}
	for _, o := range opts {
		o(r)
	}
	return r, nil
}

// ReasonTaskIDReused refuses a task whose ID this agent already ran (or is running) for a
// different task: a task ID names one task, and a result is never replayed for another.
const ReasonTaskIDReused = "TASK_ID_REUSED"

// Digest identifies what a task does: its spec (deterministic protobuf encoding) and its
// dry-run flag. The journal keeps it with the result, and a task ID comes back with the
// recorded result only when the digest is the same.
func Digest(t *taskv1.Task) [sha256.Size]byte {
	b, err := proto.MarshalOptions{Deterministic: true}.Marshal(t.GetSpec())
	if err != nil {
		// A spec that cannot be encoded matches nothing recorded.
		b = []byte("unencodable: " + err.Error())
	}
	if t.GetDryRun() {
		b = append(b, 1)
	} else {
		b = append(b, 0)
	}
	return sha256.Sum256(b)
}

// journalMagic starts a journal entry: the magic, the task's Digest, then the result.
// Entries from before the digest (the bare result) do not start with it: a protobuf
// message never starts with the byte 'D' (field 8, end group).
var journalMagic = []byte("DHJ2")

// entry reads the journaled result of a task ID and the digest it was recorded with;
// old is true for an entry from before digests were journaled.
func (r *Runner) entry(id string) (res *taskv1.TaskResult, digest [sha256.Size]byte, old, ok bool) {
	if !idRE.MatchString(id) {
		return nil, digest, false, false
	}
	b, err := os.ReadFile(filepath.Join(r.journal, id+".pb"))
	if err != nil {
		return nil, digest, false, false
	}
	if rest, found := bytes.CutPrefix(b, journalMagic); found && len(rest) >= sha256.Size {
		copy(digest[:], rest)
		b = rest[sha256.Size:]
	} else {
		old = true
	}
	res = &taskv1.TaskResult{}
	if err := proto.Unmarshal(b, res); err != nil {
		return nil, digest, false, false
	}
	return res, digest, old, true
}

// Recorded returns the journaled result of t, if t finished before: same ID and same
// Digest. A journal entry from before digests were recorded is not trusted (it cannot
// show which task it was) and is not returned: the task runs again, which is safe
// because every task checks before it acts.
func (r *Runner) Recorded(t *taskv1.Task) (*taskv1.TaskResult, bool) {
	res, digest, old, ok := r.entry(t.GetId())
	if !ok || old || digest != Digest(t) {
		return nil, false
	}
	tasksecrets.MaskResult(res, &secret.Masker{})
	res.Replayed = true
	return res, true
}

// reused is the refusal of a task whose ID was used for a different task.
func reused(t *taskv1.Task, what string) *taskv1.TaskResult {
	now := timestamppb.Now()
	return &taskv1.TaskResult{TaskId: t.GetId(), State: taskv1.TaskState_TASK_STATE_FAILED, Started: now, Finished: now, Error: &taskv1.TaskError{
		Reason:  ReasonTaskIDReused,
		Message: fmt.Sprintf("task ID %s %s on this node for a different task (another spec or dry-run flag); the %s task was not run and no earlier result is reported for it", t.GetId(), what, Kind(t.GetSpec())),
		Hint:    "a task ID names one task: create this task under a new ID",
	}}
}

// cancelledBeforeStart is the result of a task whose cancel arrived first.
func cancelledBeforeStart(t *taskv1.Task) *taskv1.TaskResult {
	now := timestamppb.Now()
	return &taskv1.TaskResult{TaskId: t.GetId(), State: taskv1.TaskState_TASK_STATE_CANCELLED, Started: now, Finished: now, Error: &taskv1.TaskError{
		Reason:  ReasonCancelledBeforeStart,
		Message: fmt.Sprintf("the %s task was cancelled before it started: its cancel reached this agent first, so nothing was run", Kind(t.GetSpec())),
	}}
}

// Start runs t in the background (or replays its recorded result) and calls done with the
// result. Events go to emit. A task already running is not started twice: its events so
// far go to emit again, and its later events and result go to emit and done (the task
// came again on a new session). A recorded result is replayed after the task's events when
// this process still has them. A task whose ID was already used for a different task is
// refused with TASK_ID_REUSED and not run, and the earlier task's journal entry stays as
// it was. A task whose cancel came before it is reported CANCELLED
// (ReasonCancelledBeforeStart) and journaled, and nothing runs.
func (r *Runner) Start(ctx context.Context, t *taskv1.Task, emit func(*taskv1.TaskEvent), done func(*taskv1.TaskResult)) {
	digest := Digest(t)
	r.mu.Lock()
	if cur, busy := r.running[t.GetId()]; busy {
		if cur.digest != digest {
			r.mu.Unlock()
			r.log.Warn("refusing a task whose ID is running for a different task", "task", t.GetId(), "kind", Kind(t.GetSpec()))
			done(reused(t, "is in use"))
			return
		}
		// Lock order r.mu, then the sink's: the task's end takes the sink's lock after it
		// left running, so it reports to done.
		cur.out.mu.Lock()
		r.mu.Unlock()
		defer cur.out.mu.Unlock()
		cur.out.rebind(emit, done)
		return
	}
	// Read under r.mu: a task that just ended is journaled before it leaves running.
	if res, rec, old, ok := r.entry(t.GetId()); ok && !old {
		var events []*taskv1.TaskEvent
		if f := r.finished[t.GetId()]; f != nil && rec == digest {
			events = f.events
		}
		r.mu.Unlock()
		if rec != digest {
			r.log.Warn("refusing a task whose ID was used for a different task", "task", t.GetId(), "kind", Kind(t.GetSpec()))
			done(reused(t, "was already used"))
			return
		}
		for _, ev := range events {
			emit(ev)
		}
		tasksecrets.MaskResult(res, &secret.Masker{})
		res.Replayed = true
		done(res)
		return
	}
	if r.early[t.GetId()] {
		r.forgetEarly(t.GetId())
		r.mu.Unlock()
		r.log.Info("task cancelled before it started", "task", t.GetId(), "kind", Kind(t.GetSpec()))
		res := cancelledBeforeStart(t)
		if err := r.record(res, digest); err != nil {
			r.log.Error("journal task result", "task", t.GetId(), "err", err)
		}
		done(res)
		return
	}
	timeout := t.GetTimeout().AsDuration()
	if timeout <= 0 {
		timeout = 30 * time.Minute
	}
	tctx, cancel := context.WithTimeout(ctx, timeout)
	out := &sink{emit: emit, done: done}
	r.running[t.GetId()] = running{cancel: cancel, digest: digest, out: out}
	r.mu.Unlock()
	go func() {
		defer cancel()
		res := r.run(tctx, t, out.event)
		journaled := res.GetState() != taskv1.TaskState_TASK_STATE_CANCELLED || ctx.Err() == nil
		if journaled {
			// A task cut short by the agent shutting down is not journaled: it runs again.
			if err := r.record(res, digest); err != nil {
				r.log.Error("journal task result", "task", t.GetId(), "err", err)
			}
		}
		r.mu.Lock()
		delete(r.running, t.GetId())
		if journaled {
			r.keepFinished(t.GetId(), out)
		}
		r.mu.Unlock()
		out.result(res)
	}()
}

// keepFinished keeps an ended task's events for a new session; r.mu is held.
func (r *Runner) keepFinished(id string, out *sink) {
	if _, ok := r.finished[id]; !ok {
		if len(r.finishedOrder) >= MaxFinishedReplays {
			delete(r.finished, r.finishedOrder[0])
			r.finishedOrder = slices.Delete(r.finishedOrder, 0, 1)
		}
		r.finishedOrder = append(r.finishedOrder, id)
	}
	r.finished[id] = out
}

// Cancel stops a running task and reports true. The cancel of a task that is not running
// is kept (see MaxEarlyCancels): if the task arrives later it is not run.
func (r *Runner) Cancel(id string) bool {
	r.mu.Lock()
	defer r.mu.Unlock()
	if c, ok := r.running[id]; ok {
		c.cancel()
		return true
	}
	if !r.early[id] {
		if len(r.earlyOrder) >= MaxEarlyCancels {
			r.forgetEarly(r.earlyOrder[0])
		}
		r.early[id] = true
		r.earlyOrder = append(r.earlyOrder, id)
	}
	return false
}

// forgetEarly drops id from the early cancels; r.mu is held.
func (r *Runner) forgetEarly(id string) {
	delete(r.early, id)
	if i := slices.Index(r.earlyOrder, id); i >= 0 {
		r.earlyOrder = slices.Delete(r.earlyOrder, i, i+1)
	}
}

// Running lists the IDs of running tasks.
func (r *Runner) Running() []string {
	r.mu.Lock()
	defer r.mu.Unlock()
	out := make([]string, 0, len(r.running))
	for id := range r.running {
		out = append(out, id)
	}
	return out
}

func (r *Runner) run(ctx context.Context, t *taskv1.Task, emit func(*taskv1.TaskEvent)) (res *taskv1.TaskResult) {
	res = &taskv1.TaskResult{TaskId: t.GetId(), Started: timestamppb.Now()}
	mask := &secret.Masker{}
	mask.Add(tasksecrets.Values(t.GetSpec())...)
	e := newEmitter(t.GetId(), emit, mask, t.GetDryRun())
	h := &host.Host{Root: r.root, DryRun: e.dry, Log: e.Log, CRISocket: r.criSocket}
	kind := Kind(t.GetSpec())
	defer func() {
		if p := recover(); p != nil {
			r.log.Error("task panicked", "task", t.GetId(), "kind", kind, "panic", mask.Mask(fmt.Sprint(p)))
			res.State = taskv1.TaskState_TASK_STATE_FAILED
			res.Error = &taskv1.TaskError{Reason: "AGENT_BUG", Message: fmt.Sprintf("the %s task crashed: %v", kind, p), Hint: "report it with the agent log"}
		}
		res.Changes = h.Changes()
		res.Finished = timestamppb.Now()
		tasksecrets.MaskResult(res, mask)
		fitResult(res, e)
	}()
	handler, ok := r.handlers[kind]
	if !ok || !idRE.MatchString(t.GetId()) {
		res.State = taskv1.TaskState_TASK_STATE_FAILED
		res.Error = &taskv1.TaskError{Reason: "UNSUPPORTED_TASK", Message: fmt.Sprintf("this agent cannot run %q tasks", kind), Hint: "upgrade the agent on this node"}
		return res
	}
	e.Logf("%s task started%s", kind, map[bool]string{true: " (dry-run: nothing will be changed)"}[t.GetDryRun()])
	outputs, err := handler(ctx, t, h, e)
	res.Outputs = outputs
	res.Artifact = e.artifact
	var te *Error
	switch {
	case err == nil:
		res.State = taskv1.TaskState_TASK_STATE_SUCCEEDED
	case errors.Is(ctx.Err(), context.Canceled):
		res.State = taskv1.TaskState_TASK_STATE_CANCELLED
		res.Error = &taskv1.TaskError{Reason: "CANCELLED", Message: "the task was cancelled"}
	case errors.Is(ctx.Err(), context.DeadlineExceeded):
		res.State = taskv1.TaskState_TASK_STATE_FAILED
		res.Error = &taskv1.TaskError{Reason: "TIMEOUT", Message: fmt.Sprintf("the %s task did not finish in time: %v", kind, err), Hint: "raise the task timeout or look at the log for what it waited on"}
	case errors.As(err, &te):
		res.State = taskv1.TaskState_TASK_STATE_FAILED
		res.Error = &taskv1.TaskError{Reason: te.Reason, Message: te.Msg, Hint: te.Hint}
	default:
		res.State = taskv1.TaskState_TASK_STATE_FAILED
		res.Error = &taskv1.TaskError{Reason: "TASK_FAILED", Message: err.Error()}
	}
	return res
}

// fitResult keeps a result within what a controller accepts (internal/wirelimits): a result
// it refused whole would be sent again from the journal on every reconnect. A dropped
// artifact fails the task, since the artifact was what it was for.
func fitResult(res *taskv1.TaskResult, e *Emitter) {
	f := wirelimits.FitResult(res)
	if f.ArtifactBytes > 0 && res.GetState() == taskv1.TaskState_TASK_STATE_SUCCEEDED {
		res.State = taskv1.TaskState_TASK_STATE_FAILED
		res.Error = &taskv1.TaskError{Reason: "ARTIFACT_TOO_LARGE",
			Message: fmt.Sprintf("the task's artifact is %d bytes; a result carries at most %d", f.ArtifactBytes, wirelimits.MaxArtifactBytes),
			Hint:    "collect less (for diagnostics, fewer --journal-lines)"}
	}
	if f.Cut() {
		e.Logf("the result was cut to fit what a controller accepts (artifact dropped: %t, changes cut: %t, outputs dropped: %t, error text cut: %t)",
			f.ArtifactBytes > 0, f.Changes, f.OutputsBytes > 0, f.ErrorText)
	}
}

func (r *Runner) record(res *taskv1.TaskResult, digest [sha256.Size]byte) error {
	if !idRE.MatchString(res.GetTaskId()) {
		return fmt.Errorf("task ID %q cannot name a journal entry", res.GetTaskId())
	}
	pb, err := proto.Marshal(res)
	if err != nil {
		return err
	}
	b := append(append(append([]byte(nil), journalMagic...), digest[:]...), pb...)
	p := filepath.Join(r.journal, res.GetTaskId()+".pb")
	tmp := p + ".tmp"
	if err := os.WriteFile(tmp, b, 0o600); err != nil {
		return err
	}
	return os.Rename(tmp, p)
}
