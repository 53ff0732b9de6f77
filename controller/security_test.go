package controller_test

import (
	"context"
	"crypto/tls"
	"crypto/x509"
	"errors"
	"io"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"testing"
	"time"

	"google.golang.org/grpc"
	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/credentials"
	reflectionpb "google.golang.org/grpc/reflection/grpc_reflection_v1"
	"google.golang.org/grpc/status"
	"google.golang.org/protobuf/reflect/protoreflect"
	"google.golang.org/protobuf/reflect/protoregistry"
	"google.golang.org/protobuf/types/dynamicpb"

	"github.com/deckhandhq/deckhand/controller/api"
	"github.com/deckhandhq/deckhand/internal/clientconfig"
	"github.com/deckhandhq/deckhand/internal/netmux"
	"github.com/deckhandhq/deckhand/internal/pki"
	"github.com/deckhandhq/deckhand/internal/testkit/testcluster"
	agentv1 "github.com/deckhandhq/deckhand/proto/deckhand/agent/v1"
	apiv1 "github.com/deckhandhq/deckhand/proto/deckhand/api/v1"
	taskv1 "github.com/deckhandhq/deckhand/proto/deckhand/task/v1"
)

// servedMethods lists every method of every service the controller serves, from the
// service descriptors it advertises through reflection.
func servedMethods(t *testing.T, cc *grpc.ClientConn) []protoreflect.MethodDescriptor {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	stream, err := reflectionpb.NewServerReflectionClient(cc).ServerReflectionInfo(ctx)
	if err != nil {
		t.Fatal(err)
	}
	if err := stream.Send(&reflectionpb.ServerReflectionRequest{MessageRequest: &reflectionpb.ServerReflectionRequest_ListServices{}}); err != nil {
		t.Fatal(err)
	}
	resp, err := stream.Recv()
	if err != nil {
		t.Fatal(err)
	}
	var out []protoreflect.MethodDescriptor
	for _, svc := range resp.GetListServicesResponse().GetService() {
		d, err := protoregistry.GlobalFiles.FindDescriptorByName(protoreflect.FullName(svc.GetName()))
		if err != nil {
			t.Fatalf("service %s: %v", svc.GetName(), err)
		}
		methods := d.(protoreflect.ServiceDescriptor).Methods()
		for i := range methods.Len() {
			out = append(out, methods.Get(i))
		}
	}
	if len(out) < 15 {
		t.Fatalf("only %d methods found", len(out))
	}
	return out
}

func fullName(m protoreflect.MethodDescriptor) string {
	return "/" + string(m.Parent().FullName()) + "/" + string(m.Name())
}

// call invokes m with an empty request and returns the status code.
func call(cc *grpc.ClientConn, m protoreflect.MethodDescriptor) codes.Code {
	ctx, cancel := context.WithTimeout(context.Background(), 2*time.Second)
	defer cancel()
	req := dynamicpb.NewMessage(m.Input())
	resp := dynamicpb.NewMessage(m.Output())
	if !m.IsStreamingClient() && !m.IsStreamingServer() {
		return status.Code(cc.Invoke(ctx, fullName(m), req, resp))
	}
	stream, err := cc.NewStream(ctx, &grpc.StreamDesc{ServerStreams: m.IsStreamingServer(), ClientStreams: m.IsStreamingClient()}, fullName(m))
	if err != nil {
		return status.Code(err)
	}
	if err := stream.SendMsg(req); err != nil && !errors.Is(err, io.EOF) {
		return status.Code(err)
	}
	_ = stream.CloseSend()
	err = stream.RecvMsg(resp)
	if errors.Is(err, io.EOF) {
		return codes.OK
	}
	return status.Code(err)
}

func dialWith(t *testing.T, addr string, cfg *tls.Config) *grpc.ClientConn {
	t.Helper()
	cc, err := grpc.NewClient("passthrough:///"+addr, grpc.WithTransportCredentials(credentials.NewTLS(cfg)))
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { cc.Close() })
	return cc
}

