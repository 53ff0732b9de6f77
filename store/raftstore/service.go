package raftstore

import (
	"context"
	"crypto/sha256"
	"encoding/hex"
	"errors"
	"fmt"
	"net"
	"strings"
	"sync"
	"time"

	"github.com/hashicorp/raft"
	"google.golang.org/grpc"
	grpcbackoff "google.golang.org/grpc/backoff"
	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/metadata"
	"google.golang.org/grpc/status"

	"github.com/deckhandhq/deckhand/internal/backoff"
	"github.com/deckhandhq/deckhand/internal/version"
	storagev1 "github.com/deckhandhq/deckhand/proto/deckhand/storage/v1"
)

// forwardedKey marks a request already forwarded once, so replicas that disagree about the
// leader never bounce a request between them.
const forwardedKey = "x-deckhand-forwarded"

// Register adds the replica service to a gRPC server (the controller's, on the shared port).
func (s *Store) Register(srv grpc.ServiceRegistrar) {
	storagev1.RegisterReplicaServiceServer(srv, &replicaServer{s: s})
}

type replicaServer struct {
	storagev1.UnimplementedReplicaServiceServer
	s *Store
}

func (h *replicaServer) checkCluster(id string) error {
	if id != "" && h.s.clusterID != "" && id != h.s.clusterID {
		return status.Errorf(codes.PermissionDenied, "request from cluster %s reached a replica of cluster %s", id, h.s.clusterID)
	}
	return nil
}

// readyLeader returns the leader state when this replica serves as established leader.
func (h *replicaServer) readyLeader(ctx context.Context) (*leaderState, error) {
	ls, _, closed := h.s.leading()
	if closed {
		return nil, status.Error(codes.Unavailable, "replica is shutting down")
	}
	if ls == nil {
		return nil, status.Errorf(codes.FailedPrecondition, "replica %s is not the leader", h.s.id)
	}
	select {
	case <-ls.ready:
		return ls, nil
	case <-ls.ctx.Done():
		return nil, status.Errorf(codes.FailedPrecondition, "replica %s lost leadership", h.s.id)
	case <-ctx.Done():
		return nil, status.FromContextError(ctx.Err()).Err()
	}
}

func (h *replicaServer) Apply(ctx context.Context, req *storagev1.ApplyRequest) (*storagev1.ApplyResponse, error) {
	if err := h.checkCluster(req.GetClusterId()); err != nil {
		return nil, err
	}
	if req.GetCommand() == nil {
		return nil, status.Error(codes.InvalidArgument, "command is required")
	}
	if _, err := h.readyLeader(ctx); err != nil {
		return nil, err
	}
	res, err := h.s.applyLocal(ctx, req.GetCommand())
	if err != nil {
		if errors.Is(err, raft.ErrNotLeader) {
			return nil, status.Errorf(codes.FailedPrecondition, "replica %s is not the leader", h.s.id)
		}
		if errors.Is(err, raft.ErrLeadershipTransferInProgress) {
			// Nothing was appended: the caller retries with the next leader.
			return nil, status.Errorf(codes.FailedPrecondition, "replica %s is handing leadership over", h.s.id)
		}
		if errors.Is(err, raft.ErrLeadershipLost) {
			return nil, status.Errorf(codes.Unknown, "leadership lost while committing; the write may or may not have been applied")
		}
		return nil, status.FromContextError(err).Err()
	}
	return &storagev1.ApplyResponse{Result: res}, nil
}

func (h *replicaServer) Read(ctx context.Context, req *storagev1.ReadRequest) (*storagev1.ReadResponse, error) {
	if err := h.checkCluster(req.GetClusterId()); err != nil {
		return nil, err
	}
	ls, err := h.readyLeader(ctx)
	if err != nil {
		return nil, err
	}
	if err := h.s.readBarrier(ctx, ls); err != nil {
		return nil, status.Errorf(codes.FailedPrecondition, "read barrier on %s: %v", h.s.id, err)
	}
	kvs, rev := h.s.readLocal(req)
	resp := &storagev1.ReadResponse{Revision: rev}
	for _, kv := range kvs {
		resp.Kvs = append(resp.Kvs, kvToProto(kv))
	}
	return resp, nil
}

