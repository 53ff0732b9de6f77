package svc

import (
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"reflect"
	"strconv"
	"strings"
	"sync"
	"testing"
	"time"
)

// kubeadm's sequence against the real kubelet unit and drop-in: enable, a start that
// the unit's ConditionPathExists skips, then restarts after kubeadm wrote its flags file,
// each start reading the file again.
func TestKubeletUnderKubeadm(t *testing.T) {
	l := newLab(t)
	l.write("/lib/systemd/system/kubelet.service", testdata(t, "testdata/kubelet.service"))
	l.write("/etc/systemd/system/kubelet.service.d/10-kubeadm.conf", testdata(t, "testdata/10-kubeadm.conf"))
	l.must(0, "daemon-reload")

	l.must(1, "is-enabled", "kubelet")
	_, e := l.must(0, "enable", "kubelet")
	if want := "Created symlink /etc/systemd/system/multi-user.target.wants/kubelet.service → /lib/systemd/system/kubelet.service.\n"; e != want {
		t.Errorf("enable said %q, want %q", e, want)
	}
	if o, _ := l.must(0, "is-enabled", "kubelet"); o != "enabled\n" {
		t.Errorf("is-enabled printed %q", o)
	}

	// Before kubeadm writes config.yaml the unit's condition skips the start.
	l.must(0, "start", "kubelet")
	if o, _ := l.must(3, "is-active", "kubelet"); o != "inactive\n" {
		t.Errorf("is-active printed %q, want inactive", o)
	}
	o, _ := l.must(3, "status", "kubelet")
	for _, want := range []string{"Loaded: loaded (/lib/systemd/system/kubelet.service; enabled; preset: enabled)",
		"Drop-In: /etc/systemd/system/kubelet.service.d\n             └─10-kubeadm.conf",
		"Active: inactive (dead)", "ConditionPathExists=/var/lib/kubelet/config.yaml was not met"} {
		if !strings.Contains(o, want) {
			t.Errorf("status lacks %q:\n%s", want, o)
		}
	}

	// kubeadm's kubelet-start phase: write the flags and config, restart.
	l.write("/var/lib/kubelet/config.yaml", "kind: KubeletConfiguration\n")
	l.write("/var/lib/kubelet/kubeadm-flags.env", "KUBELET_KUBEADM_ARGS=\"--container-runtime-endpoint=unix:///run/containerd/containerd.sock --node-ip=10.250.0.2\"\n")
	l.must(0, "restart", "kubelet")
	if o, _ := l.must(0, "is-active", "kubelet"); o != "active\n" {
		t.Errorf("is-active printed %q, want active", o)
	}
	first := l.mainPID("kubelet")
	base := []string{"/usr/bin/kubelet", "--bootstrap-kubeconfig=/etc/kubernetes/bootstrap-kubelet.conf",
		"--kubeconfig=/etc/kubernetes/kubelet.conf", "--config=/var/lib/kubelet/config.yaml"}
	if got, want := mustCmdline(t, first), append(append([]string{}, base...),
		"--container-runtime-endpoint=unix:///run/containerd/containerd.sock", "--node-ip=10.250.0.2"); !reflect.DeepEqual(got, want) {
		t.Errorf("kubelet argv %q, want %q", got, want)
	}
	eventually(t, 10*time.Second, func() error {
		if !strings.Contains(l.log("kubelet"), "kubelet --bootstrap-kubeconfig") {
			return errors.New("the kubelet's stdout is not in its log:\n" + l.log("kubelet"))
		}
		return nil
	})
	o, _ = l.must(0, "status", "kubelet")
	if !strings.Contains(o, "kubelet --bootstrap-kubeconfig") {
		t.Errorf("status does not show the log's last lines:\n%s", o)
	}
	if !strings.Contains(o, "Active: active (running) since ") || !strings.Contains(o, fmt.Sprintf("Main PID: %d (kubelet)", first)) {
		t.Errorf("status of the running kubelet:\n%s", o)
	}

	// kubeadm rewrites the flags (join, upgrade) and restarts: the new process has them.
	l.write("/var/lib/kubelet/kubeadm-flags.env", "KUBELET_KUBEADM_ARGS=\"--node-ip=10.250.0.3 --cgroup-root=/n1\"\n")
	l.write("/etc/default/kubelet", "KUBELET_EXTRA_ARGS=--v=2\n")
	l.must(0, "restart", "kubelet.service")
	second := l.mainPID("kubelet")
	if second == first || alive(first) {
		t.Errorf("restart left pid %d (alive %v), new pid %d", first, alive(first), second)
	}
	if got, want := mustCmdline(t, second), append(append([]string{}, base...), "--node-ip=10.250.0.3", "--cgroup-root=/n1", "--v=2"); !reflect.DeepEqual(got, want) {
		t.Errorf("kubelet argv after the flags changed %q, want %q", got, want)
	}

	l.must(0, "stop", "kubelet")
	l.must(3, "is-active", "kubelet")
	if alive(second) {
		t.Errorf("kubelet %d still runs after stop", second)
	}
}

