package agent

import (
	"context"
	"crypto/sha256"
	"crypto/tls"
	"crypto/x509"
	"encoding/hex"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"math/rand/v2"
	"net"
	"os"
	"path/filepath"
	"regexp"
	"strings"
	"sync"
	"sync/atomic"
	"time"

	"google.golang.org/grpc"
	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/credentials"
	"google.golang.org/grpc/status"
	"google.golang.org/protobuf/proto"

	"github.com/deckhandhq/deckhand/agent/facts"
	"github.com/deckhandhq/deckhand/agent/tasks"
	"github.com/deckhandhq/deckhand/internal/features"
	"github.com/deckhandhq/deckhand/internal/pki"
	"github.com/deckhandhq/deckhand/internal/taskkinds"
	"github.com/deckhandhq/deckhand/internal/version"
	agentv1 "github.com/deckhandhq/deckhand/proto/deckhand/agent/v1"
	taskv1 "github.com/deckhandhq/deckhand/proto/deckhand/task/v1"
)

// Version is this build as reported in Hello (version.Info.String): the controller stores
// it in the node record and deckctl version checks it against the controllers'.
var Version = version.Get().String()

// Config configures one agent.
type Config struct {
	// Controllers are the controller addresses to dial, in order; the list learned at
	// enrollment is added to them.
	Controllers []string
	// Token and CACertHash are needed on the first start only (enrollment).
	Token      string
	CACertHash string
	// NodeName defaults to the first label of the host name.
	NodeName string
	// DataDir holds the agent's key, certificate and state (0700).
	DataDir string
	// Root prefixes every host path the agent reads or writes.
	Root string
	// CRISocket is the container runtime socket under Root.
	CRISocket string
	// BackoffInitial and BackoffMax bound the jittered exponential reconnect backoff.
	BackoffInitial time.Duration
	BackoffMax     time.Duration
	// MetricsListen serves Prometheus metrics on a plain-HTTP listener; empty: off.
	MetricsListen string
	// FactsInterval is how often the host's facts are collected again between tasks (a
	// certificate the kubelet rotated, a runtime that stopped); they are sent only when they
	// changed.
	FactsInterval time.Duration
	// Dial opens TCP connections to controllers; nil uses net.Dialer.
	Dial   func(ctx context.Context, addr string) (net.Conn, error)
	Logger *slog.Logger
}

// DefaultConfig fills every field with its default.
func DefaultConfig() Config {
	return Config{
		DataDir:        "/var/lib/deckhand",
		Root:           "/",
		CRISocket:      facts.DefaultCRISocket,
		BackoffInitial: 100 * time.Millisecond,
		BackoffMax:     10 * time.Second,
		FactsInterval:  10 * time.Minute,
		Logger:         slog.Default(),
	}
}

var labelRE = regexp.MustCompile(`^[a-z0-9]([-a-z0-9]{0,61}[a-z0-9])?$`)

// Validate explains what is wrong with the configuration.
func (c *Config) Validate() error {
	var errs []string
	for _, a := range c.Controllers {
		if _, _, err := net.SplitHostPort(a); err != nil {
			errs = append(errs, fmt.Sprintf("--controller %q is not host:port", a))
		}
	}
	if c.NodeName != "" && !labelRE.MatchString(c.NodeName) {
		errs = append(errs, fmt.Sprintf("--node-name %q must be an RFC 1123 label: lower-case letters, digits and '-', at most 63 characters", c.NodeName))
	}
	if c.CACertHash != "" {
		if _, err := pki.ParseHash(c.CACertHash); err != nil {
			errs = append(errs, "--ca-cert-hash: "+err.Error())
		}
	}
	if c.DataDir == "" {
		errs = append(errs, "--data-dir is empty")
	}
	if c.Root == "" {
		errs = append(errs, "--root is empty: use / on a real host")
	}
	if c.BackoffInitial <= 0 || c.BackoffMax < c.BackoffInitial {
		errs = append(errs, "backoff must satisfy 0 < initial <= max")
	}
	if c.FactsInterval < time.Second {
		errs = append(errs, fmt.Sprintf("--facts-interval %v: at least 1s (default 10m)", c.FactsInterval))
	}
	if c.Logger == nil {
		errs = append(errs, "no logger")
	}
	if len(errs) > 0 {
		return errors.New(strings.Join(errs, "; "))
	}
	return nil
}

