// Package netmux serves the controller's raft transport and its gRPC API on one TCP port,
// both over TLS 1.3. Every accepted connection completes a TLS handshake first; ALPN then
// routes it: "deckhand-raft" to the raft listener (only for peers whose client certificate
// the RaftAllowed check accepts), "h2" to the gRPC listener. The gRPC server uses
// ServerCredentials, which hands it the already-verified TLS state for authorization.
package netmux

import (
	"context"
	"crypto/tls"
	"crypto/x509"
	"errors"
	"fmt"
	"net"
	"sync"
	"time"

	"google.golang.org/grpc/credentials"
)

// ProtoRaft is the ALPN protocol of raft connections.
const ProtoRaft = "deckhand-raft"

// handshakeTimeout bounds how long an accepted connection may take to finish TLS.
const handshakeTimeout = 10 * time.Second

// Mux splits one listener into a raft listener and a gRPC listener.
type Mux struct {
	ln          net.Listener
	tls         *tls.Config
	raftAllowed func(*x509.Certificate) bool
	raft        *subListener
	grpc        *subListener
	once        sync.Once
}

// New wraps ln. cfg is the server TLS config (certificate, client CAs, client auth);
// raftAllowed decides which verified client certificates may open raft connections.
func New(ln net.Listener, cfg *tls.Config, raftAllowed func(*x509.Certificate) bool) *Mux {
	c := cfg.Clone()
	c.NextProtos = []string{"h2", ProtoRaft}
	if c.MinVersion < tls.VersionTLS13 {
		c.MinVersion = tls.VersionTLS13
	}
	return &Mux{ln: ln, tls: c, raftAllowed: raftAllowed, raft: newSub(ln.Addr()), grpc: newSub(ln.Addr())}
}

// Raft is the listener for raft stream connections.
func (m *Mux) Raft() net.Listener { return m.raft }

// GRPC is the listener for gRPC connections (already TLS).
func (m *Mux) GRPC() net.Listener { return m.grpc }

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
		go m.route(c)
	}
}

func (m *Mux) route(c net.Conn) {
	tc := tls.Server(c, m.tls)
	ctx, cancel := context.WithTimeout(context.Background(), handshakeTimeout)
	err := tc.HandshakeContext(ctx)
	cancel()
	if err != nil {
		_ = c.Close()
		return
	}
	st := tc.ConnectionState()
	if st.NegotiatedProtocol == ProtoRaft {
		if len(st.VerifiedChains) == 0 || m.raftAllowed == nil || !m.raftAllowed(st.PeerCertificates[0]) {
			_ = tc.Close()
			return
		}
		m.raft.deliver(tc)
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
