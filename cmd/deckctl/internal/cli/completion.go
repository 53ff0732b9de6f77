package cli

import (
	"context"
	"slices"
	"strings"
	"time"

	"github.com/spf13/cobra"
	"google.golang.org/grpc"

	apiv1 "github.com/deckhandhq/deckhand/proto/deckhand/api/v1"
)

// completionTimeout bounds asking the controller for names while a shell waits.
const completionTimeout = 3 * time.Second

// maxCompletions bounds the names offered (the newest tasks and workflows first, of all
// that match what was typed).
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

// names lists what kind the controller knows, starting with prefix, the newest tasks and
// workflows first, at most maxCompletions; nothing when it cannot be reached (a shell must
// not hang or print errors). Completing never rewrites the credential file.
func (o *options) names(kind, prefix string) []string {
	var all []string
	o.completing = true
	_ = o.callFor(completionTimeout, func(ctx context.Context, cc grpc.ClientConnInterface) error {
		switch kind {
		case "node":
			return allPages(func(token string) (string, error) {
				resp, err := apiv1.NewNodeServiceClient(cc).ListNodes(ctx, &apiv1.ListNodesRequest{PageToken: token})
				for _, n := range resp.GetNodes() {
					all = append(all, n.GetName())
				}
				return resp.GetNextPageToken(), err
			})
		case "workflow":
			var wfs []*apiv1.Workflow
			err := allPages(func(token string) (string, error) {
				resp, err := apiv1.NewWorkflowServiceClient(cc).ListWorkflows(ctx, &apiv1.ListWorkflowsRequest{PageToken: token})
				wfs = append(wfs, resp.GetWorkflows()...)
				return resp.GetNextPageToken(), err
			})
			slices.SortStableFunc(wfs, func(a, b *apiv1.Workflow) int { return b.GetCreated().AsTime().Compare(a.GetCreated().AsTime()) })
			for _, w := range wfs {
				all = append(all, w.GetId())
			}
			return err
		case "token":
			resp, err := apiv1.NewTokenServiceClient(cc).ListTokens(ctx, &apiv1.ListTokensRequest{})
			for _, tk := range resp.GetTokens() {
				all = append(all, tk.GetId())
			}
			return err
		case "task":
			var ts []*apiv1.TaskRecord
			err := allPages(func(token string) (string, error) {
				resp, err := apiv1.NewTaskServiceClient(cc).ListTasks(ctx, &apiv1.ListTasksRequest{PageToken: token})
				ts = append(ts, resp.GetTasks()...)
				return resp.GetNextPageToken(), err
			})
			newestFirst(ts)
			for _, t := range ts {
				all = append(all, t.GetTask().GetId())
			}
			return err
		}
		return nil
	})
	var out []string
	for _, s := range all {
		if strings.HasPrefix(s, prefix) && len(out) < maxCompletions {
			out = append(out, s)
		}
	}
	return out
}
