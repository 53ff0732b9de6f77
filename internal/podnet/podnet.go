// Package podnet parses the pod network a node gets (a network task's spec): the one
// parser both edges use, the controller's API (refusing a bad spec with the field named)
// and the agent (refusing it again before touching the host).
package podnet

import (
	"cmp"
	"fmt"
	"net/netip"
	"slices"
	"strings"

	taskv1 "github.com/deckhandhq/deckhand/proto/deckhand/task/v1"
)

// DefaultPodSubnet is the cluster's pod subnet when its document gives none: the bridge
// provider needs one (kube-controller-manager assigns each node a /24 of it) and kubeadm
// has no default.
const DefaultPodSubnet = "10.244.0.0/16"

// Limits of a network spec.
const (
	MaxRoutes = 5000 // routes: one per other node
	MinMTU    = 576
	MaxMTU    = 65535
	// MaxPrefixLen is the longest pod CIDR: host-local needs addresses for the gateway and
	// at least one pod.
	MaxPrefixLen = 30
)

// FieldError names the field of a NetworkSpec that is wrong ("pod_cidr",
// "routes[3].via") and says how to fix it.
type FieldError struct {
	Field string
	Msg   string
}

func (e *FieldError) Error() string { return e.Field + ": " + e.Msg }

// Route is one other node's pod CIDR and the address it is reached via.
type Route struct {
	CIDR netip.Prefix
	Via  netip.Addr
}

func (r Route) String() string { return r.CIDR.String() + " via " + r.Via.String() }

// Spec is a parsed NetworkSpec.
type Spec struct {
	Provider string
	PodCIDR  netip.Prefix
	// ClusterPodSubnet contains PodCIDR and the other nodes' pod CIDRs.
	ClusterPodSubnet netip.Prefix
	Routes           []Route // sorted by CIDR
	MTU              uint32
	Generation       uint64
}

// ParsePrefix parses an IPv4 pod CIDR in its canonical form (10.244.1.0/24).
func ParsePrefix(field, s string) (netip.Prefix, error) {
	p, err := netip.ParsePrefix(s)
	switch {
	case s == "":
		return p, &FieldError{field, "is required: a pod CIDR such as 10.244.1.0/24"}
	case err != nil:
		return p, &FieldError{field, fmt.Sprintf("%q is not a CIDR: give one such as 10.244.1.0/24", s)}
	}
	return p, checkPrefix(field, p)
}

// checkPrefix says whether p is a pod CIDR: IPv4, canonical, of a usable length.
func checkPrefix(field string, p netip.Prefix) error {
	switch {
	case !p.Addr().Is4():
		return &FieldError{field, fmt.Sprintf("%q is not IPv4: the bridge provider routes IPv4 pod CIDRs only", p)}
	case p.Masked() != p:
		return &FieldError{field, fmt.Sprintf("%q has host bits set: give the network, %s", p, p.Masked())}
	case p.Bits() > MaxPrefixLen || p.Bits() < 8:
		return &FieldError{field, fmt.Sprintf("%q: give a prefix length between /8 and /%d", p, MaxPrefixLen)}
	}
	return nil
}

// ParseAddr parses a node's IPv4 address, one a route can go via.
func ParseAddr(field, s string) (netip.Addr, error) {
	a, err := netip.ParseAddr(s)
	switch {
	case s == "":
		return a, &FieldError{field, "is required: the node's address (its InternalIP)"}
	case err != nil:
		return a, &FieldError{field, fmt.Sprintf("%q is not an IP address", s)}
	}
	return a, checkAddr(field, a)
}

// checkAddr says whether a is an address a route can go via: a node's IPv4 address.
func checkAddr(field string, a netip.Addr) error {
	switch {
	case !a.Is4():
		return &FieldError{field, fmt.Sprintf("%q is not IPv4: the bridge provider routes via IPv4 node addresses only", a)}
	case a.IsUnspecified() || a.IsLoopback() || a.IsMulticast() || a == netip.AddrFrom4([4]byte{255, 255, 255, 255}):
		return &FieldError{field, fmt.Sprintf("%s is not a node's address: give the other node's InternalIP", a)}
	}
	return nil
}

// PackedRouteSize is the bytes of one route in NetworkSpec.packed_routes: the CIDR's four
// address bytes, its prefix length, the four bytes of the address it goes via.
const PackedRouteSize = 9

