// Command agentload measures what agent sessions cost a controller: it starts one
// deckhand-controller process, enrolls N nodes through the real Enroll RPC, opens N mTLS
// sessions that send heartbeats like deckhand-agent does, and reports the controller's
// RSS and CPU while they run, with the top entries of a CPU profile (taken over the same
// window) and of a heap profile of the controller (its --debug-addr). Used by
// scripts/bench.sh.
package main

import (
	"bufio"
	"context"
	"crypto/tls"
	"flag"
	"fmt"
	"io"
	"net"
	"net/http"
	"os"
	"os/exec"
	"os/signal"
	"path/filepath"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"syscall"
	"time"

	"google.golang.org/grpc"
	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/credentials"
	"google.golang.org/grpc/status"
	"google.golang.org/protobuf/types/known/durationpb"

	"github.com/deckhandhq/deckhand/client"
	"github.com/deckhandhq/deckhand/internal/pki"
	agentv1 "github.com/deckhandhq/deckhand/proto/deckhand/agent/v1"
	apiv1 "github.com/deckhandhq/deckhand/proto/deckhand/api/v1"
	"github.com/deckhandhq/deckhand/scripts/internal/loadutil"
)

func main() {
	bin := flag.String("controller-bin", "bin/deckhand-controller", "deckhand-controller binary")
	steps := flag.String("sessions", "1000,5000", "session counts to measure, ascending")
	window := flag.Duration("window", time.Minute, "measurement window per step: the CPU figure is the mean over it, so it should span a garbage collection (about one a minute at 10,000 sessions)")
	heartbeat := flag.Duration("heartbeat", 2*time.Second, "agent heartbeat interval")
	profiles := flag.String("profile-dir", "", "directory for the controller's CPU and heap profiles, one pair per step (default: a new directory under $TMPDIR)")
	top := flag.Int("top", 15, "profile entries to print per step (go tool pprof -top -nodecount); 0: none")
	flag.Parse()
	if err := run(*bin, *steps, *window, *heartbeat, *profiles, *top); err != nil {
		fmt.Fprintln(os.Stderr, "agentload:", err)
		os.Exit(1)
	}
}

