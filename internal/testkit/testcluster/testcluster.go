// Package testcluster runs real controllers and real agents in one test process: 3 (or N)
// controller replicas with raft over mTLS on loopback, and agents each with its own temp
// root and data dir. It can stop, restart and partition a controller and cut an agent's
// connections. Everything it starts is stopped with t.Cleanup.
package testcluster

import (
	"context"
	"crypto/rand"
	"crypto/tls"
	"errors"
	"log/slog"
	"net"
	"net/http"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"google.golang.org/grpc"
	"google.golang.org/grpc/credentials"
	"google.golang.org/protobuf/types/known/durationpb"

	"github.com/deckhandhq/deckhand/agent"
	"github.com/deckhandhq/deckhand/controller"
	"github.com/deckhandhq/deckhand/internal/clientconfig"
	"github.com/deckhandhq/deckhand/internal/pki"
	"github.com/deckhandhq/deckhand/internal/testkit/testnet"
	"github.com/deckhandhq/deckhand/internal/testkit/teststore"
	"github.com/deckhandhq/deckhand/internal/testkit/testwait"
	apiv1 "github.com/deckhandhq/deckhand/proto/deckhand/api/v1"
	"github.com/deckhandhq/deckhand/store"
)

// Timing is the liveness timing used in tests.
var Timing = struct {
	Heartbeat, NotReadyAfter, LostAfter time.Duration
}{200 * time.Millisecond, 1 * time.Second, 30 * time.Second}

// Controller is one replica.
type Controller struct {
	Dir  string
	Addr string
	c    *controller.Controller
	stop context.CancelFunc
	done chan struct{}
	err  error // what Run returned, once done is closed
}

// Exited reports whether the replica's Run returned on its own (not stopped by the test)
// and with what error.
func (c *Controller) Exited() (bool, error) {
	if c.done == nil {
		return false, nil
	}
	select {
	case <-c.done:
		return true, c.err
	default:
		return false, nil
	}
}

// Running reports whether the replica is up.
func (c *Controller) Running() bool { return c.c != nil }

// ID is the replica name.
func (c *Controller) ID() string { return c.c.ID() }

// Agent is one agent with its host root.
type Agent struct {
	Name string
	Root string
	Dir  string
	a    *agent.Agent
	stop context.CancelFunc
	done chan error
}

// Exited reports whether the agent's Run returned on its own, and with what error.
func (a *Agent) Exited() (bool, error) {
	if a.stop == nil {
		return false, nil // stopped by the test
	}
	select {
	case err := <-a.done:
		a.done <- err // keep it for StopAgent
		return true, err
	default:
		return false, nil
	}
}

// Connected is the controller the agent holds a session with, or "".
func (a *Agent) Connected() string {
	if a.a == nil {
		return ""
	}
	return a.a.Connected()
}

// Cluster is the whole thing.
type Cluster struct {
	t           testing.TB
	Net         *testnet.Network
	Controllers []*Controller
	Agents      map[string]*Agent
	joinToken   string
	caHash      string
	admin       *clientconfig.Config
	adminCC     *grpc.ClientConn
	// etcd, when set, runs every controller on this etcd (--store etcd) instead of raft.
	etcd *controller.EtcdConfig
	// configure, when set, changes each controller's config before it starts.
	configure func(*controller.Config)
}

// Store is the replica's store, to seed records a test cannot create through the API.
func (c *Controller) Store() store.Store { return c.c.Store() }

// NewEtcd starts n controllers sharing one existing etcd (--store etcd) under a prefix of
// their own; leadership comes from etcd.
func NewEtcd(t testing.TB, n int, endpoints []string) *Cluster {
	t.Helper()
	prefix := "/deckhand-" + strings.ToLower(rand.Text()[:8])
	c := &Cluster{t: t, Net: testnet.New(), Agents: map[string]*Agent{}, etcd: &controller.EtcdConfig{Endpoints: endpoints, Prefix: prefix}}
	t.Cleanup(c.stopAll)
	for i := range n {
		ctl := &Controller{Dir: c.dir()}
		c.Controllers = append(c.Controllers, ctl)
		if err := c.start(ctl, nil); err != nil {
			t.Fatalf("start controller %d: %v", i, err)
		}
		if i == 0 {
			c.loadAdmin(ctl)
		}
	}
	c.WaitLeader()
	return c
}

