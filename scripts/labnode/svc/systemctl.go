package svc

import (
	"errors"
	"fmt"
	"path"
	"path/filepath"
	"strconv"
	"strings"
	"time"
)

// reply is one systemctl invocation's output and exit code.
type reply struct {
	Stdout string `json:"stdout"`
	Stderr string `json:"stderr"`
	Code   int    `json:"code"`
}

func (r *reply) out(format string, a ...any) { r.Stdout += fmt.Sprintf(format, a...) + "\n" }
func (r *reply) err(format string, a ...any) { r.Stderr += fmt.Sprintf(format, a...) + "\n" }

// worst keeps the first non-zero exit code.
func (r *reply) worst(code int) {
	if r.Code == 0 {
		r.Code = code
	}
}

// flags are the systemctl options the lab accepts.
type flags struct {
	quiet, now, noBlock, value bool
	props                      []string
	lines                      int
}

// systemctl runs one systemctl command line (without the program name).
func (m *Manager) systemctl(args []string) reply {
	var r reply
	f := flags{lines: 10}
	var pos []string
	for i := 0; i < len(args); i++ {
		a := args[i]
		val := func() (string, bool) {
			if i+1 >= len(args) {
				r.err("systemctl: option '%s' requires an argument", a)
				r.Code = 1
				return "", false
			}
			i++
			return args[i], true
		}
		switch {
		case a == "--":
			pos = append(pos, args[i+1:]...)
			i = len(args)
		case a == "-q" || a == "--quiet":
			f.quiet = true
		case a == "--now":
			f.now = true
		case a == "--no-block":
			f.noBlock = true
		case a == "--value":
			f.value = true
		case a == "--no-pager" || a == "--system" || a == "--no-ask-password" || a == "--full" || a == "-l" ||
			a == "--no-legend" || a == "--plain" || a == "--all" || a == "-a" || a == "--force" || a == "-f" ||
			a == "--no-reload" || strings.HasPrefix(a, "--output=") || strings.HasPrefix(a, "--job-mode="):
		case a == "-o" || a == "--output":
			if _, ok := val(); !ok {
				return r
			}
		case a == "-p" || a == "--property" || a == "-P":
			v, ok := val()
			if !ok {
				return r
			}
			f.props = append(f.props, strings.Split(v, ",")...)
			f.value = f.value || a == "-P"
		case strings.HasPrefix(a, "--property="):
			f.props = append(f.props, strings.Split(strings.TrimPrefix(a, "--property="), ",")...)
		case strings.HasPrefix(a, "-p") && len(a) > 2:
			f.props = append(f.props, strings.Split(a[2:], ",")...)
		case a == "-n" || a == "--lines":
			v, ok := val()
			if !ok {
				return r
			}
			f.lines, _ = strconv.Atoi(v)
		case strings.HasPrefix(a, "--lines="):
			f.lines, _ = strconv.Atoi(strings.TrimPrefix(a, "--lines="))
		case a == "--user" || a == "--global":
			r.err("systemctl: %s is not supported by the lab service manager (it runs the system instance only)", a)
			r.Code = 1
			return r
		case strings.HasPrefix(a, "-") && a != "-":
			r.err("systemctl: unrecognized option '%s'", a)
			r.Code = 1
			return r
		default:
			pos = append(pos, a)
		}
	}
	if len(pos) == 0 {
		r.err("systemctl (labnode): a command is required, e.g. systemctl status kubelet")
		r.Code = 1
		return r
	}
	verb, names := pos[0], pos[1:]
	units := make([]string, 0, len(names))
	for _, n := range names {
		u, err := unitName(n)
		if err != nil {
			r.err("%v", err)
			r.Code = 1
			return r
		}
		units = append(units, u)
	}
	needUnits := func() bool {
		if len(units) == 0 {
			r.err("Too few arguments.")
			r.Code = 1
			return false
		}
		return true
	}
	switch verb {
	case "daemon-reload", "daemon-reexec":
		if len(units) > 0 {
			r.err("This command expects no arguments.")
			r.Code = 1
		}
	case "start", "restart", "try-restart", "reload", "reload-or-restart", "try-reload-or-restart", "condrestart", "force-reload":
		if needUnits() {
			for _, u := range units {
				m.job(&r, verb, u, f.noBlock)
			}
		}
	case "stop":
		if needUnits() {
			for _, u := range units {
				m.stop(&r, u, f.noBlock)
			}
		}
	case "enable", "disable":
		if needUnits() {
			m.install(&r, verb, units, f)
		}
	case "is-active", "is-failed":
		if needUnits() {
			m.isActive(&r, verb, units, f.quiet)
		}
	case "is-enabled":
		if needUnits() {
			m.isEnabled(&r, units, f.quiet)
		}
	case "status":
		if len(units) == 0 {
			r.err("systemctl (labnode): status needs a unit, e.g. systemctl status kubelet")
			r.Code = 1
			return r
		}
		m.status(&r, units, f.lines)
	case "show":
		if len(units) == 0 {
			r.err("systemctl (labnode): show needs a unit, e.g. systemctl show -p ActiveState kubelet")
			r.Code = 1
			return r
		}
		m.show(&r, units, f)
	case "reset-failed":
		for _, u := range units {
			m.ResetFailed(u)
		}
	default:
		r.err("Unknown command verb '%s'.", verb)
		r.Code = 1
	}
	return r
}

