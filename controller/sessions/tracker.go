package sessions

import (
	"context"
	"errors"
	"log/slog"
	"sync"
	"time"

	"github.com/deckhandhq/deckhand/controller/nodes"
	apiv1 "github.com/deckhandhq/deckhand/proto/deckhand/api/v1"
	clusterv1 "github.com/deckhandhq/deckhand/proto/deckhand/cluster/v1"
	"github.com/deckhandhq/deckhand/store"
)

// TrackerConfig sets the liveness timers.
type TrackerConfig struct {
	// Interval is how often states are evaluated (and the agents' heartbeat interval).
	Interval time.Duration
	// NotReadyAfter without a heartbeat makes a node NotReady.
	NotReadyAfter time.Duration
	// LostAfter without a heartbeat makes a node Lost.
	LostAfter time.Duration
}

// Tracker is the leader's liveness view.
type Tracker struct {
	cfg   TrackerConfig
	nodes *nodes.Registry
	list  *nodes.LivenessLister
	local *Registry
	now   func() time.Time
	log   *slog.Logger

	mu     sync.Mutex
	seen   map[string]time.Time // last heartbeat seen this term, from any replica
	active bool
}

// NewTracker returns a tracker over the node registry and this replica's sessions.
func NewTracker(cfg TrackerConfig, reg *nodes.Registry, local *Registry, now func() time.Time, log *slog.Logger) *Tracker {
	if now == nil {
		now = time.Now
	}
	return &Tracker{cfg: cfg, nodes: reg, list: reg.NewLivenessLister(), local: local, now: now, log: log, seen: map[string]time.Time{}}
}

// Observe merges a digest from another replica. It returns false when this replica is not
// running the tracker (not the leader).
func (t *Tracker) Observe(sessions []*clusterv1.AgentSession) bool {
	now := t.now()
	t.mu.Lock()
	defer t.mu.Unlock()
	if !t.active {
		return false
	}
	for _, s := range sessions {
		t.observeLocked(s.GetNode(), now.Add(-time.Duration(s.GetLastSeenMsAgo())*time.Millisecond))
	}
	return true
}

func (t *Tracker) observeLocked(node string, seen time.Time) {
	if seen.After(t.seen[node]) {
		t.seen[node] = seen
	}
}

// badness orders states so that, without evidence, a state can only stay or worsen.
func badness(s apiv1.NodeState) int {
	switch s {
	case apiv1.NodeState_NODE_STATE_READY:
		return 1
	case apiv1.NodeState_NODE_STATE_NOT_READY:
		return 2
	case apiv1.NodeState_NODE_STATE_LOST:
		return 3
	}
	return 0
}

// Run evaluates liveness until ctx (the leadership) ends. Writes carry fence.
func (t *Tracker) Run(ctx context.Context, fence store.Compare) {
	takeover := t.now()
	t.mu.Lock()
	t.seen = map[string]time.Time{}
	t.active = true
	t.mu.Unlock()
	defer func() {
		t.mu.Lock()
		t.active = false
		t.mu.Unlock()
	}()
	tick := time.NewTicker(t.cfg.Interval / 2)
	defer tick.Stop()
	for {
		select {
		case <-ctx.Done():
			return
		case <-tick.C:
		}
		if err := t.evaluate(ctx, takeover, fence); err != nil {
			if errors.Is(err, store.ErrFenced) || ctx.Err() != nil {
				return
			}
			t.log.Warn("liveness evaluation failed", "err", err)
		}
	}
}

func (t *Tracker) evaluate(ctx context.Context, takeover time.Time, fence store.Compare) error {
	all, err := t.list.List(ctx, store.Stale())
	if err != nil {
		return err
	}
	now := t.now()
	t.mu.Lock()
	t.local.EachSeen(t.observeLocked)
	changes := transitions(all, t.seen, now, takeover, t.cfg)
	t.mu.Unlock()
	if len(changes) == 0 {
		return nil
	}
	// Transitions are written concurrently (bounded), so a mass change such as 5,000 agents
	// connecting at once takes a few batched raft commits rather than one commit per node.
	sem := make(chan struct{}, 32)
	var wg sync.WaitGroup
	var mu sync.Mutex
	var firstErr error
	for _, c := range changes {
		sem <- struct{}{}
		wg.Add(1)
		go func() {
			defer wg.Done()
			defer func() { <-sem }()
			changed, err := t.nodes.SetState(ctx, c.node, c.to, fence)
			switch {
			case errors.Is(err, nodes.ErrNotFound):
				// deleted meanwhile
			case err != nil:
				mu.Lock()
				if firstErr == nil {
					firstErr = err
				}
				mu.Unlock()
			case changed:
				t.log.Info("node state changed", "node", c.node, "from", c.from.String(), "to", c.to.String())
			}
		}()
	}
	wg.Wait()
	return firstErr
}

// transition is one node's state to write.
type transition struct {
	node     string
	from, to apiv1.NodeState
}

// transitions decides which nodes' states change: from the last heartbeat seen this term
// (seen, by node) where there is one since the node's enrollment, else from the takeover,
// never better than the state recorded. Nodes that never connected keep their state. It
// allocates nothing when no state changes (the leader runs it twice per heartbeat
// interval over every node).
func transitions(all []nodes.Liveness, seen map[string]time.Time, now, takeover time.Time, cfg TrackerConfig) []transition {
	var out []transition
	for _, n := range all {
		at, ok := seen[n.Name]
		if ok && n.Enrolled.After(at) {
			ok = false // a heartbeat from before this enrollment belongs to an earlier node of that name
		}
		cur := n.State
		var want apiv1.NodeState
		if ok {
			want = stateFor(now.Sub(at), cfg)
		} else {
			if cur == apiv1.NodeState_NODE_STATE_ENROLLED || cur == apiv1.NodeState_NODE_STATE_UNSPECIFIED {
				continue // never connected
			}
			// No evidence this term: grace from the takeover, and never better than now.
			want = stateFor(now.Sub(takeover), cfg)
			if badness(want) < badness(cur) {
				want = cur
			}
		}
		if want != cur {
			out = append(out, transition{node: n.Name, from: cur, to: want})
		}
	}
	return out
}

func stateFor(age time.Duration, cfg TrackerConfig) apiv1.NodeState {
	switch {
	case age >= cfg.LostAfter:
		return apiv1.NodeState_NODE_STATE_LOST
	case age >= cfg.NotReadyAfter:
		return apiv1.NodeState_NODE_STATE_NOT_READY
	default:
		return apiv1.NodeState_NODE_STATE_READY
	}
}
