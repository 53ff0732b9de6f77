package raftstore

import (
	"context"
	"crypto/rand"
	"encoding/hex"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"net"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"sync"
	"time"

	"github.com/hashicorp/go-hclog"
	"github.com/hashicorp/raft"
	raftboltdb "github.com/hashicorp/raft-boltdb/v2"
	"go.etcd.io/bbolt"

	"github.com/deckhandhq/deckhand/internal/backoff"
	storagev1 "github.com/deckhandhq/deckhand/proto/deckhand/storage/v1"
	"github.com/deckhandhq/deckhand/store"
)

// Reserved keys, under a prefix the controller never uses for its own data.
const (
	reservedPrefix = "/_deckhand/"
	leaderKey      = reservedPrefix + "leader"
	clusterKey     = reservedPrefix + "cluster"
)

// Errors specific to opening a replica.
var (
	// ErrForeignCluster: the data dir belongs to another cluster than the one being joined.
	ErrForeignCluster = errors.New("data dir belongs to another cluster")
	// ErrDataDirInUse: another process holds the data dir.
	ErrDataDirInUse = errors.New("data dir is in use by another process")
	// ErrJoinUnreachable: no --join address answered.
	ErrJoinUnreachable = errors.New("cannot reach any join address")
	// ErrJoinRefused: every --join address refused for good (another cluster or CA, a name
	// or address taken); waiting would not help.
	ErrJoinRefused = errors.New("every join address refused this replica")
)

// Store is one raft replica. It implements store.Store and store.Elector.
type Store struct {
	cfg       Config
	id        string
	clusterID string
	log       *slog.Logger

	raft      *raft.Raft
	fsm       *fsm
	hub       *watchHub
	boltStore *raftboltdb.BoltStore
	raftSnaps *raft.FileSnapshotStore
	transport *raft.NetworkTransport

	conns *connPool

	memberMu sync.Mutex // serialises membership changes on the leader (changeMembershipLocal)
	beats    heartbeats // the leader's view of its followers (health.go)

	mu        sync.Mutex
	lead      *leaderState  // non-nil while this replica is the raft leader
	changed   chan struct{} // closed and replaced on every leadership change
	closed    bool
	closeOnce sync.Once
	done      chan struct{}
	removed   chan struct{} // closed when this replica finds itself removed (removal.go)
	wg        sync.WaitGroup
}

// leaderState is this replica's current term as leader.
type leaderState struct {
	ctx    context.Context
	cancel context.CancelFunc
	ready  chan struct{} // closed once the Barrier applied and the leader record is written
}

type memberFile struct {
	ClusterID string `json:"cluster_id"`
	ID        string `json:"id"`
	// Store is the backend the data dir was created for ("raft"; the controller writes
	// "etcd" for --store etcd). Empty in data dirs of older versions: raft.
	Store string `json:"store,omitempty"`
	// Removed is set when this replica found itself removed from the cluster: the data
	// dir cannot serve again (removal.go).
	Removed bool `json:"removed,omitempty"`
}

var (
	_ store.Store   = (*Store)(nil)
	_ store.Elector = (*Store)(nil)
)

