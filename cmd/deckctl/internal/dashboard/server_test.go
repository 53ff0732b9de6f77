package dashboard_test

import (
	"bufio"
	"context"
	"crypto/tls"
	"encoding/json"
	"fmt"
	"io"
	"net"
	"net/http"
	"net/http/httptest"
	"net/url"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/deckhandhq/deckhand/cmd/deckctl/internal/dashboard"
	"github.com/deckhandhq/deckhand/internal/clientconfig"
	"github.com/deckhandhq/deckhand/internal/pki"
)

// upstream is a controller's REST API stand-in over mTLS: it records what it received.
type upstream struct {
	srv     *httptest.Server
	release chan struct{} // the stream's second line waits for it

	mu   sync.Mutex
	seen []*http.Request
	body []string
}

// received lists "METHOD /path BODY" of every request so far.
func (u *upstream) received() []string {
	u.mu.Lock()
	defer u.mu.Unlock()
	var out []string
	for i, r := range u.seen {
		out = append(out, r.Method+" "+r.URL.Path+" "+u.body[i])
	}
	return out
}

func (u *upstream) last() (*http.Request, string) {
	u.mu.Lock()
	defer u.mu.Unlock()
	if len(u.seen) == 0 {
		return nil, ""
	}
	return u.seen[len(u.seen)-1], u.body[len(u.body)-1]
}

// routes answer "METHOD /path" in a test's own way.
type routes map[string]func(w http.ResponseWriter, r *http.Request)

func newUpstream(t *testing.T, ca *pki.CA, own routes) *upstream {
	u := &upstream{release: make(chan struct{})}
	mux := http.NewServeMux()
	mux.HandleFunc("/", func(w http.ResponseWriter, r *http.Request) {
		b, _ := io.ReadAll(r.Body)
		u.mu.Lock()
		u.seen = append(u.seen, r)
		u.body = append(u.body, string(b))
		u.mu.Unlock()
		if h := own[r.Method+" "+r.URL.Path]; h != nil {
			h(w, r)
			return
		}
		who := r.TLS.PeerCertificates[0].Subject.CommonName
		w.Header().Set("X-Content-Type-Options", "nosniff")
		w.Header().Set("Set-Cookie", "upstream=1")
		switch {
		case r.URL.Path == "/v1/workflows/wf-1:watch":
			w.Header().Set("Content-Type", "application/x-ndjson")
			fmt.Fprintln(w, `{"result":{"workflow":{"id":"wf-1","state":"WORKFLOW_STATE_RUNNING"}}}`)
			w.(http.Flusher).Flush()
			select {
			case <-u.release:
			case <-r.Context().Done():
				return
			}
			fmt.Fprintln(w, `{"result":{"workflow":{"id":"wf-1","state":"WORKFLOW_STATE_SUCCEEDED"}}}`)
		case r.URL.Path == "/v1/nodes/nope":
			w.Header().Set("Content-Type", "application/json")
			w.WriteHeader(http.StatusNotFound)
			fmt.Fprint(w, `{"code":5,"message":"node not found: nope","details":[{"@type":"type.googleapis.com/google.rpc.ErrorInfo","reason":"ERROR_REASON_NOT_FOUND","domain":"deckhand.dev"}]}`)
		default:
			w.Header().Set("Content-Type", "application/json")
			_ = json.NewEncoder(w).Encode(map[string]string{"path": r.URL.Path, "query": r.URL.RawQuery, "method": r.Method, "caller": who, "proto": r.Proto})
		}
	})
	u.srv = httptest.NewUnstartedServer(mux)
	cert, err := ca.IssueServing("controller-1", []string{"127.0.0.1"})
	if err != nil {
		t.Fatal(err)
	}
	u.srv.TLS = &tls.Config{Certificates: []tls.Certificate{cert}, ClientCAs: ca.Pool(), ClientAuth: tls.RequireAndVerifyClientCert, NextProtos: []string{"h2", "http/1.1"}}
	u.srv.EnableHTTP2 = true
	u.srv.StartTLS()
	t.Cleanup(func() {
		select {
		case <-u.release:
		default:
			close(u.release)
		}
		u.srv.Close()
	})
	return u
}

func (u *upstream) addr() string { return strings.TrimPrefix(u.srv.URL, "https://") }

