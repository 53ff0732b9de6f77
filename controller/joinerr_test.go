package controller

import (
	"context"
	"crypto/tls"
	"crypto/x509"
	"errors"
	"fmt"
	"io"
	"net"
	"strings"
	"syscall"
	"testing"

	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/status"
)

// One --join address's failed FetchCA: permanent only when waiting cannot change it.
func TestFetchCAFailure(t *testing.T) {
	unavailable := status.Error(codes.Unavailable, "connection error")
	for _, tc := range []struct {
		name      string
		err       error
		handshake error
		permanent bool
		mentions  string
	}{
		{"nothing listens yet", status.Error(codes.Unavailable, "dial tcp: connect: connection refused"), nil, false, "connection refused"},
		{"the CA is not published yet", status.Error(codes.Unavailable, "the cluster CA is not published yet; retry in a few seconds"), nil, false, "not published"},
		{"no leader", status.Error(codes.Unavailable, "no leader"), nil, false, "no leader"},
		{"rate limited", status.Error(codes.ResourceExhausted, "too many failed calls"), nil, false, "too many"},
		{"an unexpected error at one address", status.Error(codes.Internal, "boom"), nil, false, "boom"},
		{"slow", status.Error(codes.DeadlineExceeded, "context deadline exceeded"), nil, false, "deadline"},
		{"handshake cut by a starting controller", unavailable, io.EOF, false, "connection error"},
		{"handshake reset", unavailable, fmt.Errorf("read: %w", syscall.ECONNRESET), false, "connection error"},
		{"handshake timed out", unavailable, &net.OpError{Op: "read", Err: context.DeadlineExceeded}, false, "connection error"},
		{"a controller of another CA (stale address)", unavailable, x509.UnknownAuthorityError{}, true, "--ca-cert-hash"},
		{"our certificate refused", unavailable, tls.AlertError(42), true, "--ca-cert-hash"},
		{"the pin does not match", unavailable, errors.New("certificate does not match the pinned CA"), true, "--ca-cert-hash"},
		{"a wrong token", status.Error(codes.Unauthenticated, "token is invalid"), nil, true, "--token"},
		{"an unknown token", status.Error(codes.NotFound, "token abcdef not found"), nil, true, "--token"},
		{"refused", status.Error(codes.PermissionDenied, "not a controller token"), nil, true, "--token"},
		{"a malformed request", status.Error(codes.InvalidArgument, "replica id is invalid"), nil, true, "invalid"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			msg, permanent := fetchCAFailure(tc.err, tc.handshake)
			if permanent != tc.permanent || !strings.Contains(msg, tc.mentions) {
				t.Fatalf("fetchCAFailure(%v, %v) = %q, %v; want permanent %v mentioning %q", tc.err, tc.handshake, msg, permanent, tc.permanent, tc.mentions)
			}
		})
	}
}
