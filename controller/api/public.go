package api

import (
	"context"
	"fmt"
	"net"
	"time"

	"github.com/prometheus/client_golang/prometheus"
	"google.golang.org/genproto/googleapis/rpc/errdetails"
	"google.golang.org/grpc"
	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/peer"
	"google.golang.org/grpc/status"
	"google.golang.org/protobuf/types/known/durationpb"

	"github.com/deckhandhq/deckhand/internal/bounded"
	"github.com/deckhandhq/deckhand/internal/ratelimit"
)

// Limits on the public methods (Enroll, FetchCA), which anyone who reaches the port may
// call: every failed call (a wrong token, an invalid request) costs its source address one
// token of a bucket; with the bucket empty, calls from that source are refused with
// ResourceExhausted and a RetryInfo before any work is done. Successful calls cost nothing,
// so a fleet enrolling from behind one NAT is not slowed down.
const (
	// PublicFailureBurst is how many failed public calls a source may make at once.
	PublicFailureBurst = 20
	// PublicFailuresPerMinute is how fast a source's failure budget refills.
	PublicFailuresPerMinute = 10
	// MaxTrackedSources bounds the sources remembered (the ones with recent failures).
	MaxTrackedSources = 1 << 16
	// MaxStatusMessage bounds the message of any error the controller returns, since a
	// message may quote a request field (a 3 MiB node name is echoed in 1 KiB).
	MaxStatusMessage = 2 << 10
)

// PublicLimiter is the per-source failure budget of the public methods.
type PublicLimiter struct {
	failures *ratelimit.Keyed
	refused  prometheus.Counter
}

// NewPublicLimiter returns a limiter with the limits above. now may be nil (time.Now).
func NewPublicLimiter(now func() time.Time) *PublicLimiter {
	return &PublicLimiter{
		failures: ratelimit.NewKeyed(PublicFailuresPerMinute/60.0, PublicFailureBurst, MaxTrackedSources, now),
		refused: prometheus.NewCounter(prometheus.CounterOpts{
			Name: "deckhand_public_calls_refused_total",
			Help: "Enroll and FetchCA calls refused because their source address failed too often.",
		}),
	}
}

// Collector is the limiter's metric.
func (l *PublicLimiter) Collector() prometheus.Collector { return l.refused }

// Unary is the interceptor: it refuses a source over its budget and charges failures.
func (l *PublicLimiter) Unary(ctx context.Context, req any, info *grpc.UnaryServerInfo, handler grpc.UnaryHandler) (any, error) {
	if !Public[info.FullMethod] {
		return handler(ctx, req)
	}
	src := sourceOf(ctx)
	if wait := l.failures.Wait(src, 1); wait > 0 {
		l.refused.Inc()
		wait = wait.Truncate(time.Second) + time.Second
		st := status.New(codes.ResourceExhausted, fmt.Sprintf("too many failed calls from %s (a wrong or expired token, an invalid request): retry in %v, and check --token against deckctl token list", src, wait))
		if withRetry, err := st.WithDetails(&errdetails.RetryInfo{RetryDelay: durationpb.New(wait)}); err == nil {
			st = withRetry
		}
		return nil, st.Err()
	}
	resp, err := handler(ctx, req)
	switch status.Code(err) {
	case codes.InvalidArgument, codes.Unauthenticated, codes.PermissionDenied, codes.NotFound, codes.AlreadyExists, codes.FailedPrecondition, codes.OutOfRange:
		l.failures.Charge(src, 1)
	}
	return resp, err
}

// sourceOf is the caller's IP (the /64 of an IPv6 address).
func sourceOf(ctx context.Context) string {
	p, ok := peer.FromContext(ctx)
	if !ok || p.Addr == nil {
		return "unknown"
	}
	host, _, err := net.SplitHostPort(p.Addr.String())
	if err != nil {
		return p.Addr.String()
	}
	if ip := net.ParseIP(host); ip != nil && ip.To4() == nil {
		return ip.Mask(net.CIDRMask(64, 128)).String() + "/64"
	}
	return host
}

// BoundStatusUnary cuts the message of a returned error to MaxStatusMessage, keeping its
// code and details, so neither the caller nor the log gets a request field echoed in full.
func BoundStatusUnary(ctx context.Context, req any, _ *grpc.UnaryServerInfo, handler grpc.UnaryHandler) (any, error) {
	resp, err := handler(ctx, req)
	return resp, boundStatus(err)
}

// BoundStatusStream is BoundStatusUnary for streams.
func BoundStatusStream(srv any, ss grpc.ServerStream, _ *grpc.StreamServerInfo, handler grpc.StreamHandler) error {
	return boundStatus(handler(srv, ss))
}

func boundStatus(err error) error {
	if err == nil {
		return nil
	}
	st, ok := status.FromError(err)
	if !ok || len(st.Message()) <= MaxStatusMessage {
		return err
	}
	p := st.Proto()
	p.Message = bounded.String(p.GetMessage(), MaxStatusMessage)
	return status.FromProto(p).Err()
}
