package api

import (
	"bytes"
	"context"
	"crypto/sha256"
	"encoding/hex"
	"encoding/json"
	"errors"
	"fmt"
	"slices"
	"strings"
	"time"

	"google.golang.org/genproto/googleapis/rpc/errdetails"
	"google.golang.org/grpc"
	"google.golang.org/grpc/status"
	"google.golang.org/protobuf/encoding/protojson"
	"google.golang.org/protobuf/proto"
	"google.golang.org/protobuf/reflect/protoreflect"
	"google.golang.org/protobuf/types/known/durationpb"
	"google.golang.org/protobuf/types/known/timestamppb"

	"github.com/deckhandhq/deckhand/controller/audit"
	"github.com/deckhandhq/deckhand/internal/bounded"
	"github.com/deckhandhq/deckhand/internal/pki"
	"github.com/deckhandhq/deckhand/internal/secret"
	"github.com/deckhandhq/deckhand/internal/tasksecrets"
	agentv1 "github.com/deckhandhq/deckhand/proto/deckhand/agent/v1"
	apiv1 "github.com/deckhandhq/deckhand/proto/deckhand/api/v1"
	clusterv1 "github.com/deckhandhq/deckhand/proto/deckhand/cluster/v1"
)

// Audited lists the methods recorded in the audit trail: every call that changes something,
// issues a credential or hands out the cluster's secrets (an etcd snapshot), whoever makes it
// and however it ends. Reads are not recorded. TestAuditedIsEveryChange keeps the list whole.
var Audited = map[string]bool{
	apiv1.MemberService_RemoveMember_FullMethodName:         true,
	apiv1.NodeService_DeleteNode_FullMethodName:             true,
	apiv1.TokenService_CreateToken_FullMethodName:           true,
	apiv1.TokenService_RevokeToken_FullMethodName:           true,
	apiv1.TaskService_CreateTask_FullMethodName:             true,
	apiv1.TaskService_CancelTask_FullMethodName:             true,
	apiv1.TaskService_RunTasks_FullMethodName:               true,
	apiv1.WorkflowService_CreateWorkflow_FullMethodName:     true,
	apiv1.WorkflowService_CancelWorkflow_FullMethodName:     true,
	apiv1.WorkflowService_RetryWorkflow_FullMethodName:      true,
	apiv1.WorkflowService_PauseWorkflow_FullMethodName:      true,
	apiv1.WorkflowService_ResumeWorkflow_FullMethodName:     true,
	apiv1.WorkflowService_CreateKubeconfig_FullMethodName:   true,
	apiv1.WorkflowService_SaveEtcdSnapshot_FullMethodName:   true,
	apiv1.CredentialService_CreateCredential_FullMethodName: true,
	apiv1.CredentialService_RevokeCredential_FullMethodName: true,
	agentv1.AgentService_Enroll_FullMethodName:              true,
	agentv1.AgentService_RenewCertificate_FullMethodName:    true,
	clusterv1.PeerService_FetchCA_FullMethodName:            true,
}

// Recorder stores audit records (audit.Trail).
type Recorder interface {
	Record(ctx context.Context, ev *apiv1.AuditEvent) error
}

// AuditUnary records the calls of the Audited methods, after the handler and before the
// answer. A call without a valid client certificate is only logged (a flood of them must
// not become store writes); the public, token-authenticated methods are stored (their
// failures are bounded by the PublicLimiter before this interceptor).
func AuditUnary(rec Recorder) grpc.UnaryServerInterceptor {
	return func(ctx context.Context, req any, info *grpc.UnaryServerInfo, handler grpc.UnaryHandler) (any, error) {
		if !Audited[info.FullMethod] {
			return handler(ctx, req)
		}
		start := time.Now()
		resp, err := handler(ctx, req)
		reqMsg, _ := req.(proto.Message)
		respMsg, _ := resp.(proto.Message)
		record(ctx, rec, AuditEventOf(ctx, info.FullMethod, reqMsg, respMsg, err, start, time.Now()))
		return resp, err
	}
}

