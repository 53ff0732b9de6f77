package client

import (
	"context"
	"crypto/tls"
	"errors"
	"fmt"
	"net"
	"os"
	"path/filepath"
	"strings"
	"sync"
	"time"

	"google.golang.org/genproto/googleapis/rpc/errdetails"
	"google.golang.org/grpc"
	grpcbackoff "google.golang.org/grpc/backoff"
	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/connectivity"
	"google.golang.org/grpc/credentials"
	"google.golang.org/grpc/status"

	"github.com/deckhandhq/deckhand/internal/backoff"
	"github.com/deckhandhq/deckhand/internal/clientconfig"
	apiv1 "github.com/deckhandhq/deckhand/proto/deckhand/api/v1"
)

// Defaults of Options.
const (
	// DefaultConnectTimeout bounds connecting to one controller.
	DefaultConnectTimeout = 3 * time.Second
	// DefaultRetryFor is how long an idempotent call is retried on other controllers: a
	// leader election takes a few seconds.
	DefaultRetryFor = 10 * time.Second
)

const (
	// connectStagger: the next controller is tried this long after the previous one
	// started connecting without an answer yet (or at once when it failed), so a
	// controller whose host is gone costs a quarter second, not a connect timeout.
	connectStagger = 250 * time.Millisecond
	// failedFor: a controller that failed is tried after the others for this long.
	failedFor = 30 * time.Second
	// refreshTimeout bounds asking for the controller list when connecting.
	refreshTimeout = 2 * time.Second
	// retryBackoffMax is the longest pause between two tries of an idempotent call.
	retryBackoffMax = time.Second
)

// Options say how to reach the controllers.
type Options struct {
	// ConfigFile is the credential file: a controller's admin.conf, or one made by deckctl
	// credentials create. Empty means DefaultConfigFile().
	ConfigFile string
	// Controllers (host:port) replace the file's controller list when not empty.
	Controllers []string
	// ConnectTimeout bounds connecting to one controller; zero means DefaultConnectTimeout.
	ConnectTimeout time.Duration
	// RetryFor is how long an idempotent call is retried on other controllers; zero means
	// DefaultRetryFor, negative never retries.
	RetryFor time.Duration
	// NoRefresh keeps the controller list as given: neither New nor a failover asks the
	// Members RPC for the current one.
	NoRefresh bool
	// DialOptions are added to every connection (for example a larger
	// grpc.MaxCallRecvMsgSize).
	DialOptions []grpc.DialOption
}

// DefaultConfigFile is $DECKHAND_CONFIG, else ~/.deckhand/config.
func DefaultConfigFile() string {
	if p := os.Getenv("DECKHAND_CONFIG"); p != "" {
		return p
	}
	home, err := os.UserHomeDir()
	if err != nil {
		return filepath.Join(".deckhand", "config")
	}
	return filepath.Join(home, ".deckhand", "config")
}

// Client is a connection to the controllers with failover. It implements
// grpc.ClientConnInterface, so any generated client of the API runs on it. It is safe for
// concurrent use.
type Client struct {
	file           string
	creds          credentials.TransportCredentials
	connectTimeout time.Duration
	retryFor       time.Duration
	dialOptions    []grpc.DialOption
	refresh        bool // ask Members for the controller list after each failover
	now            func() time.Time

	connectMu sync.Mutex // one connect at a time

	mu        sync.Mutex
	endpoints []string             // in the order to try
	members   []string             // the addresses Members reported, nil before a refresh
	failed    map[string]time.Time // endpoint → when it last failed
	cc        *grpc.ClientConn     // the connection in use, nil when none
	addr      string               // its endpoint
	connects  int                  // connections made
	closed    bool
}

var _ grpc.ClientConnInterface = (*Client)(nil)

// ErrClosed is returned by calls on a closed Client.
var ErrClosed = errors.New("deckhand client is closed")

// UnreachableError lists why no controller could be reached.
type UnreachableError struct {
	// Tried is "address: reason" for each controller, in the order tried.
	Tried []string
}

func (e *UnreachableError) Error() string {
	return "no controller answered (" + strings.Join(e.Tried, "; ") + ")"
}

