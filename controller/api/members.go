package api

import (
	"context"
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
}

// MemberList is the replicas and who leads.
type MemberList struct {
	ClusterID string
	LeaderID  string
	ServedBy  string
	Store     string
	Members   []Member
}

// Members is what the member service needs from the store backend.
type Members interface {
	ListMembers(ctx context.Context) (MemberList, error)
	RemoveMember(ctx context.Context, id string) error
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
	if err := s.m.RemoveMember(ctx, id); err != nil {
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
