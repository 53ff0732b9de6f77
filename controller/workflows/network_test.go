package workflows

import (
	"context"
	"errors"
	"fmt"
	"slices"
	"strings"
	"testing"
	"time"

	"google.golang.org/protobuf/proto"

	"github.com/deckhandhq/deckhand/internal/features"
	"github.com/deckhandhq/deckhand/internal/podnet"
	"github.com/deckhandhq/deckhand/internal/testkit/teststore"
	apiv1 "github.com/deckhandhq/deckhand/proto/deckhand/api/v1"
	storagev1 "github.com/deckhandhq/deckhand/proto/deckhand/storage/v1"
	taskv1 "github.com/deckhandhq/deckhand/proto/deckhand/task/v1"
	"github.com/deckhandhq/deckhand/store"
)

func testCluster(nodes ...string) *apiv1.Cluster {
	cl := &apiv1.Cluster{Spec: &taskv1.ClusterSpec{KubernetesVersion: "v1.33.13", PodSubnet: "10.244.0.0/16", NetworkProvider: "bridge"},
		Packages: &taskv1.PackagesSpec{Source: taskv1.PackageSource_PACKAGE_SOURCE_REPOSITORY}, Runtime: &taskv1.RuntimeSpec{Source: taskv1.RuntimeSource_RUNTIME_SOURCE_PACKAGE}}
	for i, n := range nodes {
		role := taskv1.NodeRole_NODE_ROLE_WORKER
		if i == 0 {
			role = taskv1.NodeRole_NODE_ROLE_CONTROL_PLANE
		}
		cl.Nodes = append(cl.Nodes, &apiv1.ClusterNode{Name: n, Role: role, PodCidr: fmt.Sprintf("10.244.%d.0/24", i), Address: fmt.Sprintf("10.250.0.%d", 10+i)})
	}
	return cl
}

func enrolledSet(names ...string) map[string]bool {
	m := map[string]bool{}
	for _, n := range names {
		m[n] = true
	}
	return m
}

func applyDoc(cps []string, workers ...string) []byte {
	var b strings.Builder
	b.WriteString("apiVersion: deckhand.dev/v1alpha1\nkind: Cluster\nmetadata:\n  name: t\nspec:\n  kubernetesVersion: v1.33.13\n  nodes:\n")
	for _, n := range cps {
		fmt.Fprintf(&b, "  - {name: %s, role: control-plane}\n", n)
	}
	for _, n := range workers {
		fmt.Fprintf(&b, "  - {name: %s, role: worker}\n", n)
	}
	return []byte(b.String())
}

