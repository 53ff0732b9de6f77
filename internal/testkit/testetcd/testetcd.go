package testetcd

import (
	"bufio"
	"bytes"
	"crypto/ecdsa"
	"crypto/elliptic"
	"crypto/rand"
	"crypto/tls"
	"crypto/x509"
	"crypto/x509/pkix"
	"encoding/json"
	"encoding/pem"
	"errors"
	"fmt"
	"io"
	"math/big"
	"net"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"runtime"
	"strconv"
	"strings"
	"sync"
	"syscall"
	"testing"
	"time"

	"github.com/deckhandhq/deckhand/internal/testkit/testwait"
)

// RequireEnv names the environment variable that turns a missing etcd binary from a skip
// into a failure.
const RequireEnv = "DECKHAND_REQUIRE_ETCD"

// Options shape a cluster.
type Options struct {
	// Members is the number of members (default 1).
	Members int
	// HeartbeatInterval and ElectionTimeout are etcd's raft timing. Zero picks 10ms/100ms
	// for one member (it never has to win an election against anyone: starts in 0.05s) and
	// etcd's defaults, 100ms/1s, for several: shorter ones churn leaders when a 2-core
	// machine runs the whole -race suite, and every leader change fails the writes in flight.
	HeartbeatInterval time.Duration
	ElectionTimeout   time.Duration
	// TLS serves the client port over TLS (a fresh CA per cluster) and requires client
	// certificates from that CA; ClientTLS returns a matching client config. Peer traffic stays
	// plain HTTP on loopback.
	TLS bool
	// StartTimeout bounds waiting for the cluster to become healthy (default 30s).
	StartTimeout time.Duration
	// Binary is the etcd to run (default: Binary's, the etcd on PATH).
	Binary string
	// Args are extra flags for every member (for example --snapshot-count).
	Args []string
	// PeerProxy puts a proxy in front of every member's peer port, so Partition can cut a
	// member off from the others (see proxy.go).
	PeerProxy bool
}

// Cluster is a running etcd cluster owned by one test.
type Cluster struct {
	t       testing.TB
	bin     string
	opts    Options
	token   string
	members []*member
	tls     *tlsFiles
	http    *http.Client
	proxies []*peerProxy

	idsMu       sync.Mutex
	partitioned map[int]bool
}

type member struct {
	name       string
	dataDir    string
	logPath    string
	clientPort int
	peerPort   int
	// advertisedPeerPort is the port the others dial: peerPort, or its proxy's.
	advertisedPeerPort int

	mu   sync.Mutex
	cmd  *exec.Cmd
	done chan struct{} // closed when the running process has exited
}

// Binary returns the path of the etcd binary, skipping the test when it is missing (or
// failing it when DECKHAND_REQUIRE_ETCD is set).
func Binary(t testing.TB) string {
	t.Helper()
	bin, err := exec.LookPath("etcd")
	if err == nil {
		return bin
	}
	if os.Getenv(RequireEnv) != "" {
		t.Fatalf("etcd is not on PATH and %s is set: install Debian's etcd-server (apt-get install etcd-server)", RequireEnv)
	}
	t.Skipf("etcd is not on PATH: install Debian's etcd-server (apt-get install etcd-server) to run this test; set %s=1 to fail instead of skipping", RequireEnv)
	return ""
}

// BinaryEnv names the environment variable with an etcd binary KitBinary uses before
// looking in the Kubernetes build kit.
const BinaryEnv = "DECKHAND_ETCD_BIN"

// KitBinary returns an etcd of the given minor ("3.5") built from the Go module proxy by
// the Kubernetes build kit (scripts/k8s.sh, cached under $DECKHAND_KIT_DIR or
// ~/.cache/deckhand/kit), or $DECKHAND_ETCD_BIN. Without one the test is skipped, or fails
// when DECKHAND_REQUIRE_ETCD is set (CI builds the kit before the tests).
func KitBinary(t testing.TB, minor string) string {
	t.Helper()
	if bin := os.Getenv(BinaryEnv); bin != "" {
		return bin
	}
	base := os.Getenv("DECKHAND_KIT_DIR")
	if base == "" {
		cache := os.Getenv("XDG_CACHE_HOME")
		if cache == "" {
			cache = filepath.Join(os.Getenv("HOME"), ".cache")
		}
		base = filepath.Join(cache, "deckhand", "kit")
	}
	found, _ := filepath.Glob(filepath.Join(base, "k8s-*-etcd-v"+minor+".*", "etcd"))
	for i := len(found) - 1; i >= 0; i-- {
		if st, err := os.Stat(found[i]); err == nil && st.Mode()&0o111 != 0 {
			return found[i]
		}
	}
	msg := fmt.Sprintf("no etcd %s.x in the Kubernetes build kit under %s: build it with scripts/k8s.sh v1.33.13 (etcd 3.5.24), or set %s", minor, base, BinaryEnv)
	if os.Getenv(RequireEnv) != "" {
		t.Fatal(msg)
	}
	t.Skip(msg)
	return ""
}

