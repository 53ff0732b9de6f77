package client_test

import (
	"context"
	"path/filepath"
	"testing"
	"time"

	"github.com/deckhandhq/deckhand/client"
	"github.com/deckhandhq/deckhand/internal/clientconfig"
	"github.com/deckhandhq/deckhand/internal/testkit/testcluster"
	apiv1 "github.com/deckhandhq/deckhand/proto/deckhand/api/v1"
)

// A program connected to the leader keeps working when the leader is killed: its next
// read is answered by another controller once a new leader is elected, with no error.
func TestReadsSurviveALeaderKill(t *testing.T) {
	c := testcluster.New(t, 3)
	leader := c.WaitLeader()
	// The credential file names only the leader, as an old admin.conf did.
	cfg, err := clientconfig.Load(c.AdminConfig())
	if err != nil {
		t.Fatal(err)
	}
	cfg.Controllers = []string{c.Controllers[leader].Addr}
	file := filepath.Join(t.TempDir(), "config")
	if err := cfg.Write(file); err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	cl, err := client.New(ctx, client.Options{ConfigFile: file})
	if err != nil {
		t.Fatal(err)
	}
	defer cl.Close()
	if got := len(cl.Endpoints()); got != 3 {
		t.Fatalf("the client knows %d controllers after connecting, want 3: %v", got, cl.Endpoints())
	}
	if _, err := cl.Nodes().ListNodes(ctx, &apiv1.ListNodesRequest{}); err != nil {
		t.Fatalf("ListNodes: %v", err)
	}

	c.Kill(leader)
	start := time.Now()
	if _, err := cl.Nodes().ListNodes(ctx, &apiv1.ListNodesRequest{}); err != nil {
		t.Fatalf("ListNodes after the leader was killed: %v", err)
	}
	if cl.Current() == c.Controllers[leader].Addr {
		t.Fatalf("still talking to the killed leader %s", cl.Current())
	}
	t.Logf("first read after the kill answered in %v by %s", time.Since(start).Round(time.Millisecond), cl.Current())
}
