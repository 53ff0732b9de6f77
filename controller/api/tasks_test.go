package api

import (
	"context"
	"strings"
	"testing"

	"google.golang.org/protobuf/encoding/prototext"
	"google.golang.org/protobuf/proto"

	"github.com/deckhandhq/deckhand/internal/pki"
	"github.com/deckhandhq/deckhand/internal/tasksecrets"
	apiv1 "github.com/deckhandhq/deckhand/proto/deckhand/api/v1"
	taskv1 "github.com/deckhandhq/deckhand/proto/deckhand/task/v1"
)

func TestViewersDoNotSeeJoinSecrets(t *testing.T) {
	rec := &apiv1.TaskRecord{Result: &taskv1.TaskResult{Outputs: map[string]string{"token": "abcdef.0123456789abcdef", "certificate_key": "k", "ca_cert_hash": "sha256:x"}}}
	as := func(role string) context.Context {
		return context.WithValue(context.Background(), identityKey{}, pki.Identity{Name: "u", Role: role})
	}
	v := redact(as(pki.RoleViewer), rec)
	if v.GetResult().GetOutputs()["token"] == "abcdef.0123456789abcdef" || v.GetResult().GetOutputs()["certificate_key"] == "k" {
		t.Fatalf("viewer sees secrets: %v", v.GetResult().GetOutputs())
	}
	if v.GetResult().GetOutputs()["ca_cert_hash"] != "sha256:x" {
		t.Fatal("public output hidden")
	}
	if rec.GetResult().GetOutputs()["token"] != "abcdef.0123456789abcdef" {
		t.Fatal("redaction changed the stored record")
	}
	for _, role := range []string{pki.RoleAdmin, pki.RoleOperator} {
		if redact(as(role), rec).GetResult().GetOutputs()["token"] != "abcdef.0123456789abcdef" {
			t.Fatalf("%s cannot read the token", role)
		}
	}
}

// A viewer sees no value of any spec field marked secret, in any kind, and nothing else
// of the spec changes.
func TestViewersDoNotSeeSecretSpecFields(t *testing.T) {
	viewer := context.WithValue(context.Background(), identityKey{}, pki.Identity{Name: "u", Role: pki.RoleViewer})
	secrets := 0
	for kind, spec := range goodSpecs() {
		rec := &apiv1.TaskRecord{Task: &taskv1.Task{Id: "t", Node: "n1", Spec: spec}}
		vals := tasksecrets.Values(spec)
		secrets += len(vals)
		v := redact(viewer, rec)
		text := prototext.Format(v)
		for _, s := range vals {
			if strings.Contains(text, s) {
				t.Errorf("%s: a viewer sees the secret %q: %s", kind, s, text)
			}
		}
		if len(vals) == 0 && v != rec {
			t.Errorf("%s: a record without secrets was copied", kind)
		}
		// Only the secret fields differ.
		want := proto.Clone(spec).(*taskv1.TaskSpec)
		tasksecrets.Redact(want, "<redacted: admin or operator only>")
		if !proto.Equal(v.GetTask().GetSpec(), want) {
			t.Errorf("%s: the viewer's spec is %v, want %v", kind, v.GetTask().GetSpec(), want)
		}
		if !proto.Equal(rec.GetTask().GetSpec(), spec) {
			t.Errorf("%s: redaction changed the stored record", kind)
		}
	}
	if secrets == 0 {
		t.Fatal("no good spec holds a secret: the test checks nothing")
	}
}
