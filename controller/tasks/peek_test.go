package tasks

import (
	"fmt"
	"math/rand/v2"
	"testing"

	"google.golang.org/protobuf/proto"
	"google.golang.org/protobuf/types/known/timestamppb"

	apiv1 "github.com/deckhandhq/deckhand/proto/deckhand/api/v1"
	taskv1 "github.com/deckhandhq/deckhand/proto/deckhand/task/v1"
	"github.com/deckhandhq/deckhand/store"
)

// Peek reads what Decode reads of a record's head (and DecodeWithoutSpec all of it but the spec), whatever else the record carries, and
// also when a record was written as several pieces (proto merges them: the last wins).
func TestPeekAgreesWithDecode(t *testing.T) {
	r := rand.New(rand.NewPCG(1, 2))
	record := func() *apiv1.TaskRecord {
		var routes []*taskv1.NetworkRoute
		for i := range r.IntN(50) {
			routes = append(routes, &taskv1.NetworkRoute{Cidr: fmt.Sprintf("10.244.%d.0/24", i), Via: "10.250.0.1"})
		}
		rec := &apiv1.TaskRecord{State: taskv1.TaskState(r.IntN(6)), Created: timestamppb.Now(), ArtifactSize: uint64(r.IntN(3))}
		if r.IntN(5) > 0 {
			rec.Task = &taskv1.Task{Node: fmt.Sprintf("node-%d", r.IntN(9)), DryRun: r.IntN(2) == 0, Step: "node-1/routes",
				Spec: &taskv1.TaskSpec{Kind: &taskv1.TaskSpec_Network{Network: &taskv1.NetworkSpec{Provider: "bridge", Routes: routes}}}}
			if r.IntN(4) > 0 {
				rec.Task.Id = fmt.Sprintf("wf-a.node-%d.routes.1", r.IntN(9))
			}
			if r.IntN(2) == 0 {
				rec.Task.WorkflowId = "wf-a"
			}
		}
		if r.IntN(2) == 0 {
			rec.Result = &taskv1.TaskResult{TaskId: "x", State: taskv1.TaskState_TASK_STATE_SUCCEEDED, Outputs: map[string]string{"pod_cidr": "10.244.1.0/24"}}
		}
		return rec
	}
	for i := range 2000 {
		var b []byte
		for range 1 + r.IntN(3) { // pieces, merged on decode
			piece, err := proto.Marshal(record())
			if err != nil {
				t.Fatal(err)
			}
			b = append(b, piece...)
		}
		kv := &store.KV{Key: Prefix + "x", Value: b}
		rec, err := Decode(kv)
		if err != nil {
			t.Fatal(err)
		}
		h, err := Peek(kv)
		want := Head{ID: rec.GetTask().GetId(), Node: rec.GetTask().GetNode(), WorkflowID: rec.GetTask().GetWorkflowId(), State: rec.GetState(), HasResult: rec.GetResult() != nil}
		if err != nil || h != want {
			t.Fatalf("record %d: Peek = %+v, %v; Decode says %+v", i, h, err, want)
		}
		noSpec, err := DecodeWithoutSpec(kv)
		if rec.GetTask() != nil {
			rec.Task.Spec = nil
		}
		if err != nil || !proto.Equal(noSpec, rec) {
			t.Fatalf("record %d: DecodeWithoutSpec = %v, %v; Decode without the spec gives %v", i, noSpec, err, rec)
		}
	}
	// Damaged records are refused, never read past.
	good, _ := proto.Marshal(&apiv1.TaskRecord{Task: &taskv1.Task{Id: "a", Node: "n"}, State: taskv1.TaskState_TASK_STATE_RUNNING})
	for cut := 1; cut < len(good); cut++ {
		kv := &store.KV{Key: Prefix + "x", Value: good[:cut]}
		if _, derr := Decode(kv); derr != nil {
			if _, err := Peek(kv); err == nil {
				t.Errorf("a record cut at %d bytes: Decode refuses it (%v), Peek reads it", cut, derr)
			}
			if _, err := DecodeWithoutSpec(kv); err == nil {
				t.Errorf("a record cut at %d bytes: Decode refuses it (%v), DecodeWithoutSpec reads it", cut, derr)
			}
		}
	}
}
