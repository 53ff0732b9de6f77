// Package lab_test runs `make lab` and `make lab-down` as a newcomer would. The real lab
// (TestRealLab) ends with a REAL Kubernetes cluster of 4 Ready nodes, pods talking across
// nodes and DNS; then a node is reset and joined again with its agent SIGKILLed in the middle
// of the real kubeadm join; and lab-down leaves nothing behind, sysctls included.
package lab_test

import (
	"bytes"
	"context"
	"crypto/sha256"
	"crypto/tls"
	"crypto/x509"
	"encoding/hex"
	"encoding/json"
	"fmt"
	"net"
	"net/http"
	"net/netip"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"slices"
	"strconv"
	"strings"
	"sync"
	"syscall"
	"testing"
	"time"

	clientv3 "go.etcd.io/etcd/client/v3"

	"github.com/deckhandhq/deckhand/internal/podnet"
	"github.com/deckhandhq/deckhand/internal/testkit/testcluster"
)

func run(t testing.TB, timeout time.Duration, env []string, name string, args ...string) string {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), timeout)
	defer cancel()
	cmd := exec.CommandContext(ctx, name, args...)
	cmd.Dir = "../.."
	cmd.Env = append(os.Environ(), env...)
	var out bytes.Buffer
	cmd.Stdout, cmd.Stderr = &out, &out
	if err := cmd.Run(); err != nil {
		t.Fatalf("%s %v: %v\n%s", name, args, err, out.String())
	}
	return out.String()
}

// machineSysctls are the machine-wide sysctls the kubelet changes; lab-down restores them.
var machineSysctls = []string{"vm/overcommit_memory", "kernel/panic", "kernel/panic_on_oops"}

func readSysctls() map[string]string {
	out := map[string]string{}
	for _, s := range machineSysctls {
		b, _ := os.ReadFile("/proc/sys/" + s)
		out[s] = strings.TrimSpace(string(b))
	}
	return out
}

// leftovers lists what of the lab (prefix: its namespace and bridge prefix, n: its number)
// still exists: processes whose command line names its directory, its network namespaces and
// links, mounts under its directory, its cgroups, and the directory.
func leftovers(dir, prefix string) []string {
	var left []string
	procs, _ := filepath.Glob("/proc/[0-9]*/cmdline")
	for _, p := range procs {
		b, err := os.ReadFile(p)
		if err == nil && bytes.Contains(b, []byte(dir)) {
			left = append(left, "process "+strings.ReplaceAll(string(b), "\x00", " "))
		}
	}
	if prefix != "" {
		if out, err := exec.Command("ip", "netns", "list").Output(); err == nil {
			for _, l := range strings.Split(string(out), "\n") {
				if strings.HasPrefix(l, prefix+"-") {
					left = append(left, "netns "+l)
				}
			}
		}
		num := strings.TrimPrefix(prefix, "dhlab")
		if out, err := exec.Command("ip", "-o", "link").Output(); err == nil {
			re := regexp.MustCompile(`: (` + prefix + `r?|dhl` + num + `-[a-z0-9-]+)[@:]`) // r: a routed lab's second bridge
			for _, l := range strings.Split(string(out), "\n") {
				if re.MatchString(l) {
					left = append(left, "link "+l)
				}
			}
		}
		cgs, _ := filepath.Glob("/sys/fs/cgroup/*/" + prefix + "-*")
		for _, c := range cgs {
			left = append(left, "cgroup "+c)
		}
	}
	if b, err := os.ReadFile("/proc/self/mounts"); err == nil {
		for _, l := range strings.Split(string(b), "\n") {
			if strings.Contains(l, " "+dir) {
				left = append(left, "mount "+l)
			}
		}
	}
	if _, err := os.Stat(dir); err == nil {
		left = append(left, "directory "+dir)
	}
	return left
}

// realLab is a running real lab.
type realLab struct {
	t                      testing.TB
	dir, prefix, kit, net  string
	kubeconfig, deckconfig string
	controllers            string
}

func (l *realLab) kubectl(args ...string) (string, error) {
	ctx, cancel := context.WithTimeout(context.Background(), 2*time.Minute)
	defer cancel()
	out, err := exec.CommandContext(ctx, filepath.Join(l.kit, "kubectl"), append([]string{"--kubeconfig", l.kubeconfig}, args...)...).CombinedOutput()
	return string(out), err
}

func (l *realLab) deckctl(args ...string) (string, error) {
	cmd := exec.Command("../../bin/deckctl", args...)
	cmd.Env = append(os.Environ(), "DECKHAND_CONFIG="+l.deckconfig, "DECKHAND_CONTROLLER="+l.controllers)
	out, err := cmd.CombinedOutput()
	return string(out), err
}

// onHost runs argv inside a lab host's namespaces (network, mount, UTS), as a shell on that
// host would.
func (l *realLab) onHost(node string, argv ...string) (string, error) {
	b, err := os.ReadFile(filepath.Join(l.dir, node, "holder.pid"))
	if err != nil {
		return "", err
	}
	pid := strings.TrimSpace(string(b))
	out, err := exec.Command("nsenter", append([]string{"-t", pid, "-m", "-n", "-u", "--"}, argv...)...).CombinedOutput()
	return string(out), err
}

// hostPIDs lists the processes in a lab host's cgroup tree (its services, their children and
// its pods' containers) whose command name is comm and, when args are given, whose command
// line holds each of them.
func (l *realLab) hostPIDs(node, comm string, args ...string) []int {
	var pids []int
	filepath.WalkDir("/sys/fs/cgroup/pids/"+l.prefix+"-"+node, func(p string, d os.DirEntry, err error) error {
		if err != nil || !d.IsDir() {
			return nil
		}
		b, _ := os.ReadFile(filepath.Join(p, "cgroup.procs"))
		for _, f := range strings.Fields(string(b)) {
			c, _ := os.ReadFile("/proc/" + f + "/comm")
			cmdline, _ := os.ReadFile("/proc/" + f + "/cmdline")
			argv := strings.Split(string(cmdline), "\x00")
			all := true
			for _, a := range args {
				all = all && slices.Contains(argv, a)
			}
			// The agent's facts run `kubelet --version` and `kubeadm version` now and then:
			// those are not the daemons and commands looked for.
			query := slices.Contains(argv, "--version") || slices.Contains(argv, "version")
			if strings.TrimSpace(string(c)) == comm && all && !query {
				pid, _ := strconv.Atoi(f)
				pids = append(pids, pid)
			}
		}
		return nil
	})
	return pids
}

