package controller

import (
	"context"
	"crypto/tls"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"net"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"sync"
	"syscall"
	"time"

	"google.golang.org/grpc"
	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/credentials"
	"google.golang.org/grpc/health"
	healthpb "google.golang.org/grpc/health/grpc_health_v1"
	"google.golang.org/grpc/keepalive"
	"google.golang.org/grpc/reflection"
	"google.golang.org/grpc/status"
	"google.golang.org/protobuf/proto"

	"github.com/deckhandhq/deckhand/controller/api"
	"github.com/deckhandhq/deckhand/controller/audit"
	usercreds "github.com/deckhandhq/deckhand/controller/credentials"
	"github.com/deckhandhq/deckhand/controller/kubeconfigs"
	"github.com/deckhandhq/deckhand/controller/nodes"
	"github.com/deckhandhq/deckhand/controller/rest"
	"github.com/deckhandhq/deckhand/controller/sessions"
	"github.com/deckhandhq/deckhand/controller/tasks"
	"github.com/deckhandhq/deckhand/controller/tokens"
	"github.com/deckhandhq/deckhand/controller/transfers"
	"github.com/deckhandhq/deckhand/controller/workflows"
	"github.com/deckhandhq/deckhand/internal/backoff"
	"github.com/deckhandhq/deckhand/internal/bounded"
	"github.com/deckhandhq/deckhand/internal/clientconfig"
	"github.com/deckhandhq/deckhand/internal/netmux"
	"github.com/deckhandhq/deckhand/internal/pki"
	agentv1 "github.com/deckhandhq/deckhand/proto/deckhand/agent/v1"
	apiv1 "github.com/deckhandhq/deckhand/proto/deckhand/api/v1"
	clusterv1 "github.com/deckhandhq/deckhand/proto/deckhand/cluster/v1"
	"github.com/deckhandhq/deckhand/store"
	"github.com/deckhandhq/deckhand/store/raftstore"
)

// Controller is one running replica.
type Controller struct {
	cfg       Config
	id        string
	ln        net.Listener
	mux       *netmux.Mux
	store     backend
	raft      *raftstore.Store // nil with --store etcd
	srv       *grpc.Server
	inproc    *netmux.InProcess // the REST gateway's connections to srv
	rest      *rest.Gateway
	health    *health.Server
	ca        *pki.CA
	clientTLS *tls.Config
	dial      func(context.Context, string) (net.Conn, error)

	nodes       *nodes.Registry
	tokens      *tokens.Manager
	audit       *audit.Trail
	credentials *usercreds.Manager
	sessions    *sessions.Registry
	tracker     *sessions.Tracker
	tasks       *tasks.Service
	dispatch    *tasks.Dispatcher
	workflows   *workflows.Service
	engine      *workflows.Engine
	limits      *sessions.Limiter
	public      *api.PublicLimiter
	metrics     *metrics
	log         *slog.Logger // cfg.Logger, every value bounded

	metricsLn net.Listener
	debugLn   net.Listener // --debug-addr: pprof, loopback only

	// stopping ends with Run: every streaming call ends with it (endStreams), so a stop
	// does not wait for watches and sessions that never end by themselves.
	stopping context.Context
	stop     context.CancelFunc

	peersMu sync.Mutex
	peers   map[string]*grpc.ClientConn
}

// New validates cfg, takes the listen port, sets up the CA and opens the store
// (bootstrapping, joining or restarting). Every failure is one line that says what is wrong
// and how to fix it, and leaves the data dir as it was.
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
	c := &Controller{cfg: cfg, ln: ln, dial: cfg.Dial, peers: map[string]*grpc.ClientConn{}}
	if c.dial == nil {
		var d net.Dialer
		c.dial = func(ctx context.Context, addr string) (net.Conn, error) { return d.DialContext(ctx, "tcp", addr) }
	}
	if cfg.MetricsListen != "" {
		if c.metricsLn, err = net.Listen("tcp", cfg.MetricsListen); err != nil {
			_ = ln.Close()
			return nil, fmt.Errorf("--metrics-listen %s: %v; choose a free port", cfg.MetricsListen, errors.Unwrap(err))
		}
	}
	if cfg.DebugListen != "" {
		if c.debugLn, err = net.Listen("tcp", cfg.DebugListen); err != nil {
			_ = ln.Close()
			if c.metricsLn != nil {
				_ = c.metricsLn.Close()
			}
			return nil, fmt.Errorf("--debug-addr %s: %v; choose a free port", cfg.DebugListen, errors.Unwrap(err))
		}
	}
	if err := c.open(ctx); err != nil {
		_ = ln.Close()
		if c.metricsLn != nil {
			_ = c.metricsLn.Close()
		}
		if c.debugLn != nil {
			_ = c.debugLn.Close()
		}
		return nil, err
	}
	return c, nil
}

