package cli_test

import (
	"bytes"
	"context"
	"fmt"
	"net"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"google.golang.org/grpc"
	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/credentials"
	"google.golang.org/grpc/status"
	"google.golang.org/protobuf/proto"
	"google.golang.org/protobuf/types/known/timestamppb"

	"github.com/deckhandhq/deckhand/cmd/deckctl/internal/cli"
	"github.com/deckhandhq/deckhand/controller/api"
	"github.com/deckhandhq/deckhand/controller/nodes"
	"github.com/deckhandhq/deckhand/controller/tasks"
	"github.com/deckhandhq/deckhand/controller/workflows"
	"github.com/deckhandhq/deckhand/internal/clientconfig"
	"github.com/deckhandhq/deckhand/internal/pki"
	"github.com/deckhandhq/deckhand/internal/testkit/teststore"
	agentv1 "github.com/deckhandhq/deckhand/proto/deckhand/agent/v1"
	apiv1 "github.com/deckhandhq/deckhand/proto/deckhand/api/v1"
	taskv1 "github.com/deckhandhq/deckhand/proto/deckhand/task/v1"
	"github.com/deckhandhq/deckhand/store"
)

// listServer serves the node and task APIs over a store the test fills directly, with the
// controller's TLS, to deckctl with its default 4 MiB message limit.
type listServer struct {
	st     store.Store
	reg    *nodes.Registry
	wf     *workflows.Service
	addr   string
	config string
}

func newListServer(t *testing.T) *listServer {
	t.Helper()
	st := teststore.New(t)
	reg := nodes.New(st, nil)
	ts := tasks.New(st, reg, nil)
	wf := workflows.New(st, reg, ts, nil)
	ca, err := pki.NewCA("test")
	if err != nil {
		t.Fatal(err)
	}
	serverTLS, _, err := ca.ReplicaTLS("test", []string{"127.0.0.1"})
	if err != nil {
		t.Fatal(err)
	}
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	srv := grpc.NewServer(grpc.Creds(credentials.NewTLS(serverTLS)), grpc.ChainUnaryInterceptor(api.ValidateUnary))
	ns := api.NewNodeServer(reg)
	ns.Workflows = wf
	apiv1.RegisterNodeServiceServer(srv, ns)
	apiv1.RegisterTaskServiceServer(srv, &api.TaskServer{Tasks: ts, Workflows: wf, Store: st})
	apiv1.RegisterWorkflowServiceServer(srv, &api.WorkflowServer{Workflows: wf, Store: st})
	go srv.Serve(ln)
	t.Cleanup(srv.Stop)
	certPEM, keyPEM, err := ca.IssueClient("admin", pki.RoleAdmin, pki.ClientValidity)
	if err != nil {
		t.Fatal(err)
	}
	cfg := clientconfig.New([]string{ln.Addr().String()}, ca.CertPEM, certPEM, keyPEM)
	path := filepath.Join(t.TempDir(), "admin.conf")
	if err := cfg.Write(path); err != nil {
		t.Fatal(err)
	}
	return &listServer{st: st, reg: reg, wf: wf, addr: ln.Addr().String(), config: path}
}

func (s *listServer) deckctl(args ...string) (string, error) {
	var out, errOut bytes.Buffer
	root := cli.NewRoot(&out, &errOut)
	root.SetArgs(append([]string{"--config", s.config, "--controller", s.addr, "--timeout", "30s"}, args...))
	err := root.Execute()
	return out.String(), err
}

func (s *listServer) put(t *testing.T, key string, m proto.Message) {
	t.Helper()
	b, err := proto.Marshal(m)
	if err != nil {
		t.Fatal(err)
	}
	if _, err := s.st.Txn(context.Background(), store.Txn{Then: []store.Op{store.Put(key, b)}}); err != nil {
		t.Fatal(err)
	}
}

func (s *listServer) client(t *testing.T) *grpc.ClientConn {
	t.Helper()
	cfg, err := clientconfig.Load(s.config)
	if err != nil {
		t.Fatal(err)
	}
	tlsCfg, err := cfg.TLS()
	if err != nil {
		t.Fatal(err)
	}
	cc, err := grpc.NewClient("passthrough:///"+s.addr, grpc.WithTransportCredentials(credentials.NewTLS(tlsCfg)))
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { cc.Close() })
	return cc
}

