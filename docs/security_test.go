// Package docs holds the project's documents; its test keeps docs/security.md's limits in
// step with the constants the code enforces.
package docs

import (
	"fmt"
	"os"
	"strings"
	"testing"
	"time"

	"github.com/deckhandhq/deckhand/controller/api"
	"github.com/deckhandhq/deckhand/controller/sessions"
	"github.com/deckhandhq/deckhand/controller/tasks"
	"github.com/deckhandhq/deckhand/internal/bounded"
	"github.com/deckhandhq/deckhand/internal/netmux"
	"github.com/deckhandhq/deckhand/internal/wirelimits"
)

// size writes a byte count the way security.md does: "4 MiB", "64 KiB", "512 bytes".
func size(n int) string {
	switch {
	case n >= 1<<20 && n%(1<<20) == 0:
		return fmt.Sprintf("%d MiB", n>>20)
	case n >= 1<<10 && n%(1<<10) == 0:
		return fmt.Sprintf("%d KiB", n>>10)
	}
	return fmt.Sprintf("%d bytes", n)
}

// count writes a number with thousands separators, as security.md does.
func count(n int) string {
	s := fmt.Sprint(n)
	for i := len(s) - 3; i > 0; i -= 3 {
		s = s[:i] + "," + s[i:]
	}
	return s
}

func seconds(d time.Duration) string { return fmt.Sprintf("%d s", int(d.Seconds())) }

// TestSecurityLimitsMatchTheCode fails when a limit changes in the code but not in
// docs/security.md (or the other way round): each row, found by its label, must state the
// value the code enforces.
func TestSecurityLimitsMatchTheCode(t *testing.T) {
	b, err := os.ReadFile("security.md")
	if err != nil {
		t.Fatal(err)
	}
	rows := map[string]string{}
	for _, l := range strings.Split(string(b), "\n") {
		if cells := strings.Split(l, "|"); len(cells) >= 4 {
			rows[strings.TrimSpace(cells[1])] = l
		}
	}
	for _, c := range []struct {
		row   string
		wants []string
	}{
		{"one gRPC message, any caller", []string{size(wirelimits.MaxMessageBytes)}},
		{"a node's facts", []string{size(sessions.MaxFactsBytes) + " in all", "each string " + size(sessions.MaxFactsString), fmt.Sprintf("%d entries", sessions.MaxFactsItems)}},
		{"hello", []string{"task ID " + size(sessions.MaxHelloString), count(sessions.MaxHelloTaskIDs) + " task IDs"}},
		{"a log line / a progress item / its unit", []string{size(sessions.MaxLogLineBytes), size(sessions.MaxProgressItemBytes)}},
		{"a task's stored log", []string{size(sessions.MaxTaskLogBytes) + " per task"}},
		{"outputs of one result", []string{size(wirelimits.MaxOutputsBytes)}},
		{"a file change's detail", []string{size(wirelimits.MaxChangeDetailBytes) + " each", size(wirelimits.MaxChangesBytes) + " for all"}},
		{"an artifact (e.g. a diagnostics bundle)", []string{size(wirelimits.MaxArtifactBytes)}},
		{"an error message / hint", []string{size(wirelimits.MaxErrorTextBytes) + " each"}},
		{"facts written to the store", []string{fmt.Sprintf("%d per minute per node, burst %d", sessions.FactsWritesPerMinute, sessions.FactsWriteBurst)}},
		{"task events", []string{size(sessions.EventBytesPerSecond) + "/s per node, burst " + size(sessions.EventBurstBytes), "at least " + size(sessions.MinEventCost)}},
		{"certificate renewals", []string{fmt.Sprintf("%d per minute per node, burst %d", sessions.RenewalsPerMinute, sessions.RenewalBurst)}},
		{"drop log lines", []string{"every " + seconds(sessions.DropLogInterval)}},
		{"TLS handshake", []string{seconds(netmux.DefaultHandshakeTimeout)}},
		{"connections without a client certificate", []string{fmt.Sprintf("%d per source", netmux.DefaultPerSource), count(netmux.DefaultTotal) + " in all"}},
		{"failed `Enroll` / `FetchCA` calls", []string{fmt.Sprintf("burst %d per source", api.PublicFailureBurst), fmt.Sprintf("refilled %d per minute", api.PublicFailuresPerMinute), count(api.MaxTrackedSources) + " sources"}},
		{"an error message returned to a caller", []string{size(api.MaxStatusMessage)}},
		{"one value or message in a log line", []string{size(bounded.MaxLogValue)}},
		{"a list page (nodes, tasks, workflows, task and workflow logs)", []string{fmt.Sprintf("%d items by default", api.DefaultPageSize), count(api.MaxPageSize) + " at most", size(api.MaxPageBytes), fmt.Sprintf("cut at %d bytes", api.SummaryMaxString), fmt.Sprintf("lists at %d entries", api.SummaryMaxList)}},
		{"finished task records", []string{fmt.Sprintf("(%d days)", int(tasks.DefaultRetentionPeriod/(24*time.Hour))), "(" + count(tasks.DefaultRetentionCount) + ")"}},
	} {
		line, ok := rows[c.row]
		if !ok {
			t.Errorf("docs/security.md has no row %q", c.row)
			continue
		}
		for _, w := range c.wants {
			if !strings.Contains(line, w) {
				t.Errorf("docs/security.md row %q does not say %q (the code's value):\n%s", c.row, w, line)
			}
		}
	}
}
