package lincheck

import (
	"context"
	"errors"
	"sync"
	"time"

	"github.com/deckhandhq/deckhand/store"
)

// wevent is one event a watcher received.
type wevent struct {
	rev   int64
	typ   store.EventType
	key   string
	value string
}

// gap is a range of revisions (from, to] a watcher announced it skipped: its watch ended
// with ErrCompacted and it resumed at its replica's current revision, as a client must.
type gap struct{ from, to int64 }

// watcher keeps one whole-keyspace watch open on one replica, resuming after the last
// revision it saw whenever the watch ends (a restart, a partition).
type watcher struct {
	replica int
	c       Cluster

	mu     sync.Mutex
	events []wevent
	gaps   []gap
	from   int64
}

func (w *watcher) last() int64 {
	w.mu.Lock()
	defer w.mu.Unlock()
	return w.from
}

func (w *watcher) run(ctx context.Context) {
	for ctx.Err() == nil {
		s := w.c.Store(w.replica)
		if s == nil {
			time.Sleep(20 * time.Millisecond) // the replica is down; wait for its restart
			continue
		}
		ch, err := s.Watch(ctx, "", w.last())
		if err != nil {
			if errors.Is(err, store.ErrCompacted) {
				w.skip(ctx, s)
			}
			time.Sleep(20 * time.Millisecond)
			continue
		}
		for ev := range ch {
			if ev.Err != nil {
				if errors.Is(ev.Err, store.ErrCompacted) {
					w.skip(ctx, s)
				}
				break
			}
			e := wevent{rev: ev.Revision, typ: ev.Type}
			if ev.KV != nil {
				e.key, e.value = ev.KV.Key, string(ev.KV.Value)
			}
			w.mu.Lock()
			w.events = append(w.events, e)
			w.from = max(w.from, ev.Revision)
			w.mu.Unlock()
		}
	}
}

// skip resumes the watcher at its replica's current revision and records the gap.
func (w *watcher) skip(ctx context.Context, s store.Store) {
	rctx, cancel := context.WithTimeout(ctx, 2*time.Second)
	defer cancel()
	_, rev, err := s.List(rctx, fencePrefix+"none/", store.Stale())
	if err != nil {
		return
	}
	w.mu.Lock()
	defer w.mu.Unlock()
	if rev > w.from {
		w.gaps = append(w.gaps, gap{from: w.from, to: rev})
		w.from = rev
	}
}
