package taskkinds

import (
	"slices"
	"testing"

	"google.golang.org/protobuf/reflect/protoreflect"

	taskv1 "github.com/deckhandhq/deckhand/proto/deckhand/task/v1"
)

// Every task kind in the proto is declared here once, and nothing else is: a kind added to
// the proto but not here would run without a step timeout, never refresh facts, or show its
// secret outputs.
func TestEveryTaskKindIsDeclaredOnce(t *testing.T) {
	fields := oneof().Fields()
	seen := map[string]bool{}
	for _, k := range kinds {
		if seen[k.Name] {
			t.Errorf("kind %s is declared twice", k.Name)
		}
		seen[k.Name] = true
		if fields.ByName(protoreflect.Name(k.Name)) == nil {
			t.Errorf("kind %s is not a field of the TaskSpec oneof", k.Name)
		}
		if k.StepTimeout <= 0 || k.Summary == "" {
			t.Errorf("kind %s has no step timeout or summary", k.Name)
		}
		for _, s := range k.Secret {
			if !slices.Contains(k.Outputs, s) {
				t.Errorf("kind %s: secret output %s is not among its outputs", k.Name, s)
			}
		}
	}
	for i := range fields.Len() {
		fd := fields.Get(i)
		if !seen[string(fd.Name())] {
			t.Errorf("task kind %s (proto) is not declared in taskkinds", fd.Name())
		}
		// Wrap and Of agree with the proto for every kind's message.
		m := (&taskv1.TaskSpec{}).ProtoReflect().NewField(fd).Message().Interface()
		s, err := Wrap(m)
		if err != nil || Of(s) != string(fd.Name()) {
			t.Errorf("Wrap(%T) = %v, %v; kind %q", m, s, err, Of(s))
		}
	}
	if _, err := Wrap(&taskv1.Task{}); err == nil {
		t.Error("Wrap took a message that is no task kind")
	}
	if Of(nil) != "" || Of(&taskv1.TaskSpec{}) != "" {
		t.Error("Of names a kind for an empty spec")
	}
	if !SecretOutput("token") || !SecretOutput("certificate_key") || SecretOutput("ca_cert_hash") {
		t.Error("SecretOutput does not match the declared secrets")
	}
}