func bigTask(id string, artifact int) *apiv1.TaskRecord {
	return &apiv1.TaskRecord{
		Task:    &taskv1.Task{Id: id, Node: "node-1", Spec: &taskv1.TaskSpec{Kind: &taskv1.TaskSpec_Diagnostics{Diagnostics: &taskv1.DiagnosticsSpec{}}}},
		State:   taskv1.TaskState_TASK_STATE_SUCCEEDED,
		Result:  &taskv1.TaskResult{TaskId: id, State: taskv1.TaskState_TASK_STATE_SUCCEEDED, Artifact: bytes.Repeat([]byte{'x'}, artifact)},
		Created: timestamppb.Now(), Updated: timestamppb.Now(),
	}
}

// Two nodes with 3 MB of facts and two tasks with 2.5 MB artifacts made every list fail
// with ResourceExhausted (over gRPC's 4 MiB): deckctl nodes and deckctl task list work, the
// artifact is fetched by ID, and every record shows exactly once across pages.
func TestListsStayUnderTheMessageLimit(t *testing.T) {
	s := newListServer(t)
	for _, name := range []string{"node-1", "node-2"} {
		s.put(t, nodes.Prefix+name, &apiv1.Node{Name: name, State: apiv1.NodeState_NODE_STATE_READY, Enrolled: timestamppb.Now(),
			Facts: &agentv1.Facts{Hostname: name, OsId: "debian", Kernel: strings.Repeat("k", 3<<20)}})
	}
	s.put(t, tasks.Prefix+"diag-1", bigTask("diag-1", 5<<19))
	s.put(t, tasks.Prefix+"diag-2", bigTask("diag-2", 5<<19))
	for i := range 150 {
		s.put(t, tasks.Prefix+fmt.Sprintf("small-%03d", i), bigTask(fmt.Sprintf("small-%03d", i), 0))
	}

	out, err := s.deckctl("nodes")
	if err != nil || !strings.Contains(out, "node-1") || !strings.Contains(out, "node-2") {
		t.Fatalf("deckctl nodes: %v\n%s", err, out)
	}
	out, err = s.deckctl("task", "list")
	if err != nil {
		t.Fatalf("deckctl task list: %v", err)
	}
	for _, id := range append([]string{"diag-1", "diag-2"}, "small-000", "small-149") {
		if strings.Count(out, id+" ") != 1 {
			t.Fatalf("deckctl task list shows %s %d times:\n%s", id, strings.Count(out, id+" "), out)
		}
	}
	if lines := strings.Count(out, "\n"); lines != 1+152 {
		t.Fatalf("deckctl task list: %d lines for 152 tasks", lines)
	}
	if out, err = s.deckctl("-o", "json", "task", "list"); err != nil || strings.Count(out, `"small-`) != 300 {
		t.Fatalf("deckctl -o json task list: %v", err)
	}
	file := filepath.Join(t.TempDir(), "bundle.tar.gz")
	if _, err := s.deckctl("task", "artifact", "diag-1", file); err != nil {
		t.Fatalf("deckctl task artifact: %v", err)
	}
	if fi, err := os.Stat(file); err != nil || fi.Size() != 5<<19 {
		t.Fatalf("saved artifact: %v %v", fi, err)
	}
	file2 := filepath.Join(t.TempDir(), "b2.tar.gz")
	if _, err := s.deckctl("task", "get", "diag-2", "--save", file2); err != nil {
		t.Fatalf("deckctl task get --save: %v", err)
	}
	if fi, err := os.Stat(file2); err != nil || fi.Size() != 5<<19 {
		t.Fatalf("saved artifact: %v %v", fi, err)
	}

	// The API: lists carry the artifact's size, not the artifact; node lists a summary of
	// the facts, GetNode all of them.
	ctx := context.Background()
	taskAPI := apiv1.NewTaskServiceClient(s.client(t))
	got, err := taskAPI.GetTask(ctx, &apiv1.GetTaskRequest{Id: "diag-1"})
	if err != nil || len(got.GetTask().GetResult().GetArtifact()) != 0 || got.GetTask().GetArtifactSize() != 5<<19 {
		t.Fatalf("GetTask without include_artifact: size %d, %v", got.GetTask().GetArtifactSize(), err)
	}
	nodeAPI := apiv1.NewNodeServiceClient(s.client(t))
	full, err := nodeAPI.GetNode(ctx, &apiv1.GetNodeRequest{Name: "node-1"})
	if err != nil || len(full.GetNode().GetFacts().GetKernel()) != 3<<20 {
		t.Fatalf("GetNode: %v", err)
	}

	// Pages: every record exactly once, whatever the page size.
	for _, size := range []int32{0, 1, 7, 1000} {
		seen := map[string]int{}
		pages := 0
		for token := ""; ; pages++ {
			resp, err := taskAPI.ListTasks(ctx, &apiv1.ListTasksRequest{PageSize: size, PageToken: token})
			if err != nil {
				t.Fatalf("page %d of size %d: %v", pages, size, err)
			}
			for _, r := range resp.GetTasks() {
				seen[r.GetTask().GetId()]++
			}
			if token = resp.GetNextPageToken(); token == "" {
				break
			}
		}
		if len(seen) != 152 {
			t.Fatalf("page size %d: %d distinct tasks of 152", size, len(seen))
		}
		for id, n := range seen {
			if n != 1 {
				t.Fatalf("page size %d: %s listed %d times", size, id, n)
			}
		}
	}

	// Tokens are checked: garbage, another filter, a negative size.
	first, err := taskAPI.ListTasks(ctx, &apiv1.ListTasksRequest{PageSize: 5})
	if err != nil || first.GetNextPageToken() == "" {
		t.Fatalf("first page: %v", err)
	}
	for name, req := range map[string]*apiv1.ListTasksRequest{
		"garbage":      {PageToken: "not-a-token"},
		"other filter": {Node: "node-2", PageToken: first.GetNextPageToken()},
		"negative":     {PageSize: -1},
	} {
		if _, err := taskAPI.ListTasks(ctx, req); status.Code(err) != codes.InvalidArgument {
			t.Errorf("%s: %v", name, err)
		}
	}
	if _, err := nodeAPI.ListNodes(ctx, &apiv1.ListNodesRequest{PageToken: first.GetNextPageToken()}); status.Code(err) != codes.InvalidArgument {
		t.Errorf("a task token on the node list: %v", err)
	}
}

