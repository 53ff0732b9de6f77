package cli

import (
	"context"
	"errors"
	"fmt"
	"os"
	"strings"
	"text/tabwriter"
	"time"

	"github.com/spf13/cobra"
	"google.golang.org/grpc"
	"google.golang.org/protobuf/types/known/durationpb"

	"github.com/deckhandhq/deckhand/internal/clientconfig"
	"github.com/deckhandhq/deckhand/internal/pki"
	apiv1 "github.com/deckhandhq/deckhand/proto/deckhand/api/v1"
)

// defaultCredentialTTL is how long a credential is valid unless --ttl says otherwise.
const defaultCredentialTTL = 30 * 24 * time.Hour

func newCredentialsCmd(o *options) *cobra.Command {
	cmd := &cobra.Command{
		Use:   "credentials",
		Short: "Issue, list and revoke user credentials (deckctl config files), so nobody shares admin.conf",
	}
	var name, role, file string
	var ttl time.Duration
	create := &cobra.Command{
		Use:   "create --name NAME --role viewer|operator|admin [--ttl 720h] [--file FILE]",
		Short: "Issue a credential file for a person or tool (the key is made here and never sent)",
		Args:  cobra.NoArgs,
		RunE: func(cmd *cobra.Command, _ []string) error {
			if err := clientconfig.CheckCredential(name, role, ttl); err != nil {
				var fe *clientconfig.FieldError
				if errors.As(err, &fe) {
					return fmt.Errorf("--%s %s", fe.Field, fe.Msg)
				}
				return err
			}
			if file == "" {
				file = name + ".conf"
			}
			if _, err := os.Stat(file); err == nil {
				return fmt.Errorf("--file %s already exists: choose another file or remove it first", file)
			}
			keyPEM, csrPEM, err := pki.NewKeyAndCSR(name)
			if err != nil {
				return err
			}
			return o.call(func(ctx context.Context, cc grpc.ClientConnInterface) error {
				resp, err := apiv1.NewCredentialServiceClient(cc).CreateCredential(ctx, &apiv1.CreateCredentialRequest{
					Name: name, Role: role, Ttl: durationpb.New(ttl), CsrPem: csrPEM,
				})
				if err != nil {
					return err
				}
				if err := clientconfig.New(resp.GetEndpoints(), resp.GetCaPem(), resp.GetCertificatePem(), keyPEM).Write(file); err != nil {
					return fmt.Errorf("--file %s: %w", file, err)
				}
				if done, err := o.printStructured(resp.GetCredential()); done {
					return err
				}
				c := resp.GetCredential()
				fmt.Fprintf(o.out, "wrote %s (0600): %s as %s, serial %s, expires %s\nhand it over privately; use it with deckctl --config %s; revoke it with deckctl credentials revoke %s\n",
					file, c.GetName(), c.GetRole(), c.GetSerial(), c.GetExpires().AsTime().Local().Format(time.RFC3339), file, c.GetName())
				return nil
			})
		},
	}
	create.Flags().StringVar(&name, "name", "", "who or what the credential is for (for example alice or ci-deploy); unique")
	create.Flags().StringVar(&role, "role", "", "viewer (read only), operator (tasks and workflows) or admin (everything)")
	create.Flags().DurationVar(&ttl, "ttl", defaultCredentialTTL, "how long it is valid (1m to 8760h)")
	create.Flags().StringVar(&file, "file", "", "where to write the credential file (default NAME.conf; written 0600, never overwritten)")
	cmd.AddCommand(create)
	var pemDir string
	pemCmd := &cobra.Command{
		Use:   "pem --dir DIR",
		Short: "Write the credential file's CA, certificate and key as PEM files, for curl and other HTTP clients of the REST API",
		Long: `Writes ca.crt, client.crt and client.key (0600) from the credential file (--config) into
DIR (created 0700), for the REST API on a controller's port:

  curl --cacert DIR/ca.crt --cert DIR/client.crt --key DIR/client.key https://CONTROLLER:7400/v1/nodes

Files that exist are not overwritten.`,
		Args: cobra.NoArgs,
		RunE: func(cmd *cobra.Command, _ []string) error {
			if pemDir == "" {
				return errors.New("--dir is required: the directory to write ca.crt, client.crt and client.key into")
			}
			cfg, err := clientconfig.Load(o.config)
			if err != nil {
				return err
			}
			files, err := cfg.WritePEM(pemDir)
			if err != nil {
				return fmt.Errorf("--dir %s: %w", pemDir, err)
			}
			fmt.Fprintf(o.out, "wrote %s\n", strings.Join(files, ", "))
			return nil
		},
	}
	pemCmd.Flags().StringVar(&pemDir, "dir", "", "directory to write ca.crt, client.crt and client.key into")
	cmd.AddCommand(pemCmd)
	cmd.AddCommand(&cobra.Command{
		Use:   "list",
		Short: "List issued credentials, revoked ones included",
		Args:  cobra.NoArgs,
		RunE: func(cmd *cobra.Command, _ []string) error {
			return o.call(func(ctx context.Context, cc grpc.ClientConnInterface) error {
				resp, err := apiv1.NewCredentialServiceClient(cc).ListCredentials(ctx, &apiv1.ListCredentialsRequest{})
				if err != nil {
					return err
				}
				if done, err := o.printStructured(resp); done {
					return err
				}
				tw := tabwriter.NewWriter(o.out, 0, 4, 2, ' ', 0)
				fmt.Fprintln(tw, "NAME\tROLE\tSERIAL\tEXPIRES\tSTATUS\tCREATED BY")
				for _, c := range resp.GetCredentials() {
					st := "valid"
					switch {
					case c.GetRevoked():
						st = "revoked " + c.GetRevokedAt().AsTime().Local().Format(time.RFC3339)
					case time.Now().After(c.GetExpires().AsTime()):
						st = "expired"
					}
					fmt.Fprintf(tw, "%s\t%s\t%s\t%s\t%s\t%s\n", c.GetName(), c.GetRole(), c.GetSerial(), c.GetExpires().AsTime().Local().Format(time.RFC3339), st, dash(c.GetCreatedBy()))
				}
				return tw.Flush()
			})
		},
	})
	cmd.AddCommand(&cobra.Command{
		Use:   "revoke NAME|SERIAL",
		Short: "Revoke a credential: every later call with it is refused",
		Args:  cobra.ExactArgs(1),
		RunE: func(cmd *cobra.Command, args []string) error {
			return o.call(func(ctx context.Context, cc grpc.ClientConnInterface) error {
				resp, err := apiv1.NewCredentialServiceClient(cc).RevokeCredential(ctx, &apiv1.RevokeCredentialRequest{NameOrSerial: args[0]})
				if err != nil {
					return err
				}
				if done, err := o.printStructured(resp); done {
					return err
				}
				fmt.Fprintf(o.out, "credential %s (serial %s) revoked\n", resp.GetCredential().GetName(), resp.GetCredential().GetSerial())
				return nil
			})
		},
	})
	return cmd
}
