package api

import (
	"context"
	"errors"
	"log/slog"

	"google.golang.org/grpc/codes"
	"google.golang.org/protobuf/proto"

	"github.com/deckhandhq/deckhand/controller/sessions"
	"github.com/deckhandhq/deckhand/controller/tokens"
	apiv1 "github.com/deckhandhq/deckhand/proto/deckhand/api/v1"
	clusterv1 "github.com/deckhandhq/deckhand/proto/deckhand/cluster/v1"
	"github.com/deckhandhq/deckhand/store"
)

// CAKey is where the cluster CA lives in the store.
const CAKey = "/pki/ca"

// PeerServer implements clusterv1.PeerServiceServer.
type PeerServer struct {
	clusterv1.UnimplementedPeerServiceServer
	Tracker *sessions.Tracker
	Tokens  *tokens.Manager
	Store   store.Store
	Log     *slog.Logger
}

// ReportSessions implements clusterv1.PeerServiceServer.
func (s *PeerServer) ReportSessions(_ context.Context, req *clusterv1.ReportSessionsRequest) (*clusterv1.ReportSessionsResponse, error) {
	return &clusterv1.ReportSessionsResponse{Accepted: s.Tracker.Observe(req.GetSessions())}, nil
}

// FetchCA implements clusterv1.PeerServiceServer.
func (s *PeerServer) FetchCA(ctx context.Context, req *clusterv1.FetchCARequest) (*clusterv1.FetchCAResponse, error) {
	// The CA first: a joining controller retries while it is not published, and a retry
	// must not use up the token.
	kv, _, err := s.Store.Get(ctx, CAKey)
	if errors.Is(err, store.ErrNotFound) {
		return nil, Errorf(codes.Unavailable, apiv1.ErrorReason_ERROR_REASON_NO_LEADER, nil, "the cluster CA is not published yet; retry in a few seconds")
	}
	if err != nil {
		return nil, toStatus(err)
	}
	if _, err := s.Tokens.Consume(ctx, req.GetToken(), apiv1.TokenPurpose_TOKEN_PURPOSE_CONTROLLER); err != nil {
		return nil, toStatus(err)
	}
	var rec clusterv1.CARecord
	if err := proto.Unmarshal(kv.Value, &rec); err != nil {
		return nil, toStatus(err)
	}
	s.Log.Info("handed the cluster CA to a joining replica", "replica", req.GetReplicaId())
	return &clusterv1.FetchCAResponse{CaCertPem: rec.GetCertPem(), CaKeyPem: rec.GetKeyPem()}, nil
}
