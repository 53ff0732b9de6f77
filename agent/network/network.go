package network

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"net/netip"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"time"

	"github.com/deckhandhq/deckhand/agent/host"
	"github.com/deckhandhq/deckhand/agent/tasks"
	"github.com/deckhandhq/deckhand/internal/podnet"
	taskv1 "github.com/deckhandhq/deckhand/proto/deckhand/task/v1"
)

const (
	// ConfPath is the CNI configuration the bridge provider writes; containerd loads the
	// first configuration of its conf_dir in lexical order.
	ConfPath = "/etc/cni/net.d/10-deckhand-bridge.conflist"
	// NetworkName names the CNI network (and host-local's state directory under
	// /var/lib/cni/networks).
	NetworkName = "deckhand"
	// Bridge is the Linux bridge the pods' interfaces attach to.
	Bridge = "cni0"
	// RouteProto marks the routes Deckhand owns (`ip route ... proto 221`, 0xdd): it is not
	// one of the kernel's or iproute2's reserved numbers (rt_protos: 0-18, 42 babel, 99
	// openr, 186-192 bgp/isis/ospf/rip/eigrp) nor one a known pod network uses (Calico
	// 80, bird 12, kube-router's zebra 11). Routes with another protocol are never changed:
	// a pod CIDR that already has one is refused (ROUTE_CONFLICT).
	RouteProto = 221

	ipamDir        = "/var/lib/cni/networks/" + NetworkName
	lockFile       = "/var/lib/deckhand/network.lock"
	generationFile = "/var/lib/deckhand/network.generation"
)

// PluginDir is containerd's CNI plugin directory, as the runtime task configures it (Debian's
// containernetworking-plugins linked in).
const PluginDir = "/opt/cni/bin"

// Plugins are the CNI plugins the bridge provider needs: its configuration names bridge,
// host-local and portmap; containerd runs loopback itself for every pod.
var Plugins = []string{"bridge", "host-local", "portmap", "loopback"}

var proto = strconv.Itoa(RouteProto)

// Run installs the pod network: the CNI configuration for the node's pod CIDR, the NAT rule
// for what the pods send outside the cluster's pod subnet, and the routes to the other
// nodes' pod CIDRs. Output pod_cidr.
func Run(ctx context.Context, t *taskv1.Task, h *host.Host, e *tasks.Emitter) (map[string]string, error) {
	s, err := podnet.Parse(t.GetSpec().GetNetwork())
	if err != nil {
		return nil, tasks.Errorf("INVALID_ARGUMENT", "fix the task's network spec", "network.%v", err)
	}
	if err := checkPlugins(h, e); err != nil {
		return nil, err
	}
	if err := checkOwnAddresses(ctx, h, s); err != nil {
		return nil, err
	}
	provider := podnet.MustLookup(s.Provider)
	if provider.SubnetFile != "" {
		if err := fromSubnetFile(ctx, h, e, provider, s, t.GetNode()); err != nil {
			return nil, err
		}
	}
	conf, err := Conflist(s)
	if err != nil {
		return nil, err
	}
	if changed, err := h.WriteFile(ConfPath, conf, 0o644); err != nil {
		return nil, fmt.Errorf("write %s: %w", ConfPath, err)
	} else if changed {
		e.Logf("CNI configuration %s: bridge %s, pods from %s", ConfPath, Bridge, s.PodCIDR)
	}
	l, err := h.Lock(ctx, lockFile, func() { e.Logf("waiting for another network task on this node (it holds %s)", lockFile) })
	if err != nil {
		return nil, fmt.Errorf("network lock: %w", err)
	}
	defer l.Unlock()
	if err := ensureMasquerade(ctx, h, e, s.ClusterPodSubnet); err != nil {
		return nil, err
	}
	if !provider.HostRoutes {
		e.Logf("routes between nodes: %s's", provider.Name)
		return map[string]string{"pod_cidr": s.PodCIDR.String()}, nil
	}
	if applied := h.Generation(generationFile); s.Generation < applied {
		e.Logf("routes left as they are: this node applied a newer route list (generation %d) than this task's (%d)", applied, s.Generation)
		return map[string]string{"pod_cidr": s.PodCIDR.String()}, nil
	}
	out, err := h.Query(ctx, "ip", "-j", "-4", "route", "show", "proto", proto)
	if err != nil {
		return nil, tasks.Errorf("ROUTES_FAILED", "check that iproute2 (ip) is installed and works on the node", "list the routes Deckhand owns: %v", err)
	}
	have, err := ParseRoutes(out)
	if err != nil {
		return nil, tasks.Errorf("ROUTES_FAILED", "report this output of ip -j route show", "%v", err)
	}
	replace, remove := Diff(s.Routes, have)
	if err := checkForeign(ctx, h, replace, have); err != nil {
		return nil, err
	}
	for _, r := range replace {
		if err := h.Run(ctx, "route pods of "+r.CIDR.String()+" via "+r.Via.String(), "ip", "-4", "route", "replace", r.CIDR.String(), "via", r.Via.String(), "proto", proto); err != nil {
			return nil, tasks.Errorf("ROUTES_FAILED", "the bridge provider needs every node on one L2 segment: check that "+r.Via.String()+" is a neighbour of this node (ip route get "+r.Via.String()+")",
				"route %s: %v", r, err)
		}
	}
	for _, c := range remove {
		if err := h.Run(ctx, "remove the route to "+c.String()+" (no node has it any more)", "ip", "-4", "route", "del", c.String(), "proto", proto); err != nil {
			return nil, tasks.Errorf("ROUTES_FAILED", "remove it by hand: ip route del "+c.String()+" proto "+proto, "remove route %s: %v", c, err)
		}
	}
	e.Logf("%d route(s) to other nodes' pods: %d added or changed, %d removed", len(s.Routes), len(replace), len(remove))
	if _, err := h.WriteFile(generationFile, []byte(strconv.FormatUint(s.Generation, 10)+"\n"), 0o644); err != nil {
		return nil, err
	}
	return map[string]string{"pod_cidr": s.PodCIDR.String()}, nil
}

