package svc

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"math/rand/v2"
	"net"
	"os"
	"path"
	"path/filepath"
	"slices"
	"strings"
	"sync"
	"syscall"
	"time"
)

// SocketPath is where the holder listens inside a lab host, and where the shim calls.
const SocketPath = "/run/labnode/systemd.sock"

// Options configures a Manager.
type Options struct {
	Root     string   // "/" inside a lab host; tests use a temp dir (all unit/env paths under Root)
	UnitDirs []string // default DefaultUnitDirs
	LogDir   string   // each unit's stdout+stderr appended to LogDir/NAME.log; default Root/var/log/labnode
	Log      *slog.Logger
}

// Manager supervises one lab host's services. It is safe for concurrent use.
type Manager struct {
	o   Options
	log *slog.Logger

	mu    sync.Mutex
	units map[string]*service
	order []string // unit names by their latest start, oldest first

	installMu sync.Mutex // enable and disable
}

// New returns a Manager; nothing runs until a start request.
func New(o Options) *Manager {
	if o.Root == "" {
		o.Root = "/"
	}
	if len(o.UnitDirs) == 0 {
		o.UnitDirs = DefaultUnitDirs
	}
	if o.LogDir == "" {
		o.LogDir = filepath.Join(o.Root, "var/log/labnode")
	}
	if o.Log == nil {
		o.Log = slog.New(slog.DiscardHandler)
	}
	return &Manager{o: o, log: o.Log, units: map[string]*service{}}
}

// service is the manager's record of one unit.
type service struct {
	name string
	job  sync.Mutex // one start, stop or restart at a time (see queue)
	sink *logSink

	mu         sync.Mutex
	unit       *Unit
	active     string // ActiveState
	sub        string // SubState
	result     string // Result
	since      time.Time
	mainPID    int
	mainLine   string // ExecStart as written, for status
	exitDesc   string // the last main process's exit, "code=exited, status=1/FAILURE"
	exitCode   int
	lastPID    int
	restarts   int
	starts     []time.Time // for the start limit
	run        *run
	conditions string                 // the unmet condition of the last start, if any
	pending    map[string]*pendingJob // queued jobs by kind, not yet running
}

// loaded reports whether the manager has loaded the unit at some point (so a stop of a
// unit whose file is gone still stops it).
func (m *Manager) loaded(name string) bool {
	s := m.known(name)
	if s == nil {
		return false
	}
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.unit != nil
}

// run is one supervision loop: from a start request until the unit stops for good.
type run struct {
	stop  chan struct{} // closed: stop requested
	now   chan struct{} // a start request during the restart delay: restart now
	done  chan struct{} // closed when the loop has ended and every process is gone
	ready chan error    // the first attempt's outcome, for the start request
	// waiters are start requests that came while the unit was activating; each gets the
	// outcome of the next attempt. Guarded by the service's mu.
	waiters []chan error
}

func (m *Manager) service(name string) *service {
	m.mu.Lock()
	defer m.mu.Unlock()
	s := m.units[name]
	if s == nil {
		s = &service{name: name, active: "inactive", sub: "dead",
			sink: &logSink{path: filepath.Join(m.o.LogDir, strings.TrimSuffix(name, ".service")+".log")}}
		m.units[name] = s
	}
	return s
}

// known returns the service record if the manager has seen the unit, without creating one.
func (m *Manager) known(name string) *service {
	m.mu.Lock()
	defer m.mu.Unlock()
	return m.units[name]
}

func (m *Manager) load(name string) (*Unit, error) {
	return loadUnit(m.o.Root, m.o.UnitDirs, name)
}

// Start-job failures, worded as systemctl words "Job for X failed because ...".
var (
	errControl    = errors.New("the control process exited with error code")
	errStartLimit = errors.New("start of the service was attempted too often")
	errTimeout    = errors.New("a timeout was exceeded")
	errResources  = errors.New("a configured resource limit was exceeded")
	errStopped    = errors.New("the unit was stopped while starting")
)

// errMasked: the unit file is a symlink to /dev/null.
var errMasked = errors.New("unit masked")

// loadError is a unit file systemd would refuse.
type loadError struct{ err error }

func (e *loadError) Error() string { return e.err.Error() }

// Start starts the unit unless it runs already and waits for the start job: until the
// process is started (Type=simple), has signalled READY=1 (notify) or has exited
// (oneshot), as systemctl start does.
func (m *Manager) Start(name string) error {
	s := m.service(name)
	return s.queue("start", func() error { return m.startLocked(s) })
}

