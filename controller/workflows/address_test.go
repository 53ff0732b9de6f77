package workflows

import (
	"errors"
	"strings"
	"testing"

	apiv1 "github.com/deckhandhq/deckhand/proto/deckhand/api/v1"
	taskv1 "github.com/deckhandhq/deckhand/proto/deckhand/task/v1"
)

// A node's address: the one given (if the host has it) > the address on the route to the
// controller > none; a wrong one is refused naming the field and the host's addresses.
func TestNodeAddress(t *testing.T) {
	vagrant := &hostAddrs{route: "192.168.56.11", all: []string{"10.0.2.15", "192.168.56.11"}}
	for _, c := range []struct {
		name      string
		explicit  string
		host      *hostAddrs
		want      string
		from      string
		errSubstr []string
	}{
		{name: "no facts, none given", host: nil},
		{name: "facts without a route", host: &hostAddrs{all: []string{"10.0.2.15"}}},
		{name: "route", host: vagrant, want: "192.168.56.11", from: addrRoute},
		{name: "given beats route", explicit: "10.0.2.15", host: vagrant, want: "10.0.2.15", from: addrExplicit},
		{name: "given, the route's", explicit: "192.168.56.11", host: vagrant, want: "192.168.56.11", from: addrExplicit},
		{name: "given, no facts", explicit: "192.168.56.12", host: nil, want: "192.168.56.12", from: addrExplicit},
		{name: "given, facts list none", explicit: "192.168.56.12", host: &hostAddrs{}, want: "192.168.56.12", from: addrExplicit},
		{name: "IPv6 given in another form", explicit: "fd00:0::1", host: &hostAddrs{all: []string{"fd00::1"}}, want: "fd00::1", from: addrExplicit},
		{name: "not the host's", explicit: "192.168.56.12", host: vagrant,
			errSubstr: []string{"join.address", "192.168.56.12 is not an address of node-2", "10.0.2.15, 192.168.56.11", "(192.168.56.11)"}},
		{name: "not an IP", explicit: "node-2.lan", host: vagrant, errSubstr: []string{"join.address", "is not an IP address"}},
		{name: "with a prefix", explicit: "192.168.56.11/24", host: vagrant, errSubstr: []string{"join.address", "is not an IP address"}},
		{name: "loopback", explicit: "127.0.0.1", host: vagrant, errSubstr: []string{"join.address", "not a unicast address other hosts can reach"}},
		{name: "link-local", explicit: "fe80::1", host: vagrant, errSubstr: []string{"not a unicast address"}},
		{name: "unspecified", explicit: "0.0.0.0", host: vagrant, errSubstr: []string{"not a unicast address"}},
		{name: "mapped", explicit: "::ffff:192.168.56.11", host: vagrant, errSubstr: []string{"IPv4-mapped", "write 192.168.56.11"}},
	} {
		got, from, err := nodeAddress("join.address", "node-2", c.explicit, c.host)
		if len(c.errSubstr) > 0 {
			if !errors.Is(err, ErrInvalid) {
				t.Errorf("%s: err = %v, want ErrInvalid", c.name, err)
				continue
			}
			for _, s := range c.errSubstr {
				if !strings.Contains(err.Error(), s) {
					t.Errorf("%s: error %q does not say %q", c.name, err, s)
				}
			}
			continue
		}
		if err != nil || got != c.want || from != c.from {
			t.Errorf("%s: got %q from %q, %v; want %q from %q", c.name, got, from, err, c.want, c.from)
		}
	}
}

