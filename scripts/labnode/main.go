// Command labnode is LAB TOOLING, not product: it turns a network namespace of this machine
// into a lab host that Deckhand's real agent can install Kubernetes on, and removes it again.
//
//	labnode host --name node-1 --state DIR --cgroup dhlab-x-node-1 [--hosts FILE] [--nat-for LABADDR] -- CMD...
//
// runs as the host's holder process, started by the lab inside its namespaces:
//
//	nsenter --net=/run/netns/NS unshare --mount --uts --propagation private labnode host ...
//
// It drops the mounts of other network namespaces it inherited, gives the host its own /run
// (tmpfs) and its own copy-on-write /etc, /usr, /var, /opt and /root (overlays whose upper
// directories live under DIR), real directories for containerd's and the kubelet's state, its
// own hostname, /etc/hosts and machine-id, and its own cgroup (every v1 hierarchy; the kubelet
// is told --cgroup-root through /etc/default/kubelet, as an administrator would). With
// --nat-for it also makes the host look like a Vagrant box: a second link with the default
// route, and its own name on 127.0.1.1 (nat.go). Then it serves
// the lab service manager (package svc) that answers `systemctl` inside the host, installs
// itself as the host's /usr/bin/systemctl, runs CMD (the lab passes deploy/install.sh, which
// installs and starts deckhand-agent the way a user does) and holds the namespaces until
// SIGTERM, when it stops every service.
//
//	labnode down --state DIR --cgroup NAME
//
// stops a host from outside: SIGTERM to the holder, then SIGKILL to every process left in the
// host's cgroups (containers included) and the host's cgroup trees removed, deepest first.
//
// Invoked as `systemctl`, it is the shim that forwards its arguments to the manager.
package main

import (
	"bytes"
	"context"
	"crypto/rand"
	"encoding/hex"
	"errors"
	"flag"
	"fmt"
	"log/slog"
	"net"
	"os"
	"os/exec"
	"os/signal"
	"path/filepath"
	"strconv"
	"strings"
	"syscall"
	"time"

	"golang.org/x/sys/unix"

	"github.com/deckhandhq/deckhand/scripts/labnode/svc"
)

func main() {
	if filepath.Base(os.Args[0]) == "systemctl" {
		os.Exit(svc.Call(svc.SocketPath, os.Args[1:], os.Stdout, os.Stderr))
	}
	if len(os.Args) < 2 {
		usage()
	}
	var err error
	switch os.Args[1] {
	case "host":
		err = hostCmd(os.Args[2:])
	case "down":
		err = downCmd(os.Args[2:])
	case "systemctl":
		os.Exit(svc.Call(svc.SocketPath, os.Args[2:], os.Stdout, os.Stderr))
	default:
		usage()
	}
	if err != nil {
		fmt.Fprintln(os.Stderr, "labnode:", err)
		os.Exit(1)
	}
}

func usage() {
	fmt.Fprintln(os.Stderr, "usage: labnode host --name NAME --state DIR --cgroup NAME [--hosts FILE] [--nat-for LABADDR] -- CMD... | labnode down --state DIR --cgroup NAME")
	os.Exit(2)
}

// overlaid are the directories a host gets its own copy-on-write view of: everything the
// product's tasks, kubeadm and the kubelet write outside /run and the state directories below.
var overlaid = []string{"/etc", "/usr", "/var", "/opt", "/root"}

// ownDirs get real directories of their own under the host's state (containerd's overlayfs
// snapshots cannot live on an overlay; the kubelet mounts volumes under its directory).
var ownDirs = map[string]string{"/var/lib/containerd": "containerd", "/var/lib/kubelet": "kubelet"}

