// Command failoverload is benchmark tooling (never linked into a product binary): it runs
// three real deckhand-controller processes on loopback, SIGKILLs the raft leader again and
// again, and measures what a user sees: the time from the kill until a write through the
// API succeeds again (deckctl token create, trying every controller as deckctl does), until
// deckctl members shows a new leader, and until workflows move again: simulated agents
// (loadutil.SimAgent, going round the controllers as deckhand-agent does) run a steady
// stream of dry-run init workflows throughout, and "moving" is the first step change the
// new leader's engine commits, as a client polling the API sees it (workload.go). The
// killed replica restarts from its data dir before the next kill. Between kills it counts
// elections nobody caused (raft's own election and step-down warnings while all three run,
// and leader changes) under a write load: the workflow stream plus token creates at a
// fixed rate. That is the price of a short raft timeout on a loaded host.
//
//	go run ./scripts/failoverload --kills 20 --raft-timeout 1s,500ms --quiet 10s
package main

import (
	"bytes"
	"context"
	"encoding/json"
	"flag"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"slices"
	"strings"
	"sync"
	"syscall"
	"time"

	"github.com/deckhandhq/deckhand/scripts/internal/loadutil"
)

func main() {
	ctl := flag.String("controller-bin", "bin/deckhand-controller", "the controller binary")
	deckctl := flag.String("deckctl-bin", "bin/deckctl", "the deckctl binary")
	kills := flag.Int("kills", 20, "leader kills per raft timeout")
	timeouts := flag.String("raft-timeout", "1s,500ms", "comma-separated --raft-timeout values, each measured on a fresh cluster in this run")
	var o options
	flag.DurationVar(&o.quiet, "quiet", 10*time.Second, "how long to watch for elections nobody caused after each recovery (raft's own warnings in every replica's log, and leader changes), under the write load")
	flag.IntVar(&o.nodes, "nodes", 4, "simulated agents, each running dry-run init workflows back to back through the kills; 0 runs none (no \"moving again\" figure; the token load still runs)")
	flag.DurationVar(&o.taskTime, "task-time", 200*time.Millisecond, "how long every task takes on the simulated agents")
	flag.Float64Var(&o.writeRate, "write-rate", 20, "token creates per second through the API during each quiet watch (beside the workflows); 0 for none")
	flag.Parse()
	if o.nodes < 0 || o.taskTime <= 0 || o.writeRate < 0 || *kills < 1 {
		fmt.Fprintln(os.Stderr, "failoverload: --kills must be at least 1, --nodes and --write-rate at least 0, --task-time positive")
		os.Exit(2)
	}
	for _, v := range strings.Split(*timeouts, ",") {
		d, err := time.ParseDuration(v)
		if err != nil {
			fmt.Fprintln(os.Stderr, "failoverload: --raft-timeout:", err)
			os.Exit(2)
		}
		if err := run(*ctl, *deckctl, d, *kills, o); err != nil {
			fmt.Fprintln(os.Stderr, "failoverload:", err)
			os.Exit(1)
		}
	}
}

// options are the load the kills happen under.
type options struct {
	quiet     time.Duration
	nodes     int
	taskTime  time.Duration
	writeRate float64
}

type replica struct {
	name, addr, dir string
	cmd             *exec.Cmd
	done            chan struct{}
	log             *raftLog
}

// raftLog counts, in a replica's log, raft's own warnings of an election starting and of a
// leader stepping down for want of a quorum: an election the same replica wins again shows
// there too, where a look at the leader's name would miss it.
type raftLog struct {
	mu        sync.Mutex
	elections int
	partial   []byte
}

func (l *raftLog) Write(p []byte) (int, error) {
	l.mu.Lock()
	defer l.mu.Unlock()
	l.partial = append(l.partial, p...)
	for {
		i := bytes.IndexByte(l.partial, '\n')
		if i < 0 {
			break
		}
		line := string(l.partial[:i])
		l.partial = l.partial[i+1:]
		if strings.Contains(line, "starting election") || strings.Contains(line, "stepping down") {
			l.elections++
		}
	}
	return len(p), nil
}

func (l *raftLog) count() int {
	l.mu.Lock()
	defer l.mu.Unlock()
	return l.elections
}

func (r *replica) start(bin string, raftTimeout time.Duration, args ...string) error {
	r.cmd = exec.Command(bin, append([]string{"--data-dir", r.dir, "--listen", r.addr, "--raft-timeout", raftTimeout.String(), "--log-level", "warn"}, args...)...)
	r.done = make(chan struct{})
	if r.log == nil {
		r.log = &raftLog{}
	}
	r.cmd.Stderr = r.log
	if err := r.cmd.Start(); err != nil {
		return err
	}
	go func() { _ = r.cmd.Wait(); close(r.done) }()
	return nil
}