// backend is what the controller needs from a store: the KV store, leadership and the ID of
// the cluster whose state it holds.
type backend interface {
	store.Store
	store.Elector
	ClusterID() string
}

func (c *Controller) open(ctx context.Context) error {
	cfg := c.cfg
	id, err := raftstore.ResolveID(cfg.DataDir, cfg.Name)
	if err != nil {
		return err
	}
	c.id = id
	var st backend
	if cfg.Store == StoreEtcd {
		st, err = c.openEtcd(ctx)
	} else {
		st, err = c.openRaft(ctx)
	}
	if err != nil {
		return err
	}
	c.store = st
	return c.wire(st)
}

// serveTLS issues this replica's certificate and starts the TLS port (gRPC, and raft by
// ALPN with the embedded store).
func (c *Controller) serveTLS() error {
	host, _, _ := net.SplitHostPort(c.cfg.advertise())
	serverTLS, clientTLS, err := c.ca.ReplicaTLS(c.id, []string{host})
	if err != nil {
		return fmt.Errorf("issue the replica certificate: %w", err)
	}
	c.clientTLS = clientTLS
	c.mux = netmux.New(c.ln, serverTLS, pki.IsReplica)
	go c.mux.Serve()
	return nil
}

func (c *Controller) openRaft(ctx context.Context) (backend, error) {
	cfg := c.cfg
	ca, fresh, err := c.resolveCA(ctx)
	if err != nil {
		return nil, err
	}
	c.ca = ca
	if err := c.serveTLS(); err != nil {
		return nil, err
	}
	rc := cfg.Raft
	rc.ID = c.id
	rc.Dir = cfg.DataDir
	rc.Advertise = cfg.advertise()
	rc.Listener = c.mux.Raft()
	rc.Join = cfg.Join
	rc.JoinTimeout = cfg.JoinTimeout
	rc.Logger = cfg.Logger
	clientTLS := c.clientTLS
	rc.RaftDial = func(ctx context.Context, addr string) (net.Conn, error) {
		return netmux.DialRaft(ctx, c.dial, addr, clientTLS)
	}
	rc.GRPCDialOptions = c.peerDialOptions()
	st, err := raftstore.Open(ctx, rc)
	if err != nil {
		c.mux.Close()
		return nil, err
	}
	c.raft = st
	if fresh {
		if err := writeLocalCA(cfg.DataDir, ca); err != nil {
			_ = st.Close()
			c.mux.Close()
			return nil, err
		}
	}
	return st, nil
}

// Limits on every connection to the gRPC API (netmux bounds the TLS handshake and the
// connections without a client certificate).
const (
	// ConnectionTimeout bounds the time from the end of the TLS handshake to the client's
	// HTTP/2 preface.
	ConnectionTimeout = 10 * time.Second
	// MaxConnectionIdle closes a connection that has had no call for this long.
	MaxConnectionIdle = 5 * time.Minute
	// KeepaliveMinTime is the shortest interval between client keepalive pings; a client
	// pinging more often is disconnected.
	KeepaliveMinTime = 30 * time.Second
	// flowWindow is the HTTP/2 flow-control window of every stream and connection: what a
	// client may send ahead of the handler reading it.
	flowWindow = 1 << 20
)

