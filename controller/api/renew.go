package api

import (
	"context"
	"errors"
	"fmt"
	"time"

	"google.golang.org/grpc/codes"

	"github.com/deckhandhq/deckhand/controller/nodes"
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
	if err := s.checkIdentity(ctx, id); err != nil {
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

// certValidity is how long node certificates are valid.
func (s *AgentServer) certValidity() time.Duration {
	if s.CertValidity > 0 {
		return s.CertValidity
	}
	return pki.ClientValidity
}
