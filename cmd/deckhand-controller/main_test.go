package main

import (
	"bytes"
	"context"
	"encoding/json"
	"fmt"
	"io"
	"math/rand/v2"
	"net"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"slices"
	"strconv"
	"strings"
	"sync"
	"syscall"
	"testing"
	"time"

	clientv3 "go.etcd.io/etcd/client/v3"
	"google.golang.org/grpc"
	"google.golang.org/grpc/credentials"
	healthpb "google.golang.org/grpc/health/grpc_health_v1"
	reflectionpb "google.golang.org/grpc/reflection/grpc_reflection_v1"

	"github.com/deckhandhq/deckhand/internal/clientconfig"
	"github.com/deckhandhq/deckhand/internal/testkit/testcluster"
	"github.com/deckhandhq/deckhand/internal/testkit/testetcd"
)

// These tests run the real binaries as processes, the way an operator does.

var binDir string

func TestMain(m *testing.M) {
	dir, err := os.MkdirTemp("", "deckhand-bin-")
	if err != nil {
		panic(err)
	}
	binDir = dir
	for _, pkg := range []string{"github.com/deckhandhq/deckhand/cmd/deckhand-controller", "github.com/deckhandhq/deckhand/cmd/deckctl", "github.com/deckhandhq/deckhand/cmd/deckhand-agent"} {
		cmd := exec.Command("go", "build", "-o", dir, pkg)
		cmd.Stderr = os.Stderr
		if err := cmd.Run(); err != nil {
			fmt.Fprintln(os.Stderr, "build:", err)
			os.Exit(1)
		}
	}
	code := m.Run()
	os.RemoveAll(dir)
	os.Exit(code)
}

// freePort returns a loopback address whose port is free now and stays free while a test
// starts a process on it later: it is picked below the kernel's ephemeral range, because a
// port from the ephemeral range (what listening on port 0 gives) can be taken in between as
// the local end of any outgoing connection on the machine (a test once failed that way).
func freePort(t *testing.T) string {
	t.Helper()
	lo := 32768
	if b, err := os.ReadFile("/proc/sys/net/ipv4/ip_local_port_range"); err == nil {
		if f := strings.Fields(string(b)); len(f) == 2 {
			if n, err := strconv.Atoi(f[0]); err == nil && n > 12000 {
				lo = n
			}
		}
	}
	for range 200 {
		addr := net.JoinHostPort("127.0.0.1", strconv.Itoa(10000+rand.IntN(lo-10000)))
		ln, err := net.Listen("tcp", addr)
		if err != nil {
			continue
		}
		ln.Close()
		return addr
	}
	t.Fatal("no free port below the ephemeral range")
	return ""
}

type proc struct {
	cmd    *exec.Cmd
	stderr *syncWriter
	addr   string
	dir    string
	done   chan struct{}
}

func startController(t *testing.T, dir, addr string, args ...string) *proc {
	t.Helper()
	p := &proc{addr: addr, dir: dir, stderr: &syncWriter{b: &bytes.Buffer{}}, done: make(chan struct{})}
	p.cmd = exec.Command(filepath.Join(binDir, "deckhand-controller"), append([]string{"--data-dir", dir, "--listen", addr}, args...)...)
	p.cmd.Stderr = p.stderr
	if err := p.cmd.Start(); err != nil {
		t.Fatal(err)
	}
	go func() { _ = p.cmd.Wait(); close(p.done) }()
	t.Cleanup(func() { p.kill() })
	return p
}

func (p *proc) kill() {
	if p.cmd.Process != nil {
		_ = p.cmd.Process.Signal(syscall.SIGKILL)
	}
	<-p.done
}

type syncWriter struct {
	mu sync.Mutex
	b  *bytes.Buffer
}

func (w *syncWriter) Write(b []byte) (int, error) {
	w.mu.Lock()
	defer w.mu.Unlock()
	return w.b.Write(b)
}

func (w *syncWriter) String() string {
	w.mu.Lock()
	defer w.mu.Unlock()
	return w.b.String()
}

// deckctl runs deckctl with the admin.conf of the controller whose data dir is dir.
func deckctl(t *testing.T, dir, controllers string, args ...string) (string, error) {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 20*time.Second)
	defer cancel()
	out, err := exec.CommandContext(ctx, filepath.Join(binDir, "deckctl"), append([]string{"--config", filepath.Join(dir, "admin.conf"), "--controller", controllers}, args...)...).CombinedOutput()
	return string(out), err
}