func TestEveryMethodAgainstTheRoleTable(t *testing.T) {
	c := testcluster.New(t, 1)
	addr := c.Addrs()[0]
	admin := c.Client()
	methods := servedMethods(t, admin)

	noCert := dialWith(t, addr, &tls.Config{RootCAs: caPool(t, c), MinVersion: tls.VersionTLS13})
	callers := map[string]*grpc.ClientConn{
		"":               noCert,
		pki.RoleViewer:   c.ClientAs(pki.RoleViewer, "alice"),
		pki.RoleAgent:    c.ClientAs(pki.RoleAgent, "node-a"),
		pki.RoleAdmin:    admin,
		pki.RoleOperator: c.ClientAs(pki.RoleOperator, "bob"),
	}
	for _, m := range methods {
		name := fullName(m)
		roles, inTable := api.Roles[name]
		if !inTable && !api.Public[name] {
			t.Errorf("%s is served but missing from the role table", name)
		}
		for role, cc := range callers {
			code := call(cc, m)
			switch {
			case api.Public[name]:
				// Token-authenticated: an empty request fails validation, for anyone.
				if code != codes.InvalidArgument {
					t.Errorf("%s (public) as %q: %v, want InvalidArgument", name, role, code)
				}
			case role == "":
				if code != codes.Unauthenticated {
					t.Errorf("%s without certificate: %v, want Unauthenticated", name, code)
				}
			case slices.Contains(roles, role):
				if code == codes.Unauthenticated || code == codes.PermissionDenied {
					t.Errorf("%s as %s (allowed): %v", name, role, code)
				}
			default:
				if code != codes.PermissionDenied {
					t.Errorf("%s as %s (not allowed): %v, want PermissionDenied", name, role, code)
				}
			}
		}
	}
}

func readFile(t *testing.T, dir, name string) ([]byte, error) {
	t.Helper()
	b, err := os.ReadFile(filepath.Join(dir, name))
	if err != nil {
		t.Fatal(err)
	}
	return b, nil
}

func caPool(t *testing.T, c *testcluster.Cluster) *x509.CertPool {
	t.Helper()
	cfg, err := c.AdminTLS().TLS()
	if err != nil {
		t.Fatal(err)
	}
	return cfg.RootCAs
}

