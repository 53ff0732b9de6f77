package client_test

import (
	"context"
	"fmt"
	"log"
	"time"

	"github.com/deckhandhq/deckhand/client"
	apiv1 "github.com/deckhandhq/deckhand/proto/deckhand/api/v1"
)

// Join node-4 to the cluster and follow it step by step (the program in the README).
func Example_join() {
	ctx := context.Background()
	c, err := client.New(ctx, client.Options{ConfigFile: "/var/lib/deckhand/admin.conf"})
	if err != nil {
		log.Fatal(err)
	}
	defer c.Close()
	join := &apiv1.WorkflowSpec{Kind: &apiv1.WorkflowSpec_Join{Join: &apiv1.JoinWorkflow{Node: "node-4"}}}
	wf, err := c.CreateWorkflow(ctx, join)
	if err != nil {
		log.Fatal(err)
	}
	wf, err = c.WatchWorkflow(ctx, wf.GetId(), func(_ *apiv1.Workflow, s *apiv1.Step) {
		fmt.Println(s.GetName(), s.GetState())
	})
	if err != nil {
		log.Fatal(err)
	}
	fmt.Println("join:", wf.GetState(), wf.GetError().GetMessage())
}

// List the nodes with the credential file deckctl uses ($DECKHAND_CONFIG or
// ~/.deckhand/config). The call goes to whichever controller answers.
func ExampleClient_Nodes() {
	ctx, cancel := context.WithTimeout(context.Background(), 15*time.Second)
	defer cancel()
	c, err := client.New(ctx, client.Options{})
	if err != nil {
		log.Fatal(err)
	}
	defer c.Close()
	resp, err := c.Nodes().ListNodes(ctx, &apiv1.ListNodesRequest{})
	if err != nil {
		log.Fatal(err)
	}
	for _, n := range resp.GetNodes() {
		fmt.Println(n.GetName(), n.GetState())
	}
}

// Print the log of a workflow's tasks on one node.
func ExampleClient_WorkflowLogs() {
	ctx := context.Background()
	c, err := client.New(ctx, client.Options{ConfigFile: "admin.conf", Controllers: []string{"10.0.0.11:7400", "10.0.0.12:7400"}})
	if err != nil {
		log.Fatal(err)
	}
	defer c.Close()
	events, err := c.WorkflowLogs(ctx, "wf-3kq7m2xv9a", "node-4")
	if err != nil {
		log.Fatal(err)
	}
	for _, ev := range events {
		if l := ev.GetLog(); l != nil {
			fmt.Println(ev.GetTaskId(), l.GetText())
		}
	}
}

// A program that keeps the credential file current, as deckctl does: the controllers'
// addresses are asked when connecting and written back when they changed.
func ExampleClient_SaveEndpoints() {
	ctx := context.Background()
	c, err := client.New(ctx, client.Options{ConfigFile: "admin.conf"})
	if err != nil {
		log.Fatal(err)
	}
	defer c.Close()
	if wrote, err := c.SaveEndpoints(); err != nil {
		log.Print(err)
	} else if wrote {
		fmt.Println("admin.conf now lists", c.Endpoints())
	}
}
