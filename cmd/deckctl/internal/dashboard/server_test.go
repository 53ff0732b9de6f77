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
	"net/http/cookiejar"
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

// browser is a client with a cookie jar that has opened the printed URL.
func (f *fixture) browser(t *testing.T) *http.Client {
	t.Helper()
	jar, _ := cookiejar.New(nil)
	hc := &http.Client{Jar: jar, Timeout: 10 * time.Second}
	resp, err := hc.Get(f.s.URL())
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	b, _ := io.ReadAll(resp.Body)
	if resp.StatusCode != 200 || !strings.Contains(string(b), "<title>Deckhand</title>") {
		t.Fatalf("opening the printed URL: %d %s", resp.StatusCode, b)
	}
	if resp.Request.URL.String() != f.base+"/" {
		t.Fatalf("the page stayed at %s, want the URL without the token", resp.Request.URL)
	}
	return hc
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

// The printed URL's token becomes an HttpOnly, SameSite=Strict cookie and the page
// redirects to the URL without it; nothing is served without the cookie.
func TestTokenExchangeAndCookie(t *testing.T) {
	f := start(t, one, nil)
	u, err := url.Parse(f.s.URL())
	if err != nil {
		t.Fatal(err)
	}
	if tok := u.Query().Get("token"); len(tok) < 26 || u.Host != f.s.Addr().String() || u.Path != "/" {
		t.Fatalf("printed URL %s: want http://127.0.0.1:PORT/?token= with 128 bits or more", f.s.URL())
	}
	noFollow := &http.Client{CheckRedirect: func(*http.Request, []*http.Request) error { return http.ErrUseLastResponse }}
	resp, _ := do(t, noFollow, "GET", f.s.URL(), nil, "")
	if resp.StatusCode != http.StatusSeeOther || resp.Header.Get("Location") != "/" {
		t.Fatalf("token exchange: %d to %q", resp.StatusCode, resp.Header.Get("Location"))
	}
	sc := resp.Header.Get("Set-Cookie")
	for _, want := range []string{"HttpOnly", "SameSite=Strict", "Path=/", "deckhand_dashboard_" + u.Port() + "="} {
		if !strings.Contains(sc, want) {
			t.Errorf("Set-Cookie %q lacks %s", sc, want)
		}
	}
	if strings.Contains(sc, u.Query().Get("token")) {
		t.Errorf("the cookie carries the URL's token: %s", sc)
	}

	// From any path, to the page itself (no open redirect: //evil.example is a path too).
	for _, p := range []string{"//evil.example/", "/v1/nodes", "/x?next=http://evil.example"} {
		sep := "?"
		if strings.Contains(p, "?") {
			sep = "&"
		}
		resp, _ := do(t, noFollow, "GET", f.base+p+sep+"token="+u.Query().Get("token"), nil, "")
		if resp.StatusCode != http.StatusSeeOther || resp.Header.Get("Location") != "/" {
			t.Errorf("token exchange at %s: %d to %q", p, resp.StatusCode, resp.Header.Get("Location"))
		}
	}

	hc := f.browser(t)
	for _, p := range []string{"/", "/app.css", "/js/app.js", "/favicon.svg", "/v1/nodes", "/dashboard/session"} {
		if resp, body := do(t, hc, "GET", f.base+p, nil, ""); resp.StatusCode != 200 {
			t.Errorf("GET %s with the cookie: %d %s", p, resp.StatusCode, body)
		}
		resp, body := do(t, http.DefaultClient, "GET", f.base+p, nil, "")
		if resp.StatusCode != http.StatusUnauthorized || !strings.Contains(body, "token") {
			t.Errorf("GET %s without the cookie: %d %s", p, resp.StatusCode, body)
		}
		resp, _ = do(t, http.DefaultClient, "GET", f.base+p, map[string]string{"Cookie": "deckhand_dashboard_" + u.Port() + "=" + u.Query().Get("token")}, "")
		if resp.StatusCode != http.StatusUnauthorized {
			t.Errorf("GET %s with the token as the cookie: %d", p, resp.StatusCode)
		}
	}
	resp, body := do(t, http.DefaultClient, "GET", f.base+"/?token=AAAAAAAAAAAAAAAAAAAAAAAAAA", nil, "")
	if resp.StatusCode != http.StatusUnauthorized || !strings.Contains(body, "not this dashboard's") {
		t.Errorf("a wrong token: %d %s", resp.StatusCode, body)
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
	hc := f.browser(t)
	for _, p := range []string{"/", "/js/app.js", "/v1/nodes", "/v1/nodes/nope", "/nope"} {
		resp, _ := do(t, hc, "GET", f.base+p, nil, "")
		csp := resp.Header.Get("Content-Security-Policy")
		for _, want := range []string{"default-src 'self'", "frame-ancestors 'none'", "object-src 'none'", "connect-src 'self'"} {
			if !strings.Contains(csp, want) {
				t.Errorf("GET %s: CSP %q lacks %s", p, csp, want)
			}
		}
		if v := resp.Header.Values("X-Content-Type-Options"); len(v) != 1 || v[0] != "nosniff" {
			t.Errorf("GET %s: X-Content-Type-Options %q", p, v)
		}
		if resp.Header.Get("X-Frame-Options") != "DENY" || resp.Header.Get("Cache-Control") != "no-store" || resp.Header.Get("Referrer-Policy") != "no-referrer" {
			t.Errorf("GET %s: headers %v", p, resp.Header)
		}
		if resp.Header.Get("Set-Cookie") != "" {
			t.Errorf("GET %s: a controller's Set-Cookie reached the browser: %q", p, resp.Header.Get("Set-Cookie"))
		}
	}
	resp, _ := do(t, hc, "GET", f.base+"/js/app.js", nil, "")
	if ct := resp.Header.Get("Content-Type"); !strings.HasPrefix(ct, "text/javascript") {
		t.Errorf("a module is served as %q", ct)
	}
}

// A page of another name that resolves to 127.0.0.1 (DNS rebinding) gets nothing, the
// cookie notwithstanding.
func TestHostHeader(t *testing.T) {
	f := start(t, one, nil)
	hc := f.browser(t)
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
		for _, p := range []string{"/", "/v1/nodes"} {
			// The jar sends the cookie to 127.0.0.1 only: set it by hand for the others.
			c := hc.Jar.Cookies(&url.URL{Scheme: "http", Host: f.s.Addr().String()})[0]
			resp, body := do(t, http.DefaultClient, "GET", f.base+p, map[string]string{"Host": host, "Cookie": c.Name + "=" + c.Value}, "")
			if resp.StatusCode != want {
				t.Errorf("GET %s with Host %s: %d %s, want %d", p, host, resp.StatusCode, body, want)
			}
		}
	}
}

// Writes need the dashboard's Origin, or none and the mark header: another site's page
// cannot make the browser send either.
func TestOriginAndCSRF(t *testing.T) {
	f := start(t, one, nil)
	hc := f.browser(t)
	self := f.base
	for _, c := range []struct {
		name   string
		method string
		hdr    map[string]string
		want   int
	}{
		{"marked", "POST", map[string]string{dashboard.HeaderMark: "1"}, 200},
		{"own origin", "POST", map[string]string{"Origin": self}, 200},
		{"own origin as localhost", "POST", map[string]string{"Origin": strings.Replace(self, "127.0.0.1", "localhost", 1)}, 200},
		{"marked delete", "DELETE", map[string]string{dashboard.HeaderMark: "1"}, 200},
		{"bare", "POST", nil, 403},
		{"mark 0", "POST", map[string]string{dashboard.HeaderMark: "0"}, 403},
		{"other origin", "POST", map[string]string{"Origin": "http://evil.example"}, 403},
		{"other origin marked", "POST", map[string]string{"Origin": "http://evil.example", dashboard.HeaderMark: "1"}, 403},
		{"null origin marked", "POST", map[string]string{"Origin": "null", dashboard.HeaderMark: "1"}, 403},
		{"other port", "POST", map[string]string{"Origin": "http://127.0.0.1:1", dashboard.HeaderMark: "1"}, 403},
		{"cross-origin read", "GET", map[string]string{"Origin": "http://evil.example"}, 403},
		{"put", "PUT", map[string]string{dashboard.HeaderMark: "1"}, 405},
	} {
		before := len(f.up.seen)
		resp, body := do(t, hc, c.method, f.base+"/v1/workflows", c.hdr, `{"spec":{}}`)
		if resp.StatusCode != c.want {
			t.Errorf("%s: %s /v1/workflows = %d %s, want %d", c.name, c.method, resp.StatusCode, body, c.want)
		}
		f.up.mu.Lock()
		reached := len(f.up.seen) > before
		f.up.mu.Unlock()
		if reached != (c.want == 200) {
			t.Errorf("%s: reached the controller: %v", c.name, reached)
		}
	}
}

// Requests reach the controller with the credential's certificate, their path, query and
// body, and none of the browser's cookies, authorization or the dashboard's headers.
func TestProxy(t *testing.T) {
	f := start(t, one, nil)
	hc := f.browser(t)
	resp, body := do(t, hc, "POST", f.base+"/v1/workflows:plan?x=1", map[string]string{
		dashboard.HeaderMark: "1", "Authorization": "Bearer secret", "Origin": f.base, "Content-Type": "application/json"}, `{"spec":{"join":{"node":"n2"}}}`)
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
	hc := f.browser(t)
	resp, body := do(t, hc, "POST", f.base+"/v1/workflows", map[string]string{dashboard.HeaderMark: "1"}, strings.Repeat("x", 2048))
	if resp.StatusCode != http.StatusRequestEntityTooLarge {
		t.Errorf("2 KiB over a 1 KiB bound: %d %s", resp.StatusCode, body)
	}
	// Without a length (chunked): cut while copied.
	req, _ := http.NewRequest("POST", f.base+"/v1/workflows", io.MultiReader(strings.NewReader(strings.Repeat("x", 4096))))
	req.Header.Set(dashboard.HeaderMark, "1")
	req.ContentLength = -1
	resp, err := hc.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	resp.Body.Close()
	if resp.StatusCode != http.StatusRequestEntityTooLarge {
		t.Errorf("a chunked 4 KiB body over a 1 KiB bound: %d", resp.StatusCode)
	}
	if resp, _ := do(t, hc, "POST", f.base+"/v1/workflows", map[string]string{dashboard.HeaderMark: "1"}, strings.Repeat("x", 1000)); resp.StatusCode != 200 {
		t.Errorf("a body under the bound: %d", resp.StatusCode)
	}
}

// A watch reaches the page line by line, as the controller flushes each: the first line
// is read while the controller still holds the second.
func TestStreamFlushedLineByLine(t *testing.T) {
	f := start(t, one, nil)
	hc := f.browser(t)
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
	hc := f.browser(t)
	if resp, body := do(t, hc, "GET", f.base+"/v1/nodes", nil, ""); resp.StatusCode != 200 || !strings.Contains(body, `"caller":"alice"`) {
		t.Fatalf("through the second controller: %d %s", resp.StatusCode, body)
	}

	dead2 := deadAddr(t)
	g := start(t, func(string) []string { return []string{dead, dead2} }, nil)
	hc = g.browser(t)
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
