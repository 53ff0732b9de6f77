package controller

import (
	"context"
	"fmt"
	"sync"
	"time"

	"google.golang.org/grpc/status"

	"github.com/deckhandhq/deckhand/controller/api"
	storagev1 "github.com/deckhandhq/deckhand/proto/deckhand/storage/v1"
	"github.com/deckhandhq/deckhand/store/raftstore"
)

// raftMembers reports the raft configuration with each member's own view of its state.
type raftMembers struct{ st *raftstore.Store }

func (m raftMembers) ListMembers(ctx context.Context) (api.MemberList, error) {
	members, version, err := m.st.Configuration()
	if err != nil {
		return api.MemberList{}, err
	}
	self := m.st.Info()
	out := api.MemberList{ClusterID: self.GetClusterId(), LeaderID: self.GetLeaderId(), ServedBy: self.GetId(), Store: "raft", ConfigVersion: version}
	out.Members = make([]api.Member, len(members))
	var wg sync.WaitGroup
	for i, mem := range members {
		out.Members[i] = api.Member{ID: mem.GetId(), Address: mem.GetAddress(), Voter: mem.GetSuffrage() == storagev1.MemberSuffrage_MEMBER_SUFFRAGE_VOTER}
		wg.Add(1)
		go func() {
			defer wg.Done()
			ictx, cancel := context.WithTimeout(ctx, time.Second)
			defer cancel()
			info, err := m.st.MemberInfo(ictx, mem.GetAddress())
			if err != nil || info.GetId() != mem.GetId() {
				out.Members[i].Unreachable = true
				return
			}
			out.Members[i].RaftState = info.GetState()
			out.Members[i].AppliedIndex = info.GetAppliedIndex()
		}()
	}
	wg.Wait()
	return out, nil
}

func (m raftMembers) RemoveMember(ctx context.Context, id string, checked string) error {
	_, err := m.st.Remove(ctx, id, checked)
	if raftstore.IsMembershipChanged(err) {
		return fmt.Errorf("%w (%s)", api.ErrMembershipChanged, status.Convert(err).Message())
	}
	return err
}
