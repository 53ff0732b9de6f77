package svc

import (
	"errors"
	"fmt"
	"os"
	"path"
	"path/filepath"
	"sort"
	"strings"
)

// The directory enable writes its symlinks into, and the ones is-enabled reads.
const configDir = "/etc/systemd/system"

var linkDirs = []string{configDir, "/run/systemd/system"}

// links returns the symlinks enable makes for u: TARGET.wants/NAME (WantedBy=) and
// TARGET.requires/NAME (RequiredBy=) under /etc/systemd/system.
func links(u *Unit) []string {
	var out []string
	for _, t := range u.WantedBy {
		out = append(out, path.Join(configDir, t+".wants", u.Name))
	}
	for _, t := range u.RequiredBy {
		out = append(out, path.Join(configDir, t+".requires", u.Name))
	}
	return out
}

// existingLinks lists the *.wants and *.requires symlinks named like the unit in the
// directories systemctl enable writes to.
func (m *Manager) existingLinks(name string) []string {
	var out []string
	for _, d := range linkDirs {
		ents, err := os.ReadDir(filepath.Join(m.o.Root, d))
		if err != nil {
			continue
		}
		for _, e := range ents {
			if !e.IsDir() || !(strings.HasSuffix(e.Name(), ".wants") || strings.HasSuffix(e.Name(), ".requires")) {
				continue
			}
			p := path.Join(d, e.Name(), name)
			if _, err := os.Lstat(filepath.Join(m.o.Root, p)); err == nil {
				out = append(out, p)
			}
		}
	}
	sort.Strings(out)
	return out
}

// UnitFileState is what systemctl is-enabled prints: enabled, disabled, static or masked.
func (m *Manager) UnitFileState(name string) (string, error) {
	u, err := loadInstall(m.o.Root, m.o.UnitDirs, name)
	if err != nil {
		return "", err
	}
	switch {
	case u.Masked:
		return "masked", nil
	case len(m.existingLinks(name)) > 0:
		return "enabled", nil
	case !u.HasInstall():
		return "static", nil
	}
	return "disabled", nil
}

// errNoInstall: enable or disable of a unit without an [Install] section.
var errNoInstall = errors.New(`The unit files have no installation config (WantedBy=, RequiredBy=, Also=,
Alias= settings in the [Install] section, and DefaultInstance= for template
units). This means they are not meant to be enabled or disabled using systemctl.`)

// Enable makes the symlinks systemd's enable makes and returns its messages.
func (m *Manager) Enable(name string) ([]string, error) {
	m.installMu.Lock()
	defer m.installMu.Unlock()
	u, err := loadInstall(m.o.Root, m.o.UnitDirs, name)
	if err != nil {
		return nil, err
	}
	if u.Masked {
		return nil, errMasked
	}
	if !u.HasInstall() {
		return nil, errNoInstall
	}
	var msgs []string
	for _, l := range links(u) {
		host := filepath.Join(m.o.Root, l)
		if t, err := os.Readlink(host); err == nil && t == u.Path {
			continue
		}
		if err := os.MkdirAll(filepath.Dir(host), 0o755); err != nil {
			return msgs, fmt.Errorf("create %s: %w", path.Dir(l), err)
		}
		if err := os.Remove(host); err != nil && !errors.Is(err, os.ErrNotExist) {
			return msgs, fmt.Errorf("replace %s: %w", l, err)
		}
		if err := os.Symlink(u.Path, host); err != nil {
			return msgs, fmt.Errorf("link %s: %w", l, err)
		}
		msgs = append(msgs, fmt.Sprintf("Created symlink %s → %s.", l, u.Path))
	}
	return msgs, nil
}

// Disable removes the unit's symlinks from /etc/systemd/system and returns systemd's
// messages.
func (m *Manager) Disable(name string) ([]string, error) {
	m.installMu.Lock()
	defer m.installMu.Unlock()
	u, err := loadInstall(m.o.Root, m.o.UnitDirs, name)
	if err != nil {
		return nil, err
	}
	if u.Masked {
		return nil, errMasked
	}
	var msgs []string
	for _, l := range m.existingLinks(name) {
		if !strings.HasPrefix(l, configDir+"/") {
			continue
		}
		if err := os.Remove(filepath.Join(m.o.Root, l)); err != nil && !errors.Is(err, os.ErrNotExist) {
			return msgs, fmt.Errorf("remove %s: %w", l, err)
		}
		msgs = append(msgs, fmt.Sprintf("Removed %q.", l))
	}
	if len(msgs) == 0 && !u.HasInstall() {
		return nil, errNoInstall
	}
	return msgs, nil
}
