package api_test

import (
	"context"
	"errors"
	"fmt"
	"sync"
	"testing"
	"time"

	"google.golang.org/grpc"
	"google.golang.org/protobuf/proto"
	"google.golang.org/protobuf/types/known/timestamppb"

	"github.com/deckhandhq/deckhand/controller/api"
	"github.com/deckhandhq/deckhand/controller/nodes"
	"github.com/deckhandhq/deckhand/controller/tasks"
	"github.com/deckhandhq/deckhand/controller/workflows"
	"github.com/deckhandhq/deckhand/internal/testkit/teststore"
	apiv1 "github.com/deckhandhq/deckhand/proto/deckhand/api/v1"
	storagev1 "github.com/deckhandhq/deckhand/proto/deckhand/storage/v1"
	taskv1 "github.com/deckhandhq/deckhand/proto/deckhand/task/v1"
	"github.com/deckhandhq/deckhand/store"
)

// gapStore lets a test make the watches miss events and then end with ErrCompacted, as a
// replica's watches do when it installs a snapshot from the leader.
type gapStore struct {
	store.Store
	mu      sync.Mutex
	missing bool          // drop events (the replica is behind)
	compact chan struct{} // closed: end the first watch with ErrCompacted
}

func (g *gapStore) Watch(ctx context.Context, prefix string, after int64) (<-chan store.Event, error) {
	ch, err := g.Store.Watch(ctx, prefix, after)
	select {
	case <-g.compact:
		return ch, err // watched again after the snapshot
	default:
	}
	if err != nil {
		return ch, err
	}
	out := make(chan store.Event)
	go func() {
		defer close(out)
		for {
			select {
			case ev, ok := <-ch:
				if !ok {
					return
				}
				g.mu.Lock()
				drop := g.missing
				g.mu.Unlock()
				if drop {
					continue
				}
				select {
				case out <- ev:
				case <-ctx.Done():
					return
				}
			case <-g.compact:
				select {
				case out <- store.Event{Err: fmt.Errorf("installed a snapshot: %w", store.ErrCompacted)}:
				case <-ctx.Done():
				}
				return
			case <-ctx.Done():
				return
			}
		}
	}()
	return out, nil
}

type watchStream[T any] struct {
	grpc.ServerStream
	ctx context.Context
	got chan *T
}

func (w *watchStream[T]) Context() context.Context { return w.ctx }
func (w *watchStream[T]) Send(m *T) error {
	w.got <- m
	return nil
}

// watchGap drives one watch through a replica that installs a snapshot: two events and a
// record change before, then three writes the replica's watch misses (it ends with
// ErrCompacted). It returns what the client received, in order, and how the watch ended.
// setState writes the watched record (done: its final state), logLine appends a log event,
// serve runs the watch on stream, and describe names a message (an event's text or the
// record's state).
func watchGap[T any](t *testing.T, ctx context.Context, gs *gapStore, setState func(done bool), logLine func(string),
	serve func(*watchStream[T]) error, describe func(*T) string) ([]string, error) {
	t.Helper()
	setState(false)
	logLine("one")
	stream := &watchStream[T]{ctx: ctx, got: make(chan *T, 100)}
	done := make(chan error, 1)
	go func() { done <- serve(stream) }()
	var got []string
	next := func() {
		t.Helper()
		select {
		case m := <-stream.got:
			got = append(got, describe(m))
		case err := <-done:
			// The watch sends everything before it returns: a message it sent just
			// before ending is there (select picks either when both are ready).
			done <- err
			select {
			case m := <-stream.got:
				got = append(got, describe(m))
			default:
				t.Fatalf("watch ended with %v after %v", err, got)
			}
		case <-ctx.Done():
			t.Fatalf("watch stalled after %v", got)
		}
	}
	next()
	next()
	logLine("two")
	next()
	// The replica falls behind: the watch misses three writes, then ends with ErrCompacted.
	gs.mu.Lock()
	gs.missing = true
	gs.mu.Unlock()
	logLine("three")
	logLine("four")
	setState(true)
	close(gs.compact)
	for range 3 {
		next()
	}
	select {
	case err := <-done:
		return got, err
	case <-ctx.Done():
		t.Fatalf("watch did not end after the record finished; got %v", got)
	}
	return got, nil
}

