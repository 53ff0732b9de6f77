package tasks

import (
	"fmt"
	"time"

	"google.golang.org/protobuf/encoding/protowire"
	"google.golang.org/protobuf/proto"
	"google.golang.org/protobuf/reflect/protoreflect"

	apiv1 "github.com/deckhandhq/deckhand/proto/deckhand/api/v1"
	taskv1 "github.com/deckhandhq/deckhand/proto/deckhand/task/v1"
	"github.com/deckhandhq/deckhand/store"
)

// Head is what most followers of task records look at: which task, on which node, of which
// workflow, in which state. Peek reads it without decoding the spec, the result or the
// events (a routes task's spec carries a route to every other node: decoding each record
// in full on every change was a quarter of the controller's CPU in a 500-node apply).
type Head struct {
	ID, Node, WorkflowID string
	State                taskv1.TaskState
	// HasResult: the record holds a result (an ended task's).
	HasResult bool
}

// The field numbers Peek reads, from the generated descriptors.
var (
	recordTask    = fieldNumber((&apiv1.TaskRecord{}).ProtoReflect().Descriptor(), "task")
	recordState   = fieldNumber((&apiv1.TaskRecord{}).ProtoReflect().Descriptor(), "state")
	recordResult  = fieldNumber((&apiv1.TaskRecord{}).ProtoReflect().Descriptor(), "result")
	recordUpdated = fieldNumber((&apiv1.TaskRecord{}).ProtoReflect().Descriptor(), "updated")
	taskID        = fieldNumber((&taskv1.Task{}).ProtoReflect().Descriptor(), "id")
	taskNode      = fieldNumber((&taskv1.Task{}).ProtoReflect().Descriptor(), "node")
	taskWF        = fieldNumber((&taskv1.Task{}).ProtoReflect().Descriptor(), "workflow_id")
	taskSpec      = fieldNumber((&taskv1.Task{}).ProtoReflect().Descriptor(), "spec")
)

func fieldNumber(md protoreflect.MessageDescriptor, name protoreflect.Name) protowire.Number {
	f := md.Fields().ByName(name)
	if f == nil {
		panic(fmt.Sprintf("%s has no field %s", md.FullName(), name))
	}
	return f.Number()
}

// Peek reads the head of a stored task record; it agrees with Decode on every record
// Decode accepts (the last of a repeated field wins, as in proto3).
func Peek(kv *store.KV) (Head, error) {
	var h Head
	bad := func(what string) (Head, error) {
		return Head{}, fmt.Errorf("task record %s: %s", kv.Key, what)
	}
	b := kv.Value
	for len(b) > 0 {
		num, typ, n := protowire.ConsumeTag(b)
		if n < 0 {
			return bad("bad tag")
		}
		b = b[n:]
		switch {
		case num == recordTask && typ == protowire.BytesType:
			v, n := protowire.ConsumeBytes(b)
			if n < 0 {
				return bad("bad task")
			}
			if err := peekTask(v, &h); err != nil {
				return bad(err.Error())
			}
			b = b[n:]
		case num == recordResult && typ == protowire.BytesType:
			_, n := protowire.ConsumeBytes(b)
			if n < 0 {
				return bad("bad result")
			}
			h.HasResult = true
			b = b[n:]
		case num == recordState && typ == protowire.VarintType:
			v, n := protowire.ConsumeVarint(b)
			if n < 0 {
				return bad("bad state")
			}
			h.State = taskv1.TaskState(int32(v))
			b = b[n:]
		default:
			n := protowire.ConsumeFieldValue(num, typ, b)
			if n < 0 {
				return bad(fmt.Sprintf("bad field %d", num))
			}
			b = b[n:]
		}
	}
	return h, nil
}

// peekTask reads a Task's ID, node and workflow ID into h; a message field seen twice is
// merged, so a later occurrence sets only the fields it carries.
func peekTask(b []byte, h *Head) error {
	for len(b) > 0 {
		num, typ, n := protowire.ConsumeTag(b)
		if n < 0 {
			return fmt.Errorf("bad task tag")
		}
		b = b[n:]
		if typ == protowire.BytesType && (num == taskID || num == taskNode || num == taskWF) {
			v, n := protowire.ConsumeBytes(b)
			if n < 0 {
				return fmt.Errorf("bad task field %d", num)
			}
			switch num {
			case taskID:
				h.ID = string(v)
			case taskNode:
				h.Node = string(v)
			case taskWF:
				h.WorkflowID = string(v)
			}
			b = b[n:]
			continue
		}
		n = protowire.ConsumeFieldValue(num, typ, b)
		if n < 0 {
			return fmt.Errorf("bad task field %d", num)
		}
		b = b[n:]
	}
	return nil
}