// queue runs a job on the unit after the one in progress. A request that finds the same
// kind of job still waiting shares that job and its result, as systemd merges jobs: eight
// concurrent restarts restart the unit at most twice, not eight times.
func (s *service) queue(kind string, do func() error) error {
	s.mu.Lock()
	if p := s.pending[kind]; p != nil {
		s.mu.Unlock()
		<-p.done
		return p.err
	}
	p := &pendingJob{done: make(chan struct{})}
	if s.pending == nil {
		s.pending = map[string]*pendingJob{}
	}
	s.pending[kind] = p
	s.mu.Unlock()

	s.job.Lock()
	s.mu.Lock()
	delete(s.pending, kind) // running now: later requests queue a new job
	s.mu.Unlock()
	p.err = do()
	s.job.Unlock()
	close(p.done)
	return p.err
}

// pendingJob is a queued job others can join.
type pendingJob struct {
	done chan struct{}
	err  error
}

func (m *Manager) startLocked(s *service) error {
	s.mu.Lock()
	if r := s.run; r != nil {
		if s.active == "active" {
			s.mu.Unlock()
			return nil
		}
		// Activating (a restart delay, ExecStartPre, waiting for READY=1): skip the delay
		// and wait for that attempt's outcome, as a start job does.
		w := make(chan error, 1)
		r.waiters = append(r.waiters, w)
		s.mu.Unlock()
		select {
		case r.now <- struct{}{}:
		default:
		}
		return <-w
	}
	s.mu.Unlock()
	u, err := m.load(s.name)
	if err != nil {
		if errors.Is(err, errNotFound) {
			return err
		}
		m.log.Warn("unit file refused", "unit", s.name, "error", err)
		s.sink.note("refusing the unit: " + err.Error())
		return &loadError{err}
	}
	if u.Masked {
		return errMasked
	}
	for _, w := range u.Warnings {
		m.log.Warn("unit setting ignored", "unit", s.name, "setting", w)
		s.sink.note(w)
	}
	for _, a := range u.Adjustments {
		m.log.Info("lab adjustment", "unit", s.name, "adjustment", a)
		s.sink.note(u.Name + ": " + a)
	}
	r := &run{stop: make(chan struct{}), now: make(chan struct{}, 1), done: make(chan struct{}), ready: make(chan error, 1)}
	s.mu.Lock()
	s.unit, s.run, s.restarts = u, r, 0
	s.mu.Unlock()
	m.mu.Lock()
	for i, n := range m.order {
		if n == s.name {
			m.order = append(m.order[:i], m.order[i+1:]...)
			break
		}
	}
	m.order = append(m.order, s.name)
	m.mu.Unlock()
	go m.supervise(s, u, r)
	return <-r.ready
}

// Stop stops the unit and waits until its processes are gone (KillMode permitting).
func (m *Manager) Stop(name string) error {
	s := m.service(name)
	return s.queue("stop", func() error {
		m.stopLocked(s)
		return nil
	})
}

func (m *Manager) stopLocked(s *service) {
	s.mu.Lock()
	r := s.run
	s.mu.Unlock()
	if r == nil {
		return
	}
	close(r.stop)
	<-r.done
}

// Restart stops the unit if it runs, then starts it.
func (m *Manager) Restart(name string) error {
	s := m.service(name)
	return s.queue("restart", func() error {
		m.stopLocked(s)
		return m.startLocked(s)
	})
}

// TryRestart restarts the unit only if it is active or activating.
func (m *Manager) TryRestart(name string) error {
	s := m.service(name)
	return s.queue("try-restart", func() error {
		s.mu.Lock()
		running := s.run != nil
		s.mu.Unlock()
		if !running {
			return nil
		}
		m.stopLocked(s)
		return m.startLocked(s)
	})
}

// ResetFailed forgets a failed state and the start-limit count.
func (m *Manager) ResetFailed(name string) {
	s := m.known(name)
	if s == nil {
		return
	}
	s.mu.Lock()
	defer s.mu.Unlock()
	s.starts = nil
	if s.active == "failed" {
		s.active, s.sub, s.result = "inactive", "dead", "success"
	}
}