// Open starts a replica: it restarts from the data dir, bootstraps a new cluster (fresh
// dir, no Join), or joins the cluster at cfg.Join. It fails without touching an existing
// data dir when the dir belongs to another cluster or a join address cannot be reached.
func Open(ctx context.Context, cfg Config) (*Store, error) {
	if err := cfg.Validate(); err != nil {
		return nil, err
	}
	id, err := ResolveID(cfg.Dir, cfg.ID)
	if err != nil {
		return nil, err
	}
	meta, err := readMember(cfg.Dir)
	if err != nil {
		return nil, err
	}
	if meta.Removed {
		return nil, removedError(id, cfg.Dir)
	}
	if err := checkDataDir(cfg.Dir, meta, len(cfg.Join) > 0); err != nil {
		return nil, err
	}
	if err := SecureDataDir(cfg.Dir); err != nil {
		return nil, err
	}

	s := &Store{
		cfg:     cfg,
		id:      id,
		log:     cfg.Logger.With("replica", id),
		hub:     newWatchHub(),
		changed: make(chan struct{}),
		done:    make(chan struct{}),
		removed: make(chan struct{}),
	}
	s.conns = newConnPool(cfg.GRPCDialOptions)

	var joinInfo *storagev1.InfoResponse
	join := cfg.Join
	switch {
	case len(cfg.Join) > 0 && meta.ClusterID != "":
		// A restart: the cluster may be restarting too. Check once that the join address is
		// of this cluster; if none answers, start from the data dir and re-announce this
		// replica in the background (the peers refuse a request of another cluster).
		// A few tries: a peer whose first answer is lost (a connection still being made)
		// must not let a foreign data dir past this check.
		for attempt := 1; ; attempt++ {
			joinInfo, _, err = s.infoOnce(ctx, cfg.Join)
			if err == nil || attempt == restartInfoAttempts || ctx.Err() != nil || backoff.IsPermanent(err) {
				break
			}
			select {
			case <-ctx.Done():
			case <-time.After(restartInfoWait):
			}
		}
		if err != nil {
			s.log.Warn("no --join address answers; restarting from the data dir and re-announcing this replica in the background", "err", err)
		}
	case len(cfg.Join) > 0:
		var from string
		joinInfo, from, err = s.infoAny(ctx, cfg.Join)
		if err != nil {
			s.conns.close()
			return nil, err
		}
		// Ask the address that answered first: the others may be stale or still starting.
		join = append([]string{from}, slices.DeleteFunc(slices.Clone(join), func(a string) bool { return a == from })...)
	}
	if joinInfo != nil {
		if meta.ClusterID != "" && meta.ClusterID != joinInfo.GetClusterId() {
			s.conns.close()
			return nil, fmt.Errorf("%w: %s belongs to cluster %s but %s is in cluster %s; use an empty --data-dir to join it, or drop --join to restart the old cluster",
				ErrForeignCluster, cfg.Dir, meta.ClusterID, strings.Join(cfg.Join, ","), joinInfo.GetClusterId())
		}
	}

	if err := s.openRaft(); err != nil {
		s.conns.close()
		return nil, err
	}
	hasState := meta.ClusterID != ""
	if !hasState {
		has, err := raft.HasExistingState(s.boltStore, s.boltStore, s.snapshots())
		if err != nil {
			s.shutdown()
			return nil, fmt.Errorf("read raft state in %s: %w", cfg.Dir, err)
		}
		hasState = has
	}

	wasMember, joined := false, false
	if hasState {
		in, known := s.inConfiguration()
		if known && !in {
			s.shutdown()
			return nil, removedError(id, cfg.Dir)
		}
		wasMember = in
	}

	switch {
	case hasState:
		s.clusterID = meta.ClusterID
		if len(cfg.Join) > 0 {
			// Re-announce our address in the background; the cluster may be restarting too.
			s.wg.Add(1)
			go s.rejoin()
		}
	case joinInfo != nil:
		s.clusterID = joinInfo.GetClusterId()
		// Recorded before the cluster adds this replica, so a crash right after the join
		// leaves a data dir that restarts (with --join) instead of one without member.json.
		if err := writeMember(cfg.Dir, memberFile{ClusterID: s.clusterID, ID: id, Store: "raft"}); err != nil {
			s.shutdown()
			return nil, err
		}
		join := func(ctx context.Context) error {
			// With the cluster ID: a replica of another cluster among the addresses refuses.
			_, err := s.joinVia(ctx, join, &storagev1.JoinRequest{Id: id, Address: cfg.Advertise, ClusterId: s.clusterID})
			return err
		}
		if err := backoff.Retry(ctx, cfg.JoinTimeout, joinAttemptTimeout+cfg.ApplyTimeout, s.logJoinWait("be added to the cluster"), join); err != nil {
			s.shutdown()
			_ = os.Remove(filepath.Join(cfg.Dir, memberFileN))
			return nil, err
		}
		joined = true
	default:
		s.clusterID = randomID() + randomID()
		conf := raft.Configuration{Servers: []raft.Server{{ID: raft.ServerID(id), Address: raft.ServerAddress(cfg.Advertise), Suffrage: raft.Voter}}}
		if err := s.raft.BootstrapCluster(conf).Error(); err != nil {
			s.shutdown()
			return nil, fmt.Errorf("bootstrap cluster in %s: %w", cfg.Dir, err)
		}
	}
	beatCh := make(chan raft.Observation, heartbeatObservations)
	s.raft.RegisterObserver(raft.NewObserver(beatCh, false, heartbeatFilter))
	s.wg.Add(3)
	go s.watchHeartbeats(beatCh)
	go s.watchLeadership()
	go s.watchRemoval(wasMember, joined)
	if err := writeMember(cfg.Dir, memberFile{ClusterID: s.clusterID, ID: id, Store: "raft"}); err != nil {
		s.shutdown()
		return nil, err
	}
	if err := SecureDataDir(cfg.Dir); err != nil { // what raft created (the snapshot dir)
		s.shutdown()
		return nil, err
	}
	s.log.Info("raft replica started", "cluster", s.clusterID, "address", cfg.Advertise, "restarted", hasState)
	return s, nil
}

