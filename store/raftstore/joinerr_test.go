package raftstore

import (
	"context"
	"errors"
	"testing"

	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/status"
)

func TestJoinErrorPermanent(t *testing.T) {
	for _, tc := range []struct {
		name string
		err  error
		want bool
	}{
		{"nothing listens yet", status.Error(codes.Unavailable, `connection error: desc = "transport: Error while dialing: dial tcp 127.0.0.1:1: connect: connection refused"`), false},
		{"the CA is not published yet", status.Error(codes.Unavailable, "the cluster CA is not published yet; retry in a few seconds"), false},
		{"no leader yet", status.Error(codes.Unavailable, "no leader: election in progress"), false},
		{"asked a replica that is not the leader", status.Error(codes.FailedPrecondition, "replica r2 is not the leader"), false},
		{"slow", status.Error(codes.DeadlineExceeded, "context deadline exceeded"), false},
		{"rate limited", status.Error(codes.ResourceExhausted, "too many failed attempts"), false},
		{"an unexpected failure at one address", status.Error(codes.Internal, "boom"), false},
		{"not a gRPC error", context.DeadlineExceeded, false},
		{"handshake broken by a restarting peer", status.Error(codes.Unavailable, `connection error: desc = "transport: authentication handshake failed: EOF"`), false},
		{"handshake reset", status.Error(codes.Unavailable, `connection error: desc = "transport: authentication handshake failed: read tcp 127.0.0.1:5->127.0.0.1:6: read: connection reset by peer"`), false},
		{"a controller of another CA", status.Error(codes.Unavailable, `connection error: desc = "transport: authentication handshake failed: tls: failed to verify certificate: x509: certificate signed by unknown authority"`), true},
		{"our certificate refused there", status.Error(codes.Unavailable, `connection error: desc = "transport: authentication handshake failed: remote error: tls: bad certificate"`), true},
		{"a replica of another cluster", status.Error(codes.PermissionDenied, "request from cluster a reached a replica of cluster b"), true},
		{"a wrong token", status.Error(codes.Unauthenticated, "token is invalid"), true},
		{"an unknown token", status.Error(codes.NotFound, "token not found"), true},
		{"a malformed request", status.Error(codes.InvalidArgument, "join address is not host:port"), true},
		{"a name taken by the leader", status.Error(codes.AlreadyExists, "replica name r1 is the leader's"), true},
	} {
		t.Run(tc.name, func(t *testing.T) {
			if got := JoinErrorPermanent(tc.err); got != tc.want {
				t.Fatalf("JoinErrorPermanent(%v) = %v, want %v", tc.err, got, tc.want)
			}
		})
	}
	if JoinErrorPermanent(errors.New("plain")) {
		t.Fatal("a plain error is permanent")
	}
}
