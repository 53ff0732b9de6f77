package raftstore

import (
	"context"
	"fmt"
	"sync"

	"github.com/hashicorp/raft"

	"github.com/deckhandhq/deckhand/store"
)

// Campaign implements store.Elector: it waits until this replica is the established raft
// leader, then writes a fresh leader record whose revision becomes the fence.
func (s *Store) Campaign(ctx context.Context) (store.Leadership, error) {
	for {
		ls, changed, closed := s.leading()
		if closed {
			return nil, store.ErrClosed
		}
		if ls != nil {
			select {
			case <-ls.ready:
				res, err := s.applyLocal(ctx, s.leaderRecordTxn())
				if err == nil {
					rev, err := resultToRevision(res)
					if err != nil {
						return nil, fmt.Errorf("campaign: %w", err)
					}
					lctx, cancel := context.WithCancel(ls.ctx)
					return &leadership{s: s, ctx: lctx, cancel: cancel, fence: store.Compare{Key: leaderKey, Target: store.CompareModRevision, ModRevision: rev, Fence: true}}, nil
				}
				if ctx.Err() != nil {
					return nil, ctx.Err()
				}
				// Lost leadership while writing the record: wait for the next change.
			case <-ls.ctx.Done():
			case <-ctx.Done():
				return nil, ctx.Err()
			}
		}
		select {
		case <-changed:
		case <-ctx.Done():
			return nil, ctx.Err()
		case <-s.done:
			return nil, store.ErrClosed
		}
	}
}

// Leader implements store.Elector.
func (s *Store) Leader(ctx context.Context) (store.LeaderInfo, error) {
	if s.isClosed() {
		return store.LeaderInfo{}, store.ErrClosed
	}
	addr, id := s.raft.LeaderWithID()
	if id == "" {
		return store.LeaderInfo{}, s.noLeaderErr(nil)
	}
	return store.LeaderInfo{ID: string(id), Address: string(addr)}, nil
}

type leadership struct {
	s      *Store
	ctx    context.Context
	cancel context.CancelFunc
	fence  store.Compare
	once   sync.Once
}

func (l *leadership) Context() context.Context { return l.ctx }
func (l *leadership) Fence() store.Compare     { return l.fence }

// Resign ends the leadership: the leader record is rewritten so the fence fails, and when
// other voters exist raft leadership is transferred to one of them.
func (l *leadership) Resign(ctx context.Context) error {
	var err error
	l.once.Do(func() {
		l.cancel()
		if _, werr := l.s.applyLocal(ctx, l.s.leaderRecordTxn()); werr != nil && werr != raft.ErrNotLeader {
			err = fmt.Errorf("resign: %w", werr)
			return
		}
		f := l.s.raft.GetConfiguration()
		if f.Error() == nil && voters(f.Configuration()) > 1 {
			if terr := waitFuture(ctx, l.s.raft.LeadershipTransfer()); terr != nil && terr != raft.ErrNotLeader {
				err = fmt.Errorf("resign: transfer leadership: %w", terr)
			}
		}
	})
	return err
}

func voters(c raft.Configuration) int {
	n := 0
	for _, srv := range c.Servers {
		if srv.Suffrage == raft.Voter {
			n++
		}
	}
	return n
}
