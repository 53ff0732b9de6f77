package svc

import (
	"errors"
	"fmt"
	"io"
	"io/fs"
	"os"
	"path"
	"path/filepath"
	"sort"
	"strconv"
	"strings"
	"syscall"
	"time"
)

// DefaultUnitDirs are systemd's system unit directories, highest priority first.
var DefaultUnitDirs = []string{
	"/etc/systemd/system",
	"/run/systemd/system",
	"/usr/local/lib/systemd/system",
	"/usr/lib/systemd/system",
	"/lib/systemd/system",
}

// maxUnitFile bounds a unit file, a drop-in or an environment file.
const maxUnitFile = 1 << 20

// Defaults systemd uses when a unit does not say.
const (
	defaultRestartSec         = 100 * time.Millisecond
	defaultStartLimitInterval = 10 * time.Second
	defaultStartLimitBurst    = 5
	defaultTimeoutStart       = 90 * time.Second
	// defaultTimeoutStop is 10 s, not systemd's 90 s: a lab teardown should not hang.
	defaultTimeoutStop = 10 * time.Second
)

// Unit is a service unit as loaded from its fragment and drop-ins. Paths are as seen
// inside the host (without Options.Root).
type Unit struct {
	Name        string   // "kubelet.service"
	Path        string   // the fragment, e.g. /lib/systemd/system/kubelet.service
	DropIns     []string // applied in this order
	Description string
	Docs        []string
	// ConditionPathExists: each entry must exist ("!PATH": must not) or the start is
	// skipped and the unit stays inactive, as systemd does.
	ConditionPathExists []string
	// ConditionFileNotEmpty: each entry must be a regular file (after symlinks) with a
	// size above zero ("!PATH": must not be), or the start is skipped.
	ConditionFileNotEmpty []string

	Type             string // simple (default), exec, notify, oneshot
	RemainAfterExit  bool
	ExecStartPre     []Command
	ExecStart        []Command
	ExecReload       []Command // run in order by reload, with $MAINPID set
	Environment      []string  // KEY=VALUE in order; later wins
	EnvironmentFiles []EnvFile
	WorkingDirectory string
	WorkingDirOpt    bool   // "-" prefix: a missing directory is not an error
	Restart          string // no, always, on-failure (others as systemd names them)
	RestartSec       time.Duration
	TimeoutStartSec  time.Duration
	TimeoutStopSec   time.Duration
	KillMode         string // control-group (default), process, mixed, none
	StateDirectory   []string
	StateDirMode     fs.FileMode
	// SuccessExitStatus: exit codes and signals that count as a clean exit of the main
	// process besides 0, SIGHUP, SIGINT, SIGTERM and SIGPIPE.
	SuccessCodes   []int
	SuccessSignals []syscall.Signal

	StartLimitInterval time.Duration // 0: no limit
	StartLimitBurst    int

	WantedBy   []string
	RequiredBy []string
	Masked     bool // the fragment is a symlink to /dev/null

	// Warnings are the settings the manager does not know and ignores ("FILE:LINE: ..."),
	// reported in the unit's log and the manager's log at every start.
	Warnings []string
	// Adjustments are the lab's documented departures from the unit file (labAdjust),
	// reported like Warnings.
	Adjustments []string
}

// Command is one Exec*= line.
type Command struct {
	Path          string   // the executable
	Args          []string // argv, Args[0] included, before variable expansion
	IgnoreFailure bool     // "-" prefix
	NoExpand      bool     // ":" prefix
	Line          string   // as written, for status output
}

// EnvFile is one EnvironmentFile= line.
type EnvFile struct {
	Path     string
	Optional bool // "-" prefix
}

// HasInstall reports whether enable has anything to link.
func (u *Unit) HasInstall() bool { return len(u.WantedBy)+len(u.RequiredBy) > 0 }

// errNotFound: no unit directory has the unit file.
var errNotFound = errors.New("unit not found")