// job runs start, restart, try-restart, reload or their combinations and words a
// failure as systemctl does.
func (m *Manager) job(r *reply, verb, u string, noBlock bool) {
	do := m.Start
	switch verb {
	case "restart":
		do = m.Restart
	case "try-restart", "condrestart":
		do = m.TryRestart
	case "reload":
		do = m.Reload
	case "reload-or-restart":
		do = func(u string) error { return m.ReloadOrRestart(u, false) }
	case "try-reload-or-restart", "force-reload":
		do = func(u string) error { return m.ReloadOrRestart(u, true) }
	}
	if noBlock {
		if _, _, _, err := findUnit(m.o.Root, m.o.UnitDirs, u); err != nil && !m.loaded(u) {
			r.err("Failed to %s %s: Unit %s not found.", verbWord(verb), u, u)
			r.worst(5)
			return
		}
		go func() { _ = do(u) }() // the outcome shows in status and the unit's log
		return
	}
	err := do(u)
	var le *loadError
	switch {
	case err == nil:
	case errors.Is(err, errNotFound):
		r.err("Failed to %s %s: Unit %s not found.", verbWord(verb), u, u)
		r.worst(5)
	case errors.Is(err, errMasked):
		r.err("Failed to %s %s: Unit %s is masked.", verbWord(verb), u, u)
		r.worst(1)
	case errors.As(err, &le):
		r.err("Failed to %s %s: Unit %s has a bad unit file setting.", verbWord(verb), u, u)
		r.err("%s: %v", u, le.err)
		r.worst(1)
	case errors.Is(err, errStopped):
		r.err("Job for %s canceled.", u)
		r.worst(1)
	case errors.Is(err, errNoReload):
		r.err("Failed to %s %s: Job type reload is not applicable for unit %s.", verbWord(verb), u, u)
		r.worst(1)
	case errors.Is(err, errNotActive):
		r.err("%s is not active, cannot reload.", u)
		r.worst(1)
	case errors.Is(err, errReload):
		r.err("Job for %s failed.", u)
		r.err("See \"systemctl status %s\" and %s for details.", u, m.logPath(u))
		r.worst(1)
	default:
		r.err("Job for %s failed because %v.", u, err)
		r.err("See \"systemctl status %s\" and %s for details.", u, m.logPath(u))
		r.worst(1)
	}
}

func verbWord(verb string) string {
	switch verb {
	case "start":
		return "start"
	case "try-restart", "condrestart":
		return "try-restart"
	case "reload":
		return "reload"
	case "reload-or-restart", "try-reload-or-restart", "force-reload":
		return verb
	}
	return "restart"
}

func (m *Manager) logPath(u string) string {
	return filepath.Join(m.o.LogDir, strings.TrimSuffix(u, ".service")+".log")
}

func (m *Manager) stop(r *reply, u string, noBlock bool) {
	if _, _, _, err := findUnit(m.o.Root, m.o.UnitDirs, u); err != nil && !m.loaded(u) {
		r.err("Failed to stop %s: Unit %s not loaded.", u, u)
		r.worst(5)
		return
	}
	if noBlock {
		go func() { _ = m.Stop(u) }() // Stop cannot fail
		return
	}
	_ = m.Stop(u) // Stop cannot fail
}

func (m *Manager) install(r *reply, verb string, units []string, f flags) {
	for _, u := range units {
		var msgs []string
		var err error
		if verb == "enable" {
			msgs, err = m.Enable(u)
		} else {
			msgs, err = m.Disable(u)
		}
		for _, msg := range msgs {
			r.err("%s", msg)
		}
		switch {
		case err == nil:
		case errors.Is(err, errNotFound):
			r.err("Failed to %s unit: Unit file %s does not exist.", verb, u)
			r.worst(1)
			continue
		case errors.Is(err, errMasked):
			r.err("Failed to %s unit: Unit file %s is masked.", verb, u)
			r.worst(1)
			continue
		case errors.Is(err, errNoInstall):
			r.err("%v", err)
		default:
			r.err("Failed to %s unit: %v", verb, err)
			r.worst(1)
			continue
		}
		if f.now {
			if verb == "enable" {
				m.job(r, "start", u, f.noBlock)
			} else {
				m.stop(r, u, f.noBlock)
			}
		}
	}
}

