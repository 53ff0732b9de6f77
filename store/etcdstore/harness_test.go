package etcdstore

import (
	"context"
	"fmt"
	"io"
	"log/slog"
	"os"
	"testing"
	"time"

	"github.com/deckhandhq/deckhand/internal/testkit/testetcd"
	"github.com/deckhandhq/deckhand/store"
	"github.com/deckhandhq/deckhand/store/storetest"
)

func testLogger() *slog.Logger {
	if os.Getenv("ETCDSTORE_LOG") != "" {
		return slog.New(slog.NewTextHandler(os.Stderr, &slog.HandlerOptions{Level: slog.LevelDebug}))
	}
	return slog.New(slog.NewTextHandler(io.Discard, nil))
}

// testConfig is a config for replica id against endpoints, with a short session TTL.
func testConfig(id string, endpoints []string) Config {
	cfg := DefaultConfig()
	cfg.Endpoints = endpoints
	cfg.ID = id
	cfg.Address = "127.0.0.1:7400"
	cfg.SessionTTL = 2 * time.Second
	cfg.Logger = testLogger()
	return cfg
}

// open opens a store that the test closes at its end.
func open(t testing.TB, cfg Config) *Store {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	s, err := Open(ctx, cfg)
	if err != nil {
		t.Fatalf("open etcd store: %v", err)
	}
	t.Cleanup(func() { _ = s.Close() })
	return s
}

// cluster is one etcd cluster with one store per member, each talking to its member only,
// so "every replica" in the contract suite means every etcd member.
type cluster struct {
	etcd   *testetcd.Cluster
	stores []*Store
}

func newCluster(t testing.TB, members int) *cluster {
	t.Helper()
	c := &cluster{etcd: testetcd.Start(t, testetcd.Options{Members: members})}
	for i := range members {
		c.stores = append(c.stores, open(t, testConfig(fmt.Sprintf("replica-%d", i), []string{c.etcd.Endpoint(i)})))
	}
	return c
}

func (c *cluster) Size() int                   { return len(c.stores) }
func (c *cluster) Store(i int) store.Store     { return c.stores[i] }
func (c *cluster) Elector(i int) store.Elector { return c.stores[i] }

// Restart kills every etcd member (SIGKILL, no graceful stop) and starts them again from
// their data dirs. The stores keep their clients, which reconnect.
func (c *cluster) Restart(t testing.TB) {
	t.Helper()
	c.etcd.KillAll()
	c.etcd.RestartAll()
}

func TestContractOneMember(t *testing.T) {
	storetest.Run(t, storetest.Harness{New: func(t testing.TB) storetest.Cluster { return newCluster(t, 1) }})
}

func TestContractThreeMembers(t *testing.T) {
	storetest.Run(t, storetest.Harness{New: func(t testing.TB) storetest.Cluster { return newCluster(t, 3) }})
}

// Lagger (storetest): kill a member, compact, restart it.
var _ storetest.Lagger = (*cluster)(nil)

func (c *cluster) Follower(t testing.TB) int { return (c.etcd.Leader() + 1) % len(c.stores) }
func (c *cluster) Writer(t testing.TB) int   { return c.etcd.Leader() }
func (c *cluster) Cut(t testing.TB, i int)   { c.etcd.Kill(i) }
func (c *cluster) Heal(t testing.TB, i int)  { c.etcd.Restart(i) }
func (c *cluster) Forget(t testing.TB, rev int64) {
	t.Helper()
	if err := c.stores[c.Writer(t)].Compact(context.Background(), rev); err != nil {
		t.Fatal(err)
	}
}
