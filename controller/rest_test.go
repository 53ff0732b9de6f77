package controller_test

import (
	"bufio"
	"context"
	"crypto/tls"
	"encoding/base64"
	"encoding/json"
	"fmt"
	"io"
	"net/http"
	"regexp"
	"slices"
	"strings"
	"testing"
	"time"

	"google.golang.org/genproto/googleapis/api/annotations"
	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/metadata"
	"google.golang.org/grpc/status"
	"google.golang.org/protobuf/proto"
	"google.golang.org/protobuf/reflect/protoreflect"

	"github.com/deckhandhq/deckhand/controller/api"
	"github.com/deckhandhq/deckhand/internal/pki"
	"github.com/deckhandhq/deckhand/internal/testkit/testcluster"
	"github.com/deckhandhq/deckhand/internal/testkit/testwait"
	apiv1 "github.com/deckhandhq/deckhand/proto/deckhand/api/v1"
)

// restRoute is a method's REST route.
type restRoute struct {
	method string // full gRPC method
	verb   string
	path   string // with every {field} filled in
	stream bool
}

var pathParam = regexp.MustCompile(`\{[^}]+\}`)

// restRoutes lists the REST route of every served method that has one.
func restRoutes(t *testing.T, methods []protoreflect.MethodDescriptor) []restRoute {
	t.Helper()
	var out []restRoute
	for _, m := range methods {
		rule, _ := proto.GetExtension(m.Options(), annotations.E_Http).(*annotations.HttpRule)
		if rule == nil {
			continue
		}
		var verb, path string
		switch p := rule.GetPattern().(type) {
		case *annotations.HttpRule_Get:
			verb, path = http.MethodGet, p.Get
		case *annotations.HttpRule_Post:
			verb, path = http.MethodPost, p.Post
		case *annotations.HttpRule_Delete:
			verb, path = http.MethodDelete, p.Delete
		case *annotations.HttpRule_Put:
			verb, path = http.MethodPut, p.Put
		case *annotations.HttpRule_Patch:
			verb, path = http.MethodPatch, p.Patch
		default:
			t.Fatalf("%s: unexpected rule %v", fullName(m), rule)
		}
		out = append(out, restRoute{method: fullName(m), verb: verb, path: pathParam.ReplaceAllString(path, "x-1"), stream: m.IsStreamingServer()})
	}
	return out
}

// restCall makes one REST call and returns the HTTP status and the error body's reason.
func restCall(t *testing.T, hc *http.Client, addr string, r restRoute, body string) (int, string) {
	t.Helper()
	var rd io.Reader
	if r.verb == http.MethodPost {
		rd = strings.NewReader(body)
	}
	req, err := http.NewRequest(r.verb, "https://"+addr+r.path, rd)
	if err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithTimeout(t.Context(), 5*time.Second)
	defer cancel()
	resp, err := hc.Do(req.WithContext(ctx))
	if err != nil {
		t.Fatalf("%s %s: %v", r.verb, r.path, err)
	}
	defer resp.Body.Close()
	if resp.StatusCode == http.StatusOK {
		return resp.StatusCode, ""
	}
	type status struct {
		Message string
		Details []struct {
			Reason string `json:"reason"`
		}
	}
	var st status
	b, _ := io.ReadAll(io.LimitReader(resp.Body, 1<<20))
	// A stream's error is a line {"error": Status}, or a Status when it came before the call.
	var line struct{ Error *status }
	if r.stream && json.Unmarshal(b, &line) == nil && line.Error != nil {
		st = *line.Error
	} else if err := json.Unmarshal(b, &st); err != nil {
		t.Fatalf("%s %s: %d with a body that is not a Status: %q", r.verb, r.path, resp.StatusCode, b)
	}
	if len(st.Details) == 0 {
		t.Fatalf("%s %s: %d without a reason: %s", r.verb, r.path, resp.StatusCode, b)
	}
	return resp.StatusCode, st.Details[0].Reason
}

