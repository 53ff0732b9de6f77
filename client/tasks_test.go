package client

import (
	"context"
	"slices"
	"sync"
	"testing"
	"time"

	"google.golang.org/grpc"
	"google.golang.org/protobuf/types/known/timestamppb"

	apiv1 "github.com/deckhandhq/deckhand/proto/deckhand/api/v1"
	taskv1 "github.com/deckhandhq/deckhand/proto/deckhand/task/v1"
)

// fakeTasks streams a task as a controller does: a new stream gets every event so far and
// the record, then each event and change.
type fakeTasks struct {
	apiv1.UnimplementedTaskServiceServer
	mu      sync.Mutex
	rec     *apiv1.TaskRecord
	events  []*taskv1.TaskEvent
	changed chan struct{}
}

func (f *fakeTasks) update(state taskv1.TaskState, line string) {
	f.mu.Lock()
	defer f.mu.Unlock()
	if line != "" {
		f.events = append(f.events, &taskv1.TaskEvent{TaskId: "t-1", Time: &timestamppb.Timestamp{Seconds: int64(len(f.events))},
			Event: &taskv1.TaskEvent_Log{Log: &taskv1.LogLine{Stream: "stdout", Text: line}}})
	}
	f.rec = &apiv1.TaskRecord{Task: &taskv1.Task{Id: "t-1"}, State: state}
	close(f.changed)
	f.changed = make(chan struct{})
}

func (f *fakeTasks) WatchTask(_ *apiv1.WatchTaskRequest, s grpc.ServerStreamingServer[apiv1.WatchTaskResponse]) error {
	sent := 0
	var sentRec *apiv1.TaskRecord
	for {
		f.mu.Lock()
		rec, events, changed := f.rec, f.events[sent:], f.changed
		f.mu.Unlock()
		for _, ev := range events {
			if err := s.Send(&apiv1.WatchTaskResponse{Update: &apiv1.WatchTaskResponse_Event{Event: ev}}); err != nil {
				return err
			}
			sent++
		}
		if rec != sentRec {
			if err := s.Send(&apiv1.WatchTaskResponse{Update: &apiv1.WatchTaskResponse_Task{Task: rec}}); err != nil {
				return err
			}
			sentRec = rec
			if TaskDone(rec) {
				return nil
			}
		}
		select {
		case <-changed:
		case <-s.Context().Done():
			return s.Context().Err()
		}
	}
}

// A task followed through a controller that dies is followed on another to its end, each
// log line once.
func TestWatchTaskAcrossAFailover(t *testing.T) {
	fc := newFakeCluster(t)
	ft := &fakeTasks{changed: make(chan struct{})}
	fc.tasks = ft
	ft.update(taskv1.TaskState_TASK_STATE_RUNNING, "pulling")
	fc.listen("a")
	fc.listen("b")
	fc.serve("a", "b")
	fc.writeControllers(fc.addrs("a", "b")...)
	c := dial(t, Options{ConfigFile: fc.config, NoRefresh: true})

	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	lines := make(chan string, 16)
	reconnects := 0
	type result struct {
		rec *apiv1.TaskRecord
		err error
	}
	done := make(chan result, 1)
	go func() {
		rec, err := c.WatchTask(ctx, "t-1", func(ev *taskv1.TaskEvent) { lines <- ev.GetLog().GetText() }, func(error) { reconnects++ })
		close(lines)
		done <- result{rec, err}
	}()
	var got []string
	select {
	case l := <-lines:
		got = append(got, l)
	case <-ctx.Done():
		t.Fatal("no line")
	}
	fc.down("a")
	ft.update(taskv1.TaskState_TASK_STATE_RUNNING, "pulled")
	ft.update(taskv1.TaskState_TASK_STATE_SUCCEEDED, "done")
	for l := range lines {
		got = append(got, l)
	}
	r := <-done
	if r.err != nil || r.rec.GetState() != taskv1.TaskState_TASK_STATE_SUCCEEDED {
		t.Fatalf("WatchTask: %v %v, want the task succeeded", r.rec.GetState(), r.err)
	}
	if want := []string{"pulling", "pulled", "done"}; !slices.Equal(got, want) || reconnects != 1 {
		t.Fatalf("lines %v with %d reconnects, want %v after one", got, reconnects, want)
	}
}