// AuditStream is AuditUnary for streaming methods (SaveEtcdSnapshot): the request is the
// first message received, the result the stream's end.
func AuditStream(rec Recorder) grpc.StreamServerInterceptor {
	return func(srv any, ss grpc.ServerStream, info *grpc.StreamServerInfo, handler grpc.StreamHandler) error {
		if !Audited[info.FullMethod] {
			return handler(srv, ss)
		}
		start := time.Now()
		w := &firstMessage{ServerStream: ss}
		err := handler(srv, w)
		record(ss.Context(), rec, AuditEventOf(ss.Context(), info.FullMethod, w.first, nil, err, start, time.Now()))
		return err
	}
}

// record hands ev to the trail, which decides what it keeps (audit.Dispose).
func record(ctx context.Context, rec Recorder, ev *apiv1.AuditEvent) { _ = rec.Record(ctx, ev) }

type firstMessage struct {
	grpc.ServerStream
	first proto.Message
}

func (s *firstMessage) RecvMsg(m any) error {
	err := s.ServerStream.RecvMsg(m)
	if err == nil && s.first == nil {
		s.first, _ = m.(proto.Message)
	}
	return err
}

// AuditEventOf builds the record of a call: who (from the verified certificate, or the
// token-authenticated caller's own claim on the public methods), what, on which target and
// nodes, the redacted request and the result.
func AuditEventOf(ctx context.Context, method string, req, resp proto.Message, err error, start, end time.Time) *apiv1.AuditEvent {
	caller := CallerOf(ctx)
	ev := &apiv1.AuditEvent{
		Time:      timestamppb.New(start),
		Method:    method,
		Transport: caller.Transport,
		Peer:      caller.Addr,
		Duration:  durationpb.New(end.Sub(start)),
		Code:      status.Code(err).String(),
	}
	if caller.Cert != nil {
		if id, idErr := pki.IdentityOf(caller.Cert); idErr == nil {
			ev.Subject, ev.Role, ev.Serial = bounded.String(id.Name, MaxAuditName), id.Role, id.Serial
		}
	}
	if Public[method] {
		ev.Role = audit.RoleToken
		ev.Subject = bounded.String(firstString(req, "node_name", "replica_id"), MaxAuditName)
	}
	if err != nil {
		st := status.Convert(err)
		ev.Message = secret.Mask(bounded.String(st.Message(), MaxAuditMessage))
		for _, d := range st.Details() {
			if info, ok := d.(*errdetails.ErrorInfo); ok && info.GetDomain() == ErrorDomain {
				ev.Reason = info.GetReason()
			}
		}
	}
	ev.Target = firstString(req, "id", "name", "name_or_serial", "node", "node_name", "replica_id")
	if ev.Target == "" {
		ev.Target = firstString(resp, "id")
	}
	ev.Target = bounded.String(ev.Target, MaxAuditName)
	ev.Peer = bounded.String(ev.Peer, MaxAuditName)
	ev.Nodes = nodesOf(method, req, resp)
	ev.Request = Summary(req)
	return ev
}

// Bounds of a record's text: the request comes before validation, so a caller decides
// every length but these.
const (
	MaxAuditRequest = 2048
	MaxAuditMessage = 512
	// MaxAuditName bounds the subject, target, peer and each node name (a DNS name's length).
	MaxAuditName = 253
	// MaxAuditNodes bounds the nodes of a record.
	MaxAuditNodes = 64
)

// redacted replaces a secret in a request summary.
const redacted = "[redacted]"

// secretName reports whether a field's name says it holds a secret, a key or a certificate.
func secretName(name string) bool {
	for _, s := range []string{"token", "key", "pem", "password", "secret", "cert", "kubeconfig", "csr"} {
		if strings.Contains(name, s) {
			return true
		}
	}
	return false
}

// Summary is the request as JSON for the audit trail: every field marked secret in the
// protos, named like a secret, key, token or certificate, or holding one, replaced by
// "[redacted]"; bytes fields left out (named with their size and SHA-256 prefix at the
// end); bounded to MaxAuditRequest.
func Summary(req proto.Message) string {
	if req == nil {
		return ""
	}
	m := proto.Clone(req)
	var omitted []string
	redactSummary(m.ProtoReflect(), "", &omitted, 0)
	b, err := protojson.MarshalOptions{}.Marshal(m)
	if err != nil {
		return ""
	}
	// protojson varies its spacing on purpose; a record is stable, so a SIEM can match it.
	var compact bytes.Buffer
	if json.Compact(&compact, b) == nil {
		b = compact.Bytes()
	}
	out := string(b)
	if len(omitted) > 0 {
		out += " omitted: " + strings.Join(omitted, ", ")
	}
	return bounded.String(secret.Mask(out), MaxAuditRequest)
}

