package kubeadm

import (
	"context"
	"regexp"
	"time"

	"github.com/deckhandhq/deckhand/agent/facts"
	"github.com/deckhandhq/deckhand/agent/host"
	"github.com/deckhandhq/deckhand/agent/tasks"
	"github.com/deckhandhq/deckhand/internal/kubeimages"
	taskv1 "github.com/deckhandhq/deckhand/proto/deckhand/task/v1"
)

// Upgrade runs kubeadm upgrade on a node whose kubeadm is the target's already: `kubeadm
// upgrade apply VERSION --yes` on the first control plane, `kubeadm upgrade node` on any
// other. A node is not upgraded again (the evidence a retry after a lost result, or a new
// upgrade after a cancel, goes by): a control plane whose static pods run the version, a
// worker whose kubelet is the version (installed only after its kubeadm upgrade node).
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
	// Evidence is read under the lock: a kubeadm of an earlier attempt still running (an
	// agent restarted meanwhile) finishes first.
	l, err := lock(ctx, h, e)
	if err != nil {
		return nil, err
	}
	defer l.Unlock()
	manifest, _ = h.ReadFile(facts.APIServerManifest)
	if cp && facts.ControlPlaneVersion(manifest) == version && (!spec.GetApply() || clusterVersion(ctx, h) == version) {
		// apply also needs the cluster's configuration at the version: an apply that failed
		// after its control-plane phase left the static pods upgraded but not the rest.
		e.Logf("the control plane runs %s already: nothing to upgrade", version)
		return map[string]string{"upgraded": "false"}, nil
	}
	f, _ := (&facts.Collector{Root: h.Root, Timeout: 5 * time.Second}).Collect(ctx)
	if !cp && f.GetKubeVersions()["kubelet"] == version {
		// A worker's kubelet is installed after its kubeadm upgrade node: this one ran.
		e.Logf("the kubelet is %s already: this worker's upgrade ran before", version)
		return map[string]string{"upgraded": "false"}, nil
	}
	if have := f.GetKubeVersions()["kubeadm"]; have != version {
		if !h.DryRun {
			return nil, tasks.Errorf("KUBEADM_VERSION", "install kubeadm "+version+" first: the upgrade's kubeadm step (packages, components kubeadm)",
				"kubeadm is %q here, not %s: kubeadm upgrades only to its own version", have, version)
		}
		e.Logf("kubeadm is %q here: the upgrade's kubeadm step installs %s first", have, version)
	}
	what, argv := "kubeadm upgrade node", []string{"kubeadm", "upgrade", "node"}
	if spec.GetApply() {
		what, argv = "kubeadm upgrade apply "+version, []string{"kubeadm", "upgrade", "apply", version, "--yes"}
	}
	// A cancel waits for kubeadm: killed half way it would leave the node between two
	// versions (its rollback of the static pods runs only when it fails by itself), and its
	// own timeouts (5 minutes per static pod) end a hung one.
	if err := ctx.Err(); err != nil {
		return nil, err // stopped before kubeadm started: nothing ran
	}
	run, stop := host.ToTheEnd(ctx, UpgradeBound, func(reason error) {
		e.Logf("%s: %s runs to its end first, so the node is left upgraded or untouched, not in between", host.Stopped(reason), what)
	})
	out, err := l.RunOutput(run, what, argv...)
	stop()
	l.Unlock()
	if ctx.Err() != nil {
		// Stopped meanwhile: the task ends cancelled, but what kubeadm did is in the log.
		if err != nil {
			e.Logf("%s failed after the task was stopped: %v", what, err)
		} else {
			e.Logf("%s finished after the task was stopped: the node is upgraded; the next upgrade goes on from it", what)
		}
		logOutput(e, string(out))
		return nil, ctx.Err()
	}
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

// UpgradeBound ends a kubeadm upgrade that a cancel waits for but that hangs past its own
// timeouts (each static pod's: 5 minutes; etcd and four components on a control plane).
const UpgradeBound = 30 * time.Minute

// clusterVersionRE finds kubeadm's ClusterConfiguration kubernetesVersion.
var clusterVersionRE = regexp.MustCompile(`(?m)^kubernetesVersion:\s*(v[0-9]+\.[0-9]+\.[0-9]+)\s*$`)

// clusterVersion is the cluster's version as kubeadm keeps it (the kubeadm-config
// ConfigMap's ClusterConfiguration, which kubeadm upgrade apply moves last); "" when it
// cannot be read.
func clusterVersion(ctx context.Context, h *host.Host) string {
	out, err := h.QueryQuiet(ctx, "kubectl", "--kubeconfig", adminConf, "-n", "kube-system", "get", "configmap", "kubeadm-config", "-o", "jsonpath={.data.ClusterConfiguration}")
	if err != nil {
		return ""
	}
	if m := clusterVersionRE.FindSubmatch(out); m != nil {
		return string(m[1])
	}
	return ""
}
