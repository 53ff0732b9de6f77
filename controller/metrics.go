package controller

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"net/http"
	"sync"
	"time"

	grpcprom "github.com/grpc-ecosystem/go-grpc-middleware/providers/prometheus"
	"github.com/grpc-ecosystem/go-grpc-middleware/v2/interceptors"
	"github.com/grpc-ecosystem/go-grpc-middleware/v2/interceptors/auth"
	"github.com/grpc-ecosystem/go-grpc-middleware/v2/interceptors/logging"
	"github.com/grpc-ecosystem/go-grpc-middleware/v2/interceptors/recovery"
	"github.com/grpc-ecosystem/go-grpc-middleware/v2/interceptors/selector"
	"github.com/prometheus/client_golang/prometheus"
	"github.com/prometheus/client_golang/prometheus/promhttp"
	"google.golang.org/grpc"
	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/status"

	"github.com/deckhandhq/deckhand/controller/api"
	"github.com/deckhandhq/deckhand/internal/ratelimit"
	apiv1 "github.com/deckhandhq/deckhand/proto/deckhand/api/v1"
	"github.com/deckhandhq/deckhand/store"
)

type metrics struct {
	reg *prometheus.Registry
	srv *grpcprom.ServerMetrics

	callLogs     *ratelimit.Keyed
	suppressed   prometheus.Counter
	suppressedMu sync.Mutex
	suppressedBy map[string]int
}

func newMetrics(c *Controller) *metrics {
	m := &metrics{reg: prometheus.NewRegistry(), srv: grpcprom.NewServerMetrics(),
		callLogs:     ratelimit.NewKeyed(CallLogPerSecond, CallLogBurst, 4096, nil),
		suppressedBy: map[string]int{},
		suppressed: prometheus.NewCounter(prometheus.CounterOpts{Name: "deckhand_log_lines_suppressed_total",
			Help: "Lines of the call log not written because calls of that method and code were logged too often."}),
	}
	m.reg.MustRegister(m.suppressed, c.public.Collector())
	m.reg.MustRegister(prometheus.NewCounterFunc(prometheus.CounterOpts{Name: "deckhand_connections_refused_total",
		Help: "Connections closed at accept or after the TLS handshake because their source, or all sources together, held too many connections without a client certificate."},
		func() float64 {
			if c.mux == nil {
				return 0
			}
			r, _ := c.mux.Stats()
			return float64(r)
		}))
	m.reg.MustRegister(prometheus.NewCounterFunc(prometheus.CounterOpts{Name: "deckhand_tls_handshake_timeouts_total",
		Help: "Connections closed for not finishing their TLS handshake in time."},
		func() float64 {
			if c.mux == nil {
				return 0
			}
			_, t := c.mux.Stats()
			return float64(t)
		}))
	m.reg.MustRegister(m.srv, prometheus.NewGoCollector(), prometheus.NewProcessCollector(prometheus.ProcessCollectorOpts{}))
	m.reg.MustRegister(prometheus.NewGaugeFunc(prometheus.GaugeOpts{Name: "deckhand_agent_sessions", Help: "Agent sessions served by this replica."},
		func() float64 { return float64(c.sessions.Count()) }))
	m.reg.MustRegister(prometheus.NewGaugeFunc(prometheus.GaugeOpts{Name: "deckhand_raft_leader", Help: "1 when this replica leads the controller cluster."},
		func() float64 {
			if c.IsLeader() {
				return 1
			}
			return 0
		}))
	m.reg.MustRegister(prometheus.NewGaugeFunc(prometheus.GaugeOpts{Name: "deckhand_raft_applied_index", Help: "Last raft log index applied on this replica."},
		func() float64 {
			if c.raft == nil {
				return 0
			}
			return float64(c.raft.Info().GetAppliedIndex())
		}))
	m.reg.MustRegister(c.limits.Collector())
	m.reg.MustRegister(prometheus.NewCounterFunc(prometheus.CounterOpts{Name: "deckhand_task_records_deleted_total", Help: "Finished task records deleted by retention on this replica (while it led)."},
		func() float64 { return float64(c.tasks.Deleted()) }))
	for _, by := range []string{"step_write", "session"} {
		m.reg.MustRegister(prometheus.NewCounterFunc(prometheus.CounterOpts{Name: "deckhand_step_results_total",
			Help:        "Results of workflow steps' tasks received on this replica's sessions, by the write that recorded them: the leader's workflow pass that ends the step (step_write), or one of the session's own (session: on a follower, or not recorded by a pass in time).",
			ConstLabels: prometheus.Labels{"recorded_by": by}},
			func() float64 {
				byPass, bySession := c.engine.ResultsRecorded()
				if by == "session" {
					return float64(bySession)
				}
				return float64(byPass)
			}))
	}
	m.reg.MustRegister(&nodeStates{c: c, desc: prometheus.NewDesc("deckhand_nodes", "Enrolled nodes by liveness state.", []string{"state"}, nil)})
	m.reg.MustRegister(&certExpiry{c: c, desc: prometheus.NewDesc("deckhand_certificate_expiry_timestamp_seconds",
		"When each Kubernetes certificate a node holds expires (its facts: kubeadm's under /etc/kubernetes, the kubelet's), Unix seconds.", []string{"node", "cert"}, nil)})
	return m
}