// ResolveID prepares the data dir (created 0700, checked writable) and returns the replica
// ID to use: the one recorded in it, else want, else a new random one. A want that differs
// from the recorded ID is refused.
func ResolveID(dir, want string) (string, error) {
	if err := ensureWritableDir(dir); err != nil {
		return "", err
	}
	meta, err := readMember(dir)
	if err != nil {
		return "", err
	}
	switch {
	case want == "" && meta.ID != "":
		return meta.ID, nil
	case want == "":
		return randomID(), nil
	case meta.ID != "" && meta.ID != want:
		return "", fmt.Errorf("data dir %s holds replica %q, not %q: start with the same --name or an empty --data-dir", dir, meta.ID, want)
	}
	return want, nil
}

func (s *Store) snapshots() raft.SnapshotStore { return s.raftSnaps }

func (s *Store) openRaft() error {
	cfg := s.cfg
	boltPath := filepath.Join(cfg.Dir, raftDBFile)
	bs, err := raftboltdb.New(raftboltdb.Options{Path: boltPath, BoltOptions: &bbolt.Options{Timeout: time.Second, NoFreelistSync: true}})
	if err != nil {
		if errors.Is(err, bbolt.ErrTimeout) {
			return fmt.Errorf("%w: %s is locked; stop the other deckhand-controller or choose another --data-dir", ErrDataDirInUse, boltPath)
		}
		return fmt.Errorf("open raft log %s: %w", boltPath, err)
	}
	s.boltStore = bs
	hlog := newHCLogger(s.log)
	snaps, err := raft.NewFileSnapshotStoreWithLogger(cfg.Dir, cfg.SnapshotRetain, hlog)
	if err != nil {
		_ = bs.Close()
		return fmt.Errorf("open snapshots in %s: %w", cfg.Dir, err)
	}
	s.raftSnaps = snaps
	snapStore := privateSnapshots{FileSnapshotStore: snaps, dir: cfg.Dir}
	addr, err := net.ResolveTCPAddr("tcp", cfg.Advertise)
	if err != nil {
		_ = bs.Close()
		return fmt.Errorf("advertise address %s: %w", cfg.Advertise, err)
	}
	s.transport = raft.NewNetworkTransportWithConfig(&raft.NetworkTransportConfig{
		Stream:  &streamLayer{ln: cfg.Listener, addr: addr, dial: cfg.RaftDial},
		MaxPool: 4,
		Timeout: 10 * time.Second,
		Logger:  hlog,
	})
	s.fsm = newFSM(cfg.HistoryLimit, s.hub.publish, s.hub.compactAll)

	rc := raft.DefaultConfig()
	rc.LocalID = raft.ServerID(s.id)
	rc.Logger = hlog
	rc.HeartbeatTimeout = cfg.HeartbeatTimeout
	rc.ElectionTimeout = cfg.ElectionTimeout
	rc.LeaderLeaseTimeout = cfg.LeaderLeaseTimeout
	rc.CommitTimeout = cfg.CommitTimeout
	rc.SnapshotThreshold = cfg.SnapshotThreshold
	rc.SnapshotInterval = cfg.SnapshotInterval
	rc.TrailingLogs = cfg.TrailingLogs
	rc.BatchApplyCh = true
	rc.MaxAppendEntries = cfg.MaxAppendEntries
	rc.NoLegacyTelemetry = true
	r, err := raft.NewRaft(rc, s.fsm, bs, bs, snapStore, noPipeline{s.transport})
	if err != nil {
		_ = s.transport.Close()
		_ = bs.Close()
		return fmt.Errorf("start raft in %s: %w", cfg.Dir, err)
	}
	s.raft = r
	return nil
}

// ID is this replica's raft server ID.
func (s *Store) ID() string { return s.id }

// ClusterID identifies the cluster this replica belongs to.
func (s *Store) ClusterID() string { return s.clusterID }

