package podnet

import (
	"errors"
	"fmt"
	"math/rand/v2"
	"net/netip"
	"reflect"
	"slices"
	"strings"
	"testing"

	"google.golang.org/protobuf/proto"

	taskv1 "github.com/deckhandhq/deckhand/proto/deckhand/task/v1"
)

func good() *taskv1.NetworkSpec {
	return &taskv1.NetworkSpec{Provider: "bridge", PodCidr: "10.244.1.0/24", ClusterPodSubnet: "10.244.0.0/16", Routes: []*taskv1.NetworkRoute{
		{Cidr: "10.244.2.0/24", Via: "10.250.0.12"}, {Cidr: "10.244.0.0/24", Via: "10.250.0.10"}}}
}

func TestParse(t *testing.T) {
	s, err := Parse(good())
	if err != nil {
		t.Fatal(err)
	}
	if got := fmt.Sprint(s.Routes); got != "[10.244.0.0/24 via 10.250.0.10 10.244.2.0/24 via 10.250.0.12]" {
		t.Errorf("routes are not sorted by CIDR: %s", got)
	}
	for _, c := range []struct {
		name, field string
		set         func(*taskv1.NetworkSpec)
	}{
		{"unknown provider", "provider", func(s *taskv1.NetworkSpec) { s.Provider = "weave" }},
		{"a provider configuring nodes itself", "provider", func(s *taskv1.NetworkSpec) { s.Provider = "calico" }},
		{"a user's manifest", "provider", func(s *taskv1.NetworkSpec) { s.Provider = "manifest" }},
		{"no provider", "provider", func(s *taskv1.NetworkSpec) { s.Provider = "" }},
		{"no pod CIDR", "pod_cidr", func(s *taskv1.NetworkSpec) { s.PodCidr = "" }},
		{"pod CIDR with host bits", "pod_cidr", func(s *taskv1.NetworkSpec) { s.PodCidr = "10.244.1.1/24" }},
		{"IPv6 pod CIDR", "pod_cidr", func(s *taskv1.NetworkSpec) { s.PodCidr = "fd00:1::/64" }},
		{"pod CIDR too small", "pod_cidr", func(s *taskv1.NetworkSpec) { s.PodCidr = "10.244.1.0/32" }},
		{"not a CIDR", "pod_cidr", func(s *taskv1.NetworkSpec) { s.PodCidr = "10.244.1.0" }},
		{"no cluster pod subnet", "cluster_pod_subnet", func(s *taskv1.NetworkSpec) { s.ClusterPodSubnet = "" }},
		{"cluster pod subnet not a CIDR", "cluster_pod_subnet", func(s *taskv1.NetworkSpec) { s.ClusterPodSubnet = "10.244.0.0" }},
		{"cluster pod subnet with host bits", "cluster_pod_subnet", func(s *taskv1.NetworkSpec) { s.ClusterPodSubnet = "10.244.1.0/16" }},
		{"IPv6 cluster pod subnet", "cluster_pod_subnet", func(s *taskv1.NetworkSpec) { s.ClusterPodSubnet = "fd00:10:244::/56" }},
		{"dual-stack pair as the cluster pod subnet", "cluster_pod_subnet", func(s *taskv1.NetworkSpec) { s.ClusterPodSubnet = "10.244.0.0/16,fd00:10:244::/56" }},
		{"cluster pod subnet beside the node's", "cluster_pod_subnet", func(s *taskv1.NetworkSpec) { s.ClusterPodSubnet = "10.245.0.0/16" }},
		{"cluster pod subnet inside the node's", "cluster_pod_subnet", func(s *taskv1.NetworkSpec) { s.ClusterPodSubnet = "10.244.1.0/25" }},
		{"MTU too small", "mtu", func(s *taskv1.NetworkSpec) { s.Mtu = 68 }},
		{"route to its own pods", "routes[1].cidr", func(s *taskv1.NetworkSpec) { s.Routes[1].Cidr = "10.244.1.0/24" }},
		{"route inside its own pods", "routes[0].cidr", func(s *taskv1.NetworkSpec) { s.Routes[0].Cidr = "10.244.1.128/25" }},
		{"route via a pod address", "routes[0].via", func(s *taskv1.NetworkSpec) { s.Routes[0].Via = "10.244.1.7" }},
		{"route via its own destination", "routes[0].via", func(s *taskv1.NetworkSpec) { s.Routes[0].Via = "10.244.2.1" }},
		{"route via loopback", "routes[0].via", func(s *taskv1.NetworkSpec) { s.Routes[0].Via = "127.0.0.1" }},
		{"route via nothing", "routes[0].via", func(s *taskv1.NetworkSpec) { s.Routes[0].Via = "" }},
		{"route via IPv6", "routes[0].via", func(s *taskv1.NetworkSpec) { s.Routes[0].Via = "fd00::1" }},
		{"route via a name", "routes[0].via", func(s *taskv1.NetworkSpec) { s.Routes[0].Via = "node-2" }},
		{"two nodes, one CIDR", "routes", func(s *taskv1.NetworkSpec) { s.Routes[1].Cidr = "10.244.2.0/24" }},
		{"two wrong routes: the first named", "routes[0].cidr", func(s *taskv1.NetworkSpec) { s.Routes[0].Cidr = "10.244.1.0/24"; s.Routes[1].Via = "0.0.0.0" }},
		{"a route wrong in its CIDR and its address: the CIDR named", "routes[0].cidr", func(s *taskv1.NetworkSpec) { s.Routes[0].Cidr = "10.244.1.0/24"; s.Routes[0].Via = "0.0.0.0" }},
		{"nested CIDRs", "routes", func(s *taskv1.NetworkSpec) {
			s.Routes = append(s.Routes, &taskv1.NetworkRoute{Cidr: "10.245.0.0/24", Via: "10.250.0.8"}, &taskv1.NetworkRoute{Cidr: "10.245.0.0/16", Via: "10.250.0.9"})
		}},
		{"too many routes", "routes", func(s *taskv1.NetworkSpec) {
			s.Routes = nil
			for i := range MaxRoutes + 1 {
				s.Routes = append(s.Routes, &taskv1.NetworkRoute{Cidr: fmt.Sprintf("10.%d.%d.0/24", 100+i/256, i%256), Via: "10.250.0.9"})
			}
		}},
	} {
		s := good()
		c.set(s)
		_, err := Parse(s)
		var fe *FieldError
		if !errors.As(err, &fe) || fe.Field != c.field || len(fe.Msg) < 20 {
			t.Errorf("%s: want an error naming %s, got %v", c.name, c.field, err)
		}
		// The same routes packed, where they can be: the same error, named in packed_routes.
		if packed, ok := packRoutes(s.Routes); ok {
			s.Routes, s.PackedRoutes = nil, packed
			field := strings.Replace(c.field, "routes", "packed_routes", 1)
			if _, err := Parse(s); !errors.As(err, &fe) || fe.Field != field || len(fe.Msg) < 20 {
				t.Errorf("%s, packed: want an error naming %s, got %v", c.name, field, err)
			}
		}
	}
	// Routes left for the controller to fill: never applied as a list, whichever form.
	unfilled := good()
	unfilled.Routes, unfilled.PackedRoutes, unfilled.RoutesFromRecord = nil, UnfilledRoutes(), true
	var fe *FieldError
	if _, err := Parse(unfilled); !errors.As(err, &fe) || fe.Field != "routes_from_record" {
		t.Errorf("routes left for the controller to fill: want an error naming routes_from_record, got %v", err)
	}
	unfilled.RoutesFromRecord = false // as an agent of the release before reads it
	if _, err := Parse(unfilled); !errors.As(err, &fe) || fe.Field != "packed_routes" {
		t.Errorf("the unfilled byte alone: want an error naming packed_routes, got %v", err)
	}
	// The most routes allowed, none overlapping: accepted, and fast enough for the edge.
	s2 := good()
	s2.Routes = nil
	for i := range MaxRoutes {
		s2.Routes = append(s2.Routes, &taskv1.NetworkRoute{Cidr: fmt.Sprintf("10.%d.%d.0/24", 100+i/256, i%256), Via: fmt.Sprintf("10.250.%d.%d", i/250, 1+i%250)})
	}
	if _, err := Parse(s2); err != nil {
		t.Errorf("%d routes: %v", MaxRoutes, err)
	}
	// The cluster's pod subnet may be the node's pod CIDR itself (a one-node cluster's /24).
	s3 := good()
	s3.ClusterPodSubnet, s3.Routes = "10.244.1.0/24", nil
	if s, err := Parse(s3); err != nil || s.ClusterPodSubnet.String() != "10.244.1.0/24" {
		t.Errorf("a cluster pod subnet equal to the node's pod CIDR: %v %v", s, err)
	}
	if err := (&FieldError{"pod_cidr", "x"}); !strings.HasPrefix(err.Error(), "pod_cidr: ") {
		t.Errorf("FieldError: %v", err)
	}
}