// A task watch served by a replica that installs a snapshot sends the events it missed
// and goes on, instead of failing the client's stream or skipping them.
func TestWatchTaskResumesAfterErrCompacted(t *testing.T) {
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	gs := &gapStore{Store: teststore.New(t), compact: make(chan struct{})}
	svc := tasks.New(gs, nodes.New(gs, nil), nil)
	setState := func(done bool) {
		state := map[bool]taskv1.TaskState{false: taskv1.TaskState_TASK_STATE_RUNNING, true: taskv1.TaskState_TASK_STATE_SUCCEEDED}[done]
		b, _ := proto.Marshal(&apiv1.TaskRecord{Task: &taskv1.Task{Id: "t1", Node: "n1"}, State: state})
		if _, err := gs.Txn(ctx, store.Txn{Then: []store.Op{store.Put(tasks.Prefix+"t1", b)}}); err != nil {
			t.Fatal(err)
		}
	}
	logLine := func(text string) {
		ev := &taskv1.TaskEvent{TaskId: "t1", Time: timestamppb.Now(), Event: &taskv1.TaskEvent_Log{Log: &taskv1.LogLine{Stream: "stdout", Text: text}}}
		if err := svc.AppendEvents(ctx, []*taskv1.TaskEvent{ev}); err != nil {
			t.Fatal(err)
		}
	}
	srv := &api.TaskServer{Tasks: svc, Store: gs}
	got, err := watchGap(t, ctx, gs, setState, logLine,
		func(st *watchStream[apiv1.WatchTaskResponse]) error {
			return srv.WatchTask(&apiv1.WatchTaskRequest{Id: "t1"}, st)
		},
		func(m *apiv1.WatchTaskResponse) string {
			if ev := m.GetEvent(); ev != nil {
				return ev.GetLog().GetText()
			}
			return m.GetTask().GetState().String()
		})
	if want := "[one TASK_STATE_RUNNING two three four TASK_STATE_SUCCEEDED]"; fmt.Sprint(got) != want {
		t.Fatalf("client got %v, want %s", got, want)
	}
	if err != nil && !errors.Is(err, context.Canceled) {
		t.Fatalf("watch ended with %v", err)
	}
}

// The same for a workflow watch: the events and the workflow change it missed arrive.
func TestWatchWorkflowResumesAfterErrCompacted(t *testing.T) {
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	gs := &gapStore{Store: teststore.New(t), compact: make(chan struct{})}
	reg := nodes.New(gs, nil)
	ts := tasks.New(gs, reg, nil)
	setState := func(done bool) {
		state := map[bool]storagev1.WorkflowRecordState{false: storagev1.WorkflowRecordState_WORKFLOW_RECORD_STATE_RUNNING, true: storagev1.WorkflowRecordState_WORKFLOW_RECORD_STATE_SUCCEEDED}[done]
		b, _ := proto.Marshal(&storagev1.WorkflowRecord{Id: "wf-1", State: state})
		if _, err := gs.Txn(ctx, store.Txn{Then: []store.Op{store.Put(workflows.Prefix+"wf-1", b)}}); err != nil {
			t.Fatal(err)
		}
	}
	logLine := func(text string) {
		ev := &taskv1.TaskEvent{TaskId: "wf-1.n1.preflight.1", Time: timestamppb.Now(), Event: &taskv1.TaskEvent_Log{Log: &taskv1.LogLine{Stream: "stdout", Text: text}}}
		if err := ts.AppendEvents(ctx, []*taskv1.TaskEvent{ev}); err != nil {
			t.Fatal(err)
		}
	}
	srv := &api.WorkflowServer{Workflows: workflows.New(gs, reg, ts, nil), Store: gs}
	got, err := watchGap(t, ctx, gs, setState, logLine,
		func(st *watchStream[apiv1.WatchWorkflowResponse]) error {
			return srv.WatchWorkflow(&apiv1.WatchWorkflowRequest{Id: "wf-1"}, st)
		},
		func(m *apiv1.WatchWorkflowResponse) string {
			if ev := m.GetEvent(); ev != nil {
				return ev.GetLog().GetText()
			}
			return m.GetWorkflow().GetState().String()
		})
	if want := "[one WORKFLOW_STATE_RUNNING two three four WORKFLOW_STATE_SUCCEEDED]"; fmt.Sprint(got) != want {
		t.Fatalf("client got %v, want %s", got, want)
	}
	if err != nil {
		t.Fatalf("watch ended with %v", err)
	}
}

