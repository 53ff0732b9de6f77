package dashboard

import (
	"net/http"
	"strings"
	"testing"
	"time"
)

func TestGuardDecides(t *testing.T) {
	g := newGuard("127.0.0.1", "8080")
	const self = "http://127.0.0.1:8080"
	in := func(r request) request { // a request of the dashboard's page with its cookie
		if r.host == "" {
			r.host = "127.0.0.1:8080"
		}
		if r.method == "" {
			r.method = http.MethodGet
		}
		if r.path == "" {
			r.path = "/"
		}
		return r
	}
	for _, c := range []struct {
		name   string
		req    request
		action action
		status int
		why    string // a part of the refusal's message
	}{
		// Host: the dashboard's names only (DNS rebinding sends the attacker's name).
		{"page", in(request{cookie: true}), asset, 0, ""},
		{"localhost", in(request{host: "localhost:8080", cookie: true}), asset, 0, ""},
		{"LOCALHOST", in(request{host: "LOCALHOST:8080", cookie: true}), asset, 0, ""},
		{"ipv6 loopback", in(request{host: "[::1]:8080", cookie: true}), asset, 0, ""},
		{"rebinding name", in(request{host: "evil.example:8080", cookie: true}), refuse, 403, `Host "evil.example:8080"`},
		{"other port", in(request{host: "127.0.0.1:9090", cookie: true}), refuse, 403, "open http://127.0.0.1:8080/"},
		{"no port", in(request{host: "127.0.0.1", cookie: true}), refuse, 403, "Host"},
		{"no host", request{method: "GET", path: "/", cookie: true}, refuse, 403, "Host"},
		{"bad host before all", request{method: "GET", host: "x", path: "/v1/nodes", token: validToken}, refuse, 403, "Host"},

		// The token: exchanged once, on GET; a wrong one is refused even with a cookie.
		{"token", in(request{token: validToken}), exchange, 0, ""},
		{"token on a path", in(request{path: "/v1/nodes", token: validToken}), exchange, 0, ""},
		{"token with HEAD", in(request{method: http.MethodHead, token: validToken}), exchange, 0, ""},
		{"token with POST", in(request{method: http.MethodPost, token: validToken, marked: true}), refuse, 405, "GET only"},
		{"wrong token", in(request{token: invalidToken}), refuse, 401, "not this dashboard's"},
		{"wrong token with cookie", in(request{token: invalidToken, cookie: true}), refuse, 401, "printed last"},
		{"token from another site", in(request{token: validToken, origin: "http://evil.example"}), refuse, 403, "evil.example"},

		// The cookie: nothing without it.
		{"no cookie page", in(request{}), refuse, 401, "?token="},
		{"no cookie api", in(request{path: "/v1/nodes"}), refuse, 401, "no dashboard session"},
		{"no cookie asset", in(request{path: "/app.css"}), refuse, 401, ""},
		{"no cookie session", in(request{path: sessionPath}), refuse, 401, ""},
		{"no cookie write", in(request{method: http.MethodPost, path: "/v1/workflows", marked: true, origin: self}), refuse, 401, ""},

		// Reads.
		{"api read", in(request{path: "/v1/nodes", cookie: true}), proxy, 0, ""},
		{"api stream", in(request{path: "/v1/workflows/wf-1:watch", cookie: true}), proxy, 0, ""},
		{"openapi", in(request{path: "/openapi.json", cookie: true}), proxy, 0, ""},
		{"session", in(request{path: sessionPath, cookie: true}), session, 0, ""},
		{"asset", in(request{path: "/js/app.js", cookie: true}), asset, 0, ""},
		{"v1 without slash is no api", in(request{path: "/v1", cookie: true}), asset, 0, ""},
		{"same-origin read", in(request{path: "/js/app.js", cookie: true, origin: self}), asset, 0, ""},
		{"same-origin via localhost", in(request{host: "localhost:8080", path: "/v1/nodes", cookie: true, origin: "http://localhost:8080"}), proxy, 0, ""},
		{"cross-origin read", in(request{path: "/v1/nodes", cookie: true, origin: "http://evil.example"}), refuse, 403, "only the dashboard's own page"},
		{"null origin read", in(request{path: "/v1/nodes", cookie: true, origin: "null"}), refuse, 403, ""},
		{"https origin", in(request{path: "/v1/nodes", cookie: true, origin: "https://127.0.0.1:8080"}), refuse, 403, ""},
		{"dotdot", in(request{path: "/v1/../x", cookie: true}), refuse, 400, ".."},

		// Writes: the dashboard's Origin, or no Origin and the mark.
		{"write with origin", in(request{method: http.MethodPost, path: "/v1/workflows", cookie: true, origin: self}), proxy, 0, ""},
		{"write with mark", in(request{method: http.MethodPost, path: "/v1/workflows", cookie: true, marked: true}), proxy, 0, ""},
		{"write with both", in(request{method: http.MethodPost, path: "/v1/workflows:plan", cookie: true, marked: true, origin: self}), proxy, 0, ""},
		{"delete with mark", in(request{method: http.MethodDelete, path: "/v1/nodes/n1", cookie: true, marked: true}), proxy, 0, ""},
		{"write bare", in(request{method: http.MethodPost, path: "/v1/workflows", cookie: true}), refuse, 403, HeaderMark},
		{"write cross-origin", in(request{method: http.MethodPost, path: "/v1/workflows", cookie: true, origin: "http://evil.example"}), refuse, 403, ""},
		{"write cross-origin marked", in(request{method: http.MethodPost, path: "/v1/workflows", cookie: true, marked: true, origin: "http://127.0.0.1.evil.example"}), refuse, 403, ""},
		{"write to an asset", in(request{method: http.MethodPost, path: "/index.html", cookie: true, marked: true}), refuse, 405, "API only"},
		{"write to the session", in(request{method: http.MethodPost, path: sessionPath, cookie: true, marked: true}), refuse, 405, ""},
		{"put", in(request{method: http.MethodPut, path: "/v1/nodes/n1", cookie: true, marked: true}), refuse, 405, "PUT"},
		{"options", in(request{method: http.MethodOptions, path: "/v1/nodes", cookie: true, origin: "http://evil.example"}), refuse, 403, ""},
		{"trace", in(request{method: "TRACE", path: "/", cookie: true}), refuse, 405, ""},
	} {
		t.Run(c.name, func(t *testing.T) {
			d := g.decide(c.req)
			if d.action != c.action || d.status != c.status || !strings.Contains(d.why, c.why) {
				t.Fatalf("decide(%+v) = %v %d %q, want %v %d with %q", c.req, d.action, d.status, d.why, c.action, c.status, c.why)
			}
		})
	}
}