func (c *Controller) wire(st backend) error {
	cfg := c.cfg
	id := c.id
	// Log lines may quote requests and agents' messages: none echoes more than a bounded
	// length of any value.
	c.log = slog.New(bounded.Handler(cfg.Logger.Handler(), bounded.MaxLogValue))
	log := c.log
	c.nodes = nodes.New(st, nil)
	c.tokens = tokens.New(st, nil)
	c.credentials = usercreds.New(st, func() *pki.CA { return c.ca }, nil, log)
	c.sessions = sessions.NewRegistry(nil)
	c.tracker = sessions.NewTracker(sessions.TrackerConfig{Interval: cfg.Heartbeat, NotReadyAfter: cfg.NotReadyAfter, LostAfter: cfg.LostAfter}, c.nodes, c.sessions, nil, log)
	c.tasks = tasks.New(st, c.nodes, nil)
	c.dispatch = tasks.NewDispatcher(c.tasks, c.sessions, log)
	c.workflows = workflows.New(st, c.nodes, c.tasks, nil)
	c.engine = workflows.NewEngine(c.workflows, log)
	// A step's result is recorded in the write that ends the step when this replica leads.
	c.dispatch.Taker = c.engine
	// The peers' routes updates are stored without their lists: filled as they are sent.
	c.dispatch.Filler = workflows.NewRouteFiller(st)
	c.limits = sessions.NewLimiter(log, nil)
	c.engine.Retention = tasks.Retention{Period: cfg.TaskRetention, Count: cfg.TaskRetentionCount}
	c.public = api.NewPublicLimiter(nil)
	c.audit = audit.New(st, id, log)
	c.metrics = newMetrics(c)
	c.stopping, c.stop = context.WithCancel(context.Background())

	c.srv = grpc.NewServer(append([]grpc.ServerOption{
		grpc.ChainStreamInterceptor(c.endStreams),
		grpc.Creds(netmux.ServerCredentials()),
		// Thousands of mostly idle agent sessions (make bench, docs/benchmarks.md): write
		// buffers are released between writes; reads go straight to the TLS connection,
		// which buffers a record already; fixed flow-control windows (1 MiB, where the
		// default estimator grows to 16 MiB) spare every heartbeat the estimator's ping.
		grpc.SharedWriteBuffer(true),
		grpc.ReadBufferSize(0),
		grpc.WriteBufferSize(8 << 10),
		grpc.InitialWindowSize(flowWindow),
		grpc.InitialConnWindowSize(flowWindow),
		grpc.MaxRecvMsgSize(sessions.MaxMessageBytes),
		// A connection that finished TLS must start HTTP/2 within ConnectionTimeout, and one
		// without calls is closed after MaxConnectionIdle (clients reconnect on their next
		// call; agents always hold their session stream).
		grpc.ConnectionTimeout(ConnectionTimeout),
		grpc.KeepaliveParams(keepalive.ServerParameters{MaxConnectionIdle: MaxConnectionIdle}),
		grpc.KeepaliveEnforcementPolicy(keepalive.EnforcementPolicy{MinTime: KeepaliveMinTime}),
	}, c.interceptors()...)...)
	c.health = health.NewServer()
	healthpb.RegisterHealthServer(c.srv, c.health)
	reflection.Register(c.srv)
	if c.raft != nil {
		c.raft.Register(c.srv)
		apiv1.RegisterMemberServiceServer(c.srv, api.NewMemberServer(raftMembers{c.raft}))
	} else {
		apiv1.RegisterMemberServiceServer(c.srv, api.NewMemberServer(presenceMembers{c}))
	}
	nodeServer := api.NewNodeServer(c.nodes)
	nodeServer.Workflows = c.workflows
	apiv1.RegisterNodeServiceServer(c.srv, nodeServer)
	apiv1.RegisterAuditServiceServer(c.srv, &api.AuditServer{Trail: c.audit})
	apiv1.RegisterTokenServiceServer(c.srv, api.NewTokenServer(c.tokens, c))
	apiv1.RegisterCredentialServiceServer(c.srv, &api.CredentialServer{Credentials: c.credentials, Cluster: c, CAPEM: func() []byte { return c.ca.CertPEM }})
	uploads := transfers.New()
	agentv1.RegisterAgentServiceServer(c.srv, &api.AgentServer{
		CA: func() *pki.CA { return c.ca }, Tokens: c.tokens, Nodes: c.nodes, Sessions: c.sessions, Tasks: c.dispatch,
		Limits: c.limits, Cluster: c, Transfers: uploads, ReplicaID: id, Heartbeat: cfg.Heartbeat, CertValidity: cfg.AgentCertValidity, Log: log,
	})
	apiv1.RegisterTaskServiceServer(c.srv, &api.TaskServer{Tasks: c.tasks, Workflows: c.workflows, Nodes: c.nodes, Store: st})
	apiv1.RegisterWorkflowServiceServer(c.srv, &api.WorkflowServer{Workflows: c.workflows, Store: st,
		Kubeconfigs: kubeconfigs.New(st, c.nodes, c.tasks, c.workflows),
		Transfers:   uploads, Tasks: c.tasks, Nodes: c.nodes, Address: cfg.advertise()})
	clusterv1.RegisterPeerServiceServer(c.srv, &api.PeerServer{Tracker: c.tracker, Tokens: c.tokens, Store: st, Log: log})
	c.metrics.srv.InitializeMetrics(c.srv)
	c.inproc = netmux.NewInProcess()
	gw, err := rest.New(c.inproc, c.srv, c.credentials.Revoked, log)
	if err != nil {
		return fmt.Errorf("REST gateway: %w", err)
	}
	c.rest = gw
	return nil
}

