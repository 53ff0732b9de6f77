package cli

import (
	"context"
	"strings"
	"time"

	"github.com/spf13/cobra"
	"google.golang.org/grpc"

	apiv1 "github.com/deckhandhq/deckhand/proto/deckhand/api/v1"
)

// completionTimeout bounds asking the controller for names while a shell waits.
const completionTimeout = 3 * time.Second

// maxCompletions bounds the names offered (the newest tasks and workflows first).
const maxCompletions = 200

// argKind is what a command's first argument names, from its usage line ("join NODE",
// "workflow retry ID"), so completion is declared once, not in every command.
func argKind(cmd *cobra.Command) string {
	f := strings.Fields(cmd.Use)
	if len(f) < 2 {
		return ""
	}
	parent := ""
	if cmd.Parent() != nil {
		parent = cmd.Parent().Name()
	}
	switch {
	case f[1] == "NODE" || f[1] == "NAME" && parent == "node":
		return "node"
	case f[1] == "ID" && parent == "task":
		return "task"
	case f[1] == "ID" && parent == "token":
		return "token"
	case f[1] == "ID" && (parent == "workflow" || cmd.Name() == "logs" && parent == "deckctl"):
		return "workflow"
	}
	return ""
}

// addCompletion walks the command tree and completes each command's first argument with
// the node names, workflow, task or token IDs the controller knows.
func (o *options) addCompletion(root *cobra.Command) {
	var walk func(*cobra.Command)
	walk = func(c *cobra.Command) {
		if kind := argKind(c); kind != "" && c.ValidArgsFunction == nil {
			c.ValidArgsFunction = func(_ *cobra.Command, args []string, prefix string) ([]string, cobra.ShellCompDirective) {
				if len(args) > 0 {
					return nil, cobra.ShellCompDirectiveNoFileComp
				}
				return o.names(kind, prefix), cobra.ShellCompDirectiveNoFileComp
			}
		}
		for _, sub := range c.Commands() {
			walk(sub)
		}
	}
	walk(root)
}

// names lists what kind the controller knows, starting with prefix; nothing when it cannot
// be reached (a shell must not hang or print errors).
func (o *options) names(kind, prefix string) []string {
	var out []string
	_ = o.callFor(completionTimeout, func(ctx context.Context, cc grpc.ClientConnInterface) error {
		add := func(s string) {
			if strings.HasPrefix(s, prefix) && len(out) < maxCompletions {
				out = append(out, s)
			}
		}
		switch kind {
		case "node":
			resp, err := apiv1.NewNodeServiceClient(cc).ListNodes(ctx, &apiv1.ListNodesRequest{PageSize: maxCompletions})
			for _, n := range resp.GetNodes() {
				add(n.GetName())
			}
			return err
		case "workflow":
			resp, err := apiv1.NewWorkflowServiceClient(cc).ListWorkflows(ctx, &apiv1.ListWorkflowsRequest{PageSize: maxCompletions})
			for _, w := range resp.GetWorkflows() {
				add(w.GetId())
			}
			return err
		case "token":
			resp, err := apiv1.NewTokenServiceClient(cc).ListTokens(ctx, &apiv1.ListTokensRequest{})
			for _, tk := range resp.GetTokens() {
				add(tk.GetId())
			}
			return err
		case "task":
			resp, err := apiv1.NewTaskServiceClient(cc).ListTasks(ctx, &apiv1.ListTasksRequest{PageSize: maxCompletions})
			for _, t := range resp.GetTasks() {
				add(t.GetTask().GetId())
			}
			return err
		}
		return nil
	})
	return out
}
