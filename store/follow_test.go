package store_test

import (
	"context"
	"fmt"
	"sync"
	"testing"
	"time"

	"github.com/deckhandhq/deckhand/internal/teststore"
	"github.com/deckhandhq/deckhand/internal/testwait"
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
