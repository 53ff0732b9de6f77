package dashboard

import (
	"fmt"
	"net/http"
	"slices"
	"strings"
)

// The guard's decisions about one request: pure functions of what the request carries,
// its secrets already compared in constant time by the caller.

// HeaderMark is the header the UI sends with every API call. A page of another origin
// cannot send it without a CORS preflight, which the dashboard never grants.
const HeaderMark = "X-Deckhand-Dashboard"

// tokenState is what the request's ?token= says.
type tokenState int

const (
	noToken      tokenState = iota // no token parameter
	validToken                     // this run's token
	invalidToken                   // a token, not this run's
)

// request is what the guard decides on.
type request struct {
	method, host, path string
	// origin is the Origin header, "" when absent.
	origin string
	// marked: the request carries HeaderMark: 1.
	marked bool
	token  tokenState
	// cookie: the request carries this run's session cookie.
	cookie bool
}

// action is what to do with a request.
type action int

const (
	refuse   action = iota // answer status with why
	exchange               // set the session cookie and redirect to the URL without the token
	proxy                  // pass it to a controller
	asset                  // serve the embedded UI
	session                // describe the session (who the dashboard acts as)
)

func (a action) String() string {
	return [...]string{"refuse", "exchange", "proxy", "asset", "session"}[a]
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

func refused(status int, format string, args ...any) decision {
	return decision{action: refuse, status: status, why: fmt.Sprintf(format, args...)}
}

// decide says what to do with r. In order: the Host must be one of the dashboard's
// (defeats DNS rebinding: a page of evil.example resolving to 127.0.0.1 sends Host
// evil.example); an Origin, when sent, must be the dashboard's; a token is exchanged for
// the cookie; without the cookie nothing is served; a write needs the dashboard's Origin,
// or no Origin and the mark (defeats cross-site request forgery); then the route.
func (g guard) decide(r request) decision {
	if !slices.Contains(g.hosts, strings.ToLower(r.host)) {
		return refused(http.StatusForbidden, "Host %q is not this dashboard's: open http://%s/ (a foreign name that resolves to this machine is refused)", bound(r.host), g.hosts[0])
	}
	if r.origin != "" && !g.sameOrigin(r.origin) {
		return refused(http.StatusForbidden, "a request from %q is refused: only the dashboard's own page may call it", bound(r.origin))
	}
	switch r.token {
	case validToken:
		if r.method != http.MethodGet && r.method != http.MethodHead {
			return refused(http.StatusMethodNotAllowed, "the token is exchanged with GET only")
		}
		return decision{action: exchange}
	case invalidToken:
		return refused(http.StatusUnauthorized, "this token is not this dashboard's (each run of deckctl dashboard prints a new one): open the URL it printed last")
	}
	if !r.cookie {
		return refused(http.StatusUnauthorized, "no dashboard session: open the URL deckctl dashboard printed (http://%s/?token=...)", g.hosts[0])
	}
	if strings.Contains(r.path, "/../") || strings.HasSuffix(r.path, "/..") {
		return refused(http.StatusBadRequest, "the path %q has a .. segment", bound(r.path))
	}
	switch r.method {
	case http.MethodGet, http.MethodHead:
	case http.MethodPost, http.MethodDelete:
		if !apiPath(r.path) {
			return refused(http.StatusMethodNotAllowed, "%s is allowed on the API only (/v1/...)", r.method)
		}
		if r.origin == "" && !r.marked {
			return refused(http.StatusForbidden, "a %s without an Origin header needs %s: 1 (the dashboard's page sends it; a page of another site cannot)", r.method, HeaderMark)
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
