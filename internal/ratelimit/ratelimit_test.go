package ratelimit

import (
	"fmt"
	"testing"
	"time"
)

func TestBucketRefillsAtItsRateUpToItsBurst(t *testing.T) {
	t0 := time.Unix(1000, 0)
	b := NewBucket(2, 5, t0)
	for i := range 5 {
		if !b.Take(1, t0) {
			t.Fatalf("take %d of a full bucket of 5 failed", i)
		}
	}
	if b.Take(1, t0) {
		t.Fatal("took from an empty bucket")
	}
	if w := b.Wait(1, t0); w != 500*time.Millisecond {
		t.Fatalf("wait for 1 token at 2/s: %v", w)
	}
	if !b.Take(1, t0.Add(500*time.Millisecond)) {
		t.Fatal("no token after 0.5s at 2/s")
	}
	if !b.Full(t0.Add(time.Hour)) || !b.Take(5, t0.Add(time.Hour)) || b.Take(1, t0.Add(time.Hour)) {
		t.Fatal("the bucket did not stop refilling at its burst")
	}
	b.Charge(10, t0.Add(time.Hour))
	if b.Take(1, t0.Add(time.Hour+2*time.Second)) {
		t.Fatal("a charge into debt was forgotten")
	}
}

func TestKeyedStaysBoundedWhateverKeysCallersInvent(t *testing.T) {
	now := time.Unix(1000, 0)
	k := NewKeyed(1, 3, 100, func() time.Time { return now })
	for i := range 10000 {
		k.Charge(fmt.Sprint("attacker-", i), 3)
	}
	if n := k.Len(); n > 100 {
		t.Fatalf("%d keys held, want at most 100", n)
	}
	k.Charge("a", 3)
	if k.Take("a", 1) {
		t.Fatal("an empty key's bucket gave a token")
	}
	if !k.Take("b", 1) {
		t.Fatal("another key was refused")
	}
}