// Start starts a cluster and waits until every member is healthy. It is stopped when the
// test ends.
func Start(t testing.TB, opts Options) *Cluster {
	t.Helper()
	bin := opts.Binary
	if bin == "" {
		bin = Binary(t)
	}
	if opts.Members <= 0 {
		opts.Members = 1
	}
	if opts.HeartbeatInterval == 0 || opts.ElectionTimeout == 0 {
		if opts.Members == 1 {
			opts.HeartbeatInterval, opts.ElectionTimeout = 10*time.Millisecond, 100*time.Millisecond
		} else {
			opts.HeartbeatInterval, opts.ElectionTimeout = 100*time.Millisecond, time.Second
		}
	}
	if opts.StartTimeout == 0 {
		opts.StartTimeout = 30 * time.Second
	}
	c := &Cluster{t: t, bin: bin, opts: opts}
	t.Cleanup(c.stopAll)
	tr := &http.Transport{DisableKeepAlives: true}
	if opts.TLS {
		files, err := writeTLSFiles(t.TempDir())
		if err != nil {
			t.Fatalf("testetcd: TLS material: %v", err)
		}
		c.tls = files
		tr.TLSClientConfig = files.client.Clone()
	}
	c.http = &http.Client{Transport: tr, Timeout: 2 * time.Second}

	// A port that was free when chosen can be taken before etcd binds it; then start over
	// on fresh ports and data dirs.
	var err error
	for attempt := 0; attempt < 3; attempt++ {
		if err = c.startFresh(); err == nil {
			return c
		}
		c.stopAll()
		if !errors.Is(err, errPortTaken) {
			break
		}
	}
	t.Fatalf("testetcd: start %d-member cluster: %v", opts.Members, err)
	return nil
}

var errPortTaken = errors.New("port taken before etcd bound it")

func (c *Cluster) startFresh() error {
	ports, err := freePorts(2 * c.opts.Members)
	if err != nil {
		return err
	}
	c.token = fmt.Sprintf("deckhand-test-%d-%d", os.Getpid(), ports[0])
	c.members = nil
	for i := range c.opts.Members {
		c.members = append(c.members, &member{
			name:               fmt.Sprintf("m%d", i),
			dataDir:            filepath.Join(c.t.TempDir(), "data"),
			clientPort:         ports[2*i],
			peerPort:           ports[2*i+1],
			advertisedPeerPort: ports[2*i+1],
		})
		c.members[i].logPath = filepath.Join(filepath.Dir(c.members[i].dataDir), "etcd.log")
	}
	if c.opts.PeerProxy {
		if err := c.startProxies(); err != nil {
			return err
		}
	}
	// One at a time: a new member first asks its peers whether the cluster exists, waiting
	// up to a second on each peer that listens but does not serve yet. Started in turn, each
	// finds the earlier ones serving and the later ones not listening, and moves on at once.
	deadline := time.Now().Add(c.opts.StartTimeout)
	for i := range c.members {
		if err := c.spawn(i); err != nil {
			return err
		}
		if err := c.waitServing(i, c.peerURL(c.members[i])+"/version", deadline, isOK); err != nil {
			return err
		}
	}
	for i := range c.members {
		if err := c.waitHealthy(i, deadline); err != nil {
			return err
		}
	}
	return nil
}

func isOK(resp *http.Response, body []byte) error {
	if resp.StatusCode != http.StatusOK {
		return fmt.Errorf("%s %s", resp.Status, bytes.TrimSpace(body))
	}
	return nil
}

func (c *Cluster) peerURL(m *member) string { return fmt.Sprintf("http://127.0.0.1:%d", m.peerPort) }

