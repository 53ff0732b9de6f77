package workflows

import (
	"testing"
	"time"

	"google.golang.org/protobuf/proto"
	"google.golang.org/protobuf/reflect/protoreflect"
	"google.golang.org/protobuf/types/known/durationpb"
	"google.golang.org/protobuf/types/known/timestamppb"

	apiv1 "github.com/deckhandhq/deckhand/proto/deckhand/api/v1"
	storagev1 "github.com/deckhandhq/deckhand/proto/deckhand/storage/v1"
	taskv1 "github.com/deckhandhq/deckhand/proto/deckhand/task/v1"
)

// apiOnly are API fields that are not in the records (the step's live progress comes from
// its task's events).
var apiOnly = map[string]bool{"deckhand.api.v1.Step.progress": true}

// The records keep the field numbers of the API messages the engine stored before: a
// controller upgraded over a store full of old records reads every workflow as it was.
func TestRecordsReadWhatOlderControllersStored(t *testing.T) {
	for _, pair := range []struct {
		api, rec protoreflect.MessageDescriptor
	}{
		{(&apiv1.Workflow{}).ProtoReflect().Descriptor(), (&storagev1.WorkflowRecord{}).ProtoReflect().Descriptor()},
		{(&apiv1.Step{}).ProtoReflect().Descriptor(), (&storagev1.StepRecord{}).ProtoReflect().Descriptor()},
		{(&apiv1.StepInput{}).ProtoReflect().Descriptor(), (&storagev1.StepInputRecord{}).ProtoReflect().Descriptor()},
	} {
		fs := pair.api.Fields()
		for i := range fs.Len() {
			f := fs.Get(i)
			if apiOnly[string(f.FullName())] {
				if pair.rec.Fields().ByNumber(f.Number()) != nil {
					t.Errorf("%s: number %d is used by the record: older records never stored it, so reserve it", f.FullName(), f.Number())
				}
				continue
			}
			r := pair.rec.Fields().ByNumber(f.Number())
			if r == nil || r.Name() != f.Name() || r.Kind() != f.Kind() || r.Cardinality() != f.Cardinality() || r.IsMap() != f.IsMap() {
				t.Errorf("%s (%d): the record has %v at that number; a stored workflow would not read back", f.FullName(), f.Number(), r)
			}
		}
	}

	old := &apiv1.Workflow{Id: "wf-old", State: apiv1.WorkflowState_WORKFLOW_STATE_FAILED, FailedStep: "n1/join", Nodes: []string{"n1"}, Concurrency: 2,
		Created: timestamppb.New(t0), CreatedBy: "alice", Error: &taskv1.TaskError{Reason: "JOIN_FAILED"},
		Spec: &apiv1.WorkflowSpec{Kind: &apiv1.WorkflowSpec_Join{Join: &apiv1.JoinWorkflow{Node: "n1"}}},
		Steps: []*apiv1.Step{{Name: "n1/join", Node: "n1", DependsOn: []string{"n1/token"}, Task: joinTask(), State: apiv1.StepState_STEP_STATE_FAILED,
			Attempts: 3, MaxAttempts: 3, Timeout: durationpb.New(time.Minute), TaskId: "wf-old.n1.join.3", Outputs: map[string]string{"joined": ""},
			Inputs: []*apiv1.StepInput{{Field: "token", Step: "n1/token", Output: "token"}}, Always: true, Ephemeral: true, ContinueOnFailure: true,
			NodeFrom: "n1/token", AnyControlPlane: true, NotBefore: timestamppb.New(t0), Lane: "n1", Summary: "join", Started: timestamppb.New(t0),
			Changes: []*taskv1.Change{{Kind: "file", Target: "/etc/kubernetes"}}}}}
	b, err := proto.Marshal(old)
	if err != nil {
		t.Fatal(err)
	}
	var rec storagev1.WorkflowRecord
	if err := proto.Unmarshal(b, &rec); err != nil {
		t.Fatal(err)
	}
	if len(rec.ProtoReflect().GetUnknown()) > 0 || len(rec.GetSteps()) != 1 || len(rec.GetSteps()[0].ProtoReflect().GetUnknown()) > 0 {
		t.Fatalf("an old record read with unknown fields: %v", &rec)
	}
	if got := View(&rec); !proto.Equal(got, old) {
		t.Errorf("the view of an old record:\n%v\nwant\n%v", got, old)
	}
}

// Every field of a record is shown by the view unless it is listed here as internal, and
// every API field is filled: a field added to the records is a decision about the API.
func TestViewShowsEveryRecordField(t *testing.T) {
	internal := map[string]bool{} // none today
	populated := func(m proto.Message) map[protoreflect.FieldNumber]bool {
		set := map[protoreflect.FieldNumber]bool{}
		m.ProtoReflect().Range(func(f protoreflect.FieldDescriptor, _ protoreflect.Value) bool {
			set[f.Number()] = true
			return true
		})
		return set
	}
	rec := &storagev1.StepRecord{}
	fill(t, rec.ProtoReflect())
	v := viewStep(rec)
	shown := populated(v)
	fs := rec.ProtoReflect().Descriptor().Fields()
	for i := range fs.Len() {
		if f := fs.Get(i); !shown[f.Number()] && !internal[string(f.FullName())] {
			t.Errorf("%s is not in the API view: show it in viewStep, or list it as internal here", f.FullName())
		}
	}
	w := &storagev1.WorkflowRecord{}
	fill(t, w.ProtoReflect())
	shown = populated(View(w))
	fs = w.ProtoReflect().Descriptor().Fields()
	for i := range fs.Len() {
		if f := fs.Get(i); !shown[f.Number()] && !internal[string(f.FullName())] {
			t.Errorf("%s is not in the API view: show it in View, or list it as internal here", f.FullName())
		}
	}
}

// fill sets every field of m to a non-zero value (one level of messages, one list item).
func fill(t *testing.T, m protoreflect.Message) {
	t.Helper()
	fs := m.Descriptor().Fields()
	for i := range fs.Len() {
		f := fs.Get(i)
		switch {
		case f.IsMap():
			m.Mutable(f).Map().Set(protoreflect.ValueOfString("k").MapKey(), protoreflect.ValueOfString("v"))
		case f.IsList() && f.Kind() == protoreflect.MessageKind:
			m.Mutable(f).List().Append(protoreflect.ValueOfMessage(m.Mutable(f).List().NewElement().Message()))
		case f.IsList():
			m.Mutable(f).List().Append(protoreflect.ValueOfString("x"))
		case f.Kind() == protoreflect.MessageKind:
			m.Mutable(f)
		case f.Kind() == protoreflect.StringKind:
			m.Set(f, protoreflect.ValueOfString("x"))
		case f.Kind() == protoreflect.BoolKind:
			m.Set(f, protoreflect.ValueOfBool(true))
		case f.Kind() == protoreflect.Uint32Kind:
			m.Set(f, protoreflect.ValueOfUint32(1))
		case f.Kind() == protoreflect.EnumKind:
			m.Set(f, protoreflect.ValueOfEnum(1))
		default:
			t.Fatalf("fill: %s: kind %v", f.FullName(), f.Kind())
		}
	}
}