// joinFlags mints a controller join token through deckctl and returns the join flags.
func joinFlags(t *testing.T, dir, addr string) []string {
	t.Helper()
	var out string
	waitFor(t, 30*time.Second, func() error {
		var err error
		out, err = deckctl(t, dir, addr, "token", "create", "--purpose", "controller", "-o", "json")
		if err != nil {
			return fmt.Errorf("%v: %s", err, out)
		}
		return nil
	})
	var resp struct {
		Secret     string `json:"secret"`
		CaCertHash string `json:"caCertHash"`
	}
	if err := json.Unmarshal([]byte(out), &resp); err != nil || resp.Secret == "" || !strings.HasPrefix(resp.CaCertHash, "sha256:") {
		t.Fatalf("token create -o json: %v\n%s", err, out)
	}
	return []string{"--join", addr, "--token", resp.Secret, "--ca-cert-hash", resp.CaCertHash}
}

func waitFor(t *testing.T, timeout time.Duration, cond func() error) {
	t.Helper()
	testcluster.WaitFor(t, timeout, cond)
}

// membersTable parses `deckctl members` into name -> (state, leader).
func membersTable(out string) map[string][2]string {
	rows := map[string][2]string{}
	for _, line := range strings.Split(strings.TrimSpace(out), "\n")[1:] {
		f := strings.Fields(line)
		if len(f) < 3 {
			continue
		}
		leader := ""
		if len(f) >= 5 && f[3] == "*" {
			leader = "*"
		}
		rows[f[0]] = [2]string{f[2], leader}
	}
	return rows
}

func TestThreeControllersSurviveLeaderKill(t *testing.T) {
	addrs := []string{freePort(t), freePort(t), freePort(t)}
	names := []string{"ctl-a", "ctl-b", "ctl-c"}
	procs := make([]*proc, 3)
	procs[0] = startController(t, t.TempDir(), addrs[0], "--name", names[0])
	admin := procs[0].dir
	for i := 1; i < 3; i++ {
		procs[i] = startController(t, t.TempDir(), addrs[i], append([]string{"--name", names[i]}, joinFlags(t, admin, addrs[0])...)...)
	}
	all := strings.Join(addrs, ",")
	var leader string
	waitFor(t, 30*time.Second, func() error {
		out, err := deckctl(t, admin, all, "members")
		if err != nil {
			return fmt.Errorf("%v: %s", err, out)
		}
		rows := membersTable(out)
		if len(rows) != 3 {
			return fmt.Errorf("want 3 members:\n%s", out)
		}
		leader = ""
		for name, r := range rows {
			if r[1] == "*" && r[0] == "leader" {
				leader = name
			}
		}
		if leader == "" {
			return fmt.Errorf("no leader:\n%s", out)
		}
		return nil
	})
	checkHealthAndReflection(t, admin, addrs[0])
	li := 0
	for i, n := range names {
		if n == leader {
			li = i
		}
	}
	procs[li].kill()
	var rest []string
	for i, a := range addrs {
		if i != li {
			rest = append(rest, a)
		}
	}
	waitFor(t, 30*time.Second, func() error {
		out, err := deckctl(t, admin, strings.Join(rest, ","), "members")
		if err != nil {
			return fmt.Errorf("%v: %s", err, out)
		}
		rows := membersTable(out)
		if rows[leader][0] != "unreachable" {
			return fmt.Errorf("killed leader %s not shown unreachable:\n%s", leader, out)
		}
		for name, r := range rows {
			if name != leader && r[1] == "*" && r[0] == "leader" {
				return nil
			}
		}
		return fmt.Errorf("no new leader:\n%s", out)
	})
	// The killed replica restarts from its data dir (no --join needed) and rejoins.
	procs[li] = startController(t, procs[li].dir, addrs[li])
	waitFor(t, 30*time.Second, func() error {
		out, err := deckctl(t, admin, all, "members")
		if err != nil {
			return fmt.Errorf("%v: %s", err, out)
		}
		if r := membersTable(out)[leader]; r[0] != "follower" {
			return fmt.Errorf("restarted %s is %q:\n%s", leader, r[0], out)
		}
		return nil
	})
}

// runFail runs the controller expecting it to exit non-zero with one line on stderr.
func runFail(t *testing.T, args ...string) string {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	cmd := exec.CommandContext(ctx, filepath.Join(binDir, "deckhand-controller"), args...)
	var stderr bytes.Buffer
	cmd.Stderr = &stderr
	err := cmd.Run()
	if err == nil {
		t.Fatalf("controller %v exited 0", args)
	}
	if ctx.Err() != nil {
		t.Fatalf("controller %v hung instead of failing", args)
	}
	var lines []string
	for _, l := range strings.Split(strings.TrimSpace(stderr.String()), "\n") {
		if !strings.Contains(l, `msg="waiting for the cluster to join"`) { // --join retries
			lines = append(lines, l)
		}
	}
	if len(lines) != 1 {
		t.Fatalf("want one line on stderr, got %d:\n%s", len(lines), stderr.String())
	}
	return lines[0]
}

