// Package sessions tracks agent sessions and node liveness.
//
// Every replica keeps a Registry of the agent sessions it serves, touched in memory on each
// heartbeat. The leader runs a Tracker: it merges its own registry with the digests other
// replicas send once per heartbeat interval (PeerService.ReportSessions), and writes a
// node's state to the store only when it changes (Ready, NotReady, Lost). Heartbeats never
// append to the raft log, and the cost per interval is one digest per replica.
//
// A new leader gives every node a full TTL of grace from its takeover, and without fresh
// evidence it only ever keeps or worsens a node's state, so a leader change never marks
// the fleet down nor revives a node it has not heard from.
package sessions

import (
	"context"
	"errors"
	"sync"
	"sync/atomic"
	"time"

	agentv1 "github.com/deckhandhq/deckhand/proto/deckhand/agent/v1"
	clusterv1 "github.com/deckhandhq/deckhand/proto/deckhand/cluster/v1"
)

// ErrReplaced ends a session when the same node opened a newer one on this replica.
var ErrReplaced = errors.New("replaced by a newer session of the same node")

// ErrBacklog ends a session whose agent does not take the messages sent to it: the agent
// is told the controller is unavailable, reconnects and gets its tasks again.
var ErrBacklog = errors.New("the agent did not take the tasks sent to it")

// Session is one connected agent on this replica.
type Session struct {
	Node   string
	Serial string
	// Features are what the agent's hello listed (see package features): what it reads.
	Features []string
	// Out carries messages to the agent; the session handler drains it.
	Out chan *agentv1.SessionResponse

	lastSeen atomic.Int64 // unix nanoseconds
	cancel   context.CancelCauseFunc
	ctx      context.Context
}

// Context ends when the session is closed, replaced or dropped.
func (s *Session) Context() context.Context { return s.ctx }

// Registry holds this replica's sessions.
type Registry struct {
	now    func() time.Time
	mu     sync.Mutex
	byNode map[string]*Session
}

// NewRegistry returns an empty registry. now may be nil (time.Now).
func NewRegistry(now func() time.Time) *Registry {
	if now == nil {
		now = time.Now
	}
	return &Registry{now: now, byNode: map[string]*Session{}}
}

// Open registers a session for node, whose agent reads features, replacing (and ending) an
// older one.
func (r *Registry) Open(parent context.Context, node, serial string, features []string) *Session {
	ctx, cancel := context.WithCancelCause(parent)
	s := &Session{Node: node, Serial: serial, Features: features, Out: make(chan *agentv1.SessionResponse, 16), ctx: ctx, cancel: cancel}
	s.lastSeen.Store(r.now().UnixNano())
	r.mu.Lock()
	old := r.byNode[node]
	r.byNode[node] = s
	r.mu.Unlock()
	if old != nil {
		old.cancel(ErrReplaced)
	}
	return s
}

// Close unregisters s (if it is still the node's current session) and ends it.
func (r *Registry) Close(s *Session, cause error) {
	r.mu.Lock()
	if r.byNode[s.Node] == s {
		delete(r.byNode, s.Node)
	}
	r.mu.Unlock()
	s.cancel(cause)
}

// Drop ends the session of node, if any (for example the node was deleted).
func (r *Registry) Drop(node string, cause error) {
	r.mu.Lock()
	s := r.byNode[node]
	r.mu.Unlock()
	if s != nil {
		r.Close(s, cause)
	}
}

// DropAll ends every session on this replica.
func (r *Registry) DropAll(cause error) {
	r.mu.Lock()
	all := make([]*Session, 0, len(r.byNode))
	for _, s := range r.byNode {
		all = append(all, s)
	}
	r.mu.Unlock()
	for _, s := range all {
		r.Close(s, cause)
	}
}

// Serials maps each node with a session here to the serial of its certificate.
func (r *Registry) Serials() map[string]string {
	r.mu.Lock()
	defer r.mu.Unlock()
	out := make(map[string]string, len(r.byNode))
	for n, s := range r.byNode {
		out[n] = s.Serial
	}
	return out
}

// DropIf ends the session of node if it is still the one with certificate serial.
func (r *Registry) DropIf(node, serial string, cause error) {
	r.mu.Lock()
	s := r.byNode[node]
	r.mu.Unlock()
	if s != nil && s.Serial == serial {
		r.Close(s, cause)
	}
}

// Touch records a heartbeat.
func (r *Registry) Touch(s *Session) { s.lastSeen.Store(r.now().UnixNano()) }

// Get returns the node's session on this replica.
func (r *Registry) Get(node string) *Session {
	r.mu.Lock()
	defer r.mu.Unlock()
	return r.byNode[node]
}

// Count is the number of sessions.
func (r *Registry) Count() int {
	r.mu.Lock()
	defer r.mu.Unlock()
	return len(r.byNode)
}

// EachSeen calls fn with every session's node and when it was last heard from, with the
// registry locked: fn must not call the registry.
func (r *Registry) EachSeen(fn func(node string, at time.Time)) {
	r.mu.Lock()
	defer r.mu.Unlock()
	for n, s := range r.byNode {
		fn(n, time.Unix(0, s.lastSeen.Load()))
	}
}

// Digest is this replica's report for the leader.
func (r *Registry) Digest() []*clusterv1.AgentSession {
	now := r.now()
	out := make([]*clusterv1.AgentSession, 0, r.Count())
	r.EachSeen(func(n string, at time.Time) {
		out = append(out, &clusterv1.AgentSession{Node: n, LastSeenMsAgo: uint64(max(now.Sub(at), 0).Milliseconds())})
	})
	return out
}
