package tasks

import (
	"slices"
	"testing"
	"time"

	"google.golang.org/protobuf/types/known/timestamppb"

	apiv1 "github.com/deckhandhq/deckhand/proto/deckhand/api/v1"
	taskv1 "github.com/deckhandhq/deckhand/proto/deckhand/task/v1"
)

func TestExpired(t *testing.T) {
	now := time.Date(2026, 11, 30, 12, 0, 0, 0, time.UTC)
	rec := func(id string, state taskv1.TaskState, age time.Duration, wf string) *apiv1.TaskRecord {
		return &apiv1.TaskRecord{Task: &taskv1.Task{Id: id, WorkflowId: wf}, State: state, Updated: timestamppb.New(now.Add(-age))}
	}
	const (
		ok      = taskv1.TaskState_TASK_STATE_SUCCEEDED
		failed  = taskv1.TaskState_TASK_STATE_FAILED
		running = taskv1.TaskState_TASK_STATE_RUNNING
		pending = taskv1.TaskState_TASK_STATE_PENDING
		day     = 24 * time.Hour
	)
	keepWF := func(r *apiv1.TaskRecord) bool { return r.GetTask().GetWorkflowId() == "wf-active" }
	for _, tc := range []struct {
		name string
		recs []*apiv1.TaskRecord
		r    Retention
		want []string
	}{
		{"young and few: all kept", []*apiv1.TaskRecord{rec("a", ok, time.Hour, ""), rec("b", failed, 6*day, "")}, DefaultRetention(), nil},
		{"older than the period", []*apiv1.TaskRecord{rec("a", ok, 8*day, ""), rec("b", failed, 6*day, "")}, DefaultRetention(), []string{"a"}},
		{"unfinished tasks are never deleted", []*apiv1.TaskRecord{rec("a", running, 30*day, ""), rec("b", pending, 30*day, "")}, Retention{Period: day, Count: 1}, nil},
		{"beyond the count, oldest first", []*apiv1.TaskRecord{rec("a", ok, 3*time.Hour, ""), rec("b", ok, time.Hour, ""), rec("c", ok, 2*time.Hour, ""), rec("d", running, 5*time.Hour, "")},
			Retention{Period: day, Count: 2}, []string{"a"}},
		{"tasks of an unfinished workflow are kept", []*apiv1.TaskRecord{rec("wf-active.n1.preflight.1", ok, 30*day, "wf-active"), rec("wf-old.n1.preflight.1", ok, 30*day, "wf-old")},
			DefaultRetention(), []string{"wf-old.n1.preflight.1"}},
		{"kept ones do not count", []*apiv1.TaskRecord{rec("k", ok, time.Minute, "wf-active"), rec("a", ok, time.Hour, ""), rec("b", ok, 2*time.Hour, "")},
			Retention{Period: day, Count: 1}, []string{"b"}},
	} {
		got := Expired(tc.recs, now, tc.r, keepWF)
		slices.Sort(got)
		if !slices.Equal(got, tc.want) {
			t.Errorf("%s: expired %v, want %v", tc.name, got, tc.want)
		}
	}
}
