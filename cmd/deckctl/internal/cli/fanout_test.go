package cli_test

import (
	"context"
	"encoding/json"
	"fmt"
	"regexp"
	"strings"
	"testing"
	"time"

	"github.com/deckhandhq/deckhand/internal/testkit/testcluster"
	apiv1 "github.com/deckhandhq/deckhand/proto/deckhand/api/v1"
)

// One ping to three real agents, one of them stopped: the two answer with their agent's
// version, the stopped one is reported failed with why, at the end, and the exit status
// says so; the same fan-out as JSON carries every node's result.
func TestFanoutToRealAgents(t *testing.T) {
	c := testcluster.New(t, 1)
	token := c.CreateToken(3)
	for _, n := range []string{"node-1", "node-2", "node-3"} {
		if _, err := c.StartAgent(c.AgentConfig(n, token)); err != nil {
			t.Fatal(err)
		}
	}
	nodes := apiv1.NewNodeServiceClient(c.Client())
	states := func() (map[string]apiv1.NodeState, error) {
		ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
		defer cancel()
		resp, err := nodes.ListNodes(ctx, &apiv1.ListNodesRequest{})
		out := map[string]apiv1.NodeState{}
		for _, n := range resp.GetNodes() {
			out[n.GetName()] = n.GetState()
		}
		return out, err
	}
	testcluster.WaitFor(t, 30*time.Second, func() error {
		st, err := states()
		if err == nil && (len(st) != 3 || st["node-1"] != apiv1.NodeState_NODE_STATE_READY || st["node-2"] != apiv1.NodeState_NODE_STATE_READY || st["node-3"] != apiv1.NodeState_NODE_STATE_READY) {
			err = fmt.Errorf("nodes %v", st)
		}
		return err
	})
	admin := c.AdminConfig()

	out, err := deckctlAs(c, admin, "task", "run", "--nodes", "all", "ping")
	if err != nil {
		t.Fatalf("ping, all ready: %v\n%s", err, out)
	}
	for _, n := range []string{"node-1", "node-2", "node-3"} {
		if !regexp.MustCompile(`(?m)^` + n + `\s+succeeded\s+\S+\s+agent_time=\S+ agent_version=`).MatchString(out) {
			t.Errorf("no succeeded line with the agent's version for %s:\n%s", n, out)
		}
	}
	if !strings.Contains(out, "ping: 3/3 ended (3 succeeded, 0 failed)") {
		t.Errorf("no final summary line:\n%s", out)
	}

	c.StopAgent("node-3")
	testcluster.WaitFor(t, 30*time.Second, func() error {
		st, err := states()
		if err == nil && st["node-3"] == apiv1.NodeState_NODE_STATE_READY {
			err = fmt.Errorf("node-3 is still ready")
		}
		return err
	})
	out, err = deckctlAs(c, admin, "task", "run", "--nodes", "node-1,node-2,node-3", "--concurrency", "2", "facts")
	if err == nil || !strings.Contains(err.Error(), "facts failed on 1 of 3 nodes") || !strings.Contains(err.Error(), "node-3") {
		t.Fatalf("facts with node-3 down: %v\n%s", err, out)
	}
	// The table (stdout, before the live lines on stderr here) ends with the failed node.
	table := out[:strings.Index(out, "\nnode-3: skipped")]
	lines := strings.Split(strings.TrimSpace(table), "\n")
	if last := lines[len(lines)-1]; len(lines) != 4 || !regexp.MustCompile(`^node-3\s+skipped\s+-\s+NODE_NOT_READY: node is not-ready`).MatchString(last) {
		t.Errorf("the failed node does not end the table: %q\n%s", last, out)
	}
	for _, n := range []string{"node-1", "node-2"} {
		if !regexp.MustCompile(`(?m)^` + n + `\s+succeeded\s+.*hostname=`).MatchString(out) {
			t.Errorf("%s's facts are not listed:\n%s", n, out)
		}
	}

	out, err = deckctlAs(c, admin, "-o", "json", "task", "run", "--nodes", "state=ready", "ping")
	if err != nil {
		t.Fatalf("ping the ready nodes as JSON: %v\n%s", err, out)
	}
	var res struct {
		Summary struct {
			Total, Succeeded int
			Done             bool
		}
		Nodes []string
		Ended []struct {
			Task struct{ Node string }
		}
	}
	if err := json.Unmarshal([]byte(out[:strings.LastIndex(out, "}")+1]), &res); err != nil {
		t.Fatalf("%v:\n%s", err, out)
	}
	if res.Summary.Total != 2 || res.Summary.Succeeded != 2 || !res.Summary.Done || len(res.Ended) != 2 || strings.Join(res.Nodes, ",") != "node-1,node-2" {
		t.Errorf("JSON: %+v\n%s", res, out)
	}

	for _, tc := range []struct{ args, want string }{
		{"--nodes colour=red ping", "nodes.match: key \"colour\": use role, os, arch, state"},
		{"--nodes node-9 ping", "nodes.names: not enrolled: node-9"},
		{"--nodes all --concurrency 5000 ping", "concurrency: 5000"},
		{"--nodes all node-1 ping", "with --nodes give only the task kind"},
		{"--nodes all --id wf-x ping", "id: \"wf-x\""},
	} {
		out, err := deckctlAs(c, admin, append([]string{"task", "run"}, strings.Fields(tc.args)...)...)
		if err == nil || !strings.Contains(err.Error(), tc.want) {
			t.Errorf("task run %s: %v, want an error with %q\n%s", tc.args, err, tc.want, out)
		}
	}
}
