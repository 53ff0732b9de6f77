// Command hostsim is a SIMULATION of the host tools that cannot run for real in tests and
// labs: systemctl, firewall-cmd, swapoff, setenforce, modprobe, sysctl, apt-get and apt-mark (for the
// pkgs.k8s.io packages), kubeadm and kubectl (kubeadm.go, kubectl.go: a cluster shared by
// the simulated hosts, its effects recorded for tests to read with package simrecords), the
// kubelet's version, iptables, ipvsadm and nft (netfilter.go), and ip (routes, addresses and links: ip.go). It is one multi-call binary,
// installed under each tool's name inside a simulated host's root (ROOT/usr/bin), and it
// acts on that root only: state under ROOT/var/lib/deckhand-sim, kernel settings as files
// under ROOT/proc/sys and ROOT/sys/module, swap in ROOT/proc/swaps. It is strict: anything
// Deckhand does not use is refused the way the real tool refuses it. The product never
// knows it is talking to it.
package main

import (
	"fmt"
	"os"
	"path/filepath"
	"strings"
)

func main() {
	if len(os.Args) > 2 && os.Args[1] == "__exec-in-host-view" {
		execInHostView()
	}
	r, err := root()
	if err != nil {
		fmt.Fprintln(os.Stderr, err)
		os.Exit(1)
	}
	tools := map[string]func(string, []string) (int, error){
		"systemctl":    systemctl,
		"firewall-cmd": firewallCmd,
		"swapoff":      swapoff,
		"setenforce":   setenforce,
		"modprobe":     modprobe,
		"sysctl":       sysctl,
		"apt-get":      aptGet,
		"apt-mark":     aptMark,
		"kubelet":      kubelet,
		"kubeadm":      kubeadm,
		"kubectl":      kubectl,

		"iptables":          iptablesCmd,
		"iptables-save":     iptablesSave("iptables"),
		"iptables-restore":  iptablesRestore("iptables"),
		"ip6tables-save":    iptablesSave("ip6tables"),
		"ip6tables-restore": iptablesRestore("ip6tables"),
		"ipvsadm":           ipvsadm,
		"nft":               nft,
		"ip":                ip,
	}
	name := filepath.Base(os.Args[0])
	tool, ok := tools[name]
	if !ok {
		fmt.Fprintf(os.Stderr, "hostsim: no simulation of %q\n", name)
		os.Exit(127)
	}
	code, err := tool(r, os.Args[1:])
	if err != nil {
		fmt.Fprintln(os.Stderr, err)
	}
	os.Exit(code)
}

// root is the simulated host's root: the binary lives at ROOT/usr/bin/NAME (or another
// bin directory under ROOT).
func root() (string, error) {
	if r := os.Getenv("DECKHAND_SIM_ROOT"); r != "" {
		return r, nil
	}
	exe := os.Args[0]
	if !filepath.IsAbs(exe) {
		var err error
		if exe, err = os.Executable(); err != nil {
			return "", err
		}
	}
	dir := filepath.Dir(exe)
	for _, bin := range []string{"/usr/local/bin", "/usr/local/sbin", "/usr/bin", "/usr/sbin", "/bin", "/sbin"} {
		if r, ok := strings.CutSuffix(dir, bin); ok {
			return r, nil
		}
	}
	return "", fmt.Errorf("hostsim: %s is not in a bin directory of a simulated host root", exe)
}
