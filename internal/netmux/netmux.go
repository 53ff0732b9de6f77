// Package netmux serves the controller's raft transport, its gRPC API and its REST API on
// one TCP port, all over TLS 1.3. Every accepted connection completes a TLS handshake first;
// ALPN then routes it: "deckhand-raft" to the raft listener (only for peers whose client
// certificate the RaftAllowed check accepts); a client that offered "http/1.1" (curl,
// browsers, HTTP libraries: they offer h2 and http/1.1) to the HTTP listener; every other
// (gRPC clients offer h2 alone) to the gRPC listener. The gRPC server uses
// ServerCredentials, which hands it the already-verified TLS state for authorization.
//
// Connections that have not proven who they are cost the controller a file each, so they
// are bounded (Limits): a handshake timeout, a number per source address, and a total.
package netmux

import (
	"context"
	"crypto/tls"
	"crypto/x509"
	"errors"
	"fmt"
	"net"
	"slices"
	"sync"
	"time"

	"google.golang.org/grpc/credentials"
)

// ProtoRaft is the ALPN protocol of raft connections.
const ProtoRaft = "deckhand-raft"

// protoHTTP1 is the ALPN protocol an HTTP client offers beside (or instead of) h2.
const protoHTTP1 = "http/1.1"

// Limits on connections that have not proven who they are. A connection counts as
// unauthenticated from its accept until its TLS handshake verified a client certificate,
// or for its whole life when it has none (enrollment and joining use a token instead).
type Limits struct {
	// HandshakeTimeout bounds how long an accepted connection may take to finish TLS.
	HandshakeTimeout time.Duration
	// PerSource bounds the unauthenticated connections of one source address (an IPv6
	// source counts by its /64); more are closed at accept.
	PerSource int
	// Total bounds the connections of all sources together that finished their handshake
	// without a client certificate (a handshake in progress is bounded by PerSource and
	// HandshakeTimeout, so certificate holders are never refused for others' sake).
	Total int
}

// Default limits, enough for a fleet enrolling at once behind one NAT (an enrollment holds
// its connection for one call), small against the file limit.
const (
	DefaultHandshakeTimeout = 10 * time.Second
	DefaultPerSource        = 64
	DefaultTotal            = 1024
)

// DefaultLimits are the limits New applies.
func DefaultLimits() Limits {
	return Limits{HandshakeTimeout: DefaultHandshakeTimeout, PerSource: DefaultPerSource, Total: DefaultTotal}
}

// Mux splits one listener into a raft listener and a gRPC listener.
type Mux struct {
	ln          net.Listener
	tls         *tls.Config
	raftAllowed func(*x509.Certificate) bool
	raft        *subListener
	grpc        *subListener
	http        *subListener
	once        sync.Once
	limits      Limits

	mu       sync.Mutex
	unauth   map[string]int // unauthenticated connections by source
	total    int
	refused  uint64
	timedOut uint64
}

// New wraps ln with DefaultLimits. cfg is the server TLS config (certificate, client CAs,
// client auth); raftAllowed decides which verified client certificates may open raft
// connections.
func New(ln net.Listener, cfg *tls.Config, raftAllowed func(*x509.Certificate) bool) *Mux {
	return NewWithLimits(ln, cfg, raftAllowed, DefaultLimits())
}

// NewWithLimits is New with other limits.
func NewWithLimits(ln net.Listener, cfg *tls.Config, raftAllowed func(*x509.Certificate) bool, limits Limits) *Mux {
	c := cfg.Clone()
	c.NextProtos = []string{"h2", ProtoRaft, protoHTTP1}
	// Which listener a connection goes to depends on what the client offered, which the
	// handshake's result does not keep: noted on the connection here.
	base := c.GetConfigForClient
	c.GetConfigForClient = func(hello *tls.ClientHelloInfo) (*tls.Config, error) {
		if cc, ok := hello.Conn.(*counted); ok {
			cc.http = slices.Contains(hello.SupportedProtos, protoHTTP1)
		}
		if base != nil {
			return base(hello)
		}
		return nil, nil
	}
	if c.MinVersion < tls.VersionTLS13 {
		c.MinVersion = tls.VersionTLS13
	}
	return &Mux{ln: ln, tls: c, raftAllowed: raftAllowed, raft: newSub(ln.Addr()), grpc: newSub(ln.Addr()), http: newSub(ln.Addr()), limits: limits, unauth: map[string]int{}}
}