func hostCmd(args []string) error {
	fs := flag.NewFlagSet("host", flag.ExitOnError)
	name := fs.String("name", "", "the host's name (hostname, node name)")
	state := fs.String("state", "", "directory holding this host's files (overlay upper directories, logs)")
	cgroup := fs.String("cgroup", "", "name of the host's cgroup under every v1 hierarchy")
	hosts := fs.String("hosts", "", "file copied to the host's /etc/hosts")
	natFor := fs.String("nat-for", "", "the host's lab address: give it a Vagrant-like NAT link with the default route (nat.go), and its own name on 127.0.1.1 in /etc/hosts")
	fs.Parse(args)
	cmd := fs.Args()
	if *name == "" || *state == "" || *cgroup == "" {
		return errors.New("host: --name, --state and --cgroup are required")
	}
	st, err := filepath.Abs(*state)
	if err != nil {
		return err
	}
	var hostsData []byte
	if *hosts != "" {
		if hostsData, err = os.ReadFile(*hosts); err != nil {
			return err
		}
	}
	self, err := os.Executable()
	if err != nil {
		return err
	}
	selfBin, err := os.ReadFile(self)
	if err != nil {
		return err
	}
	logf, err := os.OpenFile(filepath.Join(st, "labnode.log"), os.O_CREATE|os.O_WRONLY|os.O_APPEND, 0o644)
	if err != nil {
		return err
	}
	defer logf.Close()
	log := slog.New(slog.NewTextHandler(logf, nil)).With("host", *name)
	if err := os.WriteFile(filepath.Join(st, "holder.pid"), []byte(strconv.Itoa(os.Getpid())+"\n"), 0o644); err != nil {
		return err
	}

	// labnode down finds what is left of the host by its mount namespace, too (a process
	// someone started with nsenter is in the host's namespaces but not its cgroup).
	mnt, err := os.Readlink("/proc/self/ns/mnt")
	if err != nil {
		return err
	}
	// Everything below mounts over /run, /etc, /usr...: only ever in a mount namespace of
	// the host's own, never the machine's (or the caller's).
	// (A namespace that cannot be read, as /proc/1's in some sandboxes, proves nothing.)
	for _, pid := range []int{os.Getppid(), 1} {
		if other, err := os.Readlink(fmt.Sprintf("/proc/%d/ns/mnt", pid)); err == nil && other == mnt {
			return fmt.Errorf("host: not in a mount namespace of its own (process %d is in %s too): start it under unshare --mount --propagation private", pid, mnt)
		}
	}
	if err := os.WriteFile(filepath.Join(st, "mntns"), []byte(mnt+"\n"), 0o644); err != nil {
		return err
	}
	if err := enterCgroup(*cgroup); err != nil {
		return err
	}
	if err := setupMounts(st); err != nil {
		return err
	}
	if err := unix.Sethostname([]byte(*name)); err != nil {
		return fmt.Errorf("sethostname: %w", err)
	}
	id := make([]byte, 16)
	rand.Read(id)
	files := map[string]string{
		"/etc/hostname":   *name + "\n",
		"/etc/machine-id": hex.EncodeToString(id) + "\n",
		// Two kubelets on one machine need their own cgroup roots; Debian's kubelet drop-in
		// reads KUBELET_EXTRA_ARGS from here (an administrator's file, not the product's).
		"/etc/default/kubelet": fmt.Sprintf("KUBELET_EXTRA_ARGS=\"--cgroup-root=/%s\"\n", *cgroup),
	}
	if *natFor != "" {
		if err := setupNAT(context.Background(), *natFor); err != nil {
			return err
		}
		if hostsData != nil {
			hostsData = vagrantHosts(hostsData, *name)
		}
	}
	if hostsData != nil {
		files["/etc/hosts"] = string(hostsData)
	}
	for p, data := range files {
		if err := writeFile(p, []byte(data), 0o644); err != nil {
			return err
		}
	}
	// The host's systemctl is this program.
	if err := writeFile("/usr/bin/systemctl", selfBin, 0o755); err != nil {
		return err
	}

	logDir := filepath.Join(st, "log")
	if err := os.MkdirAll(logDir, 0o755); err != nil {
		return err
	}
	m := svc.New(svc.Options{Root: "/", LogDir: logDir, Log: log})
	if err := os.MkdirAll(filepath.Dir(svc.SocketPath), 0o755); err != nil {
		return err
	}
	ln, err := net.Listen("unix", svc.SocketPath)
	if err != nil {
		return err
	}
	ctx, stop := signal.NotifyContext(context.Background(), syscall.SIGTERM, syscall.SIGINT)
	defer stop()
	served := make(chan error, 1)
	go func() { served <- m.Serve(ctx, ln) }()
	log.Info("host is set up", "state", st)

	if len(cmd) > 0 {
		c := exec.CommandContext(ctx, cmd[0], cmd[1:]...)
		c.Stdout, c.Stderr = logf, logf
		if err := c.Run(); err != nil {
			return fmt.Errorf("%s: %w (see %s)", strings.Join(cmd, " "), err, logf.Name())
		}
	}
	if err := os.WriteFile(filepath.Join(st, "ready"), []byte(strconv.Itoa(os.Getpid())+"\n"), 0o644); err != nil {
		return err
	}
	<-ctx.Done()
	log.Info("stopping every service")
	sctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	err = m.StopAll(sctx)
	ln.Close()
	<-served
	return err
}