// advertisedPeerURL is the peer URL the other members dial.
func (c *Cluster) advertisedPeerURL(m *member) string {
	return fmt.Sprintf("http://127.0.0.1:%d", m.advertisedPeerPort)
}

func (c *Cluster) clientURL(m *member) string {
	scheme := "http"
	if c.tls != nil {
		scheme = "https"
	}
	return fmt.Sprintf("%s://127.0.0.1:%d", scheme, m.clientPort)
}

// spawn starts member i's process on its data dir and ports.
func (c *Cluster) spawn(i int) error {
	m := c.members[i]
	var initial []string
	for _, o := range c.members {
		initial = append(initial, o.name+"="+c.advertisedPeerURL(o))
	}
	args := []string{
		"--name", m.name,
		"--data-dir", m.dataDir,
		"--listen-client-urls", c.clientURL(m),
		"--advertise-client-urls", c.clientURL(m),
		"--listen-peer-urls", c.peerURL(m),
		"--initial-advertise-peer-urls", c.advertisedPeerURL(m),
		"--initial-cluster", strings.Join(initial, ","),
		"--initial-cluster-state", "new",
		"--initial-cluster-token", c.token,
		"--heartbeat-interval", strconv.FormatInt(c.opts.HeartbeatInterval.Milliseconds(), 10),
		"--election-timeout", strconv.FormatInt(c.opts.ElectionTimeout.Milliseconds(), 10),
		"--logger", "zap",
		"--log-outputs", "stderr",
	}
	if c.tls != nil {
		args = append(args,
			"--cert-file", c.tls.certFile, "--key-file", c.tls.keyFile,
			"--client-cert-auth", "--trusted-ca-file", c.tls.caFile)
	}
	args = append(args, c.opts.Args...)
	logf, err := os.OpenFile(m.logPath, os.O_CREATE|os.O_WRONLY|os.O_APPEND, 0o600)
	if err != nil {
		return err
	}
	defer logf.Close()
	fmt.Fprintf(logf, "=== testetcd: %s %s\n", c.bin, strings.Join(args, " "))
	cmd := exec.Command(c.bin, args...)
	cmd.Env = etcdEnv()
	cmd.Stdout, cmd.Stderr = logf, logf
	// The member dies with the test binary even when the test is killed.
	cmd.SysProcAttr = &syscall.SysProcAttr{Pdeathsig: syscall.SIGKILL}
	if err := cmd.Start(); err != nil {
		return fmt.Errorf("start %s: %w", c.bin, err)
	}
	done := make(chan struct{})
	go func() {
		_ = cmd.Wait()
		close(done)
	}()
	m.mu.Lock()
	m.cmd, m.done = cmd, done
	m.mu.Unlock()
	return nil
}

// etcdEnv is this process's environment without ETCD_* variables (etcd reads its flags from
// them too) and with ETCD_UNSUPPORTED_ARCH where etcd 3.4 needs it.
func etcdEnv() []string {
	var env []string
	for _, kv := range os.Environ() {
		if !strings.HasPrefix(kv, "ETCD_") {
			env = append(env, kv)
		}
	}
	if runtime.GOARCH != "amd64" {
		env = append(env, "ETCD_UNSUPPORTED_ARCH="+runtime.GOARCH)
	}
	return env
}

// waitHealthy polls member i's /health until it reports healthy (it has a leader and
// serves a linearizable read), the process exits, or the deadline passes.
func (c *Cluster) waitHealthy(i int, deadline time.Time) error {
	return c.waitServing(i, c.clientURL(c.members[i])+"/health", deadline, func(resp *http.Response, body []byte) error {
		var h struct {
			Health string `json:"health"`
		}
		if err := json.Unmarshal(body, &h); err != nil || h.Health != "true" {
			return fmt.Errorf("%s %s", resp.Status, bytes.TrimSpace(body))
		}
		return nil
	})
}