// Stats are counters for metrics: connections refused at accept for exceeding Limits, and
// connections closed for not finishing their TLS handshake in time.
func (m *Mux) Stats() (refused, handshakeTimeouts uint64) {
	m.mu.Lock()
	defer m.mu.Unlock()
	return m.refused, m.timedOut
}

// source is the key connections are counted by: the IP, or the /64 of an IPv6 address.
func source(a net.Addr) string {
	host, _, err := net.SplitHostPort(a.String())
	if err != nil {
		return a.String()
	}
	ip := net.ParseIP(host)
	if ip == nil {
		return host
	}
	if ip.To4() == nil {
		return ip.Mask(net.CIDRMask(64, 128)).String() + "/64"
	}
	return ip.String()
}

// admit counts a new connection from src, or refuses it.
func (m *Mux) admit(src string) bool {
	m.mu.Lock()
	defer m.mu.Unlock()
	if m.unauth[src] >= m.limits.PerSource {
		m.refused++
		return false
	}
	m.unauth[src]++
	return true
}

// admitNoCert counts a connection that finished its handshake without a certificate
// against Total, or refuses it.
func (m *Mux) admitNoCert(c *counted) bool {
	m.mu.Lock()
	defer m.mu.Unlock()
	if m.total >= m.limits.Total {
		m.refused++
		return false
	}
	m.total++
	c.noCert = true
	return true
}

func (m *Mux) release(src string, c *counted) {
	m.mu.Lock()
	defer m.mu.Unlock()
	if m.unauth[src]--; m.unauth[src] <= 0 {
		delete(m.unauth, src)
	}
	if c.noCert {
		m.total--
	}
}

// counted is an unauthenticated connection: it gives its slot back once, when it is
// authenticated or closed.
type counted struct {
	net.Conn
	once    sync.Once
	release func()
	noCert  bool // guarded by Mux.mu
	http    bool // the client offered http/1.1 (set during the handshake)
}

func (c *counted) done() { c.once.Do(c.release) }

func (c *counted) Close() error {
	c.done()
	return c.Conn.Close()
}

// Raft is the listener for raft stream connections.
func (m *Mux) Raft() net.Listener { return m.raft }

// GRPC is the listener for gRPC connections (already TLS).
func (m *Mux) GRPC() net.Listener { return m.grpc }

// HTTP returns the listener of HTTP clients' connections (TLS done; serve them with an
// http.Server, which speaks h2 or HTTP/1.1 as negotiated).
func (m *Mux) HTTP() net.Listener { return m.http }

// Serve accepts until the underlying listener is closed.
func (m *Mux) Serve() error {
	var backoff time.Duration
	for {
		c, err := m.ln.Accept()
		if err != nil {
			if errors.Is(err, net.ErrClosed) {
				m.Close()
				return nil
			}
			// Transient (for example out of file descriptors): back off and keep serving,
			// as net/http does.
			backoff = min(max(2*backoff, 5*time.Millisecond), time.Second)
			time.Sleep(backoff)
			continue
		}
		backoff = 0
		src := source(c.RemoteAddr())
		if !m.admit(src) {
			_ = c.Close()
			continue
		}
		cc := &counted{Conn: c}
		cc.release = func() { m.release(src, cc) }
		go m.route(cc)
	}
}

func (m *Mux) route(c *counted) {
	tc := tls.Server(c, m.tls)
	ctx, cancel := context.WithTimeout(context.Background(), m.limits.HandshakeTimeout)
	err := tc.HandshakeContext(ctx)
	timedOut := ctx.Err() != nil
	cancel()
	if err != nil {
		if timedOut {
			m.mu.Lock()
			m.timedOut++
			m.mu.Unlock()
		}
		_ = c.Close()
		return
	}
	st := tc.ConnectionState()
	if len(st.VerifiedChains) > 0 {
		c.done() // authenticated: no longer counted against its source
	} else if !m.admitNoCert(c) {
		_ = tc.Close()
		return
	}
	if st.NegotiatedProtocol == ProtoRaft {
		if len(st.VerifiedChains) == 0 || m.raftAllowed == nil || !m.raftAllowed(st.PeerCertificates[0]) {
			_ = tc.Close()
			return
		}
		m.raft.deliver(tc)
		return
	}
	if c.http {
		m.http.deliver(tc)
		return
	}
	m.grpc.deliver(tc)
}

