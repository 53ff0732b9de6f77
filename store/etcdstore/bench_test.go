package etcdstore

import (
	"fmt"
	"testing"
	"time"

	"github.com/deckhandhq/deckhand/internal/testkit/testetcd"
	"github.com/deckhandhq/deckhand/store/storetest"
)

// BenchmarkWrite measures committed writes on a real 3-member etcd cluster on loopback with
// etcd's default raft timing (heartbeat 100ms, election 1s): throughput and commit latency
// for 1 and 64 concurrent writers, the same shape as raftstore's BenchmarkWrite so make
// bench compares the two. Each write is a 256-byte put of a distinct key through
// Store.Txn, sent to the etcd leader, acknowledged once a quorum has fsynced it and the
// leader applied it.
func BenchmarkWrite(b *testing.B) {
	for _, writers := range []int{1, 64} {
		b.Run(fmt.Sprintf("replicas=3/writers=%d", writers), func(b *testing.B) {
			ec := testetcd.Start(b, testetcd.Options{Members: 3, HeartbeatInterval: 100 * time.Millisecond, ElectionTimeout: time.Second})
			cfg := testConfig("bench", []string{ec.Endpoint(ec.Leader())})
			cfg.RequestTimeout = 30 * time.Second
			s := open(b, cfg)
			storetest.BenchWrites(b, s, writers)
		})
	}
}
