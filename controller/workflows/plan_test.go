package workflows

import (
	"errors"
	"slices"
	"strings"
	"testing"
	"time"

	"google.golang.org/protobuf/proto"

	"github.com/deckhandhq/deckhand/internal/clusterspec"
	apiv1 "github.com/deckhandhq/deckhand/proto/deckhand/api/v1"
	taskv1 "github.com/deckhandhq/deckhand/proto/deckhand/task/v1"
)

func kubeProxyDoc(t *testing.T, kubeProxy string) *clusterspec.Cluster {
	t.Helper()
	doc, err := clusterspec.Parse([]byte("apiVersion: deckhand.dev/v1alpha1\nkind: Cluster\nmetadata:\n  name: lab\nspec:\n  kubernetesVersion: v1.33.13\n" +
		kubeProxy + "  nodes:\n  - {name: node-1, role: control-plane}\n  - {name: node-2, role: worker}\n"))
	if err != nil {
		t.Fatal(err)
	}
	return doc
}

// kube-proxy's settings go to kubeadm init with the cluster; a running cluster keeps
// the ones it was created with (kubeadm stored them in the kube-proxy ConfigMap).
func TestApplyCarriesKubeProxySettingsAndRefusesChangingThem(t *testing.T) {
	enrolled := map[string]bool{"node-1": true, "node-2": true}
	doc := kubeProxyDoc(t, "  kubeProxy: {mode: iptables, conntrackMaxPerCore: 0}\n")
	p := &plan{}
	if err := p.apply(doc, nil, enrolled); err != nil {
		t.Fatal(err)
	}
	var initSpec *taskv1.KubeadmInitSpec
	for _, s := range p.steps {
		if in := s.GetTask().GetKubeadmInit(); in != nil {
			initSpec = in
		}
	}
	want := &taskv1.KubeProxySettings{Mode: "iptables", ConntrackMaxPerCore: proto.Int32(0)}
	if !proto.Equal(initSpec.GetCluster().GetKubeProxy(), want) {
		t.Fatalf("kubeadm init gets kube_proxy %v, want %v", initSpec.GetCluster().GetKubeProxy(), want)
	}

	running := &apiv1.Cluster{Spec: doc.Spec, Packages: doc.Packages, Runtime: doc.Runtime, Nodes: []*apiv1.ClusterNode{{Name: "node-1", Role: taskv1.NodeRole_NODE_ROLE_CONTROL_PLANE}}}
	if err := (&plan{}).apply(doc, running, enrolled); err != nil {
		t.Fatalf("the same document: %v", err)
	}
	for kubeProxy, field := range map[string]string{
		"  kubeProxy: {mode: ipvs, conntrackMaxPerCore: 0}\n":         "spec.kubeProxy.mode",
		"  kubeProxy: {mode: iptables}\n":                             "spec.kubeProxy.conntrackMaxPerCore",
		"  kubeProxy: {mode: iptables, conntrackMaxPerCore: 32768}\n": "spec.kubeProxy.conntrackMaxPerCore",
		"": "spec.kubeProxy.mode",
	} {
		err := (&plan{}).apply(kubeProxyDoc(t, kubeProxy), running, enrolled)
		if !errors.Is(err, ErrWrongState) || !strings.Contains(err.Error(), field+": ") {
			t.Errorf("%q against a running cluster: %v, want a refusal naming %s", kubeProxy, err, field)
		}
	}
}

