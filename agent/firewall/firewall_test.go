package firewall_test

import (
	"context"
	"fmt"
	"io"
	"log/slog"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"testing"

	"github.com/deckhandhq/deckhand/agent/firewall"
	"github.com/deckhandhq/deckhand/agent/host"
	"github.com/deckhandhq/deckhand/agent/preflight"
	"github.com/deckhandhq/deckhand/agent/tasks"
	"github.com/deckhandhq/deckhand/internal/testkit/testcluster"
	taskv1 "github.com/deckhandhq/deckhand/proto/deckhand/task/v1"
)

// A host with firewalld (SIMULATED: firewall-cmd of internal/testkit/sim/hostsim) where the
// administrator opened 10250/tcp before Deckhand came: preflight --fix opens what a VIP
// control plane needs and records it; the reset's clean-up removes exactly that, and the
// administrator's port stays.
func TestResetRemovesOnlyWhatPreflightOpened(t *testing.T) {
	root := testcluster.HostRoot(t, "fw")
	testcluster.InstallSim(t, root)
	fw := filepath.Join(root, "var/lib/deckhand-sim/firewalld")
	for f, content := range map[string]string{"running": "", "permanent-ports": "10250/tcp\n", "runtime-ports": "10250/tcp\n"} {
		if err := os.MkdirAll(fw, 0o755); err != nil {
			t.Fatal(err)
		}
		if err := os.WriteFile(filepath.Join(fw, f), []byte(content), 0o644); err != nil {
			t.Fatal(err)
		}
	}
	r, err := tasks.NewRunner(t.TempDir(), root, map[string]tasks.Handler{
		"preflight": preflight.Run,
		"kubeadm_reset": func(ctx context.Context, _ *taskv1.Task, h *host.Host, e *tasks.Emitter) (map[string]string, error) {
			return nil, firewall.RemoveAdded(ctx, h, e)
		},
	}, slog.New(slog.NewTextHandler(io.Discard, nil)))
	if err != nil {
		t.Fatal(err)
	}
	n := 0
	run := func(spec *taskv1.TaskSpec, dry bool) *taskv1.TaskResult {
		t.Helper()
		n++
		done := make(chan *taskv1.TaskResult, 1)
		r.Start(context.Background(), &taskv1.Task{Id: fmt.Sprintf("fw-%d", n), Node: "cp-1", DryRun: dry, Spec: spec}, func(*taskv1.TaskEvent) {}, func(res *taskv1.TaskResult) { done <- res })
		return <-done
	}
	ports := func(kind string) []string {
		b, _ := os.ReadFile(filepath.Join(fw, kind+"-ports"))
		out := strings.Fields(string(b))
		slices.Sort(out)
		return out
	}
	pf := &taskv1.TaskSpec{Kind: &taskv1.TaskSpec_Preflight{Preflight: &taskv1.PreflightSpec{Role: taskv1.NodeRole_NODE_ROLE_CONTROL_PLANE, Fix: true, ExtraPorts: []uint32{8443}, AllowVrrp: true,
		NetworkPorts: []string{"8472/udp"}, TrustedSources: []string{"10.244.0.0/16"}}}}
	run(pf, false)
	opened := []string{"10250/tcp", "10257/tcp", "10259/tcp", "2379/tcp", "2380/tcp", "6443/tcp", "8443/tcp", "8472/udp", "proto:vrrp", "source:trusted:10.244.0.0/16"}
	if got := ports("permanent"); !slices.Equal(got, opened) {
		t.Fatalf("after preflight --fix, firewalld allows %v, want %v", got, opened)
	}
	rec, _ := os.ReadFile(filepath.Join(root, firewall.RecordFile))
	if strings.Contains(string(rec), "10250") || !strings.Contains(string(rec), "firewalld protocol vrrp zone=public") || !strings.Contains(string(rec), "firewalld source 10.244.0.0/16") {
		t.Fatalf("the record of what Deckhand opened:\n%s", rec)
	}

	reset := &taskv1.TaskSpec{Kind: &taskv1.TaskSpec_KubeadmReset{KubeadmReset: &taskv1.KubeadmResetSpec{}}}
	if res := run(reset, true); !strings.Contains(changes(res), "firewall-cmd --permanent --zone=public --remove-port=6443/tcp") ||
		!strings.Contains(changes(res), "firewall-cmd --permanent --zone=trusted --remove-source=10.244.0.0/16") || !slices.Equal(ports("permanent"), opened) {
		t.Fatalf("a dry-run reset: changes\n%s\nports %v", changes(res), ports("permanent"))
	}
	if res := run(reset, false); res.GetState() != taskv1.TaskState_TASK_STATE_SUCCEEDED {
		t.Fatalf("reset: %v", res)
	}
	for _, kind := range []string{"permanent", "runtime"} {
		if got := ports(kind); !slices.Equal(got, []string{"10250/tcp"}) {
			t.Fatalf("after the reset, firewalld's %s rules %v: want only the administrator's 10250/tcp", kind, got)
		}
	}
	if _, err := os.Stat(filepath.Join(root, firewall.RecordFile)); !os.IsNotExist(err) {
		t.Fatalf("the record is still there: %v", err)
	}
	if res := run(reset, false); len(res.GetChanges()) != 0 {
		t.Fatalf("a second reset changed %s", changes(res))
	}
}

func changes(res *taskv1.TaskResult) string {
	var b strings.Builder
	for _, c := range res.GetChanges() {
		b.WriteString(c.GetTarget() + "\n")
	}
	return b.String()
}

func TestUfwPort(t *testing.T) {
	for in, want := range map[string]string{"6443/tcp": "6443/tcp", "30000-32767/tcp": "30000:32767/tcp"} {
		if got := firewall.UfwPort(in); got != want {
			t.Errorf("UfwPort(%q) = %q, want %q", in, got, want)
		}
	}
}
