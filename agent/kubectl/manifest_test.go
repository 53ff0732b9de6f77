package kubectl_test

import (
	"context"
	"crypto/sha256"
	"encoding/hex"
	"fmt"
	"io"
	"log/slog"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/deckhandhq/deckhand/agent/kubectl"
	"github.com/deckhandhq/deckhand/agent/tasks"
	"github.com/deckhandhq/deckhand/internal/podnet"
	"github.com/deckhandhq/deckhand/internal/testkit/testcluster"
	taskv1 "github.com/deckhandhq/deckhand/proto/deckhand/task/v1"
	"google.golang.org/protobuf/types/known/durationpb"
)

// manifestHost is a control plane whose kubectl is a stand-in: it records its arguments
// and fails `rollout status` for a workload named in the file "stuck".
type manifestHost struct {
	root   string
	runner *tasks.Runner
	n      int
}

func newManifestHost(t *testing.T, controlPlane bool) *manifestHost {
	t.Helper()
	root := t.TempDir()
	write := func(p, content string, mode os.FileMode) { testcluster.WriteFile(t, root, p, content, mode) }
	write("usr/bin/kubectl", fmt.Sprintf(`#!/bin/sh
echo "$*" >>%[1]s/calls
case "$*" in
*"rollout status"*) if grep -qx "$5" %[1]s/stuck 2>/dev/null; then echo "error: timed out waiting for the condition" >&2; exit 1; fi ;;
esac
`, root), 0o755)
	write("stuck", "", 0o644)
	if controlPlane {
		write(kubectl.AdminConf, "apiVersion: v1\n", 0o600)
	}
	r, err := tasks.NewRunner(t.TempDir(), root, map[string]tasks.Handler{"manifest": kubectl.Manifest}, slog.New(slog.NewTextHandler(io.Discard, nil)))
	if err != nil {
		t.Fatal(err)
	}
	return &manifestHost{root: root, runner: r}
}

func (m *manifestHost) run(s *taskv1.ManifestSpec, dry bool) (*taskv1.TaskResult, []string) {
	m.n++
	_ = os.Remove(filepath.Join(m.root, "calls"))
	done := make(chan *taskv1.TaskResult, 1)
	m.runner.Start(context.Background(), &taskv1.Task{Id: fmt.Sprintf("m-%d", m.n), Node: "cp-1", DryRun: dry, Spec: &taskv1.TaskSpec{Kind: &taskv1.TaskSpec_Manifest{Manifest: s}}},
		func(*taskv1.TaskEvent) {}, func(res *taskv1.TaskResult) { done <- res })
	res := <-done
	b, _ := os.ReadFile(filepath.Join(m.root, "calls"))
	var calls []string
	for _, l := range strings.Split(strings.TrimSpace(string(b)), "\n") {
		if l != "" {
			calls = append(calls, l)
		}
	}
	return res, calls
}

func flannel(t *testing.T) string {
	t.Helper()
	b, err := podnet.MustLookup("flannel").Manifest(podnet.ManifestInput{PodSubnet: "10.244.0.0/16"})
	if err != nil {
		t.Fatal(err)
	}
	return string(b)
}

