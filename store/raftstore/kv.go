package raftstore

import (
	"context"
	"errors"
	"fmt"
	"time"

	"github.com/hashicorp/raft"
	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/status"
	"google.golang.org/protobuf/proto"

	storagev1 "github.com/deckhandhq/deckhand/proto/deckhand/storage/v1"
	"github.com/deckhandhq/deckhand/store"
)

// Get implements store.Store.
func (s *Store) Get(ctx context.Context, key string, opts ...store.ReadOption) (*store.KV, int64, error) {
	if key == "" {
		return nil, 0, fmt.Errorf("get: %w: empty key", store.ErrInvalid)
	}
	kvs, rev, err := s.read(ctx, &storagev1.ReadRequest{Key: key}, store.ApplyReadOptions(opts))
	if err != nil {
		return nil, 0, fmt.Errorf("get %s: %w", key, err)
	}
	if len(kvs) == 0 {
		return nil, rev, fmt.Errorf("get %s: %w", key, store.ErrNotFound)
	}
	return kvs[0], rev, nil
}

// List implements store.Store.
func (s *Store) List(ctx context.Context, prefix string, opts ...store.ReadOption) ([]*store.KV, int64, error) {
	kvs, rev, err := s.read(ctx, &storagev1.ReadRequest{Prefix: prefix}, store.ApplyReadOptions(opts))
	if err != nil {
		return nil, 0, fmt.Errorf("list %s: %w", prefix, err)
	}
	return kvs, rev, nil
}

func (s *Store) readLocal(req *storagev1.ReadRequest) ([]*store.KV, int64) {
	if req.GetKey() != "" {
		kv, rev := s.fsm.get(req.GetKey())
		if kv == nil {
			return nil, rev
		}
		return []*store.KV{kv}, rev
	}
	return s.fsm.list(req.GetPrefix())
}

// read serves a read: locally when stale, after a read barrier on the leader, or forwarded
// to the leader from a follower.
func (s *Store) read(ctx context.Context, req *storagev1.ReadRequest, o store.ReadOptions) ([]*store.KV, int64, error) {
	if o.Stale {
		if s.isClosed() {
			return nil, 0, store.ErrClosed
		}
		kvs, rev := s.readLocal(req)
		return kvs, rev, nil
	}
	ctx, cancel := s.withApplyTimeout(ctx)
	defer cancel()
	var last error
	for {
		ls, changed, closed := s.leading()
		if closed {
			return nil, 0, store.ErrClosed
		}
		if ls != nil {
			err := s.readBarrier(ctx, ls)
			if err == nil {
				kvs, rev := s.readLocal(req)
				return kvs, rev, nil
			}
			last = err
		} else if addr, _ := s.raft.LeaderWithID(); addr != "" {
			resp, err := s.conns.client(string(addr)).Read(ctx, &storagev1.ReadRequest{Key: req.GetKey(), Prefix: req.GetPrefix(), ClusterId: s.clusterID})
			if err == nil {
				out := make([]*store.KV, 0, len(resp.GetKvs()))
				for _, p := range resp.GetKvs() {
					out = append(out, kvFromProto(p))
				}
				return out, resp.GetRevision(), nil
			}
			if !retryable(err) {
				return nil, 0, statusToStoreErr(err)
			}
			last = err
		}
		if err := s.waitForLeaderChange(ctx, changed); err != nil {
			return nil, 0, s.noLeaderErr(last)
		}
	}
}

// readBarrier makes a linearizable read safe on the leader: everything committed before
// the read started is applied locally, and we still lead.
func (s *Store) readBarrier(ctx context.Context, ls *leaderState) error {
	select {
	case <-ls.ready:
	case <-ls.ctx.Done():
		return raft.ErrLeadershipLost
	case <-ctx.Done():
		return ctx.Err()
	}
	idx := s.raft.CommitIndex()
	if err := waitFuture(ctx, s.raft.VerifyLeader()); err != nil {
		return err
	}
	if !s.fsm.waitApplied(idx, ctx.Done()) {
		return ctx.Err()
	}
	return nil
}

// Txn implements store.Store.
func (s *Store) Txn(ctx context.Context, t store.Txn) (int64, error) {
	if err := t.Validate(); err != nil {
		return 0, err
	}
	if err := s.TxnLimits().Check(t); err != nil {
		return 0, err
	}
	cmd := txnToCommand(t)
	cmd.RequestId = randomID() + randomID() + randomID() // the same across forwarding retries
	res, err := s.propose(ctx, cmd)
	if err != nil {
		return 0, err
	}
	return resultToRevision(res)
}

// TxnLimits implements store.Limited: a raft entry is the whole transaction, replicated
// and fsynced as one (etcd's limits are 128 operations and 1.5 MiB). 4 MiB: a task's result
// carries an artifact of up to 3 MiB (wirelimits.MaxArtifactBytes) with its record.
func (s *Store) TxnLimits() store.TxnLimits { return store.TxnLimits{Ops: 2048, Bytes: 4 << 20} }

