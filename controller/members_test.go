package controller_test

import (
	"context"
	"errors"
	"fmt"
	"strings"
	"testing"
	"time"

	"google.golang.org/genproto/googleapis/rpc/errdetails"
	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/status"

	"github.com/deckhandhq/deckhand/controller/api"
	"github.com/deckhandhq/deckhand/internal/testkit/testcluster"
	apiv1 "github.com/deckhandhq/deckhand/proto/deckhand/api/v1"
	"github.com/deckhandhq/deckhand/store/raftstore"
)

func removeMember(c *testcluster.Cluster, id string, force bool) (*apiv1.RemoveMemberResponse, error) {
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	return apiv1.NewMemberServiceClient(c.Client()).RemoveMember(ctx, &apiv1.RemoveMemberRequest{Id: id, Force: force})
}

// refusedFor checks that err is a FailedPrecondition refusal naming check and --force.
func refusedFor(t *testing.T, err error, check string) {
	t.Helper()
	if status.Code(err) != codes.FailedPrecondition || api.Reason(err) != apiv1.ErrorReason_ERROR_REASON_MEMBER_REQUIRED {
		t.Fatalf("want FailedPrecondition/MEMBER_REQUIRED, got %v", err)
	}
	var checks string
	for _, d := range status.Convert(err).Details() {
		if info, ok := d.(*errdetails.ErrorInfo); ok {
			checks = info.GetMetadata()["checks"]
		}
	}
	if !strings.Contains(checks, check) || !strings.Contains(status.Convert(err).Message(), "--force") {
		t.Fatalf("refusal should name the %q check and --force: checks=%q %v", check, checks, err)
	}
}

// Following the README as a new user: removing a healthy follower and then the leader left
// one replica without quorum while the removed leader kept answering.
func TestRemoveMemberNeedsForceAndTheRemovedReplicaStops(t *testing.T) {
	c := testcluster.New(t, 3)
	leader := c.WaitLeader()
	follower := (leader + 1) % 3
	fid, lid := c.Controllers[follower].ID(), c.Controllers[leader].ID()

	_, err := removeMember(c, fid, false)
	refusedFor(t, err, api.RiskHealthy)
	_, err = removeMember(c, lid, false)
	refusedFor(t, err, api.RiskLeader)

	resp, err := removeMember(c, fid, true)
	if err != nil {
		t.Fatalf("forced removal: %v", err)
	}
	if len(resp.GetMembers()) != 2 {
		t.Fatalf("members after removal: %v", resp.GetMembers())
	}
	// The removed replica notices and stops serving: its Run ends with the one line.
	testcluster.WaitFor(t, 10*time.Second, func() error {
		exited, err := c.Controllers[follower].Exited()
		if !exited {
			return errors.New("the removed replica still runs")
		}
		if !errors.Is(err, raftstore.ErrRemoved) || !strings.Contains(err.Error(), "--join") {
			return fmt.Errorf("removed replica exited with %v", err)
		}
		return nil
	})
	ctx, cancel := context.WithTimeout(context.Background(), 2*time.Second)
	defer cancel()
	if _, err := apiv1.NewMemberServiceClient(c.ClientTo(follower)).ListMembers(ctx, &apiv1.ListMembersRequest{}); err == nil {
		t.Fatal("the removed replica still answers")
	}

	// Two replicas left: the leader is refused for being the leader and for the quorum.
	leader = c.WaitLeader()
	_, err = removeMember(c, c.Controllers[leader].ID(), false)
	refusedFor(t, err, api.RiskQuorum)

	// Restarted, the removed replica exits with one line that says how to rejoin.
	c.Stop(follower)
	err = c.TryRestart(follower)
	if !errors.Is(err, raftstore.ErrRemoved) || strings.Contains(err.Error(), "\n") || !strings.Contains(err.Error(), "empty --data-dir") {
		t.Fatalf("restart of a removed replica: %v", err)
	}
	// The cluster still serves.
	if _, err := c.Nodes(); err != nil {
		t.Fatalf("nodes after the removal: %v", err)
	}
}

// The documented use: a dead replica is removed without --force. When its machine comes
// back, its log never saw the configuration without it; it finds out from its peers and
// stops with the one line instead of campaigning forever.
func TestARemovedDeadReplicaStopsWhenItComesBack(t *testing.T) {
	c := testcluster.New(t, 3)
	dead := (c.WaitLeader() + 1) % 3
	id := c.Controllers[dead].ID()
	c.Partition(dead, true)
	testcluster.WaitFor(t, 15*time.Second, func() error {
		_, err := removeMember(c, id, false)
		return err
	})
	c.Partition(dead, false)
	testcluster.WaitFor(t, 15*time.Second, func() error {
		exited, err := c.Controllers[dead].Exited()
		if !exited {
			return errors.New("the removed replica still runs")
		}
		if !errors.Is(err, raftstore.ErrRemoved) {
			return fmt.Errorf("removed replica exited with %v", err)
		}
		return nil
	})
	c.Stop(dead)
	if err := c.TryRestart(dead); !errors.Is(err, raftstore.ErrRemoved) {
		t.Fatalf("restart of a removed replica: %v", err)
	}
}

// Whether a replica is healthy is the leader's view: a follower that only the serving
// replica cannot reach still has the leader's heartbeats (and counts for the quorum), so
// removing it without --force is refused.
func TestRemovalJudgesHealthFromTheLeader(t *testing.T) {
	c := testcluster.New(t, 3)
	leader := c.WaitLeader()
	serving, target := (leader+1)%3, (leader+2)%3
	c.Net.Block(c.Controllers[serving].Addr, c.Controllers[target].Addr, true)
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	_, err := apiv1.NewMemberServiceClient(c.ClientTo(serving)).RemoveMember(ctx, &apiv1.RemoveMemberRequest{Id: c.Controllers[target].ID()})
	refusedFor(t, err, api.RiskHealthy)
	if !strings.Contains(status.Convert(err).Message(), "reachable from "+c.Controllers[leader].ID()) {
		t.Fatalf("the refusal should say the leader %s reaches it: %v", c.Controllers[leader].ID(), err)
	}
	// Cut from the leader too, it is unreachable in the leader's view: no --force needed.
	c.Net.Block(c.Controllers[leader].Addr, c.Controllers[target].Addr, true)
	testcluster.WaitFor(t, 15*time.Second, func() error {
		ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
		defer cancel()
		_, err := apiv1.NewMemberServiceClient(c.ClientTo(serving)).RemoveMember(ctx, &apiv1.RemoveMemberRequest{Id: c.Controllers[target].ID()})
		return err
	})
}