func (h *replicaServer) Join(ctx context.Context, req *storagev1.JoinRequest) (*storagev1.JoinResponse, error) {
	if err := h.checkCluster(req.GetClusterId()); err != nil {
		return nil, err
	}
	if req.GetId() == "" || req.GetAddress() == "" {
		return nil, status.Error(codes.InvalidArgument, "join needs the replica's id and address")
	}
	if _, _, err := net.SplitHostPort(req.GetAddress()); err != nil {
		return nil, status.Errorf(codes.InvalidArgument, "join address %q is not host:port", req.GetAddress())
	}
	members, err := h.s.changeMembership(ctx, req, isForwarded(ctx))
	if err != nil {
		return nil, err
	}
	return &storagev1.JoinResponse{ClusterId: h.s.clusterID, Members: members}, nil
}

func (h *replicaServer) Remove(ctx context.Context, req *storagev1.RemoveRequest) (*storagev1.RemoveResponse, error) {
	if req.GetId() == "" {
		return nil, status.Error(codes.InvalidArgument, "remove needs the replica's id")
	}
	members, err := h.s.changeMembership(ctx, req, isForwarded(ctx))
	if err != nil {
		return nil, err
	}
	return &storagev1.RemoveResponse{Members: members}, nil
}

func (h *replicaServer) Info(ctx context.Context, _ *storagev1.InfoRequest) (*storagev1.InfoResponse, error) {
	return h.s.Info(), nil
}

func isForwarded(ctx context.Context) bool {
	md, _ := metadata.FromIncomingContext(ctx)
	return len(md.Get(forwardedKey)) > 0
}

// Info describes this replica and the configuration it knows.
func (s *Store) Info() *storagev1.InfoResponse {
	addr, id := s.raft.LeaderWithID()
	resp := &storagev1.InfoResponse{
		ClusterId:     s.clusterID,
		Id:            s.id,
		LeaderId:      string(id),
		LeaderAddress: string(addr),
		State:         s.raft.State().String(),
		AppliedIndex:  s.raft.AppliedIndex(),
		LastLogIndex:  s.raft.LastIndex(),
		Version:       buildVersion,
	}
	if f := s.raft.GetConfiguration(); f.Error() == nil {
		resp.Members = membersOf(f.Configuration())
		if s.raft.State() == raft.Leader {
			resp.UnreachableIds = s.beats.unreachable(f.Configuration())
		}
	}
	return resp
}

// Members returns the raft configuration as this replica knows it.
func (s *Store) Members() ([]*storagev1.Member, error) {
	members, _, err := s.Configuration()
	return members, err
}

// Configuration returns the raft configuration as this replica knows it and its version:
// pass the version to Remove so the removal is refused if the configuration changed
// meanwhile. (hashicorp/raft v1.7 reports no configuration index to callers:
// GetConfiguration's Index is always 0, so the version is a digest of the servers.)
func (s *Store) Configuration() ([]*storagev1.Member, string, error) {
	f := s.raft.GetConfiguration()
	if err := f.Error(); err != nil {
		return nil, "", err
	}
	return membersOf(f.Configuration()), configVersion(f.Configuration()), nil
}

// configVersion is a digest of a configuration's servers (ID, address, suffrage), in order.
func configVersion(c raft.Configuration) string {
	h := sha256.New()
	for _, srv := range c.Servers {
		fmt.Fprintf(h, "%q %q %d\n", srv.ID, srv.Address, srv.Suffrage)
	}
	return hex.EncodeToString(h.Sum(nil)[:8])
}

// MemberInfo asks the replica at addr about itself.
func (s *Store) MemberInfo(ctx context.Context, addr string) (*storagev1.InfoResponse, error) {
	if addr == s.cfg.Advertise {
		return s.Info(), nil
	}
	return s.conns.client(addr).Info(ctx, &storagev1.InfoRequest{})
}

// Join adds (or re-adds) a voter through the leader.
func (s *Store) Join(ctx context.Context, id, addr string) ([]*storagev1.Member, error) {
	return s.changeMembership(ctx, &storagev1.JoinRequest{Id: id, Address: addr}, false)
}

// Remove removes a member through the leader. With a checked version (from Configuration)
// the leader refuses with ErrMembershipChanged, as codes.Aborted, when its configuration is
// no longer that one: what the caller checked is out of date. Empty removes unconditionally.
func (s *Store) Remove(ctx context.Context, id, checked string) ([]*storagev1.Member, error) {
	return s.changeMembership(ctx, &storagev1.RemoveRequest{Id: id, CheckedConfig: checked}, false)
}