// Agent runs on one host.
type Agent struct {
	cfg       Config
	log       *slog.Logger
	idMu      sync.Mutex // guards id: a renewal or a re-enrollment replaces it
	id        *identity
	collector *facts.Collector
	connected atomic.Pointer[string] // controller ID of the live session
	metrics   *agentMetrics
	metricsLn net.Listener
	runner    *tasks.Runner
}

// identity is what enrollment produced, kept in DataDir.
type identity struct {
	NodeName    string   `json:"node_name"`
	MachineID   string   `json:"machine_id"`
	Controllers []string `json:"controllers"`
	// TokenID is the public part of the token this identity was enrolled with: after a
	// revocation only another token enrolls again, never the one left in a unit file.
	TokenID string `json:"token_id,omitempty"`
	tls     *tls.Config
}

// tokenID is the public part of a bootstrap token ("id.secret").
func tokenID(token string) string {
	id, _, _ := strings.Cut(token, ".")
	return id
}

// ErrPermanent marks failures that retrying cannot fix.
var ErrPermanent = errors.New("permanent failure")

// New validates cfg and loads the agent's identity, enrolling on first start.
func New(ctx context.Context, cfg Config) (*Agent, error) {
	if err := cfg.Validate(); err != nil {
		return nil, err
	}
	if err := os.MkdirAll(cfg.DataDir, 0o700); err != nil {
		return nil, fmt.Errorf("--data-dir %s: %v", cfg.DataDir, err)
	}
	a := &Agent{cfg: cfg, log: cfg.Logger, collector: &facts.Collector{Root: cfg.Root, CRISocket: cfg.CRISocket}}
	a.metrics = newAgentMetrics(a)
	if cfg.MetricsListen != "" {
		ln, err := net.Listen("tcp", cfg.MetricsListen)
		if err != nil {
			return nil, fmt.Errorf("--metrics-listen %s: %v; choose a free port", cfg.MetricsListen, errors.Unwrap(err))
		}
		a.metricsLn = ln
	}
	id, err := a.loadIdentity()
	if errors.Is(err, os.ErrNotExist) {
		id, err = a.enroll(ctx)
	}
	if err != nil {
		if a.metricsLn != nil {
			_ = a.metricsLn.Close()
		}
		return nil, err
	}
	a.id = id
	if a.runner, err = tasks.NewRunner(cfg.DataDir, cfg.Root, handlers(a.collector), a.log, tasks.WithCRISocket(cfg.CRISocket)); err != nil {
		return nil, err
	}
	return a, nil
}

// NodeName is the name this agent speaks for.
func (a *Agent) NodeName() string { return a.identity().NodeName }

func (a *Agent) identity() *identity {
	a.idMu.Lock()
	defer a.idMu.Unlock()
	return a.id
}

func (a *Agent) setIdentity(id *identity) {
	a.idMu.Lock()
	defer a.idMu.Unlock()
	a.id = id
}

// Connected returns the ID of the controller replica holding the session, or "".
func (a *Agent) Connected() string {
	if p := a.connected.Load(); p != nil {
		return *p
	}
	return ""
}

func (a *Agent) path(name string) string { return filepath.Join(a.cfg.DataDir, name) }

func (a *Agent) loadIdentity() (*identity, error) {
	b, err := os.ReadFile(a.path("agent.json"))
	if err != nil {
		return nil, err
	}
	var id identity
	if err := json.Unmarshal(b, &id); err != nil {
		return nil, fmt.Errorf("%s is corrupt (%v): remove the data dir and enroll again", a.path("agent.json"), err)
	}
	if a.cfg.NodeName != "" && a.cfg.NodeName != id.NodeName {
		return nil, fmt.Errorf("this host is enrolled as %s, not --node-name %s: drop --node-name, or remove %s and enroll again", id.NodeName, a.cfg.NodeName, a.cfg.DataDir)
	}
	certPEM, err := os.ReadFile(a.path("node.crt"))
	if err != nil {
		return nil, fmt.Errorf("enrolled but %w; remove %s and enroll again", err, a.cfg.DataDir)
	}
	keyPEM, err := os.ReadFile(a.path("node.key"))
	if err != nil {
		return nil, fmt.Errorf("enrolled but %w; remove %s and enroll again", err, a.cfg.DataDir)
	}
	caPEM, err := os.ReadFile(a.path("ca.crt"))
	if err != nil {
		return nil, fmt.Errorf("enrolled but %w; remove %s and enroll again", err, a.cfg.DataDir)
	}
	if id.tls, err = clientTLS(certPEM, keyPEM, caPEM); err != nil {
		return nil, err
	}
	return &id, nil
}

