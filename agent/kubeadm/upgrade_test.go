package kubeadm_test

import (
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"google.golang.org/protobuf/types/known/durationpb"

	"github.com/deckhandhq/deckhand/agent/facts"
	"github.com/deckhandhq/deckhand/internal/testkit/sim/simrecords"
	taskv1 "github.com/deckhandhq/deckhand/proto/deckhand/task/v1"
)

// setKubeadm makes the node's (simulated) kubeadm report version, as the packages step of
// an upgrade leaves it.
func setKubeadm(t *testing.T, n *node, version string) {
	t.Helper()
	dir := filepath.Join(n.root, "var/lib/deckhand-sim/versions")
	if err := os.MkdirAll(dir, 0o755); err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(filepath.Join(dir, "kubeadm"), []byte(version), 0o644); err != nil {
		t.Fatal(err)
	}
}

func upgradeSpec(version string, apply bool) *taskv1.TaskSpec {
	return &taskv1.TaskSpec{Kind: &taskv1.TaskSpec_KubeadmUpgrade{KubeadmUpgrade: &taskv1.KubeadmUpgradeSpec{KubernetesVersion: version, Apply: apply}}}
}

// kubeadm upgrade apply runs once on the first control plane, only with kubeadm at the
// target, and not again once the control plane runs it (the evidence a retry goes by);
// kubeadm upgrade node runs on a worker; apply is refused on a worker.
func TestUpgradeRunsKubeadmUpgradeOnce(t *testing.T) {
	clusterDir := t.TempDir()
	t.Setenv("DECKHAND_SIM_CLUSTER", clusterDir)
	t.Setenv("DECKHAND_SIM_REAL_KUBEADM", realKubeadm(t))
	cp1, w1 := newNode(t, "cp-1"), newNode(t, "w-1")
	for _, n := range []*node{cp1, w1} {
		setKubeadm(t, n, "v1.33.13")
	}
	if res, logs := cp1.run(t, "init", &taskv1.TaskSpec{Kind: &taskv1.TaskSpec_KubeadmInit{KubeadmInit: &taskv1.KubeadmInitSpec{
		Cluster: cluster(), Node: &taskv1.NodeSpec{Name: "cp-1", AdvertiseAddress: "10.250.0.10"}}}}); res.GetState() != taskv1.TaskState_TASK_STATE_SUCCEEDED {
		t.Fatalf("init: %v\n%v", res, logs)
	}
	tok, _ := cp1.run(t, "token", &taskv1.TaskSpec{Kind: &taskv1.TaskSpec_KubeadmToken{KubeadmToken: &taskv1.KubeadmTokenSpec{Ttl: durationpb.New(15 * time.Minute)}}})
	if res, _ := w1.run(t, "join", &taskv1.TaskSpec{Kind: &taskv1.TaskSpec_KubeadmJoin{KubeadmJoin: &taskv1.KubeadmJoinSpec{
		Cluster: cluster(), Node: &taskv1.NodeSpec{Name: "w-1"}, Role: taskv1.NodeRole_NODE_ROLE_WORKER,
		Token: tok.GetOutputs()["token"], CaCertHash: tok.GetOutputs()["ca_cert_hash"]}}}); res.GetState() != taskv1.TaskState_TASK_STATE_SUCCEEDED {
		t.Fatalf("join: %v", res)
	}
	upgrades := func(node string) int {
		recs, err := simrecords.Read(clusterDir)
		if err != nil {
			t.Fatal(err)
		}
		return simrecords.Count(recs, simrecords.KubeadmUpgrade, node)
	}
	cpVersion := func() string {
		b, _ := os.ReadFile(filepath.Join(cp1.root, facts.APIServerManifest))
		return facts.ControlPlaneVersion(b)
	}
	if v := cpVersion(); v != "v1.33.13" {
		t.Fatalf("the control plane runs %q before the upgrade", v)
	}

	res, _ := cp1.run(t, "old-kubeadm", upgradeSpec("v1.34.12", true))
	if res.GetState() != taskv1.TaskState_TASK_STATE_FAILED || res.GetError().GetReason() != "KUBEADM_VERSION" || upgrades("cp-1") != 0 {
		t.Fatalf("an upgrade with the old kubeadm: %v (kubeadm upgrades: %d)", res, upgrades("cp-1"))
	}
	setKubeadm(t, cp1, "v1.34.12")
	res, _ = cp1.run(t, "apply", upgradeSpec("v1.34.12", true))
	if res.GetState() != taskv1.TaskState_TASK_STATE_SUCCEEDED || res.GetOutputs()["upgraded"] != "true" || cpVersion() != "v1.34.12" || upgrades("cp-1") != 1 {
		t.Fatalf("upgrade apply: %v (control plane %q, kubeadm upgrades %d)", res, cpVersion(), upgrades("cp-1"))
	}
	res, _ = cp1.run(t, "apply-again", upgradeSpec("v1.34.12", true))
	if res.GetState() != taskv1.TaskState_TASK_STATE_SUCCEEDED || res.GetOutputs()["upgraded"] != "false" || upgrades("cp-1") != 1 || len(res.GetChanges()) != 0 {
		t.Fatalf("upgrade apply again: %v (kubeadm upgrades %d)", res, upgrades("cp-1"))
	}
	// An apply that upgraded the static pods but failed before it moved the cluster's
	// configuration (kubeadm-config) runs again.
	if err := os.WriteFile(filepath.Join(clusterDir, "kubernetes-version"), []byte("v1.33.13"), 0o644); err != nil {
		t.Fatal(err)
	}
	res, _ = cp1.run(t, "apply-half-done", upgradeSpec("v1.34.12", true))
	if res.GetState() != taskv1.TaskState_TASK_STATE_SUCCEEDED || res.GetOutputs()["upgraded"] != "true" || upgrades("cp-1") != 2 {
		t.Fatalf("upgrade apply after a half-done one: %v (kubeadm upgrades %d)", res, upgrades("cp-1"))
	}

	res, _ = w1.run(t, "apply-on-worker", upgradeSpec("v1.34.12", true))
	if res.GetState() != taskv1.TaskState_TASK_STATE_FAILED || res.GetError().GetReason() != "NOT_CONTROL_PLANE" {
		t.Fatalf("upgrade apply on a worker: %v", res)
	}
	setKubeadm(t, w1, "v1.34.12")
	res, _ = w1.run(t, "node", upgradeSpec("v1.34.12", false))
	if res.GetState() != taskv1.TaskState_TASK_STATE_SUCCEEDED || res.GetOutputs()["upgraded"] != "true" || upgrades("w-1") != 1 {
		t.Fatalf("upgrade node on a worker: %v", res)
	}
	// Its kubelet upgraded after it: not again.
	dir := filepath.Join(w1.root, "var/lib/deckhand-sim/versions")
	if err := os.WriteFile(filepath.Join(dir, "kubelet"), []byte("v1.34.12"), 0o644); err != nil {
		t.Fatal(err)
	}
	res, _ = w1.run(t, "node-again", upgradeSpec("v1.34.12", false))
	if res.GetState() != taskv1.TaskState_TASK_STATE_SUCCEEDED || res.GetOutputs()["upgraded"] != "false" || upgrades("w-1") != 1 {
		t.Fatalf("upgrade node again on an upgraded worker: %v (kubeadm upgrades %d)", res, upgrades("w-1"))
	}
	if res, _ = cp1.run(t, "bad", upgradeSpec("latest", true)); res.GetState() != taskv1.TaskState_TASK_STATE_FAILED || !strings.Contains(res.GetError().GetMessage(), "kubernetes_version") {
		t.Fatalf("a bad version: %v", res)
	}
}
