// Package testnet is an in-process network for tests: every connection is dialed through
// it, so a test can isolate an endpoint (its dials fail, dials to it fail, and its open
// connections are cut) and heal it again.
package testnet

import (
	"context"
	"fmt"
	"net"
	"sync"
)

// Network tracks connections between named endpoints (addresses or names).
type Network struct {
	mu       sync.Mutex
	isolated map[string]bool
	blocked  map[[2]string]bool // pairs that cannot talk to each other, in both directions
	conns    map[*conn]struct{}
}

// New returns a network with nothing isolated.
func New() *Network {
	return &Network{isolated: map[string]bool{}, blocked: map[[2]string]bool{}, conns: map[*conn]struct{}{}}
}

// Block cuts (on) or heals (off) the link between endpoints a and b only.
func (n *Network) Block(a, b string, on bool) {
	n.mu.Lock()
	n.blocked[[2]string{a, b}], n.blocked[[2]string{b, a}] = on, on
	var cut []*conn
	if on {
		for c := range n.conns {
			if (c.src == a && c.dst == b) || (c.src == b && c.dst == a) {
				cut = append(cut, c)
			}
		}
	}
	n.mu.Unlock()
	for _, c := range cut {
		_ = c.Close()
	}
}

type conn struct {
	net.Conn
	src, dst string
	n        *Network
}

func (c *conn) Close() error {
	c.n.mu.Lock()
	delete(c.n.conns, c)
	c.n.mu.Unlock()
	return c.Conn.Close()
}

// Dialer returns a dial func for the endpoint named src.
func (n *Network) Dialer(src string) func(context.Context, string) (net.Conn, error) {
	return func(ctx context.Context, dst string) (net.Conn, error) {
		n.mu.Lock()
		blocked := n.isolated[src] || n.isolated[dst] || n.blocked[[2]string{src, dst}]
		n.mu.Unlock()
		if blocked {
			return nil, fmt.Errorf("dial %s from %s: network unreachable (test partition)", dst, src)
		}
		var d net.Dialer
		c, err := d.DialContext(ctx, "tcp", dst)
		if err != nil {
			return nil, err
		}
		tc := &conn{Conn: c, src: src, dst: dst, n: n}
		n.mu.Lock()
		n.conns[tc] = struct{}{}
		n.mu.Unlock()
		return tc, nil
	}
}

// Isolate cuts (on) or heals (off) an endpoint.
func (n *Network) Isolate(endpoint string, on bool) {
	n.mu.Lock()
	n.isolated[endpoint] = on
	var cut []*conn
	if on {
		for c := range n.conns {
			if c.src == endpoint || c.dst == endpoint {
				cut = append(cut, c)
			}
		}
	}
	n.mu.Unlock()
	for _, c := range cut {
		_ = c.Close()
	}
}