func TestGuardHosts(t *testing.T) {
	for _, c := range []struct {
		host, port string
		want       string
	}{
		{"127.0.0.1", "8080", "127.0.0.1:8080 localhost:8080 [::1]:8080"},
		{"::1", "80", "[::1]:80 127.0.0.1:80 localhost:80"},
		{"127.0.0.2", "1", "127.0.0.2:1 127.0.0.1:1 localhost:1 [::1]:1"},
	} {
		if got := strings.Join(newGuard(c.host, c.port).hosts, " "); got != c.want && !sameSet(got, c.want) {
			t.Errorf("newGuard(%s, %s).hosts = %s, want %s", c.host, c.port, got, c.want)
		}
	}
}

func sameSet(a, b string) bool {
	fa, fb := strings.Fields(a), strings.Fields(b)
	if len(fa) != len(fb) {
		return false
	}
	m := map[string]bool{}
	for _, x := range fa {
		m[x] = true
	}
	for _, x := range fb {
		if !m[x] {
			return false
		}
	}
	return true
}

func TestCheckListen(t *testing.T) {
	for _, c := range []struct {
		addr string
		bad  string // a part of the error, "" when accepted
	}{
		{"127.0.0.1:0", ""},
		{"127.0.0.1:8080", ""},
		{"127.1.2.3:8080", ""},
		{"[::1]:8080", ""},
		{"localhost:8080", ""},
		{"0.0.0.0:8080", "not a loopback address"},
		{":8080", "not a loopback address"},
		{"[::]:8080", "not a loopback address"},
		{"192.168.1.10:8080", "not a loopback address"},
		{"example.com:8080", "not a loopback address"},
		{"localhost.evil.example:8080", "not a loopback address"},
		{"127.0.0.1", "not host:port"},
		{"127.0.0.1:http", "port must be a number"},
		{"127.0.0.1:70000", "port must be a number"},
		{"", "not host:port"},
	} {
		err := CheckListen(c.addr)
		if (c.bad == "") != (err == nil) || (err != nil && !strings.Contains(err.Error(), c.bad)) {
			t.Errorf("CheckListen(%q) = %v, want %q", c.addr, err, c.bad)
		}
	}
	if got := listenAddr("localhost:0"); got != "127.0.0.1:0" {
		t.Errorf("listenAddr(localhost:0) = %s", got)
	}
}

func TestControllerOrder(t *testing.T) {
	now := time.Unix(1000, 0)
	ago := func(s int) time.Time { return now.Add(-time.Duration(s) * time.Second) }
	const failedFor = 30 * time.Second
	for _, c := range []struct {
		name   string
		listed []string
		failed map[string]time.Time
		want   string
	}{
		{"as listed", []string{"a", "b", "c"}, nil, "a b c"},
		{"one", []string{"a"}, nil, "a"},
		{"first failed: last", []string{"a", "b", "c"}, map[string]time.Time{"a": ago(1)}, "b c a"},
		{"failed long ago: back in order", []string{"a", "b", "c"}, map[string]time.Time{"a": ago(31)}, "a b c"},
		{"just at the bound: back", []string{"a", "b"}, map[string]time.Time{"a": ago(30)}, "a b"},
		{"two failed: the older first", []string{"a", "b", "c"}, map[string]time.Time{"a": ago(1), "b": ago(10)}, "c b a"},
		{"all failed", []string{"a", "b", "c"}, map[string]time.Time{"a": ago(5), "b": ago(1), "c": ago(9)}, "c a b"},
		{"unknown failure ignored", []string{"a", "b"}, map[string]time.Time{"z": ago(1)}, "a b"},
		{"none", nil, nil, ""},
	} {
		got := strings.Join(controllerOrder(c.listed, c.failed, now, failedFor), " ")
		if got != c.want {
			t.Errorf("%s: controllerOrder = %q, want %q", c.name, got, c.want)
		}
	}
}