func clientTLS(certPEM, keyPEM, caPEM []byte) (*tls.Config, error) {
	cert, err := tls.X509KeyPair(certPEM, keyPEM)
	if err != nil {
		return nil, fmt.Errorf("node certificate: %w", err)
	}
	pool := x509.NewCertPool()
	if !pool.AppendCertsFromPEM(caPEM) {
		return nil, errors.New("ca.crt holds no certificate")
	}
	return &tls.Config{Certificates: []tls.Certificate{cert}, RootCAs: pool, MinVersion: tls.VersionTLS13}, nil
}

func (a *Agent) defaultNodeName() (string, error) {
	if a.cfg.NodeName != "" {
		return a.cfg.NodeName, nil
	}
	f, _ := a.collector.Collect(context.Background())
	host := strings.ToLower(strings.SplitN(f.GetHostname(), ".", 2)[0])
	if !labelRE.MatchString(host) {
		return "", fmt.Errorf("the host name %q is not an RFC 1123 label: pass --node-name", f.GetHostname())
	}
	return host, nil
}

// machineID is /etc/machine-id under Root, or an ID the agent made and keeps in DataDir.
func (a *Agent) machineID() (string, error) {
	if b, err := os.ReadFile(filepath.Join(a.cfg.Root, "etc", "machine-id")); err == nil && strings.TrimSpace(string(b)) != "" {
		return strings.TrimSpace(string(b)), nil
	}
	if b, err := os.ReadFile(a.path("machine-id")); err == nil {
		return strings.TrimSpace(string(b)), nil
	}
	id := fmt.Sprintf("%016x%016x", rand.Uint64(), rand.Uint64())
	return id, os.WriteFile(a.path("machine-id"), []byte(id+"\n"), 0o600)
}

func (a *Agent) enroll(ctx context.Context) (*identity, error) {
	cfg := a.cfg
	if cfg.Token == "" || cfg.CACertHash == "" || len(cfg.Controllers) == 0 {
		return nil, fmt.Errorf("%w: this host is not enrolled yet: pass --controller, --token and --ca-cert-hash as printed by deckctl token create", ErrPermanent)
	}
	name, err := a.defaultNodeName()
	if err != nil {
		return nil, fmt.Errorf("%w: %v", ErrPermanent, err)
	}
	pin, _ := pki.ParseHash(cfg.CACertHash)
	return a.enrollAs(ctx, name, pin, cfg.Controllers)
}

// reenroll enrolls the node again under its name with --token, after the controller
// revoked its identity (deckctl node delete): the CA pin and controllers are the ones it
// already trusts unless given again.
func (a *Agent) reenroll(ctx context.Context, old *identity) (*identity, error) {
	pin := a.cfg.CACertHash
	if pin == "" {
		caPEM, err := os.ReadFile(a.path("ca.crt"))
		if err != nil {
			return nil, err
		}
		ca, err := pki.ParseCert(caPEM)
		if err != nil {
			return nil, fmt.Errorf("%s: %w", a.path("ca.crt"), err)
		}
		pin = pki.Hash(ca)
	}
	pin, _ = pki.ParseHash(pin)
	return a.enrollAs(ctx, old.NodeName, pin, mergeAddrs(a.cfg.Controllers, old.Controllers))
}

