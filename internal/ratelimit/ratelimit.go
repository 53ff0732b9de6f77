package ratelimit

import (
	"sync"
	"time"
)

// Bucket holds up to burst tokens and gains rate tokens per second. The zero Bucket is
// empty and never refills. A Bucket is not safe for concurrent use; Keyed is.
type Bucket struct {
	rate, burst, tokens float64
	last                time.Time
}

// NewBucket returns a full bucket.
func NewBucket(rate, burst float64, now time.Time) Bucket {
	return Bucket{rate: rate, burst: burst, tokens: burst, last: now}
}

func (b *Bucket) refill(now time.Time) {
	if d := now.Sub(b.last).Seconds(); d > 0 {
		b.tokens = min(b.burst, b.tokens+d*b.rate)
		b.last = now
	}
}

// Take removes n tokens if the bucket holds them and reports whether it did.
func (b *Bucket) Take(n float64, now time.Time) bool {
	b.refill(now)
	if b.tokens < n {
		return false
	}
	b.tokens -= n
	return true
}

// Charge removes n tokens even when that leaves the bucket in debt (a cost known only
// after the work, such as a failed call).
func (b *Bucket) Charge(n float64, now time.Time) {
	b.refill(now)
	b.tokens -= n
	if b.tokens < -b.burst {
		b.tokens = -b.burst
	}
}

// Wait is how long until n tokens are available (0 when they are now).
func (b *Bucket) Wait(n float64, now time.Time) time.Duration {
	b.refill(now)
	if b.tokens >= n {
		return 0
	}
	if b.rate <= 0 {
		return time.Duration(1<<63 - 1)
	}
	return time.Duration((n - b.tokens) / b.rate * float64(time.Second))
}

// Full reports whether the bucket is back to its burst (a key that may be forgotten).
func (b *Bucket) Full(now time.Time) bool {
	b.refill(now)
	return b.tokens >= b.burst
}

// Keyed is a set of buckets by key with the same rate and burst, holding at most maxKeys:
// full buckets are forgotten first, so memory stays bounded whatever keys callers invent.
type Keyed struct {
	rate, burst float64
	maxKeys     int
	now         func() time.Time

	mu      sync.Mutex
	buckets map[string]*Bucket
}

// NewKeyed returns an empty set. now may be nil (time.Now).
func NewKeyed(rate, burst float64, maxKeys int, now func() time.Time) *Keyed {
	if now == nil {
		now = time.Now
	}
	return &Keyed{rate: rate, burst: burst, maxKeys: maxKeys, now: now, buckets: map[string]*Bucket{}}
}

// bucket returns key's bucket, making room for it when the set is full. Call with mu held.
func (k *Keyed) bucket(key string, now time.Time) *Bucket {
	if b, ok := k.buckets[key]; ok {
		return b
	}
	if len(k.buckets) >= k.maxKeys {
		for other, b := range k.buckets {
			if b.Full(now) {
				delete(k.buckets, other)
			}
		}
		for other := range k.buckets { // still full of active keys: forget any one
			if len(k.buckets) < k.maxKeys {
				break
			}
			delete(k.buckets, other)
		}
	}
	b := NewBucket(k.rate, k.burst, now)
	k.buckets[key] = &b
	return &b
}

// Take removes n tokens from key's bucket if it holds them.
func (k *Keyed) Take(key string, n float64) bool {
	k.mu.Lock()
	defer k.mu.Unlock()
	now := k.now()
	return k.bucket(key, now).Take(n, now)
}

// Charge removes n tokens from key's bucket, into debt if need be.
func (k *Keyed) Charge(key string, n float64) {
	k.mu.Lock()
	defer k.mu.Unlock()
	now := k.now()
	k.bucket(key, now).Charge(n, now)
}

// Wait is how long until key's bucket holds n tokens (0: now), without taking them.
func (k *Keyed) Wait(key string, n float64) time.Duration {
	k.mu.Lock()
	defer k.mu.Unlock()
	now := k.now()
	if b, ok := k.buckets[key]; ok {
		return b.Wait(n, now)
	}
	return 0
}

// Len is the number of keys held.
func (k *Keyed) Len() int {
	k.mu.Lock()
	defer k.mu.Unlock()
	return len(k.buckets)
}