// TestRealLabLocal runs the real lab with a local proxy on every node (spec.loadBalancer type
// local, deploy/lab/cluster-local.yaml): every node's haproxy on 127.0.0.1:7443 forwards to
// the control planes; node-4 joining as a second control plane updates every node's list;
// with node-1's API server and kubelet SIGKILLed, the workers' kubelets still reach an API
// server through their own proxy.
func TestRealLabLocal(t *testing.T) {
	// node-3 is on another L3 segment, behind a router: flannel's VXLAN needs no shared L2.
	l, _, env := startLab(t, "local", "DECKHAND_LAB_CLUSTER=deploy/lab/cluster-local.yaml", "DECKHAND_LAB_ROUTED=node-3")
	nodes := []string{"node-1", "node-2", "node-3", "node-4"}
	// flannel carries the pods' traffic (the pod to pod check above crossed nodes): its
	// VXLAN device and lease on every node, and no route of Deckhand's bridge provider.
	flannel := func(n string) error {
		subnet, err := l.onHost(n, "cat", "/run/flannel/subnet.env")
		if err != nil || !strings.Contains(subnet, "FLANNEL_MTU=1450") {
			return fmt.Errorf("%s: flannel's subnet.env: %v %q", n, err, subnet)
		}
		if out, err := l.onHost(n, "ip", "-d", "link", "show", "flannel.1"); err != nil || !strings.Contains(out, "vxlan id 1") {
			return fmt.Errorf("%s: no flannel.1 VXLAN device: %v %s", n, err, out)
		}
		if out, _ := l.onHost(n, "ip", "route", "show", "proto", "221"); strings.TrimSpace(out) != "" {
			return fmt.Errorf("%s: routes of the bridge provider under flannel:\n%s", n, out)
		}
		return nil
	}
	for _, n := range nodes {
		if err := flannel(n); err != nil {
			t.Fatal(err)
		}
	}
	// Ready by flanneld's /readyz probe (every 10 s), which trails its subnet.env a little.
	testcluster.WaitFor(t, time.Minute, func() error {
		// The pod to pod check above went from node-2 to node-3: two segments, one router apart.
		if out, err := l.kubectl("get", "node", "node-3", "-o", "jsonpath={.status.addresses[?(@.type==\"InternalIP\")].address}"); err != nil || out != l.net+".153" {
			t.Fatalf("node-3's InternalIP: %v %q, want %s.153 on the second segment", err, out, l.net)
		}
		if out, err := l.onHost("node-3", "ip", "route", "get", l.net+".22"); err != nil || !strings.Contains(out, "via "+l.net+".129") {
			t.Fatalf("node-3 reaches node-2 %v %q, want through the router %s.129", err, out, l.net)
		}
		if out, err := l.kubectl("-n", "kube-flannel", "get", "daemonset", "kube-flannel-ds", "-o", "jsonpath={.status.numberReady}/{.status.desiredNumberScheduled}"); err != nil || out != "4/4" {
			return fmt.Errorf("flannel's DaemonSet: %v %q, want 4/4 ready", err, out)
		}
		return nil
	})
	proxies := func(want int) error {
		for _, n := range nodes {
			cfg, err := l.onHost(n, "cat", "/etc/haproxy/haproxy.cfg")
			if err != nil || !strings.Contains(cfg, "bind 127.0.0.1:7443\n") ||
				len(regexp.MustCompile(`(?m)^    server api-\d `+regexp.QuoteMeta(l.net)+`\.2\d:6443$`).FindAllString(cfg, -1)) != want {
				return fmt.Errorf("%s's haproxy does not forward from 127.0.0.1:7443 to %d API server(s) (%v):\n%s", n, want, err, cfg)
			}
		}
		return nil
	}
	if err := proxies(1); err != nil {
		t.Fatal(err)
	}
	for _, args := range [][]string{{"reset", "node-4", "--timeout", "5m"}, {"join", "node-4", "--control-plane", "--timeout", "10m"}} {
		if out, err := l.deckctl(args...); err != nil {
			t.Fatalf("deckctl %v: %v\n%s", args, err, out)
		}
	}
	if err := proxies(2); err != nil {
		t.Fatalf("after node-4 joined as a control plane: %v", err)
	}
	if err := flannel("node-4"); err != nil {
		t.Fatalf("after node-4 was reset and joined again: %v", err)
	}

	// node-1's API server and kubelet die: a worker's kubelet credentials still reach an API
	// server through its own proxy (haproxy there checks /readyz every second).
	var killed []int
	for _, comm := range []string{"kubelet", "kube-apiserver"} {
		killed = append(killed, l.hostPIDs("node-1", comm)...)
	}
	if len(killed) != 2 {
		t.Fatalf("node-1's kubelet and API server: %v", killed)
	}
	start := time.Now()
	for _, pid := range killed {
		_ = syscall.Kill(pid, syscall.SIGKILL)
	}
	for _, w := range []string{"node-2", "node-3"} {
		testcluster.WaitFor(t, time.Minute, func() error {
			out, err := l.onHost(w, "kubectl", "--kubeconfig", "/etc/kubernetes/kubelet.conf", "--request-timeout", "2s", "get", "--raw", "/readyz")
			if err != nil || strings.TrimSpace(out) != "ok" {
				return fmt.Errorf("%s's kubelet credentials through 127.0.0.1:7443: %v %s", w, err, out)
			}
			return nil
		})
	}
	t.Logf("local proxies: the workers reached an API server through their own proxy %v after node-1's API server and kubelet were SIGKILLed",
		time.Since(start).Round(10*time.Millisecond))

	stopLab(t, l, env)
}

// startLab runs `make lab` as a newcomer would, with its state in a directory of this test
// (named by name) and env, takes it down when the test ends if the test did not, and checks
// that the lab's pod network and DNS checks passed. It returns the lab, make lab's output
// and the environment lab-down takes.
func startLab(t *testing.T, name string, env ...string) (*realLab, string, []string) {
	t.Helper()
	if os.Getuid() != 0 {
		t.Fatal("the real lab needs root (network and mount namespaces, cgroups): run the tests as root, as .ci/run does")
	}
	dir := filepath.Join(os.TempDir(), fmt.Sprintf("dh-lab-%s-%d", name, os.Getpid()))
	env = append([]string{"DECKHAND_LAB_DIR=" + dir}, env...)
	prefix := ""
	t.Cleanup(func() {
		if len(leftovers(dir, prefix)) > 0 {
			cmd := exec.Command("../../scripts/lab-down.sh")
			cmd.Env = append(os.Environ(), env...) // only the lab this test started
			_ = cmd.Run()
		}
	})
	out := run(t, 30*time.Minute, env, "make", "lab")
	l := loadLab(t, dir)
	prefix = l.prefix
	for _, want := range []string{"pod to pod: passed", "DNS: passed"} {
		if !strings.Contains(out, want) {
			t.Fatalf("make lab's output lacks %q:\n%s", want, out)
		}
	}
	return l, out, env
}

// stopLab runs `make lab-down` and checks that nothing of the lab is left.
func stopLab(t *testing.T, l *realLab, env []string) {
	t.Helper()
	run(t, 3*time.Minute, env, "make", "lab-down")
	if left := leftovers(l.dir, l.prefix); len(left) > 0 {
		t.Fatalf("make lab-down left:\n%s", strings.Join(left, "\n"))
	}
}

// vip is the lab's virtual IP (deploy/lab/cluster.yaml's loadBalancer.address) and the
// port its load balancer listens on.
func (l *realLab) vip() string { return l.net + ".100" }

