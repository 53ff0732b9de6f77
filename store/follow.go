package store

import (
	"context"
	"time"

	"github.com/deckhandhq/deckhand/internal/backoff"
)

// Follower says what Follow does with what it sees.
type Follower struct {
	// Listed gets each listing of the prefix (this replica's copy), taken before the watch
	// that continues from its revision.
	Listed func([]*KV)
	// NoKeys lists only the revision (Listed gets nil): for a follower that reads what it
	// needs itself when the watch (re)starts.
	NoKeys bool
	// Event gets every change after the listing's revision, in order.
	Event func(Event)
	// Failed, when set, hears about a list or watch that failed (Follow waits Retry and
	// tries again).
	Failed func(error)
	// Retry is the wait after a failed list or watch: 1 s when zero.
	Retry time.Duration
}

// Follow lists prefix and watches it from the listing's revision until ctx ends. When the
// watch ends (compacted after a snapshot install, closed by a leader change) it lists again,
// so no change in the revisions the watch skipped is missed: a follower's state is always a
// listing plus the events after it.
func Follow(ctx context.Context, st Store, prefix string, f Follower) {
	retry := f.Retry
	if retry <= 0 {
		retry = time.Second
	}
	fail := func(err error) bool {
		if f.Failed != nil && ctx.Err() == nil {
			f.Failed(err)
		}
		return backoff.Sleep(ctx, retry)
	}
	for ctx.Err() == nil {
		var kvs []*KV
		var rev int64
		var err error
		if !f.NoKeys {
			kvs, rev, err = st.List(ctx, prefix, Stale())
		} else {
			// No key starts with prefix+"\x00" (keys are text): an empty listing, its revision.
			_, rev, err = st.List(ctx, prefix+"\x00", Stale())
		}
		if err != nil {
			if !fail(err) {
				return
			}
			continue
		}
		if f.Listed != nil {
			f.Listed(kvs)
		}
		ch, err := st.Watch(ctx, prefix, rev)
		if err != nil {
			if !fail(err) {
				return
			}
			continue
		}
		for ev := range ch {
			if ev.Err != nil {
				break // compacted or closed: list again
			}
			if f.Event != nil {
				f.Event(ev)
			}
		}
	}
}