// ErrMembershipChanged: a removal was checked against a configuration that changed since.
var ErrMembershipChanged = errors.New("the membership changed since it was checked; run it again")

func membershipChanged(id, checked, now string) error {
	return status.Errorf(codes.Aborted, "refusing to remove replica %s: %v (configuration %s checked, now %s)", id, ErrMembershipChanged, checked, now)
}

// IsMembershipChanged reports whether err (from Remove, possibly forwarded) is the refusal
// of a removal checked against an out-of-date configuration.
func IsMembershipChanged(err error) bool {
	return status.Code(err) == codes.Aborted && strings.Contains(status.Convert(err).Message(), ErrMembershipChanged.Error())
}

// changeMembership applies a join or remove on the leader, forwarding once if needed.
func (s *Store) changeMembership(ctx context.Context, req any, forwarded bool) ([]*storagev1.Member, error) {
	ctx, cancel := s.withApplyTimeout(ctx)
	defer cancel()
	var last error
	for {
		ls, changed, closed := s.leading()
		if closed {
			return nil, status.Error(codes.Unavailable, "replica is shutting down")
		}
		if ls != nil {
			return s.changeMembershipLocal(ctx, req)
		}
		if addr, _ := s.raft.LeaderWithID(); addr != "" && !forwarded {
			fctx := metadata.AppendToOutgoingContext(ctx, forwardedKey, s.id)
			c := s.conns.client(string(addr))
			var members []*storagev1.Member
			var err error
			switch r := req.(type) {
			case *storagev1.JoinRequest:
				var resp *storagev1.JoinResponse
				if resp, err = c.Join(fctx, r); err == nil {
					members = resp.GetMembers()
				}
			case *storagev1.RemoveRequest:
				var resp *storagev1.RemoveResponse
				if resp, err = c.Remove(fctx, r); err == nil {
					members = resp.GetMembers()
				}
			}
			if err == nil {
				return members, nil
			}
			if !retryable(err) {
				return nil, err
			}
			last = err
		} else if forwarded {
			return nil, status.Errorf(codes.FailedPrecondition, "replica %s is not the leader", s.id)
		}
		if err := s.waitForLeaderChange(ctx, changed); err != nil {
			return nil, status.Error(codes.Unavailable, s.noLeaderErr(last).Error())
		}
	}
}

func (s *Store) changeMembershipLocal(ctx context.Context, req any) ([]*storagev1.Member, error) {
	// One change at a time: on the leader the configuration changes only through here, so
	// what is read below stays true until the change is committed (or leadership is lost,
	// and raft refuses the change).
	s.memberMu.Lock()
	defer s.memberMu.Unlock()
	f := s.raft.GetConfiguration()
	if err := f.Error(); err != nil {
		return nil, status.Errorf(codes.Unavailable, "read configuration: %v", err)
	}
	conf := f.Configuration()
	timeout := s.cfg.ApplyTimeout
	switch r := req.(type) {
	case *storagev1.JoinRequest:
		id, addr := raft.ServerID(r.GetId()), raft.ServerAddress(r.GetAddress())
		for _, srv := range conf.Servers {
			if srv.ID == id && srv.Address == addr && srv.Suffrage == raft.Voter {
				return membersOf(conf), nil
			}
			if srv.ID == id || srv.Address == addr {
				// A stale entry: the same ID at a new address, or a new ID at an old address
				// (a replica that lost its data dir). Remove it before adding the new one.
				// Never the leader itself: a new replica with the leader's name or address
				// is a conflict, not a stale entry.
				if srv.ID == raft.ServerID(s.id) && srv.ID != id {
					return nil, status.Errorf(codes.AlreadyExists, "address %s belongs to the leader %s; give the new replica its own --advertise-address", addr, s.id)
				}
				if srv.ID == raft.ServerID(s.id) {
					return nil, status.Errorf(codes.AlreadyExists, "replica name %s is the leader's (at %s); give the new replica its own --name, or none", id, srv.Address)
				}
				if err := waitFuture(ctx, s.raft.RemoveServer(srv.ID, 0, timeout)); err != nil {
					return nil, status.Errorf(codes.Unavailable, "remove stale member %s (%s): %v", srv.ID, srv.Address, err)
				}
				s.log.Info("removed stale member", "member", srv.ID, "address", srv.Address)
			}
		}
		if err := waitFuture(ctx, s.raft.AddVoter(id, addr, 0, timeout)); err != nil {
			return nil, status.Errorf(codes.Unavailable, "add voter %s (%s): %v", id, addr, err)
		}
		s.log.Info("added member", "member", id, "address", addr)
	case *storagev1.RemoveRequest:
		id := raft.ServerID(r.GetId())
		found := false
		for _, srv := range conf.Servers {
			if srv.ID == id {
				found = true
			}
		}
		if !found {
			return nil, status.Errorf(codes.NotFound, "replica %s is not a member; run deckctl members to see the members", id)
		}
		if checked, now := r.GetCheckedConfig(), configVersion(conf); checked != "" && checked != now {
			return nil, membershipChanged(string(id), checked, now)
		}
		if voters(conf) == 1 {
			return nil, status.Errorf(codes.FailedPrecondition, "replica %s is the last voter; a cluster cannot remove its last member", id)
		}
		if err := waitFuture(ctx, s.raft.RemoveServer(id, 0, timeout)); err != nil {
			return nil, status.Errorf(codes.Unavailable, "remove member %s: %v", id, err)
		}
		s.log.Info("removed member", "member", id)
	}
	f = s.raft.GetConfiguration()
	if err := f.Error(); err != nil {
		return nil, status.Errorf(codes.Unavailable, "read configuration: %v", err)
	}
	return membersOf(f.Configuration()), nil
}

