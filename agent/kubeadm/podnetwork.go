package kubeadm

import (
	"context"
	"fmt"
	"slices"
	"strings"

	"github.com/deckhandhq/deckhand/agent/host"
	"github.com/deckhandhq/deckhand/agent/tasks"
)

// Pod-network debris: what a pod network (Deckhand's bridge, flannel, Calico, Cilium) and
// kube-proxy leave on a node after kubeadm reset, which breaks the next join ("cni0
// already has an IP address different from ..."). A reset removes it, through host.Host,
// and reports by name whatever is still there.

// podNetworkDirs are the pod networks' state directories: host-local's address
// reservations and the CNI result cache, flannel's subnet file, Calico's node name and
// state (a node joining again under another name would keep the old one), Cilium's.
var podNetworkDirs = []string{"/var/lib/cni", "/run/flannel", "/var/lib/calico", "/run/calico", "/run/cilium"}

// chainPrefixes name the iptables chains of Kubernetes and the pod networks: kube-proxy's
// and the kubelet's, the CNI plugins' (portmap, bridge), Calico's, flannel's, Cilium's.
var chainPrefixes = []string{"KUBE-", "CNI-", "cali-", "FLANNEL-", "CILIUM_"}

// kubeProxyNFTables are the nftables tables kube-proxy's nftables mode makes.
var kubeProxyNFTables = []string{"ip kube-proxy", "ip6 kube-proxy"}

// podNetworkLink reports whether a link is a pod network's or kube-proxy's: Deckhand's and
// the bridge plugin's cni0, flannel's VXLAN device, kube-proxy's dummy, Calico's pod veths
// and VXLAN device, Cilium's devices; and tunl0 while it carries an address (Calico's IPIP
// mode gives it one; the ipip module's own tunl0 stays, only its addresses go).
func podNetworkLink(l link) bool {
	switch {
	case l.Name == "cni0", l.Name == "flannel.1", l.Name == kubeIPVSLink, l.Name == "vxlan.calico":
		return true
	case l.Name == "tunl0":
		return l.Kind == "ipip" && len(l.Addrs) > 0
	}
	return strings.HasPrefix(l.Name, "cali") || strings.HasPrefix(l.Name, "cilium_")
}

// clusterRule reports whether an iptables-save line belongs to Kubernetes or a pod network:
// a chain of chainPrefixes, a rule in one, or a jump (or goto) to one.
func clusterRule(l string) bool {
	for _, p := range chainPrefixes {
		if strings.HasPrefix(l, ":"+p) || strings.HasPrefix(l, "-A "+p) {
			return true
		}
		for _, jump := range []string{" -j ", " --jump ", " -g ", " --goto "} {
			if strings.Contains(l, jump+p) {
				return true
			}
		}
	}
	return false
}

// withoutCluster drops the lines of a ruleset that clusterRule matches and keeps everything
// else, chain policies included, so the host keeps its own rules and stays reachable. It
// returns the chains it dropped too.
func withoutCluster(rules string) (kept string, removed int, chains []string) {
	var out []string
	for _, l := range strings.Split(rules, "\n") {
		if clusterRule(l) {
			removed++
			if name, ok := strings.CutPrefix(l, ":"); ok {
				chains = append(chains, strings.Fields(name)[0])
			}
			continue
		}
		out = append(out, l)
	}
	return strings.Join(out, "\n"), removed, chains
}

// nftTables reads `nft list tables` ("table FAMILY NAME" per line) and returns those of
// want the host has, as "FAMILY NAME".
func nftTables(out string, want []string) []string {
	have := map[string]bool{}
	for _, l := range strings.Split(out, "\n") {
		if f := strings.Fields(l); len(f) == 3 && f[0] == "table" {
			have[f[1]+" "+f[2]] = true
		}
	}
	var found []string
	for _, t := range want {
		if have[t] {
			found = append(found, t)
		}
	}
	return found
}