// unitName normalizes "kubelet" to "kubelet.service" and rejects names that are not a
// single path element.
func unitName(s string) (string, error) {
	if s == "" || strings.ContainsAny(s, "/\x00") || s == "." || s == ".." || len(s) > 255 {
		return "", fmt.Errorf("Unit name %q is not valid.", s)
	}
	if i := strings.LastIndexByte(s, '.'); i > 0 {
		switch s[i+1:] {
		case "service", "socket", "target", "timer", "mount", "path", "slice", "scope", "device", "swap", "automount":
			return s, nil
		}
	}
	return s + ".service", nil
}

// findUnit locates NAME's fragment in the first unit directory that has it (a symlink to
// /dev/null there means masked) and its drop-ins NAME.d/*.conf in every directory (a
// drop-in name in a higher-priority directory hides the same name in lower ones), sorted
// by file name. Paths are as seen inside the host.
func findUnit(root string, dirs []string, name string) (frag string, dropins []string, masked bool, err error) {
	if !strings.HasSuffix(name, ".service") {
		return "", nil, false, errNotFound
	}
	for _, d := range dirs {
		p := path.Join(d, name)
		fi, err := os.Lstat(filepath.Join(root, p))
		if err != nil {
			continue
		}
		if fi.Mode()&fs.ModeSymlink != 0 {
			if t, err := os.Readlink(filepath.Join(root, p)); err == nil && t == "/dev/null" {
				return p, nil, true, nil
			}
		}
		frag = p
		break
	}
	if frag == "" {
		return "", nil, false, errNotFound
	}
	byName := map[string]string{}
	for _, d := range dirs {
		dd := path.Join(d, name+".d")
		ents, err := os.ReadDir(filepath.Join(root, dd))
		if err != nil {
			continue
		}
		for _, e := range ents {
			if !strings.HasSuffix(e.Name(), ".conf") || e.IsDir() {
				continue
			}
			if _, ok := byName[e.Name()]; !ok {
				byName[e.Name()] = path.Join(dd, e.Name())
			}
		}
	}
	names := make([]string, 0, len(byName))
	for n := range byName {
		names = append(names, n)
	}
	sort.Strings(names)
	for _, n := range names {
		dropins = append(dropins, byName[n])
	}
	return frag, dropins, false, nil
}

// loadUnit reads NAME's fragment and applies its drop-ins in order.
func loadUnit(root string, dirs []string, name string) (*Unit, error) {
	return load(root, dirs, name, func(entry) bool { return true })
}

// loadInstall reads only what enable and disable need: the [Install] section, so a unit
// this manager cannot run can still be enabled.
func loadInstall(root string, dirs []string, name string) (*Unit, error) {
	return load(root, dirs, name, func(e entry) bool { return e.section == "Install" })
}

func load(root string, dirs []string, name string, want func(entry) bool) (*Unit, error) {
	frag, dropins, masked, err := findUnit(root, dirs, name)
	if err != nil {
		return nil, err
	}
	u := &Unit{Name: name, Path: frag, DropIns: dropins, Masked: masked}
	if masked {
		return u, nil
	}
	s := newSettings()
	for _, f := range append([]string{frag}, dropins...) {
		data, err := readBounded(filepath.Join(root, f))
		if err != nil {
			return nil, fmt.Errorf("load %s: %w", f, err)
		}
		for _, e := range parseUnitFile(string(data)) {
			if !want(e) {
				continue
			}
			known, err := s.apply(e)
			if err != nil {
				return nil, fmt.Errorf("%s:%d: %w", f, e.line, err)
			}
			if !known {
				s.warnings = append(s.warnings, fmt.Sprintf("%s:%d: %s= in [%s] is not supported by the lab service manager; ignoring it", f, e.line, e.key, e.section))
			}
		}
	}
	if err := s.finish(u, want(entry{section: "Service"})); err != nil {
		return nil, fmt.Errorf("%s: %w", name, err)
	}
	return u, nil
}

