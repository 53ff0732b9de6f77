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
	case !p.Addr().Is4():
		return p, &FieldError{field, fmt.Sprintf("%q is not IPv4: the bridge provider routes IPv4 pod CIDRs only", s)}
	case p.Masked() != p:
		return p, &FieldError{field, fmt.Sprintf("%q has host bits set: give the network, %s", s, p.Masked())}
	case p.Bits() > MaxPrefixLen || p.Bits() < 8:
		return p, &FieldError{field, fmt.Sprintf("%q: give a prefix length between /8 and /%d", s, MaxPrefixLen)}
	}
	return p, nil
}

// ParseAddr parses a node's IPv4 address, one a route can go via.
func ParseAddr(field, s string) (netip.Addr, error) {
	a, err := netip.ParseAddr(s)
	switch {
	case s == "":
		return a, &FieldError{field, "is required: the node's address (its InternalIP)"}
	case err != nil:
		return a, &FieldError{field, fmt.Sprintf("%q is not an IP address", s)}
	case !a.Is4():
		return a, &FieldError{field, fmt.Sprintf("%q is not IPv4: the bridge provider routes via IPv4 node addresses only", s)}
	case a.IsUnspecified() || a.IsLoopback() || a.IsMulticast() || a == netip.AddrFrom4([4]byte{255, 255, 255, 255}):
		return a, &FieldError{field, fmt.Sprintf("%s is not a node's address: give the other node's InternalIP", s)}
	}
	return a, nil
}

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
	if p, _ := Lookup(out.Provider); !p.HostRoutes && len(s.GetRoutes()) > 0 {
		return nil, &FieldError{"routes", fmt.Sprintf("has %d entries, but %s routes between nodes itself: give none", len(s.GetRoutes()), out.Provider)}
	}
	if n := len(s.GetRoutes()); n > MaxRoutes {
		return nil, &FieldError{"routes", fmt.Sprintf("has %d entries; at most %d are allowed (one per other node)", n, MaxRoutes)}
	}
	for i, r := range s.GetRoutes() {
		f := fmt.Sprintf("routes[%d]", i)
		c, err := ParsePrefix(f+".cidr", r.GetCidr())
		if err != nil {
			return nil, err
		}
		if c.Overlaps(out.PodCIDR) {
			return nil, &FieldError{f + ".cidr", fmt.Sprintf("%s overlaps this node's own pod CIDR %s: a node never routes its own pods via another node", c, out.PodCIDR)}
		}
		via, err := ParseAddr(f+".via", r.GetVia())
		if err != nil {
			return nil, err
		}
		if out.PodCIDR.Contains(via) || c.Contains(via) {
			return nil, &FieldError{f + ".via", fmt.Sprintf("%s is a pod address: give the node's own address (its InternalIP)", via)}
		}
		out.Routes = append(out.Routes, Route{CIDR: c, Via: via})
	}
	// Prefixes are nested or disjoint: sorted by first address, a prefix that overlaps any
	// earlier one overlaps the one just before it.
	sorted := slices.Clone(out.Routes)
	slices.SortFunc(sorted, func(a, b Route) int { return ComparePrefix(a.CIDR, b.CIDR) })
	for i := 1; i < len(sorted); i++ {
		if sorted[i].CIDR.Overlaps(sorted[i-1].CIDR) {
			return nil, &FieldError{"routes", fmt.Sprintf("%s and %s overlap: each node has its own pod CIDR, listed once", sorted[i-1].CIDR, sorted[i].CIDR)}
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