// apiOnVIP asks the API server's /readyz through the virtual IP, as a client of the
// cluster's endpoint does (anonymous, which kubeadm's clusters allow for /readyz).
func (l *realLab) apiOnVIP() error {
	c := &http.Client{Timeout: time.Second, Transport: &http.Transport{TLSClientConfig: &tls.Config{InsecureSkipVerify: true}, DisableKeepAlives: true}}
	resp, err := c.Get("https://" + l.vip() + ":8443/readyz")
	if err != nil {
		return err
	}
	defer resp.Body.Close()
	if resp.StatusCode != http.StatusOK {
		return fmt.Errorf("/readyz through the VIP: %s", resp.Status)
	}
	return nil
}

// vipHolder is the control plane holding the virtual IP ("" when none does).
func (l *realLab) vipHolder(nodes []string) string {
	for _, n := range nodes {
		if out, err := l.onHost(n, "ip", "-4", "-o", "addr", "show"); err == nil && strings.Contains(out, " "+l.vip()+"/32 ") {
			return n
		}
	}
	return ""
}

// virtualIPFailover checks Deckhand's load balancer with three control planes (node-1,
// node-2, node-4) and a worker (node-3): every control plane's haproxy forwards to all three
// API servers (node-4's join updated the others); with the API server and kubelet of the
// node holding the VIP SIGKILLed, the API answers on the VIP again within seconds; with that
// node's link down, the VIP moves to another control plane; node-3 stays Ready.
func (l *realLab) virtualIPFailover() {
	t := l.t
	cps := []string{"node-1", "node-2", "node-4"}
	for _, n := range cps {
		cfg, err := l.onHost(n, "cat", "/etc/haproxy/haproxy.cfg")
		if err != nil || len(regexp.MustCompile(`(?m)^    server api-\d `+regexp.QuoteMeta(l.net)+`\.2\d:6443$`).FindAllString(cfg, -1)) != 3 {
			t.Fatalf("%s's haproxy does not forward to the three API servers (%v):\n%s", n, err, cfg)
		}
	}
	if err := l.apiOnVIP(); err != nil {
		t.Fatalf("the API through the VIP: %v", err)
	}
	holder := l.vipHolder(cps)
	if holder == "" {
		t.Fatalf("no control plane holds the VIP %s", l.vip())
	}

	// The API server and the kubelet of the holder die: haproxy there checks /readyz every
	// second and sends new connections to the other two.
	var killed []int
	for _, comm := range []string{"kubelet", "kube-apiserver"} {
		killed = append(killed, l.hostPIDs(holder, comm)...)
	}
	if len(killed) != 2 {
		t.Fatalf("%s's kubelet and API server: %v", holder, killed)
	}
	start := time.Now()
	for _, pid := range killed {
		_ = syscall.Kill(pid, syscall.SIGKILL)
	}
	testcluster.WaitFor(t, time.Minute, func() error {
		if len(l.hostPIDs(holder, "kube-apiserver")) > 0 && time.Since(start) < 2*time.Second {
			return fmt.Errorf("the API server was not killed yet")
		}
		return l.apiOnVIP()
	})
	afterKill := time.Since(start)

	// The holder's link goes down: VRRP moves the address to another control plane.
	out, err := l.onHost(holder, "ip", "-4", "-o", "addr", "show", "to", l.vip()+"/32")
	iface := strings.TrimSuffix(strings.Fields(out + " x x")[1], ":")
	if err != nil || iface == "" || iface == "x" {
		t.Fatalf("%s's interface with the VIP: %v %q", holder, err, out)
	}
	start = time.Now()
	if out, err := l.onHost(holder, "ip", "link", "set", "dev", iface, "down"); err != nil {
		t.Fatalf("link down on %s: %v %s", holder, err, out)
	}
	var moved string
	testcluster.WaitFor(t, time.Minute, func() error {
		if moved = l.vipHolder(slices.DeleteFunc(slices.Clone(cps), func(n string) bool { return n == holder })); moved == "" {
			return fmt.Errorf("no other control plane holds the VIP yet")
		}
		return l.apiOnVIP()
	})
	afterLinkDown := time.Since(start)
	if out, err := l.onHost(holder, "ip", "link", "set", "dev", iface, "up"); err != nil {
		t.Fatalf("link up on %s: %v %s", holder, err, out)
	}
	t.Logf("VIP %s:8443 on %s: the API answered through it again %v after its API server and kubelet were SIGKILLed, and %v after its link went down (the VIP moved to %s)",
		l.vip(), holder, afterKill.Round(10*time.Millisecond), afterLinkDown.Round(10*time.Millisecond), moved)
	// The kubelet came back by its unit (Restart=always) and started the API server's static
	// pod again; the worker never stopped being Ready.
	testcluster.WaitFor(t, 3*time.Minute, func() error { return l.nodeReady(holder) })
	testcluster.WaitFor(t, 3*time.Minute, func() error {
		if len(l.hostPIDs(holder, "kube-apiserver")) != 1 {
			return fmt.Errorf("%s's API server is not running again", holder)
		}
		return nil
	})
	if err := l.nodeReady("node-3"); err != nil {
		t.Fatalf("the worker after the failovers: %v", err)
	}
	// The holder's control plane serves again in full before the test goes on: its kubelet
	// lets the API servers in (kubectl exec, which the reset's etcd check uses), which takes
	// its own API server and etcd member back in step with the others.
	start = time.Now()
	testcluster.WaitFor(t, 3*time.Minute, func() error {
		out, err := l.kubectl("-n", "kube-system", "exec", "etcd-"+holder, "-c", "etcd", "--", "etcdctl", "version")
		if err != nil {
			return fmt.Errorf("kubectl exec into %s's etcd: %v %s", holder, err, out)
		}
		return nil
	})
	t.Logf("%s's control plane took exec requests again %v after its link came back", holder, time.Since(start).Round(100*time.Millisecond))
}

func (l *realLab) nodeReady(name string) error {
	out, err := l.kubectl("get", "node", name, "-o", `jsonpath={.status.conditions[?(@.type=="Ready")].status}`)
	if err != nil {
		return fmt.Errorf("%v: %s", err, out)
	}
	if out != "True" {
		return fmt.Errorf("node %s Ready=%q", name, out)
	}
	return nil
}

// loadLab reads what a running real lab in dir chose (its lab.env).
func loadLab(t testing.TB, dir string) *realLab {
	t.Helper()
	b, err := os.ReadFile(filepath.Join(dir, "lab.env"))
	if err != nil {
		t.Fatal(err)
	}
	l := &realLab{t: t, dir: dir, kubeconfig: filepath.Join(dir, "kubeconfig"), deckconfig: filepath.Join(dir, "ctl-0", "admin.conf")}
	for _, f := range strings.Fields(string(b)) {
		k, v, _ := strings.Cut(f, "=")
		switch k {
		case "prefix":
			l.prefix = v
		case "kit":
			l.kit = v
		case "net":
			l.net = v
		}
	}
	l.controllers = fmt.Sprintf("%s.11:7400,%s.12:7400,%s.13:7400", l.net, l.net, l.net)
	return l
}

