package nodes_test

import (
	"context"
	"slices"
	"testing"

	"github.com/deckhandhq/deckhand/controller/nodes"
	"github.com/deckhandhq/deckhand/internal/testkit/teststore"
	agentv1 "github.com/deckhandhq/deckhand/proto/deckhand/agent/v1"
)

// The node's record follows the agent its hellos report, features included: an agent
// replaced by one of the release before (no features) leaves none listed, so the engine
// stops rendering what only the newer agent read.
func TestUpdateFactsFollowsTheAgent(t *testing.T) {
	ctx := context.Background()
	reg := nodes.New(teststore.New(t), nil)
	if err := reg.Enroll(ctx, "n1", "m-1", "1"); err != nil {
		t.Fatal(err)
	}
	facts := &agentv1.Facts{Hostname: "n1"}
	for _, c := range []nodes.Agent{
		{Version: "v0.3.0", Features: []string{"network.packed-routes"}},
		{Version: "v0.2.0"},
		{Version: "v0.3.0", Features: []string{"network.packed-routes", "other"}},
		{Version: "v0.3.0", Features: []string{"other"}},
	} {
		if err := reg.UpdateFacts(ctx, "n1", c, facts); err != nil {
			t.Fatal(err)
		}
		n, _, err := reg.Get(ctx, "n1")
		if err != nil {
			t.Fatal(err)
		}
		if n.GetAgentVersion() != c.Version || !slices.Equal(n.GetAgentFeatures(), c.Features) {
			t.Fatalf("after a hello of %+v the record says %q %q", c, n.GetAgentVersion(), n.GetAgentFeatures())
		}
	}
}
