package svc

import (
	"errors"
	"fmt"
	"io"
	"net"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"syscall"
	"testing"
	"time"
)

// realBinary links a program of this machine into the lab's root (the unit's
// executable paths are resolved under the root) or skips the test when it is missing.
func (l *lab) realBinary(p string) {
	l.t.Helper()
	if _, err := os.Stat(p); err != nil {
		l.t.Skipf("%s is not installed here: %v", p, err)
	}
	if err := os.MkdirAll(filepath.Join(l.root, filepath.Dir(p)), 0o755); err != nil {
		l.t.Fatal(err)
	}
	if err := os.Symlink(p, filepath.Join(l.root, p)); err != nil {
		l.t.Fatal(err)
	}
}

// freePort returns a TCP port on 127.0.0.1 that nothing listens on right now.
func freePort(t *testing.T) int {
	t.Helper()
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	defer ln.Close()
	return ln.Addr().(*net.TCPAddr).Port
}

// get fetches http://127.0.0.1:PORT/ and returns the body.
func get(port int) (string, error) {
	c := http.Client{Timeout: 2 * time.Second}
	resp, err := c.Get(fmt.Sprintf("http://127.0.0.1:%d/", port))
	if err != nil {
		return "", err
	}
	defer resp.Body.Close()
	b, err := io.ReadAll(resp.Body)
	return string(b), err
}

func haproxyConfig(frontends map[string]int) string {
	var b strings.Builder
	b.WriteString("global\n    maxconn 100\n\ndefaults\n    mode http\n    timeout connect 1s\n    timeout client 5s\n    timeout server 5s\n")
	for name, port := range frontends {
		fmt.Fprintf(&b, "\nfrontend %s\n    bind 127.0.0.1:%d\n    http-request return status 200 content-type text/plain string %s\n", name, port, name)
	}
	return b.String()
}

