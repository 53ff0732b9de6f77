// Package netmux serves the controller's raft transport and its gRPC API on one TCP port.
// A raft connection starts with a 4-byte magic header written by Dial; anything else (an
// HTTP/2 preface or a TLS ClientHello, which always speak first) goes to the gRPC listener
// with its first bytes replayed.
package netmux

import (
	"bytes"
	"context"
	"errors"
	"io"
	"net"
	"sync"
	"time"
)

// RaftMagic opens every raft connection.
var RaftMagic = []byte("DHR1")

// headerTimeout bounds how long an accepted connection may take to send its first bytes.
const headerTimeout = 10 * time.Second

// Mux splits one listener into a raft listener and a gRPC listener.
type Mux struct {
	ln   net.Listener
	raft *subListener
	grpc *subListener
	once sync.Once
}

// New wraps ln. Call Serve to start accepting.
func New(ln net.Listener) *Mux {
	m := &Mux{ln: ln}
	m.raft = newSub(ln.Addr())
	m.grpc = newSub(ln.Addr())
	return m
}

// Raft is the listener for raft stream connections.
func (m *Mux) Raft() net.Listener { return m.raft }

// GRPC is the listener for everything else.
func (m *Mux) GRPC() net.Listener { return m.grpc }

// Serve accepts until the underlying listener is closed.
func (m *Mux) Serve() error {
	for {
		c, err := m.ln.Accept()
		if err != nil {
			m.Close()
			if errors.Is(err, net.ErrClosed) {
				return nil
			}
			return err
		}
		go m.route(c)
	}
}

func (m *Mux) route(c net.Conn) {
	_ = c.SetReadDeadline(time.Now().Add(headerTimeout))
	head := make([]byte, len(RaftMagic))
	n, err := io.ReadFull(c, head)
	_ = c.SetReadDeadline(time.Time{})
	if err != nil && n == 0 {
		_ = c.Close()
		return
	}
	if n == len(head) && bytes.Equal(head, RaftMagic) {
		m.raft.deliver(c)
		return
	}
	m.grpc.deliver(&replayConn{Conn: c, pending: head[:n]})
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

// Dial opens a raft connection to addr, writing the magic header. dial may be nil.
func Dial(ctx context.Context, dial func(context.Context, string) (net.Conn, error), addr string) (net.Conn, error) {
	if dial == nil {
		var d net.Dialer
		dial = func(ctx context.Context, a string) (net.Conn, error) { return d.DialContext(ctx, "tcp", a) }
	}
	c, err := dial(ctx, addr)
	if err != nil {
		return nil, err
	}
	if _, err := c.Write(RaftMagic); err != nil {
		_ = c.Close()
		return nil, err
	}
	return c, nil
}

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

type replayConn struct {
	net.Conn
	pending []byte
}

func (c *replayConn) Read(p []byte) (int, error) {
	if len(c.pending) > 0 {
		n := copy(p, c.pending)
		c.pending = c.pending[n:]
		return n, nil
	}
	return c.Conn.Read(p)
}