func mustCmdline(t *testing.T, pid int) []string {
	t.Helper()
	argv, err := cmdline(pid)
	if err != nil {
		t.Fatalf("pid %d: %v", pid, err)
	}
	return argv
}

// Debian's containerd unit: Type=notify (start returns once READY=1 came), its
// ExecStartPre=-/sbin/modprobe may fail, and KillMode=process keeps the shims running
// across a restart and a stop.
func TestContainerdNotifyAndKillModeProcess(t *testing.T) {
	l := newLab(t)
	l.write("/lib/systemd/system/containerd.service", testdata(t, "testdata/containerd.service"))
	l.must(0, "start", "containerd")
	if !strings.Contains(l.log("containerd"), "containerd serving") {
		t.Errorf("start returned before containerd said READY=1; log:\n%s", l.log("containerd"))
	}
	if got := l.prop("containerd", "ActiveState"); got != "active" {
		t.Errorf("ActiveState %s after start", got)
	}
	shim := l.childPID("containerd")
	// newLab's clean-up kills every shim (one per start) once the test ends.
	first := l.mainPID("containerd")

	l.must(0, "restart", "containerd")
	if second := l.mainPID("containerd"); second == first || second == 0 {
		t.Errorf("MainPID %d after restart, was %d", second, first)
	}
	if !alive(shim) {
		t.Errorf("the shim %d died on restart; KillMode=process must spare it", shim)
	}
	l.must(0, "stop", "containerd")
	l.must(3, "is-active", "containerd")
	if !alive(shim) {
		t.Errorf("the shim %d died on stop; KillMode=process must spare it", shim)
	}
}

// KillMode=control-group (the default) stops the whole process group.
func TestStopKillsTheProcessGroup(t *testing.T) {
	l := newLab(t)
	l.write("/etc/systemd/system/spawner.service", "[Service]\nExecStart=/usr/local/bin/helper spawn\n")
	l.must(0, "start", "spawner")
	child := l.childPID("spawner")
	main := l.mainPID("spawner")
	l.must(0, "stop", "spawner")
	if alive(child) || alive(main) {
		t.Errorf("after stop: main %d alive %v, child %d alive %v", main, alive(main), child, alive(child))
	}
}

// A process that ignores SIGTERM is killed after TimeoutStopSec.
func TestStopEscalatesToSIGKILL(t *testing.T) {
	l := newLab(t)
	l.write("/etc/systemd/system/stubborn.service", "[Service]\nExecStart=/usr/local/bin/helper ignore-term\nTimeoutStopSec=300ms\n")
	l.must(0, "start", "stubborn")
	pid := l.mainPID("stubborn")
	eventually(t, 10*time.Second, func() error {
		if !strings.Contains(l.log("stubborn"), "ignoring SIGTERM") {
			return errors.New("the helper has not set up its signal handling yet")
		}
		return nil
	})
	l.must(0, "stop", "stubborn")
	if alive(pid) {
		t.Errorf("pid %d survived stop", pid)
	}
	if !strings.Contains(l.log("stubborn"), "State 'stop-sigterm' timed out. Killing.") {
		t.Errorf("the log does not say the stop timed out:\n%s", l.log("stubborn"))
	}
}

// Restart=always restarts a process that exits; stop ends it for good.
func TestRestartAlways(t *testing.T) {
	l := newLab(t)
	marker := filepath.Join(l.root, "failed-once")
	l.write("/etc/systemd/system/flaky.service", "[Service]\nExecStart=/usr/local/bin/helper exit-once "+marker+" 1\nRestart=always\nRestartSec=50ms\n")
	l.must(0, "start", "flaky")
	eventually(t, 10*time.Second, func() error {
		if n, st := l.prop("flaky", "NRestarts"), l.prop("flaky", "ActiveState"); n != "1" || st != "active" {
			return fmt.Errorf("NRestarts %s, ActiveState %s; want 1, active", n, st)
		}
		return nil
	})
	pid := l.mainPID("flaky")
	if !alive(pid) {
		t.Fatalf("MainPID %d is not alive", pid)
	}
	l.must(0, "stop", "flaky")
	if alive(pid) {
		t.Errorf("pid %d survived stop", pid)
	}
	// Nothing brings it back: the state stays inactive for many restart delays.
	deadline := time.Now().Add(500 * time.Millisecond)
	for time.Now().Before(deadline) {
		if st := l.prop("flaky", "ActiveState"); st != "inactive" {
			t.Fatalf("ActiveState %s after stop", st)
		}
	}
}

