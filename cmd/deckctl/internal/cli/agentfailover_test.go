package cli_test

import (
	"fmt"
	"os"
	"path/filepath"
	"regexp"
	"strings"
	"testing"
	"time"

	"github.com/deckhandhq/deckhand/internal/testkit/sim/simrecords"
	"github.com/deckhandhq/deckhand/internal/testkit/testcluster"
)

// A join whose kubeadm join runs for 10 s succeeds a few seconds after it ends when a
// controller dies in the middle of it: the one holding node-2's agent session (the agent
// reconnects elsewhere and reports the task it kept running), or the leader (the results
// and log lines written meanwhile are not lost to the election). kubeadm join runs once,
// and what it printed is in deckctl logs exactly once.
// Before, the step stayed RUNNING for good after the agent's controller died (the result
// went to the dead session), and after the leader died the join took 1m37s and its output
// was never stored.
func TestJoinSurvivesTheDeathOfTheAgentsControllerOrTheLeader(t *testing.T) {
	for _, tc := range []struct {
		name string
		// killAgents: kill the controller holding the agent session, else the leader.
		killAgents bool
	}{
		{"the agent's controller", true},
		{"the leader", false},
	} {
		t.Run(tc.name, func(t *testing.T) {
			l := newLab(t, "node-1", "node-2")
			l.mustDeckctl(t, "apply", "-f", l.doc(t, 2, []string{"node-1"}))
			root := l.Agents["node-2"].Root
			if err := os.MkdirAll(filepath.Join(root, "var/lib/deckhand-sim"), 0o755); err != nil {
				t.Fatal(err)
			}
			const delay = 10 * time.Second
			if err := os.WriteFile(filepath.Join(root, "var/lib/deckhand-sim/kubeadm-join-delay"), []byte(delay.String()), 0o644); err != nil {
				t.Fatal(err)
			}
			// The agent's session on a follower, so each case kills one role only.
			leader := l.WaitLeader()
			l.moveAgentOff(t, "node-2", l.Controllers[leader].ID())
			victim := leader
			if tc.killAgents {
				for i, ctl := range l.Controllers {
					if ctl.Running() && ctl.ID() == l.Agents["node-2"].Connected() {
						victim = i
					}
				}
			}
			var addr string // deckctl talks to a survivor
			for i, ctl := range l.Controllers {
				if i != victim {
					addr = ctl.Addr
				}
			}
			join := l.start(addr, "join", "node-2")
			var id string
			testcluster.WaitFor(t, time.Minute, func() error {
				if m := regexp.MustCompile(`workflow (wf-[a-z0-9]+): join node-2`).FindStringSubmatch(join.errOut.String()); m != nil {
					id = m[1]
					return nil
				}
				return fmt.Errorf("no workflow in the live view yet:\n%s", join.errOut.String())
			})
			testcluster.WaitFor(t, 2*time.Minute, func() error {
				if !testcluster.Exists(root, "etc/kubernetes/deckhand/kubeadm-join.yaml") {
					return fmt.Errorf("kubeadm join has not started")
				}
				return nil
			})
			killed := time.Now()
			l.Kill(victim)
			if simrecords.Count(l.records(t), "kubeadm-join", "node-2") != 0 {
				t.Fatal("kubeadm join finished before the kill: make its delay longer")
			}
			out, errOut := join.wait(t, l)
			took := time.Since(killed)
			t.Logf("the join succeeded %s after the kill", took.Round(time.Millisecond))
			if !strings.Contains(out, "workflow "+id+" (join node-2) succeeded") {
				t.Fatalf("the join after the kill:\nstdout:\n%s\nstderr:\n%s", out, errOut)
			}
			// kubeadm join ends at most delay after the kill; a few seconds more to report it.
			if limit := delay + 8*time.Second; took > limit {
				t.Errorf("the join succeeded %s after the kill, more than %s", took.Round(time.Millisecond), limit)
			}
			all, _, err := l.deckctl("logs", id)
			if err != nil {
				t.Fatalf("deckctl logs: %v", err)
			}
			for _, line := range []string{"kubeadm_join task started", "This node has joined the cluster"} {
				if n := countLines(all, "node-2/join ", line); n != 1 {
					t.Errorf("deckctl logs has %q %d times in node-2/join, want once", line, n)
				}
			}
			if t.Failed() {
				t.Fatalf("deckctl logs:\n%s\nlive view:\n%s", all, errOut)
			}
			l.joinedOnce(t, "node-2")
		})
	}
}

// countLines counts the lines of out that start with prefix and contain text.
func countLines(out, prefix, text string) int {
	n := 0
	for _, line := range strings.Split(out, "\n") {
		if strings.HasPrefix(line, prefix) && strings.Contains(line, text) {
			n++
		}
	}
	return n
}

// moveAgentOff makes node's agent hold its session on another controller than the one
// named avoid, by cutting its network until it reconnects elsewhere.
func (l *lab) moveAgentOff(t *testing.T, node, avoid string) {
	t.Helper()
	ag := l.Agents[node]
	testcluster.WaitFor(t, 30*time.Second, func() error {
		switch c := ag.Connected(); c {
		case "":
			return fmt.Errorf("%s is not connected", node)
		case avoid:
			l.CutAgent(node, true)
			testcluster.WaitFor(t, 10*time.Second, func() error {
				if ag.Connected() != "" {
					return fmt.Errorf("%s still connected", node)
				}
				return nil
			})
			l.CutAgent(node, false)
			return fmt.Errorf("%s was on %s", node, avoid)
		}
		return nil
	})
}
