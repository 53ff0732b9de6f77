package dashboard

import (
	"context"
	"crypto/tls"
	"errors"
	"fmt"
	"log/slog"
	"net"
	"net/http"
	"net/http/httputil"
	"sort"
	"strings"
	"sync"
	"time"

	"google.golang.org/genproto/googleapis/rpc/errdetails"
	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/status"
	"google.golang.org/protobuf/encoding/protojson"

	apiv1 "github.com/deckhandhq/deckhand/proto/deckhand/api/v1"
)

// controllerOrder is the order the controllers are tried in: as listed, except that those
// that failed within failedFor come last, the one that failed longest ago first (it is the
// likeliest to be back).
func controllerOrder(listed []string, failed map[string]time.Time, now time.Time, failedFor time.Duration) []string {
	var good, bad []string
	for _, c := range listed {
		if t, ok := failed[c]; ok && now.Sub(t) < failedFor {
			bad = append(bad, c)
		} else {
			good = append(good, c)
		}
	}
	sort.SliceStable(bad, func(i, j int) bool { return failed[bad[i]].Before(failed[bad[j]]) })
	return append(good, bad...)
}

// upstreamHost stands for "whichever controller answers" in proxied URLs: every
// connection is dialled by controllers.dial, which picks the controller.
const upstreamHost = "deckhand-controller"

// controllers dials the first controller that answers, mTLS with the credential's
// certificate, offering h2 and http/1.1 (the controllers route a connection that offers
// http/1.1 to their REST API).
type controllers struct {
	listed    []string
	tls       *tls.Config
	timeout   time.Duration
	failedFor time.Duration
	now       func() time.Time

	mu     sync.Mutex
	failed map[string]time.Time
}

func (c *controllers) order() []string {
	c.mu.Lock()
	defer c.mu.Unlock()
	return controllerOrder(c.listed, c.failed, c.now(), c.failedFor)
}

func (c *controllers) mark(addr string, err error) {
	c.mu.Lock()
	defer c.mu.Unlock()
	if err != nil {
		c.failed[addr] = c.now()
	} else {
		delete(c.failed, addr)
	}
}

// unreachableError says why no controller answered.
type unreachableError struct{ tried []string }

func (e *unreachableError) Error() string {
	return "no controller answered (" + strings.Join(e.tried, "; ") + "): check that deckhand-controller runs and --controller"
}

// dial is the proxy transport's DialTLSContext: it ignores addr (upstreamHost).
func (c *controllers) dial(ctx context.Context, network, _ string) (net.Conn, error) {
	var tried []string
	for _, addr := range c.order() {
		conn, err := c.dialOne(ctx, network, addr)
		if ctx.Err() != nil { // the request went away: no word on the controller
			if conn != nil {
				_ = conn.Close()
			}
			return nil, ctx.Err()
		}
		c.mark(addr, err)
		if err == nil {
			return conn, nil
		}
		tried = append(tried, addr+": "+err.Error())
	}
	return nil, &unreachableError{tried: tried}
}

func (c *controllers) dialOne(ctx context.Context, network, addr string) (net.Conn, error) {
	cfg := c.tls.Clone()
	if cfg.ServerName == "" {
		host, _, err := net.SplitHostPort(addr)
		if err != nil {
			return nil, err
		}
		cfg.ServerName = host
	}
	cfg.NextProtos = []string{"h2", "http/1.1"}
	ctx, cancel := context.WithTimeout(ctx, c.timeout)
	defer cancel()
	d := tls.Dialer{Config: cfg}
	return d.DialContext(ctx, network, addr)
}

// newProxy passes API requests to the controllers: the path and query as they are, no
// cookie, no authorization and no header of the dashboard's; each response flushed as it
// comes (a watch is a stream of JSON lines).
func newProxy(c *controllers, cfg Config) (*httputil.ReverseProxy, *http.Transport) {
	tr := &http.Transport{
		DialTLSContext:    c.dial,
		ForceAttemptHTTP2: true,
		MaxIdleConns:      4,
		IdleConnTimeout:   90 * time.Second,
	}
	return &httputil.ReverseProxy{
		Rewrite: func(pr *httputil.ProxyRequest) {
			out := pr.Out
			out.URL.Scheme, out.URL.Host, out.Host = "https", upstreamHost, upstreamHost
			for _, h := range []string{"Cookie", "Authorization", "Proxy-Authorization", "Origin", "Referer", HeaderMark} {
				out.Header.Del(h)
			}
		},
		Transport:     tr,
		FlushInterval: -1,
		ModifyResponse: func(resp *http.Response) error {
			resp.Header.Del("Set-Cookie")
			for h := range securityHeaders {
				resp.Header.Del(h) // the dashboard's own are set already
			}
			return nil
		},
		ErrorHandler: func(w http.ResponseWriter, r *http.Request, err error) {
			if r.Context().Err() != nil {
				return // the page went away
			}
			var mbe *http.MaxBytesError
			if errors.As(err, &mbe) {
				writeStatus(w, http.StatusRequestEntityTooLarge, codes.InvalidArgument, apiv1.ErrorReason_ERROR_REASON_INVALID_ARGUMENT,
					fmt.Sprintf("the request body is over %d bytes", mbe.Limit))
				return
			}
			cfg.Logger.Debug("dashboard: proxy", "path", r.URL.Path, "err", err)
			writeStatus(w, http.StatusBadGateway, codes.Unavailable, apiv1.ErrorReason_ERROR_REASON_UNSPECIFIED, err.Error())
		},
		// A stream the page closed ends its copy with an error: not worth more than debug.
		ErrorLog: slog.NewLogLogger(cfg.Logger.Handler(), slog.LevelDebug),
	}, tr
}

// writeStatus answers with a google.rpc.Status body, as the controllers' REST API does, so
// the UI reads every error one way.
func writeStatus(w http.ResponseWriter, httpCode int, code codes.Code, reason apiv1.ErrorReason, msg string) {
	st := status.New(code, msg)
	if reason != apiv1.ErrorReason_ERROR_REASON_UNSPECIFIED {
		if d, err := st.WithDetails(&errdetails.ErrorInfo{Reason: reason.String(), Domain: errorDomain}); err == nil {
			st = d
		}
	}
	b, _ := protojson.Marshal(st.Proto())
	w.Header().Set("Content-Type", "application/json")
	w.WriteHeader(httpCode)
	_, _ = w.Write(b)
}

// errorDomain is the ErrorInfo domain of Deckhand's errors.
const errorDomain = "deckhand.dev"
