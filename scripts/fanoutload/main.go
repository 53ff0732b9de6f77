// Command fanoutload measures a fan-out (TaskService/RunTasks) to many agents: it starts
// one deckhand-controller process, enrolls N simulated agents (loadutil.SimAgent, every task
// answered at once) through the real Enroll RPC with mTLS sessions, and runs `ping` on all
// of them, several times per concurrency: the wall time from the request until the run's
// last message (every node's result stored), the per-node task time (creation to result
// stored, the run's p50/p99) and the controller's CPU. Used by scripts/bench.sh.
package main

import (
	"flag"
	"fmt"
	"os"
	"slices"
	"strconv"
	"strings"
	"time"

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
	names := make([]string, n)
	for i := range names {
		names[i] = fmt.Sprintf("node-%d", i+1)
	}
	c, err := loadutil.StartSimCluster(loadutil.SimClusterConfig{Tool: "fanoutload", ControllerBin: bin, LogLevel: "warn",
		Heartbeat: 2 * time.Second, ReadyTimeout: 5 * time.Minute, Names: names})
	if err != nil {
		return err
	}
	defer c.Stop()
	ctx, admin, pid := c.Ctx, c.Admin, c.PID

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
