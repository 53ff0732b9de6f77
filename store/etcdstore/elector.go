package etcdstore

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"sync"
	"time"

	"go.etcd.io/etcd/api/v3/mvccpb"
	"go.etcd.io/etcd/api/v3/v3rpc/rpctypes"
	clientv3 "go.etcd.io/etcd/client/v3"
	"go.etcd.io/etcd/client/v3/concurrency"

	"github.com/deckhandhq/deckhand/store"
)

// leaderRecord is the value of a campaign's election key.
type leaderRecord struct {
	ID      string `json:"id"`
	Address string `json:"address"`
}

// Campaign implements store.Elector with etcd's election recipe: a fresh session (a lease
// of SessionTTL, kept alive by the client) and a key under PREFIX/_deckhand/election; the
// oldest key leads. It blocks until this replica leads, ctx ends, or the store closes;
// failures on the way (etcd unreachable, the session expiring while waiting) are logged and
// retried with a new session.
func (s *Store) Campaign(ctx context.Context) (store.Leadership, error) {
	backoff := 100 * time.Millisecond
	for attempt := 1; ; attempt++ {
		if s.isClosed() {
			return nil, store.ErrClosed
		}
		l, err := s.campaign(ctx)
		if err == nil {
			return l, nil
		}
		if ctx.Err() != nil {
			return nil, ctx.Err()
		}
		if s.isClosed() {
			return nil, store.ErrClosed
		}
		s.log.Warn("campaign failed; retrying", "err", err, "attempt", attempt)
		t := time.NewTimer(backoff)
		select {
		case <-t.C:
		case <-ctx.Done():
			t.Stop()
			return nil, ctx.Err()
		case <-s.ctx.Done():
			t.Stop()
			return nil, store.ErrClosed
		}
		backoff = min(2*backoff, 5*time.Second)
	}
}

func (s *Store) campaign(ctx context.Context) (*leadership, error) {
	value, err := json.Marshal(leaderRecord{ID: s.cfg.ID, Address: s.cfg.Address})
	if err != nil {
		return nil, err
	}
	rctx, cancel := s.reqCtx(ctx)
	grant, err := s.cli.Grant(rctx, int64(s.cfg.ttlSeconds()))
	cancel()
	if err != nil {
		return nil, fmt.Errorf("grant a session lease: %w", s.mapErr(ctx, err, true))
	}
	// The session lives with the store, not with ctx: Campaign's ctx only bounds the wait.
	sess, err := concurrency.NewSession(s.cli, concurrency.WithLease(grant.ID), concurrency.WithTTL(s.cfg.ttlSeconds()), concurrency.WithContext(s.ctx))
	if err != nil {
		s.revoke(grant.ID)
		return nil, fmt.Errorf("keep the session lease alive: %w", s.mapErr(ctx, err, false))
	}
	// Stop waiting when the session dies: our key went with it, and the recipe would
	// otherwise report a win once the keys before ours are gone.
	cctx, ccancel := context.WithCancel(ctx)
	defer ccancel()
	go func() {
		select {
		case <-sess.Done():
			ccancel()
		case <-cctx.Done():
		}
	}()
	el := concurrency.NewElection(sess, s.key(electionPrefix))
	if err := el.Campaign(cctx, string(value)); err != nil {
		s.endSession(sess)
		if ctx.Err() == nil && cctx.Err() != nil {
			return nil, errors.New("the session lease expired while waiting to lead")
		}
		return nil, fmt.Errorf("campaign: %w", s.mapErr(ctx, err, true))
	}
	key, rev := el.Key(), el.Rev()
	// Confirm the key is still ours: only a key that exists, written once at rev, leads.
	rctx, cancel = s.reqCtx(ctx)
	resp, err := s.cli.Get(rctx, key)
	cancel()
	if err != nil || len(resp.Kvs) == 0 || resp.Kvs[0].ModRevision != rev {
		s.endSession(sess)
		if err != nil {
			return nil, fmt.Errorf("confirm leadership: %w", s.mapErr(ctx, err, false))
		}
		return nil, errors.New("the election key vanished as the campaign was won")
	}
	lctx, lcancel := context.WithCancel(s.ctx)
	l := &leadership{
		s:      s,
		key:    key,
		rev:    rev,
		sess:   sess,
		ctx:    lctx,
		cancel: lcancel,
		fence:  store.Compare{Key: s.storeKey([]byte(key)), Target: store.CompareModRevision, ModRevision: rev, Fence: true},
	}
	s.mu.Lock()
	if s.closed {
		s.mu.Unlock()
		lcancel()
		s.endSession(sess)
		return nil, store.ErrClosed
	}
	s.leads[l] = struct{}{}
	s.wg.Add(1)
	s.mu.Unlock()
	go l.monitor()
	s.log.Info("leading", "replica", s.cfg.ID, "lease", fmt.Sprintf("%x", sess.Lease()), "revision", rev)
	return l, nil
}

// endSession stops a session's keepalives and revokes its lease, which deletes its
// election key.
func (s *Store) endSession(sess *concurrency.Session) {
	sess.Orphan()
	s.revoke(sess.Lease())
}

func (s *Store) revoke(id clientv3.LeaseID) {
	ctx, cancel := context.WithTimeout(s.ctx, 2*time.Second)
	defer cancel()
	if _, err := s.cli.Revoke(ctx, id); err != nil && !errors.Is(err, rpctypes.ErrLeaseNotFound) && !s.isClosed() {
		s.log.Debug("revoke session lease; it expires on its own", "lease", fmt.Sprintf("%x", id), "err", err)
	}
}