func snapshotDir(t *testing.T, dir string) string {
	t.Helper()
	var b strings.Builder
	_ = filepath.Walk(dir, func(p string, info os.FileInfo, err error) error {
		if err != nil {
			return nil
		}
		data, _ := os.ReadFile(p)
		fmt.Fprintf(&b, "%s %v %d %x\n", strings.TrimPrefix(p, dir), info.Mode(), len(data), data)
		return nil
	})
	return b.String()
}

func TestBadInputExitsWithOneClearLine(t *testing.T) {
	// A cluster whose data dir another cluster's replica will try to use.
	addr := freePort(t)
	running := startController(t, t.TempDir(), addr)
	waitFor(t, 30*time.Second, func() error {
		out, err := deckctl(t, running.dir, addr, "members")
		if err != nil || !strings.Contains(out, "leader") {
			return fmt.Errorf("%v: %s", err, out)
		}
		return nil
	})
	otherDir := t.TempDir()
	other := startController(t, otherDir, freePort(t))
	waitFor(t, 30*time.Second, func() error {
		// admin.conf comes last: the other cluster's CA is on disk by then.
		if _, err := os.Stat(filepath.Join(otherDir, "admin.conf")); err != nil {
			return err
		}
		return nil
	})
	other.kill()

	flags := joinFlags(t, running.dir, addr)
	join := func(a string) []string { return []string{"--join", a, "--token", flags[3], "--ca-cert-hash", flags[5]} }

	file := filepath.Join(t.TempDir(), "a-file")
	if err := os.WriteFile(file, []byte("x"), 0o600); err != nil {
		t.Fatal(err)
	}

	cases := []struct {
		name  string
		dir   string
		args  []string
		wants []string
	}{
		{"unwritable data dir", filepath.Join(file, "data"), []string{"--listen", freePort(t)}, []string{"data dir", "--data-dir"}},
		{"port in use", t.TempDir(), []string{"--listen", running.addr}, []string{"already in use", "--listen"}},
		{"unreachable join", t.TempDir(), append([]string{"--listen", freePort(t), "--join-timeout", "2s"}, join(freePort(t))...), []string{"cannot reach", "--join", "--join-timeout"}},
		// Waiting cannot heal these: they fail at once, not after --join-timeout (3m).
		{"join with a wrong token", t.TempDir(), []string{"--listen", freePort(t), "--join", addr, "--token", "abcdef.0123456789abcdef", "--ca-cert-hash", flags[5]}, []string{"--token"}},
		{"join with a wrong CA hash", t.TempDir(), []string{"--listen", freePort(t), "--join", addr, "--token", flags[3], "--ca-cert-hash", "sha256:" + strings.Repeat("ab", 32)}, []string{"--ca-cert-hash"}},
		{"data dir of another cluster", otherDir, append([]string{"--listen", freePort(t)}, join(addr)...), []string{"another cluster", "--data-dir"}},
		{"join without a pin", t.TempDir(), []string{"--listen", freePort(t), "--join", addr}, []string{"--ca-cert-hash"}},
		{"unknown log format", t.TempDir(), []string{"--listen", freePort(t), "--log-format", "xml"}, []string{"--log-format", "text or json"}},
		{"audit retention too short", t.TempDir(), []string{"--listen", freePort(t), "--audit-retention", "1m"}, []string{"--audit-retention"}},
		{"profiler on every interface", t.TempDir(), []string{"--listen", freePort(t), "--debug-addr", "0.0.0.0:6060"}, []string{"--debug-addr", "loopback"}},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			before := snapshotDir(t, tc.dir)
			line := runFail(t, append([]string{"--data-dir", tc.dir}, tc.args...)...)
			t.Log(line)
			for _, w := range tc.wants {
				if !strings.Contains(line, w) {
					t.Errorf("message %q does not mention %q", line, w)
				}
			}
			if after := snapshotDir(t, tc.dir); after != before {
				t.Errorf("data dir changed by a refused start")
			}
		})
	}
	// The running controller was not disturbed by any of it.
	if out, err := deckctl(t, running.dir, addr, "members"); err != nil || !strings.Contains(out, "leader") {
		t.Fatalf("running controller affected: %v %s", err, out)
	}
}