// activeState is what is-active prints for a unit ("inactive" for one never seen).
func (m *Manager) activeState(u string) string {
	s := m.known(u)
	if s == nil {
		return "inactive"
	}
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.active
}

func (m *Manager) isActive(r *reply, verb string, units []string, quiet bool) {
	want := "active"
	if verb == "is-failed" {
		want = "failed"
	}
	code := map[string]int{"is-active": 3, "is-failed": 1}[verb]
	for _, u := range units {
		st := m.activeState(u)
		if !quiet {
			r.out("%s", st)
		}
		if st == want || (want == "active" && st == "reloading") {
			code = 0
		}
	}
	r.Code = code
}

func (m *Manager) isEnabled(r *reply, units []string, quiet bool) {
	code := 1
	for _, u := range units {
		st, err := m.UnitFileState(u)
		if err != nil {
			if errors.Is(err, errNotFound) {
				r.err("Failed to get unit file state for %s: No such file or directory", u)
			} else {
				r.err("Failed to get unit file state for %s: %v", u, err)
			}
			continue
		}
		if !quiet {
			r.out("%s", st)
		}
		if st == "enabled" || st == "static" {
			code = 0
		}
	}
	r.Code = code
}

// view is a snapshot of what status and show print about a unit.
type view struct {
	name                       string
	u                          *Unit // nil when the file is gone
	loadState                  string
	loadErr                    error
	fileState                  string
	active, sub, result        string
	since                      time.Time
	mainPID, lastPID, exitCode int
	exitDesc, mainLine         string
	restarts                   int
	condition                  string
	known                      bool
}

func (m *Manager) view(name string) view {
	v := view{name: name, loadState: "loaded", active: "inactive", sub: "dead", result: "success"}
	u, err := loadUnit(m.o.Root, m.o.UnitDirs, name)
	switch {
	case errors.Is(err, errNotFound):
		v.loadState = "not-found"
	case err != nil:
		v.loadState, v.loadErr = "bad-setting", err
		v.u, _ = loadInstall(m.o.Root, m.o.UnitDirs, name)
	case u.Masked:
		v.loadState, v.u = "masked", u
	default:
		v.u = u
	}
	if v.u != nil {
		v.fileState, _ = m.UnitFileState(name)
	}
	if s := m.known(name); s != nil {
		s.mu.Lock()
		v.known = s.run != nil || !s.since.IsZero()
		v.active, v.sub, v.since = s.active, s.sub, s.since
		if s.result != "" {
			v.result = s.result
		}
		v.mainPID, v.lastPID, v.exitCode, v.exitDesc, v.mainLine = s.mainPID, s.lastPID, s.exitCode, s.exitDesc, s.mainLine
		v.restarts, v.condition = s.restarts, s.conditions
		if v.u == nil && s.unit != nil && v.known {
			v.u = s.unit
		}
		s.mu.Unlock()
	}
	return v
}

