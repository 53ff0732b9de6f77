package raftstore

import (
	"context"
	"fmt"
	"strings"
	"sync"

	"github.com/deckhandhq/deckhand/store"
)

// maxPending bounds the events queued for one slow watcher; past it the watch ends with
// ErrCompacted and the client re-lists, as etcd does for a watcher that falls too far behind.
const maxPending = 100_000

type watcher struct {
	prefix   string
	startRev int64 // events at or below this were delivered from history

	mu      sync.Mutex
	pending []store.Event
	failed  error
	wake    chan struct{}
}

type watchHub struct {
	mu       sync.Mutex
	watchers map[*watcher]struct{}
}

func newWatchHub() *watchHub { return &watchHub{watchers: map[*watcher]struct{}{}} }

// publish hands the events of one applied batch to every watcher. It never blocks.
func (h *watchHub) publish(events []store.Event) {
	h.mu.Lock()
	defer h.mu.Unlock()
	for w := range h.watchers {
		w.mu.Lock()
		if w.failed == nil {
			for _, ev := range events {
				if ev.Revision > w.startRev && strings.HasPrefix(ev.KV.Key, w.prefix) {
					w.pending = append(w.pending, ev)
				}
			}
			if len(w.pending) > maxPending {
				w.pending = nil
				w.failed = fmt.Errorf("watcher on %q fell %d events behind: %w", w.prefix, maxPending, store.ErrCompacted)
			}
		}
		w.mu.Unlock()
		select {
		case w.wake <- struct{}{}:
		default:
		}
	}
}

// compactAll ends every live watch with ErrCompacted: the state was replaced by a snapshot
// (a follower that fell behind installed the leader's), so the events between a watcher's
// position and the snapshot's revision are not known here. Watchers first get what was
// already queued for them, then the error; callers re-list and watch again. Call with the
// FSM lock held, so no watcher registers against the state being replaced.
func (h *watchHub) compactAll(rev int64) {
	h.mu.Lock()
	defer h.mu.Unlock()
	for w := range h.watchers {
		w.mu.Lock()
		if w.failed == nil {
			w.failed = fmt.Errorf("watcher on %q: this replica installed a snapshot at revision %d and skipped the history before it: %w", w.prefix, rev, store.ErrCompacted)
		}
		w.mu.Unlock()
		select {
		case w.wake <- struct{}{}:
		default:
		}
	}
}

// closeAll ends every watch (the store is closing).
func (h *watchHub) closeAll() {
	h.mu.Lock()
	defer h.mu.Unlock()
	for w := range h.watchers {
		w.mu.Lock()
		if w.failed == nil {
			w.failed = store.ErrClosed
		}
		w.mu.Unlock()
		select {
		case w.wake <- struct{}{}:
		default:
		}
	}
}

// watch registers a watcher atomically with reading its backlog from the FSM history.
func (s *Store) watch(ctx context.Context, prefix string, after int64) (<-chan store.Event, error) {
	w := &watcher{prefix: prefix, wake: make(chan struct{}, 1)}
	s.fsm.mu.RLock()
	backlog, err := s.fsm.historySinceLocked(prefix, after)
	if err == nil {
		// A lagging replica may not have applied after yet: events up to it are not wanted.
		w.startRev = max(s.fsm.revision, after)
		w.pending = backlog
		s.hub.mu.Lock()
		s.hub.watchers[w] = struct{}{}
		s.hub.mu.Unlock()
	}
	s.fsm.mu.RUnlock()
	if err != nil {
		return nil, err
	}
	out := make(chan store.Event)
	go func() {
		defer close(out)
		defer func() {
			s.hub.mu.Lock()
			delete(s.hub.watchers, w)
			s.hub.mu.Unlock()
		}()
		for {
			w.mu.Lock()
			batch, failed := w.pending, w.failed
			w.pending = nil
			w.mu.Unlock()
			for _, ev := range batch {
				select {
				case out <- ev:
				case <-ctx.Done():
					return
				}
			}
			if failed != nil {
				select {
				case out <- store.Event{Err: failed}:
				case <-ctx.Done():
				}
				return
			}
			if len(batch) > 0 {
				continue
			}
			select {
			case <-w.wake:
			case <-ctx.Done():
				return
			}
		}
	}()
	return out, nil
}
