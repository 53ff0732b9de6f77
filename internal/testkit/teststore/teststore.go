// Package teststore starts a real single-replica raft store for tests. It depends only on
// the store and its transport, so any package's tests can use it, including packages the
// controller imports (which cannot import internal/testkit/testcluster). Test tooling: product code
// never imports it.
package teststore

import (
	"context"
	"io"
	"log/slog"
	"net"
	"os"
	"testing"
	"time"

	"google.golang.org/grpc"
	"google.golang.org/grpc/credentials"

	"github.com/deckhandhq/deckhand/internal/netmux"
	"github.com/deckhandhq/deckhand/internal/pki"
	"github.com/deckhandhq/deckhand/store"
	"github.com/deckhandhq/deckhand/store/raftstore"
)

// Logger is quiet unless DECKHAND_TEST_LOG is set.
func Logger() *slog.Logger {
	if os.Getenv("DECKHAND_TEST_LOG") != "" {
		return slog.New(slog.NewTextHandler(os.Stderr, &slog.HandlerOptions{Level: slog.LevelDebug}))
	}
	return slog.New(slog.NewTextHandler(io.Discard, nil))
}

// New starts a real single-replica raft store (over mTLS on loopback) for packages that
// need a store.Store in their tests; it is closed when the test ends.
func New(t testing.TB) store.Store {
	t.Helper()
	ca, err := pki.NewCA("test")
	if err != nil {
		t.Fatal(err)
	}
	serverTLS, clientTLS, err := ca.ReplicaTLS("test", []string{"127.0.0.1"})
	if err != nil {
		t.Fatal(err)
	}
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	mux := netmux.New(ln, serverTLS, pki.IsReplica)
	go mux.Serve()
	cfg := raftstore.DefaultConfig()
	cfg.Dir = t.TempDir()
	cfg.Advertise = ln.Addr().String()
	cfg.Listener = mux.Raft()
	cfg.RaftDial = func(ctx context.Context, addr string) (net.Conn, error) {
		return netmux.DialRaft(ctx, nil, addr, clientTLS)
	}
	cfg.GRPCDialOptions = []grpc.DialOption{grpc.WithTransportCredentials(credentials.NewTLS(clientTLS))}
	cfg.HeartbeatTimeout, cfg.ElectionTimeout, cfg.LeaderLeaseTimeout = 200*time.Millisecond, 200*time.Millisecond, 100*time.Millisecond
	cfg.Logger = Logger()
	st, err := raftstore.Open(context.Background(), cfg)
	if err != nil {
		t.Fatal(err)
	}
	srv := grpc.NewServer(grpc.Creds(netmux.ServerCredentials()))
	st.Register(srv)
	go srv.Serve(mux.GRPC())
	t.Cleanup(func() {
		srv.Stop()
		_ = st.Close()
		mux.Close()
	})
	return st
}
