package workflows

import (
	"errors"
	"reflect"
	"slices"
	"strings"
	"testing"

	apiv1 "github.com/deckhandhq/deckhand/proto/deckhand/api/v1"
	taskv1 "github.com/deckhandhq/deckhand/proto/deckhand/task/v1"
	"google.golang.org/protobuf/proto"
)

func TestDecideUpgrade(t *testing.T) {
	cp := func(name, kubelet, static string) upgradeNode {
		return upgradeNode{Name: name, ControlPlane: true, Kubelet: kubelet, ControlPlaneVersion: static, Connected: true, AgentCurrent: true}
	}
	w := func(name, kubelet string) upgradeNode {
		return upgradeNode{Name: name, Kubelet: kubelet, Connected: true, AgentCurrent: true}
	}
	off := func(n upgradeNode) upgradeNode { n.Connected = false; return n }
	held := func(n upgradeNode) upgradeNode { n.HeldBy = "wf-7"; return n }
	cluster := []upgradeNode{cp("cp-1", "v1.33.13", "v1.33.13"), cp("cp-2", "v1.33.13", "v1.33.13"),
		w("w-1", "v1.33.13"), w("w-2", "v1.33.13"), w("w-3", "v1.33.13"), w("w-4", "v1.33.13"), w("w-5", "v1.33.13")}
	with := func(i int, n upgradeNode) []upgradeNode {
		out := append([]upgradeNode(nil), cluster...)
		out[i] = n
		return out
	}
	for _, c := range []struct {
		name   string
		s      upgradeState
		want   upgradeDecision
		refuse string
	}{
		{name: "control planes one at a time, then workers one at a time",
			s: upgradeState{Cluster: "v1.33.13", Target: "v1.34.12", Nodes: cluster},
			want: upgradeDecision{Target: "v1.34.12", Apply: "cp-1", ControlPlanes: []string{"cp-1", "cp-2"},
				Batches: [][]string{{"w-1"}, {"w-2"}, {"w-3"}, {"w-4"}, {"w-5"}}}},
		{name: "batches of two",
			s: upgradeState{Cluster: "v1.33.13", Target: "v1.34.12", Nodes: cluster, MaxUnavailable: "2"},
			want: upgradeDecision{Target: "v1.34.12", Apply: "cp-1", ControlPlanes: []string{"cp-1", "cp-2"},
				Batches: [][]string{{"w-1", "w-2"}, {"w-3", "w-4"}, {"w-5"}}}},
		{name: "40% of five workers is two",
			s: upgradeState{Cluster: "v1.33.13", Target: "v1.34.12", Nodes: cluster, MaxUnavailable: "40%"},
			want: upgradeDecision{Target: "v1.34.12", Apply: "cp-1", ControlPlanes: []string{"cp-1", "cp-2"},
				Batches: [][]string{{"w-1", "w-2"}, {"w-3", "w-4"}, {"w-5"}}}},
		{name: "10% of five workers is still one",
			s: upgradeState{Cluster: "v1.33.13", Target: "v1.34.12", Nodes: cluster, MaxUnavailable: "10%"},
			want: upgradeDecision{Target: "v1.34.12", Apply: "cp-1", ControlPlanes: []string{"cp-1", "cp-2"},
				Batches: [][]string{{"w-1"}, {"w-2"}, {"w-3"}, {"w-4"}, {"w-5"}}}},
		{name: "a patch release within the minor",
			s:    upgradeState{Cluster: "v1.33.10", Target: "v1.33.13", Nodes: []upgradeNode{cp("cp-1", "v1.33.10", "v1.33.10"), w("w-1", "v1.33.10")}},
			want: upgradeDecision{Target: "v1.33.13", Apply: "cp-1", ControlPlanes: []string{"cp-1"}, Batches: [][]string{{"w-1"}}}},
		{name: "run again after cp-1 and w-2 were upgraded: kubeadm upgrade node on cp-2, w-2 left alone",
			s: upgradeState{Cluster: "v1.34.12", Target: "v1.34.12", Nodes: func() []upgradeNode {
				n := with(0, cp("cp-1", "v1.34.12", "v1.34.12"))
				n[3] = w("w-2", "1.34.12")
				return n
			}()},
			want: upgradeDecision{Target: "v1.34.12", ControlPlanes: []string{"cp-2"}, Batches: [][]string{{"w-1"}, {"w-3"}, {"w-4"}, {"w-5"}}, Done: []string{"cp-1", "w-2"}}},
		{name: "a control plane whose static pods are upgraded while the record is not: apply again (the agent checks the cluster's configuration)",
			s: upgradeState{Cluster: "v1.33.13", Target: "v1.34.12", Nodes: with(0, cp("cp-1", "v1.33.13", "v1.34.12"))},
			want: upgradeDecision{Target: "v1.34.12", Apply: "cp-1", ControlPlanes: []string{"cp-1", "cp-2"},
				Batches: [][]string{{"w-1"}, {"w-2"}, {"w-3"}, {"w-4"}, {"w-5"}}}},
		{name: "everything done: nothing to change",
			s:    upgradeState{Cluster: "v1.34.12", Target: "v1.34.12", Nodes: []upgradeNode{cp("cp-1", "v1.34.12", "v1.34.12"), w("w-1", "v1.34.12")}},
			want: upgradeDecision{Target: "v1.34.12", Done: []string{"cp-1", "w-1"}}},
		{name: "a worker whose agent is down is skipped with --force",
			s: upgradeState{Cluster: "v1.33.13", Target: "v1.34.12", Nodes: with(4, off(w("w-3", "v1.33.13"))), Force: true},
			want: upgradeDecision{Target: "v1.34.12", Apply: "cp-1", ControlPlanes: []string{"cp-1", "cp-2"},
				Batches: [][]string{{"w-1"}, {"w-2"}, {"w-4"}, {"w-5"}}, Skipped: []string{"w-3"}}},
		{name: "the first control plane skipped with --force: apply on the next",
			s: upgradeState{Cluster: "v1.33.13", Target: "v1.34.12", Nodes: with(0, off(cp("cp-1", "v1.33.13", "v1.33.13"))), Force: true},
			want: upgradeDecision{Target: "v1.34.12", Apply: "cp-2", ControlPlanes: []string{"cp-2"},
				Batches: [][]string{{"w-1"}, {"w-2"}, {"w-3"}, {"w-4"}, {"w-5"}}, Skipped: []string{"cp-1"}}},
		{name: "the record says w-1 was upgraded though its facts are not written yet: left alone",
			s: upgradeState{Cluster: "v1.34.12", Target: "v1.34.12", Nodes: []upgradeNode{
				{Name: "cp-1", ControlPlane: true, Kubelet: "v1.34.12", ControlPlaneVersion: "v1.34.12", Connected: true, AgentCurrent: true},
				{Name: "w-1", Kubelet: "v1.33.13", RecordedKubelet: "v1.34.12", Connected: true, AgentCurrent: true},
				{Name: "w-2", Kubelet: "v1.33.13", RecordedKubelet: "v1.33.13", Connected: true, AgentCurrent: true}}},
			want: upgradeDecision{Target: "v1.34.12", Batches: [][]string{{"w-2"}}, Done: []string{"cp-1", "w-1"}}},
		{name: "the record, not the facts, says a node is done (a node whose upgrade stopped after its kubelet is still cordoned)",
			s: upgradeState{Cluster: "v1.33.13", Target: "v1.34.12", Nodes: []upgradeNode{
				{Name: "cp-1", ControlPlane: true, Kubelet: "v1.34.12", ControlPlaneVersion: "v1.34.12", RecordedKubelet: "v1.33.13", RecordedControlPlane: "v1.33.13", Connected: true, AgentCurrent: true},
				{Name: "w-1", Kubelet: "v1.33.13", Connected: true, AgentCurrent: true}}},
			want: upgradeDecision{Target: "v1.34.12", Apply: "cp-1", ControlPlanes: []string{"cp-1"}, Batches: [][]string{{"w-1"}}}},
		{name: "unknown kubelet versions are upgraded",
			s:    upgradeState{Cluster: "v1.33.13", Target: "v1.34.12", Nodes: []upgradeNode{cp("cp-1", "", ""), w("w-1", "")}},
			want: upgradeDecision{Target: "v1.34.12", Apply: "cp-1", ControlPlanes: []string{"cp-1"}, Batches: [][]string{{"w-1"}}}},

		{name: "downgrade", s: upgradeState{Cluster: "v1.34.12", Target: "v1.33.13", Nodes: cluster}, refuse: RuleNoDowngrade},
		{name: "a patch downgrade", s: upgradeState{Cluster: "v1.33.13", Target: "v1.33.3", Nodes: cluster}, refuse: RuleNoDowngrade},
		{name: "two minors", s: upgradeState{Cluster: "v1.32.13", Target: "v1.34.12", Nodes: cluster}, refuse: RuleOneMinor},
		{name: "unsupported target", s: upgradeState{Cluster: "v1.33.13", Target: "v1.40.0", Nodes: cluster}, refuse: RuleVersion},
		{name: "not a version", s: upgradeState{Cluster: "v1.33.13", Target: "latest", Nodes: cluster}, refuse: RuleVersion},
		{name: "a kubelet newer than the target", s: upgradeState{Cluster: "v1.33.10", Target: "v1.33.12", Nodes: with(3, w("w-2", "v1.33.13"))}, refuse: RuleKubeletNotNewer},
		{name: "a kubelet four minors behind", s: upgradeState{Cluster: "v1.33.13", Target: "v1.34.12", Nodes: with(3, w("w-2", "v1.30.14"))}, refuse: RuleKubeletSkew},
		{name: "a kubelet of a minor newer than any supported", s: upgradeState{Cluster: "v1.33.13", Target: "v1.34.12", Nodes: with(3, w("w-2", "v1.40.1"))}, refuse: RuleKubeletNotNewer},
		{name: "an agent older than the controllers", s: upgradeState{Cluster: "v1.33.13", Target: "v1.34.12", Nodes: with(3, upgradeNode{Name: "w-2", Kubelet: "v1.33.13", Connected: true, AgentVersion: "v0.1.0"})}, refuse: RuleAgentsCurrent},
		{name: "a kubelet older than any supported", s: upgradeState{Cluster: "v1.33.13", Target: "v1.34.12", Nodes: with(3, w("w-2", "v1.27.3"))}, refuse: RuleKubeletSkew},
		{name: "an agent down without --force", s: upgradeState{Cluster: "v1.33.13", Target: "v1.34.12", Nodes: with(4, off(w("w-3", "v1.33.13")))}, refuse: RuleConnected},
		{name: "every control plane down, with --force", s: upgradeState{Cluster: "v1.33.13", Target: "v1.34.12", Force: true,
			Nodes: []upgradeNode{off(cp("cp-1", "v1.33.13", "v1.33.13")), w("w-1", "v1.33.13")}}, refuse: RuleConnected},
		{name: "a node held, even with --force", s: upgradeState{Cluster: "v1.33.13", Target: "v1.34.12", Nodes: with(2, held(w("w-1", "v1.33.13"))), Force: true}, refuse: RuleNotHeld},
		{name: "max-unavailable zero", s: upgradeState{Cluster: "v1.33.13", Target: "v1.34.12", Nodes: cluster, MaxUnavailable: "0"}, refuse: RuleMaxUnavailable},
		{name: "max-unavailable 0%", s: upgradeState{Cluster: "v1.33.13", Target: "v1.34.12", Nodes: cluster, MaxUnavailable: "0%"}, refuse: RuleMaxUnavailable},
		{name: "max-unavailable 150%", s: upgradeState{Cluster: "v1.33.13", Target: "v1.34.12", Nodes: cluster, MaxUnavailable: "150%"}, refuse: RuleMaxUnavailable},
		{name: "max-unavailable words", s: upgradeState{Cluster: "v1.33.13", Target: "v1.34.12", Nodes: cluster, MaxUnavailable: "half"}, refuse: RuleMaxUnavailable},
	} {
		t.Run(c.name, func(t *testing.T) {
			got, err := decideUpgrade(c.s)
			if c.refuse != "" {
				var r *UpgradeRefusal
				if !errors.As(err, &r) || r.Rule != c.refuse {
					t.Fatalf("decideUpgrade = %+v, %v; want a refusal by rule %s", got, err, c.refuse)
				}
				return
			}
			if err != nil {
				t.Fatal(err)
			}
			if !reflect.DeepEqual(got, c.want) {
				t.Errorf("decideUpgrade =\n%+v\nwant\n%+v", got, c.want)
			}
		})
	}
}

