package firewall

import (
	"slices"
	"testing"
)

// A rule's record reads back as it was written, its zone too; a record that is not one of
// Deckhand's is not a rule.
func TestRuleRecord(t *testing.T) {
	for _, r := range []Rule{
		{Tool: Firewalld, Kind: Port, Value: "6443/tcp"},
		{Tool: Firewalld, Kind: Port, Value: "30000-32767/tcp", Zone: "internal"},
		{Tool: Firewalld, Kind: Protocol, Value: "vrrp", Zone: "public"},
		{Tool: Ufw, Kind: Port, Value: "10250/tcp"},
	} {
		got, ok := parse(r.String())
		if !ok || got != r {
			t.Errorf("%q read back as %+v %v", r.String(), got, ok)
		}
	}
	for _, line := range []string{"firewalld port 6443/tcp zone=", "firewalld port 6443/tcp zone=a;b", "ufw port 6443/tcp zone=public", "firewalld port 6443/tcp public", "firewalld port 6443/tcp zone=public extra"} {
		if r, ok := parse(line); ok {
			t.Errorf("%q read as %+v", line, r)
		}
	}
	got := removeArgv(Rule{Tool: Firewalld, Kind: Port, Value: "6443/tcp", Zone: "internal"})
	if want := [][]string{{"firewall-cmd", "--permanent", "--zone=internal", "--remove-port=6443/tcp"}, {"firewall-cmd", "--zone=internal", "--remove-port=6443/tcp"}}; !slices.EqualFunc(got, want, slices.Equal) {
		t.Errorf("removal of a zone's port: %q", got)
	}
}
