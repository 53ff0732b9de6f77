package cli

import (
	"context"
	"fmt"
	"text/tabwriter"
	"time"

	"github.com/spf13/cobra"
	"google.golang.org/grpc"
	"google.golang.org/protobuf/types/known/durationpb"

	apiv1 "github.com/deckhandhq/deckhand/proto/deckhand/api/v1"
)

func newTokenCmd(o *options) *cobra.Command {
	cmd := &cobra.Command{Use: "token", Short: "Manage bootstrap tokens for agents and controller replicas"}
	var ttl time.Duration
	var usages uint32
	var description, purpose string
	create := &cobra.Command{
		Use:   "create",
		Short: "Create a token and print the command that uses it",
		Args:  cobra.NoArgs,
		RunE: func(cmd *cobra.Command, _ []string) error {
			p := apiv1.TokenPurpose_TOKEN_PURPOSE_AGENT
			switch purpose {
			case "agent":
			case "controller":
				p = apiv1.TokenPurpose_TOKEN_PURPOSE_CONTROLLER
				if !cmd.Flags().Changed("usages") {
					usages = 1 // it hands out the CA: one replica per token unless asked
				}
			default:
				return fmt.Errorf("--purpose %q: use agent or controller", purpose)
			}
			return o.call(func(ctx context.Context, cc grpc.ClientConnInterface) error {
				resp, err := apiv1.NewTokenServiceClient(cc).CreateToken(ctx, &apiv1.CreateTokenRequest{Ttl: durationpb.New(ttl), Usages: usages, Description: description, Purpose: p})
				if err != nil {
					return err
				}
				if done, err := o.printStructured(resp); done {
					return err
				}
				fmt.Fprintln(o.out, resp.GetSecret())
				fmt.Fprintf(o.out, "\nexpires %s; run on the host:\n\n  %s\n", resp.GetToken().GetExpires().AsTime().Local().Format(time.RFC3339), resp.GetCommand())
				return nil
			})
		},
	}
	create.Flags().DurationVar(&ttl, "ttl", time.Hour, "how long the token is valid (1m to 168h)")
	create.Flags().Uint32Var(&usages, "usages", 0, "how many times it may be used (0: unlimited until it expires)")
	create.Flags().StringVar(&description, "description", "", "what the token is for")
	create.Flags().StringVar(&purpose, "purpose", "agent", "agent (enroll a host) or controller (join a replica)")
	cmd.AddCommand(create)
	cmd.AddCommand(&cobra.Command{
		Use:   "list",
		Short: "List tokens (never their secrets)",
		Args:  cobra.NoArgs,
		RunE: func(cmd *cobra.Command, _ []string) error {
			return o.call(func(ctx context.Context, cc grpc.ClientConnInterface) error {
				resp, err := apiv1.NewTokenServiceClient(cc).ListTokens(ctx, &apiv1.ListTokensRequest{})
				if err != nil {
					return err
				}
				if done, err := o.printStructured(resp); done {
					return err
				}
				tw := tabwriter.NewWriter(o.out, 0, 4, 2, ' ', 0)
				fmt.Fprintln(tw, "ID\tPURPOSE\tEXPIRES\tUSES\tDESCRIPTION")
				for _, t := range resp.GetTokens() {
					exp := t.GetExpires().AsTime()
					left := "expired"
					if d := time.Until(exp); d > 0 {
						left = "in " + d.Round(time.Second).String()
					}
					uses := fmt.Sprintf("%d/unlimited", t.GetUsagesUsed())
					if t.GetUsagesAllowed() > 0 {
						uses = fmt.Sprintf("%d/%d", t.GetUsagesUsed(), t.GetUsagesAllowed())
					}
					p := "agent"
					if t.GetPurpose() == apiv1.TokenPurpose_TOKEN_PURPOSE_CONTROLLER {
						p = "controller"
					}
					fmt.Fprintf(tw, "%s\t%s\t%s\t%s\t%s\n", t.GetId(), p, left, uses, dash(t.GetDescription()))
				}
				return tw.Flush()
			})
		},
	})
	cmd.AddCommand(&cobra.Command{
		Use:   "revoke ID",
		Short: "Revoke a token so it can no longer be used",
		Args:  cobra.ExactArgs(1),
		RunE: func(cmd *cobra.Command, args []string) error {
			return o.call(func(ctx context.Context, cc grpc.ClientConnInterface) error {
				if _, err := apiv1.NewTokenServiceClient(cc).RevokeToken(ctx, &apiv1.RevokeTokenRequest{Id: args[0]}); err != nil {
					return err
				}
				return o.printAction(actionResult{Kind: "token", Name: args[0], Action: "revoked", Message: fmt.Sprintf("token %s revoked", args[0])})
			})
		},
	})
	return cmd
}
