package raftstore

import (
	"fmt"
	"testing"
	"time"

	"github.com/deckhandhq/deckhand/store/storetest"
)

// BenchmarkWrite measures committed writes on a 3-replica cluster on loopback with the
// production raft timing: throughput and commit latency for 1 and 64 concurrent writers.
// Each write is a 256-byte put of a distinct key, sent to the leader, acknowledged once a
// quorum has fsynced it and the leader's FSM applied it.
func BenchmarkWrite(b *testing.B) {
	for _, writers := range []int{1, 64} {
		b.Run(fmt.Sprintf("replicas=3/writers=%d", writers), func(b *testing.B) {
			c := newCluster(b, 3, func(cfg *Config) {
				prod := DefaultConfig()
				cfg.HeartbeatTimeout = prod.HeartbeatTimeout
				cfg.ElectionTimeout = prod.ElectionTimeout
				cfg.LeaderLeaseTimeout = prod.LeaderLeaseTimeout
				cfg.ApplyTimeout = 30 * time.Second
			})
			s := c.nodes[c.leader()].st
			storetest.BenchWrites(b, s, writers)
		})
	}
}
