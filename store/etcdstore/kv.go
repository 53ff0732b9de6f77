package etcdstore

import (
	"bytes"
	"context"
	"errors"
	"fmt"

	"go.etcd.io/etcd/api/v3/mvccpb"
	"go.etcd.io/etcd/api/v3/v3rpc/rpctypes"
	clientv3 "go.etcd.io/etcd/client/v3"

	"github.com/deckhandhq/deckhand/store"
)

// listPage is how many keys one range request of a List returns; the pages are read at one
// revision, so the listing is still a consistent snapshot.
const listPage = 1000

func readOpts(o store.ReadOptions, extra ...clientv3.OpOption) []clientv3.OpOption {
	if o.Stale {
		extra = append(extra, clientv3.WithSerializable())
	}
	return extra
}

func (s *Store) toKV(kv *mvccpb.KeyValue) *store.KV {
	return &store.KV{Key: s.storeKey(kv.Key), Value: kv.Value, CreateRevision: kv.CreateRevision, ModRevision: kv.ModRevision, Version: kv.Version}
}

// Get implements store.Store.
func (s *Store) Get(ctx context.Context, key string, opts ...store.ReadOption) (*store.KV, int64, error) {
	if err := checkKey(key); err != nil {
		return nil, 0, fmt.Errorf("get: %w", err)
	}
	if s.isClosed() {
		return nil, 0, fmt.Errorf("get %s: %w", key, store.ErrClosed)
	}
	rctx, cancel := s.reqCtx(ctx)
	defer cancel()
	resp, err := s.cli.Get(rctx, s.key(key), readOpts(store.ApplyReadOptions(opts))...)
	if err != nil {
		return nil, 0, fmt.Errorf("get %s: %w", key, s.mapErr(ctx, err, false))
	}
	if len(resp.Kvs) == 0 {
		return nil, resp.Header.Revision, fmt.Errorf("get %s: %w", key, store.ErrNotFound)
	}
	return s.toKV(resp.Kvs[0]), resp.Header.Revision, nil
}

// List implements store.Store. Large listings are read in pages at the revision of the
// first page.
func (s *Store) List(ctx context.Context, prefix string, opts ...store.ReadOption) ([]*store.KV, int64, error) {
	from, err := s.rangePrefix(prefix)
	if err != nil {
		return nil, 0, fmt.Errorf("list: %w", err)
	}
	if s.isClosed() {
		return nil, 0, fmt.Errorf("list %s: %w", prefix, store.ErrClosed)
	}
	o := store.ApplyReadOptions(opts)
	rctx, cancel := s.reqCtx(ctx)
	defer cancel()
	for attempt := 0; ; attempt++ {
		kvs, rev, err := s.list(rctx, from, o)
		// A later page can miss its revision: compacted meanwhile, or (stale) served by a
		// member that has not applied it yet. Start over at a fresh revision.
		if err != nil && attempt < 3 && (errors.Is(err, rpctypes.ErrCompacted) || errors.Is(err, rpctypes.ErrFutureRev)) {
			continue
		}
		if err != nil {
			return nil, 0, fmt.Errorf("list %s: %w", prefix, s.mapErr(ctx, err, false))
		}
		return kvs, rev, nil
	}
}

func (s *Store) list(ctx context.Context, from string, o store.ReadOptions) ([]*store.KV, int64, error) {
	end := clientv3.GetPrefixRangeEnd(from)
	var out []*store.KV
	var rev int64
	key := from
	for {
		ops := readOpts(o, clientv3.WithRange(end), clientv3.WithLimit(listPage))
		if rev != 0 {
			ops = append(ops, clientv3.WithRev(rev))
		}
		resp, err := s.cli.Get(ctx, key, ops...)
		if err != nil {
			return nil, 0, err
		}
		if rev == 0 {
			rev = resp.Header.Revision
		}
		for _, kv := range resp.Kvs {
			out = append(out, s.toKV(kv))
		}
		if !resp.More || len(resp.Kvs) == 0 {
			return out, rev, nil
		}
		key = string(resp.Kvs[len(resp.Kvs)-1].Key) + "\x00"
	}
}