// The pod network steps each workflow plans: where they run, after what, and what their
// inputs are resolved from.
func TestNetworkSteps(t *testing.T) {
	all := enrolledSet("cp-1", "w-1", "w-2", "w-3")
	for _, c := range []struct {
		name string
		spec *apiv1.WorkflowSpec
		cl   *apiv1.Cluster
		// want: "STEP on NODE after DEPS" for the registered, network and routes steps, in plan order.
		want []string
	}{
		{"init", &apiv1.WorkflowSpec{Kind: &apiv1.WorkflowSpec_Init{Init: &apiv1.InitWorkflow{Node: "cp-1", Cluster: &taskv1.ClusterSpec{KubernetesVersion: "v1.33.13"}}}}, nil, []string{
			"cp-1/registered on cp-1 after cp-1/init",
			"cp-1/network on cp-1 after cp-1/registered",
			"cp-1/record on cp-1 after cp-1/network,cp-1/token-delete",
		}},
		{"join", &apiv1.WorkflowSpec{Kind: &apiv1.WorkflowSpec_Join{Join: &apiv1.JoinWorkflow{Node: "w-2"}}}, testCluster("cp-1", "w-1"), []string{
			"w-2/registered on (from w-2/token) after w-2/join",
			"w-2/network on w-2 after w-2/registered",
			"w-2/ready on (from w-2/token) after w-2/network",
			"w-2/record on w-2 after w-2/ready,w-2/token-delete",
			"cp-1/routes on cp-1 after w-2/record",
			"w-1/routes on w-1 after w-2/record",
			"w-2/routes on w-2 after w-2/record",
		}},
		{"reset", &apiv1.WorkflowSpec{Kind: &apiv1.WorkflowSpec_Reset_{Reset_: &apiv1.ResetWorkflow{Node: "w-1"}}}, testCluster("cp-1", "w-1", "w-2"), []string{
			"cp-1/routes on cp-1 after w-1/forget",
			"w-2/routes on w-2 after w-1/forget",
		}},
		{"apply: init and two workers", &apiv1.WorkflowSpec{Kind: &apiv1.WorkflowSpec_Apply{Apply: &apiv1.ApplyWorkflow{ClusterYaml: applyDoc([]string{"cp-1"}, "w-1", "w-2")}}}, nil, []string{
			"cp-1/registered on cp-1 after cp-1/init",
			"cp-1/network on cp-1 after cp-1/registered",
			"cp-1/record on cp-1 after cp-1/network,cp-1/token-delete",
			"w-1/registered on (from w-1/token) after w-1/join",
			"w-1/network on w-1 after w-1/registered",
			"w-1/ready on (from w-1/token) after w-1/network",
			"w-1/record on w-1 after w-1/ready,w-1/token-delete",
			"w-2/registered on (from w-2/token) after w-2/join",
			"w-2/network on w-2 after w-2/registered",
			"w-2/ready on (from w-2/token) after w-2/network",
			"w-2/record on w-2 after w-2/ready,w-2/token-delete",
			"all/recorded on  after cp-1/record,w-1/record,w-2/record",
			"cp-1/routes on cp-1 after all/recorded",
			"w-1/routes on w-1 after all/recorded",
			"w-2/routes on w-2 after all/recorded",
		}},
		{"apply: nothing to do", &apiv1.WorkflowSpec{Kind: &apiv1.WorkflowSpec_Apply{Apply: &apiv1.ApplyWorkflow{ClusterYaml: applyDoc([]string{"cp-1"}, "w-1")}}}, testCluster("cp-1", "w-1"), nil},
		{"apply: one more worker", &apiv1.WorkflowSpec{Kind: &apiv1.WorkflowSpec_Apply{Apply: &apiv1.ApplyWorkflow{ClusterYaml: applyDoc([]string{"cp-1"}, "w-1", "w-3")}}}, testCluster("cp-1", "w-1"), []string{
			"w-3/registered on (from w-3/token) after w-3/join",
			"w-3/network on w-3 after w-3/registered",
			"w-3/ready on (from w-3/token) after w-3/network",
			"w-3/record on w-3 after w-3/ready,w-3/token-delete",
			"cp-1/routes on cp-1 after w-3/record",
			"w-1/routes on w-1 after w-3/record",
			"w-3/routes on w-3 after w-3/record",
		}},
	} {
		p, err := build(c.spec, c.cl, all)
		if err != nil {
			t.Fatalf("%s: %v", c.name, err)
		}
		var got []string
		for _, s := range p.steps {
			_, what, _ := strings.Cut(s.GetName(), "/")
			if !slices.Contains([]string{"registered", "network", "routes", "ready", "record", "recorded"}, what) {
				continue
			}
			on := s.GetNode()
			if s.GetNodeFrom() != "" {
				on = "(from " + s.GetNodeFrom() + ")"
			}
			got = append(got, fmt.Sprintf("%s on %s after %s", s.GetName(), on, strings.Join(s.GetDependsOn(), ",")))
			switch what {
			case "registered":
				if w := s.GetTask().GetNodeReady().GetWait(); w != taskv1.NodeWait_NODE_WAIT_REGISTERED {
					t.Errorf("%s: %s waits for %v", c.name, s.GetName(), w)
				}
			case "network", "routes":
				if s.GetTask().GetNetwork().GetProvider() != "bridge" {
					t.Errorf("%s: %s: provider %q", c.name, s.GetName(), s.GetTask().GetNetwork().GetProvider())
				}
				var ins []string
				for _, in := range s.GetInputs() {
					ins = append(ins, in.GetField()+"<"+in.GetStep())
				}
				wantIns := "pod_cidr<,routes<"
				if what == "network" {
					wantIns = "pod_cidr<" + strings.Replace(s.GetName(), "/network", "/registered", 1) + ",routes<"
				}
				if strings.Join(ins, ",") != wantIns {
					t.Errorf("%s: %s inputs %v, want %s", c.name, s.GetName(), ins, wantIns)
				}
				if what == "routes" && !s.GetContinueOnFailure() {
					t.Errorf("%s: %s: a peer's routes step must not fail the workflow", c.name, s.GetName())
				}
			}
		}
		if !slices.Equal(got, c.want) {
			t.Errorf("%s: network steps\n%s\nwant\n%s", c.name, strings.Join(got, "\n"), strings.Join(c.want, "\n"))
		}
		// Peers are never held: a routes step on a node busy in another workflow is fine.
		for _, s := range p.steps {
			if strings.HasSuffix(s.GetName(), "/routes") && slices.Contains(p.nodes, s.GetNode()) && c.cl != nil && clusterNode(c.cl, s.GetNode()) != nil {
				t.Errorf("%s: the workflow holds %s, a peer it only updates routes on (holds %v)", c.name, s.GetNode(), p.nodes)
			}
		}
	}
}

// The route list a node gets: every other node with a podCIDR and an address, from the
// record and this workflow's registered steps.
func TestNetworkView(t *testing.T) {
	cl := testCluster("cp-1", "w-1")
	cl.Nodes = append(cl.Nodes, &apiv1.ClusterNode{Name: "old", Role: taskv1.NodeRole_NODE_ROLE_WORKER}) // recorded before Deckhand knew podCIDRs
	step := func(name string, st storagev1.StepRecordState, out map[string]string) *storagev1.StepRecord {
		return &storagev1.StepRecord{Name: name, State: st, Outputs: out}
	}
	steps := []*storagev1.StepRecord{
		step("w-2/registered", storagev1.StepRecordState_STEP_RECORD_STATE_SUCCEEDED, map[string]string{"pod_cidr": "10.244.7.0/24", "address": "10.250.0.17"}),
		step("w-3/registered", storagev1.StepRecordState_STEP_RECORD_STATE_RUNNING, nil),
		step("w-4/registered", storagev1.StepRecordState_STEP_RECORD_STATE_SUCCEEDED, nil), // a dry-run: no outputs
		step("w-2/network", storagev1.StepRecordState_STEP_RECORD_STATE_SUCCEEDED, map[string]string{"pod_cidr": "10.0.0.0/8"}),
	}
	view := networkView(cl, steps)
	routes := func(node string) string {
		var out []string
		for _, r := range routesFor(view, node) {
			out = append(out, r.GetCidr()+"@"+r.GetVia())
		}
		return strings.Join(out, " ")
	}
	for node, want := range map[string]string{
		"cp-1": "10.244.1.0/24@10.250.0.11 10.244.7.0/24@10.250.0.17",
		"w-1":  "10.244.0.0/24@10.250.0.10 10.244.7.0/24@10.250.0.17",
		"w-2":  "10.244.0.0/24@10.250.0.10 10.244.1.0/24@10.250.0.11",
		"old":  "10.244.0.0/24@10.250.0.10 10.244.1.0/24@10.250.0.11 10.244.7.0/24@10.250.0.17",
	} {
		if got := routes(node); got != want {
			t.Errorf("routes of %s: %s, want %s", node, got, want)
		}
	}
	if got := routesFor(networkView(nil, nil), "cp-1"); got == nil || len(got) != 0 {
		t.Errorf("the first node's routes: %v (want an empty list)", got)
	}
}