// AppendPacked appends route cidr via via to packed routes b; ok is false (b unchanged)
// when either is not IPv4, which a packed route cannot hold, or cidr is not a valid prefix
// (PrefixFrom(v4, 33) keeps its IPv4 address).
func AppendPacked(b []byte, cidr netip.Prefix, via netip.Addr) (_ []byte, ok bool) {
	if !cidr.IsValid() || !cidr.Addr().Is4() || !via.Is4() {
		return b, false
	}
	a, v := cidr.Addr().As4(), via.As4()
	b = append(b, a[:]...)
	b = append(b, byte(cidr.Bits()))
	return append(b, v[:]...), true
}

// RouteList is packed routes b as NetworkSpec.routes lists them: what an agent that does
// not read packed_routes is sent.
func RouteList(b []byte) ([]*taskv1.NetworkRoute, error) {
	rs, err := unpack(b)
	if err != nil {
		return nil, err
	}
	out := make([]*taskv1.NetworkRoute, len(rs))
	for i, r := range rs {
		out[i] = &taskv1.NetworkRoute{Cidr: r.CIDR.String(), Via: r.Via.String()}
	}
	return out, nil
}

// unpack reads packed routes, checking only their framing (Parse checks the routes).
func unpack(b []byte) ([]Route, error) {
	if len(b)%PackedRouteSize != 0 {
		return nil, &FieldError{"packed_routes", fmt.Sprintf("%d bytes, not a whole number of routes of %d bytes (4 bytes of the CIDR's address, its prefix length, 4 bytes of the address it goes via)", len(b), PackedRouteSize)}
	}
	if n := len(b) / PackedRouteSize; n > MaxRoutes {
		return nil, &FieldError{"packed_routes", fmt.Sprintf("has %d routes; at most %d are allowed (one per other node)", n, MaxRoutes)}
	}
	out := make([]Route, 0, len(b)/PackedRouteSize)
	for i := 0; i < len(b); i += PackedRouteSize {
		r := b[i : i+PackedRouteSize]
		bits := int(r[4])
		if bits > 32 {
			return nil, &FieldError{fmt.Sprintf("packed_routes[%d].cidr", i/PackedRouteSize), fmt.Sprintf("prefix length %d: an IPv4 CIDR's is at most 32", bits)}
		}
		out = append(out, Route{CIDR: netip.PrefixFrom(netip.AddrFrom4([4]byte(r[0:4])), bits), Via: netip.AddrFrom4([4]byte(r[5:9]))})
	}
	return out, nil
}

// UnfilledRoutes is what a stored routes task holds in packed_routes while its list is left
// for the controller replica that sends it to fill (routes_from_record): one byte, which
// neither an agent nor a replica of the release before reads as routes, so they refuse the
// task where an empty list would remove every route the node owns.
func UnfilledRoutes() []byte { return []byte{0} }

