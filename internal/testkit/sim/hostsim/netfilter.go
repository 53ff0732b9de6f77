package main

import (
	"fmt"
	"io"
	"os"
	"path/filepath"
	"slices"
	"strings"
)

// iptables-save / iptables-restore (and the ip6tables pair) and iptables SIMULATION: the ruleset of each
// family is a file in iptables-save format under ROOT/var/lib/deckhand-sim/netfilter.
// ipvsadm: below.

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

// ipvsadm SIMULATION, in exactly the forms the agent uses:
//
//	ipvsadm --save -n
//	ipvsadm -D -t|-u|--sctp-service ADDR:PORT
//
// The virtual services (and their real servers) are the lines of
// ROOT/var/lib/deckhand-sim/ipvs as --save prints them ("-A -t 10.96.0.1:443 -s rr", "-a
// -t 10.96.0.1:443 -r 10.0.0.5:6443 -m -w 1"), put there by a test. -D deletes a service
// with its real servers; of a service the host lacks it fails as the real tool does.
func ipvsadm(r string, args []string) (int, error) {
	file := filepath.Join(r, "var/lib/deckhand-sim/ipvs")
	b, _ := os.ReadFile(file)
	lines := strings.Split(strings.TrimRight(string(b), "\n"), "\n")
	if len(b) == 0 {
		lines = nil
	}
	switch {
	case len(args) == 2 && args[0] == "--save" && args[1] == "-n":
		fmt.Print(string(b))
		return 0, nil
	case len(args) == 3 && args[0] == "-D" && slices.Contains([]string{"-t", "-u", "--sctp-service"}, args[1]):
		var kept []string
		found := false
		for _, l := range lines {
			f := strings.Fields(l)
			if len(f) >= 3 && (f[0] == "-A" || f[0] == "-a") && f[1] == args[1] && f[2] == args[2] {
				found = found || f[0] == "-A"
				continue
			}
			kept = append(kept, l)
		}
		if !found {
			return 255, fmt.Errorf("No such service")
		}
		out := strings.Join(kept, "\n")
		if out != "" {
			out += "\n"
		}
		return 0, os.WriteFile(file, []byte(out), 0o644)
	}
	return 2, fmt.Errorf("ipvsadm (simulation): unsupported arguments %v", args)
}

