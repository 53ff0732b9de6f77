package api

import (
	"errors"
	"strings"
	"testing"

	"google.golang.org/protobuf/types/known/durationpb"

	apiv1 "github.com/deckhandhq/deckhand/proto/deckhand/api/v1"
)

// An upgrade request is refused at the edge naming the field; whether the release is
// supported is the upgrade rules' to say (with the rule's name).
func TestUpgradeWorkflowValidation(t *testing.T) {
	good := func() *apiv1.UpgradeWorkflow {
		return &apiv1.UpgradeWorkflow{KubernetesVersion: "v1.34.12", MaxUnavailable: "25%", DrainTimeout: durationpb.New(0),
			Sha256: map[string]string{"kubelet": strings.Repeat("a", 64)}}
	}
	spec := func(u *apiv1.UpgradeWorkflow) *apiv1.WorkflowSpec {
		return &apiv1.WorkflowSpec{Kind: &apiv1.WorkflowSpec_Upgrade{Upgrade: u}}
	}
	if err := validateWorkflow(spec(good())); err != nil {
		t.Fatalf("a good upgrade: %v", err)
	}
	unsupported := good()
	unsupported.KubernetesVersion = "v1.40.0"
	if err := validateWorkflow(spec(unsupported)); err != nil {
		t.Errorf("a well-formed release is the rules' to refuse, not the edge's: %v", err)
	}
	for _, c := range []struct {
		field string
		mod   func(u *apiv1.UpgradeWorkflow)
	}{
		{"spec.upgrade.kubernetes_version", func(u *apiv1.UpgradeWorkflow) { u.KubernetesVersion = "latest" }},
		{"spec.upgrade.kubernetes_version", func(u *apiv1.UpgradeWorkflow) { u.KubernetesVersion = "" }},
		{"spec.upgrade.max_unavailable", func(u *apiv1.UpgradeWorkflow) { u.MaxUnavailable = "0" }},
		{"spec.upgrade.max_unavailable", func(u *apiv1.UpgradeWorkflow) { u.MaxUnavailable = "101%" }},
		{"spec.upgrade.drain_timeout", func(u *apiv1.UpgradeWorkflow) { u.DrainTimeout = durationpb.New(-1) }},
		{`spec.upgrade.sha256["kube-proxy"]`, func(u *apiv1.UpgradeWorkflow) { u.Sha256["kube-proxy"] = strings.Repeat("a", 64) }},
		{`spec.upgrade.sha256["kubelet"]`, func(u *apiv1.UpgradeWorkflow) { u.Sha256["kubelet"] = "xyz" }},
	} {
		u := good()
		c.mod(u)
		var fe *fieldError
		if err := validateWorkflow(spec(u)); !errors.As(err, &fe) || fe.field != c.field {
			t.Errorf("%s: %v, want a field error naming it", c.field, err)
		}
	}
}