// An operator who asked for the profiler gets it on the loopback address, as go tool pprof
// reads it.
func TestDebugAddrServesTheProfiler(t *testing.T) {
	debug := freePort(t)
	startController(t, t.TempDir(), freePort(t), "--debug-addr", debug)
	waitFor(t, 30*time.Second, func() error {
		resp, err := http.Get("http://" + debug + "/debug/pprof/goroutine?debug=1")
		if err != nil {
			return err
		}
		defer resp.Body.Close()
		body, _ := io.ReadAll(resp.Body)
		if resp.StatusCode != http.StatusOK || !strings.Contains(string(body), "goroutine profile:") {
			return fmt.Errorf("%s: %.200s", resp.Status, body)
		}
		return nil
	})
}

// checkHealthAndReflection asks the controller what grpc_health_probe and grpcurl would.
func checkHealthAndReflection(t *testing.T, dir, addr string) {
	t.Helper()
	cfg, err := clientconfig.Load(filepath.Join(dir, "admin.conf"))
	if err != nil {
		t.Fatal(err)
	}
	tlsCfg, err := cfg.TLS()
	if err != nil {
		t.Fatal(err)
	}
	cc, err := grpc.NewClient("passthrough:///"+addr, grpc.WithTransportCredentials(credentials.NewTLS(tlsCfg)))
	if err != nil {
		t.Fatal(err)
	}
	defer cc.Close()
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	resp, err := healthpb.NewHealthClient(cc).Check(ctx, &healthpb.HealthCheckRequest{})
	if err != nil || resp.GetStatus() != healthpb.HealthCheckResponse_SERVING {
		t.Fatalf("health check: %v %v", resp, err)
	}
	stream, err := reflectionpb.NewServerReflectionClient(cc).ServerReflectionInfo(ctx)
	if err != nil {
		t.Fatal(err)
	}
	if err := stream.Send(&reflectionpb.ServerReflectionRequest{MessageRequest: &reflectionpb.ServerReflectionRequest_ListServices{}}); err != nil {
		t.Fatal(err)
	}
	r, err := stream.Recv()
	if err != nil {
		t.Fatal(err)
	}
	var names []string
	for _, svc := range r.GetListServicesResponse().GetService() {
		names = append(names, svc.GetName())
	}
	for _, want := range []string{"deckhand.api.v1.MemberService", "grpc.health.v1.Health"} {
		if !slices.Contains(names, want) {
			t.Fatalf("reflection lists %v, missing %s", names, want)
		}
	}
}

