package raftstore

import (
	"slices"
	"sync"
	"time"

	"github.com/hashicorp/raft"
)

// heartbeats is the leader's view of its followers: the members its raft heartbeats fail
// to reach, from raft's heartbeat observations. Only the leader heartbeats, so the view is
// kept (and reported, by Info) only while this replica leads.
type heartbeats struct {
	mu      sync.Mutex
	failing map[raft.ServerID]time.Time // since when
}

func (h *heartbeats) reset() {
	h.mu.Lock()
	defer h.mu.Unlock()
	h.failing = map[raft.ServerID]time.Time{}
}

func (h *heartbeats) observe(o raft.Observation) {
	h.mu.Lock()
	defer h.mu.Unlock()
	if h.failing == nil {
		h.failing = map[raft.ServerID]time.Time{}
	}
	switch ob := o.Data.(type) {
	case raft.FailedHeartbeatObservation:
		if _, ok := h.failing[ob.PeerID]; !ok {
			h.failing[ob.PeerID] = time.Now()
		}
	case raft.ResumedHeartbeatObservation:
		delete(h.failing, ob.PeerID)
	}
}

// unreachable lists the members of c whose heartbeats fail, sorted.
func (h *heartbeats) unreachable(c raft.Configuration) []string {
	h.mu.Lock()
	defer h.mu.Unlock()
	var out []string
	for _, srv := range c.Servers {
		if _, ok := h.failing[srv.ID]; ok {
			out = append(out, string(srv.ID))
		}
	}
	slices.Sort(out)
	return out
}

// heartbeatObservations is how many heartbeat observations may wait for watchHeartbeats;
// raft drops what does not fit (it never blocks on an observer), and the next heartbeat
// (every HeartbeatTimeout/10) reports again.
const heartbeatObservations = 64

// watchHeartbeats follows raft's heartbeat observations into s.beats.
func (s *Store) watchHeartbeats(ch <-chan raft.Observation) {
	defer s.wg.Done()
	for {
		select {
		case <-s.done:
			return
		case o := <-ch:
			s.beats.observe(o)
		}
	}
}

func heartbeatFilter(o *raft.Observation) bool {
	switch o.Data.(type) {
	case raft.FailedHeartbeatObservation, raft.ResumedHeartbeatObservation:
		return true
	}
	return false
}
