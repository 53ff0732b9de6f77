package kubeadm

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"net/netip"
	"strings"

	"github.com/deckhandhq/deckhand/agent/host"
	"github.com/deckhandhq/deckhand/agent/tasks"
)

// IPVS: kube-proxy's ipvs mode binds every service address (cluster IPs, external IPs,
// load-balancer IPs) to the dummy link kubeIPVSLink and makes a virtual service for each
// on it, plus one per NodePort on each of the node's own addresses. A reset deletes exactly
// those: another virtual service on the host (a keepalived/LVS balancer, perhaps the one in
// front of the control-plane endpoint) is left as it is.

// kubeIPVSLink is kube-proxy's dummy link for service addresses in ipvs mode.
const kubeIPVSLink = "kube-ipvs0"

// nodePorts is the range kube-proxy's NodePort services use: the API server's default
// --service-node-port-range (Deckhand does not change it).
var nodePorts = struct{ lo, hi uint16 }{30000, 32767}

// ipvsService is a virtual service as `ipvsadm --save -n` names it: its protocol flag
// (-t, -u or --sctp-service, which `ipvsadm -D` takes back) and its address.
type ipvsService struct {
	Flag string
	Addr netip.AddrPort
}

func (s ipvsService) String() string { return s.Flag + " " + s.Addr.String() }

// link is a network interface as `ip -j -d addr show` prints it.
type link struct {
	Name  string
	Kind  string // linkinfo.info_kind with -d: "bridge", "vxlan", "ipip", "dummy", ...
	Addrs []netip.Addr
}

// parseLinks reads the output of `ip -j -d addr show`: each interface, its kind and
// addresses.
func parseLinks(out []byte) ([]link, error) {
	var raw []struct {
		Ifname   string `json:"ifname"`
		LinkInfo struct {
			InfoKind string `json:"info_kind"`
		} `json:"linkinfo"`
		AddrInfo []struct {
			Local string `json:"local"`
		} `json:"addr_info"`
	}
	if strings.TrimSpace(string(out)) == "" {
		return nil, nil
	}
	if err := json.Unmarshal(out, &raw); err != nil {
		return nil, fmt.Errorf("ip -j -d addr show: not the JSON list of interfaces ip prints: %w", err)
	}
	var links []link
	for _, r := range raw {
		l := link{Name: r.Ifname, Kind: r.LinkInfo.InfoKind}
		for _, a := range r.AddrInfo {
			if ip, err := netip.ParseAddr(a.Local); err == nil {
				l.Addrs = append(l.Addrs, ip.Unmap())
			}
		}
		links = append(links, l)
	}
	return links, nil
}

// parseIPVSSave reads the output of `ipvsadm --save -n`: its virtual services (-A lines;
// the real servers, -a lines, go with their service). A firewall-mark service (-f) has no
// address: kube-proxy makes none, and it is not returned.
func parseIPVSSave(out string) ([]ipvsService, error) {
	var svcs []ipvsService
	for i, l := range strings.Split(out, "\n") {
		f := strings.Fields(l)
		if len(f) == 0 || f[0] != "-A" {
			continue
		}
		if len(f) < 3 {
			return nil, fmt.Errorf("ipvsadm --save line %d: %q: no service", i+1, l)
		}
		switch f[1] {
		case "-f", "--fwmark-service":
			continue
		case "-t", "--tcp-service", "-u", "--udp-service", "--sctp-service":
		default:
			return nil, fmt.Errorf("ipvsadm --save line %d: %q: unknown service kind %s", i+1, l, f[1])
		}
		ap, err := netip.ParseAddrPort(f[2])
		if err != nil {
			return nil, fmt.Errorf("ipvsadm --save line %d: %q: %w", i+1, l, err)
		}
		svcs = append(svcs, ipvsService{Flag: f[1], Addr: netip.AddrPortFrom(ap.Addr().Unmap(), ap.Port())})
	}
	return svcs, nil
}

