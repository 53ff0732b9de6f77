package api

import (
	"context"
	"slices"
	"strings"
	"testing"
	"time"

	"google.golang.org/protobuf/proto"
	"google.golang.org/protobuf/types/known/durationpb"

	"github.com/deckhandhq/deckhand/controller/audit"
	apiv1 "github.com/deckhandhq/deckhand/proto/deckhand/api/v1"
	taskv1 "github.com/deckhandhq/deckhand/proto/deckhand/task/v1"
)

// Every method that changes something is audited, and only those: a new method must be
// classified here or in Audited.
func TestAuditedIsEveryChange(t *testing.T) {
	reads := []string{"Get", "List", "Watch", "Plan", "Check", "ServerReflectionInfo"}
	// The agents' session and uploads, and the replicas' own traffic, are not people's calls.
	internal := map[string]bool{"Session": true, "Upload": true, "ReportSessions": true, "Apply": true, "Read": true, "Join": true, "Remove": true, "Info": true}
	methods := map[string]bool{}
	for m := range Roles {
		methods[m] = true
	}
	for m := range Public {
		methods[m] = true
	}
	for m := range methods {
		name := m[strings.LastIndex(m, "/")+1:]
		read := internal[name]
		for _, p := range reads {
			read = read || strings.HasPrefix(name, p)
		}
		if read && Audited[m] {
			t.Errorf("%s reads but is audited", m)
		}
		if !read && !Audited[m] && m != apiv1.WorkflowService_SaveEtcdSnapshot_FullMethodName {
			t.Errorf("%s changes something but is not in Audited", m)
		}
	}
	if !Audited[apiv1.WorkflowService_SaveEtcdSnapshot_FullMethodName] {
		t.Error("SaveEtcdSnapshot hands out every Secret of the cluster: it must be audited")
	}
	for m := range Audited {
		if !methods[m] {
			t.Errorf("%s is audited but not served", m)
		}
	}
}

// No secret, key, token or certificate reaches a summary; the rest of the request does.
func TestSummaryRedacts(t *testing.T) {
	const token = "abcdef.0123456789abcdef"
	const pem = "-----BEGIN CERTIFICATE REQUEST-----\nMIIB\n-----END CERTIFICATE REQUEST-----\n"
	for _, tc := range []struct {
		name  string
		req   proto.Message
		want  []string
		never []string
	}{
		{"credential", &apiv1.CreateCredentialRequest{Name: "ci", Role: "operator", Ttl: durationpb.New(3600e9), CsrPem: []byte(pem)},
			[]string{`"name":"ci"`, `"role":"operator"`, "csrPem (", "bytes, sha256"}, []string{"BEGIN", "MIIB"}},
		{"kubeconfig", &apiv1.CreateKubeconfigRequest{Name: "alice", CsrPem: pem},
			[]string{`"name":"alice"`, `"csrPem":"[redacted]"`}, []string{"BEGIN", "MIIB"}},
		{"join task", &apiv1.CreateTaskRequest{Node: "node-2", Spec: &taskv1.TaskSpec{Kind: &taskv1.TaskSpec_KubeadmJoin{KubeadmJoin: &taskv1.KubeadmJoinSpec{
			CaCertHash: "sha256:abc", Token: token, CertificateKey: strings.Repeat("ab", 32)}}}},
			[]string{`"node":"node-2"`, `"kubeadmJoin"`}, []string{token, strings.Repeat("ab", 32)}},
		{"a token in a free-text field", &apiv1.CreateTokenRequest{Description: "for " + token},
			nil, []string{token}},
	} {
		t.Run(tc.name, func(t *testing.T) {
			got := Summary(tc.req)
			for _, w := range tc.want {
				if !strings.Contains(got, w) {
					t.Errorf("summary %s lacks %q", got, w)
				}
			}
			for _, n := range tc.never {
				if strings.Contains(got, n) {
					t.Errorf("summary %s shows %q", got, n)
				}
			}
		})
	}
	long := Summary(&apiv1.CreateTokenRequest{Description: strings.Repeat("é", 3000)})
	if len(long) > MaxAuditRequest || !strings.HasSuffix(long, " bytes)") {
		t.Errorf("a long request's summary is %d bytes: %.40s...", len(long), long)
	}
}

