package controller_test

import (
	"context"
	"fmt"
	"io"
	"slices"
	"strings"
	"testing"
	"time"

	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/status"

	"github.com/deckhandhq/deckhand/internal/features"
	"github.com/deckhandhq/deckhand/internal/testkit/testcluster"
	apiv1 "github.com/deckhandhq/deckhand/proto/deckhand/api/v1"
	taskv1 "github.com/deckhandhq/deckhand/proto/deckhand/task/v1"
)

func runtimeSpec() *taskv1.TaskSpec {
	return &taskv1.TaskSpec{Kind: &taskv1.TaskSpec_Runtime{Runtime: &taskv1.RuntimeSpec{
		Source: taskv1.RuntimeSource_RUNTIME_SOURCE_PACKAGE, KubernetesVersion: "v1.33.13", CgroupDriver: "cgroupfs",
		Registry: &taskv1.RegistrySettings{ImageRepository: "registry.k8s.io", Mirrors: []string{"http://127.0.0.1:5999"}},
	}}}
}

// watch follows a task through the API until it ends, collecting its log.
func watch(t *testing.T, c *testcluster.Cluster, id string) (*apiv1.TaskRecord, []string) {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 90*time.Second)
	defer cancel()
	stream, err := apiv1.NewTaskServiceClient(c.Client()).WatchTask(ctx, &apiv1.WatchTaskRequest{Id: id})
	if err != nil {
		t.Fatal(err)
	}
	var last *apiv1.TaskRecord
	var logs []string
	for {
		msg, err := stream.Recv()
		if err == io.EOF {
			return last, logs
		}
		if err != nil {
			t.Fatalf("watch %s: %v", id, err)
		}
		if l := msg.GetEvent().GetLog(); l != nil {
			logs = append(logs, l.GetText())
		}
		if r := msg.GetTask(); r != nil {
			last = r
		}
	}
}

func TestRuntimeTaskThroughTheController(t *testing.T) {
	c := testcluster.New(t, 3)
	cfg := c.AgentConfig("node-1", c.CreateToken(1))
	testcluster.InstallSim(t, cfg.Root)
	if _, err := c.StartAgent(cfg); err != nil {
		t.Fatal(err)
	}
	testcluster.WaitFor(t, 15*time.Second, func() error { return allReady(t, c, 1) })
	tasks := apiv1.NewTaskServiceClient(c.Client())
	ctx, cancel := context.WithTimeout(context.Background(), 60*time.Second)
	defer cancel()

	// Dry-run: changes listed, nothing done.
	dry, err := tasks.CreateTask(ctx, &apiv1.CreateTaskRequest{Node: "node-1", Spec: runtimeSpec(), DryRun: true})
	if err != nil {
		t.Fatal(err)
	}
	rec, _ := watch(t, c, dry.GetTask().GetTask().GetId())
	if rec.GetState() != taskv1.TaskState_TASK_STATE_SUCCEEDED || len(rec.GetResult().GetChanges()) < 4 {
		t.Fatalf("dry-run: %v", rec)
	}

	// The real run, watched live from the API.
	created, err := tasks.CreateTask(ctx, &apiv1.CreateTaskRequest{Node: "node-1", Spec: runtimeSpec(), Id: "runtime-node-1"})
	if err != nil {
		t.Fatal(err)
	}
	rec, logs := watch(t, c, created.GetTask().GetTask().GetId())
	if rec.GetState() != taskv1.TaskState_TASK_STATE_SUCCEEDED || rec.GetResult().GetOutputs()["runtime_ready"] != "true" {
		t.Fatalf("runtime task: %v\nlog: %v", rec, logs)
	}
	if !strings.Contains(strings.Join(logs, "\n"), "CRI answers: containerd") {
		t.Fatalf("live log: %v", logs)
	}
	if len(rec.GetResult().GetChanges()) != len(dry.GetTask().GetResult().GetChanges()) && len(rec.GetResult().GetChanges()) == 0 {
		t.Fatalf("changes: %v", rec.GetResult().GetChanges())
	}

	// Read back from every replica: state and log.
	for i := range c.Controllers {
		replica := apiv1.NewTaskServiceClient(c.ClientTo(i))
		got, err := replica.GetTask(ctx, &apiv1.GetTaskRequest{Id: "runtime-node-1"})
		if err != nil || got.GetTask().GetState() != taskv1.TaskState_TASK_STATE_SUCCEEDED {
			t.Fatalf("get from replica %d: %v %v", i, got, err)
		}
		lg, err := replica.GetTaskLogs(ctx, &apiv1.GetTaskLogsRequest{Id: "runtime-node-1"})
		if err != nil || len(lg.GetEvents()) < 3 {
			t.Fatalf("logs from replica %d: %d events, %v", i, len(lg.GetEvents()), err)
		}
	}

	// Creating the same task again is idempotent; a new ID finds nothing to change.
	again, err := tasks.CreateTask(ctx, &apiv1.CreateTaskRequest{Node: "node-1", Spec: runtimeSpec(), Id: "runtime-node-1"})
	if err != nil || again.GetTask().GetState() != taskv1.TaskState_TASK_STATE_SUCCEEDED {
		t.Fatalf("re-create same ID: %v %v", again, err)
	}
	second, err := tasks.CreateTask(ctx, &apiv1.CreateTaskRequest{Node: "node-1", Spec: runtimeSpec()})
	if err != nil {
		t.Fatal(err)
	}
	rec, _ = watch(t, c, second.GetTask().GetTask().GetId())
	if rec.GetState() != taskv1.TaskState_TASK_STATE_SUCCEEDED || len(rec.GetResult().GetChanges()) != 0 {
		t.Fatalf("second run: %v", rec)
	}

	// A task for an unknown node or with no kind is refused at the edge.
	if _, err := tasks.CreateTask(ctx, &apiv1.CreateTaskRequest{Node: "nope", Spec: runtimeSpec()}); err == nil {
		t.Fatal("task for an unknown node accepted")
	}
	if _, err := tasks.CreateTask(ctx, &apiv1.CreateTaskRequest{Node: "node-1", Spec: &taskv1.TaskSpec{}}); err == nil || !strings.Contains(err.Error(), "spec") {
		t.Fatalf("empty spec: %v", err)
	}
	bad := runtimeSpec()
	bad.GetRuntime().GetRegistry().Mirrors = []string{"ftp://mirror"}
	_, err = tasks.CreateTask(ctx, &apiv1.CreateTaskRequest{Node: "node-1", Spec: bad})
	if status.Code(err) != codes.InvalidArgument || !strings.Contains(err.Error(), "mirrors[0]") {
		t.Fatalf("bad mirror at the edge: %v", err)
	}
	bad = runtimeSpec()
	bad.GetRuntime().KubernetesVersion = "v1.99.1"
	if _, err = tasks.CreateTask(ctx, &apiv1.CreateTaskRequest{Node: "node-1", Spec: bad}); status.Code(err) != codes.InvalidArgument || !strings.Contains(err.Error(), "kubernetes_version") {
		t.Fatalf("unknown version at the edge: %v", err)
	}
}

