package netmux

import (
	"crypto/tls"
	"errors"
	"io"
	"net"
	"os"
	"testing"
	"time"

	"github.com/deckhandhq/deckhand/internal/pki"
)

func serve(t *testing.T, limits Limits) (*Mux, *pki.CA) {
	t.Helper()
	ca, err := pki.NewCA("test")
	if err != nil {
		t.Fatal(err)
	}
	server, _, err := ca.ReplicaTLS("r1", []string{"127.0.0.1"})
	if err != nil {
		t.Fatal(err)
	}
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	m := NewWithLimits(ln, server, pki.IsReplica, limits)
	go m.Serve()
	t.Cleanup(func() { m.Close() })
	go func() { // a server that holds connections until their clients hang up
		for {
			c, err := m.GRPC().Accept()
			if err != nil {
				return
			}
			go func() {
				_, _ = io.Copy(io.Discard, c)
				c.Close()
			}()
		}
	}()
	return m, ca
}

// closedWithin reports whether the server closes c within d (a read ends with EOF or a
// reset rather than the read deadline).
func closedWithin(c net.Conn, d time.Duration) bool {
	_ = c.SetReadDeadline(time.Now().Add(d))
	_, err := c.Read(make([]byte, 1))
	return err != nil && !errors.Is(err, os.ErrDeadlineExceeded)
}

func TestASlowLorisIsClosedAfterTheHandshakeTimeout(t *testing.T) {
	limits := DefaultLimits()
	limits.HandshakeTimeout = 300 * time.Millisecond
	m, _ := serve(t, limits)
	c, err := net.Dial("tcp", m.ln.Addr().String())
	if err != nil {
		t.Fatal(err)
	}
	defer c.Close()
	start := time.Now()
	if !closedWithin(c, 10*time.Second) {
		t.Fatal("a connection that never started its TLS handshake is still open after 10s")
	}
	if el := time.Since(start); el < 250*time.Millisecond {
		t.Fatalf("closed after %v, before the handshake timeout", el)
	}
	deadline := time.Now().Add(5 * time.Second)
	for {
		if _, timedOut := m.Stats(); timedOut == 1 {
			break
		}
		if time.Now().After(deadline) {
			t.Fatal("the handshake timeout was not counted")
		}
		time.Sleep(10 * time.Millisecond)
	}
}

func TestUnauthenticatedConnectionsAreBoundedPerSource(t *testing.T) {
	limits := DefaultLimits()
	limits.PerSource = 3
	m, ca := serve(t, limits)
	addr := m.ln.Addr().String()
	pinned := pki.PinnedTLS(ca.Hash())
	pinned.NextProtos = []string{"h2"}
	var held []*tls.Conn
	for range 3 {
		c, err := tls.Dial("tcp", addr, pinned)
		if err != nil {
			t.Fatalf("unauthenticated connection within the limit: %v", err)
		}
		held = append(held, c)
	}
	defer func() {
		for _, c := range held {
			c.Close()
		}
	}()
	if c, err := tls.Dial("tcp", addr, pinned); err == nil {
		c.Close()
		t.Fatal("a 4th unauthenticated connection from one source was served; the limit is 3")
	}
	if refused, _ := m.Stats(); refused == 0 {
		t.Fatal("no refusal counted")
	}
	// Another source (127.0.0.2 on the loopback) is not affected.
	d := &net.Dialer{LocalAddr: &net.TCPAddr{IP: net.IPv4(127, 0, 0, 2)}}
	other, err := tls.DialWithDialer(d, "tcp", addr, pinned)
	if err != nil {
		t.Fatalf("another source was refused: %v", err)
	}
	other.Close()
	// A closed connection gives its slot back.
	held[0].Close()
	held = held[1:]
	deadline := time.Now().Add(10 * time.Second)
	for {
		c, err := tls.Dial("tcp", addr, pinned)
		if err == nil {
			c.Close()
			break
		}
		if time.Now().After(deadline) {
			t.Fatalf("the slot of a closed connection was not given back: %v", err)
		}
		time.Sleep(20 * time.Millisecond)
	}
}
