// Command fanoutbench measures Deckhand's fan-out side by side with Ansible on the same lab
// hosts: N network namespaces on a bridge, each running a real deckhand-agent (enrolled with
// one real deckhand-controller in the root namespace) and a real sshd (Debian's
// openssh-server). In one run it times `deckctl task run --nodes all ping|facts` and
// `ansible all -m ping|setup|command -a true` (Debian's ansible-core, forks 50, pipelining
// on), each several times, and prints the medians, the time per host and the ratios.
// It installs nothing: it needs root, ansible-core and openssh-server. It removes everything
// it made (processes, namespaces, bridge, temp directory) on every exit but SIGKILL. Used by
// scripts/bench.sh.
package main

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"flag"
	"fmt"
	"io"
	"net"
	"os"
	"os/exec"
	"os/signal"
	"path/filepath"
	"strings"
	"syscall"
	"time"
)

type config struct {
	hosts       int
	subnet      string // the first three octets of the lab's /24
	bridge      string
	nsPrefix    string
	port        int
	runs        int
	forks       int
	concurrency int // deckctl's --concurrency; 0 leaves deckctl's default
	binDir      string
	keep        bool
}

func (c config) gateway() string    { return c.subnet + ".1" }
func (c config) controller() string { return net.JoinHostPort(c.gateway(), fmt.Sprint(c.port)) }

// hostList names the lab's hosts: fan-001 in namespace dhfan-001 at .11, and so on.
func (c config) hostList() []host {
	out := make([]host, c.hosts)
	for i := range out {
		n := fmt.Sprintf("%03d", i+1)
		out[i] = host{name: "fan-" + n, netns: c.nsPrefix + n, ip: fmt.Sprintf("%s.%d", c.subnet, 11+i)}
	}
	return out
}

func (c config) validate() error {
	var errs []string
	if c.hosts < 1 || c.hosts > 200 {
		errs = append(errs, fmt.Sprintf("--hosts %d: 1 to 200 (addresses .11 to .210 of the /24)", c.hosts))
	}
	if ip := net.ParseIP(c.subnet + ".0").To4(); ip == nil || ip[0] != 10 || ip[1] != 250 {
		errs = append(errs, fmt.Sprintf("--subnet %q: three octets in 10.250.0.0/16, such as 10.250.100", c.subnet))
	}
	if c.runs < 1 {
		errs = append(errs, fmt.Sprintf("--runs %d: at least 1", c.runs))
	}
	if c.forks < 1 {
		errs = append(errs, fmt.Sprintf("--forks %d: at least 1", c.forks))
	}
	if len(c.bridge) > 15 || len(c.nsPrefix)+3 > 15 {
		errs = append(errs, "--bridge and --netns-prefix: interface names have at most 15 characters (the prefix is followed by 3 digits)")
	}
	if len(errs) > 0 {
		return errors.New(strings.Join(errs, "; "))
	}
	return nil
}

func main() {
	cfg := config{}
	flag.IntVar(&cfg.hosts, "hosts", 100, "lab hosts (network namespaces), each with a deckhand-agent and an sshd")
	flag.StringVar(&cfg.subnet, "subnet", "10.250.100", "the lab's /24 (first three octets): the bridge is .1, the hosts .11 up")
	flag.StringVar(&cfg.bridge, "bridge", "dhfan0", "the lab's bridge in the root namespace")
	flag.StringVar(&cfg.nsPrefix, "netns-prefix", "dhfan-", "prefix of the hosts' network namespaces (and of their veths)")
	flag.IntVar(&cfg.port, "port", 7400, "the controller's port on the bridge address")
	flag.IntVar(&cfg.runs, "runs", 3, "measured runs of each command (the median is reported), after one first run reported apart")
	flag.IntVar(&cfg.forks, "forks", 50, "Ansible's forks")
	flag.IntVar(&cfg.concurrency, "concurrency", 50, "deckctl task run --concurrency: at most this many nodes at once, by default as many as Ansible's forks (0: deckctl's default)")
	flag.StringVar(&cfg.binDir, "bin-dir", "bin", "where deckhand-controller, deckhand-agent and deckctl are (scripts/build.sh)")
	flag.BoolVar(&cfg.keep, "keep", false, "leave the lab running after the measurements until Ctrl-C (to look at it)")
	flag.Parse()
	ctx, stop := signal.NotifyContext(context.Background(), os.Interrupt, syscall.SIGTERM)
	defer stop()
	if err := runBench(ctx, cfg, os.Stdout); err != nil {
		fmt.Fprintln(os.Stderr, "fanoutbench:", err)
		os.Exit(1)
	}
}

