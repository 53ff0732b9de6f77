// Package lbconf is the API servers' load balancer Deckhand installs: the one parser of its
// settings and of a load_balancer task (for the controller's API edge and the cluster
// document, and again on the agent before it touches the host), and the haproxy and
// keepalived configuration files it writes, rendered from the parsed values only.
package lbconf

import (
	"bytes"
	"fmt"
	"net/netip"
	"regexp"
	"slices"
	"strconv"
	"strings"
	"time"

	taskv1 "github.com/deckhandhq/deckhand/proto/deckhand/task/v1"
)

// Types of load balancer.
const (
	External = "external" // the user's control_plane_endpoint
	VIP      = "vip"      // keepalived + haproxy on the control planes
	Local    = "local"    // haproxy on 127.0.0.1 on every node
)

// Types lists them, the default first.
var Types = []string{External, VIP, Local}

// Defaults and limits.
const (
	DefaultVIPPort   = 8443
	DefaultLocalPort = 7443
	DefaultRouterID  = 51
	// APIServerPort is where each kube-apiserver listens (kubeadm's default); the load
	// balancer's port must differ, as both listen on a control plane.
	APIServerPort = 6443
	// MaxBackends bounds a backend list: etcd's guidance is at most 7 members, and stacked
	// control planes run one each.
	MaxBackends = 16
)

// FieldError names the field that is wrong and says how to fix it.
type FieldError struct {
	Field string
	Msg   string
}

func (e *FieldError) Error() string { return e.Field + ": " + e.Msg }

// Settings are parsed LoadBalancerSettings.
type Settings struct {
	Type      string
	Address   netip.Addr // vip
	Port      uint16
	Interface string // vip; empty: the one holding the node's address
	RouterID  uint8  // vip
}

// ifaceRE is a Linux interface name (IFNAMSIZ 16 with its NUL).
var ifaceRE = regexp.MustCompile(`^[A-Za-z0-9_.-]{1,15}$`)

// ParseSettings checks s; field prefixes the names in errors ("spec.loadBalancer"), and
// name maps a proto field name to the name the caller shows ("virtual_router_id" →
// "virtualRouterId" in a cluster document).
func ParseSettings(field string, name func(string) string, s *taskv1.LoadBalancerSettings) (Settings, error) {
	f := func(n string) string { return field + "." + name(n) }
	out := Settings{Type: s.GetType(), Interface: s.GetInterface()}
	if out.Type == "" {
		out.Type = External
	}
	if !slices.Contains(Types, out.Type) {
		return out, &FieldError{f("type"), fmt.Sprintf("is %q; use %s", s.GetType(), strings.Join(Types, ", "))}
	}
	if out.Type == External {
		if s.GetAddress() != "" || s.GetPort() != 0 || s.GetInterface() != "" || s.GetVirtualRouterId() != 0 {
			return out, &FieldError{field, "type external takes no other setting: the control-plane endpoint is the one you give (controlPlaneEndpoint)"}
		}
		return out, nil
	}
	switch p := s.GetPort(); {
	case p == 0 && out.Type == VIP:
		out.Port = DefaultVIPPort
	case p == 0:
		out.Port = DefaultLocalPort
	case p > 65535:
		return out, &FieldError{f("port"), fmt.Sprintf("%d is not a port: give 1..65535, or leave it out for %d (vip) or %d (local)", p, DefaultVIPPort, DefaultLocalPort)}
	case p == APIServerPort:
		return out, &FieldError{f("port"), fmt.Sprintf("%d is the API servers' own port, which they listen on beside the load balancer: choose another, such as %d", p, DefaultVIPPort)}
	default:
		out.Port = uint16(p)
	}
	if out.Type == Local {
		if s.GetAddress() != "" || s.GetInterface() != "" || s.GetVirtualRouterId() != 0 {
			return out, &FieldError{field, "type local listens on 127.0.0.1 on every node: give no address, interface or virtualRouterId (they are for type vip)"}
		}
		out.Address = netip.AddrFrom4([4]byte{127, 0, 0, 1})
		return out, nil
	}
	a, err := netip.ParseAddr(s.GetAddress())
	switch {
	case s.GetAddress() == "":
		return out, &FieldError{f("address"), "is required for type vip: an unused IPv4 address on the control planes' network, which one of them will hold"}
	case err != nil:
		return out, &FieldError{f("address"), fmt.Sprintf("%q is not an IP address: give the virtual IP, such as 192.168.1.100", s.GetAddress())}
	case !a.Is4():
		return out, &FieldError{f("address"), fmt.Sprintf("%s is not IPv4: keepalived's VRRP here holds an IPv4 address", a)}
	case !a.IsGlobalUnicast() && !a.IsPrivate():
		return out, &FieldError{f("address"), fmt.Sprintf("%s is not a unicast address hosts can reach: give an unused address on the control planes' network", a)}
	}
	out.Address = a
	if out.Interface != "" && !ifaceRE.MatchString(out.Interface) {
		return out, &FieldError{f("interface"), fmt.Sprintf("%q is not a network interface name: give one such as eth0 (letters, digits, '_', '.', '-', at most 15)", out.Interface)}
	}
	switch id := s.GetVirtualRouterId(); {
	case id == 0:
		out.RouterID = DefaultRouterID
	case id > 255:
		return out, &FieldError{f("virtual_router_id"), fmt.Sprintf("%d: give 1..255, unique among the VRRP routers on the network, or leave it out for %d", id, DefaultRouterID)}
	default:
		out.RouterID = uint8(id)
	}
	return out, nil
}

