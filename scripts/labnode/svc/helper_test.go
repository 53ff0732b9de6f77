package svc

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"log/slog"
	"net"
	"os"
	"os/exec"
	"os/signal"
	"path/filepath"
	"regexp"
	"strconv"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/deckhandhq/deckhand/internal/testkit/testwait"
)

// The test binary doubles as the services the tests run: started as /usr/bin/kubelet or
// /usr/bin/containerd (symlinks in the test root) it plays that daemon; as
// /usr/local/bin/helper MODE it does what MODE says. Services get a clean environment, so
// the mode travels in argv.
func TestMain(m *testing.M) {
	switch filepath.Base(os.Args[0]) {
	case "kubelet":
		fmt.Println("kubelet", strings.Join(os.Args[1:], " "))
		blockUntilTerm()
	case "containerd":
		fakeContainerd()
	case "containerd-shim":
		blockUntilTerm()
	case "helper":
		helper(os.Args[1:])
	case "keepalived":
		keepalived()
	}
	os.Exit(m.Run())
}

func blockUntilTerm() {
	sigs := make(chan os.Signal, 1)
	signal.Notify(sigs, syscall.SIGTERM, syscall.SIGINT)
	<-sigs
	os.Exit(0)
}

// spawnSelf starts this binary as argv0 in the caller's process group and prints its pid.
func spawnSelf(argv0 string, args ...string) {
	exe, _ := os.Executable()
	cmd := exec.Command(exe, args...)
	cmd.Args[0] = argv0
	if err := cmd.Start(); err != nil {
		fmt.Println("spawn:", err)
		os.Exit(1)
	}
	fmt.Printf("child pid %d\n", cmd.Process.Pid)
}

// fakeContainerd starts a "shim" in its process group, as containerd does, then tells the
// manager READY=1 over NOTIFY_SOCKET after a moment of startup work.
func fakeContainerd() {
	spawnSelf("containerd-shim")
	sock := os.Getenv("NOTIFY_SOCKET")
	c, err := net.DialUnix("unixgram", nil, &net.UnixAddr{Name: sock, Net: "unixgram"})
	if err != nil {
		fmt.Println("notify:", err)
		os.Exit(1)
	}
	fmt.Println("containerd serving")
	if _, err := c.Write([]byte("STATUS=serving\nREADY=1")); err != nil {
		fmt.Println("notify:", err)
		os.Exit(1)
	}
	blockUntilTerm()
}

// keepalived runs the real keepalived in the network namespace its environment names
// (ip netns exec keeps the PID: the manager's MainPID is keepalived's), or plays it: it
// never notifies (the real one notifies only a PID 1 systemd), says so on SIGHUP, exits
// on SIGTERM.
func keepalived() {
	if ns := os.Getenv(netnsEnv); ns != "" {
		argv := append([]string{"ip", "netns", "exec", ns, "/usr/sbin/keepalived"}, os.Args[1:]...)
		err := syscall.Exec("/usr/sbin/ip", argv, os.Environ())
		fmt.Println("exec ip netns exec:", err)
		os.Exit(1)
	}
	fmt.Println("keepalived", strings.Join(os.Args[1:], " "))
	sigs := make(chan os.Signal, 1)
	signal.Notify(sigs, syscall.SIGHUP, syscall.SIGTERM)
	for sig := range sigs {
		if sig == syscall.SIGTERM {
			os.Exit(0)
		}
		fmt.Println("reloading configuration")
	}
}

// netnsEnv names the network namespace the keepalived stand-in runs the real one in.
const netnsEnv = "DECKHAND_SVC_TEST_NETNS"

func helper(args []string) {
	if len(args) == 0 {
		os.Exit(2)
	}
	switch args[0] {
	case "sleep":
		fmt.Println("sleeping", strings.Join(args[1:], " "))
		blockUntilTerm()
	case "exit":
		code, _ := strconv.Atoi(args[1])
		os.Exit(code)
	case "exit-once": // exit-once FILE CODE: fail the first time, then run
		if _, err := os.Stat(args[1]); err != nil {
			_ = os.WriteFile(args[1], nil, 0o644)
			code, _ := strconv.Atoi(args[2])
			os.Exit(code)
		}
		blockUntilTerm()
	case "spawn":
		spawnSelf("helper", "sleep", "child")
		blockUntilTerm()
	case "ignore-term":
		signal.Ignore(syscall.SIGTERM)
		fmt.Println("ignoring SIGTERM")
		select {}
	case "term-exit": // term-exit CODE: exit with CODE on SIGTERM
		code, _ := strconv.Atoi(args[1])
		sigs := make(chan os.Signal, 1)
		signal.Notify(sigs, syscall.SIGTERM)
		fmt.Println("waiting for SIGTERM")
		<-sigs
		os.Exit(code)
	case "record": // record FILE ARGS...: append ARGS joined by "|" to FILE
		f, err := os.OpenFile(args[1], os.O_WRONLY|os.O_APPEND|os.O_CREATE, 0o644)
		if err != nil {
			os.Exit(1)
		}
		fmt.Fprintln(f, strings.Join(args[2:], "|"))
		f.Close()
		os.Exit(0)
	case "env":
		for _, k := range args[1:] {
			fmt.Printf("%s=%s\n", k, os.Getenv(k))
		}
		blockUntilTerm()
	}
	os.Exit(2)
}

