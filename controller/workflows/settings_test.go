package workflows

import (
	"errors"
	"strings"
	"testing"

	apiv1 "github.com/deckhandhq/deckhand/proto/deckhand/api/v1"
	taskv1 "github.com/deckhandhq/deckhand/proto/deckhand/task/v1"
)

// A node's labels, taints (taints: [] included) and kubelet flags reach its kubeadm init or
// join, from deckctl's options or the document; a bad one is refused naming the field, and
// apply refuses to change the cluster-wide settings of a running cluster.
func TestNodeSettingsReachKubeadm(t *testing.T) {
	en := enrolledSet("cp-1", "w-1", "w-2")
	doc := "apiVersion: deckhand.dev/v1alpha1\nkind: Cluster\nspec:\n  kubernetesVersion: v1.33.13\n  apiServer: {certSANs: [api.example.com]}\n  nodes:\n" +
		"  - {name: cp-1, role: control-plane, taints: []}\n  - {name: w-1, role: worker, labels: {example.com/rack: r1}, kubeletExtraArgs: {max-pods: \"60\"}}\n"
	p, err := build(&apiv1.WorkflowSpec{Kind: &apiv1.WorkflowSpec_Apply{Apply: &apiv1.ApplyWorkflow{ClusterYaml: []byte(doc)}}}, nil, en)
	if err != nil {
		t.Fatal(err)
	}
	in := p.step("cp-1/init").GetTask().GetKubeadmInit()
	if !in.GetNode().GetNoTaints() || strings.Join(in.GetCluster().GetApiServerCertSans(), ",") != "api.example.com" {
		t.Errorf("cp-1/init = %v, want no taints and the certSANs", in)
	}
	w := p.step("w-1/join").GetTask().GetKubeadmJoin().GetNode()
	if w.GetName() != "w-1" || w.GetLabels()["example.com/rack"] != "r1" || w.GetKubeletExtraArgs()["max-pods"] != "60" || w.GetNoTaints() {
		t.Errorf("w-1/join node = %v", w)
	}

	opts := &apiv1.NodeOptions{Labels: map[string]string{"example.com/pool": "gpu"}, Taints: []*taskv1.Taint{{Key: "gpu", Effect: "NoSchedule"}}, KubeletExtraArgs: map[string]string{"v": "2"}}
	p, err = build(&apiv1.WorkflowSpec{Kind: &apiv1.WorkflowSpec_Join{Join: &apiv1.JoinWorkflow{Node: "w-2", Options: opts}}}, testCluster("cp-1"), en)
	if err != nil {
		t.Fatal(err)
	}
	j := p.step("w-2/join").GetTask().GetKubeadmJoin().GetNode()
	if j.GetLabels()["example.com/pool"] != "gpu" || len(j.GetTaints()) != 1 || j.GetKubeletExtraArgs()["v"] != "2" {
		t.Errorf("w-2/join node = %v", j)
	}

	bad := &apiv1.NodeOptions{KubeletExtraArgs: map[string]string{"node-labels": "a=b"}}
	_, err = build(&apiv1.WorkflowSpec{Kind: &apiv1.WorkflowSpec_Join{Join: &apiv1.JoinWorkflow{Node: "w-2", Options: bad}}}, testCluster("cp-1"), en)
	if !errors.Is(err, ErrInvalid) || !strings.Contains(err.Error(), "join.options.kubelet_extra_args[node-labels]") {
		t.Errorf("a reserved kubelet flag: %v", err)
	}

	// The running cluster has no certSANs: a document adding one is refused.
	_, err = build(&apiv1.WorkflowSpec{Kind: &apiv1.WorkflowSpec_Apply{Apply: &apiv1.ApplyWorkflow{ClusterYaml: []byte(doc)}}}, testCluster("cp-1"), en)
	if !errors.Is(err, ErrWrongState) || !strings.Contains(err.Error(), "spec.apiServer.certSANs") {
		t.Errorf("changed certSANs: %v", err)
	}
}
