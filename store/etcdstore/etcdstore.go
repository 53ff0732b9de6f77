package etcdstore

import (
	"context"
	"crypto/rand"
	"crypto/tls"
	"crypto/x509"
	"encoding/hex"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"net"
	"net/http"
	"strings"
	"sync"
	"syscall"
	"time"

	"go.etcd.io/etcd/api/v3/v3rpc/rpctypes"
	clientv3 "go.etcd.io/etcd/client/v3"
	"google.golang.org/grpc"
	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/status"

	"github.com/deckhandhq/deckhand/store"
)

// Reserved keys, below the prefix, where the controller keeps none of its own data (the
// same place raftstore reserves).
const (
	reservedPrefix = "/_deckhand/"
	clusterKey     = reservedPrefix + "cluster"
	electionPrefix = reservedPrefix + "election"
)

// Errors of Open.
var (
	// ErrUnreachable: no etcd endpoint accepted a connection.
	ErrUnreachable = errors.New("etcd is unreachable")
	// ErrTLS: etcd was reached but the TLS handshake failed.
	ErrTLS = errors.New("etcd TLS handshake failed")
	// ErrForeignCluster: the prefix holds another Deckhand cluster than Config.ClusterID.
	ErrForeignCluster = errors.New("etcd prefix belongs to another Deckhand cluster")
	// ErrNoCluster: Config.ClusterID is set but the prefix holds no Deckhand cluster.
	ErrNoCluster = errors.New("etcd prefix holds no Deckhand cluster")
)

// Store is a store.Store and store.Elector on an etcd cluster.
type Store struct {
	cfg       Config
	root      string // Config.Prefix; etcd key = root + store key
	cli       *clientv3.Client
	log       *slog.Logger
	clusterID string
	version   string

	ctx    context.Context // ends at Close
	cancel context.CancelFunc

	mu        sync.Mutex
	closed    bool
	leads     map[*leadership]struct{}
	closeOnce sync.Once
	wg        sync.WaitGroup
}

var (
	_ store.Store   = (*Store)(nil)
	_ store.Elector = (*Store)(nil)
)

// Open connects to etcd. It fails with one line saying what to fix when no endpoint can be
// reached, TLS fails, etcd cannot serve a write, or the prefix belongs to another cluster.
// On first use of a prefix it records a new cluster ID there (PREFIX/_deckhand/cluster).
func Open(ctx context.Context, cfg Config) (*Store, error) {
	cfg = cfg.withDefaults()
	if err := cfg.Validate(); err != nil {
		return nil, err
	}
	eps := make([]endpoint, len(cfg.Endpoints))
	for i, raw := range cfg.Endpoints {
		eps[i], _ = parseEndpoint(raw, cfg.TLS != nil)
	}
	log := cfg.Logger.With("store", "etcd")
	version, err := probe(ctx, cfg, eps, log)
	if err != nil {
		return nil, err
	}

	ccfg := clientv3.Config{
		Endpoints:            cfg.Endpoints,
		TLS:                  cfg.TLS,
		DialTimeout:          cfg.DialTimeout,
		DialKeepAliveTime:    10 * time.Second,
		DialKeepAliveTimeout: 5 * time.Second,
		Logger:               newZapLogger(log.With("component", "etcd-client")),
	}
	if cfg.Dial != nil {
		ccfg.DialOptions = append(ccfg.DialOptions, grpc.WithContextDialer(cfg.Dial))
	}
	cli, err := clientv3.New(ccfg)
	if err != nil {
		return nil, fmt.Errorf("etcd client for %s: %w", strings.Join(cfg.Endpoints, ", "), err)
	}
	sctx, cancel := context.WithCancel(context.Background())
	s := &Store{
		cfg:     cfg,
		root:    cfg.Prefix,
		cli:     cli,
		log:     log,
		version: version,
		ctx:     sctx,
		cancel:  cancel,
		leads:   map[*leadership]struct{}{},
	}
	if err := s.ensureCluster(ctx); err != nil {
		cancel()
		_ = cli.Close()
		return nil, err
	}
	log.Info("connected to etcd", "endpoints", strings.Join(cfg.Endpoints, ","), "etcd_version", version, "prefix", cfg.Prefix, "cluster", s.clusterID)
	return s, nil
}

