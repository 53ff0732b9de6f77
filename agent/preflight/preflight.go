// Package preflight is the agent's preflight task: the checks kubeadm init and join run,
// each with a pass, warn or fail and a message that says how to fix it, and with fix set,
// the fixes kubeadm only tells you about: firewall ports, an /etc/hosts entry for the node
// name, swap, kernel modules, sysctls and the kubelet service. Every fix checks first and
// goes through the Host, so a dry-run shows the per-host diff and a second run changes
// nothing.
package preflight

import (
	"bufio"
	"context"
	"fmt"
	"net"
	"net/netip"
	"path"
	"runtime"
	"slices"
	"strconv"
	"strings"

	"github.com/deckhandhq/deckhand/agent/firewall"
	"github.com/deckhandhq/deckhand/agent/host"
	cri "github.com/deckhandhq/deckhand/agent/runtime"
	"github.com/deckhandhq/deckhand/agent/tasks"
	"github.com/deckhandhq/deckhand/internal/hostos"
	"github.com/deckhandhq/deckhand/internal/podnet"
	taskv1 "github.com/deckhandhq/deckhand/proto/deckhand/task/v1"
)

// Status of one check.
type Status string

const (
	Pass Status = "pass"
	Warn Status = "warn"
	Fail Status = "fail"
)

// Result is one check's outcome.
type Result struct {
	Name    string
	Status  Status
	Message string
	Fixed   bool
}

// Host paths and settings the checks use.
const (
	modulesConf = "/etc/modules-load.d/kubernetes.conf"
	sysctlConf  = "/etc/sysctl.d/99-kubernetes.conf"
)

var (
	controlPlanePorts = []int{6443, 10250, 10257, 10259, 2379, 2380}
	workerPorts       = []int{10250}
	// workerFirewallOnly are opened in the firewall of a worker but not checked free: what
	// kube-proxy listens on once the node joined (its health port, NodePort Services),
	// kubeadm's list of a worker's ports.
	workerFirewallOnly = []string{"10256/tcp", "30000-32767/tcp"}
	modules            = []string{"overlay", "br_netfilter"}
	sysctls            = [][2]string{{"net.ipv4.ip_forward", "1"}, {"net.bridge.bridge-nf-call-iptables", "1"}, {"net.bridge.bridge-nf-call-ip6tables", "1"}}
	binaries           = []string{"crictl", "conntrack", "ip", "iptables", "mount", "nsenter", "ethtool", "socat", "tc", "touch"}
)

type checker struct {
	h        *host.Host
	e        *tasks.Emitter
	spec     *taskv1.PreflightSpec
	nodeName string
	results  []Result
}