// upgradeInv is an inventory of connected nodes at version (control planes' static pods
// too), w-2 already at the target.
func upgradeInv(cl *apiv1.Cluster, version, target string) upgradeInventory {
	inv := upgradeInventory{}
	for _, n := range cl.GetNodes() {
		u := upgradeNode{Name: n.GetName(), Kubelet: version, Connected: true, AgentCurrent: true}
		if n.GetRole() == taskv1.NodeRole_NODE_ROLE_CONTROL_PLANE {
			u.ControlPlaneVersion = version
		}
		if n.GetName() == "w-2" {
			u.Kubelet = target
		}
		inv[n.GetName()] = u
	}
	return inv
}

// An upgrade's plan: the health check first, every node to change staged before any
// changes, control planes one at a time (apply on the first, the cluster's version recorded
// after it), then workers in batches, each batch after the one before; a node at the
// target is left alone and not held.
func TestUpgradeSteps(t *testing.T) {
	cl := testCluster("cp-1", "cp-2", "w-1", "w-2", "w-3", "w-4")
	cl.Nodes[1].Role = taskv1.NodeRole_NODE_ROLE_CONTROL_PLANE
	cl.Packages.BaseUrl = "https://mirror.example.com/core:/stable:/v1.33/deb"
	cl.Packages.Sha256 = map[string]string{"kubelet": strings.Repeat("a", 64)}
	ws := &apiv1.WorkflowSpec{Kind: &apiv1.WorkflowSpec_Upgrade{Upgrade: &apiv1.UpgradeWorkflow{KubernetesVersion: "v1.34.12", MaxUnavailable: "2"}}}
	p, err := buildWith(ws, cl, enrolledSet("cp-1", "cp-2", "w-1", "w-2", "w-3", "w-4"), nil, nil, upgradeInv(cl, "v1.33.13", "v1.34.12"))
	if err != nil {
		t.Fatal(err)
	}
	deps := func(name string) []string {
		s := p.step(name)
		if s == nil {
			t.Fatalf("no step %s", name)
		}
		return s.GetDependsOn()
	}
	if !slices.Equal(p.nodes, []string{"cp-1", "cp-2", "w-1", "w-3", "w-4"}) {
		t.Errorf("held %v, want every node but w-2 (at the target)", p.nodes)
	}
	if p.step("w-2/kubeadm") != nil || p.step("w-2/stage-packages") != nil {
		t.Error("w-2, at the target already, is upgraded")
	}
	h := p.step("cp-1/health")
	if h == nil || !slices.Equal(h.GetTask().GetClusterHealth().GetNodes(), []string{"cp-1", "cp-2", "w-1", "w-2", "w-3", "w-4"}) || len(h.GetDependsOn()) != 0 {
		t.Fatalf("health check: %v", h)
	}
	var staged []string
	for _, n := range []string{"cp-1", "cp-2", "w-1", "w-3", "w-4"} {
		sp := p.step(n + "/stage-packages").GetTask().GetPackages()
		if !sp.GetDownloadOnly() || sp.GetKubernetesVersion() != "v1.34.12" || sp.GetBaseUrl() != "https://mirror.example.com/core:/stable:/v1.34/deb" || len(sp.GetSha256()) != 0 {
			t.Errorf("%s stages %v", n, sp)
		}
		if im := p.step(n + "/stage-images").GetTask().GetImages(); im.GetKubernetesVersion() != "v1.34.12" || im.GetAction() != taskv1.ImagesAction_IMAGES_ACTION_PULL {
			t.Errorf("%s pulls %v", n, im)
		}
		if !slices.Equal(deps(n+"/stage-packages"), []string{"cp-1/health"}) {
			t.Errorf("%s stages before the health check: %v", n, deps(n+"/stage-packages"))
		}
		if !slices.Equal(deps(n+"/stage-images"), []string{n + "/stage-packages"}) {
			t.Errorf("%s pulls its images before its staged kubeadm can list them: %v", n, deps(n+"/stage-images"))
		}
		staged = append(staged, n+"/stage-packages", n+"/stage-images")
	}
	if !slices.Equal(deps("cp-1/kubeadm"), staged) {
		t.Errorf("cp-1 changes before every node staged: %v", deps("cp-1/kubeadm"))
	}
	if u := p.step("cp-1/upgrade").GetTask().GetKubeadmUpgrade(); !u.GetApply() || u.GetKubernetesVersion() != "v1.34.12" {
		t.Errorf("cp-1: %v, want kubeadm upgrade apply", u)
	}
	if u := p.step("cp-2/upgrade").GetTask().GetKubeadmUpgrade(); u.GetApply() {
		t.Errorf("cp-2: %v, want kubeadm upgrade node", u)
	}
	if rv := p.step("cp-1/record-version"); rv.GetAction() != ActionRecordVersion || !slices.Equal(rv.GetDependsOn(), []string{"cp-1/upgrade"}) {
		t.Errorf("record-version: %v", rv)
	}
	chain := []string{"kubeadm", "upgrade", "drain", "kubelet", "uncordon", "ready", "record"}
	for _, n := range []string{"cp-1", "cp-2", "w-1", "w-3", "w-4"} {
		for i := 1; i < len(chain); i++ {
			if !slices.Equal(deps(n+"/"+chain[i]), []string{n + "/" + chain[i-1]}) {
				t.Errorf("%s/%s waits for %v", n, chain[i], deps(n+"/"+chain[i]))
			}
		}
		if k := p.step(n + "/kubelet").GetTask().GetPackages(); !slices.Equal(k.GetComponents(), []string{"kubelet", "kubectl"}) || !k.GetRestartKubelet() {
			t.Errorf("%s/kubelet: %v", n, k)
		}
		if r := p.step(n + "/ready").GetTask().GetNodeReady(); r.GetKubeletVersion() != "v1.34.12" || !p.step(n+"/ready").GetAnyControlPlane() {
			t.Errorf("%s/ready: %v", n, r)
		}
		if r := p.step(n + "/record"); r.GetAction() != ActionRecordUpgraded {
			t.Errorf("%s/record: %v", n, r)
		}
		if u := p.step(n + "/uncordon").GetTask().GetDrain(); !u.GetUncordon() || u.GetNodeName() != n {
			t.Errorf("%s/uncordon: %v", n, u)
		}
	}
	if got := deps("cp-2/kubeadm"); !slices.Equal(got, []string{"cp-1/record", "cp-1/record-version"}) {
		t.Errorf("cp-2 starts after %v", got)
	}
	for _, n := range []string{"w-1", "w-3"} {
		if got := deps(n + "/kubeadm"); !slices.Equal(got, []string{"cp-2/record"}) {
			t.Errorf("%s (batch 1) starts after %v", n, got)
		}
	}
	if got := deps("w-4/kubeadm"); !slices.Equal(got, []string{"w-1/record", "w-3/record"}) {
		t.Errorf("w-4 (batch 2) starts after %v", got)
	}

	// Refused by a rule: the error names it.
	down := upgradeInv(cl, "v1.33.13", "v1.34.12")
	w := down["w-3"]
	w.Connected = false
	down["w-3"] = w
	if _, err := buildWith(ws, cl, enrolledSet("cp-1"), nil, nil, down); !errors.Is(err, ErrInvalid) || !strings.Contains(err.Error(), RuleConnected) {
		t.Errorf("an upgrade with w-3 down: %v", err)
	}
	// --force skips it, and the health check.
	forced := proto.Clone(ws).(*apiv1.WorkflowSpec)
	forced.GetUpgrade().Force = true
	fp, err := buildWith(forced, cl, enrolledSet("cp-1"), nil, nil, down)
	if err != nil || fp.step("w-3/kubeadm") != nil || fp.step("cp-1/health") != nil || !slices.Equal(fp.step("cp-1/stage-packages").GetDependsOn(), nil) {
		t.Errorf("forced: %v", err)
	}
	// Everything at the target: nothing to do.
	cl.Spec.KubernetesVersion = "v1.34.12"
	np, err := buildWith(ws, cl, enrolledSet("cp-1"), nil, nil, upgradeInv(cl, "v1.34.12", "v1.34.12"))
	if err != nil || len(np.steps) != 0 || len(np.notes) == 0 {
		t.Errorf("nothing to upgrade: %v steps, notes %q, %v", len(np.steps), np.notes, err)
	}
}