// StopAll stops every unit, in reverse start order (for teardown).
func (m *Manager) StopAll(ctx context.Context) error {
	m.mu.Lock()
	names := append([]string{}, m.order...)
	for n := range m.units {
		found := false
		for _, o := range names {
			found = found || o == n
		}
		if !found {
			names = append([]string{n}, names...)
		}
	}
	m.mu.Unlock()
	for i := len(names) - 1; i >= 0; i-- {
		done := make(chan struct{})
		go func() {
			defer close(done)
			_ = m.Stop(names[i]) // Stop cannot fail
		}()
		select {
		case <-done:
		case <-ctx.Done():
			return fmt.Errorf("stop %s: %w", names[i], ctx.Err())
		}
	}
	m.mu.Lock()
	defer m.mu.Unlock()
	for _, s := range m.units {
		s.sink.close()
	}
	return nil
}

func (s *service) set(active, sub, result string) {
	s.mu.Lock()
	defer s.mu.Unlock()
	if s.active != active || s.sub != sub {
		s.since = time.Now()
	}
	s.active, s.sub = active, sub
	if result != "" {
		s.result = result
	}
}

// allowStart applies the start limit: at most StartLimitBurst starts within
// StartLimitInterval (0: no limit). Every start counts, as in systemd.
func (s *service) allowStart(u *Unit, now time.Time) bool {
	s.mu.Lock()
	defer s.mu.Unlock()
	if u.StartLimitInterval <= 0 || u.StartLimitBurst <= 0 {
		return true
	}
	kept := s.starts[:0]
	for _, t := range s.starts {
		if now.Sub(t) < u.StartLimitInterval {
			kept = append(kept, t)
		}
	}
	s.starts = kept
	if len(s.starts) >= u.StartLimitBurst {
		return false
	}
	s.starts = append(s.starts, now)
	return true
}

// unmetCondition returns the first ConditionPathExists= or ConditionFileNotEmpty= that
// does not hold, or "".
func unmetCondition(root string, u *Unit) string {
	for _, c := range u.ConditionPathExists {
		p, neg := c, false
		if strings.HasPrefix(p, "!") {
			p, neg = p[1:], true
		}
		_, err := os.Stat(filepath.Join(root, p))
		if (err == nil) == neg {
			return "ConditionPathExists=" + c
		}
	}
	for _, c := range u.ConditionFileNotEmpty {
		p, neg := c, false
		if strings.HasPrefix(p, "!") {
			p, neg = p[1:], true
		}
		fi, err := os.Stat(filepath.Join(root, p))
		if (err == nil && fi.Mode().IsRegular() && fi.Size() > 0) == neg {
			return "ConditionFileNotEmpty=" + c
		}
	}
	return ""
}

// outcome is how one attempt (ExecStartPre..., ExecStart) ended.
type outcome struct {
	stopped bool   // a stop request ended it; the state is set
	final   bool   // nothing to restart (a oneshot that succeeded)
	clean   bool   // success for Restart=on-failure
	abnorm  bool   // killed by a signal that is not clean, or timed out
	result  string // success, exit-code, signal, timeout, resources
}

func shouldRestart(policy string, o outcome) bool {
	switch policy {
	case "always":
		return true
	case "on-failure":
		return !o.clean
	case "on-success":
		return o.clean
	case "on-abnormal":
		return o.abnorm
	case "on-abort":
		return o.result == "signal" && !o.clean
	}
	return false
}