// waitServing polls url until check accepts the answer, member i's process exits, or the
// deadline passes.
func (c *Cluster) waitServing(i int, url string, deadline time.Time, check func(*http.Response, []byte) error) error {
	m := c.members[i]
	m.mu.Lock()
	done := m.done
	m.mu.Unlock()
	tick := time.NewTicker(10 * time.Millisecond)
	defer tick.Stop()
	for {
		last := c.get(url, check)
		if last == nil {
			return nil
		}
		select {
		case <-done:
			tail := c.LogTail(i, 15)
			if strings.Contains(tail, "address already in use") {
				return fmt.Errorf("member %s: %w:\n%s", m.name, errPortTaken, tail)
			}
			return fmt.Errorf("member %s exited before serving; its log ends:\n%s", m.name, tail)
		default:
		}
		if time.Now().After(deadline) {
			return fmt.Errorf("member %s: GET %s not ready within %v (last: %v); its log ends:\n%s", m.name, url, c.opts.StartTimeout, last, c.LogTail(i, 15))
		}
		<-tick.C
	}
}

func (c *Cluster) get(url string, check func(*http.Response, []byte) error) error {
	resp, err := c.http.Get(url)
	if err != nil {
		return err
	}
	defer resp.Body.Close()
	body, _ := io.ReadAll(io.LimitReader(resp.Body, 4096))
	return check(resp, body)
}

// Size is the number of members.
func (c *Cluster) Size() int { return len(c.members) }

// Endpoint is member i's client URL.
func (c *Cluster) Endpoint(i int) string { return c.clientURL(c.members[i]) }

// Endpoints are every member's client URL.
func (c *Cluster) Endpoints() []string {
	out := make([]string, len(c.members))
	for i := range c.members {
		out[i] = c.Endpoint(i)
	}
	return out
}

// ClientTLS is a client config trusted by a TLS cluster (nil without Options.TLS).
func (c *Cluster) ClientTLS() *tls.Config {
	if c.tls == nil {
		return nil
	}
	return c.tls.client.Clone()
}

// Running reports whether member i's process is up.
func (c *Cluster) Running(i int) bool {
	m := c.members[i]
	m.mu.Lock()
	defer m.mu.Unlock()
	if m.done == nil {
		return false
	}
	select {
	case <-m.done:
		return false
	default:
		return true
	}
}

// Kill stops member i with SIGKILL (no graceful shutdown) and waits until its process is
// gone.
func (c *Cluster) Kill(i int) {
	c.t.Helper()
	if err := c.kill(i); err != nil {
		c.t.Fatalf("testetcd: kill member %d: %v", i, err)
	}
}

func (c *Cluster) kill(i int) error {
	m := c.members[i]
	m.mu.Lock()
	cmd, done := m.cmd, m.done
	m.mu.Unlock()
	if cmd == nil {
		return nil
	}
	_ = cmd.Process.Signal(syscall.SIGKILL)
	select {
	case <-done:
		return nil
	case <-time.After(10 * time.Second):
		return fmt.Errorf("pid %d still running 10s after SIGKILL", cmd.Process.Pid)
	}
}

// Restart starts a killed member i again on its data dir and ports and waits until it is
// healthy.
func (c *Cluster) Restart(i int) {
	c.t.Helper()
	if c.Running(i) {
		c.t.Fatalf("testetcd: restart member %d: it is still running; Kill it first", i)
	}
	if err := c.spawn(i); err != nil {
		c.t.Fatalf("testetcd: restart member %d: %v", i, err)
	}
	if err := c.waitHealthy(i, time.Now().Add(c.opts.StartTimeout)); err != nil {
		c.t.Fatalf("testetcd: restart member %d: %v", i, err)
	}
}

// Pause stops member i with SIGSTOP: it keeps its ports and connections but answers
// nothing until Resume (SIGCONT), as a process stalled by the machine would.
func (c *Cluster) Pause(i int) { c.signal(i, syscall.SIGSTOP) }

// Resume continues a paused member i.
func (c *Cluster) Resume(i int) { c.signal(i, syscall.SIGCONT) }

func (c *Cluster) signal(i int, sig syscall.Signal) {
	c.t.Helper()
	m := c.members[i]
	m.mu.Lock()
	cmd := m.cmd
	m.mu.Unlock()
	if cmd == nil {
		c.t.Fatalf("testetcd: signal member %d: it never started", i)
	}
	if err := cmd.Process.Signal(sig); err != nil && !errors.Is(err, os.ErrProcessDone) {
		c.t.Fatalf("testetcd: %v member %d: %v", sig, i, err)
	}
}

// KillAll kills every member; RestartAll starts them all again (a whole-cluster crash).
func (c *Cluster) KillAll() {
	c.t.Helper()
	for i := range c.members {
		c.Kill(i)
	}
}