// subnetWait bounds the wait for a provider's subnet file: its DaemonSet's pod is
// scheduled on the node as it registers, pulls an image the images step pulled before,
// and writes the file within seconds of starting.
const subnetWait = 3 * time.Minute

// fromSubnetFile waits for the provider's subnet file (flannel's subnet.env, written once
// flanneld runs on the node and has the node's lease) and takes the MTU pods get from it,
// unless the spec sets one. The subnet in it must be the node's pod CIDR (flannel's kube
// subnet manager leases exactly the Node's spec.podCIDR). In a dry-run a missing file is
// reported, not awaited.
func fromSubnetFile(ctx context.Context, h *host.Host, e *tasks.Emitter, p podnet.Provider, s *podnet.Spec, node string) error {
	b, err := h.ReadFile(p.SubnetFile)
	if err != nil && h.DryRun {
		e.Logf("would wait for %s to start on this node and write %s", p.Name, p.SubnetFile)
		return nil
	}
	if err != nil {
		e.Logf("waiting up to %s for %s to start on this node and write %s", subnetWait, p.Name, p.SubnetFile)
		deadline := time.Now().Add(subnetWait)
		for err != nil && time.Now().Before(deadline) {
			select {
			case <-ctx.Done():
				return ctx.Err()
			case <-time.After(pollSubnetFile):
			}
			b, err = h.ReadFile(p.SubnetFile)
		}
		if err != nil {
			return tasks.Errorf("PROVIDER_NOT_RUNNING", "see why its pod does not run on this node: kubectl -n "+p.Namespace+" get pods -o wide --field-selector spec.nodeName="+node+", and its logs",
				"%s has not started on this node: no %s after %s", p.Name, p.SubnetFile, subnetWait)
		}
	}
	env, err := ParseSubnetEnv(b)
	if err != nil {
		return tasks.Errorf("PROVIDER_NOT_RUNNING", "remove "+p.SubnetFile+" and restart "+p.Name+"'s pod on this node", "%s: %v", p.SubnetFile, err)
	}
	if env.Subnet.Masked() != s.PodCIDR {
		return tasks.Errorf("SUBNET_MISMATCH", "the node's pod CIDR changed under "+p.Name+": delete its pod on this node so it starts again with the Node's spec.podCIDR",
			"%s says this node's subnet is %s, but the Node's pod CIDR is %s", p.SubnetFile, env.Subnet.Masked(), s.PodCIDR)
	}
	switch {
	case s.MTU == 0:
		s.MTU = env.MTU
	case s.MTU > env.MTU:
		return tasks.Errorf("INVALID_ARGUMENT", fmt.Sprintf("give an MTU of at most %d, or 0 for %s's", env.MTU, p.Name),
			"network.mtu: %d is larger than %s's %d: the pods would send packets its tunnel cannot carry", s.MTU, p.Name, env.MTU)
	}
	e.Logf("%s runs on this node: subnet %s, MTU %d", p.Name, env.Subnet.Masked(), s.MTU)
	return nil
}