func membersOf(c raft.Configuration) []*storagev1.Member {
	out := make([]*storagev1.Member, 0, len(c.Servers))
	for _, srv := range c.Servers {
		m := &storagev1.Member{Id: string(srv.ID), Address: string(srv.Address), Suffrage: storagev1.MemberSuffrage_MEMBER_SUFFRAGE_VOTER}
		if srv.Suffrage != raft.Voter {
			m.Suffrage = storagev1.MemberSuffrage_MEMBER_SUFFRAGE_NONVOTER
		}
		out = append(out, m)
	}
	return out
}

// joinAttemptTimeout bounds one attempt to reach one join address.
const joinAttemptTimeout = 5 * time.Second

// infoAny asks the join addresses in turn who they are, retrying with backoff until one
// answers or Config.JoinTimeout passes (a cluster started at the same time may not be up
// yet); each wait is logged in one line. It fails at once when every address refuses for
// good (JoinErrorPermanent). It returns the answering address too.
func (s *Store) infoAny(ctx context.Context, addrs []string) (*storagev1.InfoResponse, string, error) {
	var resp *storagev1.InfoResponse
	var from string
	err := backoff.Retry(ctx, s.cfg.JoinTimeout, joinAttemptTimeout*time.Duration(len(addrs)), s.logJoinWait("reach a --join address"), func(ctx context.Context) error {
		var err error
		resp, from, err = s.infoOnce(ctx, addrs)
		return err
	})
	if backoff.IsPermanent(err) {
		return nil, "", fmt.Errorf("%w: no --join address is a controller of a cluster this replica can join (%v); check --join and the controller's --ca-cert-hash", ErrJoinRefused, err)
	}
	if err != nil {
		return nil, "", fmt.Errorf("%w (%v); check the --join address and that a deckhand-controller is running there, or allow more time with --join-timeout", ErrJoinUnreachable, err)
	}
	return resp, from, nil
}

// infoOnce asks every join address in turn until one answers; the error is a
// backoff.Round's (permanent only when every address refused for good).
func (s *Store) infoOnce(ctx context.Context, addrs []string) (*storagev1.InfoResponse, string, error) {
	var round backoff.Round
	for _, a := range addrs {
		cctx, cancel := context.WithTimeout(ctx, joinAttemptTimeout)
		resp, err := s.conns.client(a).Info(cctx, &storagev1.InfoRequest{})
		cancel()
		if err == nil {
			if resp.GetClusterId() == "" {
				round.Fail(a, errors.New("replica has not finished starting"), false)
				continue
			}
			return resp, a, nil
		}
		round.Fail(a, errors.New(status.Convert(err).Message()), JoinErrorPermanent(err))
	}
	return nil, "", round.Err()
}

