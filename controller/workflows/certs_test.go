package workflows

import (
	"errors"
	"slices"
	"strings"
	"testing"

	apiv1 "github.com/deckhandhq/deckhand/proto/deckhand/api/v1"
	taskv1 "github.com/deckhandhq/deckhand/proto/deckhand/task/v1"
)

// The renewal goes through every control plane, or those asked for, in the cluster
// record's order; anything else is refused naming the field.
func TestDecideCertsRenew(t *testing.T) {
	cps := []string{"cp-1", "cp-2", "cp-3"}
	for _, c := range []struct {
		name       string
		cps, asked []string
		want       []string
		err        string
	}{
		{"every control plane", cps, nil, cps, ""},
		{"the record's order", cps, []string{"cp-3", "cp-1"}, []string{"cp-1", "cp-3"}, ""},
		{"one", cps, []string{"cp-2"}, []string{"cp-2"}, ""},
		{"a worker", cps, []string{"cp-1", "w-1"}, nil, `certs_renew.nodes[1]: "w-1" is not a control plane of the cluster (its control planes: cp-1, cp-2, cp-3)`},
		{"twice", cps, []string{"cp-1", "cp-1"}, nil, `certs_renew.nodes[1]: "cp-1" is given twice`},
		{"no control plane", nil, nil, nil, "records no control plane"},
	} {
		got, err := decideCertsRenew(c.cps, c.asked)
		if c.err != "" {
			if err == nil || !strings.Contains(err.Error(), c.err) {
				t.Errorf("%s: %v, want an error %q", c.name, err, c.err)
			}
			continue
		}
		if err != nil || !slices.Equal(got, c.want) {
			t.Errorf("%s: %v %v, want %v", c.name, got, err, c.want)
		}
	}
}

// A renewal's plan: the control planes' health first, then each control plane renewed after
// the one before, each held; none on a cluster without one, and a worker refused.
func TestCertsRenewSteps(t *testing.T) {
	cl := testCluster("cp-1", "cp-2", "w-1")
	cl.Nodes[1].Role = taskv1.NodeRole_NODE_ROLE_CONTROL_PLANE
	ws := &apiv1.WorkflowSpec{Kind: &apiv1.WorkflowSpec_CertsRenew{CertsRenew: &apiv1.CertsRenewWorkflow{}}}
	p, err := build(ws, cl, enrolledSet("cp-1", "cp-2", "w-1"))
	if err != nil {
		t.Fatal(err)
	}
	h := p.step("cp-1/health")
	if h == nil || !h.GetAnyControlPlane() || !slices.Equal(h.GetTask().GetClusterHealth().GetNodes(), []string{"cp-1", "cp-2"}) {
		t.Fatalf("health check: %v", h)
	}
	for n, dep := range map[string]string{"cp-1": "cp-1/health", "cp-2": "cp-1/renew"} {
		s := p.step(n + "/renew")
		if s == nil || s.GetTask().GetCertsRenew() == nil || s.GetNode() != n || !slices.Equal(s.GetDependsOn(), []string{dep}) {
			t.Errorf("%s/renew: %v, want a certs_renew on %s after %s", n, s, n, dep)
		}
	}
	if p.step("w-1/renew") != nil || !slices.Equal(p.nodes, []string{"cp-1", "cp-2"}) {
		t.Errorf("held %v, want the two control planes", p.nodes)
	}
	ws.GetCertsRenew().Nodes = []string{"w-1"}
	if _, err := build(ws, cl, enrolledSet("cp-1", "cp-2", "w-1")); !errors.Is(err, ErrInvalid) || !strings.Contains(err.Error(), "not a control plane") {
		t.Errorf("a worker's renewal: %v", err)
	}
	if _, err := build(ws, nil, enrolledSet("cp-1")); !errors.Is(err, ErrWrongState) {
		t.Errorf("a renewal without a cluster: %v", err)
	}
}
