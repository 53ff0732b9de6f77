package main

import (
	"fmt"
	"io"
	"os"
	"path/filepath"
	"strings"
)

// iptables-save / iptables-restore (and the ip6tables pair) SIMULATION: the ruleset of each
// family is a file in iptables-save format under ROOT/var/lib/deckhand-sim/netfilter.
// ipvsadm SIMULATION: virtual services are lines of ROOT/var/lib/deckhand-sim/ipvs.

const emptyRules = "*filter\n:INPUT ACCEPT [0:0]\n:FORWARD ACCEPT [0:0]\n:OUTPUT ACCEPT [0:0]\nCOMMIT\n"

func rulesFile(r, family string) string {
	return filepath.Join(r, "var/lib/deckhand-sim/netfilter", family+".rules")
}

func iptablesSave(family string) func(string, []string) (int, error) {
	return func(r string, args []string) (int, error) {
		if len(args) > 0 {
			return 2, fmt.Errorf("%s-save (simulation): unsupported arguments %v", family, args)
		}
		b, err := os.ReadFile(rulesFile(r, family))
		if err != nil {
			b = []byte(emptyRules)
		}
		fmt.Print(string(b))
		return 0, nil
	}
}

func iptablesRestore(family string) func(string, []string) (int, error) {
	return func(r string, args []string) (int, error) {
		if len(args) > 0 {
			return 2, fmt.Errorf("%s-restore (simulation): unsupported arguments %v", family, args)
		}
		in, err := io.ReadAll(os.Stdin)
		if err != nil {
			return 1, err
		}
		// Every table must end with COMMIT, as iptables-restore demands.
		open := false
		for i, l := range strings.Split(string(in), "\n") {
			switch {
			case strings.HasPrefix(l, "*"):
				open = true
			case l == "COMMIT":
				open = false
			case strings.HasPrefix(l, "-A ") || strings.HasPrefix(l, ":"):
				if !open {
					return 1, fmt.Errorf("%s-restore: line %d failed", family, i+1)
				}
			}
		}
		if open {
			return 1, fmt.Errorf("%s-restore: COMMIT expected at line %d", family, len(strings.Split(string(in), "\n")))
		}
		os.MkdirAll(filepath.Dir(rulesFile(r, family)), 0o755)
		return 0, os.WriteFile(rulesFile(r, family), in, 0o644)
	}
}

func ipvsadm(r string, args []string) (int, error) {
	file := filepath.Join(r, "var/lib/deckhand-sim/ipvs")
	switch strings.Join(args, " ") {
	case "--clear", "-C":
		os.Remove(file)
		return 0, nil
	case "-Ln", "-L -n", "--list --numeric":
		fmt.Println("IP Virtual Server version 1.2.1 (size=4096)\nProt LocalAddress:Port Scheduler Flags\n  -> RemoteAddress:Port           Forward Weight ActiveConn InActConn")
		b, _ := os.ReadFile(file)
		fmt.Print(string(b))
		return 0, nil
	}
	return 2, fmt.Errorf("ipvsadm (simulation): unsupported arguments %v", args)
}