// apply refuses to change a running cluster's pod network.
func TestApplyKeepsTheNetworkProvider(t *testing.T) {
	cl := testCluster("cp-1")
	cl.Spec.NetworkProvider = ""                                                                                                           // recorded before the field: bridge
	doc := strings.Replace(string(applyDoc([]string{"cp-1"}, "w-1")), "  nodes:", "  networking: {podSubnet: 10.244.0.0/16}\n  nodes:", 1) // as recorded
	if _, err := build(&apiv1.WorkflowSpec{Kind: &apiv1.WorkflowSpec_Apply{Apply: &apiv1.ApplyWorkflow{ClusterYaml: []byte(doc)}}}, cl, enrolledSet("cp-1", "w-1")); err != nil {
		t.Fatalf("apply to a cluster recorded without a provider: %v", err)
	}
	bad := strings.Replace(doc, "  nodes:", "  network: {provider: calico}\n  nodes:", 1)
	_, err := build(&apiv1.WorkflowSpec{Kind: &apiv1.WorkflowSpec_Apply{Apply: &apiv1.ApplyWorkflow{ClusterYaml: []byte(bad)}}}, cl, enrolledSet("cp-1", "w-1"))
	if err == nil || !strings.Contains(err.Error(), "spec.network.provider") || !strings.Contains(err.Error(), "bridge") {
		t.Fatalf("an unknown provider: %v", err)
	}
}

// Every network and routes step carries the cluster's pod subnet (its IPv4 CIDR), which the
// agent's NAT rule keeps pod traffic inside of.
func TestNetworkStepsCarryTheClusterPodSubnet(t *testing.T) {
	all := enrolledSet("cp-1", "w-1", "w-2")
	withSubnet := func(subnet string) *apiv1.Cluster {
		cl := testCluster("cp-1", "w-1")
		cl.Spec.PodSubnet = subnet
		return cl
	}
	for _, c := range []struct {
		name string
		spec *apiv1.WorkflowSpec
		cl   *apiv1.Cluster
		want string
	}{
		{"init without a pod subnet: the default", &apiv1.WorkflowSpec{Kind: &apiv1.WorkflowSpec_Init{Init: &apiv1.InitWorkflow{Node: "cp-1", Cluster: &taskv1.ClusterSpec{KubernetesVersion: "v1.33.13"}}}}, nil, "10.244.0.0/16"},
		{"init with a pod subnet", &apiv1.WorkflowSpec{Kind: &apiv1.WorkflowSpec_Init{Init: &apiv1.InitWorkflow{Node: "cp-1", Cluster: &taskv1.ClusterSpec{KubernetesVersion: "v1.33.13", PodSubnet: "172.20.0.0/16"}}}}, nil, "172.20.0.0/16"},
		{"join: the cluster's", &apiv1.WorkflowSpec{Kind: &apiv1.WorkflowSpec_Join{Join: &apiv1.JoinWorkflow{Node: "w-2"}}}, withSubnet("192.168.0.0/16"), "192.168.0.0/16"},
		{"join a dual-stack cluster: the IPv4 subnet", &apiv1.WorkflowSpec{Kind: &apiv1.WorkflowSpec_Join{Join: &apiv1.JoinWorkflow{Node: "w-2"}}}, withSubnet("fd00:10:244::/56,10.244.0.0/16"), "10.244.0.0/16"},
		{"reset: the peers' routes", &apiv1.WorkflowSpec{Kind: &apiv1.WorkflowSpec_Reset_{Reset_: &apiv1.ResetWorkflow{Node: "w-1"}}}, withSubnet("100.64.0.0/12"), "100.64.0.0/12"},
		{"apply: init and a worker", &apiv1.WorkflowSpec{Kind: &apiv1.WorkflowSpec_Apply{Apply: &apiv1.ApplyWorkflow{ClusterYaml: applyDoc([]string{"cp-1"}, "w-1")}}}, nil, "10.244.0.0/16"},
	} {
		p, err := build(c.spec, c.cl, all)
		if err != nil {
			t.Fatalf("%s: %v", c.name, err)
		}
		n := 0
		for _, s := range p.steps {
			if k := KindOf(s.GetTask()); k != "network" {
				continue
			}
			n++
			if got := s.GetTask().GetNetwork().GetClusterPodSubnet(); got != c.want {
				t.Errorf("%s: %s: cluster_pod_subnet %q, want %q", c.name, s.GetName(), got, c.want)
			}
		}
		if n == 0 {
			t.Errorf("%s: no network or routes step", c.name)
		}
	}
}

