package main

import (
	"bytes"
	"context"
	"fmt"
	"io"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"slices"
	"strings"
	"syscall"
	"time"
)

// benchCmd is one measured command line.
type benchCmd struct {
	label   string // "deckhand ping"
	argv    []string
	env     []string // added to the environment; shown before the command line
	timeout time.Duration
	// check reads the command's output: an error when not every host succeeded; the
	// latency quantiles the command printed, if any.
	check func(out []byte, hosts int) (quantiles, error)
}

// display is the command line as a user types it (env, then argv, binaries by base name
// when on PATH).
func (c benchCmd) display() string {
	return strings.Join(append(slices.Clone(c.env), c.argv...), " ")
}

type quantiles struct{ p50, p99 string }

type sample struct {
	wall time.Duration
	q    quantiles
}

type result struct {
	first sample
	runs  []sample
}

func (r result) median() time.Duration {
	walls := make([]time.Duration, len(r.runs))
	for i, s := range r.runs {
		walls[i] = s.wall
	}
	return median(walls)
}

// medianQuantiles is the run with the median wall time's quantiles.
func (r result) medianQuantiles() quantiles {
	m := r.median()
	for _, s := range r.runs {
		if s.wall == m {
			return s.q
		}
	}
	return quantiles{}
}

func median(xs []time.Duration) time.Duration {
	if len(xs) == 0 {
		return 0
	}
	s := slices.Clone(xs)
	slices.Sort(s)
	if len(s)%2 == 1 {
		return s[len(s)/2]
	}
	return (s[len(s)/2-1] + s[len(s)/2]) / 2
}

// commands are the five measured command lines, Deckhand's first.
func commands(cfg config, d deckhand, ansibleCfgPath string) []benchCmd {
	fanout := func(kind string) benchCmd {
		args := []string{d.deckctl, "--controller", d.addr, "task", "run", "--nodes", "all"}
		if cfg.concurrency > 0 {
			args = append(args, "--concurrency", fmt.Sprint(cfg.concurrency))
		}
		return benchCmd{label: "deckhand " + kind, argv: append(args, kind), env: []string{"DECKHAND_CONFIG=" + d.config},
			timeout: 2 * time.Minute, check: deckhandCheck}
	}
	ans := func(label string, args ...string) benchCmd {
		return benchCmd{label: label, argv: append([]string{"ansible", "all"}, args...), env: []string{"ANSIBLE_CONFIG=" + ansibleCfgPath},
			timeout: 10 * time.Minute, check: ansibleCheck}
	}
	return []benchCmd{
		fanout("ping"),
		fanout("facts"),
		ans("ansible ping", "-m", "ping"),
		ans("ansible setup", "-m", "setup"),
		ans("ansible command true", "-m", "command", "-a", "true"),
	}
}

// ansibleOK matches a host's result line in ansible's ad-hoc output.
var ansibleOK = regexp.MustCompile(`(?m)^\S+ \| (SUCCESS|CHANGED) `)

func ansibleCheck(out []byte, hosts int) (quantiles, error) {
	if n := len(ansibleOK.FindAll(out, -1)); n != hosts {
		return quantiles{}, fmt.Errorf("%d of %d hosts answered SUCCESS or CHANGED", n, hosts)
	}
	return quantiles{}, nil
}

// deckctlQuantile finds "p50 12.3ms" or "p50=12.3ms" (any Go duration) in deckctl's summary.
var deckctlQuantile = regexp.MustCompile(`\b(p50|p99)[=: ]+\s*([0-9.]+(?:ns|µs|us|ms|s|m))`)

// deckctlEnded finds "(100 succeeded, 0 failed)" in deckctl's summary line.
var deckctlEnded = regexp.MustCompile(`\((\d+) succeeded, (\d+) failed\)`)

func deckhandCheck(out []byte, hosts int) (quantiles, error) {
	var q quantiles
	ended := deckctlEnded.FindAllSubmatch(out, -1)
	if len(ended) == 0 {
		return q, fmt.Errorf("no summary line from deckctl")
	}
	if last := ended[len(ended)-1]; string(last[1]) != fmt.Sprint(hosts) || string(last[2]) != "0" {
		return q, fmt.Errorf("%s of %d nodes succeeded, %s failed", last[1], hosts, last[2])
	}
	for _, m := range deckctlQuantile.FindAllSubmatch(out, -1) { // the last summary wins
		switch string(m[1]) {
		case "p50":
			q.p50 = string(m[2])
		case "p99":
			q.p99 = string(m[2])
		}
	}
	if q.p50 == "" || q.p99 == "" {
		return q, fmt.Errorf("no p50/p99 in deckctl's summary")
	}
	return q, nil
}

