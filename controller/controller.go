package controller

import (
	"context"
	"errors"
	"fmt"
	"net"
	"syscall"
	"time"

	"google.golang.org/grpc"
	"google.golang.org/grpc/health"
	healthpb "google.golang.org/grpc/health/grpc_health_v1"
	"google.golang.org/grpc/reflection"

	"github.com/deckhandhq/deckhand/controller/api"
	"github.com/deckhandhq/deckhand/internal/netmux"
	apiv1 "github.com/deckhandhq/deckhand/proto/deckhand/api/v1"
	"github.com/deckhandhq/deckhand/store/raftstore"
)

// Controller is one running replica.
type Controller struct {
	cfg    Config
	ln     net.Listener
	mux    *netmux.Mux
	store  *raftstore.Store
	srv    *grpc.Server
	health *health.Server
}

// New validates cfg, takes the listen port and opens the store (bootstrapping, joining or
// restarting). Every failure is one line that says what is wrong and how to fix it, and
// leaves the data dir as it was.
func New(ctx context.Context, cfg Config) (*Controller, error) {
	if err := cfg.Validate(); err != nil {
		return nil, err
	}
	ln, err := net.Listen("tcp", cfg.Listen)
	if err != nil {
		if errors.Is(err, syscall.EADDRINUSE) {
			return nil, fmt.Errorf("--listen %s: the port is already in use by another process; stop it or choose another --listen", cfg.Listen)
		}
		return nil, fmt.Errorf("--listen %s: %v; choose an address of this host", cfg.Listen, errors.Unwrap(err))
	}
	c := &Controller{cfg: cfg, ln: ln, mux: netmux.New(ln)}
	go c.mux.Serve()

	rc := cfg.Raft
	rc.ID = cfg.Name
	rc.Dir = cfg.DataDir
	rc.Advertise = cfg.advertise()
	rc.Listener = c.mux.Raft()
	rc.Join = cfg.Join
	rc.Logger = cfg.Logger
	st, err := raftstore.Open(ctx, rc)
	if err != nil {
		c.mux.Close()
		return nil, err
	}
	c.store = st

	c.srv = grpc.NewServer()
	c.health = health.NewServer()
	healthpb.RegisterHealthServer(c.srv, c.health)
	reflection.Register(c.srv)
	st.Register(c.srv)
	apiv1.RegisterMemberServiceServer(c.srv, api.NewMemberServer(raftMembers{st}))
	return c, nil
}

// Run serves until ctx ends, then stops gracefully.
func (c *Controller) Run(ctx context.Context) error {
	log := c.cfg.Logger
	errc := make(chan error, 1)
	go func() { errc <- c.srv.Serve(c.mux.GRPC()) }()
	c.health.SetServingStatus("", healthpb.HealthCheckResponse_SERVING)
	log.Info("controller serving", "address", c.cfg.advertise(), "replica", c.store.ID(), "cluster", c.store.ClusterID())

	go c.leaderLoop(ctx)

	var err error
	select {
	case <-ctx.Done():
	case err = <-errc:
	}
	c.health.Shutdown()
	stopped := make(chan struct{})
	go func() { c.srv.GracefulStop(); close(stopped) }()
	select {
	case <-stopped:
	case <-time.After(5 * time.Second):
		c.srv.Stop()
	}
	_ = c.store.Close()
	c.mux.Close()
	log.Info("controller stopped")
	return err
}

// leaderLoop campaigns and runs leader-only work under the leadership context.
func (c *Controller) leaderLoop(ctx context.Context) {
	log := c.cfg.Logger
	for ctx.Err() == nil {
		l, err := c.store.Campaign(ctx)
		if err != nil {
			return
		}
		log.Info("leading the controller cluster", "replica", c.store.ID())
		<-l.Context().Done()
		log.Info("leadership lost", "replica", c.store.ID())
	}
}

// Addr is the address the controller listens on.
func (c *Controller) Addr() string { return c.ln.Addr().String() }