// certExpiry reports the expiry of every certificate in the nodes' facts (at most
// facts.MaxCertificates per node) from the local copy of the store at scrape time.
type certExpiry struct {
	c    *Controller
	desc *prometheus.Desc
}

func (e *certExpiry) Describe(ch chan<- *prometheus.Desc) { ch <- e.desc }

func (e *certExpiry) Collect(ch chan<- prometheus.Metric) {
	all, err := e.c.nodes.List(context.Background(), store.Stale())
	if err != nil {
		return
	}
	for _, node := range all {
		seen := map[string]bool{}
		for _, cert := range node.GetFacts().GetCertificates() {
			if seen[cert.GetName()] { // one series per name, whatever an agent sent
				continue
			}
			seen[cert.GetName()] = true
			ch <- prometheus.MustNewConstMetric(e.desc, prometheus.GaugeValue, float64(cert.GetNotAfter().GetSeconds()), node.GetName(), cert.GetName())
		}
	}
}

// nodeStates counts nodes by state from the local copy of the store at scrape time.
type nodeStates struct {
	c    *Controller
	desc *prometheus.Desc
}

func (n *nodeStates) Describe(ch chan<- *prometheus.Desc) { ch <- n.desc }

func (n *nodeStates) Collect(ch chan<- prometheus.Metric) {
	all, err := n.c.nodes.List(context.Background(), store.Stale())
	if err != nil {
		return
	}
	counts := map[apiv1.NodeState]int{}
	for _, node := range all {
		counts[node.GetState()]++
	}
	for v, name := range apiv1.NodeState_name {
		if v == 0 {
			continue
		}
		ch <- prometheus.MustNewConstMetric(n.desc, prometheus.GaugeValue, float64(counts[apiv1.NodeState(v)]), name)
	}
}

