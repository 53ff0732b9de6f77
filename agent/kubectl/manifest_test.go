package kubectl_test

import (
	"context"
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
	write := func(p, content string, mode os.FileMode) {
		t.Helper()
		if err := os.MkdirAll(filepath.Dir(filepath.Join(root, p)), 0o755); err != nil {
			t.Fatal(err)
		}
		if err := os.WriteFile(filepath.Join(root, p), []byte(content), mode); err != nil {
			t.Fatal(err)
		}
	}
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
	b, err := podnet.MustLookup("flannel").Manifest(podnet.ManifestInput{PodSubnet: "10.244.0.0/16", ImageRepository: "10.250.0.1:5000"})
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
