package rest

import (
	"context"
	_ "embed"
	"errors"
	"fmt"
	"log/slog"
	"net"
	"net/http"
	"strings"
	"time"

	"github.com/grpc-ecosystem/grpc-gateway/v2/runtime"
	spb "google.golang.org/genproto/googleapis/rpc/status"
	"google.golang.org/grpc"
	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/credentials/insecure"
	"google.golang.org/grpc/metadata"
	"google.golang.org/grpc/status"
	"google.golang.org/protobuf/encoding/protojson"

	"github.com/deckhandhq/deckhand/controller/api"
	"github.com/deckhandhq/deckhand/internal/bounded"
	"github.com/deckhandhq/deckhand/internal/netmux"
	"github.com/deckhandhq/deckhand/internal/pki"
	apiv1 "github.com/deckhandhq/deckhand/proto/deckhand/api/v1"
)

// OpenAPI is the OpenAPI document of the REST API, generated from the protos (make
// generate) and served at /openapi.json.
//
//go:embed openapi.json
var OpenAPI []byte

// Limits on REST requests (the gRPC server bounds what it receives the same way).
const (
	// MaxBodyBytes bounds a request body.
	MaxBodyBytes = 4 << 20
	// MaxHeaderBytes bounds a request's headers.
	MaxHeaderBytes = 64 << 10
	// ReadHeaderTimeout bounds the time to read a request's headers, ReadTimeout the whole
	// request with its body.
	ReadHeaderTimeout = 10 * time.Second
	ReadTimeout       = time.Minute
	// IdleTimeout closes a keep-alive connection without requests.
	IdleTimeout = 5 * time.Minute
)

// Gateway serves the REST API: each request becomes a gRPC call through the controller's own
// server over an in-process connection, carrying the client certificate the HTTP server
// verified, so it passes the same authentication, role table, validation, audit trail and
// limits as a gRPC call, and fails with the same status and reason.
//
// A gRPC client that offered http/1.1 too (some stacks do) lands here as well: its calls
// (content-type application/grpc over HTTP/2) go to the gRPC server's own HTTP handler.
type Gateway struct {
	conn    *grpc.ClientConn
	mux     *runtime.ServeMux
	srv     *http.Server
	grpc    http.Handler
	revoked api.RevocationCheck
}

// New returns a gateway whose calls go to grpcSrv, listening on ln; revoked is the
// revocation list the gRPC server checks too (for what the gateway serves itself).
func New(ln *netmux.InProcess, grpcSrv *grpc.Server, revoked api.RevocationCheck, log *slog.Logger) (*Gateway, error) {
	conn, err := grpc.NewClient("passthrough:///inprocess",
		grpc.WithContextDialer(ln.Dial),
		grpc.WithTransportCredentials(insecure.NewCredentials()),
		grpc.WithDefaultCallOptions(grpc.MaxCallRecvMsgSize(64<<20)),
	)
	if err != nil {
		return nil, err
	}
	marshaler := ndjson{&runtime.JSONPb{
		MarshalOptions:   protojson.MarshalOptions{},
		UnmarshalOptions: protojson.UnmarshalOptions{},
	}}
	mux := runtime.NewServeMux(
		runtime.WithMarshalerOption(runtime.MIMEWildcard, marshaler),
		// Nothing from the request's headers becomes gRPC metadata: the caller is what the
		// TLS handshake verified (forward), never what a header claims.
		runtime.WithIncomingHeaderMatcher(func(string) (string, bool) { return "", false }),
		runtime.WithOutgoingHeaderMatcher(func(string) (string, bool) { return "", false }),
		runtime.WithMetadata(forward),
		runtime.WithRoutingErrorHandler(routingError),
	)
	ctx := context.Background()
	for _, register := range []func(context.Context, *runtime.ServeMux, *grpc.ClientConn) error{
		apiv1.RegisterMemberServiceHandler,
		apiv1.RegisterNodeServiceHandler,
		apiv1.RegisterTokenServiceHandler,
		apiv1.RegisterTaskServiceHandler,
		apiv1.RegisterWorkflowServiceHandler,
		apiv1.RegisterCredentialServiceHandler,
		apiv1.RegisterAuditServiceHandler,
	} {
		if err := register(ctx, mux, conn); err != nil {
			_ = conn.Close()
			return nil, err
		}
	}
	g := &Gateway{conn: conn, mux: mux, grpc: grpcSrv, revoked: revoked}
	g.srv = &http.Server{
		Handler:           g,
		ReadHeaderTimeout: ReadHeaderTimeout,
		ReadTimeout:       ReadTimeout,
		IdleTimeout:       IdleTimeout,
		MaxHeaderBytes:    MaxHeaderBytes,
		ErrorLog:          slog.NewLogLogger(log.Handler(), slog.LevelDebug),
	}
	return g, nil
}

// Serve serves the HTTP connections of ln (already TLS) until Close.
func (g *Gateway) Serve(ln net.Listener) error {
	err := g.srv.Serve(ln)
	if errors.Is(err, http.ErrServerClosed) {
		return nil
	}
	return err
}

// Shutdown stops taking requests, lets those under way finish until ctx ends (then
// closes them), and closes the in-process connection.
func (g *Gateway) Shutdown(ctx context.Context) error {
	err := g.srv.Shutdown(ctx)
	if err != nil {
		_ = g.srv.Close()
	}
	_ = g.conn.Close()
	return err
}

