package kubeadm

import (
	"context"
	"time"

	"github.com/deckhandhq/deckhand/agent/facts"
	"github.com/deckhandhq/deckhand/agent/host"
	"github.com/deckhandhq/deckhand/agent/tasks"
	"github.com/deckhandhq/deckhand/internal/kubeimages"
	taskv1 "github.com/deckhandhq/deckhand/proto/deckhand/task/v1"
)

// Upgrade runs kubeadm upgrade on a node whose kubeadm is the target's already: `kubeadm
// upgrade apply VERSION --yes` on the first control plane, `kubeadm upgrade node` on any
// other. A control plane whose static pods run the version is not upgraded again (the
// evidence a retry after a lost result, or a new upgrade after a cancel, goes by); a
// worker's `kubeadm upgrade node` only fetches its kubelet configuration again, so it runs
// every time.
func Upgrade(ctx context.Context, t *taskv1.Task, h *host.Host, e *tasks.Emitter) (map[string]string, error) {
	spec := t.GetSpec().GetKubeadmUpgrade()
	version, _, err := kubeimages.ParseKubernetesVersion(spec.GetKubernetesVersion())
	if err != nil {
		return nil, invalid(err)
	}
	manifest, _ := h.ReadFile(facts.APIServerManifest)
	cp := manifest != nil
	switch {
	case !h.Exists(kubeletConf) && !h.DryRun:
		return nil, tasks.Errorf("NOT_JOINED", "join the node first (deckctl join NODE)", "this node is not part of a cluster: no %s", kubeletConf)
	case spec.GetApply() && !cp && !h.DryRun:
		return nil, tasks.Errorf("NOT_CONTROL_PLANE", "run kubeadm upgrade apply on a control-plane node", "no %s: this node is not a control plane", facts.APIServerManifest)
	}
	if cp && facts.ControlPlaneVersion(manifest) == version {
		e.Logf("the control plane runs %s already: nothing to upgrade", version)
		return map[string]string{"upgraded": "false"}, nil
	}
	f, _ := (&facts.Collector{Root: h.Root, Timeout: 5 * time.Second}).Collect(ctx)
	if have := f.GetKubeVersions()["kubeadm"]; have != version {
		if !h.DryRun {
			return nil, tasks.Errorf("KUBEADM_VERSION", "install kubeadm "+version+" first: the upgrade's kubeadm step (packages, components kubeadm)",
				"kubeadm is %q here, not %s: kubeadm upgrades only to its own version", have, version)
		}
		e.Logf("kubeadm is %q here: the upgrade's kubeadm step installs %s first", have, version)
	}
	l, err := lock(ctx, h, e)
	if err != nil {
		return nil, err
	}
	defer l.Unlock()
	what, argv := "kubeadm upgrade node", []string{"kubeadm", "upgrade", "node"}
	if spec.GetApply() {
		what, argv = "kubeadm upgrade apply "+version, []string{"kubeadm", "upgrade", "apply", version, "--yes"}
	}
	out, err := l.RunOutput(ctx, what, argv...)
	l.Unlock()
	if err != nil {
		attachDiagnostics(ctx, h, e)
		return nil, tasks.Errorf("UPGRADE_FAILED", "look at the task log and the attached diagnostics; kubeadm rolls back the static pods of a control plane it could not upgrade, so deckctl workflow retry ID tries again",
			"%s: %v", what, err)
	}
	if h.DryRun {
		return nil, nil
	}
	logOutput(e, string(out))
	if cp {
		if err := waitHealthy(ctx, h, e, 0, true); err != nil {
			return nil, err
		}
		if m, _ := h.ReadFile(facts.APIServerManifest); facts.ControlPlaneVersion(m) != version {
			return nil, tasks.Errorf("UPGRADE_FAILED", "look at the task log", "after %s the control plane runs %q, not %s", what, facts.ControlPlaneVersion(m), version)
		}
	}
	return map[string]string{"upgraded": "true"}, nil
}
