package workflows

import (
	"context"
	"crypto/sha256"
	"encoding/hex"
	"errors"
	"fmt"
	"log/slog"
	"slices"
	"strings"
	"time"

	"google.golang.org/protobuf/proto"
	"google.golang.org/protobuf/types/known/timestamppb"

	"github.com/deckhandhq/deckhand/internal/kubeadmconfig"
	apiv1 "github.com/deckhandhq/deckhand/proto/deckhand/api/v1"
	storagev1 "github.com/deckhandhq/deckhand/proto/deckhand/storage/v1"
	taskv1 "github.com/deckhandhq/deckhand/proto/deckhand/task/v1"
	"github.com/deckhandhq/deckhand/store"
)

// AutoRenewalKey holds the last renewal the leader started by itself.
const AutoRenewalKey = "/maintenance/certs-renew"

// MinAutoRenewalGap is the least time between two renewals the leader starts by itself,
// whatever the certificates say: a clock jump or a certificate that cannot be renewed
// does not make it renew in a loop.
const MinAutoRenewalGap = time.Hour

// AutoBy names the controller as a workflow's creator.
const AutoBy = "deckhand-controller"

// nodeCert is a certificate a control plane's agent reported.
type nodeCert struct {
	node, name          string
	notBefore, notAfter time.Time
}

// renewalInput is what the automatic renewal decides from.
type renewalInput struct {
	now      time.Time
	settings *taskv1.CertificateSettings
	cps      []string   // the cluster's control planes, in its order
	certs    []nodeCert // certificates kubeadm renews, on those control planes
	last     *storagev1.AutoRenewalRecord
	running  bool // a certs-renew workflow is running
}

// renewalDecision: start a renewal of nodes because of trigger, or why not (skip).
type renewalDecision struct {
	start   bool
	nodes   []string
	trigger nodeCert
	reason  string // why it starts, or why not
}

// decideRenewal says whether the leader starts a certificate renewal by itself: when a
// certificate kubeadm renews expires within renew_before, on the control planes holding
// one, once per crossing (the same certificate with the same expiry never starts a second
// one: a failed renewal waits for a person), never while a renewal runs, never twice within
// MinAutoRenewalGap, and never while renew_before is more than nine tenths of a due
// certificate's life (each renewal would soon start the next).
func decideRenewal(in renewalInput) renewalDecision {
	if in.settings.GetManual() {
		return renewalDecision{reason: "spec.certificates.manual: only deckctl certs renew renews"}
	}
	before := kubeadmconfig.RenewBefore(in.settings)
	var due []nodeCert
	for _, c := range in.certs {
		if slices.Contains(in.cps, c.node) && c.notAfter.Sub(in.now) < before {
			due = append(due, c)
		}
	}
	if len(due) == 0 {
		return renewalDecision{reason: "no certificate expires within " + before.String()}
	}
	slices.SortStableFunc(due, func(a, b nodeCert) int { return a.notAfter.Compare(b.notAfter) })
	first := due[0]
	for _, c := range due {
		// A renewal issues certificates of the same life: with renewBefore at more than nine
		// tenths of it, each would be due again soon after (every MinAutoRenewalGap).
		if life := c.notAfter.Sub(c.notBefore); before > life-life/10 {
			return renewalDecision{trigger: c, reason: fmt.Sprintf("%s on %s lives %v: renewBefore %v leaves less than a tenth of it, so every renewal would soon be due again; lower spec.certificates.renewBefore",
				c.name, c.node, life.Round(time.Minute), before)}
		}
	}
	if in.running {
		return renewalDecision{trigger: first, reason: "a certificate renewal is running"}
	}
	if l := in.last; l != nil {
		if l.GetNode() == first.node && l.GetCert() == first.name && l.GetNotAfter().AsTime().Equal(first.notAfter) {
			return renewalDecision{trigger: first, reason: fmt.Sprintf("workflow %s was started for %s on %s already; deckctl workflow retry %s or deckctl certs renew runs it again",
				l.GetWorkflowId(), first.name, first.node, l.GetWorkflowId())}
		}
		if since := in.now.Sub(l.GetStarted().AsTime()); since < MinAutoRenewalGap {
			return renewalDecision{trigger: first, reason: fmt.Sprintf("the last automatic renewal started %v ago (at most one every %v)", since.Round(time.Second), MinAutoRenewalGap)}
		}
	}
	var nodes []string
	for _, n := range in.cps {
		if slices.ContainsFunc(due, func(c nodeCert) bool { return c.node == n }) {
			nodes = append(nodes, n)
		}
	}
	return renewalDecision{start: true, nodes: nodes, trigger: first,
		reason: fmt.Sprintf("%s on %s expires %s, within renewBefore %v", first.name, first.node, first.notAfter.UTC().Format(time.RFC3339), before)}
}

