package testetcd

import (
	"bytes"
	"crypto/sha1"
	"encoding/binary"
	"fmt"
	"io"
	"net"
	"strconv"
	"strings"
	"sync"
	"time"
)

// A peer proxy stands in front of one member's peer port (Options.PeerProxy): the members
// advertise the proxies, so every raft message between two members crosses the proxy of the
// one it goes to. etcd names the sender of every peer request in its X-Server-From header
// (the stream GETs that carry messages one way, the pipeline and snapshot POSTs that carry
// them the other), and one connection carries one sender's requests, so the proxy knows
// both ends of every connection. Partition(i) cuts every connection to or from member i,
// open or new, in both directions: a real partition of the peer network, while the member
// keeps serving its clients (a replica and its etcd member share a host).
type peerProxy struct {
	c      *Cluster
	member int
	ln     net.Listener

	mu    sync.Mutex
	conns map[net.Conn]int // accepted connection -> sending member (-1: not named)
}

// startProxies listens on a fresh port per member and advertises it.
func (c *Cluster) startProxies() error {
	for i, m := range c.members {
		ln, err := net.Listen("tcp", "127.0.0.1:0")
		if err != nil {
			return err
		}
		p := &peerProxy{c: c, member: i, ln: ln, conns: map[net.Conn]int{}}
		m.advertisedPeerPort = ln.Addr().(*net.TCPAddr).Port
		c.proxies = append(c.proxies, p)
		go p.serve()
	}
	return nil
}

func (p *peerProxy) close() {
	_ = p.ln.Close()
	p.mu.Lock()
	defer p.mu.Unlock()
	for conn := range p.conns {
		_ = conn.Close()
	}
}

func (p *peerProxy) serve() {
	for {
		conn, err := p.ln.Accept()
		if err != nil {
			return
		}
		go p.handle(conn)
	}
}

// handle reads the first request's header to learn the sender, then relays both ways.
func (p *peerProxy) handle(conn net.Conn) {
	defer conn.Close()
	_ = conn.SetReadDeadline(time.Now().Add(10 * time.Second))
	var head []byte
	buf := make([]byte, 4096)
	for !bytes.Contains(head, []byte("\r\n\r\n")) && len(head) < 64<<10 {
		n, err := conn.Read(buf)
		head = append(head, buf[:n]...)
		if err != nil {
			return
		}
	}
	_ = conn.SetReadDeadline(time.Time{})
	from := p.c.memberByID(header(head, "X-Server-From"))
	if p.c.cut(from, p.member) {
		return
	}
	m := p.c.members[p.member]
	up, err := net.DialTimeout("tcp", fmt.Sprintf("127.0.0.1:%d", m.peerPort), 2*time.Second)
	if err != nil {
		return
	}
	defer up.Close()
	p.mu.Lock()
	p.conns[conn], p.conns[up] = from, from
	p.mu.Unlock()
	defer func() {
		p.mu.Lock()
		delete(p.conns, conn)
		delete(p.conns, up)
		p.mu.Unlock()
	}()
	if _, err := up.Write(head); err != nil {
		return
	}
	done := make(chan struct{}, 2)
	go func() { _, _ = io.Copy(up, conn); done <- struct{}{} }()
	go func() { _, _ = io.Copy(conn, up); done <- struct{}{} }()
	<-done
}

// header returns the value of the named header in a raw HTTP request head.
func header(head []byte, name string) string {
	for _, line := range strings.Split(string(head), "\r\n") {
		k, v, ok := strings.Cut(line, ":")
		if ok && strings.EqualFold(strings.TrimSpace(k), name) {
			return strings.TrimSpace(v)
		}
	}
	return ""
}

// memberByID maps etcd's hexadecimal member ID to a member index (-1: unknown). A member
// of a new static cluster has the ID etcd computes from its peer URL and the cluster token
// (membership.computeMemberId): the first 8 bytes of SHA-1(URL + token), big-endian.
func (c *Cluster) memberByID(hexID string) int {
	id, err := strconv.ParseUint(hexID, 16, 64)
	if err != nil {
		return -1
	}
	for i, m := range c.members {
		sum := sha1.Sum([]byte(c.advertisedPeerURL(m) + c.token))
		if binary.BigEndian.Uint64(sum[:8]) == id {
			return i
		}
	}
	return -1
}

// cut reports whether the link from member a to member b is cut.
func (c *Cluster) cut(a, b int) bool {
	c.idsMu.Lock()
	defer c.idsMu.Unlock()
	return c.partitioned[b] || (a >= 0 && c.partitioned[a])
}

// Partition cuts member i off from the other members (on) or heals it (off); it needs
// Options.PeerProxy. Its clients still reach it.
func (c *Cluster) Partition(i int, on bool) {
	c.t.Helper()
	if !c.opts.PeerProxy {
		c.t.Fatalf("testetcd: Partition needs Options.PeerProxy")
	}
	c.idsMu.Lock()
	if c.partitioned == nil {
		c.partitioned = map[int]bool{}
	}
	c.partitioned[i] = on
	c.idsMu.Unlock()
	if !on {
		return
	}
	for j, p := range c.proxies {
		p.mu.Lock()
		for conn, from := range p.conns {
			if j == i || from == i {
				_ = conn.Close()
			}
		}
		p.mu.Unlock()
	}
}
