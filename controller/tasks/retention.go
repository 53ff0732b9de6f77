package tasks

import (
	"context"
	"errors"
	"slices"
	"strings"
	"time"

	apiv1 "github.com/deckhandhq/deckhand/proto/deckhand/api/v1"
	"github.com/deckhandhq/deckhand/store"
)

// Retention bounds the finished task records the store keeps: a finished task is deleted
// (with its log) once it finished more than Period ago, or once Count newer finished tasks
// exist, whichever comes first. A task that has not finished, or that belongs to a workflow
// that has not finished, is always kept.
type Retention struct {
	Period time.Duration
	Count  int
}

// Defaults of Retention.
const (
	DefaultRetentionPeriod = 7 * 24 * time.Hour
	DefaultRetentionCount  = 10_000
)

// DefaultRetention keeps finished tasks for 7 days, at most 10,000 of them.
func DefaultRetention() Retention {
	return Retention{Period: DefaultRetentionPeriod, Count: DefaultRetentionCount}
}

// sweepBatch is how many records one delete transaction removes.
const sweepBatch = 64

// Expired returns the IDs of the records r lets go at now, newest first; keep says which
// finished records must stay anyway (those of unfinished workflows). It is the pure part of
// Sweep.
func Expired(recs []*apiv1.TaskRecord, now time.Time, r Retention, keep func(*apiv1.TaskRecord) bool) []string {
	var done []*apiv1.TaskRecord
	for _, rec := range recs {
		if Terminal(rec.GetState()) && (keep == nil || !keep(rec)) {
			done = append(done, rec)
		}
	}
	// Newest first by when the task ended (its record's last update), then by ID.
	slices.SortFunc(done, func(a, b *apiv1.TaskRecord) int {
		if c := b.GetUpdated().AsTime().Compare(a.GetUpdated().AsTime()); c != 0 {
			return c
		}
		return strings.Compare(a.GetTask().GetId(), b.GetTask().GetId())
	})
	var out []string
	for i, rec := range done {
		if (r.Count > 0 && i >= r.Count) || (r.Period > 0 && now.Sub(rec.GetUpdated().AsTime()) > r.Period) {
			out = append(out, rec.GetTask().GetId())
		}
	}
	return out
}

// Deleted is the number of task records Sweep removed since the process started.
func (s *Service) Deleted() uint64 { return s.deleted.Load() }

// Sweep deletes the finished task records (and their logs) that r lets go, in transactions
// fenced on the caller's leadership, each record only if it did not change meanwhile. It
// returns how many it deleted.
func (s *Service) Sweep(ctx context.Context, fence store.Compare, r Retention, keep func(*apiv1.TaskRecord) bool) (int, error) {
	kvs, _, err := s.st.List(ctx, Prefix)
	if err != nil {
		return 0, err
	}
	recs := make([]*apiv1.TaskRecord, 0, len(kvs))
	rev := map[string]int64{}
	for _, kv := range kvs {
		rec, err := Decode(kv)
		if err != nil {
			continue // an unreadable record is not retention's to judge
		}
		recs = append(recs, rec)
		rev[rec.GetTask().GetId()] = kv.ModRevision
	}
	ids := Expired(recs, s.now(), r, keep)
	n := 0
	for len(ids) > 0 {
		batch := ids[:min(sweepBatch, len(ids))]
		ids = ids[len(batch):]
		ifs := []store.Compare{fence}
		var ops []store.Op
		for _, id := range batch {
			ifs = append(ifs, store.ModRevisionIs(Prefix+id, rev[id]))
			ops = append(ops, store.Delete(Prefix+id), store.DeletePrefix(EventsPrefix+id+"/"))
		}
		if _, err := s.st.Txn(ctx, store.Txn{If: ifs, Then: ops}); err != nil {
			if errors.Is(err, store.ErrConflict) {
				continue // a record changed: the next sweep looks again
			}
			return n, err
		}
		n += len(batch)
		s.deleted.Add(uint64(len(batch)))
	}
	return n, nil
}