// etcdMembers lists the cluster's etcd members by name, asked from node-1's etcd with the
// cluster's own health-check client certificate.
func (l *realLab) etcdMembers() []string {
	l.t.Helper()
	pki := filepath.Join(l.dir, "node-1", "fs", "etc", "kubernetes", "pki", "etcd")
	cert, err := tls.LoadX509KeyPair(filepath.Join(pki, "healthcheck-client.crt"), filepath.Join(pki, "healthcheck-client.key"))
	if err != nil {
		l.t.Fatal(err)
	}
	caPEM, err := os.ReadFile(filepath.Join(pki, "ca.crt"))
	if err != nil {
		l.t.Fatal(err)
	}
	roots := x509.NewCertPool()
	roots.AppendCertsFromPEM(caPEM)
	c, err := clientv3.New(clientv3.Config{
		Endpoints: []string{"https://" + l.net + ".21:2379"}, DialTimeout: 10 * time.Second,
		TLS: &tls.Config{Certificates: []tls.Certificate{cert}, RootCAs: roots},
	})
	if err != nil {
		l.t.Fatal(err)
	}
	defer c.Close()
	ctx, cancel := context.WithTimeout(context.Background(), 20*time.Second)
	defer cancel()
	resp, err := c.MemberList(ctx)
	if err != nil {
		l.t.Fatalf("etcd member list: %v", err)
	}
	var names []string
	for _, m := range resp.Members {
		names = append(names, m.Name)
	}
	slices.Sort(names)
	return names
}

// waitWorkflow waits until workflow id ends and returns its state (WORKFLOW_STATE_...).
func (l *realLab) waitWorkflow(id string, timeout time.Duration) string {
	l.t.Helper()
	var state string
	testcluster.WaitFor(l.t, timeout, func() error {
		out, err := l.deckctl("workflow", "describe", id, "-o", "json")
		if err != nil {
			return fmt.Errorf("%v %s", err, out)
		}
		var v struct {
			Workflow struct{ State string } `json:"workflow"`
		}
		if err := json.Unmarshal([]byte(out), &v); err != nil {
			return err
		}
		state = v.Workflow.State
		if state == "WORKFLOW_STATE_RUNNING" || state == "WORKFLOW_STATE_PENDING" || state == "" {
			return fmt.Errorf("workflow %s is %s", id, state)
		}
		return nil
	})
	return state
}

// bootstrapCSRs counts the kubelet certificate requests made with a bootstrap token since
// since: every kubeadm join that got as far as the kubelet's TLS bootstrap makes one.
func (l *realLab) bootstrapCSRs(since time.Time) int {
	l.t.Helper()
	csrs, err := l.kubectl("get", "csr", "-o", `jsonpath={range .items[*]}{.metadata.creationTimestamp} {.spec.username}{"\n"}{end}`)
	if err != nil {
		l.t.Fatal(err, csrs)
	}
	n := 0
	for _, line := range strings.Split(strings.TrimSpace(csrs), "\n") {
		ts, user, _ := strings.Cut(line, " ")
		at, err := time.Parse(time.RFC3339, ts)
		if err == nil && !at.Before(since.Truncate(time.Second)) && strings.HasPrefix(user, "system:bootstrap:") {
			n++
		}
	}
	return n
}

// podAddress runs a probe pod pinned to node and returns its address after checking it is
// in the node's pod CIDR; the pod is deleted again.
func (l *realLab) podAddress(node, name string) string {
	l.t.Helper()
	image := l.net + ".1:5000/deckhand-probe:v1"
	if out, err := l.kubectl("run", name, "--image="+image, "--restart=Never", `--overrides={"spec":{"nodeName":"`+node+`"}}`, "--", "serve", ":8080"); err != nil {
		l.t.Fatalf("kubectl run %s on %s: %v\n%s", name, node, err, out)
	}
	defer l.kubectl("delete", "pod", name, "--timeout=60s")
	if out, err := l.kubectl("wait", "--for=condition=Ready", "pod/"+name, "--timeout=180s"); err != nil {
		desc, _ := l.kubectl("describe", "pod", name)
		l.t.Fatalf("pod %s on %s is not Ready: %v %s\n%s", name, node, err, out, desc)
	}
	ip, err := l.kubectl("get", "pod", name, "-o", "jsonpath={.status.podIP}")
	if err != nil {
		l.t.Fatal(err, ip)
	}
	cidr, err := l.kubectl("get", "node", node, "-o", "jsonpath={.spec.podCIDR}")
	if err != nil {
		l.t.Fatal(err, cidr)
	}
	pfx, perr := netip.ParsePrefix(cidr)
	addr, aerr := netip.ParseAddr(ip)
	if perr != nil || aerr != nil || !pfx.Contains(addr) {
		l.t.Fatalf("pod %s on %s has address %q, not in the node's pod CIDR %q", name, node, ip, cidr)
	}
	return ip
}

// watchTokens records every bootstrap token the cluster holds from now on (kubeadm token
// create writes each as a Secret in kube-system), until stop is called.
func (l *realLab) watchTokens() (tokens func() []string, stop func()) {
	ctx, cancel := context.WithCancel(context.Background())
	cmd := exec.CommandContext(ctx, filepath.Join(l.kit, "kubectl"), "--kubeconfig", l.kubeconfig, "-n", "kube-system", "get", "secrets",
		"--field-selector", "type=bootstrap.kubernetes.io/token", "--watch", "-o", "json")
	out, err := cmd.StdoutPipe()
	if err != nil {
		l.t.Fatal(err)
	}
	if err := cmd.Start(); err != nil {
		l.t.Fatal(err)
	}
	var mu sync.Mutex
	var seen []string
	done := make(chan struct{})
	go func() {
		defer close(done)
		dec := json.NewDecoder(out)
		for {
			var v struct {
				Items []struct {
					Data map[string][]byte `json:"data"`
				} `json:"items"`
				Data map[string][]byte `json:"data"`
			}
			if dec.Decode(&v) != nil {
				return
			}
			datas := []map[string][]byte{v.Data}
			for _, it := range v.Items {
				datas = append(datas, it.Data)
			}
			mu.Lock()
			for _, d := range datas {
				if len(d["token-id"]) > 0 {
					seen = append(seen, string(d["token-id"])+"."+string(d["token-secret"]))
				}
			}
			mu.Unlock()
		}
	}()
	return func() []string {
			mu.Lock()
			defer mu.Unlock()
			return slices.Clone(seen)
		}, func() {
			cancel()
			_ = cmd.Wait()
			<-done
		}
}

var (
	// bootstrapTokenRE is a kubeadm bootstrap token; certificateKeyRE a kubeadm certificate
	// key (64 hex digits) as kubeadm prints it (alone on a line, after --certificate-key) or
	// a program names it (certificate_key, certificateKey): container, sandbox and image IDs
	// are 64 hex digits too, and fill containerd's and the kubelet's logs.
	bootstrapTokenRE = regexp.MustCompile(`\b[a-z0-9]{6}\.[a-z0-9]{16}\b`)
	certificateKeyRE = regexp.MustCompile(`(?im)certificate[-_ ]?key[^0-9a-f\n]{0,20}[0-9a-f]{64}\b|^[ \t]*[0-9a-f]{64}[ \t]*$`)
)