// prerequisites explains what the machine lacks, with the command that installs it.
func prerequisites(cfg config) error {
	if os.Geteuid() != 0 {
		return errors.New("needs root: it creates network namespaces, a bridge and sshd processes")
	}
	var pkgs []string
	need := map[string]string{"ansible": "ansible-core", "/usr/sbin/sshd": "openssh-server", "ssh": "openssh-client",
		"ssh-keygen": "openssh-client", "ip": "iproute2"}
	for _, bin := range []string{"ansible", "/usr/sbin/sshd", "ssh", "ssh-keygen", "ip"} {
		if _, err := exec.LookPath(bin); err != nil && !contains(pkgs, need[bin]) {
			pkgs = append(pkgs, need[bin])
		}
	}
	if len(pkgs) > 0 {
		return fmt.Errorf("needs %s: apt-get update && apt-get install -y %s", strings.Join(pkgs, ", "), strings.Join(pkgs, " "))
	}
	for _, b := range []string{"deckhand-controller", "deckhand-agent", "deckctl"} {
		if _, err := os.Stat(filepath.Join(cfg.binDir, b)); err != nil {
			return fmt.Errorf("no %s in %s: run scripts/build.sh", b, cfg.binDir)
		}
	}
	if left := leftovers(cfg); len(left) > 0 {
		return fmt.Errorf("an earlier run left %s: remove them (ip link del %s; ip netns del NAME) or give another --bridge/--netns-prefix/--subnet",
			strings.Join(left, ", "), cfg.bridge)
	}
	return nil
}

func contains(xs []string, x string) bool {
	for _, y := range xs {
		if y == x {
			return true
		}
	}
	return false
}

func runBench(ctx context.Context, cfg config, out io.Writer) error {
	if err := cfg.validate(); err != nil {
		return err
	}
	if err := prerequisites(cfg); err != nil {
		return err
	}
	dir, err := os.MkdirTemp("", "fanoutbench-")
	if err != nil {
		return err
	}
	l := &lab{dir: dir, logs: filepath.Join(dir, "logs")}
	defer l.cleanup()
	l.onCleanup(func() { _ = os.RemoveAll(dir) })
	if err := os.Mkdir(l.logs, 0o700); err != nil {
		return err
	}
	hosts := cfg.hostList()
	fmt.Fprintf(out, "lab: %d network namespaces %s001.. on bridge %s (%s.0/24); state in %s\n", cfg.hosts, cfg.nsPrefix, cfg.bridge, cfg.subnet, dir)
	start := time.Now()
	if err := l.network(ctx, cfg, hosts); err != nil {
		return fmt.Errorf("lab network: %w", err)
	}
	// Runs before the network goes (cleanup is last in, first out).
	ansDirs := ansibleDirs{
		inventory: filepath.Join(dir, "ansible", "inventory.ini"), home: filepath.Join(dir, "ansible", "home"),
		localTmp: filepath.Join(dir, "ansible", "home", "tmp"), remoteTmp: filepath.Join(dir, "ansible", "remote-tmp"),
		controlPathDir: filepath.Join(dir, "ansible", "cp"), clientKey: filepath.Join(dir, "ssh", "client_ed25519"),
		knownHosts: filepath.Join(dir, "ssh", "known_hosts"),
	}
	l.onCleanup(func() { l.stopProcesses(ansDirs.controlPathDir) })

	dh, err := startDeckhand(ctx, l, cfg, hosts)
	if err != nil {
		return err
	}
	ansibleConfig, err := startSSH(ctx, l, cfg, hosts, ansDirs)
	if err != nil {
		return err
	}
	if slow, err := waitReady(ctx, dh, cfg, hosts); err != nil {
		return fmt.Errorf("%w\nthe controller's log ends with:\n%s\n%s's agent log ends with:\n%s", err,
			tailFile(filepath.Join(l.logs, "controller.log"), 10), slow, tailFile(filepath.Join(l.logs, "agent-"+slow+"-0.log"), 10))
	}
	fmt.Fprintf(out, "lab: %d hosts up in %.1f s, each with a deckhand-agent (Ready) and an sshd (listening)\n", cfg.hosts, time.Since(start).Seconds())
	fmt.Fprintf(out, "versions: %s; %s; %s\n", firstLine("ansible", "--version"), firstLine("ssh", "-V"), firstLine(filepath.Join(cfg.binDir, "deckhand-agent"), "--version"))
	fmt.Fprintf(out, "ansible.cfg:\n%s", indent(ansibleConfig))

	cmds := commands(cfg, dh, filepath.Join(dir, "ansible", "ansible.cfg"))
	res, err := measure(ctx, l, cfg, cmds, out)
	if err != nil {
		return err
	}
	fmt.Fprintln(out)
	printTable(out, cfg, cmds, res)
	if cfg.keep {
		fmt.Fprintf(out, "\nthe lab runs until Ctrl-C: export DECKHAND_CONFIG=%s ANSIBLE_CONFIG=%s\n", dh.config, filepath.Join(dir, "ansible", "ansible.cfg"))
		<-ctx.Done()
	}
	return nil
}