// resolveCA returns the cluster CA: from the data dir, from a running replica (joining with
// a controller token), or a new one (bootstrapping). fresh means it is not on disk yet.
func (c *Controller) resolveCA(ctx context.Context) (*pki.CA, bool, error) {
	cfg := c.cfg
	local, err := loadLocalCA(cfg.DataDir)
	if err != nil {
		return nil, false, err
	}
	if local != nil {
		if cfg.CACertHash != "" && local.Hash() != strings.ToLower(cfg.CACertHash) {
			return nil, false, fmt.Errorf("data dir %s belongs to another cluster (CA %s) than --ca-cert-hash %s: use an empty --data-dir to join that cluster, or drop --join and --ca-cert-hash to restart the old one", cfg.DataDir, local.Hash(), cfg.CACertHash)
		}
		return local, false, nil
	}
	if _, err := os.Stat(filepath.Join(cfg.DataDir, "member.json")); err == nil {
		return nil, false, fmt.Errorf("data dir %s has cluster state but no pki/ca.crt and pki/ca.key: restore them from a backup, or start with an empty --data-dir", cfg.DataDir)
	}
	if len(cfg.Join) == 0 {
		ca, err := pki.NewCA("deckhand-ca")
		return ca, true, err
	}
	if cfg.Token == "" {
		return nil, false, errors.New("--join with an empty data dir needs --token: create one with deckctl token create --purpose controller")
	}
	ca, err := c.fetchCA(ctx)
	return ca, true, err
}

// fetchCA takes the cluster CA from a running replica with a controller join token. While
// the cluster is starting (nothing listens yet, no leader, the CA not published) it retries
// with backoff until --join-timeout, logging each wait in one line; when every --join
// address refuses for good (a wrong token, another CA) it fails at once.
func (c *Controller) fetchCA(ctx context.Context) (*pki.CA, error) {
	cfg := c.cfg
	var ca *pki.CA
	waiting := func(attempt int, wait time.Duration, err error) {
		cfg.Logger.Info("waiting for the cluster to join", "step", "fetch the cluster CA", "attempt", attempt, "retry_in", wait, "err", err)
	}
	err := backoff.Retry(ctx, cfg.JoinTimeout, fetchCATimeout*time.Duration(len(cfg.Join)), waiting, func(ctx context.Context) error {
		var err error
		ca, err = fetchCAOnce(ctx, cfg.Join, cfg.Token, cfg.CACertHash, c.id, c.dial)
		return err
	})
	switch {
	case err == nil:
		return ca, nil
	case backoff.IsPermanent(err):
		return nil, fmt.Errorf("%w: %v", raftstore.ErrJoinRefused, err)
	case errors.Is(err, raftstore.ErrJoinUnreachable):
		return nil, err
	}
	return nil, fmt.Errorf("%w (%v); check the --join address, --token and --ca-cert-hash, or allow more time with --join-timeout", raftstore.ErrJoinUnreachable, err)
}

// fetchCATimeout bounds one FetchCA call.
const fetchCATimeout = 5 * time.Second

// fetchCAOnce asks every join address in turn until one hands over the CA. It fails
// permanently (backoff.Permanent) only when every address refused for good: one stale or
// foreign address must not end a join that a later address would serve.
func fetchCAOnce(ctx context.Context, join []string, token, pin, id string, dial func(context.Context, string) (net.Conn, error)) (*pki.CA, error) {
	pin, _ = pki.ParseHash(pin)
	var round backoff.Round
	for _, addr := range join {
		creds := &handshakeErr{TransportCredentials: credentials.NewTLS(pki.PinnedTLS(pin))}
		cc, err := grpc.NewClient("passthrough:///"+addr, grpc.WithTransportCredentials(creds), grpc.WithContextDialer(dial))
		if err != nil {
			round.Fail(addr, err, true) // a malformed address
			continue
		}
		cctx, cancel := context.WithTimeout(ctx, fetchCATimeout)
		resp, err := clusterv1.NewPeerServiceClient(cc).FetchCA(cctx, &clusterv1.FetchCARequest{Token: token, ReplicaId: id})
		cancel()
		_ = cc.Close()
		if err != nil {
			msg, permanent := fetchCAFailure(err, creds.get())
			round.Fail(addr, errors.New(msg), permanent)
			continue
		}
		ca, err := pki.LoadCA(resp.GetCaCertPem(), resp.GetCaKeyPem())
		if err != nil {
			round.Fail(addr, fmt.Errorf("the CA it sent cannot be loaded: %w", err), true)
			continue
		}
		if ca.Hash() != pin {
			round.Fail(addr, fmt.Errorf("its CA does not match --ca-cert-hash %s", pin), true)
			continue
		}
		return ca, nil
	}
	return nil, round.Err()
}

