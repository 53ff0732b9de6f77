package workflows

import (
	"testing"

	taskv1 "github.com/deckhandhq/deckhand/proto/deckhand/task/v1"
)

// Every task kind has a step timeout and a spec wrapper: a kind added to the proto but not
// here would run with the 10-minute fallback, or panic when a plan wraps it.
func TestEveryTaskKindIsDeclared(t *testing.T) {
	kinds := (&taskv1.TaskSpec{}).ProtoReflect().Descriptor().Oneofs().ByName("kind").Fields()
	for i := range kinds.Len() {
		fd := kinds.Get(i)
		if stepTimeouts[string(fd.Name())] == 0 {
			t.Errorf("task kind %s has no step timeout in stepTimeouts", fd.Name())
		}
		kind := (&taskv1.TaskSpec{}).ProtoReflect().NewField(fd).Message().Interface()
		func() {
			defer func() {
				if r := recover(); r != nil {
					t.Errorf("task kind %s: spec() cannot wrap it: %v", fd.Name(), r)
				}
			}()
			if got := KindOf(spec(kind)); got != string(fd.Name()) {
				t.Errorf("spec(%T) is kind %q, want %s", kind, got, fd.Name())
			}
		}()
	}
	if len(stepTimeouts) != kinds.Len() {
		t.Errorf("stepTimeouts has %d entries for %d task kinds", len(stepTimeouts), kinds.Len())
	}
}