func TestRefusals(t *testing.T) {
	c := testcluster.New(t, 1)
	addr := c.Addrs()[0]

	t.Run("certificate from another CA", func(t *testing.T) {
		other, _ := pki.NewCA("intruder")
		certPEM, keyPEM, _ := other.IssueClient("admin", pki.RoleAdmin, time.Hour)
		cfg, _ := clientconfig.New(nil, []byte(c.AdminTLS().CA), certPEM, keyPEM).TLS()
		cc := dialWith(t, addr, cfg)
		ctx, cancel := context.WithTimeout(context.Background(), 3*time.Second)
		defer cancel()
		_, err := apiv1.NewNodeServiceClient(cc).ListNodes(ctx, &apiv1.ListNodesRequest{})
		if code := status.Code(err); code != codes.Unavailable && code != codes.Unauthenticated {
			t.Fatalf("foreign admin certificate: %v", err)
		}
	})

	t.Run("raft port refuses non-replica certificates", func(t *testing.T) {
		cfg, _ := c.AdminTLS().TLS()
		conn, err := netmux.DialRaft(context.Background(), nil, addr, cfg)
		if err != nil {
			return // refused at the handshake: fine
		}
		defer conn.Close()
		_ = conn.SetReadDeadline(time.Now().Add(3 * time.Second))
		if _, err := conn.Read(make([]byte, 1)); !errors.Is(err, io.EOF) {
			t.Fatalf("raft connection with an admin certificate stayed open: %v", err)
		}
	})

	t.Run("agent A cannot speak for node B", func(t *testing.T) {
		token := c.CreateToken(0)
		for _, n := range []string{"node-a", "node-b"} {
			if _, err := c.StartAgent(c.AgentConfig(n, token)); err != nil {
				t.Fatal(err)
			}
		}
		a := c.Agents["node-a"]
		certPEM, _ := readFile(t, a.Dir, "node.crt")
		keyPEM, _ := readFile(t, a.Dir, "node.key")
		cfg, _ := clientconfig.New(nil, []byte(c.AdminTLS().CA), certPEM, keyPEM).TLS()
		cc := dialWith(t, addr, cfg)
		ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
		defer cancel()
		stream, err := agentv1.NewAgentServiceClient(cc).Session(ctx)
		if err != nil {
			t.Fatal(err)
		}
		_ = stream.Send(&agentv1.SessionRequest{Msg: &agentv1.SessionRequest_Hello{Hello: &agentv1.Hello{NodeName: "node-b", Facts: &agentv1.Facts{Hostname: "forged"}}}})
		_, err = stream.Recv()
		if status.Code(err) != codes.PermissionDenied || api.Reason(err) != apiv1.ErrorReason_ERROR_REASON_PERMISSION_DENIED {
			t.Fatalf("node-a speaking for node-b: %v", err)
		}
		n, err := apiv1.NewNodeServiceClient(c.Client()).GetNode(ctx, &apiv1.GetNodeRequest{Name: "node-b"})
		if err != nil || n.GetNode().GetFacts().GetHostname() == "forged" {
			t.Fatalf("node-b's facts were overwritten by node-a: %v %v", n, err)
		}
	})

	t.Run("wrong CA hash is refused by the agent", func(t *testing.T) {
		cfg := c.AgentConfig("node-x", c.CreateToken(0))
		cfg.CACertHash = "sha256:" + strings.Repeat("ab", 32)
		_, err := c.StartAgent(cfg)
		if err == nil || !strings.Contains(err.Error(), "does not match --ca-cert-hash") {
			t.Fatalf("wrong pin: %v", err)
		}
	})

	t.Run("revoked and used-up tokens are refused", func(t *testing.T) {
		ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
		defer cancel()
		tokens := apiv1.NewTokenServiceClient(c.Client())
		revoked := c.CreateToken(0)
		if _, err := tokens.RevokeToken(ctx, &apiv1.RevokeTokenRequest{Id: strings.SplitN(revoked, ".", 2)[0]}); err != nil {
			t.Fatal(err)
		}
		if _, err := c.StartAgent(c.AgentConfig("node-r", revoked)); err == nil || !strings.Contains(err.Error(), "revoked") {
			t.Fatalf("revoked token: %v", err)
		}
		once := c.CreateToken(1)
		if _, err := c.StartAgent(c.AgentConfig("node-u1", once)); err != nil {
			t.Fatal(err)
		}
		if _, err := c.StartAgent(c.AgentConfig("node-u2", once)); err == nil || !strings.Contains(err.Error(), "used up") {
			t.Fatalf("used-up token: %v", err)
		}
	})

	t.Run("only an admin mints controller tokens", func(t *testing.T) {
		ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
		defer cancel()
		_, err := apiv1.NewTokenServiceClient(c.ClientAs(pki.RoleOperator, "bob")).CreateToken(ctx, &apiv1.CreateTokenRequest{Purpose: apiv1.TokenPurpose_TOKEN_PURPOSE_CONTROLLER})
		if status.Code(err) != codes.PermissionDenied {
			t.Fatalf("operator minted a controller token (it would buy the CA key): %v", err)
		}
	})

	t.Run("a known machine ID does not take over a node", func(t *testing.T) {
		token := c.CreateToken(0)
		first, err := c.StartAgent(c.AgentConfig("node-m", token))
		if err != nil {
			t.Fatal(err)
		}
		thief := c.AgentConfig("node-m", token)
		machineID, _ := os.ReadFile(filepath.Join(first.Root, "etc", "machine-id"))
		os.WriteFile(filepath.Join(thief.Root, "etc", "machine-id"), machineID, 0o644)
		if _, err := c.StartAgent(thief); err == nil || !strings.Contains(err.Error(), "already enrolled") {
			t.Fatalf("re-enrollment with a copied machine ID: %v", err)
		}
	})

	t.Run("kubeadm specs are checked at the edge", func(t *testing.T) {
		admin := c.Client()
		ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
		defer cancel()
		good := func() (*taskv1.ClusterSpec, *taskv1.NodeSpec) {
			return &taskv1.ClusterSpec{KubernetesVersion: "v1.33.13", ControlPlaneEndpoint: "10.250.0.10:6443", PodSubnet: "10.244.0.0/16", ServiceSubnet: "10.96.0.0/12"},
				&taskv1.NodeSpec{Name: "cp-1", AdvertiseAddress: "10.250.0.10"}
		}
		for field, mutate := range map[string]func(*taskv1.ClusterSpec, *taskv1.NodeSpec){
			"pod_subnet":             func(c *taskv1.ClusterSpec, _ *taskv1.NodeSpec) { c.PodSubnet = "10.96.0.0/16" },
			"node.name":              func(_ *taskv1.ClusterSpec, n *taskv1.NodeSpec) { n.Name = "CP_1" },
			"kubernetes_version":     func(c *taskv1.ClusterSpec, _ *taskv1.NodeSpec) { c.KubernetesVersion = "v1.99.0" },
			"control_plane_endpoint": func(c *taskv1.ClusterSpec, _ *taskv1.NodeSpec) { c.ControlPlaneEndpoint = "10.250.0.10" },
		} {
			cs, n := good()
			mutate(cs, n)
			_, err := apiv1.NewTaskServiceClient(admin).CreateTask(ctx, &apiv1.CreateTaskRequest{Node: "cp-1", Spec: &taskv1.TaskSpec{Kind: &taskv1.TaskSpec_KubeadmInit{KubeadmInit: &taskv1.KubeadmInitSpec{Cluster: cs, Node: n}}}})
			if status.Code(err) != codes.InvalidArgument || !strings.Contains(err.Error(), field) {
				t.Errorf("%s: %v", field, err)
			}
		}
	})

	t.Run("invalid argument names the field", func(t *testing.T) {
		ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
		defer cancel()
		_, err := apiv1.NewNodeServiceClient(c.Client()).GetNode(ctx, &apiv1.GetNodeRequest{Name: "Bad_Name"})
		if status.Code(err) != codes.InvalidArgument || !strings.Contains(status.Convert(err).Message(), "name") {
			t.Fatalf("bad node name: %v", err)
		}
	})
}

