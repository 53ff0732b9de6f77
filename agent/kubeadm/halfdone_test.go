package kubeadm_test

import (
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"google.golang.org/protobuf/types/known/durationpb"

	"github.com/deckhandhq/deckhand/internal/pki"

	taskv1 "github.com/deckhandhq/deckhand/proto/deckhand/task/v1"
)

// seed writes files on a node as a failed kubeadm left them.
func seed(t *testing.T, root string, files ...string) {
	t.Helper()
	for _, f := range files {
		p := filepath.Join(root, f)
		if err := os.MkdirAll(filepath.Dir(p), 0o755); err != nil {
			t.Fatal(err)
		}
		if err := os.WriteFile(p, []byte("left by a failed kubeadm\n"), 0o600); err != nil {
			t.Fatal(err)
		}
	}
}

func copyFile(t *testing.T, from, to string) {
	t.Helper()
	b, err := os.ReadFile(from)
	if err != nil {
		t.Fatal(err)
	}
	if err := os.MkdirAll(filepath.Dir(to), 0o755); err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(to, b, 0o644); err != nil {
		t.Fatal(err)
	}
}

func logged(logs []string, s string) int {
	n := 0
	for _, l := range logs {
		if strings.Contains(l, s) {
			n++
		}
	}
	return n
}

