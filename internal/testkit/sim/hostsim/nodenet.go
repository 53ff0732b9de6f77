package main

import (
	"encoding/binary"
	"errors"
	"fmt"
	"io/fs"
	"net/netip"
	"os"
	"path/filepath"
	"strings"
)

// Node network SIMULATION: what kube-controller-manager and the kubelet report about a
// node's network. With a pod subnet in kubeadm init's ClusterConfiguration (kubeadm then
// runs the controller-manager with --allocate-node-cidrs), each registered node gets the
// next free /24 of it as spec.podCIDR (CLUSTER/podcidrs/NAME), freed when the Node object
// goes; without one, no node ever gets a podCIDR, as with the real controller-manager. Each
// simulated host has one address (its InternalIP), allocated once per host root from
// 198.18.0.0/15, the range RFC 2544 sets aside for benchmarks, so no real network is named:
// ROOT/var/lib/deckhand-sim/address.

const (
	podSubnetFile = "pod-subnet"
	podCIDRsDir   = "podcidrs"
	cidrTakenDir  = "podcidrs-taken"
	addrTakenDir  = "addresses-taken"
	hostAddrFile  = "var/lib/deckhand-sim/address"
)

var simAddresses = netip.MustParsePrefix("198.18.0.0/15")

// claim takes the first free name of next(0), next(1), ... in dir, atomically (O_EXCL),
// so concurrent joins never share one.
func claim(dir string, owner string, next func(i int) (string, bool)) (string, error) {
	os.MkdirAll(dir, 0o755)
	for i := 0; ; i++ {
		v, ok := next(i)
		if !ok {
			return "", errors.New("exhausted")
		}
		f, err := os.OpenFile(filepath.Join(dir, strings.ReplaceAll(v, "/", "_")), os.O_WRONLY|os.O_CREATE|os.O_EXCL, 0o644)
		if errors.Is(err, fs.ErrExist) {
			continue
		}
		if err != nil {
			return "", err
		}
		f.WriteString(owner)
		f.Close()
		return v, nil
	}
}

func nth4(p netip.Prefix, i int, bits int) (string, bool) {
	if bits < p.Bits() || i >= 1<<(bits-p.Bits()) {
		return "", false
	}
	a := p.Addr().As4()
	v := binary.BigEndian.Uint32(a[:]) + uint32(i)<<(32-bits)
	binary.BigEndian.PutUint32(a[:], v)
	return netip.PrefixFrom(netip.AddrFrom4(a), bits).String(), true
}

// hostAddress is the simulated host's address, allocated on first use.
func hostAddress(r, cluster string) string {
	if b, err := os.ReadFile(filepath.Join(r, hostAddrFile)); err == nil {
		return strings.TrimSpace(string(b))
	}
	a, err := claim(filepath.Join(cluster, addrTakenDir), r, func(i int) (string, bool) {
		p, ok := nth4(simAddresses, i+1, 32)
		return strings.TrimSuffix(p, "/32"), ok
	})
	if err != nil {
		return ""
	}
	writeFile(r, hostAddrFile, a+"\n", 0o644)
	return a
}

// allocatePodCIDR gives a registered node its podCIDR, as the controller-manager does.
func allocatePodCIDR(cluster, name string) {
	if exists(filepath.Join(cluster, podCIDRsDir, name)) {
		return
	}
	b, err := os.ReadFile(filepath.Join(cluster, podSubnetFile))
	if err != nil {
		return
	}
	// A dual-stack subnet: the IPv4 one is the first.
	subnet, err := netip.ParsePrefix(strings.TrimSpace(strings.Split(string(b), ",")[0]))
	if err != nil || !subnet.Addr().Is4() {
		return
	}
	c, err := claim(filepath.Join(cluster, cidrTakenDir), name, func(i int) (string, bool) { return nth4(subnet.Masked(), i, 24) })
	if err != nil {
		fmt.Fprintf(os.Stderr, "hostsim: no podCIDR left for %s in %s\n", name, subnet)
		return
	}
	os.MkdirAll(filepath.Join(cluster, podCIDRsDir), 0o755)
	os.WriteFile(filepath.Join(cluster, podCIDRsDir, name), []byte(c), 0o644)
}

// releasePodCIDR frees a deleted node's podCIDR.
func releasePodCIDR(cluster, name string) {
	b, err := os.ReadFile(filepath.Join(cluster, podCIDRsDir, name))
	if err != nil {
		return
	}
	os.Remove(filepath.Join(cluster, cidrTakenDir, strings.ReplaceAll(string(b), "/", "_")))
	os.Remove(filepath.Join(cluster, podCIDRsDir, name))
}
