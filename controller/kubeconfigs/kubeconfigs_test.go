package kubeconfigs_test

import (
	"slices"
	"testing"
	"time"

	"github.com/deckhandhq/deckhand/controller/kubeconfigs"
	"github.com/deckhandhq/deckhand/internal/kubeuser"
	apiv1 "github.com/deckhandhq/deckhand/proto/deckhand/api/v1"
	taskv1 "github.com/deckhandhq/deckhand/proto/deckhand/task/v1"
)

func TestSigners(t *testing.T) {
	cp, w := taskv1.NodeRole_NODE_ROLE_CONTROL_PLANE, taskv1.NodeRole_NODE_ROLE_WORKER
	ready, down := apiv1.NodeState_NODE_STATE_READY, apiv1.NodeState_NODE_STATE_NOT_READY
	cl := &apiv1.Cluster{Nodes: []*apiv1.ClusterNode{{Name: "cp-1", Role: cp}, {Name: "w-1", Role: w}, {Name: "cp-2", Role: cp}, {Name: "cp-3", Role: cp}}}
	for _, c := range []struct {
		name  string
		state map[string]apiv1.NodeState
		want  []string
	}{
		{"all Ready: control planes in record order", map[string]apiv1.NodeState{"cp-1": ready, "w-1": ready, "cp-2": ready, "cp-3": ready}, []string{"cp-1", "cp-2", "cp-3"}},
		{"the first is down", map[string]apiv1.NodeState{"cp-1": down, "w-1": ready, "cp-2": ready}, []string{"cp-2"}},
		{"only a worker is Ready: never a worker", map[string]apiv1.NodeState{"w-1": ready}, nil},
		{"no agents known", nil, nil},
	} {
		if got := kubeconfigs.Signers(cl, c.state); !slices.Equal(got, c.want) {
			t.Errorf("%s: %v, want %v", c.name, got, c.want)
		}
	}
	if got := kubeconfigs.Signers(nil, nil); got != nil {
		t.Errorf("no cluster: %v", got)
	}
}

func TestServerAndClusterName(t *testing.T) {
	for _, c := range []struct {
		spec         *taskv1.ClusterSpec
		signer, want string
	}{
		{&taskv1.ClusterSpec{ControlPlaneEndpoint: "lb.example:6443"}, "https://10.0.0.1:6443", "https://lb.example:6443"},
		{&taskv1.ClusterSpec{ControlPlaneEndpoint: "[fd00::1]:6443"}, "https://10.0.0.1:6443", "https://[fd00::1]:6443"},
		{&taskv1.ClusterSpec{}, "https://10.0.0.1:6443", "https://10.0.0.1:6443"},
		{nil, "", ""},
		// A VIP is the endpoint; a local proxy on 127.0.0.1 is no address for anyone else:
		// the signing control plane's own API server is.
		{&taskv1.ClusterSpec{ControlPlaneEndpoint: "10.0.0.100:8443", LoadBalancer: &taskv1.LoadBalancerSettings{Type: "vip", Address: "10.0.0.100"}}, "https://10.0.0.100:8443", "https://10.0.0.100:8443"},
		{&taskv1.ClusterSpec{ControlPlaneEndpoint: "127.0.0.1:7443", LoadBalancer: &taskv1.LoadBalancerSettings{Type: "local"}}, "https://127.0.0.1:7443", "https://10.0.0.7:6443"},
	} {
		if got := kubeconfigs.Server(c.spec, c.signer, "10.0.0.7"); got != c.want {
			t.Errorf("Server(%v, %q) = %q, want %q", c.spec, c.signer, got, c.want)
		}
	}
	if kubeconfigs.ClusterName(&taskv1.ClusterSpec{}) != "kubernetes" || kubeconfigs.ClusterName(&taskv1.ClusterSpec{ClusterName: "prod"}) != "prod" {
		t.Error("cluster name: kubeadm's default is kubernetes, a given name wins")
	}
}

func TestSignSpec(t *testing.T) {
	admin := kubeconfigs.SignSpec(kubeconfigs.Request{Name: "a", Role: kubeuser.RoleAdmin, TTL: time.Hour, CSR: "csr"}).GetKubeconfigSign()
	if !slices.Equal(admin.GetGroups(), []string{"kubeadm:cluster-admins"}) || admin.GetViewBinding() || admin.GetTtl().AsDuration() != time.Hour || admin.GetCsrPem() != "csr" {
		t.Errorf("admin: %v", admin)
	}
	view := kubeconfigs.SignSpec(kubeconfigs.Request{Name: "v", Role: kubeuser.RoleView, TTL: time.Hour}).GetKubeconfigSign()
	if len(view.GetGroups()) != 0 || !view.GetViewBinding() {
		t.Errorf("view: %v", view)
	}
}
