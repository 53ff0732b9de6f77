package controller

import (
	"context"
	"io"
	"log/slog"
	"net"
	"testing"
	"time"

	"google.golang.org/protobuf/proto"

	"github.com/deckhandhq/deckhand/controller/nodes"
	"github.com/deckhandhq/deckhand/controller/sessions"
	apiv1 "github.com/deckhandhq/deckhand/proto/deckhand/api/v1"
	"github.com/deckhandhq/deckhand/store"
)

// A replica whose node watch skipped revisions (ErrCompacted after a snapshot install)
// listed the records again but kept only the revision: the session of a node deleted or
// enrolled again in between stayed open. The loop's reconcile after each list ends them.
func TestReconcileAfterAListEndsTheSessionsOfChangedNodes(t *testing.T) {
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
	done := make(chan struct{})
	go func() { defer close(done); _ = c.Run(ctx) }()
	defer func() { cancel(); <-done }()

	put := func(name, serial string) {
		b, _ := proto.Marshal(&apiv1.Node{Name: name, CertificateSerial: serial})
		deadline := time.Now().Add(20 * time.Second)
		for {
			_, err := c.store.Txn(ctx, store.Txn{Then: []store.Op{store.Put(nodes.Prefix+name, b)}})
			if err == nil {
				return
			}
			if time.Now().After(deadline) {
				t.Fatalf("put %s: %v", name, err)
			}
			time.Sleep(50 * time.Millisecond) // polling for a leader with a deadline
		}
	}
	put("kept", "aa")
	put("reenrolled", "new")
	// Sessions this replica holds while its watch missed what happened to their records:
	// "deleted" has no record any more, "reenrolled" a record with another certificate.
	kept := c.sessions.Open(ctx, "kept", "aa", nil)
	deleted := c.sessions.Open(ctx, "deleted", "dd", nil)
	reenrolled := c.sessions.Open(ctx, "reenrolled", "old", nil)
	c.limits.Assigned("deleted", "task-1") // it has budgets here

	kvs, _, err := c.store.List(ctx, nodes.Prefix, store.Stale())
	if err != nil {
		t.Fatal(err)
	}
	c.reconcileSessions(ctx, kvs)

	if err := kept.Context().Err(); err != nil {
		t.Fatalf("the session of a node whose record is unchanged ended: %v", context.Cause(kept.Context()))
	}
	for s, why := range map[*sessions.Session]string{deleted: sessions.StaleDeleted, reenrolled: sessions.StaleReenrolled} {
		if cause := context.Cause(s.Context()); cause == nil || cause.Error() != why {
			t.Errorf("session of %s: ended with %v, want %q", s.Node, cause, why)
		}
	}
	for _, n := range c.limits.Nodes() {
		if n == "deleted" {
			t.Error("the deleted node's budgets were kept")
		}
	}
	if c.sessions.Get("kept") != kept || c.sessions.Count() != 1 {
		t.Fatalf("sessions left: %d", c.sessions.Count())
	}
}