// interceptors: recovery outermost, then metrics, logging (sampled per method and code, every
// value bounded), error messages bounded, the failure budget of the public methods,
// authentication (skipped for the public token-authenticated methods), ending the streams
// of a credential when it is revoked, and request validation.
func (c *Controller) interceptors() []grpc.ServerOption {
	log := c.log
	panicked := recovery.WithRecoveryHandlerContext(func(ctx context.Context, p any) error {
		method, _ := grpc.Method(ctx)
		log.Error("handler panicked", "method", method, "panic", p)
		return status.Error(codes.Internal, "internal error; the controller log has the details")
	})
	logOpts := []logging.Option{
		logging.WithLogOnEvents(logging.FinishCall),
		logging.WithLevels(func(code codes.Code) logging.Level {
			switch code {
			case codes.OK, codes.Canceled:
				return logging.LevelDebug
			case codes.Internal, codes.Unknown, codes.DataLoss:
				return logging.LevelError
			}
			return logging.LevelInfo
		}),
	}
	authn := api.Authenticator(c.credentials.Revoked)
	needsAuth := selector.MatchFunc(func(_ context.Context, cm interceptors.CallMeta) bool { return !api.Public[cm.FullMethod()] })
	return []grpc.ServerOption{
		grpc.ChainUnaryInterceptor(
			recovery.UnaryServerInterceptor(panicked),
			c.metrics.srv.UnaryServerInterceptor(),
			logging.UnaryServerInterceptor(c.metrics.callLog(log), logOpts...),
			api.BoundStatusUnary,
			c.public.Unary,
			api.AuditUnary(c.audit),
			selector.UnaryServerInterceptor(auth.UnaryServerInterceptor(authn), needsAuth),
			api.ValidateUnary,
		),
		grpc.ChainStreamInterceptor(
			recovery.StreamServerInterceptor(panicked),
			c.metrics.srv.StreamServerInterceptor(),
			logging.StreamServerInterceptor(c.metrics.callLog(log), logOpts...),
			api.BoundStatusStream,
			api.AuditStream(c.audit),
			selector.StreamServerInterceptor(auth.StreamServerInterceptor(authn), needsAuth),
			api.RevocableStreams(c.credentials.Hold),
			api.ValidateStream,
		),
	}
}

// The log of finished calls is sampled: per method and status code, at most CallLogBurst
// lines at once and CallLogPerSecond after that; the next line written says how many were
// suppressed, and deckhand_log_lines_suppressed_total counts them.
const (
	CallLogBurst     = 20
	CallLogPerSecond = 1
)

// callLog adapts l for the logging interceptor, sampled as above.
func (m *metrics) callLog(l *slog.Logger) logging.Logger {
	return logging.LoggerFunc(func(ctx context.Context, lvl logging.Level, msg string, fields ...any) {
		if !l.Enabled(ctx, slog.Level(lvl)) {
			return
		}
		var method, code string
		for i := 0; i+1 < len(fields); i += 2 {
			switch fields[i] {
			case "grpc.method", "grpc.service":
				method += fmt.Sprint(fields[i+1]) + "/"
			case "grpc.code":
				code = fmt.Sprint(fields[i+1])
			}
		}
		key := method + code
		if !m.callLogs.Take(key, 1) {
			m.suppressed.Inc()
			m.suppressedMu.Lock()
			if len(m.suppressedBy) < 4096 {
				m.suppressedBy[key]++
			}
			m.suppressedMu.Unlock()
			return
		}
		m.suppressedMu.Lock()
		n := m.suppressedBy[key]
		delete(m.suppressedBy, key)
		m.suppressedMu.Unlock()
		if n > 0 {
			fields = append(fields, "suppressed_similar", n)
		}
		l.Log(ctx, slog.Level(lvl), msg, fields...)
	})
}

// serveMetrics serves /metrics on MetricsListen until ctx ends.
func (c *Controller) serveMetrics(ctx context.Context) {
	ln := c.metricsLn
	if ln == nil {
		return
	}
	mux := http.NewServeMux()
	mux.Handle("/metrics", promhttp.HandlerFor(c.metrics.reg, promhttp.HandlerOpts{}))
	hs := &http.Server{Handler: mux, ReadHeaderTimeout: 5 * time.Second}
	go func() {
		<-ctx.Done()
		_ = hs.Close()
	}()
	if err := hs.Serve(ln); err != nil && !errors.Is(err, http.ErrServerClosed) {
		c.cfg.Logger.Error("metrics server", "err", err)
	}
}

// MetricsAddr is the address /metrics is served on, or "" when --metrics-listen is off.
func (c *Controller) MetricsAddr() string {
	if c.metricsLn == nil {
		return ""
	}
	return c.metricsLn.Addr().String()
}
