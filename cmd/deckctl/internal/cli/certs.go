package cli

import (
	"context"
	"crypto/tls"
	"crypto/x509"
	"fmt"
	"net"
	"text/tabwriter"
	"time"

	"github.com/spf13/cobra"
	"google.golang.org/grpc"

	"github.com/deckhandhq/deckhand/internal/clientconfig"
	"github.com/deckhandhq/deckhand/internal/pki"
	apiv1 "github.com/deckhandhq/deckhand/proto/deckhand/api/v1"
)

// certRow is one certificate deckctl certs shows.
type certRow struct {
	Kind    string    `json:"kind"`
	Name    string    `json:"name"`
	Serial  string    `json:"serial,omitempty"`
	Expires time.Time `json:"expires,omitzero"`
	Err     string    `json:"error,omitempty"`
}

func newCertsCmd(o *options) *cobra.Command {
	return &cobra.Command{
		Use:   "certs",
		Short: "Show when the controller CA, each replica's certificate and your own credential expire",
		Args:  cobra.NoArgs,
		RunE: func(cmd *cobra.Command, _ []string) error {
			cfg, err := clientconfig.Load(o.config)
			if err != nil {
				return err
			}
			tlsCfg, err := cfg.TLS()
			if err != nil {
				return err
			}
			var rows []certRow
			if ca, err := pki.ParseCert([]byte(cfg.CA)); err == nil {
				rows = append(rows, certRow{Kind: "ca", Name: ca.Subject.CommonName, Serial: pki.SerialHex(ca), Expires: ca.NotAfter})
			}
			return o.call(func(ctx context.Context, cc grpc.ClientConnInterface) error {
				resp, err := apiv1.NewMemberServiceClient(cc).ListMembers(ctx, &apiv1.ListMembersRequest{})
				if err != nil {
					return err
				}
				for _, m := range resp.GetMembers() {
					row := certRow{Kind: "replica", Name: m.GetId()}
					if cert, err := servingCert(ctx, m.GetAddress(), tlsCfg); err != nil {
						row.Err = err.Error()
					} else {
						row.Serial, row.Expires = pki.SerialHex(cert), cert.NotAfter
					}
					rows = append(rows, row)
				}
				if own, err := pki.ParseCert([]byte(cfg.Certificate)); err == nil {
					who := "you"
					if id, err := pki.IdentityOf(own); err == nil {
						who = "you (" + id.Role + ")"
					}
					rows = append(rows, certRow{Kind: who, Name: own.Subject.CommonName, Serial: pki.SerialHex(own), Expires: own.NotAfter})
				}
				if done, err := o.printValue(struct {
					Certificates []certRow `json:"certificates"`
				}{rows}); done {
					return err
				}
				tw := tabwriter.NewWriter(o.out, 0, 4, 2, ' ', 0)
				fmt.Fprintln(tw, "CERTIFICATE\tNAME\tSERIAL\tEXPIRES\tREMAINING")
				for _, r := range rows {
					if r.Err != "" {
						fmt.Fprintf(tw, "%s\t%s\t-\t-\tunreachable: %s\n", r.Kind, r.Name, r.Err)
						continue
					}
					left := time.Until(r.Expires)
					remaining := (left.Round(time.Hour) / time.Hour).String() + "h"
					if left < 48*time.Hour {
						remaining = left.Round(time.Second).String()
					}
					if left <= 0 {
						remaining = "EXPIRED"
					}
					fmt.Fprintf(tw, "%s\t%s\t%s\t%s\t%s\n", r.Kind, r.Name, r.Serial, r.Expires.Local().Format(time.RFC3339), remaining)
				}
				return tw.Flush()
			})
		},
	}
}

// servingCert reads the certificate a replica presents, verified against the cluster CA.
func servingCert(ctx context.Context, addr string, base *tls.Config) (*x509.Certificate, error) {
	cfg := base.Clone()
	cfg.NextProtos = []string{"h2"}
	d := tls.Dialer{NetDialer: &net.Dialer{Timeout: 2 * time.Second}, Config: cfg}
	dctx, cancel := context.WithTimeout(ctx, 3*time.Second)
	defer cancel()
	conn, err := d.DialContext(dctx, "tcp", addr)
	if err != nil {
		return nil, err
	}
	defer conn.Close()
	return conn.(*tls.Conn).ConnectionState().PeerCertificates[0], nil
}