// kubeadmCerts lists the certificates kubeadm renews that nodes' facts report.
func kubeadmCerts(ns []*apiv1.Node) []nodeCert {
	var out []nodeCert
	for _, n := range ns {
		for _, c := range n.GetFacts().GetCertificates() {
			if c.GetRenewedBy() == "kubeadm" && !c.GetCa() && c.GetNotAfter() != nil {
				out = append(out, nodeCert{node: n.GetName(), name: c.GetName(), notBefore: c.GetNotBefore().AsTime(), notAfter: c.GetNotAfter().AsTime()})
			}
		}
	}
	return out
}

// autoRenewalID is the workflow ID of the renewal a crossing starts: a second leader
// starting the same one finds it (CreateWithID is idempotent).
func autoRenewalID(c nodeCert) string {
	h := sha256.Sum256([]byte(c.node + "\x00" + c.name + "\x00" + c.notAfter.UTC().Format(time.RFC3339Nano)))
	return "wf-certs-auto-" + hex.EncodeToString(h[:8])
}

// Maintain runs the leader's own work until ctx ends: every interval it checks the
// certificates against spec.certificates and starts a renewal when one is due, and takes
// the scheduled etcd snapshots of spec.etcd.backup.
func (s *Service) Maintain(ctx context.Context, fence store.Compare, interval time.Duration, log *slog.Logger) {
	t := time.NewTicker(interval)
	defer t.Stop()
	said := map[string]string{}
	for {
		for what, do := range map[string]func(context.Context, store.Compare) (string, error){
			"automatic certificate renewal": s.maintainCerts, "scheduled etcd snapshot": s.maintainBackups,
		} {
			reason, err := do(ctx, fence)
			switch {
			case err != nil && ctx.Err() == nil:
				log.Warn(what, "err", err)
			case reason != said[what] && reason != "":
				log.Info(what, "decision", reason)
			}
			said[what] = reason
		}
		select {
		case <-ctx.Done():
			return
		case <-t.C:
		}
	}
}

// maintainCerts loads what decideRenewal needs, and starts and records what it decides.
func (s *Service) maintainCerts(ctx context.Context, fence store.Compare) (string, error) {
	cl, err := s.Cluster(ctx)
	if err != nil || cl == nil {
		return "", err
	}
	ns, err := s.nodes.List(ctx)
	if err != nil {
		return "", err
	}
	in := renewalInput{now: s.now(), settings: cl.GetSpec().GetCertificates(), cps: controlPlanes(cl), certs: kubeadmCerts(ns)}
	if kv, _, err := s.st.Get(ctx, AutoRenewalKey); err == nil {
		in.last = &storagev1.AutoRenewalRecord{}
		if err := proto.Unmarshal(kv.Value, in.last); err != nil {
			return "", fmt.Errorf("%s: %w", AutoRenewalKey, err)
		}
	} else if !errors.Is(err, store.ErrNotFound) {
		return "", err
	}
	running, err := s.List(ctx, apiv1.WorkflowState_WORKFLOW_STATE_RUNNING)
	if err != nil {
		return "", err
	}
	in.running = slices.ContainsFunc(running, func(w *apiv1.Workflow) bool { return w.GetSpec().GetCertsRenew() != nil })
	d := decideRenewal(in)
	if !d.start {
		return d.reason, nil
	}
	id := autoRenewalID(d.trigger)
	spec := &apiv1.WorkflowSpec{Kind: &apiv1.WorkflowSpec_CertsRenew{CertsRenew: &apiv1.CertsRenewWorkflow{Nodes: d.nodes}}}
	if _, err := s.CreateWithID(ctx, id, spec, AutoBy+": "+d.reason); err != nil {
		return d.reason, fmt.Errorf("starting the renewal (%s): %w", d.reason, err)
	}
	b, err := proto.Marshal(&storagev1.AutoRenewalRecord{Started: timestamppb.New(in.now), WorkflowId: id, Node: d.trigger.node, Cert: d.trigger.name, NotAfter: timestamppb.New(d.trigger.notAfter)})
	if err != nil {
		return "", err
	}
	if _, err := s.st.Txn(ctx, store.Txn{If: []store.Compare{fence}, Then: []store.Op{store.Put(AutoRenewalKey, b)}}); err != nil {
		return d.reason, err
	}
	return "started " + id + ": " + d.reason, nil
}

