// Package audit keeps the audit trail in the store: one record per call that changes
// something (or was refused or failed trying), written before the controller answers it,
// read back by deckctl audit and the dashboard, and pruned by age and count by the leader.
package audit

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"slices"
	"strings"
	"sync"
	"sync/atomic"
	"time"

	"google.golang.org/grpc/codes"
	"google.golang.org/protobuf/proto"

	"github.com/deckhandhq/deckhand/internal/ratelimit"
	apiv1 "github.com/deckhandhq/deckhand/proto/deckhand/api/v1"
	"github.com/deckhandhq/deckhand/store"
)

// Prefix is where the records live; a record's key is Prefix + its ID, and IDs sort by time.
const Prefix = "/audit/events/"

// Retention defaults: records older than DefaultRetention, and beyond the newest
// DefaultRetentionCount, are deleted.
const (
	DefaultRetention      = 90 * 24 * time.Hour
	DefaultRetentionCount = 10000
	// MaxRetentionCount bounds the records kept (each up to a few kB, held by every replica).
	MaxRetentionCount = 100000
	// WriteTimeout bounds the write of one record.
	WriteTimeout = 5 * time.Second
)

// Budgets of what callers can make the trail hold: the refusals stored per credential, and
// the lines logged for calls that are not stored.
const (
	RefusalsBurst     = 20
	RefusalsPerMinute = 10
	LogOnlyBurst      = 20
	LogOnlyPerSecond  = 1
	// maxTracked bounds the credentials whose refusals are counted.
	maxTracked = 4096
)

// Trail records and reads the audit trail.
type Trail struct {
	st      store.Store
	replica string
	log     *slog.Logger
	now     func() time.Time
	seq     atomic.Uint64

	refusals *ratelimit.Keyed // by certificate serial
	logOnly  *ratelimit.Keyed // one key

	mu         sync.Mutex
	suppressed map[string]int // refusals logged but not stored, by serial, until the next stored one
	unlogged   int            // log-only lines left out, until the next one written
}

// New returns the trail of replica in st. log receives every record as one JSON-ready line
// (msg "audit"), for a SIEM.
func New(st store.Store, replica string, log *slog.Logger) *Trail {
	t := &Trail{st: st, replica: replica, log: log, now: time.Now, suppressed: map[string]int{}}
	now := func() time.Time { return t.now() }
	t.refusals = ratelimit.NewKeyed(RefusalsPerMinute/60.0, RefusalsBurst, maxTracked, now)
	t.logOnly = ratelimit.NewKeyed(LogOnlyPerSecond, LogOnlyBurst, 1, now)
	return t
}

// ID is a record's sortable ID at t: nanoseconds, the replica, a sequence number.
func ID(t time.Time, replica string, seq uint64) string {
	return fmt.Sprintf("%020d-%s-%010d", t.UnixNano(), replica, seq)
}

// Disposition is what becomes of a record.
type Disposition int

const (
	// Stored in the trail (and logged).
	Stored Disposition = iota + 1
	// Logged only: a caller without a valid certificate, or a failed token-authenticated
	// call (Enroll, FetchCA) whose token did not prove anyone. A flood of them must not cost
	// store writes; their log lines are sampled.
	LogOnly
	// Refused: a refused call by a certificate holder, stored within its credential's budget.
	Refused
)

// Dispose decides what becomes of ev.
func Dispose(ev *apiv1.AuditEvent) Disposition {
	switch {
	case ev.GetSubject() == "" && ev.GetRole() == "":
		return LogOnly
	case ev.GetRole() == RoleToken && ev.GetCode() != codes.OK.String():
		return LogOnly
	case ev.GetCode() == codes.PermissionDenied.String() || ev.GetCode() == codes.Unauthenticated.String():
		return Refused
	}
	return Stored
}

// RoleToken is the role of the callers a bootstrap token authenticates (Enroll, FetchCA).
const RoleToken = "token"