// New reads the credential file and connects to the first controller that answers. Unless
// o.NoRefresh, it then asks that controller for the members' addresses, which later
// failovers also try (SaveEndpoints writes them into the file), and asks again after each
// failover.
func New(ctx context.Context, o Options) (*Client, error) {
	if o.ConfigFile == "" {
		o.ConfigFile = DefaultConfigFile()
	}
	cfg, err := clientconfig.Load(o.ConfigFile)
	if err != nil {
		if errors.Is(err, os.ErrNotExist) {
			return nil, fmt.Errorf("no credentials at %s: use the admin.conf from a controller's data dir, or a file made by deckctl credentials create", o.ConfigFile)
		}
		return nil, err
	}
	tlsCfg, err := cfg.TLS()
	if err != nil {
		return nil, fmt.Errorf("%s: %w", o.ConfigFile, err)
	}
	c, err := newClient(o, tlsCfg, cfg.Controllers)
	if err != nil {
		return nil, err
	}
	if _, _, err := c.pick(ctx); err != nil {
		return nil, err
	}
	if !o.NoRefresh {
		rctx, cancel := context.WithTimeout(ctx, refreshTimeout)
		_ = c.Refresh(rctx) // the list in hand works; a better one is a bonus
		cancel()
	}
	return c, nil
}

func newClient(o Options, tlsCfg *tls.Config, fileControllers []string) (*Client, error) {
	endpoints := cleanAddrs(o.Controllers)
	if len(endpoints) == 0 {
		endpoints = cleanAddrs(fileControllers)
	}
	if len(endpoints) == 0 {
		return nil, fmt.Errorf("%s: controllers is empty: list a controller address (host:port) there or pass one", o.ConfigFile)
	}
	c := &Client{
		file:           o.ConfigFile,
		creds:          credentials.NewTLS(tlsCfg),
		connectTimeout: o.ConnectTimeout,
		retryFor:       o.RetryFor,
		dialOptions:    o.DialOptions,
		refresh:        !o.NoRefresh,
		now:            time.Now,
		endpoints:      endpoints,
		failed:         map[string]time.Time{},
	}
	if c.connectTimeout <= 0 {
		c.connectTimeout = DefaultConnectTimeout
	}
	if c.retryFor == 0 {
		c.retryFor = DefaultRetryFor
	}
	return c, nil
}

func cleanAddrs(in []string) []string {
	var out []string
	for _, a := range in {
		for _, s := range strings.Split(a, ",") {
			if s = strings.TrimSpace(s); s != "" && !contains(out, s) {
				out = append(out, s)
			}
		}
	}
	return out
}

func contains(list []string, s string) bool {
	for _, x := range list {
		if x == s {
			return true
		}
	}
	return false
}

// Close closes the connection; calls made afterwards fail with ErrClosed.
func (c *Client) Close() error {
	c.mu.Lock()
	cc := c.cc
	c.cc, c.addr, c.closed = nil, "", true
	c.mu.Unlock()
	if cc != nil {
		return cc.Close()
	}
	return nil
}

// Endpoints is the controller list the client tries, in order.
func (c *Client) Endpoints() []string {
	c.mu.Lock()
	defer c.mu.Unlock()
	return orderEndpoints(c.endpoints, c.failed, c.now())
}

// Current is the controller the client talks to, or "" when it is not connected.
func (c *Client) Current() string {
	c.mu.Lock()
	defer c.mu.Unlock()
	return c.addr
}

// Nodes is the node service.
func (c *Client) Nodes() apiv1.NodeServiceClient { return apiv1.NewNodeServiceClient(c) }

// Workflows is the workflow service (see also CreateWorkflow and Watch).
func (c *Client) Workflows() apiv1.WorkflowServiceClient { return apiv1.NewWorkflowServiceClient(c) }

// Tasks is the task service.
func (c *Client) Tasks() apiv1.TaskServiceClient { return apiv1.NewTaskServiceClient(c) }

// Members is the controller member service.
func (c *Client) Members() apiv1.MemberServiceClient { return apiv1.NewMemberServiceClient(c) }

// Tokens is the join token service.
func (c *Client) Tokens() apiv1.TokenServiceClient { return apiv1.NewTokenServiceClient(c) }

// Credentials is the user credential service.
func (c *Client) Credentials() apiv1.CredentialServiceClient {
	return apiv1.NewCredentialServiceClient(c)
}

// Invoke implements grpc.ClientConnInterface: the call goes to the current controller;
// when that one does not answer, the next is tried, and an idempotent call (Idempotent) is
// sent again there for up to Options.RetryFor.
func (c *Client) Invoke(ctx context.Context, method string, args, reply any, opts ...grpc.CallOption) error {
	retry := c.retryFor > 0 && Idempotent(method, args)
	deadline := c.now().Add(c.retryFor)
	for attempt := 0; ; attempt++ {
		cc, addr, err := c.pick(ctx)
		if err != nil {
			return err
		}
		err = cc.Invoke(ctx, method, args, reply, opts...)
		if err == nil || !switchOn(ctx, err) {
			return err
		}
		c.markFailed(addr, cc)
		if !retry || c.now().After(deadline) || !backoff.Sleep(ctx, retryBackoff(attempt)) {
			return err
		}
	}
}

