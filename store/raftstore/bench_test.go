package raftstore

import (
	"context"
	"fmt"
	"slices"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/deckhandhq/deckhand/store"
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
			val := make([]byte, 256)
			lat := make([]time.Duration, b.N)
			var next atomic.Int64
			b.ResetTimer()
			start := time.Now()
			var wg sync.WaitGroup
			for w := 0; w < writers; w++ {
				wg.Add(1)
				go func() {
					defer wg.Done()
					for {
						i := next.Add(1) - 1
						if i >= int64(b.N) {
							return
						}
						t0 := time.Now()
						_, err := s.Txn(context.Background(), store.Txn{Then: []store.Op{store.Put(fmt.Sprintf("/bench/%d/%d", w, i), val)}})
						lat[i] = time.Since(t0)
						if err != nil {
							b.Error(err)
							return
						}
					}
				}()
			}
			wg.Wait()
			elapsed := time.Since(start)
			b.StopTimer()
			slices.Sort(lat)
			b.ReportMetric(float64(b.N)/elapsed.Seconds(), "writes/s")
			b.ReportMetric(float64(lat[len(lat)/2].Microseconds())/1000, "p50-ms")
			b.ReportMetric(float64(lat[len(lat)*99/100].Microseconds())/1000, "p99-ms")
			b.ReportMetric(0, "ns/op")
		})
	}
}
