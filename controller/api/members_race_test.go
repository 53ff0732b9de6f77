package api

import (
	"context"
	"fmt"
	"strings"
	"testing"

	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/status"

	apiv1 "github.com/deckhandhq/deckhand/proto/deckhand/api/v1"
)

// changingMembers is a store whose configuration changes between the removal checks and
// the removal (another operator's removal, a replica joining), like raft's with prevIndex.
type changingMembers struct {
	version int
	list    MemberList
	removed []string // the version each RemoveMember was given
}

func (m *changingMembers) ListMembers(context.Context) (MemberList, error) {
	l := m.list
	l.ConfigVersion = fmt.Sprint(m.version)
	m.version++ // changed right after the check
	return l, nil
}

func (m *changingMembers) RemoveMember(_ context.Context, _, checked string) error {
	m.removed = append(m.removed, checked)
	if checked != "" && checked != fmt.Sprint(m.version) {
		return fmt.Errorf("%w (configuration %s checked, now %d)", ErrMembershipChanged, checked, m.version)
	}
	return nil
}

func TestRemoveMemberRefusedWhenMembershipChangedAfterTheChecks(t *testing.T) {
	m := &changingMembers{version: 7, list: MemberList{LeaderID: "a", ServedBy: "a", Store: "raft", Members: []Member{
		{ID: "a", Voter: true, RaftState: "Leader"}, {ID: "b", Voter: true, RaftState: "Follower"}, {ID: "c", Voter: true, Unreachable: true},
	}}}
	_, err := NewMemberServer(m).RemoveMember(context.Background(), &apiv1.RemoveMemberRequest{Id: "c"})
	if status.Code(err) != codes.FailedPrecondition || Reason(err) != apiv1.ErrorReason_ERROR_REASON_CONFLICT ||
		!strings.Contains(status.Convert(err).Message(), "the membership changed since it was checked; run it again") {
		t.Fatalf("removal checked at a configuration that changed: got %v, want FailedPrecondition/CONFLICT saying to run it again", err)
	}
	if len(m.removed) != 1 || m.removed[0] != "7" {
		t.Fatalf("RemoveMember got configuration versions %q, want [7] (the one checked)", m.removed)
	}
	// --force skips the checks, so nothing was checked against: unconditional.
	if _, err := NewMemberServer(m).RemoveMember(context.Background(), &apiv1.RemoveMemberRequest{Id: "c", Force: true}); err != nil {
		t.Fatalf("forced removal: %v", err)
	}
}