func redactSummary(m protoreflect.Message, path string, omitted *[]string, depth int) {
	if depth > 8 {
		return
	}
	m.Range(func(fd protoreflect.FieldDescriptor, v protoreflect.Value) bool {
		name := string(fd.Name())
		p := path + fd.JSONName()
		switch {
		case fd.Kind() == protoreflect.BytesKind && !fd.IsList() && !fd.IsMap():
			sum := sha256.Sum256(v.Bytes())
			*omitted = append(*omitted, fmt.Sprintf("%s (%d bytes, sha256 %s)", p, len(v.Bytes()), hex.EncodeToString(sum[:6])))
			m.Clear(fd)
		case fd.Kind() == protoreflect.BytesKind:
			*omitted = append(*omitted, p)
			m.Clear(fd)
		case fd.IsMap():
			if fd.MapValue().Kind() == protoreflect.StringKind && (tasksecrets.Field(fd) || secretName(name)) {
				mp := v.Map()
				mp.Range(func(k protoreflect.MapKey, _ protoreflect.Value) bool {
					mp.Set(k, protoreflect.ValueOfString(redacted))
					return true
				})
			} else if fd.MapValue().Kind() == protoreflect.MessageKind {
				v.Map().Range(func(_ protoreflect.MapKey, mv protoreflect.Value) bool {
					redactSummary(mv.Message(), p+".", omitted, depth+1)
					return true
				})
			}
		case fd.Kind() == protoreflect.MessageKind || fd.Kind() == protoreflect.GroupKind:
			if fd.IsList() {
				l := v.List()
				for i := range l.Len() {
					redactSummary(l.Get(i).Message(), p+".", omitted, depth+1)
				}
			} else {
				redactSummary(v.Message(), p+".", omitted, depth+1)
			}
		case fd.Kind() == protoreflect.StringKind:
			secretField := tasksecrets.Field(fd) || secretName(name)
			if fd.IsList() {
				l := v.List()
				for i := range l.Len() {
					if secretField || looksSecret(l.Get(i).String()) {
						l.Set(i, protoreflect.ValueOfString(redacted))
					}
				}
			} else if s := v.String(); s != "" && (secretField || looksSecret(s)) {
				m.Set(fd, protoreflect.ValueOfString(redacted))
			}
		}
		return true
	})
}

func looksSecret(s string) bool {
	return secret.Looks(s) || strings.Contains(s, "-----BEGIN")
}

// firstString returns the first non-empty string field of m named one of names, at the
// top level or one message deep (a workflow's id in a response).
func firstString(m proto.Message, names ...string) string {
	if m == nil {
		return ""
	}
	r := m.ProtoReflect()
	for _, n := range names {
		if fd := r.Descriptor().Fields().ByName(protoreflect.Name(n)); fd != nil && fd.Kind() == protoreflect.StringKind && !fd.IsList() {
			if s := r.Get(fd).String(); s != "" && !looksSecret(s) {
				return s
			}
		}
	}
	fields := r.Descriptor().Fields()
	for i := range fields.Len() {
		fd := fields.Get(i)
		if fd.Kind() != protoreflect.MessageKind || fd.IsList() || fd.IsMap() || !r.Has(fd) {
			continue
		}
		sub := r.Get(fd).Message()
		for _, n := range names {
			if sfd := sub.Descriptor().Fields().ByName(protoreflect.Name(n)); sfd != nil && sfd.Kind() == protoreflect.StringKind && !sfd.IsList() {
				if s := sub.Get(sfd).String(); s != "" && !looksSecret(s) {
					return s
				}
			}
		}
	}
	return ""
}

// nodesOf returns the nodes a call concerns: fields named node, node_name or nodes in the
// request and the response, and the name of a deleted node.
func nodesOf(method string, req, resp proto.Message) []string {
	var out []string
	add := func(s string) {
		s = bounded.String(s, MaxAuditName)
		if s != "" && !slices.Contains(out, s) && len(out) < MaxAuditNodes {
			out = append(out, s)
		}
	}
	for _, m := range []proto.Message{req, resp} {
		if m != nil {
			collectNodes(m.ProtoReflect(), add, 0)
		}
	}
	if method == apiv1.NodeService_DeleteNode_FullMethodName {
		add(firstString(req, "name"))
	}
	return out
}