func (a *Agent) enrollAs(ctx context.Context, name, pin string, controllers []string) (*identity, error) {
	cfg := a.cfg
	machineID, err := a.machineID()
	if err != nil {
		return nil, err
	}
	keyPEM, csrPEM, err := pki.NewKeyAndCSR(name)
	if err != nil {
		return nil, err
	}
	var errs []string
	for _, addr := range controllers {
		cc, err := grpc.NewClient("passthrough:///"+addr, grpc.WithTransportCredentials(credentials.NewTLS(pki.PinnedTLS(pin))), grpc.WithContextDialer(a.dialer()))
		if err != nil {
			return nil, err
		}
		cctx, cancel := context.WithTimeout(ctx, 10*time.Second)
		resp, err := agentv1.NewAgentServiceClient(cc).Enroll(cctx, &agentv1.EnrollRequest{Token: cfg.Token, NodeName: name, CsrPem: csrPEM, MachineId: machineID})
		cancel()
		_ = cc.Close()
		if err != nil {
			st := status.Convert(err)
			switch st.Code() {
			case codes.Unavailable, codes.DeadlineExceeded:
				errs = append(errs, fmt.Sprintf("%s: %s", addr, st.Message()))
				continue
			}
			return nil, fmt.Errorf("%w: enroll %s at %s: %s", ErrPermanent, name, addr, st.Message())
		}
		ca, err := pki.ParseCert(resp.GetCaPem())
		if err != nil || pki.Hash(ca) != pin {
			return nil, fmt.Errorf("%w: enroll: the controller returned a CA that does not match --ca-cert-hash", ErrPermanent)
		}
		id := &identity{NodeName: name, MachineID: machineID, Controllers: mergeAddrs(controllers, resp.GetEndpoints()), TokenID: tokenID(cfg.Token)}
		if id.tls, err = clientTLS(resp.GetCertificatePem(), keyPEM, resp.GetCaPem()); err != nil {
			return nil, err
		}
		if err := a.saveIdentity(id, keyPEM, resp.GetCertificatePem(), resp.GetCaPem()); err != nil {
			return nil, err
		}
		a.log.Info("enrolled", "node", name, "controller", addr)
		return id, nil
	}
	return nil, fmt.Errorf("enroll: no controller answered (%s); check --controller", strings.Join(errs, "; "))
}

// saveIdentity writes the key, certificate, CA and agent.json, each 0600 and atomically
// (a temporary file renamed over the old one), key first: a renewal or re-enrollment
// replaces them in place.
func (a *Agent) saveIdentity(id *identity, keyPEM, certPEM, caPEM []byte) error {
	b, _ := json.MarshalIndent(id, "", "  ")
	for _, f := range []struct {
		name string
		data []byte
	}{{"node.key", keyPEM}, {"node.crt", certPEM}, {"ca.crt", caPEM}, {"agent.json", b}} {
		if err := writeFileAtomic(a.path(f.name), f.data); err != nil {
			return fmt.Errorf("save %s: %w", f.name, err)
		}
	}
	return nil
}

func writeFileAtomic(path string, data []byte) error {
	tmp := filepath.Join(filepath.Dir(path), "."+filepath.Base(path)+".tmp")
	f, err := os.OpenFile(tmp, os.O_WRONLY|os.O_CREATE|os.O_TRUNC, 0o600)
	if err != nil {
		return err
	}
	_, err = f.Write(data)
	if err == nil {
		err = f.Sync()
	}
	if cerr := f.Close(); err == nil {
		err = cerr
	}
	if err == nil {
		err = os.Rename(tmp, path)
	}
	if err != nil {
		_ = os.Remove(tmp)
	}
	return err
}

func mergeAddrs(lists ...[]string) []string {
	seen := map[string]bool{}
	var out []string
	for _, l := range lists {
		for _, a := range l {
			if a != "" && !seen[a] {
				seen[a] = true
				out = append(out, a)
			}
		}
	}
	return out
}

func (a *Agent) dialer() func(context.Context, string) (net.Conn, error) {
	if a.cfg.Dial != nil {
		return a.cfg.Dial
	}
	var d net.Dialer
	return func(ctx context.Context, addr string) (net.Conn, error) { return d.DialContext(ctx, "tcp", addr) }
}

