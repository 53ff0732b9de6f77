package dashboard

import (
	"context"
	"crypto/rand"
	"crypto/subtle"
	"embed"
	"encoding/json"
	"io/fs"
	"log/slog"
	"net"
	"net/http"
	"strings"
	"time"

	"google.golang.org/grpc/codes"

	apiv1 "github.com/deckhandhq/deckhand/proto/deckhand/api/v1"
)

//go:embed ui
var uiFiles embed.FS

// securityHeaders go on every answer: nothing the page loads or connects to comes from
// elsewhere, no other page may frame it, nothing is cached or sniffed, no URL leaks in a
// Referer.
var securityHeaders = map[string]string{
	"Content-Security-Policy": "default-src 'self'; script-src 'self'; style-src 'self'; img-src 'self'; connect-src 'self'; " +
		"font-src 'self'; object-src 'none'; base-uri 'none'; form-action 'none'; frame-ancestors 'none'",
	"X-Content-Type-Options":       "nosniff",
	"X-Frame-Options":              "DENY",
	"Referrer-Policy":              "no-referrer",
	"Cache-Control":                "no-store",
	"Cross-Origin-Opener-Policy":   "same-origin",
	"Cross-Origin-Resource-Policy": "same-origin",
}

// Server is a running dashboard: a loopback listener, its token, the UI and the proxy to
// the controllers.
type Server struct {
	cfg       Config
	ln        net.Listener
	guard     guard
	token     string // printed in the URL; the page sends it back in HeaderMark
	url       string
	proxy     http.Handler
	transport *http.Transport
	assets    http.Handler
	ui        fs.FS
	srv       *http.Server
}

// New checks cfg and listens on cfg.Listen; Run serves.
func New(cfg Config) (*Server, error) {
	if err := cfg.Validate(); err != nil {
		return nil, err
	}
	ln, err := net.Listen("tcp", listenAddr(cfg.Listen))
	if err != nil {
		return nil, err
	}
	host, port, _ := net.SplitHostPort(ln.Addr().String())
	sub, err := fs.Sub(uiFiles, "ui")
	if err != nil {
		_ = ln.Close()
		return nil, err
	}
	ctl := &controllers{listed: cfg.Controllers, tls: cfg.TLS, timeout: cfg.DialTimeout, failedFor: cfg.FailedFor, now: time.Now, failed: map[string]time.Time{}}
	s := &Server{
		cfg:    cfg,
		ln:     ln,
		guard:  newGuard(host, port),
		token:  rand.Text(), // 26 base32 characters: 130 bits
		assets: http.FileServerFS(sub),
		ui:     sub,
	}
	s.proxy, s.transport = newProxy(ctl, cfg)
	s.url = "http://" + hostPort(host, port) + "/?token=" + s.token
	s.srv = &http.Server{
		Handler:           s,
		ReadHeaderTimeout: 10 * time.Second,
		IdleTimeout:       2 * time.Minute,
		MaxHeaderBytes:    64 << 10,
		ErrorLog:          slog.NewLogLogger(cfg.Logger.Handler(), slog.LevelDebug),
	}
	return s, nil
}

// URL is the address to open: the dashboard's with this run's token.
func (s *Server) URL() string { return s.url }

// Addr is the address the dashboard listens on.
func (s *Server) Addr() net.Addr { return s.ln.Addr() }

// Run serves until ctx ends, then closes every connection (the streams too).
func (s *Server) Run(ctx context.Context) error {
	errc := make(chan error, 1)
	go func() { errc <- s.srv.Serve(s.ln) }()
	select {
	case err := <-errc:
		s.transport.CloseIdleConnections()
		return err
	case <-ctx.Done():
	}
	err := s.srv.Close()
	<-errc
	s.transport.CloseIdleConnections()
	return err
}

// ServeHTTP guards, then serves the UI or passes the request to a controller.
func (s *Server) ServeHTTP(w http.ResponseWriter, r *http.Request) {
	for k, v := range securityHeaders {
		w.Header().Set(k, v)
	}
	d := s.guard.decide(s.facts(r))
	switch d.action {
	case refuse:
		s.cfg.Logger.Debug("dashboard: refused", "method", r.Method, "path", r.URL.Path, "status", d.status, "why", d.why)
		reason := apiv1.ErrorReason_ERROR_REASON_PERMISSION_DENIED
		code := codes.PermissionDenied
		switch d.status {
		case http.StatusUnauthorized:
			code = codes.Unauthenticated
		case http.StatusMethodNotAllowed, http.StatusBadRequest:
			code, reason = codes.InvalidArgument, apiv1.ErrorReason_ERROR_REASON_INVALID_ARGUMENT
		}
		if !needsToken(r.URL.Path) {
			// A person at the browser reads this one.
			w.Header().Set("Content-Type", "text/plain; charset=utf-8")
			w.WriteHeader(d.status)
			_, _ = w.Write([]byte("deckctl dashboard: " + d.why + "\n"))
			return
		}
		writeStatus(w, d.status, code, reason, d.why)
	case session:
		w.Header().Set("Content-Type", "application/json")
		_ = json.NewEncoder(w).Encode(map[string]any{"subject": s.cfg.Subject, "role": s.cfg.Role, "controllers": s.cfg.Controllers})
	case proxy:
		if r.ContentLength > s.cfg.MaxBodyBytes {
			writeStatus(w, http.StatusRequestEntityTooLarge, codes.InvalidArgument, apiv1.ErrorReason_ERROR_REASON_INVALID_ARGUMENT, "the request body is too large")
			return
		}
		r.Body = http.MaxBytesReader(w, r.Body, s.cfg.MaxBodyBytes)
		s.proxy.ServeHTTP(w, r)
	case asset:
		if name := strings.TrimPrefix(r.URL.Path, "/"); name != "" {
			if fi, err := fs.Stat(s.ui, name); err != nil || fi.IsDir() {
				w.Header().Set("Content-Type", "text/plain; charset=utf-8")
				w.WriteHeader(http.StatusNotFound)
				_, _ = w.Write([]byte("deckctl dashboard: no such page; the dashboard's pages are under /#/\n"))
				return
			}
		}
		s.assets.ServeHTTP(w, r)
	}
}

// facts reads what the guard decides on, comparing the token in constant time. Only
// HeaderMark carries it: no cookie, and not the URL (the printed URL's ?token= is the
// page's to read).
func (s *Server) facts(r *http.Request) request {
	req := request{method: r.Method, host: r.Host, path: r.URL.Path, origin: r.Header.Get("Origin")}
	if v := r.Header.Values(HeaderMark); len(v) > 0 {
		req.token = invalidToken
		if len(v) == 1 && equal(v[0], s.token) {
			req.token = validToken
		}
	}
	return req
}

func equal(a, b string) bool { return subtle.ConstantTimeCompare([]byte(a), []byte(b)) == 1 }
