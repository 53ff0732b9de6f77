package kubectl

import (
	"context"
	"fmt"
	"regexp"
	"strconv"
	"strings"
	"time"

	"sigs.k8s.io/yaml"

	"github.com/deckhandhq/deckhand/agent/host"
	"github.com/deckhandhq/deckhand/agent/tasks"
	taskv1 "github.com/deckhandhq/deckhand/proto/deckhand/task/v1"
)

const (
	// ManifestDir keeps every manifest a manifest task applied, NAME.yaml (0600).
	ManifestDir = "/etc/kubernetes/deckhand/manifests"
	// DefaultRolloutTimeout bounds the rollouts of a manifest whose spec gives no timeout.
	DefaultRolloutTimeout = 5 * time.Minute
	// MaxManifestBytes and MaxObjects bound a manifest (the API refuses a bigger one too).
	MaxManifestBytes = 512 << 10
	MaxObjects       = 2000
	// fieldManager owns the fields Deckhand applies (server-side apply).
	fieldManager = "deckhand"
)

var (
	manifestNameRE = regexp.MustCompile(`^[a-z][a-z0-9-]{0,62}$`)
	docSeparator   = regexp.MustCompile(`(?m)^---[ \t]*$`)
)

// object is one object of a manifest as kubectl names it.
type object struct {
	Kind      string
	Namespace string
	Name      string
}

// workloadKinds are the kinds whose rollout a manifest task awaits.
var workloadKinds = map[string]string{"DaemonSet": "daemonset", "Deployment": "deployment", "StatefulSet": "statefulset"}

// ParseManifest reads a manifest's YAML documents (separated by --- lines; empty and
// comment-only documents skipped) and returns its objects in order. Each must have
// apiVersion, kind and metadata.name; a List is refused (give its items as documents).
func ParseManifest(content string) ([]object, error) {
	var objs []object
	for i, doc := range docSeparator.Split(content, -1) {
		var o struct {
			APIVersion string `json:"apiVersion"`
			Kind       string `json:"kind"`
			Metadata   struct {
				Name      string `json:"name"`
				Namespace string `json:"namespace"`
			} `json:"metadata"`
		}
		var raw map[string]any
		if err := yaml.Unmarshal([]byte(doc), &raw); err != nil {
			return nil, fmt.Errorf("document %d: not YAML: %v", i+1, err)
		}
		if len(raw) == 0 {
			continue
		}
		if err := yaml.Unmarshal([]byte(doc), &o); err != nil {
			return nil, fmt.Errorf("document %d: %v", i+1, err)
		}
		switch {
		case o.APIVersion == "" || o.Kind == "":
			return nil, fmt.Errorf("document %d: no apiVersion or kind: every document must be one Kubernetes object", i+1)
		case strings.HasSuffix(o.Kind, "List"):
			return nil, fmt.Errorf("document %d: a %s: give its items as documents of their own", i+1, o.Kind)
		case o.Metadata.Name == "":
			return nil, fmt.Errorf("document %d (%s): no metadata.name", i+1, o.Kind)
		}
		objs = append(objs, object{Kind: o.Kind, Namespace: o.Metadata.Namespace, Name: o.Metadata.Name})
		if len(objs) > MaxObjects {
			return nil, fmt.Errorf("more than %d objects", MaxObjects)
		}
	}
	if len(objs) == 0 {
		return nil, fmt.Errorf("no objects: give YAML documents separated by --- lines")
	}
	return objs, nil
}

// Manifest applies a manifest with kubectl (server-side, Deckhand owning the fields it
// sets) on a control plane, then waits for every DaemonSet, Deployment and StatefulSet of
// it to roll out, within the spec's timeout. The manifest is kept in ManifestDir.
func Manifest(ctx context.Context, t *taskv1.Task, h *host.Host, e *tasks.Emitter) (map[string]string, error) {
	s := t.GetSpec().GetManifest()
	switch {
	case !manifestNameRE.MatchString(s.GetName()):
		return nil, tasks.Errorf("INVALID_ARGUMENT", "name the manifest with lower-case letters, digits and '-'", "manifest.name %q is not a manifest name", s.GetName())
	case len(s.GetContent()) > MaxManifestBytes:
		return nil, tasks.Errorf("INVALID_ARGUMENT", "split the manifest", "manifest.content has %d bytes; at most %d are allowed", len(s.GetContent()), MaxManifestBytes)
	}
	objs, err := ParseManifest(s.GetContent())
	if err != nil {
		return nil, tasks.Errorf("INVALID_ARGUMENT", "fix the manifest "+s.GetName(), "manifest.content: %v", err)
	}
	if !h.Exists(AdminConf) && !h.DryRun {
		// (A dry-run of an init: the node is a control plane once the init really ran.)
		return nil, tasks.Errorf("NOT_A_CONTROL_PLANE", "run the manifest task on a healthy control-plane node", "%s is missing: this node is not an initialized control plane", AdminConf)
	}
	timeout := DefaultRolloutTimeout
	if d := s.GetTimeout(); d != nil && d.AsDuration() > 0 {
		timeout = d.AsDuration()
	}
	path := ManifestDir + "/" + s.GetName() + ".yaml"
	if _, err := h.WriteFile(path, []byte(s.GetContent()), 0o600); err != nil {
		return nil, fmt.Errorf("write %s: %w", path, err)
	}
	if err := h.Run(ctx, fmt.Sprintf("apply the %d object(s) of %s", len(objs), s.GetName()),
		argv("apply", "--server-side", "--force-conflicts", "--field-manager="+fieldManager, "-f", path)...); err != nil {
		return nil, tasks.Errorf("APPLY_FAILED", "check the manifest against the cluster: kubectl apply --server-side --dry-run=server -f "+path, "apply %s: %s", s.GetName(), message(err))
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
				fmt.Sprintf("see why its pods do not become ready: kubectl -n %s describe %s %s; kubectl -n %s get pods -o wide", ns, res, o.Name, ns),
				"%s %s/%s of %s did not roll out within %s: %s", o.Kind, ns, o.Name, s.GetName(), timeout, message(err))
		}
		e.Logf("%s %s/%s rolled out in %s", o.Kind, ns, o.Name, time.Since(start).Round(100*time.Millisecond))
	}
	return map[string]string{"objects": strconv.Itoa(len(objs)), "workloads": strconv.Itoa(workloads)}, nil
}