func TestManifestAppliesAndAwaitsRollouts(t *testing.T) {
	m := newManifestHost(t, true)
	path := kubectl.ManifestDir + "/flannel.yaml"
	res, calls := m.run(&taskv1.ManifestSpec{Name: "flannel", Content: flannel(t)}, false)
	if res.GetState() != taskv1.TaskState_TASK_STATE_SUCCEEDED {
		t.Fatalf("manifest: %v", res)
	}
	want := []string{
		"--kubeconfig " + kubectl.AdminConf + " apply --server-side --force-conflicts --field-manager=deckhand -f " + path,
		"--kubeconfig " + kubectl.AdminConf + " rollout status daemonset/kube-flannel-ds -n kube-flannel --timeout=5m0s",
	}
	if strings.Join(calls, "\n") != strings.Join(want, "\n") {
		t.Errorf("kubectl calls:\n%s\nwant:\n%s", strings.Join(calls, "\n"), strings.Join(want, "\n"))
	}
	if o := res.GetOutputs(); o["objects"] != "6" || o["workloads"] != "1" {
		t.Errorf("outputs %v, want objects 6, workloads 1", o)
	}
	st, err := os.Stat(filepath.Join(m.root, path))
	if err != nil || st.Mode().Perm() != 0o600 {
		t.Fatalf("the applied manifest is not kept 0600 at %s: %v %v", path, st, err)
	}

	// The spec's timeout is the deadline of all the rollouts together.
	two := flannel(t) + "---\napiVersion: apps/v1\nkind: Deployment\nmetadata: {name: web}\n"
	res, calls = m.run(&taskv1.ManifestSpec{Name: "flannel", Content: two, Timeout: durationpb.New(90 * time.Second)}, false)
	if res.GetState() != taskv1.TaskState_TASK_STATE_SUCCEEDED || len(calls) != 3 ||
		!strings.HasSuffix(calls[1], "rollout status daemonset/kube-flannel-ds -n kube-flannel --timeout=1m30s") ||
		!strings.Contains(calls[2], "rollout status deployment/web -n default --timeout=1m") {
		t.Fatalf("rollouts with a 90 s timeout: %v\n%s", res, strings.Join(calls, "\n"))
	}

	// A DaemonSet whose pods never become ready: the task fails naming it, with a way on.
	if err := os.WriteFile(filepath.Join(m.root, "stuck"), []byte("daemonset/kube-flannel-ds\n"), 0o644); err != nil {
		t.Fatal(err)
	}
	res, _ = m.run(&taskv1.ManifestSpec{Name: "flannel", Content: flannel(t)}, false)
	wantFailed(t, "a stuck rollout", res, "ROLLOUT_FAILED", "DaemonSet kube-flannel/kube-flannel-ds of flannel did not roll out", "timed out waiting for the condition")
	if !strings.Contains(res.GetError().GetHint(), "kubectl --kubeconfig "+kubectl.AdminConf+" -n kube-flannel describe daemonset kube-flannel-ds") {
		t.Errorf("hint %q does not say how to look", res.GetError().GetHint())
	}

	// A dry-run runs no kubectl and writes nothing, also on a node an init has not made a
	// control plane yet (the dry-run of an init).
	d := newManifestHost(t, false)
	res, calls = d.run(&taskv1.ManifestSpec{Name: "flannel", Content: flannel(t)}, true)
	if res.GetState() != taskv1.TaskState_TASK_STATE_SUCCEEDED || len(calls) != 0 {
		t.Fatalf("dry-run: %v, kubectl calls %q", res, calls)
	}
	if _, err := os.Stat(filepath.Join(d.root, path)); !os.IsNotExist(err) {
		t.Errorf("a dry-run wrote %s: %v", path, err)
	}
	if len(res.GetChanges()) == 0 {
		t.Errorf("a dry-run reports no changes it would make")
	}
}

func TestManifestRefusals(t *testing.T) {
	res, calls := newManifestHost(t, false).run(&taskv1.ManifestSpec{Name: "flannel", Content: flannel(t)}, false)
	wantFailed(t, "a worker", res, "NOT_A_CONTROL_PLANE", kubectl.AdminConf)
	if len(calls) != 0 {
		t.Errorf("kubectl ran on a worker: %q", calls)
	}
	m := newManifestHost(t, true)
	for _, c := range []struct{ name, content, want string }{
		{"Flannel", "kind: Namespace", "manifest.name"},
		{"x", "apiVersion: v1\nkind: Namespace\nmetadata: {name: a}\n---\nkind: [\n", "document 2: not YAML"},
		{"x", "apiVersion: v1\nkind: Secret\nmetadata: {name: a}\n", "a Secret"},
		{"x", "---\n# nothing\n---\n", "no objects"},
	} {
		res, calls := m.run(&taskv1.ManifestSpec{Name: c.name, Content: c.content}, false)
		wantFailed(t, c.want, res, "INVALID_ARGUMENT", c.want)
		if len(calls) != 0 {
			t.Errorf("%s: kubectl ran: %q", c.want, calls)
		}
	}
}