// Close stops the replica without leaving the cluster (a restart resumes from disk).
func (s *Store) Close() error {
	s.shutdown()
	return nil
}

func (s *Store) shutdown() {
	s.closeOnce.Do(func() {
		s.mu.Lock()
		s.closed = true
		if s.lead != nil {
			s.lead.cancel()
			s.lead = nil
		}
		s.mu.Unlock()
		close(s.done)
		if s.raft != nil {
			// Bounded: a replication stream stuck on a dead peer must not hang the process.
			done := make(chan error, 1)
			go func() { done <- s.raft.Shutdown().Error() }()
			select {
			case err := <-done:
				if err != nil {
					s.log.Warn("raft shutdown", "err", err)
				}
			case <-time.After(10 * time.Second):
				s.log.Warn("raft shutdown did not finish in 10s; closing the transport anyway")
			}
		}
		if s.transport != nil {
			_ = s.transport.Close()
		}
		if s.boltStore != nil {
			_ = s.boltStore.Close()
		}
		s.hub.closeAll()
		s.conns.close()
		s.wg.Wait()
	})
}

// watchLeadership follows raft's leader notifications. On gaining leadership it runs a
// Barrier so the FSM holds every committed entry, then writes the leader record; only then
// does this replica serve writes and linearizable reads as leader. On loss, everything
// scoped to the term is cancelled.
func (s *Store) watchLeadership() {
	defer s.wg.Done()
	for {
		select {
		case <-s.done:
			return
		case isLeader := <-s.raft.LeaderCh():
			s.mu.Lock()
			if s.lead != nil {
				s.lead.cancel()
				s.lead = nil
			}
			if isLeader && !s.closed {
				s.beats.reset() // a new term's replication reports afresh
				ctx, cancel := context.WithCancel(context.Background())
				s.lead = &leaderState{ctx: ctx, cancel: cancel, ready: make(chan struct{})}
				s.wg.Add(1)
				go s.establish(s.lead)
			}
			close(s.changed)
			s.changed = make(chan struct{})
			s.mu.Unlock()
		}
	}
}

func (s *Store) establish(ls *leaderState) {
	defer s.wg.Done()
	for attempt := 0; ; attempt++ {
		if ls.ctx.Err() != nil {
			return
		}
		// Waited for under the leadership context: a barrier still queued when raft shuts
		// down is never answered, and must not keep Close waiting.
		err := waitFuture(ls.ctx, s.raft.Barrier(s.cfg.ApplyTimeout))
		if err == nil {
			var recErr error
			_, recErr = s.applyLocal(ls.ctx, s.leaderRecordTxn())
			if recErr == nil && s.clusterID != "" {
				_, recErr = s.applyLocal(ls.ctx, &storagev1.Command{Kind: &storagev1.Command_Txn{Txn: &storagev1.Txn{
					Compares: []*storagev1.Compare{{Key: clusterKey, Target: storagev1.CompareTarget_COMPARE_TARGET_MOD_REVISION}},
					Ops:      []*storagev1.Op{{Op: &storagev1.Op_Put{Put: &storagev1.Put{Key: clusterKey, Value: []byte(s.clusterID)}}}},
				}}})
			}
			if recErr == nil {
				close(ls.ready)
				s.log.Info("leadership established", "term", s.raft.Stats()["term"])
				return
			}
			err = recErr
		}
		if ls.ctx.Err() != nil {
			return
		}
		s.log.Warn("establishing leadership failed; retrying", "err", err, "attempt", attempt)
		if attempt >= 2 {
			// Could not establish: let another replica try.
			s.log.Warn("stepping down after failing to establish leadership")
			_ = waitFuture(ls.ctx, s.raft.LeadershipTransfer())
			return
		}
	}
}

func (s *Store) leaderRecordTxn() *storagev1.Command {
	rec := fmt.Sprintf(`{"id":%q,"address":%q}`, s.id, s.cfg.Advertise)
	return &storagev1.Command{Kind: &storagev1.Command_Txn{Txn: &storagev1.Txn{
		Ops: []*storagev1.Op{{Op: &storagev1.Op_Put{Put: &storagev1.Put{Key: leaderKey, Value: []byte(rec)}}}},
	}}}
}

// leading returns the current leader state and the change channel.
func (s *Store) leading() (*leaderState, <-chan struct{}, bool) {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.lead, s.changed, s.closed
}

