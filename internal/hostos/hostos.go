// Package hostos says which operating system a host runs, from its os-release(5) file, and
// what Deckhand does on it: the package family (apt or dnf), the distributions it supports
// from which version, and their names. It is the one table of them: the agent's facts,
// preflight, packages, runtime and load-balancer tasks all read it.
package hostos

import (
	"fmt"
	"slices"
	"strconv"
	"strings"
	"unicode/utf8"
)

// Family is a package family.
type Family string

const (
	// Deb: apt and dpkg (Debian, Ubuntu).
	Deb Family = "deb"
	// RPM: dnf and rpm (Rocky Linux, AlmaLinux, RHEL, CentOS Stream).
	RPM Family = "rpm"
)

// Distro is a distribution Deckhand supports.
type Distro struct {
	// ID is os-release's ID.
	ID string
	// Name is how people call it.
	Name   string
	Family Family
	// Min is the oldest VERSION_ID supported (kubeadm's own floor: a kernel and systemd
	// recent enough, packages of containerd 1.7 or later available).
	Min string
}

// Distros are the distributions Deckhand supports, each once.
var Distros = []Distro{
	{ID: "debian", Name: "Debian", Family: Deb, Min: "11"},
	{ID: "ubuntu", Name: "Ubuntu", Family: Deb, Min: "20.04"},
	{ID: "rocky", Name: "Rocky Linux", Family: RPM, Min: "8"},
	{ID: "almalinux", Name: "AlmaLinux", Family: RPM, Min: "8"},
	{ID: "rhel", Name: "Red Hat Enterprise Linux", Family: RPM, Min: "8"},
	{ID: "centos", Name: "CentOS Stream", Family: RPM, Min: "9"},
}

// OS is what an os-release file says.
type OS struct {
	ID, VersionID, PrettyName string
	// Like is ID_LIKE's list: the distributions this one derives from.
	Like []string
}

// Parse reads an os-release file. Values may be bare, 'single-quoted' or "double-quoted"
// with \" \\ \$ \` escapes; comments and malformed lines are skipped, and a later
// assignment wins as it would in a shell. It never fails: what it does not understand is
// left empty, and every value is valid UTF-8 of at most 128 bytes.
func Parse(data []byte) OS {
	var o OS
	for line := range strings.Lines(string(data)) {
		line = strings.TrimSpace(line)
		if line == "" || line[0] == '#' {
			continue
		}
		key, val, ok := strings.Cut(line, "=")
		if !ok {
			continue
		}
		val = clean(unquote(val))
		switch key {
		case "ID":
			o.ID = val
		case "VERSION_ID":
			o.VersionID = val
		case "PRETTY_NAME":
			o.PrettyName = val
		case "ID_LIKE":
			o.Like = strings.Fields(val)
		}
	}
	return o
}

// Distro is the supported distribution the OS is, or nil.
func (o OS) Distro() *Distro {
	for i := range Distros {
		if Distros[i].ID == o.ID {
			return &Distros[i]
		}
	}
	return nil
}

// Family is the OS's package family: its own distribution's, else that of the first in
// ID_LIKE Deckhand knows (a derivative such as Oracle Linux is like rhel and fedora), else "".
func (o OS) Family() Family {
	if d := o.Distro(); d != nil {
		return d.Family
	}
	for _, id := range append([]string{o.ID}, o.Like...) {
		switch id {
		case "debian", "ubuntu":
			return Deb
		case "rhel", "centos", "fedora":
			return RPM
		}
	}
	return ""
}

// Major is VERSION_ID's first number ("9" of "9.5"), or "".
func (o OS) Major() string {
	m, _, _ := strings.Cut(o.VersionID, ".")
	return m
}

// Name is how the OS is shown: PRETTY_NAME, else ID and VERSION_ID.
func (o OS) Name() string {
	if o.PrettyName != "" {
		return o.PrettyName
	}
	if o.ID == "" {
		return "an OS without /etc/os-release"
	}
	return strings.TrimSpace(o.ID + " " + o.VersionID)
}

// Supported is nil for a distribution Deckhand supports at a version it supports, else an
// error that names the OS and says what is supported.
func (o OS) Supported() error {
	d := o.Distro()
	if d == nil {
		return fmt.Errorf("%s (ID %q) is not supported: Deckhand supports %s", o.Name(), o.ID, SupportedList())
	}
	if !atLeast(o.VersionID, d.Min) {
		return fmt.Errorf("%s (VERSION_ID %q) is older than the oldest %s supported, %s", o.Name(), o.VersionID, d.Name, d.Min)
	}
	return nil
}