// amendment is what an acknowledgement or a result changes in a task record, encoded to be
// appended to the stored record: a protobuf parser merges concatenated encodings of a
// message (a scalar's last value wins; a message field merges into the one before it), so
// the record takes the change without the spec being decoded and encoded again (a routes
// task's spec carries a route to every other node; an agent's acknowledgement and result
// did both, for every task). The result goes only into a record that holds none (merged
// into an earlier one it would mix the two); updated is written with both of its fields,
// so that it replaces the creation time's rather than merging with it.
func amendment(state taskv1.TaskState, updated time.Time, result *taskv1.TaskResult) ([]byte, error) {
	b := protowire.AppendTag(nil, recordState, protowire.VarintType)
	b = protowire.AppendVarint(b, uint64(state))
	var ts []byte
	ts = protowire.AppendTag(ts, 1, protowire.VarintType) // google.protobuf.Timestamp.seconds
	ts = protowire.AppendVarint(ts, uint64(updated.Unix()))
	ts = protowire.AppendTag(ts, 2, protowire.VarintType) // nanos, also when 0
	ts = protowire.AppendVarint(ts, uint64(updated.Nanosecond()))
	b = protowire.AppendTag(b, recordUpdated, protowire.BytesType)
	b = protowire.AppendBytes(b, ts)
	if result != nil {
		rb, err := proto.Marshal(result)
		if err != nil {
			return nil, err
		}
		b = protowire.AppendTag(b, recordResult, protowire.BytesType)
		b = protowire.AppendBytes(b, rb)
	}
	return b, nil
}

// DecodeWithoutSpec decodes a stored task record but its task's spec, which it leaves nil:
// what the workflow engine reads of its steps' tasks (their state, result and whose they
// are; the step holds the spec). The spec is skipped on the wire, not decoded (a routes
// task's carries a route to every other node). It accepts what Decode accepts.
func DecodeWithoutSpec(kv *store.KV) (*apiv1.TaskRecord, error) {
	bad := func(what string) (*apiv1.TaskRecord, error) {
		return nil, fmt.Errorf("task record %s: %s", kv.Key, what)
	}
	in := kv.Value
	out := make([]byte, 0, 256)
	for len(in) > 0 {
		num, typ, n := protowire.ConsumeTag(in)
		if n < 0 {
			return bad("bad tag")
		}
		field := in
		in = in[n:]
		if num == recordTask && typ == protowire.BytesType {
			v, n := protowire.ConsumeBytes(in)
			if n < 0 {
				return bad("bad task")
			}
			in = in[n:]
			task, err := withoutField(v, taskSpec)
			if err != nil {
				return bad(err.Error())
			}
			out = protowire.AppendTag(out, num, typ)
			out = protowire.AppendBytes(out, task)
			continue
		}
		n = protowire.ConsumeFieldValue(num, typ, in)
		if n < 0 {
			return bad(fmt.Sprintf("bad field %d", num))
		}
		in = in[n:]
		out = append(out, field[:len(field)-len(in)]...)
	}
	rec := &apiv1.TaskRecord{}
	if err := proto.Unmarshal(out, rec); err != nil {
		return bad(err.Error())
	}
	return rec, nil
}

// withoutField returns message b without its field num (every occurrence).
func withoutField(b []byte, num protowire.Number) ([]byte, error) {
	out := make([]byte, 0, 128)
	for len(b) > 0 {
		n0, typ, n := protowire.ConsumeTag(b)
		if n < 0 {
			return nil, fmt.Errorf("bad task tag")
		}
		m := protowire.ConsumeFieldValue(n0, typ, b[n:])
		if m < 0 {
			return nil, fmt.Errorf("bad task field %d", n0)
		}
		if n0 != num {
			out = append(out, b[:n+m]...)
		}
		b = b[n+m:]
	}
	return out, nil
}