func readBounded(p string) ([]byte, error) {
	f, err := os.Open(p)
	if err != nil {
		return nil, err
	}
	defer f.Close()
	data, err := io.ReadAll(io.LimitReader(f, maxUnitFile+1))
	if err != nil {
		return nil, err
	}
	if len(data) > maxUnitFile {
		return nil, fmt.Errorf("%s is more than the %d bytes a unit or environment file may have", p, maxUnitFile)
	}
	return data, nil
}

// entry is one KEY=VALUE assignment of a unit file.
type entry struct {
	section, key, value string
	line                int
}

// parseUnitFile splits a unit file into assignments: [Section] headers, "#" and ";"
// comments, a trailing backslash continues the line (the backslash becomes a space, and
// comment lines inside a continuation are skipped, as systemd does). Lines that are not
// assignments are ignored, as systemd ignores them with a warning.
func parseUnitFile(text string) []entry {
	var out []entry
	section := ""
	lines := strings.Split(strings.ReplaceAll(text, "\r\n", "\n"), "\n")
	for i := 0; i < len(lines); i++ {
		lineNo := i + 1
		l := strings.TrimSpace(lines[i])
		if l == "" || l[0] == '#' || l[0] == ';' {
			continue
		}
		for strings.HasSuffix(l, "\\") && i+1 < len(lines) {
			l = strings.TrimSuffix(l, "\\") + " "
			for i+1 < len(lines) {
				i++
				next := strings.TrimSpace(lines[i])
				if next != "" && (next[0] == '#' || next[0] == ';') {
					continue
				}
				l += next
				break
			}
		}
		l = strings.TrimSpace(strings.TrimSuffix(l, "\\"))
		if strings.HasPrefix(l, "[") && strings.HasSuffix(l, "]") {
			section = l[1 : len(l)-1]
			continue
		}
		k, v, ok := strings.Cut(l, "=")
		if !ok {
			continue
		}
		out = append(out, entry{section: section, key: strings.TrimSpace(k), value: strings.TrimSpace(v), line: lineNo})
	}
	return out
}

// settings accumulates assignments across the fragment and its drop-ins.
type settings struct {
	u          Unit
	warnings   []string
	startLimit *time.Duration
	burst      *int
	stateMode  *fs.FileMode
}

func newSettings() *settings { return &settings{} }

// errUnknownKey: a setting set does not handle.
var errUnknownKey = errors.New("unknown key")

// apply applies one assignment. known is false for a setting the manager neither
// handles nor lists in ignoredDirectives (the caller reports it).
func (s *settings) apply(e entry) (known bool, err error) {
	if strings.HasPrefix(e.section, "X-") {
		return true, nil // systemd ignores X- sections by design
	}
	if _, ok := ignoredDirectives[e.section+"."+e.key]; ok {
		return true, nil
	}
	if err := s.set(e); err != nil {
		if errors.Is(err, errUnknownKey) {
			return false, nil
		}
		return true, err
	}
	return true, nil
}