// Run is the preflight task handler.
func Run(ctx context.Context, t *taskv1.Task, h *host.Host, e *tasks.Emitter) (map[string]string, error) {
	spec := t.GetSpec().GetPreflight()
	role := spec.GetRole()
	if role == taskv1.NodeRole_NODE_ROLE_UNSPECIFIED {
		role = taskv1.NodeRole_NODE_ROLE_WORKER
	}
	for i, p := range spec.GetExtraPorts() {
		if p == 0 || p > 65535 {
			return nil, tasks.Errorf("INVALID_ARGUMENT", "give TCP ports between 1 and 65535", "extra_ports[%d]: %d is not a TCP port", i, p)
		}
	}
	for i, p := range spec.GetNetworkPorts() {
		if err := podnet.ParsePort(fmt.Sprintf("network_ports[%d]", i), p); err != nil {
			return nil, tasks.Errorf("INVALID_ARGUMENT", "give ports as PORT/tcp, PORT/udp or FIRST-LAST/tcp", "%v", err)
		}
	}
	for i, src := range spec.GetTrustedSources() {
		if p, err := netip.ParsePrefix(src); err != nil || p.Masked() != p {
			return nil, tasks.Errorf("INVALID_ARGUMENT", "give the cluster's pod subnet as a CIDR, such as 10.244.0.0/16", "trusted_sources[%d]: %q is not a network CIDR", i, src)
		}
	}
	c := &checker{h: h, e: e, spec: spec, nodeName: t.GetNode()}
	ports := workerPorts
	if role == taskv1.NodeRole_NODE_ROLE_CONTROL_PLANE {
		ports = controlPlanePorts
		c.cpus()
		c.memory()
	}
	for _, p := range spec.GetExtraPorts() {
		if !slices.Contains(ports, int(p)) {
			ports = append(slices.Clone(ports), int(p))
		}
	}
	c.osSupported()
	c.selinux(ctx)
	c.swap(ctx)
	c.portsFree(ports)
	open := make([]string, 0, len(ports)+len(workerFirewallOnly))
	for _, p := range ports {
		open = append(open, fmt.Sprintf("%d/tcp", p))
	}
	if role == taskv1.NodeRole_NODE_ROLE_WORKER {
		open = append(open, workerFirewallOnly...)
	}
	for _, p := range spec.GetNetworkPorts() {
		if !slices.Contains(open, p) {
			open = append(open, p)
		}
	}
	c.firewall(ctx, open)
	c.hostname()
	c.modules(ctx)
	c.sysctls(ctx)
	c.kubelet(ctx)
	c.criSocket()
	c.binaries()

	out := map[string]string{}
	var failed []string
	for _, r := range c.results {
		status := string(r.Status)
		if r.Fixed {
			status = "fixed"
			if h.DryRun {
				status = "would fix"
			}
		}
		out["check."+r.Name] = status + ": " + r.Message
		e.Log("agent", fmt.Sprintf("[%s] %s: %s", strings.ToUpper(status), r.Name, r.Message))
		if r.Status == Fail && !r.Fixed && !slices.Contains(spec.GetIgnore(), r.Name) {
			failed = append(failed, r.Name+": "+r.Message)
		}
	}
	if len(failed) > 0 {
		hint := "fix the items above, or run preflight with --fix"
		if spec.GetFix() {
			hint = "fix the items above by hand; they cannot be fixed automatically"
		}
		return out, tasks.Errorf("PREFLIGHT_FAILED", hint, "%d preflight check(s) failed: %s", len(failed), strings.Join(failed, "; "))
	}
	return out, nil
}

func (c *checker) add(name string, s Status, format string, args ...any) *Result {
	c.results = append(c.results, Result{Name: name, Status: s, Message: fmt.Sprintf(format, args...)})
	return &c.results[len(c.results)-1]
}

// fix runs fn when fixes are on and marks r fixed when it succeeds.
func (c *checker) fix(r *Result, fn func() error) {
	if !c.spec.GetFix() {
		return
	}
	if err := fn(); err != nil {
		r.Message += fmt.Sprintf(" (the fix failed: %v)", err)
		return
	}
	r.Fixed = true
}

func (c *checker) cpus() {
	n := runtime.NumCPU()
	if b, err := c.h.ReadFile("/proc/cpuinfo"); err == nil {
		n = strings.Count(string(b), "\nprocessor") + map[bool]int{true: 1}[strings.HasPrefix(string(b), "processor")]
	}
	if n < 2 {
		c.add("NumCPU", Fail, "the number of available CPUs %d is less than the required 2: give the machine at least 2 CPUs", n)
		return
	}
	c.add("NumCPU", Pass, "%d CPUs", n)
}

func meminfo(h *host.Host, key string) (uint64, bool) {
	b, err := h.ReadFile("/proc/meminfo")
	if err != nil {
		return 0, false
	}
	sc := bufio.NewScanner(strings.NewReader(string(b)))
	for sc.Scan() {
		f := strings.Fields(sc.Text())
		if len(f) >= 2 && f[0] == key+":" {
			kb, err := strconv.ParseUint(f[1], 10, 64)
			return kb * 1024, err == nil
		}
	}
	return 0, false
}

func (c *checker) memory() {
	mem, ok := meminfo(c.h, "MemTotal")
	if !ok {
		c.add("Mem", Warn, "cannot read /proc/meminfo")
		return
	}
	if mem < 1700<<20 {
		c.add("Mem", Fail, "the system RAM (%d MB) is less than the minimum 1700 MB: give the machine more memory", mem>>20)
		return
	}
	c.add("Mem", Pass, "%d MB", mem>>20)
}

