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
}

func newAgentMetrics(a *Agent) *agentMetrics {
	m := &agentMetrics{
		reg:        prometheus.NewRegistry(),
		sessions:   prometheus.NewCounter(prometheus.CounterOpts{Name: "deckhand_agent_sessions_opened_total", Help: "Sessions opened with a controller (reconnects included)."}),
		heartbeats: prometheus.NewCounter(prometheus.CounterOpts{Name: "deckhand_agent_heartbeats_sent_total", Help: "Heartbeats sent."}),
	}
	m.reg.MustRegister(m.sessions, m.heartbeats, prometheus.NewGoCollector(), prometheus.NewProcessCollector(prometheus.ProcessCollectorOpts{}))
	m.reg.MustRegister(prometheus.NewGaugeFunc(prometheus.GaugeOpts{Name: "deckhand_agent_connected", Help: "1 while a session with a controller is open."},
		func() float64 {
			if a.Connected() != "" {
				return 1
			}
			return 0
		}))
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
