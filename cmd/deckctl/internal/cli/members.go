package cli

import (
	"context"
	"fmt"
	"strings"
	"text/tabwriter"

	"github.com/spf13/cobra"
	"google.golang.org/grpc"

	apiv1 "github.com/deckhandhq/deckhand/proto/deckhand/api/v1"
)

func newMembersCmd(o *options) *cobra.Command {
	cmd := &cobra.Command{
		Use:   "members",
		Short: "List controller replicas, their addresses, raft state and the leader",
		Args:  cobra.NoArgs,
		RunE: func(cmd *cobra.Command, _ []string) error {
			return o.call(func(ctx context.Context, cc grpc.ClientConnInterface) error {
				resp, err := apiv1.NewMemberServiceClient(cc).ListMembers(ctx, &apiv1.ListMembersRequest{})
				if err != nil {
					return err
				}
				if done, err := o.printStructured(resp); done {
					return err
				}
				printMembers(o, resp.GetMembers())
				if resp.GetLeaderId() == "" {
					fmt.Fprintln(o.out, "no leader: fewer than a majority of replicas are reachable")
				}
				return nil
			})
		},
	}
	var force bool
	remove := &cobra.Command{
		Use:   "remove NAME",
		Short: "Remove a replica from the controller cluster (for example a dead machine)",
		Long: "Remove a replica from the controller cluster (for example a dead machine).\n\n" +
			"Removing the leader, a healthy replica, or one whose removal leaves fewer healthy replicas\n" +
			"than a majority is refused unless --force is given. A removed replica stops at once; to\n" +
			"bring it back, empty its data dir and start it with --join and a controller token.",
		Args: cobra.ExactArgs(1),
		RunE: func(cmd *cobra.Command, args []string) error {
			return o.call(func(ctx context.Context, cc grpc.ClientConnInterface) error {
				resp, err := apiv1.NewMemberServiceClient(cc).RemoveMember(ctx, &apiv1.RemoveMemberRequest{Id: args[0], Force: force})
				if err != nil {
					return err
				}
				if done, err := o.printStructured(resp); done {
					return err
				}
				fmt.Fprintf(o.out, "removed %s\n", args[0])
				printMembers(o, resp.GetMembers())
				return nil
			})
		},
	}
	remove.Flags().BoolVar(&force, "force", false, "remove even the leader, a healthy replica, or one the quorum needs")
	cmd.AddCommand(remove)
	return cmd
}

func printMembers(o *options, members []*apiv1.ControllerMember) {
	tw := tabwriter.NewWriter(o.out, 0, 4, 2, ' ', 0)
	fmt.Fprintln(tw, "NAME\tADDRESS\tSTATE\tLEADER\tAPPLIED\tVERSION")
	for _, m := range members {
		leader := ""
		if m.GetLeader() {
			leader = "*"
		}
		state := strings.ToLower(strings.TrimPrefix(m.GetState().String(), "MEMBER_STATE_"))
		applied := fmt.Sprint(m.GetAppliedIndex())
		if m.GetState() == apiv1.MemberState_MEMBER_STATE_UNREACHABLE {
			applied = "-"
		}
		fmt.Fprintf(tw, "%s\t%s\t%s\t%s\t%s\t%s\n", m.GetId(), m.GetAddress(), state, leader, applied, dash(m.GetVersion()))
	}
	tw.Flush()
}
