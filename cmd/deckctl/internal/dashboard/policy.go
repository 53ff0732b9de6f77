package dashboard

import (
	"fmt"
	"net/http"
	"slices"
	"strings"
)

// The guard's decisions about one request: pure functions of what the request carries,
// its secrets already compared in constant time by the caller.

// HeaderMark is the header that carries this run's token on every call of the page to the
// dashboard's API (/v1/..., /openapi.json, /dashboard/session). The page keeps the token in
// its sessionStorage, which is per origin (port included), so no other page can read it;
// and a page of another origin cannot send a custom header without a CORS preflight, which
// the dashboard never grants. It is not a cookie: a browser keeps cookies per host, not
// per port, so any other server on 127.0.0.1 the browser visits would receive one.
const HeaderMark = "X-Deckhand-Dashboard"

// tokenState is what the request's HeaderMark says.
type tokenState int

const (
	noToken      tokenState = iota // no HeaderMark
	validToken                     // this run's token
	invalidToken                   // a value, not this run's token
)

// request is what the guard decides on.
type request struct {
	method, host, path string
	// origin is the Origin header, "" when absent.
	origin string
	// token is what HeaderMark carries, compared with this run's token by the caller.
	token tokenState
}

// action is what to do with a request.
type action int

const (
	refuse  action = iota // answer status with why
	proxy                 // pass it to a controller
	asset                 // serve the embedded UI
	session               // describe the session (who the dashboard acts as)
)

func (a action) String() string {
	return [...]string{"refuse", "proxy", "asset", "session"}[a]
}

// decision is the guard's answer.
type decision struct {
	action action
	status int    // with refuse
	why    string // with refuse: what failed and what to do
}

// guard decides for one dashboard: hosts are the Host values it answers to
// (127.0.0.1:PORT, localhost:PORT, [::1]:PORT and the address it listens on).
type guard struct {
	hosts []string
}

// newGuard is the guard of a dashboard listening on host:port.
func newGuard(host, port string) guard {
	hosts := []string{"127.0.0.1:" + port, "localhost:" + port, "[::1]:" + port}
	if h := hostPort(host, port); !slices.Contains(hosts, h) {
		hosts = append([]string{h}, hosts...)
	}
	return guard{hosts: hosts}
}

func hostPort(host, port string) string {
	if strings.Contains(host, ":") {
		return "[" + host + "]:" + port
	}
	return host + ":" + port
}

// apiPath says whether path goes to the controllers.
func apiPath(path string) bool {
	return path == "/openapi.json" || strings.HasPrefix(path, "/v1/")
}

// sessionPath describes the session (the dashboard's own, not the controllers').
const sessionPath = "/dashboard/session"

// needsToken says whether path is the dashboard's API: what only this run's token opens.
func needsToken(path string) bool {
	return apiPath(path) || path == sessionPath
}

func refused(status int, format string, args ...any) decision {
	return decision{action: refuse, status: status, why: fmt.Sprintf(format, args...)}
}

// decide says what to do with r. In order: the Host must be one of the dashboard's
// (defeats DNS rebinding: a page of evil.example resolving to 127.0.0.1 sends Host
// evil.example); an Origin, when sent, must be the dashboard's; the API and the session
// need this run's token in HeaderMark, which is also the defence against cross-site
// request forgery (another site's page cannot send it); then the method and the route.
//
// The static UI (index.html, its CSS, scripts and icon) is served without the token: it
// holds nothing secret, and it is what reads the token. The ?token= of the printed URL is
// the page's to read, not the server's: nothing is exchanged or redirected, / and
// /?token=... serve the same page, and a token in the URL of an API call opens nothing.
func (g guard) decide(r request) decision {
	if !slices.Contains(g.hosts, strings.ToLower(r.host)) {
		return refused(http.StatusForbidden, "Host %q is not this dashboard's: open http://%s/ (a foreign name that resolves to this machine is refused)", bound(r.host), g.hosts[0])
	}
	if r.origin != "" && !g.sameOrigin(r.origin) {
		return refused(http.StatusForbidden, "a request from %q is refused: only the dashboard's own page may call it", bound(r.origin))
	}
	if strings.Contains(r.path, "/../") || strings.HasSuffix(r.path, "/..") {
		return refused(http.StatusBadRequest, "the path %q has a .. segment", bound(r.path))
	}
	if needsToken(r.path) {
		switch r.token {
		case noToken:
			return refused(http.StatusUnauthorized, "no dashboard token in %s: open the URL deckctl dashboard printed (http://%s/?token=...)", HeaderMark, g.hosts[0])
		case invalidToken:
			return refused(http.StatusUnauthorized, "the token in %s is not this dashboard's (each run of deckctl dashboard prints a new one): open the URL it printed last", HeaderMark)
		}
	}
	switch r.method {
	case http.MethodGet, http.MethodHead:
	case http.MethodPost, http.MethodDelete:
		if !apiPath(r.path) {
			return refused(http.StatusMethodNotAllowed, "%s is allowed on the API only (/v1/...)", r.method)
		}
	default:
		return refused(http.StatusMethodNotAllowed, "method %s is not served", bound(r.method))
	}
	switch {
	case apiPath(r.path):
		return decision{action: proxy}
	case r.path == sessionPath:
		return decision{action: session}
	}
	return decision{action: asset}
}

// sameOrigin says whether origin is the dashboard's (http://HOST:PORT).
func (g guard) sameOrigin(origin string) bool {
	h, ok := strings.CutPrefix(strings.ToLower(origin), "http://")
	return ok && slices.Contains(g.hosts, h)
}

// bound cuts what the request said to a length fit for a message.
func bound(s string) string {
	if len(s) > 100 {
		s = s[:100] + "..."
	}
	return strings.ToValidUTF8(s, "?")
}
