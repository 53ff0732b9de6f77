// Command failoverload is benchmark tooling (never linked into a product binary): it runs
// three real deckhand-controller processes on loopback, SIGKILLs the raft leader again and
// again, and measures what a user sees: the time from the kill until a write through the
// API succeeds again (deckctl token create, trying every controller as deckctl does), and
// until deckctl members shows a new leader. The killed replica restarts from its data dir
// before the next kill. Between kills it counts elections nobody caused (a leader change
// while all three run): the price of a short raft timeout on a loaded host.
//
//	go run ./scripts/failoverload --kills 20 --raft-timeout 1s,500ms
package main

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
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
	quiet := flag.Duration("quiet", 10*time.Second, "how long to watch for elections nobody caused after each recovery (raft's own warnings in every replica's log, and leader changes)")
	flag.Parse()
	for _, v := range strings.Split(*timeouts, ",") {
		d, err := time.ParseDuration(v)
		if err != nil {
			fmt.Fprintln(os.Stderr, "failoverload: --raft-timeout:", err)
			os.Exit(2)
		}
		if err := run(*ctl, *deckctl, d, *kills, *quiet); err != nil {
			fmt.Fprintln(os.Stderr, "failoverload:", err)
			os.Exit(1)
		}
	}
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

func run(ctl, deckctl string, raftTimeout time.Duration, kills int, quiet time.Duration) error {
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
	var writeT, leaderT []time.Duration
	unprovoked := 0
	for k := 0; k < kills; k++ {
		leader, err := healthy()
		if err != nil {
			return fmt.Errorf("cluster not healthy before kill %d: %v", k+1, err)
		}
		// Elections nobody caused: raft's warnings while all three run, and leader changes.
		before := c.elections()
		for end := time.Now().Add(quiet); time.Now().Before(end); {
			if l, _, err := c.leader(all); err == nil && l != "" && l != leader {
				leader = l
				if c.elections() == before {
					unprovoked++ // a change raft's log did not show (it always should)
				}
			}
		}
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
		var gotWrite, gotLeader time.Duration
		for gotWrite == 0 || gotLeader == 0 {
			if time.Since(t0) > time.Minute {
				return errors.New("no failover within a minute")
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
		if err := victim.start(ctl, raftTimeout); err != nil {
			return err
		}
	}
	fmt.Printf("raft timeout %v, %d leader kills: first write through the API p50 %v p99 %v max %v; new leader shown p50 %v p99 %v max %v; elections nobody caused: %d in %v of watching (raft logged %d elections and step-downs in all, the kills' included)\n",
		raftTimeout, kills, pct(writeT, 50), pct(writeT, 99), pct(writeT, 100), pct(leaderT, 50), pct(leaderT, 99), pct(leaderT, 100), unprovoked, time.Duration(kills)*quiet, c.elections())
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