// A dry-run's stand-in pod CIDR lies in the cluster's pod subnet, or the agent would refuse
// the dry-run network task that a real run would pass.
func TestPlaceholderPodCIDR(t *testing.T) {
	for in, want := range map[string]string{
		"10.244.0.0/16":  "10.244.0.0/24",
		"172.20.0.0/14":  "172.20.0.0/24",
		"192.168.5.0/24": "192.168.5.0/24",
		"192.168.5.0/26": "192.168.5.0/26",
		"":               "10.244.0.0/24",
		"fd00::/56":      "10.244.0.0/24",
	} {
		if got := placeholderPodCIDR(in); got != want {
			t.Errorf("placeholderPodCIDR(%q) = %q, want %q", in, got, want)
		}
	}
}

// Under flannel an apply applies flannel's manifest on the first control plane once it is
// up, before its network step; every node opens VXLAN's port and pulls flannel's image
// (through the cluster's repository); network steps take no routes and no routes steps
// follow joins and resets: flannel routes between nodes.
func TestFlannelSteps(t *testing.T) {
	doc := strings.Replace(string(applyDoc([]string{"cp-1"}, "w-1")), "  nodes:", "  imageRepository: 10.250.0.1:5000\n  network: {provider: flannel}\n  nodes:", 1)
	p, err := build(&apiv1.WorkflowSpec{Kind: &apiv1.WorkflowSpec_Apply{Apply: &apiv1.ApplyWorkflow{ClusterYaml: []byte(doc)}}}, nil, enrolledSet("cp-1", "w-1"))
	if err != nil {
		t.Fatal(err)
	}
	man := p.step("cp-1/network-provider")
	if man == nil || man.GetNode() != "cp-1" || !slices.Equal(man.GetDependsOn(), []string{"cp-1/init"}) {
		t.Fatalf("flannel's manifest step: %v", man)
	}
	// The node renders flannel's manifest for the cluster's pod subnet and moves its image
	// to the cluster's repository; only the declared image may run.
	m := man.GetTask().GetManifest()
	if ps := m.GetPreset(); m.GetName() != "flannel" || m.GetContent() != "" || ps.GetProvider() != "flannel" || ps.GetVersion() != podnet.FlannelVersion ||
		ps.GetPodSubnet() != "10.244.0.0/16" || m.GetRegistry().GetImageRepository() != "10.250.0.1:5000" || !slices.Equal(m.GetImages(), []string{"ghcr.io/flannel-io/flannel:" + podnet.FlannelVersion}) {
		t.Errorf("flannel's manifest: %v", m)
	}
	if net := p.step("cp-1/network"); !slices.Contains(net.GetDependsOn(), man.GetName()) {
		t.Errorf("cp-1's network step does not wait for flannel's manifest: %v", net.GetDependsOn())
	}
	for _, s := range p.steps {
		_, what, _ := strings.Cut(s.GetName(), "/")
		switch what {
		case "routes", "recorded":
			t.Errorf("a routes step (or the barrier before them, which nothing would wait for) under flannel: %s", s.GetName())
		case "network":
			if s.GetTask().GetNetwork().GetProvider() != "flannel" || len(s.GetInputs()) != 1 || s.GetInputs()[0].GetField() != "pod_cidr" {
				t.Errorf("%s: provider %q, inputs %v (want pod_cidr only)", s.GetName(), s.GetTask().GetNetwork().GetProvider(), s.GetInputs())
			}
		case "preflight":
			if got := s.GetTask().GetPreflight().GetNetworkPorts(); !slices.Equal(got, []string{"8472/udp"}) {
				t.Errorf("%s opens %v, want flannel's VXLAN port 8472/udp", s.GetName(), got)
			}
			if got := s.GetTask().GetPreflight().GetTrustedSources(); !slices.Equal(got, []string{"10.244.0.0/16"}) {
				t.Errorf("%s trusts %v, want the pod subnet 10.244.0.0/16", s.GetName(), got)
			}
		case "images":
			if got := s.GetTask().GetImages().GetExtraImages(); len(got) != 1 || !strings.HasPrefix(got[0], "10.250.0.1:5000/flannel-io/flannel:") || !strings.HasSuffix(s.GetSummary(), "and flannel's") {
				t.Errorf("%s pulls %v (%q), want flannel's image through the cluster's repository", s.GetName(), got, s.GetSummary())
			}
		}
	}

	if slices.ContainsFunc(p.notes, func(n string) bool { return strings.Contains(n, "mirrors") }) {
		t.Errorf("a note about mirrors without mirrors: %q", p.notes)
	}
	// Mirrors stand in for the image repository's registry only: with the default
	// repository, flannel's image comes from ghcr.io, and the plan says so.
	mirrored := strings.Replace(doc, "  imageRepository: 10.250.0.1:5000\n", "  mirrors: [https://mirror.example.com]\n", 1)
	mp, err := build(&apiv1.WorkflowSpec{Kind: &apiv1.WorkflowSpec_Apply{Apply: &apiv1.ApplyWorkflow{ClusterYaml: []byte(mirrored)}}}, nil, enrolledSet("cp-1", "w-1"))
	if err != nil {
		t.Fatal(err)
	}
	if n := slices.IndexFunc(mp.notes, func(n string) bool { return strings.Contains(n, "not through the mirrors") }); n < 0 || slices.IndexFunc(mp.notes[n+1:], func(n string) bool { return strings.Contains(n, "mirrors") }) >= 0 {
		t.Errorf("the plan's notes about flannel's image and the mirrors (want exactly one): %q", mp.notes)
	}

	// flannel needs an IPv4 pod subnet: an IPv6 one is refused naming the field.
	v6 := strings.Replace(doc, "  nodes:", "  networking: {podSubnet: 'fd00:10:244::/56'}\n  nodes:", 1)
	if _, err := build(&apiv1.WorkflowSpec{Kind: &apiv1.WorkflowSpec_Apply{Apply: &apiv1.ApplyWorkflow{ClusterYaml: []byte(v6)}}}, nil, enrolledSet("cp-1", "w-1")); !errors.Is(err, ErrInvalid) || !strings.Contains(err.Error(), "spec.networking.podSubnet") {
		t.Errorf("flannel with an IPv6 pod subnet: %v", err)
	}

	if got := p.step("cp-1/record"); got == nil {
		t.Fatal("no record step")
	}
	if v := p.step("cp-1/init").GetTask().GetKubeadmInit().GetCluster().GetNetworkProviderVersion(); v != podnet.FlannelVersion {
		t.Errorf("the new cluster records flannel %q, want %s", v, podnet.FlannelVersion)
	}

	// An init with another flannel version than this Deckhand installs is refused.
	if _, err := build(&apiv1.WorkflowSpec{Kind: &apiv1.WorkflowSpec_Init{Init: &apiv1.InitWorkflow{Node: "cp-1", Cluster: &taskv1.ClusterSpec{KubernetesVersion: "v1.33.13",
		NetworkProvider: "flannel", NetworkProviderVersion: "v0.27.4"}}}}, nil, enrolledSet("cp-1")); !errors.Is(err, ErrInvalid) || !strings.Contains(err.Error(), "network_provider_version") {
		t.Errorf("init with flannel v0.27.4: %v", err)
	}

	// A join and a reset in a flannel cluster: no routes steps; the join pulls the
	// flannel version the cluster recorded, not this Deckhand's.
	cl := testCluster("cp-1", "w-1")
	cl.Spec.NetworkProvider = "flannel"
	cl.Spec.NetworkProviderVersion = "v0.27.4"
	jp, err := build(&apiv1.WorkflowSpec{Kind: &apiv1.WorkflowSpec_Join{Join: &apiv1.JoinWorkflow{Node: "w-2"}}}, cl, enrolledSet("cp-1", "w-1", "w-2"))
	if err != nil {
		t.Fatal(err)
	}
	if got := jp.step("w-2/images").GetTask().GetImages().GetExtraImages(); !slices.Equal(got, []string{"ghcr.io/flannel-io/flannel:v0.27.4"}) {
		t.Errorf("a join into a cluster running flannel v0.27.4 pulls %v", got)
	}
	for _, spec := range []*apiv1.WorkflowSpec{
		{Kind: &apiv1.WorkflowSpec_Join{Join: &apiv1.JoinWorkflow{Node: "w-2"}}},
		{Kind: &apiv1.WorkflowSpec_Reset_{Reset_: &apiv1.ResetWorkflow{Node: "w-1"}}},
	} {
		p, err := build(spec, cl, enrolledSet("cp-1", "w-1", "w-2"))
		if err != nil {
			t.Fatal(err)
		}
		for _, s := range p.steps {
			if strings.HasSuffix(s.GetName(), "/routes") || strings.HasSuffix(s.GetName(), "/network-provider") {
				t.Errorf("%v: step %s under flannel", spec, s.GetName())
			}
		}
	}
}

