package audit

import (
	"bytes"
	"context"
	"encoding/json"
	"fmt"
	"log/slog"
	"slices"
	"strings"
	"sync"
	"testing"
	"time"

	"google.golang.org/protobuf/types/known/timestamppb"

	"github.com/deckhandhq/deckhand/internal/testkit/teststore"
	apiv1 "github.com/deckhandhq/deckhand/proto/deckhand/api/v1"
)

func TestExpired(t *testing.T) {
	now := time.Date(2026, 12, 1, 12, 0, 0, 0, time.UTC)
	key := func(ago time.Duration, seq uint64) string { return Prefix + ID(now.Add(-ago), "r1", seq) }
	keys := []string{key(48*time.Hour, 1), key(25*time.Hour, 2), key(2*time.Hour, 3), key(time.Hour, 4), key(0, 5)}
	for _, tc := range []struct {
		name   string
		maxAge time.Duration
		count  int
		want   int // the oldest want keys go
	}{
		{"nothing old, room to spare", 72 * time.Hour, 10, 0},
		{"by age", 24 * time.Hour, 10, 2},
		{"by count", 72 * time.Hour, 3, 2},
		{"by count beyond age", 24 * time.Hour, 1, 4},
		{"everything too old", time.Minute, 10, 4},
	} {
		got := Expired(keys, now, tc.maxAge, tc.count)
		if !slices.Equal(got, keys[:tc.want]) {
			t.Errorf("%s: %d expired, want the oldest %d", tc.name, len(got), tc.want)
		}
	}
}

func TestTrail(t *testing.T) {
	st := teststore.New(t)
	tr := New(st, "r1", teststore.Logger())
	ctx := context.Background()
	base := time.Now().Add(-time.Hour)
	for i, who := range []string{"alice", "bob", "alice"} {
		ev := &apiv1.AuditEvent{Time: timestamppb.New(base.Add(time.Duration(i) * time.Minute)), Subject: who, Role: "operator", Method: fmt.Sprint("/m", i), Nodes: []string{fmt.Sprint("node-", i)}}
		if err := tr.Record(ctx, ev); err != nil {
			t.Fatal(err)
		}
	}
	all, err := tr.List(ctx, Filter{})
	if err != nil || len(all) != 3 || all[0].GetMethod() != "/m0" || all[2].GetMethod() != "/m2" {
		t.Fatalf("List: %v %v, want 3 oldest first", all, err)
	}
	if got, _ := tr.List(ctx, Filter{Who: "alice"}); len(got) != 2 {
		t.Errorf("who=alice: %d events, want 2", len(got))
	}
	if got, _ := tr.List(ctx, Filter{Who: "operator", Node: "node-1"}); len(got) != 1 || got[0].GetSubject() != "bob" {
		t.Errorf("who=operator node=node-1: %v, want bob's", got)
	}
	if got, _ := tr.List(ctx, Filter{Since: base.Add(90 * time.Second)}); len(got) != 1 {
		t.Errorf("since: %d events, want 1", len(got))
	}
	n, err := tr.Prune(ctx, 24*time.Hour, 2)
	if err != nil || n != 1 {
		t.Fatalf("Prune: %d %v, want 1 deleted", n, err)
	}
	if got, _ := tr.List(ctx, Filter{}); len(got) != 2 || got[0].GetMethod() != "/m1" {
		t.Errorf("after pruning: %v", got)
	}
}

// Each record is one JSON line on the log (with --log-format json), for a SIEM.
func TestRecordLogsOneJSONLine(t *testing.T) {
	var buf bytes.Buffer
	tr := New(teststore.New(t), "r1", slog.New(slog.NewJSONHandler(&buf, nil)))
	ev := &apiv1.AuditEvent{Time: timestamppb.Now(), Subject: "alice", Role: "operator", Method: "/deckhand.api.v1.NodeService/DeleteNode", Target: "node-3", Nodes: []string{"node-3"}, Code: "OK", Transport: "rest"}
	if err := tr.Record(context.Background(), ev); err != nil {
		t.Fatal(err)
	}
	var line map[string]any
	if err := json.Unmarshal(bytes.TrimSpace(buf.Bytes()), &line); err != nil {
		t.Fatalf("not one JSON line: %q", buf.String())
	}
	for k, want := range map[string]string{"msg": "audit", "subject": "alice", "role": "operator", "method": ev.Method, "nodes": "node-3", "transport": "rest", "audit_id": ev.GetId(), "code": "OK"} {
		if line[k] != want {
			t.Errorf("%s = %v, want %q", k, line[k], want)
		}
	}
}

