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
//	ip -j -d addr show
//	ip -j link show dev NAME
//	ip link delete NAME
//	ip addr flush dev NAME
//
// The main routing table is a JSON list under ROOT/var/lib/deckhand-sim/routes.json (a
// test may put routes of other protocols there: they are listed and kept like the
// kernel's); the host's addresses are 127.0.0.1 on lo and its simulated address
// (nodenet.go) on eth0; other links are files under ROOT/var/lib/deckhand-sim/links
// (nothing in the simulation creates one: a test does, as a pod network or kube-proxy
// would), each line of which is an address of the link in CIDR form or "kind KIND" (its
// linkinfo kind: bridge, vxlan, dummy, ipip...). As in the kernel, the ipip module's own
// tunl0 is not deleted by ip link delete (which succeeds): only unloading the module
// removes it. Errors are the real tool's.

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
	case a == "-j -4 addr show" || a == "-j -d addr show":
		b, _ := json.Marshal(simLinks(r, a == "-j -4 addr show", a == "-j -d addr show"))
		fmt.Println(string(b))
		return 0, nil
	case len(args) == 5 && a == "-j link show dev "+args[4]:
		if !exists(filepath.Join(r, "var/lib/deckhand-sim/links", args[4])) {
			return 1, fmt.Errorf("Device %q does not exist.", args[4])
		}
		fmt.Printf("[{\"ifname\":%q,\"flags\":[\"UP\"]}]\n", args[4])
		return 0, nil
	case len(args) == 4 && args[0] == "addr" && args[1] == "flush" && args[2] == "dev":
		file := filepath.Join(r, "var/lib/deckhand-sim/links", args[3])
		if !exists(file) {
			return 1, fmt.Errorf("Device %q does not exist.", args[3])
		}
		kind, _ := readLink(file)
		keep := ""
		if kind != "" {
			keep = "kind " + kind + "\n"
		}
		return 0, os.WriteFile(file, []byte(keep), 0o644)
	case len(args) == 3 && args[0] == "link" && args[1] == "delete":
		file := filepath.Join(r, "var/lib/deckhand-sim/links", args[2])
		if !exists(file) {
			return 1, fmt.Errorf("Cannot find device %q", args[2])
		}
		if kind, _ := readLink(file); args[2] == "tunl0" && kind == "ipip" {
			return 0, nil // the ipip module's fallback device: the kernel keeps it
		}
		return 0, os.Remove(file)
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

// readLink reads a simulated link's file: its kind and its addresses (CIDR).
func readLink(file string) (string, []netip.Prefix) {
	b, _ := os.ReadFile(file)
	kind := ""
	var addrs []netip.Prefix
	for _, l := range strings.Split(string(b), "\n") {
		l = strings.TrimSpace(l)
		if k, ok := strings.CutPrefix(l, "kind "); ok {
			kind = k
		} else if p, err := netip.ParsePrefix(l); err == nil {
			addrs = append(addrs, p)
		}
	}
	return kind, addrs
}

// simLinks are the host's interfaces as ip -j addr show prints them: lo, eth0 and the
// simulated links, with their addresses (IPv4 only with -4) and, with -d, their kinds.
func simLinks(r string, only4, details bool) []map[string]any {
	info := func(p netip.Prefix) map[string]any {
		fam := "inet"
		if p.Addr().Is6() {
			fam = "inet6"
		}
		return map[string]any{"family": fam, "local": p.Addr().String(), "prefixlen": p.Bits()}
	}
	var eth0 []map[string]any
	for addr := range ownAddresses(r) {
		if addr != "127.0.0.1" {
			eth0 = append(eth0, info(netip.PrefixFrom(netip.MustParseAddr(addr), 32)))
		}
	}
	out := []map[string]any{
		{"ifindex": 1, "ifname": "lo", "flags": []string{"LOOPBACK", "UP"}, "addr_info": []map[string]any{info(netip.MustParsePrefix("127.0.0.1/8"))}},
		{"ifindex": 2, "ifname": "eth0", "flags": []string{"UP"}, "addr_info": eth0},
	}
	entries, _ := os.ReadDir(filepath.Join(r, "var/lib/deckhand-sim/links"))
	for i, en := range entries {
		kind, addrs := readLink(filepath.Join(r, "var/lib/deckhand-sim/links", en.Name()))
		infos := []map[string]any{}
		for _, p := range addrs {
			if !only4 || p.Addr().Is4() {
				infos = append(infos, info(p))
			}
		}
		l := map[string]any{"ifindex": 3 + i, "ifname": en.Name(), "flags": []string{"UP"}, "addr_info": infos}
		if details && kind != "" {
			l["linkinfo"] = map[string]any{"info_kind": kind}
		}
		out = append(out, l)
	}
	return out
}