// RestartAll starts every stopped member and waits until all are healthy.
func (c *Cluster) RestartAll() {
	c.t.Helper()
	for i := range c.members {
		if !c.Running(i) {
			if err := c.spawn(i); err != nil {
				c.t.Fatalf("testetcd: restart member %d: %v", i, err)
			}
		}
	}
	deadline := time.Now().Add(c.opts.StartTimeout)
	for i := range c.members {
		if err := c.waitHealthy(i, deadline); err != nil {
			c.t.Fatalf("testetcd: restart: %v", err)
		}
	}
}

func (c *Cluster) stopAll() {
	for _, p := range c.proxies {
		p.close()
	}
	c.proxies = nil
	for i := range c.members {
		if err := c.kill(i); err != nil {
			c.t.Errorf("testetcd: stop member %d: %v", i, err)
		}
	}
}

// Leader returns the index of the member that currently leads, waiting up to 15s for one.
func (c *Cluster) Leader() int {
	c.t.Helper()
	deadline := time.Now().Add(15 * time.Second)
	tick := time.NewTicker(10 * time.Millisecond)
	defer tick.Stop()
	var last error
	for {
		for i, m := range c.members {
			if !c.Running(i) {
				continue
			}
			st, err := c.status(m)
			if err != nil {
				last = err
				continue
			}
			if st.Leader != "" && st.Leader != "0" && st.Leader == st.Header.MemberID {
				return i
			}
			last = fmt.Errorf("member %s follows %s", m.name, st.Leader)
		}
		if time.Now().After(deadline) {
			c.t.Fatalf("testetcd: no leader within 15s: %v", last)
		}
		<-tick.C
	}
}

type statusResponse struct {
	Header struct {
		MemberID string `json:"member_id"`
	} `json:"header"`
	Leader    string `json:"leader"`
	Version   string `json:"version"`
	RaftIndex string `json:"raftIndex"`
}

// RaftIndex is member i's raft index (0 when it does not answer).
func (c *Cluster) RaftIndex(i int) uint64 {
	st, err := c.status(c.members[i])
	if err != nil {
		return 0
	}
	n, _ := strconv.ParseUint(st.RaftIndex, 10, 64)
	return n
}

// status asks member m through etcd's gRPC gateway (uint64 fields are JSON strings).
func (c *Cluster) status(m *member) (*statusResponse, error) {
	resp, err := c.http.Post(c.clientURL(m)+"/v3/maintenance/status", "application/json", strings.NewReader("{}"))
	if err != nil {
		return nil, err
	}
	defer resp.Body.Close()
	body, _ := io.ReadAll(io.LimitReader(resp.Body, 4096))
	if resp.StatusCode != http.StatusOK {
		return nil, fmt.Errorf("status of %s: %s %s", m.name, resp.Status, bytes.TrimSpace(body))
	}
	var st statusResponse
	if err := json.Unmarshal(body, &st); err != nil {
		return nil, fmt.Errorf("status of %s: %v: %s", m.name, err, body)
	}
	return &st, nil
}

// Version is the server version the first running member reports (for example "3.4.23").
func (c *Cluster) Version() string {
	c.t.Helper()
	for i, m := range c.members {
		if !c.Running(i) {
			continue
		}
		if st, err := c.status(m); err == nil {
			return st.Version
		}
	}
	return ""
}

// LogTail returns the last n lines of member i's log.
func (c *Cluster) LogTail(i, n int) string {
	f, err := os.Open(c.members[i].logPath)
	if err != nil {
		return err.Error()
	}
	defer f.Close()
	var lines []string
	sc := bufio.NewScanner(f)
	sc.Buffer(make([]byte, 64*1024), 1024*1024)
	for sc.Scan() {
		lines = append(lines, sc.Text())
		if len(lines) > n {
			lines = lines[1:]
		}
	}
	return strings.Join(lines, "\n")
}

// freePorts returns n distinct loopback ports that were free a moment ago. They come from
// the kernel's ephemeral range, so never etcd's well-known 2379/2380.
func freePorts(n int) ([]int, error) {
	var ls []net.Listener
	defer func() {
		for _, l := range ls {
			_ = l.Close()
		}
	}()
	var ports []int
	for range n {
		l, err := net.Listen("tcp", "127.0.0.1:0")
		if err != nil {
			return nil, err
		}
		ls = append(ls, l)
		ports = append(ports, l.Addr().(*net.TCPAddr).Port)
	}
	return ports, nil
}