// loadAdmin takes the cluster's admin credential and CA pin from the first controller, once
// it wrote admin.conf (after publishing the CA in the store).
func (c *Cluster) loadAdmin(ctl *Controller) {
	c.t.Helper()
	var cfg *clientconfig.Config
	WaitFor(c.t, 20*time.Second, func() error {
		var err error
		cfg, err = clientconfig.Load(filepath.Join(ctl.Dir, "admin.conf"))
		return err
	})
	c.admin = cfg
	c.caHash = ctl.c.CA().Hash()
}

// New starts n controllers: the first bootstraps, the others join with a controller token.
func New(t testing.TB, n int) *Cluster {
	t.Helper()
	return NewWith(t, n, nil)
}

// NewWith is New with configure applied to each controller's config before it starts.
func NewWith(t testing.TB, n int, configure func(*controller.Config)) *Cluster {
	t.Helper()
	c := &Cluster{t: t, Net: testnet.New(), Agents: map[string]*Agent{}, configure: configure}
	t.Cleanup(c.stopAll)
	for i := range n {
		ctl := &Controller{Dir: c.dir()}
		c.Controllers = append(c.Controllers, ctl)
		var join []string
		if i > 0 {
			join = []string{c.Controllers[0].Addr}
		}
		if err := c.start(ctl, join); err != nil {
			t.Fatalf("start controller %d: %v", i, err)
		}
		if i == 0 {
			c.loadAdmin(ctl)
			WaitFor(t, 20*time.Second, func() error {
				ctx, cancel := context.WithTimeout(context.Background(), 2*time.Second)
				defer cancel()
				resp, err := apiv1.NewTokenServiceClient(c.Client()).CreateToken(ctx, &apiv1.CreateTokenRequest{Purpose: apiv1.TokenPurpose_TOKEN_PURPOSE_CONTROLLER, Ttl: durationpb.New(time.Hour)})
				if err != nil {
					return err
				}
				c.joinToken = resp.GetSecret()
				return nil
			})
		}
	}
	c.adminCC = nil // the next Client() knows every controller's address
	c.WaitLeader()
	return c
}

func (c *Cluster) start(ctl *Controller, join []string) error {
	addr := ctl.Addr
	if addr == "" {
		ln, err := net.Listen("tcp", "127.0.0.1:0")
		if err != nil {
			return err
		}
		addr = ln.Addr().String()
		ln.Close()
	}
	cfg := controller.DefaultConfig()
	cfg.DataDir = ctl.Dir
	cfg.Listen = addr
	cfg.Join = join
	cfg.Token = c.joinToken
	cfg.CACertHash = c.caHash
	if len(join) == 0 {
		cfg.CACertHash = ""
	}
	cfg.Heartbeat, cfg.NotReadyAfter, cfg.LostAfter = Timing.Heartbeat, Timing.NotReadyAfter, Timing.LostAfter
	cfg.Raft.HeartbeatTimeout = 300 * time.Millisecond
	cfg.Raft.ElectionTimeout = 300 * time.Millisecond
	cfg.Raft.LeaderLeaseTimeout = 150 * time.Millisecond
	cfg.Raft.ApplyTimeout = 3 * time.Second
	cfg.Logger = Logger()
	cfg.Dial = c.Net.Dialer(addr)
	cfg.MetricsListen = "127.0.0.1:0" // Cluster.Metric scrapes it
	if c.etcd != nil {
		cfg.Store, cfg.Etcd = controller.StoreEtcd, *c.etcd
		cfg.Join, cfg.Token, cfg.CACertHash = nil, "", ""
	}
	if c.configure != nil {
		c.configure(&cfg)
	}
	var (
		ctrl *controller.Controller
		err  error
	)
	// A restarted replica's port may linger for a moment.
	deadline := time.Now().Add(5 * time.Second)
	for {
		ctrl, err = controller.New(context.Background(), cfg)
		if err == nil || time.Now().After(deadline) || !isAddrInUse(err) {
			break
		}
		time.Sleep(20 * time.Millisecond)
	}
	if err != nil {
		return err
	}
	ctx, cancel := context.WithCancel(context.Background())
	ctl.Addr, ctl.c, ctl.stop, ctl.done = addr, ctrl, cancel, make(chan struct{})
	done := ctl.done
	go func() {
		defer close(done)
		ctl.err = ctrl.Run(ctx)
	}()
	return nil
}