// Compact implements store.Store.
func (s *Store) Compact(ctx context.Context, revision int64) error {
	if revision <= 0 {
		return fmt.Errorf("compact: %w: revision %d must be positive", store.ErrInvalid, revision)
	}
	_, err := s.propose(ctx, &storagev1.Command{Kind: &storagev1.Command_Compact{Compact: &storagev1.Compact{Revision: revision}}})
	return err
}

// Watch implements store.Store.
func (s *Store) Watch(ctx context.Context, prefix string, afterRevision int64) (<-chan store.Event, error) {
	if afterRevision < 0 {
		return nil, fmt.Errorf("watch: %w: negative revision", store.ErrInvalid)
	}
	if s.isClosed() {
		return nil, store.ErrClosed
	}
	return s.watch(ctx, prefix, afterRevision)
}

func resultToRevision(res *storagev1.TxnResult) (int64, error) {
	switch res.GetOutcome() {
	case storagev1.TxnOutcome_TXN_OUTCOME_APPLIED:
		return res.GetRevision(), nil
	case storagev1.TxnOutcome_TXN_OUTCOME_CONFLICT:
		return res.GetRevision(), fmt.Errorf("%w (keys %v)", store.ErrConflict, res.GetFailedKeys())
	case storagev1.TxnOutcome_TXN_OUTCOME_FENCED:
		return res.GetRevision(), store.ErrFenced
	default:
		return res.GetRevision(), fmt.Errorf("%w: %s", store.ErrInvalid, res.GetDetail())
	}
}

// propose commits cmd through the leader, forwarding from a follower, and waits at most
// ApplyTimeout (or ctx) for a leader with a quorum.
func (s *Store) propose(ctx context.Context, cmd *storagev1.Command) (*storagev1.TxnResult, error) {
	ctx, cancel := s.withApplyTimeout(ctx)
	defer cancel()
	var last error
	for {
		ls, changed, closed := s.leading()
		if closed {
			return nil, store.ErrClosed
		}
		if ls != nil {
			select {
			case <-ls.ready:
				res, err := s.applyLocal(ctx, cmd)
				if err == nil {
					return res, nil
				}
				if errors.Is(err, raft.ErrLeadershipLost) {
					// The entry may or may not commit under the next leader.
					return nil, fmt.Errorf("%w: leadership was lost while committing; the write may or may not have been applied, re-read before retrying", store.ErrNoLeader)
				}
				if ctx.Err() != nil {
					// Timed out waiting for a quorum (or closed), as when no leader answers.
					return nil, s.noLeaderErr(err)
				}
				if errors.Is(err, raft.ErrRaftShutdown) {
					return nil, fmt.Errorf("%w: this replica stopped with the write in flight; it may or may not have been applied", store.ErrClosed)
				}
				// Not appended: retry once a leader takes it (a transfer ends when its
				// target leads, or fails within an election timeout).
				if !errors.Is(err, raft.ErrNotLeader) && !errors.Is(err, raft.ErrEnqueueTimeout) && !errors.Is(err, raft.ErrLeadershipTransferInProgress) {
					return nil, err
				}
				last = err
			case <-ls.ctx.Done():
			case <-ctx.Done():
				return nil, s.noLeaderErr(last)
			}
		} else if addr, _ := s.raft.LeaderWithID(); addr != "" {
			resp, err := s.conns.client(string(addr)).Apply(ctx, &storagev1.ApplyRequest{Command: cmd, ClusterId: s.clusterID})
			if err == nil {
				return resp.GetResult(), nil
			}
			if !retryable(err) {
				return nil, statusToStoreErr(err)
			}
			last = err
		}
		if err := s.waitForLeaderChange(ctx, changed); err != nil {
			return nil, s.noLeaderErr(last)
		}
	}
}

// applyLocal appends cmd on this replica, which must be the leader.
func (s *Store) applyLocal(ctx context.Context, cmd *storagev1.Command) (*storagev1.TxnResult, error) {
	data, err := proto.Marshal(cmd)
	if err != nil {
		return nil, err
	}
	timeout := s.cfg.ApplyTimeout
	if dl, ok := ctx.Deadline(); ok {
		timeout = time.Until(dl)
	}
	f := s.raft.Apply(data, timeout)
	if err := waitFuture(ctx, f); err != nil {
		return nil, err
	}
	res, ok := f.Response().(*storagev1.TxnResult)
	if !ok {
		return nil, fmt.Errorf("raft apply returned %T", f.Response())
	}
	return res, nil
}