// measure runs every command once (the first run, reported apart: for Ansible's ping it is
// the one that opens the SSH connections), then cfg.runs rounds of all of them, one after
// another, so that the machine's noise spreads over every command alike.
func measure(ctx context.Context, l *lab, cfg config, cmds []benchCmd, out io.Writer) ([]result, error) {
	res := make([]result, len(cmds))
	for round := 0; round <= cfg.runs; round++ {
		tag := "first"
		if round > 0 {
			tag = fmt.Sprintf("run %d/%d", round, cfg.runs)
		}
		for i, c := range cmds {
			s, err := runOnce(ctx, l, c, cfg.hosts, fmt.Sprintf("%d-%d", i, round))
			if err != nil {
				return nil, fmt.Errorf("%s (%s): %w", c.label, tag, err)
			}
			fmt.Fprintf(out, "%-9s %-22s %8.2f s  load %s\n", tag, c.label, s.wall.Seconds(), loadavg())
			if round == 0 {
				res[i].first = s
			} else {
				res[i].runs = append(res[i].runs, s)
			}
		}
	}
	return res, nil
}

// runOnce runs c in its own process group (killed whole on timeout or Ctrl-C) and times it
// from start to exit; the output goes to the logs.
func runOnce(ctx context.Context, l *lab, c benchCmd, hosts int, name string) (sample, error) {
	ctx, cancel := context.WithTimeout(ctx, c.timeout)
	defer cancel()
	cmd := exec.CommandContext(ctx, c.argv[0], c.argv[1:]...)
	cmd.Env = append(os.Environ(), c.env...)
	var buf bytes.Buffer
	cmd.Stdout, cmd.Stderr = &buf, &buf
	cmd.SysProcAttr = &syscall.SysProcAttr{Setpgid: true}
	cmd.Cancel = func() error { return syscall.Kill(-cmd.Process.Pid, syscall.SIGKILL) }
	cmd.WaitDelay = 5 * time.Second
	start := time.Now()
	err := cmd.Run()
	wall := time.Since(start)
	_ = os.WriteFile(filepath.Join(l.logs, "cmd-"+name+".out"), buf.Bytes(), 0o600)
	if err != nil {
		return sample{}, fmt.Errorf("%w; the output ends with:\n%s", err, tail(buf.Bytes(), 15))
	}
	q, err := c.check(buf.Bytes(), hosts)
	if err != nil {
		return sample{}, fmt.Errorf("%w; the output ends with:\n%s", err, tail(buf.Bytes(), 15))
	}
	return sample{wall: wall, q: q}, nil
}

func tail(b []byte, n int) string {
	lines := strings.Split(strings.TrimRight(string(b), "\n"), "\n")
	if len(lines) > n {
		lines = lines[len(lines)-n:]
	}
	return strings.Join(lines, "\n")
}

func loadavg() string {
	b, _ := os.ReadFile("/proc/loadavg")
	f := strings.Fields(string(b))
	if len(f) < 3 {
		return "?"
	}
	return strings.Join(f[:3], " ")
}

// ratio pairs an Ansible command with the Deckhand command doing the same work.
type ratio struct{ ansible, deckhand string }

var ratios = []ratio{
	{"ansible ping", "deckhand ping"},
	{"ansible command true", "deckhand ping"},
	{"ansible setup", "deckhand facts"},
}

// goal is issue 21's: Deckhand at least this many times faster per host.
const goal = 20.0

func printTable(out io.Writer, cfg config, cmds []benchCmd, res []result) {
	perHost := func(d time.Duration) time.Duration { return d / time.Duration(cfg.hosts) }
	fmt.Fprintf(out, "%d hosts; median of %d runs after a first run; per host = wall / %d; p50/p99 are deckctl's per-node times\n",
		cfg.hosts, cfg.runs, cfg.hosts)
	fmt.Fprintf(out, "%-22s %10s %10s %10s %10s %10s\n", "", "first run", "wall", "per host", "p50", "p99")
	byLabel := map[string]result{}
	for i, c := range cmds {
		r := res[i]
		byLabel[c.label] = r
		q := r.medianQuantiles()
		fmt.Fprintf(out, "%-22s %8.2f s %8.2f s %7.1f ms %10s %10s\n", c.label, r.first.wall.Seconds(), r.median().Seconds(),
			ms(perHost(r.median())), dash(q.p50), dash(q.p99))
	}
	fmt.Fprintln(out)
	for _, rt := range ratios {
		a, d := byLabel[rt.ansible], byLabel[rt.deckhand]
		x := float64(a.median()) / float64(d.median())
		verdict := "meets"
		if x < goal {
			verdict = "MISSES"
		}
		fmt.Fprintf(out, "%-22s / %-16s %6.1fx per host (%.1f ms / %.1f ms; %s the %.0fx goal)\n", rt.ansible, rt.deckhand, x,
			ms(perHost(a.median())), ms(perHost(d.median())), verdict, goal)
	}
	fmt.Fprintln(out, "\ncommand lines:")
	for _, c := range cmds {
		fmt.Fprintf(out, "  %-22s %s\n", c.label, c.display())
	}
}

func ms(d time.Duration) float64 { return float64(d) / float64(time.Millisecond) }

func dash(s string) string {
	if s == "" {
		return "-"
	}
	return s
}