type tlsFiles struct {
	caFile, certFile, keyFile string
	client                    *tls.Config
}

// writeTLSFiles creates a CA, a serving certificate for 127.0.0.1 and a client
// certificate, and writes what etcd needs into dir.
func writeTLSFiles(dir string) (*tlsFiles, error) {
	caKey, err := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	if err != nil {
		return nil, err
	}
	now := time.Now()
	caTmpl := &x509.Certificate{
		SerialNumber: big.NewInt(1), Subject: pkix.Name{CommonName: "testetcd CA"},
		NotBefore: now.Add(-time.Hour), NotAfter: now.Add(24 * time.Hour),
		KeyUsage: x509.KeyUsageCertSign | x509.KeyUsageDigitalSignature, BasicConstraintsValid: true, IsCA: true,
	}
	caDER, err := x509.CreateCertificate(rand.Reader, caTmpl, caTmpl, &caKey.PublicKey, caKey)
	if err != nil {
		return nil, err
	}
	caCert, _ := x509.ParseCertificate(caDER)
	issue := func(serial int64, cn string, usage x509.ExtKeyUsage) (certPEM, keyPEM []byte, err error) {
		key, err := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
		if err != nil {
			return nil, nil, err
		}
		tmpl := &x509.Certificate{
			SerialNumber: big.NewInt(serial), Subject: pkix.Name{CommonName: cn},
			NotBefore: now.Add(-time.Hour), NotAfter: now.Add(24 * time.Hour),
			KeyUsage: x509.KeyUsageDigitalSignature, ExtKeyUsage: []x509.ExtKeyUsage{usage},
			IPAddresses: []net.IP{net.IPv4(127, 0, 0, 1)}, DNSNames: []string{"localhost"},
		}
		der, err := x509.CreateCertificate(rand.Reader, tmpl, caCert, &key.PublicKey, caKey)
		if err != nil {
			return nil, nil, err
		}
		kb, err := x509.MarshalECPrivateKey(key)
		if err != nil {
			return nil, nil, err
		}
		return pem.EncodeToMemory(&pem.Block{Type: "CERTIFICATE", Bytes: der}), pem.EncodeToMemory(&pem.Block{Type: "EC PRIVATE KEY", Bytes: kb}), nil
	}
	srvCert, srvKey, err := issue(2, "etcd", x509.ExtKeyUsageServerAuth)
	if err != nil {
		return nil, err
	}
	cliCert, cliKey, err := issue(3, "deckhand", x509.ExtKeyUsageClientAuth)
	if err != nil {
		return nil, err
	}
	f := &tlsFiles{
		caFile:   filepath.Join(dir, "ca.crt"),
		certFile: filepath.Join(dir, "server.crt"),
		keyFile:  filepath.Join(dir, "server.key"),
	}
	for path, data := range map[string][]byte{
		f.caFile:   pem.EncodeToMemory(&pem.Block{Type: "CERTIFICATE", Bytes: caDER}),
		f.certFile: srvCert,
		f.keyFile:  srvKey,
	} {
		if err := os.WriteFile(path, data, 0o600); err != nil {
			return nil, err
		}
	}
	pair, err := tls.X509KeyPair(cliCert, cliKey)
	if err != nil {
		return nil, err
	}
	pool := x509.NewCertPool()
	pool.AddCert(caCert)
	f.client = &tls.Config{Certificates: []tls.Certificate{pair}, RootCAs: pool, MinVersion: tls.VersionTLS12}
	return f, nil
}

// WaitFor polls cond every 10ms until it returns nil, failing the test with the last
// error when timeout passes.
func WaitFor(t testing.TB, timeout time.Duration, cond func() error) {
	t.Helper()
	testwait.For(t, timeout, cond)
}

// LogCount counts the lines of member i's log that contain s (for example etcd's "received
// and saved database snapshot", which a follower logs when the leader sent it a snapshot).
func (c *Cluster) LogCount(i int, s string) int {
	f, err := os.Open(c.members[i].logPath)
	if err != nil {
		return 0
	}
	defer f.Close()
	n := 0
	sc := bufio.NewScanner(f)
	sc.Buffer(make([]byte, 64*1024), 1024*1024)
	for sc.Scan() {
		if strings.Contains(sc.Text(), s) {
			n++
		}
	}
	return n
}