// deckhand is the running controller: its address and admin credentials.
type deckhand struct {
	deckctl, addr, config string
}

func (d deckhand) cmd(ctx context.Context, args ...string) *exec.Cmd {
	c := exec.CommandContext(ctx, d.deckctl, append([]string{"--controller", d.addr}, args...)...)
	c.Env = append(os.Environ(), "DECKHAND_CONFIG="+d.config)
	return c
}

// startDeckhand starts the controller in the root namespace on the bridge address, enrolls
// a deckhand-agent in every host's namespace with one token, each with its own state dir.
func startDeckhand(ctx context.Context, l *lab, cfg config, hosts []host) (deckhand, error) {
	bin, err := filepath.Abs(cfg.binDir)
	if err != nil {
		return deckhand{}, err
	}
	data := filepath.Join(l.dir, "controller")
	d := deckhand{deckctl: filepath.Join(bin, "deckctl"), addr: cfg.controller(), config: filepath.Join(data, "admin.conf")}
	if _, err := l.start("controller", filepath.Join(bin, "deckhand-controller"), "--data-dir", data, "--listen", d.addr,
		"--name", "ctl-0", "--log-level", "warn"); err != nil {
		return d, err
	}
	if err := poll(ctx, time.Minute, "the controller answering", func() error {
		if _, err := os.Stat(d.config); err != nil {
			return err
		}
		return quiet(d.cmd(ctx, "members"))
	}); err != nil {
		return d, err
	}
	var tok struct {
		Secret     string `json:"secret"`
		CACertHash string `json:"caCertHash"`
	}
	b, err := d.cmd(ctx, "token", "create", "--usages", fmt.Sprint(len(hosts)), "--ttl", "30m", "-o", "json").Output()
	if err != nil {
		return d, fmt.Errorf("deckctl token create: %w", err)
	}
	if err := json.Unmarshal(b, &tok); err != nil || tok.Secret == "" {
		return d, fmt.Errorf("deckctl token create: unexpected output %q", b)
	}
	tokenFile := filepath.Join(l.dir, "token")
	if err := os.WriteFile(tokenFile, []byte(tok.Secret+"\n"), 0o600); err != nil {
		return d, err
	}
	start := func(h host, attempt int) (*proc, error) {
		return l.start(fmt.Sprintf("agent-%s-%d", h.name, attempt), inNetns(h, filepath.Join(bin, "deckhand-agent"),
			"--controller", d.addr, "--node-name", h.name, "--data-dir", filepath.Join(l.dir, "agents", h.name),
			"--token-file", tokenFile, "--ca-cert-hash", tok.CACertHash, "--log-level", "warn")...)
	}
	// In waves, each Ready before the next starts: a hundred enrollments at once on a busy
	// 2-core machine outlast the agent's 10 s enrollment deadline, and an agent that gives up
	// exits. One that exited before enrolling is started again, as its systemd unit would.
	for i := 0; i < len(hosts); i += enrollWave {
		wave := hosts[i:min(i+enrollWave, len(hosts))]
		procs := make([]*proc, len(wave))
		attempts := make([]int, len(wave))
		for j, h := range wave {
			if procs[j], err = start(h, 0); err != nil {
				return d, err
			}
		}
		err := poll(ctx, 2*time.Minute, fmt.Sprintf("nodes %s to %s Ready", wave[0].name, wave[len(wave)-1].name), func() error {
			ready, err := d.ready(ctx)
			if err != nil {
				return err
			}
			for j, h := range wave {
				if ready[h.name] {
					continue
				}
				if !procs[j].running() {
					if attempts[j] == 3 {
						return fmt.Errorf("%s's agent exited 3 times: %s", h.name, tailFile(filepath.Join(l.logs, fmt.Sprintf("agent-%s-%d.log", h.name, attempts[j])), 3))
					}
					attempts[j]++
					if procs[j], err = start(h, attempts[j]); err != nil {
						return err
					}
				}
				return fmt.Errorf("%s is not Ready", h.name)
			}
			return nil
		})
		if err != nil {
			return d, err
		}
	}
	return d, nil
}