// osSupported: the host runs a distribution Deckhand supports (hostos.Distros), at a
// version it supports.
func (c *checker) osSupported() {
	o := c.h.OS()
	if err := o.Supported(); err != nil {
		c.add("OS", Fail, "%v: run the node on one of those, or ignore this check (--ignore OS) at your own risk", err)
		return
	}
	c.add("OS", Pass, "%s", o.Name())
}

// selinux: SELinux is not enforcing, now or at the next boot, as kubeadm's install guide
// asks (containers must read the host's files: the pod network's, etcd's data). The fix
// sets it permissive now (setenforce 0) and at boot (/etc/selinux/config).
func (c *checker) selinux(ctx context.Context) {
	enforce, _ := c.h.ReadFile(hostos.SELinuxEnforce)
	config, err := c.h.ReadFile(hostos.SELinuxConfig)
	if err != nil {
		config = nil
	}
	now, boot := hostos.SELinuxMode(enforce, config), hostos.SELinuxBootMode(config)
	switch {
	case now == "":
		c.add("SELinux", Pass, "SELinux is not on this host")
		return
	case now != hostos.Enforcing && (boot == hostos.Permissive || boot == hostos.Disabled):
		c.add("SELinux", Pass, "SELinux is %s (at boot: %s)", now, boot)
		return
	}
	r := c.add("SELinux", Fail, "SELinux is %s now and %s at boot: kubeadm's install guide sets it permissive so that containers can read the host's files; run with --fix, or: setenforce 0 and SELINUX=permissive in %s",
		now, boot, hostos.SELinuxConfig)
	c.fix(r, func() error {
		if now == hostos.Enforcing {
			if err := c.h.Run(ctx, "set SELinux permissive now", "setenforce", "0"); err != nil {
				return err
			}
		}
		if out, changed := hostos.SELinuxPermissive(config); changed && boot != hostos.Disabled {
			if _, err := c.h.WriteFile(hostos.SELinuxConfig, out, 0o644); err != nil {
				return err
			}
		}
		return nil
	})
}

// swapAreas lists the active swap areas.
func (c *checker) swapAreas() []string {
	b, err := c.h.ReadFile("/proc/swaps")
	if err != nil {
		return nil
	}
	var out []string
	for i, l := range strings.Split(strings.TrimSpace(string(b)), "\n") {
		if f := strings.Fields(l); i > 0 && len(f) > 0 {
			out = append(out, f[0])
		}
	}
	return out
}

func (c *checker) swap(ctx context.Context) {
	areas := c.swapAreas()
	fstab, _ := c.h.ReadFile("/etc/fstab")
	var newFstab []string
	inFstab := false
	for _, l := range strings.Split(string(fstab), "\n") {
		f := strings.Fields(l)
		if len(f) >= 3 && !strings.HasPrefix(f[0], "#") && f[2] == "swap" {
			inFstab = true
			l = "# " + l + " # disabled for the kubelet by deckhand preflight"
		}
		newFstab = append(newFstab, l)
	}
	if len(areas) == 0 && !inFstab {
		c.add("Swap", Pass, "swap is off")
		return
	}
	r := c.add("Swap", Fail, "swap is on (%s)%s: the kubelet refuses to run with swap by default; run swapoff -a and comment swap out of /etc/fstab, or use --fix",
		strings.Join(areas, ", "), map[bool]string{true: " and enabled in /etc/fstab"}[inFstab])
	c.fix(r, func() error {
		if len(areas) > 0 {
			if err := c.h.Run(ctx, "turn swap off", "swapoff", "-a"); err != nil {
				return err
			}
		}
		if inFstab {
			_, err := c.h.WriteFile("/etc/fstab", []byte(strings.Join(newFstab, "\n")), 0o644)
			return err
		}
		return nil
	})
}

// listening reads the TCP ports in LISTEN state from /proc/net/tcp{,6}.
func (c *checker) listening() map[int]bool {
	out := map[int]bool{}
	for _, f := range []string{"/proc/net/tcp", "/proc/net/tcp6"} {
		b, err := c.h.ReadFile(f)
		if err != nil {
			continue
		}
		for _, l := range strings.Split(string(b), "\n")[1:] {
			fields := strings.Fields(l)
			if len(fields) < 4 || fields[3] != "0A" {
				continue
			}
			_, portHex, ok := strings.Cut(fields[1], ":")
			if !ok {
				continue
			}
			if p, err := strconv.ParseUint(portHex, 16, 16); err == nil {
				out[int(p)] = true
			}
		}
	}
	return out
}