// Every REST route answers every role as the role table says, as the gRPC methods do: the
// same authentication, the same refusals with the same reason.
func TestEveryRESTRouteAgainstTheRoleTable(t *testing.T) {
	c := testcluster.New(t, 1)
	addr := c.Addrs()[0]
	routes := restRoutes(t, servedMethods(t, c.Client()))
	if len(routes) < 25 {
		t.Fatalf("only %d REST routes", len(routes))
	}
	noCert := &http.Client{Transport: &http.Transport{TLSClientConfig: c.TLSAs(pki.RoleAdmin, "x"), ForceAttemptHTTP2: true}}
	noCert.Transport.(*http.Transport).TLSClientConfig.Certificates = nil
	callers := map[string]*http.Client{
		"":               noCert,
		pki.RoleViewer:   c.HTTPClientAs(pki.RoleViewer, "alice"),
		pki.RoleAgent:    c.HTTPClientAs(pki.RoleAgent, "node-a"),
		pki.RoleAdmin:    c.HTTPClientAs(pki.RoleAdmin, "admin"),
		pki.RoleOperator: c.HTTPClientAs(pki.RoleOperator, "bob"),
	}
	seen := map[string]bool{}
	for _, r := range routes {
		roles, inTable := api.Roles[r.method]
		if !inTable {
			t.Errorf("%s has a REST route but no roles", r.method)
		}
		if seen[r.verb+" "+r.path] {
			t.Errorf("two methods share the route %s %s", r.verb, r.path)
		}
		seen[r.verb+" "+r.path] = true
		for role, hc := range callers {
			code, reason := restCall(t, hc, addr, r, "{}")
			switch {
			case role == "":
				if code != http.StatusUnauthorized || reason != "ERROR_REASON_PERMISSION_DENIED" {
					t.Errorf("%s %s without certificate: %d %s, want 401 ERROR_REASON_PERMISSION_DENIED", r.verb, r.path, code, reason)
				}
			case slices.Contains(roles, role):
				if code == http.StatusUnauthorized || code == http.StatusForbidden || code == http.StatusNotFound && reason == "" {
					t.Errorf("%s %s as %s (allowed): %d %s", r.verb, r.path, role, code, reason)
				}
			default:
				if code != http.StatusForbidden || reason != "ERROR_REASON_PERMISSION_DENIED" {
					t.Errorf("%s %s as %s (not allowed): %d %s, want 403 ERROR_REASON_PERMISSION_DENIED", r.verb, r.path, role, code, reason)
				}
			}
		}
	}
}

