package controller_test

import (
	"context"
	"fmt"
	"sort"
	"testing"
	"time"

	"github.com/deckhandhq/deckhand/internal/testkit/testcluster"
	apiv1 "github.com/deckhandhq/deckhand/proto/deckhand/api/v1"
)

func states(t *testing.T, c *testcluster.Cluster) (map[string]apiv1.NodeState, error) {
	nodes, err := c.Nodes()
	if err != nil {
		return nil, err
	}
	out := map[string]apiv1.NodeState{}
	for _, n := range nodes {
		out[n.GetName()] = n.GetState()
	}
	return out, nil
}

func allReady(t *testing.T, c *testcluster.Cluster, want int) error {
	st, err := states(t, c)
	if err != nil {
		return err
	}
	if len(st) != want {
		return fmt.Errorf("%d nodes, want %d: %v", len(st), want, st)
	}
	for n, s := range st {
		if s != apiv1.NodeState_NODE_STATE_READY {
			return fmt.Errorf("node %s is %v", n, s)
		}
	}
	return nil
}

func TestFiveAgentsThreeControllers(t *testing.T) {
	c := testcluster.New(t, 3)
	token := c.CreateToken(5)
	var names []string
	for i := range 5 {
		name := fmt.Sprintf("node-%d", i+1)
		names = append(names, name)
		if _, err := c.StartAgent(c.AgentConfig(name, token)); err != nil {
			t.Fatalf("agent %s: %v", name, err)
		}
	}
	// A sixth host cannot use the exhausted token.
	if _, err := c.StartAgent(c.AgentConfig("node-6", token)); err == nil {
		t.Fatal("a used-up token enrolled a sixth node")
	}
	testcluster.WaitFor(t, 15*time.Second, func() error { return allReady(t, c, 5) })

	// Facts arrived with the hello.
	nodes, _ := c.Nodes()
	for _, n := range nodes {
		f := n.GetFacts()
		if f.GetOsId() != "debian" || f.GetKernel() != "6.1.0-test" || f.GetMemoryBytes() != 4028812*1024 || f.GetHostname() != n.GetName() {
			t.Fatalf("facts of %s: %v", n.GetName(), f)
		}
	}

	// Kill the leader: every agent is connected and Ready again within 5s of the new leader.
	old := c.WaitLeader()
	oldID := c.Controllers[old].ID()
	c.Kill(old)
	nl := c.WaitLeader()
	elected := time.Now()
	testcluster.WaitFor(t, 5*time.Second, func() error {
		for _, n := range names {
			if cid := c.Agents[n].Connected(); cid == "" || cid == oldID {
				return fmt.Errorf("agent %s connected to %q", n, cid)
			}
		}
		return allReady(t, c, 5)
	})
	t.Logf("all agents connected and Ready %v after controller %d took over", time.Since(elected).Round(time.Millisecond), nl)
	// And no node was marked down by the takeover, within one more TTL.
	deadline := time.Now().Add(testcluster.Timing.NotReadyAfter + time.Second)
	for time.Now().Before(deadline) {
		if err := allReady(t, c, 5); err != nil {
			t.Fatalf("after takeover: %v", err)
		}
	}
	c.Restart(old)

	// Cut one agent: NotReady after its TTL, Ready after it reconnects.
	c.CutAgent("node-3", true)
	cut := time.Now()
	testcluster.WaitFor(t, 10*time.Second, func() error {
		st, err := states(t, c)
		if err != nil {
			return err
		}
		if st["node-3"] != apiv1.NodeState_NODE_STATE_NOT_READY {
			return fmt.Errorf("node-3 is %v", st["node-3"])
		}
		return nil
	})
	// The TTL runs from the last heartbeat, which came at most one interval before the cut
	// (and reached the leader at most one digest interval later).
	if took, min := time.Since(cut), testcluster.Timing.NotReadyAfter-2*testcluster.Timing.Heartbeat; took < min {
		t.Fatalf("node-3 NotReady %v after the cut, before its TTL (%v after its last heartbeat)", took, testcluster.Timing.NotReadyAfter)
	}
	st, _ := states(t, c)
	for _, n := range names {
		if n != "node-3" && st[n] != apiv1.NodeState_NODE_STATE_READY {
			t.Fatalf("cutting node-3 affected %s: %v", n, st[n])
		}
	}
	c.CutAgent("node-3", false)
	testcluster.WaitFor(t, 10*time.Second, func() error { return allReady(t, c, 5) })

	// Restart all three controllers: the inventory is intact and every agent comes back.
	before, _ := c.Nodes()
	for i := range c.Controllers {
		c.Stop(i)
	}
	for i := range c.Controllers {
		c.Restart(i)
	}
	c.WaitLeader()
	testcluster.WaitFor(t, 20*time.Second, func() error { return allReady(t, c, 5) })
	after, _ := c.Nodes()
	sort.Slice(before, func(i, j int) bool { return before[i].GetName() < before[j].GetName() })
	for i := range before {
		if before[i].GetName() != after[i].GetName() || before[i].GetCertificateSerial() != after[i].GetCertificateSerial() ||
			before[i].GetFacts().GetMachineId() != after[i].GetFacts().GetMachineId() {
			t.Fatalf("inventory changed across restart: %v vs %v", before[i], after[i])
		}
	}
}