// deadAddr is a loopback address nothing listens on.
func deadAddr(t *testing.T) string {
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	addr := ln.Addr().String()
	ln.Close()
	return addr
}

type fixture struct {
	s    *dashboard.Server
	up   *upstream
	base string // http://127.0.0.1:PORT
}

func start(t *testing.T, controllers func(up string) []string, tune func(*dashboard.Config)) *fixture {
	t.Helper()
	return startWith(t, controllers, tune, nil)
}

// startWith is start with a controller that answers own's routes its own way.
func startWith(t *testing.T, controllers func(up string) []string, tune func(*dashboard.Config), own routes) *fixture {
	t.Helper()
	ca, err := pki.NewCA("test-ca")
	if err != nil {
		t.Fatal(err)
	}
	up := newUpstream(t, ca, own)
	certPEM, keyPEM, err := ca.IssueClient("alice", pki.RoleAdmin, time.Hour)
	if err != nil {
		t.Fatal(err)
	}
	tlsCfg, err := clientconfig.New(nil, ca.CertPEM, certPEM, keyPEM).TLS()
	if err != nil {
		t.Fatal(err)
	}
	cfg := dashboard.DefaultConfig()
	cfg.Controllers = controllers(up.addr())
	cfg.TLS, cfg.Subject, cfg.Role = tlsCfg, "alice", pki.RoleAdmin
	cfg.DialTimeout = 2 * time.Second
	if tune != nil {
		tune(&cfg)
	}
	s, err := dashboard.New(cfg)
	if err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan error, 1)
	go func() { done <- s.Run(ctx) }()
	t.Cleanup(func() {
		cancel()
		if err := <-done; err != nil {
			t.Errorf("Run: %v", err)
		}
	})
	return &fixture{s: s, up: up, base: "http://" + s.Addr().String()}
}

func one(up string) []string { return []string{up} }

// token is this run's token, as the printed URL carries it.
func (f *fixture) token(t *testing.T) string {
	t.Helper()
	u, err := url.Parse(f.s.URL())
	if err != nil {
		t.Fatal(err)
	}
	return u.Query().Get("token")
}

// client calls as the dashboard's page does: with the token in HeaderMark, unless the
// request sets HeaderMark itself.
func (f *fixture) client(t *testing.T) *http.Client {
	return &http.Client{Timeout: 10 * time.Second, Transport: withToken{f.token(t)}}
}

type withToken struct{ token string }

func (w withToken) RoundTrip(r *http.Request) (*http.Response, error) {
	if _, set := r.Header[dashboard.HeaderMark]; !set {
		r = r.Clone(r.Context())
		r.Header.Set(dashboard.HeaderMark, w.token)
	}
	return http.DefaultTransport.RoundTrip(r)
}

func do(t *testing.T, hc *http.Client, method, u string, hdr map[string]string, body string) (*http.Response, string) {
	t.Helper()
	req, err := http.NewRequest(method, u, strings.NewReader(body))
	if err != nil {
		t.Fatal(err)
	}
	for k, v := range hdr {
		if k == "Host" {
			req.Host = v
		} else {
			req.Header.Set(k, v)
		}
	}
	resp, err := hc.Do(req)
	if err != nil {
		t.Fatalf("%s %s: %v", method, u, err)
	}
	defer resp.Body.Close()
	b, _ := io.ReadAll(resp.Body)
	return resp, string(b)
}

// reached says whether the controller received anything since it had seen before.
func (u *upstream) reached(before int) bool {
	u.mu.Lock()
	defer u.mu.Unlock()
	return len(u.seen) > before
}

func (u *upstream) count() int {
	u.mu.Lock()
	defer u.mu.Unlock()
	return len(u.seen)
}

