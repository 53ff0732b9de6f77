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
	in := func(r request) request { // a request of the dashboard's page
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
	const ok = validToken
	for _, c := range []struct {
		name   string
		req    request
		action action
		status int
		why    string // a part of the refusal's message
	}{
		// Host: the dashboard's names only (DNS rebinding sends the attacker's name).
		{"page", in(request{}), asset, 0, ""},
		{"localhost", in(request{host: "localhost:8080"}), asset, 0, ""},
		{"LOCALHOST", in(request{host: "LOCALHOST:8080"}), asset, 0, ""},
		{"ipv6 loopback", in(request{host: "[::1]:8080"}), asset, 0, ""},
		{"rebinding name", in(request{host: "evil.example:8080"}), refuse, 403, `Host "evil.example:8080"`},
		{"rebinding name with the token", in(request{host: "evil.example:8080", path: "/v1/nodes", token: ok}), refuse, 403, "Host"},
		{"other port", in(request{host: "127.0.0.1:9090"}), refuse, 403, "open http://127.0.0.1:8080/"},
		{"no port", in(request{host: "127.0.0.1"}), refuse, 403, "Host"},
		{"no host", request{method: "GET", path: "/"}, refuse, 403, "Host"},
		{"bad host before all", request{method: "GET", host: "x", path: "/v1/nodes"}, refuse, 403, "Host"},

		// The static UI: served without the token (it holds nothing secret and reads it).
		{"asset", in(request{path: "/js/app.js"}), asset, 0, ""},
		{"css", in(request{path: "/app.css"}), asset, 0, ""},
		{"favicon", in(request{path: "/favicon.svg"}), asset, 0, ""},
		{"index", in(request{path: "/index.html"}), asset, 0, ""},
		{"asset with HEAD", in(request{method: http.MethodHead, path: "/js/api.js"}), asset, 0, ""},
		{"asset with the token", in(request{path: "/js/app.js", token: ok}), asset, 0, ""},
		{"asset with a wrong token", in(request{path: "/js/app.js", token: invalidToken}), asset, 0, ""},
		{"v1 without slash is no api", in(request{path: "/v1"}), asset, 0, ""},
		{"same-origin asset", in(request{path: "/js/app.js", origin: self}), asset, 0, ""},
		{"cross-origin asset", in(request{path: "/js/app.js", origin: "http://127.0.0.1:9090"}), refuse, 403, "only the dashboard's own page"},

		// The API and the session: this run's token in the header, nothing else.
		{"api without token", in(request{path: "/v1/nodes"}), refuse, 401, "open the URL deckctl dashboard printed (http://127.0.0.1:8080/?token=...)"},
		{"api with a wrong token", in(request{path: "/v1/nodes", token: invalidToken}), refuse, 401, "printed last"},
		{"openapi without token", in(request{path: "/openapi.json"}), refuse, 401, HeaderMark},
		{"session without token", in(request{path: sessionPath}), refuse, 401, "?token="},
		{"session with a wrong token", in(request{path: sessionPath, token: invalidToken}), refuse, 401, "not this dashboard's"},
		{"write without token", in(request{method: http.MethodPost, path: "/v1/workflows", origin: self}), refuse, 401, ""},
		{"delete without token", in(request{method: http.MethodDelete, path: "/v1/nodes/n1"}), refuse, 401, ""},
		{"write with a wrong token", in(request{method: http.MethodPost, path: "/v1/workflows", token: invalidToken, origin: self}), refuse, 401, ""},
		{"token before method", in(request{method: http.MethodPut, path: "/v1/nodes/n1"}), refuse, 401, ""},

		// Reads.
		{"api read", in(request{path: "/v1/nodes", token: ok}), proxy, 0, ""},
		{"api stream", in(request{path: "/v1/workflows/wf-1:watch", token: ok}), proxy, 0, ""},
		{"openapi", in(request{path: "/openapi.json", token: ok}), proxy, 0, ""},
		{"session", in(request{path: sessionPath, token: ok}), session, 0, ""},
		{"same-origin read", in(request{path: "/v1/nodes", token: ok, origin: self}), proxy, 0, ""},
		{"same-origin via localhost", in(request{host: "localhost:8080", path: "/v1/nodes", token: ok, origin: "http://localhost:8080"}), proxy, 0, ""},
		{"cross-origin read", in(request{path: "/v1/nodes", token: ok, origin: "http://evil.example"}), refuse, 403, "only the dashboard's own page"},
		{"other port's page", in(request{path: "/v1/nodes", token: ok, origin: "http://127.0.0.1:9090"}), refuse, 403, ""},
		{"null origin read", in(request{path: "/v1/nodes", token: ok, origin: "null"}), refuse, 403, ""},
		{"https origin", in(request{path: "/v1/nodes", token: ok, origin: "https://127.0.0.1:8080"}), refuse, 403, ""},
		{"dotdot", in(request{path: "/v1/../x", token: ok}), refuse, 400, ".."},
		{"dotdot at the end", in(request{path: "/js/.."}), refuse, 400, ".."},

		// Writes: the token, as every API call; on the API only.
		{"write", in(request{method: http.MethodPost, path: "/v1/workflows", token: ok}), proxy, 0, ""},
		{"write with origin", in(request{method: http.MethodPost, path: "/v1/workflows:plan", token: ok, origin: self}), proxy, 0, ""},
		{"delete", in(request{method: http.MethodDelete, path: "/v1/nodes/n1", token: ok}), proxy, 0, ""},
		{"write cross-origin", in(request{method: http.MethodPost, path: "/v1/workflows", token: ok, origin: "http://evil.example"}), refuse, 403, ""},
		{"write cross-origin look-alike", in(request{method: http.MethodPost, path: "/v1/workflows", token: ok, origin: "http://127.0.0.1.evil.example"}), refuse, 403, ""},
		{"write to an asset", in(request{method: http.MethodPost, path: "/index.html", token: ok}), refuse, 405, "API only"},
		{"write to an asset without token", in(request{method: http.MethodPost, path: "/index.html"}), refuse, 405, "API only"},
		{"write to the session", in(request{method: http.MethodPost, path: sessionPath, token: ok}), refuse, 405, ""},
		{"put", in(request{method: http.MethodPut, path: "/v1/nodes/n1", token: ok}), refuse, 405, "PUT"},
		{"preflight", in(request{method: http.MethodOptions, path: "/v1/nodes", origin: "http://evil.example"}), refuse, 403, ""},
		{"options", in(request{method: http.MethodOptions, path: "/"}), refuse, 405, ""},
		{"trace", in(request{method: "TRACE", path: "/"}), refuse, 405, ""},
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