// kubeProxyIPVS decides which virtual services kube-proxy made, from `ipvsadm --save -n`
// and `ip -j -d addr show`: a service on an address of kubeIPVSLink, or on one of the
// node's other addresses at a port in the NodePort range. Every other service is the
// host's own and stays. Without kubeIPVSLink (deleted already) only the NodePort rule
// applies.
func kubeProxyIPVS(save string, addrs []byte) ([]ipvsService, error) {
	svcs, err := parseIPVSSave(save)
	if err != nil {
		return nil, err
	}
	links, err := parseLinks(addrs)
	if err != nil {
		return nil, err
	}
	service, node := map[netip.Addr]bool{}, map[netip.Addr]bool{}
	for _, l := range links {
		for _, a := range l.Addrs {
			if l.Name == kubeIPVSLink {
				service[a] = true
			} else {
				node[a] = true
			}
		}
	}
	var del []ipvsService
	for _, s := range svcs {
		p := s.Addr.Port()
		if service[s.Addr.Addr()] || node[s.Addr.Addr()] && p >= nodePorts.lo && p <= nodePorts.hi {
			del = append(del, s)
		}
	}
	return del, nil
}

// cleanIPVS deletes kube-proxy's IPVS virtual services (see kubeProxyIPVS) one by one and
// then its dummy link, and leaves every other virtual service on the host. It returns the
// links it deleted.
func cleanIPVS(ctx context.Context, h *host.Host, e *tasks.Emitter) ([]string, error) {
	if !h.Has("ipvsadm") || !h.Has("ip") {
		return nil, nil
	}
	save, err := h.Query(ctx, "ipvsadm", "--save", "-n")
	if err != nil && ipvsUnavailable(err) {
		// ipvsadm is installed (keepalived recommends it) but the kernel has no IPVS: there
		// is no virtual service, kube-proxy's or anyone's.
		e.Logf("IPVS is not available in this kernel: no IPVS virtual service to delete")
		return nil, nil
	}
	if err != nil {
		return nil, tasks.Errorf("RESET_FAILED", "look at ipvsadm -Ln on the node", "list IPVS virtual services: %v", err)
	}
	addrs, err := h.Query(ctx, "ip", "-j", "-d", "addr", "show")
	if err != nil {
		return nil, tasks.Errorf("RESET_FAILED", "check that iproute2 (ip) works on the node", "list the node's addresses: %v", err)
	}
	del, err := kubeProxyIPVS(string(save), addrs)
	if err != nil {
		return nil, tasks.Errorf("RESET_FAILED", "report this output of ipvsadm --save -n and ip -j -d addr show", "%v", err)
	}
	for _, s := range del {
		if err := h.Run(ctx, "delete kube-proxy's IPVS virtual service "+s.String(), "ipvsadm", "-D", s.Flag, s.Addr.String()); err != nil {
			return nil, tasks.Errorf("RESET_FAILED", "delete it by hand: ipvsadm -D "+s.String(), "delete IPVS virtual service %s: %v", s, err)
		}
	}
	if len(del) > 0 {
		e.Did("deleted %d IPVS virtual service(s) of kube-proxy; the host's others stay", "would delete %d IPVS virtual service(s) of kube-proxy; the host's others stay", len(del))
	}
	links, _ := parseLinks(addrs)
	for _, l := range links {
		if l.Name == kubeIPVSLink {
			if err := h.Run(ctx, "delete kube-proxy's dummy link "+kubeIPVSLink, "ip", "link", "delete", kubeIPVSLink); err != nil {
				return nil, tasks.Errorf("RESET_FAILED", "delete it by hand: ip link delete "+kubeIPVSLink, "delete link %s: %v", kubeIPVSLink, err)
			}
			return []string{kubeIPVSLink}, nil
		}
	}
	return nil, nil
}

// ipvsUnavailable says whether ipvsadm failed because the kernel has no IPVS (no ip_vs
// module, or built without it).
func ipvsUnavailable(err error) bool {
	var ce *host.CommandError
	return errors.As(err, &ce) && (strings.Contains(ce.Stderr, "Can't initialize ipvs") || strings.Contains(ce.Stderr, "Protocol not available"))
}
