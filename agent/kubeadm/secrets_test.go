package kubeadm_test

import (
	"io"
	"log/slog"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"google.golang.org/protobuf/types/known/durationpb"

	"github.com/deckhandhq/deckhand/agent/kubeadm"
	"github.com/deckhandhq/deckhand/agent/tasks"
	"github.com/deckhandhq/deckhand/internal/kubeadmconfig"
	taskv1 "github.com/deckhandhq/deckhand/proto/deckhand/task/v1"
)

// A control-plane join retried over the join config a killed agent left on the node (the
// fault test's case) records the rewrite of that config without the old or the new token
// or certificate key: the change record is what deckctl task get and the workflow's step
// record show to viewers.
func TestRetriedJoinRecordsNoSecretInItsChanges(t *testing.T) {
	t.Setenv("DECKHAND_SIM_CLUSTER", t.TempDir())
	cp1, cp2 := newNode(t, "cp-1"), newNode(t, "cp-2")
	if res, logs := cp1.run(t, "init", &taskv1.TaskSpec{Kind: &taskv1.TaskSpec_KubeadmInit{KubeadmInit: &taskv1.KubeadmInitSpec{
		Cluster: cluster(), Node: &taskv1.NodeSpec{Name: "cp-1", AdvertiseAddress: "10.250.0.10"}, UploadCerts: true}}}); res.GetState() != taskv1.TaskState_TASK_STATE_SUCCEEDED {
		t.Fatalf("init: %v\n%v", res, logs)
	}
	mint := func(id string) map[string]string {
		res, _ := cp1.run(t, id, &taskv1.TaskSpec{Kind: &taskv1.TaskSpec_KubeadmToken{KubeadmToken: &taskv1.KubeadmTokenSpec{Ttl: durationpb.New(15 * time.Minute), ControlPlane: true}}})
		if res.GetState() != taskv1.TaskState_TASK_STATE_SUCCEEDED || len(res.GetOutputs()["certificate_key"]) != 64 {
			t.Fatalf("token: %v", res)
		}
		return res.GetOutputs()
	}
	old, cur := mint("token-1"), mint("token-2")
	spec := func(o map[string]string) *taskv1.KubeadmJoinSpec {
		return &taskv1.KubeadmJoinSpec{Cluster: cluster(), Node: &taskv1.NodeSpec{Name: "cp-2", AdvertiseAddress: "10.250.0.11"}, Role: taskv1.NodeRole_NODE_ROLE_CONTROL_PLANE,
			Token: o["token"], CaCertHash: o["ca_cert_hash"], CertificateKey: o["certificate_key"]}
	}
	// The config the killed agent's join left behind, with the old token and key.
	c, _ := kubeadmconfig.ParseCluster(cluster())
	n, _ := kubeadmconfig.ParseNode(spec(old).GetNode())
	stale, err := kubeadmconfig.JoinConfig(c, n, true, "", old["token"], old["ca_cert_hash"], old["certificate_key"])
	if err != nil {
		t.Fatal(err)
	}
	os.MkdirAll(filepath.Join(cp2.root, "etc/kubernetes/deckhand"), 0o700)
	if err := os.WriteFile(filepath.Join(cp2.root, "etc/kubernetes/deckhand/kubeadm-join.yaml"), stale, 0o600); err != nil {
		t.Fatal(err)
	}

	res, logs := cp2.run(t, "join-cp-2", &taskv1.TaskSpec{Kind: &taskv1.TaskSpec_KubeadmJoin{KubeadmJoin: spec(cur)}})
	if res.GetState() != taskv1.TaskState_TASK_STATE_SUCCEEDED || res.GetOutputs()["joined"] != "control-plane" {
		t.Fatalf("join: %v\n%s", res, strings.Join(logs, "\n"))
	}
	secrets := []string{strings.SplitN(old["token"], ".", 2)[1], strings.SplitN(cur["token"], ".", 2)[1], old["certificate_key"], cur["certificate_key"]}
	rewrote := false
	for _, ch := range res.GetChanges() {
		for _, s := range secrets {
			if strings.Contains(ch.GetTarget()+" "+ch.GetDetail(), s) {
				t.Fatalf("a secret shows in the change record: %s: %s", ch.GetTarget(), ch.GetDetail())
			}
		}
		rewrote = rewrote || ch.GetTarget() == "/etc/kubernetes/deckhand/kubeadm-join.yaml" && ch.GetDetail() != "remove"
	}
	if !rewrote {
		t.Fatalf("the rewrite of the stale join config is not recorded: %v", res.GetChanges())
	}
	for _, l := range append(logs, res.GetError().GetMessage()) {
		for _, s := range secrets {
			if strings.Contains(l, s) {
				t.Fatalf("a secret reached the task log: %q", l)
			}
		}
	}
}

// With deckhand-agent --cri-socket, kubeadm init (and the kubelet it configures) uses that
// socket when the task's node spec names none; a socket the spec names wins.
func TestInitUsesTheAgentsCRISocket(t *testing.T) {
	t.Setenv("DECKHAND_SIM_CLUSTER", t.TempDir())
	n := newNode(t, "cp-1")
	r, err := tasks.NewRunner(t.TempDir(), n.root, map[string]tasks.Handler{"kubeadm_init": kubeadm.Init}, slog.New(slog.NewTextHandler(io.Discard, nil)), tasks.WithCRISocket("/run/custom/cri.sock"))
	if err != nil {
		t.Fatal(err)
	}
	n.r = r
	if res, logs := n.run(t, "init", &taskv1.TaskSpec{Kind: &taskv1.TaskSpec_KubeadmInit{KubeadmInit: &taskv1.KubeadmInitSpec{
		Cluster: cluster(), Node: &taskv1.NodeSpec{Name: "cp-1", AdvertiseAddress: "10.250.0.10"}}}}); res.GetState() != taskv1.TaskState_TASK_STATE_SUCCEEDED {
		t.Fatalf("init: %v\n%v", res, logs)
	}
	cfg, _ := os.ReadFile(filepath.Join(n.root, "etc/kubernetes/deckhand/kubeadm-init.yaml"))
	if !strings.Contains(string(cfg), "criSocket: unix:///run/custom/cri.sock") {
		t.Fatalf("the init config does not use the agent's CRI socket:\n%s", cfg)
	}
}