// EtcdBackupKey holds the last scheduled etcd snapshot the leader started.
const EtcdBackupKey = "/maintenance/etcd-backup"

// BackupCopies is how many control planes take each scheduled snapshot (each from its own
// member, kept on its own disk): losing one host loses no backup.
const BackupCopies = 2

// backupInput is what a scheduled etcd snapshot is decided from.
type backupInput struct {
	now       time.Time
	backup    *taskv1.EtcdBackup
	cps       []string        // the cluster's control planes, in its order
	connected map[string]bool // whose agents are connected
	last      *storagev1.EtcdBackupRecord
}

// backupDecision: take snapshot name on nodes, or why not.
type backupDecision struct {
	nodes  []string
	name   string
	reason string
}

// decideBackup says whether the leader takes a scheduled etcd snapshot now: once the
// schedule's interval has passed since the last one started (at once when there was none),
// on the first BackupCopies control planes whose agents are connected.
func decideBackup(in backupInput) backupDecision {
	iv := in.backup.GetInterval().AsDuration()
	if iv <= 0 {
		return backupDecision{reason: "no spec.etcd.backup schedule"}
	}
	if l := in.last; l != nil {
		if next := l.GetStarted().AsTime().Add(iv); in.now.Before(next) {
			return backupDecision{reason: "the next scheduled snapshot is due at " + next.UTC().Format(time.RFC3339)}
		}
	}
	var nodes []string
	for _, n := range in.cps {
		if in.connected[n] && len(nodes) < BackupCopies {
			nodes = append(nodes, n)
		}
	}
	if len(nodes) == 0 {
		return backupDecision{reason: "no control plane's agent is connected: the scheduled snapshot waits"}
	}
	name := "scheduled-" + strings.ToLower(in.now.UTC().Format("20060102t150405"))
	return backupDecision{nodes: nodes, name: name, reason: fmt.Sprintf("scheduled snapshot %s on %s", name, strings.Join(nodes, ", "))}
}

// maintainBackups loads what decideBackup needs, and starts and records what it decides.
func (s *Service) maintainBackups(ctx context.Context, fence store.Compare) (string, error) {
	cl, err := s.Cluster(ctx)
	if err != nil || cl == nil {
		return "", err
	}
	b := cl.GetSpec().GetEtcd().GetBackup()
	if b.GetInterval() == nil {
		return "", nil
	}
	ns, err := s.nodes.List(ctx)
	if err != nil {
		return "", err
	}
	in := backupInput{now: s.now(), backup: b, cps: controlPlanes(cl), connected: map[string]bool{}}
	for _, n := range ns {
		in.connected[n.GetName()] = n.GetState() == apiv1.NodeState_NODE_STATE_READY
	}
	if kv, _, err := s.st.Get(ctx, EtcdBackupKey); err == nil {
		in.last = &storagev1.EtcdBackupRecord{}
		if err := proto.Unmarshal(kv.Value, in.last); err != nil {
			return "", fmt.Errorf("%s: %w", EtcdBackupKey, err)
		}
	} else if !errors.Is(err, store.ErrNotFound) {
		return "", err
	}
	d := decideBackup(in)
	if len(d.nodes) == 0 {
		return d.reason, nil
	}
	// Recorded first: a task that cannot be created (its node held by a workflow) waits for
	// the next interval rather than being tried every minute.
	rec, err := proto.Marshal(&storagev1.EtcdBackupRecord{Started: timestamppb.New(in.now), Name: d.name, Nodes: d.nodes})
	if err != nil {
		return "", err
	}
	if _, err := s.st.Txn(ctx, store.Txn{If: []store.Compare{fence}, Then: []store.Op{store.Put(EtcdBackupKey, rec)}}); err != nil {
		return "", err
	}
	var errs []error
	for _, n := range d.nodes {
		t := &taskv1.Task{Id: d.name + "." + n, Node: n, Spec: &taskv1.TaskSpec{Kind: &taskv1.TaskSpec_EtcdSnapshot{EtcdSnapshot: &taskv1.EtcdSnapshotSpec{Name: d.name, Keep: uint32(kubeadmconfig.BackupKeep(b))}}}}
		if _, err := s.CreateTask(ctx, t); err != nil {
			errs = append(errs, fmt.Errorf("%s: %w", n, err))
		}
	}
	return d.reason, errors.Join(errs...)
}
