package main

// systemctl SIMULATION: unit state under ROOT/var/lib/deckhand-sim/systemd. The containerd
// unit really runs: start launches the real containerd binary with the simulated host's
// config, and with its root, state and socket inside ROOT so that several simulated hosts
// share one machine.

import (
	"errors"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"strings"
	"syscall"
	"time"
)

// execInHostView runs in a private mount namespace: the simulated host's /etc/containerd
// and /etc/cni are bind-mounted over the machine's, so containerd reads the files the agent
// wrote, at the paths the config names, as it would on a real host.
func execInHostView() {
	if err := hostView(os.Args[2]); err != nil {
		fmt.Fprintln(os.Stderr, "systemctl (simulation):", err)
		os.Exit(1)
	}
	err := syscall.Exec(os.Args[3], os.Args[3:], os.Environ())
	fmt.Fprintln(os.Stderr, "systemctl (simulation): exec:", err)
	os.Exit(1)
}

var knownUnits = map[string]bool{"containerd": true, "kubelet": true}

func unitName(u string) (string, error) {
	u = strings.TrimSuffix(u, ".service")
	if !knownUnits[u] {
		return "", fmt.Errorf("Failed to find unit %s.service: Unit %s.service not found.", u, u)
	}
	return u, nil
}

func systemctl(r string, args []string) (int, error) {
	state := filepath.Join(r, "var/lib/deckhand-sim/systemd")
	if err := os.MkdirAll(state, 0o755); err != nil {
		return 1, err
	}
	now := false
	var rest []string
	for _, a := range args {
		switch {
		case a == "--now":
			now = true
		case a == "--quiet" || a == "-q" || a == "--no-pager":
		case strings.HasPrefix(a, "-"):
			return 1, fmt.Errorf("systemctl: unrecognized option '%s'", a)
		default:
			rest = append(rest, a)
		}
	}
	if len(rest) == 0 {
		return 1, errors.New("systemctl (simulation): a command is required")
	}
	cmd, units := rest[0], rest[1:]
	if cmd == "daemon-reload" {
		if len(units) > 0 || now {
			return 1, errors.New("systemctl: daemon-reload takes no arguments")
		}
		return 0, nil
	}
	if len(units) != 1 {
		return 1, fmt.Errorf("systemctl (simulation): %s needs exactly one unit", cmd)
	}
	u, err := unitName(units[0])
	if err != nil {
		return 5, err
	}
	enabledFile := filepath.Join(state, u+".enabled")
	switch cmd {
	case "is-enabled":
		if _, err := os.Stat(enabledFile); err == nil {
			fmt.Println("enabled")
			return 0, nil
		}
		fmt.Println("disabled")
		return 1, nil
	case "is-active":
		if active(r, state, u) {
			fmt.Println("active")
			return 0, nil
		}
		fmt.Println("inactive")
		return 3, nil
	case "enable":
		// As systemd does, enabling needs the unit file. The kubelet's comes with its
		// package or the packages task; containerd may be the machine's own (no file here).
		if u == "kubelet" && !unitFileExists(r, u) {
			return 1, fmt.Errorf("Failed to enable unit: Unit file %s.service does not exist.", u)
		}
		if err := os.WriteFile(enabledFile, nil, 0o644); err != nil {
			return 1, err
		}
		if now && !active(r, state, u) {
			return start(r, state, u)
		}
		return 0, nil
	case "disable":
		_ = os.Remove(enabledFile)
		if now {
			return stop(state, u)
		}
		return 0, nil
	case "start":
		if active(r, state, u) {
			return 0, nil
		}
		return start(r, state, u)
	case "stop":
		return stop(state, u)
	case "restart":
		if code, err := stop(state, u); err != nil {
			return code, err
		}
		return start(r, state, u)
	}
	return 1, fmt.Errorf("systemctl (simulation): unknown command %q", cmd)
}

// unitFileExists reports whether ROOT holds a unit file for u where systemd looks for one.
func unitFileExists(r, u string) bool {
	for _, d := range []string{"etc/systemd/system", "run/systemd/system", "usr/local/lib/systemd/system", "lib/systemd/system", "usr/lib/systemd/system"} {
		if exists(filepath.Join(r, d, u+".service")) {
			return true
		}
	}
	return false
}

func pidOf(state, u string) int {
	b, err := os.ReadFile(filepath.Join(state, u+".pid"))
	if err != nil {
		return 0
	}
	pid, _ := strconv.Atoi(strings.TrimSpace(string(b)))
	return pid
}

