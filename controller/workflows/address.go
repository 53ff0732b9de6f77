package workflows

import (
	"fmt"
	"net/netip"
	"slices"
	"strings"
)

// hostAddrs is what a node's facts say about its addresses.
type hostAddrs struct {
	// route is the agent's local address on the route to its controller (empty when
	// unknown).
	route string
	// all are the host's addresses another host could reach.
	all []string
}

// Where a node's address came from, for the plan's notes.
const (
	addrExplicit = "given"
	addrRoute    = "the address on the route to its controller"
)

// nodeAddress chooses a node's address in the cluster: the one the user gave (field names
// it), which must be one of the host's addresses when its facts list them; else the host's
// address on the route to its controller; else none (kubeadm and the kubelet then take the
// default route's interface). h is nil for a node that has not reported facts. It is a
// pure function of its inputs.
func nodeAddress(field, node, explicit string, h *hostAddrs) (addr, from string, err error) {
	if explicit == "" {
		if h == nil || h.route == "" {
			return "", "", nil
		}
		return h.route, addrRoute, nil
	}
	ip, perr := netip.ParseAddr(explicit)
	switch {
	case perr != nil || ip.Zone() != "":
		return "", "", fmt.Errorf("%w: %s: %q is not an IP address: give the node's address on the network the cluster's hosts share, e.g. 192.168.56.11", ErrInvalid, field, explicit)
	case ip.Is4In6():
		return "", "", fmt.Errorf("%w: %s: %s is an IPv4-mapped IPv6 address: write %s", ErrInvalid, field, explicit, ip.Unmap())
	case !ip.IsGlobalUnicast():
		return "", "", fmt.Errorf("%w: %s: %s is not a unicast address other hosts can reach (loopback, link-local, multicast or unspecified): give the node's address on the cluster's network", ErrInvalid, field, explicit)
	}
	addr = ip.String()
	if h == nil || len(h.all) == 0 {
		// The node has not reported its addresses: kubeadm and the kubelet refuse an
		// address the host does not have, with their own error.
		return addr, addrExplicit, nil
	}
	for _, a := range h.all {
		if have, err := netip.ParseAddr(a); err == nil && have == ip {
			return addr, addrExplicit, nil
		}
	}
	hint := "leave it empty for the address on the route to its controller"
	if h.route != "" {
		hint += " (" + h.route + ")"
	}
	all := slices.Clone(h.all)
	slices.Sort(all)
	return "", "", fmt.Errorf("%w: %s: %s is not an address of %s (its addresses: %s): give one of them, or %s", ErrInvalid, field, addr, node, strings.Join(all, ", "), hint)
}
