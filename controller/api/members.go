package api

import (
	"context"
	"errors"
	"fmt"
	"strings"

	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/status"

	apiv1 "github.com/deckhandhq/deckhand/proto/deckhand/api/v1"
)

// Member is one controller replica as the store reports it.
type Member struct {
	ID           string
	Address      string
	Voter        bool
	RaftState    string // "Leader", "Follower", "Candidate"; empty when unknown
	Unreachable  bool
	AppliedIndex uint64
	// Version is the member's build (version.Info.String); empty when it did not answer.
	Version string
}

// MemberList is the replicas and who leads.
type MemberList struct {
	ClusterID string
	LeaderID  string
	ServedBy  string
	// HealthFrom is the replica whose view Member.Unreachable is: the leader's when it
	// could be asked, else ServedBy's. Empty means ServedBy.
	HealthFrom string
	Store      string
	Members    []Member
	// ConfigVersion identifies the configuration Members was read from (opaque; empty when
	// the store has none). RemoveMember is given it back and refuses with
	// ErrMembershipChanged when the configuration is no longer that one.
	ConfigVersion string
}

// ErrMembershipChanged: the members changed between the removal checks and the removal.
var ErrMembershipChanged = errors.New("the membership changed since it was checked; run it again")

// Members is what the member service needs from the store backend.
type Members interface {
	ListMembers(ctx context.Context) (MemberList, error)
	// RemoveMember removes replica id. A non-empty checked (MemberList.ConfigVersion) makes
	// the removal conditional: it fails with ErrMembershipChanged unless the configuration
	// is still that one, atomically with the change.
	RemoveMember(ctx context.Context, id string, checked string) error
}

// MemberServer implements apiv1.MemberServiceServer.
type MemberServer struct {
	apiv1.UnimplementedMemberServiceServer
	m Members
}

// NewMemberServer serves the member API from m.
func NewMemberServer(m Members) *MemberServer { return &MemberServer{m: m} }

// ListMembers implements apiv1.MemberServiceServer.
func (s *MemberServer) ListMembers(ctx context.Context, _ *apiv1.ListMembersRequest) (*apiv1.ListMembersResponse, error) {
	list, err := s.m.ListMembers(ctx)
	if err != nil {
		return nil, toStatus(err)
	}
	resp := &apiv1.ListMembersResponse{ClusterId: list.ClusterID, LeaderId: list.LeaderID, ServedBy: list.ServedBy}
	for _, m := range list.Members {
		resp.Members = append(resp.Members, &apiv1.ControllerMember{
			Id:           m.ID,
			Address:      m.Address,
			State:        memberState(m),
			Leader:       m.ID == list.LeaderID,
			Store:        list.Store,
			AppliedIndex: m.AppliedIndex,
			Version:      m.Version,
		})
	}
	return resp, nil
}

func memberState(m Member) apiv1.MemberState {
	switch {
	case m.Unreachable:
		return apiv1.MemberState_MEMBER_STATE_UNREACHABLE
	case !m.Voter:
		return apiv1.MemberState_MEMBER_STATE_NONVOTER
	case m.RaftState == "Leader":
		return apiv1.MemberState_MEMBER_STATE_LEADER
	case m.RaftState == "Candidate":
		return apiv1.MemberState_MEMBER_STATE_CANDIDATE
	default:
		return apiv1.MemberState_MEMBER_STATE_FOLLOWER
	}
}