func (r *replica) kill() {
	if r.cmd != nil && r.cmd.Process != nil {
		_ = r.cmd.Process.Signal(syscall.SIGKILL)
		<-r.done
	}
}

type cluster struct {
	deckctl, admin string
	rs             []*replica
}

func (c *cluster) ctl(timeout time.Duration, addrs []string, args ...string) (string, error) {
	ctx, cancel := context.WithTimeout(context.Background(), timeout+2*time.Second)
	defer cancel()
	out, err := exec.CommandContext(ctx, c.deckctl, append([]string{"--config", c.admin, "--controller", strings.Join(addrs, ","), "--timeout", timeout.String()}, args...)...).CombinedOutput()
	return string(out), err
}

// elections is the number of elections started and leaders stepping down in every
// replica's log so far.
func (c *cluster) elections() int {
	n := 0
	for _, r := range c.rs {
		if r.log != nil {
			n += r.log.count()
		}
	}
	return n
}

func (c *cluster) addrs(except string) []string {
	var out []string
	for _, r := range c.rs {
		if r.name != except {
			out = append(out, r.addr)
		}
	}
	return out
}

// leader is the replica deckctl members shows as leader, and how many members answer.
func (c *cluster) leader(addrs []string) (string, int, error) {
	out, err := c.ctl(time.Second, addrs, "members", "-o", "json")
	if err != nil {
		return "", 0, fmt.Errorf("%v: %s", err, out)
	}
	var v struct {
		Members []struct {
			Name   string `json:"id"`
			State  string `json:"state"`
			Leader bool   `json:"leader"`
		} `json:"members"`
	}
	if err := json.Unmarshal([]byte(out), &v); err != nil {
		return "", 0, fmt.Errorf("members -o json: %v: %s", err, out)
	}
	leader, up := "", 0
	for _, m := range v.Members {
		if m.Leader {
			leader = m.Name
		}
		if !strings.Contains(strings.ToLower(m.State), "unreachable") {
			up++
		}
	}
	return leader, up, nil
}