// Debian's haproxy unit, unchanged, runs the real haproxy: -Ws notifies READY=1, reload
// runs the config check and then kill -USR2 $MAINPID (the master re-executes itself and
// keeps its PID), a config that fails the check fails the reload and leaves the running
// haproxy alone, stop ends it, and SuccessExitStatus=143 decides how a master that exits
// with 143 leaves the unit.
func TestHaproxyReload(t *testing.T) {
	l := newLab(t)
	l.realBinary("/usr/sbin/haproxy")
	l.realBinary("/bin/kill")
	l.write("/lib/systemd/system/haproxy.service", testdata(t, "testdata/haproxy.service"))
	// The processes see the real filesystem: the configuration, the pid file and the
	// master socket go under the test's root, set the way an operator would, in the
	// unit's EnvironmentFile=-/etc/default/haproxy.
	cfg := filepath.Join(l.root, "etc/haproxy/haproxy.cfg")
	l.write("/etc/default/haproxy", fmt.Sprintf("CONFIG=%s\nPIDFILE=%s\nEXTRAOPTS=\"-S %s\"\n",
		cfg, filepath.Join(l.root, "run/haproxy.pid"), filepath.Join(l.root, "run/haproxy-master.sock")))
	if err := os.MkdirAll(filepath.Join(l.root, "run"), 0o755); err != nil {
		t.Fatal(err)
	}
	a, b := freePort(t), freePort(t)
	l.write("/etc/haproxy/haproxy.cfg", haproxyConfig(map[string]int{"a": a}))

	_, e := l.must(1, "reload", "haproxy")
	if e != "haproxy.service is not active, cannot reload.\n" {
		t.Errorf("reload of the stopped unit said %q", e)
	}
	if _, e, code := l.systemctl("start", "haproxy"); code != 0 {
		t.Fatalf("start: %d %s\nlog:\n%s", code, e, l.log("haproxy"))
	}
	if body, err := get(a); err != nil || body != "a" {
		t.Fatalf("frontend a after start: %q, %v\nlog:\n%s", body, err, l.log("haproxy"))
	}
	master := l.mainPID("haproxy")
	if got := mustCmdline(t, master); !strings.Contains(strings.Join(got, " "), "-S "+filepath.Join(l.root, "run/haproxy-master.sock")) {
		t.Errorf("haproxy argv %q: $EXTRAOPTS must split into -S and the socket path", got)
	}

	l.write("/etc/haproxy/haproxy.cfg", haproxyConfig(map[string]int{"a": a, "b": b}))
	l.must(0, "reload", "haproxy")
	eventually(t, 10*time.Second, func() error {
		body, err := get(b)
		if err != nil || body != "b" {
			return fmt.Errorf("frontend b after reload: %q, %v", body, err)
		}
		return nil
	})
	if body, err := get(a); err != nil || body != "a" {
		t.Errorf("frontend a after reload: %q, %v", body, err)
	}
	if pid := l.mainPID("haproxy"); pid != master || !alive(master) {
		t.Errorf("MainPID %d after reload, was %d (alive %v): the master must stay", pid, master, alive(master))
	}

	// A broken configuration: the check fails, kill is not run, haproxy keeps serving.
	l.write("/etc/haproxy/haproxy.cfg", haproxyConfig(map[string]int{"a": a})+"\nfrontend broken\n    bind 127.0.0.1:notaport\n")
	_, e = l.must(1, "reload", "haproxy")
	if !strings.HasPrefix(e, "Job for haproxy.service failed.\n") {
		t.Errorf("reload with a broken config said %q", e)
	}
	if o, _ := l.must(0, "is-active", "haproxy"); o != "active\n" {
		t.Errorf("is-active after a failed reload printed %q", o)
	}
	if body, err := get(b); err != nil || body != "b" {
		t.Errorf("frontend b after the failed reload: %q, %v", body, err)
	}
	if !strings.Contains(l.log("haproxy"), "Reload failed for HAProxy Load Balancer.") {
		t.Errorf("the log does not say the reload failed:\n%s", l.log("haproxy"))
	}

	l.write("/etc/haproxy/haproxy.cfg", haproxyConfig(map[string]int{"a": a, "b": b}))
	l.must(0, "stop", "haproxy")
	if o, _ := l.must(3, "is-active", "haproxy"); o != "inactive\n" {
		t.Errorf("is-active after stop printed %q (SuccessExitStatus=143 makes the master's exit clean)", o)
	}
	if alive(master) {
		t.Errorf("the master %d survived stop", master)
	}
	if _, err := get(a); err == nil {
		t.Errorf("frontend a still answers after stop")
	}

}

// SuccessExitStatus= (haproxy's unit says 143: its master has exited with the status of
// its last worker, 128+SIGTERM, on a stop) makes such an exit clean: a stop leaves the
// unit inactive rather than failed, and Restart=on-failure does not restart it.
func TestSuccessExitStatus(t *testing.T) {
	l := newLab(t)
	l.write("/etc/systemd/system/clean.service", "[Service]\nExecStart=/usr/local/bin/helper term-exit 143\nSuccessExitStatus=143 SIGUSR1\n")
	l.write("/etc/systemd/system/plain.service", "[Service]\nExecStart=/usr/local/bin/helper term-exit 143\n")
	l.write("/etc/systemd/system/killed.service", "[Service]\nExecStart=/usr/local/bin/helper sleep\nSuccessExitStatus=143 KILL\nRestart=on-failure\nRestartSec=10ms\n")
	for _, u := range []string{"clean", "plain", "killed"} {
		l.must(0, "start", u)
	}
	for _, u := range []string{"clean", "plain"} {
		eventually(t, 10*time.Second, func() error {
			if !strings.Contains(l.log(u), "waiting for SIGTERM") {
				return errors.New("the helper has not set up its signal handling yet")
			}
			return nil
		})
		l.must(0, "stop", u)
	}
	if o, _ := l.must(3, "is-active", "clean"); o != "inactive\n" {
		t.Errorf("is-active of the unit with SuccessExitStatus=143 after stop printed %q", o)
	}
	if o, _ := l.must(3, "is-active", "plain"); o != "failed\n" {
		t.Errorf("is-active of the unit without SuccessExitStatus after stop printed %q, want failed", o)
	}
	if res := l.prop("plain", "Result"); res != "exit-code" {
		t.Errorf("Result %s, want exit-code", res)
	}
	if !strings.Contains(l.log("plain"), "Main process exited, code=exited, status=143/n/a") {
		t.Errorf("the log does not show the exit status:\n%s", l.log("plain"))
	}
	pid := l.mainPID("killed")
	if err := syscall.Kill(pid, syscall.SIGKILL); err != nil {
		t.Fatal(err)
	}
	eventually(t, 10*time.Second, func() error {
		if st, res := l.prop("killed", "ActiveState"), l.prop("killed", "Result"); st != "inactive" || res != "success" {
			return fmt.Errorf("ActiveState %s Result %s after SIGKILL, want inactive success (no restart)", st, res)
		}
		return nil
	})
	if n := l.prop("killed", "NRestarts"); n != "0" {
		t.Errorf("NRestarts %s: a clean exit must not restart with Restart=on-failure", n)
	}
}