func isAddrInUse(err error) bool {
	return err != nil && strings.Contains(err.Error(), "already in use")
}

// Logger is quiet unless DECKHAND_TEST_LOG is set.
func Logger() *slog.Logger { return teststore.Logger() }

// Stop stops controller i.
func (c *Cluster) Stop(i int) {
	ctl := c.Controllers[i]
	if ctl.c == nil {
		return
	}
	ctl.stop()
	<-ctl.done
	ctl.c = nil
}

// Kill stops controller i as a crash would look to the others: its connections are cut
// first, so it can neither hand over leadership nor say goodbye.
func (c *Cluster) Kill(i int) {
	c.Partition(i, true)
	c.Stop(i)
	c.Partition(i, false)
}

// Restart starts a stopped controller i again from its data dir.
func (c *Cluster) Restart(i int) {
	c.t.Helper()
	if err := c.start(c.Controllers[i], nil); err != nil {
		c.t.Fatalf("restart controller %d: %v", i, err)
	}
}

// TryRestart starts a stopped controller i again from its data dir and returns why it
// could not start.
func (c *Cluster) TryRestart(i int) error { return c.start(c.Controllers[i], nil) }

// SplitFromPeers cuts (or heals) controller i from the other controllers only: agents
// still reach it.
func (c *Cluster) SplitFromPeers(i int, on bool) {
	for j, other := range c.Controllers {
		if j != i {
			c.Net.Block(c.Controllers[i].Addr, other.Addr, on)
		}
	}
}

// Partition isolates (or heals) controller i from everyone.
func (c *Cluster) Partition(i int, on bool) { c.Net.Isolate(c.Controllers[i].Addr, on) }

// Leader returns the index of the leading controller, or -1.
func (c *Cluster) Leader() int {
	for i, ctl := range c.Controllers {
		if ctl.c != nil && ctl.c.IsLeader() {
			return i
		}
	}
	return -1
}

// WaitLeader waits for a leader and returns its index.
func (c *Cluster) WaitLeader() int {
	c.t.Helper()
	var li int
	WaitFor(c.t, 20*time.Second, func() error {
		li = c.Leader()
		if li < 0 {
			return errors.New("no leader")
		}
		return nil
	})
	return li
}

// Addrs lists the addresses of all controllers.
func (c *Cluster) Addrs() []string {
	var out []string
	for _, ctl := range c.Controllers {
		out = append(out, ctl.Addr)
	}
	return out
}

// CAHash is the cluster CA pin.
func (c *Cluster) CAHash() string { return c.caHash }

// AdminTLS is the admin credential written by the first controller.
func (c *Cluster) AdminTLS() *clientconfig.Config { return c.admin }

// Client is a connection with the admin role to whichever controller accepts.
func (c *Cluster) Client() *grpc.ClientConn {
	if c.adminCC == nil {
		c.adminCC = c.ClientAs(pki.RoleAdmin, "admin")
	}
	return c.adminCC
}

// ClientAs dials the running controllers with a fresh certificate for role.
func (c *Cluster) ClientAs(role, name string) *grpc.ClientConn {
	return c.dialAs(role, name, c.Addrs())
}