// Restart=always with systemd's default start limit: 5 starts in 10 s, then failed.
// StartLimitIntervalSec=0 (the kubelet's unit) lifts the limit.
func TestStartLimit(t *testing.T) {
	l := newLab(t)
	l.write("/etc/systemd/system/crash.service", "[Service]\nExecStart=/usr/local/bin/helper exit 1\nRestart=always\nRestartSec=10ms\n")
	l.write("/etc/systemd/system/unlimited.service", "[Unit]\nStartLimitIntervalSec=0\n[Service]\nExecStart=/usr/local/bin/helper exit 1\nRestart=always\nRestartSec=10ms\n")
	l.must(0, "start", "crash")
	l.must(0, "start", "unlimited")
	eventually(t, 10*time.Second, func() error {
		if st, res := l.prop("crash", "ActiveState"), l.prop("crash", "Result"); st != "failed" || res != "start-limit-hit" {
			return fmt.Errorf("ActiveState %s Result %s, want failed start-limit-hit", st, res)
		}
		return nil
	})
	if o, _ := l.must(3, "is-active", "crash"); o != "failed\n" {
		t.Errorf("is-active printed %q", o)
	}
	if n := l.prop("crash", "NRestarts"); n != "5" {
		t.Errorf("NRestarts %s, want 5 (5 starts, then a restart refused)", n)
	}
	_, e := l.must(1, "start", "crash")
	if !strings.Contains(e, "Job for crash.service failed because start of the service was attempted too often.") {
		t.Errorf("start after the limit said %q", e)
	}
	l.must(0, "reset-failed", "crash")
	l.must(3, "is-active", "crash")
	eventually(t, 10*time.Second, func() error {
		n, _ := strconv.Atoi(l.prop("unlimited", "NRestarts"))
		if n < 8 {
			return fmt.Errorf("NRestarts %d, want it to go past the default limit", n)
		}
		return nil
	})
	l.must(0, "stop", "unlimited")
}

// A crash with Restart=no leaves the unit failed, and status says why.
func TestCrashWithoutRestartFails(t *testing.T) {
	l := newLab(t)
	l.write("/etc/systemd/system/once.service", "[Unit]\nDescription=fails once\n[Service]\nExecStart=/usr/local/bin/helper exit 3\n")
	l.must(0, "start", "once")
	eventually(t, 10*time.Second, func() error {
		if st := l.prop("once", "ActiveState"); st != "failed" {
			return fmt.Errorf("ActiveState %s", st)
		}
		return nil
	})
	o, _ := l.must(3, "status", "once")
	for _, want := range []string{"× once.service - fails once", "Active: failed (Result: exit-code) since ",
		"(code=exited, status=3/NOTIMPLEMENTED)", "labnode-svc: once.service: Main process exited, code=exited, status=3/NOTIMPLEMENTED"} {
		if !strings.Contains(o, want) {
			t.Errorf("status lacks %q:\n%s", want, o)
		}
	}
	if got := l.prop("once", "ExecMainStatus"); got != "3" {
		t.Errorf("ExecMainStatus %s", got)
	}
}

// An ExecStartPre without "-" that fails fails the start job.
func TestFailingExecStartPre(t *testing.T) {
	l := newLab(t)
	l.write("/etc/systemd/system/pre.service", "[Service]\nExecStartPre=/usr/local/bin/helper exit 2\nExecStart=/usr/local/bin/helper sleep\n")
	_, e := l.must(1, "start", "pre")
	if !strings.Contains(e, "Job for pre.service failed because the control process exited with error code.") {
		t.Errorf("start said %q", e)
	}
	l.must(3, "is-active", "pre")
}

