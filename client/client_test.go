package client

import (
	"context"
	"net"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"google.golang.org/genproto/googleapis/rpc/errdetails"
	"google.golang.org/grpc"
	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/credentials"
	"google.golang.org/grpc/status"
	"google.golang.org/protobuf/reflect/protoreflect"
	"google.golang.org/protobuf/reflect/protoregistry"

	"github.com/deckhandhq/deckhand/internal/clientconfig"
	"github.com/deckhandhq/deckhand/internal/pki"
	apiv1 "github.com/deckhandhq/deckhand/proto/deckhand/api/v1"
)

// fakeController serves the member API over the cluster's mTLS: ListMembers answers with
// the member list it is given and says who served it; fail makes every call UNAVAILABLE
// (a controller without quorum).
type fakeController struct {
	apiv1.UnimplementedMemberServiceServer
	name    string
	addr    string
	members *[]string
	fail    atomic.Bool
	calls   atomic.Int32
	removes atomic.Int32
	srv     *grpc.Server
	ln      net.Listener
}

func (f *fakeController) ListMembers(context.Context, *apiv1.ListMembersRequest) (*apiv1.ListMembersResponse, error) {
	f.calls.Add(1)
	if f.fail.Load() {
		return nil, status.Error(codes.Unavailable, "no quorum")
	}
	resp := &apiv1.ListMembersResponse{ServedBy: f.name}
	for _, m := range *f.members {
		resp.Members = append(resp.Members, &apiv1.ControllerMember{Id: m, Address: m})
	}
	return resp, nil
}

func (f *fakeController) RemoveMember(context.Context, *apiv1.RemoveMemberRequest) (*apiv1.RemoveMemberResponse, error) {
	f.removes.Add(1)
	if f.fail.Load() {
		return nil, status.Error(codes.Unavailable, "no quorum")
	}
	return &apiv1.RemoveMemberResponse{}, nil
}

type fakeCluster struct {
	t       *testing.T
	ca      *pki.CA
	members []string
	ctl     map[string]*fakeController
	config  string
	// workflows and tasks, when set, are served by every controller.
	workflows apiv1.WorkflowServiceServer
	tasks     apiv1.TaskServiceServer
}

func newFakeCluster(t *testing.T) *fakeCluster {
	t.Helper()
	ca, err := pki.NewCA("test")
	if err != nil {
		t.Fatal(err)
	}
	fc := &fakeCluster{t: t, ca: ca, ctl: map[string]*fakeController{}}
	certPEM, keyPEM, err := ca.IssueClient("admin", pki.RoleAdmin, time.Hour)
	if err != nil {
		t.Fatal(err)
	}
	fc.config = filepath.Join(t.TempDir(), "config")
	if err := clientconfig.New([]string{"127.0.0.1:1"}, ca.CertPEM, certPEM, keyPEM).Write(fc.config); err != nil {
		t.Fatal(err)
	}
	return fc
}

// listen reserves an address for a controller named name.
func (fc *fakeCluster) listen(name string) *fakeController {
	fc.t.Helper()
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		fc.t.Fatal(err)
	}
	f := &fakeController{name: name, addr: ln.Addr().String(), members: &fc.members, ln: ln}
	fc.ctl[name] = f
	fc.members = append(fc.members, f.addr)
	return f
}

// serve starts controllers (up).
func (fc *fakeCluster) serve(names ...string) {
	fc.t.Helper()
	serverTLS, _, err := fc.ca.ReplicaTLS("test", []string{"127.0.0.1"})
	if err != nil {
		fc.t.Fatal(err)
	}
	for _, n := range names {
		f := fc.ctl[n]
		if f.ln == nil {
			if f.ln, err = net.Listen("tcp", f.addr); err != nil {
				fc.t.Fatal(err)
			}
		}
		f.srv = grpc.NewServer(grpc.Creds(credentials.NewTLS(serverTLS)))
		apiv1.RegisterMemberServiceServer(f.srv, f)
		if fc.workflows != nil {
			apiv1.RegisterWorkflowServiceServer(f.srv, fc.workflows)
		}
		if fc.tasks != nil {
			apiv1.RegisterTaskServiceServer(f.srv, fc.tasks)
		}
		go f.srv.Serve(f.ln)
		f.ln = nil
		fc.t.Cleanup(f.srv.Stop)
	}
}