// A retried init, join or reset tells a node that finished from one a failed run left half
// done: the half-done node is reset with one log line and the work runs again, once.
func TestRetryAfterAHalfDoneStep(t *testing.T) {
	t.Setenv("DECKHAND_SIM_CLUSTER", t.TempDir())
	t.Setenv("DECKHAND_SIM_REAL_KUBEADM", realKubeadm(t))
	cp1, cp2, w1, w2 := newNode(t, "cp-1"), newNode(t, "cp-2"), newNode(t, "w-1"), newNode(t, "w-2")
	initSpec := &taskv1.TaskSpec{Kind: &taskv1.TaskSpec_KubeadmInit{KubeadmInit: &taskv1.KubeadmInitSpec{
		Cluster: cluster(), Node: &taskv1.NodeSpec{Name: "cp-1", AdvertiseAddress: "10.250.0.10"}, UploadCerts: true}}}

	// An init that failed waiting for the control plane (after admin.conf and the
	// manifests): the retry resets the node and inits, with a token for the joins.
	seed(t, cp1.root, "var/lib/deckhand/kubeadm-init.started", "etc/kubernetes/admin.conf", "etc/kubernetes/manifests/kube-apiserver.yaml", "etc/kubernetes/manifests/etcd.yaml", "var/lib/kubelet/config.yaml")
	res, logs := cp1.run(t, "init-retry", initSpec)
	if res.GetState() != taskv1.TaskState_TASK_STATE_SUCCEEDED || len(res.GetOutputs()["token"]) != 23 {
		t.Fatalf("retried half-done init: %v\n%s", res, strings.Join(logs, "\n"))
	}
	if logged(logs, "half way through an earlier kubeadm init") != 1 || logged(logs, "already an initialized control plane") != 0 {
		t.Fatalf("the retried init's log does not say, once, that it reset a half-done node:\n%s", strings.Join(logs, "\n"))
	}
	// Init again on the finished node: reported done, nothing changes.
	if res, logs := cp1.run(t, "init-again", initSpec); res.GetState() != taskv1.TaskState_TASK_STATE_SUCCEEDED || len(res.GetChanges()) != 0 || logged(logs, "already an initialized control plane") != 1 {
		t.Fatalf("init of a finished control plane: %v\n%s", res, strings.Join(logs, "\n"))
	}

	token := func(id string, cp bool) map[string]string {
		res, _ := cp1.run(t, id, &taskv1.TaskSpec{Kind: &taskv1.TaskSpec_KubeadmToken{KubeadmToken: &taskv1.KubeadmTokenSpec{Ttl: durationpb.New(15 * time.Minute), ControlPlane: cp}}})
		if res.GetState() != taskv1.TaskState_TASK_STATE_SUCCEEDED {
			t.Fatalf("token: %v", res)
		}
		return res.GetOutputs()
	}
	join := func(n *node, id string, role taskv1.NodeRole) (*taskv1.TaskResult, []string) {
		tok := token(id+"-token", role == taskv1.NodeRole_NODE_ROLE_CONTROL_PLANE)
		return n.run(t, id, &taskv1.TaskSpec{Kind: &taskv1.TaskSpec_KubeadmJoin{KubeadmJoin: &taskv1.KubeadmJoinSpec{
			Cluster: cluster(), Node: &taskv1.NodeSpec{Name: n.name}, Role: role, Token: tok["token"], CaCertHash: tok["ca_cert_hash"], CertificateKey: tok["certificate_key"]}}})
	}

	// A worker join that failed after bootstrap-kubelet.conf and pki/ca.crt: kubeadm's
	// preflight would refuse it forever; the retry resets it and joins.
	seed(t, w1.root, "var/lib/deckhand/kubeadm-join.started", "etc/kubernetes/bootstrap-kubelet.conf")
	copyFile(t, filepath.Join(cp1.root, "etc/kubernetes/pki/ca.crt"), filepath.Join(w1.root, "etc/kubernetes/pki/ca.crt"))
	res, logs = join(w1, "join-w1", taskv1.NodeRole_NODE_ROLE_WORKER)
	if res.GetState() != taskv1.TaskState_TASK_STATE_SUCCEEDED || res.GetOutputs()["joined"] != "worker" || logged(logs, "half way through an earlier kubeadm join") != 1 {
		t.Fatalf("retried half-done worker join: %v\n%s", res, strings.Join(logs, "\n"))
	}
	if exists(w1.root, "var/lib/deckhand/kubeadm-join.started") {
		t.Fatal("the mark of the join is still there after it succeeded")
	}
	// Joining the joined node again changes nothing.
	if res, logs := join(w1, "join-w1-again", taskv1.NodeRole_NODE_ROLE_WORKER); res.GetOutputs()["joined"] != "already" || logged(logs, "kubeadm reset") != 0 {
		t.Fatalf("join of a joined worker: %v\n%s", res, strings.Join(logs, "\n"))
	}

	// A control-plane join that failed after kubelet.conf (the cluster does not list the
	// node as a control plane): not "already joined", but reset and joined.
	seed(t, cp2.root, "var/lib/deckhand/kubeadm-join.started", "etc/kubernetes/kubelet.conf", "etc/kubernetes/admin.conf", "etc/kubernetes/manifests/kube-apiserver.yaml", "var/lib/kubelet/config.yaml")
	copyFile(t, filepath.Join(cp1.root, "etc/kubernetes/pki/ca.crt"), filepath.Join(cp2.root, "etc/kubernetes/pki/ca.crt"))
	res, logs = join(cp2, "join-cp2", taskv1.NodeRole_NODE_ROLE_CONTROL_PLANE)
	if res.GetState() != taskv1.TaskState_TASK_STATE_SUCCEEDED || res.GetOutputs()["joined"] != "control-plane" || logged(logs, "half way through an earlier kubeadm join") != 1 {
		t.Fatalf("retried half-done control-plane join: %v\n%s", res, strings.Join(logs, "\n"))
	}

	// kubeadm files Deckhand did not write (no mark of its own run): refused, nothing wiped.
	seed(t, w2.root, "etc/kubernetes/bootstrap-kubelet.conf")
	copyFile(t, filepath.Join(cp1.root, "etc/kubernetes/pki/ca.crt"), filepath.Join(w2.root, "etc/kubernetes/pki/ca.crt"))
	res, logs = join(w2, "join-w2-foreign", taskv1.NodeRole_NODE_ROLE_WORKER)
	if res.GetState() != taskv1.TaskState_TASK_STATE_FAILED || res.GetError().GetReason() != "JOIN_STATE" || !exists(w2.root, "etc/kubernetes/pki/ca.crt") || logged(logs, "kubeadm reset") != 0 {
		t.Fatalf("join over kubeadm files Deckhand did not write: %v\n%s", res, strings.Join(logs, "\n"))
	}
	// Another cluster's CA there: refused, nothing wiped, even with Deckhand's mark.
	other, err := pki.NewCA("another-cluster")
	if err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(filepath.Join(w2.root, "etc/kubernetes/pki/ca.crt"), other.CertPEM, 0o644); err != nil {
		t.Fatal(err)
	}
	seed(t, w2.root, "var/lib/deckhand/kubeadm-join.started")
	res, logs = join(w2, "join-w2-other-ca", taskv1.NodeRole_NODE_ROLE_WORKER)
	if res.GetState() != taskv1.TaskState_TASK_STATE_FAILED || res.GetError().GetReason() != "JOIN_STATE" || !strings.Contains(res.GetError().GetMessage(), "another cluster") || !exists(w2.root, "etc/kubernetes/pki/ca.crt") {
		t.Fatalf("join over another cluster's CA: %v\n%s", res, strings.Join(logs, "\n"))
	}

	// A reset of a half-joined worker runs kubeadm reset and leaves nothing, instead of
	// skipping it and reporting kubeadm's files as someone else's leftovers.
	seed(t, w2.root, "etc/kubernetes/bootstrap-kubelet.conf", "etc/kubernetes/pki/ca.crt", "var/lib/kubelet/config.yaml")
	res, logs = w2.run(t, "reset-w2", &taskv1.TaskSpec{Kind: &taskv1.TaskSpec_KubeadmReset{KubeadmReset: &taskv1.KubeadmResetSpec{}}})
	if res.GetState() != taskv1.TaskState_TASK_STATE_SUCCEEDED || exists(w2.root, "etc/kubernetes") || exists(w2.root, "var/lib/kubelet/config.yaml") || exists(w2.root, "var/lib/deckhand/kubeadm-join.started") {
		t.Fatalf("reset of a half-joined worker: %v\n%s", res, strings.Join(logs, "\n"))
	}
}
