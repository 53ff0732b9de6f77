package raftstore

import (
	"context"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"net"
	"os"
	"sync"
	"testing"
	"time"

	"google.golang.org/grpc"
	"google.golang.org/grpc/credentials"

	"github.com/deckhandhq/deckhand/internal/netmux"
	"github.com/deckhandhq/deckhand/internal/pki"
	"github.com/deckhandhq/deckhand/internal/testkit/testnet"
	"github.com/deckhandhq/deckhand/internal/testkit/testwait"
	"github.com/deckhandhq/deckhand/store"
	"github.com/deckhandhq/deckhand/store/storetest"
)

type node struct {
	dir  string
	addr string
	ln   net.Listener
	mux  *netmux.Mux
	srv  *grpc.Server
	st   *Store
}

type cluster struct {
	t     testing.TB
	net   *testnet.Network
	ca    *pki.CA
	nodes []*node
	cfgFn func(*Config)
}

var (
	testCAOnce sync.Once
	testCA     *pki.CA
)

// sharedCA is one CA for the whole test binary (key generation is not what we test).
func sharedCA() *pki.CA {
	testCAOnce.Do(func() {
		ca, err := pki.NewCA("raftstore-test")
		if err != nil {
			panic(err)
		}
		testCA = ca
	})
	return testCA
}

func testConfig() Config {
	cfg := DefaultConfig()
	cfg.HeartbeatTimeout = 300 * time.Millisecond
	cfg.ElectionTimeout = 300 * time.Millisecond
	cfg.LeaderLeaseTimeout = 150 * time.Millisecond
	cfg.ApplyTimeout = 3 * time.Second
	cfg.JoinTimeout = 3 * time.Second
	cfg.Logger = testLogger()
	return cfg
}

func testLogger() *slog.Logger {
	if os.Getenv("RAFTSTORE_LOG") != "" {
		return slog.New(slog.NewTextHandler(os.Stderr, &slog.HandlerOptions{Level: slog.LevelDebug}))
	}
	return slog.New(slog.NewTextHandler(io.Discard, nil))
}

// newCluster starts n replicas: the first bootstraps, the others join it.
func newCluster(t testing.TB, n int, cfgFn func(*Config)) *cluster {
	t.Helper()
	c := &cluster{t: t, net: testnet.New(), ca: sharedCA(), cfgFn: cfgFn}
	t.Cleanup(c.closeAll)
	for i := range n {
		nd := &node{dir: t.TempDir()}
		var join []string
		if i > 0 {
			join = []string{c.nodes[0].addr}
		}
		c.nodes = append(c.nodes, nd)
		if err := c.start(nd, join); err != nil {
			t.Fatalf("start replica %d: %v", i, err)
		}
	}
	c.waitStable()
	return c
}

func (c *cluster) start(nd *node, join []string) error {
	addr := nd.addr
	if addr == "" {
		addr = "127.0.0.1:0"
	}
	var ln net.Listener
	var err error
	// The port of a stopped replica may linger briefly; poll for it.
	deadline := time.Now().Add(5 * time.Second)
	for {
		ln, err = net.Listen("tcp", addr)
		if err == nil || time.Now().After(deadline) {
			break
		}
		time.Sleep(20 * time.Millisecond)
	}
	if err != nil {
		return err
	}
	nd.addr = ln.Addr().String()
	nd.ln = ln
	ca := c.ca
	if ca == nil {
		ca = sharedCA()
	}
	serverTLS, clientTLS, err := ca.ReplicaTLS("replica", []string{"127.0.0.1"})
	if err != nil {
		return err
	}
	nd.mux = netmux.New(ln, serverTLS, pki.IsReplica)
	go nd.mux.Serve()
	dial := c.net.Dialer(nd.addr)
	cfg := testConfig()
	cfg.Dir = nd.dir
	cfg.Advertise = nd.addr
	cfg.Listener = nd.mux.Raft()
	cfg.RaftDial = func(ctx context.Context, addr string) (net.Conn, error) {
		return netmux.DialRaft(ctx, dial, addr, clientTLS)
	}
	cfg.GRPCDialOptions = []grpc.DialOption{grpc.WithTransportCredentials(credentials.NewTLS(clientTLS)), grpc.WithContextDialer(dial)}
	cfg.Join = join
	if c.cfgFn != nil {
		c.cfgFn(&cfg)
	}
	st, err := Open(context.Background(), cfg)
	if err != nil {
		nd.mux.Close()
		return err
	}
	nd.st = st
	nd.srv = grpc.NewServer(grpc.Creds(netmux.ServerCredentials()))
	st.Register(nd.srv)
	go nd.srv.Serve(nd.mux.GRPC())
	return nil
}

