package cli

import (
	"context"
	"fmt"
	"sort"
	"strings"
	"text/tabwriter"

	"github.com/spf13/cobra"
	"google.golang.org/grpc"

	apiv1 "github.com/deckhandhq/deckhand/proto/deckhand/api/v1"
)

func newNodesCmd(o *options) *cobra.Command {
	return &cobra.Command{
		Use:   "nodes",
		Short: "List enrolled nodes",
		Args:  cobra.NoArgs,
		RunE: func(cmd *cobra.Command, _ []string) error {
			return o.call(func(ctx context.Context, cc grpc.ClientConnInterface) error {
				nodes, err := listNodes(ctx, cc)
				if err != nil {
					return err
				}
				resp := &apiv1.ListNodesResponse{Nodes: nodes}
				if done, err := o.printStructured(resp); done {
					return err
				}
				tw := tabwriter.NewWriter(o.out, 0, 4, 2, ' ', 0)
				fmt.Fprintln(tw, "NAME\tSTATUS\tROLE\tAGE\tOS\tKERNEL\tRUNTIME\tKUBELET\tCONTROL PLANE\tHELD BY")
				for _, n := range resp.GetNodes() {
					f := n.GetFacts()
					os := strings.TrimSpace(f.GetOsId() + " " + f.GetOsVersion())
					rt := "-"
					if r := f.GetRuntime(); r.GetVersion() != "" {
						rt = r.GetName() + " " + r.GetVersion()
					}
					fmt.Fprintf(tw, "%s\t%s\t%s\t%s\t%s\t%s\t%s\t%s\t%s\t%s\n", n.GetName(), StateName(n.GetState()), dash(n.GetClusterRole()), age(n.GetEnrolled().AsTime()),
						dash(os), dash(f.GetKernel()), rt, dash(f.GetKubeVersions()["kubelet"]), dash(f.GetControlPlaneVersion()), dash(n.GetLockedBy()))
				}
				if err := tw.Flush(); err != nil {
					return err
				}
				for _, w := range certWarnings(nodeCertRows(resp.GetNodes(), "")) {
					fmt.Fprintln(o.out, w)
				}
				return nil
			})
		},
	}
}

// listNodes lists every enrolled node, page after page.
func listNodes(ctx context.Context, cc grpc.ClientConnInterface) ([]*apiv1.Node, error) {
	var nodes []*apiv1.Node
	err := allPages(func(token string) (string, error) {
		page, err := apiv1.NewNodeServiceClient(cc).ListNodes(ctx, &apiv1.ListNodesRequest{PageToken: token})
		nodes = append(nodes, page.GetNodes()...)
		return page.GetNextPageToken(), err
	})
	return nodes, err
}

// StateName is how deckctl shows a node state.
func StateName(s apiv1.NodeState) string {
	switch s {
	case apiv1.NodeState_NODE_STATE_READY:
		return "Ready"
	case apiv1.NodeState_NODE_STATE_NOT_READY:
		return "NotReady"
	case apiv1.NodeState_NODE_STATE_LOST:
		return "Lost"
	case apiv1.NodeState_NODE_STATE_ENROLLED:
		return "Enrolled"
	}
	return "Unknown"
}