// A workflow's last log lines reach its watchers before its final state, which ends the
// stream: the events and the workflow come from two watches read in no particular order.
func TestWatchWorkflowSendsEveryEventBeforeTheEnd(t *testing.T) {
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	st := teststore.New(t)
	reg := nodes.New(st, nil)
	ts := tasks.New(st, reg, nil)
	srv := &api.WorkflowServer{Workflows: workflows.New(st, reg, ts, nil), Store: st}
	for round := range 10 {
		id := fmt.Sprintf("wf-end-%d", round)
		put := func(state storagev1.WorkflowRecordState) {
			b, _ := proto.Marshal(&storagev1.WorkflowRecord{Id: id, State: state})
			if _, err := st.Txn(ctx, store.Txn{Then: []store.Op{store.Put(workflows.Prefix+id, b)}}); err != nil {
				t.Fatal(err)
			}
		}
		put(storagev1.WorkflowRecordState_WORKFLOW_RECORD_STATE_RUNNING)
		// A slow client: nothing is read while the lines and the end are written, so both
		// watches have work waiting when the server next looks.
		stream := &watchStream[apiv1.WatchWorkflowResponse]{ctx: ctx, got: make(chan *apiv1.WatchWorkflowResponse)}
		done := make(chan error, 1)
		go func() { done <- srv.WatchWorkflow(&apiv1.WatchWorkflowRequest{Id: id}, stream) }()
		if m := <-stream.got; m.GetWorkflow().GetState() != apiv1.WorkflowState_WORKFLOW_STATE_RUNNING {
			t.Fatalf("first message %v", m)
		}
		const lines = 100
		for i := range lines {
			ev := &taskv1.TaskEvent{TaskId: id + ".n1.join.1", Time: timestamppb.Now(), Event: &taskv1.TaskEvent_Log{Log: &taskv1.LogLine{Stream: "stdout", Text: fmt.Sprint(i)}}}
			if err := ts.AppendEvents(ctx, []*taskv1.TaskEvent{ev}); err != nil {
				t.Fatal(err)
			}
		}
		put(storagev1.WorkflowRecordState_WORKFLOW_RECORD_STATE_SUCCEEDED)
		var events int
	read:
		for {
			select {
			case m := <-stream.got:
				if m.GetEvent() != nil {
					events++
				}
				if m.GetWorkflow() != nil && events != lines {
					t.Fatalf("round %d: the final state came after %d of the %d log lines", round, events, lines)
				}
			case err := <-done:
				if err != nil {
					t.Fatal(err)
				}
				break read
			}
		}
		if events != lines {
			t.Fatalf("round %d: %d log lines, want %d", round, events, lines)
		}
	}
}

// endsOnList runs hook once, when the task's events are first listed.
type endsOnList struct {
	store.Store
	once sync.Once
	hook func()
}

func (e *endsOnList) List(ctx context.Context, prefix string, opts ...store.ReadOption) ([]*store.KV, int64, error) {
	if prefix == tasks.EventsPrefix+"t1/" {
		e.once.Do(e.hook)
	}
	return e.Store.List(ctx, prefix, opts...)
}

// A task that ends while its watch is reading it (a ping ends in milliseconds) is watched
// to its end: the watch used to read the record, then the events, and start watching after
// both, so an end between the two reads reached the client neither way and it waited for
// ever (deckctl task run NODE ping hung now and then on a busy machine).
func TestWatchTaskThatEndsWhileItIsRead(t *testing.T) {
	ctx, cancel := context.WithTimeout(context.Background(), 20*time.Second)
	defer cancel()
	base := teststore.New(t)
	put := func(state taskv1.TaskState) {
		b, _ := proto.Marshal(&apiv1.TaskRecord{Task: &taskv1.Task{Id: "t1", Node: "n1"}, State: state})
		if _, err := base.Txn(ctx, store.Txn{Then: []store.Op{store.Put(tasks.Prefix+"t1", b)}}); err != nil {
			t.Error(err)
		}
	}
	put(taskv1.TaskState_TASK_STATE_RUNNING)
	st := &endsOnList{Store: base, hook: func() { put(taskv1.TaskState_TASK_STATE_SUCCEEDED) }}
	srv := &api.TaskServer{Tasks: tasks.New(st, nodes.New(st, nil), nil), Store: st}
	stream := &watchStream[apiv1.WatchTaskResponse]{ctx: ctx, got: make(chan *apiv1.WatchTaskResponse, 100)}
	done := make(chan error, 1)
	go func() { done <- srv.WatchTask(&apiv1.WatchTaskRequest{Id: "t1"}, stream) }()
	for {
		select {
		case m := <-stream.got:
			if m.GetTask().GetState() == taskv1.TaskState_TASK_STATE_SUCCEEDED {
				return
			}
		case <-ctx.Done():
			t.Fatal("the watch never sent the task's end")
		}
	}
}