// ClientTo dials controller i only, with the admin role.
func (c *Cluster) ClientTo(i int) *grpc.ClientConn {
	return c.dialAs(pki.RoleAdmin, "admin", []string{c.Controllers[i].Addr})
}

func (c *Cluster) dialAs(role, name string, addrs []string) *grpc.ClientConn {
	c.t.Helper()
	cc, err := grpc.NewClient("passthrough:///"+addrs[0], grpc.WithTransportCredentials(credentials.NewTLS(c.TLSAs(role, name))), grpc.WithContextDialer(anyOf(addrs)))
	if err != nil {
		c.t.Fatal(err)
	}
	c.t.Cleanup(func() { cc.Close() })
	return cc
}

// TLSAs is a client TLS config with a fresh certificate for role.
func (c *Cluster) TLSAs(role, name string) *tls.Config {
	c.t.Helper()
	ca := c.Controllers[0].caFromDisk(c.t)
	certPEM, keyPEM, err := ca.IssueClient(name, role, time.Hour)
	if err != nil {
		c.t.Fatal(err)
	}
	cfg, err := clientconfig.New(nil, ca.CertPEM, certPEM, keyPEM).TLS()
	if err != nil {
		c.t.Fatal(err)
	}
	return cfg
}

// HTTPClientAs is an HTTP client (the REST API) with a fresh certificate for role; it
// offers h2 and http/1.1, as curl and browsers do.
func (c *Cluster) HTTPClientAs(role, name string) *http.Client {
	c.t.Helper()
	tr := &http.Transport{TLSClientConfig: c.TLSAs(role, name), ForceAttemptHTTP2: true}
	c.t.Cleanup(tr.CloseIdleConnections)
	return &http.Client{Transport: tr}
}

// anyOf dials the first address that accepts.
func anyOf(addrs []string) func(context.Context, string) (net.Conn, error) {
	return func(ctx context.Context, _ string) (net.Conn, error) {
		var d net.Dialer
		var last error
		for _, a := range addrs {
			c, err := d.DialContext(ctx, "tcp", a)
			if err == nil {
				return c, nil
			}
			last = err
		}
		return nil, last
	}
}

func (c *Controller) caFromDisk(t testing.TB) *pki.CA {
	certPEM, err := os.ReadFile(filepath.Join(c.Dir, "pki", "ca.crt"))
	if err != nil {
		t.Fatal(err)
	}
	keyPEM, err := os.ReadFile(filepath.Join(c.Dir, "pki", "ca.key"))
	if err != nil {
		t.Fatal(err)
	}
	ca, err := pki.LoadCA(certPEM, keyPEM)
	if err != nil {
		t.Fatal(err)
	}
	return ca
}

// CreateToken mints an agent token with the admin credential.
func (c *Cluster) CreateToken(usages uint32) string {
	c.t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	resp, err := apiv1.NewTokenServiceClient(c.Client()).CreateToken(ctx, &apiv1.CreateTokenRequest{Usages: usages, Ttl: durationpb.New(time.Hour)})
	if err != nil {
		c.t.Fatalf("create token: %v", err)
	}
	return resp.GetSecret()
}