// Endpoint is the address:port clients reach the API servers at through the load balancer
// ("" for an external one).
func (s Settings) Endpoint() string {
	if s.Type == External {
		return ""
	}
	return netip.AddrPortFrom(s.Address, s.Port).String()
}

// Spec is a parsed LoadBalancerSpec.
type Spec struct {
	Settings
	Backends    []netip.AddrPort // sorted
	Priority    uint8
	NodeAddress netip.Addr
	Generation  uint64
	Remove      bool
}

func same(n string) string { return n }

// Parse checks a load_balancer task's spec.
func Parse(s *taskv1.LoadBalancerSpec) (*Spec, error) {
	set, err := ParseSettings("settings", same, s.GetSettings())
	if err != nil {
		return nil, err
	}
	if set.Type == External {
		return nil, &FieldError{"settings.type", "is external: Deckhand runs no load balancer for it (give vip or local)"}
	}
	out := &Spec{Settings: set, Generation: s.GetGeneration(), Remove: s.GetRemove()}
	if s.GetRemove() {
		return out, nil
	}
	if n := len(s.GetBackends()); n == 0 || n > MaxBackends {
		return nil, &FieldError{"backends", fmt.Sprintf("has %d entries: give each control plane's API server (ADDRESS:6443), 1 to %d", n, MaxBackends)}
	}
	for i, b := range s.GetBackends() {
		ap, err := netip.ParseAddrPort(b)
		if err != nil || !ap.Addr().Is4() || ap.Port() == 0 || !ap.Addr().IsGlobalUnicast() && !ap.Addr().IsPrivate() {
			return nil, &FieldError{fmt.Sprintf("backends[%d]", i), fmt.Sprintf("%q is not an API server's IPv4 ADDRESS:PORT, such as 10.0.0.11:6443", b)}
		}
		if slices.Contains(out.Backends, ap) {
			return nil, &FieldError{fmt.Sprintf("backends[%d]", i), fmt.Sprintf("%s is listed twice", ap)}
		}
		out.Backends = append(out.Backends, ap)
	}
	slices.SortFunc(out.Backends, func(a, b netip.AddrPort) int { return a.Compare(b) })
	if s.GetNodeAddress() != "" {
		a, err := netip.ParseAddr(s.GetNodeAddress())
		if err != nil || !a.Is4() {
			return nil, &FieldError{"node_address", fmt.Sprintf("%q is not an IPv4 address", s.GetNodeAddress())}
		}
		out.NodeAddress = a
	}
	if set.Type == VIP {
		if p := s.GetPriority(); p < 1 || p > 254 {
			return nil, &FieldError{"priority", fmt.Sprintf("%d: give 1..254 (the highest holds the address)", p)}
		}
		out.Priority = uint8(s.GetPriority())
		if !out.NodeAddress.IsValid() && set.Interface == "" {
			return nil, &FieldError{"node_address", "is required for type vip without an interface: VRRP runs on the interface holding it"}
		}
	}
	return out, nil
}

