package api

import (
	"context"
	"fmt"
	"strings"

	"google.golang.org/grpc/codes"

	"github.com/deckhandhq/deckhand/internal/pki"

	apiv1 "github.com/deckhandhq/deckhand/proto/deckhand/api/v1"

	"github.com/deckhandhq/deckhand/controller/tokens"
)

// Cluster is what handlers need to know about the controller cluster itself.
type Cluster interface {
	// CAHash is the sha256 pin of the cluster CA.
	CAHash() string
	// Endpoints are the controller addresses agents and replicas dial.
	Endpoints(ctx context.Context) []string
}

// TokenServer implements apiv1.TokenServiceServer.
type TokenServer struct {
	apiv1.UnimplementedTokenServiceServer
	tokens  *tokens.Manager
	cluster Cluster
}

// NewTokenServer serves bootstrap tokens.
func NewTokenServer(m *tokens.Manager, c Cluster) *TokenServer {
	return &TokenServer{tokens: m, cluster: c}
}

func (s *TokenServer) CreateToken(ctx context.Context, req *apiv1.CreateTokenRequest) (*apiv1.CreateTokenResponse, error) {
	// A controller token buys the CA key (FetchCA), so only an admin may mint one.
	if req.GetPurpose() == apiv1.TokenPurpose_TOKEN_PURPOSE_CONTROLLER {
		if id, _ := IdentityFrom(ctx); id.Role != pki.RoleAdmin {
			return nil, Errorf(codes.PermissionDenied, apiv1.ErrorReason_ERROR_REASON_PERMISSION_DENIED, map[string]string{"role": id.Role, "field": "purpose"},
				"only an admin may create a controller token: it hands out the cluster CA")
		}
	}
	tok, secret, err := s.tokens.Create(ctx, req.GetPurpose(), req.GetTtl().AsDuration(), req.GetUsages(), req.GetDescription())
	if err != nil {
		return nil, toStatus(err)
	}
	hash := s.cluster.CAHash()
	eps := s.cluster.Endpoints(ctx)
	var cmd string
	if tok.GetPurpose() == apiv1.TokenPurpose_TOKEN_PURPOSE_CONTROLLER {
		cmd = fmt.Sprintf("deckhand-controller --data-dir /var/lib/deckhand-controller --listen HOST:PORT --join %s --token %s --ca-cert-hash %s", strings.Join(eps, ","), secret, hash)
	} else {
		cmd = fmt.Sprintf("deckhand-agent --controller %s --token %s --ca-cert-hash %s", strings.Join(eps, ","), secret, hash)
	}
	return &apiv1.CreateTokenResponse{Token: tok, Secret: secret, CaCertHash: hash, Command: cmd}, nil
}

func (s *TokenServer) ListTokens(ctx context.Context, _ *apiv1.ListTokensRequest) (*apiv1.ListTokensResponse, error) {
	all, err := s.tokens.List(ctx)
	if err != nil {
		return nil, toStatus(err)
	}
	return &apiv1.ListTokensResponse{Tokens: all}, nil
}

func (s *TokenServer) RevokeToken(ctx context.Context, req *apiv1.RevokeTokenRequest) (*apiv1.RevokeTokenResponse, error) {
	if err := s.tokens.Revoke(ctx, req.GetId()); err != nil {
		return nil, toStatus(err)
	}
	return &apiv1.RevokeTokenResponse{}, nil
}
