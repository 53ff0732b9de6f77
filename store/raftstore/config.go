package raftstore

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"net"
	"regexp"
	"time"

	"google.golang.org/grpc"
)

// Config configures one replica.
type Config struct {
	// ID is this replica's stable raft server ID. Empty: the ID recorded in the data dir, or a
	// new random one for a fresh data dir.
	ID string
	// Dir is the data dir. It is created (0700) if missing.
	Dir string
	// Advertise is the host:port other replicas dial for raft and gRPC (one port).
	Advertise string
	// Listener accepts raft stream connections (netmux.Mux.Raft()).
	Listener net.Listener
	// RaftDial opens an authenticated raft stream connection to a peer
	// (netmux.DialRaft with the replica's TLS client config).
	RaftDial func(ctx context.Context, addr string) (net.Conn, error)
	// GRPCDialOptions dial peers for forwarding and membership; they must carry transport
	// credentials (the replica's TLS client config).
	GRPCDialOptions []grpc.DialOption
	// Join lists addresses of running replicas. With a fresh data dir and no Join, a new
	// single-replica cluster is bootstrapped.
	Join []string
	// Logger receives the store's and raft's logs.
	Logger *slog.Logger

	HeartbeatTimeout   time.Duration
	ElectionTimeout    time.Duration
	LeaderLeaseTimeout time.Duration
	CommitTimeout      time.Duration
	// ApplyTimeout bounds how long a write or linearizable read waits for a leader and a
	// quorum before failing with store.ErrNoLeader, when the caller's context has no
	// earlier deadline.
	ApplyTimeout time.Duration
	// JoinTimeout bounds how long a replica with a fresh data dir keeps retrying the Join
	// addresses at start, with backoff (a cluster started at the same time may not be up
	// yet). A restarting replica tries once and re-announces itself in the background.
	JoinTimeout time.Duration
	// SnapshotThreshold is the number of log entries between snapshots.
	SnapshotThreshold uint64
	SnapshotInterval  time.Duration
	// TrailingLogs is how many entries are kept after a snapshot for slow followers.
	TrailingLogs uint64
	// SnapshotRetain is how many snapshots are kept on disk.
	SnapshotRetain int
	// HistoryLimit is how many events are kept for watches before older ones are compacted.
	HistoryLimit int
	// MaxAppendEntries caps the entries per append (and per batch with BatchApplyCh).
	MaxAppendEntries int
}

// DefaultConfig returns production defaults for a replica on a LAN. With 1 s raft timeouts a
// leader's death costs about 2.3 s (p99 2.9 s) until the API takes writes again; 500 ms halves
// that (1.05 s, p99 1.35 s) but started an election nobody caused while a real cluster came up
// beside the controllers on a 2-core host (docs/benchmarks.md, scripts/failoverload), so the
// default stays 1 s and --raft-timeout lowers it where hosts have room. The leader lease equals
// the timeout: a leader steps down when it has not heard from a quorum that long, and a
// shorter lease only adds step-downs on a stalled host (Deckhand reads nothing under the
// lease; its fence is the leader record in the log).
func DefaultConfig() Config {
	return Config{
		HeartbeatTimeout:   1000 * time.Millisecond,
		ElectionTimeout:    1000 * time.Millisecond,
		LeaderLeaseTimeout: 1000 * time.Millisecond,
		CommitTimeout:      5 * time.Millisecond,
		ApplyTimeout:       5 * time.Second,
		JoinTimeout:        3 * time.Minute,
		SnapshotThreshold:  8192,
		SnapshotInterval:   30 * time.Second,
		TrailingLogs:       10240,
		SnapshotRetain:     2,
		HistoryLimit:       100_000,
		MaxAppendEntries:   512,
		Logger:             slog.Default(),
	}
}

var idPattern = regexp.MustCompile(`^[a-z0-9]([a-z0-9-]{0,61}[a-z0-9])?$`)

// Validate explains what is wrong with the configuration.
func (c *Config) Validate() error {
	var errs []error
	if c.Dir == "" {
		errs = append(errs, errors.New("data dir is empty: set --data-dir"))
	}
	if c.ID != "" && !idPattern.MatchString(c.ID) {
		errs = append(errs, fmt.Errorf("replica name %q is invalid: use lower-case letters, digits and '-', at most 63 characters", c.ID))
	}
	if _, _, err := net.SplitHostPort(c.Advertise); err != nil {
		errs = append(errs, fmt.Errorf("advertise address %q is not host:port: %v", c.Advertise, err))
	}
	if c.Listener == nil || c.RaftDial == nil {
		errs = append(errs, errors.New("no raft listener or dialer"))
	}
	if len(c.GRPCDialOptions) == 0 {
		errs = append(errs, errors.New("no gRPC dial options: peers need transport credentials"))
	}
	if c.HeartbeatTimeout <= 0 || c.ElectionTimeout <= 0 || c.LeaderLeaseTimeout <= 0 || c.CommitTimeout <= 0 {
		errs = append(errs, errors.New("raft timeouts must be positive"))
	}
	if c.LeaderLeaseTimeout > c.HeartbeatTimeout {
		errs = append(errs, errors.New("leader lease timeout must not exceed the heartbeat timeout"))
	}
	if c.ApplyTimeout <= 0 || c.JoinTimeout <= 0 {
		errs = append(errs, errors.New("apply and join timeouts must be positive"))
	}
	if c.HistoryLimit <= 0 {
		errs = append(errs, errors.New("history limit must be positive"))
	}
	if c.SnapshotRetain <= 0 {
		errs = append(errs, errors.New("snapshot retain must be positive"))
	}
	if c.Logger == nil {
		errs = append(errs, errors.New("no logger"))
	}
	return errors.Join(errs...)
}