// RemoveMember implements apiv1.MemberServiceServer.
func (s *MemberServer) RemoveMember(ctx context.Context, req *apiv1.RemoveMemberRequest) (*apiv1.RemoveMemberResponse, error) {
	id := strings.TrimSpace(req.GetId())
	if id == "" {
		return nil, Errorf(codes.InvalidArgument, apiv1.ErrorReason_ERROR_REASON_INVALID_ARGUMENT, map[string]string{"field": "id"}, "id is required: give the replica name shown by deckctl members")
	}
	// Without --force the removal is made conditional on the configuration it was checked
	// against: a membership change in between (another removal, a join) refuses it.
	var checked string
	if !req.GetForce() {
		list, err := s.m.ListMembers(ctx)
		if err != nil {
			return nil, toStatus(err)
		}
		if checks, why := RemovalRisks(list, id); len(checks) > 0 {
			return nil, Errorf(codes.FailedPrecondition, apiv1.ErrorReason_ERROR_REASON_MEMBER_REQUIRED,
				map[string]string{"name": id, "checks": strings.Join(checks, ","), "flag": "--force"},
				fmt.Sprintf("refusing to remove replica %s: %s; remove only replicas that are dead for good, or pass --force if you mean it (a removed replica stops at once and must rejoin with an empty data dir)", id, strings.Join(why, "; ")))
		}
		checked = list.ConfigVersion
	}
	if err := s.m.RemoveMember(ctx, id, checked); err != nil {
		if errors.Is(err, ErrMembershipChanged) {
			return nil, Errorf(codes.FailedPrecondition, apiv1.ErrorReason_ERROR_REASON_CONFLICT, map[string]string{"name": id},
				fmt.Sprintf("refusing to remove replica %s: %s", id, ErrMembershipChanged))
		}
		switch status.Code(err) {
		case codes.NotFound:
			return nil, Errorf(codes.NotFound, apiv1.ErrorReason_ERROR_REASON_NOT_FOUND, map[string]string{"kind": "member", "name": id}, status.Convert(err).Message())
		case codes.FailedPrecondition:
			return nil, Errorf(codes.FailedPrecondition, apiv1.ErrorReason_ERROR_REASON_MEMBER_REQUIRED, map[string]string{"name": id}, status.Convert(err).Message())
		case codes.Unavailable:
			return nil, Errorf(codes.Unavailable, apiv1.ErrorReason_ERROR_REASON_NO_QUORUM, nil, status.Convert(err).Message())
		}
		return nil, toStatus(err)
	}
	list, err := s.ListMembers(ctx, &apiv1.ListMembersRequest{})
	if err != nil {
		return nil, err
	}
	return &apiv1.RemoveMemberResponse{Members: list.GetMembers()}, nil
}

// Checks that make removing a replica need --force (RemovalRisks).
const (
	RiskLeader  = "leader"
	RiskHealthy = "healthy"
	RiskQuorum  = "quorum"
)

// RemovalRisks decides whether removing replica id is an operator mistake: removing the
// leader, a healthy replica, or one whose removal leaves fewer healthy voters than a majority
// of the configured size. It returns the failed checks and a sentence for each; none for a
// replica that is not a member (the store reports that).
func RemovalRisks(list MemberList, id string) (checks, why []string) {
	var target *Member
	voters, healthyOthers := 0, 0
	for i := range list.Members {
		m := &list.Members[i]
		if m.ID == id {
			target = m
		}
		if !m.Voter {
			continue
		}
		voters++
		if m.ID != id && !m.Unreachable {
			healthyOthers++
		}
	}
	if target == nil {
		return nil, nil
	}
	if id == list.LeaderID {
		checks = append(checks, RiskLeader)
		why = append(why, "it is the leader (removing it forces an election while it keeps answering until it notices)")
	} else if !target.Unreachable {
		checks = append(checks, RiskHealthy)
		from := list.HealthFrom
		if from == "" {
			from = list.ServedBy
		}
		why = append(why, fmt.Sprintf("it is healthy (%s, reachable from %s)", strings.ToLower(memberState(*target).String()[len("MEMBER_STATE_"):]), from))
	}
	// With --store etcd the quorum is etcd's: the controllers are not voters of anything.
	if majority := voters/2 + 1; list.Store == "raft" && healthyOthers < majority {
		checks = append(checks, RiskQuorum)
		why = append(why, fmt.Sprintf("it leaves %d healthy voter(s), fewer than a majority (%d) of the %d configured, so the cluster cannot commit", healthyOthers, majority, voters))
	}
	return checks, why
}