// Leader implements store.Elector: the campaign with the oldest election key.
func (s *Store) Leader(ctx context.Context) (store.LeaderInfo, error) {
	if s.isClosed() {
		return store.LeaderInfo{}, store.ErrClosed
	}
	rctx, cancel := s.reqCtx(ctx)
	defer cancel()
	resp, err := s.cli.Get(rctx, s.key(electionPrefix)+"/", clientv3.WithFirstCreate()...)
	if err != nil {
		return store.LeaderInfo{}, fmt.Errorf("leader: %w", s.mapErr(ctx, err, false))
	}
	if len(resp.Kvs) == 0 {
		return store.LeaderInfo{}, fmt.Errorf("%w: no controller leads the cluster in etcd prefix %s", store.ErrNoLeader, s.root)
	}
	var rec leaderRecord
	if err := json.Unmarshal(resp.Kvs[0].Value, &rec); err != nil {
		return store.LeaderInfo{}, fmt.Errorf("leader: election key %s holds %q, not a Deckhand leader record: %v", resp.Kvs[0].Key, resp.Kvs[0].Value, err)
	}
	return store.LeaderInfo{ID: rec.ID, Address: rec.Address}, nil
}

type leadership struct {
	s      *Store
	key    string // the etcd election key
	rev    int64  // its create and mod revision: it is written once
	sess   *concurrency.Session
	ctx    context.Context
	cancel context.CancelFunc
	fence  store.Compare
	once   sync.Once
	err    error
}

func (l *leadership) Context() context.Context { return l.ctx }

// Fence holds while this campaign's election key exists as written at campaign time: the
// key goes when the lease is revoked or expires, and a later campaign writes another key.
func (l *leadership) Fence() store.Compare { return l.fence }

// Resign ends Context, stops the session's keepalives and revokes its lease, which deletes
// the election key at once: the next campaign in line leads. If etcd cannot be reached the
// lease expires on its own within SessionTTL.
func (l *leadership) Resign(ctx context.Context) error {
	l.cancel()
	l.once.Do(func() {
		l.sess.Orphan()
		rctx, cancel := l.s.reqCtx(ctx)
		defer cancel()
		if _, err := l.s.cli.Revoke(rctx, l.sess.Lease()); err != nil && !errors.Is(err, rpctypes.ErrLeaseNotFound) {
			l.err = fmt.Errorf("resign: revoke the session lease (it expires on its own within %v): %w", l.s.cfg.SessionTTL, l.s.mapErr(ctx, err, true))
		}
	})
	return l.err
}

// monitor ends the leadership when its session dies or its election key is deleted or
// rewritten, whichever etcd shows first.
func (l *leadership) monitor() {
	defer l.s.wg.Done()
	defer func() {
		l.s.mu.Lock()
		delete(l.s.leads, l)
		l.s.mu.Unlock()
	}()
	reason := l.follow()
	if reason == "" {
		return // resigned, or the store closed
	}
	l.s.log.Warn("leadership lost", "replica", l.s.cfg.ID, "reason", reason)
	l.cancel()
	// Drop the lease too: a session whose key is gone leads nothing.
	l.once.Do(func() { l.s.endSession(l.sess) })
}

func (l *leadership) follow() string {
	// Everything below also stops when the session dies, even a request stuck on an
	// unreachable etcd.
	ctx, cancel := context.WithCancel(l.ctx)
	defer cancel()
	go func() {
		select {
		case <-l.sess.Done():
			cancel()
		case <-ctx.Done():
		}
	}()
	from := l.rev + 1
	for {
		wctx, wcancel := context.WithCancel(ctx)
		wch := l.s.cli.Watch(wctx, l.key, clientv3.WithRev(from))
		reason, done := l.followWatch(wch)
		wcancel()
		if done {
			return reason
		}
		// The watch ended (compaction, or etcd cancelled it): look at the key itself, then
		// watch on from there.
		for {
			rctx, rcancel := context.WithTimeout(ctx, l.s.cfg.RequestTimeout)
			resp, err := l.s.cli.Get(rctx, l.key)
			rcancel()
			if err == nil {
				if len(resp.Kvs) == 0 || resp.Kvs[0].ModRevision != l.rev {
					return "the election key was deleted or rewritten"
				}
				from = resp.Header.Revision + 1
				break
			}
			t := time.NewTimer(100 * time.Millisecond)
			select {
			case <-l.sess.Done():
				t.Stop()
				return "the session lease expired or could not be kept alive"
			case <-l.ctx.Done():
				t.Stop()
				return ""
			case <-t.C:
			}
		}
	}
}

// followWatch reads one watch of the election key; done is false when the watch ended
// without a verdict.
func (l *leadership) followWatch(wch clientv3.WatchChan) (reason string, done bool) {
	for {
		select {
		case <-l.sess.Done():
			return "the session lease expired or could not be kept alive", true
		case <-l.ctx.Done():
			return "", true
		case wr, ok := <-wch:
			if !ok || wr.Err() != nil {
				return "", false
			}
			for _, ev := range wr.Events {
				if ev.Type == mvccpb.DELETE || ev.Kv.ModRevision != l.rev {
					return "the election key was deleted or rewritten", true
				}
			}
		}
	}
}