// down closes a controller's port (connections are refused).
func (fc *fakeCluster) down(names ...string) {
	for _, n := range names {
		f := fc.ctl[n]
		if f.srv != nil {
			f.srv.Stop()
			f.srv = nil
		}
		if f.ln != nil {
			f.ln.Close()
			f.ln = nil
		}
	}
}

// writeControllers sets the credential file's controller list.
func (fc *fakeCluster) writeControllers(addrs ...string) {
	fc.t.Helper()
	cfg, err := clientconfig.Load(fc.config)
	if err != nil {
		fc.t.Fatal(err)
	}
	cfg.Controllers = addrs
	if err := cfg.Write(fc.config); err != nil {
		fc.t.Fatal(err)
	}
}

func (fc *fakeCluster) addrs(names ...string) []string {
	var out []string
	for _, n := range names {
		out = append(out, fc.ctl[n].addr)
	}
	return out
}

func servedBy(t *testing.T, c *Client) string {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	resp, err := c.Members().ListMembers(ctx, &apiv1.ListMembersRequest{})
	if err != nil {
		t.Fatalf("ListMembers: %v", err)
	}
	return resp.GetServedBy()
}

func dial(t *testing.T, o Options) *Client {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 20*time.Second)
	defer cancel()
	c, err := New(ctx, o)
	if err != nil {
		t.Fatalf("New: %v", err)
	}
	t.Cleanup(func() { c.Close() })
	return c
}

// The controllers are tried in the file's order; one that does not answer is skipped, and
// a read in flight when its controller goes away is answered by the next one.
func TestFailoverOrder(t *testing.T) {
	fc := newFakeCluster(t)
	fc.listen("a")
	fc.listen("b")
	fc.listen("c")
	fc.serve("b", "c")
	fc.down("a")
	fc.writeControllers(fc.addrs("a", "b", "c")...)

	c := dial(t, Options{ConfigFile: fc.config, NoRefresh: true})
	if got := servedBy(t, c); got != "b" {
		t.Fatalf("a is down: served by %q, want b (the next in the file)", got)
	}
	fc.down("b")
	if got := servedBy(t, c); got != "c" {
		t.Fatalf("b went away: served by %q, want c", got)
	}
	// a comes back: c still answers, so the client stays on c; once c fails too, the
	// one that failed longest ago (a) is tried first.
	fc.serve("a")
	if got := servedBy(t, c); got != "c" {
		t.Fatalf("served by %q, want c (the one in use)", got)
	}
	fc.down("c")
	if got := servedBy(t, c); got != "a" {
		t.Fatalf("c went away: served by %q, want a (b is down)", got)
	}
}

// A controller without quorum answers UNAVAILABLE: a read is sent again to another; a
// write that is not idempotent is sent once, and the next call goes elsewhere.
func TestRetryOnlyIdempotentCalls(t *testing.T) {
	fc := newFakeCluster(t)
	fc.listen("a")
	fc.listen("b")
	fc.serve("a", "b")
	fc.writeControllers(fc.addrs("a", "b")...)
	c := dial(t, Options{ConfigFile: fc.config, NoRefresh: true})
	if got := servedBy(t, c); got != "a" {
		t.Fatalf("served by %q, want a", got)
	}
	fc.ctl["a"].fail.Store(true)
	if got := servedBy(t, c); got != "b" {
		t.Fatalf("a has no quorum: the read was served by %q, want b", got)
	}

	fc.ctl["b"].fail.Store(true)
	fc.ctl["a"].fail.Store(false)
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	_, err := c.Members().RemoveMember(ctx, &apiv1.RemoveMemberRequest{Id: "x"})
	if status.Code(err) != codes.Unavailable {
		t.Fatalf("RemoveMember on a controller without quorum: %v, want UNAVAILABLE", err)
	}
	if n, m := fc.ctl["b"].removes.Load(), fc.ctl["a"].removes.Load(); n != 1 || m != 0 {
		t.Fatalf("the write was sent %d times to b and %d to a, want once to b only", n, m)
	}
	if _, err := c.Members().RemoveMember(ctx, &apiv1.RemoveMemberRequest{Id: "x"}); err != nil {
		t.Fatalf("the next write: %v, want it served by a", err)
	}
	if m := fc.ctl["a"].removes.Load(); m != 1 {
		t.Fatalf("a got %d writes, want 1", m)
	}
}

