// Package firewall remembers the firewall rules Deckhand added on a host (preflight --fix
// opens the ports and protocols a node of the cluster needs) and removes exactly those when
// the node is reset: a rule that was there before Deckhand came stays.
package firewall

import (
	"context"
	"regexp"
	"strings"

	"github.com/deckhandhq/deckhand/agent/host"
	"github.com/deckhandhq/deckhand/agent/tasks"
)

// RecordFile lists the rules Deckhand added, one a line: "TOOL KIND VALUE [zone=ZONE]".
const RecordFile = "/var/lib/deckhand/firewall.rules"

// Tools and kinds of rule.
const (
	Firewalld = "firewalld"
	Ufw       = "ufw"
	Port      = "port"     // "6443/tcp"
	Protocol  = "protocol" // "vrrp"
	Source    = "source"   // "10.244.0.0/16": a source of firewalld's trusted zone
)

// TrustedZone is the firewalld zone a Source rule adds its CIDR to.
const TrustedZone = "trusted"

// Rule is one rule Deckhand added.
type Rule struct {
	Tool, Kind, Value string
	// Zone is the firewalld zone of a port or protocol ("" the default zone); a source's is
	// always TrustedZone.
	Zone string
}

func (r Rule) String() string {
	if r.Zone != "" {
		return r.Tool + " " + r.Kind + " " + r.Value + " zone=" + r.Zone
	}
	return r.Tool + " " + r.Kind + " " + r.Value
}

var (
	valueRE = regexp.MustCompile(`^([0-9]{1,5}(-[0-9]{1,5})?/(tcp|udp)|[a-z][a-z0-9-]{0,15}|[0-9a-f.:]{2,39}/[0-9]{1,3})$`)
	// ZoneRE is a firewalld zone's name as firewalld allows it.
	ZoneRE = regexp.MustCompile(`^[A-Za-z0-9_+-]{1,17}$`)
)

func parse(line string) (Rule, bool) {
	f := strings.Fields(line)
	if len(f) < 3 || len(f) > 4 || (f[0] != Firewalld && f[0] != Ufw) || (f[1] != Port && f[1] != Protocol && f[1] != Source) || !valueRE.MatchString(f[2]) {
		return Rule{}, false
	}
	r := Rule{Tool: f[0], Kind: f[1], Value: f[2]}
	if len(f) == 4 {
		z, ok := strings.CutPrefix(f[3], "zone=")
		if !ok || !ZoneRE.MatchString(z) || r.Tool != Firewalld {
			return Rule{}, false
		}
		r.Zone = z
	}
	return r, true
}

// ZoneArgs is firewall-cmd's --zone=ZONE for zone, none for the default zone.
func ZoneArgs(zone string) []string {
	if zone == "" {
		return nil
	}
	return []string{"--zone=" + zone}
}

// Added records that Deckhand added r (preflight, after its commands succeeded).
func Added(h *host.Host, r Rule) error {
	_, err := h.AppendLine(RecordFile, r.String(), 0o600)
	return err
}

// UfwPort is a port or range ("30000-32767/tcp") as ufw writes it ("30000:32767/tcp").
func UfwPort(port string) string { return strings.Replace(port, "-", ":", 1) }

// removeArgv is the command that takes r away, now and (firewalld) permanently.
func removeArgv(r Rule) [][]string {
	switch {
	case r.Tool == Firewalld && r.Kind == Port:
		z := ZoneArgs(r.Zone)
		return [][]string{append(append([]string{"firewall-cmd", "--permanent"}, z...), "--remove-port="+r.Value), append(append([]string{"firewall-cmd"}, z...), "--remove-port="+r.Value)}
	case r.Tool == Firewalld && r.Kind == Source:
		zone := "--zone=" + TrustedZone
		return [][]string{{"firewall-cmd", "--permanent", zone, "--remove-source=" + r.Value}, {"firewall-cmd", zone, "--remove-source=" + r.Value}}
	case r.Tool == Firewalld:
		z := ZoneArgs(r.Zone)
		return [][]string{append(append([]string{"firewall-cmd", "--permanent"}, z...), "--remove-protocol="+r.Value), append(append([]string{"firewall-cmd"}, z...), "--remove-protocol="+r.Value)}
	case r.Kind == Port:
		return [][]string{{"ufw", "delete", "allow", UfwPort(r.Value)}}
	default:
		return [][]string{{"ufw", "delete", "allow", "proto", r.Value, "from", "any", "to", "any"}}
	}
}

// RemoveAdded removes the rules Deckhand recorded as added, and the record. A rule whose
// tool no longer runs (firewalld stopped) stays recorded for the next reset, and is said.
func RemoveAdded(ctx context.Context, h *host.Host, e *tasks.Emitter) error {
	b, err := h.ReadFile(RecordFile)
	if err != nil {
		return nil // none added
	}
	var kept []string
	removed := 0
	for _, line := range strings.Split(string(b), "\n") {
		if strings.TrimSpace(line) == "" {
			continue
		}
		r, ok := parse(line)
		if !ok {
			e.Logf("%s: %q is not a rule Deckhand writes; left out", RecordFile, line)
			continue
		}
		if !running(ctx, h, r.Tool) {
			e.Logf("%s is not running: the %s it was given by Deckhand stays recorded for the next reset", r.Tool, r.Value)
			kept = append(kept, line)
			continue
		}
		for _, argv := range removeArgv(r) {
			if err := h.Run(ctx, "remove the "+r.Kind+" "+r.Value+" Deckhand opened", argv...); err != nil {
				return tasks.Errorf("RESET_FAILED", "remove it by hand: "+strings.Join(argv, " "), "firewall: %v", err)
			}
		}
		removed++
	}
	if len(kept) > 0 {
		if _, err := h.WriteFile(RecordFile, []byte(strings.Join(kept, "\n")+"\n"), 0o600); err != nil {
			return err
		}
	} else if _, err := h.RemoveFile(RecordFile); err != nil {
		return err
	}
	if removed > 0 {
		e.Did("removed the %d firewall rule(s) Deckhand opened; the host's own stay", "would remove the %d firewall rule(s) Deckhand opened; the host's own stay", removed)
	}
	return nil
}

func running(ctx context.Context, h *host.Host, tool string) bool {
	if tool == Firewalld {
		out, err := h.Query(ctx, "firewall-cmd", "--state")
		return err == nil && strings.TrimSpace(string(out)) == "running"
	}
	out, err := h.Query(ctx, "ufw", "status")
	return err == nil && strings.Contains(string(out), "Status: active")
}
