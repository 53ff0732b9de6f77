package workflows

import (
	"context"
	"fmt"
	"io"
	"log/slog"
	"testing"

	"google.golang.org/protobuf/proto"
	"google.golang.org/protobuf/types/known/timestamppb"

	"github.com/deckhandhq/deckhand/controller/tasks"
	apiv1 "github.com/deckhandhq/deckhand/proto/deckhand/api/v1"
	storagev1 "github.com/deckhandhq/deckhand/proto/deckhand/storage/v1"
	taskv1 "github.com/deckhandhq/deckhand/proto/deckhand/task/v1"
	"github.com/deckhandhq/deckhand/store"
)

// More running steps finish between two passes than one write carries (the routes steps of
// a large cluster, finishing together): the engine records them over several passes, each
// write within etcd's limit, and the workflow ends. (A pass that wrote them all at once
// failed on etcd every time: the workflow ran for ever, holding its nodes.)
func TestManyStepsFinishingAtOnceEndTheWorkflow(t *testing.T) {
	backends(t, func(t *testing.T, st store.Store) {
		f := newCASFixture(st)
		ctx := context.Background()
		const id, n = "wf-burst", 150
		wf := &storagev1.WorkflowRecord{Id: id, Spec: initSpec("n1"), State: storagev1.WorkflowRecordState_WORKFLOW_RECORD_STATE_RUNNING, Nodes: []string{"n1"}}
		var recs []store.Op
		for i := range n {
			s := &storagev1.StepRecord{Name: fmt.Sprintf("p%03d/routes", i), Node: fmt.Sprintf("p%03d", i), MaxAttempts: 1, Attempts: 1,
				State: storagev1.StepRecordState_STEP_RECORD_STATE_RUNNING, Started: timestamppb.Now(), Task: diagnosticsSpec()}
			s.TaskId = taskID(id, s.GetName(), 1)
			wf.Steps = append(wf.Steps, s)
			b, err := proto.Marshal(&apiv1.TaskRecord{Task: &taskv1.Task{Id: s.GetTaskId(), Node: s.GetNode(), Spec: s.GetTask(), WorkflowId: id, Step: s.GetName()},
				State: taskv1.TaskState_TASK_STATE_SUCCEEDED, Result: &taskv1.TaskResult{TaskId: s.GetTaskId(), State: taskv1.TaskState_TASK_STATE_SUCCEEDED}})
			if err != nil {
				t.Fatal(err)
			}
			recs = append(recs, store.Put(tasks.Prefix+s.GetTaskId(), b))
		}
		if _, err := writeGuarded(ctx, f.st, recs, nil); err != nil {
			t.Fatal(err)
		}
		if err := writeSteps(ctx, f.st, wf); err != nil {
			t.Fatal(err)
		}
		ops, err := headerOps(wf)
		if err != nil {
			t.Fatal(err)
		}
		if _, err := f.st.Txn(ctx, store.Txn{Then: append(ops, store.Put(lockKey("n1"), []byte(id)))}); err != nil {
			t.Fatal(err)
		}

		e := NewEngine(f.svc, slog.New(slog.NewTextHandler(io.Discard, nil)))
		e.fence = store.Absent("/test/no-such-key")
		e.cache, e.tasks, e.dirty = map[string]*loaded{}, map[string]*apiv1.TaskRecord{}, make(chan dirtyMark, 1024)
		var last error
		for pass := 0; pass < 10; pass++ {
			last = e.reconcile(ctx, id)
			got, err := f.svc.Get(ctx, id)
			if err != nil {
				t.Fatal(err)
			}
			if got.GetState() == apiv1.WorkflowState_WORKFLOW_STATE_SUCCEEDED {
				if f.hs.maxOps > etcdMaxTxnOps {
					t.Fatalf("a pass wrote %d operations in one transaction; etcd accepts %d", f.hs.maxOps, etcdMaxTxnOps)
				}
				if _, _, err := st.Get(ctx, lockKey("n1")); err == nil {
					t.Fatal("the finished workflow still holds n1")
				}
				return
			}
		}
		t.Fatalf("%d steps whose tasks all succeeded: the workflow is still running after 10 passes (last pass: %v)", n, last)
	})
}

func TestFitting(t *testing.T) {
	op := func(size int) store.Op { return store.Put("k", make([]byte, size-1)) }
	ops := func(sizes ...int) []store.Op {
		var out []store.Op
		for _, s := range sizes {
			out = append(out, op(s))
		}
		return out
	}
	many := make([]int, 150)
	for i := range many {
		many[i] = 10
	}
	lim := store.TxnLimits{Ops: 128, Bytes: 1000} // 750 bytes for the operations
	for _, tc := range []struct {
		name      string
		lim       store.TxnLimits
		base, ops []store.Op
		want      int
	}{
		{"all fit", lim, nil, ops(100, 100, 100), 3},
		{"bytes: up to three quarters of the limit", lim, nil, ops(300, 300, 300), 2},
		{"an operation too big alone still goes (the store names the limit)", lim, nil, ops(5000, 10), 1},
		{"beside a base, one too big waits", lim, ops(100), ops(700), 0},
		{"the base's bytes count", lim, ops(500), ops(200, 100), 1},
		{"at most stepBatch on a store without an operations limit", store.TxnLimits{}, nil, ops(many...), stepBatch},
		{"else as many as the store takes", store.TxnLimits{Ops: 2048}, nil, ops(many...), len(many)},
		{"the base's operations count", store.TxnLimits{Ops: 128}, ops(many[:100]...), ops(many...), 28},
		{"a full base leaves none", store.TxnLimits{Ops: 2}, ops(1, 1), ops(1), 0},
	} {
		if got := fitting(tc.lim, tc.base, tc.ops); got != tc.want {
			t.Errorf("%s: %d fit, want %d", tc.name, got, tc.want)
		}
	}
	if got := fittingLast(lim, nil, ops(700, 300, 300)); got != 2 {
		t.Errorf("fittingLast: %d of the last fit, want 2", got)
	}
}