func run(ctl, deckctl string, raftTimeout time.Duration, kills int, o options) error {
	root, err := os.MkdirTemp("", "failoverload-")
	if err != nil {
		return err
	}
	defer os.RemoveAll(root)
	c := &cluster{deckctl: deckctl}
	for _, n := range []string{"ctl-a", "ctl-b", "ctl-c"} {
		c.rs = append(c.rs, &replica{name: n, addr: loadutil.FreeAddr(), dir: filepath.Join(root, n)})
	}
	defer func() {
		for _, r := range c.rs {
			r.kill()
		}
	}()
	first := c.rs[0]
	if err := first.start(ctl, raftTimeout, "--name", first.name); err != nil {
		return err
	}
	c.admin = filepath.Join(first.dir, "admin.conf")
	for _, r := range c.rs[1:] {
		var out string
		if err := loadutil.Poll(30*time.Second, func() error {
			out, err = c.ctl(2*time.Second, []string{first.addr}, "token", "create", "--purpose", "controller", "-o", "json")
			return err
		}); err != nil {
			return fmt.Errorf("controller join token: %v: %s", err, out)
		}
		var tok struct {
			Secret     string `json:"secret"`
			CaCertHash string `json:"caCertHash"`
		}
		if err := json.Unmarshal([]byte(out), &tok); err != nil {
			return err
		}
		if err := r.start(ctl, raftTimeout, "--name", r.name, "--join", first.addr, "--token", tok.Secret, "--ca-cert-hash", tok.CaCertHash); err != nil {
			return err
		}
	}
	all := c.addrs("")
	healthy := func() (string, error) {
		var leader string
		err := loadutil.Poll(60*time.Second, func() error {
			l, up, err := c.leader(all)
			if err != nil {
				return err
			}
			if l == "" || up != 3 {
				return fmt.Errorf("leader %q, %d members up", l, up)
			}
			leader = l
			return nil
		})
		return leader, err
	}
	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	if _, err := healthy(); err != nil {
		return fmt.Errorf("cluster not healthy: %v", err)
	}
	w, err := startWorkload(ctx, c.admin, all, o.nodes, o.taskTime)
	if err != nil {
		return err
	}
	streaming := o.nodes > 0
	var writeT, leaderT, moveT, passT []time.Duration
	unprovoked := 0
	var watched time.Duration
	var tokensOK, tokensFailed int64
	ended0, tasks0 := w.counts()
	streamStart := time.Now()
	for k := 0; k < kills; k++ {
		leader, err := healthy()
		if err != nil {
			return fmt.Errorf("cluster not healthy before kill %d: %v", k+1, err)
		}
		// Elections nobody caused under the write load: raft's warnings while all three
		// run, and leader changes.
		before := c.elections()
		qctx, qcancel := context.WithCancel(ctx)
		loadDone := make(chan struct{})
		ok0, failed0 := w.tokensOK.Load(), w.tokensFailed.Load()
		go func() {
			defer close(loadDone)
			w.tokens(qctx, o.writeRate)
		}()
		qstart := time.Now()
		for end := time.Now().Add(o.quiet); time.Now().Before(end); {
			if l, _, err := c.leader(all); err == nil && l != "" && l != leader {
				leader = l
				if c.elections() == before {
					unprovoked++ // a change raft's log did not show (it always should)
				}
			}
		}
		qcancel()
		<-loadDone
		watched += time.Since(qstart)
		tokensOK += w.tokensOK.Load() - ok0
		tokensFailed += w.tokensFailed.Load() - failed0
		unprovoked += c.elections() - before
		var victim *replica
		for _, r := range c.rs {
			if r.name == leader {
				victim = r
			}
		}
		if victim == nil {
			return fmt.Errorf("leader %q is no replica", leader)
		}
		rest := c.addrs(victim.name)
		t0 := time.Now()
		victim.kill()
		w.arm(time.Now()) // the old leader is reaped: a pass stamped from now on is the new leader's
		var gotWrite, gotLeader, gotMove, gotPass time.Duration
		for gotWrite == 0 || gotLeader == 0 || (streaming && gotMove == 0) {
			if time.Since(t0) > time.Minute {
				return fmt.Errorf("no failover within a minute (write %v, leader %v, workflows moving %v)", gotWrite, gotLeader, gotMove)
			}
			if streaming && gotMove == 0 {
				if seen, stamp, ok := w.moved(); ok {
					gotMove, gotPass = seen.Sub(t0), stamp.Sub(t0)
				} else if gotWrite != 0 && gotLeader != 0 {
					time.Sleep(pollEvery) // only the poller's answer is awaited (it keeps its own time)
				}
			}
			if gotWrite == 0 {
				if _, err := c.ctl(time.Second, rest, "token", "create", "--purpose", "agent", "--ttl", "10m", "-o", "json"); err == nil {
					gotWrite = time.Since(t0)
				}
			}
			if gotLeader == 0 {
				if l, _, err := c.leader(rest); err == nil && l != "" && l != victim.name {
					gotLeader = time.Since(t0)
				}
			}
		}
		writeT, leaderT = append(writeT, gotWrite), append(leaderT, gotLeader)
		fmt.Fprintf(os.Stderr, "failoverload: raft timeout %v, kill %d of %s: write %v, leader shown %v, workflows moving %v (engine pass stamped %v)\n",
			raftTimeout, k+1, victim.name, gotWrite.Round(time.Millisecond), gotLeader.Round(time.Millisecond), gotMove.Round(time.Millisecond), gotPass.Round(time.Millisecond))
		if streaming {
			moveT, passT = append(moveT, gotMove), append(passT, gotPass)
		}
		if err := victim.start(ctl, raftTimeout); err != nil {
			return err
		}
	}
	fmt.Printf("raft timeout %v, %d leader kills: first write through the API p50 %v p99 %v max %v; new leader shown p50 %v p99 %v max %v",
		raftTimeout, kills, pct(writeT, 50), pct(writeT, 99), pct(writeT, 100), pct(leaderT, 50), pct(leaderT, 99), pct(leaderT, 100))
	if streaming {
		ended, tasks := w.counts()
		elapsed := time.Since(streamStart).Seconds()
		fmt.Printf("; workflows moving again (seen through the API) p50 %v p99 %v max %v, the new engine's first pass by its own stamp p50 %v p99 %v max %v",
			pct(moveT, 50), pct(moveT, 99), pct(moveT, 100), pct(passT, 50), pct(passT, 99), pct(passT, 100))
		fmt.Printf("; workflow stream: %d nodes, task time %v, %.1f workflows/s and %.1f tasks/s over the run, ended %v",
			o.nodes, o.taskTime, float64(ended["SUCCEEDED"]-ended0["SUCCEEDED"])/elapsed, float64(tasks-tasks0)/elapsed, ended)
		if f := w.firstFailure(); f != "" {
			fmt.Printf(" (first not succeeded: %s)", f)
		}
	}
	beside := ""
	if streaming {
		beside = " beside the workflows"
	}
	fmt.Printf("; elections nobody caused: %d in %v of watching under %.1f token creates/s (%d failed)%s (raft logged %d elections and step-downs in all, the kills' included)\n",
		unprovoked, watched.Round(time.Second), float64(tokensOK)/watched.Seconds(), tokensFailed, beside, c.elections())
	return nil
}

// pct is the p-th percentile (nearest rank) of ds, to the millisecond.
func pct(ds []time.Duration, p int) time.Duration {
	s := slices.Clone(ds)
	slices.Sort(s)
	i := (p*len(s) + 99) / 100
	if i < 1 {
		i = 1
	}
	return s[i-1].Round(time.Millisecond)
}