// Under a manifest of the user's, the first control plane applies it from its location
// (checked against its SHA-256 there, images rewritten through the repository) and waits
// until the node is Ready; joins run no network task (the manifest's CNI configures the
// node) and wait for Ready; every node opens its ports and pulls its images.
func TestManifestProviderSteps(t *testing.T) {
	sum := strings.Repeat("ab", 32)
	doc := strings.Replace(string(applyDoc([]string{"cp-1"}, "w-1")), "  nodes:", "  imageRepository: 10.250.0.1:5000\n  network:\n    provider: manifest\n    manifest:\n"+
		"      location: https://example.com/calico.yaml\n      sha256: "+sum+"\n      images: [docker.io/calico/node:v3.30.3]\n      ports: [179/tcp]\n      rolloutTimeout: 7m\n  nodes:", 1)
	p, err := build(&apiv1.WorkflowSpec{Kind: &apiv1.WorkflowSpec_Apply{Apply: &apiv1.ApplyWorkflow{ClusterYaml: []byte(doc)}}}, nil, enrolledSet("cp-1", "w-1"))
	if err != nil {
		t.Fatal(err)
	}
	m := p.step("cp-1/network-provider").GetTask().GetManifest()
	if m.GetLocation() != "https://example.com/calico.yaml" || m.GetSha256() != sum || m.GetContent() != "" || m.GetRegistry().GetImageRepository() != "10.250.0.1:5000" ||
		!slices.Equal(m.GetImages(), []string{"docker.io/calico/node:v3.30.3"}) || m.GetTimeout().AsDuration() != 7*time.Minute {
		t.Errorf("the manifest step: %v", m)
	}
	net := p.step("cp-1/network")
	if net.GetTask().GetNodeReady().GetWait() != taskv1.NodeWait_NODE_WAIT_READY || net.GetNode() != "cp-1" || !slices.Contains(net.GetDependsOn(), "cp-1/network-provider") {
		t.Errorf("cp-1's network step: %v", net)
	}
	if p.step("w-1/network") != nil || !slices.Equal(p.step("w-1/ready").GetDependsOn(), []string{"w-1/registered"}) {
		t.Errorf("w-1 runs a network task or its ready step waits for %v", p.step("w-1/ready").GetDependsOn())
	}
	for _, n := range []string{"cp-1", "w-1"} {
		if got := p.step(n + "/preflight").GetTask().GetPreflight().GetNetworkPorts(); !slices.Equal(got, []string{"179/tcp"}) {
			t.Errorf("%s opens %v", n, got)
		}
		if got := p.step(n + "/images").GetTask().GetImages().GetExtraImages(); !slices.Equal(got, []string{"10.250.0.1:5000/calico/node:v3.30.3"}) {
			t.Errorf("%s pulls %v", n, got)
		}
	}
	for _, s := range p.steps {
		if strings.HasSuffix(s.GetName(), "/routes") {
			t.Errorf("a routes step under a manifest: %s", s.GetName())
		}
	}
	// apply refuses another manifest for a running cluster.
	cl := testCluster("cp-1")
	cl.Spec = p.step("cp-1/init").GetTask().GetKubeadmInit().GetCluster()
	for field, other := range map[string]string{
		"spec.network.manifest.sha256":         strings.Replace(doc, sum, strings.Repeat("cd", 32), 1),
		"spec.network.manifest.images":         strings.Replace(doc, "images: [docker.io/calico/node:v3.30.3]", "images: [docker.io/calico/node:v3.30.4]", 1),
		"spec.network.manifest.ports":          strings.Replace(doc, "ports: [179/tcp]", "ports: [179/tcp, 4789/udp]", 1),
		"spec.network.manifest.rolloutTimeout": strings.Replace(doc, "rolloutTimeout: 7m", "rolloutTimeout: 9m", 1),
	} {
		if _, err := build(&apiv1.WorkflowSpec{Kind: &apiv1.WorkflowSpec_Apply{Apply: &apiv1.ApplyWorkflow{ClusterYaml: []byte(other)}}}, cl, enrolledSet("cp-1", "w-1")); err == nil || !strings.Contains(err.Error(), field) {
			t.Errorf("apply changing %s: %v", field, err)
		}
	}
	if _, err := build(&apiv1.WorkflowSpec{Kind: &apiv1.WorkflowSpec_Apply{Apply: &apiv1.ApplyWorkflow{ClusterYaml: []byte(doc)}}}, cl, enrolledSet("cp-1", "w-1")); err != nil {
		t.Errorf("apply of the same document: %v", err)
	}
}