// NewStream implements grpc.ClientConnInterface. A stream is opened on the current
// controller; when it breaks because the controller went away, the next stream goes to
// another (the workflow helpers open it again on their own).
func (c *Client) NewStream(ctx context.Context, desc *grpc.StreamDesc, method string, opts ...grpc.CallOption) (grpc.ClientStream, error) {
	cc, addr, err := c.pick(ctx)
	if err != nil {
		return nil, err
	}
	s, err := cc.NewStream(ctx, desc, method, opts...)
	if err != nil {
		if switchOn(ctx, err) {
			c.markFailed(addr, cc)
		}
		return nil, err
	}
	return &stream{ClientStream: s, ctx: ctx, c: c, addr: addr, cc: cc}, nil
}

// stream notices a controller that went away mid-stream.
type stream struct {
	grpc.ClientStream
	ctx  context.Context
	c    *Client
	addr string
	cc   *grpc.ClientConn
}

func (s *stream) RecvMsg(m any) error {
	err := s.ClientStream.RecvMsg(m)
	if err != nil && switchOn(s.ctx, err) {
		s.c.markFailed(s.addr, s.cc)
	}
	return err
}

// switchOn: the error says this controller cannot serve now (gone, or without quorum), so
// another one should be asked; not an answer about something else that is unavailable (no
// control-plane node connected to sign a kubeconfig).
func switchOn(ctx context.Context, err error) bool {
	st := status.Convert(err)
	switch st.Code() {
	case codes.Unavailable:
		for _, d := range st.Details() {
			if info, ok := d.(*errdetails.ErrorInfo); ok && info.GetReason() == apiv1.ErrorReason_ERROR_REASON_NODE_NOT_CONNECTED.String() {
				return false
			}
		}
		return true
	case codes.Canceled:
		// The connection was closed under the call (another call saw it fail).
		return ctx.Err() == nil
	}
	return false
}

// retryBackoff is the pause before try n+2 of an idempotent call: 50 ms doubling to 1 s.
func retryBackoff(n int) time.Duration {
	d := 50 * time.Millisecond
	for range n {
		d *= 2
		if d >= retryBackoffMax {
			return retryBackoffMax
		}
	}
	return d
}

// markFailed notes that addr failed and, when cc is the connection in use, drops it so
// the next call connects to another controller.
func (c *Client) markFailed(addr string, cc *grpc.ClientConn) {
	c.mu.Lock()
	c.failed[addr] = c.now()
	var old *grpc.ClientConn
	if c.cc != nil && c.addr == addr && (cc == nil || c.cc == cc) {
		old = c.cc
		c.cc, c.addr = nil, ""
	}
	c.mu.Unlock()
	if old != nil {
		_ = old.Close()
	}
}

// pick returns the connection in use when it is ready, else connects.
func (c *Client) pick(ctx context.Context) (*grpc.ClientConn, string, error) {
	c.mu.Lock()
	cc, addr, closed := c.cc, c.addr, c.closed
	c.mu.Unlock()
	if closed {
		return nil, "", ErrClosed
	}
	if cc != nil {
		if ready(ctx, cc, c.connectTimeout) == nil {
			return cc, addr, nil
		}
		c.markFailed(addr, cc)
	}
	return c.connect(ctx)
}

type attempt struct {
	addr string
	cc   *grpc.ClientConn
	err  error
}