// kill stops a replica abruptly (no leave, no leadership transfer).
func (c *cluster) kill(i int) {
	nd := c.nodes[i]
	if nd.st == nil {
		return
	}
	nd.srv.Stop()
	nd.mux.Close()
	_ = nd.st.Close()
	nd.st = nil
}

func (c *cluster) closeAll() {
	for i := range c.nodes {
		c.kill(i)
	}
}

func (c *cluster) Size() int                   { return len(c.nodes) }
func (c *cluster) Store(i int) store.Store     { return c.nodes[i].st }
func (c *cluster) Elector(i int) store.Elector { return c.nodes[i].st }
func (c *cluster) Restart(t testing.TB) {
	c.closeAll()
	for i, nd := range c.nodes {
		if err := c.start(nd, nil); err != nil {
			t.Fatalf("restart replica %d: %v", i, err)
		}
	}
	c.waitStable()
}

// leader returns the index of the established leader, waiting for one.
func (c *cluster) leader() int {
	c.t.Helper()
	var idx int
	waitFor(c.t, 15*time.Second, func() error {
		for i, nd := range c.nodes {
			if nd.st == nil {
				continue
			}
			ls, _, _ := nd.st.leading()
			if ls == nil {
				continue
			}
			select {
			case <-ls.ready:
				idx = i
				return nil
			default:
			}
		}
		return errors.New("no established leader")
	})
	return idx
}

// waitStable waits for an established leader that every live replica agrees on and a full
// configuration.
func (c *cluster) waitStable() {
	c.t.Helper()
	li := c.leader()
	want := c.nodes[li].st.id
	waitFor(c.t, 15*time.Second, func() error {
		for i, nd := range c.nodes {
			if nd.st == nil {
				continue
			}
			if _, id := nd.st.raft.LeaderWithID(); string(id) != want {
				return fmt.Errorf("replica %d sees leader %q, want %q", i, id, want)
			}
		}
		return nil
	})
}

func waitFor(t testing.TB, timeout time.Duration, cond func() error) {
	t.Helper()
	testwait.For(t, timeout, cond)
}

func TestContractSingleReplica(t *testing.T) {
	storetest.Run(t, storetest.Harness{New: func(t testing.TB) storetest.Cluster { return newCluster(t, 1, nil) }})
}

func TestContractThreeReplicas(t *testing.T) {
	storetest.Run(t, storetest.Harness{New: func(t testing.TB) storetest.Cluster { return newCluster(t, 3, nil) }})
}

// Lagger (storetest): cut a follower off, snapshot and truncate the leader's log.
var _ storetest.Lagger = (*cluster)(nil)

func (c *cluster) Follower(t testing.TB) int { return (c.leader() + 1) % len(c.nodes) }
func (c *cluster) Writer(t testing.TB) int   { return c.leader() }
func (c *cluster) Cut(t testing.TB, i int)   { c.net.Isolate(c.nodes[i].addr, true) }
func (c *cluster) Heal(t testing.TB, i int)  { c.net.Isolate(c.nodes[i].addr, false) }

// Forget snapshots every connected replica with a log tail of one entry, so a follower that
// missed entries gets the leader's snapshot installed.
func (c *cluster) Forget(t testing.TB, rev int64) {
	t.Helper()
	for _, nd := range c.nodes {
		if nd.st == nil {
			continue
		}
		if _, cur := nd.st.fsm.get(""); cur < rev {
			continue // the cut-off replica
		}
		r := nd.st.raft
		rc := r.ReloadableConfig()
		short := rc
		short.TrailingLogs = 1
		if err := r.ReloadConfig(short); err != nil {
			t.Fatal(err)
		}
		if err := r.Snapshot().Error(); err != nil {
			t.Fatalf("snapshot: %v", err)
		}
		if err := r.ReloadConfig(rc); err != nil {
			t.Fatal(err)
		}
	}
}