// The printed URL opens the page as it is (no exchange, no redirect, no cookie); the
// static UI is served to anyone at the dashboard's address; the API and the session answer
// only a request with this run's token in HeaderMark: not a cookie (a browser sends the
// cookies of 127.0.0.1 to every port), not the URL's token, not a wrong one.
func TestTokenInHeader(t *testing.T) {
	f := start(t, one, nil)
	u, err := url.Parse(f.s.URL())
	if err != nil {
		t.Fatal(err)
	}
	tok := u.Query().Get("token")
	if len(tok) < 26 || u.Host != f.s.Addr().String() || u.Path != "/" {
		t.Fatalf("printed URL %s: want http://127.0.0.1:PORT/?token= with 128 bits or more", f.s.URL())
	}
	noFollow := &http.Client{CheckRedirect: func(*http.Request, []*http.Request) error { return http.ErrUseLastResponse }}
	resp, body := do(t, noFollow, "GET", f.s.URL(), nil, "")
	if resp.StatusCode != 200 || !strings.Contains(body, "<title>Deckhand</title>") {
		t.Fatalf("the printed URL: %d %s, want the page itself", resp.StatusCode, body)
	}

	// The UI, with or without a token anywhere: nothing secret in it.
	for _, p := range []string{"/", "/?token=" + tok, "/?token=AAAAAAAAAAAAAAAAAAAAAAAAAA", "/app.css", "/js/app.js", "/js/api.js", "/favicon.svg"} {
		resp, body := do(t, noFollow, "GET", f.base+p, nil, "")
		if resp.StatusCode != 200 || len(body) == 0 {
			t.Errorf("GET %s without a token: %d %s", p, resp.StatusCode, body)
		}
		if sc := resp.Header.Values("Set-Cookie"); len(sc) > 0 {
			t.Errorf("GET %s set a cookie: %q", p, sc)
		}
	}

	// The API and the session: the header with this run's token, nothing else.
	cookie := "deckhand_dashboard_" + u.Port() + "=" + tok
	hc := f.client(t)
	for _, p := range []string{"/v1/nodes", "/openapi.json", "/dashboard/session"} {
		if resp, body := do(t, hc, "GET", f.base+p, nil, ""); resp.StatusCode != 200 {
			t.Errorf("GET %s with the token: %d %s", p, resp.StatusCode, body)
		}
		for _, c := range []struct {
			name string
			path string
			hdr  map[string]string
			want string
		}{
			{"nothing", p, nil, "open the URL deckctl dashboard printed (http://" + u.Host + "/?token=...)"},
			{"the old cookie", p, map[string]string{"Cookie": cookie}, "no dashboard token"},
			{"the token in the URL", p + "?token=" + tok, nil, "no dashboard token"},
			{"a wrong token", p, map[string]string{dashboard.HeaderMark: "AAAAAAAAAAAAAAAAAAAAAAAAAA"}, "not this dashboard's"},
			{"the token and more", p, map[string]string{dashboard.HeaderMark: tok + "x"}, "not this dashboard's"},
			{"the old mark", p, map[string]string{dashboard.HeaderMark: "1", "Cookie": cookie}, "not this dashboard's"},
			{"an empty header", p, map[string]string{dashboard.HeaderMark: ""}, "not this dashboard's"},
		} {
			before := f.up.count()
			resp, body := do(t, http.DefaultClient, "GET", f.base+c.path, c.hdr, "")
			if resp.StatusCode != http.StatusUnauthorized || !strings.Contains(body, c.want) {
				t.Errorf("GET %s with %s: %d %s, want 401 with %q", p, c.name, resp.StatusCode, body, c.want)
			}
			if f.up.reached(before) {
				t.Errorf("GET %s with %s reached the controller", p, c.name)
			}
		}
	}
	// Two values of the header are refused, even if one is the token.
	req, _ := http.NewRequest("GET", f.base+"/v1/nodes", nil)
	req.Header.Add(dashboard.HeaderMark, "AAAAAAAAAAAAAAAAAAAAAAAAAA")
	req.Header.Add(dashboard.HeaderMark, tok)
	if resp, err := http.DefaultClient.Do(req); err != nil || resp.StatusCode != http.StatusUnauthorized {
		t.Errorf("two header values: %v %v", resp, err)
	} else {
		resp.Body.Close()
	}
	// An API refusal is a Status the page reads like the controllers' errors.
	_, body = do(t, http.DefaultClient, "GET", f.base+"/v1/nodes", nil, "")
	var st struct {
		Code    int
		Message string
		Details []struct{ Reason string }
	}
	if err := json.Unmarshal([]byte(body), &st); err != nil || st.Code != 16 || len(st.Details) != 1 || st.Details[0].Reason != "ERROR_REASON_PERMISSION_DENIED" {
		t.Errorf("API refusal body %s", body)
	}
	_, body = do(t, hc, "GET", f.base+"/dashboard/session", nil, "")
	if !strings.Contains(body, `"subject":"alice"`) || !strings.Contains(body, `"role":"admin"`) {
		t.Errorf("session: %s", body)
	}
}

