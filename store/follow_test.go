package store_test

import (
	"context"
	"errors"
	"fmt"
	"sync"
	"testing"
	"time"

	"github.com/deckhandhq/deckhand/internal/testkit/teststore"
	"github.com/deckhandhq/deckhand/internal/testkit/testwait"
	"github.com/deckhandhq/deckhand/store"
)

// Follow hands over a listing and then every change after it, and nothing of other prefixes.
func TestFollowListsThenWatches(t *testing.T) {
	st := teststore.New(t)
	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	put := func(k, v string) {
		t.Helper()
		if _, err := st.Txn(ctx, store.Txn{Then: []store.Op{store.Put(k, []byte(v))}}); err != nil {
			t.Fatal(err)
		}
	}
	put("/f/a", "1")
	put("/other/x", "1")
	var mu sync.Mutex
	var seen []string
	done := make(chan struct{})
	go func() {
		defer close(done)
		store.Follow(ctx, st, "/f/", store.Follower{
			Listed: func(kvs []*store.KV) {
				mu.Lock()
				defer mu.Unlock()
				for _, kv := range kvs {
					seen = append(seen, "list "+kv.Key+"="+string(kv.Value))
				}
			},
			Event: func(ev store.Event) {
				mu.Lock()
				defer mu.Unlock()
				seen = append(seen, fmt.Sprintf("%v %s", ev.Type, ev.KV.Key))
			},
			Retry: 10 * time.Millisecond,
		})
	}()
	testwait.For(t, 10*time.Second, func() error {
		mu.Lock()
		defer mu.Unlock()
		if len(seen) == 0 {
			return fmt.Errorf("nothing listed yet")
		}
		return nil
	})
	put("/f/b", "2")
	put("/other/y", "2")
	if _, err := st.Txn(ctx, store.Txn{Then: []store.Op{store.Delete("/f/a")}}); err != nil {
		t.Fatal(err)
	}
	want := fmt.Sprint([]string{"list /f/a=1", "PUT /f/b", "DELETE /f/a"})
	testwait.For(t, 10*time.Second, func() error {
		mu.Lock()
		defer mu.Unlock()
		if fmt.Sprint(seen) != want {
			return fmt.Errorf("followed %v, want %v", seen, want)
		}
		return nil
	})
	cancel()
	select {
	case <-done:
	case <-time.After(10 * time.Second):
		t.Fatal("Follow did not return when its context ended")
	}
}

// flaky fails its first List, and ends its first watch with ErrCompacted, as a follower's
// watch ends after a snapshot install.
type flaky struct {
	store.Store
	mu           sync.Mutex
	lists        int
	watches      int
	failedLists  int
	compactedOne bool
}

func (f *flaky) List(ctx context.Context, prefix string, opts ...store.ReadOption) ([]*store.KV, int64, error) {
	f.mu.Lock()
	f.lists++
	fail := f.failedLists == 0
	if fail {
		f.failedLists++
	}
	f.mu.Unlock()
	if fail {
		return nil, 0, errors.New("no leader")
	}
	return f.Store.List(ctx, prefix, opts...)
}

func (f *flaky) Watch(ctx context.Context, prefix string, rev int64) (<-chan store.Event, error) {
	f.mu.Lock()
	f.watches++
	first := !f.compactedOne
	f.compactedOne = true
	f.mu.Unlock()
	if first {
		ch := make(chan store.Event, 1)
		ch <- store.Event{Err: store.ErrCompacted}
		close(ch)
		return ch, nil
	}
	return f.Store.Watch(ctx, prefix, rev)
}

// A failed list is reported and retried; a watch that ends (compacted) makes Follow list
// again, so the follower sees the state it may have missed.
func TestFollowRetriesAndListsAgain(t *testing.T) {
	f := &flaky{Store: teststore.New(t)}
	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	if _, err := f.Txn(ctx, store.Txn{Then: []store.Op{store.Put("/f/a", []byte("1"))}}); err != nil {
		t.Fatal(err)
	}
	var mu sync.Mutex
	listings, failures := 0, 0
	go store.Follow(ctx, f, "/f/", store.Follower{
		Listed: func([]*store.KV) { mu.Lock(); listings++; mu.Unlock() },
		Failed: func(error) { mu.Lock(); failures++; mu.Unlock() },
		Retry:  10 * time.Millisecond,
	})
	testwait.For(t, 10*time.Second, func() error {
		mu.Lock()
		defer mu.Unlock()
		if failures != 1 || listings != 2 {
			return fmt.Errorf("%d failed lists reported, %d listings; want 1 and 2 (the second after the compacted watch)", failures, listings)
		}
		return nil
	})
}
