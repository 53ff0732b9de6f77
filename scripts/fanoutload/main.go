// Command fanoutload measures a fan-out (TaskService/RunTasks) to many agents: it starts
// one deckhand-controller process, enrolls N simulated agents (loadutil.SimAgent, every task
// answered at once) through the real Enroll RPC with mTLS sessions, and runs `ping` on all
// of them, several times per concurrency: the wall time from the request until the run's
// last message (every node's result stored), the per-node task time (creation to result
// stored, the run's p50/p99) and the controller's CPU. Used by scripts/bench.sh.
package main

import (
	"context"
	"flag"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"slices"
	"strconv"
	"strings"
	"sync"
	"time"

	"google.golang.org/protobuf/types/known/durationpb"

	"github.com/deckhandhq/deckhand/client"
	apiv1 "github.com/deckhandhq/deckhand/proto/deckhand/api/v1"
	taskv1 "github.com/deckhandhq/deckhand/proto/deckhand/task/v1"
	"github.com/deckhandhq/deckhand/scripts/internal/loadutil"
)

func main() {
	bin := flag.String("controller-bin", "bin/deckhand-controller", "deckhand-controller binary")
	nodes := flag.Int("nodes", 1000, "simulated agents")
	conc := flag.String("concurrency", "100,1000", "RunTasks concurrency values, comma-separated")
	runs := flag.Int("runs", 5, "fan-outs per concurrency (the median is reported)")
	flag.Parse()
	var cs []int
	for _, s := range strings.Split(*conc, ",") {
		c, err := strconv.Atoi(strings.TrimSpace(s))
		if err != nil || c < 1 || c > 1000 {
			fmt.Fprintf(os.Stderr, "fanoutload: --concurrency %q: give numbers 1..1000\n", *conc)
			os.Exit(2)
		}
		cs = append(cs, c)
	}
	if *nodes < 1 || *runs < 1 {
		fmt.Fprintln(os.Stderr, "fanoutload: --nodes and --runs must be at least 1")
		os.Exit(2)
	}
	if err := run(*bin, *nodes, cs, *runs); err != nil {
		fmt.Fprintln(os.Stderr, "fanoutload:", err)
		os.Exit(1)
	}
}

type result struct {
	wall, p50, p99 time.Duration
	cpu            float64
	ok             int
}

func run(bin string, n int, concurrency []int, runs int) error {
	dir, err := os.MkdirTemp("", "fanoutload-")
	if err != nil {
		return err
	}
	defer os.RemoveAll(dir)
	addr := loadutil.FreeAddr()
	cmd := exec.Command(bin, "--data-dir", dir, "--listen", addr, "--log-level", "warn", "--heartbeat-interval", "2s", "--node-not-ready-after", "10s")
	cmd.Stderr = os.Stderr
	if err := cmd.Start(); err != nil {
		return err
	}
	defer func() { _ = cmd.Process.Kill(); _ = cmd.Wait() }()
	pid := cmd.Process.Pid

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
		resp, err := apiv1.NewTokenServiceClient(admin).CreateToken(ctx, &apiv1.CreateTokenRequest{Ttl: durationpb.New(time.Hour), Usages: uint32(n)})
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
	names := make([]string, n)
	for i := range names {
		names[i] = fmt.Sprintf("node-%d", i+1)
	}
	t0 := time.Now()
	agents, err := loadutil.EnrollSimAgents(ctx, addr, token, pin, names, 0)
	if err != nil {
		return err
	}
	var wg sync.WaitGroup
	defer wg.Wait()
	defer cancel()
	for _, a := range agents {
		wg.Add(1)
		go func() {
			defer wg.Done()
			a.Run(ctx, []string{addr})
		}()
	}
	nodesAPI := apiv1.NewNodeServiceClient(admin)
	if err := loadutil.Poll(5*time.Minute, func() error {
		rctx, rcancel := context.WithTimeout(ctx, 10*time.Second)
		defer rcancel()
		ready := 0
		for tok := ""; ; {
			resp, err := nodesAPI.ListNodes(rctx, &apiv1.ListNodesRequest{PageSize: 1000, PageToken: tok})
			if err != nil {
				return err
			}
			for _, nd := range resp.GetNodes() {
				if nd.GetState() == apiv1.NodeState_NODE_STATE_READY {
					ready++
				}
			}
			if tok = resp.GetNextPageToken(); tok == "" {
				break
			}
		}
		if ready < n {
			return fmt.Errorf("%d of %d nodes Ready", ready, n)
		}
		return nil
	}); err != nil {
		return err
	}
	fmt.Fprintf(os.Stderr, "fanoutload: %d simulated agents enrolled and Ready in %v\n", n, time.Since(t0).Round(time.Millisecond))

	fmt.Printf("%-8s %-11s %6s %12s %12s %12s %12s %14s\n", "nodes", "concurrency", "runs", "wall (med)", "wall (max)", "p50 (med)", "p99 (med)", "ctl CPU/run")
	for _, c := range concurrency {
		var rs []result
		for range runs {
			cpu0 := loadutil.CPUTicks(pid)
			start := time.Now()
			last, err := admin.RunTasks(ctx, &apiv1.RunTasksRequest{Nodes: &apiv1.NodeSelector{All: true}, Concurrency: int32(c),
				Spec: &taskv1.TaskSpec{Kind: &taskv1.TaskSpec_Ping{Ping: &taskv1.PingSpec{}}}}, client.RunHandlers{})
			wall := time.Since(start)
			if err != nil {
				return err
			}
			if !last.GetDone() || int(last.GetSucceeded()) != n {
				return fmt.Errorf("fan-out at concurrency %d: %d of %d succeeded, %d failed", c, last.GetSucceeded(), n, last.GetFailed())
			}
			rs = append(rs, result{wall: wall, p50: last.GetP50().AsDuration(), p99: last.GetP99().AsDuration(),
				cpu: float64(loadutil.CPUTicks(pid)-cpu0) / 100, ok: int(last.GetSucceeded())})
		}
		med := func(f func(result) time.Duration) time.Duration {
			v := make([]time.Duration, len(rs))
			for i, r := range rs {
				v[i] = f(r)
			}
			slices.Sort(v)
			return v[len(v)/2]
		}
		cpus := make([]float64, len(rs))
		for i, r := range rs {
			cpus[i] = r.cpu
		}
		slices.Sort(cpus)
		worst := slices.MaxFunc(rs, func(a, b result) int { return int(a.wall - b.wall) }).wall
		fmt.Printf("%-8d %-11d %6d %12s %12s %12s %12s %13.2fs\n", n, c, runs,
			med(func(r result) time.Duration { return r.wall }).Round(time.Millisecond), worst.Round(time.Millisecond),
			med(func(r result) time.Duration { return r.p50 }).Round(100*time.Microsecond),
			med(func(r result) time.Duration { return r.p99 }).Round(100*time.Microsecond), cpus[len(cpus)/2])
	}
	return nil
}