// ensureCluster reads the prefix's cluster ID, or records a new one in an empty prefix.
// A replica that already belongs to a cluster (Config.ClusterID) never creates one: an
// empty prefix then is a mistyped --etcd-prefix, and creating a second cluster there (same
// CA, same ID, its own leader) would split the controllers in two.
func (s *Store) ensureCluster(ctx context.Context) error {
	key := s.key(clusterKey)
	rctx, cancel := s.reqCtx(ctx)
	defer cancel()
	if want := s.cfg.ClusterID; want != "" {
		resp, err := s.cli.Get(rctx, key)
		if err != nil {
			return fmt.Errorf("etcd at %s accepts connections but did not serve a read: %w", strings.Join(s.cfg.Endpoints, ", "), s.mapErr(ctx, err, false))
		}
		if len(resp.Kvs) == 0 {
			return fmt.Errorf("%w: etcd prefix %s holds no Deckhand cluster, but this replica belongs to cluster %s; check --etcd-prefix (it must be the prefix that cluster was created under), or start with an empty --data-dir to create a new cluster under %s", ErrNoCluster, s.root, want, s.root)
		}
		s.clusterID = string(resp.Kvs[0].Value)
		if s.clusterID != want {
			return fmt.Errorf("%w: etcd prefix %s holds Deckhand cluster %s, not %s; choose another --etcd-prefix, or the data dir of cluster %s", ErrForeignCluster, s.root, s.clusterID, want, s.clusterID)
		}
		return nil
	}
	want := randomID()
	resp, err := s.cli.Txn(rctx).
		If(clientv3.Compare(clientv3.CreateRevision(key), "=", 0)).
		Then(clientv3.OpPut(key, want)).
		Else(clientv3.OpGet(key)).
		Commit()
	if err != nil {
		// The write is idempotent: no "may or may not have been applied" here.
		return fmt.Errorf("etcd at %s accepts connections but did not serve a write: %w", strings.Join(s.cfg.Endpoints, ", "), s.mapErr(ctx, err, false))
	}
	if resp.Succeeded {
		s.clusterID = want
		s.log.Info("recorded a new Deckhand cluster in etcd", "prefix", s.root, "cluster", want)
		return nil
	}
	kvs := resp.Responses[0].GetResponseRange().GetKvs()
	if len(kvs) == 0 {
		return fmt.Errorf("etcd prefix %s: cluster key vanished while reading it; retry", s.root)
	}
	s.clusterID = string(kvs[0].Value)
	return nil
}

// probe checks that at least one endpoint answers over HTTP(S) on the client port (etcd
// serves /version there), so a wrong address or TLS setting fails in one clear line
// instead of as a timeout. It returns the etcd server version.
func probe(ctx context.Context, cfg Config, eps []endpoint, log *slog.Logger) (string, error) {
	pctx := ctx
	ctx, cancel := context.WithTimeout(ctx, cfg.DialTimeout)
	defer cancel()
	results := make([]probeResult, len(eps))
	var wg sync.WaitGroup
	for i, ep := range eps {
		wg.Add(1)
		go func() {
			defer wg.Done()
			r := probeOne(ctx, cfg, ep)
			if r.err != nil && errors.Is(r.err, context.DeadlineExceeded) {
				r.err = fmt.Errorf("no answer within %v", cfg.DialTimeout)
			}
			results[i] = r
		}()
	}
	wg.Wait()
	var version string
	var unreachable, tlsFailed []probeResult
	for _, r := range results {
		switch {
		case r.err == nil:
			version = r.version
		case r.tls:
			tlsFailed = append(tlsFailed, r)
		default:
			unreachable = append(unreachable, r)
		}
	}
	if version != "" {
		for _, r := range append(unreachable, tlsFailed...) {
			log.Warn("etcd endpoint not usable; continuing with the others", "endpoint", r.ep.raw, "err", r.err)
		}
		return version, nil
	}
	if pctx.Err() != nil {
		return "", pctx.Err()
	}
	describe := func(rs []probeResult) (names, causes string) {
		if len(rs) == 1 {
			return rs[0].ep.raw, oneLine(rs[0].err)
		}
		var ns, cs []string
		for _, r := range rs {
			ns = append(ns, r.ep.raw)
			cs = append(cs, r.ep.raw+": "+oneLine(r.err))
		}
		return strings.Join(ns, ", "), strings.Join(cs, "; ")
	}
	if len(tlsFailed) > 0 {
		names, causes := describe(tlsFailed)
		fix := tlsFailed[0].fix
		if fix == "" {
			fix = "check --etcd-cacert (the CA that signed etcd's certificate), --etcd-cert and --etcd-key"
		}
		return "", &openError{kind: ErrTLS, msg: fmt.Sprintf("TLS with etcd at %s failed: %s: %s", names, causes, fix)}
	}
	names, causes := describe(unreachable)
	verb := "is"
	if len(unreachable) > 1 {
		verb = "are"
	}
	return "", &openError{kind: ErrUnreachable, msg: fmt.Sprintf("etcd at %s %s unreachable: %s: check --etcd-endpoints", names, verb, causes)}
}