// Close closes the underlying listener and both sub-listeners.
func (m *Mux) Close() error {
	var err error
	m.once.Do(func() {
		err = m.ln.Close()
		m.raft.Close()
		m.grpc.Close()
		m.http.Close()
	})
	return err
}

// DialRaft opens a raft connection to addr over TLS with cfg (client certificate and CA
// pool). dial may be nil.
func DialRaft(ctx context.Context, dial func(context.Context, string) (net.Conn, error), addr string, cfg *tls.Config) (net.Conn, error) {
	if dial == nil {
		var d net.Dialer
		dial = func(ctx context.Context, a string) (net.Conn, error) { return d.DialContext(ctx, "tcp", a) }
	}
	raw, err := dial(ctx, addr)
	if err != nil {
		return nil, err
	}
	c := cfg.Clone()
	c.NextProtos = []string{ProtoRaft}
	if c.ServerName == "" {
		host, _, _ := net.SplitHostPort(addr)
		c.ServerName = host
	}
	tc := tls.Client(raw, c)
	if err := tc.HandshakeContext(ctx); err != nil {
		_ = raw.Close()
		return nil, fmt.Errorf("raft TLS handshake with %s: %w", addr, err)
	}
	if tc.ConnectionState().NegotiatedProtocol != ProtoRaft {
		_ = tc.Close()
		return nil, fmt.Errorf("%s does not speak raft", addr)
	}
	return tc, nil
}

// ServerCredentials are gRPC server credentials for connections the Mux already
// handshook: they expose the TLS state to interceptors and handlers.
func ServerCredentials() credentials.TransportCredentials { return handshaken{} }

type handshaken struct{}

func (handshaken) ClientHandshake(context.Context, string, net.Conn) (net.Conn, credentials.AuthInfo, error) {
	return nil, nil, errors.New("netmux: server-only credentials")
}

func (handshaken) ServerHandshake(c net.Conn) (net.Conn, credentials.AuthInfo, error) {
	if _, ok := c.(*inProcessConn); ok {
		return c, InProcessInfo{CommonAuthInfo: credentials.CommonAuthInfo{SecurityLevel: credentials.PrivacyAndIntegrity}}, nil
	}
	tc, ok := c.(*tls.Conn)
	if !ok {
		return nil, nil, errors.New("netmux: connection is not TLS")
	}
	return c, credentials.TLSInfo{State: tc.ConnectionState(), CommonAuthInfo: credentials.CommonAuthInfo{SecurityLevel: credentials.PrivacyAndIntegrity}}, nil
}

func (handshaken) Info() credentials.ProtocolInfo {
	return credentials.ProtocolInfo{SecurityProtocol: "tls", SecurityVersion: "1.3"}
}
func (h handshaken) Clone() credentials.TransportCredentials { return h }
func (handshaken) OverrideServerName(string) error           { return nil }

type subListener struct {
	addr   net.Addr
	conns  chan net.Conn
	done   chan struct{}
	closed sync.Once
}

func newSub(addr net.Addr) *subListener {
	return &subListener{addr: addr, conns: make(chan net.Conn), done: make(chan struct{})}
}

func (s *subListener) deliver(c net.Conn) {
	select {
	case s.conns <- c:
	case <-s.done:
		_ = c.Close()
	}
}

func (s *subListener) Accept() (net.Conn, error) {
	select {
	case c := <-s.conns:
		return c, nil
	case <-s.done:
		return nil, net.ErrClosed
	}
}

func (s *subListener) Close() error {
	s.closed.Do(func() { close(s.done) })
	return nil
}

func (s *subListener) Addr() net.Addr { return s.addr }