// An operator's path: controller, token, agent process, deckctl in every output format.
func TestAgentProcessAndDeckctlOutput(t *testing.T) {
	addr, ctlMetrics, agentMetrics := freePort(t), freePort(t), freePort(t)
	ctl := startController(t, t.TempDir(), addr, "--heartbeat-interval", "200ms", "--node-not-ready-after", "2s", "--metrics-listen", ctlMetrics)
	var out string
	waitFor(t, 30*time.Second, func() error {
		var err error
		out, err = deckctl(t, ctl.dir, addr, "token", "create", "--usages", "1", "--description", "web-1")
		if err != nil {
			return fmt.Errorf("%v: %s", err, out)
		}
		return nil
	})
	// The printed command is the one to run: take its flags as they are.
	var cmdline string
	for _, line := range strings.Split(out, "\n") {
		if strings.HasPrefix(strings.TrimSpace(line), "deckhand-agent ") {
			cmdline = strings.TrimSpace(line)
		}
	}
	if cmdline == "" {
		t.Fatalf("token create printed no agent command:\n%s", out)
	}
	root, err := os.MkdirTemp("", "dh-web-") // short: containerd's socket lives under it
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { os.RemoveAll(root) })
	testcluster.InstallSim(t, root)
	os.MkdirAll(filepath.Join(root, "etc"), 0o755)
	os.WriteFile(filepath.Join(root, "etc", "machine-id"), []byte("0123456789abcdef0123456789abcdef\n"), 0o644)
	os.WriteFile(filepath.Join(root, "etc", "os-release"), []byte("ID=ubuntu\nVERSION_ID=\"24.04\"\n"), 0o644)
	// The printed command, with the token moved into a file (as the README advises).
	var args []string
	fields := strings.Fields(cmdline)[1:]
	for i := 0; i < len(fields); i++ {
		if fields[i] == "--token" {
			tokenFile := filepath.Join(t.TempDir(), "token")
			os.WriteFile(tokenFile, []byte(fields[i+1]+"\n"), 0o600)
			args = append(args, "--token-file", tokenFile)
			i++
			continue
		}
		args = append(args, fields[i])
	}
	args = append(args, "--node-name", "web-1", "--root", root, "--data-dir", t.TempDir(), "--metrics-listen", agentMetrics)
	agent := exec.Command(filepath.Join(binDir, "deckhand-agent"), args...)
	agentErr := &syncWriter{b: &bytes.Buffer{}}
	agent.Stderr = agentErr
	if err := agent.Start(); err != nil {
		t.Fatal(err)
	}
	agentExited := make(chan error, 1)
	go func() { agentExited <- agent.Wait() }()
	t.Cleanup(func() { agent.Process.Kill(); <-agentExited })
	waitFor(t, 30*time.Second, func() error {
		out, err := deckctl(t, ctl.dir, addr, "nodes")
		if err != nil || !strings.Contains(out, "web-1") || !strings.Contains(out, "Ready") || !strings.Contains(out, "ubuntu 24.04") {
			return fmt.Errorf("%v:\n%s", err, out)
		}
		return nil
	})
	// Prometheus metrics on the separate listeners.
	for addr, want := range map[string][]string{
		ctlMetrics:   {`deckhand_nodes{state="NODE_STATE_READY"} 1`, "deckhand_agent_sessions 1", "deckhand_raft_leader 1", "grpc_server_handled_total"},
		agentMetrics: {"deckhand_agent_connected 1", "deckhand_agent_heartbeats_sent_total", "deckhand_agent_certificate_expiry_timestamp_seconds"},
	} {
		waitFor(t, 10*time.Second, func() error {
			resp, err := http.Get("http://" + addr + "/metrics")
			if err != nil {
				return err
			}
			defer resp.Body.Close()
			body, _ := io.ReadAll(resp.Body)
			for _, w := range want {
				if !strings.Contains(string(body), w) {
					return fmt.Errorf("%s: no %q", addr, w)
				}
			}
			return nil
		})
	}
	for _, format := range []string{"json", "yaml"} {
		out, err := deckctl(t, ctl.dir, addr, "node", "describe", "web-1", "-o", format)
		if err != nil || !strings.Contains(out, "NODE_STATE_READY") || !strings.Contains(out, "ubuntu") {
			t.Fatalf("describe -o %s: %v\n%s", format, err, out)
		}
	}
	// One task on one node, live, then read back.
	out, err = deckctl(t, ctl.dir, addr, "task", "run", "web-1", "runtime", "--cgroup-driver", "cgroupfs", "--mirror", "http://127.0.0.1:5999", "--id", "rt-web-1")
	if err != nil || !strings.Contains(out, "CRI answers: containerd") || !strings.Contains(out, "task rt-web-1 on web-1: succeeded") || !strings.Contains(out, "changed file /etc/containerd/config.toml") {
		t.Fatalf("task run runtime: %v\n%s", err, out)
	}
	out, err = deckctl(t, ctl.dir, addr, "task", "run", "web-1", "runtime", "--cgroup-driver", "cgroupfs", "--mirror", "http://127.0.0.1:5999", "--dry-run")
	if err != nil || !strings.Contains(out, "(dry-run)") || !strings.Contains(out, "no changes") {
		t.Fatalf("dry-run after the run: %v\n%s", err, out)
	}
	if out, err = deckctl(t, ctl.dir, addr, "task", "logs", "rt-web-1"); err != nil || !strings.Contains(out, "wrote /etc/crictl.yaml") {
		t.Fatalf("task logs: %v\n%s", err, out)
	}
	if out, err = deckctl(t, ctl.dir, addr, "task", "get", "rt-web-1"); err != nil || !strings.Contains(out, "runtime_ready: true") {
		t.Fatalf("task get: %v\n%s", err, out)
	}
	bundle := filepath.Join(t.TempDir(), "diag.tar.gz")
	if out, err = deckctl(t, ctl.dir, addr, "task", "run", "web-1", "diagnostics", "--save", bundle); err != nil || !strings.Contains(out, "saved") {
		t.Fatalf("diagnostics: %v\n%s", err, out)
	}
	if data, _ := os.ReadFile(bundle); len(data) < 2 || data[0] != 0x1f || data[1] != 0x8b {
		t.Fatalf("diagnostics bundle is not gzip (%d bytes)", len(data))
	}
	out, err = deckctl(t, ctl.dir, addr, "task", "run", "web-1", "images", "--action", "export", "--archive", "relative.tar")
	if err == nil || !strings.Contains(out, "archive_path") || !strings.Contains(out, "(INVALID_ARGUMENT)") {
		t.Fatalf("bad images task: %v\n%s", err, out)
	}
	out, err = deckctl(t, ctl.dir, addr, "token", "list")
	if err != nil || !strings.Contains(out, "1/1") || !strings.Contains(out, "web-1") {
		t.Fatalf("token list: %v\n%s", err, out)
	}
	// A server error is one readable line with its reason.
	out, err = deckctl(t, ctl.dir, addr, "node", "describe", "nope")
	lines := strings.Split(strings.TrimSpace(out), "\n")
	if err == nil || len(lines) != 1 || !strings.Contains(lines[0], "nope") || !strings.Contains(lines[0], "(NOT_FOUND)") {
		t.Fatalf("describe missing node: %v\n%s", err, out)
	}
	out, err = deckctl(t, ctl.dir, addr, "nodes", "-o", "xml")
	if err == nil || !strings.Contains(out, "-o") {
		t.Fatalf("bad -o accepted: %s", out)
	}
	if out, err := deckctl(t, ctl.dir, addr, "completion", "bash"); err != nil || !strings.Contains(out, "deckctl") {
		t.Fatalf("completion: %v", err)
	}
	// Deleting the node cuts the agent off: it keeps running (a service manager restarting it
	// would not help) and says in one line that it needs a new token.
	if out, err := deckctl(t, ctl.dir, addr, "node", "delete", "web-1"); err != nil {
		t.Fatalf("delete: %v %s", err, out)
	}
	waitFor(t, 20*time.Second, func() error {
		for _, line := range strings.Split(agentErr.String(), "\n") {
			if strings.Contains(line, "deleted") && strings.Contains(line, "deckhand-agent --token-file") {
				return nil
			}
		}
		return fmt.Errorf("no line saying the agent needs a new token:\n%s", agentErr.String())
	})
	select {
	case err := <-agentExited:
		t.Fatalf("the agent of the deleted node exited: %v\n%s", err, agentErr.String())
	default:
	}
}