// A controller whose host is gone (connections hang) costs a quarter second, not the
// connect timeout.
func TestHangingControllerIsPassedQuickly(t *testing.T) {
	fc := newFakeCluster(t)
	hang, err := net.Listen("tcp", "127.0.0.1:0") // accepts and never speaks TLS
	if err != nil {
		t.Fatal(err)
	}
	defer hang.Close()
	var conns sync.WaitGroup
	go func() {
		for {
			conn, err := hang.Accept()
			if err != nil {
				return
			}
			conns.Add(1)
			go func() {
				defer conns.Done()
				defer conn.Close()
				buf := make([]byte, 1024)
				for {
					if _, err := conn.Read(buf); err != nil {
						return
					}
				}
			}()
		}
	}()
	fc.listen("b")
	fc.serve("b")
	fc.writeControllers(append([]string{hang.Addr().String()}, fc.addrs("b")...)...)
	start := time.Now()
	c := dial(t, Options{ConfigFile: fc.config, NoRefresh: true, ConnectTimeout: 20 * time.Second})
	if got := servedBy(t, c); got != "b" {
		t.Fatalf("served by %q, want b", got)
	}
	if d := time.Since(start); d > 10*time.Second {
		t.Fatalf("connecting took %v: the hanging controller was waited for", d)
	}
}

func TestNoControllerAnswersNamesEach(t *testing.T) {
	fc := newFakeCluster(t)
	fc.listen("a")
	fc.listen("b")
	fc.down("a", "b")
	fc.writeControllers(fc.addrs("a", "b")...)
	ctx, cancel := context.WithTimeout(context.Background(), 20*time.Second)
	defer cancel()
	_, err := New(ctx, Options{ConfigFile: fc.config})
	if err == nil {
		t.Fatal("New connected with every controller down")
	}
	for _, a := range fc.addrs("a", "b") {
		if !strings.Contains(err.Error(), a+": ") || !strings.Contains(err.Error(), "connection refused") {
			t.Fatalf("error %q does not say why %s failed", err, a)
		}
	}
}