func run(bin, stepList string, window, heartbeat time.Duration, profiles string, top int) error {
	var steps []int
	for _, f := range strings.Split(stepList, ",") {
		n, err := strconv.Atoi(strings.TrimSpace(f))
		if err != nil || n < 1 || (len(steps) > 0 && n < steps[len(steps)-1]) {
			return fmt.Errorf("--sessions %q: ascending counts", stepList)
		}
		steps = append(steps, n)
	}
	fit, err := raiseFileLimit(steps[len(steps)-1])
	if err != nil {
		return err
	}
	if profiles == "" {
		var err error
		if profiles, err = os.MkdirTemp("", "agentload-profiles-"); err != nil {
			return err
		}
	} else if err := os.MkdirAll(profiles, 0o755); err != nil {
		return err
	}
	dir, err := os.MkdirTemp("", "agentload-")
	if err != nil {
		return err
	}
	defer os.RemoveAll(dir)
	addr, metrics, debug := loadutil.FreeAddr(), loadutil.FreeAddr(), loadutil.FreeAddr()
	// One replica: a long raft timeout keeps it leader when the machine is starved for CPU
	// (a lost lease would fail enrollments for seconds); the sessions do not depend on it.
	cmd := exec.Command(bin, "--data-dir", dir, "--listen", addr, "--metrics-listen", metrics, "--debug-addr", debug, "--log-level", "warn",
		"--heartbeat-interval", heartbeat.String(), "--node-not-ready-after", (5 * heartbeat).String(), "--raft-timeout", "10s")
	cmd.Stderr = os.Stderr
	if err := cmd.Start(); err != nil {
		return err
	}
	defer func() { _ = cmd.Process.Kill(); _ = cmd.Wait() }()
	// Interrupted (Ctrl-C, a timeout's SIGTERM): the controller and its data go too.
	stop := make(chan os.Signal, 1)
	signal.Notify(stop, os.Interrupt, syscall.SIGTERM)
	go func() {
		<-stop
		_ = cmd.Process.Kill()
		_ = cmd.Wait()
		_ = os.RemoveAll(dir)
		os.Exit(1)
	}()
	pid := cmd.Process.Pid

	// admin.conf appears once the controller published its CA.
	var admin *client.Client
	if err := loadutil.Poll(30*time.Second, func() error {
		ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
		defer cancel()
		admin, err = client.New(ctx, client.Options{ConfigFile: filepath.Join(dir, "admin.conf"), NoRefresh: true})
		return err
	}); err != nil {
		return err
	}
	defer admin.Close()
	var token, pin string
	if err := loadutil.Poll(30*time.Second, func() error {
		ctx, cancel := context.WithTimeout(context.Background(), 2*time.Second)
		defer cancel()
		resp, err := apiv1.NewTokenServiceClient(admin).CreateToken(ctx, &apiv1.CreateTokenRequest{Ttl: durationpb.New(time.Hour)})
		if err != nil {
			return err
		}
		token, pin = resp.GetSecret(), resp.GetCaCertHash()
		return nil
	}); err != nil {
		return err
	}

	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	var open atomic.Int64
	var wg sync.WaitGroup
	have := 0
	// The profile's window is whole seconds; the CPU figure is read over the same window.
	window = max(window.Round(time.Second), time.Second)
	fmt.Printf("%-9s %-10s %-12s %-12s %-14s %-11s %-10s %-10s %s\n", "sessions", "rss_mib", "rss_max_mib", "cpu_percent", "enroll_per_s", "goroutines", "heap_mib", "stack_mib", "window")
	var tops []string
	for _, n := range steps {
		if n > fit {
			// The largest step that fits instead, when it adds one: the growth stays visible.
			fits := fit / 500 * 500
			fmt.Printf("%-9d does not fit: the load generator and the controller each need %d open files, the hard limit is %d (raising it needs root with CAP_SYS_RESOURCE)", n, n*filesPerSession+filesSpare, fit*filesPerSession+filesSpare)
			if fits <= have {
				fmt.Println("; skipped")
				continue
			}
			fmt.Printf("; %d sessions instead\n", fits)
			n = fits
		}
		start := time.Now()
		creds, err := enrollMany(addr, token, pin, have, n)
		if err != nil {
			return err
		}
		enrollRate := float64(n-have) / time.Since(start).Seconds()
		for i, c := range creds {
			src := sourceAddr(have + i)
			wg.Add(1)
			go func() {
				defer wg.Done()
				session(ctx, addr, src, c, heartbeat, &open)
			}()
		}
		have = n
		if err := loadutil.Poll(5*time.Minute, func() error {
			got, err := scrape(metrics, "deckhand_agent_sessions")
			if err != nil {
				return err
			}
			if int(got) < n {
				return fmt.Errorf("%d of %d sessions", int(got), n)
			}
			return nil
		}); err != nil {
			return err
		}
		cpuFile := filepath.Join(profiles, fmt.Sprintf("cpu-%d.pb.gz", n))
		heapFile := filepath.Join(profiles, fmt.Sprintf("heap-%d.pb.gz", n))
		cpuDone := make(chan error, 1)
		go func() {
			cpuDone <- fetch(fmt.Sprintf("http://%s/debug/pprof/profile?seconds=%d", debug, int(window.Seconds())), cpuFile)
		}()
		// RSS is read once a second through the window, and the highest reading is what the
		// target is held to: where in the collector's cycle one reading falls moves it by
		// tens of MiB at 10,000 sessions.
		cpu0, t0 := loadutil.CPUTicks(pid), time.Now()
		var rssMax float64
		for end := t0.Add(window); ; {
			rssMax = max(rssMax, loadutil.StatusMiB(pid, "VmRSS:"))
			left := time.Until(end)
			if left <= 0 || !loadutil.Wait(ctx, min(left, time.Second)) {
				break
			}
		}
		cpu1, t1 := loadutil.CPUTicks(pid), time.Now()
		cpuPct := float64(cpu1-cpu0) / 100 / t1.Sub(t0).Seconds() * 100 // USER_HZ is 100 on Linux
		rss := loadutil.StatusMiB(pid, "VmRSS:")
		rssMax = max(rssMax, rss)
		if err := <-cpuDone; err != nil {
			return fmt.Errorf("CPU profile of the controller: %w", err)
		}
		if err := fetch("http://"+debug+"/debug/pprof/heap", heapFile); err != nil {
			return fmt.Errorf("heap profile of the controller: %w", err)
		}
		goroutines, heap, stack, err := runtimeStats(debug)
		if err != nil {
			return err
		}
		fmt.Printf("%-9d %-10.1f %-12.1f %-12.1f %-14.0f %-11d %-10.1f %-10.1f %v\n", n, rss, rssMax, cpuPct, enrollRate, goroutines, heap, stack, window)
		if top > 0 {
			for _, p := range []struct{ what, file, index string }{{"CPU", cpuFile, ""}, {"heap in use", heapFile, "-sample_index=inuse_space"}} {
				args := []string{"tool", "pprof", "-top", fmt.Sprintf("-nodecount=%d", top)}
				if p.index != "" {
					args = append(args, p.index)
				}
				out, err := exec.Command("go", append(args, bin, p.file)...).CombinedOutput()
				if err != nil {
					return fmt.Errorf("go tool pprof %s: %v: %s", p.file, err, out)
				}
				tops = append(tops, fmt.Sprintf("%s at %d sessions (%s):\n%s", p.what, n, p.file, out))
			}
		}
	}
	cancel()
	wg.Wait()
	for _, t := range tops {
		fmt.Println()
		fmt.Print(t)
	}
	return nil
}