func collectNodes(m protoreflect.Message, add func(string), depth int) {
	if depth > 6 {
		return
	}
	m.Range(func(fd protoreflect.FieldDescriptor, v protoreflect.Value) bool {
		switch {
		case fd.Kind() == protoreflect.StringKind && !fd.IsMap():
			switch fd.Name() {
			case "node", "node_name":
				if !fd.IsList() {
					add(v.String())
				}
			case "nodes":
				if fd.IsList() {
					for i := range v.List().Len() {
						add(v.List().Get(i).String())
					}
				}
			}
		case fd.Kind() == protoreflect.MessageKind && !fd.IsMap():
			if fd.IsList() {
				for i := range min(v.List().Len(), 1000) {
					collectNodes(v.List().Get(i).Message(), add, depth+1)
				}
			} else {
				collectNodes(v.Message(), add, depth+1)
			}
		}
		return true
	})
}

// AuditTrail is what the AuditServer reads (audit.Trail).
type AuditTrail interface {
	List(ctx context.Context, f audit.Filter) ([]*apiv1.AuditEvent, error)
	Watch(ctx context.Context, f audit.Filter, ready func() error, send func(*apiv1.AuditEvent) error) error
}

// AuditServer implements apiv1.AuditServiceServer.
type AuditServer struct {
	apiv1.UnimplementedAuditServiceServer
	Trail AuditTrail
}

// ListAuditEvents implements apiv1.AuditServiceServer.
func (s *AuditServer) ListAuditEvents(ctx context.Context, req *apiv1.ListAuditEventsRequest) (*apiv1.ListAuditEventsResponse, error) {
	f := audit.Filter{Who: req.GetWho(), Node: req.GetNode()}
	if req.GetSince() != nil {
		f.Since = req.GetSince().AsTime()
	}
	p, err := newPage("audit", fmt.Sprintf("%v|%s|%s|%v", f.Since.UnixNano(), f.Who, f.Node, req.GetNewestFirst()), req.GetPageSize(), req.GetPageToken())
	if err != nil {
		return nil, toStatus(err)
	}
	events, err := s.Trail.List(ctx, f)
	if err != nil {
		return nil, toStatus(err)
	}
	key := (*apiv1.AuditEvent).GetId
	if req.GetNewestFirst() {
		slices.Reverse(events)
		key = func(ev *apiv1.AuditEvent) string { return descending(ev.GetId()) }
	}
	page, next := take(p, events, key)
	return &apiv1.ListAuditEventsResponse{Events: page, NextPageToken: next}, nil
}

// WatchAuditEvents implements apiv1.AuditServiceServer.
func (s *AuditServer) WatchAuditEvents(req *apiv1.WatchAuditEventsRequest, stream grpc.ServerStreamingServer[apiv1.WatchAuditEventsResponse]) error {
	// A first message without an event goes out once the watch is open, so a client knows
	// that every record from then on will come (a REST client gets its status with it).
	ready := func() error { return stream.Send(&apiv1.WatchAuditEventsResponse{}) }
	err := s.Trail.Watch(stream.Context(), audit.Filter{Who: req.GetWho(), Node: req.GetNode()}, ready, func(ev *apiv1.AuditEvent) error {
		return stream.Send(&apiv1.WatchAuditEventsResponse{Event: ev})
	})
	if err != nil && !errors.Is(err, context.Canceled) {
		return toStatus(err)
	}
	return nil
}

// descending maps an ID to a key that sorts the other way round: each printable ASCII
// character mirrored in that range, and a terminator above them all, so an ID sorts after
// the longer IDs it is a prefix of. (IDs are printable ASCII: digits, the replica's name, '-'.)
func descending(id string) string {
	b := make([]byte, 0, len(id)+1)
	for i := 0; i < len(id); i++ {
		c := id[i]
		if c >= 0x20 && c <= 0x7e {
			c = 0x9e - c
		}
		b = append(b, c)
	}
	return string(append(b, 0x7f))
}
