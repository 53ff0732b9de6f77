package tasks

import (
	"context"
	"io"
	"log/slog"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/deckhandhq/deckhand/agent/host"
	taskv1 "github.com/deckhandhq/deckhand/proto/deckhand/task/v1"
)

func diagTask(id string, dry bool) *taskv1.Task {
	return &taskv1.Task{Id: id, Node: "n1", DryRun: dry, Spec: &taskv1.TaskSpec{Kind: &taskv1.TaskSpec_Diagnostics{Diagnostics: &taskv1.DiagnosticsSpec{}}}}
}

func runSync(t *testing.T, r *Runner, task *taskv1.Task) (*taskv1.TaskResult, []*taskv1.TaskEvent) {
	t.Helper()
	var mu sync.Mutex
	var events []*taskv1.TaskEvent
	done := make(chan *taskv1.TaskResult, 1)
	r.Start(context.Background(), task, func(ev *taskv1.TaskEvent) { mu.Lock(); events = append(events, ev); mu.Unlock() }, func(res *taskv1.TaskResult) { done <- res })
	select {
	case res := <-done:
		mu.Lock()
		defer mu.Unlock()
		return res, events
	case <-time.After(10 * time.Second):
		t.Fatal("task did not finish")
	}
	return nil, nil
}

func TestJournalReplaysAcrossRestart(t *testing.T) {
	dir, root := t.TempDir(), t.TempDir()
	var runs atomic.Int32
	handlers := map[string]Handler{"diagnostics": func(ctx context.Context, task *taskv1.Task, h *host.Host, e *Emitter) (map[string]string, error) {
		runs.Add(1)
		e.Logf("working")
		_, err := h.WriteFile("/etc/marker", []byte("x"), 0o644)
		return map[string]string{"answer": "42"}, err
	}}
	log := slog.New(slog.NewTextHandler(io.Discard, nil))
	r, _ := NewRunner(dir, root, handlers, log)
	res, events := runSync(t, r, diagTask("t-1", false))
	if res.GetState() != taskv1.TaskState_TASK_STATE_SUCCEEDED || res.GetOutputs()["answer"] != "42" || len(res.GetChanges()) != 1 || res.GetReplayed() {
		t.Fatalf("first run: %v", res)
	}
	if len(events) < 2 {
		t.Fatalf("events: %v", events)
	}
	// A new runner over the same data dir (an agent restart) replays, it does not rerun.
	r2, _ := NewRunner(dir, root, handlers, log)
	res2, _ := runSync(t, r2, diagTask("t-1", false))
	if runs.Load() != 1 || !res2.GetReplayed() || res2.GetOutputs()["answer"] != "42" {
		t.Fatalf("replay: runs=%d %v", runs.Load(), res2)
	}
	// A different ID runs, and finds nothing left to change.
	res3, _ := runSync(t, r2, diagTask("t-2", false))
	if runs.Load() != 2 || len(res3.GetChanges()) != 0 {
		t.Fatalf("second task: runs=%d changes=%v", runs.Load(), res3.GetChanges())
	}
}

func TestUnknownKindAndCancellation(t *testing.T) {
	log := slog.New(slog.NewTextHandler(io.Discard, nil))
	started := make(chan struct{})
	r, _ := NewRunner(t.TempDir(), t.TempDir(), map[string]Handler{"diagnostics": func(ctx context.Context, _ *taskv1.Task, _ *host.Host, _ *Emitter) (map[string]string, error) {
		close(started)
		<-ctx.Done()
		return nil, ctx.Err()
	}}, log)
	res, _ := runSync(t, r, &taskv1.Task{Id: "t-x", Spec: &taskv1.TaskSpec{Kind: &taskv1.TaskSpec_Drain{Drain: &taskv1.DrainSpec{}}}})
	if res.GetState() != taskv1.TaskState_TASK_STATE_FAILED || res.GetError().GetReason() != "UNSUPPORTED_TASK" {
		t.Fatalf("unknown kind: %v", res)
	}
	done := make(chan *taskv1.TaskResult, 1)
	r.Start(context.Background(), diagTask("t-c", false), func(*taskv1.TaskEvent) {}, func(res *taskv1.TaskResult) { done <- res })
	<-started
	if !r.Cancel("t-c") {
		t.Fatal("cancel found no running task")
	}
	if res := <-done; res.GetState() != taskv1.TaskState_TASK_STATE_CANCELLED {
		t.Fatalf("cancelled task: %v", res)
	}
}