// pollSubnetFile is how often fromSubnetFile looks for the file.
const pollSubnetFile = 500 * time.Millisecond

// SubnetEnv is what flannel's subnet.env says about the node.
type SubnetEnv struct {
	Subnet netip.Prefix // FLANNEL_SUBNET: the gateway's address in the node's subnet
	MTU    uint32       // FLANNEL_MTU
}

// ParseSubnetEnv reads flannel's subnet.env (KEY=VALUE lines).
func ParseSubnetEnv(b []byte) (SubnetEnv, error) {
	var env SubnetEnv
	var subnet, mtu string
	for _, l := range strings.Split(string(b), "\n") {
		k, v, _ := strings.Cut(strings.TrimSpace(l), "=")
		switch k {
		case "FLANNEL_SUBNET":
			subnet = v
		case "FLANNEL_MTU":
			mtu = v
		}
	}
	p, err := netip.ParsePrefix(subnet)
	if err != nil || !p.Addr().Is4() {
		return env, fmt.Errorf("FLANNEL_SUBNET %q is not an IPv4 CIDR", subnet)
	}
	m, err := strconv.ParseUint(mtu, 10, 32)
	if err != nil || m < podnet.MinMTU || m > podnet.MaxMTU {
		return env, fmt.Errorf("FLANNEL_MTU %q is not an MTU (%d..%d)", mtu, podnet.MinMTU, podnet.MaxMTU)
	}
	return SubnetEnv{Subnet: p, MTU: uint32(m)}, nil
}

// checkPlugins finds the CNI plugins in PluginDir, where containerd looks for them. In a
// dry-run a missing plugin is reported, not fatal: the runtime step before this one installs
// them.
func checkPlugins(h *host.Host, e *tasks.Emitter) error {
	var missing []string
	for _, p := range Plugins {
		if !h.Exists(filepath.Join(PluginDir, p)) {
			missing = append(missing, p)
		}
	}
	if len(missing) == 0 {
		return nil
	}
	msg := fmt.Sprintf("the CNI plugin(s) %s are not in %s, containerd's plugin directory", strings.Join(missing, ", "), PluginDir)
	if h.DryRun {
		e.Logf("%s (the runtime task installs them)", msg)
		return nil
	}
	return tasks.Errorf("CNI_PLUGINS_MISSING", "run the runtime task on the node: it installs the CNI plugins into "+PluginDir+" (or links Debian's containernetworking-plugins there)", "%s", msg)
}

// checkOwnAddresses refuses a route via one of this node's own addresses: that node is
// this one, under another name or a stale record.
func checkOwnAddresses(ctx context.Context, h *host.Host, s *podnet.Spec) error {
	out, err := h.Query(ctx, "ip", "-j", "-4", "addr", "show")
	if err != nil {
		return tasks.Errorf("ROUTES_FAILED", "check that iproute2 (ip) is installed and works on the node", "list this node's addresses: %v", err)
	}
	own, err := ParseAddrs(out)
	if err != nil {
		return tasks.Errorf("ROUTES_FAILED", "report this output of ip -j addr show", "%v", err)
	}
	for _, r := range s.Routes {
		if own[r.Via] {
			return tasks.Errorf("INVALID_ARGUMENT", "two nodes report the same address: check each node's InternalIP (kubectl get nodes -o wide)",
				"network.routes: %s is via %s, an address of this node: a node never routes via itself", r.CIDR, r.Via)
		}
	}
	return nil
}