// Record keeps ev as Dispose says: stored (ID and replica filled in) and logged; a refusal
// beyond its credential's budget logged only, and counted in the next stored refusal of that
// credential; a log-only record logged, sampled. A record that cannot be stored (no quorum)
// is still logged, at error level, so it is not lost.
func (t *Trail) Record(ctx context.Context, ev *apiv1.AuditEvent) error {
	ev.Replica = t.replica
	ev.Id = ID(ev.GetTime().AsTime(), t.replica, t.seq.Add(1))
	switch Dispose(ev) {
	case LogOnly:
		t.logSampled(ev)
		return nil
	case Refused:
		t.mu.Lock()
		if !t.refusals.Take(ev.GetSerial(), 1) {
			if len(t.suppressed) < maxTracked || t.suppressed[ev.GetSerial()] > 0 {
				t.suppressed[ev.GetSerial()]++
			}
			t.mu.Unlock()
			t.logSampled(ev)
			return nil
		}
		if n := t.suppressed[ev.GetSerial()]; n > 0 {
			ev.Message = fmt.Sprintf("(and %d earlier refused calls of this credential, logged but not stored: over %d a minute) %s", n, RefusalsPerMinute, ev.GetMessage())
			delete(t.suppressed, ev.GetSerial())
		}
		t.mu.Unlock()
	}
	b, err := proto.Marshal(ev)
	if err == nil {
		wctx, cancel := context.WithTimeout(context.WithoutCancel(ctx), WriteTimeout)
		_, err = t.st.Txn(wctx, store.Txn{Then: []store.Op{store.Put(Prefix+ev.Id, b)}})
		cancel()
	}
	attrs := LogAttrs(ev)
	if err != nil {
		t.log.Error("audit", append(attrs, "stored", false, "err", err.Error())...)
		return err
	}
	t.log.Info("audit", attrs...)
	return nil
}

// logSampled logs ev without storing it, at most LogOnlyBurst lines at once and
// LogOnlyPerSecond after that; the next line written says how many were left out.
func (t *Trail) logSampled(ev *apiv1.AuditEvent) {
	t.mu.Lock()
	if !t.logOnly.Take("", 1) {
		t.unlogged++
		t.mu.Unlock()
		return
	}
	n := t.unlogged
	t.unlogged = 0
	t.mu.Unlock()
	attrs := append(LogAttrs(ev), "stored", false)
	if n > 0 {
		attrs = append(attrs, "suppressed_similar", n)
	}
	t.log.Info("audit", attrs...)
}

// LogAttrs are the log fields of ev.
func LogAttrs(ev *apiv1.AuditEvent) []any {
	return []any{
		"audit_id", ev.GetId(), "time", ev.GetTime().AsTime().UTC().Format(time.RFC3339Nano),
		"subject", ev.GetSubject(), "role", ev.GetRole(), "serial", ev.GetSerial(),
		"method", ev.GetMethod(), "target", ev.GetTarget(), "nodes", strings.Join(ev.GetNodes(), ","),
		"request", ev.GetRequest(), "code", ev.GetCode(), "reason", ev.GetReason(), "message", ev.GetMessage(),
		"transport", ev.GetTransport(), "peer", ev.GetPeer(), "duration", ev.GetDuration().AsDuration().String(),
	}
}

// Filter selects records.
type Filter struct {
	Since time.Time
	// Who is a credential name or a role.
	Who  string
	Node string
}

// Match reports whether ev passes f.
func (f Filter) Match(ev *apiv1.AuditEvent) bool {
	if !f.Since.IsZero() && ev.GetTime().AsTime().Before(f.Since) {
		return false
	}
	if f.Who != "" && ev.GetSubject() != f.Who && ev.GetRole() != f.Who {
		return false
	}
	if f.Node != "" && !slices.Contains(ev.GetNodes(), f.Node) {
		return false
	}
	return true
}