// HostRoot makes a fake host filesystem for an agent. It lives under a short path:
// containerd's socket inside it must fit in a unix socket address (108 bytes).
func HostRoot(t testing.TB, name string) string {
	root, err := os.MkdirTemp("", "dh-"+name+"-")
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { os.RemoveAll(root) })
	files := map[string]string{
		"etc/hostname":              name + "\n",
		"etc/machine-id":            rand.Text() + "\n", // every host is its own machine
		"etc/os-release":            "ID=debian\nVERSION_ID=\"12\"\n",
		"proc/meminfo":              "MemTotal:       4028812 kB\nSwapTotal:             0 kB\n",
		"proc/sys/kernel/osrelease": "6.1.0-test\n",
		// A fresh host's kernel as kubeadm users meet it: no IP forwarding, nothing
		// listening, a minimal /etc/hosts.
		"proc/sys/net/ipv4/ip_forward": "0\n",
		"proc/net/tcp":                 "  sl  local_address rem_address   st\n",
		"etc/hosts":                    "127.0.0.1 localhost\n",
	}
	// systemd is its init (the simulation's systemctl manages its services): a test of a
	// host without systemd removes run/systemd/system.
	if err := os.MkdirAll(filepath.Join(root, "run/systemd/system"), 0o755); err != nil {
		t.Fatal(err)
	}
	for p, data := range files {
		full := filepath.Join(root, p)
		if err := os.MkdirAll(filepath.Dir(full), 0o755); err != nil {
			t.Fatal(err)
		}
		if err := os.WriteFile(full, []byte(data), 0o644); err != nil {
			t.Fatal(err)
		}
	}
	return root
}

// AgentConfig is the config StartAgent uses; tests may change it before starting.
func (c *Cluster) AgentConfig(name, token string) agent.Config {
	cfg := agent.DefaultConfig()
	cfg.Controllers = c.Addrs()
	cfg.Token = token
	cfg.CACertHash = c.caHash
	cfg.NodeName = name
	cfg.Root = HostRoot(c.t, name)
	cfg.DataDir = c.dir() // after HostRoot: the agent stops before its root is removed
	cfg.BackoffInitial = 50 * time.Millisecond
	cfg.BackoffMax = 500 * time.Millisecond
	cfg.Logger = Logger()
	cfg.Dial = c.Net.Dialer(name)
	return cfg
}

// StartAgent enrolls (on first start) and runs an agent.
func (c *Cluster) StartAgent(cfg agent.Config) (*Agent, error) {
	ctx, cancel := context.WithCancel(context.Background())
	a, err := agent.New(ctx, cfg)
	if err != nil {
		cancel()
		return nil, err
	}
	ag := &Agent{Name: cfg.NodeName, Root: cfg.Root, Dir: cfg.DataDir, a: a, stop: cancel, done: make(chan error, 1)}
	go func() { ag.done <- a.Run(ctx) }()
	c.Agents[ag.Name] = ag
	return ag, nil
}

// StopAgent stops an agent.
func (c *Cluster) StopAgent(name string) {
	if ag := c.Agents[name]; ag != nil && ag.stop != nil {
		ag.stop()
		<-ag.done
		ag.stop = nil
	}
}

// CutAgent cuts (or restores) an agent's network.
func (c *Cluster) CutAgent(name string, on bool) { c.Net.Isolate(name, on) }

// dir is a temporary directory for a controller or an agent, removed when the test ends
// only after everything the cluster started has stopped (cleanups run last in, first out:
// stopping again after each directory made puts the stop before its removal), so nothing
// writes into a directory being removed.
func (c *Cluster) dir() string {
	d := c.t.TempDir()
	c.t.Cleanup(c.stopAll)
	return d
}

func (c *Cluster) stopAll() {
	for name := range c.Agents {
		c.StopAgent(name)
	}
	for i := range c.Controllers {
		c.Stop(i)
	}
}

// Nodes lists nodes through the API.
func (c *Cluster) Nodes() ([]*apiv1.Node, error) {
	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
	defer cancel()
	var out []*apiv1.Node
	for token := ""; ; {
		resp, err := apiv1.NewNodeServiceClient(c.Client()).ListNodes(ctx, &apiv1.ListNodesRequest{PageToken: token})
		if err != nil {
			return nil, err
		}
		out = append(out, resp.GetNodes()...)
		if token = resp.GetNextPageToken(); token == "" {
			return out, nil
		}
	}
}

// WaitFor polls cond until it returns nil or the deadline passes, then fails with the last
// error.
func WaitFor(t testing.TB, timeout time.Duration, cond func() error) {
	t.Helper()
	testwait.For(t, timeout, cond)
}