// fetchCAFailure classifies one address's failed FetchCA: what to tell the user, and
// whether waiting cannot change it. handshake is why the TLS handshake failed, if it did: a
// certificate that does not match the pin (another cluster's controller, a stale address)
// is permanent, a connection broken mid-handshake (a controller starting) is not. Otherwise
// the gRPC code decides (raftstore.JoinErrorPermanent): a wrong token is permanent; no
// listener, no leader, the CA not yet published, a rate limit or an unexpected error are not.
func fetchCAFailure(err, handshake error) (msg string, permanent bool) {
	if handshake != nil && !isNetErr(handshake) {
		return fmt.Sprintf("TLS handshake failed: %v; check --join and --ca-cert-hash (a stale address may now serve another cluster)", handshake), true
	}
	msg = statusMessage(err)
	switch status.Code(err) {
	case codes.Unauthenticated, codes.NotFound, codes.PermissionDenied:
		return msg + " (check --token)", true
	}
	return msg, raftstore.JoinErrorPermanent(err)
}

// handshakeErr remembers why the last TLS handshake failed, to tell a wrong CA pin (which
// waiting cannot heal) from a controller that is not up yet.
type handshakeErr struct {
	credentials.TransportCredentials
	mu  sync.Mutex
	err error
}

func (h *handshakeErr) ClientHandshake(ctx context.Context, authority string, conn net.Conn) (net.Conn, credentials.AuthInfo, error) {
	c, info, err := h.TransportCredentials.ClientHandshake(ctx, authority, conn)
	if err != nil {
		h.mu.Lock()
		h.err = err
		h.mu.Unlock()
	}
	return c, info, err
}

func (h *handshakeErr) get() error {
	h.mu.Lock()
	defer h.mu.Unlock()
	return h.err
}

// isNetErr: the connection broke during the handshake (the peer is starting or stopping).
func isNetErr(err error) bool {
	var ne net.Error
	return errors.Is(err, io.EOF) || errors.Is(err, io.ErrUnexpectedEOF) || errors.Is(err, syscall.ECONNRESET) || errors.Is(err, context.DeadlineExceeded) || errors.Is(err, context.Canceled) || errors.As(err, &ne)
}

func (c *Controller) peerDialOptions() []grpc.DialOption {
	return []grpc.DialOption{grpc.WithTransportCredentials(credentials.NewTLS(c.clientTLS)), grpc.WithContextDialer(c.dial)}
}

// adminConfLoop writes admin.conf once the cluster CA is published in the store (by the
// first leader), so a controller token made with it can be used at once by a joining
// controller. Then it keeps the file's controller list current as replicas join and
// leave, so a copy of it keeps working when this replica is gone.
func (c *Controller) adminConfLoop(ctx context.Context) {
	path := filepath.Join(c.cfg.DataDir, "admin.conf")
	for {
		if _, err := os.Stat(path); err == nil {
			break
		}
		kv, _, err := c.store.Get(ctx, api.CAKey, store.Stale())
		if err == nil {
			var rec clusterv1.CARecord
			if proto.Unmarshal(kv.Value, &rec) == nil && string(rec.GetCertPem()) == string(c.ca.CertPEM) {
				if err := c.writeAdminConf(ctx, path); err != nil {
					c.cfg.Logger.Error("cannot write admin.conf; fix the data dir and restart to get one", "path", path, "err", err)
					return
				}
				break
			}
		}
		if !backoff.Sleep(ctx, adminConfPoll) {
			return
		}
	}
	for backoff.Sleep(ctx, adminConfSync) {
		if err := c.syncAdminConf(ctx, path); err != nil {
			c.cfg.Logger.Debug("cannot update the controllers in admin.conf; will retry", "path", path, "err", err)
		}
	}
}

const (
	// adminConfPoll is how often adminConfLoop looks for the published CA.
	adminConfPoll = 100 * time.Millisecond
	// adminConfSync is how often adminConfLoop compares admin.conf's controllers with the
	// replicas.
	adminConfSync = time.Second
)

func (c *Controller) writeAdminConf(ctx context.Context, path string) error {
	certPEM, keyPEM, err := c.ca.IssueClient("admin", pki.RoleAdmin, pki.ClientValidity)
	if err != nil {
		return err
	}
	if err := clientconfig.New(adminConfControllers(c.cfg.advertise(), c.Endpoints(ctx)), c.ca.CertPEM, certPEM, keyPEM).Write(path); err != nil {
		return fmt.Errorf("write %s: %w", path, err)
	}
	return nil
}