// SupportedList names the supported distributions with their oldest versions.
func SupportedList() string {
	var s []string
	for _, d := range Distros {
		s = append(s, d.Name+" "+d.Min+"+")
	}
	return strings.Join(s, ", ")
}

// atLeast compares dotted versions numerically ("20.04" >= "20.04", "9.5" >= "9"); a
// version that is not dotted numbers is not at least anything.
func atLeast(v, min string) bool {
	parse := func(s string) []int {
		var out []int
		for _, p := range strings.Split(s, ".") {
			n, err := strconv.Atoi(p)
			if err != nil || n < 0 {
				return nil
			}
			out = append(out, n)
		}
		return out
	}
	a, b := parse(v), parse(min)
	if a == nil || b == nil {
		return false
	}
	for len(a) < len(b) {
		a = append(a, 0)
	}
	for len(b) < len(a) {
		b = append(b, 0)
	}
	return slices.Compare(a, b) >= 0
}

func unquote(v string) string {
	if len(v) < 2 {
		return v
	}
	switch q := v[0]; {
	case q == '\'' && v[len(v)-1] == '\'':
		return v[1 : len(v)-1]
	case q == '"' && v[len(v)-1] == '"':
		v = v[1 : len(v)-1]
		var b strings.Builder
		for i := 0; i < len(v); i++ {
			if v[i] == '\\' && i+1 < len(v) && strings.IndexByte("$\"\\`", v[i+1]) >= 0 {
				i++
			}
			b.WriteByte(v[i])
		}
		return b.String()
	}
	return v
}

// clean makes a value valid UTF-8 without control characters, at most 128 bytes.
func clean(s string) string {
	s = strings.ToValidUTF8(s, "\uFFFD")
	s = strings.Map(func(r rune) rune {
		if r < 0x20 || r == 0x7f {
			return -1
		}
		return r
	}, s)
	for len(s) > 128 {
		_, n := utf8.DecodeLastRuneInString(s)
		s = s[:len(s)-n]
	}
	return s
}

// SELinux modes.
const (
	Enforcing  = "enforcing"
	Permissive = "permissive"
	Disabled   = "disabled"
)

// SELinux paths: the kernel's current mode (selinuxfs: "1" enforcing, "0" permissive) and
// the mode at boot.
const (
	SELinuxEnforce = "/sys/fs/selinux/enforce"
	SELinuxConfig  = "/etc/selinux/config"
)

// SELinuxMode is SELinux's mode now: from the kernel's enforce file (enforce, nil when it
// is not there), else "disabled" when the host has a configuration (config, nil when none)
// but the kernel runs without SELinux, else "" (no SELinux on this host).
func SELinuxMode(enforce, config []byte) string {
	switch strings.TrimSpace(string(enforce)) {
	case "1":
		return Enforcing
	case "0":
		return Permissive
	}
	if config != nil {
		return Disabled
	}
	return ""
}

// SELinuxBootMode is the SELINUX= setting of /etc/selinux/config (the mode at the next
// boot): enforcing, permissive, disabled, or "" when the file does not set one it knows.
func SELinuxBootMode(config []byte) string {
	mode := ""
	for line := range strings.Lines(string(config)) {
		if v, ok := strings.CutPrefix(strings.TrimSpace(line), "SELINUX="); ok {
			// The value's first word: "enforcing # set by the installer" is enforcing.
			v = strings.Trim(strings.TrimSpace(v), `"'`)
			if f := strings.Fields(v); len(f) > 0 {
				v = strings.Trim(f[0], `"'`)
			}
			switch v = strings.ToLower(v); v {
			case Enforcing, Permissive, Disabled:
				mode = v
			default:
				mode = ""
			}
		}
	}
	return mode
}

// SELinuxPermissive is config with SELINUX=permissive (the line replaced, or added when
// the file has none), the other lines kept; changed is false when it already says so.
func SELinuxPermissive(config []byte) (out []byte, changed bool) {
	if SELinuxBootMode(config) == Permissive {
		return config, false
	}
	var b strings.Builder
	done := false
	for line := range strings.Lines(string(config)) {
		if strings.HasPrefix(strings.TrimSpace(line), "SELINUX=") {
			if !done {
				b.WriteString("SELINUX=permissive\n")
				done = true
			}
			continue
		}
		b.WriteString(line)
		if !strings.HasSuffix(line, "\n") {
			b.WriteString("\n")
		}
	}
	if !done {
		b.WriteString("SELINUX=permissive\n")
	}
	return []byte(b.String()), true
}
