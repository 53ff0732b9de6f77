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
	l := newLab(t, "node-1", "node-2", "node-3", "node-4")
	if err := seedimages.ControlPlane(strings.TrimPrefix(l.mirror, "http://"), target, 4<<10, 1); err != nil {
		t.Fatal(err)
	}
	l.mustDeckctl(t, "apply", "-f", l.doc(t, 2, []string{"node-1"}, "node-2", "node-3"))

	plan := l.mustDeckctl(t, "upgrade", "plan", "--to", target, "--max-unavailable", "50%")
	for _, want := range []string{"upgrade control plane node-1 to " + target + " (kubeadm upgrade apply)", "upgrade worker batch 1 of 2 to " + target + ": node-2",
		"node-1: health, stage-packages, stage-images, kubeadm, upgrade, drain, kubelet, uncordon, ready, record, record-version",
		"node-3: stage-packages, stage-images, kubeadm, upgrade, drain, kubelet, uncordon, ready, record"} {
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
	// The record: the cluster's version, and each node's kubelet (and control plane).
	cl := l.mustDeckctl(t, "cluster")
	if !strings.Contains(cl, "Kubernetes:  "+target) || strings.Count(cl, target) != 1+3+1 {
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
	// deckctl nodes shows each node's kubelet, and a control plane's static pods, at the
	// release (the facts an agent reports after each task, written within seconds).
	testcluster.WaitFor(t, 30*time.Second, func() error {
		ns, _, err := l.deckctl("nodes")
		if err != nil {
			return err
		}
		for _, line := range strings.Split(ns, "\n") {
			f := strings.Fields(line)
			if len(f) == 0 || !strings.HasPrefix(f[0], "node-") || f[0] == "node-4" {
				continue
			}
			want := 1
			if f[0] == "node-1" {
				want = 2
			}
			if c := strings.Count(line, target); c != want {
				return fmt.Errorf("deckctl nodes shows %s at %s %d times, want %d (kubelet, control plane):\n%s", f[0], target, c, want, ns)
			}
		}
		return nil
	})
	// A node joining the upgraded cluster gets the release (its packages from the
	// repository of the cluster's minor now).
	if out := l.mustDeckctl(t, "join", "node-4"); !strings.Contains(out, "succeeded") {
		t.Fatalf("join after the upgrade:\n%s", out)
	}
	if cl := l.mustDeckctl(t, "cluster"); !strings.Contains(cl, "node-4") || strings.Count(cl, target) != 1+3+1+1 {
		t.Errorf("the record after a join:\n%s", cl)
	}
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

// SIMULATION: an upgrade paused once its control plane is done and then cancelled leaves
// the nodes it finished upgraded and the rest untouched, and the cluster record says which
// is which; the upgrade run again picks up the rest by evidence, never upgrading a node
// twice.
func TestUpgradeCancelAndRunAgain(t *testing.T) {
	const target = "v1.34.12"
	l := newLab(t, "node-1", "node-2", "node-3")
	if err := seedimages.ControlPlane(strings.TrimPrefix(l.mirror, "http://"), target, 4<<10, 1); err != nil {
		t.Fatal(err)
	}
	l.mustDeckctl(t, "apply", "-f", l.doc(t, 2, []string{"node-1"}, "node-2", "node-3"))
	id := workflowID(t, l.mustDeckctl(t, "upgrade", "apply", "--to", target, "--detach"))
	step := func(wf *apiv1.Workflow, name string) *apiv1.Step {
		for _, s := range wf.GetSteps() {
			if s.GetName() == name {
				return s
			}
		}
		t.Fatalf("no step %s", name)
		return nil
	}
	testcluster.WaitFor(t, 2*time.Minute, func() error {
		wf, err := l.Workflow(id)
		if err != nil {
			return err
		}
		if s := step(wf, "node-1/record"); s.GetState() != apiv1.StepState_STEP_STATE_SUCCEEDED {
			return fmt.Errorf("node-1/record is %s", s.GetState())
		}
		return nil
	})
	l.mustDeckctl(t, "upgrade", "pause", id)
	// Paused: the node under way (if any) finishes, then nothing runs.
	testcluster.WaitFor(t, 2*time.Minute, func() error {
		wf, err := l.Workflow(id)
		if err != nil {
			return err
		}
		for _, s := range wf.GetSteps() {
			if s.GetState() == apiv1.StepState_STEP_STATE_RUNNING {
				return fmt.Errorf("%s is running", s.GetName())
			}
			if k := step(wf, s.GetLane()+"/kubeadm"); k.GetState() == apiv1.StepState_STEP_STATE_SUCCEEDED &&
				s.GetLane() == k.GetLane() && s.GetState() == apiv1.StepState_STEP_STATE_PENDING && !strings.HasSuffix(s.GetName(), "/record-version") {
				return fmt.Errorf("%s is still to run on a node under way", s.GetName())
			}
		}
		return nil
	})
	if out := l.mustDeckctl(t, "upgrade", "cancel"); !strings.Contains(out, "cancelled") {
		t.Fatalf("cancel:\n%s", out)
	}
	recs := l.records(t)
	cl := l.mustDeckctl(t, "cluster")
	upgraded := 0
	for _, n := range []string{"node-1", "node-2", "node-3"} {
		c := simrecords.Count(recs, simrecords.KubeadmUpgrade, n)
		var line string
		for _, ln := range strings.Split(cl, "\n") {
			if strings.HasPrefix(ln, n+" ") {
				line = ln
			}
		}
		if (c == 1) != strings.Contains(line, target) || c > 1 {
			t.Errorf("%s: kubeadm upgrade ran %d time(s); the record says %q", n, c, line)
		}
		upgraded += c
	}
	if simrecords.Count(recs, simrecords.KubeadmUpgrade, "node-1") != 1 || simrecords.Count(recs, simrecords.KubeadmUpgrade, "node-3") != 0 || upgraded > 2 {
		t.Fatalf("after the cancel: node-1 upgraded, node-3 untouched expected; cluster:\n%s", cl)
	}

	// Run again: only the nodes left (the facts show which, once written).
	testcluster.WaitFor(t, 30*time.Second, func() error {
		plan, _, err := l.deckctl("upgrade", "plan", "--to", target)
		if err != nil || strings.Contains(plan, "node-1: health, stage") || !strings.Contains(plan, "node-3: stage") {
			return fmt.Errorf("the plan after the cancel: %v\n%s", err, plan)
		}
		return nil
	})
	if out := l.mustDeckctl(t, "upgrade", "apply", "--to", target); !strings.Contains(out, "succeeded") {
		t.Fatalf("upgrade again:\n%s", out)
	}
	recs = l.records(t)
	for _, n := range []string{"node-1", "node-2", "node-3"} {
		if c := simrecords.Count(recs, simrecords.KubeadmUpgrade, n); c != 1 {
			t.Errorf("kubeadm upgrade ran %d times on %s over both runs, want once", c, n)
		}
	}
}