// A manifest of the user's, read from a location on the node: pinned by SHA-256, its images
// rewritten through the cluster's repository and checked against the declared ones, kept as
// applied without showing its content (it may hold Secrets).
func TestManifestFromALocation(t *testing.T) {
	m := newManifestHost(t, true)
	user := `apiVersion: v1
kind: Secret
metadata: {name: cni-token, namespace: kube-system}
stringData: {token: s3cr3t-value}
---
apiVersion: apps/v1
kind: DaemonSet
metadata: {name: cni, namespace: kube-system}
spec:
  template:
    spec:
      initContainers:
      - name: install
        image: ghcr.io/example/cni-installer:v1
      containers:
      - name: agent
        image: "docker.io/example/cni-agent:v1"
`
	if err := os.MkdirAll(filepath.Join(m.root, "srv"), 0o755); err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(filepath.Join(m.root, "srv/cni.yaml"), []byte(user), 0o644); err != nil {
		t.Fatal(err)
	}
	sum := sha256.Sum256([]byte(user))
	spec := func() *taskv1.ManifestSpec {
		return &taskv1.ManifestSpec{Name: "network", Location: "/srv/cni.yaml", Sha256: hex.EncodeToString(sum[:]),
			Registry: &taskv1.RegistrySettings{ImageRepository: "10.250.0.1:5000"},
			Images:   []string{"ghcr.io/example/cni-installer:v1", "docker.io/example/cni-agent:v1"}}
	}
	res, calls := m.run(spec(), false)
	if res.GetState() != taskv1.TaskState_TASK_STATE_SUCCEEDED || len(calls) != 2 || !strings.HasSuffix(calls[1], "rollout status daemonset/cni -n kube-system --timeout=5m0s") {
		t.Fatalf("a manifest from a location: %v\n%s", res, strings.Join(calls, "\n"))
	}
	applied, _ := os.ReadFile(filepath.Join(m.root, kubectl.ManifestDir, "network.yaml"))
	for _, want := range []string{"image: 10.250.0.1:5000/example/cni-installer:v1", `image: "10.250.0.1:5000/example/cni-agent:v1"`} {
		if !strings.Contains(string(applied), want) {
			t.Errorf("the applied manifest lacks %q:\n%s", want, applied)
		}
	}
	for _, c := range res.GetChanges() {
		if strings.Contains(c.GetDetail(), "s3cr3t") {
			t.Errorf("a change shows the manifest's Secret: %v", c)
		}
	}

	undeclared := spec()
	undeclared.Images = undeclared.Images[:1]
	res, calls = m.run(undeclared, false)
	wantFailed(t, "an undeclared image", res, "UNDECLARED_IMAGES", "docker.io/example/cni-agent:v1")
	wrong := spec()
	wrong.Sha256 = strings.Repeat("0", 64)
	res, calls2 := m.run(wrong, false)
	wantFailed(t, "a wrong SHA-256", res, "CHECKSUM_MISMATCH", "does not match")
	both := spec()
	both.Content = "apiVersion: v1\nkind: Namespace\nmetadata: {name: a}\n"
	res, calls3 := m.run(both, false)
	wantFailed(t, "content and location", res, "INVALID_ARGUMENT", "both content and location")
	if len(calls)+len(calls2)+len(calls3) != 0 {
		t.Errorf("kubectl ran for a refused manifest: %q %q %q", calls, calls2, calls3)
	}
}

// A preset is rendered on the node from the provider's embedded manifest, for the
// cluster's pod subnet, with its images moved to the cluster's image repository and
// checked against the declared ones; a preset beside other content, or one this agent
// does not carry, is refused before kubectl runs.
func TestManifestRendersAPreset(t *testing.T) {
	m := newManifestHost(t, true)
	calico := podnet.MustLookup("calico")
	spec := func() *taskv1.ManifestSpec {
		return &taskv1.ManifestSpec{Name: "calico", Preset: &taskv1.NetworkPreset{Provider: "calico", Version: calico.Version, PodSubnet: "10.32.0.0/12"},
			Registry: &taskv1.RegistrySettings{ImageRepository: "10.250.0.1:5000"}, Images: calico.Images(calico.Version)}
	}
	res, calls := m.run(spec(), false)
	if res.GetState() != taskv1.TaskState_TASK_STATE_SUCCEEDED {
		t.Fatalf("calico preset: %v", res)
	}
	if want := []string{"rollout status daemonset/calico-node -n kube-system", "rollout status deployment/calico-kube-controllers -n kube-system"}; len(calls) != 3 ||
		!strings.Contains(calls[1], want[0]) || !strings.Contains(calls[2], want[1]) {
		t.Errorf("kubectl calls:\n%s\nwant apply, then %q", strings.Join(calls, "\n"), want)
	}
	applied, _ := os.ReadFile(filepath.Join(m.root, kubectl.ManifestDir, "calico.yaml"))
	for _, want := range []string{"image: 10.250.0.1:5000/calico/node:" + calico.Version, "image: 10.250.0.1:5000/calico/cni:" + calico.Version,
		"- name: CALICO_IPV4POOL_CIDR\n              value: \"10.32.0.0/12\"", "value: kubernetes-internal-ip"} {
		if !strings.Contains(string(applied), want) {
			t.Errorf("the applied calico manifest lacks %q", want)
		}
	}
	if strings.Contains(string(applied), "docker.io/calico/") {
		t.Errorf("the applied calico manifest still pulls from docker.io")
	}

	both := spec()
	both.Content = "apiVersion: v1\nkind: Namespace\nmetadata: {name: a}\n"
	res, calls = m.run(both, false)
	wantFailed(t, "a preset and content", res, "INVALID_ARGUMENT", "a preset and content")
	none := spec()
	none.Preset.Provider = "bridge"
	res, calls2 := m.run(none, false)
	wantFailed(t, "a provider without a manifest", res, "INVALID_ARGUMENT", `"bridge" has no manifest`)
	v := spec()
	v.Preset.Version = "v3.27.0"
	res, calls3 := m.run(v, false)
	wantFailed(t, "another version", res, "INVALID_ARGUMENT", "network_provider_version")
	if len(calls)+len(calls2)+len(calls3) != 0 {
		t.Errorf("kubectl ran for a refused preset: %q %q %q", calls, calls2, calls3)
	}
}