func TestBaseURLFor(t *testing.T) {
	for _, c := range []struct{ base, version, want string }{
		{"https://pkgs.k8s.io/core:/stable:/v1.33/deb", "v1.34.12", "https://pkgs.k8s.io/core:/stable:/v1.34/deb"},
		{"https://pkgs.k8s.io/core:/stable:/v1.33/deb/", "v1.34.12", "https://pkgs.k8s.io/core:/stable:/v1.34/deb/"},
		{"https://pkgs.k8s.io/core:/stable:/v1.34/rpm", "v1.34.12", "https://pkgs.k8s.io/core:/stable:/v1.34/rpm"},
		{"http://10.250.0.1:8080/k8s/v1.33", "v1.34.1", "http://10.250.0.1:8080/k8s/v1.34"},
		{"https://mirror.example.com/api/v1.0/pkgs/v1.33/deb", "v1.34.12", "https://mirror.example.com/api/v1.0/pkgs/v1.34/deb"},
		{"https://mirror.example.com/kubernetes/deb", "v1.34.12", "https://mirror.example.com/kubernetes/deb"},
		{"https://dl.k8s.io/release", "v1.34.12", "https://dl.k8s.io/release"},
		{"", "v1.34.12", ""},
	} {
		if got := baseURLFor(c.base, c.version); got != c.want {
			t.Errorf("baseURLFor(%q, %s) = %q, want %q", c.base, c.version, got, c.want)
		}
	}
}

