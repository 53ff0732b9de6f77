package main

import (
	"encoding/json"
	"fmt"
	"net/netip"
	"os"
	"path/filepath"
	"strings"
)

// ip (iproute2) SIMULATION, in exactly the forms the agent uses:
//
//	ip -j -4 route show
//	ip -j -4 route show proto N
//	ip -4 route replace CIDR via ADDR proto N
//	ip -4 route del CIDR proto N
//	ip -j -4 addr show
//	ip -j link show dev NAME
//	ip link delete NAME
//
// The main routing table is a JSON list under ROOT/var/lib/deckhand-sim/routes.json (a
// test may put routes of other protocols there: they are listed and kept like the
// kernel's); the host's addresses are 127.0.0.1 and its simulated address (nodenet.go);
// links are files under ROOT/var/lib/deckhand-sim/links (nothing in the simulation
// creates cni0: a test does, as a pod's first start would). Errors are the real tool's.

type simRoute struct {
	Dst      string `json:"dst"`
	Gateway  string `json:"gateway,omitempty"`
	Dev      string `json:"dev"`
	Protocol string `json:"protocol"`
}

func routesFile(r string) string { return filepath.Join(r, "var/lib/deckhand-sim/routes.json") }

func readRoutes(r string) []simRoute {
	var rs []simRoute
	b, err := os.ReadFile(routesFile(r))
	if err == nil {
		json.Unmarshal(b, &rs)
	}
	return rs
}

func writeRoutes(r string, rs []simRoute) error {
	b, _ := json.Marshal(rs)
	os.MkdirAll(filepath.Dir(routesFile(r)), 0o755)
	return os.WriteFile(routesFile(r), b, 0o644)
}

func ip(r string, args []string) (int, error) {
	a := strings.Join(args, " ")
	switch {
	case a == "-j -4 route show":
		out := []map[string]any{}
		for _, rt := range readRoutes(r) {
			// The unfiltered list names each route's protocol (ip omits boot's).
			out = append(out, map[string]any{"dst": strings.TrimSuffix(rt.Dst, "/32"), "gateway": rt.Gateway, "dev": rt.Dev, "protocol": rt.Protocol, "flags": []string{}})
		}
		b, _ := json.Marshal(out)
		fmt.Println(string(b))
		return 0, nil
	case len(args) == 6 && a == "-j -4 route show proto "+args[5]:
		out := []map[string]any{}
		for _, rt := range readRoutes(r) {
			if rt.Protocol == args[5] {
				// ip -j prints neither the protocol it filtered on nor /32 of a host route.
				out = append(out, map[string]any{"dst": strings.TrimSuffix(rt.Dst, "/32"), "gateway": rt.Gateway, "dev": rt.Dev, "flags": []string{}})
			}
		}
		b, _ := json.Marshal(out)
		fmt.Println(string(b))
		return 0, nil
	case len(args) == 8 && args[0] == "-4" && args[1] == "route" && args[2] == "replace" && args[4] == "via" && args[6] == "proto":
		dst, err := netip.ParsePrefix(args[3])
		if err != nil || dst.Masked() != dst {
			return 1, fmt.Errorf("Error: any valid prefix is expected rather than %q.", args[3])
		}
		via, err := netip.ParseAddr(args[5])
		if err != nil || !via.Is4() {
			return 1, fmt.Errorf("Error: inet address is expected rather than %q.", args[5])
		}
		if own := ownAddresses(r); own[via.String()] || via.IsLoopback() {
			return 2, fmt.Errorf("Error: Nexthop has invalid gateway.")
		}
		var rs []simRoute
		for _, rt := range readRoutes(r) {
			if rt.Dst != dst.String() {
				rs = append(rs, rt)
			}
		}
		rs = append(rs, simRoute{Dst: dst.String(), Gateway: via.String(), Dev: "eth0", Protocol: args[7]})
		return 0, writeRoutes(r, rs)
	case len(args) == 6 && args[0] == "-4" && args[1] == "route" && args[2] == "del" && args[4] == "proto":
		var rs []simRoute
		found := false
		for _, rt := range readRoutes(r) {
			if rt.Dst == args[3] && rt.Protocol == args[5] && !found {
				found = true
				continue
			}
			rs = append(rs, rt)
		}
		if !found {
			return 2, fmt.Errorf("RTNETLINK answers: No such process")
		}
		return 0, writeRoutes(r, rs)
	case a == "-j -4 addr show":
		var infos []map[string]any
		for addr := range ownAddresses(r) {
			infos = append(infos, map[string]any{"family": "inet", "local": addr, "prefixlen": 32})
		}
		b, _ := json.Marshal([]map[string]any{{"ifname": "eth0", "addr_info": infos}})
		fmt.Println(string(b))
		return 0, nil
	case len(args) == 5 && a == "-j link show dev "+args[4]:
		if !exists(filepath.Join(r, "var/lib/deckhand-sim/links", args[4])) {
			return 1, fmt.Errorf("Device %q does not exist.", args[4])
		}
		fmt.Printf("[{\"ifname\":%q,\"flags\":[\"UP\"]}]\n", args[4])
		return 0, nil
	case len(args) == 3 && args[0] == "link" && args[1] == "delete":
		if err := os.Remove(filepath.Join(r, "var/lib/deckhand-sim/links", args[2])); err != nil {
			return 1, fmt.Errorf("Cannot find device %q", args[2])
		}
		return 0, nil
	}
	return 255, fmt.Errorf("ip (simulation): unsupported arguments %v", args)
}

// ownAddresses are the simulated host's addresses.
func ownAddresses(r string) map[string]bool {
	own := map[string]bool{"127.0.0.1": true}
	if b, err := os.ReadFile(filepath.Join(r, hostAddrFile)); err == nil {
		own[strings.TrimSpace(string(b))] = true
	}
	return own
}