func (s *settings) set(e entry) error {
	u := &s.u
	switch e.section + "." + e.key {
	case "Unit.Description":
		u.Description = e.value
	case "Unit.Documentation":
		if e.value == "" {
			u.Docs = nil
		} else {
			u.Docs = append(u.Docs, strings.Fields(e.value)...)
		}
	case "Unit.ConditionPathExists", "Unit.ConditionFileNotEmpty":
		list := &u.ConditionPathExists
		if e.key == "ConditionFileNotEmpty" {
			list = &u.ConditionFileNotEmpty
		}
		if e.value == "" {
			*list = nil
		} else {
			*list = append(*list, strings.TrimPrefix(e.value, "|"))
		}
	case "Unit.StartLimitIntervalSec", "Service.StartLimitInterval", "Service.StartLimitIntervalSec":
		d, err := parseTimespan(e.value)
		if err != nil {
			return fmt.Errorf("%s=%s: %w", e.key, e.value, err)
		}
		s.startLimit = &d
	case "Unit.StartLimitBurst", "Service.StartLimitBurst":
		n, err := strconv.Atoi(e.value)
		if err != nil || n < 0 {
			return fmt.Errorf("%s=%s: want a count like 5", e.key, e.value)
		}
		s.burst = &n
	case "Service.Type":
		u.Type = e.value
	case "Service.RemainAfterExit":
		b, err := parseBool(e.value)
		if err != nil {
			return fmt.Errorf("RemainAfterExit=%s: %w", e.value, err)
		}
		u.RemainAfterExit = b
	case "Service.ExecStart", "Service.ExecStartPre", "Service.ExecReload":
		list := &u.ExecStart
		switch e.key {
		case "ExecStartPre":
			list = &u.ExecStartPre
		case "ExecReload":
			list = &u.ExecReload
		}
		if e.value == "" {
			*list = nil
			return nil
		}
		c, err := parseCommand(e.value)
		if err != nil {
			return fmt.Errorf("%s=%s: %w", e.key, e.value, err)
		}
		*list = append(*list, c)
	case "Service.Environment":
		if e.value == "" {
			u.Environment = nil
			return nil
		}
		words, err := splitWords(e.value)
		if err != nil {
			return fmt.Errorf("Environment=%s: %w", e.value, err)
		}
		for _, w := range words {
			if k, _, ok := strings.Cut(w, "="); ok && validEnvName(k) {
				u.Environment = append(u.Environment, w)
			}
		}
	case "Service.EnvironmentFile":
		if e.value == "" {
			u.EnvironmentFiles = nil
			return nil
		}
		f := EnvFile{Path: e.value}
		if strings.HasPrefix(f.Path, "-") {
			f.Path, f.Optional = f.Path[1:], true
		}
		if !path.IsAbs(f.Path) {
			return fmt.Errorf("EnvironmentFile=%s: the path must be absolute", e.value)
		}
		u.EnvironmentFiles = append(u.EnvironmentFiles, f)
	case "Service.WorkingDirectory":
		u.WorkingDirectory, u.WorkingDirOpt = e.value, false
		if strings.HasPrefix(e.value, "-") {
			u.WorkingDirectory, u.WorkingDirOpt = e.value[1:], true
		}
	case "Service.Restart":
		switch e.value {
		case "no", "always", "on-failure", "on-success", "on-abnormal", "on-abort", "on-watchdog":
			u.Restart = e.value
		default:
			return fmt.Errorf("Restart=%s: want no, always, on-failure, on-success, on-abnormal, on-abort or on-watchdog", e.value)
		}
	case "Service.RestartSec", "Service.TimeoutStartSec", "Service.TimeoutStopSec", "Service.TimeoutSec":
		d, err := parseTimespan(e.value)
		if err != nil {
			return fmt.Errorf("%s=%s: %w", e.key, e.value, err)
		}
		switch e.key {
		case "RestartSec":
			u.RestartSec = d
		case "TimeoutStartSec":
			u.TimeoutStartSec = d
		case "TimeoutStopSec":
			u.TimeoutStopSec = d
		default:
			u.TimeoutStartSec, u.TimeoutStopSec = d, d
		}
	case "Service.KillMode":
		switch e.value {
		case "control-group", "process", "mixed", "none":
			u.KillMode = e.value
		default:
			return fmt.Errorf("KillMode=%s: want control-group, process, mixed or none", e.value)
		}
	case "Service.StateDirectory":
		if e.value == "" {
			u.StateDirectory = nil
			return nil
		}
		for _, d := range strings.Fields(e.value) {
			d, _, _ = strings.Cut(d, ":")
			if path.IsAbs(d) || strings.Contains(d, "..") {
				return fmt.Errorf("StateDirectory=%s: want a path relative to /var/lib", e.value)
			}
			u.StateDirectory = append(u.StateDirectory, d)
		}
	case "Service.StateDirectoryMode":
		m, err := strconv.ParseUint(e.value, 8, 32)
		if err != nil || m > 0o7777 {
			return fmt.Errorf("StateDirectoryMode=%s: want an octal mode like 0755", e.value)
		}
		fm := fs.FileMode(m)
		s.stateMode = &fm
	case "Service.SuccessExitStatus":
		if e.value == "" {
			u.SuccessCodes, u.SuccessSignals = nil, nil
			return nil
		}
		for _, w := range strings.Fields(e.value) {
			if n, err := strconv.Atoi(w); err == nil && n >= 0 && n <= 255 {
				u.SuccessCodes = append(u.SuccessCodes, n)
				continue
			}
			sig, ok := signalByName(w)
			if !ok {
				return fmt.Errorf("SuccessExitStatus=%s: %q is neither an exit code (0-255) nor a signal name like SIGKILL", e.value, w)
			}
			u.SuccessSignals = append(u.SuccessSignals, sig)
		}
	case "Install.WantedBy", "Install.RequiredBy":
		list := &u.WantedBy
		if e.key == "RequiredBy" {
			list = &u.RequiredBy
		}
		if e.value == "" {
			*list = nil
			return nil
		}
		for _, t := range strings.Fields(e.value) {
			if _, err := unitName(t); err != nil {
				return fmt.Errorf("%s=%s: %w", e.key, e.value, err)
			}
			*list = append(*list, t)
		}
	default:
		return errUnknownKey
	}
	return nil
}

