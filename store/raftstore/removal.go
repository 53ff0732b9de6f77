package raftstore

import (
	"context"
	"errors"
	"fmt"
	"slices"
	"time"

	"github.com/hashicorp/raft"

	storagev1 "github.com/deckhandhq/deckhand/proto/deckhand/storage/v1"
)

// ErrRemoved: this replica is no longer in the raft configuration (deckctl members remove).
// It cannot take part in the cluster again from this data dir.
var ErrRemoved = errors.New("this replica was removed from the controller cluster")

// removedError is the one line a removed replica stops with, at once or on a restart.
func removedError(id, dir string) error {
	return fmt.Errorf("%w: replica %s is not in the raft configuration any more; to rejoin, stop it, empty --data-dir %s and start it with --join ADDRESS --token TOKEN (deckctl token create --purpose controller) --ca-cert-hash HASH",
		ErrRemoved, id, dir)
}

// Removed is closed when this replica notices it was removed from the configuration; the
// store stops serving then and Err says why.
func (s *Store) Removed() <-chan struct{} { return s.removed }

// Err is why Removed was closed, or nil.
func (s *Store) Err() error {
	select {
	case <-s.removed:
		return removedError(s.id, s.cfg.Dir)
	default:
		return nil
	}
}

// inConfiguration reports whether the latest configuration names this replica; known is
// false while the configuration is empty (a fresh replica waiting to be added) or unreadable.
func (s *Store) inConfiguration() (in, known bool) {
	f := s.raft.GetConfiguration()
	if f.Error() != nil {
		return false, false
	}
	servers := f.Configuration().Servers
	if len(servers) == 0 {
		return false, false
	}
	for _, srv := range servers {
		if srv.ID == raft.ServerID(s.id) {
			return true, true
		}
	}
	return false, true
}

// watchRemoval notices that this replica was removed: a removed leader's raft shuts itself
// down; a removed follower receives the configuration without itself and would otherwise
// idle forever ("not part of a stable configuration"). Only a replica that has been in
// the configuration can be removed from it: a joining replica starts with none.
func (s *Store) watchRemoval(wasMember, joined bool) {
	defer s.wg.Done()
	tick := time.NewTicker(s.cfg.HeartbeatTimeout / 2)
	defer tick.Stop()
	var lastAsked time.Time
	dropped := 0 // consecutive peer answers without this replica
	for {
		select {
		case <-s.done:
			return
		case <-tick.C:
		}
		removed := false
		if s.raft.State() == raft.Shutdown {
			// Raft shuts down on its own only when it removed itself; Close closes done
			// before it shuts raft down, so a closed done here means an ordinary stop (the
			// tick and the Close can race: select picks either ready case).
			if s.stopping() {
				return
			}
			removed = wasMember
		} else if in, known := s.inConfiguration(); known {
			if in {
				wasMember = true
			} else {
				removed = wasMember
			}
		}
		// The leader may stop replicating to a removed follower before the configuration
		// without it arrives: then the follower only sees that no leader talks to it. Ask
		// the peers, at most once per election timeout, whether their leader's
		// configuration still names this replica.
		// A replica that just joined may be removed before its own copy of the configuration
		// names it: the peers' answer is safe then too (they added it when Join returned).
		// Two answers an election timeout apart: a replica that restarted at a new address
		// is removed and added again by the leader (Join), and must not stop in between.
		if !removed && (wasMember || joined) && time.Since(lastAsked) > s.cfg.ElectionTimeout {
			if addr, _ := s.raft.LeaderWithID(); addr == "" && s.raft.State() != raft.Leader {
				lastAsked = time.Now()
				if s.peersDropped() {
					dropped++
				} else {
					dropped = 0
				}
				removed = dropped >= 2
			} else {
				dropped = 0
			}
		}
		if removed && s.stopping() {
			return // stopped while the peers were asked: an ordinary stop, not a removal
		}
		if removed {
			s.log.Error("removed from the controller cluster; stopping", "err", removedError(s.id, s.cfg.Dir))
			// Remembered, so a restart refuses at once even when this replica's own log
			// never received the configuration without it.
			if err := writeMember(s.cfg.Dir, memberFile{ClusterID: s.clusterID, ID: s.id, Store: "raft", Removed: true}); err != nil {
				s.log.Error("recording the removal in the data dir failed", "err", err)
			}
			close(s.removed)
			go s.shutdown()
			return
		}
	}
}

// stopping reports whether Close has begun.
func (s *Store) stopping() bool {
	select {
	case <-s.done:
		return true
	default:
		return false
	}
}

// peersDropped asks the other members this replica knows whether they follow a leader whose
// configuration no longer names it.
func (s *Store) peersDropped() bool {
	var addrs []string
	if f := s.raft.GetConfiguration(); f.Error() == nil {
		for _, srv := range f.Configuration().Servers {
			if srv.ID != raft.ServerID(s.id) {
				addrs = append(addrs, string(srv.Address))
			}
		}
	}
	for _, a := range s.cfg.Join {
		if a != s.cfg.Advertise && !slices.Contains(addrs, a) {
			addrs = append(addrs, a)
		}
	}
	for _, addr := range addrs {
		ctx, cancel := context.WithTimeout(context.Background(), s.cfg.HeartbeatTimeout)
		info, err := s.conns.client(addr).Info(ctx, &storagev1.InfoRequest{})
		cancel()
		if err != nil || info.GetClusterId() != s.clusterID || info.GetLeaderId() == "" || len(info.GetMembers()) == 0 {
			continue
		}
		if !slices.ContainsFunc(info.GetMembers(), func(m *storagev1.Member) bool { return m.GetId() == s.id }) {
			return true
		}
	}
	return false
}