// Debian's keepalived unit, unchanged, with a stand-in for keepalived: the
// ConditionFileNotEmpty= on its configuration skips a start while the file is missing or
// empty, a start returns at once (the lab runs it as Type=simple: keepalived notifies
// only a PID 1 systemd), $DAEMON_ARGS="" adds no argument, and reload sends SIGHUP to
// $MAINPID.
func TestKeepalivedUnit(t *testing.T) {
	l := newLab(t)
	l.realBinary("/bin/kill")
	l.write("/lib/systemd/system/keepalived.service", testdata(t, "testdata/keepalived.service"))
	l.write("/etc/default/keepalived", "# Options to pass to keepalived\n\n# DAEMON_ARGS are appended to the keepalived command-line\nDAEMON_ARGS=\"\"\n")

	for _, text := range []string{"", "-"} { // missing, then empty
		if text == "" {
			l.write("/etc/keepalived/keepalived.conf", "")
		}
		l.must(0, "start", "keepalived")
		if o, _ := l.must(3, "is-active", "keepalived"); o != "inactive\n" {
			t.Errorf("is-active printed %q: the condition must skip the start", o)
		}
		o, _ := l.must(3, "status", "keepalived")
		if !strings.Contains(o, "ConditionFileNotEmpty=/etc/keepalived/keepalived.conf was not met") {
			t.Errorf("status does not name the unmet condition:\n%s", o)
		}
	}
	if _, e := l.must(1, "reload", "keepalived"); e != "keepalived.service is not active, cannot reload.\n" {
		t.Errorf("reload of the inactive unit said %q", e)
	}

	l.write("/etc/keepalived/keepalived.conf", "global_defs {\n    router_id lab\n}\n")
	l.must(0, "start", "keepalived")
	pid := l.mainPID("keepalived")
	if got := mustCmdline(t, pid); strings.Join(got, " ") != "/usr/sbin/keepalived --dont-fork" {
		t.Errorf("keepalived argv %q, want /usr/sbin/keepalived --dont-fork", got)
	}
	if !strings.Contains(l.log("keepalived"), "Type=notify runs as Type=simple in the lab") {
		t.Errorf("the log does not say the lab runs keepalived as Type=simple:\n%s", l.log("keepalived"))
	}
	waitLog(t, l, "keepalived", "keepalived --dont-fork")
	l.must(0, "reload", "keepalived")
	waitLog(t, l, "keepalived", "reloading configuration")
	if got := l.mainPID("keepalived"); got != pid {
		t.Errorf("MainPID %d after reload, was %d", got, pid)
	}
	l.must(0, "stop", "keepalived")
	l.must(3, "is-active", "keepalived")
}

func waitLog(t *testing.T, l *lab, unit, text string) {
	t.Helper()
	eventually(t, 10*time.Second, func() error {
		if !strings.Contains(l.log(unit), text) {
			return fmt.Errorf("%q is not in the log yet:\n%s", text, l.log(unit))
		}
		return nil
	})
}

