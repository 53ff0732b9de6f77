package tokens_test

import (
	"context"
	"errors"
	"regexp"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/deckhandhq/deckhand/controller/tokens"
	"github.com/deckhandhq/deckhand/internal/testkit/teststore"
	apiv1 "github.com/deckhandhq/deckhand/proto/deckhand/api/v1"
)

type clock struct {
	mu sync.Mutex
	t  time.Time
}

func (c *clock) now() time.Time      { c.mu.Lock(); defer c.mu.Unlock(); return c.t }
func (c *clock) add(d time.Duration) { c.mu.Lock(); defer c.mu.Unlock(); c.t = c.t.Add(d) }

const agent = apiv1.TokenPurpose_TOKEN_PURPOSE_AGENT

func TestTokenLifecycle(t *testing.T) {
	st := teststore.New(t)
	clk := &clock{t: time.Date(2026, 11, 25, 12, 0, 0, 0, time.UTC)}
	m := tokens.New(st, clk.now)
	ctx := context.Background()

	tok, secret, err := m.Create(ctx, agent, time.Hour, 2, "lab")
	if err != nil {
		t.Fatal(err)
	}
	if !regexp.MustCompile(`^[a-z0-9]{6}\.[a-z0-9]{16}$`).MatchString(secret) || !strings.HasPrefix(secret, tok.GetId()+".") {
		t.Fatalf("token %q has the wrong shape", secret)
	}
	// Only a hash is stored: the secret part appears nowhere in the store.
	kvs, _, _ := st.List(ctx, "/")
	for _, kv := range kvs {
		if strings.Contains(string(kv.Value), strings.SplitN(secret, ".", 2)[1]) {
			t.Fatalf("secret stored in clear under %s", kv.Key)
		}
	}
	// Wrong secret, wrong purpose, malformed: refused.
	for name, bad := range map[string]string{
		"wrong secret": tok.GetId() + ".0000000000000000",
		"malformed":    "not-a-token",
	} {
		if _, err := m.Consume(ctx, bad, agent); !errors.Is(err, tokens.ErrInvalid) {
			t.Errorf("%s: got %v, want ErrInvalid", name, err)
		}
	}
	if _, err := m.Consume(ctx, secret, apiv1.TokenPurpose_TOKEN_PURPOSE_CONTROLLER); !errors.Is(err, tokens.ErrInvalid) || !strings.Contains(err.Error(), "--purpose") {
		t.Errorf("agent token used to join a controller: %v", err)
	}
	// Two uses, then used up.
	for range 2 {
		if _, err := m.Consume(ctx, secret, agent); err != nil {
			t.Fatal(err)
		}
	}
	if _, err := m.Consume(ctx, secret, agent); !errors.Is(err, tokens.ErrInvalid) || !strings.Contains(err.Error(), "used up") {
		t.Fatalf("third use: %v", err)
	}

	// Expiry.
	_, s2, _ := m.Create(ctx, agent, time.Minute, 0, "")
	clk.add(time.Minute)
	if _, err := m.Consume(ctx, s2, agent); !errors.Is(err, tokens.ErrInvalid) || !strings.Contains(err.Error(), "expired") {
		t.Fatalf("expired token: %v", err)
	}

	// Revoked.
	t3, s3, _ := m.Create(ctx, agent, time.Hour, 0, "")
	if err := m.Revoke(ctx, t3.GetId()); err != nil {
		t.Fatal(err)
	}
	if _, err := m.Consume(ctx, s3, agent); !errors.Is(err, tokens.ErrInvalid) {
		t.Fatalf("revoked token: %v", err)
	}
	if err := m.Revoke(ctx, t3.GetId()); !errors.Is(err, tokens.ErrNotFound) {
		t.Fatalf("revoke twice: %v", err)
	}

	// Out-of-range TTLs are refused with the field named.
	for _, ttl := range []time.Duration{time.Second, 8 * 24 * time.Hour} {
		if _, _, err := m.Create(ctx, agent, ttl, 0, ""); !errors.Is(err, tokens.ErrBadRequest) || !strings.Contains(err.Error(), "ttl") {
			t.Errorf("ttl %v: %v", ttl, err)
		}
	}
}

// Concurrent uses never exceed the limit.
func TestTokenUsageLimitUnderConcurrency(t *testing.T) {
	st := teststore.New(t)
	m := tokens.New(st, nil)
	ctx := context.Background()
	_, secret, err := m.Create(ctx, agent, time.Hour, 3, "")
	if err != nil {
		t.Fatal(err)
	}
	var ok atomic.Int32
	var wg sync.WaitGroup
	for range 10 {
		wg.Add(1)
		go func() {
			defer wg.Done()
			if _, err := m.Consume(ctx, secret, agent); err == nil {
				ok.Add(1)
			}
		}()
	}
	wg.Wait()
	if ok.Load() != 3 {
		t.Fatalf("%d of 10 concurrent uses succeeded, want exactly 3", ok.Load())
	}
}
