package tasks

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"math/rand/v2"
	"strings"
	"testing"
	"time"

	"google.golang.org/protobuf/encoding/prototext"
	"google.golang.org/protobuf/proto"
	"google.golang.org/protobuf/types/known/timestamppb"

	"github.com/deckhandhq/deckhand/controller/nodes"
	"github.com/deckhandhq/deckhand/internal/testkit/teststore"
	apiv1 "github.com/deckhandhq/deckhand/proto/deckhand/api/v1"
	taskv1 "github.com/deckhandhq/deckhand/proto/deckhand/task/v1"
	"github.com/deckhandhq/deckhand/store"
)

// An agent's acknowledgement and result are appended to the stored record (see amendment),
// not decoded and encoded with it: whatever record, state and node, the stored record then
// decodes to exactly what changing the decoded record would give: the state, the result,
// the update time (also its nanoseconds when the new time has none), and nothing else; a
// second result is refused.
func TestAcksAndResultsAmendTheRecordExactly(t *testing.T) {
	st := teststore.New(t)
	clock := time.Date(2026, 12, 1, 10, 0, 0, 123456789, time.UTC)
	svc := New(st, nodes.New(st, nil), func() time.Time { return clock })
	ctx := context.Background()
	r := rand.New(rand.NewPCG(3, 4))
	states := []taskv1.TaskState{taskv1.TaskState_TASK_STATE_PENDING, taskv1.TaskState_TASK_STATE_RUNNING, taskv1.TaskState_TASK_STATE_SUCCEEDED,
		taskv1.TaskState_TASK_STATE_FAILED, taskv1.TaskState_TASK_STATE_CANCELLED}
	changed, refusals := 0, 0
	for i := range 400 {
		id := fmt.Sprintf("t-amend%04d", i)
		var routes []*taskv1.NetworkRoute
		for j := range r.IntN(30) {
			routes = append(routes, &taskv1.NetworkRoute{Cidr: fmt.Sprintf("10.244.%d.0/24", j), Via: "10.250.0.1"})
		}
		old := &apiv1.TaskRecord{
			Task:  &taskv1.Task{Id: id, Node: fmt.Sprintf("node-%d", r.IntN(2)), Spec: &taskv1.TaskSpec{Kind: &taskv1.TaskSpec_Network{Network: &taskv1.NetworkSpec{Provider: "bridge", Routes: routes}}}},
			State: states[r.IntN(2)], Created: timestamppb.New(clock.Add(-time.Hour)),
		}
		if r.IntN(4) == 0 {
			old.State = states[2+r.IntN(3)]
		}
		if r.IntN(2) == 0 {
			old.Updated = timestamppb.New(clock.Add(-time.Minute + 987*time.Nanosecond))
		}
		if Terminal(old.GetState()) || r.IntN(8) == 0 { // and now and then a result on a record still running
			old.Result = &taskv1.TaskResult{TaskId: id, State: taskv1.TaskState_TASK_STATE_FAILED, Outputs: map[string]string{"old": "1"}, Error: &taskv1.TaskError{Reason: "OLD"}}
		}
		b, err := proto.Marshal(old)
		if err != nil {
			t.Fatal(err)
		}
		if _, err := st.Txn(ctx, store.Txn{Then: []store.Op{store.Put(Prefix+id, b)}}); err != nil {
			t.Fatal(err)
		}
		clock = clock.Add(time.Duration(r.IntN(3)) * time.Second) // whole seconds too: nanos 0 must replace the old
		if r.IntN(3) == 0 {
			clock = clock.Truncate(time.Second)
		}
		node := old.GetTask().GetNode()
		if r.IntN(4) == 0 {
			node = "node-other"
		}
		want := proto.Clone(old).(*apiv1.TaskRecord)
		change := false
		if r.IntN(2) == 0 {
			if err := svc.Started(ctx, node, id); err != nil {
				t.Fatal(err)
			}
			if old.GetState() == taskv1.TaskState_TASK_STATE_PENDING && old.GetTask().GetNode() == node {
				want.State, change = taskv1.TaskState_TASK_STATE_RUNNING, true
			}
		} else {
			res := &taskv1.TaskResult{TaskId: id, State: states[r.IntN(len(states))], Outputs: map[string]string{"new": "2"}}
			if r.IntN(2) == 0 {
				res.Changes = []*taskv1.Change{{Kind: "route", Target: "10.244.1.0/24"}}
			}
			// What a writer that records the result with other changes writes (Finishing):
			// the same bytes as Finish, into the record as read, or nothing when Finish
			// writes nothing.
			kv0, _, err := st.Get(ctx, Prefix+id)
			if err != nil {
				t.Fatal(err)
			}
			fcmp, fput, frec, fok, ferr := Finishing(kv0, node, res, clock)
			err = svc.Finish(ctx, node, res)
			refused := !Terminal(old.GetState()) && old.GetTask().GetNode() == node && old.GetResult() != nil
			if refused != errors.Is(ferr, ErrHasResult) || (ferr != nil && !refused) {
				t.Fatalf("record %d: Finishing's error %v, Finish's %v", i, ferr, err)
			}
			kv1, _, gerr := st.Get(ctx, Prefix+id)
			if gerr != nil {
				t.Fatal(gerr)
			}
			wrote := kv1.ModRevision != kv0.ModRevision
			if fok != wrote {
				t.Fatalf("record %d: Finishing says write %v, Finish wrote %v", i, fok, wrote)
			}
			if fok {
				if fput.Key != Prefix+id || !bytes.Equal(fput.Value, kv1.Value) || fcmp.Key != Prefix+id || fcmp.ModRevision != kv0.ModRevision {
					t.Fatalf("record %d: Finishing's write %q (compare %+v) is not Finish's", i, fput.Key, fcmp)
				}
				if want, _ := DecodeWithoutSpec(kv1); !proto.Equal(frec, want) {
					t.Fatalf("record %d: Finishing's record\n%s\nwant\n%s", i, prototext.Format(frec), prototext.Format(want))
				}
			}
			switch {
			case refused:
				// A result is recorded once: the record is left as it was.
				if !errors.Is(err, ErrHasResult) || !strings.Contains(err.Error(), old.GetState().String()) {
					t.Fatalf("record %d: a second result into a %v record with one: %v, want an error naming the state", i, old.GetState(), err)
				}
			case err != nil:
				t.Fatal(err)
			case !Terminal(old.GetState()) && old.GetTask().GetNode() == node:
				want.State, want.Result, change = res.GetState(), res, true
				if !Terminal(want.State) {
					want.State = taskv1.TaskState_TASK_STATE_FAILED
				}
			}
			if refused {
				refusals++
			}
		}
		if change {
			changed++
			want.Updated = timestamppb.New(clock)
		}
		if change && old.GetResult() == nil {
			// Appended to, not written anew: the stored bytes begin with the old record's.
			kv, _, err := st.Get(ctx, Prefix+id)
			if err != nil || !bytes.HasPrefix(kv.Value, b) || len(kv.Value) == len(b) {
				t.Fatalf("record %d: the change was not appended to the stored record (%v)", i, err)
			}
		}
		got, _, err := svc.Get(ctx, id)
		if err != nil {
			t.Fatal(err)
		}
		if !proto.Equal(want, got) {
			t.Fatalf("record %d (%v on %s): stored record\n%s\nwant\n%s", i, old.GetState(), old.GetTask().GetNode(), prototext.Format(got), prototext.Format(want))
		}
	}
	if changed < 100 || refusals == 0 {
		t.Fatalf("%d of 400 records changed, %d second results refused: the test exercised too little", changed, refusals)
	}
	if err := svc.Started(ctx, "node-0", "t-missing0001"); !errors.Is(err, ErrNotFound) {
		t.Fatalf("acknowledging a task with no record: %v, want ErrNotFound", err)
	}
}
