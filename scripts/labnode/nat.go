package main

import (
	"bytes"
	"context"
	"fmt"
	"net/netip"
	"os/exec"
	"slices"
	"strings"
	"time"
)

// The lab's hosts look like a Vagrant box with a NAT network and a host-only one: besides
// eth0 on the lab bridge (the network the cluster's hosts share, like the host-only one)
// each has a second link, natLink, with an address of natSubnet and the DEFAULT route
// through it, like VirtualBox's NAT. The NAT goes nowhere (a veth pair inside the host's
// own network namespace; not every kernel has the dummy link type): kubeadm and the
// kubelet left to themselves take the default route's address, which no other host can
// reach. The lab bridge's subnet stays on-link through eth0, so the lab works as before.
const (
	natLink   = "nat0"
	natPeer   = "nat0-peer"
	natSubnet = "10.250.200.0/24"
)

// natAddress is the NAT address of the host whose lab address is lab: the same last
// octet in natSubnet (every host has its own, as its own NAT would hand out).
func natAddress(lab string) (netip.Prefix, netip.Addr, error) {
	a, err := netip.ParseAddr(lab)
	if err != nil || !a.Is4() {
		return netip.Prefix{}, netip.Addr{}, fmt.Errorf("--nat-for %q: give the host's IPv4 lab address", lab)
	}
	subnet := netip.MustParsePrefix(natSubnet)
	b := subnet.Addr().As4()
	last := a.As4()[3]
	if last < 2 || last > 254 {
		return netip.Prefix{}, netip.Addr{}, fmt.Errorf("--nat-for %s: the last octet must be 2..254", lab)
	}
	b[3] = last
	gw := subnet.Addr().As4()
	gw[3] = 1
	return netip.PrefixFrom(netip.AddrFrom4(b), subnet.Bits()), netip.AddrFrom4(gw), nil
}

// setupNAT gives the host (this process's network namespace) its NAT link, address and
// default route.
func setupNAT(ctx context.Context, lab string) error {
	addr, gw, err := natAddress(lab)
	if err != nil {
		return err
	}
	ctx, cancel := context.WithTimeout(ctx, 30*time.Second)
	defer cancel()
	for _, argv := range [][]string{
		{"link", "add", natLink, "type", "veth", "peer", "name", natPeer},
		{"addr", "add", addr.String(), "dev", natLink},
		{"link", "set", natPeer, "up"},
		{"link", "set", natLink, "up"},
		{"route", "replace", "default", "via", gw.String(), "dev", natLink, "onlink"},
	} {
		if out, err := exec.CommandContext(ctx, "ip", argv...).CombinedOutput(); err != nil {
			return fmt.Errorf("ip %s: %v: %s", strings.Join(argv, " "), err, bytes.TrimSpace(out))
		}
	}
	return nil
}

// vagrantHosts rewrites the lab's /etc/hosts for host name as a Vagrant box (and Debian's
// installer) has it: the host's own name on 127.0.1.1, the other hosts as they were. The
// kubelet then finds no usable address by its name and, without --node-ip, takes the
// default route's.
func vagrantHosts(hosts []byte, name string) []byte {
	var out []string
	for _, l := range strings.Split(strings.TrimRight(string(hosts), "\n"), "\n") {
		f := strings.Fields(strings.SplitN(l, "#", 2)[0])
		if len(f) >= 2 && slices.Contains(f[1:], name) {
			rest := slices.DeleteFunc(slices.Clone(f[1:]), func(s string) bool { return s == name })
			if len(rest) == 0 {
				continue
			}
			l = f[0] + " " + strings.Join(rest, " ")
		}
		out = append(out, l)
	}
	out = append(out, "127.0.1.1 "+name)
	return []byte(strings.Join(out, "\n") + "\n")
}