// The agent's own unit: a required EnvironmentFile, expansion of ${VAR} and $VAR, and
// StateDirectory with its mode.
func TestDeckhandAgentUnit(t *testing.T) {
	l := newLab(t)
	unit := testdata(t, "../../../deploy/systemd/deckhand-agent.service")
	l.write("/etc/systemd/system/deckhand-agent.service", unit)
	// Run the helper in place of the agent binary, keeping the unit's command line.
	l.write("/etc/systemd/system/deckhand-agent.service.d/lab.conf",
		"[Service]\nExecStart=\nExecStart=/usr/local/bin/helper sleep --controller ${DECKHAND_CONTROLLERS} $DECKHAND_AGENT_ARGS\n")
	_, e := l.must(1, "start", "deckhand-agent")
	if !strings.Contains(e, "Job for deckhand-agent.service failed") {
		t.Errorf("start without /etc/default/deckhand-agent said %q", e)
	}
	if !strings.Contains(l.log("deckhand-agent"), "Failed to load environment files: /etc/default/deckhand-agent") {
		t.Errorf("the log does not name the missing environment file:\n%s", l.log("deckhand-agent"))
	}
	l.write("/etc/default/deckhand-agent", "DECKHAND_CONTROLLERS=10.250.0.1:7443,10.250.0.2:7443\nDECKHAND_AGENT_ARGS=\"--token abc.def --ca-cert-hash sha256:00\"\n")
	l.must(0, "start", "deckhand-agent")
	got := mustCmdline(t, l.mainPID("deckhand-agent"))
	want := []string{"/usr/local/bin/helper", "sleep", "--controller", "10.250.0.1:7443,10.250.0.2:7443", "--token", "abc.def", "--ca-cert-hash", "sha256:00"}
	if !reflect.DeepEqual(got, want) {
		t.Errorf("agent argv %q, want %q", got, want)
	}
	fi, err := os.Stat(filepath.Join(l.root, "var/lib/deckhand"))
	if err != nil || fi.Mode().Perm() != 0o700 {
		t.Errorf("StateDirectory: %v %v, want a 0700 directory", fi, err)
	}
}

// The environment a service sees is systemd's, not the manager's.
func TestCleanEnvironment(t *testing.T) {
	t.Setenv("LEAK", "from-the-manager")
	l := newLab(t)
	l.write("/etc/systemd/system/env.service", "[Service]\nEnvironment=\"GREETING=hello world\"\nExecStart=/usr/local/bin/helper env PATH GREETING LEAK\n")
	l.must(0, "start", "env")
	eventually(t, 10*time.Second, func() error {
		log := l.log("env")
		for _, want := range []string{"PATH=" + defaultPath + "\n", "GREETING=hello world\n", "LEAK=\n"} {
			if !strings.Contains(log, want) {
				return fmt.Errorf("log lacks %q:\n%s", want, log)
			}
		}
		return nil
	})
}

func TestEnableDisable(t *testing.T) {
	l := newLab(t)
	l.write("/lib/systemd/system/containerd.service", testdata(t, "testdata/containerd.service"))
	l.write("/lib/systemd/system/static.service", "[Service]\nExecStart=/usr/local/bin/helper sleep\n")
	link := filepath.Join(l.root, "/etc/systemd/system/multi-user.target.wants/containerd.service")

	if o, _ := l.must(1, "is-enabled", "containerd"); o != "disabled\n" {
		t.Errorf("is-enabled printed %q", o)
	}
	l.must(0, "enable", "containerd")
	if target, err := os.Readlink(link); err != nil || target != "/lib/systemd/system/containerd.service" {
		t.Errorf("link %s → %q, %v", link, target, err)
	}
	if _, e := l.must(0, "enable", "containerd"); e != "" {
		t.Errorf("a second enable said %q; it has nothing to change", e)
	}
	l.must(0, "is-enabled", "--quiet", "containerd")

	_, e := l.must(0, "disable", "--now", "containerd")
	if want := "Removed \"/etc/systemd/system/multi-user.target.wants/containerd.service\".\n"; e != want {
		t.Errorf("disable said %q, want %q", e, want)
	}
	if _, err := os.Lstat(link); !os.IsNotExist(err) {
		t.Errorf("link still there: %v", err)
	}
	l.must(1, "is-enabled", "-q", "containerd")

	l.must(0, "enable", "--now", "containerd")
	l.must(0, "is-active", "containerd")
	l.must(0, "stop", "containerd")

	if o, _ := l.must(0, "is-enabled", "static"); o != "static\n" {
		t.Errorf("is-enabled of a unit without [Install] printed %q", o)
	}
}