// probeResult is what GET /version on one endpoint found: the server version, or an error,
// tls saying it was TLS's, and fix what to do when the generic advice does not fit.
type probeResult struct {
	ep      endpoint
	version string
	err     error
	tls     bool
	fix     string
}

// openError is a one-line message that still matches its sentinel with errors.Is.
type openError struct {
	kind error
	msg  string
}

func (e *openError) Error() string        { return e.msg }
func (e *openError) Is(target error) bool { return target == e.kind }

// probeOne GETs /version from one endpoint.
func probeOne(ctx context.Context, cfg Config, ep endpoint) probeResult {
	r := probeResult{ep: ep}
	tr := &http.Transport{DisableKeepAlives: true}
	if cfg.Dial != nil {
		tr.DialContext = func(ctx context.Context, _, addr string) (net.Conn, error) { return cfg.Dial(ctx, addr) }
	}
	if ep.tls {
		if cfg.TLS != nil {
			tr.TLSClientConfig = cfg.TLS.Clone()
		} else {
			tr.TLSClientConfig = &tls.Config{MinVersion: tls.VersionTLS12}
		}
	}
	defer tr.CloseIdleConnections()
	req, err := http.NewRequestWithContext(ctx, http.MethodGet, ep.url("/version"), nil)
	if err != nil {
		r.err = err
		return r
	}
	resp, err := (&http.Client{Transport: tr}).Do(req)
	if err != nil {
		r.err = unwrapURLError(err)
		if isTLSError(err) {
			r.tls = true
			return r
		}
		// etcd drops a connection that speaks the wrong protocol without a word: find out
		// whether the port speaks the other one.
		if errors.Is(err, io.EOF) || errors.Is(err, io.ErrUnexpectedEOF) || errors.Is(err, syscall.ECONNRESET) {
			if ep.tls && plainHTTPAnswers(ctx, cfg, ep) {
				r.tls, r.err, r.fix = true, errors.New("the port speaks plain HTTP"), "use an http:// endpoint, or serve etcd's client port with TLS"
			}
			if !ep.tls && tlsAnswers(ctx, cfg, ep) {
				r.tls, r.err, r.fix = true, errors.New("the port serves TLS but the endpoint is plain HTTP"), "use https:// and set --etcd-cacert"
			}
		}
		return r
	}
	defer resp.Body.Close()
	body, _ := io.ReadAll(io.LimitReader(resp.Body, 4096))
	var v struct {
		Server string `json:"etcdserver"`
	}
	if resp.StatusCode != http.StatusOK || json.Unmarshal(body, &v) != nil || v.Server == "" {
		r.err = fmt.Errorf("GET /version answered %s, not etcd's version: is this an etcd client port?", resp.Status)
		return r
	}
	r.version = v.Server
	return r
}