// syncAdminConf rewrites admin.conf's controller list when the replicas changed.
func (c *Controller) syncAdminConf(ctx context.Context, path string) error {
	cfg, err := clientconfig.Load(path)
	if err != nil {
		return err
	}
	want := adminConfControllers(c.cfg.advertise(), c.Endpoints(ctx))
	if slices.Equal(cfg.Controllers, want) {
		return nil
	}
	cfg.Controllers = want
	return cfg.Write(path)
}

// adminConfControllers is the controller list of this replica's admin.conf: itself first,
// then the other replicas in their configuration's order.
func adminConfControllers(self string, replicas []string) []string {
	out := []string{self}
	for _, r := range replicas {
		if r != "" && !slices.Contains(out, r) {
			out = append(out, r)
		}
	}
	return out
}

// CAHash implements api.Cluster.
func (c *Controller) CAHash() string { return c.ca.Hash() }

// Endpoints implements api.Cluster: every replica's address.
func (c *Controller) Endpoints(ctx context.Context) []string {
	var out []string
	if c.raft != nil {
		members, _ := c.raft.Members()
		for _, m := range members {
			out = append(out, m.GetAddress())
		}
	} else {
		ps, _ := c.presence(ctx)
		for _, p := range ps {
			out = append(out, p.Address)
		}
	}
	if len(out) == 0 {
		return []string{c.cfg.advertise()}
	}
	return out
}

// Run serves until ctx ends, then stops gracefully.
func (c *Controller) Run(ctx context.Context) error {
	log := c.cfg.Logger
	errc := make(chan error, 1)
	go func() { errc <- c.srv.Serve(c.mux.GRPC()) }()
	go func() { _ = c.srv.Serve(c.inproc) }()
	go func() {
		if err := c.rest.Serve(c.mux.HTTP()); err != nil {
			log.Error("REST gateway stopped", "err", err)
		}
	}()
	c.health.SetServingStatus("", healthpb.HealthCheckResponse_SERVING)
	log.Info("controller serving", "address", c.cfg.advertise(), "replica", c.id, "cluster", c.store.ClusterID(), "ca", c.ca.Hash())

	var wg sync.WaitGroup
	loops := map[string]func(context.Context){
		"leader":           c.leaderLoop,
		"report":           c.reportLoop,
		"node-watch":       c.nodeWatchLoop,
		"dispatch":         c.dispatch.Run,
		"metrics-http":     c.serveMetrics,
		"debug-http":       c.serveDebug,
		"presence":         c.presenceLoop,
		"credentials":      c.credentials.Run,
		"admin-conf":       c.recordAdminConfLoop,
		"write-admin-conf": c.adminConfLoop,
	}
	runCtx, cancel := context.WithCancel(ctx)
	for name, fn := range loops {
		wg.Add(1)
		go func() {
			defer wg.Done()
			fn(runCtx)
			log.Debug("loop stopped", "loop", name)
		}()
	}

	var removed <-chan struct{} // stays nil (never ready) with --store etcd
	if c.raft != nil {
		removed = c.raft.Removed()
	}
	var err error
	select {
	case <-ctx.Done():
	case err = <-errc:
	case <-removed:
		// Removed by deckctl members remove: stop answering at once, so nobody keeps
		// talking to a replica that is no longer part of the cluster.
		err = c.raft.Err()
		log.Error("stopping: this replica was removed from the controller cluster", "replica", c.id)
		c.health.Shutdown()
		c.srv.Stop()
	}
	cancel()
	c.health.Shutdown()
	c.stop() // watches and agent sessions end now; their clients reconnect elsewhere
	// REST calls under way finish as gRPC calls do (GracefulStop waits for the gateway's
	// in-process connection, which closes once they have).
	restDone := make(chan struct{})
	go func() {
		sctx, scancel := context.WithTimeout(context.Background(), 5*time.Second)
		_ = c.rest.Shutdown(sctx)
		scancel()
		close(restDone)
	}()
	stopped := make(chan struct{})
	go func() { c.srv.GracefulStop(); close(stopped) }()
	select {
	case <-stopped:
	case <-time.After(5 * time.Second):
		c.srv.Stop()
	}
	<-restDone
	wg.Wait()
	c.closePeers()
	_ = c.store.Close()
	c.mux.Close()
	log.Info("controller stopped")
	return err
}

// endStreams runs a streaming call under a context that also ends when the controller
// stops, and then tells the client to go to another controller (Unavailable).
func (c *Controller) endStreams(srv any, ss grpc.ServerStream, _ *grpc.StreamServerInfo, handler grpc.StreamHandler) error {
	ctx, cancel := context.WithCancel(ss.Context())
	defer cancel()
	defer context.AfterFunc(c.stopping, cancel)()
	err := handler(srv, &stoppableStream{ServerStream: ss, ctx: ctx})
	if c.stopping.Err() != nil && ss.Context().Err() == nil {
		return status.Error(codes.Unavailable, "the controller is stopping; reconnect to another controller")
	}
	return err
}

