package workflows

import (
	"context"
	"crypto/sha256"
	"encoding/hex"
	"errors"
	"fmt"
	"log/slog"
	"slices"
	"time"

	"google.golang.org/protobuf/proto"
	"google.golang.org/protobuf/types/known/timestamppb"

	"github.com/deckhandhq/deckhand/internal/kubeadmconfig"
	"github.com/deckhandhq/deckhand/store"
	apiv1 "github.com/deckhandhq/deckhand/proto/deckhand/api/v1"
	storagev1 "github.com/deckhandhq/deckhand/proto/deckhand/storage/v1"
	taskv1 "github.com/deckhandhq/deckhand/proto/deckhand/task/v1"
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
// MinAutoRenewalGap, and never for a certificate whose whole life is shorter than
// renew_before (each renewal would start the next).
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
	if life := first.notAfter.Sub(first.notBefore); life <= before {
		return renewalDecision{trigger: first, reason: fmt.Sprintf("%s on %s lives %v, not longer than renewBefore %v: renewing it would not move it out; lower spec.certificates.renewBefore",
			first.name, first.node, life.Round(time.Minute), before)}
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
// certificates against spec.certificates and starts a renewal when one is due.
func (s *Service) Maintain(ctx context.Context, fence store.Compare, interval time.Duration, log *slog.Logger) {
	t := time.NewTicker(interval)
	defer t.Stop()
	var said string
	for {
		reason, err := s.maintainCerts(ctx, fence)
		switch {
		case err != nil && ctx.Err() == nil:
			log.Warn("automatic certificate renewal", "err", err)
		case reason != said && reason != "":
			log.Info("automatic certificate renewal", "decision", reason)
		}
		said = reason
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