// secretsIn names the minted secrets text shows: a bootstrap token or certificate key of
// any origin, or one of the tokens known.
func secretsIn(text string, known []string) []string {
	var found []string
	for _, k := range known {
		if strings.Contains(text, k) {
			found = append(found, "token "+k[:6]+".…")
		}
	}
	for _, m := range bootstrapTokenRE.FindAllString(text, -1) {
		found = append(found, "a bootstrap token "+m[:6]+".…")
	}
	for _, m := range certificateKeyRE.FindAllString(text, -1) {
		m = strings.TrimSpace(m)
		found = append(found, "a certificate key "+m[len(m)-64:][:8]+"…")
	}
	return found
}

// viewerReadable is every record a viewer reads through deckctl (workflows with their steps
// and logs, tasks with their logs, nodes, the cluster) and every log the lab writes (the
// controllers', each host's services': agent, kubelet, containerd), by name.
func (l *realLab) viewerReadable() map[string]string {
	l.t.Helper()
	cred := filepath.Join(l.dir, "viewer.conf")
	if out, err := l.deckctl("credentials", "create", "--name", "secret-audit", "--role", "viewer", "--file", cred); err != nil {
		l.t.Fatalf("deckctl credentials create --role viewer: %v\n%s", err, out)
	}
	viewer := func(args ...string) string {
		cmd := exec.Command("../../bin/deckctl", args...)
		cmd.Env = append(os.Environ(), "DECKHAND_CONFIG="+cred, "DECKHAND_CONTROLLER="+l.controllers)
		out, err := cmd.CombinedOutput()
		if err != nil {
			l.t.Fatalf("deckctl %v as a viewer: %v\n%s", args, err, out)
		}
		return string(out)
	}
	texts := map[string]string{}
	add := func(args ...string) string {
		out := viewer(args...)
		texts["deckctl "+strings.Join(args, " ")] = out
		return out
	}
	add("nodes", "-o", "json")
	add("cluster", "-o", "json")
	var wfs struct {
		Workflows []struct{ ID string } `json:"workflows"`
	}
	if err := json.Unmarshal([]byte(add("workflows", "-o", "json")), &wfs); err != nil || len(wfs.Workflows) == 0 {
		l.t.Fatalf("deckctl workflows -o json: %v %v", err, wfs)
	}
	for _, w := range wfs.Workflows {
		add("workflow", "describe", w.ID, "-o", "json")
		add("logs", w.ID)
	}
	var tasks struct {
		Tasks []struct {
			Task struct{ ID string } `json:"task"`
		} `json:"tasks"`
	}
	if err := json.Unmarshal([]byte(add("task", "list", "-o", "json")), &tasks); err != nil || len(tasks.Tasks) == 0 {
		l.t.Fatalf("deckctl task list -o json: %v %v", err, tasks)
	}
	for _, tk := range tasks.Tasks {
		add("task", "get", tk.Task.ID, "-o", "json")
		add("task", "logs", tk.Task.ID)
	}
	filepath.WalkDir(l.dir, func(p string, d os.DirEntry, err error) error {
		if err != nil {
			return nil
		}
		if d.IsDir() && (d.Name() == "containerd" || d.Name() == "kubelet" || d.Name() == "pods" || d.Name() == "etcd") {
			return filepath.SkipDir
		}
		if !d.IsDir() && strings.HasSuffix(p, ".log") {
			b, _ := os.ReadFile(p)
			texts[p] = string(b)
		}
		return nil
	})
	return texts
}

// resetControlPlane resets a control plane with deckctl reset, and checks that kubeadm reset
// itself removed its etcd member: the workflow's etcd check found nothing left to remove
// (had the Node been deleted first, kubeadm could not have, and the check would have).
func (l *realLab) resetControlPlane(node string) {
	l.t.Helper()
	out, err := l.deckctl("reset", node, "--detach")
	if err != nil {
		l.t.Fatalf("deckctl reset %s: %v\n%s", node, err, out)
	}
	id := strings.TrimSpace(out)
	if st := l.waitWorkflow(id, 10*time.Minute); st != "WORKFLOW_STATE_SUCCEEDED" {
		out, _ := l.deckctl("workflow", "describe", id)
		l.t.Fatalf("the reset of the control plane %s ended %s:\n%s", node, st, out)
	}
	out, err = l.deckctl("workflow", "describe", id, "-o", "json")
	if err != nil {
		l.t.Fatal(err, out)
	}
	var v struct {
		Workflow struct {
			Steps []struct {
				Name    string            `json:"name"`
				State   string            `json:"state"`
				Outputs map[string]string `json:"outputs"`
			} `json:"steps"`
		} `json:"workflow"`
	}
	if err := json.Unmarshal([]byte(out), &v); err != nil {
		l.t.Fatal(err)
	}
	for _, st := range v.Workflow.Steps {
		if st.Name == node+"/etcd-check" {
			if st.State != "STEP_STATE_SUCCEEDED" || st.Outputs["removed"] != "" || strings.Contains(","+st.Outputs["members"]+",", ","+node+",") {
				l.t.Fatalf("the etcd check of %s's reset: %s %v (kubeadm reset should have removed the member)", node, st.State, st.Outputs)
			}
			return
		}
	}
	l.t.Fatalf("the reset of the control plane %s has no etcd-check step:\n%s", node, out)
}

