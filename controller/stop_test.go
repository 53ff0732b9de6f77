package controller_test

import (
	"context"
	"testing"
	"time"

	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/status"

	"github.com/deckhandhq/deckhand/internal/testkit/testcluster"
	apiv1 "github.com/deckhandhq/deckhand/proto/deckhand/api/v1"
)

// A controller stops promptly with a watch open on it (a watch never ends by itself), and
// the watcher is told to go to another controller.
func TestStopEndsOpenWatchesAtOnce(t *testing.T) {
	c := testcluster.New(t, 3)
	cfg := c.AgentConfig("node-a", c.CreateToken(1))
	if _, err := c.StartAgent(cfg); err != nil {
		t.Fatal(err)
	}
	testcluster.WaitFor(t, 15*time.Second, func() error { return allReady(t, c, 1) })
	c.StopAgent("node-a") // the task stays pending: its watch does not end by itself
	ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
	defer cancel()
	if _, err := apiv1.NewTaskServiceClient(c.Client()).CreateTask(ctx, &apiv1.CreateTaskRequest{Node: "node-a", Id: "waits", Spec: diagnosticsSpec()}); err != nil {
		t.Fatal(err)
	}
	victim := (c.WaitLeader() + 1) % len(c.Controllers)
	stream, err := apiv1.NewTaskServiceClient(c.ClientTo(victim)).WatchTask(ctx, &apiv1.WatchTaskRequest{Id: "waits"})
	if err != nil {
		t.Fatal(err)
	}
	if _, err := stream.Recv(); err != nil {
		t.Fatalf("watch: %v", err)
	}
	start := time.Now()
	c.Stop(victim)
	if took := time.Since(start); took > 2*time.Second {
		t.Errorf("stopping a controller with a watch open took %s", took.Round(time.Millisecond))
	}
	for {
		_, err := stream.Recv()
		if err == nil {
			continue
		}
		if status.Code(err) != codes.Unavailable {
			t.Fatalf("the watch ended with %v, want Unavailable (go to another controller)", err)
		}
		return
	}
}
