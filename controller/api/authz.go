package api

import (
	"context"
	"crypto/x509"
	"slices"

	"google.golang.org/grpc"
	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/credentials"
	healthpb "google.golang.org/grpc/health/grpc_health_v1"
	"google.golang.org/grpc/metadata"
	"google.golang.org/grpc/peer"
	reflectionpb "google.golang.org/grpc/reflection/grpc_reflection_v1"
	reflectionv1alpha "google.golang.org/grpc/reflection/grpc_reflection_v1alpha"

	"github.com/deckhandhq/deckhand/internal/netmux"
	"github.com/deckhandhq/deckhand/internal/pki"
	agentv1 "github.com/deckhandhq/deckhand/proto/deckhand/agent/v1"
	apiv1 "github.com/deckhandhq/deckhand/proto/deckhand/api/v1"
	clusterv1 "github.com/deckhandhq/deckhand/proto/deckhand/cluster/v1"
	storagev1 "github.com/deckhandhq/deckhand/proto/deckhand/storage/v1"
)

var (
	readers = []string{pki.RoleAdmin, pki.RoleOperator, pki.RoleViewer}
	writers = []string{pki.RoleAdmin, pki.RoleOperator}
	admins  = []string{pki.RoleAdmin}
	agents  = []string{pki.RoleAgent}
	peers   = []string{pki.RoleReplica}
	anyRole = []string{pki.RoleAdmin, pki.RoleOperator, pki.RoleViewer, pki.RoleAgent, pki.RoleReplica}
)

// Public methods need no client certificate: the caller proves itself with a bootstrap
// token in the request and pins the controller's CA by hash.
var Public = map[string]bool{
	agentv1.AgentService_Enroll_FullMethodName:   true,
	clusterv1.PeerService_FetchCA_FullMethodName: true,
}

// Roles maps every RPC the controller serves to the roles allowed to call it. A method
// missing from the table is refused for everyone.
var Roles = map[string][]string{
	apiv1.MemberService_ListMembers_FullMethodName:  readers,
	apiv1.MemberService_RemoveMember_FullMethodName: admins,

	apiv1.NodeService_GetNode_FullMethodName:    readers,
	apiv1.NodeService_ListNodes_FullMethodName:  readers,
	apiv1.NodeService_DeleteNode_FullMethodName: admins,

	apiv1.TokenService_CreateToken_FullMethodName: writers,
	apiv1.TokenService_ListTokens_FullMethodName:  writers,
	apiv1.TokenService_RevokeToken_FullMethodName: writers,

	apiv1.TaskService_CreateTask_FullMethodName:  writers,
	apiv1.TaskService_CancelTask_FullMethodName:  writers,
	apiv1.TaskService_GetTask_FullMethodName:     readers,
	apiv1.TaskService_ListTasks_FullMethodName:   readers,
	apiv1.TaskService_WatchTask_FullMethodName:   readers,
	apiv1.TaskService_GetTaskLogs_FullMethodName: readers,
	apiv1.TaskService_RunTasks_FullMethodName:    writers,

	apiv1.WorkflowService_CreateWorkflow_FullMethodName:  writers,
	apiv1.WorkflowService_CancelWorkflow_FullMethodName:  writers,
	apiv1.WorkflowService_RetryWorkflow_FullMethodName:   writers,
	apiv1.WorkflowService_PauseWorkflow_FullMethodName:   writers,
	apiv1.WorkflowService_ResumeWorkflow_FullMethodName:  writers,
	apiv1.WorkflowService_GetWorkflow_FullMethodName:     readers,
	apiv1.WorkflowService_ListWorkflows_FullMethodName:   readers,
	apiv1.WorkflowService_WatchWorkflow_FullMethodName:   readers,
	apiv1.WorkflowService_GetWorkflowLogs_FullMethodName: readers,
	apiv1.WorkflowService_PlanWorkflow_FullMethodName:    readers,
	apiv1.WorkflowService_GetCluster_FullMethodName:      readers,
	// A cluster-admin (or view) certificate for the Kubernetes cluster: admins only.
	apiv1.WorkflowService_CreateKubeconfig_FullMethodName: admins,
	// An etcd snapshot holds every Secret of the cluster: admins only.
	apiv1.WorkflowService_SaveEtcdSnapshot_FullMethodName: admins,

	// Who did what: people and tools that change the cluster (admins, operators).
	apiv1.AuditService_ListAuditEvents_FullMethodName:  writers,
	apiv1.AuditService_WatchAuditEvents_FullMethodName: writers,

	apiv1.CredentialService_CreateCredential_FullMethodName: admins,
	apiv1.CredentialService_ListCredentials_FullMethodName:  admins,
	apiv1.CredentialService_RevokeCredential_FullMethodName: admins,

	agentv1.AgentService_Session_FullMethodName:          agents,
	agentv1.AgentService_RenewCertificate_FullMethodName: agents,
	agentv1.AgentService_Upload_FullMethodName:           agents,

	clusterv1.PeerService_ReportSessions_FullMethodName: peers,
	storagev1.ReplicaService_Apply_FullMethodName:       peers,
	storagev1.ReplicaService_Read_FullMethodName:        peers,
	storagev1.ReplicaService_Join_FullMethodName:        peers,
	storagev1.ReplicaService_Remove_FullMethodName:      peers,
	storagev1.ReplicaService_Info_FullMethodName:        peers,

	healthpb.Health_Check_FullMethodName:                                   anyRole,
	healthpb.Health_Watch_FullMethodName:                                   anyRole,
	healthpb.Health_List_FullMethodName:                                    anyRole,
	reflectionpb.ServerReflection_ServerReflectionInfo_FullMethodName:      readers,
	reflectionv1alpha.ServerReflection_ServerReflectionInfo_FullMethodName: readers,
}