// plainHTTPAnswers reports whether ep's port answers GET /version in plain HTTP.
func plainHTTPAnswers(ctx context.Context, cfg Config, ep endpoint) bool {
	ep.tls = false
	return probeOne(ctx, Config{Dial: cfg.Dial}, ep).err == nil
}

// tlsAnswers reports whether ep's port completes a TLS handshake (the certificate is not
// checked: this only tells which protocol the port speaks; nothing is sent over it).
func tlsAnswers(ctx context.Context, cfg Config, ep endpoint) bool {
	var conn net.Conn
	var err error
	if cfg.Dial != nil {
		conn, err = cfg.Dial(ctx, ep.host)
	} else {
		conn, err = (&net.Dialer{}).DialContext(ctx, "tcp", ep.host)
	}
	if err != nil {
		return false
	}
	defer conn.Close()
	tc := tls.Client(conn, &tls.Config{InsecureSkipVerify: true, MinVersion: tls.VersionTLS12}) //nolint:gosec // protocol detection only
	return tc.HandshakeContext(ctx) == nil
}

func isTLSError(err error) bool {
	var (
		verr   *tls.CertificateVerificationError
		rhErr  tls.RecordHeaderError
		alert  tls.AlertError
		unkCA  x509.UnknownAuthorityError
		hostEr x509.HostnameError
		invEr  x509.CertificateInvalidError
	)
	return errors.As(err, &verr) || errors.As(err, &rhErr) || errors.As(err, &alert) ||
		errors.As(err, &unkCA) || errors.As(err, &hostEr) || errors.As(err, &invEr) ||
		strings.Contains(err.Error(), "tls: ")
}

// unwrapURLError drops net/http's `Get "url":` decoration; the caller names the endpoint.
func unwrapURLError(err error) error {
	var uerr interface{ Unwrap() error }
	if errors.As(err, &uerr) {
		if inner := uerr.Unwrap(); inner != nil && strings.HasPrefix(err.Error(), "Get ") {
			return inner
		}
	}
	return err
}

func oneLine(err error) string { return strings.Join(strings.Fields(err.Error()), " ") }

// ClusterID identifies the Deckhand cluster held under the prefix.
func (s *Store) ClusterID() string { return s.clusterID }

// Prefix is the etcd key prefix of this cluster.
func (s *Store) Prefix() string { return s.root }

// EtcdVersion is the etcd server version seen at Open.
func (s *Store) EtcdVersion() string { return s.version }

// Close ends every leadership held through this store (revoking its lease, so another
// replica takes over at once) and closes the etcd client. Pending calls fail with
// store.ErrClosed and open watches end with an ErrClosed event.
func (s *Store) Close() error {
	s.closeOnce.Do(func() {
		s.mu.Lock()
		s.closed = true
		var leads []*leadership
		for l := range s.leads {
			leads = append(leads, l)
		}
		s.mu.Unlock()
		for _, l := range leads {
			ctx, cancel := context.WithTimeout(context.Background(), 2*time.Second)
			if err := l.Resign(ctx); err != nil {
				s.log.Warn("resign on close; the lease expires on its own", "err", err)
			}
			cancel()
		}
		s.cancel()
		_ = s.cli.Close()
		s.wg.Wait()
	})
	return nil
}

// track registers a background goroutine with Close; false when the store is closed.
func (s *Store) track() bool {
	s.mu.Lock()
	defer s.mu.Unlock()
	if s.closed {
		return false
	}
	s.wg.Add(1)
	return true
}

func (s *Store) isClosed() bool {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.closed
}

// key maps a store key to its etcd key.
func (s *Store) key(k string) string { return s.root + k }

// storeKey maps an etcd key under the prefix back to its store key.
func (s *Store) storeKey(k []byte) string { return strings.TrimPrefix(string(k), s.root) }

// checkKey refuses keys the prefix mapping cannot hold 1:1.
func checkKey(k string) error {
	if k == "" {
		return fmt.Errorf("%w: empty key", store.ErrInvalid)
	}
	if k[0] != '/' {
		return fmt.Errorf("%w: key %q does not start with '/'", store.ErrInvalid, k)
	}
	return nil
}

