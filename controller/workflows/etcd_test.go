package workflows

import (
	"errors"
	"strings"
	"testing"
	"time"

	"google.golang.org/protobuf/types/known/durationpb"
	"google.golang.org/protobuf/types/known/timestamppb"

	apiv1 "github.com/deckhandhq/deckhand/proto/deckhand/api/v1"
	storagev1 "github.com/deckhandhq/deckhand/proto/deckhand/storage/v1"
	taskv1 "github.com/deckhandhq/deckhand/proto/deckhand/task/v1"
)

func TestDecideRestore(t *testing.T) {
	cps := []string{"cp-1", "cp-2", "cp-3"}
	addrs := map[string]string{"cp-1": "10.0.0.1", "cp-2": "10.0.0.2", "cp-3": "10.0.0.3"}
	snap := func(node, name string, size, recorded uint64) snapshotAt {
		return snapshotAt{node: node, name: name, sha256: strings.Repeat("a", 64), size: size, recordedSize: recorded}
	}
	snaps := []snapshotAt{snap("cp-2", "nightly", 100, 100), snap("cp-1", "both", 5, 5), snap("cp-3", "both", 5, 5), snap("cp-3", "cut", 40, 100), snap("w-1", "worker", 5, 5)}
	for _, c := range []struct {
		name   string
		req    *apiv1.EtcdRestoreWorkflow
		first  string
		others string
		err    string
	}{
		{name: "restored on its holder, the others re-joined in the cluster's order", req: &apiv1.EtcdRestoreWorkflow{Snapshot: "nightly"}, first: "cp-2", others: "cp-1,cp-3"},
		{name: "the node named", req: &apiv1.EtcdRestoreWorkflow{Snapshot: "both", Node: "cp-3"}, first: "cp-3", others: "cp-1,cp-2"},
		{name: "several hold it: say which", req: &apiv1.EtcdRestoreWorkflow{Snapshot: "both"}, err: "etcd_restore.node: cp-1 and cp-3 each keep a snapshot \"both\""},
		{name: "unknown", req: &apiv1.EtcdRestoreWorkflow{Snapshot: "nope"}, err: "any control plane keeps no snapshot \"nope\""},
		{name: "not on the node named", req: &apiv1.EtcdRestoreWorkflow{Snapshot: "nightly", Node: "cp-1"}, err: "cp-1 keeps no snapshot"},
		{name: "a worker's is not a control plane's", req: &apiv1.EtcdRestoreWorkflow{Snapshot: "worker"}, err: "keeps no snapshot"},
		{name: "a node that is no control plane", req: &apiv1.EtcdRestoreWorkflow{Snapshot: "worker", Node: "w-1"}, err: "etcd_restore.node: \"w-1\" is not a control plane"},
		{name: "truncated: refused before anything", req: &apiv1.EtcdRestoreWorkflow{Snapshot: "cut"}, err: "cut on cp-3 has 40 bytes, 100 when it was taken"},
		{name: "no name", req: &apiv1.EtcdRestoreWorkflow{}, err: "etcd_restore.snapshot: give"},
	} {
		t.Run(c.name, func(t *testing.T) {
			d, err := decideRestore(cps, addrs, snaps, c.req)
			if c.err != "" {
				if err == nil || !strings.Contains(err.Error(), c.err) || !errors.Is(err, ErrInvalid) {
					t.Fatalf("err %v, want one saying %q", err, c.err)
				}
				return
			}
			if err != nil || d.first != c.first || strings.Join(d.others, ",") != c.others || d.sha256 != strings.Repeat("a", 64) {
				t.Fatalf("%+v %v, want first %s others %s", d, err, c.first, c.others)
			}
		})
	}
}