// Every answer forbids framing, sniffing, caching and loading anything from elsewhere.
func TestSecurityHeaders(t *testing.T) {
	f := start(t, one, nil)
	hc := f.client(t)
	for _, c := range []struct {
		path string
		hc   *http.Client
	}{
		{"/", hc}, {"/", http.DefaultClient}, {"/js/app.js", http.DefaultClient}, {"/v1/nodes", hc}, {"/v1/nodes", http.DefaultClient}, {"/v1/nodes/nope", hc}, {"/nope", hc},
	} {
		p := c.path
		resp, _ := do(t, c.hc, "GET", f.base+p, nil, "")
		csp := resp.Header.Get("Content-Security-Policy")
		for _, want := range []string{"default-src 'self'", "frame-ancestors 'none'", "object-src 'none'", "connect-src 'self'"} {
			if !strings.Contains(csp, want) {
				t.Errorf("GET %s: CSP %q lacks %s", p, csp, want)
			}
		}
		if v := resp.Header.Values("X-Content-Type-Options"); len(v) != 1 || v[0] != "nosniff" {
			t.Errorf("GET %s: X-Content-Type-Options %q", p, v)
		}
		if resp.Header.Get("X-Frame-Options") != "DENY" || resp.Header.Get("Cache-Control") != "no-store" || resp.Header.Get("Referrer-Policy") != "no-referrer" ||
			resp.Header.Get("Cross-Origin-Resource-Policy") != "same-origin" {
			t.Errorf("GET %s: headers %v", p, resp.Header)
		}
		if resp.Header.Get("Set-Cookie") != "" {
			t.Errorf("GET %s: a Set-Cookie reached the browser: %q", p, resp.Header.Get("Set-Cookie"))
		}
	}
	resp, _ := do(t, hc, "GET", f.base+"/js/app.js", nil, "")
	if ct := resp.Header.Get("Content-Type"); !strings.HasPrefix(ct, "text/javascript") {
		t.Errorf("a module is served as %q", ct)
	}
}

// A page of another name that resolves to 127.0.0.1 (DNS rebinding) gets nothing, not
// even the static UI, the token notwithstanding.
func TestHostHeader(t *testing.T) {
	f := start(t, one, nil)
	hc := f.client(t)
	_, port, _ := net.SplitHostPort(f.s.Addr().String())
	for host, want := range map[string]int{
		"127.0.0.1:" + port:         200,
		"localhost:" + port:         200,
		"[::1]:" + port:             200,
		"evil.example:" + port:      403,
		"evil.example":              403,
		"127.0.0.1:1":               403,
		"127.0.0.1.nip.io:" + port:  403,
		"localhost.evil.example:80": 403,
	} {
		for _, p := range []string{"/", "/js/app.js", "/v1/nodes"} {
			resp, body := do(t, hc, "GET", f.base+p, map[string]string{"Host": host}, "")
			if resp.StatusCode != want {
				t.Errorf("GET %s with Host %s: %d %s, want %d", p, host, resp.StatusCode, body, want)
			}
		}
	}
}