// checkForeign refuses to replace a route Deckhand does not own: `ip route replace` matches
// an existing route by its destination (and metric), whatever its protocol, so it would
// overwrite an administrator's or another pod network's route to the same CIDR.
func checkForeign(ctx context.Context, h *host.Host, replace, owned []podnet.Route) error {
	if len(replace) == 0 {
		return nil
	}
	out, err := h.Query(ctx, "ip", "-j", "-4", "route", "show")
	if err != nil {
		return tasks.Errorf("ROUTES_FAILED", "check that iproute2 (ip) is installed and works on the node", "list the node's routes: %v", err)
	}
	all, err := parseTable(out)
	if err != nil {
		return tasks.Errorf("ROUTES_FAILED", "report this output of ip -j route show", "%v", err)
	}
	ours := map[netip.Prefix]int{}
	for _, r := range owned {
		ours[r.CIDR]++
	}
	for _, r := range replace {
		var same []tableRoute
		for _, a := range all {
			if a.CIDR == r.CIDR {
				same = append(same, a)
			}
		}
		if len(same) <= ours[r.CIDR] {
			continue
		}
		other := same[0]
		for _, a := range same {
			if a.Protocol != proto {
				other = a
				break
			}
		}
		return tasks.Errorf("ROUTE_CONFLICT", "remove that route if it is stale (ip route del "+other.String()+"), or give the cluster a pod subnet no other network on the node uses",
			"network.routes: %s needs a route to %s, but the node has one Deckhand did not make: %s; it is left as it is", r, r.CIDR, other)
	}
	return nil
}

// Conflist is the CNI configuration of the bridge provider for a node's pod CIDR.
func Conflist(s *podnet.Spec) ([]byte, error) {
	bridge := map[string]any{
		"type": "bridge", "bridge": Bridge, "isGateway": true,
		// No masquerade by the plugin: it would hide every pod behind its node's address
		// outside the node's own pod CIDR, other nodes' pods included. The task's one NAT
		// rule masquerades only what leaves the cluster's pod subnet.
		"ipMasq": false, "hairpinMode": true,
		"ipam": map[string]any{
			"type":   "host-local",
			"ranges": [][]map[string]string{{{"subnet": s.PodCIDR.String()}}},
			"routes": []map[string]string{{"dst": "0.0.0.0/0"}},
		},
	}
	if s.MTU != 0 {
		bridge["mtu"] = s.MTU
	}
	b, err := json.MarshalIndent(map[string]any{
		"cniVersion": "1.0.0",
		"name":       NetworkName,
		"plugins":    []any{bridge, map[string]any{"type": "portmap", "capabilities": map[string]bool{"portMappings": true}}},
	}, "", "  ")
	if err != nil {
		return nil, err
	}
	return append(b, '\n'), nil
}

// ParseRoutes reads the output of `ip -j route show proto N`: the routes Deckhand owns.
// A host route prints its destination without /32.
func ParseRoutes(out []byte) ([]podnet.Route, error) {
	rs, err := parseTable(out)
	if err != nil {
		return nil, err
	}
	var routes []podnet.Route
	for _, r := range rs {
		routes = append(routes, r.Route)
	}
	return routes, nil
}

// tableRoute is a route as `ip -j route show` prints it, with its protocol ("" for boot,
// which ip does not print; a name or a number otherwise).
type tableRoute struct {
	podnet.Route
	Protocol string
}

func (r tableRoute) String() string {
	s := r.CIDR.String()
	if r.Via.IsValid() {
		s += " via " + r.Via.String()
	}
	if r.Protocol != "" {
		s += " proto " + r.Protocol
	}
	return s
}

// parseTable reads the output of `ip -j -4 route show`: "default" is 0.0.0.0/0, a host route
// has no /32.
func parseTable(out []byte) ([]tableRoute, error) {
	var rs []struct {
		Dst      string `json:"dst"`
		Gateway  string `json:"gateway"`
		Protocol string `json:"protocol"`
	}
	if len(strings.TrimSpace(string(out))) == 0 {
		return nil, nil
	}
	if err := json.Unmarshal(out, &rs); err != nil {
		return nil, fmt.Errorf("ip -j route show: not the JSON list of routes ip prints: %w", err)
	}
	var routes []tableRoute
	for _, r := range rs {
		dst := r.Dst
		switch {
		case dst == "default":
			dst = "0.0.0.0/0"
		case !strings.Contains(dst, "/"):
			dst += "/32"
		}
		p, err := netip.ParsePrefix(dst)
		if err != nil {
			return nil, fmt.Errorf("ip -j route show: destination %q: %w", r.Dst, err)
		}
		via, _ := netip.ParseAddr(r.Gateway) // a route without a gateway has the zero Addr: it is replaced
		routes = append(routes, tableRoute{Route: podnet.Route{CIDR: p, Via: via}, Protocol: r.Protocol})
	}
	return routes, nil
}