// Txn implements store.Store. etcd reports only whether all compares held, so the failure
// branch reads every compared key in the same transaction, at the same revision; from those
// reads a failed fence yields store.ErrFenced and any other failure store.ErrConflict.
func (s *Store) Txn(ctx context.Context, t store.Txn) (int64, error) {
	if err := t.Validate(); err != nil {
		return 0, err
	}
	cmps := make([]clientv3.Cmp, 0, len(t.If))
	reads := make([]clientv3.Op, 0, len(t.If))
	for _, c := range t.If {
		if err := checkKey(c.Key); err != nil {
			return 0, fmt.Errorf("txn: compare: %w", err)
		}
		k := s.key(c.Key)
		switch c.Target {
		case store.CompareModRevision:
			cmps = append(cmps, clientv3.Compare(clientv3.ModRevision(k), "=", c.ModRevision))
			reads = append(reads, clientv3.OpGet(k, clientv3.WithKeysOnly()))
		case store.CompareValue:
			cmps = append(cmps, clientv3.Compare(clientv3.Value(k), "=", string(c.Value)))
			reads = append(reads, clientv3.OpGet(k))
		}
	}
	ops := make([]clientv3.Op, 0, len(t.Then))
	for _, op := range t.Then {
		switch op.Type {
		case store.OpPut:
			if err := checkKey(op.Key); err != nil {
				return 0, fmt.Errorf("txn: put: %w", err)
			}
			ops = append(ops, clientv3.OpPut(s.key(op.Key), string(op.Value)))
		case store.OpDelete:
			if err := checkKey(op.Key); err != nil {
				return 0, fmt.Errorf("txn: delete: %w", err)
			}
			ops = append(ops, clientv3.OpDelete(s.key(op.Key)))
		case store.OpDeletePrefix:
			p, err := s.rangePrefix(op.Key)
			if err != nil {
				return 0, fmt.Errorf("txn: delete prefix: %w", err)
			}
			ops = append(ops, clientv3.OpDelete(p, clientv3.WithRange(clientv3.GetPrefixRangeEnd(p))))
		}
	}
	if s.isClosed() {
		return 0, fmt.Errorf("txn: %w", store.ErrClosed)
	}
	rctx, cancel := s.reqCtx(ctx)
	defer cancel()
	resp, err := s.cli.Txn(rctx).If(cmps...).Then(ops...).Else(reads...).Commit()
	if err != nil {
		return 0, fmt.Errorf("txn: %w", s.mapErr(ctx, err, len(ops) > 0))
	}
	rev := resp.Header.Revision
	if resp.Succeeded {
		return rev, nil
	}
	var failed []string
	fenced := false
	for i, c := range t.If {
		var kv *mvccpb.KeyValue
		if i < len(resp.Responses) {
			if kvs := resp.Responses[i].GetResponseRange().GetKvs(); len(kvs) > 0 {
				kv = kvs[0]
			}
		}
		if holds(c, kv) {
			continue
		}
		failed = append(failed, c.Key)
		fenced = fenced || c.Fence
	}
	if fenced {
		return rev, fmt.Errorf("txn: %w (the leader key of the fence is gone: another campaign leads)", store.ErrFenced)
	}
	return rev, fmt.Errorf("txn: %w (keys %v)", store.ErrConflict, failed)
}

// holds evaluates a compare against the key as read in the failed transaction.
func holds(c store.Compare, kv *mvccpb.KeyValue) bool {
	switch c.Target {
	case store.CompareModRevision:
		if kv == nil {
			return c.ModRevision == 0
		}
		return kv.ModRevision == c.ModRevision
	case store.CompareValue:
		return kv != nil && bytes.Equal(kv.Value, c.Value)
	}
	return false
}