// setupMounts gives the host its own view of the machine. The mount namespace is new and
// private, so nothing here is seen outside it, and it all goes when the host's last process
// exits.
func setupMounts(state string) error {
	// Inherited bind mounts of network namespaces (other labs' hosts, pods) would keep those
	// namespaces alive as long as this host lives.
	b, err := os.ReadFile("/proc/self/mountinfo")
	if err != nil {
		return err
	}
	var nsfs []string
	for _, l := range strings.Split(string(b), "\n") {
		f := strings.Fields(l)
		for i, x := range f {
			if x == "-" && i+1 < len(f) && f[i+1] == "nsfs" {
				nsfs = append(nsfs, unescape(f[4]))
			}
		}
	}
	for i := len(nsfs) - 1; i >= 0; i-- {
		if err := unix.Unmount(nsfs[i], unix.MNT_DETACH); err != nil && !errors.Is(err, unix.EINVAL) && !errors.Is(err, unix.ENOENT) {
			return fmt.Errorf("unmount %s: %w", nsfs[i], err)
		}
	}
	if err := unix.Mount("tmpfs", "/run", "tmpfs", unix.MS_NOSUID|unix.MS_NODEV, "mode=755"); err != nil {
		return fmt.Errorf("tmpfs on /run: %w", err)
	}
	for _, d := range []string{"/run/lock", "/run/netns"} {
		if err := os.MkdirAll(d, 0o755); err != nil {
			return err
		}
	}
	for _, d := range overlaid {
		if _, err := os.Stat(d); err != nil {
			continue
		}
		upper := filepath.Join(state, "fs", strings.TrimPrefix(d, "/"))
		work := filepath.Join(state, "fs", ".work-"+strings.TrimPrefix(d, "/"))
		for _, x := range []string{upper, work} {
			if err := os.MkdirAll(x, 0o755); err != nil {
				return err
			}
		}
		opts := fmt.Sprintf("lowerdir=%s,upperdir=%s,workdir=%s", d, upper, work)
		if err := unix.Mount("overlay", d, "overlay", 0, opts); err != nil {
			return fmt.Errorf("overlay on %s (%s): %w", d, opts, err)
		}
	}
	for target, src := range ownDirs {
		src = filepath.Join(state, src)
		for _, x := range []string{src, target} {
			if err := os.MkdirAll(x, 0o755); err != nil {
				return err
			}
		}
		if err := unix.Mount(src, target, "", unix.MS_BIND, ""); err != nil {
			return fmt.Errorf("bind %s on %s: %w", src, target, err)
		}
	}
	return nil
}

