package svc

import (
	"bufio"
	"errors"
	"fmt"
	"io"
	"os"
	"os/exec"
	"path"
	"path/filepath"
	"slices"
	"strconv"
	"strings"
	"sync"
	"syscall"
	"time"
)

// proc is one running process of a unit, the leader of its own process group.
type proc struct {
	cmd    *exec.Cmd
	pid    int
	exited chan struct{} // closed once the process is reaped; state is set then
	state  *os.ProcessState
}

// spawn starts c with env in its own process group, stdout and stderr to the unit's log.
// The executable and working directory are under root; argv[0] is as the unit wrote it.
func spawn(root string, u *Unit, c Command, env map[string]string, order []string, extra []string, sink *logSink) (*proc, error) {
	argv := c.Args
	if !c.NoExpand {
		argv = expandArgs(c.Args, env)
	}
	exe, err := lookPath(root, c.Path)
	if err != nil {
		return nil, err
	}
	envList := make([]string, 0, len(order)+len(extra))
	for _, k := range order {
		envList = append(envList, k+"="+env[k])
	}
	envList = append(envList, extra...)
	dir := root
	if u.WorkingDirectory != "" {
		wd := u.WorkingDirectory
		if wd == "~" {
			wd = "/root"
		}
		dir = filepath.Join(root, wd)
		if fi, err := os.Stat(dir); err != nil || !fi.IsDir() {
			if !u.WorkingDirOpt {
				return nil, fmt.Errorf("Changing to the requested working directory failed: %s: no such directory", wd)
			}
			dir = root
		}
	}
	r, w, err := os.Pipe()
	if err != nil {
		return nil, err
	}
	cmd := &exec.Cmd{
		Path:        exe,
		Args:        argv,
		Env:         envList,
		Dir:         dir,
		Stdout:      w,
		Stderr:      w,
		SysProcAttr: &syscall.SysProcAttr{Setpgid: true},
	}
	if err := cmd.Start(); err != nil {
		r.Close()
		w.Close()
		return nil, fmt.Errorf("Failed to execute %s: %w", c.Path, unwrapExec(err))
	}
	w.Close()
	go sink.copyFrom(r)
	p := &proc{cmd: cmd, pid: cmd.Process.Pid, exited: make(chan struct{})}
	go func() {
		_ = cmd.Wait() // the status is in cmd.ProcessState
		p.state = cmd.ProcessState
		close(p.exited)
	}()
	return p, nil
}

func unwrapExec(err error) error {
	var pe *os.PathError
	if errors.As(err, &pe) {
		return pe.Err
	}
	return err
}

// lookPath resolves an executable as systemd does: an absolute path as is, a bare name
// in systemd's fixed search path. Both under root.
func lookPath(root, name string) (string, error) {
	if path.IsAbs(name) {
		return filepath.Join(root, name), nil
	}
	if strings.Contains(name, "/") {
		return "", fmt.Errorf("Executable path %q is neither absolute nor a bare name", name)
	}
	for _, d := range strings.Split(defaultPath, ":") {
		p := filepath.Join(root, d, name)
		if fi, err := os.Stat(p); err == nil && fi.Mode().IsRegular() && fi.Mode()&0o111 != 0 {
			return p, nil
		}
	}
	return "", fmt.Errorf("Executable %q not found in %s", name, defaultPath)
}

// exitDescription renders a wait status as systemd does: "code=exited, status=1/FAILURE"
// or "code=killed, status=15/TERM". clean reports an exit systemd counts as success:
// status 0, SIGHUP, SIGINT, SIGTERM, SIGPIPE, and what the unit's SuccessExitStatus=
// lists (u may be nil: a control process has no SuccessExitStatus).
func exitDescription(st *os.ProcessState, u *Unit) (desc string, code int, clean, signaled bool) {
	ws, _ := st.Sys().(syscall.WaitStatus)
	if ws.Signaled() {
		sig := ws.Signal()
		switch sig {
		case syscall.SIGHUP, syscall.SIGINT, syscall.SIGTERM, syscall.SIGPIPE:
			clean = true
		}
		if u != nil && slices.Contains(u.SuccessSignals, sig) {
			clean = true
		}
		return fmt.Sprintf("code=killed, status=%d/%s", int(sig), signalName(sig)), 128 + int(sig), clean, true
	}
	code = ws.ExitStatus()
	clean = code == 0 || u != nil && slices.Contains(u.SuccessCodes, code)
	return fmt.Sprintf("code=exited, status=%d/%s", code, exitName(code)), code, clean, false
}

func exitName(code int) string {
	names := map[int]string{0: "SUCCESS", 1: "FAILURE", 2: "INVALIDARGUMENT", 3: "NOTIMPLEMENTED",
		4: "NOPERMISSION", 5: "NOTINSTALLED", 6: "NOTCONFIGURED", 7: "NOTRUNNING", 200: "CHDIR", 203: "EXEC", 209: "STDOUT"}
	if n, ok := names[code]; ok {
		return n
	}
	return "n/a" // as systemd prints a code it has no name for
}