func (s *Store) logJoinWait(step string) func(int, time.Duration, error) {
	return func(attempt int, wait time.Duration, err error) {
		s.log.Info("waiting for the cluster to join", "step", step, "attempt", attempt, "retry_in", wait, "err", err)
	}
}

// joinVia asks the join addresses in turn to add this replica, until one does. It fails
// permanently only when every address refused for good (JoinErrorPermanent: another
// cluster, a name or address taken); a stale or foreign address among them is skipped.
func (s *Store) joinVia(ctx context.Context, addrs []string, req *storagev1.JoinRequest) (*storagev1.JoinResponse, error) {
	var round backoff.Round
	for _, a := range addrs {
		cctx, cancel := context.WithTimeout(ctx, joinAttemptTimeout+s.cfg.ApplyTimeout)
		resp, err := s.conns.client(a).Join(cctx, req)
		cancel()
		if err == nil {
			return resp, nil
		}
		round.Fail(a, errors.New(status.Convert(err).Message()), JoinErrorPermanent(err))
	}
	err := round.Err()
	if backoff.IsPermanent(err) {
		return nil, backoff.Permanent(fmt.Errorf("%w: join cluster through %s: %v", ErrJoinRefused, strings.Join(addrs, ","), err))
	}
	return nil, fmt.Errorf("join cluster through %s: %w", strings.Join(addrs, ","), err)
}

// rejoin re-announces this replica's address after a restart, until it succeeds.
func (s *Store) rejoin() {
	defer s.wg.Done()
	backoff := 100 * time.Millisecond
	for {
		ctx, cancel := context.WithTimeout(context.Background(), joinAttemptTimeout+s.cfg.ApplyTimeout)
		go func() {
			select {
			case <-s.done:
				cancel()
			case <-ctx.Done():
			}
		}()
		_, err := s.joinVia(ctx, s.cfg.Join, &storagev1.JoinRequest{Id: s.id, Address: s.cfg.Advertise, ClusterId: s.clusterID})
		cancel()
		if err == nil {
			return
		}
		s.log.Debug("re-announcing address failed; will retry", "err", err)
		select {
		case <-s.done:
			return
		case <-time.After(backoff):
		}
		if backoff < 5*time.Second {
			backoff *= 2
		}
	}
}

// connPool keeps one gRPC client connection per peer address.
type connPool struct {
	opts []grpc.DialOption

	mu    sync.Mutex
	conns map[string]*grpc.ClientConn
}

func newConnPool(opts []grpc.DialOption) *connPool {
	// Reconnect to a restarted peer within seconds, not gRPC's default of up to two minutes.
	opts = append(append([]grpc.DialOption(nil), opts...), grpc.WithConnectParams(grpc.ConnectParams{
		Backoff:           grpcbackoff.Config{BaseDelay: 200 * time.Millisecond, Multiplier: 1.6, Jitter: 0.2, MaxDelay: 2 * time.Second},
		MinConnectTimeout: joinAttemptTimeout,
	}))
	return &connPool{opts: opts, conns: map[string]*grpc.ClientConn{}}
}

func (p *connPool) client(addr string) storagev1.ReplicaServiceClient {
	p.mu.Lock()
	defer p.mu.Unlock()
	if cc, ok := p.conns[addr]; ok {
		return storagev1.NewReplicaServiceClient(cc)
	}
	cc, err := grpc.NewClient("passthrough:///"+addr, p.opts...)
	if err != nil {
		// NewClient only fails on malformed options; surface it on the first call.
		return storagev1.NewReplicaServiceClient(&errConn{err: err})
	}
	p.conns[addr] = cc
	return storagev1.NewReplicaServiceClient(cc)
}

func (p *connPool) close() {
	p.mu.Lock()
	defer p.mu.Unlock()
	for a, cc := range p.conns {
		_ = cc.Close()
		delete(p.conns, a)
	}
}

type errConn struct{ err error }

func (e *errConn) Invoke(context.Context, string, any, any, ...grpc.CallOption) error { return e.err }
func (e *errConn) NewStream(context.Context, *grpc.StreamDesc, string, ...grpc.CallOption) (grpc.ClientStream, error) {
	return nil, e.err
}

// buildVersion is this replica's build as Info reports it, so deckctl members and deckctl
// version show what every replica runs.
var buildVersion = version.Get().String()
