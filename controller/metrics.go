package controller

import (
	"context"
	"errors"
	"log/slog"
	"net/http"
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
	apiv1 "github.com/deckhandhq/deckhand/proto/deckhand/api/v1"
	"github.com/deckhandhq/deckhand/store"
)

type metrics struct {
	reg *prometheus.Registry
	srv *grpcprom.ServerMetrics
}

func newMetrics(c *Controller) *metrics {
	m := &metrics{reg: prometheus.NewRegistry(), srv: grpcprom.NewServerMetrics()}
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
	m.reg.MustRegister(&nodeStates{c: c, desc: prometheus.NewDesc("deckhand_nodes", "Enrolled nodes by liveness state.", []string{"state"}, nil)})
	return m
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

// interceptors: recovery outermost, then metrics, logging, authentication (skipped for the
// public token-authenticated methods) and request validation.
func (c *Controller) interceptors() []grpc.ServerOption {
	log := c.cfg.Logger
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
	needsAuth := selector.MatchFunc(func(_ context.Context, cm interceptors.CallMeta) bool { return !api.Public[cm.FullMethod()] })
	return []grpc.ServerOption{
		grpc.ChainUnaryInterceptor(
			recovery.UnaryServerInterceptor(panicked),
			c.metrics.srv.UnaryServerInterceptor(),
			logging.UnaryServerInterceptor(slogAdapter(log), logOpts...),
			selector.UnaryServerInterceptor(auth.UnaryServerInterceptor(api.Authenticate), needsAuth),
			api.ValidateUnary,
		),
		grpc.ChainStreamInterceptor(
			recovery.StreamServerInterceptor(panicked),
			c.metrics.srv.StreamServerInterceptor(),
			logging.StreamServerInterceptor(slogAdapter(log), logOpts...),
			selector.StreamServerInterceptor(auth.StreamServerInterceptor(api.Authenticate), needsAuth),
			api.ValidateStream,
		),
	}
}

func slogAdapter(l *slog.Logger) logging.Logger {
	return logging.LoggerFunc(func(ctx context.Context, lvl logging.Level, msg string, fields ...any) {
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