type identityKey struct{}

// IdentityFrom returns the verified caller of an authorized call.
func IdentityFrom(ctx context.Context) (pki.Identity, bool) {
	id, ok := ctx.Value(identityKey{}).(pki.Identity)
	return id, ok
}

// Authenticate is the auth interceptor's function without a revocation list.
func Authenticate(ctx context.Context) (context.Context, error) { return authenticate(ctx, nil) }

// RevocationCheck reports whether a user certificate's serial was revoked (deckctl
// credentials revoke). It answers from memory: it runs on every call.
type RevocationCheck func(ctx context.Context, serial string) (bool, error)

// Authenticator is the auth interceptor's function: it reads the identity from the verified
// client certificate, refuses revoked user certificates, and checks the method against the
// role table. (Agents are checked against their node record by the agent service: a
// deleted node's certificate is refused there.)
func Authenticator(revoked RevocationCheck) func(context.Context) (context.Context, error) {
	return func(ctx context.Context) (context.Context, error) { return authenticate(ctx, revoked) }
}

func authenticate(ctx context.Context, revoked RevocationCheck) (context.Context, error) {
	method, _ := grpc.Method(ctx)
	id, err := peerIdentity(ctx)
	if err != nil {
		msg := "a client certificate signed by the controller CA is required: use deckctl --config with the admin.conf from a controller's data dir"
		if err != errNoCert {
			msg = err.Error() // CA-signed, but with no role Deckhand knows
		}
		return nil, Errorf(codes.Unauthenticated, apiv1.ErrorReason_ERROR_REASON_PERMISSION_DENIED, map[string]string{"method": method}, msg)
	}
	if revoked != nil && slices.Contains(userRoles, id.Role) {
		gone, err := revoked(ctx, id.Serial)
		if err != nil {
			return nil, Errorf(codes.Unavailable, apiv1.ErrorReason_ERROR_REASON_NO_QUORUM, nil, "checking the credential against the revocation list: "+err.Error()+"; retry")
		}
		if gone {
			return nil, Errorf(codes.Unauthenticated, apiv1.ErrorReason_ERROR_REASON_PERMISSION_DENIED, map[string]string{"method": method, "name": id.Name, "serial": id.Serial},
				"the credential "+id.Name+" (serial "+id.Serial+") was revoked: ask an admin for a new one (deckctl credentials create)")
		}
	}
	if !slices.Contains(Roles[method], id.Role) {
		return nil, Errorf(codes.PermissionDenied, apiv1.ErrorReason_ERROR_REASON_PERMISSION_DENIED, map[string]string{"method": method, "role": id.Role},
			"role "+id.Role+" may not call "+method)
	}
	return context.WithValue(ctx, identityKey{}, id), nil
}