// supervise runs a unit from a start request until it stops for good: by a stop
// request, by exiting when Restart= says not to restart, or by the start limit.
func (m *Manager) supervise(s *service, u *Unit, r *run) {
	first := true
	report := func(err error) {
		if first {
			first = false
			r.ready <- err
		}
		s.mu.Lock()
		ws := r.waiters
		r.waiters = nil
		s.mu.Unlock()
		for _, w := range ws {
			w <- err
		}
	}
	defer func() {
		s.mu.Lock()
		s.run, s.mainPID = nil, 0
		s.mu.Unlock()
		report(errStopped)
		close(r.done)
	}()
	for {
		if !s.allowStart(u, time.Now()) {
			s.sink.note(u.Name + ": Start request repeated too quickly.")
			s.sink.note(u.Name + ": Failed with result 'start-limit-hit'.")
			m.log.Warn("start limit hit", "unit", u.Name)
			s.set("failed", "failed", "start-limit-hit")
			report(errStartLimit)
			return
		}
		if c := unmetCondition(m.o.Root, u); c != "" {
			s.sink.note(u.Name + ": skipped, unmet condition check " + c)
			s.mu.Lock()
			s.conditions = c
			s.mu.Unlock()
			s.set("inactive", "dead", "success")
			report(nil)
			return
		}
		s.mu.Lock()
		s.conditions = ""
		s.mu.Unlock()
		o := m.attempt(s, u, r, report)
		if o.stopped {
			return
		}
		if o.final || !shouldRestart(u.Restart, o) {
			if o.result == "success" {
				if !(u.Type == "oneshot" && u.RemainAfterExit) {
					s.set("inactive", "dead", "success")
				}
			} else {
				s.sink.note(fmt.Sprintf("%s: Failed with result '%s'.", u.Name, o.result))
				s.set("failed", "failed", o.result)
			}
			if u.Type == "oneshot" && u.RemainAfterExit && o.result == "success" {
				<-r.stop
				s.set("inactive", "dead", "")
			}
			return
		}
		s.set("activating", "auto-restart", o.result)
		t := time.NewTimer(u.RestartSec)
		select {
		case <-t.C:
		case <-r.now:
			t.Stop()
		case <-r.stop:
			t.Stop()
			s.set("inactive", "dead", "")
			return
		}
		s.mu.Lock()
		s.restarts++
		n := s.restarts
		s.mu.Unlock()
		s.sink.note(fmt.Sprintf("%s: Scheduled restart job, restart counter is at %d.", u.Name, n))
	}
}

// attempt runs one start: environment, state directories, ExecStartPre, then ExecStart,
// and waits for the main process to exit or a stop request.
func (m *Manager) attempt(s *service, u *Unit, r *run, report func(error)) outcome {
	s.set("activating", "start-pre", "")
	env, order, err := environment(m.o.Root, u)
	if err == nil {
		err = m.stateDirs(u)
	}
	if err != nil {
		s.sink.note(u.Name + ": " + err.Error())
		m.log.Warn("unit start failed", "unit", u.Name, "error", err)
		report(errResources)
		return outcome{result: "resources"}
	}
	extra := []string{}
	if len(u.StateDirectory) > 0 {
		dirs := make([]string, len(u.StateDirectory))
		for i, d := range u.StateDirectory {
			dirs[i] = path.Join("/var/lib", d)
		}
		extra = append(extra, "STATE_DIRECTORY="+strings.Join(dirs, ":"))
	}
	// runAll runs control commands in order; the first that fails ends the start, reported
	// as a timeout, a stop or a failure.
	runAll := func(cmds []Command) (outcome, bool) {
		for _, c := range cmds {
			o, ok := m.control(s, u, c, env, order, extra, r, "start-pre")
			if !ok {
				switch {
				case o.result == "timeout":
					report(errTimeout)
				case o.stopped:
					report(errStopped)
				default:
					report(errControl)
				}
				return o, false
			}
		}
		return outcome{}, true
	}
	if o, ok := runAll(u.ExecStartPre); !ok {
		return o
	}
	if u.Type == "oneshot" {
		s.set("activating", "start", "")
		if o, ok := runAll(u.ExecStart); !ok {
			return o
		}
		if u.RemainAfterExit {
			s.set("active", "exited", "success")
		}
		report(nil)
		return outcome{final: true, clean: true, result: "success"}
	}

	c := u.ExecStart[0]
	var notify *net.UnixConn
	if u.Type == "notify" {
		name := fmt.Sprintf("@labnode/%s/%d-%x", u.Name, os.Getpid(), rand.Uint64())
		notify, err = net.ListenUnixgram("unixgram", &net.UnixAddr{Name: name, Net: "unixgram"})
		if err != nil {
			s.sink.note(u.Name + ": notify socket: " + err.Error())
			report(errResources)
			return outcome{result: "resources"}
		}
		defer notify.Close()
		extra = append(extra, "NOTIFY_SOCKET="+name)
	}
	s.set("activating", "start", "")
	p, err := spawn(m.o.Root, u, c, env, order, extra, s.sink)
	if err != nil {
		s.sink.note(u.Name + ": " + err.Error())
		s.sink.note(u.Name + ": Main process exited, code=exited, status=203/EXEC")
		m.log.Warn("unit exec failed", "unit", u.Name, "error", err)
		s.mu.Lock()
		s.exitDesc, s.exitCode, s.lastPID = "code=exited, status=203/EXEC", 203, 0
		s.mu.Unlock()
		if u.Type == "simple" {
			report(nil) // systemd: the fork succeeded, so the start job did
		} else {
			report(errControl)
		}
		return outcome{result: "exit-code"}
	}
	s.mu.Lock()
	s.mainPID, s.lastPID, s.mainLine = p.pid, p.pid, c.Line
	s.mu.Unlock()
	m.log.Info("unit started", "unit", u.Name, "pid", p.pid)

	if notify != nil {
		ready := make(chan struct{})
		go readNotify(notify, ready)
		t := time.NewTimer(u.TimeoutStartSec)
		select {
		case <-ready:
			t.Stop()
		case <-p.exited:
			t.Stop()
			o := m.exited(s, u, p)
			report(errControl)
			return o
		case <-r.stop:
			t.Stop()
			m.stopped(s, u, m.terminate(s, u, p))
			return outcome{stopped: true}
		case <-t.C:
			s.sink.note(u.Name + ": start operation timed out. Terminating.")
			m.terminate(s, u, p)
			report(errTimeout)
			return outcome{result: "timeout", abnorm: true}
		}
	}
	s.set("active", "running", "success")
	report(nil)
	select {
	case <-p.exited:
		return m.exited(s, u, p)
	case <-r.stop:
		m.stopped(s, u, m.terminate(s, u, p))
		return outcome{stopped: true}
	}
}