func TestRealLab(t *testing.T) {
	t.Parallel() // side by side with the simulated lab of TestFaultsOnTheLab: two labs at once
	before := readSysctls()
	l, out, env := startLab(t, "test")

	// What make lab printed: the real API server's node table with 4 Ready nodes, the pod
	// network and DNS checks passed, and the way to use the cluster.
	table := out[strings.LastIndex(out, "NAME "):]
	for _, n := range []string{"node-1", "node-2", "node-3", "node-4"} {
		if !regexp.MustCompile(`(?m)^` + n + `\s+Ready\s+(control-plane|<none>)\s.*\s` + regexp.QuoteMeta(l.net) + `\.2\d\s`).MatchString(table) {
			t.Fatalf("kubectl get nodes does not show %s Ready with its lab address:\n%s", n, out)
		}
	}
	l.checkSettings()
	// The route lists went out packed (every agent reads them; node-4's join stored the
	// others' updates without their lists, filled from the cluster record as they were
	// sent) and made real routes: each node has one, owned by Deckhand, to each of the three
	// others' pods.
	for _, n := range []string{"node-1", "node-2", "node-3", "node-4"} {
		if out, err := l.deckctl("node", "describe", n); err != nil || !regexp.MustCompile(`(?m)^Agent features:\s+network\.packed-routes, network\.routes-from-record$`).MatchString(out) {
			t.Fatalf("deckctl node describe %s does not list the packed routes feature: %v\n%s", n, err, out)
		}
		if out, err := l.onHost(n, "ip", "route", "show", "proto", "221"); err != nil || len(regexp.MustCompile(`(?m)^\d+\.\d+\.\d+\.0/24 via \S+ dev `).FindAllString(out, -1)) != 3 {
			t.Fatalf("%s's pod routes (proto 221): %v\n%s, want one to each of the 3 other nodes", n, err, out)
		}
	}
	for _, want := range []string{"pod to pod: passed", "DNS: passed", "export KUBECONFIG=", "node-4/join"} {
		if !strings.Contains(out, want) {
			t.Fatalf("make lab's output lacks %q:\n%s", want, out)
		}
	}
	// deckctl audit, as make lab printed it: the apply and the join, each a workflow created
	// by the lab's admin credential over gRPC.
	audit := out[strings.LastIndex(out, "$ deckctl audit"):]
	created := regexp.MustCompile(`(?m)^\S+ \S+\s+admin \(admin\)\s+grpc\s+WorkflowService/CreateWorkflow\s+\S+\s+(\S+)\s+OK$`).FindAllStringSubmatch(audit, -1)
	if len(created) != 2 || !strings.HasPrefix(created[0][1], "node-1,") || !strings.HasPrefix(created[1][1], "node-4,") {
		t.Fatalf("deckctl audit does not list the apply (node-1 ...) and then the join (node-4) by admin:\n%s", audit)
	}

	// Every bootstrap token minted from here on, for the search at the end.
	tokens, stopTokens := l.watchTokens()
	defer stopTokens()

	// Reset node-3: drained and deleted through the control plane, the host clean.
	if out, err := l.deckctl("reset", "node-3", "--timeout", "5m"); err != nil {
		t.Fatalf("deckctl reset node-3: %v\n%s", err, out)
	}
	if out, err := l.kubectl("get", "node", "node-3"); err == nil || !strings.Contains(out, "NotFound") {
		t.Fatalf("node-3 is still in the API after the reset: %v %s", err, out)
	}
	if out, _ := l.onHost("node-3", "systemctl", "is-active", "kubelet"); strings.TrimSpace(out) != "inactive" {
		errorf(t, "node-3's kubelet service after the reset: %q, want inactive", out)
	}
	for _, comm := range []string{"kubelet", "kube-proxy", "pause", "containerd-shim"} {
		if p := l.hostPIDs("node-3", comm); len(p) > 0 {
			errorf(t, "node-3 still runs %s after the reset: pids %v", comm, p)
		}
	}
	if out, err := l.onHost("node-3", "ctr", "-n", "k8s.io", "containers", "list", "-q"); err != nil || strings.TrimSpace(out) != "" {
		errorf(t, "node-3's containers after the reset: %v %q", err, out)
	}
	if out, err := l.onHost("node-3", "ls", "-A", "/etc/kubernetes"); err == nil && strings.TrimSpace(out) != "" {
		errorf(t, "node-3 still has /etc/kubernetes after the reset: %s", out)
	}
	if out, err := l.onHost("node-3", "ip", "link", "show", "cni0"); err == nil {
		errorf(t, "node-3 still has the cni0 link after the reset: %s", out)
	}
	if out, err := l.onHost("node-3", "iptables-save"); err != nil || regexp.MustCompile(`(?m)^[:-]A? ?(KUBE-|CNI-)`).MatchString(out) || strings.Contains(out, `"deckhand pod network"`) {
		errorf(t, "node-3's netns still has KUBE-/CNI- chains or Deckhand's NAT rule after the reset (%v):\n%s", err, out)
	}

	// Join node-3 again, and make the join fail half way: the API server refuses the
	// bootstrap token's look-up of the Node (kubeadm's kubelet-start phase), after kubeadm
	// wrote pki/ca.crt, so every later kubeadm join's preflight would refuse the node. Heal,
	// retry the workflow: the half-done node is reset with one log line and joins, once.
	binding, err := l.kubectl("get", "clusterrolebinding", "kubeadm:get-nodes", "-o", "jsonpath={.roleRef.name} {.subjects[*].kind}/{.subjects[*].name}")
	if err != nil || binding != "kubeadm:get-nodes Group/system:bootstrappers:kubeadm:default-node-token" {
		t.Fatalf("kubeadm's get-nodes binding for joining nodes: %v %q", err, binding)
	}
	if out, err := l.kubectl("delete", "clusterrolebinding", "kubeadm:get-nodes"); err != nil {
		t.Fatal(err, out)
	}
	since := time.Now()
	idOut, err := l.deckctl("join", "node-3", "--detach")
	if err != nil {
		t.Fatalf("deckctl join node-3: %v %s", err, idOut)
	}
	id := strings.TrimSpace(idOut)
	if st := l.waitWorkflow(id, 10*time.Minute); st != "WORKFLOW_STATE_FAILED" {
		t.Fatalf("the join of node-3 without kubeadm:get-nodes ended %s, want failed", st)
	}
	if out, err := l.onHost("node-3", "test", "-e", "/etc/kubernetes/pki/ca.crt"); err != nil {
		t.Fatalf("the failed join did not leave node-3 half done (no pki/ca.crt): %v %s", err, out)
	}
	if out, err := l.kubectl("create", "clusterrolebinding", "kubeadm:get-nodes", "--clusterrole=kubeadm:get-nodes", "--group=system:bootstrappers:kubeadm:default-node-token"); err != nil {
		t.Fatal(err, out)
	}
	if out, err := l.deckctl("workflow", "retry", id); err != nil {
		t.Fatalf("deckctl workflow retry %s: %v\n%s", id, err, out)
	}
	if st := l.waitWorkflow(id, 10*time.Minute); st != "WORKFLOW_STATE_SUCCEEDED" {
		out, _ := l.deckctl("logs", id)
		t.Fatalf("the retried join of node-3 ended %s:\n%s", st, out)
	}
	logs, err := l.deckctl("logs", id, "--node", "node-3")
	if err != nil || !strings.Contains(logs, "half way through an earlier kubeadm join") {
		t.Fatalf("the retried join's log does not say it reset the half-done node (%v):\n%s", err, logs)
	}
	testcluster.WaitFor(t, 3*time.Minute, func() error { return l.nodeReady("node-3") })
	if n := l.bootstrapCSRs(since); n != 1 {
		t.Fatalf("node-3 bootstrapped its kubelet %d times since the join started, want once", n)
	}
	// The pod network after a reset and a join: a pod on node-3 gets an address.
	l.podAddress("node-3", "probe-rejoin-1")

	// Reset node-3 and join it again, SIGKILLing its agent while the real kubeadm join
	// runs: the agent's unit restarts it (Restart=on-failure), it waits for the orphaned
	// kubeadm and the node joins, once; its pods get addresses again.
	if out, err := l.deckctl("reset", "node-3", "--timeout", "5m"); err != nil {
		t.Fatalf("deckctl reset node-3 (second time): %v\n%s", err, out)
	}
	since = time.Now()
	if idOut, err = l.deckctl("join", "node-3", "--detach"); err != nil {
		t.Fatalf("deckctl join node-3: %v %s", err, idOut)
	}
	id = strings.TrimSpace(idOut)
	testcluster.WaitFor(t, 10*time.Minute, func() error {
		if len(l.hostPIDs("node-3", "kubeadm", "join")) == 0 {
			return fmt.Errorf("kubeadm join has not started on node-3")
		}
		return nil
	})
	agents := l.hostPIDs("node-3", "deckhand-agent")
	if len(agents) != 1 {
		t.Fatalf("node-3's agent processes: %v", agents)
	}
	_ = syscall.Kill(agents[0], syscall.SIGKILL)
	if st := l.waitWorkflow(id, 10*time.Minute); st != "WORKFLOW_STATE_SUCCEEDED" {
		out, _ := l.deckctl("workflow", "describe", id)
		t.Fatalf("the join of node-3 ended %s after its agent was killed:\n%s", st, out)
	}
	if restarted := l.hostPIDs("node-3", "deckhand-agent"); len(restarted) != 1 || restarted[0] == agents[0] {
		t.Fatalf("node-3's agent was not restarted: %v (killed %d)", restarted, agents[0])
	}
	testcluster.WaitFor(t, 3*time.Minute, func() error { return l.nodeReady("node-3") })
	// Once: every kubeadm join bootstraps the kubelet with one certificate signing request.
	if n := l.bootstrapCSRs(since); n != 1 {
		t.Fatalf("kubeadm join bootstrapped %d kubelets since the rejoin started, want 1", n)
	}
	l.podAddress("node-3", "probe-rejoin-2")

	// Three control planes with stacked etcd behind the lab's controlPlaneEndpoint: node-2
	// and node-4 leave as workers and join again as control planes; then resetting one
	// control plane removes its etcd member and the cluster keeps answering.
	for _, n := range []string{"node-2", "node-4"} {
		if out, err := l.deckctl("reset", n, "--timeout", "5m"); err != nil {
			t.Fatalf("deckctl reset %s: %v\n%s", n, err, out)
		}
		if out, err := l.deckctl("join", n, "--control-plane", "--timeout", "10m"); err != nil {
			t.Fatalf("deckctl join %s --control-plane: %v\n%s", n, err, out)
		}
	}
	if got := l.etcdMembers(); fmt.Sprint(got) != "[node-1 node-2 node-4]" {
		t.Fatalf("etcd members with three control planes: %v", got)
	}
	l.virtualIPFailover()
	l.resetControlPlane("node-4")
	if got := l.etcdMembers(); fmt.Sprint(got) != "[node-1 node-2]" {
		t.Fatalf("etcd members after resetting the control plane node-4: %v, want node-1 and node-2", got)
	}
	if out, err := l.kubectl("get", "nodes", "-o", "name"); err != nil || strings.Contains(out, "node-4") || !strings.Contains(out, "node/node-2") {
		t.Fatalf("the API server through the endpoint after the reset: %v\n%s", err, out)
	}
	testcluster.WaitFor(t, 3*time.Minute, func() error { return l.nodeReady("node-2") })
	// The second of three: had either reset left its member, etcd would now have lost its
	// quorum (1 of 3), which the etcd check would have prevented; that check found nothing to
	// remove (resetControlPlane). The last control plane still serves.
	l.resetControlPlane("node-2")
	if got := l.etcdMembers(); fmt.Sprint(got) != "[node-1]" {
		t.Fatalf("etcd members after resetting node-4 and node-2: %v, want node-1", got)
	}
	testcluster.WaitFor(t, 2*time.Minute, func() error {
		out, err := l.kubectl("get", "nodes", "-o", "name")
		if err != nil || strings.Contains(out, "node-2") || !strings.Contains(out, "node/node-1") {
			return fmt.Errorf("the API server through the endpoint after two control-plane resets: %v\n%s", err, out)
		}
		return nil
	})
	testcluster.WaitFor(t, 3*time.Minute, func() error { return l.nodeReady("node-1") })
	l.podAddress("node-3", "probe-last")

	// No secret minted on the way (bootstrap tokens, certificate keys) is in any record a
	// viewer reads or any log of the lab.
	stopTokens()
	minted := tokens()
	if len(minted) < 4 {
		t.Fatalf("saw %d bootstrap tokens minted during the test, want one per join at least: %v", len(minted), minted)
	}
	texts := l.viewerReadable()
	nlogs := 0
	for name, text := range texts {
		if strings.HasSuffix(name, ".log") {
			nlogs++
		}
		if found := secretsIn(text, minted); len(found) > 0 {
			errorf(t, "%s shows %s", name, strings.Join(found, ", "))
		}
	}
	if nlogs < 8 {
		t.Fatalf("found %d log files of the lab to search, want the controllers' and every host's services'", nlogs)
	}
	t.Logf("searched %d records and logs for %d minted tokens and any token or certificate key", len(texts), len(minted))

	// make lab-down leaves nothing, and the machine-wide sysctls are back.
	stopLab(t, l, env)
	if other, _ := os.ReadFile("/run/deckhand-lab/running"); len(other) == 0 {
		if after := readSysctls(); fmt.Sprint(after) != fmt.Sprint(before) {
			t.Fatalf("machine-wide sysctls after lab-down: %v, before the lab: %v", after, before)
		}
	}
}