// Run keeps one session open to some controller until ctx ends, reconnecting across the
// whole controller list with jittered exponential backoff.
func (a *Agent) Run(ctx context.Context) error {
	if a.metricsLn != nil {
		go a.serveMetrics(ctx, a.metricsLn)
	}
	addrs := mergeAddrs(a.cfg.Controllers, a.identity().Controllers)
	backoff := a.cfg.BackoffInitial
	start := rand.IntN(len(addrs))
	tokenUsed := false // --token re-enrolls once per process at most
	if a.cfg.Token != "" && tokenID(a.cfg.Token) == a.identity().TokenID {
		tokenUsed = true // the token this node enrolled with: deleting the node must stick
	}
	for i := 0; ctx.Err() == nil; i++ {
		addr := addrs[(start+i)%len(addrs)]
		began := time.Now()
		err := a.session(ctx, addr)
		a.connected.Store(nil)
		if ctx.Err() != nil {
			return nil
		}
		if errors.Is(err, ErrRevoked) {
			if tokenUsed || a.cfg.Token == "" {
				a.waitForToken(ctx, err)
				return nil
			}
			tokenUsed = true
			id, rerr := a.reenroll(ctx, a.identity())
			if rerr != nil {
				a.waitForToken(ctx, fmt.Errorf("%w; enrolling again with --token failed: %v", err, rerr))
				return nil
			}
			a.setIdentity(id)
			a.log.Info("enrolled again with a new certificate after the controller revoked the old one", "node", id.NodeName)
			addrs = mergeAddrs(a.cfg.Controllers, id.Controllers)
			backoff = a.cfg.BackoffInitial
			continue
		}
		if errors.Is(err, ErrPermanent) {
			return err
		}
		if errors.Is(err, errRenewed) {
			continue // reconnect at once with the new certificate
		}
		if time.Since(began) > 10*a.cfg.BackoffInitial+time.Second {
			backoff = a.cfg.BackoffInitial // the session was healthy: start over
		}
		wait := backoff/2 + time.Duration(rand.Int64N(int64(backoff)))
		a.log.Info("session ended; reconnecting", "controller", addr, "err", err, "retry_in", wait.Round(time.Millisecond))
		t := time.NewTimer(wait)
		select {
		case <-ctx.Done():
			t.Stop()
			return nil
		case <-t.C:
		}
		if backoff *= 2; backoff > a.cfg.BackoffMax {
			backoff = a.cfg.BackoffMax
		}
	}
	return nil
}

// ErrRevoked: the controller refuses this node's certificate (the node was deleted, or its
// name enrolled again by another machine). Only a new token gets the node back.
var ErrRevoked = errors.New("the controller revoked this node's identity")

// errRenewed ends a session after the certificate was renewed, so the next one uses it.
var errRenewed = errors.New("certificate renewed; reconnecting with the new one")

// waitForToken says in one line what to do and keeps the agent running (a service manager
// restarting it in a loop would not help) until it is stopped.
func (a *Agent) waitForToken(ctx context.Context, why error) {
	a.log.Error(fmt.Sprintf("%v; this agent needs a new token to enroll again: create one with deckctl token create, then restart it with deckhand-agent --token-file FILE (its data dir is kept; the new enrollment replaces the old certificate)", why), "node", a.NodeName())
	<-ctx.Done()
}

func revoked(st *status.Status) error {
	return fmt.Errorf("%w: %s", ErrRevoked, st.Message())
}

// renewAt is when a certificate is renewed: once two thirds of its lifetime have passed.
func renewAt(cert *x509.Certificate) time.Time {
	life := cert.NotAfter.Sub(cert.NotBefore)
	return cert.NotBefore.Add(life * 2 / 3)
}

// renew asks the controller for a certificate for a new key over the session's connection
// and stores it; the next session uses it.
func (a *Agent) renew(ctx context.Context, cc *grpc.ClientConn, id *identity) error {
	keyPEM, csrPEM, err := pki.NewKeyAndCSR(id.NodeName)
	if err != nil {
		return err
	}
	rctx, cancel := context.WithTimeout(ctx, 10*time.Second)
	defer cancel()
	resp, err := agentv1.NewAgentServiceClient(cc).RenewCertificate(rctx, &agentv1.RenewCertificateRequest{CsrPem: csrPEM})
	if err != nil {
		return fmt.Errorf("renew the node certificate: %s", status.Convert(err).Message())
	}
	next := &identity{NodeName: id.NodeName, MachineID: id.MachineID, Controllers: id.Controllers, TokenID: id.TokenID}
	if next.tls, err = clientTLS(resp.GetCertificatePem(), keyPEM, resp.GetCaPem()); err != nil {
		return fmt.Errorf("renewed certificate: %w", err)
	}
	if err := a.saveIdentity(next, keyPEM, resp.GetCertificatePem(), resp.GetCaPem()); err != nil {
		return err
	}
	a.setIdentity(next)
	leaf := next.tls.Certificates[0].Leaf
	a.log.Info("node certificate renewed", "node", id.NodeName, "serial", pki.SerialHex(leaf), "expires", leaf.NotAfter.UTC().Format(time.RFC3339))
	return nil
}