// The policy, written out independently of api.Roles: a change to who may call what must
// change this test too.
var wantPolicy = map[string]string{
	"deckhand.api.v1.MemberService/ListMembers":                     "admin operator viewer",
	"deckhand.api.v1.MemberService/RemoveMember":                    "admin",
	"deckhand.api.v1.NodeService/GetNode":                           "admin operator viewer",
	"deckhand.api.v1.NodeService/ListNodes":                         "admin operator viewer",
	"deckhand.api.v1.NodeService/DeleteNode":                        "admin",
	"deckhand.api.v1.TokenService/CreateToken":                      "admin operator",
	"deckhand.api.v1.TokenService/ListTokens":                       "admin operator",
	"deckhand.api.v1.TokenService/RevokeToken":                      "admin operator",
	"deckhand.api.v1.AuditService/ListAuditEvents":                  "admin operator",
	"deckhand.api.v1.AuditService/WatchAuditEvents":                 "admin operator",
	"deckhand.api.v1.TaskService/CreateTask":                        "admin operator",
	"deckhand.api.v1.TaskService/CancelTask":                        "admin operator",
	"deckhand.api.v1.TaskService/GetTask":                           "admin operator viewer",
	"deckhand.api.v1.TaskService/ListTasks":                         "admin operator viewer",
	"deckhand.api.v1.TaskService/WatchTask":                         "admin operator viewer",
	"deckhand.api.v1.TaskService/GetTaskLogs":                       "admin operator viewer",
	"deckhand.api.v1.TaskService/RunTasks":                          "admin operator",
	"deckhand.api.v1.WorkflowService/CreateWorkflow":                "admin operator",
	"deckhand.api.v1.WorkflowService/CancelWorkflow":                "admin operator",
	"deckhand.api.v1.WorkflowService/RetryWorkflow":                 "admin operator",
	"deckhand.api.v1.WorkflowService/PauseWorkflow":                 "admin operator",
	"deckhand.api.v1.WorkflowService/ResumeWorkflow":                "admin operator",
	"deckhand.api.v1.WorkflowService/GetWorkflow":                   "admin operator viewer",
	"deckhand.api.v1.WorkflowService/ListWorkflows":                 "admin operator viewer",
	"deckhand.api.v1.WorkflowService/WatchWorkflow":                 "admin operator viewer",
	"deckhand.api.v1.WorkflowService/GetWorkflowLogs":               "admin operator viewer",
	"deckhand.api.v1.WorkflowService/PlanWorkflow":                  "admin operator viewer",
	"deckhand.api.v1.WorkflowService/GetCluster":                    "admin operator viewer",
	"deckhand.api.v1.WorkflowService/CreateKubeconfig":              "admin",
	"deckhand.api.v1.WorkflowService/SaveEtcdSnapshot":              "admin",
	"deckhand.api.v1.CredentialService/CreateCredential":            "admin",
	"deckhand.api.v1.CredentialService/ListCredentials":             "admin",
	"deckhand.api.v1.CredentialService/RevokeCredential":            "admin",
	"deckhand.agent.v1.AgentService/Session":                        "agent",
	"deckhand.agent.v1.AgentService/RenewCertificate":               "agent",
	"deckhand.agent.v1.AgentService/Upload":                         "agent",
	"deckhand.agent.v1.AgentService/Enroll":                         "public",
	"deckhand.cluster.v1.PeerService/FetchCA":                       "public",
	"deckhand.cluster.v1.PeerService/ReportSessions":                "replica",
	"deckhand.storage.v1.ReplicaService/Apply":                      "replica",
	"deckhand.storage.v1.ReplicaService/Read":                       "replica",
	"deckhand.storage.v1.ReplicaService/Join":                       "replica",
	"deckhand.storage.v1.ReplicaService/Remove":                     "replica",
	"deckhand.storage.v1.ReplicaService/Info":                       "replica",
	"grpc.health.v1.Health/Check":                                   "admin operator viewer agent replica",
	"grpc.health.v1.Health/Watch":                                   "admin operator viewer agent replica",
	"grpc.health.v1.Health/List":                                    "admin operator viewer agent replica",
	"grpc.reflection.v1.ServerReflection/ServerReflectionInfo":      "admin operator viewer",
	"grpc.reflection.v1alpha.ServerReflection/ServerReflectionInfo": "admin operator viewer",
}

func TestRoleTableIsThePolicy(t *testing.T) {
	got := map[string]string{}
	for m, roles := range api.Roles {
		got[strings.TrimPrefix(m, "/")] = strings.Join(roles, " ")
	}
	for m := range api.Public {
		got[strings.TrimPrefix(m, "/")] = "public"
	}
	for m, want := range wantPolicy {
		if got[m] != want {
			t.Errorf("%s: table allows %q, policy says %q", m, got[m], want)
		}
	}
	for m := range got {
		if _, ok := wantPolicy[m]; !ok {
			t.Errorf("%s is in the role table but not in the written policy", m)
		}
	}
}