// The nodes and target of a call, from its request and response.
func TestAuditTargets(t *testing.T) {
	for _, tc := range []struct {
		method    string
		req, resp proto.Message
		target    string
		nodes     string
	}{
		{apiv1.WorkflowService_CreateWorkflow_FullMethodName,
			&apiv1.CreateWorkflowRequest{Spec: &apiv1.WorkflowSpec{Kind: &apiv1.WorkflowSpec_Join{Join: &apiv1.JoinWorkflow{Node: "node-4"}}}},
			&apiv1.CreateWorkflowResponse{Workflow: &apiv1.Workflow{Id: "wf-1", Nodes: []string{"node-4", "node-1"}}}, "wf-1", "node-4,node-1"},
		{apiv1.NodeService_DeleteNode_FullMethodName, &apiv1.DeleteNodeRequest{Name: "node-3"}, nil, "node-3", "node-3"},
		{apiv1.WorkflowService_CancelWorkflow_FullMethodName, &apiv1.CancelWorkflowRequest{Id: "wf-2"}, nil, "wf-2", ""},
	} {
		ev := AuditEventOf(t.Context(), tc.method, tc.req, tc.resp, nil, time.Time{}, time.Time{})
		if ev.GetTarget() != tc.target || strings.Join(ev.GetNodes(), ",") != tc.nodes || ev.GetCode() != "OK" {
			t.Errorf("%s: target %q nodes %v code %s, want %q %q OK", tc.method, ev.GetTarget(), ev.GetNodes(), ev.GetCode(), tc.target, tc.nodes)
		}
	}
}

type fakeTrail []*apiv1.AuditEvent

func (f fakeTrail) List(context.Context, audit.Filter) ([]*apiv1.AuditEvent, error) {
	return slices.Clone(f), nil
}

func (f fakeTrail) Watch(context.Context, audit.Filter, func() error, func(*apiv1.AuditEvent) error) error {
	return nil
}

// Pages of the trail, oldest or newest first, each record once.
func TestListAuditEventsPages(t *testing.T) {
	var trail fakeTrail
	for _, id := range []string{"01-r-1", "02-r-1", "02-r-10", "03-r-1", "04-r-1"} {
		trail = append(trail, &apiv1.AuditEvent{Id: id})
	}
	s := &AuditServer{Trail: trail}
	for _, newest := range []bool{false, true} {
		var got []string
		req := &apiv1.ListAuditEventsRequest{PageSize: 2, NewestFirst: newest}
		for range 10 {
			resp, err := s.ListAuditEvents(t.Context(), req)
			if err != nil {
				t.Fatal(err)
			}
			for _, ev := range resp.GetEvents() {
				got = append(got, ev.GetId())
			}
			if req.PageToken = resp.GetNextPageToken(); req.PageToken == "" {
				break
			}
		}
		want := []string{"01-r-1", "02-r-1", "02-r-10", "03-r-1", "04-r-1"}
		if newest {
			slices.Reverse(want)
		}
		if !slices.Equal(got, want) {
			t.Errorf("newest first %v: %v, want %v", newest, got, want)
		}
	}
	// A token of one order is refused by the other.
	resp, _ := s.ListAuditEvents(t.Context(), &apiv1.ListAuditEventsRequest{PageSize: 2})
	if _, err := s.ListAuditEvents(t.Context(), &apiv1.ListAuditEventsRequest{PageSize: 2, NewestFirst: true, PageToken: resp.GetNextPageToken()}); err == nil {
		t.Error("a page token of the oldest-first list was taken by the newest-first one")
	}
}