// A cluster whose binaries are pinned by SHA-256 upgrades only with the release's pins,
// which the staging and install steps then carry; pins for a repository are refused.
func TestUpgradeChecksums(t *testing.T) {
	cl := testCluster("cp-1", "w-1")
	cl.Packages = &taskv1.PackagesSpec{Source: taskv1.PackageSource_PACKAGE_SOURCE_BINARIES, BaseUrl: "https://dl.example.com/release",
		Sha256: map[string]string{"kubelet": strings.Repeat("a", 64), "kubeadm": strings.Repeat("b", 64)}}
	inv := upgradeInv(cl, "v1.33.13", "v1.34.12")
	spec := func(pins map[string]string) *apiv1.WorkflowSpec {
		return &apiv1.WorkflowSpec{Kind: &apiv1.WorkflowSpec_Upgrade{Upgrade: &apiv1.UpgradeWorkflow{KubernetesVersion: "v1.34.12", Sha256: pins}}}
	}
	if _, err := buildWith(spec(nil), cl, enrolledSet("cp-1"), nil, nil, inv); !errors.Is(err, ErrInvalid) || !strings.Contains(err.Error(), RuleChecksums) || !strings.Contains(err.Error(), "kubelet, kubeadm") {
		t.Errorf("pinned binaries without the release's pins: %v", err)
	}
	if _, err := buildWith(spec(map[string]string{"kubelet": strings.Repeat("c", 64)}), cl, enrolledSet("cp-1"), nil, nil, inv); err == nil || !strings.Contains(err.Error(), "kubeadm") {
		t.Errorf("a pin missing: %v", err)
	}
	pins := map[string]string{"kubelet": strings.Repeat("c", 64), "kubeadm": strings.Repeat("d", 64)}
	p, err := buildWith(spec(pins), cl, enrolledSet("cp-1"), nil, nil, inv)
	if err != nil {
		t.Fatal(err)
	}
	for _, n := range []string{"cp-1/stage-packages", "cp-1/kubeadm", "w-1/kubelet"} {
		if got := p.step(n).GetTask().GetPackages().GetSha256(); got["kubelet"] != pins["kubelet"] || got["kubeadm"] != pins["kubeadm"] {
			t.Errorf("%s checks %v, want the release's pins", n, got)
		}
	}
	cl.Packages = &taskv1.PackagesSpec{Source: taskv1.PackageSource_PACKAGE_SOURCE_REPOSITORY}
	if _, err := buildWith(spec(pins), cl, enrolledSet("cp-1"), nil, nil, inv); err == nil || !strings.Contains(err.Error(), "repository") {
		t.Errorf("pins for a repository: %v", err)
	}
}
