package workflows

import (
	"context"
	"fmt"
	"slices"
	"strings"
	"time"

	apiv1 "github.com/deckhandhq/deckhand/proto/deckhand/api/v1"
	taskv1 "github.com/deckhandhq/deckhand/proto/deckhand/task/v1"
)

// snapshotAt is an etcd snapshot a node's facts list.
type snapshotAt struct {
	node, name, sha256 string
	size, recordedSize uint64
}

// restoreDecision is how a restore goes: the snapshot restored on first, the other control
// planes re-joined to it in order.
type restoreDecision struct {
	first, sha256 string
	others        []string
}

// decideRestore checks a restore request against the cluster's control planes and the
// snapshots they keep: the snapshot must be on one of them (the one named, if any), whole
// as far as its facts tell (its size is the recorded one), and each control plane must have
// an address for the others' etcd to reach.
func decideRestore(cps []string, addrs map[string]string, snaps []snapshotAt, req *apiv1.EtcdRestoreWorkflow) (restoreDecision, error) {
	if len(cps) == 0 {
		return restoreDecision{}, fmt.Errorf("%w: the cluster records no control plane", ErrWrongState)
	}
	if req.GetSnapshot() == "" {
		return restoreDecision{}, fmt.Errorf("%w: etcd_restore.snapshot: give the snapshot's name, as deckctl etcd snapshots lists it", ErrInvalid)
	}
	if n := req.GetNode(); n != "" && !slices.Contains(cps, n) {
		return restoreDecision{}, fmt.Errorf("%w: etcd_restore.node: %q is not a control plane of the cluster (its control planes: %s)", ErrInvalid, n, strings.Join(cps, ", "))
	}
	var found []snapshotAt
	for _, s := range snaps {
		if s.name == req.GetSnapshot() && slices.Contains(cps, s.node) && (req.GetNode() == "" || s.node == req.GetNode()) {
			found = append(found, s)
		}
	}
	switch {
	case len(found) == 0:
		where := "any control plane"
		if req.GetNode() != "" {
			where = req.GetNode()
		}
		return restoreDecision{}, fmt.Errorf("%w: etcd_restore.snapshot: %s keeps no snapshot %q: deckctl etcd snapshots lists them", ErrInvalid, where, req.GetSnapshot())
	case len(found) > 1:
		var ns []string
		for _, s := range found {
			ns = append(ns, s.node)
		}
		return restoreDecision{}, fmt.Errorf("%w: etcd_restore.node: %s each keep a snapshot %q: say which with --node", ErrInvalid, strings.Join(ns, " and "), req.GetSnapshot())
	}
	s := found[0]
	if s.size != s.recordedSize {
		return restoreDecision{}, fmt.Errorf("%w: etcd_restore.snapshot: %s on %s has %d bytes, %d when it was taken: it is damaged (truncated?); restore from another snapshot", ErrInvalid, s.name, s.node, s.size, s.recordedSize)
	}
	d := restoreDecision{first: s.node, sha256: s.sha256}
	for _, n := range cps {
		if addrs[n] == "" {
			return restoreDecision{}, fmt.Errorf("%w: the cluster records no address for control plane %s", ErrWrongState, n)
		}
		if n != s.node {
			d.others = append(d.others, n)
		}
	}
	return d, nil
}

// restoreSteps: check on the snapshot's node (nothing stopped if it fails); every control
// plane stopped; etcd restored on the first and its control plane started; the others
// re-joined one by one; then the cluster's health, every node Ready.
func (p *plan) restoreSteps(d restoreDecision, req *apiv1.EtcdRestoreWorkflow, restoreID string, cl *apiv1.Cluster) {
	phase := func(ph taskv1.EtcdRestorePhase) *taskv1.EtcdRestoreSpec {
		return &taskv1.EtcdRestoreSpec{Phase: ph, RestoreId: restoreID}
	}
	chk := phase(taskv1.EtcdRestorePhase_ETCD_RESTORE_PHASE_CHECK)
	chk.Snapshot, chk.Sha256, chk.Force = req.GetSnapshot(), d.sha256, req.GetForce()
	c := p.add(d.first, "check", "the snapshot is whole (SHA-256), etcdutl runs, and the cluster is unhealthy or --force was given", nil, spec(chk))
	c.MaxAttempts = 1
	cps := append([]string{d.first}, d.others...)
	var stops []string
	for _, n := range cps {
		s := p.add(n, "stop", "stop the API server, controller manager, scheduler and etcd (their manifests moved aside)", []string{c.Name},
			spec(phase(taskv1.EtcdRestorePhase_ETCD_RESTORE_PHASE_STOP)))
		stops = append(stops, s.Name)
		p.hold(n)
	}
	rs := phase(taskv1.EtcdRestorePhase_ETCD_RESTORE_PHASE_RESTORE)
	rs.Snapshot, rs.Sha256 = req.GetSnapshot(), d.sha256
	prev := p.add(d.first, "restore", "etcdutl snapshot restore into a new data directory (a new cluster ID), then start the control plane", stops, spec(rs)).Name
	p.changes = append(p.changes, fmt.Sprintf("stop every control plane (%s); restore etcd on %s from snapshot %s (the old data kept as /var/lib/etcd/member.before-%s)",
		strings.Join(cps, ", "), d.first, req.GetSnapshot(), restoreID))
	first := clusterNode(cl, d.first).GetAddress()
	for _, n := range d.others {
		rj := phase(taskv1.EtcdRestorePhase_ETCD_RESTORE_PHASE_REJOIN)
		rj.FirstAddress = first
		prev = p.add(n, "rejoin", "join the restored etcd as a new member, then start the control plane", []string{prev}, spec(rj)).Name
		p.changes = append(p.changes, fmt.Sprintf("%s's etcd joins the restored one as a new member (its old data directory kept)", n))
	}
	h := p.add(d.first, "health", "check the API server, every node Ready and every etcd member healthy", []string{prev}, spec(&taskv1.ClusterHealthSpec{Nodes: names(cl)}))
	h.Node, h.AnyControlPlane, h.SelfAllowed, h.MaxAttempts = "", true, true, 10
}

// restoreID names what a restore keeps aside on the hosts.
func restoreID(now time.Time) string {
	return "restore-" + strings.ToLower(now.UTC().Format("20060102t150405"))
}

// buildRestore plans an etcd restore from the cluster record and the snapshots the control
// planes' facts list.
func (s *Service) buildRestore(ctx context.Context, cl *apiv1.Cluster, req *apiv1.EtcdRestoreWorkflow) (*plan, error) {
	if cl == nil {
		return nil, fmt.Errorf("%w: no cluster yet: nothing to restore", ErrWrongState)
	}
	ns, err := s.nodes.List(ctx)
	if err != nil {
		return nil, err
	}
	var snaps []snapshotAt
	for _, n := range ns {
		for _, sn := range n.GetFacts().GetEtcdSnapshots() {
			snaps = append(snaps, snapshotAt{node: n.GetName(), name: sn.GetName(), sha256: sn.GetSha256(), size: sn.GetSize(), recordedSize: sn.GetRecordedSize()})
		}
	}
	addrs := map[string]string{}
	for _, n := range cl.GetNodes() {
		addrs[n.GetName()] = n.GetAddress()
	}
	d, err := decideRestore(controlPlanes(cl), addrs, snaps, req)
	if err != nil {
		return nil, err
	}
	p := &plan{}
	p.restoreSteps(d, req, restoreID(s.now()), cl)
	return p, nil
}
