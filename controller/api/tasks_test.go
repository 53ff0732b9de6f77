package api

import (
	"context"
	"testing"

	"github.com/deckhandhq/deckhand/internal/pki"
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