// finish fills defaults and checks what systemd refuses to load.
func (s *settings) finish(u *Unit, service bool) error {
	name, frag, drop := u.Name, u.Path, u.DropIns
	*u = s.u
	u.Name, u.Path, u.DropIns = name, frag, drop
	u.Warnings = s.warnings
	if !service {
		return nil
	}
	if u.Type == "" {
		u.Type = "simple"
	}
	switch u.Type {
	case "simple", "exec", "notify", "oneshot":
	case "forking", "dbus", "idle", "notify-reload":
		return fmt.Errorf("Type=%s is not supported by the lab service manager (simple, exec, notify and oneshot are)", u.Type)
	default:
		return fmt.Errorf("Type=%s: want simple, exec, notify or oneshot", u.Type)
	}
	if len(u.ExecStart) == 0 {
		return errors.New("Service has no ExecStart= setting. Refusing.")
	}
	if len(u.ExecStart) > 1 && u.Type != "oneshot" {
		return errors.New("Service has more than one ExecStart= setting, which is only allowed for Type=oneshot services. Refusing.")
	}
	if u.Restart == "" {
		u.Restart = "no"
	}
	if u.RestartSec == 0 {
		u.RestartSec = defaultRestartSec
	}
	if u.TimeoutStartSec == 0 {
		u.TimeoutStartSec = defaultTimeoutStart
	}
	if u.TimeoutStopSec == 0 {
		u.TimeoutStopSec = defaultTimeoutStop
	}
	if u.KillMode == "" {
		u.KillMode = "control-group"
	}
	u.StartLimitInterval, u.StartLimitBurst = defaultStartLimitInterval, defaultStartLimitBurst
	if s.startLimit != nil {
		u.StartLimitInterval = *s.startLimit
	}
	if s.burst != nil {
		u.StartLimitBurst = *s.burst
	}
	u.StateDirMode = 0o755
	if s.stateMode != nil {
		u.StateDirMode = *s.stateMode
	}
	labAdjust(u)
	return nil
}

// parseCommand splits an Exec*= value into words (quotes and backslash escapes) and
// strips systemd's executable prefixes: "-" (failure ignored), "@" (the second word is
// argv[0]), ":" (no variable expansion), "+", "!", "!!" (privilege handling: ignored).
func parseCommand(v string) (Command, error) {
	c := Command{Line: v}
	words, err := splitWords(v)
	if err != nil {
		return c, err
	}
	if len(words) == 0 {
		return c, errors.New("empty command")
	}
	first := words[0]
	at := false
	for len(first) > 0 && strings.ContainsRune("-@:+!", rune(first[0])) {
		switch first[0] {
		case '-':
			c.IgnoreFailure = true
		case '@':
			at = true
		case ':':
			c.NoExpand = true
		}
		first = first[1:]
	}
	if first == "" {
		return c, errors.New("no executable after the prefixes")
	}
	c.Path = first
	if at {
		if len(words) < 2 {
			return c, errors.New("\"@\" needs argv[0] after the executable")
		}
		c.Args = words[1:]
	} else {
		c.Args = append([]string{first}, words[1:]...)
	}
	return c, nil
}