// List returns the records that pass f, oldest first.
func (t *Trail) List(ctx context.Context, f Filter) ([]*apiv1.AuditEvent, error) {
	kvs, _, err := t.st.List(ctx, Prefix)
	if err != nil {
		return nil, err
	}
	out := make([]*apiv1.AuditEvent, 0, len(kvs))
	for _, kv := range kvs {
		var ev apiv1.AuditEvent
		if proto.Unmarshal(kv.Value, &ev) != nil {
			continue
		}
		if f.Match(&ev) {
			out = append(out, &ev)
		}
	}
	slices.SortFunc(out, func(a, b *apiv1.AuditEvent) int { return strings.Compare(a.GetId(), b.GetId()) })
	return out, nil
}

// Watch sends every record stored from now on that passes f, until ctx ends or the watch
// fails (the error). ready runs once the watch is open: a record stored after it is sent.
func (t *Trail) Watch(ctx context.Context, f Filter, ready func() error, send func(*apiv1.AuditEvent) error) error {
	_, rev, err := t.st.Get(ctx, Prefix)
	if err != nil && !errors.Is(err, store.ErrNotFound) {
		return err
	}
	ch, err := t.st.Watch(ctx, Prefix, rev)
	if err != nil {
		return err
	}
	if err := ready(); err != nil {
		return err
	}
	for {
		select {
		case <-ctx.Done():
			return nil
		case e, ok := <-ch:
			if !ok {
				return ctx.Err()
			}
			if e.Err != nil {
				return e.Err
			}
			if e.Type != store.EventPut {
				continue
			}
			var ev apiv1.AuditEvent
			if proto.Unmarshal(e.KV.Value, &ev) != nil || !f.Match(&ev) {
				continue
			}
			if err := send(&ev); err != nil {
				return err
			}
		}
	}
}

// Expired returns the keys to delete from keys (sorted oldest first, as the store lists
// them): those older than maxAge at now, and all but the newest maxCount.
func Expired(keys []string, now time.Time, maxAge time.Duration, maxCount int) []string {
	cut := 0
	if len(keys) > maxCount {
		cut = len(keys) - maxCount
	}
	oldest := ID(now.Add(-maxAge), "", 0)
	for cut < len(keys) && keys[cut] < Prefix+oldest {
		cut++
	}
	return keys[:cut]
}

// MaxDeletesPerTxn bounds one pruning transaction.
const MaxDeletesPerTxn = 500

// Prune deletes the expired records.
func (t *Trail) Prune(ctx context.Context, maxAge time.Duration, maxCount int) (int, error) {
	kvs, _, err := t.st.List(ctx, Prefix)
	if err != nil {
		return 0, err
	}
	keys := make([]string, len(kvs))
	for i, kv := range kvs {
		keys[i] = kv.Key
	}
	slices.Sort(keys)
	gone := Expired(keys, t.now(), maxAge, maxCount)
	n := 0
	for len(gone) > 0 {
		batch := gone[:min(len(gone), MaxDeletesPerTxn)]
		gone = gone[len(batch):]
		ops := make([]store.Op, len(batch))
		for i, k := range batch {
			ops[i] = store.Delete(k)
		}
		if _, err := t.st.Txn(ctx, store.Txn{Then: ops}); err != nil {
			return n, err
		}
		n += len(batch)
	}
	return n, nil
}

// Maintain prunes every interval until ctx ends (the leader runs it).
func (t *Trail) Maintain(ctx context.Context, every time.Duration, maxAge time.Duration, maxCount int) {
	tick := time.NewTicker(every)
	defer tick.Stop()
	for {
		if n, err := t.Prune(ctx, maxAge, maxCount); err != nil && ctx.Err() == nil {
			t.log.Warn("pruning the audit trail failed; retrying at the next tick", "err", err)
		} else if n > 0 {
			t.log.Info("pruned the audit trail", "deleted", n)
		}
		select {
		case <-ctx.Done():
			return
		case <-tick.C:
		}
	}
}
