package svc

import (
	"errors"
	"strconv"
)

// Reload-job failures that systemctl words without "Job for X failed".
var (
	// errNoReload: the unit has no ExecReload=.
	errNoReload = errors.New("job type reload is not applicable")
	// errNotActive: systemd refuses to reload a unit that is not active (the job's
	// result is "invalid").
	errNotActive = errors.New("not active, cannot reload")
	// errReload: an ExecReload= command failed or timed out; the unit stays active and
	// its Result stays as it was, so systemctl says only "Job for X failed."
	errReload = errors.New("reload failed")
)

// Reload runs the unit's ExecReload= commands in order, as systemctl reload does: each
// with the unit's environment (its EnvironmentFile= read again) and $MAINPID, the first
// that fails without a "-" prefix ending the reload. The unit stays active whatever the
// outcome; only its main process exiting changes that.
func (m *Manager) Reload(name string) error {
	s := m.service(name)
	return s.queue("reload", func() error { return m.reloadLocked(s) })
}

func (m *Manager) reloadLocked(s *service) error {
	u, err := m.load(s.name)
	switch {
	case errors.Is(err, errNotFound):
		// A unit whose file is gone is reloaded as loaded (systemd keeps it until a
		// daemon-reload, and the lab reloads at every job).
		s.mu.Lock()
		u = s.unit
		running := s.run != nil
		s.mu.Unlock()
		if u == nil || !running {
			return errNotFound
		}
	case err != nil:
		m.log.Warn("unit file refused", "unit", s.name, "error", err)
		return &loadError{err}
	case u.Masked:
		return errMasked
	}
	if len(u.ExecReload) == 0 {
		return errNoReload
	}
	s.mu.Lock()
	r, pid, active, sub := s.run, s.mainPID, s.active, s.sub
	if r == nil || active != "active" {
		s.mu.Unlock()
		return errNotActive
	}
	s.mu.Unlock()
	s.set("reloading", "reload", "")
	defer func() {
		s.mu.Lock()
		defer s.mu.Unlock()
		if s.active == "reloading" { // the main process may have exited meanwhile
			s.active, s.sub = active, sub
		}
	}()
	title := u.Description
	if title == "" {
		title = u.Name
	}
	s.sink.note("Reloading " + title + "...")
	env, order, err := environment(m.o.Root, u)
	if err != nil {
		s.sink.note(u.Name + ": " + err.Error())
		s.sink.note("Reload failed for " + title + ".")
		return errReload
	}
	if pid > 0 {
		if _, ok := env["MAINPID"]; !ok {
			order = append(order, "MAINPID")
		}
		env["MAINPID"] = strconv.Itoa(pid)
	}
	for _, c := range u.ExecReload {
		if _, ok := m.control(s, u, c, env, order, nil, r, "reload"); !ok {
			s.sink.note("Reload failed for " + title + ".")
			m.log.Warn("unit reload failed", "unit", u.Name)
			return errReload
		}
	}
	s.sink.note("Reloaded " + title + ".")
	m.log.Info("unit reloaded", "unit", u.Name, "pid", pid)
	return nil
}

// ReloadOrRestart reloads the unit if it is active and has ExecReload=, else restarts
// it (starts it when inactive), as systemctl reload-or-restart does. With try, an
// inactive unit is left alone (try-reload-or-restart, force-reload).
func (m *Manager) ReloadOrRestart(name string, try bool) error {
	if u, err := m.load(name); err == nil && !u.Masked && len(u.ExecReload) > 0 && m.activeState(name) == "active" {
		return m.Reload(name)
	}
	if try {
		return m.TryRestart(name)
	}
	return m.Restart(name)
}