// packRoutes packs rs as a controller would, false when one is not packable (not IPv4).
func packRoutes(rs []*taskv1.NetworkRoute) ([]byte, bool) {
	var b []byte
	for _, r := range rs {
		c, err1 := netip.ParsePrefix(r.GetCidr())
		v, err2 := netip.ParseAddr(r.GetVia())
		ok := err1 == nil && err2 == nil
		if ok {
			b, ok = AppendPacked(b, c, v)
		}
		if !ok {
			return nil, false
		}
	}
	return b, true
}

// Packed routes parse to exactly what the same route list parses to; what only the packed
// form can get wrong (its framing, a prefix length, both forms at once) names the field.
func TestPackedRoutes(t *testing.T) {
	r := rand.New(rand.NewPCG(7, 8))
	for i := range 200 {
		list := good()
		list.Routes = nil
		for j := range r.IntN(250) {
			list.Routes = append(list.Routes, &taskv1.NetworkRoute{Cidr: fmt.Sprintf("10.244.%d.0/24", 2+j), Via: fmt.Sprintf("10.250.%d.%d", r.IntN(4), 1+r.IntN(250))})
		}
		r.Shuffle(len(list.Routes), func(a, b int) { list.Routes[a], list.Routes[b] = list.Routes[b], list.Routes[a] })
		packed := proto.Clone(list).(*taskv1.NetworkSpec)
		var ok bool
		if packed.PackedRoutes, ok = packRoutes(list.Routes); !ok {
			t.Fatal("IPv4 routes did not pack")
		}
		packed.Routes = nil
		if len(list.Routes) > 0 && len(packed.PackedRoutes) != PackedRouteSize*len(list.Routes) {
			t.Fatalf("%d routes packed into %d bytes", len(list.Routes), len(packed.PackedRoutes))
		}
		want, err1 := Parse(list)
		got, err2 := Parse(packed)
		if err1 != nil || err2 != nil || !reflect.DeepEqual(want, got) {
			t.Fatalf("spec %d: the list parses to %v (%v), the packed routes to %v (%v)", i, want, err1, got, err2)
		}
	}
	if b, ok := AppendPacked(nil, netip.PrefixFrom(netip.MustParseAddr("10.244.2.0"), 33), netip.MustParseAddr("10.250.0.1")); ok || len(b) != 0 {
		t.Errorf("an invalid IPv4 prefix (length 33) packed: %v", b)
	}
	if _, ok := AppendPacked(nil, netip.MustParsePrefix("fd00::/64"), netip.MustParseAddr("10.250.0.1")); ok {
		t.Error("an IPv6 CIDR was packed")
	}
	if _, ok := AppendPacked(nil, netip.MustParsePrefix("10.244.2.0/24"), netip.MustParseAddr("fd00::1")); ok {
		t.Error("an IPv6 address was packed")
	}
	one, _ := packRoutes(good().Routes[:1])
	for _, c := range []struct {
		name, field string
		set         func(*taskv1.NetworkSpec)
	}{
		{"a route cut short", "packed_routes", func(s *taskv1.NetworkSpec) { s.PackedRoutes = one[:8] }},
		{"a route and a byte", "packed_routes", func(s *taskv1.NetworkSpec) { s.PackedRoutes = append(slices.Clone(one), 1) }},
		{"prefix length 33", "packed_routes[0].cidr", func(s *taskv1.NetworkSpec) { s.PackedRoutes = slices.Clone(one); s.PackedRoutes[4] = 33 }},
		{"prefix length 31", "packed_routes[0].cidr", func(s *taskv1.NetworkSpec) { s.PackedRoutes = slices.Clone(one); s.PackedRoutes[4] = 31 }},
		{"via 0.0.0.0", "packed_routes[0].via", func(s *taskv1.NetworkSpec) { s.PackedRoutes = append(slices.Clone(one[:5]), 0, 0, 0, 0) }},
		{"both forms", "packed_routes", func(s *taskv1.NetworkSpec) { s.PackedRoutes = one }},
		{"too many", "packed_routes", func(s *taskv1.NetworkSpec) { s.PackedRoutes = make([]byte, (MaxRoutes+1)*PackedRouteSize) }},
		{"under a provider routing itself", "packed_routes", func(s *taskv1.NetworkSpec) { s.Provider = "flannel"; s.PackedRoutes = one }},
	} {
		s := good()
		if c.name != "both forms" {
			s.Routes = nil
		}
		c.set(s)
		_, err := Parse(s)
		var fe *FieldError
		if !errors.As(err, &fe) || fe.Field != c.field || len(fe.Msg) < 20 {
			t.Errorf("%s: want an error naming %s, got %v", c.name, c.field, err)
		}
	}
}

func TestClusterSubnet(t *testing.T) {
	for in, want := range map[string]string{
		"10.244.0.0/16":                    "10.244.0.0/16",
		"10.244.0.0/16,fd00:10:244::/56":   "10.244.0.0/16",
		"fd00:10:244::/56,10.244.0.0/16":   "10.244.0.0/16", // IPv6 first: the IPv4 one still
		"fd00:10:244::/56, 192.168.0.0/16": "192.168.0.0/16",
		"fd00:10:244::/56":                 "fd00:10:244::/56", // none: as it is, for Parse to refuse
		"":                                 "",
	} {
		if got := ClusterSubnet(in); got != want {
			t.Errorf("ClusterSubnet(%q) = %q, want %q", in, got, want)
		}
	}
}