// Under Calico or Cilium, whose pods write each node's CNI configuration, the first
// control plane applies the provider's manifest (rendered on the node from the preset)
// and waits until it is Ready; a joining node runs no network task, only its ready step;
// every node opens the provider's ports and pulls its images through the cluster's
// repository; no routes steps follow joins.
func TestPresetProviderSteps(t *testing.T) {
	for _, name := range []string{"calico", "cilium"} {
		t.Run(name, func(t *testing.T) {
			prov := podnet.MustLookup(name)
			doc := strings.Replace(string(applyDoc([]string{"cp-1"}, "w-1")), "  nodes:", "  imageRepository: 10.250.0.1:5000\n  network: {provider: "+name+"}\n  nodes:", 1)
			p, err := build(&apiv1.WorkflowSpec{Kind: &apiv1.WorkflowSpec_Apply{Apply: &apiv1.ApplyWorkflow{ClusterYaml: []byte(doc)}}}, nil, enrolledSet("cp-1", "w-1"))
			if err != nil {
				t.Fatal(err)
			}
			man := p.step("cp-1/network-provider")
			m := man.GetTask().GetManifest()
			if man == nil || m.GetName() != name || m.GetPreset().GetProvider() != name || m.GetPreset().GetVersion() != prov.Version ||
				!slices.Equal(m.GetImages(), prov.Images(prov.Version)) || m.GetRegistry().GetImageRepository() != "10.250.0.1:5000" {
				t.Fatalf("%s's manifest step: %v", name, man)
			}
			if net := p.step("cp-1/network"); net.GetTask().GetNodeReady().GetWait() != taskv1.NodeWait_NODE_WAIT_READY || !slices.Contains(net.GetDependsOn(), man.GetName()) {
				t.Errorf("cp-1's network step is not a wait for Ready after the manifest: %v", net)
			}
			if p.step("w-1/network") != nil || p.step("w-1/ready") == nil {
				t.Errorf("w-1: a network step %v, a ready step %v: want only the ready step", p.step("w-1/network"), p.step("w-1/ready"))
			}
			var ports []string
			for _, port := range prov.Ports {
				ports = append(ports, port.Spec)
			}
			for _, s := range p.steps {
				_, what, _ := strings.Cut(s.GetName(), "/")
				switch what {
				case "routes":
					t.Errorf("a routes step under %s: %s", name, s.GetName())
				case "preflight":
					if got := s.GetTask().GetPreflight().GetNetworkPorts(); !slices.Equal(got, ports) {
						t.Errorf("%s opens %v, want %v", s.GetName(), got, ports)
					}
				case "images":
					if got := s.GetTask().GetImages().GetExtraImages(); !slices.Equal(got, prov.ImagesAt("", "10.250.0.1:5000")) {
						t.Errorf("%s pulls %v, want %v", s.GetName(), got, prov.ImagesAt("", "10.250.0.1:5000"))
					}
				}
			}
			if v := p.step("cp-1/init").GetTask().GetKubeadmInit().GetCluster().GetNetworkProviderVersion(); v != prov.Version {
				t.Errorf("the new cluster records %s %q, want %s", name, v, prov.Version)
			}
		})
	}
}