func (c *checker) portsFree(ports []int) {
	busy := c.listening()
	for _, p := range ports {
		name := fmt.Sprintf("Port-%d", p)
		if busy[p] {
			c.add(name, Fail, "port %d is in use: stop what listens on it (ss -ltnp 'sport = :%d' shows it)", p, p)
			continue
		}
		c.add(name, Pass, "port %d is free", p)
	}
}

// firewall opens ports ("6443/tcp", "30000-32767/tcp") in firewalld or ufw.
func (c *checker) firewall(ctx context.Context, ports []string) {
	if c.h.Has("firewall-cmd") {
		if out, err := c.h.Query(ctx, "firewall-cmd", "--state"); err == nil && strings.TrimSpace(string(out)) == "running" {
			c.firewalld(ctx, ports)
			return
		}
	}
	if c.h.Has("ufw") {
		if out, err := c.h.Query(ctx, "ufw", "status"); err == nil && strings.Contains(string(out), "Status: active") {
			for _, port := range ports {
				spec := firewall.UfwPort(port) // ufw writes a range with a colon
				if strings.Contains(string(out), spec) {
					c.add("Ufw-"+port, Pass, "ufw allows %s", port)
					continue
				}
				r := c.add("Ufw-"+port, Fail, "port %s may be blocked by ufw: run with --fix or ufw allow %s", port, spec)
				c.fix(r, func() error {
					if err := c.h.Run(ctx, "allow "+spec, "ufw", "allow", spec); err != nil {
						return err
					}
					return firewall.Added(c.h, firewall.Rule{Tool: firewall.Ufw, Kind: firewall.Port, Value: port})
				})
			}
			if c.spec.GetAllowVrrp() {
				if strings.Contains(string(out), "/vrrp") {
					c.add("Ufw-vrrp", Pass, "ufw allows VRRP")
				} else {
					r := c.add("Ufw-vrrp", Fail, "ufw may drop VRRP, which keepalived needs between the control planes: run with --fix or ufw allow proto vrrp from any to any")
					c.fix(r, func() error {
						if err := c.h.Run(ctx, "allow VRRP", "ufw", "allow", "proto", "vrrp", "from", "any", "to", "any"); err != nil {
							return err
						}
						return firewall.Added(c.h, firewall.Rule{Tool: firewall.Ufw, Kind: firewall.Protocol, Value: "vrrp"})
					})
				}
			}
			return
		}
	}
	c.add("Firewall", Pass, "no active firewalld or ufw")
}

// hostname checks that the node name resolves through /etc/hosts on the host. Names are
// never sent to a resolver from here: that is what kubeadm's own check trips on. An entry
// that maps the name to another of the host's networks than the node's address is
// reported, not rewritten: the kubelet and the API server are given the address itself.
func (c *checker) hostname() {
	b, _ := c.h.ReadFile("/etc/hosts")
	for _, l := range strings.Split(string(b), "\n") {
		f := strings.Fields(strings.SplitN(l, "#", 2)[0])
		if len(f) >= 2 && slices.Contains(f[1:], c.nodeName) {
			if want := c.spec.GetNodeAddress(); hostsEntryElsewhere(f[0], want) {
				c.add("Hostname", Warn, "%s resolves to %s through /etc/hosts, not to the node's address %s: programs that look the name up reach another network; change that line of /etc/hosts to %s %s", c.nodeName, f[0], want, want, c.nodeName)
				return
			}
			c.add("Hostname", Pass, "%s resolves to %s through /etc/hosts", c.nodeName, f[0])
			return
		}
	}
	r := c.add("Hostname", Fail, "hostname %q could not be reached through /etc/hosts: add it there or use --fix", c.nodeName)
	ip := c.spec.GetNodeAddress()
	if ip == "" {
		ip = c.nodeIP()
	}
	c.fix(r, func() error {
		_, err := c.h.AppendLine("/etc/hosts", ip+" "+c.nodeName, 0o644)
		return err
	})
}