// A credential file naming one controller learns the others from Members, and the file is
// rewritten with them (mode 0600, the rest unchanged) only when the list changed.
func TestSaveEndpointsWritesTheMembersBack(t *testing.T) {
	fc := newFakeCluster(t)
	fc.listen("a")
	fc.listen("b")
	fc.listen("c")
	fc.serve("a", "b", "c")
	gone := "127.0.0.1:1" // a removed controller: no member, and it does not answer
	fc.writeControllers(gone, fc.ctl["a"].addr)
	link := filepath.Join(t.TempDir(), "link")
	if err := os.Symlink(fc.config, link); err != nil {
		t.Fatal(err)
	}
	before, err := clientconfig.Load(fc.config)
	if err != nil {
		t.Fatal(err)
	}

	c := dial(t, Options{ConfigFile: link})
	if got, want := c.Endpoints(), fc.addrs("a", "b", "c"); !slices.Equal(got, want) {
		// The gone one is not a member and failed: dropped.
		t.Fatalf("endpoints after the refresh: %v, want %v", got, want)
	}
	wrote, err := c.SaveEndpoints()
	if err != nil || !wrote {
		t.Fatalf("SaveEndpoints: %v %v, want it written", wrote, err)
	}
	after, err := clientconfig.Load(fc.config)
	if err != nil {
		t.Fatal(err)
	}
	if want := fc.addrs("a", "b", "c"); !slices.Equal(after.Controllers, want) {
		t.Fatalf("file lists %v, want %v", after.Controllers, want)
	}
	if after.Certificate != before.Certificate || after.Key != before.Key || after.CA != before.CA {
		t.Fatal("the write-back changed the credentials")
	}
	fi, err := os.Lstat(link)
	if err != nil || fi.Mode()&os.ModeSymlink == 0 {
		t.Fatalf("the link was replaced by a file: %v %v", fi, err)
	}
	if fi, err := os.Stat(fc.config); err != nil || fi.Mode().Perm() != 0o600 {
		t.Fatalf("mode after the write-back: %v %v, want 0600", fi, err)
	}
	entries, _ := os.ReadDir(filepath.Dir(fc.config))
	if len(entries) != 1 {
		t.Fatalf("the write-back left files beside the config: %v", entries)
	}
	if wrote, err := c.SaveEndpoints(); err != nil || wrote {
		t.Fatalf("second SaveEndpoints: %v %v, want nothing written", wrote, err)
	}

	// The file now works without a: it is gone, b answers.
	fc.down("a")
	c2 := dial(t, Options{ConfigFile: fc.config})
	if got := servedBy(t, c2); got != "b" {
		t.Fatalf("served by %q, want b", got)
	}
}

func TestOrderEndpoints(t *testing.T) {
	now := time.Unix(1000, 0)
	for _, tc := range []struct {
		name   string
		list   []string
		failed map[string]time.Time
		want   []string
	}{
		{"listed order", []string{"a", "b", "c"}, nil, []string{"a", "b", "c"}},
		{"a failed: last", []string{"a", "b", "c"}, map[string]time.Time{"a": now.Add(-time.Second)}, []string{"b", "c", "a"}},
		{"failed long ago: back in place", []string{"a", "b", "c"}, map[string]time.Time{"a": now.Add(-failedFor)}, []string{"a", "b", "c"}},
		{"two failed: the older first", []string{"a", "b", "c"}, map[string]time.Time{"a": now.Add(-time.Second), "b": now.Add(-2 * time.Second)}, []string{"c", "b", "a"}},
		{"all failed", []string{"a", "b"}, map[string]time.Time{"a": now.Add(-time.Second), "b": now.Add(-time.Second)}, []string{"a", "b"}},
	} {
		if got := orderEndpoints(tc.list, tc.failed, now); !slices.Equal(got, tc.want) {
			t.Errorf("%s: %v, want %v", tc.name, got, tc.want)
		}
	}
}

func TestMergeEndpoints(t *testing.T) {
	failed := func(set ...string) func(string) bool {
		return func(a string) bool { return slices.Contains(set, a) }
	}
	for _, tc := range []struct {
		name           string
		known, members []string
		failed         func(string) bool
		want           []string
	}{
		{"same", []string{"a", "b"}, []string{"b", "a"}, failed(), []string{"a", "b"}},
		{"one known: the others added", []string{"a"}, []string{"a", "b", "c"}, failed(), []string{"a", "b", "c"}},
		{"a balancer that answers stays", []string{"vip"}, []string{"a", "b"}, failed(), []string{"vip", "a", "b"}},
		{"a removed controller that failed goes", []string{"x", "a"}, []string{"a", "b"}, failed("x"), []string{"a", "b"}},
		{"a dead member stays", []string{"a", "b"}, []string{"a", "b"}, failed("a"), []string{"a", "b"}},
		{"duplicates", []string{"a", "a"}, []string{"a"}, failed(), []string{"a"}},
	} {
		if got := mergeEndpoints(tc.known, tc.members, tc.failed); !slices.Equal(got, tc.want) {
			t.Errorf("%s: %v, want %v", tc.name, got, tc.want)
		}
	}
}