// unescape decodes mountinfo's octal escapes (\040 for a space).
func unescape(s string) string {
	if !strings.Contains(s, `\`) {
		return s
	}
	var b strings.Builder
	for i := 0; i < len(s); i++ {
		if s[i] == '\\' && i+3 < len(s) {
			if n, err := strconv.ParseUint(s[i+1:i+4], 8, 8); err == nil {
				b.WriteByte(byte(n))
				i += 3
				continue
			}
		}
		b.WriteByte(s[i])
	}
	return b.String()
}

func writeFile(p string, data []byte, mode os.FileMode) error {
	if err := os.MkdirAll(filepath.Dir(p), 0o755); err != nil {
		return err
	}
	// Replace, never write through: the lower file is the machine's.
	tmp := p + ".labnode"
	if err := os.WriteFile(tmp, data, mode); err != nil {
		return err
	}
	return os.Rename(tmp, p)
}

const cgroupRoot = "/sys/fs/cgroup"

// hierarchies lists the cgroup v1 hierarchies mounted under /sys/fs/cgroup.
func hierarchies() ([]string, error) {
	b, err := os.ReadFile("/proc/self/mountinfo")
	if err != nil {
		return nil, err
	}
	var out []string
	for _, l := range strings.Split(string(b), "\n") {
		f := strings.Fields(l)
		for i, x := range f {
			// cgroup v1 hierarchies, and the unified (v2) one of a hybrid machine, where
			// the kubelet makes its cgroups too.
			if x == "-" && i+1 < len(f) && (f[i+1] == "cgroup" || f[i+1] == "cgroup2") && strings.HasPrefix(f[4], cgroupRoot+"/") {
				out = append(out, f[4])
			}
		}
	}
	if len(out) < 2 {
		return nil, errors.New("no cgroup v1 hierarchies under /sys/fs/cgroup: the real lab needs cgroup v1 or hybrid (see docs)")
	}
	return out, nil
}

// enterCgroup makes NAME under every hierarchy and moves this process into it; everything
// the host starts (services, containers under the kubelet's --cgroup-root) stays below it.
func enterCgroup(name string) error {
	hs, err := hierarchies()
	if err != nil {
		return err
	}
	for _, h := range hs {
		dir := filepath.Join(h, name)
		if err := os.MkdirAll(dir, 0o755); err != nil {
			return fmt.Errorf("cgroup %s: %w", dir, err)
		}
		if filepath.Base(h) == "cpuset" {
			// A new cpuset starts empty and refuses tasks until it has CPUs and memory nodes.
			for _, f := range []string{"cpuset.cpus", "cpuset.mems"} {
				v, err := os.ReadFile(filepath.Join(h, f))
				if err != nil {
					return err
				}
				if err := os.WriteFile(filepath.Join(dir, f), bytes.TrimSpace(v), 0o644); err != nil {
					return fmt.Errorf("cgroup %s/%s: %w", dir, f, err)
				}
			}
		}
		if err := os.WriteFile(filepath.Join(dir, "cgroup.procs"), []byte(strconv.Itoa(os.Getpid())), 0o644); err != nil {
			return fmt.Errorf("enter cgroup %s: %w", dir, err)
		}
	}
	return nil
}

func downCmd(args []string) error {
	fs := flag.NewFlagSet("down", flag.ExitOnError)
	state := fs.String("state", "", "the host's state directory")
	cgroup := fs.String("cgroup", "", "the host's cgroup name")
	timeout := fs.Duration("timeout", 30*time.Second, "how long the holder has to stop its services")
	fs.Parse(args)
	if *state == "" || *cgroup == "" {
		return errors.New("down: --state and --cgroup are required")
	}
	st, err := filepath.Abs(*state)
	if err != nil {
		return err
	}
	stopHost(st, *timeout, 10*time.Second)
	return removeCgroup(*cgroup, 20*time.Second)
}

// stopHost stops the host whose state directory is st: SIGTERM to its holder, then SIGKILL
// to what is left in its mount namespace. A PID or namespace number is only trusted for a
// process that still shows this host's mounts: after the host died, the kernel gives both
// to others (another lab's host, any process of the machine).
func stopHost(st string, holderTimeout, killWithin time.Duration) {
	b, err := os.ReadFile(filepath.Join(st, "mntns"))
	if err != nil {
		return // the holder never got as far as its namespace: nothing of it to stop
	}
	mnt := strings.TrimSpace(string(b))
	if own, err := os.Readlink("/proc/self/ns/mnt"); err != nil || own == mnt {
		return // never this process's own mount namespace (the machine's)
	}
	if b, err := os.ReadFile(filepath.Join(st, "holder.pid")); err == nil {
		if pid, err := strconv.Atoi(strings.TrimSpace(string(b))); err == nil && pid > 1 && inHost(pid, mnt, st) {
			if syscall.Kill(pid, syscall.SIGTERM) == nil {
				deadline := time.Now().Add(holderTimeout)
				for syscall.Kill(pid, 0) == nil && time.Now().Before(deadline) {
					time.Sleep(50 * time.Millisecond) // polling a process's exit; no event to wait on
				}
			}
		}
	}
	killMountNamespace(mnt, st, killWithin)
}

// inHost reports whether process pid is in the mount namespace mnt ("mnt:[N]") and sees
// the overlays of the host whose state directory is st.
func inHost(pid int, mnt, st string) bool {
	if v, err := os.Readlink(fmt.Sprintf("/proc/%d/ns/mnt", pid)); err != nil || v != mnt {
		return false
	}
	info, err := os.ReadFile(fmt.Sprintf("/proc/%d/mountinfo", pid))
	return err == nil && bytes.Contains(info, []byte("upperdir="+filepath.Join(st, "fs", "etc")+","))
}

// killMountNamespace SIGKILLs every process of the host (see inHost) in the mount namespace
// mnt until none is left or the time is up.
func killMountNamespace(mnt, st string, within time.Duration) {
	deadline := time.Now().Add(within)
	for {
		left := 0
		links, _ := filepath.Glob("/proc/[0-9]*/ns/mnt")
		for _, l := range links {
			if v, err := os.Readlink(l); err == nil && v == mnt {
				if pid, err := strconv.Atoi(strings.Split(l, "/")[2]); err == nil && pid != os.Getpid() && inHost(pid, mnt, st) {
					syscall.Kill(pid, syscall.SIGKILL)
					left++
				}
			}
		}
		if left == 0 || time.Now().After(deadline) {
			return
		}
		time.Sleep(50 * time.Millisecond) // polling the kernel reaping killed processes
	}
}

// removeCgroup kills every process in the host's cgroups and removes them, deepest first.
func removeCgroup(name string, within time.Duration) error {
	hs, err := hierarchies()
	if err != nil {
		return err
	}
	deadline := time.Now().Add(within)
	for {
		var dirs []string
		alive := 0
		for _, h := range hs {
			top := filepath.Join(h, name)
			filepath.WalkDir(top, func(p string, d os.DirEntry, err error) error {
				if err != nil || !d.IsDir() {
					return nil
				}
				dirs = append(dirs, p)
				b, _ := os.ReadFile(filepath.Join(p, "cgroup.procs"))
				for _, f := range strings.Fields(string(b)) {
					if pid, err := strconv.Atoi(f); err == nil && pid > 1 && pid != os.Getpid() {
						syscall.Kill(pid, syscall.SIGKILL)
						alive++
					}
				}
				return nil
			})
		}
		if alive == 0 {
			var errs []error
			for i := len(dirs) - 1; i >= 0; i-- { // WalkDir lists parents first
				if err := os.Remove(dirs[i]); err != nil && !errors.Is(err, os.ErrNotExist) {
					errs = append(errs, err)
				}
			}
			if len(errs) == 0 || time.Now().After(deadline) {
				return errors.Join(errs...)
			}
		} else if time.Now().After(deadline) {
			return fmt.Errorf("cgroup %s: %d processes still alive after SIGKILL", name, alive)
		}
		time.Sleep(50 * time.Millisecond) // polling the kernel reaping killed processes
	}
}