// A peer's routes update (no lane) is stored without its list when the node's agent refuses
// a spec left unfilled: the replica that sends it fills the list from the cluster record
// (RouteFiller, one read per revision), keeping the engine's generation, and a later join's
// update reads the record again. A node's own network step (its lane), a dry-run, an agent
// of the release before, and a workflow with a node registered but not recorded (the
// record alone would leave it out) get the list itself.
func TestPeerRoutesAreFilledAsTheyAreSent(t *testing.T) {
	cl := &apiv1.Cluster{Nodes: []*apiv1.ClusterNode{
		{Name: "w-1", PodCidr: "10.244.1.0/24", Address: "10.250.0.21"},
		{Name: "w-2", PodCidr: "10.244.2.0/24", Address: "10.250.0.22"},
		{Name: "w-3", PodCidr: "10.244.3.0/24", Address: "10.250.0.23"},
	}}
	routesStep := func(node, lane string) *storagev1.StepRecord {
		return &storagev1.StepRecord{Name: node + "/routes", Node: node, Lane: lane, State: pending, Task: spec(&taskv1.NetworkSpec{Provider: "bridge", ClusterPodSubnet: "10.244.0.0/16"}),
			Inputs: []*storagev1.StepInputRecord{{Field: "pod_cidr"}, {Field: "routes"}}}
	}
	v := &fakeView{cluster: cl, storeRev: 9, features: map[string][]string{"w-1": features.Agent(), "w-2": {features.PackedRoutes}}}
	// w-5 registered in the workflow, and its join failed before it was recorded.
	unrecorded := &storagev1.StepRecord{Name: "w-5/registered", Node: "w-5", Lane: "w-5", State: storagev1.StepRecordState_STEP_RECORD_STATE_SUCCEEDED,
		Outputs: map[string]string{"pod_cidr": "10.244.5.0/24", "address": "10.250.0.25"}}
	storedIn := func(node, lane string, dry bool, others ...*storagev1.StepRecord) *taskv1.NetworkSpec {
		t.Helper()
		s := routesStep(node, lane)
		got, err := render(wfOf(0, append(others, s)...), s, v, &clusterWork{v: v}, dry)
		if err != nil {
			t.Fatalf("render the routes of %s: %v", node, err)
		}
		return got.GetNetwork()
	}
	stored := func(node, lane string, dry bool) *taskv1.NetworkSpec { return storedIn(node, lane, dry) }
	if n := stored("w-1", "", false); !n.GetRoutesFromRecord() || len(n.GetRoutes()) > 0 || !slices.Equal(n.GetPackedRoutes(), podnet.UnfilledRoutes()) || n.GetGeneration() != 9 || n.GetPodCidr() != "10.244.1.0/24" {
		t.Fatalf("a peer's update on an agent that refuses it unfilled is stored as %v, want routes_from_record, no list (the unfilled byte), generation 9, its pod CIDR", n)
	}
	if _, err := podnet.Parse(stored("w-1", "", false)); err == nil || !strings.Contains(err.Error(), "routes_from_record") {
		t.Errorf("the stored spec sent unfilled is not refused for routes_from_record: %v", err)
	}
	for _, c := range []struct {
		node, lane string
		dry        bool
		others     []*storagev1.StepRecord
		routes     int
	}{{"w-1", "w-1", false, nil, 2}, {"w-1", "", true, nil, 2}, {"w-2", "", false, nil, 2}, {"w-1", "", false, []*storagev1.StepRecord{unrecorded}, 3}} {
		if n := storedIn(c.node, c.lane, c.dry, c.others...); n.GetRoutesFromRecord() || len(n.GetPackedRoutes()) != c.routes*podnet.PackedRouteSize {
			t.Errorf("%s (lane %q, dry-run %v, %d other steps) is stored as %v, want its %d routes listed", c.node, c.lane, c.dry, len(c.others), n, c.routes)
		}
	}

	ctx := context.Background()
	st := &countingGets{Store: teststore.New(t)}
	put := func(cl *apiv1.Cluster) int64 {
		t.Helper()
		b, err := proto.Marshal(cl)
		if err != nil {
			t.Fatal(err)
		}
		rev, err := st.Txn(ctx, store.Txn{Then: []store.Op{store.Put(ClusterKey, b)}})
		if err != nil {
			t.Fatal(err)
		}
		return rev
	}
	f := NewRouteFiller(st)
	fill := func(gen int64) string {
		t.Helper()
		task := &taskv1.Task{Id: "t-1", Node: "w-1", Spec: spec(stored("w-1", "", false))}
		task.Spec.GetNetwork().Generation = uint64(gen)
		before := proto.Clone(task)
		got, err := f.Fill(ctx, task)
		if err != nil {
			t.Fatalf("fill at generation %d: %v", gen, err)
		}
		if !proto.Equal(task, before) {
			t.Fatalf("fill changed the stored task")
		}
		p, err := podnet.Parse(got.GetSpec().GetNetwork())
		if err != nil {
			t.Fatalf("the filled task is one the agent refuses: %v", err)
		}
		if g := got.GetSpec().GetNetwork().GetGeneration(); g != uint64(gen) {
			t.Errorf("filled at generation %d, want the stored %d", g, gen)
		}
		return fmt.Sprint(p.Routes)
	}
	rev := put(cl)
	for range 3 {
		if got := fill(rev); got != "[10.244.2.0/24 via 10.250.0.22 10.244.3.0/24 via 10.250.0.23]" {
			t.Errorf("filled: %s, want the other two nodes' routes", got)
		}
	}
	if st.gets != 1 {
		t.Errorf("3 tasks of one revision read the cluster record %d times, want once", st.gets)
	}
	// The next join records w-4: its wave's generation is past the last read, which is read again.
	cl.Nodes = append(cl.Nodes, &apiv1.ClusterNode{Name: "w-4", PodCidr: "10.244.4.0/24", Address: "10.250.0.24"})
	rev4 := put(cl)
	if got := fill(rev4); got != "[10.244.2.0/24 via 10.250.0.22 10.244.3.0/24 via 10.250.0.23 10.244.4.0/24 via 10.250.0.24]" {
		t.Errorf("filled after w-4 was recorded: %s, want w-4's route too", got)
	}
	// A task stored with its list as well is refused, not sent with one of the two.
	both := &taskv1.Task{Id: "t-2", Node: "w-1", Spec: spec(&taskv1.NetworkSpec{Provider: "bridge", RoutesFromRecord: true, PackedRoutes: podnet.UnfilledRoutes(),
		Routes: []*taskv1.NetworkRoute{{Cidr: "10.244.2.0/24", Via: "10.250.0.22"}}})}
	if _, err := f.Fill(ctx, both); err == nil {
		t.Errorf("a task with routes_from_record and a list was filled")
	}
}

