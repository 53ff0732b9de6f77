package kubeadm_test

import (
	"bytes"
	"context"
	"encoding/base64"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"strings"
	"syscall"
	"testing"
	"time"

	"google.golang.org/protobuf/proto"

	"github.com/deckhandhq/deckhand/agent/kubeadm"
	"github.com/deckhandhq/deckhand/agent/tasks"
	"github.com/deckhandhq/deckhand/internal/testkit/sim/simrecords"
	"github.com/deckhandhq/deckhand/internal/testkit/testcluster"
	taskv1 "github.com/deckhandhq/deckhand/proto/deckhand/task/v1"
)

// The test binary doubles as an agent that a test can SIGKILL: with
// DECKHAND_TEST_AGENT_ROOT set it runs the task in DECKHAND_TEST_AGENT_TASK against that
// root and exits when the task ends.
func TestMain(m *testing.M) {
	if root := os.Getenv("DECKHAND_TEST_AGENT_ROOT"); root != "" {
		if err := agentProcess(root, os.Getenv("DECKHAND_TEST_AGENT_TASK")); err != nil {
			fmt.Fprintln(os.Stderr, err)
			os.Exit(1)
		}
		os.Exit(0)
	}
	os.Exit(m.Run())
}

func agentProcess(root, encoded string) error {
	b, err := base64.StdEncoding.DecodeString(encoded)
	if err != nil {
		return err
	}
	var task taskv1.Task
	if err := proto.Unmarshal(b, &task); err != nil {
		return err
	}
	r, err := tasks.NewRunner(filepath.Join(root, "var/lib/test-agent"), root, map[string]tasks.Handler{"kubeadm_join": kubeadm.Join}, slog.New(slog.NewTextHandler(io.Discard, nil)))
	if err != nil {
		return err
	}
	done := make(chan *taskv1.TaskResult, 1)
	r.Start(context.Background(), &task, func(*taskv1.TaskEvent) {}, func(res *taskv1.TaskResult) { done <- res })
	<-done
	return nil
}

// kubeadmPID is the process running ROOT/usr/bin/kubeadm SUBCOMMAND, or 0.
func kubeadmPID(root, sub string) int {
	dirs, _ := filepath.Glob("/proc/[0-9]*")
	for _, d := range dirs {
		b, err := os.ReadFile(filepath.Join(d, "cmdline"))
		if err != nil {
			continue
		}
		argv := strings.Split(string(bytes.TrimRight(b, "\x00")), "\x00")
		if len(argv) >= 2 && argv[0] == filepath.Join(root, "usr/bin/kubeadm") && argv[1] == sub {
			pid, _ := strconv.Atoi(filepath.Base(d))
			return pid
		}
	}
	return 0
}

// An agent killed while kubeadm join runs leaves kubeadm running. The restarted agent, given
// the same task, waits for that kubeadm instead of starting a second join next to it, then
// finds the node joined.
func TestRetriedJoinWaitsForTheKubeadmOfAKilledAgent(t *testing.T) {
	clusterDir := t.TempDir()
	t.Setenv("DECKHAND_SIM_CLUSTER", clusterDir)
	cp1, w1 := newNode(t, "cp-1"), newNode(t, "w-1")
	if res, _ := cp1.run(t, "init", &taskv1.TaskSpec{Kind: &taskv1.TaskSpec_KubeadmInit{KubeadmInit: &taskv1.KubeadmInitSpec{
		Cluster: cluster(), Node: &taskv1.NodeSpec{Name: "cp-1", AdvertiseAddress: "10.250.0.10"}}}}); res.GetState() != taskv1.TaskState_TASK_STATE_SUCCEEDED {
		t.Fatalf("init: %v", res)
	}
	tok, _ := cp1.run(t, "token", &taskv1.TaskSpec{Kind: &taskv1.TaskSpec_KubeadmToken{KubeadmToken: &taskv1.KubeadmTokenSpec{}}})
	spec := &taskv1.TaskSpec{Kind: &taskv1.TaskSpec_KubeadmJoin{KubeadmJoin: &taskv1.KubeadmJoinSpec{
		Cluster: cluster(), Node: &taskv1.NodeSpec{Name: "w-1"}, Role: taskv1.NodeRole_NODE_ROLE_WORKER,
		Token: tok.GetOutputs()["token"], CaCertHash: tok.GetOutputs()["ca_cert_hash"]}}}
	os.MkdirAll(filepath.Join(w1.root, "var/lib/deckhand-sim"), 0o755)
	if err := os.WriteFile(filepath.Join(w1.root, "var/lib/deckhand-sim/kubeadm-join-delay"), []byte("3s"), 0o644); err != nil {
		t.Fatal(err)
	}

	b, err := proto.Marshal(&taskv1.Task{Id: "join-w1", Node: "w-1", Spec: spec})
	if err != nil {
		t.Fatal(err)
	}
	agent := exec.Command(os.Args[0], "-test.run=^$")
	agent.Env = append(os.Environ(), "DECKHAND_TEST_AGENT_ROOT="+w1.root, "DECKHAND_TEST_AGENT_TASK="+base64.StdEncoding.EncodeToString(b))
	agent.Stderr = os.Stderr
	if err := agent.Start(); err != nil {
		t.Fatal(err)
	}
	var pid int
	t.Cleanup(func() {
		if pid != 0 && kubeadmPID(w1.root, "join") == pid {
			syscall.Kill(pid, syscall.SIGKILL)
		}
	})
	testcluster.WaitFor(t, 30*time.Second, func() error {
		if pid = kubeadmPID(w1.root, "join"); pid == 0 {
			return errors.New("the first agent's kubeadm join is not running yet")
		}
		return nil
	})
	agent.Process.Kill()
	agent.Wait()
	if kubeadmPID(w1.root, "join") != pid {
		t.Fatal("kubeadm join died with the agent: the test needs it left running")
	}

	res, logs := w1.run(t, "join-w1", spec)
	if res.GetState() != taskv1.TaskState_TASK_STATE_SUCCEEDED || res.GetOutputs()["joined"] != "already" {
		t.Fatalf("the retried join: %v\n%s", res, strings.Join(logs, "\n"))
	}
	if !strings.Contains(strings.Join(logs, "\n"), "waiting for a kubeadm still running from before") {
		t.Fatalf("the retried join did not say what it waited for:\n%s", strings.Join(logs, "\n"))
	}
	recs, err := simrecords.Read(clusterDir)
	if err != nil {
		t.Fatal(err)
	}
	if n := simrecords.Count(recs, simrecords.KubeadmJoin, "w-1"); n != 1 {
		t.Fatalf("w-1 was joined %d times, want once:\n%v", n, recs)
	}
	if kubeadmPID(w1.root, "join") != 0 {
		t.Fatal("the retried join returned while the first kubeadm still runs")
	}
	if exists(w1.root, "etc/kubernetes/deckhand/kubeadm-join.yaml") {
		t.Fatal("the join config, with its token, was left on the node")
	}
	if nodes, _ := simrecords.Nodes(clusterDir); nodes["w-1"] != "worker" {
		t.Fatalf("nodes: %v", nodes)
	}
}