// enrollWave is how many agents enroll at once.
const enrollWave = 10

// ready reads which nodes are Ready (deckctl nodes).
func (d deckhand) ready(ctx context.Context) (map[string]bool, error) {
	b, err := d.cmd(ctx, "nodes").Output()
	if err != nil {
		return nil, fmt.Errorf("deckctl nodes: %w", err)
	}
	ready := map[string]bool{}
	for _, line := range strings.Split(string(b), "\n") {
		if f := strings.Fields(line); len(f) > 1 && f[1] == "Ready" {
			ready[f[0]] = true
		}
	}
	return ready, nil
}

// startSSH generates a host key and a client key, starts an sshd in every host's namespace
// listening on its address, and writes Ansible's inventory and ansible.cfg; it returns the
// ansible.cfg.
func startSSH(ctx context.Context, l *lab, cfg config, hosts []host, d ansibleDirs) (string, error) {
	sshDir := filepath.Join(l.dir, "ssh")
	for _, p := range []string{sshDir, filepath.Dir(d.inventory), d.home, d.localTmp, d.remoteTmp, d.controlPathDir} {
		if err := os.MkdirAll(p, 0o700); err != nil {
			return "", err
		}
	}
	hostKey := filepath.Join(sshDir, "host_ed25519")
	for _, k := range []string{hostKey, d.clientKey} {
		if err := run(ctx, "ssh-keygen", "-q", "-t", "ed25519", "-N", "", "-C", "fanoutbench", "-f", k); err != nil {
			return "", err
		}
	}
	pub, err := os.ReadFile(d.clientKey + ".pub")
	if err != nil {
		return "", err
	}
	authorized := filepath.Join(sshDir, "authorized_keys")
	sshdCfg := filepath.Join(sshDir, "sshd_config")
	home := filepath.Join(sshDir, "home")
	if err := plainHome(home); err != nil {
		return "", err
	}
	ansCfg := ansibleCfg(cfg.forks, d)
	for path, content := range map[string]string{
		authorized: string(pub), sshdCfg: sshdConfig(hostKey, authorized, home),
		d.inventory: inventory(hosts), filepath.Join(filepath.Dir(d.inventory), "ansible.cfg"): ansCfg,
	} {
		if err := os.WriteFile(path, []byte(content), 0o600); err != nil {
			return "", err
		}
	}
	// sshd's privilege separation directory; Debian's init script makes it at boot.
	if _, err := os.Stat("/run/sshd"); errors.Is(err, os.ErrNotExist) {
		if err := os.Mkdir("/run/sshd", 0o755); err != nil {
			return "", err
		}
		l.onCleanup(func() { _ = os.Remove("/run/sshd") })
	}
	if err := run(ctx, "/usr/sbin/sshd", "-t", "-f", sshdCfg); err != nil {
		return "", fmt.Errorf("sshd rejects its configuration: %w", err)
	}
	for _, h := range hosts {
		if _, err := l.start("sshd-"+h.name, inNetns(h, "/usr/sbin/sshd", "-D", "-e",
			"-f", sshdCfg, "-o", "ListenAddress="+h.ip)...); err != nil {
			return "", err
		}
	}
	return ansCfg, nil
}