// Every workflow that brings a node in gives its preflight, and its kubeadm init or join,
// the node's address: the one given, else the one on the route to its controller.
func TestPlansCarryTheNodeAddress(t *testing.T) {
	addrs := map[string]*hostAddrs{
		"cp-1": {route: "192.168.56.11", all: []string{"10.0.2.15", "192.168.56.11"}},
		"w-1":  {route: "192.168.56.21", all: []string{"10.0.2.15", "192.168.56.21", "192.168.57.21"}},
		"w-2":  {route: "192.168.56.22", all: []string{"10.0.2.15", "192.168.56.22"}},
	}
	en := enrolledSet("cp-1", "w-1", "w-2")
	doc := "apiVersion: deckhand.dev/v1alpha1\nkind: Cluster\nspec:\n  kubernetesVersion: v1.33.13\n  nodes:\n" +
		"  - {name: cp-1, role: control-plane}\n  - {name: w-1, role: worker, address: 192.168.57.21}\n"
	for _, c := range []struct {
		name string
		spec *apiv1.WorkflowSpec
		cl   *apiv1.Cluster
		want map[string]string
	}{
		{"init", &apiv1.WorkflowSpec{Kind: &apiv1.WorkflowSpec_Init{Init: &apiv1.InitWorkflow{Node: "cp-1", Cluster: &taskv1.ClusterSpec{KubernetesVersion: "v1.33.13"}}}}, nil,
			map[string]string{"cp-1": "192.168.56.11"}},
		{"init --address", &apiv1.WorkflowSpec{Kind: &apiv1.WorkflowSpec_Init{Init: &apiv1.InitWorkflow{Node: "cp-1", Address: "10.0.2.15", Cluster: &taskv1.ClusterSpec{KubernetesVersion: "v1.33.13"}}}}, nil,
			map[string]string{"cp-1": "10.0.2.15"}},
		{"join", &apiv1.WorkflowSpec{Kind: &apiv1.WorkflowSpec_Join{Join: &apiv1.JoinWorkflow{Node: "w-2"}}}, testCluster("cp-1"),
			map[string]string{"w-2": "192.168.56.22"}},
		{"apply", &apiv1.WorkflowSpec{Kind: &apiv1.WorkflowSpec_Apply{Apply: &apiv1.ApplyWorkflow{ClusterYaml: []byte(doc)}}}, nil,
			map[string]string{"cp-1": "192.168.56.11", "w-1": "192.168.57.21"}},
	} {
		p, err := buildWith(c.spec, c.cl, en, nil, addrs, nil)
		if err != nil {
			t.Fatalf("%s: %v", c.name, err)
		}
		seen := 0
		for _, s := range p.steps {
			node, what, _ := strings.Cut(s.GetName(), "/")
			var got string
			switch what {
			case "preflight":
				got = s.GetTask().GetPreflight().GetNodeAddress()
			case "init":
				got = s.GetTask().GetKubeadmInit().GetNode().GetAdvertiseAddress()
			case "join":
				got = s.GetTask().GetKubeadmJoin().GetNode().GetAdvertiseAddress()
			default:
				continue
			}
			seen++
			if got != c.want[node] {
				t.Errorf("%s: %s has address %q, want %q", c.name, s.GetName(), got, c.want[node])
			}
		}
		if seen != 2*len(c.want) {
			t.Errorf("%s: %d preflight/init/join steps, want %d", c.name, seen, 2*len(c.want))
		}
	}

	// An address the host does not have is refused, naming the field and the host's.
	for name, spec := range map[string]*apiv1.WorkflowSpec{
		"join.address":          {Kind: &apiv1.WorkflowSpec_Join{Join: &apiv1.JoinWorkflow{Node: "w-2", Address: "192.168.56.99"}}},
		"spec.nodes[1].address": {Kind: &apiv1.WorkflowSpec_Apply{Apply: &apiv1.ApplyWorkflow{ClusterYaml: []byte(strings.Replace(doc, "192.168.57.21", "192.168.56.99", 1))}}},
	} {
		cl := testCluster("cp-1")
		_, err := buildWith(spec, cl, en, nil, addrs, nil)
		if !errors.Is(err, ErrInvalid) || !strings.Contains(err.Error(), name+": 192.168.56.99 is not an address of") {
			t.Errorf("%s: %v, want ErrInvalid naming the field", name, err)
		}
	}
}
