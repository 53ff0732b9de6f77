package agent

import (
	"context"
	"errors"
	"net"
	"net/http"
	"time"

	"github.com/prometheus/client_golang/prometheus"
	"github.com/prometheus/client_golang/prometheus/promhttp"
)

type agentMetrics struct {
	reg        *prometheus.Registry
	sessions   prometheus.Counter
	heartbeats prometheus.Counter
	renewals   *prometheus.CounterVec
}

func newAgentMetrics(a *Agent) *agentMetrics {
	m := &agentMetrics{
		reg:        prometheus.NewRegistry(),
		sessions:   prometheus.NewCounter(prometheus.CounterOpts{Name: "deckhand_agent_sessions_opened_total", Help: "Sessions opened with a controller (reconnects included)."}),
		heartbeats: prometheus.NewCounter(prometheus.CounterOpts{Name: "deckhand_agent_heartbeats_sent_total", Help: "Heartbeats sent."}),
		renewals:   prometheus.NewCounterVec(prometheus.CounterOpts{Name: "deckhand_agent_certificate_renewals_total", Help: "Node certificate renewals by result (ok, failed)."}, []string{"result"}),
	}
	m.reg.MustRegister(m.sessions, m.heartbeats, prometheus.NewGoCollector(), prometheus.NewProcessCollector(prometheus.ProcessCollectorOpts{}))
	m.reg.MustRegister(prometheus.NewGaugeFunc(prometheus.GaugeOpts{Name: "deckhand_agent_connected", Help: "1 while a session with a controller is open."},
		func() float64 {
			if a.Connected() != "" {
				return 1
			}
			return 0
		}))
	m.reg.MustRegister(prometheus.NewGaugeFunc(prometheus.GaugeOpts{Name: "deckhand_agent_certificate_expiry_timestamp_seconds", Help: "When the node certificate expires (Unix time); the agent renews it after two thirds of its lifetime."},
		func() float64 {
			a.idMu.Lock()
			defer a.idMu.Unlock()
			if a.id == nil || a.id.tls == nil || len(a.id.tls.Certificates) == 0 || a.id.tls.Certificates[0].Leaf == nil {
				return 0
			}
			return float64(a.id.tls.Certificates[0].Leaf.NotAfter.Unix())
		}))
	m.reg.MustRegister(m.renewals)
	return m
}

// serveMetrics serves /metrics on ln until ctx ends.
func (a *Agent) serveMetrics(ctx context.Context, ln net.Listener) {
	mux := http.NewServeMux()
	mux.Handle("/metrics", promhttp.HandlerFor(a.metrics.reg, promhttp.HandlerOpts{}))
	hs := &http.Server{Handler: mux, ReadHeaderTimeout: 5 * time.Second}
	go func() {
		<-ctx.Done()
		_ = hs.Close()
	}()
	if err := hs.Serve(ln); err != nil && !errors.Is(err, http.ErrServerClosed) {
		a.log.Error("metrics server", "err", err)
	}
}