// lab is one manager serving a temp root over a real unix socket.
type lab struct {
	t    *testing.T
	root string
	sock string
	m    *Manager
}

func newLab(t *testing.T) *lab {
	t.Helper()
	root := t.TempDir()
	sockDir, err := os.MkdirTemp("", "svc")
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { os.RemoveAll(sockDir) })
	l := &lab{t: t, root: root, sock: filepath.Join(sockDir, "systemd.sock")}
	l.m = New(Options{Root: root, LogDir: filepath.Join(root, "log"),
		Log: slog.New(slog.NewTextHandler(testWriter{t}, &slog.HandlerOptions{Level: slog.LevelDebug}))})
	ln, err := net.Listen("unix", l.sock)
	if err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithCancel(context.Background())
	served := make(chan error, 1)
	go func() { served <- l.m.Serve(ctx, ln) }()
	t.Cleanup(func() {
		sctx, scancel := context.WithTimeout(context.Background(), 30*time.Second)
		defer scancel()
		if err := l.m.StopAll(sctx); err != nil {
			t.Errorf("StopAll: %v", err)
		}
		// The children the fake daemons started and KillMode=process leaves running by
		// design (containerd's shims): a test leaves no process behind.
		logs, _ := filepath.Glob(filepath.Join(root, "log", "*.log"))
		for _, f := range logs {
			b, _ := os.ReadFile(f)
			for _, m := range childRE.FindAllStringSubmatch(string(b), -1) {
				if pid, err := strconv.Atoi(m[1]); err == nil && pid > 1 {
					_ = syscall.Kill(pid, syscall.SIGKILL)
				}
			}
		}
		cancel()
		if err := <-served; err != nil {
			t.Errorf("Serve: %v", err)
		}
	})
	exe, err := os.Executable()
	if err != nil {
		t.Fatal(err)
	}
	for _, p := range []string{"/usr/bin/kubelet", "/usr/bin/containerd", "/usr/local/bin/helper", "/usr/sbin/keepalived"} {
		if err := os.MkdirAll(filepath.Join(root, filepath.Dir(p)), 0o755); err != nil {
			t.Fatal(err)
		}
		if err := os.Symlink(exe, filepath.Join(root, p)); err != nil {
			t.Fatal(err)
		}
	}
	return l
}

type testWriter struct{ t *testing.T }

func (w testWriter) Write(p []byte) (int, error) {
	w.t.Log(strings.TrimRight(string(p), "\n"))
	return len(p), nil
}

// systemctl runs the shim against the lab's manager.
func (l *lab) systemctl(args ...string) (stdout, stderr string, code int) {
	var o, e bytes.Buffer
	code = Call(l.sock, args, &o, &e)
	return o.String(), e.String(), code
}

// must runs systemctl and fails the test unless it exits with want.
func (l *lab) must(want int, args ...string) (stdout, stderr string) {
	l.t.Helper()
	o, e, code := l.systemctl(args...)
	if code != want {
		l.t.Fatalf("systemctl %s: exit %d, want %d\nstdout: %s\nstderr: %s", strings.Join(args, " "), code, want, o, e)
	}
	return o, e
}

func (l *lab) write(p, text string) { writeFile(l.t, l.root, p, text) }

// prop returns one property through systemctl show -p P --value.
func (l *lab) prop(unit, p string) string {
	l.t.Helper()
	o, _ := l.must(0, "show", "-p", p, "--value", unit)
	return strings.TrimSpace(o)
}

func (l *lab) mainPID(unit string) int {
	l.t.Helper()
	pid, err := strconv.Atoi(l.prop(unit, "MainPID"))
	if err != nil {
		l.t.Fatal(err)
	}
	return pid
}

func (l *lab) log(unit string) string {
	data, _ := os.ReadFile(filepath.Join(l.root, "log", unit+".log"))
	return string(data)
}

// eventually polls cond until it returns nil or the deadline passes, then fails with the
// last error.
func eventually(t *testing.T, timeout time.Duration, cond func() error) {
	t.Helper()
	testwait.For(t, timeout, cond)
}

// cmdline reads a live process's argv.
func cmdline(pid int) ([]string, error) {
	data, err := os.ReadFile(fmt.Sprintf("/proc/%d/cmdline", pid))
	if err != nil {
		return nil, err
	}
	return strings.Split(strings.TrimRight(string(data), "\x00"), "\x00"), nil
}

// alive reports whether pid is a live (not zombie) process.
func alive(pid int) bool {
	st, _, ok := procStat(strconv.Itoa(pid))
	return ok && st != 'Z' && st != 'X'
}

var childRE = regexp.MustCompile(`child pid (\d+)`)

// childPID waits for a "child pid N" line in the unit's log.
func (l *lab) childPID(unit string) int {
	l.t.Helper()
	var pid int
	eventually(l.t, 10*time.Second, func() error {
		m := childRE.FindStringSubmatch(l.log(unit))
		if m == nil {
			return errors.New("no child pid in the log yet:\n" + l.log(unit))
		}
		pid, _ = strconv.Atoi(m[1])
		return nil
	})
	return pid
}
