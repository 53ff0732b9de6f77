package raftstore

import (
	"strings"

	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/status"
)

// JoinErrorPermanent classifies one --join address's answer to a joining replica (Info,
// Join, or the controller's FetchCA): true when waiting cannot change it (a wrong token,
// another cluster, a name or address taken, a certificate of another CA); false while the
// cluster may still be starting (nothing listens yet, no leader, the CA not published, the
// address asked is not the leader, a rate limit) and for anything unexpected (Internal:
// another address may serve). backoff.Round decides from every address's answer.
func JoinErrorPermanent(err error) bool {
	switch status.Code(err) {
	case codes.PermissionDenied, // a replica of another cluster
		codes.Unauthenticated, codes.NotFound, // a wrong or used-up --token
		codes.InvalidArgument, // a request the cluster refuses as malformed
		codes.AlreadyExists:   // the replica's name or address is taken (conflicting ID)
		return true
	case codes.Unavailable:
		return HandshakeRefused(status.Convert(err).Message())
	}
	return false
}

// HandshakeRefused reports a TLS handshake that failed on the certificates (a peer of
// another CA, or not a deckhand-controller) rather than on the connection (a peer starting
// or stopping: EOF, reset, timeout), from a gRPC Unavailable message.
func HandshakeRefused(msg string) bool {
	if !strings.Contains(msg, "authentication handshake failed") {
		return false
	}
	for _, transient := range []string{"EOF", "connection reset", "broken pipe", "i/o timeout", "deadline exceeded", "context canceled"} {
		if strings.Contains(msg, transient) {
			return false
		}
	}
	return strings.Contains(msg, "x509:") || strings.Contains(msg, "tls:")
}