func ensureWritableDir(dir string) error {
	if err := os.MkdirAll(dir, 0o700); err != nil {
		return fmt.Errorf("data dir %s cannot be created: %v; choose another --data-dir or fix its parent's permissions", dir, errors.Unwrap(err))
	}
	f, err := os.CreateTemp(dir, ".write-test-*")
	if err != nil {
		return fmt.Errorf("data dir %s is not writable: %v; choose another --data-dir or fix its permissions", dir, errors.Unwrap(err))
	}
	name := f.Name()
	_ = f.Close()
	return os.Remove(name)
}

func readMember(dir string) (memberFile, error) {
	var m memberFile
	b, err := os.ReadFile(filepath.Join(dir, "member.json"))
	if errors.Is(err, os.ErrNotExist) {
		return m, nil
	}
	if err != nil {
		return m, fmt.Errorf("read %s: %w", filepath.Join(dir, "member.json"), err)
	}
	if err := json.Unmarshal(b, &m); err != nil {
		return m, fmt.Errorf("%s is corrupt (%v); restore it from a backup or start with an empty --data-dir", filepath.Join(dir, "member.json"), err)
	}
	return m, nil
}

func writeMember(dir string, m memberFile) error {
	b, _ := json.MarshalIndent(m, "", "  ")
	tmp := filepath.Join(dir, ".member.json.tmp")
	if err := os.WriteFile(tmp, append(b, '\n'), 0o600); err != nil {
		return fmt.Errorf("write member file: %w", err)
	}
	if err := os.Rename(tmp, filepath.Join(dir, "member.json")); err != nil {
		return fmt.Errorf("write member file: %w", err)
	}
	return nil
}

func randomID() string {
	b := make([]byte, 4)
	if _, err := io.ReadFull(rand.Reader, b); err != nil {
		panic(err)
	}
	return hex.EncodeToString(b)
}

// streamLayer is raft's transport over the shared port; dial authenticates the peer.
type streamLayer struct {
	ln   net.Listener
	addr net.Addr
	dial func(context.Context, string) (net.Conn, error)
}

func (l *streamLayer) Accept() (net.Conn, error) { return l.ln.Accept() }
func (l *streamLayer) Close() error              { return l.ln.Close() }
func (l *streamLayer) Addr() net.Addr            { return l.addr }

func (l *streamLayer) Dial(address raft.ServerAddress, timeout time.Duration) (net.Conn, error) {
	ctx, cancel := context.WithTimeout(context.Background(), timeout)
	defer cancel()
	return l.dial(ctx, string(address))
}

// newHCLogger adapts raft's hclog output to slog.
func newHCLogger(l *slog.Logger) hclog.Logger {
	return hclog.New(&hclog.LoggerOptions{
		Name:            "raft",
		Level:           hclog.Info,
		Output:          &slogWriter{l: l},
		DisableTime:     true,
		IncludeLocation: false,
	})
}

type slogWriter struct{ l *slog.Logger }

func (w *slogWriter) Write(p []byte) (int, error) {
	msg := strings.TrimSpace(string(p))
	level := slog.LevelInfo
	switch {
	case strings.HasPrefix(msg, "[ERROR]"):
		level = slog.LevelError
	case strings.HasPrefix(msg, "[WARN]"):
		level = slog.LevelWarn
	case strings.HasPrefix(msg, "[DEBUG]"), strings.HasPrefix(msg, "[TRACE]"):
		level = slog.LevelDebug
	}
	w.l.Log(context.Background(), level, msg)
	return len(p), nil
}

// noPipeline turns off raft's pipelined replication. With it, a follower that stops reading
// mid-stream (a partition, a killed peer) can leave the leader's replication goroutine
// blocked without a deadline, and raft's Shutdown waiting on it forever; plain AppendEntries
// calls honour the transport timeout. Batching keeps the throughput (make bench).
type noPipeline struct{ *raft.NetworkTransport }

func (noPipeline) AppendEntriesPipeline(raft.ServerID, raft.ServerAddress) (raft.AppendPipeline, error) {
	return nil, raft.ErrPipelineReplicationNotSupported
}

// restartInfoAttempts and restartInfoWait bound how long a restarting replica asks its
// --join addresses which cluster they are in before it starts from its data dir anyway
// (the whole cluster may be restarting).
const (
	restartInfoAttempts = 3
	restartInfoWait     = 300 * time.Millisecond
)
