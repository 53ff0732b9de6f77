package controller

import (
	"context"
	"fmt"
	"slices"
	"sync"
	"time"

	"google.golang.org/grpc/status"

	"github.com/deckhandhq/deckhand/controller/api"
	storagev1 "github.com/deckhandhq/deckhand/proto/deckhand/storage/v1"
	"github.com/deckhandhq/deckhand/store/raftstore"
)

// raftMembers reports the raft configuration with each member's own view of its state.
// Whether a member is reachable is the leader's view (its raft heartbeats), which is what
// the cluster's quorum depends on; only when the leader cannot be asked is it this
// replica's (whether the member answers it).
type raftMembers struct{ st *raftstore.Store }

// memberProbeTimeout bounds asking one member (or the leader) about itself.
const memberProbeTimeout = time.Second

func (m raftMembers) ListMembers(ctx context.Context) (api.MemberList, error) {
	members, version, err := m.st.Configuration()
	if err != nil {
		return api.MemberList{}, err
	}
	self := m.st.Info()
	out := api.MemberList{ClusterID: self.GetClusterId(), LeaderID: self.GetLeaderId(), ServedBy: self.GetId(), HealthFrom: self.GetId(), Store: "raft", ConfigVersion: version}
	leader := m.leaderView(ctx, self)
	if leader != nil {
		out.HealthFrom = leader.GetId()
	}
	out.Members = make([]api.Member, len(members))
	var wg sync.WaitGroup
	for i, mem := range members {
		out.Members[i] = api.Member{ID: mem.GetId(), Address: mem.GetAddress(), Voter: mem.GetSuffrage() == storagev1.MemberSuffrage_MEMBER_SUFFRAGE_VOTER}
		if leader != nil {
			out.Members[i].Unreachable = slices.Contains(leader.GetUnreachableIds(), mem.GetId())
		}
		wg.Add(1)
		go func() {
			defer wg.Done()
			ictx, cancel := context.WithTimeout(ctx, memberProbeTimeout)
			defer cancel()
			info, err := m.st.MemberInfo(ictx, mem.GetAddress())
			if err != nil || info.GetId() != mem.GetId() {
				if leader == nil {
					out.Members[i].Unreachable = true
				}
				return
			}
			out.Members[i].RaftState = info.GetState()
			out.Members[i].AppliedIndex = info.GetAppliedIndex()
			out.Members[i].Version = info.GetVersion()
		}()
	}
	wg.Wait()
	return out, nil
}

// leaderView is the leader's Info (with the members its heartbeats do not reach), or nil
// when there is no leader or it does not answer.
func (m raftMembers) leaderView(ctx context.Context, self *storagev1.InfoResponse) *storagev1.InfoResponse {
	if self.GetState() == "Leader" {
		return self
	}
	if self.GetLeaderAddress() == "" {
		return nil
	}
	ictx, cancel := context.WithTimeout(ctx, memberProbeTimeout)
	defer cancel()
	info, err := m.st.MemberInfo(ictx, self.GetLeaderAddress())
	if err != nil || info.GetState() != "Leader" || info.GetClusterId() != self.GetClusterId() {
		return nil
	}
	return info
}

func (m raftMembers) RemoveMember(ctx context.Context, id string, checked string) error {
	_, err := m.st.Remove(ctx, id, checked)
	if raftstore.IsMembershipChanged(err) {
		return fmt.Errorf("%w (%s)", api.ErrMembershipChanged, status.Convert(err).Message())
	}
	return err
}