// splitWords splits on whitespace, honouring double and single quotes and backslash
// escapes (\n, \t, \\, \", \' and a backslash before any other character).
func splitWords(s string) ([]string, error) {
	var words []string
	var cur strings.Builder
	inWord := false
	var quote byte
	for i := 0; i < len(s); i++ {
		c := s[i]
		switch {
		case c == '\\':
			if i+1 >= len(s) {
				return nil, errors.New("a trailing backslash escapes nothing")
			}
			i++
			cur.WriteByte(unescape(s[i]))
			inWord = true
		case quote != 0:
			if c == quote {
				quote = 0
			} else {
				cur.WriteByte(c)
			}
		case c == '"' || c == '\'':
			quote, inWord = c, true
		case c == ' ' || c == '\t' || c == '\n':
			if inWord {
				words = append(words, cur.String())
				cur.Reset()
				inWord = false
			}
		default:
			cur.WriteByte(c)
			inWord = true
		}
	}
	if quote != 0 {
		return nil, fmt.Errorf("unbalanced %c quote", quote)
	}
	if inWord {
		words = append(words, cur.String())
	}
	return words, nil
}

func unescape(c byte) byte {
	switch c {
	case 'n':
		return '\n'
	case 't':
		return '\t'
	}
	return c
}

func parseBool(v string) (bool, error) {
	switch strings.ToLower(v) {
	case "1", "yes", "y", "true", "t", "on":
		return true, nil
	case "0", "no", "n", "false", "f", "off":
		return false, nil
	}
	return false, errors.New("want yes or no")
}

// parseTimespan reads systemd time spans: "10" (seconds), "100ms", "2min 5s", "infinity"
// (returned as 0 for limits: no limit).
func parseTimespan(v string) (time.Duration, error) {
	v = strings.TrimSpace(v)
	if v == "infinity" {
		return 0, nil
	}
	if v == "" {
		return 0, errors.New("want a time span like 10s or 100ms")
	}
	units := map[string]time.Duration{
		"": time.Second, "s": time.Second, "sec": time.Second, "second": time.Second, "seconds": time.Second,
		"us": time.Microsecond, "usec": time.Microsecond, "ms": time.Millisecond, "msec": time.Millisecond,
		"m": time.Minute, "min": time.Minute, "minute": time.Minute, "minutes": time.Minute,
		"h": time.Hour, "hr": time.Hour, "hour": time.Hour, "hours": time.Hour,
		"d": 24 * time.Hour, "day": 24 * time.Hour, "days": 24 * time.Hour,
	}
	var total time.Duration
	rest := v
	for rest != "" {
		rest = strings.TrimLeft(rest, " ")
		i := 0
		for i < len(rest) && (rest[i] >= '0' && rest[i] <= '9' || rest[i] == '.') {
			i++
		}
		if i == 0 {
			return 0, fmt.Errorf("want a time span like 10s or 100ms, not %q", v)
		}
		n, err := strconv.ParseFloat(rest[:i], 64)
		if err != nil {
			return 0, fmt.Errorf("want a time span like 10s or 100ms, not %q", v)
		}
		rest = strings.TrimLeft(rest[i:], " ")
		j := 0
		for j < len(rest) && rest[j] >= 'a' && rest[j] <= 'z' {
			j++
		}
		unit, ok := units[rest[:j]]
		if !ok {
			return 0, fmt.Errorf("unknown time unit %q in %q", rest[:j], v)
		}
		rest = rest[j:]
		total += time.Duration(n * float64(unit))
	}
	return total, nil
}

func validEnvName(k string) bool {
	if k == "" {
		return false
	}
	for i, c := range k {
		if !(c == '_' || c >= 'A' && c <= 'Z' || c >= 'a' && c <= 'z' || i > 0 && c >= '0' && c <= '9') {
			return false
		}
	}
	return true
}
