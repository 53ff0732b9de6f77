package controller

import (
	"context"
	"io"
	"log/slog"
	"net"
	"os"
	"path/filepath"
	"slices"
	"testing"
	"time"

	"github.com/deckhandhq/deckhand/controller/api"
	"github.com/deckhandhq/deckhand/store"
)

// admin.conf is how an operator mints the controller token another controller joins with;
// it appears only once that controller would be handed the CA (the CA is in the store).
func TestAdminConfWrittenOnlyOnceTheCAIsPublished(t *testing.T) {
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	addr := ln.Addr().String()
	ln.Close()
	cfg := DefaultConfig()
	cfg.DataDir = t.TempDir()
	cfg.Listen = addr
	cfg.Logger = slog.New(slog.NewTextHandler(io.Discard, nil))
	cfg.Raft.HeartbeatTimeout, cfg.Raft.ElectionTimeout, cfg.Raft.LeaderLeaseTimeout = 300*time.Millisecond, 300*time.Millisecond, 150*time.Millisecond
	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	c, err := New(ctx, cfg)
	if err != nil {
		t.Fatal(err)
	}
	path := filepath.Join(cfg.DataDir, "admin.conf")
	published := func() bool {
		_, _, err := c.store.Get(ctx, api.CAKey, store.Stale())
		return err == nil
	}
	if _, err := os.Stat(path); err == nil && !published() {
		t.Fatal("admin.conf was written before the CA was published in the store: a controller token made with it cannot be used to join yet")
	}
	done := make(chan struct{})
	go func() { defer close(done); _ = c.Run(ctx) }()
	deadline := time.Now().Add(30 * time.Second)
	for _, err := os.Stat(path); err != nil; _, err = os.Stat(path) {
		if time.Now().After(deadline) {
			t.Fatalf("no admin.conf within 30s: %v", err)
		}
		time.Sleep(20 * time.Millisecond) // polling a condition with a deadline
	}
	if !published() {
		t.Fatal("admin.conf exists but the CA is not in the store")
	}
	cancel()
	<-done
}

func TestAdminConfControllers(t *testing.T) {
	for _, tc := range []struct {
		self     string
		replicas []string
		want     []string
	}{
		{"a:1", nil, []string{"a:1"}},
		{"a:1", []string{"a:1"}, []string{"a:1"}},
		{"b:1", []string{"a:1", "b:1", "c:1"}, []string{"b:1", "a:1", "c:1"}},
		{"a:1", []string{"", "c:1", "c:1"}, []string{"a:1", "c:1"}},
	} {
		if got := adminConfControllers(tc.self, tc.replicas); !slices.Equal(got, tc.want) {
			t.Errorf("adminConfControllers(%s, %v) = %v, want %v", tc.self, tc.replicas, got, tc.want)
		}
	}
}
