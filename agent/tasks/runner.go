// Package tasks is the agent's task framework: it runs typed tasks (never shell strings)
// with a Host that honours dry-run, streams log lines and progress, journals every result
// under the data dir, and answers a task ID it has already finished with the recorded
// result instead of running it again, also across an agent restart.
package tasks

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"os"
	"path/filepath"
	"regexp"
	"sync"
	"time"

	"google.golang.org/protobuf/proto"
	"google.golang.org/protobuf/types/known/timestamppb"

	"github.com/deckhandhq/deckhand/agent/host"
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

// Emitter streams a running task's events.
type Emitter struct {
	taskID   string
	send     func(*taskv1.TaskEvent)
	artifact []byte
}

// Attach sets the task's artifact (for example a diagnostics bundle), sent with the result.
func (e *Emitter) Attach(data []byte) { e.artifact = data }

// Log sends one log line.
func (e *Emitter) Log(stream, text string) {
	e.send(&taskv1.TaskEvent{TaskId: e.taskID, Time: timestamppb.Now(), Event: &taskv1.TaskEvent_Log{Log: &taskv1.LogLine{Stream: stream, Text: text}}})
}

// Logf sends one agent log line.
func (e *Emitter) Logf(format string, args ...any) { e.Log("agent", fmt.Sprintf(format, args...)) }

// Progress reports progress on an item.
func (e *Emitter) Progress(item string, done, total uint64, unit string) {
	e.send(&taskv1.TaskEvent{TaskId: e.taskID, Time: timestamppb.Now(), Event: &taskv1.TaskEvent_Progress{Progress: &taskv1.Progress{Item: item, Done: done, Total: total, Unit: unit}}})
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
	journal  string
	root     string
	handlers map[string]Handler
	log      *slog.Logger

	mu      sync.Mutex
	running map[string]context.CancelFunc
}

var idRE = regexp.MustCompile(`^[A-Za-z0-9][A-Za-z0-9._-]{0,127}$`)

// NewRunner journals into dataDir/tasks and runs handlers against root.
func NewRunner(dataDir, root string, handlers map[string]Handler, log *slog.Logger) (*Runner, error) {
	dir := filepath.Join(dataDir, "tasks")
	if err := os.MkdirAll(dir, 0o700); err != nil {
		return nil, fmt.Errorf("task journal %s: %w", dir, err)
	}
	return &Runner{journal: dir, root: root, handlers: handlers, log: log, running: map[string]context.CancelFunc{}}, nil
}

// Recorded returns the journaled result of a task, if it finished before.
func (r *Runner) Recorded(id string) (*taskv1.TaskResult, bool) {
	if !idRE.MatchString(id) {
		return nil, false
	}
	b, err := os.ReadFile(filepath.Join(r.journal, id+".pb"))
	if err != nil {
		return nil, false
	}
	var res taskv1.TaskResult
	if err := proto.Unmarshal(b, &res); err != nil {
		return nil, false
	}
	res.Replayed = true
	return &res, true
}

// Start runs t in the background (or replays its recorded result) and calls done with the
// result. Events go to emit. A task already running is not started twice.
func (r *Runner) Start(ctx context.Context, t *taskv1.Task, emit func(*taskv1.TaskEvent), done func(*taskv1.TaskResult)) {
	if res, ok := r.Recorded(t.GetId()); ok {
		done(res)
		return
	}
	r.mu.Lock()
	if _, busy := r.running[t.GetId()]; busy {
		r.mu.Unlock()
		return
	}
	timeout := t.GetTimeout().AsDuration()
	if timeout <= 0 {
		timeout = 30 * time.Minute
	}
	tctx, cancel := context.WithTimeout(ctx, timeout)
	r.running[t.GetId()] = cancel
	r.mu.Unlock()
	go func() {
		defer func() {
			r.mu.Lock()
			delete(r.running, t.GetId())
			r.mu.Unlock()
			cancel()
		}()
		res := r.run(tctx, t, emit)
		if res.GetState() != taskv1.TaskState_TASK_STATE_CANCELLED || ctx.Err() == nil {
			// A task cut short by the agent shutting down is not journaled: it runs again.
			if err := r.record(res); err != nil {
				r.log.Error("journal task result", "task", t.GetId(), "err", err)
			}
		}
		done(res)
	}()
}

// Cancel stops a running task.
func (r *Runner) Cancel(id string) bool {
	r.mu.Lock()
	defer r.mu.Unlock()
	if c, ok := r.running[id]; ok {
		c()
		return true
	}
	return false
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
	e := &Emitter{taskID: t.GetId(), send: emit}
	h := &host.Host{Root: r.root, DryRun: t.GetDryRun(), Log: e.Log}
	kind := Kind(t.GetSpec())
	defer func() {
		if p := recover(); p != nil {
			r.log.Error("task panicked", "task", t.GetId(), "kind", kind, "panic", p)
			res.State = taskv1.TaskState_TASK_STATE_FAILED
			res.Error = &taskv1.TaskError{Reason: "AGENT_BUG", Message: fmt.Sprintf("the %s task crashed: %v", kind, p), Hint: "report it with the agent log"}
		}
		res.Changes = h.Changes()
		res.Finished = timestamppb.Now()
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

func (r *Runner) record(res *taskv1.TaskResult) error {
	b, err := proto.Marshal(res)
	if err != nil {
		return err
	}
	p := filepath.Join(r.journal, res.GetTaskId()+".pb")
	tmp := p + ".tmp"
	if err := os.WriteFile(tmp, b, 0o600); err != nil {
		return err
	}
	return os.Rename(tmp, p)
}