func (m *Manager) status(r *reply, units []string, lines int) {
	for i, name := range units {
		v := m.view(name)
		if v.loadState == "not-found" && !v.known {
			r.err("Unit %s could not be found.", name)
			r.worst(4)
			continue
		}
		if i > 0 && r.Stdout != "" {
			r.Stdout += "\n"
		}
		dot := "○"
		switch v.active {
		case "active", "activating", "deactivating", "reloading":
			dot = "●"
		case "failed":
			dot = "×"
		}
		title := name
		if v.u != nil && v.u.Description != "" {
			title += " - " + v.u.Description
		}
		r.out("%s %s", dot, title)
		switch v.loadState {
		case "not-found":
			r.out("     Loaded: not-found (Reason: Unit %s not found.)", name)
		case "masked":
			r.out("     Loaded: masked (Reason: Unit %s is masked.)", name)
		case "bad-setting":
			r.out("     Loaded: bad-setting (Reason: Unit %s has a bad unit file setting.)", name)
			r.out("             %v", v.loadErr)
		default:
			r.out("     Loaded: loaded (%s; %s; preset: enabled)", v.u.Path, v.fileState)
		}
		if v.u != nil && len(v.u.DropIns) > 0 {
			label := "    Drop-In: "
			var dir string
			var files []string
			flush := func() {
				if dir != "" {
					r.out("%s%s", label, dir)
					r.out("             └─%s", strings.Join(files, ", "))
					label = "             "
				}
			}
			for _, d := range v.u.DropIns {
				if path.Dir(d) != dir {
					flush()
					dir, files = path.Dir(d), nil
				}
				files = append(files, path.Base(d))
			}
			flush()
		}
		state := v.active + " (" + v.sub + ")"
		if v.active == "failed" {
			state = v.active
		}
		if (v.active == "failed" || v.sub == "auto-restart") && v.result != "success" && v.result != "" {
			state += " (Result: " + v.result + ")"
		}
		if v.since.IsZero() {
			r.out("     Active: %s", state)
		} else {
			r.out("     Active: %s since %s; %s ago", state, v.since.Format("Mon 2006-01-02 15:04:05 MST"), ago(time.Since(v.since)))
		}
		if v.condition != "" {
			r.out("  Condition: start condition failed at %s; %s ago", v.since.Format("Mon 2006-01-02 15:04:05 MST"), ago(time.Since(v.since)))
			r.out("             └─ %s was not met", v.condition)
		}
		if v.u != nil && len(v.u.Docs) > 0 {
			r.out("       Docs: %s", strings.Join(v.u.Docs, "\n             "))
		}
		switch {
		case v.mainPID > 0:
			comm := ""
			if v.u != nil && len(v.u.ExecStart) > 0 {
				comm = path.Base(v.u.ExecStart[0].Path)
			}
			r.out("   Main PID: %d (%s)", v.mainPID, comm)
		case v.exitDesc != "" && v.active != "inactive":
			if v.lastPID > 0 {
				r.out("    Process: %d ExecStart=%s (%s)", v.lastPID, v.mainLine, v.exitDesc)
				r.out("   Main PID: %d (%s)", v.lastPID, v.exitDesc)
			} else {
				r.out("    Process: ExecStart=%s (%s)", v.mainLine, v.exitDesc)
			}
		}
		if s := m.known(name); s != nil && lines > 0 {
			if tail := s.sink.tail(lines); len(tail) > 0 {
				r.out("")
				r.Stdout += strings.Join(tail, "\n") + "\n"
			}
		}
		if v.active == "active" || v.active == "reloading" {
			continue
		}
		r.worst(3)
	}
}

// ago renders a duration as systemd does: "5s", "1min 3s", "2h 5min".
func ago(d time.Duration) string {
	d = d.Truncate(time.Second)
	switch {
	case d < time.Second:
		return strconv.FormatInt(d.Milliseconds(), 10) + "ms"
	case d < time.Minute:
		return strconv.Itoa(int(d.Seconds())) + "s"
	case d < time.Hour:
		return fmt.Sprintf("%dmin %ds", int(d.Minutes()), int(d.Seconds())%60)
	}
	return fmt.Sprintf("%dh %dmin", int(d.Hours()), int(d.Minutes())%60)
}

// showOrder is the property order of a bare show.
var showOrder = []string{"Id", "Names", "Description", "Type", "Restart", "KillMode", "MainPID", "ExecMainPID",
	"ExecMainStatus", "NRestarts", "Result", "LoadState", "ActiveState", "SubState", "FragmentPath",
	"DropInPaths", "UnitFileState", "StateChangeTimestamp"}

func (m *Manager) show(r *reply, units []string, f flags) {
	for i, name := range units {
		v := m.view(name)
		p := map[string]string{
			"Id": name, "Names": name, "LoadState": v.loadState, "ActiveState": v.active, "SubState": v.sub,
			"Result": v.result, "MainPID": strconv.Itoa(v.mainPID), "ExecMainPID": strconv.Itoa(v.lastPID),
			"ExecMainStatus": strconv.Itoa(v.exitCode), "NRestarts": strconv.Itoa(v.restarts),
			"UnitFileState": v.fileState,
		}
		if v.u != nil {
			p["Description"], p["Type"], p["Restart"], p["KillMode"] = v.u.Description, v.u.Type, v.u.Restart, v.u.KillMode
			p["FragmentPath"], p["DropInPaths"] = v.u.Path, strings.Join(v.u.DropIns, " ")
		}
		if !v.since.IsZero() {
			p["StateChangeTimestamp"] = v.since.Format("Mon 2006-01-02 15:04:05 MST")
		}
		if i > 0 {
			r.Stdout += "\n"
		}
		keys := f.props
		if len(keys) == 0 {
			keys = showOrder
		}
		for _, k := range keys {
			val := p[k]
			if f.value {
				r.out("%s", val)
			} else {
				r.out("%s=%s", k, val)
			}
		}
	}
}
