package main

import (
	"context"
	"fmt"
	"net"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"strings"
	"sync"
	"syscall"
	"time"
)

// host is one lab host: a network namespace with one address on the lab bridge.
type host struct {
	name  string // node name and inventory name: fan-001
	netns string // dhfan-001; also the name of the root namespace's end of its veth
	ip    string
}

// lab holds what the benchmark made, so that cleanup undoes exactly that and nothing else.
type lab struct {
	dir   string // the run's temp directory: keys, configs, state dirs, logs
	logs  string
	mu    sync.Mutex
	undo  []func() // run last to first by cleanup
	procs []*proc
}

// proc is a process the benchmark started (in its own process group, so a Ctrl-C at the
// terminal reaches only the benchmark, which stops them in order).
type proc struct {
	name string
	cmd  *exec.Cmd
	done chan struct{}
}

func (l *lab) onCleanup(f func()) {
	l.mu.Lock()
	defer l.mu.Unlock()
	l.undo = append(l.undo, f)
}

// cleanup undoes everything in reverse order; it is safe to call once, on any path.
func (l *lab) cleanup() {
	l.mu.Lock()
	undo := l.undo
	l.undo = nil
	l.mu.Unlock()
	for i := len(undo) - 1; i >= 0; i-- {
		undo[i]()
	}
}

// start runs argv in the background with its output in logs/NAME.log.
func (l *lab) start(name string, argv ...string) (*proc, error) {
	logf, err := os.Create(filepath.Join(l.logs, name+".log"))
	if err != nil {
		return nil, err
	}
	cmd := exec.Command(argv[0], argv[1:]...)
	cmd.Stdout, cmd.Stderr = logf, logf
	cmd.SysProcAttr = &syscall.SysProcAttr{Setpgid: true}
	if err := cmd.Start(); err != nil {
		logf.Close()
		return nil, fmt.Errorf("start %s: %w", name, err)
	}
	p := &proc{name: name, cmd: cmd, done: make(chan struct{})}
	go func() {
		_ = cmd.Wait()
		logf.Close()
		close(p.done)
	}()
	l.mu.Lock()
	l.procs = append(l.procs, p)
	l.mu.Unlock()
	return p, nil
}

func (p *proc) running() bool {
	select {
	case <-p.done:
		return false
	default:
		return true
	}
}

// stop sends SIGTERM, and SIGKILL after grace; it returns once the process is gone.
func (p *proc) stop(grace time.Duration) {
	if !p.running() {
		return
	}
	_ = p.cmd.Process.Signal(syscall.SIGTERM)
	select {
	case <-p.done:
	case <-time.After(grace):
		_ = p.cmd.Process.Kill()
		<-p.done
	}
}

// stopAll stops ps side by side.
func stopAll(ps []*proc, grace time.Duration) {
	var wg sync.WaitGroup
	for _, p := range ps {
		wg.Go(func() { p.stop(grace) })
	}
	wg.Wait()
}

// descendants lists the PIDs of every process below pid (from /proc), children first.
func descendants(pid int) []int {
	entries, _ := os.ReadDir("/proc")
	kids := map[int][]int{}
	for _, e := range entries {
		child, err := strconv.Atoi(e.Name())
		if err != nil {
			continue
		}
		b, err := os.ReadFile(filepath.Join("/proc", e.Name(), "stat"))
		if err != nil {
			continue
		}
		s := string(b)
		f := strings.Fields(s[strings.LastIndex(s, ")")+2:])
		if len(f) < 2 {
			continue
		}
		ppid, _ := strconv.Atoi(f[1])
		kids[ppid] = append(kids[ppid], child)
	}
	var out []int
	var walk func(int)
	walk = func(p int) {
		for _, c := range kids[p] {
			out = append(out, c)
			walk(c)
		}
	}
	walk(pid)
	return out
}

// run runs a short command and returns its error with its output.
func run(ctx context.Context, argv ...string) error {
	out, err := exec.CommandContext(ctx, argv[0], argv[1:]...).CombinedOutput()
	if err != nil {
		return fmt.Errorf("%s: %w: %s", strings.Join(argv, " "), err, strings.TrimSpace(string(out)))
	}
	return nil
}

// network makes the bridge (gateway .1 in the root namespace) and one namespace per host,
// as scripts/lab.sh does: a veth pair, the namespace's end named eth0 with the host's
// address, loopback up.
func (l *lab) network(ctx context.Context, cfg config, hosts []host) error {
	if err := run(ctx, "ip", "link", "add", cfg.bridge, "type", "bridge"); err != nil {
		return err
	}
	l.onCleanup(func() { _ = run(context.Background(), "ip", "link", "del", cfg.bridge) })
	for _, c := range [][]string{
		{"ip", "addr", "add", cfg.gateway() + "/24", "dev", cfg.bridge},
		{"ip", "link", "set", cfg.bridge, "up"},
	} {
		if err := run(ctx, c...); err != nil {
			return err
		}
	}
	for _, h := range hosts {
		if err := ctx.Err(); err != nil {
			return err
		}
		if err := run(ctx, "ip", "netns", "add", h.netns); err != nil {
			return err
		}
		l.onCleanup(func() {
			// Deleting the root namespace's end removes the pair at once (a namespace's
			// deletion removes it only asynchronously).
			_ = run(context.Background(), "ip", "link", "del", h.netns)
			_ = run(context.Background(), "ip", "netns", "del", h.netns)
		})
		for _, c := range [][]string{
			{"ip", "link", "add", h.netns, "type", "veth", "peer", "name", "eth0", "netns", h.netns},
			{"ip", "link", "set", h.netns, "master", cfg.bridge, "up"},
			{"ip", "-n", h.netns, "addr", "add", h.ip + "/24", "dev", "eth0"},
			{"ip", "-n", h.netns, "link", "set", "eth0", "up"},
			{"ip", "-n", h.netns, "link", "set", "lo", "up"},
		} {
			if err := run(ctx, c...); err != nil {
				return err
			}
		}
	}
	return nil
}

// leftovers names what an earlier run (killed with SIGKILL) may have left: the bridge and
// namespaces with this run's names.
func leftovers(cfg config) []string {
	var out []string
	if _, err := net.InterfaceByName(cfg.bridge); err == nil {
		out = append(out, "link "+cfg.bridge)
	}
	if entries, err := os.ReadDir("/var/run/netns"); err == nil {
		for _, e := range entries {
			if strings.HasPrefix(e.Name(), cfg.nsPrefix) {
				out = append(out, "netns "+e.Name())
			}
		}
	}
	return out
}

// poll calls cond every 100 ms until it returns nil, ctx ends or timeout passes; the error
// says what was last seen.
func poll(ctx context.Context, timeout time.Duration, what string, cond func() error) error {
	deadline := time.Now().Add(timeout)
	for {
		err := cond()
		if err == nil {
			return nil
		}
		if time.Now().After(deadline) {
			return fmt.Errorf("%s: not within %v: %w", what, timeout, err)
		}
		select {
		case <-ctx.Done():
			return fmt.Errorf("%s: %w", what, ctx.Err())
		case <-time.After(100 * time.Millisecond):
		}
	}
}

// dialable is nil once addr accepts a TCP connection.
func dialable(addr string) error {
	c, err := net.DialTimeout("tcp", addr, time.Second)
	if err != nil {
		return err
	}
	return c.Close()
}