// waitReady waits until every sshd accepts connections and every node is Ready, then runs
// one task on one node; on failure it names a host that was not ready.
func waitReady(ctx context.Context, d deckhand, cfg config, hosts []host) (string, error) {
	for _, h := range hosts {
		addr := net.JoinHostPort(h.ip, "22")
		if err := poll(ctx, time.Minute, "sshd on "+addr, func() error { return dialable(addr) }); err != nil {
			return h.name, err
		}
	}
	slow := hosts[0].name
	if err := poll(ctx, time.Minute, fmt.Sprintf("%d nodes Ready", len(hosts)), func() error {
		ready, err := d.ready(ctx)
		if err != nil {
			return err
		}
		for _, h := range hosts {
			if !ready[h.name] {
				slow = h.name
				return fmt.Errorf("%d Ready, not %s", len(ready), h.name)
			}
		}
		return nil
	}); err != nil {
		return slow, err
	}
	pctx, cancel := context.WithTimeout(ctx, 30*time.Second)
	defer cancel()
	if b, err := d.cmd(pctx, "task", "run", hosts[0].name, "ping").CombinedOutput(); err != nil {
		return hosts[0].name, fmt.Errorf("deckctl task run %s ping: %w: %s", hosts[0].name, err, b)
	}
	return "", nil
}

// stopProcesses ends Ansible's ControlPersist masters (which ends their sessions in the
// sshds), then stops every process the benchmark started: agents and sshds (with anything
// left below them), then the controller.
func (l *lab) stopProcesses(controlPathDir string) {
	if entries, err := os.ReadDir(controlPathDir); err == nil {
		for _, e := range entries {
			ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
			_ = exec.CommandContext(ctx, "ssh", "-o", "ControlPath="+filepath.Join(controlPathDir, e.Name()), "-O", "exit", "fanoutbench").Run()
			cancel()
		}
	}
	l.mu.Lock()
	procs := l.procs
	l.mu.Unlock()
	var hostProcs, controllers []*proc
	for _, p := range procs {
		if p.name == "controller" {
			controllers = append(controllers, p)
			continue
		}
		if strings.HasPrefix(p.name, "sshd-") && p.running() {
			for _, pid := range descendants(p.cmd.Process.Pid) {
				_ = syscall.Kill(pid, syscall.SIGKILL)
			}
		}
		hostProcs = append(hostProcs, p)
	}
	stopAll(hostProcs, 5*time.Second)
	stopAll(controllers, 10*time.Second)
}

func tailFile(path string, n int) string {
	b, _ := os.ReadFile(path)
	return tail(b, n)
}

func quiet(c *exec.Cmd) error {
	if b, err := c.CombinedOutput(); err != nil {
		return fmt.Errorf("%w: %s", err, bytes.TrimSpace(b))
	}
	return nil
}

func firstLine(argv ...string) string {
	b, _ := exec.Command(argv[0], argv[1:]...).CombinedOutput()
	line, _, _ := strings.Cut(strings.TrimSpace(string(b)), "\n")
	return line
}

func indent(s string) string {
	var b strings.Builder
	for _, line := range strings.Split(strings.TrimRight(s, "\n"), "\n") {
		b.WriteString("    " + line + "\n")
	}
	return b.String()
}

// inNetns is argv run in h's network namespace by `ip netns exec`, which also gives it a
// /sys of that namespace (its own mount namespace, sysfs mounted again), as on a host of
// its own: under nsenter --net, /sys/class/net lists the root namespace's interfaces (a
// hundred veths here), and Ansible's setup runs two `ip addr show` for each of them.
func inNetns(h host, argv ...string) []string {
	return append([]string{"ip", "netns", "exec", h.netns}, argv...)
}
