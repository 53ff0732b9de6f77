package cli_test

import (
	"fmt"
	"strings"
	"testing"
	"time"

	"github.com/deckhandhq/deckhand/internal/testkit/sim/seedimages"
	"github.com/deckhandhq/deckhand/internal/testkit/sim/simrecords"
	"github.com/deckhandhq/deckhand/internal/testkit/testcluster"
	apiv1 "github.com/deckhandhq/deckhand/proto/deckhand/api/v1"
)

// SIMULATION of an upgrade end to end (the kubeadm, kubelet and package manager of the
// simulated hosts): a control plane and two workers go from v1.33.13 to v1.34.12, each
// through kubeadm upgrade once, the cluster record says v1.34.12, every node's kubelet
// reports it; an upgrade again finds nothing to do; the rules refuse a downgrade and a
// skipped minor by name.
func TestUpgradeSimulated(t *testing.T) {
	const target = "v1.34.12"
	l := newLab(t, "node-1", "node-2", "node-3")
	if err := seedimages.ControlPlane(strings.TrimPrefix(l.mirror, "http://"), target, 4<<10, 1); err != nil {
		t.Fatal(err)
	}
	l.mustDeckctl(t, "apply", "-f", l.doc(t, 2, []string{"node-1"}, "node-2", "node-3"))

	plan := l.mustDeckctl(t, "upgrade", "plan", "--to", target, "--max-unavailable", "50%")
	for _, want := range []string{"upgrade control plane node-1 to " + target + " (kubeadm upgrade apply)", "upgrade worker batch 1 of 2 to " + target + ": node-2",
		"node-1: health, stage-packages, stage-images, kubeadm, upgrade, drain, kubelet, uncordon, ready, record-version",
		"node-3: stage-packages, stage-images, kubeadm, upgrade, drain, kubelet, uncordon, ready"} {
		if !strings.Contains(plan, want) {
			t.Errorf("upgrade plan lacks %q:\n%s", want, plan)
		}
	}
	out := l.mustDeckctl(t, "upgrade", "apply", "--to", target)
	if !strings.Contains(out, "succeeded") {
		t.Fatalf("upgrade:\n%s", out)
	}
	recs := l.records(t)
	for _, n := range []string{"node-1", "node-2", "node-3"} {
		if c := simrecords.Count(recs, simrecords.KubeadmUpgrade, n); c != 1 {
			t.Errorf("kubeadm upgrade ran %d times on %s, want once", c, n)
		}
		if c := simrecords.Count(recs, simrecords.KubectlUncordon, n); c != 1 {
			t.Errorf("%s was uncordoned %d times, want once", n, c)
		}
	}
	if cl := l.mustDeckctl(t, "cluster"); !strings.Contains(cl, target) {
		t.Errorf("the cluster record after the upgrade:\n%s", cl)
	}
	// Once the nodes' facts show the release (an agent reports them after each task; a
	// node's facts are written at most every few seconds), nothing is left to upgrade.
	testcluster.WaitFor(t, 30*time.Second, func() error {
		if again, _, err := l.deckctl("upgrade", "plan", "--to", target); err != nil || !strings.Contains(again, "Nothing to upgrade") {
			return fmt.Errorf("a second upgrade plan: %v\n%s", err, again)
		}
		return nil
	})
	for _, c := range []struct{ to, rule string }{{"v1.33.13", "no-downgrade"}, {"v1.36.0", "supported-version"}} {
		if _, _, err := l.deckctl("upgrade", "plan", "--to", c.to); err == nil || !strings.Contains(err.Error(), c.rule) {
			t.Errorf("upgrade to %s: %v, want a refusal by rule %s", c.to, err, c.rule)
		}
	}
}

// SIMULATION: an upgrade started paused stages every node and changes none; resumed, it
// upgrades every node once.
func TestUpgradePauseAndResume(t *testing.T) {
	const target = "v1.34.12"
	l := newLab(t, "node-1", "node-2", "node-3")
	if err := seedimages.ControlPlane(strings.TrimPrefix(l.mirror, "http://"), target, 4<<10, 1); err != nil {
		t.Fatal(err)
	}
	l.mustDeckctl(t, "apply", "-f", l.doc(t, 2, []string{"node-1"}, "node-2", "node-3"))

	id := workflowID(t, l.mustDeckctl(t, "upgrade", "apply", "--to", target, "--detach", "--paused"))
	if out := l.mustDeckctl(t, "upgrade", "pause"); !strings.Contains(out, "paused") {
		t.Fatalf("pause of a paused upgrade:\n%s", out)
	}
	// Staging ends (the pass that records the last staging step would start the first
	// node's upgrade, were the workflow not paused).
	var wf *apiv1.Workflow
	testcluster.WaitFor(t, 2*time.Minute, func() error {
		var err error
		if wf, err = l.Workflow(id); err != nil {
			return err
		}
		for _, s := range wf.GetSteps() {
			if strings.Contains(s.GetName(), "/stage-") && s.GetState() != apiv1.StepState_STEP_STATE_SUCCEEDED {
				return fmt.Errorf("%s is %s", s.GetName(), s.GetState())
			}
		}
		return nil
	})
	for _, s := range wf.GetSteps() {
		if s.GetGate() && s.GetState() != apiv1.StepState_STEP_STATE_PENDING {
			t.Errorf("%s is %s in a paused upgrade", s.GetName(), s.GetState())
		}
	}
	if d := l.mustDeckctl(t, "workflow", "describe", id); !strings.Contains(d, "paused") || !strings.Contains(d, "running") {
		t.Errorf("describe of a paused upgrade:\n%s", d)
	}
	if c := simrecords.Count(l.records(t), simrecords.KubeadmUpgrade, "node-1"); c != 0 {
		t.Fatalf("kubeadm upgrade ran on node-1 while paused")
	}

	l.mustDeckctl(t, "upgrade", "resume", id)
	if out := l.mustDeckctl(t, "workflow", "watch", id); !strings.Contains(out, "succeeded") || !strings.Contains(out, "upgraded 3 of 3 node(s)") {
		t.Fatalf("resumed upgrade:\n%s", out)
	}
	for _, n := range []string{"node-1", "node-2", "node-3"} {
		if c := simrecords.Count(l.records(t), simrecords.KubeadmUpgrade, n); c != 1 {
			t.Errorf("kubeadm upgrade ran %d times on %s, want once", c, n)
		}
	}
	if _, _, err := l.deckctl("upgrade", "pause", id); err == nil || !strings.Contains(err.Error(), "already succeeded") {
		t.Errorf("pausing an upgrade that ended: %v", err)
	}
}