// Parse checks a NetworkSpec: a known provider, a pod CIDR inside the cluster's pod subnet,
// at most MaxRoutes routes whose CIDRs overlap neither each other nor the node's own, each
// via a usable address.
func Parse(s *taskv1.NetworkSpec) (*Spec, error) {
	out := &Spec{Provider: s.GetProvider(), MTU: s.GetMtu(), Generation: s.GetGeneration()}
	if _, ok := Lookup(out.Provider); !ok || out.Provider == "" {
		return nil, &FieldError{"provider", fmt.Sprintf("%q is not a pod network Deckhand installs: use %s", out.Provider, providerList())}
	}
	if p, _ := Lookup(out.Provider); p.OwnCNI {
		return nil, &FieldError{"provider", fmt.Sprintf("%s's pods write each node's CNI configuration: a network task has nothing to do under it", out.Provider)}
	}
	if s.GetRoutesFromRecord() {
		return nil, &FieldError{"routes_from_record", "is set: the controller replica that sends a task fills its routes from the cluster record and clears it (this one was sent unfilled, by a replica of an older release: upgrade every replica); a task given to the API lists its routes instead"}
	}
	var err error
	if out.PodCIDR, err = ParsePrefix("pod_cidr", s.GetPodCidr()); err != nil {
		return nil, err
	}
	if s.GetClusterPodSubnet() == "" {
		return nil, &FieldError{"cluster_pod_subnet", "is required: the cluster's pod subnet (its pod_subnet), such as 10.244.0.0/16"}
	}
	if out.ClusterPodSubnet, err = ParsePrefix("cluster_pod_subnet", s.GetClusterPodSubnet()); err != nil {
		return nil, err
	}
	if c, p := out.ClusterPodSubnet, out.PodCIDR; c.Bits() > p.Bits() || !c.Contains(p.Addr()) {
		return nil, &FieldError{"cluster_pod_subnet", fmt.Sprintf("%s does not contain this node's pod CIDR %s: give the cluster's pod_subnet, which every node's pod CIDR is part of", c, p)}
	}
	if m := out.MTU; m != 0 && (m < MinMTU || m > MaxMTU) {
		return nil, &FieldError{"mtu", fmt.Sprintf("%d: give %d..%d, or 0 for the kernel's default", m, MinMTU, MaxMTU)}
	}
	// packed is nil for a route list (packed routes hold at least one route).
	routes, field, n := s.GetRoutes(), "routes", len(s.GetRoutes())
	var packed []Route
	if len(s.GetPackedRoutes()) > 0 {
		if len(routes) > 0 {
			return nil, &FieldError{"packed_routes", "is given with routes: give the route list in one of them"}
		}
		// unpack bounds the count (MaxRoutes) before it allocates.
		if packed, err = unpack(s.GetPackedRoutes()); err != nil {
			return nil, err
		}
		field, n = "packed_routes", len(packed)
	}
	if p, _ := Lookup(out.Provider); !p.HostRoutes && n > 0 {
		return nil, &FieldError{field, fmt.Sprintf("has %d entries, but %s routes between nodes itself: give none", n, out.Provider)}
	}
	if n > MaxRoutes {
		return nil, &FieldError{field, fmt.Sprintf("has %d entries; at most %d are allowed (one per other node)", n, MaxRoutes)}
	}
	// Each route is checked whole before the next, in either form: the first wrong route
	// is the one named, whichever form it came in.
	given := make([]Route, 0, n)
	for i := range n {
		f := fmt.Sprintf("%s[%d]", field, i)
		var r Route
		if packed != nil {
			r = packed[i]
			err = checkPrefix(f+".cidr", r.CIDR)
		} else {
			r.CIDR, err = ParsePrefix(f+".cidr", routes[i].GetCidr())
		}
		if err != nil {
			return nil, err
		}
		if r.CIDR.Overlaps(out.PodCIDR) {
			return nil, &FieldError{f + ".cidr", fmt.Sprintf("%s overlaps this node's own pod CIDR %s: a node never routes its own pods via another node", r.CIDR, out.PodCIDR)}
		}
		if packed != nil {
			err = checkAddr(f+".via", r.Via)
		} else {
			r.Via, err = ParseAddr(f+".via", routes[i].GetVia())
		}
		if err != nil {
			return nil, err
		}
		if out.PodCIDR.Contains(r.Via) || r.CIDR.Contains(r.Via) {
			return nil, &FieldError{f + ".via", fmt.Sprintf("%s is a pod address: give the node's own address (its InternalIP)", r.Via)}
		}
		given = append(given, r)
	}
	out.Routes = given
	// Prefixes are nested or disjoint: sorted by first address, a prefix that overlaps any
	// earlier one overlaps the one just before it.
	sorted := slices.Clone(out.Routes)
	slices.SortFunc(sorted, func(a, b Route) int { return ComparePrefix(a.CIDR, b.CIDR) })
	for i := 1; i < len(sorted); i++ {
		if sorted[i].CIDR.Overlaps(sorted[i-1].CIDR) {
			return nil, &FieldError{field, fmt.Sprintf("%s and %s overlap: each node has its own pod CIDR, listed once", sorted[i-1].CIDR, sorted[i].CIDR)}
		}
	}
	out.Routes = sorted
	return out, nil
}

// ClusterSubnet is the IPv4 CIDR of a cluster's pod_subnet (one CIDR, or an IPv4 and an
// IPv6 CIDR joined by a comma): the bridge provider's pods are IPv4. A pod_subnet without
// one is returned as it is, for Parse to refuse with the field named.
func ClusterSubnet(podSubnet string) string {
	for _, c := range strings.Split(podSubnet, ",") {
		if p, err := netip.ParsePrefix(strings.TrimSpace(c)); err == nil && p.Addr().Is4() {
			return p.String()
		}
	}
	return podSubnet
}

// ComparePrefix orders prefixes by address, then length.
func ComparePrefix(a, b netip.Prefix) int {
	if c := a.Addr().Compare(b.Addr()); c != 0 {
		return c
	}
	return cmp.Compare(a.Bits(), b.Bits())
}

func providerList() string { return strings.Join(Providers, ", ") }
