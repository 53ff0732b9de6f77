package controller_test

import (
	"context"
	"crypto/tls"
	"testing"
	"time"

	"google.golang.org/grpc"
	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/status"

	"github.com/deckhandhq/deckhand/internal/clientconfig"
	"github.com/deckhandhq/deckhand/internal/testkit/testcluster"
	agentv1 "github.com/deckhandhq/deckhand/proto/deckhand/agent/v1"
	apiv1 "github.com/deckhandhq/deckhand/proto/deckhand/api/v1"
)

// An agent that sends nothing (between heartbeats, or hung) is still told at once, and why,
// when the controller ends its session: replaced by a newer session of its node (Aborted),
// or its node deleted (PermissionDenied; the agent stops). This is why a session has a
// receive loop apart from its handler: a Recv blocked in the handler could be ended only
// through the stream's context (a tap.ServerInHandle's cancel), and gRPC then answers the
// agent Canceled itself, whatever the handler returns (tried 2026-12-02, docs/benchmarks.md).
func TestASilentAgentIsToldItsSessionEnded(t *testing.T) {
	c := testcluster.New(t, 1)
	cfg := enrolledAgentTLS(t, c, "node-a")
	ctx, cancel := context.WithTimeout(context.Background(), 2*time.Minute)
	defer cancel()
	// open says hello, reads the welcome and then only waits: it never sends a heartbeat.
	open := func() <-chan error {
		t.Helper()
		stream := openSession(ctx, t, dialWith(t, c.Addrs()[0], cfg), "node-a")
		ended := make(chan error, 1)
		go func() {
			for {
				if _, err := stream.Recv(); err != nil {
					ended <- err
					return
				}
			}
		}()
		return ended
	}
	expect := func(what string, ended <-chan error, want codes.Code) {
		t.Helper()
		select {
		case err := <-ended:
			if status.Code(err) != want {
				t.Fatalf("%s: the session ended with %v, want %v", what, err, want)
			}
		case <-time.After(15 * time.Second):
			t.Fatalf("%s: the silent agent's session is still open after 15 s", what)
		}
	}

	first := open()
	second := open()
	expect("replaced by a newer session", first, codes.Aborted)
	if _, err := apiv1.NewNodeServiceClient(c.Client()).DeleteNode(ctx, &apiv1.DeleteNodeRequest{Name: "node-a"}); err != nil {
		t.Fatal(err)
	}
	expect("node deleted", second, codes.PermissionDenied)
}

// openSession opens node's session over cc as its agent would: its hello sent, the
// controller's welcome read.
func openSession(ctx context.Context, t *testing.T, cc *grpc.ClientConn, node string) agentv1.AgentService_SessionClient {
	t.Helper()
	stream, err := agentv1.NewAgentServiceClient(cc).Session(ctx)
	if err != nil {
		t.Fatal(err)
	}
	if err := stream.Send(&agentv1.SessionRequest{Msg: &agentv1.SessionRequest_Hello{Hello: &agentv1.Hello{NodeName: node}}}); err != nil {
		t.Fatal(err)
	}
	if _, err := stream.Recv(); err != nil {
		t.Fatalf("welcome: %v", err)
	}
	return stream
}

// enrolledAgentTLS enrolls node name, the cluster's first, through a real agent, waits for
// it to be Ready, stops the agent and returns the node's own mTLS credentials: a test then
// plays that agent.
func enrolledAgentTLS(t *testing.T, c *testcluster.Cluster, name string) *tls.Config {
	t.Helper()
	if _, err := c.StartAgent(c.AgentConfig(name, c.CreateToken(0))); err != nil {
		t.Fatal(err)
	}
	testcluster.WaitFor(t, 15*time.Second, func() error { return allReady(t, c, 1) })
	a := c.Agents[name]
	c.StopAgent(name)
	certPEM, _ := readFile(t, a.Dir, "node.crt")
	keyPEM, _ := readFile(t, a.Dir, "node.key")
	cfg, err := clientconfig.New(nil, []byte(c.AdminTLS().CA), certPEM, keyPEM).TLS()
	if err != nil {
		t.Fatal(err)
	}
	return cfg
}