// stoppableStream is a server stream with the context of endStreams.
type stoppableStream struct {
	grpc.ServerStream
	ctx context.Context
}

func (s *stoppableStream) Context() context.Context { return s.ctx }

// leaderLoop campaigns and runs leader-only work under the leadership context.
// maintainInterval is how often the leader looks at the certificates and backups.
const maintainInterval = time.Minute

func (c *Controller) leaderLoop(ctx context.Context) {
	cfg := c.cfg
	log := c.cfg.Logger
	for ctx.Err() == nil {
		l, err := c.store.Campaign(ctx)
		if err != nil {
			return
		}
		log.Info("leading the controller cluster", "replica", c.id)
		// Leader work stops when leadership is lost or the controller shuts down.
		lctx, cancel := context.WithCancel(l.Context())
		stop := context.AfterFunc(ctx, cancel)
		if err := c.publishCA(lctx); err != nil && lctx.Err() == nil {
			log.Error("publishing the CA failed", "err", err)
		}
		engineDone := make(chan struct{})
		go func() {
			defer close(engineDone)
			c.engine.Run(lctx, l.Fence())
		}()
		maintainDone := make(chan struct{})
		go func() {
			defer close(maintainDone)
			c.workflows.Maintain(lctx, l.Fence(), maintainInterval, log)
		}()
		auditDone := make(chan struct{})
		go func() {
			defer close(auditDone)
			c.audit.Maintain(lctx, maintainInterval, cfg.AuditRetention, cfg.AuditRetentionCount)
		}()
		c.tracker.Run(lctx, l.Fence())
		cancel()
		<-engineDone
		<-maintainDone
		<-auditDone
		stop()
		cancel()
		if ctx.Err() != nil {
			// Shutting down: hand leadership over instead of waiting for an election timeout.
			rctx, rcancel := context.WithTimeout(context.Background(), 2*time.Second)
			if err := l.Resign(rctx); err != nil {
				log.Debug("resign on shutdown", "err", err)
			}
			rcancel()
		}
		log.Info("leadership ended", "replica", c.id)
	}
}

// publishCA puts the CA into the store so every replica can serve FetchCA and sign.
func (c *Controller) publishCA(ctx context.Context) error {
	kv, _, err := c.store.Get(ctx, api.CAKey)
	if err == nil {
		var rec clusterv1.CARecord
		if err := proto.Unmarshal(kv.Value, &rec); err != nil {
			return err
		}
		if string(rec.GetCertPem()) != string(c.ca.CertPEM) {
			return fmt.Errorf("the store holds a different CA than %s/pki: this replica's pki does not belong to the cluster", c.cfg.DataDir)
		}
		return nil
	}
	if !errors.Is(err, store.ErrNotFound) {
		return err
	}
	b, err := proto.Marshal(&clusterv1.CARecord{CertPem: c.ca.CertPEM, KeyPem: c.ca.KeyPEM})
	if err != nil {
		return err
	}
	_, err = c.store.Txn(ctx, store.Txn{If: []store.Compare{store.Absent(api.CAKey)}, Then: []store.Op{store.Put(api.CAKey, b)}})
	if errors.Is(err, store.ErrConflict) {
		return nil
	}
	return err
}

// reportLoop sends this replica's session digest to the leader once per heartbeat interval.
func (c *Controller) reportLoop(ctx context.Context) {
	tick := time.NewTicker(c.cfg.Heartbeat)
	defer tick.Stop()
	lastOK := time.Now()
	for {
		select {
		case <-ctx.Done():
			return
		case <-tick.C:
		}
		leader, err := c.store.Leader(ctx)
		switch {
		case err == nil && leader.ID == c.id:
			lastOK = time.Now() // the leader reads its own registry
			continue
		case err == nil && leader.Address != "":
			rctx, cancel := context.WithTimeout(ctx, c.cfg.Heartbeat)
			var resp *clusterv1.ReportSessionsResponse
			resp, err = clusterv1.NewPeerServiceClient(c.peer(leader.Address)).ReportSessions(rctx, &clusterv1.ReportSessionsRequest{ReplicaId: c.id, Sessions: c.sessions.Digest()})
			cancel()
			if err == nil && resp.GetAccepted() {
				lastOK = time.Now()
				continue
			}
		}
		if ctx.Err() != nil {
			return
		}
		// Cut off from the leader: the agents here would go NotReady while healthy. Send
		// them elsewhere; they reconnect across the controller list.
		if cut := time.Since(lastOK); cut > c.cfg.NotReadyAfter/2 && c.sessions.Count() > 0 {
			c.cfg.Logger.Warn("cannot reach the leader; closing agent sessions so they move to another controller", "for", cut.Round(time.Millisecond), "sessions", c.sessions.Count(), "err", err)
			c.sessions.DropAll(errLeaderUnreachable)
			lastOK = time.Now()
		}
	}
}