// Every API method is classified: a new one must be added to the table (and to reads
// when it changes nothing).
func TestIdempotentCoversEveryMethod(t *testing.T) {
	want := map[string]bool{
		"CreateCredential": false, "ListCredentials": true, "RevokeCredential": false,
		"ListMembers": true, "RemoveMember": false,
		"GetNode": true, "ListNodes": true, "DeleteNode": false,
		"CreateTask": false, "GetTask": true, "ListTasks": true, "CancelTask": false, "WatchTask": true, "GetTaskLogs": true, "RunTasks": false,
		"CreateToken": false, "ListTokens": true, "RevokeToken": false,
		"CreateWorkflow": false, "GetWorkflow": true, "ListWorkflows": true, "CancelWorkflow": false, "RetryWorkflow": false,
		"PauseWorkflow": true, "ResumeWorkflow": true,
		"WatchWorkflow": true, "GetWorkflowLogs": true, "PlanWorkflow": true, "GetCluster": true, "CreateKubeconfig": false, "SaveEtcdSnapshot": false,
		"ListAuditEvents": true, "WatchAuditEvents": true,
	}
	seen := 0
	protoregistry.GlobalFiles.RangeFilesByPackage("deckhand.api.v1", func(fd protoreflect.FileDescriptor) bool {
		for i := range fd.Services().Len() {
			svc := fd.Services().Get(i)
			for j := range svc.Methods().Len() {
				m := svc.Methods().Get(j)
				full := "/" + string(svc.FullName()) + "/" + string(m.Name())
				w, ok := want[string(m.Name())]
				if !ok {
					t.Errorf("%s is not classified: is sending it twice the same as once?", full)
					continue
				}
				seen++
				if got := Idempotent(full, nil); got != w {
					t.Errorf("Idempotent(%s) = %v, want %v", full, got, w)
				}
			}
		}
		return true
	})
	if seen != len(want) {
		t.Errorf("%d methods found, %d classified", seen, len(want))
	}
	if !Idempotent(apiv1.TaskService_CreateTask_FullMethodName, &apiv1.CreateTaskRequest{Id: "t1"}) {
		t.Error("a task created with a client-chosen ID is idempotent")
	}
	if !Idempotent(apiv1.TaskService_RunTasks_FullMethodName, &apiv1.RunTasksRequest{Id: "run-1"}) {
		t.Error("a run with a client-chosen ID is idempotent: the same request again resumes it")
	}
	if !Idempotent(apiv1.WorkflowService_CreateWorkflow_FullMethodName, &apiv1.CreateWorkflowRequest{Id: NewWorkflowID()}) {
		t.Error("a workflow created with a client-chosen ID is idempotent")
	}
}

func TestSwitchOn(t *testing.T) {
	withReason := func(code codes.Code, reason apiv1.ErrorReason) error {
		st, err := status.New(code, "x").WithDetails(&errdetails.ErrorInfo{Reason: reason.String()})
		if err != nil {
			t.Fatal(err)
		}
		return st.Err()
	}
	live := context.Background()
	done, cancel := context.WithCancel(context.Background())
	cancel()
	for _, tc := range []struct {
		name string
		ctx  context.Context
		err  error
		want bool
	}{
		{"connection lost", live, status.Error(codes.Unavailable, "connection refused"), true},
		{"no quorum", live, withReason(codes.Unavailable, apiv1.ErrorReason_ERROR_REASON_NO_QUORUM), true},
		{"no control plane connected: an answer, not a dead controller", live, withReason(codes.Unavailable, apiv1.ErrorReason_ERROR_REASON_NODE_NOT_CONNECTED), false},
		{"connection closed under the call", live, status.Error(codes.Canceled, "grpc: the client connection is closing"), true},
		{"the caller cancelled", done, status.Error(codes.Canceled, "context canceled"), false},
		{"not found", live, withReason(codes.NotFound, apiv1.ErrorReason_ERROR_REASON_NOT_FOUND), false},
		{"deadline", live, status.Error(codes.DeadlineExceeded, "deadline"), false},
	} {
		if got := switchOn(tc.ctx, tc.err); got != tc.want {
			t.Errorf("%s: switchOn = %v, want %v", tc.name, got, tc.want)
		}
	}
}