// ping answers through the controller and the agent's session, changing nothing; facts
// reports the host and updates the node's record.
func TestPingAndFactsTasks(t *testing.T) {
	c := testcluster.New(t, 1)
	if _, err := c.StartAgent(c.AgentConfig("node-1", c.CreateToken(1))); err != nil {
		t.Fatal(err)
	}
	testcluster.WaitFor(t, 15*time.Second, func() error { return allReady(t, c, 1) })
	tasks := apiv1.NewTaskServiceClient(c.Client())
	ctx, cancel := context.WithTimeout(context.Background(), 60*time.Second)
	defer cancel()

	created, err := tasks.CreateTask(ctx, &apiv1.CreateTaskRequest{Node: "node-1", Spec: &taskv1.TaskSpec{Kind: &taskv1.TaskSpec_Ping{Ping: &taskv1.PingSpec{}}}})
	if err != nil {
		t.Fatal(err)
	}
	rec, _ := watch(t, c, created.GetTask().GetTask().GetId())
	out := rec.GetResult().GetOutputs()
	if rec.GetState() != taskv1.TaskState_TASK_STATE_SUCCEEDED || out["agent_version"] == "" || out["agent_time"] == "" || len(rec.GetResult().GetChanges()) != 0 {
		t.Fatalf("ping: %v", rec)
	}
	if at, err := time.Parse(time.RFC3339Nano, out["agent_time"]); err != nil || time.Since(at) > time.Minute {
		t.Errorf("ping's agent_time %q: %v", out["agent_time"], err)
	}

	created, err = tasks.CreateTask(ctx, &apiv1.CreateTaskRequest{Node: "node-1", Spec: &taskv1.TaskSpec{Kind: &taskv1.TaskSpec_Facts{Facts: &taskv1.FactsSpec{}}}})
	if err != nil {
		t.Fatal(err)
	}
	rec, _ = watch(t, c, created.GetTask().GetTask().GetId())
	out = rec.GetResult().GetOutputs()
	node, err := apiv1.NewNodeServiceClient(c.Client()).GetNode(ctx, &apiv1.GetNodeRequest{Name: "node-1"})
	if err != nil {
		t.Fatal(err)
	}
	f := node.GetNode().GetFacts()
	if rec.GetState() != taskv1.TaskState_TASK_STATE_SUCCEEDED || out["hostname"] == "" || out["hostname"] != f.GetHostname() ||
		out["kernel"] != f.GetKernel() || out["cpus"] != fmt.Sprint(f.GetCpus()) {
		t.Fatalf("facts: %v, the node's facts %v", out, f)
	}
	// The node's record keeps the build its agent reported: its version and its features
	// (what the workflow engine may send it).
	if n := node.GetNode(); n.GetAgentVersion() == "" || !slices.Equal(n.GetAgentFeatures(), features.Agent()) {
		t.Fatalf("the node's agent: version %q, features %q; want the agent's, %q", n.GetAgentVersion(), n.GetAgentFeatures(), features.Agent())
	}
}