// stopped sets the state a stop request leaves: inactive, or failed when the main
// process did not exit cleanly (SuccessExitStatus= counts) or had to be killed, as
// systemd does.
func (m *Manager) stopped(s *service, u *Unit, o outcome) {
	if o.result == "success" {
		s.set("inactive", "dead", "")
		return
	}
	s.sink.note(fmt.Sprintf("%s: Failed with result '%s'.", u.Name, o.result))
	s.set("failed", "failed", o.result)
}

// exited records a main process that exited on its own and cleans up its group.
func (m *Manager) exited(s *service, u *Unit, p *proc) outcome {
	desc, code, clean, signaled := exitDescription(p.state, u)
	s.mu.Lock()
	s.mainPID, s.exitDesc, s.exitCode = 0, desc, code
	s.mu.Unlock()
	s.sink.note(u.Name + ": Main process exited, " + desc)
	m.log.Info("unit exited", "unit", u.Name, "pid", p.pid, "status", desc)
	m.cleanGroup(s, u, p.pid, time.Now().Add(u.TimeoutStopSec))
	o := outcome{clean: clean, result: "success"}
	switch {
	case signaled && !clean:
		o.result, o.abnorm = "signal", true
	case !signaled && code != 0:
		o.result = "exit-code"
	}
	return o
}

// control runs a control process (ExecStartPre=, a oneshot's ExecStart=, ExecReload=) to
// completion; what names the state in messages ("start-pre", "reload"). ok is false when
// the job must not go on.
func (m *Manager) control(s *service, u *Unit, c Command, env map[string]string, order, extra []string, r *run, what string) (outcome, bool) {
	p, err := spawn(m.o.Root, u, c, env, order, extra, s.sink)
	if err != nil {
		s.sink.note(u.Name + ": " + err.Error())
		if c.IgnoreFailure {
			return outcome{}, true
		}
		s.sink.note(u.Name + ": Control process exited, code=exited, status=203/EXEC")
		return outcome{result: "exit-code"}, false
	}
	t := time.NewTimer(u.TimeoutStartSec)
	defer t.Stop()
	select {
	case <-p.exited:
	case <-r.stop:
		killControl(u, p)
		s.set("inactive", "dead", "")
		return outcome{stopped: true}, false
	case <-t.C:
		s.sink.note(u.Name + ": " + what + " operation timed out. Terminating.")
		killControl(u, p)
		return outcome{result: "timeout", abnorm: true}, false
	}
	desc, _, _, _ := exitDescription(p.state, nil)
	if p.state.Success() || c.IgnoreFailure {
		return outcome{}, true
	}
	s.sink.note(u.Name + ": Control process exited, " + desc)
	return outcome{result: "exit-code"}, false
}

// killControl ends a control process and its process group: SIGTERM, then SIGKILL after
// TimeoutStopSec.
func killControl(u *Unit, p *proc) {
	_ = syscall.Kill(-p.pid, syscall.SIGTERM)
	_ = syscall.Kill(-p.pid, syscall.SIGCONT)
	t := time.NewTimer(u.TimeoutStopSec)
	defer t.Stop()
	select {
	case <-p.exited:
	case <-t.C:
		_ = syscall.Kill(-p.pid, syscall.SIGKILL)
		<-p.exited
	}
	waitGroupGone(p.pid, time.Now().Add(u.TimeoutStopSec))
}