var errLeaderUnreachable = fmt.Errorf("%w: this controller cannot reach the leader", api.ErrUnavailable)

// nodeWatchLoop ends the sessions of nodes that were deleted or re-enrolled elsewhere and
// forgets a deleted node's session budgets. Each list (at start, and after the watch ended,
// for example with ErrCompacted after a snapshot install) is reconciled with the sessions,
// so a change in the revisions the watch skipped is not missed.
func (c *Controller) nodeWatchLoop(ctx context.Context) {
	store.Follow(ctx, c.store, nodes.Prefix, store.Follower{
		Listed: func(kvs []*store.KV) { c.reconcileSessions(ctx, kvs) },
		Event: func(ev store.Event) {
			name := strings.TrimPrefix(ev.KV.Key, nodes.Prefix)
			if ev.Type == store.EventDelete {
				c.limits.Forget(name) // a deleted node's budgets go with it, on every replica
			}
			s := c.sessions.Get(name)
			if s == nil {
				return
			}
			if ev.Type == store.EventDelete {
				c.sessions.Drop(name, errors.New("node was deleted"))
				return
			}
			// A renewed node keeps its session until it reconnects with the new certificate.
			if n, err := nodes.Decode(ev.KV); err == nil && !nodes.ValidSerial(n, s.Serial) {
				c.sessions.Drop(name, errors.New("node was enrolled again with a new certificate"))
			}
		},
	})
}

// reconcileSessions ends the sessions the listed node records no longer accept and forgets
// the budgets of nodes no longer listed (sessions.Reconcile). The list is this replica's
// copy: each change is confirmed with a current read before it is acted on, so a session
// opened on a record newer than the list is kept.
func (c *Controller) reconcileSessions(ctx context.Context, kvs []*store.KV) {
	records := make(map[string]*apiv1.Node, len(kvs))
	for _, kv := range kvs {
		n, err := nodes.Decode(kv)
		if err != nil {
			n = nil // unreadable: left alone
		}
		records[strings.TrimPrefix(kv.Key, nodes.Prefix)] = n
	}
	open := c.sessions.Serials()
	drop, forget := sessions.Reconcile(open, c.limits.Nodes(), records)
	current := func(name string) (*apiv1.Node, bool, error) {
		n, _, err := c.nodes.Get(ctx, name)
		if errors.Is(err, nodes.ErrNotFound) {
			return nil, false, nil
		}
		return n, err == nil, err
	}
	for _, name := range forget {
		if _, exists, err := current(name); err == nil && !exists {
			c.limits.Forget(name)
		}
	}
	for name, why := range drop {
		n, exists, err := current(name)
		if err != nil || (exists && nodes.ValidSerial(n, open[name])) {
			continue // the next list decides
		}
		if exists {
			why = sessions.StaleReenrolled
		} else {
			why = sessions.StaleDeleted
		}
		c.log.Info("ending the session of a node whose record changed while this replica's watch was interrupted", "node", name, "reason", why)
		c.sessions.DropIf(name, open[name], errors.New(why))
	}
}

func (c *Controller) peer(addr string) *grpc.ClientConn {
	c.peersMu.Lock()
	defer c.peersMu.Unlock()
	if cc, ok := c.peers[addr]; ok {
		return cc
	}
	cc, err := grpc.NewClient("passthrough:///"+addr, c.peerDialOptions()...)
	if err != nil {
		panic(err) // only malformed options fail here
	}
	c.peers[addr] = cc
	return cc
}

func (c *Controller) closePeers() {
	c.peersMu.Lock()
	defer c.peersMu.Unlock()
	for a, cc := range c.peers {
		_ = cc.Close()
		delete(c.peers, a)
	}
}

// Addr is the address the controller listens on.
func (c *Controller) Addr() string { return c.ln.Addr().String() }

// ID is the replica's name.
func (c *Controller) ID() string { return c.id }

// CA is the cluster CA (tests and tools that mint credentials).
func (c *Controller) CA() *pki.CA { return c.ca }

// Store is the replica's store (tools and tests that read or seed records).
func (c *Controller) Store() store.Store { return c.store }

// IsLeader reports whether this replica currently leads.
func (c *Controller) IsLeader() bool {
	l, err := c.store.Leader(context.Background())
	return err == nil && l.ID == c.id
}
