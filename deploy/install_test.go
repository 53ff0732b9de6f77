// Package deploy_test checks the install script offline, under a DESTDIR.
package deploy_test

import (
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"
)

func TestInstallScriptOffline(t *testing.T) {
	bin := t.TempDir()
	for _, b := range []string{"deckhand-controller", "deckhand-agent", "deckctl"} {
		if err := os.WriteFile(filepath.Join(bin, b), []byte("#!/bin/sh\n"), 0o755); err != nil {
			t.Fatal(err)
		}
	}
	token := filepath.Join(t.TempDir(), "token")
	if err := os.WriteFile(token, []byte("abcdef.0123456789abcdef\n"), 0o600); err != nil {
		t.Fatal(err)
	}
	install := func(root string, args ...string) (string, error) {
		cmd := exec.Command("./install.sh", args...)
		cmd.Env = append(os.Environ(), "DESTDIR="+root, "PATH=/usr/bin:/bin") // no network tools needed
		out, err := cmd.CombinedOutput()
		return string(out), err
	}
	hash := "sha256:" + strings.Repeat("ab", 32)

	// --help: the usage alone, exit 0, the required options shown as required.
	for _, args := range [][]string{{"--help"}, {"controller", "--help"}} {
		out, err := install(t.TempDir(), args...)
		if err != nil || strings.Contains(out, "set -") || !strings.Contains(out, "controller --listen HOST:PORT [--bin-dir DIR]") ||
			!strings.Contains(out, "agent --controllers HOST:PORT,... [--bin-dir DIR]") || strings.Contains(out, "[--listen") {
			t.Fatalf("install.sh %v: %v\n%s", args, err, out)
		}
	}

	root := t.TempDir()
	if out, err := install(root, "agent", "--bin-dir", bin, "--controllers", "10.0.0.11:7400,10.0.0.12:7400", "--token-file", token, "--ca-cert-hash", hash); err != nil {
		t.Fatalf("agent install: %v\n%s", err, out)
	} else if !strings.Contains(out, "into "+root+"/usr/local/bin,") {
		t.Fatalf("agent install does not say where it installed (%s/usr/local/bin):\n%s", root, out)
	}
	for path, mode := range map[string]os.FileMode{
		"usr/local/bin/deckhand-agent":              0o755,
		"usr/local/bin/deckctl":                     0o755,
		"etc/systemd/system/deckhand-agent.service": 0o644,
		"etc/default/deckhand-agent":                0o600,
		"etc/deckhand/agent-token":                  0o600,
	} {
		st, err := os.Stat(filepath.Join(root, path))
		if err != nil || st.Mode().Perm() != mode {
			t.Fatalf("%s: %v %v, want mode %v", path, st, err, mode)
		}
	}
	defaults, _ := os.ReadFile(filepath.Join(root, "etc/default/deckhand-agent"))
	if !strings.Contains(string(defaults), "DECKHAND_CONTROLLERS=\"10.0.0.11:7400,10.0.0.12:7400\"") || strings.Contains(string(defaults), "abcdef.") {
		t.Fatalf("agent settings (the token must stay in its file):\n%s", defaults)
	}

	root = t.TempDir()
	if out, err := install(root, "controller", "--bin-dir", bin, "--listen", "10.0.0.12:7400", "--join", "10.0.0.11:7400", "--token-file", token, "--ca-cert-hash", hash); err != nil {
		t.Fatalf("controller install: %v\n%s", err, out)
	}
	defaults, _ = os.ReadFile(filepath.Join(root, "etc/default/deckhand-controller"))
	if !strings.Contains(string(defaults), "DECKHAND_LISTEN=10.0.0.12:7400") || !strings.Contains(string(defaults), "--join 10.0.0.11:7400 --token-file /etc/deckhand/controller-token") {
		t.Fatalf("controller settings:\n%s", defaults)
	}

	// Bad input: one line naming the option, nothing installed.
	root = t.TempDir()
	for _, args := range [][]string{
		{"agent", "--bin-dir", bin},
		{"controller", "--bin-dir", bin},
		{"controller", "--bin-dir", bin, "--listen", "10.0.0.12:7400", "--join", "10.0.0.11:7400"},
		{"worker"},
		{"controller", "--bin-dir", bin, "--listen"},
	} {
		out, err := install(root, args...)
		if err == nil || !strings.Contains(out, "--") && !strings.Contains(out, "role") {
			t.Fatalf("install %v: %v\n%s", args, err, out)
		}
	}
	if entries, _ := os.ReadDir(root); len(entries) != 0 {
		t.Fatalf("a refused install left %d entries in the root", len(entries))
	}
}