// hostsEntryElsewhere says whether an /etc/hosts entry for the node with address have points
// at another network than the node's address want: a loopback entry (Debian's 127.0.1.1)
// is not another network.
func hostsEntryElsewhere(have, want string) bool {
	h, herr := netip.ParseAddr(have)
	w, werr := netip.ParseAddr(want)
	return herr == nil && werr == nil && !h.IsLoopback() && h.Unmap() != w.Unmap()
}

// nodeIP is the address an /etc/hosts entry for the node points at when the node's address
// is not known: the first non-loopback address of the host, else 127.0.1.1 (as Debian does
// for its own name).
func (c *checker) nodeIP() string {
	addrs, _ := net.InterfaceAddrs()
	for _, a := range addrs {
		if ipn, ok := a.(*net.IPNet); ok && ipn.IP.To4() != nil && !ipn.IP.IsLoopback() && !ipn.IP.IsLinkLocalUnicast() {
			return ipn.IP.String()
		}
	}
	return "127.0.1.1"
}

// moduleEffects are the marks a module leaves when it is in the kernel, loaded or built in:
// a built-in module without parameters has no /sys/module/NAME, and a host without
// /lib/modules (a container, a minimal VM image) has no modules.builtin either.
var moduleEffects = map[string]func(h *host.Host) bool{
	"br_netfilter": func(h *host.Host) bool { return h.Exists("/proc/sys/net/bridge/bridge-nf-call-iptables") },
	"overlay": func(h *host.Host) bool {
		b, _ := h.ReadFile("/proc/filesystems")
		for _, l := range strings.Split(string(b), "\n") {
			if f := strings.Fields(l); len(f) > 0 && f[len(f)-1] == "overlay" {
				return true
			}
		}
		return false
	},
}

// moduleIn reports whether kernel module m is available: loaded, built into the running
// kernel, or visible by its effect. Only a module that is none of these needs modprobe.
func moduleIn(h *host.Host, m string) bool {
	if h.Exists("/sys/module/" + m) {
		return true
	}
	if release, err := h.ReadFile("/proc/sys/kernel/osrelease"); err == nil {
		builtin, _ := h.ReadFile("/lib/modules/" + strings.TrimSpace(string(release)) + "/modules.builtin")
		for _, l := range strings.Split(string(builtin), "\n") {
			// kernel/net/bridge/br_netfilter.ko; the kernel spells module names with _ or -.
			name := strings.ReplaceAll(strings.TrimSuffix(path.Base(strings.TrimSpace(l)), ".ko"), "-", "_")
			if name == m {
				return true
			}
		}
	}
	effect, ok := moduleEffects[m]
	return ok && effect(h)
}

func (c *checker) modules(ctx context.Context) {
	var missing []string
	for _, m := range modules {
		if !moduleIn(c.h, m) {
			missing = append(missing, m)
		}
	}
	conf, _ := c.h.ReadFile(modulesConf)
	persisted := true
	for _, m := range modules {
		if !slices.Contains(strings.Fields(string(conf)), m) {
			persisted = false
		}
	}
	if len(missing) == 0 && persisted {
		c.add("KernelModules", Pass, "%s are in the kernel and listed to load at boot", strings.Join(modules, ", "))
		return
	}
	status := Fail
	if len(missing) == 0 {
		status = Warn
	}
	r := c.add("KernelModules", status, "modules not loaded: [%s]; loaded at boot: %v: run with --fix, or modprobe them and list them in %s", strings.Join(missing, " "), persisted, modulesConf)
	c.fix(r, func() error {
		// Listed even when built in: harmless, and right if the kernel changes.
		if _, err := c.h.WriteFile(modulesConf, []byte(strings.Join(modules, "\n")+"\n"), 0o644); err != nil {
			return err
		}
		for _, m := range missing {
			if err := c.h.Run(ctx, "load module "+m, "modprobe", m); err != nil {
				return err
			}
		}
		return nil
	})
}