// A page of another origin (another server on 127.0.0.1, or any site) cannot reach the
// API: the browser would send it the cookies of 127.0.0.1, but not the token, which lives
// in the dashboard's own sessionStorage; it cannot send a custom header without a
// preflight, which is refused; and a request with its Origin is refused even with the
// token. Writes need the token as reads do: that is the defence against cross-site
// request forgery.
func TestCrossOriginCannotReachTheAPI(t *testing.T) {
	f := start(t, one, nil)
	hc := f.client(t)
	self := f.base
	_, port, _ := net.SplitHostPort(f.s.Addr().String())
	cookie := "deckhand_dashboard_" + port + "=" + f.token(t)
	other := "http://127.0.0.1:1"
	for _, c := range []struct {
		name   string
		method string
		hc     *http.Client
		hdr    map[string]string
		want   int
	}{
		{"the page's write", "POST", hc, nil, 200},
		{"own origin", "POST", hc, map[string]string{"Origin": self}, 200},
		{"own origin as localhost", "POST", hc, map[string]string{"Origin": strings.Replace(self, "127.0.0.1", "localhost", 1)}, 200},
		{"the page's delete", "DELETE", hc, nil, 200},
		{"the page's read", "GET", hc, map[string]string{"Origin": self}, 200},
		{"bare", "POST", http.DefaultClient, nil, 401},
		{"own origin without the token", "POST", http.DefaultClient, map[string]string{"Origin": self}, 401},
		{"the old mark", "POST", http.DefaultClient, map[string]string{dashboard.HeaderMark: "1"}, 401},
		{"the old cookie", "POST", http.DefaultClient, map[string]string{"Cookie": cookie}, 401},
		{"another port's form post with the cookie", "POST", http.DefaultClient, map[string]string{"Origin": other, "Cookie": cookie, "Content-Type": "text/plain"}, 403},
		{"another port's read with the cookie", "GET", http.DefaultClient, map[string]string{"Origin": other, "Cookie": cookie}, 403},
		{"another site's write with the token", "POST", hc, map[string]string{"Origin": "http://evil.example"}, 403},
		{"null origin with the token", "POST", hc, map[string]string{"Origin": "null"}, 403},
		{"another port with the token", "POST", hc, map[string]string{"Origin": other}, 403},
		{"a cross-origin read with the token", "GET", hc, map[string]string{"Origin": "http://evil.example"}, 403},
		{"the preflight of a custom header", "OPTIONS", http.DefaultClient, map[string]string{"Origin": other, "Access-Control-Request-Method": "POST", "Access-Control-Request-Headers": strings.ToLower(dashboard.HeaderMark)}, 403},
		{"put", "PUT", hc, nil, 405},
	} {
		before := f.up.count()
		resp, body := do(t, c.hc, c.method, f.base+"/v1/workflows", c.hdr, `{"spec":{}}`)
		if resp.StatusCode != c.want {
			t.Errorf("%s: %s /v1/workflows = %d %s, want %d", c.name, c.method, resp.StatusCode, body, c.want)
		}
		if reached := f.up.reached(before); reached != (c.want == 200) {
			t.Errorf("%s: reached the controller: %v", c.name, reached)
		}
		for k := range resp.Header {
			if strings.HasPrefix(k, "Access-Control-") {
				t.Errorf("%s: the answer grants CORS: %s: %s", c.name, k, resp.Header.Get(k))
			}
		}
	}
}

// Requests reach the controller with the credential's certificate, their path, query and
// body, and none of the browser's cookies, authorization or the dashboard's headers (its
// token least of all).
func TestProxy(t *testing.T) {
	f := start(t, one, nil)
	hc := f.client(t)
	resp, body := do(t, hc, "POST", f.base+"/v1/workflows:plan?x=1", map[string]string{
		"Cookie": "a=b", "Authorization": "Bearer secret", "Origin": f.base, "Content-Type": "application/json"}, `{"spec":{"join":{"node":"n2"}}}`)
	if resp.StatusCode != 200 {
		t.Fatalf("proxied POST: %d %s", resp.StatusCode, body)
	}
	var got map[string]string
	if err := json.Unmarshal([]byte(body), &got); err != nil {
		t.Fatal(err)
	}
	if got["path"] != "/v1/workflows:plan" || got["query"] != "x=1" || got["method"] != "POST" || got["caller"] != "alice" || got["proto"] != "HTTP/2.0" {
		t.Errorf("the controller saw %v", got)
	}
	r, b := f.up.last()
	if b != `{"spec":{"join":{"node":"n2"}}}` {
		t.Errorf("body %q", b)
	}
	for _, h := range []string{"Cookie", "Authorization", "Origin", "Referer", dashboard.HeaderMark} {
		if v := r.Header.Get(h); v != "" {
			t.Errorf("the controller received %s: %q", h, v)
		}
	}
	for k, vs := range r.Header {
		for _, v := range vs {
			if strings.Contains(v, f.token(t)) {
				t.Errorf("the controller received the dashboard's token in %s", k)
			}
		}
	}
	if r.Header.Get("Content-Type") != "application/json" {
		t.Errorf("Content-Type %q", r.Header.Get("Content-Type"))
	}
	// The controller's error passes as it is.
	resp, body = do(t, hc, "GET", f.base+"/v1/nodes/nope", nil, "")
	if resp.StatusCode != 404 || !strings.Contains(body, "ERROR_REASON_NOT_FOUND") {
		t.Errorf("an error of the controller: %d %s", resp.StatusCode, body)
	}
	// openapi.json is the controllers' too.
	if resp, body := do(t, hc, "GET", f.base+"/openapi.json", nil, ""); resp.StatusCode != 200 || !strings.Contains(body, `"/openapi.json"`) {
		t.Errorf("openapi.json: %d %s", resp.StatusCode, body)
	}
}