func alive(pid int) bool {
	if pid <= 0 {
		return false
	}
	b, err := os.ReadFile(fmt.Sprintf("/proc/%d/stat", pid))
	if err != nil {
		return false
	}
	// A zombie is not running.
	s := string(b)
	i := strings.LastIndex(s, ")")
	return i > 0 && len(s) > i+2 && s[i+2] != 'Z'
}

func active(root, state, u string) bool {
	if u == "kubelet" {
		_, err := os.Stat(filepath.Join(state, u+".active"))
		return err == nil
	}
	return alive(pidOf(state, u))
}

func start(root, state, u string) (int, error) {
	if u == "kubelet" {
		// The kubelet runs the version installed when it started (a new binary needs a restart).
		v, _ := toolVersion(root, "kubelet")
		if err := os.WriteFile(filepath.Join(root, kubeletRunningFile), []byte(v), 0o644); err != nil {
			return 1, err
		}
		return 0, os.WriteFile(filepath.Join(state, u+".active"), nil, 0o644)
	}
	bin := filepath.Join(root, "usr/local/bin/containerd")
	if _, err := os.Stat(bin); err != nil {
		if bin, err = exec.LookPath("containerd"); err != nil {
			return 5, errors.New("Failed to start containerd.service: Unit containerd.service not found.")
		}
	}
	cfg := filepath.Join(root, "etc/containerd/config.toml")
	args := []string{
		"--root", filepath.Join(root, "var/lib/containerd"),
		"--state", filepath.Join(root, "run/containerd"),
		"--address", filepath.Join(root, "run/containerd/containerd.sock"),
	}
	if _, err := os.Stat(cfg); err == nil {
		args = append([]string{"--config", cfg}, args...)
	}
	if err := os.MkdirAll(filepath.Join(root, "var/log"), 0o755); err != nil {
		return 1, err
	}
	logf, err := os.OpenFile(filepath.Join(root, "var/log/containerd.log"), os.O_CREATE|os.O_WRONLY|os.O_APPEND, 0o644)
	if err != nil {
		return 1, err
	}
	defer logf.Close()
	self := filepath.Join(root, "usr", "bin", "systemctl")
	c := exec.Command(self, append([]string{"__exec-in-host-view", root, bin}, args...)...)
	c.Stdout, c.Stderr = logf, logf
	c.SysProcAttr = &syscall.SysProcAttr{Setsid: true, Unshareflags: syscall.CLONE_NEWNS}
	if err := c.Start(); err != nil {
		return 1, fmt.Errorf("Job for containerd.service failed: %v", err)
	}
	if err := os.WriteFile(filepath.Join(state, u+".pid"), []byte(strconv.Itoa(c.Process.Pid)), 0o644); err != nil {
		return 1, err
	}
	_ = c.Process.Release()
	return 0, nil
}

func stop(state, u string) (int, error) {
	if u == "kubelet" {
		_ = os.Remove(filepath.Join(state, u+".active"))
		return 0, nil
	}
	pid := pidOf(state, u)
	if !alive(pid) {
		return 0, nil
	}
	_ = syscall.Kill(pid, syscall.SIGTERM)
	deadline := time.Now().Add(10 * time.Second)
	for alive(pid) && time.Now().Before(deadline) {
		time.Sleep(20 * time.Millisecond)
	}
	if alive(pid) {
		_ = syscall.Kill(pid, syscall.SIGKILL)
	}
	_ = os.Remove(filepath.Join(state, u+".pid"))
	return 0, nil
}

// hostView bind-mounts the simulated host's configuration directories over the machine's
// in this (private) mount namespace.
func hostView(root string) error {
	if err := syscall.Mount("", "/", "", syscall.MS_REC|syscall.MS_PRIVATE, ""); err != nil {
		return fmt.Errorf("make mounts private: %w", err)
	}
	for _, dir := range []string{"/etc/containerd", "/etc/cni/net.d"} {
		src := filepath.Join(root, dir)
		if _, err := os.Stat(src); err != nil {
			continue
		}
		if err := os.MkdirAll(dir, 0o755); err != nil {
			return err
		}
		if err := syscall.Mount(src, dir, "", syscall.MS_BIND, ""); err != nil {
			return fmt.Errorf("bind %s: %w", dir, err)
		}
	}
	return nil
}
