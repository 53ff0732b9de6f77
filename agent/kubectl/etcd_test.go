package kubectl_test

import (
	"slices"
	"strings"
	"testing"
	"time"

	"google.golang.org/protobuf/types/known/durationpb"

	"github.com/deckhandhq/deckhand/agent/kubectl"
	"github.com/deckhandhq/deckhand/internal/testkit/sim/simrecords"
	taskv1 "github.com/deckhandhq/deckhand/proto/deckhand/task/v1"
)

// etcdctl v3.5's member list -w json: a started member and a learner that never started
// (no name yet).
func TestParseEtcdMembers(t *testing.T) {
	out := `{"header":{"cluster_id":14841639068965178418,"member_id":10276657743932975437,"raft_term":2},"members":[` +
		`{"ID":10276657743932975437,"name":"node-1","peerURLs":["https://10.250.1.21:2380"],"clientURLs":["https://10.250.1.21:2379"]},` +
		`{"ID":18249187646912138824,"peerURLs":["https://10.250.1.22:2380"],"isLearner":true}]}`
	ms, err := kubectl.ParseEtcdMembers([]byte(out))
	if err != nil || len(ms) != 2 || ms[0].ID != 10276657743932975437 || ms[0].Name != "node-1" || !ms[1].Learner || ms[1].Name != "" {
		t.Fatalf("ParseEtcdMembers = %+v, %v", ms, err)
	}
	for _, bad := range []string{"", "Error: context deadline exceeded", `{"members":[]}`} {
		if _, err := kubectl.ParseEtcdMembers([]byte(bad)); err == nil {
			t.Errorf("ParseEtcdMembers(%q) took it", bad)
		}
	}
}

// A control plane's etcd member that kubeadm reset left behind (it could not reach the
// cluster) is removed through a remaining control plane's etcd, once; the check passes
// quietly when the member is gone.
func TestEtcdMemberLeftBehindIsRemoved(t *testing.T) {
	dir, cp1, _ := simCluster(t)
	tok, _ := cp1.run(t, "token-cp", &taskv1.TaskSpec{Kind: &taskv1.TaskSpec_KubeadmToken{KubeadmToken: &taskv1.KubeadmTokenSpec{Ttl: durationpb.New(time.Hour), ControlPlane: true}}})
	cp2 := newNode(t, "cp-2")
	spec := &taskv1.ClusterSpec{KubernetesVersion: "v1.33.13", ControlPlaneEndpoint: "10.250.0.10:6443", PodSubnet: "10.244.0.0/16", ServiceSubnet: "10.96.0.0/12", CgroupDriver: "systemd"}
	if res, l := cp2.run(t, "join", &taskv1.TaskSpec{Kind: &taskv1.TaskSpec_KubeadmJoin{KubeadmJoin: &taskv1.KubeadmJoinSpec{
		Cluster: spec, Node: &taskv1.NodeSpec{Name: "cp-2"}, Role: taskv1.NodeRole_NODE_ROLE_CONTROL_PLANE,
		Token: tok.GetOutputs()["token"], CaCertHash: tok.GetOutputs()["ca_cert_hash"], CertificateKey: tok.GetOutputs()["certificate_key"]}}}); res.GetState() != taskv1.TaskState_TASK_STATE_SUCCEEDED {
		t.Fatalf("control-plane join: %v\n%s", res, l)
	}
	check := &taskv1.TaskSpec{Kind: &taskv1.TaskSpec_EtcdMembers{EtcdMembers: &taskv1.EtcdMembersSpec{Absent: "cp-2"}}}
	res, l := cp1.run(t, "check-1", check)
	if res.GetState() != taskv1.TaskState_TASK_STATE_SUCCEEDED || res.GetOutputs()["members"] != "cp-1" || res.GetOutputs()["removed"] != "cp-2" || !strings.Contains(l, "is still in the cluster: removing it") {
		t.Fatalf("etcd check with cp-2's member left behind: %v\n%s", res, l)
	}
	if members, _ := simrecords.EtcdMembers(dir); !slices.Equal(members, []string{"cp-1"}) {
		t.Fatalf("etcd members after the check: %v", members)
	}
	res, l = cp1.run(t, "check-2", check)
	if res.GetState() != taskv1.TaskState_TASK_STATE_SUCCEEDED || res.GetOutputs()["removed"] != "" || len(res.GetChanges()) != 0 {
		t.Fatalf("etcd check with the member gone: %v\n%s", res, l)
	}
	if n := simrecords.Count(records(t, dir), simrecords.EtcdMemberRemove, "cp-2"); n != 1 {
		t.Fatalf("cp-2's member was removed %d times, want once", n)
	}
}
