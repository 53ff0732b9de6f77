package storetest

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

// BenchWrites runs b.N committed writes against s from writers goroutines, each a 256-byte
// put of a distinct key, and reports writes/s and the p50 and p99 commit latency: the same
// measurement for every backend, so their figures compare within one run.
func BenchWrites(b *testing.B, s store.Store, writers int) {
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
}