func TestDeletedNodeIsCutOffAndCanReenroll(t *testing.T) {
	c := testcluster.New(t, 1)
	token := c.CreateToken(0)
	cfg := c.AgentConfig("node-1", token)
	ag, err := c.StartAgent(cfg)
	if err != nil {
		t.Fatal(err)
	}
	testcluster.WaitFor(t, 10*time.Second, func() error { return allReady(t, c, 1) })
	// Another machine cannot take the name.
	other := c.AgentConfig("node-1", token)
	if _, err := c.StartAgent(other); err == nil {
		t.Fatal("a second machine enrolled an existing name")
	}
	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
	defer cancel()
	if _, err := apiv1.NewNodeServiceClient(c.Client()).DeleteNode(ctx, &apiv1.DeleteNodeRequest{Name: "node-1"}); err != nil {
		t.Fatal(err)
	}
	// The deleted node's session ends and the agent stops: its certificate is revoked.
	testcluster.WaitFor(t, 10*time.Second, func() error {
		if ag.Connected() != "" {
			return fmt.Errorf("still connected to %s", ag.Connected())
		}
		return nil
	})
	// Now the other machine may enroll the name.
	c.StopAgent("node-1")
	if _, err := c.StartAgent(other); err != nil {
		t.Fatalf("enroll after delete: %v", err)
	}
	testcluster.WaitFor(t, 10*time.Second, func() error { return allReady(t, c, 1) })
}

// A controller cut off from the others sends its agents elsewhere instead of letting them
// go NotReady while they are healthy.
func TestAgentsLeaveAPartitionedController(t *testing.T) {
	c := testcluster.New(t, 3)
	token := c.CreateToken(0)
	for i := range 4 {
		if _, err := c.StartAgent(c.AgentConfig(fmt.Sprintf("node-%d", i), token)); err != nil {
			t.Fatal(err)
		}
	}
	testcluster.WaitFor(t, 15*time.Second, func() error { return allReady(t, c, 4) })
	// Cut the controller holding node-1's session off from the other controllers (agents
	// still reach it): the agents connected to it must move.
	victimID := c.Agents["node-1"].Connected()
	victim := -1
	for i, ctl := range c.Controllers {
		if ctl.ID() == victimID {
			victim = i
		}
	}
	if victim < 0 {
		t.Fatalf("node-1 is connected to %q, not a known controller", victimID)
	}
	majority := apiv1.NewNodeServiceClient(c.ClientTo((victim + 1) % 3))
	c.SplitFromPeers(victim, true)
	defer c.SplitFromPeers(victim, false)
	testcluster.WaitFor(t, 4*testcluster.Timing.NotReadyAfter+5*time.Second, func() error {
		for name, a := range c.Agents {
			if cid := a.Connected(); cid == "" || cid == victimID {
				return fmt.Errorf("agent %s connected to %q", name, cid)
			}
		}
		// Read through a replica on the majority side: the split one cannot serve
		// linearizable reads.
		ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
		defer cancel()
		resp, err := majority.ListNodes(ctx, &apiv1.ListNodesRequest{})
		if err != nil {
			return err
		}
		st := map[string]apiv1.NodeState{}
		for _, n := range resp.GetNodes() {
			st[n.GetName()] = n.GetState()
		}
		for _, n := range []string{"node-0", "node-1", "node-2", "node-3"} {
			if st[n] != apiv1.NodeState_NODE_STATE_READY {
				return fmt.Errorf("%s is %v", n, st[n])
			}
		}
		return nil
	})
}
