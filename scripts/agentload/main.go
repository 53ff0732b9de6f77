// Command agentload measures what agent sessions cost a controller: it starts one
// deckhand-controller process, enrolls N nodes through the real Enroll RPC, opens N mTLS
// sessions that send heartbeats like deckhand-agent does, and reports the controller's
// RSS and CPU while they run. Used by scripts/bench.sh.
package main

import (
	"bufio"
	"context"
	"crypto/tls"
	"flag"
	"fmt"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"time"

	"google.golang.org/grpc"
	"google.golang.org/grpc/credentials"
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
	window := flag.Duration("window", 20*time.Second, "measurement window per step")
	heartbeat := flag.Duration("heartbeat", 2*time.Second, "agent heartbeat interval")
	flag.Parse()
	if err := run(*bin, *steps, *window, *heartbeat); err != nil {
		fmt.Fprintln(os.Stderr, "agentload:", err)
		os.Exit(1)
	}
}

func run(bin, steps string, window, heartbeat time.Duration) error {
	dir, err := os.MkdirTemp("", "agentload-")
	if err != nil {
		return err
	}
	defer os.RemoveAll(dir)
	addr, metrics := loadutil.FreeAddr(), loadutil.FreeAddr()
	cmd := exec.Command(bin, "--data-dir", dir, "--listen", addr, "--metrics-listen", metrics, "--log-level", "warn",
		"--heartbeat-interval", heartbeat.String(), "--node-not-ready-after", (5 * heartbeat).String())
	cmd.Stderr = os.Stderr
	if err := cmd.Start(); err != nil {
		return err
	}
	defer func() { _ = cmd.Process.Kill(); _ = cmd.Wait() }()
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
	fmt.Printf("%-9s %-12s %-12s %-14s %s\n", "sessions", "rss_mib", "cpu_percent", "enroll_per_s", "window")
	for _, s := range strings.Split(steps, ",") {
		n, err := strconv.Atoi(strings.TrimSpace(s))
		if err != nil || n < have {
			return fmt.Errorf("--sessions %q: ascending counts", steps)
		}
		start := time.Now()
		creds, err := enrollMany(addr, token, pin, have, n)
		if err != nil {
			return err
		}
		enrollRate := float64(n-have) / time.Since(start).Seconds()
		for _, c := range creds {
			wg.Add(1)
			go func() {
				defer wg.Done()
				session(ctx, addr, c, heartbeat, &open)
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
		cpu0, t0 := loadutil.CPUTicks(pid), time.Now()
		loadutil.Wait(ctx, window)
		cpu1, t1 := loadutil.CPUTicks(pid), time.Now()
		cpuPct := float64(cpu1-cpu0) / 100 / t1.Sub(t0).Seconds() * 100 // USER_HZ is 100 on Linux
		fmt.Printf("%-9d %-12.1f %-12.1f %-14.0f %v\n", n, loadutil.StatusMiB(pid, "VmRSS:"), cpuPct, enrollRate, window)
	}
	cancel()
	wg.Wait()
	return nil
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
	errs := make(chan error, 64)
	var next atomic.Int64
	next.Store(int64(from))
	var wg sync.WaitGroup
	for range 64 {
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

// session behaves like deckhand-agent's session loop: hello, then heartbeats.
func session(ctx context.Context, addr string, c cred, heartbeat time.Duration, open *atomic.Int64) {
	for ctx.Err() == nil {
		cc, err := grpc.NewClient("passthrough:///"+addr, grpc.WithTransportCredentials(credentials.NewTLS(c.tls)))
		if err != nil {
			return
		}
		func() {
			defer cc.Close()
			stream, err := agentv1.NewAgentServiceClient(cc).Session(ctx)
			if err != nil {
				return
			}
			hello := &agentv1.Hello{NodeName: c.name, AgentVersion: "agentload", Facts: &agentv1.Facts{Hostname: c.name, OsId: "debian", OsVersion: "12", Kernel: "6.1.0", Arch: "amd64", Cpus: 2, MachineId: c.name}}
			if err := stream.Send(&agentv1.SessionRequest{Msg: &agentv1.SessionRequest_Hello{Hello: hello}}); err != nil {
				return
			}
			if _, err := stream.Recv(); err != nil {
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