// Units this host does not have answer as systemd answers for them.
func TestUnitsNotFound(t *testing.T) {
	l := newLab(t)
	cases := []struct {
		args   []string
		code   int
		stdout string
		stderr string
	}{
		{[]string{"status", "firewalld"}, 4, "", "Unit firewalld.service could not be found.\n"},
		{[]string{"is-active", "systemd-resolved"}, 3, "inactive\n", ""},
		{[]string{"is-active", "--quiet", "systemd-resolved"}, 3, "", ""},
		{[]string{"start", "kubelet"}, 5, "", "Failed to start kubelet.service: Unit kubelet.service not found.\n"},
		{[]string{"restart", "kubelet"}, 5, "", "Failed to restart kubelet.service: Unit kubelet.service not found.\n"},
		{[]string{"stop", "kubelet"}, 5, "", "Failed to stop kubelet.service: Unit kubelet.service not loaded.\n"},
		{[]string{"is-enabled", "kubelet"}, 1, "", "Failed to get unit file state for kubelet.service: No such file or directory\n"},
		{[]string{"enable", "kubelet"}, 1, "", "Failed to enable unit: Unit file kubelet.service does not exist.\n"},
		{[]string{"show", "-p", "LoadState", "--value", "firewalld"}, 0, "not-found\n", ""},
		{[]string{"frobnicate", "kubelet"}, 1, "", "Unknown command verb 'frobnicate'.\n"},
		{[]string{"--bogus", "status", "kubelet"}, 1, "", "systemctl: unrecognized option '--bogus'\n"},
		{[]string{"start"}, 1, "", "Too few arguments.\n"},
		{[]string{"--no-pager", "--system", "daemon-reload"}, 0, "", ""},
	}
	for _, c := range cases {
		o, e, code := l.systemctl(c.args...)
		if code != c.code || o != c.stdout || e != c.stderr {
			t.Errorf("systemctl %s: exit %d stdout %q stderr %q; want %d %q %q", strings.Join(c.args, " "), code, o, e, c.code, c.stdout, c.stderr)
		}
	}
}

// The agent and kubeadm call at once: concurrent restarts of one unit leave exactly one
// process running.
func TestConcurrentRestarts(t *testing.T) {
	l := newLab(t)
	l.write("/etc/systemd/system/busy.service", "[Service]\nExecStart=/usr/local/bin/helper sleep busy\n")
	var wg sync.WaitGroup
	codes := make(chan int, 8)
	for range 8 {
		wg.Add(1)
		go func() {
			defer wg.Done()
			_, e, code := l.systemctl("restart", "busy")
			if code != 0 {
				t.Logf("restart: %s", e)
			}
			codes <- code
		}()
	}
	wg.Wait()
	close(codes)
	for c := range codes {
		if c != 0 {
			t.Errorf("a concurrent restart exited %d", c)
		}
	}
	main := l.mainPID("busy")
	if n := countProcesses(t, "busy"); n != 1 || !alive(main) {
		t.Errorf("%d processes run the unit's command (MainPID %d alive %v), want 1", n, main, alive(main))
	}
}

// countProcesses counts live processes whose argv ends with word.
func countProcesses(t *testing.T, word string) int {
	ents, err := os.ReadDir("/proc")
	if err != nil {
		t.Fatal(err)
	}
	n := 0
	for _, e := range ents {
		pid, err := strconv.Atoi(e.Name())
		if err != nil || !alive(pid) {
			continue
		}
		if argv, err := cmdline(pid); err == nil && len(argv) == 3 && argv[1] == "sleep" && argv[2] == word {
			n++
		}
	}
	return n
}

// A bad request gets an answer, not a hang.
func TestBadRequest(t *testing.T) {
	l := newLab(t)
	req, err := readRequest(strings.NewReader(strings.Repeat("x", maxRequest+10)))
	if err == nil {
		t.Errorf("an oversized request was read: %v", req)
	}
	var big []string
	for range maxArgs + 1 {
		big = append(big, "x")
	}
	_, e, code := l.systemctl(big...)
	if code != 1 || !strings.Contains(e, "bad request") {
		t.Errorf("too many arguments: exit %d, %q", code, e)
	}
	var out, errOut strings.Builder
	if code := Call(filepath.Join(l.root, "nothing.sock"), []string{"status"}, &out, &errOut); code != 1 || !strings.Contains(errOut.String(), "cannot reach this lab host's service manager") {
		t.Errorf("no manager: exit %d, %q", code, errOut.String())
	}
}