// A reset runs kubeadm reset before the Node object is deleted: kubeadm's
// remove-etcd-member phase finds a control plane's member through its Node.
func TestResetRunsKubeadmResetBeforeDeletingTheNode(t *testing.T) {
	cl := testCluster("cp-1", "cp-2", "cp-3", "w-1")
	cl.Spec.ControlPlaneEndpoint = "10.0.0.1:6443"
	for _, n := range cl.Nodes[1:3] {
		n.Role = taskv1.NodeRole_NODE_ROLE_CONTROL_PLANE
	}
	for _, node := range []string{"cp-2", "w-1"} {
		p, err := build(&apiv1.WorkflowSpec{Kind: &apiv1.WorkflowSpec_Reset_{Reset_: &apiv1.ResetWorkflow{Node: node}}}, cl, enrolledSet("cp-1", "cp-2", "cp-3", "w-1"))
		if err != nil {
			t.Fatal(err)
		}
		deps := map[string][]string{}
		for _, s := range p.steps {
			deps[s.GetName()] = s.GetDependsOn()
		}
		order := map[string]string{"reset": "drain", "delete": "reset", "forget": "delete"}
		if node == "cp-2" {
			// A control plane: its etcd member is checked gone through another control
			// plane (the one that drained it) before the Node goes.
			order["etcd-check"], order["delete"] = "reset", "etcd-check"
			ec := p.step("cp-2/etcd-check")
			if ec == nil || ec.GetTask().GetEtcdMembers().GetAbsent() != "cp-2" || ec.GetNodeFrom() != "cp-2/drain" || ec.GetLane() != "cp-2" {
				t.Errorf("reset cp-2: etcd-check step %v, want etcd_members absent cp-2 on the control plane that drained it", ec)
			}
		} else if p.step(node+"/etcd-check") != nil {
			t.Errorf("reset %s (a worker) checks etcd members", node)
		}
		for step, want := range order {
			if got := deps[node+"/"+step]; len(got) != 1 || got[0] != node+"/"+want {
				t.Errorf("reset %s: %s/%s depends on %v, want [%s/%s]", node, node, step, got, node, want)
			}
		}
		// The Node object is deleted where the drain ran, or on another Ready control plane
		// once that one is down.
		if del := p.step(node + "/delete"); del.GetNodeFrom() != node+"/drain" || !del.GetAnyControlPlane() {
			t.Errorf("reset %s: delete runs from %q, any control plane %v", node, del.GetNodeFrom(), del.GetAnyControlPlane())
		}
	}
}

// The token kubeadm init mints is deleted on the init node right after the init, also when
// the init or a later step failed, and the cluster is recorded only once it is gone.
func TestInitDeletesItsToken(t *testing.T) {
	for name, spec := range map[string]*apiv1.WorkflowSpec{
		"init":  {Kind: &apiv1.WorkflowSpec_Init{Init: &apiv1.InitWorkflow{Node: "cp-1", Cluster: &taskv1.ClusterSpec{KubernetesVersion: "v1.33.13"}}}},
		"apply": {Kind: &apiv1.WorkflowSpec_Apply{Apply: &apiv1.ApplyWorkflow{ClusterYaml: applyDoc([]string{"cp-1"}, "w-1")}}},
	} {
		p, err := build(spec, nil, enrolledSet("cp-1", "w-1"))
		if err != nil {
			t.Fatalf("%s: %v", name, err)
		}
		del := p.step("cp-1/token-delete")
		if del == nil {
			t.Fatalf("%s: no cp-1/token-delete step", name)
		}
		in := del.GetInputs()
		if del.GetNode() != "cp-1" || del.GetNodeFrom() != "" || !del.GetAlways() || strings.Join(del.GetDependsOn(), ",") != "cp-1/init" ||
			del.GetTask().GetKubeadmToken() == nil || len(in) != 1 || in[0].GetField() != "delete_token_id" || in[0].GetStep() != "cp-1/init" || in[0].GetOutput() != "token" {
			t.Errorf("%s: cp-1/token-delete = %v, want the token task on cp-1 after cp-1/init, always, deleting the init's token ID", name, del)
		}
		if rec := p.step("cp-1/record"); !slices.Contains(rec.GetDependsOn(), del.GetName()) {
			t.Errorf("%s: cp-1/record depends on %v, want the token deleted first", name, rec.GetDependsOn())
		}
	}
}

