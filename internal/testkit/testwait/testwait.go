// Package testwait is test tooling (never linked into a product binary; scripts/lint-deps.sh
// checks it): the one way tests wait for a condition, polling it with a deadline instead of
// sleeping a guessed time.
package testwait

import (
	"testing"
	"time"
)

// Every is how often For asks.
const Every = 10 * time.Millisecond

// For polls cond until it returns nil, and fails the test with cond's last error when
// timeout passes first.
func For(t testing.TB, timeout time.Duration, cond func() error) {
	t.Helper()
	deadline := time.Now().Add(timeout)
	tick := time.NewTicker(Every)
	defer tick.Stop()
	for {
		err := cond()
		if err == nil {
			return
		}
		if time.Now().After(deadline) {
			t.Fatalf("condition not met within %v: %v", timeout, err)
		}
		<-tick.C
	}
}