// What a curl user sees: the nodes listed as JSON; a viewer refused a POST; a header that
// claims another certificate changes nothing; errors carry their reason; a watch streams
// JSON lines; the OpenAPI document is served.
func TestRESTForUsers(t *testing.T) {
	c := testcluster.New(t, 1)
	addr := c.Addrs()[0]
	if _, err := c.StartAgent(c.AgentConfig("node-a", c.CreateToken(1))); err != nil {
		t.Fatal(err)
	}
	admin := c.HTTPClientAs(pki.RoleAdmin, "admin")
	viewer := c.HTTPClientAs(pki.RoleViewer, "alice")
	get := func(hc *http.Client, path string) (*http.Response, []byte) {
		t.Helper()
		resp, err := hc.Get("https://" + addr + path)
		if err != nil {
			t.Fatal(err)
		}
		defer resp.Body.Close()
		b, _ := io.ReadAll(resp.Body)
		return resp, b
	}

	testwait.For(t, 10*time.Second, func() error {
		resp, b := get(viewer, "/v1/nodes")
		var list struct {
			Nodes []struct {
				Name  string `json:"name"`
				State string `json:"state"`
			} `json:"nodes"`
		}
		if resp.StatusCode != http.StatusOK || json.Unmarshal(b, &list) != nil || len(list.Nodes) != 1 ||
			list.Nodes[0].Name != "node-a" || list.Nodes[0].State != apiv1.NodeState_NODE_STATE_READY.String() {
			return fmt.Errorf("GET /v1/nodes: %d %s, want node-a Ready", resp.StatusCode, b)
		}
		return nil
	})

	// A viewer may not create a token, whatever it claims in headers.
	adminCert := admin.Transport.(*http.Transport).TLSClientConfig.Certificates[0].Certificate[0]
	req, _ := http.NewRequest(http.MethodPost, "https://"+addr+"/v1/tokens", strings.NewReader(`{"usages":1}`))
	req.Header.Set("Grpc-Metadata-"+api.ForwardedCertKey, base64.StdEncoding.EncodeToString(adminCert))
	req.Header.Set("Grpc-Metadata-Deckhand-Forwarded-Peer", "10.0.0.1:1")
	resp, err := viewer.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	b, _ := io.ReadAll(resp.Body)
	resp.Body.Close()
	if resp.StatusCode != http.StatusForbidden || !strings.Contains(string(b), "role viewer may not call /deckhand.api.v1.TokenService/CreateToken") {
		t.Fatalf("viewer POST /v1/tokens: %d %s, want 403 naming the role and method", resp.StatusCode, b)
	}
	resp, err = admin.Post("https://"+addr+"/v1/tokens", "application/json", strings.NewReader(`{"usages":1,"description":"rest"}`))
	if err != nil {
		t.Fatal(err)
	}
	b, _ = io.ReadAll(resp.Body)
	resp.Body.Close()
	if resp.StatusCode != http.StatusOK || !strings.Contains(string(b), `"token"`) {
		t.Fatalf("admin POST /v1/tokens: %d %s", resp.StatusCode, b)
	}
	if resp.ProtoMajor != 2 {
		t.Errorf("the REST API answered over %s, want HTTP/2 (the client offered h2)", resp.Proto)
	}
	var created struct{ Secret string }
	if err := json.Unmarshal(b, &created); err != nil || created.Secret == "" {
		t.Fatalf("POST /v1/tokens: no secret in %s", b)
	}
	// The audit trail has the call, by its REST caller, and not the token it made.
	resp, b = get(admin, "/v1/audit?who=admin")
	var trail struct {
		Events []struct{ Transport, Method, Request string }
	}
	if resp.StatusCode != http.StatusOK || json.Unmarshal(b, &trail) != nil || !slices.ContainsFunc(trail.Events, func(e struct{ Transport, Method, Request string }) bool {
		return e.Transport == api.TransportREST && e.Method == apiv1.TokenService_CreateToken_FullMethodName && e.Request == `{"usages":1,"description":"rest"}`
	}) {
		t.Fatalf("GET /v1/audit?who=admin: %d %s, want the REST CreateToken", resp.StatusCode, b)
	}
	if strings.Contains(string(b), created.Secret) {
		t.Fatalf("the token made by a call is in the audit trail: %s", b)
	}
	resp, b = get(viewer, "/v1/audit")
	if resp.StatusCode != http.StatusForbidden {
		t.Fatalf("a viewer read the audit trail: %d %s", resp.StatusCode, b)
	}

	// Errors: the status and reason of the gRPC call.
	resp, b = get(viewer, "/v1/nodes/node-zz")
	if resp.StatusCode != http.StatusNotFound || !strings.Contains(string(b), "ERROR_REASON_NOT_FOUND") {
		t.Fatalf("GET /v1/nodes/node-zz: %d %s", resp.StatusCode, b)
	}
	resp, err = admin.Post("https://"+addr+"/v1/tokens", "application/json", strings.NewReader(`{"usagez":1}`))
	if err != nil {
		t.Fatal(err)
	}
	b, _ = io.ReadAll(resp.Body)
	resp.Body.Close()
	if resp.StatusCode != http.StatusBadRequest || !strings.Contains(string(b), "usagez") {
		t.Fatalf("POST /v1/tokens with an unknown field: %d %s, want 400 naming it", resp.StatusCode, b)
	}
	resp, b = get(viewer, "/v1/nodez")
	if resp.StatusCode != http.StatusNotFound || !strings.Contains(string(b), "/openapi.json") {
		t.Fatalf("GET /v1/nodez: %d %s", resp.StatusCode, b)
	}

	// The OpenAPI document.
	resp, b = get(viewer, "/openapi.json")
	if resp.StatusCode != http.StatusOK || !json.Valid(b) || !strings.Contains(string(b), "/v1/nodes") {
		t.Fatalf("GET /openapi.json: %d %.200s", resp.StatusCode, b)
	}

	// A watch streams one JSON object per line, the first at once.
	ctx, cancel := context.WithTimeout(t.Context(), 10*time.Second)
	defer cancel()
	req, _ = http.NewRequestWithContext(ctx, http.MethodGet, "https://"+addr+"/v1/audit:watch", nil)
	resp, err = admin.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	if resp.StatusCode != http.StatusOK {
		t.Fatalf("GET /v1/audit:watch: %d", resp.StatusCode)
	}
	if ct := resp.Header.Get("Content-Type"); ct != "application/x-ndjson" {
		t.Errorf("a watch's Content-Type: %q, want application/x-ndjson", ct)
	}
	lines := bufio.NewScanner(resp.Body)
	// The first line comes at once, without an event: the watch is open.
	if !lines.Scan() || lines.Text() != `{"result":{}}` {
		t.Fatalf("the watch's first line: %q, want {\"result\":{}}", lines.Text())
	}
	// The watch is open: a call made now comes by it.
	if r, err := admin.Post("https://"+addr+"/v1/tokens", "application/json", strings.NewReader(`{"usages":1,"description":"watched"}`)); err != nil {
		t.Fatal(err)
	} else {
		r.Body.Close()
	}
	for lines.Scan() {
		var line struct {
			Result struct {
				Event struct {
					Method    string `json:"method"`
					Subject   string `json:"subject"`
					Transport string `json:"transport"`
					Request   string `json:"request"`
				} `json:"event"`
			} `json:"result"`
		}
		if err := json.Unmarshal(lines.Bytes(), &line); err != nil {
			t.Fatalf("a line of the watch is not JSON: %q", lines.Text())
		}
		ev := line.Result.Event
		if strings.Contains(ev.Request, "watched") {
			if ev.Method != apiv1.TokenService_CreateToken_FullMethodName || ev.Subject != "admin" || ev.Transport != api.TransportREST {
				t.Fatalf("watched event: %+v", ev)
			}
			return
		}
	}
	t.Fatalf("the watch ended without the call: %v", lines.Err())
}