// A new cluster whose spec leaves the cgroup driver empty takes its first control plane's
// (from that node's facts), and every node's runtime step and the init's kubelet get it.
func TestNewClusterTakesTheCgroupDriverOfItsFirstControlPlane(t *testing.T) {
	drivers := map[string]string{"cp-1": "cgroupfs", "w-1": "systemd"}
	for name, c := range map[string]struct {
		spec *apiv1.WorkflowSpec
		want string
	}{
		"init":               {&apiv1.WorkflowSpec{Kind: &apiv1.WorkflowSpec_Init{Init: &apiv1.InitWorkflow{Node: "cp-1", Cluster: &taskv1.ClusterSpec{KubernetesVersion: "v1.33.13"}}}}, "cgroupfs"},
		"init, set":          {&apiv1.WorkflowSpec{Kind: &apiv1.WorkflowSpec_Init{Init: &apiv1.InitWorkflow{Node: "cp-1", Cluster: &taskv1.ClusterSpec{KubernetesVersion: "v1.33.13", CgroupDriver: "systemd"}}}}, "systemd"},
		"apply and a worker": {&apiv1.WorkflowSpec{Kind: &apiv1.WorkflowSpec_Apply{Apply: &apiv1.ApplyWorkflow{ClusterYaml: applyDoc([]string{"cp-1"}, "w-1")}}}, "cgroupfs"},
	} {
		p, err := buildWith(c.spec, nil, enrolledSet("cp-1", "w-1"), drivers, nil, nil)
		if err != nil {
			t.Fatalf("%s: %v", name, err)
		}
		for _, s := range p.steps {
			got, ok := "", false
			if rt := s.GetTask().GetRuntime(); rt != nil {
				got, ok = rt.GetCgroupDriver(), true
			}
			if in := s.GetTask().GetKubeadmInit(); in != nil {
				got, ok = in.GetCluster().GetCgroupDriver(), true
			}
			if j := s.GetTask().GetKubeadmJoin(); j != nil {
				got, ok = j.GetCluster().GetCgroupDriver(), true
			}
			if ok && got != c.want {
				t.Errorf("%s: %s gets cgroup driver %q, want %q", name, s.GetName(), got, c.want)
			}
		}
	}
}

// The certificate and etcd backup settings of a running cluster change by apply: a
// controller step records them, nothing runs on a host; the other settings stay refused.
func TestApplyRecordsNewCertificateAndBackupSettings(t *testing.T) {
	enrolled := map[string]bool{"node-1": true, "node-2": true}
	old := kubeProxyDoc(t, "")
	running := &apiv1.Cluster{Spec: old.Spec, Packages: old.Packages, Runtime: old.Runtime,
		Nodes: []*apiv1.ClusterNode{{Name: "node-1", Role: taskv1.NodeRole_NODE_ROLE_CONTROL_PLANE}, {Name: "node-2", Role: taskv1.NodeRole_NODE_ROLE_WORKER}}}
	p := &plan{}
	if err := p.apply(old, running, enrolled); err != nil || len(p.steps) != 0 {
		t.Fatalf("the same document: %d steps, %v", len(p.steps), err)
	}
	yaml := []byte("apiVersion: deckhand.dev/v1alpha1\nkind: Cluster\nmetadata:\n  name: lab\nspec:\n  kubernetesVersion: v1.33.13\n" +
		"  certificates: {renewBefore: 2000h}\n  etcd: {backup: {schedule: '@daily', keep: 2}}\n" +
		"  nodes:\n  - {name: node-1, role: control-plane}\n  - {name: node-2, role: worker}\n")
	doc, err := clusterspec.Parse(yaml)
	if err != nil {
		t.Fatal(err)
	}
	p = &plan{}
	if err := p.apply(doc, running, enrolled); err != nil {
		t.Fatal(err)
	}
	if len(p.steps) != 1 || p.steps[0].GetAction() != ActionRecordSettings || len(p.nodes) != 0 {
		t.Fatalf("steps %v, nodes held %v: want one record-settings step and no node held", p.steps, p.nodes)
	}
	if want := "spec.certificates: renewed 720h0m0s before expiry → renewed 2000h0m0s before expiry"; !slices.Contains(p.changes, want) {
		t.Errorf("changes %q, want %q", p.changes, want)
	}
	l := wfOf(0, p.steps...)
	l.wf.Spec = &apiv1.WorkflowSpec{Kind: &apiv1.WorkflowSpec_Apply{Apply: &apiv1.ApplyWorkflow{ClusterYaml: yaml}}}
	w := &clusterWork{v: &fakeView{cluster: running, modRev: 4}}
	if err := w.act(l.wf, l, p.steps[0], t0); err != nil {
		t.Fatal(err)
	}
	if !w.changed || w.cl.GetSpec().GetCertificates().GetRenewBefore().AsDuration() != 2000*time.Hour || w.cl.GetSpec().GetEtcd().GetBackup().GetKeep() != 2 ||
		w.cl.GetSpec().GetKubernetesVersion() != "v1.33.13" || len(w.cl.GetNodes()) != 2 {
		t.Fatalf("recorded %v (changed %v)", w.cl, w.changed)
	}
}