// terminate stops a process by the unit's KillMode: SIGTERM (and SIGCONT) to the whole
// process group (control-group), to the main process only (process, mixed), or nothing
// (none); SIGKILL after TimeoutStopSec; then the rest of the group (control-group, mixed).
// The outcome's result is success, exit-code or signal by how the main process exited
// (SuccessExitStatus= counts), or timeout when it had to be killed.
func (m *Manager) terminate(s *service, u *Unit, p *proc) outcome {
	s.set("deactivating", "stop-sigterm", "")
	deadline := time.Now().Add(u.TimeoutStopSec)
	switch u.KillMode {
	case "control-group":
		_ = syscall.Kill(-p.pid, syscall.SIGTERM)
		_ = syscall.Kill(-p.pid, syscall.SIGCONT)
	case "process", "mixed":
		_ = syscall.Kill(p.pid, syscall.SIGTERM)
		_ = syscall.Kill(p.pid, syscall.SIGCONT)
	}
	t := time.NewTimer(time.Until(deadline))
	timedOut := false
	select {
	case <-p.exited:
		t.Stop()
	case <-t.C:
		timedOut = true
		s.sink.note(u.Name + ": State 'stop-sigterm' timed out. Killing.")
		if u.KillMode == "process" || u.KillMode == "none" {
			_ = syscall.Kill(p.pid, syscall.SIGKILL)
		} else {
			_ = syscall.Kill(-p.pid, syscall.SIGKILL)
		}
		<-p.exited
	}
	desc, code, clean, signaled := exitDescription(p.state, u)
	s.mu.Lock()
	s.mainPID, s.exitDesc, s.exitCode = 0, desc, code
	s.mu.Unlock()
	m.cleanGroup(s, u, p.pid, deadline)
	m.log.Info("unit stopped", "unit", u.Name, "pid", p.pid, "status", desc)
	o := outcome{clean: clean, result: "success"}
	switch {
	case timedOut:
		o.result, o.abnorm = "timeout", true
	case clean:
		return o
	case signaled:
		o.result, o.abnorm = "signal", true
	default:
		o.result = "exit-code"
	}
	s.sink.note(u.Name + ": Main process exited, " + desc)
	return o
}

// cleanGroup ends what is left of a process group after its leader exited: nothing for
// KillMode=process or none, SIGKILL for mixed, SIGTERM then SIGKILL at the deadline for
// control-group.
func (m *Manager) cleanGroup(s *service, u *Unit, pgid int, deadline time.Time) {
	if u.KillMode == "process" || u.KillMode == "none" || !groupAlive(pgid) {
		return
	}
	if u.KillMode == "mixed" {
		_ = syscall.Kill(-pgid, syscall.SIGKILL)
	} else {
		_ = syscall.Kill(-pgid, syscall.SIGTERM)
		_ = syscall.Kill(-pgid, syscall.SIGCONT)
	}
	if waitGroupGone(pgid, deadline) {
		return
	}
	s.sink.note(u.Name + ": processes left after the main process; killing them.")
	_ = syscall.Kill(-pgid, syscall.SIGKILL)
	waitGroupGone(pgid, time.Now().Add(5*time.Second))
}

// stateDirs creates StateDirectory= under /var/lib with StateDirectoryMode.
func (m *Manager) stateDirs(u *Unit) error {
	for _, d := range u.StateDirectory {
		p := filepath.Join(m.o.Root, "var/lib", d)
		if err := os.MkdirAll(p, u.StateDirMode); err != nil {
			return fmt.Errorf("create StateDirectory %s: %w", d, err)
		}
		if err := os.Chmod(p, u.StateDirMode); err != nil {
			return fmt.Errorf("set the mode of StateDirectory %s: %w", d, err)
		}
	}
	return nil
}

// readNotify reads sd_notify datagrams until the socket is closed and closes ready at
// the first READY=1. It keeps reading after that: a service that notifies again (haproxy
// at every reload) would block once the socket's queue is full.
func readNotify(c *net.UnixConn, ready chan struct{}) {
	buf := make([]byte, 4096)
	isReady := false
	for {
		n, err := c.Read(buf)
		if err != nil {
			return
		}
		if !isReady && slices.Contains(strings.Split(string(buf[:n]), "\n"), "READY=1") {
			isReady = true
			close(ready)
		}
	}
}