// HoldFunc registers cancel to be called when the credential with serial is revoked, until
// release is called (credentials.Manager.Hold).
type HoldFunc func(serial string, cancel func()) (release func())

// RevocableStreams is a stream interceptor, after authentication: a stream opened with a
// user credential (WatchTask, WatchWorkflow, ...) ends when that credential is revoked, with
// the status a new call would get, instead of streaming on.
func RevocableStreams(hold HoldFunc) grpc.StreamServerInterceptor {
	return func(srv any, ss grpc.ServerStream, info *grpc.StreamServerInfo, handler grpc.StreamHandler) error {
		id, ok := IdentityFrom(ss.Context())
		if !ok || !slices.Contains(userRoles, id.Role) || id.Serial == "" {
			return handler(srv, ss)
		}
		ctx, cancel := context.WithCancelCause(ss.Context())
		defer cancel(nil)
		revoked := Errorf(codes.Unauthenticated, apiv1.ErrorReason_ERROR_REASON_PERMISSION_DENIED, map[string]string{"method": info.FullMethod, "name": id.Name, "serial": id.Serial},
			"the credential "+id.Name+" (serial "+id.Serial+") was revoked while this stream was open: ask an admin for a new one (deckctl credentials create)")
		release := hold(id.Serial, func() { cancel(revoked) })
		defer release()
		err := handler(srv, &contextStream{ServerStream: ss, ctx: ctx})
		if context.Cause(ctx) == revoked {
			return revoked
		}
		return err
	}
}

// contextStream is a server stream with another context.
type contextStream struct {
	grpc.ServerStream
	ctx context.Context
}

func (s *contextStream) Context() context.Context { return s.ctx }

// userRoles are the roles of people and tools, whose credentials can be revoked.
var userRoles = readers

// Metadata the REST gateway sets on the calls it makes through the in-process listener:
// the caller's client certificate (DER), verified by the HTTP server's TLS handshake, and
// the caller's network address. Trusted only on in-process connections (no other process
// can open one); on every other connection they mean nothing.
const (
	ForwardedCertKey = "deckhand-forwarded-cert-bin"
	ForwardedPeerKey = "deckhand-forwarded-peer"
)

// Transports a call comes by.
const (
	TransportGRPC = "grpc"
	TransportREST = "rest"
)

// Caller is who made a call and how it came.
type Caller struct {
	// Cert is the caller's verified client certificate, nil without one.
	Cert *x509.Certificate
	// Transport is TransportGRPC or TransportREST.
	Transport string
	// Addr is the caller's network address.
	Addr string
}

// CallerOf returns the caller of the call in ctx: from the connection's TLS state, or for a
// REST call from what the gateway forwarded.
func CallerOf(ctx context.Context) Caller {
	p, ok := peer.FromContext(ctx)
	if !ok {
		return Caller{Transport: TransportGRPC}
	}
	switch info := p.AuthInfo.(type) {
	case netmux.InProcessInfo:
		c := Caller{Transport: TransportREST}
		md, _ := metadata.FromIncomingContext(ctx)
		if v := md.Get(ForwardedPeerKey); len(v) == 1 {
			c.Addr = v[0]
		}
		if v := md.Get(ForwardedCertKey); len(v) == 1 {
			if cert, err := x509.ParseCertificate([]byte(v[0])); err == nil {
				c.Cert = cert
			}
		}
		return c
	case credentials.TLSInfo:
		c := Caller{Transport: TransportGRPC}
		if p.Addr != nil {
			c.Addr = p.Addr.String()
		}
		if len(info.State.VerifiedChains) > 0 && len(info.State.PeerCertificates) > 0 {
			c.Cert = info.State.PeerCertificates[0]
		}
		return c
	}
	return Caller{Transport: TransportGRPC}
}

func peerIdentity(ctx context.Context) (pki.Identity, error) {
	cert := CallerOf(ctx).Cert
	if cert == nil {
		return pki.Identity{}, errNoCert
	}
	return pki.IdentityOf(cert)
}

// peerCertificate is the caller's verified client certificate, or nil.
func peerCertificate(ctx context.Context) *x509.Certificate { return CallerOf(ctx).Cert }

type certError string

func (e certError) Error() string { return string(e) }

const errNoCert = certError("no verified client certificate")