func (c *checker) sysctls(ctx context.Context) {
	var wrong []string
	for _, kv := range sysctls {
		b, err := c.h.ReadFile("/proc/sys/" + strings.ReplaceAll(kv[0], ".", "/"))
		if err != nil || strings.TrimSpace(string(b)) != kv[1] {
			wrong = append(wrong, kv[0])
		}
	}
	var want strings.Builder
	want.WriteString("# Written by deckhand preflight: what kubeadm and the kubelet need.\n")
	for _, kv := range sysctls {
		fmt.Fprintf(&want, "%s = %s\n", kv[0], kv[1])
	}
	conf, _ := c.h.ReadFile(sysctlConf)
	persisted := string(conf) == want.String()
	if len(wrong) == 0 && persisted {
		c.add("Sysctl", Pass, "ip_forward and bridge-nf-call-iptables are 1, also after a reboot")
		return
	}
	status := Fail
	if len(wrong) == 0 {
		status = Warn
	}
	r := c.add("Sysctl", status, "not set to 1: [%s]; persisted in %s: %v: run with --fix", strings.Join(wrong, " "), sysctlConf, persisted)
	c.fix(r, func() error {
		if _, err := c.h.WriteFile(sysctlConf, []byte(want.String()), 0o644); err != nil {
			return err
		}
		if len(wrong) > 0 {
			return c.h.Run(ctx, "apply sysctls", "sysctl", "--system")
		}
		return nil
	})
}

// unitDirs are where systemd looks for unit files, the administrator's first.
var unitDirs = []string{"/etc/systemd/system", "/run/systemd/system", "/usr/local/lib/systemd/system", "/lib/systemd/system", "/usr/lib/systemd/system"}

// hasUnit reports whether a unit file for name exists on the host.
func hasUnit(h *host.Host, name string) bool {
	for _, d := range unitDirs {
		if h.Exists(d + "/" + name) {
			return true
		}
	}
	return false
}

func (c *checker) kubelet(ctx context.Context) {
	if _, err := c.h.Query(ctx, "systemctl", "is-enabled", "kubelet"); err == nil {
		c.add("Service-Kubelet", Pass, "kubelet service is enabled")
		return
	}
	// The packages step comes after preflight in every workflow; enabling a unit that is
	// not there yet fails ("Unit file kubelet.service does not exist").
	if !hasUnit(c.h, "kubelet.service") {
		c.add("Service-Kubelet", Warn, "kubelet is not installed yet: the packages step installs and enables it")
		return
	}
	r := c.add("Service-Kubelet", Warn, "kubelet service is not enabled: run 'systemctl enable kubelet.service' or use --fix")
	c.fix(r, func() error { return c.h.Run(ctx, "enable the kubelet", "systemctl", "enable", "kubelet") })
}

func (c *checker) criSocket() {
	socket := cri.HostSocket(c.h)
	if c.h.Exists(socket) {
		c.add("CRI", Pass, "container runtime socket %s is present", socket)
		return
	}
	c.add("CRI", Fail, "no container runtime socket at %s (deckhand-agent --cri-socket): run the runtime task on this node first", socket)
}

func (c *checker) binaries() {
	var missing []string
	for _, b := range binaries {
		if !c.h.Has(b) {
			missing = append(missing, b)
		}
	}
	if len(missing) > 0 {
		c.add("FileExisting", Warn, "not found in the system path: %s: install them (conntrack, socat, ethtool, iproute2 packages)", strings.Join(missing, ", "))
		return
	}
	c.add("FileExisting", Pass, "required binaries present")
}