func TestDispose(t *testing.T) {
	for _, tc := range []struct {
		name                string
		subject, role, code string
		want                Disposition
	}{
		{"a granted call", "alice", "operator", "OK", Stored},
		{"a failed call", "alice", "operator", "NotFound", Stored},
		{"a refused call", "alice", "viewer", "PermissionDenied", Refused},
		{"a revoked credential", "bob", "operator", "Unauthenticated", Refused},
		{"no certificate", "", "", "Unauthenticated", LogOnly},
		{"an enrollment", "node-2", RoleToken, "OK", Stored},
		{"an enrollment with a bad token", "node-2", RoleToken, "Unauthenticated", LogOnly},
		{"a replica's bad token", "ctl-4", RoleToken, "InvalidArgument", LogOnly},
	} {
		if got := Dispose(&apiv1.AuditEvent{Subject: tc.subject, Role: tc.role, Code: tc.code}); got != tc.want {
			t.Errorf("%s: %v, want %v", tc.name, got, tc.want)
		}
	}
}

// A credential's refusals are stored within their budget; the rest are logged, sampled, and
// counted in its next stored refusal; other credentials keep theirs.
func TestRefusalBudget(t *testing.T) {
	var buf syncBuffer
	tr := New(teststore.New(t), "r1", slog.New(slog.NewJSONHandler(&buf, nil)))
	now := time.Date(2026, 12, 1, 12, 0, 0, 0, time.UTC)
	tr.now = func() time.Time { return now }
	ctx := context.Background()
	refuse := func(serial string) {
		ev := &apiv1.AuditEvent{Time: timestamppb.New(now), Subject: "v-" + serial, Role: "viewer", Serial: serial, Code: "PermissionDenied", Message: "role viewer may not call X"}
		if err := tr.Record(ctx, ev); err != nil {
			t.Fatal(err)
		}
	}
	for range 100 {
		refuse("s1")
	}
	refuse("s2")
	stored := func(who string) []*apiv1.AuditEvent {
		evs, err := tr.List(ctx, Filter{Who: who})
		if err != nil {
			t.Fatal(err)
		}
		return evs
	}
	if n := len(stored("v-s1")); n != RefusalsBurst {
		t.Fatalf("%d of 100 refusals stored, want the burst %d", n, RefusalsBurst)
	}
	if n := len(stored("v-s2")); n != 1 {
		t.Fatalf("another credential's refusal: %d stored, want 1", n)
	}
	if lines := strings.Count(buf.String(), `"stored":false`); lines != LogOnlyBurst {
		t.Errorf("%d log-only lines for 80 refusals at once, want the burst %d", lines, LogOnlyBurst)
	}
	now = now.Add(time.Minute)
	refuse("s1")
	evs := stored("v-s1")
	last := evs[len(evs)-1].GetMessage()
	if len(evs) != RefusalsBurst+1 || !strings.HasPrefix(last, "(and 80 earlier refused calls of this credential, logged but not stored") {
		t.Fatalf("the next stored refusal after a minute: %d stored, message %q", len(evs), last)
	}
	// The next log-only line says how many were left out (60 of the first 80).
	if strings.Contains(buf.String(), `"suppressed_similar"`) {
		t.Fatal("a line said how many were left out before the next log-only line")
	}
	for range RefusalsBurst + 1 {
		refuse("s4") // the last one is over s4's budget: logged only
	}
	if !strings.Contains(buf.String(), `"suppressed_similar":60`) {
		t.Errorf("no log line says how many log-only lines were left out:\n%s", buf.String())
	}
}

type syncBuffer struct {
	mu sync.Mutex
	b  bytes.Buffer
}

func (s *syncBuffer) Write(p []byte) (int, error) {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.b.Write(p)
}

func (s *syncBuffer) String() string {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.b.String()
}
