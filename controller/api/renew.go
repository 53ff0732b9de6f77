package api

import (
	"context"
	"errors"
	"fmt"
	"time"

	"google.golang.org/grpc/codes"

	"github.com/deckhandhq/deckhand/controller/nodes"
	"github.com/deckhandhq/deckhand/controller/sessions"
	"github.com/deckhandhq/deckhand/internal/pki"
	agentv1 "github.com/deckhandhq/deckhand/proto/deckhand/agent/v1"
	apiv1 "github.com/deckhandhq/deckhand/proto/deckhand/api/v1"
)

// RenewCertificate implements agentv1.AgentServiceServer: the calling node, authenticated
// by its current certificate, gets a certificate for a new key with the same identity. The
// node record then names the new serial, so the old certificate stops working.
func (s *AgentServer) RenewCertificate(ctx context.Context, req *agentv1.RenewCertificateRequest) (*agentv1.RenewCertificateResponse, error) {
	id, ok := IdentityFrom(ctx)
	if !ok || id.Role != pki.RoleAgent {
		return nil, Errorf(codes.PermissionDenied, apiv1.ErrorReason_ERROR_REASON_PERMISSION_DENIED, nil, "only agents renew node certificates")
	}
	if err := pki.CheckCSR(req.GetCsrPem()); err != nil {
		return nil, invalid(&fieldError{"csr_pem", err.Error()})
	}
	// Each renewal signs a certificate and writes the node record: a stolen certificate
	// must not turn that into unbounded raft writes.
	if wait, ok := s.Limits.Renewal(id.Name); !ok {
		return nil, Errorf(codes.ResourceExhausted, apiv1.ErrorReason_ERROR_REASON_UNSPECIFIED, map[string]string{"node": id.Name},
			fmt.Sprintf("node %s renewed its certificate more than %d times in a row (at most %d per minute): retry in %v", id.Name, sessions.RenewalBurst, sessions.RenewalsPerMinute, wait.Round(time.Second)))
	}
	if err := s.checkIdentity(ctx, id); err != nil {
		return nil, err
	}
	if err := s.checkRenewalDue(ctx, id); err != nil {
		return nil, err
	}
	ca := s.CA()
	certPEM, serial, err := ca.SignCSR(req.GetCsrPem(), id.Name, pki.RoleAgent, s.certValidity())
	if err != nil {
		return nil, toStatus(fmt.Errorf("sign the node certificate: %w", err))
	}
	if err := s.Nodes.ReplaceCertificate(ctx, id.Name, id.Serial, serial); err != nil {
		if errors.Is(err, nodes.ErrNotFound) || errors.Is(err, nodes.ErrNameTaken) {
			return nil, Errorf(codes.PermissionDenied, apiv1.ErrorReason_ERROR_REASON_PERMISSION_DENIED, map[string]string{"node": id.Name}, err.Error())
		}
		return nil, toStatus(err)
	}
	s.Log.Info("node certificate renewed", "node", id.Name, "old_serial", id.Serial, "serial", serial)
	return &agentv1.RenewCertificateResponse{CertificatePem: certPEM, CaPem: ca.CertPEM}, nil
}

// checkRenewalDue refuses a renewal before half the calling certificate's lifetime (agents
// renew at two thirds), unless the caller holds the certificate a renewal replaced while
// the new one was never used: the answer to that renewal was lost, and the agent asks again.
func (s *AgentServer) checkRenewalDue(ctx context.Context, id pki.Identity) error {
	cert := peerCertificate(ctx)
	if cert == nil {
		return Errorf(codes.Unauthenticated, apiv1.ErrorReason_ERROR_REASON_PERMISSION_DENIED, nil, "renewing a node certificate needs the current one as client certificate")
	}
	due := cert.NotBefore.Add(cert.NotAfter.Sub(cert.NotBefore) / 2)
	if !time.Now().Before(due) {
		return nil
	}
	n, _, err := s.Nodes.Get(ctx, id.Name)
	if err != nil {
		return toStatus(err)
	}
	if n.GetPreviousCertificateSerial() == id.Serial {
		return nil // the renewed certificate never reached the agent
	}
	s.Limits.Drop(id.Name, sessions.DropRenewalEarly, 1)
	return Errorf(codes.FailedPrecondition, apiv1.ErrorReason_ERROR_REASON_WRONG_STATE, map[string]string{"node": id.Name, "serial": id.Serial},
		fmt.Sprintf("the certificate of node %s (serial %s) is renewed from half its lifetime on, at %s; the agent renews it at two thirds on its own", id.Name, id.Serial, due.UTC().Format(time.RFC3339)))
}

// certValidity is how long node certificates are valid.
func (s *AgentServer) certValidity() time.Duration {
	if s.CertValidity > 0 {
		return s.CertValidity
	}
	return pki.ClientValidity
}