// With --store etcd: etcd unreachable, TLS misconfigured and a data dir of another cluster
// than the prefix's each exit non-zero with one line that says what and how to fix it.
func TestEtcdBadInputExitsWithOneClearLine(t *testing.T) {
	plain := testetcd.Start(t, testetcd.Options{})
	secure := testetcd.Start(t, testetcd.Options{TLS: true})
	ep := strings.Join(plain.Endpoints(), ",")

	// Cluster A lives under /a; cluster B's controller (data dir b) ran under /b.
	aDir, bDir := t.TempDir(), t.TempDir()
	for dir, prefix := range map[string]string{aDir: "/a", bDir: "/b"} {
		p := startController(t, dir, freePort(t), "--store", "etcd", "--etcd-endpoints", ep, "--etcd-prefix", prefix)
		waitFor(t, 30*time.Second, func() error {
			_, err := os.Stat(filepath.Join(dir, "admin.conf"))
			return err
		})
		p.kill()
	}
	// A data dir of the embedded store, and one of etcd started with the embedded store.
	raftDir := t.TempDir()
	p := startController(t, raftDir, freePort(t))
	waitFor(t, 30*time.Second, func() error {
		_, err := os.Stat(filepath.Join(raftDir, "admin.conf"))
		return err
	})
	p.kill()
	t.Run("data dir of etcd with the embedded store", func(t *testing.T) {
		before := snapshotDir(t, aDir)
		line := runFail(t, "--data-dir", aDir, "--listen", freePort(t))
		for _, w := range []string{"--store etcd", "--data-dir"} {
			if !strings.Contains(line, w) {
				t.Errorf("message %q does not mention %q", line, w)
			}
		}
		if after := snapshotDir(t, aDir); after != before {
			t.Errorf("data dir changed by a refused start")
		}
	})
	cases := []struct {
		name  string
		dir   string
		args  []string
		wants []string
	}{
		{"etcd unreachable", t.TempDir(), []string{"--etcd-endpoints", freePort(t)}, []string{"unreachable", "--etcd-endpoints"}},
		{"etcd TLS without its CA", t.TempDir(), []string{"--etcd-endpoints", strings.Join(secure.Endpoints(), ",")}, []string{"TLS"}},
		{"data dir of another cluster than the prefix", bDir, []string{"--etcd-endpoints", ep, "--etcd-prefix", "/a"}, []string{"another", "--etcd-prefix"}},
		{"data dir of the embedded store", raftDir, []string{"--etcd-endpoints", ep}, []string{"embedded raft store", "--store etcd", "--data-dir"}},
		{"data dir with a mistyped prefix", aDir, []string{"--etcd-endpoints", ep, "--etcd-prefix", "/aa"}, []string{"holds no Deckhand cluster", "--etcd-prefix", "--data-dir"}},
		{"join with etcd", t.TempDir(), []string{"--etcd-endpoints", ep, "--join", "127.0.0.1:1", "--ca-cert-hash", "sha256:" + strings.Repeat("0", 64)}, []string{"--join"}},
		{"no endpoints", t.TempDir(), nil, []string{"--etcd-endpoints"}},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			before := snapshotDir(t, tc.dir)
			line := runFail(t, append([]string{"--data-dir", tc.dir, "--listen", freePort(t), "--store", "etcd"}, tc.args...)...)
			for _, w := range tc.wants {
				if !strings.Contains(line, w) {
					t.Errorf("message %q does not mention %q", line, w)
				}
			}
			if after := snapshotDir(t, tc.dir); after != before {
				t.Errorf("data dir changed by a refused start")
			}
		})
	}
	// The mistyped prefix got no second cluster.
	cli, err := clientv3.New(clientv3.Config{Endpoints: plain.Endpoints(), DialTimeout: 5 * time.Second})
	if err != nil {
		t.Fatal(err)
	}
	defer cli.Close()
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	resp, err := cli.Get(ctx, "/aa/", clientv3.WithPrefix(), clientv3.WithCountOnly())
	if err != nil || resp.Count != 0 {
		t.Errorf("the refused start wrote %v keys under the mistyped prefix /aa (%v)", resp, err)
	}
}