// The metadata the REST gateway forwards means nothing on an ordinary gRPC connection:
// neither a caller without a certificate nor a viewer becomes the admin whose certificate it
// names.
func TestForwardedCertificateIsIgnoredOverGRPC(t *testing.T) {
	c := testcluster.New(t, 1)
	addr := c.Addrs()[0]
	adminCert := c.TLSAs(pki.RoleAdmin, "admin").Certificates[0].Certificate[0]
	noCert := c.TLSAs(pki.RoleAdmin, "x")
	noCert.Certificates = nil
	for name, cfg := range map[string]*tls.Config{"no certificate": noCert, "viewer": c.TLSAs(pki.RoleViewer, "alice")} {
		cc := dialWith(t, addr, cfg)
		ctx := metadata.AppendToOutgoingContext(t.Context(), api.ForwardedCertKey, string(adminCert), api.ForwardedPeerKey, "10.0.0.1:1")
		_, err := apiv1.NewTokenServiceClient(cc).CreateToken(ctx, &apiv1.CreateTokenRequest{Usages: 1})
		want := codes.PermissionDenied
		if name == "no certificate" {
			want = codes.Unauthenticated
		}
		if status.Code(err) != want {
			t.Errorf("%s with a forwarded admin certificate: %v, want %v", name, err, want)
		}
	}
}

// A gRPC client that offers http/1.1 beside h2 (some stacks do) is served on the HTTP side,
// by the same gRPC server: the same answers, the same refusals.
func TestGRPCClientOfferingHTTP1(t *testing.T) {
	c := testcluster.New(t, 1)
	for role, want := range map[string]codes.Code{pki.RoleViewer: codes.OK, pki.RoleAgent: codes.PermissionDenied} {
		cfg := c.TLSAs(role, "someone")
		cfg.NextProtos = []string{"h2", "http/1.1"}
		cc := dialWith(t, c.Addrs()[0], cfg)
		_, err := apiv1.NewNodeServiceClient(cc).ListNodes(t.Context(), &apiv1.ListNodesRequest{})
		if status.Code(err) != want {
			t.Errorf("ListNodes as %s through the HTTP side: %v, want %v", role, err, want)
		}
	}
}
