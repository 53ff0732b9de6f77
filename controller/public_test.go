package controller_test

import (
	"bytes"
	"context"
	"crypto/tls"
	"errors"
	"fmt"
	"log/slog"
	"net"
	"os"
	"path/filepath"
	"strings"
	"sync"
	"testing"
	"time"

	"google.golang.org/genproto/googleapis/rpc/errdetails"
	"google.golang.org/grpc"
	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/credentials"
	"google.golang.org/grpc/status"
	"google.golang.org/protobuf/types/known/durationpb"

	"github.com/deckhandhq/deckhand/controller"
	"github.com/deckhandhq/deckhand/controller/api"
	"github.com/deckhandhq/deckhand/internal/clientconfig"
	"github.com/deckhandhq/deckhand/internal/pki"
	"github.com/deckhandhq/deckhand/internal/testkit/testcluster"
	agentv1 "github.com/deckhandhq/deckhand/proto/deckhand/agent/v1"
	apiv1 "github.com/deckhandhq/deckhand/proto/deckhand/api/v1"
)

// syncBuffer is a log sink shared by the goroutines of a controller or an agent.
type syncBuffer struct {
	mu  sync.Mutex
	buf bytes.Buffer
}

func (b *syncBuffer) Write(p []byte) (int, error) {
	b.mu.Lock()
	defer b.mu.Unlock()
	return b.buf.Write(p)
}

func (b *syncBuffer) String() string {
	b.mu.Lock()
	defer b.mu.Unlock()
	return b.buf.String()
}

func (b *syncBuffer) Lines() []string {
	b.mu.Lock()
	defer b.mu.Unlock()
	return strings.Split(strings.TrimSpace(b.buf.String()), "\n")
}

type loggedController struct {
	addr  string
	pin   string
	admin *grpc.ClientConn
	log   *syncBuffer
}

// startLogged runs one controller whose log the test reads.
func startLogged(t *testing.T) *loggedController {
	t.Helper()
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	addr := ln.Addr().String()
	ln.Close()
	logs := &syncBuffer{}
	cfg := controller.DefaultConfig()
	cfg.DataDir, cfg.Listen = t.TempDir(), addr
	cfg.Logger = slog.New(slog.NewTextHandler(logs, &slog.HandlerOptions{Level: slog.LevelInfo}))
	cfg.Heartbeat, cfg.NotReadyAfter, cfg.LostAfter = testcluster.Timing.Heartbeat, testcluster.Timing.NotReadyAfter, testcluster.Timing.LostAfter
	ctl, err := controller.New(context.Background(), cfg)
	if err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan struct{})
	go func() { defer close(done); _ = ctl.Run(ctx) }()
	t.Cleanup(func() { cancel(); <-done })
	// admin.conf appears once the controller published the CA in the store.
	var admin *clientconfig.Config
	testcluster.WaitFor(t, 20*time.Second, func() error {
		admin, err = clientconfig.Load(filepath.Join(cfg.DataDir, "admin.conf"))
		return err
	})
	tlsCfg, err := admin.TLS()
	if err != nil {
		t.Fatal(err)
	}
	return &loggedController{addr: addr, pin: ctl.CA().Hash(), admin: dialWith(t, addr, tlsCfg), log: logs}
}

// enrollClient dials the controller as an agent that is not enrolled yet would, from the
// loopback address src.
func (l *loggedController) enrollClient(t *testing.T, src string) agentv1.AgentServiceClient {
	t.Helper()
	d := &net.Dialer{LocalAddr: &net.TCPAddr{IP: net.ParseIP(src)}}
	cc, err := grpc.NewClient("passthrough:///"+l.addr, grpc.WithTransportCredentials(credentials.NewTLS(pki.PinnedTLS(l.pin))),
		grpc.WithContextDialer(func(ctx context.Context, a string) (net.Conn, error) { return d.DialContext(ctx, "tcp", a) }))
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { cc.Close() })
	return agentv1.NewAgentServiceClient(cc)
}

func (l *loggedController) token(t *testing.T) string {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 20*time.Second)
	defer cancel()
	var secret string
	testcluster.WaitFor(t, 20*time.Second, func() error {
		resp, err := apiv1.NewTokenServiceClient(l.admin).CreateToken(ctx, &apiv1.CreateTokenRequest{Ttl: durationpb.New(time.Hour)})
		secret = resp.GetSecret()
		return err
	})
	return secret
}

func enrollRequest(t *testing.T, name, token string) *agentv1.EnrollRequest {
	t.Helper()
	_, csr, err := pki.NewKeyAndCSR(name)
	if err != nil {
		t.Fatal(err)
	}
	return &agentv1.EnrollRequest{Token: token, NodeName: name, CsrPem: csr, MachineId: "0123456789abcdef0123456789abcdef"}
}