// The search for minted secrets finds a token or certificate key wherever it is, and takes
// the CA pin and image digests for what they are.
func TestSecretsIn(t *testing.T) {
	key := strings.Repeat("3f", 32)
	for _, c := range []struct {
		text  string
		known []string
		want  int
	}{
		{"kubeadm join 10.250.0.1:6443 --token abcdef.0123456789abcdef", nil, 1},
		{"minted token abcdef for 10.250.0.1:6443", []string{"abcdef.0123456789abcdef"}, 0},
		{"--certificate-key " + key, nil, 1},
		{"--discovery-token-ca-cert-hash sha256:" + key + " image@sha256:" + key, nil, 0},
		{"[upload-certs] Using certificate key:\n" + key + "\n", nil, 1},
		{`{"certificate_key":"` + key + `"}`, nil, 1},
		{`level=info msg="StartContainer for \"` + key + `\" returns successfully"`, nil, 0},
		{`"RemoveContainer" containerID="` + key + `"`, nil, 0},
		{`"token":"xyz"` + " qwerty.0123456789abcdef", []string{"qwerty.0123456789abcdef"}, 2},
		{"task abcdef.ghijkl", nil, 0},
	} {
		if got := secretsIn(c.text, c.known); len(got) != c.want {
			errorf(t, "secretsIn(%q) = %v, want %d finding(s)", c.text, got, c.want)
		}
	}
}