// ParseAddrs reads the output of `ip -j addr show`: every address of every interface.
func ParseAddrs(out []byte) (map[netip.Addr]bool, error) {
	var links []struct {
		AddrInfo []struct {
			Local string `json:"local"`
		} `json:"addr_info"`
	}
	if err := json.Unmarshal(out, &links); err != nil {
		return nil, fmt.Errorf("ip -j addr show: not the JSON list of interfaces ip prints: %w", err)
	}
	own := map[netip.Addr]bool{}
	for _, l := range links {
		for _, a := range l.AddrInfo {
			if ip, err := netip.ParseAddr(a.Local); err == nil {
				own[ip] = true
			}
		}
	}
	return own, nil
}

// Diff says how to go from the owned routes the host has to the ones it should have: the
// routes to add or change (ip route replace), and the destinations to delete (owned routes
// no node has any more). Both come out in the order of want, then of have.
func Diff(want, have []podnet.Route) (replace []podnet.Route, remove []netip.Prefix) {
	cur := map[netip.Prefix][]netip.Addr{}
	for _, r := range have {
		cur[r.CIDR] = append(cur[r.CIDR], r.Via)
	}
	wanted := map[netip.Prefix]bool{}
	for _, r := range want {
		wanted[r.CIDR] = true
		if v := cur[r.CIDR]; len(v) != 1 || v[0] != r.Via {
			replace = append(replace, r)
		}
	}
	seen := map[netip.Prefix]bool{}
	for _, r := range have {
		if !wanted[r.CIDR] && !seen[r.CIDR] {
			seen[r.CIDR] = true
			remove = append(remove, r.CIDR)
		}
	}
	return replace, remove
}

// CleanUp removes what the network task installed, for a reset: its NAT rule, the routes
// Deckhand owns, the cni0 bridge, host-local's address reservations and the applied route
// generation (the CNI configuration is in /etc/cni/net.d, which a reset empties). Each step
// is skipped when there is nothing to do, so a second run records no change.
func CleanUp(ctx context.Context, h *host.Host, e *tasks.Emitter) error {
	nat, err := removeMasquerade(ctx, h)
	if err != nil {
		return err
	}
	if nat > 0 {
		e.Did("removed %d NAT rule(s) of the pod network", "would remove %d NAT rule(s) of the pod network", nat)
	}
	if !h.Has("ip") {
		return nil
	}
	out, err := h.Query(ctx, "ip", "-j", "-4", "route", "show", "proto", proto)
	if err != nil {
		return fmt.Errorf("list the routes Deckhand owns: %w", err)
	}
	have, err := ParseRoutes(out)
	if err != nil {
		return err
	}
	_, remove := Diff(nil, have)
	for _, c := range remove {
		if err := h.Run(ctx, "remove the route to "+c.String()+" (pod network)", "ip", "-4", "route", "del", c.String(), "proto", proto); err != nil {
			return fmt.Errorf("remove route %s: %w", c, err)
		}
	}
	if _, err := h.Query(ctx, "ip", "-j", "link", "show", "dev", Bridge); err == nil {
		if err := h.Run(ctx, "delete the pod bridge "+Bridge, "ip", "link", "delete", Bridge); err != nil {
			return fmt.Errorf("delete link %s: %w", Bridge, err)
		}
	}
	entries, err := os.ReadDir(h.Path(ipamDir))
	if err != nil && !errors.Is(err, os.ErrNotExist) {
		return err
	}
	for _, en := range entries {
		if en.Type().IsRegular() {
			if _, err := h.RemoveFile(filepath.Join(ipamDir, en.Name())); err != nil {
				return err
			}
		}
	}
	if _, err := h.RemoveFile(generationFile); err != nil {
		return err
	}
	if len(remove) > 0 {
		e.Did("removed %d pod network route(s)", "would remove %d pod network route(s)", len(remove))
	}
	return nil
}