// filesPerSession is what one session costs the load generator and the controller (which
// inherits the load generator's limit): its connection. filesSpare is the rest of each
// process (listeners, the store, reconnections under way).
const (
	filesPerSession = 1
	filesSpare      = 256
)

// raiseFileLimit raises the open-file limit to what n sessions need, as far as this process
// may (the hard limit needs CAP_SYS_RESOURCE), and returns how many sessions fit.
func raiseFileLimit(n int) (int, error) {
	var l syscall.Rlimit
	if err := syscall.Getrlimit(syscall.RLIMIT_NOFILE, &l); err != nil {
		return 0, err
	}
	want := uint64(n*filesPerSession + filesSpare)
	if l.Cur < want {
		raised := syscall.Rlimit{Cur: want, Max: max(l.Max, want)}
		if err := syscall.Setrlimit(syscall.RLIMIT_NOFILE, &raised); err != nil {
			raised = syscall.Rlimit{Cur: l.Max, Max: l.Max} // as far as the hard limit
			if err := syscall.Setrlimit(syscall.RLIMIT_NOFILE, &raised); err != nil {
				return 0, err
			}
		}
		l = raised
	}
	return max(int(l.Cur)-filesSpare, 0) / filesPerSession, nil
}

// sessionsPerSource keeps each loopback source address well inside the ephemeral port range.
const sessionsPerSource = 8000

// sourceAddr is the loopback address session i dials from: 127.0.0.1 for the first
// sessionsPerSource, then 127.0.0.2, and so on.
func sourceAddr(i int) *net.TCPAddr {
	return &net.TCPAddr{IP: net.IPv4(127, 0, 0, byte(1+i/sessionsPerSource))}
}

// fetch saves the body of a GET to file.
func fetch(url, file string) error {
	resp, err := http.Get(url)
	if err != nil {
		return err
	}
	defer resp.Body.Close()
	if resp.StatusCode != http.StatusOK {
		b, _ := io.ReadAll(io.LimitReader(resp.Body, 512))
		return fmt.Errorf("%s: %s: %s", url, resp.Status, b)
	}
	f, err := os.Create(file)
	if err != nil {
		return err
	}
	if _, err := io.Copy(f, resp.Body); err != nil {
		f.Close()
		return err
	}
	return f.Close()
}

// runtimeStats reads the controller's goroutine count, Go heap in use and goroutine stacks
// (MiB) from its profiler's text views.
func runtimeStats(debug string) (goroutines int, heapMiB, stackMiB float64, err error) {
	get := func(path string) (string, error) {
		resp, err := http.Get("http://" + debug + path)
		if err != nil {
			return "", err
		}
		defer resp.Body.Close()
		b, err := io.ReadAll(resp.Body)
		return string(b), err
	}
	g, err := get("/debug/pprof/goroutine?debug=1")
	if err != nil {
		return 0, 0, 0, err
	}
	if _, err := fmt.Sscanf(g, "goroutine profile: total %d", &goroutines); err != nil {
		return 0, 0, 0, fmt.Errorf("goroutine profile: %v", err)
	}
	h, err := get("/debug/pprof/heap?debug=1")
	if err != nil {
		return 0, 0, 0, err
	}
	found := 0
	for _, line := range strings.Split(h, "\n") {
		// "# HeapInuse = 123" and "# Stack = 456 / 789" (in use / from the OS)
		if f := strings.Fields(line); len(f) >= 4 && f[0] == "#" && f[2] == "=" {
			b, _ := strconv.ParseFloat(f[3], 64)
			switch f[1] {
			case "HeapInuse":
				heapMiB, found = b/(1<<20), found+1
			case "Stack":
				stackMiB, found = b/(1<<20), found+1
			}
		}
	}
	if found != 2 {
		return 0, 0, 0, fmt.Errorf("no HeapInuse or Stack in the heap profile")
	}
	return goroutines, heapMiB, stackMiB, nil
}

type cred struct {
	name string
	tls  *tls.Config
}