// signalNames are the signals by the names systemd prints (without "SIG").
var signalNames = map[syscall.Signal]string{syscall.SIGHUP: "HUP", syscall.SIGINT: "INT", syscall.SIGQUIT: "QUIT",
	syscall.SIGILL: "ILL", syscall.SIGABRT: "ABRT", syscall.SIGKILL: "KILL", syscall.SIGSEGV: "SEGV",
	syscall.SIGPIPE: "PIPE", syscall.SIGALRM: "ALRM", syscall.SIGTERM: "TERM", syscall.SIGBUS: "BUS",
	syscall.SIGUSR1: "USR1", syscall.SIGUSR2: "USR2"}

func signalName(s syscall.Signal) string {
	if n, ok := signalNames[s]; ok {
		return n
	}
	return strconv.Itoa(int(s))
}

// groupAlive reports whether any process of process group pgid is alive (zombies do not
// count: their parent may never reap them).
func groupAlive(pgid int) bool {
	ents, err := os.ReadDir("/proc")
	if err != nil {
		return syscall.Kill(-pgid, 0) == nil
	}
	for _, e := range ents {
		if e.Name()[0] < '0' || e.Name()[0] > '9' {
			continue
		}
		state, pg, ok := procStat(e.Name())
		if ok && pg == pgid && state != 'Z' && state != 'X' {
			return true
		}
	}
	return false
}

// procStat reads a process's state and process group from /proc/PID/stat.
func procStat(pid string) (state byte, pgrp int, ok bool) {
	data, err := os.ReadFile("/proc/" + pid + "/stat")
	if err != nil {
		return 0, 0, false
	}
	s := string(data)
	i := strings.LastIndexByte(s, ')')
	if i < 0 {
		return 0, 0, false
	}
	f := strings.Fields(s[i+1:])
	if len(f) < 3 {
		return 0, 0, false
	}
	pg, err := strconv.Atoi(f[2])
	if err != nil {
		return 0, 0, false
	}
	return f[0][0], pg, true
}

// waitGroupGone polls until process group pgid has no live process or the deadline.
func waitGroupGone(pgid int, deadline time.Time) bool {
	t := time.NewTicker(20 * time.Millisecond)
	defer t.Stop()
	for {
		if !groupAlive(pgid) {
			return true
		}
		if time.Now().After(deadline) {
			return false
		}
		<-t.C
	}
}

// Log bounds.
const (
	maxLogLine = 16 << 10
	maxLogFile = 64 << 20 // then NAME.log moves to NAME.log.1
)

// logSink appends a unit's output to LogDir/NAME.log, line by line, each line at most
// maxLogLine bytes, rotating once at maxLogFile.
type logSink struct {
	mu   sync.Mutex
	path string
	f    *os.File
	size int64
}

func (l *logSink) writeLine(b []byte) {
	l.mu.Lock()
	defer l.mu.Unlock()
	if l.f == nil || l.size+int64(len(b)) > maxLogFile {
		if l.f != nil {
			l.f.Close()
			l.f = nil
			_ = os.Rename(l.path, l.path+".1")
		}
		if err := os.MkdirAll(filepath.Dir(l.path), 0o755); err != nil {
			return
		}
		f, err := os.OpenFile(l.path, os.O_WRONLY|os.O_APPEND|os.O_CREATE, 0o644)
		if err != nil {
			return
		}
		fi, _ := f.Stat()
		l.f, l.size = f, 0
		if fi != nil {
			l.size = fi.Size()
		}
	}
	n, _ := l.f.Write(b)
	l.size += int64(n)
}

// note writes a manager message into the unit's log, as systemd's journal interleaves them.
func (l *logSink) note(msg string) {
	l.writeLine([]byte(time.Now().Format(time.RFC3339Nano) + " labnode-svc: " + msg + "\n"))
}

// copyFrom copies a process's output into the log until every writer has closed it.
func (l *logSink) copyFrom(r io.ReadCloser) {
	defer r.Close()
	br := bufio.NewReaderSize(r, maxLogLine)
	for {
		line, err := br.ReadSlice('\n')
		if errors.Is(err, bufio.ErrBufferFull) {
			l.writeLine(append(append([]byte{}, line...), " [line truncated]\n"...))
			for errors.Is(err, bufio.ErrBufferFull) {
				_, err = br.ReadSlice('\n')
			}
			if err != nil {
				return
			}
			continue
		}
		if len(line) > 0 {
			if line[len(line)-1] != '\n' {
				line = append(append([]byte{}, line...), '\n')
			}
			l.writeLine(line)
		}
		if err != nil {
			return
		}
	}
}

func (l *logSink) close() {
	l.mu.Lock()
	defer l.mu.Unlock()
	if l.f != nil {
		l.f.Close()
		l.f = nil
	}
}

// tail returns up to n last lines of the log.
func (l *logSink) tail(n int) []string {
	f, err := os.Open(l.path)
	if err != nil {
		return nil
	}
	defer f.Close()
	const window = 8 << 10
	fi, err := f.Stat()
	if err != nil {
		return nil
	}
	off := fi.Size() - window
	if off < 0 {
		off = 0
	}
	buf := make([]byte, fi.Size()-off)
	if _, err := f.ReadAt(buf, off); err != nil && !errors.Is(err, io.EOF) {
		return nil
	}
	lines := strings.Split(strings.TrimRight(string(buf), "\n"), "\n")
	if off > 0 && len(lines) > 0 {
		lines = lines[1:] // partial
	}
	if len(lines) > n {
		lines = lines[len(lines)-n:]
	}
	if len(lines) == 1 && lines[0] == "" {
		return nil
	}
	return lines
}