// changesFacts says whether a finished task may have changed the host's facts.
func changesFacts(t *taskv1.Task, res *taskv1.TaskResult) bool {
	if t.GetDryRun() || res.GetReplayed() || res.GetState() != taskv1.TaskState_TASK_STATE_SUCCEEDED {
		return false
	}
	k, _ := taskkinds.Get(tasks.Kind(t.GetSpec()))
	return k.ChangesFacts
}

// facts collects the host's facts for the session with the controller at addr.
func (a *Agent) facts(ctx context.Context, addr string, id *identity) (*agentv1.Facts, error) {
	f, err := a.collector.Collect(ctx)
	if err != nil {
		return nil, err
	}
	f.MachineId = id.MachineID
	f.RouteAddress = facts.RouteAddress(ctx, addr)
	return f, nil
}

// uploadChunk is the size of an upload's messages.
const uploadChunk = 1 << 20

// upload sends r to the controller replica at address for transfer id (tasks.Uploader), over
// a connection of its own with the node's certificate.
func (a *Agent) upload(ctx context.Context, address, id string, r io.Reader) (string, int64, error) {
	ident := a.identity()
	cc, err := grpc.NewClient("passthrough:///"+address, grpc.WithTransportCredentials(credentials.NewTLS(ident.tls)), grpc.WithContextDialer(a.dialer()))
	if err != nil {
		return "", 0, err
	}
	defer cc.Close()
	stream, err := agentv1.NewAgentServiceClient(cc).Upload(ctx)
	if err != nil {
		return "", 0, err
	}
	if err := stream.Send(&agentv1.UploadRequest{TransferId: id}); err != nil {
		return "", 0, err
	}
	sum := sha256.New()
	buf := make([]byte, uploadChunk)
	var n int64
	for {
		k, rerr := io.ReadFull(r, buf)
		if k > 0 {
			sum.Write(buf[:k])
			n += int64(k)
			if err := stream.Send(&agentv1.UploadRequest{Data: buf[:k]}); err != nil {
				_, err = stream.CloseAndRecv() // the controller's reason
				return "", n, err
			}
		}
		if rerr == io.EOF || rerr == io.ErrUnexpectedEOF {
			break
		}
		if rerr != nil {
			return "", n, rerr
		}
	}
	hexSum := hex.EncodeToString(sum.Sum(nil))
	if err := stream.Send(&agentv1.UploadRequest{Sha256: hexSum}); err != nil {
		_, err = stream.CloseAndRecv()
		return "", n, err
	}
	_, err = stream.CloseAndRecv()
	return hexSum, n, err
}