func enrollMany(addr, token, pin string, from, to int) ([]cred, error) {
	cc, err := grpc.NewClient("passthrough:///"+addr, grpc.WithTransportCredentials(credentials.NewTLS(pki.PinnedTLS(pin))))
	if err != nil {
		return nil, err
	}
	defer cc.Close()
	client := agentv1.NewAgentServiceClient(cc)
	out := make([]cred, to-from)
	errs := make(chan error, enrollers)
	var next atomic.Int64
	next.Store(int64(from))
	var wg sync.WaitGroup
	for range enrollers {
		wg.Add(1)
		go func() {
			defer wg.Done()
			for {
				i := int(next.Add(1) - 1)
				if i >= to {
					return
				}
				name := fmt.Sprintf("load-%05d", i)
				cfg, err := loadutil.Enroll(context.Background(), client, token, name)
				// On a starved machine a call can time out after the controller enrolled
				// the name: try again under another name (the first stays enrolled, never
				// connected, which liveness ignores).
				for retry := 1; retry <= 3 && isTransient(err); retry++ {
					name = fmt.Sprintf("load-%05d-r%d", i, retry)
					cfg, err = loadutil.Enroll(context.Background(), client, token, name)
				}
				if err != nil {
					errs <- err
					return
				}
				out[i-from] = cred{name: name, tls: cfg}
			}
		}()
	}
	wg.Wait()
	close(errs)
	if err := <-errs; err != nil {
		return nil, err
	}
	return out, nil
}

// enrollers is how many enrollments run at once: enough to batch the controller's raft
// writes, few enough that each call finishes within its deadline on a busy machine.
const enrollers = 16

// isTransient: the call may succeed when tried again.
func isTransient(err error) bool {
	switch status.Code(err) {
	case codes.DeadlineExceeded, codes.Unavailable:
		return true
	}
	return false
}

// session behaves like deckhand-agent's session loop: hello, then heartbeats.
// connecting bounds the sessions connecting at once, below the controller's limit on
// connections per source still in their handshake (netmux.DefaultPerSource): more would be
// refused and retried, costing both processes handshakes and delaying the measurement.
var connecting = make(chan struct{}, 32)

func session(ctx context.Context, addr string, src *net.TCPAddr, c cred, heartbeat time.Duration, open *atomic.Int64) {
	dialer := &net.Dialer{LocalAddr: src}
	dial := func(ctx context.Context, a string) (net.Conn, error) { return dialer.DialContext(ctx, "tcp", a) }
	for ctx.Err() == nil {
		cc, err := grpc.NewClient("passthrough:///"+addr, grpc.WithTransportCredentials(credentials.NewTLS(c.tls)), grpc.WithContextDialer(dial))
		if err != nil {
			return
		}
		func() {
			defer cc.Close()
			stream, err := hello(ctx, cc, c.name)
			if err != nil {
				return
			}
			open.Add(1)
			defer open.Add(-1)
			tick := time.NewTicker(heartbeat)
			defer tick.Stop()
			for {
				select {
				case <-ctx.Done():
					return
				case <-tick.C:
					if err := stream.Send(&agentv1.SessionRequest{Msg: &agentv1.SessionRequest_Heartbeat{Heartbeat: &agentv1.Heartbeat{}}}); err != nil {
						return
					}
				}
			}
		}()
		loadutil.Wait(ctx, time.Second)
	}
}

// hello opens a session on cc and waits for the controller's welcome.
func hello(ctx context.Context, cc *grpc.ClientConn, name string) (agentv1.AgentService_SessionClient, error) {
	select {
	case connecting <- struct{}{}:
	case <-ctx.Done():
		return nil, ctx.Err()
	}
	defer func() { <-connecting }()
	// A hello the controller does not answer gives its place back after helloWait (the
	// session is retried), so it cannot hold up the sessions after it.
	hctx, cancel := context.WithCancel(ctx)
	timer := time.AfterFunc(helloWait, cancel)
	defer timer.Stop()
	stream, err := agentv1.NewAgentServiceClient(cc).Session(hctx)
	if err != nil {
		cancel()
		return nil, err
	}
	h := &agentv1.Hello{NodeName: name, AgentVersion: "agentload", Facts: &agentv1.Facts{Hostname: name, OsId: "debian", OsVersion: "12", Kernel: "6.1.0", Arch: "amd64", Cpus: 2, MachineId: name}}
	if err := stream.Send(&agentv1.SessionRequest{Msg: &agentv1.SessionRequest_Hello{Hello: h}}); err != nil {
		return nil, err
	}
	if _, err := stream.Recv(); err != nil {
		cancel()
		return nil, err
	}
	if !timer.Stop() {
		return nil, fmt.Errorf("no welcome within %v", helloWait)
	}
	return stream, nil // hctx stays open: it is the session's context now
}

// helloWait bounds how long a session waits for the controller's welcome.
const helloWait = 30 * time.Second

func scrape(addr, metric string) (float64, error) {
	resp, err := http.Get("http://" + addr + "/metrics")
	if err != nil {
		return 0, err
	}
	defer resp.Body.Close()
	sc := bufio.NewScanner(resp.Body)
	for sc.Scan() {
		if f := strings.Fields(sc.Text()); len(f) == 2 && f[0] == metric {
			return strconv.ParseFloat(f[1], 64)
		}
	}
	return 0, fmt.Errorf("metric %s not found", metric)
}
