package raftstore

import (
	"errors"
	"fmt"
	"time"

	"github.com/hashicorp/raft"
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
func (s *Store) watchRemoval(wasMember bool) {
	defer s.wg.Done()
	tick := time.NewTicker(s.cfg.HeartbeatTimeout / 2)
	defer tick.Stop()
	for {
		select {
		case <-s.done:
			return
		case <-tick.C:
		}
		removed := false
		if s.raft.State() == raft.Shutdown {
			removed = wasMember // raft shuts down on its own only when it removed itself
		} else if in, known := s.inConfiguration(); known {
			if in {
				wasMember = true
			} else {
				removed = wasMember
			}
		}
		if removed {
			s.log.Error("removed from the controller cluster; stopping", "err", removedError(s.id, s.cfg.Dir))
			close(s.removed)
			go s.shutdown()
			return
		}
	}
}
