package api

import (
	"context"
	"errors"
	"fmt"
	"strings"

	"google.golang.org/grpc/codes"

	"github.com/deckhandhq/deckhand/controller/credentials"
	"github.com/deckhandhq/deckhand/internal/clientconfig"
	apiv1 "github.com/deckhandhq/deckhand/proto/deckhand/api/v1"
)

// CredentialServer implements apiv1.CredentialServiceServer.
type CredentialServer struct {
	apiv1.UnimplementedCredentialServiceServer
	Credentials *credentials.Manager
	Cluster     Cluster
	CAPEM       func() []byte
}

// CreateCredential implements apiv1.CredentialServiceServer.
func (s *CredentialServer) CreateCredential(ctx context.Context, req *apiv1.CreateCredentialRequest) (*apiv1.CreateCredentialResponse, error) {
	caller, _ := IdentityFrom(ctx)
	cred, certPEM, err := s.Credentials.Create(ctx, strings.TrimSpace(req.GetName()), req.GetRole(), req.GetTtl().AsDuration(), req.GetCsrPem(), caller.Name)
	if err != nil {
		return nil, credentialStatus(err)
	}
	return &apiv1.CreateCredentialResponse{Credential: cred, CertificatePem: certPEM, CaPem: s.CAPEM(), Endpoints: s.Cluster.Endpoints(ctx)}, nil
}

// ListCredentials implements apiv1.CredentialServiceServer.
func (s *CredentialServer) ListCredentials(ctx context.Context, _ *apiv1.ListCredentialsRequest) (*apiv1.ListCredentialsResponse, error) {
	all, err := s.Credentials.List(ctx)
	if err != nil {
		return nil, credentialStatus(err)
	}
	return &apiv1.ListCredentialsResponse{Credentials: all}, nil
}

// RevokeCredential implements apiv1.CredentialServiceServer.
func (s *CredentialServer) RevokeCredential(ctx context.Context, req *apiv1.RevokeCredentialRequest) (*apiv1.RevokeCredentialResponse, error) {
	key := strings.TrimSpace(req.GetNameOrSerial())
	if key == "" {
		return nil, invalid(&fieldError{"name_or_serial", "is required: the credential's name or serial from deckctl credentials list"})
	}
	cred, err := s.Credentials.Revoke(ctx, key)
	if err != nil {
		return nil, credentialStatus(err)
	}
	return &apiv1.RevokeCredentialResponse{Credential: cred}, nil
}

func credentialStatus(err error) error {
	var fe *clientconfig.FieldError
	switch {
	case errors.As(err, &fe):
		return invalid(&fieldError{fe.Field, fe.Msg})
	case errors.Is(err, credentials.ErrExists):
		return Errorf(codes.AlreadyExists, apiv1.ErrorReason_ERROR_REASON_ALREADY_EXISTS, map[string]string{"kind": "credential"}, err.Error())
	case errors.Is(err, credentials.ErrTooMany):
		return Errorf(codes.ResourceExhausted, apiv1.ErrorReason_ERROR_REASON_UNSPECIFIED, map[string]string{"kind": "credential", "limit": fmt.Sprint(credentials.MaxCredentials)}, err.Error())
	case errors.Is(err, credentials.ErrNotFound):
		return Errorf(codes.NotFound, apiv1.ErrorReason_ERROR_REASON_NOT_FOUND, map[string]string{"kind": "credential"}, err.Error())
	}
	return toStatus(err)
}