// The plan: a check that stops nothing, every control plane stopped after it, the restore on
// the holder after every stop, the others re-joined one after another, then a health check.
func TestRestoreSteps(t *testing.T) {
	cl := &apiv1.Cluster{Nodes: []*apiv1.ClusterNode{{Name: "cp-1", Role: taskv1.NodeRole_NODE_ROLE_CONTROL_PLANE, Address: "10.0.0.1"},
		{Name: "w-1", Role: taskv1.NodeRole_NODE_ROLE_WORKER}, {Name: "cp-2", Role: taskv1.NodeRole_NODE_ROLE_CONTROL_PLANE, Address: "10.0.0.2"}}}
	p := &plan{}
	p.restoreSteps(restoreDecision{first: "cp-2", others: []string{"cp-1"}, sha256: "ab"}, &apiv1.EtcdRestoreWorkflow{Snapshot: "s", Force: true}, "restore-x", cl)
	var got []string
	for _, s := range p.steps {
		got = append(got, s.GetName()+"<"+strings.Join(s.GetDependsOn(), "+"))
	}
	want := "cp-2/check<, cp-2/stop<cp-2/check, cp-1/stop<cp-2/check, cp-2/restore<cp-2/stop+cp-1/stop, cp-1/rejoin<cp-2/restore, cp-2/health<cp-1/rejoin"
	if strings.Join(got, ", ") != want {
		t.Fatalf("steps\n%s\nwant\n%s", strings.Join(got, ", "), want)
	}
	chk := p.steps[0].GetTask().GetEtcdRestore()
	if chk.GetSha256() != "ab" || !chk.GetForce() || chk.GetSnapshot() != "s" || p.steps[0].GetMaxAttempts() != 1 {
		t.Errorf("check %v", chk)
	}
	if rj := p.steps[4].GetTask().GetEtcdRestore(); rj.GetFirstAddress() != "10.0.0.2" || rj.GetRestoreId() != "restore-x" {
		t.Errorf("rejoin %v", rj)
	}
	if strings.Join(p.nodes, ",") != "cp-2,cp-1" {
		t.Errorf("held %v, want every control plane", p.nodes)
	}
	if h := p.steps[5].GetTask().GetClusterHealth(); strings.Join(h.GetNodes(), ",") != "cp-1,w-1,cp-2" {
		t.Errorf("health waits for %v, want every node", h.GetNodes())
	}
}

func TestDecideBackup(t *testing.T) {
	now := time.Date(2027, 1, 2, 3, 4, 5, 0, time.UTC)
	every := func(d time.Duration) *taskv1.EtcdBackup { return &taskv1.EtcdBackup{Interval: durationpb.New(d)} }
	last := func(ago time.Duration) *storagev1.EtcdBackupRecord {
		return &storagev1.EtcdBackupRecord{Started: timestamppb.New(now.Add(-ago))}
	}
	cps := []string{"cp-1", "cp-2", "cp-3"}
	all := map[string]bool{"cp-1": true, "cp-2": true, "cp-3": true}
	for _, c := range []struct {
		name   string
		in     backupInput
		nodes  string
		reason string
	}{
		{name: "no schedule", in: backupInput{}, reason: "no spec.etcd.backup"},
		{name: "never taken: now, on two control planes", in: backupInput{backup: every(time.Hour), connected: all}, nodes: "cp-1,cp-2", reason: "scheduled snapshot scheduled-20270102t030405 on cp-1, cp-2"},
		{name: "not yet due", in: backupInput{backup: every(time.Hour), connected: all, last: last(59 * time.Minute)}, reason: "due at 2027-01-02T03:05:05Z"},
		{name: "due", in: backupInput{backup: every(time.Hour), connected: all, last: last(time.Hour)}, nodes: "cp-1,cp-2"},
		{name: "a disconnected control plane is skipped", in: backupInput{backup: every(time.Hour), connected: map[string]bool{"cp-2": true, "cp-3": true}}, nodes: "cp-2,cp-3"},
		{name: "one left: one copy", in: backupInput{backup: every(time.Hour), connected: map[string]bool{"cp-3": true}}, nodes: "cp-3"},
		{name: "none connected: waits", in: backupInput{backup: every(time.Hour)}, reason: "no control plane's agent is connected"},
	} {
		t.Run(c.name, func(t *testing.T) {
			in := c.in
			in.now, in.cps = now, cps
			d := decideBackup(in)
			if strings.Join(d.nodes, ",") != c.nodes || !strings.Contains(d.reason, c.reason) {
				t.Fatalf("nodes %v reason %q; want %s %q", d.nodes, d.reason, c.nodes, c.reason)
			}
		})
	}
}
