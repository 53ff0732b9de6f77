package cli

import (
	"context"
	"crypto/tls"
	"crypto/x509"
	"fmt"
	"net"
	"slices"
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
	// Kind is "ca", "replica", "you (ROLE)", or "node" for a node's certificate.
	Kind    string    `json:"kind"`
	Node    string    `json:"node,omitempty"`
	Name    string    `json:"name"`
	Serial  string    `json:"serial,omitempty"`
	Expires time.Time `json:"expires,omitzero"`
	Issuer  string    `json:"issuer,omitempty"`
	// RenewedBy: "kubeadm" (deckctl certs renew), "kubelet" (it rotates its own) or "" for a
	// node's certificate nothing renews (a CA).
	RenewedBy string `json:"renewedBy,omitempty"`
	Path      string `json:"path,omitempty"`
	Err       string `json:"error,omitempty"`
}

// CertWarning is how close to its expiry a node's certificate is flagged (deckctl nodes,
// deckctl certs): kubeadm's own warning threshold.
const CertWarning = 30 * 24 * time.Hour

// remaining says how long until t: days beyond a week, hours beyond two days, else exactly.
func remaining(t time.Time) string {
	left := time.Until(t)
	switch {
	case left <= 0:
		return "EXPIRED"
	case left >= 7*24*time.Hour:
		return fmt.Sprintf("%dd", int(left.Hours()/24))
	case left >= 48*time.Hour:
		return (left.Round(time.Hour) / time.Hour).String() + "h"
	}
	return left.Round(time.Second).String()
}

// nodeCertRows are the certificates in the nodes' facts (node: only that node's).
func nodeCertRows(nodes []*apiv1.Node, node string) []certRow {
	var rows []certRow
	for _, n := range nodes {
		if node != "" && n.GetName() != node {
			continue
		}
		for _, c := range n.GetFacts().GetCertificates() {
			rows = append(rows, certRow{Kind: "node", Node: n.GetName(), Name: c.GetName(), Serial: c.GetSerial(), Expires: c.GetNotAfter().AsTime(),
				Issuer: c.GetIssuer(), RenewedBy: c.GetRenewedBy(), Path: c.GetPath()})
		}
	}
	return rows
}

// certWarnings are the lines deckctl nodes and deckctl certs print for the nodes'
// certificates that expire within CertWarning.
func certWarnings(rows []certRow) []string {
	var out []string
	for _, r := range rows {
		if r.Kind != "node" || time.Until(r.Expires) >= CertWarning {
			continue
		}
		how := "deckctl certs renew --node " + r.Node
		switch r.RenewedBy {
		case "kubelet":
			how = "the kubelet renews it itself when its rotation is on; check it is (rotateCertificates in /var/lib/kubelet/config.yaml)"
		case "":
			how = "nothing renews it: replace it by hand (kubeadm's docs, \"Certificate Management with kubeadm\")"
		}
		out = append(out, fmt.Sprintf("warning: %s's certificate %s expires in %s (%s): %s", r.Node, r.Name, remaining(r.Expires), r.Expires.Local().Format(time.RFC3339), how))
	}
	return out
}

// rotationWarnings are the lines for the nodes whose kubelet does not renew its own client
// certificate (rotateCertificates off in /var/lib/kubelet/config.yaml): it stops a year on.
func rotationWarnings(nodes []*apiv1.Node, node string) []string {
	var out []string
	for _, n := range nodes {
		if r := n.GetFacts().KubeletRotatesCertificates; (node == "" || n.GetName() == node) && r != nil && !*r {
			out = append(out, fmt.Sprintf("warning: %s's kubelet does not rotate its client certificate (rotateCertificates is off in /var/lib/kubelet/config.yaml): set rotateCertificates: true, kubeadm's default, and restart the kubelet", n.GetName()))
		}
	}
	return out
}

func newCertsCmd(o *options) *cobra.Command {
	var node string
	cmd := &cobra.Command{
		Use:   "certs",
		Short: "Show when the nodes' Kubernetes certificates, the controller CA, each replica's certificate and your own credential expire",
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
				if node != "" {
					rows = nil // only that node's
				}
				nodes, err := listNodes(ctx, cc)
				if err != nil {
					return err
				}
				if node != "" && !slices.ContainsFunc(nodes, func(n *apiv1.Node) bool { return n.GetName() == node }) {
					return fmt.Errorf("--node %s: no such node (deckctl nodes lists them)", node)
				}
				rows = append(rows, nodeCertRows(nodes, node)...)
				if done, err := o.printValue(struct {
					Certificates []certRow `json:"certificates"`
				}{rows}); done {
					return err
				}
				tw := tabwriter.NewWriter(o.out, 0, 4, 2, ' ', 0)
				fmt.Fprintln(tw, "CERTIFICATE\tNAME\tSERIAL\tEXPIRES\tREMAINING\tRENEWED BY")
				for _, r := range rows {
					if r.Err != "" {
						fmt.Fprintf(tw, "%s\t%s\t-\t-\tunreachable: %s\t-\n", r.Kind, r.Name, r.Err)
						continue
					}
					kind, by := r.Kind, "-"
					if r.Kind == "node" {
						kind, by = r.Node, dash(r.RenewedBy)
					}
					fmt.Fprintf(tw, "%s\t%s\t%s\t%s\t%s\t%s\n", kind, r.Name, dash(r.Serial), r.Expires.Local().Format(time.RFC3339), remaining(r.Expires), by)
				}
				if err := tw.Flush(); err != nil {
					return err
				}
				for _, w := range append(certWarnings(rows), rotationWarnings(nodes, node)...) {
					fmt.Fprintln(o.out, w)
				}
				return nil
			})
		},
	}
	cmd.Flags().StringVar(&node, "node", "", "only this node's certificates")
	cmd.AddCommand(newCertsRenewCmd(o))
	return cmd
}

func newCertsRenewCmd(o *options) *cobra.Command {
	var nodes []string
	var f wfFlags
	cmd := &cobra.Command{
		Use:   "renew [--node CP]...",
		Short: "Renew the control planes' kubeadm certificates, one control plane at a time",
		Long: "Renews the kubeadm certificates of every control plane (or those given with --node), one after\n" +
			"another so the others serve the API meanwhile: kubeadm certs renew all (the PKI's and the\n" +
			"kubeconfigs' certificates, not the CAs, not the kubelet's, which it rotates itself), then\n" +
			"kube-apiserver, kube-controller-manager and kube-scheduler restarted one at a time so they load\n" +
			"the new certificates, each waited for (etcd reads its own again for every new connection). A\n" +
			"health check of the control planes and etcd comes first. With a single control plane the API\n" +
			"is down while its API server restarts.",
		Args: cobra.NoArgs,
		RunE: func(cmd *cobra.Command, _ []string) error {
			spec := &apiv1.WorkflowSpec{Kind: &apiv1.WorkflowSpec_CertsRenew{CertsRenew: &apiv1.CertsRenewWorkflow{Nodes: nodes}}, DryRun: f.dryRun}
			return o.runWorkflow(spec, f)
		},
	}
	cmd.Flags().StringSliceVar(&nodes, "node", nil, "renew only this control plane (repeatable; default: every control plane)")
	f.add(cmd)
	return cmd
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