// rangePrefix maps a store prefix to an etcd prefix; "" is every key.
func (s *Store) rangePrefix(p string) (string, error) {
	if p == "" {
		return s.root + "/", nil
	}
	if p[0] != '/' {
		return "", fmt.Errorf("%w: prefix %q does not start with '/'", store.ErrInvalid, p)
	}
	return s.root + p, nil
}

// reqCtx bounds one request by RequestTimeout unless the caller's deadline is earlier.
func (s *Store) reqCtx(ctx context.Context) (context.Context, context.CancelFunc) {
	if dl, ok := ctx.Deadline(); ok && time.Until(dl) <= s.cfg.RequestTimeout {
		return context.WithCancel(ctx)
	}
	return context.WithTimeout(ctx, s.cfg.RequestTimeout)
}

// mapErr turns an etcd client error into the store's sentinels. ctx is the caller's: its
// own end passes through as is. write says whether the request may have changed data.
func (s *Store) mapErr(ctx context.Context, err error, write bool) error {
	if err == nil {
		return nil
	}
	if s.isClosed() {
		return store.ErrClosed
	}
	if ctx.Err() != nil {
		return ctx.Err()
	}
	maybe := ""
	if write {
		maybe = "; the write may or may not have been applied, re-read before retrying"
	}
	code := status.Code(err)
	var etcdErr rpctypes.EtcdError
	if errors.As(err, &etcdErr) {
		code = etcdErr.Code()
	}
	if code == codes.Unknown {
		// The server's own end of the request deadline comes back as a bare message.
		switch status.Convert(err).Message() {
		case context.DeadlineExceeded.Error():
			code = codes.DeadlineExceeded
		case context.Canceled.Error():
			code = codes.Canceled
		}
	}
	switch {
	case errors.Is(err, rpctypes.ErrCompacted):
		return fmt.Errorf("%w: %v", store.ErrCompacted, err)
	case errors.Is(err, rpctypes.ErrFutureRev):
		return fmt.Errorf("%w: %v", store.ErrInvalid, err)
	case errors.Is(err, rpctypes.ErrTooManyOps):
		return fmt.Errorf("%w: the transaction has more operations than etcd allows (%v); raise etcd's --max-txn-ops (128 by default)", store.ErrInvalid, err)
	case errors.Is(err, rpctypes.ErrRequestTooLarge):
		return fmt.Errorf("%w: the request is larger than etcd allows (%v); raise etcd's --max-request-bytes (1.5 MiB by default)", store.ErrInvalid, err)
	case errors.Is(err, rpctypes.ErrDuplicateKey):
		return fmt.Errorf("%w: a key is written twice in one transaction, which etcd refuses (%v)", store.ErrInvalid, err)
	case errors.Is(err, rpctypes.ErrNoSpace):
		return fmt.Errorf("etcd is out of space (%v): compact and defragment it, then clear the alarm (etcdctl alarm disarm)", err)
	case code == codes.PermissionDenied || code == codes.Unauthenticated:
		return fmt.Errorf("etcd refused the request (%v): give this controller read and write access to %s/", err, s.root)
	case errors.Is(err, context.DeadlineExceeded) || code == codes.DeadlineExceeded:
		return fmt.Errorf("%w: etcd at %s did not answer within %v%s; check that a majority of etcd members is running and reachable (etcdctl endpoint health)", store.ErrNoLeader, strings.Join(s.cfg.Endpoints, ", "), s.cfg.RequestTimeout, maybe)
	case code == codes.Unavailable || errors.Is(err, context.Canceled) || code == codes.Canceled:
		return fmt.Errorf("%w: etcd: %v%s; check that a majority of etcd members is running and reachable (etcdctl endpoint health)", store.ErrNoLeader, err, maybe)
	}
	return fmt.Errorf("etcd: %w%s", err, maybe)
}

func randomID() string {
	b := make([]byte, 8)
	if _, err := io.ReadFull(rand.Reader, b); err != nil {
		panic(err)
	}
	return hex.EncodeToString(b)
}