// connect tries the controllers in order (orderEndpoints), starting the next one
// connectStagger after the previous or as soon as it failed; the first one ready wins.
func (c *Client) connect(ctx context.Context) (*grpc.ClientConn, string, error) {
	c.connectMu.Lock()
	defer c.connectMu.Unlock()
	c.mu.Lock()
	if c.closed {
		c.mu.Unlock()
		return nil, "", ErrClosed
	}
	if c.cc != nil { // another call connected meanwhile
		cc, addr := c.cc, c.addr
		c.mu.Unlock()
		return cc, addr, nil
	}
	order := orderEndpoints(c.endpoints, c.failed, c.now())
	c.mu.Unlock()

	actx, cancel := context.WithCancel(ctx)
	defer cancel()
	results := make(chan attempt, len(order))
	next, pending := 0, 0
	start := func() {
		addr := order[next]
		next++
		pending++
		go func() { results <- c.try(actx, addr) }()
	}
	start()
	timer := time.NewTimer(connectStagger)
	defer timer.Stop()
	why := map[string]error{}
	for pending > 0 {
		select {
		case r := <-results:
			pending--
			if r.err == nil {
				cancel()
				go func(n int) { // close the ones that answer later
					for range n {
						if late := <-results; late.cc != nil {
							_ = late.cc.Close()
						}
					}
				}(pending)
				c.mu.Lock()
				if c.closed {
					c.mu.Unlock()
					_ = r.cc.Close()
					return nil, "", ErrClosed
				}
				c.cc, c.addr = r.cc, r.addr
				delete(c.failed, r.addr)
				c.connects++
				failover := c.connects > 1
				c.mu.Unlock()
				if failover && c.refresh {
					// The members may have changed since the list was read.
					go func() {
						rctx, cancel := context.WithTimeout(context.Background(), refreshTimeout)
						defer cancel()
						_ = c.Refresh(rctx)
					}()
				}
				return r.cc, r.addr, nil
			}
			why[r.addr] = r.err
			c.mu.Lock()
			c.failed[r.addr] = c.now()
			c.mu.Unlock()
			if next < len(order) {
				start()
				timer.Reset(connectStagger)
			}
		case <-timer.C:
			if next < len(order) {
				start()
				timer.Reset(connectStagger)
			}
		}
	}
	if ctx.Err() != nil {
		return nil, "", fmt.Errorf("connect to a controller: %w", ctx.Err())
	}
	e := &UnreachableError{}
	for _, a := range order {
		e.Tried = append(e.Tried, fmt.Sprintf("%s: %v", a, why[a]))
	}
	return nil, "", e
}

// try connects to one controller and waits until the connection is ready.
func (c *Client) try(ctx context.Context, addr string) attempt {
	rec := &lastErr{}
	opts := []grpc.DialOption{
		grpc.WithTransportCredentials(recordingCreds{c.creds, rec}),
		grpc.WithContextDialer(func(ctx context.Context, a string) (net.Conn, error) {
			var d net.Dialer
			conn, err := d.DialContext(ctx, "tcp", a)
			if err != nil {
				rec.set(err)
			}
			return conn, err
		}),
		grpc.WithConnectParams(grpc.ConnectParams{Backoff: grpcbackoff.Config{
			BaseDelay: 100 * time.Millisecond, Multiplier: 1.6, Jitter: 0.2, MaxDelay: 2 * time.Second,
		}, MinConnectTimeout: c.connectTimeout}),
	}
	cc, err := grpc.NewClient("passthrough:///"+addr, append(opts, c.dialOptions...)...)
	if err != nil {
		return attempt{addr: addr, err: err}
	}
	if err := ready(ctx, cc, c.connectTimeout); err != nil {
		_ = cc.Close()
		if e := rec.get(); e != nil {
			err = e
		}
		return attempt{addr: addr, err: err}
	}
	return attempt{addr: addr, cc: cc}
}

// ready waits until cc is ready; it fails when the connection failed or timeout passed.
func ready(ctx context.Context, cc *grpc.ClientConn, timeout time.Duration) error {
	if cc.GetState() == connectivity.Ready {
		return nil
	}
	ctx, cancel := context.WithTimeout(ctx, timeout)
	defer cancel()
	cc.Connect()
	for {
		s := cc.GetState()
		switch s {
		case connectivity.Ready:
			return nil
		case connectivity.TransientFailure, connectivity.Shutdown:
			return errors.New("connection failed")
		}
		if !cc.WaitForStateChange(ctx, s) {
			if ctx.Err() == context.DeadlineExceeded {
				return fmt.Errorf("not reachable within %v", timeout)
			}
			return ctx.Err()
		}
	}
}

// lastErr keeps why a connection failed (dial or TLS), for the error message.
type lastErr struct {
	mu  sync.Mutex
	err error
}

func (l *lastErr) set(err error) {
	l.mu.Lock()
	l.err = err
	l.mu.Unlock()
}

func (l *lastErr) get() error {
	l.mu.Lock()
	defer l.mu.Unlock()
	return l.err
}

// recordingCreds records a failed TLS handshake (a wrong CA, a revoked or expired
// credential) so the error says so.
type recordingCreds struct {
	credentials.TransportCredentials
	rec *lastErr
}

func (r recordingCreds) ClientHandshake(ctx context.Context, authority string, conn net.Conn) (net.Conn, credentials.AuthInfo, error) {
	c, info, err := r.TransportCredentials.ClientHandshake(ctx, authority, conn)
	if err != nil {
		r.rec.set(fmt.Errorf("TLS handshake: %w", err))
	}
	return c, info, err
}

func (r recordingCreds) Clone() credentials.TransportCredentials {
	return recordingCreds{r.TransportCredentials.Clone(), r.rec}
}