// A body over the bound is refused before or while it is sent.
func TestBodyBound(t *testing.T) {
	f := start(t, one, func(c *dashboard.Config) { c.MaxBodyBytes = 1024 })
	hc := f.client(t)
	resp, body := do(t, hc, "POST", f.base+"/v1/workflows", nil, strings.Repeat("x", 2048))
	if resp.StatusCode != http.StatusRequestEntityTooLarge {
		t.Errorf("2 KiB over a 1 KiB bound: %d %s", resp.StatusCode, body)
	}
	// Without a length (chunked): cut while copied.
	req, _ := http.NewRequest("POST", f.base+"/v1/workflows", io.MultiReader(strings.NewReader(strings.Repeat("x", 4096))))
	req.ContentLength = -1
	resp, err := hc.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	resp.Body.Close()
	if resp.StatusCode != http.StatusRequestEntityTooLarge {
		t.Errorf("a chunked 4 KiB body over a 1 KiB bound: %d", resp.StatusCode)
	}
	if resp, _ := do(t, hc, "POST", f.base+"/v1/workflows", nil, strings.Repeat("x", 1000)); resp.StatusCode != 200 {
		t.Errorf("a body under the bound: %d", resp.StatusCode)
	}
}

// A watch reaches the page line by line, as the controller flushes each: the first line
// is read while the controller still holds the second.
func TestStreamFlushedLineByLine(t *testing.T) {
	f := start(t, one, nil)
	hc := f.client(t)
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	req, _ := http.NewRequestWithContext(ctx, "GET", f.base+"/v1/workflows/wf-1:watch", nil)
	resp, err := hc.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	if resp.StatusCode != 200 || resp.Header.Get("Content-Type") != "application/x-ndjson" {
		t.Fatalf("watch: %d %s", resp.StatusCode, resp.Header.Get("Content-Type"))
	}
	rd := bufio.NewReader(resp.Body)
	first, err := rd.ReadString('\n')
	if err != nil || !strings.Contains(first, "WORKFLOW_STATE_RUNNING") {
		t.Fatalf("first line %q: %v (held back until the stream went on?)", first, err)
	}
	close(f.up.release)
	second, err := rd.ReadString('\n')
	if err != nil || !strings.Contains(second, "WORKFLOW_STATE_SUCCEEDED") {
		t.Fatalf("second line %q: %v", second, err)
	}
}

// The controllers are tried in order: one that does not answer is passed over; none
// answering is a 502 with a Status that says which were tried.
func TestControllerFailover(t *testing.T) {
	dead := deadAddr(t)
	f := start(t, func(up string) []string { return []string{dead, up} }, nil)
	hc := f.client(t)
	if resp, body := do(t, hc, "GET", f.base+"/v1/nodes", nil, ""); resp.StatusCode != 200 || !strings.Contains(body, `"caller":"alice"`) {
		t.Fatalf("through the second controller: %d %s", resp.StatusCode, body)
	}

	dead2 := deadAddr(t)
	g := start(t, func(string) []string { return []string{dead, dead2} }, nil)
	hc = g.client(t)
	resp, body := do(t, hc, "GET", g.base+"/v1/nodes", nil, "")
	var st struct {
		Code    int
		Message string
	}
	if err := json.Unmarshal([]byte(body), &st); resp.StatusCode != http.StatusBadGateway || err != nil || st.Code != 14 ||
		!strings.Contains(st.Message, "no controller answered") || !strings.Contains(st.Message, dead) || !strings.Contains(st.Message, dead2) {
		t.Fatalf("no controller: %d %s", resp.StatusCode, body)
	}
}

func TestNewRefusesANonLoopbackListen(t *testing.T) {
	cfg := dashboard.DefaultConfig()
	cfg.Listen = "0.0.0.0:0"
	cfg.Controllers = []string{"127.0.0.1:1"}
	cfg.TLS = &tls.Config{Certificates: []tls.Certificate{{}}, RootCAs: nil}
	if _, err := dashboard.New(cfg); err == nil || !strings.Contains(err.Error(), "loopback") {
		t.Fatalf("New with 0.0.0.0: %v", err)
	}
}