// A damaged data dir exits with one line saying what is wrong and how to recover (no
// panic, no silent start, no idling), and leaves every file as it was.
func TestDamagedDataDirExitsWithOneClearLine(t *testing.T) {
	addr := freePort(t)
	dir := t.TempDir()
	p := startController(t, dir, addr)
	waitFor(t, 30*time.Second, func() error {
		out, err := deckctl(t, dir, addr, "token", "create", "--description", "a write")
		if err != nil {
			return fmt.Errorf("%v: %s", err, out)
		}
		return nil
	})
	p.kill()

	cases := []struct {
		name   string
		damage func(dir string) error
		wants  []string
	}{
		{"random bytes inside raft.db", func(d string) error {
			f, err := os.OpenFile(filepath.Join(d, "raft.db"), os.O_WRONLY, 0)
			if err != nil {
				return err
			}
			defer f.Close()
			noise := make([]byte, 64<<10)
			for i := range noise {
				noise[i] = byte(i*7919 + i/13)
			}
			_, err = f.WriteAt(noise, 16<<10)
			return err
		}, []string{"raft.db cannot be read"}},
		{"raft.db emptied", func(d string) error { return os.Truncate(filepath.Join(d, "raft.db"), 0) }, []string{"raft.db is empty"}},
		{"raft.db deleted", func(d string) error { return os.Remove(filepath.Join(d, "raft.db")) }, []string{"raft.db is missing"}},
		{"member.json deleted", func(d string) error { return os.Remove(filepath.Join(d, "member.json")) }, []string{"no member.json"}},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			d := filepath.Join(t.TempDir(), "data")
			if out, err := exec.Command("cp", "-a", dir, d).CombinedOutput(); err != nil {
				t.Fatalf("copy data dir: %v %s", err, out)
			}
			if err := tc.damage(d); err != nil {
				t.Fatal(err)
			}
			before := snapshotDir(t, d)
			line := runFail(t, "--data-dir", d, "--listen", freePort(t))
			for _, w := range append(tc.wants, "is damaged", "backup", "--data-dir") {
				if !strings.Contains(line, w) {
					t.Errorf("message %q does not mention %q", line, w)
				}
			}
			if after := snapshotDir(t, d); after != before {
				t.Errorf("data dir changed by a refused start")
			}
		})
	}
}

// The data dir holds the CA key: one created beforehand with 0755 ends 0700 and nothing in
// it is readable by other users.
func TestDataDirIsPrivate(t *testing.T) {
	dir := filepath.Join(t.TempDir(), "data")
	if err := os.Mkdir(dir, 0o755); err != nil {
		t.Fatal(err)
	}
	if err := os.Chmod(dir, 0o755); err != nil {
		t.Fatal(err)
	}
	addr := freePort(t)
	startController(t, dir, addr)
	waitFor(t, 30*time.Second, func() error {
		_, err := os.Stat(filepath.Join(dir, "admin.conf"))
		return err
	})
	var n int
	_ = filepath.Walk(dir, func(p string, info os.FileInfo, err error) error {
		if err != nil {
			return nil
		}
		n++
		if perm := info.Mode().Perm(); perm&0o077 != 0 {
			t.Errorf("%s is %v: readable by other users", p, perm)
		}
		return nil
	})
	if info, _ := os.Stat(dir); info.Mode().Perm() != 0o700 {
		t.Errorf("data dir is %v, want 0700", info.Mode().Perm())
	}
	if n < 6 { // dir, raft.db, member.json, pki, pki/ca.crt, pki/ca.key, admin.conf, snapshots
		t.Errorf("only %d entries in the data dir", n)
	}
}