// TestWrongTokensFromOneSourceAreRefusedAfterTheBurst: a source guessing tokens is refused
// with ResourceExhausted (and when to retry) after PublicFailureBurst failures, its log lines
// are sampled, and an agent with the right token on another address still enrolls.
func TestWrongTokensFromOneSourceAreRefusedAfterTheBurst(t *testing.T) {
	l := startLogged(t)
	good := l.token(t)
	attacker := l.enrollClient(t, "127.0.0.1")
	ctx, cancel := context.WithTimeout(context.Background(), 60*time.Second)
	defer cancel()
	codesSeen := map[codes.Code]int{}
	var refusal error
	for i := range 300 {
		_, err := attacker.Enroll(ctx, enrollRequest(t, "guess", "abcdef.0123456789abcde"+string(rune('a'+i%26))))
		codesSeen[status.Code(err)]++
		if status.Code(err) == codes.ResourceExhausted {
			refusal = err
		}
	}
	if codesSeen[codes.Unauthenticated] > api.PublicFailureBurst+2 || codesSeen[codes.ResourceExhausted] < 250 {
		t.Fatalf("300 wrong tokens from one source: %v; want at most %d refused as wrong, the rest ResourceExhausted", codesSeen, api.PublicFailureBurst)
	}
	var retry *errdetails.RetryInfo
	for _, d := range status.Convert(refusal).Details() {
		if r, ok := d.(*errdetails.RetryInfo); ok {
			retry = r
		}
	}
	if retry == nil || retry.GetRetryDelay().AsDuration() <= 0 || !strings.Contains(status.Convert(refusal).Message(), "retry in") {
		t.Fatalf("the refusal says neither when to retry nor why: %v (%v)", refusal, retry)
	}
	// The right token from another address still enrolls.
	if _, err := l.enrollClient(t, "127.0.0.2").Enroll(ctx, enrollRequest(t, "node-good", good)); err != nil {
		t.Fatalf("a right token from another source: %v", err)
	}
	// 300 calls made far fewer log lines.
	enrollLines := 0
	for _, line := range l.log.Lines() {
		if strings.Contains(line, "grpc.method=Enroll") {
			enrollLines++
		}
	}
	if enrollLines > 2*controller.CallLogBurst+5 {
		t.Fatalf("300 refused Enrolls wrote %d log lines", enrollLines)
	}
}

// TestAHugeNodeNameMakesABoundedLogLine: a 3 MiB node name is quoted, not echoed, in the
// reply and in the log.
func TestAHugeNodeNameMakesABoundedLogLine(t *testing.T) {
	l := startLogged(t)
	token := l.token(t)
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	huge := strings.Repeat("n", 3<<20)
	req := enrollRequest(t, "x", token)
	req.NodeName = huge
	_, err := l.enrollClient(t, "127.0.0.1").Enroll(ctx, req)
	if status.Code(err) != codes.InvalidArgument || len(status.Convert(err).Message()) > api.MaxStatusMessage {
		t.Fatalf("a 3 MiB node name: %d bytes of %v", len(status.Convert(err).Message()), status.Code(err))
	}
	testcluster.WaitFor(t, 10*time.Second, func() error {
		for _, line := range l.log.Lines() {
			if strings.Contains(line, "grpc.method=Enroll") {
				if len(line) > 8<<10 {
					return fmt.Errorf("a log line of %d bytes", len(line))
				}
				if !strings.Contains(line, "bytes)") {
					return errors.New("the Enroll log line does not say how long the cut value was: " + line[:min(len(line), 300)])
				}
				return nil
			}
		}
		return errors.New("no log line for the Enroll call")
	})
}

// TestAConnectionThatNeverStartsHTTP2IsClosed: a client that finishes TLS without a
// certificate and then sends nothing holds a file for ConnectionTimeout, not for ever.
func TestAConnectionThatNeverStartsHTTP2IsClosed(t *testing.T) {
	l := startLogged(t)
	cfg := pki.PinnedTLS(l.pin)
	cfg.NextProtos = []string{"h2"}
	c, err := tls.Dial("tcp", l.addr, cfg)
	if err != nil {
		t.Fatal(err)
	}
	defer c.Close()
	start := time.Now()
	_ = c.SetReadDeadline(time.Now().Add(controller.ConnectionTimeout + 10*time.Second))
	var readErr error
	for readErr == nil { // the server's HTTP/2 settings frame, then the close
		_, readErr = c.Read(make([]byte, 512))
	}
	if errors.Is(readErr, os.ErrDeadlineExceeded) {
		t.Fatalf("a silent connection is still open after %v", time.Since(start).Round(time.Second))
	}
	t.Logf("closed after %v: %v", time.Since(start).Round(100*time.Millisecond), readErr)
}