// A direct task on a node a workflow holds is refused with NODE_LOCKED naming the workflow
// (a workflow expects its nodes as it left them); a task ID that looks like a workflow
// step's, or that another task has, is refused too.
func TestDirectTasksAtTheAPI(t *testing.T) {
	s := newListServer(t)
	ctx := context.Background()
	for _, n := range []string{"cp-1", "node-2"} {
		if err := s.reg.Enroll(ctx, n, "m-"+n, "s-"+n); err != nil {
			t.Fatal(err)
		}
	}
	wf, err := s.wf.Create(ctx, &apiv1.WorkflowSpec{Kind: &apiv1.WorkflowSpec_Init{Init: &apiv1.InitWorkflow{Node: "cp-1", Cluster: &taskv1.ClusterSpec{
		KubernetesVersion: "v1.33.13", PodSubnet: "10.244.0.0/16", ServiceSubnet: "10.96.0.0/12"}}}}, "test")
	if err != nil {
		t.Fatal(err)
	}
	diag := &taskv1.TaskSpec{Kind: &taskv1.TaskSpec_Diagnostics{Diagnostics: &taskv1.DiagnosticsSpec{}}}
	taskAPI := apiv1.NewTaskServiceClient(s.client(t))
	_, err = taskAPI.CreateTask(ctx, &apiv1.CreateTaskRequest{Node: "cp-1", Spec: diag})
	if status.Code(err) != codes.FailedPrecondition || api.Reason(err) != apiv1.ErrorReason_ERROR_REASON_NODE_LOCKED || !strings.Contains(err.Error(), wf.GetId()) {
		t.Fatalf("a direct task on a held node: %v", err)
	}
	out, err := s.deckctl("task", "run", "cp-1", "diagnostics", "--detach")
	if err == nil || !strings.Contains(err.Error(), wf.GetId()) {
		t.Fatalf("deckctl task run on a held node: %v\n%s", err, out)
	}
	_, err = taskAPI.CreateTask(ctx, &apiv1.CreateTaskRequest{Node: "node-2", Spec: diag, Id: wf.GetId() + ".cp-1.preflight.2"})
	if status.Code(err) != codes.InvalidArgument || !strings.Contains(err.Error(), "workflow steps") {
		t.Fatalf("a direct task under a step's ID: %v", err)
	}
	if _, err := taskAPI.CreateTask(ctx, &apiv1.CreateTaskRequest{Node: "node-2", Spec: diag, Id: "mine"}); err != nil {
		t.Fatal(err)
	}
	pre := &taskv1.TaskSpec{Kind: &taskv1.TaskSpec_Preflight{Preflight: &taskv1.PreflightSpec{Role: taskv1.NodeRole_NODE_ROLE_WORKER}}}
	_, err = taskAPI.CreateTask(ctx, &apiv1.CreateTaskRequest{Node: "node-2", Spec: pre, Id: "mine"})
	if status.Code(err) != codes.AlreadyExists || !strings.Contains(err.Error(), "mine") {
		t.Fatalf("another task under a taken ID: %v", err)
	}
}