// ServeHTTP implements http.Handler.
func (g *Gateway) ServeHTTP(w http.ResponseWriter, r *http.Request) {
	if r.ProtoMajor == 2 && strings.HasPrefix(r.Header.Get("Content-Type"), "application/grpc") {
		g.grpc.ServeHTTP(w, r)
		return
	}
	h := w.Header()
	h.Set("X-Content-Type-Options", "nosniff")
	h.Set("Cache-Control", "no-store")
	// Every route needs a certificate: without one the answer comes before the body is read.
	if r.TLS == nil || len(r.TLS.VerifiedChains) == 0 || len(r.TLS.PeerCertificates) == 0 {
		writeError(w, http.StatusUnauthorized, noCertificate)
		return
	}
	// grpc-gateway would pass these on as metadata; nothing reads them, and nothing should.
	for _, k := range []string{"Authorization", "X-Forwarded-For", "X-Forwarded-Host"} {
		r.Header.Del(k)
	}
	if r.Body != nil {
		r.Body = http.MaxBytesReader(w, r.Body, MaxBodyBytes)
	}
	if r.URL.Path == "/openapi.json" {
		g.openAPI(w, r)
		return
	}
	g.mux.ServeHTTP(w, r)
}

// noCertificate is the answer to a request without a client certificate, as over gRPC.
const noCertificate = "a client certificate signed by the controller CA is required: use deckctl --config with the admin.conf from a controller's data dir, or for curl the files of deckctl credentials pem"

// openAPI serves the OpenAPI document to any caller with a Deckhand user credential.
func (g *Gateway) openAPI(w http.ResponseWriter, r *http.Request) {
	if r.Method != http.MethodGet && r.Method != http.MethodHead {
		w.Header().Set("Allow", "GET, HEAD")
		writeError(w, http.StatusMethodNotAllowed, "use GET for /openapi.json")
		return
	}
	id, err := pki.IdentityOf(r.TLS.PeerCertificates[0])
	if err != nil || !isUser(id.Role) {
		writeError(w, http.StatusForbidden, "the OpenAPI document is served to admin, operator and viewer credentials")
		return
	}
	if g.revoked != nil {
		gone, err := g.revoked(r.Context(), id.Serial)
		if err != nil {
			writeError(w, http.StatusServiceUnavailable, "checking the credential against the revocation list: "+err.Error()+"; retry")
			return
		}
		if gone {
			writeError(w, http.StatusUnauthorized, "the credential "+id.Name+" (serial "+id.Serial+") was revoked: ask an admin for a new one (deckctl credentials create)")
			return
		}
	}
	w.Header().Set("Content-Type", "application/json")
	_, _ = w.Write(OpenAPI)
}

func isUser(role string) bool {
	return role == pki.RoleAdmin || role == pki.RoleOperator || role == pki.RoleViewer
}

// ndjson is protojson, whose streams say what they are: newline-delimited JSON, one
// {"result": ...} or {"error": ...} per line.
type ndjson struct{ *runtime.JSONPb }

// StreamContentType implements runtime.StreamContentType.
func (ndjson) StreamContentType(any) string { return "application/x-ndjson" }

// forward passes the caller the HTTP server verified to the gRPC call.
func forward(_ context.Context, r *http.Request) metadata.MD {
	md := metadata.MD{}
	if r.TLS != nil && len(r.TLS.VerifiedChains) > 0 && len(r.TLS.PeerCertificates) > 0 {
		md.Set(api.ForwardedCertKey, string(r.TLS.PeerCertificates[0].Raw))
	}
	md.Set(api.ForwardedPeerKey, r.RemoteAddr)
	return md
}

// routingError answers a request no route matches with the status a user can act on.
func routingError(ctx context.Context, mux *runtime.ServeMux, m runtime.Marshaler, w http.ResponseWriter, r *http.Request, code int) {
	switch code {
	case http.StatusNotFound:
		writeError(w, code, fmt.Sprintf("no REST route %s %s: the routes are listed in /openapi.json", r.Method, bounded.String(r.URL.Path, 200)))
	case http.StatusMethodNotAllowed:
		writeError(w, code, fmt.Sprintf("%s is not allowed on %s: the routes are listed in /openapi.json", r.Method, bounded.String(r.URL.Path, 200)))
	default:
		runtime.DefaultRoutingErrorHandler(ctx, mux, m, w, r, code)
	}
}

// writeError writes a google.rpc.Status-shaped JSON error, as the gateway does for calls.
func writeError(w http.ResponseWriter, httpCode int, msg string) {
	w.Header().Set("Content-Type", "application/json")
	w.WriteHeader(httpCode)
	b, _ := protojson.Marshal(statusOf(httpCode, msg))
	_, _ = w.Write(b)
}

// statusOf is the Status of an HTTP-level refusal, with the reason a client switches on.
func statusOf(httpCode int, msg string) *spb.Status {
	code, reason := codes.Unknown, apiv1.ErrorReason_ERROR_REASON_UNSPECIFIED
	switch httpCode {
	case http.StatusUnauthorized:
		code, reason = codes.Unauthenticated, apiv1.ErrorReason_ERROR_REASON_PERMISSION_DENIED
	case http.StatusForbidden:
		code, reason = codes.PermissionDenied, apiv1.ErrorReason_ERROR_REASON_PERMISSION_DENIED
	case http.StatusNotFound:
		code, reason = codes.NotFound, apiv1.ErrorReason_ERROR_REASON_NOT_FOUND
	case http.StatusMethodNotAllowed:
		code, reason = codes.Unimplemented, apiv1.ErrorReason_ERROR_REASON_INVALID_ARGUMENT
	case http.StatusServiceUnavailable:
		code, reason = codes.Unavailable, apiv1.ErrorReason_ERROR_REASON_NO_QUORUM
	}
	return status.Convert(api.Errorf(code, reason, nil, msg)).Proto()
}