// Compact implements store.Store. A revision above the current one compacts up to the
// current one; one at or below the last compaction is a no-op.
func (s *Store) Compact(ctx context.Context, revision int64) error {
	if revision <= 0 {
		return fmt.Errorf("compact: %w: revision %d must be positive", store.ErrInvalid, revision)
	}
	if s.isClosed() {
		return fmt.Errorf("compact: %w", store.ErrClosed)
	}
	rctx, cancel := s.reqCtx(ctx)
	defer cancel()
	_, err := s.cli.Compact(rctx, revision)
	if errors.Is(err, rpctypes.ErrFutureRev) {
		var resp *clientv3.GetResponse
		if resp, err = s.cli.Get(rctx, s.key(clusterKey), clientv3.WithCountOnly()); err == nil {
			_, err = s.cli.Compact(rctx, min(revision, resp.Header.Revision))
		}
	}
	if errors.Is(err, rpctypes.ErrCompacted) {
		return nil
	}
	if err != nil {
		return fmt.Errorf("compact to %d: %w", revision, s.mapErr(ctx, err, true))
	}
	return nil
}

// Watch implements store.Store. The watch requires an etcd leader: on a member cut off
// from its quorum it ends with a store.ErrNoLeader event rather than going silent.
func (s *Store) Watch(ctx context.Context, prefix string, afterRevision int64) (<-chan store.Event, error) {
	if afterRevision < 0 {
		return nil, fmt.Errorf("watch: %w: negative revision", store.ErrInvalid)
	}
	from, err := s.rangePrefix(prefix)
	if err != nil {
		return nil, fmt.Errorf("watch: %w", err)
	}
	if s.isClosed() {
		return nil, fmt.Errorf("watch %s: %w", prefix, store.ErrClosed)
	}
	// etcd reports a compacted start revision only later, on the watch stream; a read at
	// afterRevision tells now (history at and below the compaction is gone, the contract's
	// reading of Compact).
	if afterRevision > 0 {
		rctx, cancel := s.reqCtx(ctx)
		_, err := s.cli.Get(rctx, from, clientv3.WithRev(afterRevision), clientv3.WithCountOnly(), clientv3.WithSerializable())
		cancel()
		if err != nil && !errors.Is(err, rpctypes.ErrFutureRev) {
			return nil, fmt.Errorf("watch %s after %d: %w", prefix, afterRevision, s.mapErr(ctx, err, false))
		}
	}
	if !s.track() {
		return nil, fmt.Errorf("watch %s: %w", prefix, store.ErrClosed)
	}
	wctx, cancel := context.WithCancel(clientv3.WithRequireLeader(ctx))
	wch := s.cli.Watch(wctx, from, clientv3.WithRange(clientv3.GetPrefixRangeEnd(from)), clientv3.WithRev(afterRevision+1))
	out := make(chan store.Event)
	go func() {
		defer s.wg.Done()
		defer close(out)
		defer cancel()
		send := func(ev store.Event) bool {
			select {
			case out <- ev:
				return true
			case <-ctx.Done():
				return false
			case <-s.ctx.Done():
				return false
			}
		}
		fail := func(err error) {
			select {
			case out <- store.Event{Err: fmt.Errorf("watch %s: %w", prefix, err)}:
			case <-ctx.Done():
			case <-s.ctx.Done():
			}
		}
		for {
			select {
			case <-ctx.Done():
				return
			case <-s.ctx.Done():
				fail(store.ErrClosed)
				return
			case wr, ok := <-wch:
				if !ok {
					if ctx.Err() == nil {
						fail(s.mapErr(ctx, context.Canceled, false))
					}
					return
				}
				if err := wr.Err(); err != nil {
					fail(s.mapErr(ctx, err, false))
					return
				}
				for _, ev := range wr.Events {
					e := store.Event{Revision: ev.Kv.ModRevision}
					switch ev.Type {
					case mvccpb.PUT:
						e.Type, e.KV = store.EventPut, s.toKV(ev.Kv)
					case mvccpb.DELETE:
						e.Type, e.KV = store.EventDelete, &store.KV{Key: s.storeKey(ev.Kv.Key), ModRevision: ev.Kv.ModRevision}
					default:
						continue
					}
					if !send(e) {
						return
					}
				}
			}
		}
	}()
	return out, nil
}
