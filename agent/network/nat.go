package network

import (
	"context"
	"errors"
	"fmt"
	"net/netip"
	"slices"
	"strings"

	"github.com/deckhandhq/deckhand/agent/host"
	"github.com/deckhandhq/deckhand/agent/tasks"
)

// NATComment marks the one NAT rule Deckhand owns (iptables' comment match), as RouteProto
// marks its routes: a rule without it is never changed, and every rule with it in nat
// POSTROUTING is Deckhand's.
const NATComment = "deckhand pod network"

// iptables waits for the xtables lock (kube-proxy holds it while it syncs) rather than
// failing at once; the task's deadline bounds the wait.
var iptables = []string{"iptables", "-w", "-t", "nat"}

// MasqueradeRule is the rule (after its chain, nat POSTROUTING) that masquerades what the
// pods send outside the cluster's pod subnet behind the node's address. Traffic between
// pods, on this node or another, keeps the pods' own addresses.
func MasqueradeRule(clusterPodSubnet netip.Prefix) []string {
	s := clusterPodSubnet.String()
	return []string{"-s", s, "!", "-d", s, "-m", "comment", "--comment", NATComment, "-j", "MASQUERADE"}
}

func natArgv(op string, rule []string) []string {
	return append(slices.Concat(iptables, []string{op, "POSTROUTING"}), rule...)
}

// ensureMasquerade keeps exactly one Deckhand NAT rule, the one for clusterPodSubnet: an
// owned rule for another subnet (the cluster was made again with another pod_subnet) or a
// second copy is deleted, the rule added when iptables -C does not find it. Rules without
// NATComment are left as they are.
func ensureMasquerade(ctx context.Context, h *host.Host, e *tasks.Emitter, clusterPodSubnet netip.Prefix) error {
	if !h.Has("iptables") {
		return tasks.Errorf("NAT_FAILED", "install iptables on the node (apt-get install iptables): the pods reach outside the cluster through one MASQUERADE rule",
			"iptables is not installed on the node")
	}
	owned, err := ownedNATRules(ctx, h)
	if err != nil {
		return tasks.Errorf("NAT_FAILED", "check that iptables works on the node: iptables -t nat -S POSTROUTING", "%v", err)
	}
	want := MasqueradeRule(clusterPodSubnet)
	kept := false
	for _, r := range owned {
		if slices.Equal(r, want) && !kept {
			kept = true
			continue
		}
		what := "remove a stale Deckhand NAT rule (" + strings.Join(r, " ") + ")"
		if slices.Equal(r, want) {
			what = "remove a second copy of the Deckhand NAT rule"
		}
		if err := h.Run(ctx, what, natArgv("-D", r)...); err != nil {
			return tasks.Errorf("NAT_FAILED", "remove it by hand: iptables -t nat -D POSTROUTING "+shellRule(r), "remove NAT rule %s: %v", shellRule(r), err)
		}
	}
	if kept {
		return nil
	}
	// iptables -C matches the rule as the kernel holds it, whatever -S printed.
	if _, err := h.Query(ctx, natArgv("-C", want)...); err == nil {
		return nil
	} else if !isExit(err, 1) {
		return tasks.Errorf("NAT_FAILED", "check that iptables works on the node: iptables -t nat -S POSTROUTING", "look for the NAT rule: %v", err)
	}
	if err := h.Run(ctx, "masquerade what the pods send outside the cluster's pod subnet "+clusterPodSubnet.String(), natArgv("-A", want)...); err != nil {
		return tasks.Errorf("NAT_FAILED", "check that the node's kernel has NAT and MASQUERADE (modprobe iptable_nat xt_MASQUERADE xt_comment, or their nf_tables equivalents)",
			"add the NAT rule %s: %v", shellRule(want), err)
	}
	e.Logf("pods reach outside %s through NAT; between pods, on any node, they keep their own addresses", clusterPodSubnet)
	return nil
}

// removeMasquerade deletes every NAT rule Deckhand owns, for a reset.
func removeMasquerade(ctx context.Context, h *host.Host) (int, error) {
	if !h.Has("iptables") {
		return 0, nil
	}
	owned, err := ownedNATRules(ctx, h)
	if err != nil {
		return 0, err
	}
	for _, r := range owned {
		if err := h.Run(ctx, "remove the Deckhand NAT rule (pod network)", natArgv("-D", r)...); err != nil {
			return 0, fmt.Errorf("remove NAT rule %s: %w", shellRule(r), err)
		}
	}
	return len(owned), nil
}

// ownedNATRules lists the rules of nat POSTROUTING that carry NATComment, each as the
// arguments after its chain.
func ownedNATRules(ctx context.Context, h *host.Host) ([][]string, error) {
	out, err := h.Query(ctx, slices.Concat(iptables, []string{"-S", "POSTROUTING"})...)
	if err != nil {
		return nil, fmt.Errorf("list the NAT rules: %w", err)
	}
	return ParseNATRules(out)
}

// ParseNATRules reads the output of `iptables -t nat -S POSTROUTING` and returns the rules
// Deckhand owns (those with its comment), each as the arguments after the chain's name.
func ParseNATRules(out []byte) ([][]string, error) {
	var owned [][]string
	for i, l := range strings.Split(string(out), "\n") {
		l = strings.TrimSpace(l)
		if !strings.HasPrefix(l, "-A POSTROUTING ") {
			continue
		}
		args, err := SplitRule(l)
		if err != nil {
			return nil, fmt.Errorf("iptables -S line %d: %w", i+1, err)
		}
		for j := 2; j+1 < len(args); j++ {
			if args[j] == "--comment" && args[j+1] == NATComment {
				owned = append(owned, args[2:])
				break
			}
		}
	}
	return owned, nil
}

// SplitRule splits a rule as iptables -S and iptables-save print it into its arguments: a
// word is one argument, a double-quoted string (with \" and \\ escaped) another.
func SplitRule(l string) ([]string, error) {
	var args []string
	var cur strings.Builder
	inWord, quoted := false, false
	for i := 0; i < len(l); i++ {
		c := l[i]
		switch {
		case quoted && c == '\\' && i+1 < len(l):
			i++
			cur.WriteByte(l[i])
		case quoted && c == '"':
			quoted = false
		case quoted:
			cur.WriteByte(c)
		case c == '"':
			quoted, inWord = true, true
		case c == ' ' || c == '\t':
			if inWord {
				args = append(args, cur.String())
				cur.Reset()
				inWord = false
			}
		default:
			cur.WriteByte(c)
			inWord = true
		}
	}
	if quoted {
		return nil, fmt.Errorf("unterminated quote in %q", l)
	}
	if inWord {
		args = append(args, cur.String())
	}
	return args, nil
}

// shellRule prints a rule's arguments for a hint a user pastes into a shell.
func shellRule(args []string) string {
	out := make([]string, len(args))
	for i, a := range args {
		if a == "" || strings.ContainsAny(a, " \t\"'\\!$`") {
			a = "'" + strings.ReplaceAll(a, "'", `'\''`) + "'"
		}
		out[i] = a
	}
	return strings.Join(out, " ")
}

// isExit reports whether err is a command that exited with code.
func isExit(err error, code int) bool {
	var ee interface{ ExitCode() int }
	return errors.As(err, &ee) && ee.ExitCode() == code
}