// firewalld opens the ports, the pods' sources and VRRP in firewalld: in the zone of the
// interface that holds the node's address (firewall-cmd --get-zone-of-interface), else the
// default zone, named (a reset removes them from that zone even if the default changes), each
// permanently and in the running configuration. No --reload: it would drop the rules other
// tools keep in the running configuration only (a CNI firewall plugin's pods, podman's).
func (c *checker) firewalld(ctx context.Context, ports []string) {
	zone := c.firewalldZone(ctx)
	z := firewall.ZoneArgs(zone)
	where := "the default zone"
	if zone != "" {
		where = "zone " + zone
	}
	cmd := func(args ...string) []string {
		return append(append([]string{"firewall-cmd"}, z...), args...)
	}
	both := func(args ...string) string {
		return strings.Join(append([]string{"firewall-cmd", "--permanent"}, args...), " ") + " && " + strings.Join(append([]string{"firewall-cmd"}, args...), " ")
	}
	open := func(r *Result, what string, rule firewall.Rule, args ...string) {
		c.fix(r, func() error {
			if err := c.h.Run(ctx, what+" permanently", append([]string{"firewall-cmd", "--permanent"}, args...)...); err != nil {
				return err
			}
			if err := c.h.Run(ctx, what+" now", append([]string{"firewall-cmd"}, args...)...); err != nil {
				return err
			}
			return firewall.Added(c.h, rule)
		})
	}
	for _, port := range ports {
		if _, err := c.h.Query(ctx, cmd("--query-port="+port)...); err == nil {
			c.add("Firewalld-"+port, Pass, "firewalld allows %s in %s", port, where)
			continue
		}
		args := append(slices.Clone(z), "--add-port="+port)
		r := c.add("Firewalld-"+port, Fail, "port %s is closed by firewalld (%s): run with --fix or open it: %s", port, where, both(args...))
		open(r, "open "+port, firewall.Rule{Tool: firewall.Firewalld, Kind: firewall.Port, Value: port, Zone: zone}, args...)
	}
	for _, src := range c.spec.GetTrustedSources() {
		tz := "--zone=" + firewall.TrustedZone
		if _, err := c.h.Query(ctx, "firewall-cmd", tz, "--query-source="+src); err == nil {
			c.add("Firewalld-source-"+src, Pass, "firewalld trusts the pods' %s", src)
			continue
		}
		r := c.add("Firewalld-source-"+src, Fail, "firewalld may drop the pods' traffic from %s (to this node and forwarded to its pods): run with --fix or trust it: %s", src, both(tz, "--add-source="+src))
		open(r, "trust the pods' "+src, firewall.Rule{Tool: firewall.Firewalld, Kind: firewall.Source, Value: src}, tz, "--add-source="+src)
	}
	if c.spec.GetAllowVrrp() {
		if _, err := c.h.Query(ctx, cmd("--query-protocol=vrrp")...); err == nil {
			c.add("Firewalld-vrrp", Pass, "firewalld allows VRRP in %s", where)
		} else {
			args := append(slices.Clone(z), "--add-protocol=vrrp")
			r := c.add("Firewalld-vrrp", Fail, "firewalld drops VRRP (%s), which keepalived needs between the control planes: run with --fix or allow it: %s", where, both(args...))
			open(r, "allow VRRP", firewall.Rule{Tool: firewall.Firewalld, Kind: firewall.Protocol, Value: "vrrp", Zone: zone}, args...)
		}
	}
}

// firewalldZone is the firewalld zone of the interface holding the node's address, else
// (the interface is in none, or not found) the default zone, which applies to it.
func (c *checker) firewalldZone(ctx context.Context) string {
	ip := net.ParseIP(c.spec.GetNodeAddress())
	if ip == nil {
		ip = net.ParseIP(c.nodeIP())
	}
	ifaces, _ := net.Interfaces()
	for _, i := range ifaces {
		addrs, _ := i.Addrs()
		for _, a := range addrs {
			if ipn, ok := a.(*net.IPNet); ok && ipn.IP.Equal(ip) {
				out, err := c.h.Query(ctx, "firewall-cmd", "--get-zone-of-interface="+i.Name)
				if z := strings.TrimSpace(string(out)); err == nil && firewall.ZoneRE.MatchString(z) {
					return z
				}
				return c.firewalldDefaultZone(ctx)
			}
		}
	}
	return c.firewalldDefaultZone(ctx)
}

// firewalldDefaultZone is firewalld's default zone by name, "" when it cannot be read.
func (c *checker) firewalldDefaultZone(ctx context.Context) string {
	out, err := c.h.Query(ctx, "firewall-cmd", "--get-default-zone")
	if z := strings.TrimSpace(string(out)); err == nil && firewall.ZoneRE.MatchString(z) {
		return z
	}
	return ""
}