func newNodeCmd(o *options) *cobra.Command {
	cmd := &cobra.Command{Use: "node", Short: "Describe or delete one node"}
	cmd.AddCommand(&cobra.Command{
		Use:   "describe NAME",
		Short: "Show a node's facts and state",
		Args:  cobra.ExactArgs(1),
		RunE: func(cmd *cobra.Command, args []string) error {
			return o.call(func(ctx context.Context, cc grpc.ClientConnInterface) error {
				resp, err := apiv1.NewNodeServiceClient(cc).GetNode(ctx, &apiv1.GetNodeRequest{Name: args[0]})
				if err != nil {
					return err
				}
				if done, err := o.printStructured(resp); done {
					return err
				}
				n := resp.GetNode()
				f := n.GetFacts()
				rt := f.GetRuntime()
				tw := tabwriter.NewWriter(o.out, 0, 4, 2, ' ', 0)
				row := func(k, v string) { fmt.Fprintf(tw, "%s:\t%s\n", k, dash(v)) }
				row("Name", n.GetName())
				row("Status", StateName(n.GetState()))
				row("Status since", n.GetStateChanged().AsTime().Local().Format("2006-01-02 15:04:05"))
				row("Enrolled", n.GetEnrolled().AsTime().Local().Format("2006-01-02 15:04:05"))
				row("Certificate serial", n.GetCertificateSerial())
				row("Agent version", n.GetAgentVersion())
				row("Agent features", strings.Join(n.GetAgentFeatures(), ", "))
				row("Hostname", f.GetHostname())
				osName := strings.TrimSpace(f.GetOsId() + " " + f.GetOsVersion())
				if f.GetOsName() != "" {
					osName = f.GetOsName()
				}
				if f.GetOsFamily() != "" {
					osName += " (" + map[string]string{"deb": "apt", "rpm": "dnf"}[f.GetOsFamily()] + ")"
				}
				row("OS", osName)
				if s := f.GetSelinux(); s != "" {
					row("SELinux", s)
				}
				row("Kernel", f.GetKernel())
				row("Arch", f.GetArch())
				row("CPUs", fmt.Sprint(f.GetCpus()))
				row("Memory", fmt.Sprintf("%.1f GiB", float64(f.GetMemoryBytes())/(1<<30)))
				row("Swap", fmt.Sprintf("%.1f GiB", float64(f.GetSwapBytes())/(1<<30)))
				row("Addresses", strings.Join(f.GetIpAddresses(), ", "))
				if ra := f.GetRouteAddress(); ra != "" {
					row("Route address", ra+" (towards its controller: the node's address in the cluster unless init/join --address gives another)")
				} else {
					row("Route address", "")
				}
				row("Cgroup", fmt.Sprintf("v%d, driver %s", f.GetCgroupVersion(), dash(f.GetCgroupDriver())))
				row("Firewalld", map[bool]string{true: "active", false: "inactive"}[f.GetFirewalldActive()])
				runtime := "socket " + rt.GetSocket() + " missing"
				if rt.GetSocketPresent() {
					runtime = fmt.Sprintf("%s %s (runtime ready: %v, network ready: %v)", dash(rt.GetName()), dash(rt.GetVersion()), rt.GetRuntimeReady(), rt.GetNetworkReady())
				}
				row("Runtime", runtime)
				var kv []string
				for b, v := range f.GetKubeVersions() {
					kv = append(kv, b+" "+v)
				}
				sort.Strings(kv)
				row("Kubernetes", strings.Join(kv, ", "))
				row("Control plane", f.GetControlPlaneVersion())
				row("Held by", n.GetLockedBy())
				return tw.Flush()
			})
		},
	})
	var force bool
	del := &cobra.Command{
		Use:   "delete NAME",
		Short: "Forget a node and revoke its certificate so the name can be enrolled again",
		Long: "Forget a node and revoke its certificate so the name can be enrolled again.\n\n" +
			"A node that is in the Kubernetes cluster is refused unless --force is given: take it out\n" +
			"with deckctl reset NAME first. The deleted node's agent keeps running and enrolls again\n" +
			"when restarted with a new token: deckhand-agent --token-file FILE.",
		Args: cobra.ExactArgs(1),
		RunE: func(cmd *cobra.Command, args []string) error {
			return o.call(func(ctx context.Context, cc grpc.ClientConnInterface) error {
				if _, err := apiv1.NewNodeServiceClient(cc).DeleteNode(ctx, &apiv1.DeleteNodeRequest{Name: args[0], Force: force}); err != nil {
					return err
				}
				return o.printAction(actionResult{Kind: "node", Name: args[0], Action: "deleted",
					Message: fmt.Sprintf("node %s deleted; to enroll it again, restart its agent with a new token: deckhand-agent --token-file FILE", args[0])})
			})
		},
	}
	del.Flags().BoolVar(&force, "force", false, "delete the node even while it is in the Kubernetes cluster")
	cmd.AddCommand(del)
	return cmd
}