// iptables SIMULATION, in exactly the forms the agent uses, on the nat table's chains of
// the ruleset iptables-save prints:
//
//	iptables -w -t nat -S CHAIN
//	iptables -w -t nat -C|-A|-D CHAIN RULE...
//
// A rule is stored as iptables-save prints it (an argument with a space double-quoted).
// Errors and exit codes are the real tool's: -C and -D of a rule the chain lacks exit 1.
func iptablesCmd(r string, args []string) (int, error) {
	if len(args) < 5 || args[0] != "-w" || args[1] != "-t" || args[2] != "nat" {
		return 2, fmt.Errorf("iptables (simulation): unsupported arguments %v", args)
	}
	op, chain, rule := args[3], args[4], args[5:]
	b, err := os.ReadFile(rulesFile(r, "iptables"))
	if err != nil {
		b = []byte(emptyRules)
	}
	lines := strings.Split(strings.TrimRight(string(b), "\n"), "\n")
	// The nat table's lines: from its *nat to its COMMIT (added, empty, when missing).
	start, end := -1, -1
	for i, l := range lines {
		if l == "*nat" {
			start = i
		} else if start >= 0 && end < 0 && l == "COMMIT" {
			end = i
		}
	}
	if start < 0 {
		lines = append(lines, "*nat", ":PREROUTING ACCEPT [0:0]", ":INPUT ACCEPT [0:0]", ":OUTPUT ACCEPT [0:0]", ":POSTROUTING ACCEPT [0:0]", "COMMIT")
		start, end = len(lines)-6, len(lines)-1
	}
	policy := ""
	for _, l := range lines[start:end] {
		if f := strings.Fields(l); len(f) >= 2 && f[0] == ":"+chain {
			policy = f[1]
		}
	}
	if policy == "" {
		// The built-in chains are there whether a saved ruleset names them or not.
		if !slices.Contains([]string{"PREROUTING", "INPUT", "OUTPUT", "POSTROUTING"}, chain) {
			return 1, fmt.Errorf("iptables: No chain/target/match by that name.")
		}
		policy = "ACCEPT"
		if op == "-A" {
			lines = slices.Insert(lines, start+1, ":"+chain+" ACCEPT [0:0]")
			end++
		}
	}
	line := "-A " + chain + " " + saveArgs(rule)
	at := -1
	for i := start; i < end; i++ {
		if lines[i] == line {
			at = i
			break
		}
	}
	switch {
	case op == "-S" && len(rule) == 0:
		fmt.Println("-P " + chain + " " + policy)
		for _, l := range lines[start:end] {
			if strings.HasPrefix(l, "-A "+chain+" ") {
				fmt.Println(l)
			}
		}
		return 0, nil
	case op == "-C" && len(rule) > 0:
		if at < 0 {
			return 1, fmt.Errorf("iptables: Bad rule (does a matching rule exist in that chain?).")
		}
		return 0, nil
	case op == "-A" && len(rule) > 0:
		lines = slices.Insert(lines, end, line)
	case op == "-D" && len(rule) > 0:
		if at < 0 {
			return 1, fmt.Errorf("iptables: Bad rule (does a matching rule exist in that chain?).")
		}
		lines = slices.Delete(lines, at, at+1)
	default:
		return 2, fmt.Errorf("iptables (simulation): unsupported arguments %v", args)
	}
	os.MkdirAll(filepath.Dir(rulesFile(r, "iptables")), 0o755)
	return 0, os.WriteFile(rulesFile(r, "iptables"), []byte(strings.Join(lines, "\n")+"\n"), 0o644)
}

// saveArgs prints a rule's arguments as iptables-save does.
func saveArgs(args []string) string {
	out := make([]string, len(args))
	for i, a := range args {
		if a == "" || strings.ContainsAny(a, " \t\"\\") {
			a = `"` + strings.NewReplacer(`\`, `\\`, `"`, `\"`).Replace(a) + `"`
		}
		out[i] = a
	}
	return strings.Join(out, " ")
}

// nft SIMULATION, in exactly the forms the agent uses:
//
//	nft list tables
//	nft delete table FAMILY NAME
//
// The tables are the lines of ROOT/var/lib/deckhand-sim/nft-tables ("table ip
// kube-proxy"), put there by a test, as kube-proxy's nftables mode would make them.
func nft(r string, args []string) (int, error) {
	file := filepath.Join(r, "var/lib/deckhand-sim/nft-tables")
	b, _ := os.ReadFile(file)
	switch {
	case len(args) == 2 && args[0] == "list" && args[1] == "tables":
		fmt.Print(string(b))
		return 0, nil
	case len(args) == 4 && args[0] == "delete" && args[1] == "table":
		want := "table " + args[2] + " " + args[3]
		var kept []string
		found := false
		for _, l := range strings.Split(strings.TrimRight(string(b), "\n"), "\n") {
			if strings.TrimSpace(l) == want {
				found = true
			} else if l != "" {
				kept = append(kept, l)
			}
		}
		if !found {
			cmd := strings.Join(args, " ")
			return 1, fmt.Errorf("Error: Could not process rule: No such file or directory\n%s\n%s", cmd, strings.Repeat("^", len(cmd)))
		}
		out := strings.Join(kept, "\n")
		if out != "" {
			out += "\n"
		}
		return 0, os.WriteFile(file, []byte(out), 0o644)
	}
	return 1, fmt.Errorf("nft (simulation): unsupported arguments %v", args)
}