// countingGets counts its store's Gets.
type countingGets struct {
	store.Store
	gets int
}

func (c *countingGets) Get(ctx context.Context, key string, opts ...store.ReadOption) (*store.KV, int64, error) {
	c.gets++
	return c.Store.Get(ctx, key, opts...)
}

// A network task lists its routes packed for a node whose agent reads them, as a list for
// a node whose agent does not (one release behind), and as a list too when a route cannot
// be packed (an address that is not IPv4: the agent refuses it with the field named).
func TestRoutesPackedForAgentsThatReadThem(t *testing.T) {
	cl := &apiv1.Cluster{Nodes: []*apiv1.ClusterNode{
		{Name: "w-1", PodCidr: "10.244.1.0/24", Address: "10.250.0.21"},
		{Name: "w-2", PodCidr: "10.244.2.0/24", Address: "10.250.0.22"},
		{Name: "w-3", PodCidr: "10.244.3.0/24", Address: "10.250.0.23"},
	}}
	routesStep := func(node string) *storagev1.StepRecord {
		return &storagev1.StepRecord{Name: node + "/routes", Node: node, State: pending, Task: spec(&taskv1.NetworkSpec{Provider: "bridge", ClusterPodSubnet: "10.244.0.0/16"}),
			Inputs: []*storagev1.StepInputRecord{{Field: "pod_cidr"}, {Field: "routes"}}}
	}
	// routes renders node's routes task and returns its routes as the agent parses them,
	// and whether they came packed.
	routes := func(v *fakeView, node string) (string, bool) {
		t.Helper()
		s := routesStep(node)
		got, err := render(wfOf(0, s), s, v, &clusterWork{v: v}, false)
		if err != nil {
			t.Fatalf("render the routes of %s: %v", node, err)
		}
		n := got.GetNetwork()
		if len(n.GetRoutes()) > 0 && len(n.GetPackedRoutes()) > 0 {
			t.Fatalf("the routes of %s in both forms", node)
		}
		p, err := podnet.Parse(n)
		if err != nil {
			return "refused: " + err.Error(), len(n.GetPackedRoutes()) > 0
		}
		return fmt.Sprint(p.Routes), len(n.GetPackedRoutes()) > 0
	}
	v := &fakeView{cluster: cl, storeRev: 9, features: map[string][]string{"w-2": {"other", features.PackedRoutes}}}
	for node, want := range map[string]struct {
		routes string
		packed bool
	}{
		"w-1": {"[10.244.2.0/24 via 10.250.0.22 10.244.3.0/24 via 10.250.0.23]", false},
		"w-2": {"[10.244.1.0/24 via 10.250.0.21 10.244.3.0/24 via 10.250.0.23]", true},
	} {
		if got, packed := routes(v, node); got != want.routes || packed != want.packed {
			t.Errorf("routes of %s: %s (packed: %v), want %s (packed: %v)", node, got, packed, want.routes, want.packed)
		}
	}
	cl.Nodes[2].Address = "fd00::23"
	if got, packed := routes(v, "w-2"); packed || !strings.Contains(got, "routes[1].via") {
		t.Errorf("a route via an IPv6 address: %s (packed: %v), want the list, refused with the route named", got, packed)
	}
}