// The real keepalived under Debian's unit, in a network namespace of its own with a veth
// pair (the manager's process stays here; the stand-in execs ip netns exec, which keeps
// the PID): the VIP comes up, a reload with a new VIP moves it and keeps the PID, a stop
// removes it.
func TestKeepalivedInNetns(t *testing.T) {
	for _, p := range []string{"/usr/sbin/keepalived", "/usr/sbin/ip"} {
		if _, err := os.Stat(p); err != nil {
			t.Skipf("%s is not installed here: %v", p, err)
		}
	}
	if os.Geteuid() != 0 {
		t.Skip("network namespaces need root")
	}
	ns := fmt.Sprintf("deckhand-svc-test-%d", os.Getpid())
	ipCmd := func(args ...string) string {
		t.Helper()
		out, err := exec.Command("/usr/sbin/ip", args...).CombinedOutput()
		if err != nil {
			t.Fatalf("ip %s: %v: %s", strings.Join(args, " "), err, out)
		}
		return string(out)
	}
	ipCmd("netns", "add", ns)
	// Registered before newLab's clean-up, so it runs after keepalived is stopped.
	t.Cleanup(func() {
		if out, err := exec.Command("/usr/sbin/ip", "netns", "del", ns).CombinedOutput(); err != nil {
			t.Errorf("ip netns del %s: %v: %s", ns, err, out)
		}
	})
	ipCmd("-n", ns, "link", "add", "a0", "type", "veth", "peer", "name", "a1")
	ipCmd("-n", ns, "addr", "add", "10.250.77.1/24", "dev", "a0")
	for _, dev := range []string{"lo", "a0", "a1"} {
		ipCmd("-n", ns, "link", "set", dev, "up")
	}
	l := newLab(t)
	l.realBinary("/bin/kill")
	l.write("/lib/systemd/system/keepalived.service", testdata(t, "testdata/keepalived.service"))
	conf := filepath.Join(l.root, "etc/keepalived/keepalived.conf")
	run := filepath.Join(l.root, "run")
	if err := os.MkdirAll(run, 0o755); err != nil {
		t.Fatal(err)
	}
	l.write("/etc/default/keepalived", fmt.Sprintf("DAEMON_ARGS=\"-f %s -p %s/keepalived.pid -r %s/vrrp.pid -c %s/checkers.pid --log-console\"\n%s=%s\n",
		conf, run, run, run, netnsEnv, ns))
	config := func(vip string) string {
		return "global_defs {\n    router_id lab\n}\nvrrp_instance VI {\n    state MASTER\n    interface a0\n    virtual_router_id 51\n" +
			"    priority 100\n    advert_int 1\n    virtual_ipaddress {\n        " + vip + "/24\n    }\n}\n"
	}
	addrs := func() string { return ipCmd("-n", ns, "-o", "addr", "show", "dev", "a0") }
	vipIs := func(want, gone string) {
		t.Helper()
		eventually(t, 30*time.Second, func() error {
			a := addrs()
			if want != "" && !strings.Contains(a, want+"/24") || gone != "" && strings.Contains(a, gone+"/24") {
				return fmt.Errorf("a0 has %s; want %q there and %q gone\nlog:\n%s", a, want, gone, l.log("keepalived"))
			}
			return nil
		})
	}
	l.write("/etc/keepalived/keepalived.conf", config("10.250.77.100"))
	l.must(0, "start", "keepalived")
	pid := l.mainPID("keepalived")
	vipIs("10.250.77.100", "")

	l.write("/etc/keepalived/keepalived.conf", config("10.250.77.101"))
	l.must(0, "reload", "keepalived")
	vipIs("10.250.77.101", "10.250.77.100")
	if got := l.mainPID("keepalived"); got != pid || !alive(pid) {
		t.Errorf("MainPID %d after reload, was %d (alive %v)", got, pid, alive(pid))
	}

	l.must(0, "stop", "keepalived")
	if o, _ := l.must(3, "is-active", "keepalived"); o != "inactive\n" {
		t.Errorf("is-active after stop printed %q", o)
	}
	vipIs("", "10.250.77.101")
}