// waitForLeaderChange waits briefly for a leadership change before the caller retries.
func (s *Store) waitForLeaderChange(ctx context.Context, changed <-chan struct{}) error {
	t := time.NewTimer(20 * time.Millisecond)
	defer t.Stop()
	select {
	case <-changed:
		return nil
	case <-t.C:
		return nil
	case <-ctx.Done():
		return ctx.Err()
	case <-s.done:
		return store.ErrClosed
	}
}

func (s *Store) withApplyTimeout(ctx context.Context) (context.Context, context.CancelFunc) {
	if dl, ok := ctx.Deadline(); ok && time.Until(dl) < s.cfg.ApplyTimeout {
		return context.WithCancel(ctx)
	}
	return context.WithTimeout(ctx, s.cfg.ApplyTimeout)
}

func (s *Store) noLeaderErr(last error) error {
	if s.isClosed() {
		return store.ErrClosed
	}
	n := 0
	if f := s.raft.GetConfiguration(); f.Error() == nil {
		n = len(f.Configuration().Servers)
	}
	msg := fmt.Sprintf("%v: replica %s could not reach a leader with a quorum of the %d controller replicas; check that a majority is running and reachable", store.ErrNoLeader, s.id, n)
	if last != nil {
		msg += fmt.Sprintf(" (last error: %v)", last)
	}
	return &noLeaderError{msg: msg}
}

type noLeaderError struct{ msg string }

func (e *noLeaderError) Error() string        { return e.msg }
func (e *noLeaderError) Is(target error) bool { return target == store.ErrNoLeader }

func (s *Store) isClosed() bool {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.closed
}

// waitFuture waits for a raft future or ctx.
func waitFuture(ctx context.Context, f raft.Future) error {
	ch := make(chan error, 1)
	go func() { ch <- f.Error() }()
	select {
	case err := <-ch:
		return err
	case <-ctx.Done():
		return ctx.Err()
	}
}

// retryable reports whether a forwarded call may be retried against the (new) leader.
func retryable(err error) bool {
	switch status.Code(err) {
	case codes.Unavailable, codes.FailedPrecondition:
		return true
	}
	return false
}

func statusToStoreErr(err error) error {
	st, ok := status.FromError(err)
	if !ok {
		return err
	}
	switch st.Code() {
	case codes.Aborted:
		return fmt.Errorf("%w: %s", store.ErrConflict, st.Message())
	case codes.InvalidArgument:
		return fmt.Errorf("%w: %s", store.ErrInvalid, st.Message())
	case codes.DeadlineExceeded, codes.Canceled:
		return fmt.Errorf("%w: %s", store.ErrNoLeader, st.Message())
	case codes.Unknown:
		// The leader failed with the command in hand (leadership lost while committing, raft
		// shut down): the write may or may not have been applied, as when it happens here.
		return fmt.Errorf("%w: the leader failed: %s; re-read before retrying", store.ErrNoLeader, st.Message())
	}
	return fmt.Errorf("forward to leader: %w", err)
}

func txnToCommand(t store.Txn) *storagev1.Command {
	pt := &storagev1.Txn{}
	for _, c := range t.If {
		pc := &storagev1.Compare{Key: c.Key, ModRevision: c.ModRevision, Value: c.Value, Fence: c.Fence}
		switch c.Target {
		case store.CompareModRevision:
			pc.Target = storagev1.CompareTarget_COMPARE_TARGET_MOD_REVISION
		case store.CompareValue:
			pc.Target = storagev1.CompareTarget_COMPARE_TARGET_VALUE
		}
		pt.Compares = append(pt.Compares, pc)
	}
	for _, op := range t.Then {
		switch op.Type {
		case store.OpPut:
			pt.Ops = append(pt.Ops, &storagev1.Op{Op: &storagev1.Op_Put{Put: &storagev1.Put{Key: op.Key, Value: op.Value}}})
		case store.OpDelete:
			pt.Ops = append(pt.Ops, &storagev1.Op{Op: &storagev1.Op_Delete{Delete: &storagev1.Delete{Key: op.Key}}})
		case store.OpDeletePrefix:
			pt.Ops = append(pt.Ops, &storagev1.Op{Op: &storagev1.Op_DeletePrefix{DeletePrefix: &storagev1.DeletePrefix{Prefix: op.Key}}})
		}
	}
	return &storagev1.Command{Kind: &storagev1.Command_Txn{Txn: pt}}
}

func kvFromProto(p *storagev1.KeyValue) *store.KV {
	return &store.KV{Key: p.GetKey(), Value: p.GetValue(), CreateRevision: p.GetCreateRevision(), ModRevision: p.GetModRevision(), Version: p.GetVersion()}
}

func kvToProto(kv *store.KV) *storagev1.KeyValue {
	return &storagev1.KeyValue{Key: kv.Key, Value: kv.Value, CreateRevision: kv.CreateRevision, ModRevision: kv.ModRevision, Version: kv.Version}
}