// cleanPodNetwork removes the pod networks' links, state directories and kube-proxy's
// nftables tables. Each removal is checked first, so a second reset changes nothing. The
// links an earlier step of the reset deleted (done) are left to it: in a dry-run they are
// still there.
func cleanPodNetwork(ctx context.Context, h *host.Host, e *tasks.Emitter, done ...string) error {
	all, err := debrisLinks(ctx, h)
	if err != nil {
		return err
	}
	var links []link
	for _, l := range all {
		if !slices.Contains(done, l.Name) {
			links = append(links, l)
		}
	}
	for _, l := range links {
		err := h.Run(ctx, "delete the pod network's link "+l.Name, "ip", "link", "delete", l.Name)
		_, still := h.Query(ctx, "ip", "-j", "link", "show", "dev", l.Name)
		switch {
		case l.Name == "tunl0" && still == nil:
			// The ipip module's own device: the kernel keeps it (until the module is
			// unloaded) whatever ip link delete says; the address Calico gave it goes.
			if err := h.Run(ctx, "remove the addresses of tunl0 (the ipip module's own device, which stays)", "ip", "addr", "flush", "dev", "tunl0"); err != nil {
				return tasks.Errorf("RESET_FAILED", "remove them by hand: ip addr flush dev tunl0", "flush tunl0: %v", err)
			}
		case err != nil && still == nil:
			return tasks.Errorf("RESET_FAILED", "delete it by hand: ip link delete "+l.Name, "delete link %s: %v", l.Name, err)
		}
		// An error for a link that is gone: a veth's peer went with it.
	}
	if len(links) > 0 {
		e.Did("deleted %d pod network link(s)", "would delete %d pod network link(s)", len(links))
	}
	for _, dir := range podNetworkDirs {
		if _, err := h.RemoveAll(dir); err != nil {
			return tasks.Errorf("RESET_FAILED", "remove it by hand: rm -r "+dir, "remove %s: %v", dir, err)
		}
	}
	tables, err := kubeProxyTables(ctx, h)
	if err != nil {
		return err
	}
	for _, t := range tables {
		argv := append([]string{"nft", "delete", "table"}, strings.Fields(t)...)
		if err := h.Run(ctx, "delete kube-proxy's nftables table "+t, argv...); err != nil {
			return tasks.Errorf("RESET_FAILED", "delete it by hand: nft delete table "+t, "delete nftables table %s: %v", t, err)
		}
	}
	return nil
}

// debrisLinks are the host's links that podNetworkLink matches.
func debrisLinks(ctx context.Context, h *host.Host) ([]link, error) {
	if !h.Has("ip") {
		return nil, nil
	}
	out, err := h.Query(ctx, "ip", "-j", "-d", "addr", "show")
	if err != nil {
		return nil, tasks.Errorf("RESET_FAILED", "check that iproute2 (ip) works on the node", "list the node's links: %v", err)
	}
	all, err := parseLinks(out)
	if err != nil {
		return nil, tasks.Errorf("RESET_FAILED", "report this output of ip -j -d addr show", "%v", err)
	}
	var links []link
	for _, l := range all {
		if podNetworkLink(l) {
			links = append(links, l)
		}
	}
	return links, nil
}

// kubeProxyTables are kube-proxy's nftables tables on the host (none without nft).
func kubeProxyTables(ctx context.Context, h *host.Host) ([]string, error) {
	if !h.Has("nft") {
		return nil, nil
	}
	out, err := h.Query(ctx, "nft", "list", "tables")
	if err != nil {
		return nil, tasks.Errorf("RESET_FAILED", "look at nft list tables on the node", "nft list tables: %v", err)
	}
	return nftTables(string(out), kubeProxyNFTables), nil
}

// podNetworkLeftovers names the pod-network debris still on the host.
func podNetworkLeftovers(ctx context.Context, h *host.Host) ([]string, error) {
	var left []string
	links, err := debrisLinks(ctx, h)
	if err != nil {
		return nil, err
	}
	for _, l := range links {
		left = append(left, "link "+l.Name)
	}
	for _, dir := range podNetworkDirs {
		if h.Exists(dir) {
			left = append(left, dir)
		}
	}
	tables, err := kubeProxyTables(ctx, h)
	if err != nil {
		return nil, err
	}
	for _, t := range tables {
		left = append(left, fmt.Sprintf("nftables table %s", t))
	}
	return left, nil
}