// systemctl reload runs ExecReload= in order with $MAINPID and the unit's environment
// (a "-" command may fail); the first failing command fails the job and leaves the unit
// running; the verbs around reload pick reload or restart as systemctl does.
func TestReloadVerbs(t *testing.T) {
	l := newLab(t)
	rec := filepath.Join(l.root, "reloads")
	l.write("/etc/systemd/system/r.service", "[Service]\nEnvironment=\"GREETING=hello  world\" \"WORDS=a 'b c'\"\n"+
		"ExecStart=/usr/local/bin/helper sleep\nExecReload=-/usr/local/bin/helper exit 3\n"+
		"ExecReload=/usr/local/bin/helper record "+rec+" $MAINPID ${GREETING} $WORDS\n")
	l.write("/etc/systemd/system/plain.service", "[Service]\nExecStart=/usr/local/bin/helper sleep\n")

	if _, e := l.must(5, "reload", "nope"); e != "Failed to reload nope.service: Unit nope.service not found.\n" {
		t.Errorf("reload of a missing unit said %q", e)
	}
	if _, e := l.must(1, "reload", "r"); e != "r.service is not active, cannot reload.\n" {
		t.Errorf("reload of an inactive unit said %q", e)
	}
	l.must(0, "try-reload-or-restart", "r")
	l.must(3, "is-active", "r")
	l.must(0, "reload-or-restart", "r") // inactive: starts it
	pid := l.mainPID("r")

	l.must(0, "reload", "r")
	want := fmt.Sprintf("%d|hello  world|a|b c\n", pid)
	if got, _ := os.ReadFile(rec); string(got) != want {
		t.Errorf("ExecReload recorded %q, want %q ($MAINPID, ${GREETING} as one word, $WORDS split)", got, want)
	}
	l.write("/etc/systemd/system/r.service.d/more.conf", "[Service]\nExecReload=/usr/local/bin/helper exit 4\nExecReload=/usr/local/bin/helper record "+rec+" never\n")
	_, e := l.must(1, "reload", "r")
	if !strings.HasPrefix(e, "Job for r.service failed.\n") {
		t.Errorf("failed reload said %q", e)
	}
	if got, _ := os.ReadFile(rec); string(got) != want+want {
		t.Errorf("after the failed reload the record is %q: the commands before the failure run, none after", got)
	}
	if st, p := l.prop("r", "ActiveState"), l.mainPID("r"); st != "active" || p != pid {
		t.Errorf("after a failed reload ActiveState %s MainPID %d, want active %d", st, p, pid)
	}
	if !strings.Contains(l.log("r"), "r.service: Control process exited, code=exited, status=4/NOPERMISSION") {
		t.Errorf("the log does not show the failing command:\n%s", l.log("r"))
	}
	if err := os.Remove(filepath.Join(l.root, "etc/systemd/system/r.service.d/more.conf")); err != nil {
		t.Fatal(err)
	}
	l.must(0, "force-reload", "r.service") // active, with ExecReload=: a reload
	if got, _ := os.ReadFile(rec); string(got) != want+want+want || l.mainPID("r") != pid {
		t.Errorf("force-reload: record %q, MainPID %d (was %d)", got, l.mainPID("r"), pid)
	}
	l.must(0, "stop", "r")

	l.must(0, "start", "plain")
	if _, e := l.must(1, "reload", "plain"); e != "Failed to reload plain.service: Job type reload is not applicable for unit plain.service.\n" {
		t.Errorf("reload without ExecReload= said %q", e)
	}
	before := l.mainPID("plain")
	l.must(0, "reload-or-restart", "plain") // no ExecReload=: restart
	if after := l.mainPID("plain"); after == before {
		t.Errorf("reload-or-restart of a unit without ExecReload= kept pid %d", before)
	}
}

// A setting the manager does not implement is reported in the unit's log at each start.
func TestUnsupportedSettingReported(t *testing.T) {
	l := newLab(t)
	l.write("/etc/systemd/system/u.service", "[Service]\nExecStart=/usr/local/bin/helper sleep\nExecStop=/usr/local/bin/helper exit 0\nNoNewPrivileges=yes\n")
	l.must(0, "start", "u")
	log := l.log("u")
	if !strings.Contains(log, "/etc/systemd/system/u.service:3: ExecStop= in [Service] is not supported by the lab service manager; ignoring it") {
		t.Errorf("the log does not report ExecStop=:\n%s", log)
	}
	if strings.Contains(log, "NoNewPrivileges") {
		t.Errorf("the log reports NoNewPrivileges=, which the lab ignores by design:\n%s", log)
	}
}
