// Package tasksecrets declares, once, which parts of a task carry secrets: the spec fields
// marked (deckhand.task.v1.secret) = true in proto/deckhand/task/v1, read by reflection,
// and the secret task outputs (Outputs). The agent masks them in everything it reports,
// the API hides them from viewers, the workflow engine keeps them out of step records and
// the API's validation never echoes them.
package tasksecrets

import (
	"google.golang.org/protobuf/proto"
	"google.golang.org/protobuf/reflect/protoreflect"

	"github.com/deckhandhq/deckhand/internal/secret"
	"github.com/deckhandhq/deckhand/internal/taskkinds"
	taskv1 "github.com/deckhandhq/deckhand/proto/deckhand/task/v1"
)

// Output reports whether the task output named name carries a secret (a join token and a
// certificate key let anyone join machines to the Kubernetes cluster): internal/taskkinds
// declares them with each kind.
func Output(name string) bool { return taskkinds.SecretOutput(name) }

// MaskResult masks what a viewer may read of a result: the error, the non-secret outputs
// and the changes, by pattern and by value (m's values and the result's secret outputs).
// The secret outputs stay (the controller needs them and shows them to writers only). The
// agent masks its results with it, and a controller again as it receives them, for agents
// of versions that did not.
func MaskResult(res *taskv1.TaskResult, m *secret.Masker) {
	for k, v := range res.GetOutputs() {
		if Output(k) {
			m.Add(v)
		}
	}
	for k, v := range res.GetOutputs() {
		if !Output(k) {
			res.Outputs[k] = m.Mask(v)
		}
	}
	if e := res.GetError(); e != nil {
		e.Message, e.Hint = m.Mask(e.Message), m.Mask(e.Hint)
	}
	for _, c := range res.GetChanges() {
		c.Target, c.Detail = m.Mask(c.Target), m.Mask(c.Detail)
	}
}

// Field reports whether a spec field is marked secret in the proto.
func Field(fd protoreflect.FieldDescriptor) bool {
	v, _ := proto.GetExtension(fd.Options(), taskv1.E_Secret).(bool)
	return v
}

// Values returns the non-empty values of every secret field set in m, at any depth.
func Values(m proto.Message) []string {
	var out []string
	if m != nil {
		walk(m.ProtoReflect(), func(msg protoreflect.Message, fd protoreflect.FieldDescriptor, v protoreflect.Value) {
			if s := v.String(); s != "" {
				out = append(out, s)
			}
		})
	}
	return out
}

// Redact replaces the value of every set secret field in m, at any depth, with hidden, in
// place, and reports whether it replaced any.
func Redact(m proto.Message, hidden string) bool {
	changed := false
	if m != nil {
		walk(m.ProtoReflect(), func(msg protoreflect.Message, fd protoreflect.FieldDescriptor, v protoreflect.Value) {
			msg.Set(fd, protoreflect.ValueOfString(hidden))
			changed = true
		})
	}
	return changed
}

// walk calls f for every set secret string field of m and the messages below it.
func walk(m protoreflect.Message, f func(protoreflect.Message, protoreflect.FieldDescriptor, protoreflect.Value)) {
	m.Range(func(fd protoreflect.FieldDescriptor, v protoreflect.Value) bool {
		switch {
		case Field(fd) && fd.Kind() == protoreflect.StringKind && !fd.IsList() && !fd.IsMap():
			f(m, fd, v)
		case fd.Kind() != protoreflect.MessageKind && fd.Kind() != protoreflect.GroupKind:
		case fd.IsMap():
			if fd.MapValue().Kind() == protoreflect.MessageKind {
				v.Map().Range(func(_ protoreflect.MapKey, mv protoreflect.Value) bool {
					walk(mv.Message(), f)
					return true
				})
			}
		case fd.IsList():
			for i := range v.List().Len() {
				walk(v.List().Get(i).Message(), f)
			}
		default:
			walk(v.Message(), f)
		}
		return true
	})
}