// A controller started before the cluster it joins is up waits for it (logging each wait
// in one line) and joins once it is, instead of exiting.
func TestJoinWaitsForTheClusterToStart(t *testing.T) {
	addrA, addrB := freePort(t), freePort(t)
	a := startController(t, t.TempDir(), addrA, "--name", "ctl-a")
	flags := joinFlags(t, a.dir, addrA)
	a.kill()

	b := startController(t, t.TempDir(), addrB, append([]string{"--name", "ctl-b", "--join-timeout", "2m"}, flags...)...)
	waitFor(t, 30*time.Second, func() error {
		select {
		case <-b.done:
			return fmt.Errorf("the joining controller exited:\n%s", b.stderr)
		default:
		}
		if n := strings.Count(b.stderr.String(), "waiting for the cluster to join"); n < 2 {
			return fmt.Errorf("%d waits logged:\n%s", n, b.stderr)
		}
		return nil
	})
	a = startController(t, a.dir, addrA)
	waitFor(t, 60*time.Second, func() error {
		out, err := deckctl(t, a.dir, addrA+","+addrB, "members")
		if err != nil {
			return fmt.Errorf("%v: %s", err, out)
		}
		rows := membersTable(out)
		if len(rows) != 2 || (rows["ctl-b"][0] != "follower" && rows["ctl-b"][0] != "leader") {
			return fmt.Errorf("ctl-b has not joined:\n%s", out)
		}
		return nil
	})
	for _, line := range strings.Split(b.stderr.String(), "\n") {
		if strings.Contains(line, "waiting for the cluster to join") && !strings.Contains(line, "retry_in=") {
			t.Errorf("a wait does not say when it retries: %s", line)
		}
	}
}

// A --join list whose first address is stale (another cluster's controller answers there)
// joins through the next one; a join whose only address is another cluster's fails at once
// (not after --join-timeout) with one line.
func TestJoinSkipsAStaleAddressAndRefusesAForeignCluster(t *testing.T) {
	addrA, addrB, addrC := freePort(t), freePort(t), freePort(t)
	a := startController(t, t.TempDir(), addrA, "--name", "ctl-a")
	startController(t, t.TempDir(), addrB, "--name", "ctl-b") // another cluster
	flags := joinFlags(t, a.dir, addrA)
	token, hash := flags[3], flags[5]
	waitFor(t, 30*time.Second, func() error { // B answers (it is up)
		c, err := net.Dial("tcp", addrB)
		if err == nil {
			c.Close()
		}
		return err
	})

	start := time.Now()
	line := runFail(t, "--data-dir", t.TempDir(), "--listen", freePort(t), "--join", addrB, "--token", token, "--ca-cert-hash", hash)
	if took := time.Since(start); took > 20*time.Second {
		t.Errorf("the refused join took %v (--join-timeout 3m)", took)
	}
	t.Log(line)
	for _, w := range []string{addrB, "--ca-cert-hash", "--join"} {
		if !strings.Contains(line, w) {
			t.Errorf("message %q does not mention %q", line, w)
		}
	}

	c := startController(t, t.TempDir(), addrC, "--name", "ctl-c", "--join", addrB+","+addrA, "--token", token, "--ca-cert-hash", hash)
	waitFor(t, 60*time.Second, func() error {
		select {
		case <-c.done:
			return fmt.Errorf("the joining controller exited:\n%s", c.stderr)
		default:
		}
		out, err := deckctl(t, a.dir, addrA, "members")
		if err != nil {
			return fmt.Errorf("%v: %s", err, out)
		}
		if rows := membersTable(out); len(rows) != 2 || rows["ctl-c"][0] != "follower" {
			return fmt.Errorf("ctl-c has not joined:\n%s", out)
		}
		return nil
	})
}

// --version prints one line, the same build for the three binaries (they were built from
// one work tree), naming the Go version (and the VCS revision when the build had one:
// -buildvcs=false, as GOFLAGS sets on some machines, leaves it out).
func TestVersionFlagOnEveryBinary(t *testing.T) {
	var builds []string
	for _, bin := range []string{"deckhand-controller", "deckhand-agent", "deckctl"} {
		out, err := exec.Command(filepath.Join(binDir, bin), "--version").CombinedOutput()
		lines := strings.Split(strings.TrimSpace(string(out)), "\n")
		if err != nil || len(lines) != 1 || !strings.HasPrefix(lines[0], bin+" ") || !strings.Contains(lines[0], " go1.") {
			t.Fatalf("%s --version = %v:\n%s\nwant one line: %s VERSION (REVISION) GOVERSION", bin, err, out, bin)
		}
		builds = append(builds, strings.TrimPrefix(lines[0], bin+" "))
	}
	if builds[0] != builds[1] || builds[1] != builds[2] {
		t.Fatalf("one work tree, three builds: %q", builds)
	}
}
