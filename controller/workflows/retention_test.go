package workflows

import (
	"context"
	"errors"
	"fmt"
	"testing"
	"time"

	"google.golang.org/protobuf/proto"
	"google.golang.org/protobuf/types/known/timestamppb"

	"github.com/deckhandhq/deckhand/controller/tasks"
	apiv1 "github.com/deckhandhq/deckhand/proto/deckhand/api/v1"
	taskv1 "github.com/deckhandhq/deckhand/proto/deckhand/task/v1"
	"github.com/deckhandhq/deckhand/store"
)

// The leader deletes finished task records past the retention, with their logs, and keeps
// running tasks and the tasks of a workflow that has not finished.
func TestRetentionRemovesOldFinishedTasksAndKeepsRunningOnes(t *testing.T) {
	f := newEngineFixture(t, "n1", "n2")
	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	wf, err := f.svc.Create(ctx, initSpec("n1"), "test") // a running workflow
	if err != nil {
		t.Fatal(err)
	}
	old := time.Now().Add(-8 * 24 * time.Hour)
	put := func(id, wfID string, state taskv1.TaskState, at time.Time) {
		rec := &apiv1.TaskRecord{Task: &taskv1.Task{Id: id, Node: "n2", WorkflowId: wfID, Spec: diagnosticsSpec()}, State: state,
			Created: timestamppb.New(at), Updated: timestamppb.New(at)}
		b, _ := proto.Marshal(rec)
		ev, _ := proto.Marshal(&taskv1.TaskEvent{TaskId: id, Event: &taskv1.TaskEvent_Log{Log: &taskv1.LogLine{Text: "line"}}})
		if _, err := f.st.Txn(ctx, store.Txn{Then: []store.Op{store.Put(tasks.Prefix+id, b), store.Put(tasks.EventsPrefix+id+"/0001", ev)}}); err != nil {
			t.Fatal(err)
		}
	}
	put("old-done", "", taskv1.TaskState_TASK_STATE_SUCCEEDED, old)
	put("old-failed", "", taskv1.TaskState_TASK_STATE_FAILED, old)
	put("old-running", "", taskv1.TaskState_TASK_STATE_RUNNING, old)
	put(wf.GetId()+".n1.preflight.1", wf.GetId(), taskv1.TaskState_TASK_STATE_SUCCEEDED, old)
	put("recent-done", "", taskv1.TaskState_TASK_STATE_SUCCEEDED, time.Now())
	for i := range 5 { // beyond a count of 3 finished: the two oldest of these go
		put(fmt.Sprintf("count-%d", i), "", taskv1.TaskState_TASK_STATE_SUCCEEDED, time.Now().Add(-time.Duration(i+1)*time.Minute))
	}

	f.e.Retention = tasks.Retention{Period: 7 * 24 * time.Hour, Count: 4}
	f.e.RetentionEvery = 10 * time.Millisecond
	go f.e.retain(ctx)

	gone := []string{"old-done", "old-failed", "count-3", "count-4"}
	kept := []string{"old-running", wf.GetId() + ".n1.preflight.1", "recent-done", "count-0", "count-1", "count-2"}
	deadline := time.Now().Add(10 * time.Second)
	for {
		var missing []string
		for _, id := range gone {
			if _, _, err := f.svc.tasks.Get(ctx, id); !errors.Is(err, tasks.ErrNotFound) {
				missing = append(missing, id)
			}
		}
		if len(missing) == 0 && f.svc.tasks.Deleted() == uint64(len(gone)) {
			break
		}
		if time.Now().After(deadline) {
			t.Fatalf("not deleted within 10s: %v (counter %d)", missing, f.svc.tasks.Deleted())
		}
		time.Sleep(20 * time.Millisecond) // polling the condition, not waiting for it
	}
	for _, id := range kept {
		if _, _, err := f.svc.tasks.Get(ctx, id); err != nil {
			t.Errorf("%s was deleted: %v", id, err)
		}
	}
	for _, id := range gone {
		if evs, _, err := f.svc.tasks.Events(ctx, id); err != nil || len(evs) != 0 {
			t.Errorf("%s: %d log events left (%v)", id, len(evs), err)
		}
	}
}
