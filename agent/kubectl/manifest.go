package kubectl

import (
	"context"
	"fmt"
	"slices"
	"strconv"
	"strings"
	"time"

	"github.com/deckhandhq/deckhand/agent/artifact"
	"github.com/deckhandhq/deckhand/agent/host"
	"github.com/deckhandhq/deckhand/agent/tasks"
	"github.com/deckhandhq/deckhand/internal/manifests"
	"github.com/deckhandhq/deckhand/internal/podnet"
	taskv1 "github.com/deckhandhq/deckhand/proto/deckhand/task/v1"
)

const (
	// ManifestDir keeps every manifest a manifest task applied, NAME.yaml (0600).
	ManifestDir = "/etc/kubernetes/deckhand/manifests"
	// DefaultRolloutTimeout bounds the rollouts of a manifest whose spec gives no timeout.
	DefaultRolloutTimeout = 5 * time.Minute
	// fieldManager owns the fields Deckhand applies (server-side apply).
	fieldManager = "deckhand"
)

// workloadKinds are the kinds whose rollout a manifest task awaits.
var workloadKinds = map[string]string{"DaemonSet": "daemonset", "Deployment": "deployment", "StatefulSet": "statefulset"}

// Manifest applies a manifest with kubectl (server-side, Deckhand owning the fields it
// sets) on a control plane, then waits for every DaemonSet, Deployment and StatefulSet of
// it to roll out, within the spec's timeout. The manifest is kept in ManifestDir.
func Manifest(ctx context.Context, t *taskv1.Task, h *host.Host, e *tasks.Emitter) (map[string]string, error) {
	s := t.GetSpec().GetManifest()
	if !manifests.ValidName(s.GetName()) {
		return nil, tasks.Errorf("INVALID_ARGUMENT", "name the manifest with lower-case letters, digits and '-'", "manifest.name %q is not a manifest name", s.GetName())
	}
	content, fetched, preset := s.GetContent(), s.GetLocation() != "", s.GetPreset()
	switch {
	case fetched && content != "":
		return nil, tasks.Errorf("INVALID_ARGUMENT", "give the manifest's content or its location, not both", "manifest: both content and location are set")
	case preset != nil && (fetched || content != ""):
		return nil, tasks.Errorf("INVALID_ARGUMENT", "give the manifest's content, its location or a preset, one of them", "manifest: a preset and content or a location are set")
	case preset != nil:
		var err error
		if content, err = renderPreset(preset); err != nil {
			return nil, err
		}
	case fetched && s.GetSha256() == "":
		return nil, tasks.Errorf("INVALID_ARGUMENT", "add the manifest's SHA-256 (sha256sum FILE)", "manifest.sha256 is required with a location")
	case fetched:
		data, err := artifact.Fetch(ctx, h, "manifest.location", s.GetLocation(), s.GetSha256(), manifests.MaxFetchedBytes)
		if err != nil {
			return nil, err
		}
		content = string(data)
	}
	content, images, err := manifests.RewriteImages(content, s.GetRegistry().GetImageRepository())
	if err != nil {
		return nil, tasks.Errorf("INVALID_ARGUMENT", "fix the manifest "+s.GetName(), "manifest.content: %v", err)
	}
	if declared := s.GetImages(); len(declared) > 0 {
		var other []string
		for _, img := range images {
			if !slices.Contains(declared, img) {
				other = append(other, img)
			}
		}
		if len(other) > 0 {
			return nil, tasks.Errorf("UNDECLARED_IMAGES", "add them to the manifest's images (spec.network.manifest.images), so every node pulls them and an air-gapped export carries them",
				"the manifest %s runs %s, not among its declared images", s.GetName(), strings.Join(other, ", "))
		}
	}
	objs, err := manifests.Parse(content, fetched || preset != nil) // neither is stored in the task record
	if err != nil {
		return nil, tasks.Errorf("INVALID_ARGUMENT", "fix the manifest "+s.GetName(), "manifest.content: %v", err)
	}
	if err := controlPlane(h, "manifest"); err != nil && !h.DryRun {
		// (A dry-run of an init: the node is a control plane once the init really ran.)
		return nil, err
	}
	timeout := DefaultRolloutTimeout
	if d := s.GetTimeout(); d != nil && d.AsDuration() > 0 {
		timeout = d.AsDuration()
	}
	path := ManifestDir + "/" + s.GetName() + ".yaml"
	// As applied (images rewritten); not shown in the task's changes: it may hold Secrets.
	if _, err := h.WriteFile(path, []byte(content), 0o600, host.Secret); err != nil {
		return nil, fmt.Errorf("write %s: %w", path, err)
	}
	if err := h.Run(ctx, fmt.Sprintf("apply the %d object(s) of %s", len(objs), s.GetName()),
		argv("apply", "--server-side", "--force-conflicts", "--field-manager="+fieldManager, "-f", path)...); err != nil {
		return nil, tasks.Errorf("APPLY_FAILED", "check the manifest against the cluster: "+strings.Join(argv("apply", "--server-side", "--dry-run=server", "-f", path), " "), "apply %s: %s", s.GetName(), message(err))
	}
	e.Logf("applied %d object(s) of %s", len(objs), s.GetName())
	deadline := time.Now().Add(timeout)
	var workloads int
	for _, o := range objs {
		res, ok := workloadKinds[o.Kind]
		if !ok {
			continue
		}
		workloads++
		ns := o.Namespace
		if ns == "" {
			ns = "default"
		}
		left := max(time.Until(deadline).Round(time.Second), time.Second)
		if h.DryRun {
			e.Logf("would wait up to %s for %s %s/%s to roll out", left, o.Kind, ns, o.Name)
			continue
		}
		e.Logf("waiting up to %s for %s %s/%s to roll out", left, o.Kind, ns, o.Name)
		start := time.Now()
		if _, err := h.QueryQuiet(ctx, argv("rollout", "status", res+"/"+o.Name, "-n", ns, "--timeout="+left.String())...); err != nil {
			return nil, tasks.Errorf("ROLLOUT_FAILED",
				fmt.Sprintf("see why its pods do not become ready: kubectl --kubeconfig %s -n %s describe %s %s; kubectl --kubeconfig %s -n %s get pods -o wide", AdminConf, ns, res, o.Name, AdminConf, ns),
				"%s %s/%s of %s did not roll out within %s: %s", o.Kind, ns, o.Name, s.GetName(), timeout, message(err))
		}
		e.Logf("%s %s/%s rolled out in %s", o.Kind, ns, o.Name, time.Since(start).Round(100*time.Millisecond))
	}
	return map[string]string{"objects": strconv.Itoa(len(objs)), "workloads": strconv.Itoa(workloads)}, nil
}

// renderPreset renders a pod network provider's manifest (upstream images: the task moves
// them to the cluster's image repository like any manifest's).
func renderPreset(p *taskv1.NetworkPreset) (string, error) {
	prov, ok := podnet.Lookup(p.GetProvider())
	if !ok || prov.Manifest == nil {
		return "", tasks.Errorf("INVALID_ARGUMENT", "use a provider Deckhand carries a manifest of: upgrade this agent to the controllers' version",
			"manifest.preset.provider %q has no manifest in this agent", p.GetProvider())
	}
	m, err := prov.Manifest(podnet.ManifestInput{PodSubnet: p.GetPodSubnet(), Version: p.GetVersion()})
	if err != nil {
		return "", tasks.Errorf("INVALID_ARGUMENT", "give the preset the cluster's IPv4 pod subnet and this agent's version of "+prov.Name, "manifest.preset: %v", err)
	}
	return string(m), nil
}