func (a *Agent) session(ctx context.Context, addr string) error {
	id := a.identity()
	cc, err := grpc.NewClient("passthrough:///"+addr, grpc.WithTransportCredentials(credentials.NewTLS(id.tls)), grpc.WithContextDialer(a.dialer()))
	if err != nil {
		return err
	}
	defer cc.Close()
	sctx, cancel := context.WithCancel(ctx)
	defer cancel()
	stream, err := agentv1.NewAgentServiceClient(cc).Session(sctx)
	if err != nil {
		return err
	}
	f, err := a.facts(sctx, addr, id)
	if err != nil {
		return err
	}
	if err := stream.Send(&agentv1.SessionRequest{Msg: &agentv1.SessionRequest_Hello{Hello: &agentv1.Hello{NodeName: id.NodeName, AgentVersion: Version, Features: features.Agent(), Facts: f}}}); err != nil {
		return err
	}
	first, err := stream.Recv()
	if err != nil {
		if st := status.Convert(err); st.Code() == codes.PermissionDenied {
			return revoked(st)
		}
		return err
	}
	welcome := first.GetWelcome()
	if welcome == nil {
		return errors.New("controller did not answer hello with welcome")
	}
	interval := welcome.GetHeartbeatInterval().AsDuration()
	if interval <= 0 {
		interval = 2 * time.Second
	}
	cid := welcome.GetControllerId()
	a.connected.Store(&cid)
	a.metrics.sessions.Inc()
	a.log.Info("session open", "controller", cid, "address", addr)

	// One writer: task events and results from running tasks go through out.
	out := make(chan *agentv1.SessionRequest, 256)
	send := func(m *agentv1.SessionRequest) {
		select {
		case out <- m:
		case <-sctx.Done():
		}
	}
	// The facts last sent; they are collected again after a task that may change them and
	// every FactsInterval, and sent when they differ.
	var sent atomic.Pointer[agentv1.Facts]
	sent.Store(f)
	var factsMu sync.Mutex
	refreshFacts := func() {
		factsMu.Lock()
		defer factsMu.Unlock()
		if f, err := a.facts(sctx, addr, id); err == nil && !proto.Equal(f, sent.Load()) {
			sent.Store(f)
			send(&agentv1.SessionRequest{Msg: &agentv1.SessionRequest_Facts{Facts: f}})
		}
	}
	go func() {
		t := time.NewTicker(a.cfg.FactsInterval)
		defer t.Stop()
		for {
			select {
			case <-sctx.Done():
				return
			case <-t.C:
				// Not while a task runs: a package install or kubeadm mid-way would be read
				// half done; the task's own refresh follows it.
				if len(a.runner.Running()) == 0 {
					refreshFacts()
				}
			}
		}
	}()
	recvErr := make(chan error, 1)
	go func() {
		for {
			msg, err := stream.Recv()
			if err != nil {
				recvErr <- err
				return
			}
			switch m := msg.GetMsg().(type) {
			case *agentv1.SessionResponse_Assignment:
				t := m.Assignment.GetTask()
				if t.GetNode() != id.NodeName {
					a.log.Warn("ignoring a task for another node", "task", t.GetId(), "node", t.GetNode())
					continue
				}
				_, replayed := a.runner.Recorded(t)
				send(&agentv1.SessionRequest{Msg: &agentv1.SessionRequest_TaskAck{TaskAck: &agentv1.TaskAck{TaskId: t.GetId(), Replayed: replayed}}})
				a.log.Info("task assigned", "task", t.GetId(), "kind", tasks.Kind(t.GetSpec()), "dry_run", t.GetDryRun(), "replayed", replayed)
				// Tasks outlive a session: they run under the agent's context and report to
				// the session that assigned them last. A controller sends a new session every
				// task it has not seen end; the runner answers a running one with its events
				// so far and later its result, an ended one with its events and journaled
				// result, so nothing the old session held is lost.
				a.runner.Start(tasks.WithUploader(ctx, a.upload), t,
					func(ev *taskv1.TaskEvent) {
						send(&agentv1.SessionRequest{Msg: &agentv1.SessionRequest_TaskEvent{TaskEvent: ev}})
					},
					func(res *taskv1.TaskResult) {
						send(&agentv1.SessionRequest{Msg: &agentv1.SessionRequest_TaskResult{TaskResult: res}})
						if changesFacts(t, res) {
							// What the controller shows of this host (runtime, kubelet) changed.
							refreshFacts()
						}
					})
			case *agentv1.SessionResponse_Cancel:
				if !a.runner.Cancel(m.Cancel.GetTaskId()) {
					a.log.Debug("cancel for a task not running here: kept, the task will not run if it arrives", "task", m.Cancel.GetTaskId())
				}
			}
		}
	}()
	tick := time.NewTicker(interval)
	defer tick.Stop()
	renew := time.NewTimer(time.Until(renewAt(id.tls.Certificates[0].Leaf)))
	defer renew.Stop()
	for {
		select {
		case <-ctx.Done():
			return ctx.Err()
		case <-renew.C:
			if err := a.renew(sctx, cc, id); err != nil {
				a.metrics.renewals.WithLabelValues("failed").Inc()
				a.log.Warn("renewing the node certificate failed; retrying", "err", err, "expires", id.tls.Certificates[0].Leaf.NotAfter.UTC().Format(time.RFC3339), "retry_in", a.cfg.BackoffMax)
				renew.Reset(a.cfg.BackoffMax)
				continue
			}
			a.metrics.renewals.WithLabelValues("ok").Inc()
			return errRenewed
		case err := <-recvErr:
			if st := status.Convert(err); st.Code() == codes.PermissionDenied {
				return revoked(st)
			}
			return err
		case m := <-out:
			if err := stream.Send(m); err != nil {
				return err
			}
		case <-tick.C:
			if err := stream.Send(&agentv1.SessionRequest{Msg: &agentv1.SessionRequest_Heartbeat{Heartbeat: &agentv1.Heartbeat{RunningTaskIds: a.runner.Running()}}}); err != nil {
				return err
			}
			a.metrics.heartbeats.Inc()
		}
	}
}
