package api

import (
	"slices"
	"testing"
)

func TestRemovalRisks(t *testing.T) {
	up := func(id string) Member { return Member{ID: id, Voter: true, RaftState: "Follower"} }
	down := func(id string) Member { return Member{ID: id, Voter: true, Unreachable: true} }
	three := func(ms ...Member) MemberList {
		return MemberList{LeaderID: "a", ServedBy: "a", Store: "raft", Members: ms}
	}
	for _, tc := range []struct {
		name string
		list MemberList
		id   string
		want []string
	}{
		{"dead follower of three", three(up("a"), up("b"), down("c")), "c", nil},
		{"healthy follower", three(up("a"), up("b"), up("c")), "b", []string{RiskHealthy}},
		{"the leader", three(up("a"), up("b"), up("c")), "a", []string{RiskLeader}},
		{"dead follower leaving one of three", three(up("a"), down("b"), down("c")), "c", []string{RiskQuorum}},
		{"leader of two", three(up("a"), up("b")), "a", []string{RiskLeader, RiskQuorum}},
		{"dead of two", three(up("a"), down("b")), "b", []string{RiskQuorum}},
		{"not a member", three(up("a"), up("b"), up("c")), "x", nil},
		{"non-voter catching up", three(up("a"), up("b"), up("c"), Member{ID: "d", RaftState: "Follower"}), "d", []string{RiskHealthy}},
		{"etcd: no raft quorum", MemberList{LeaderID: "a", Store: "etcd", Members: []Member{up("a"), down("b")}}, "b", nil},
	} {
		t.Run(tc.name, func(t *testing.T) {
			got, why := RemovalRisks(tc.list, tc.id)
			if !slices.Equal(got, tc.want) || len(why) != len(got) {
				t.Fatalf("checks %v (%v), want %v", got, why, tc.want)
			}
		})
	}
}