// checkSettings checks what deploy/lab/cluster.yaml sets besides nodes and roles, as the
// cluster shows it: node-2's label and taint, and the API server's extra certificate name.
func (l *realLab) checkSettings() {
	t := l.t
	t.Helper()
	if out, err := l.kubectl("get", "node", "node-2", "-o", `jsonpath={.metadata.labels.example\.com/rack}`); err != nil || out != "r1" {
		t.Fatalf("node-2's label example.com/rack = %q (%v), want r1 from the cluster document", out, err)
	}
	out, err := l.kubectl("get", "node", "node-2", "-o", `jsonpath={range .spec.taints[*]}{.key}={.value}:{.effect}{"\n"}{end}`)
	if err != nil || !slices.Contains(strings.Fields(out), "example.com/dedicated=lab:PreferNoSchedule") {
		t.Fatalf("node-2's taints = %q (%v), want example.com/dedicated=lab:PreferNoSchedule from the cluster document", out, err)
	}
	// The certificate the API server serves (read, not verified: only its names matter).
	conn, err := tls.DialWithDialer(&net.Dialer{Timeout: 10 * time.Second}, "tcp", l.net+".21:6443", &tls.Config{InsecureSkipVerify: true})
	if err != nil {
		t.Fatalf("TLS to node-1's API server: %v", err)
	}
	defer conn.Close()
	if names := conn.ConnectionState().PeerCertificates[0].DNSNames; !slices.Contains(names, "api.lab.example") {
		t.Fatalf("the API server's certificate names %v, want api.lab.example from spec.apiServer.certSANs", names)
	}
	// The load balancer's VIP is the endpoint, so kubeadm made it a name of the certificate.
	if ips := conn.ConnectionState().PeerCertificates[0].IPAddresses; !slices.ContainsFunc(ips, func(ip net.IP) bool { return ip.String() == l.vip() }) {
		t.Fatalf("the API server's certificate's addresses %v lack the VIP %s", ips, l.vip())
	}
}

// labCNIPluginImage is the image scripts/k8skit packs as the flannel CNI plugin
// (k8skit.LabCNIPluginImage: upstream's is built from a module the Go proxy does not serve).
const labCNIPluginImage = "ghcr.io/deckhand-lab/flannel-cni-plugin:cni-plugins-v0.9.1"

// userManifest is flannel's own kube-flannel.yml (the kit's copy, from flannel's module) as a
// user of this lab adapts it: the CNI plugin image the lab has, the CNI version that plugin
// speaks, and the cluster's interface (the lab hosts' default route is on another link). Its
// plugin goes to /opt/cni/bin as upstream's does: Deckhand's runtime step makes that
// containerd's plugin directory, Debian's plugins linked in. Every edit must apply.
func userManifest(t *testing.T, kit string) []byte {
	t.Helper()
	b, err := os.ReadFile(filepath.Join(kit, "kube-flannel.yml"))
	if err != nil {
		t.Fatalf("the kit's kube-flannel.yml (scripts/k8s.sh copies it from flannel's module): %v", err)
	}
	m := string(b)
	for _, e := range []struct{ re, with string }{
		{`ghcr\.io/flannel-io/flannel-cni-plugin:[^\s"']+`, labCNIPluginImage},
		{`"cniVersion": "1\.0\.0"`, `"cniVersion": "0.4.0"`},
		{`(?m)^(\s*)- --kube-subnet-mgr$`, "$1- --kube-subnet-mgr\n$1- --iface=eth0"},
	} {
		re := regexp.MustCompile(e.re)
		if !re.MatchString(m) {
			t.Fatalf("flannel's manifest has no %s any more: update userManifest", e.re)
		}
		m = re.ReplaceAllString(m, e.with)
	}
	return []byte(m)
}

// TestRealLabManifest builds a cluster whose pod network is a manifest of the user's
// (spec.network.provider: manifest): flannel's own kube-flannel.yml, served over HTTP, pinned
// by SHA-256, its images rewritten through the lab registry. Pods reach each other across
// nodes and resolve names; the CNI configuration on every node is the manifest's.
func TestRealLabManifest(t *testing.T) {
	// scripts/k8s.sh prints the kit's directory last (its progress, if it builds, before).
	lines := strings.Split(strings.TrimSpace(run(t, 30*time.Minute, nil, "scripts/k8s.sh")), "\n")
	kit := lines[len(lines)-1]
	files := t.TempDir()
	manifest := userManifest(t, kit)
	if err := os.WriteFile(filepath.Join(files, "kube-flannel.yml"), manifest, 0o644); err != nil {
		t.Fatal(err)
	}
	sum := sha256.Sum256(manifest)
	base, err := os.ReadFile("cluster-local.yaml")
	if err != nil {
		t.Fatal(err)
	}
	doc := strings.Replace(string(base), "  loadBalancer: {type: local}\n", "", 1)
	network := fmt.Sprintf(`  network:
    provider: manifest
    manifest:
      location: http://10.250.0.1:5000/files/kube-flannel.yml
      sha256: %s
      images: [ghcr.io/flannel-io/flannel:%s, %s]
      ports: [8472/udp]
`, hex.EncodeToString(sum[:]), podnet.FlannelVersion, labCNIPluginImage)
	re := regexp.MustCompile(`(?m)^  network:\n(    .*\n)+`)
	if !re.MatchString(doc) {
		t.Fatal("cluster-local.yaml has no network section to replace")
	}
	doc = re.ReplaceAllLiteralString(doc, network)
	clusterFile := filepath.Join(t.TempDir(), "cluster.yaml")
	if err := os.WriteFile(clusterFile, []byte(doc), 0o644); err != nil {
		t.Fatal(err)
	}

	l, _, env := startLab(t, "manifest", "DECKHAND_LAB_CLUSTER="+clusterFile, "DECKHAND_LAB_FILES="+files)
	for _, n := range []string{"node-1", "node-2", "node-3", "node-4"} {
		if out, err := l.onHost(n, "cat", "/etc/cni/net.d/10-flannel.conflist"); err != nil || !strings.Contains(out, `"type": "flannel"`) {
			errorf(t, "%s: the manifest's CNI configuration: %v %s", n, err, out)
		}
		if _, err := l.onHost(n, "test", "-e", "/etc/cni/net.d/10-deckhand-bridge.conflist"); err == nil {
			errorf(t, "%s: Deckhand wrote its own CNI configuration beside the manifest's", n)
		}
		if _, err := l.onHost(n, "test", "-x", "/opt/cni/bin/flannel"); err != nil {
			errorf(t, "%s: the manifest's init container did not install the flannel CNI plugin: %v", n, err)
		}
	}
	images, err := l.kubectl("-n", "kube-flannel", "get", "daemonset", "kube-flannel-ds", "-o", "jsonpath={..image}")
	registry := l.net + ".1:5000/"
	for _, want := range []string{registry + "flannel-io/flannel:" + podnet.FlannelVersion, registry + "deckhand-lab/flannel-cni-plugin:cni-plugins-v0.9.1"} {
		if err != nil || !strings.Contains(images, want) {
			errorf(t, "the DaemonSet's images %q (%v) lack %s: the manifest's images were not rewritten through the cluster's repository", images, err, want)
		}
	}
	if out, err := l.onHost("node-1", "stat", "-c", "%a", "/etc/kubernetes/deckhand/manifests/network.yaml"); err != nil || strings.TrimSpace(out) != "600" {
		errorf(t, "the applied manifest is not kept 0600 on node-1: %v %s", err, out)
	}

	stopLab(t, l, env)
}