// Files Deckhand writes.
const (
	HAProxyConfigPath    = "/etc/haproxy/haproxy.cfg"
	KeepalivedConfigPath = "/etc/keepalived/keepalived.conf"
)

// Marker starts every file Deckhand writes: the agent knows its own files by it.
const Marker = "# Written by Deckhand (deckhand-agent's load_balancer task)"

// Header starts every file Deckhand writes. It holds nothing that changes while the list
// does not: an update with the same API servers leaves the files, and the services, alone.
const Header = Marker + ": the Kubernetes API servers'\n" +
	"# load balancer. Deckhand rewrites this file when control planes join or leave; a change\n" +
	"# made here is lost then.\n"

// CheckInterval and CheckFall are how often haproxy asks each API server's /readyz and how
// many failures take it out of rotation (CheckFall successes put it back): an API server
// that stops answering gets no new connection after DrainTime.
const (
	CheckInterval = time.Second
	CheckFall     = 2
	DrainTime     = (CheckFall + 1) * CheckInterval
)

// ShutdownDelay is the API server's --shutdown-delay-duration behind Deckhand's load
// balancer: told to stop, it fails /readyz but goes on serving this long, so haproxy takes it
// out of rotation (DrainTime) before it closes connections it just accepted, and no request
// through the load balancer meets a closing server.
const ShutdownDelay = DrainTime + 2*time.Second

// HAProxyConfig is haproxy's configuration: TCP from the load balancer's port to every API
// server, each checked on /readyz (anonymous, over TLS without verifying): an API server
// that is starting (its informers, RBAC's among them, not synced yet: it would answer
// Forbidden) or shutting down gets no new connection; a failed connection is tried once
// more on another.
func HAProxyConfig(s *Spec) []byte {
	var b bytes.Buffer
	b.WriteString(Header)
	bind := netip.AddrPortFrom(netip.IPv4Unspecified(), s.Port).String() // vip: on every control plane, whichever holds the address
	if s.Type == Local {
		bind = netip.AddrPortFrom(s.Address, s.Port).String()
	}
	b.WriteString(`global
    log stdout format raw local0 notice

defaults
    mode tcp
    log global
    option tcplog
    option dontlognull
    option redispatch
    retries 1
    timeout connect 5s
    # API watches stay open for long.
    timeout client 1h
    timeout server 1h
    timeout check 5s

frontend kube-apiserver
    bind ` + bind + `
    default_backend kube-apiserver

backend kube-apiserver
    balance roundrobin
    option httpchk GET /readyz
    http-check expect status 200
    default-server inter ` + fmt.Sprintf("%ds fall %d rise %d", int(CheckInterval/time.Second), CheckFall, CheckFall) + ` check check-ssl verify none
`)
	for i, be := range s.Backends {
		fmt.Fprintf(&b, "    server api-%d %s\n", i+1, be)
	}
	return b.Bytes()
}

// KeepalivedConfig is keepalived's configuration for a VIP on interface iface: VRRP with
// this node's priority, the address added while it is master and given up while haproxy is
// not running here (checked every second with `pgrep -x haproxy`, pgrep at path pgrep:
// keepalived runs it as root without a shell; Debian's keepalived is built without
// track_process, and pidof run by keepalived never finds a process).
func KeepalivedConfig(s *Spec, iface, pgrep string) []byte {
	var b bytes.Buffer
	b.WriteString(Header)
	id := strconv.Itoa(int(s.RouterID))
	b.WriteString(`global_defs {
    router_id deckhand_` + id + `
    script_user root
    enable_script_security
    vrrp_garp_master_refresh 10
}

vrrp_script haproxy_running {
    script "` + pgrep + ` -x haproxy"
    interval 1
    fall 2
    rise 1
}

vrrp_instance kube_apiserver {
    state BACKUP
    interface ` + iface + `
    virtual_router_id ` + id + `
    priority ` + strconv.Itoa(int(s.Priority)) + `
    # The address stays where it is while that node is healthy: no move back and forth
    # when a node returns.
    nopreempt
    advert_int 1
    virtual_ipaddress {
        ` + s.Address.String() + `/32 dev ` + iface + `
    }
    track_script {
        haproxy_running
    }
}
`)
	return b.Bytes()
}

// ValidInterface reports whether name is a network interface name keepalived may be given.
func ValidInterface(name string) bool { return ifaceRE.MatchString(name) }
