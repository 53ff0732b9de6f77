package facts

import (
	"context"
	"fmt"
	"io/fs"
	"net"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"runtime"
	"strconv"
	"strings"
	"sync"
	"time"

	"golang.org/x/sys/unix"

	"github.com/deckhandhq/deckhand/internal/hostos"
	agentv1 "github.com/deckhandhq/deckhand/proto/deckhand/agent/v1"
)

// Defaults for the zero fields of a Collector.
const (
	DefaultCRISocket = "/run/containerd/containerd.sock"
	DefaultTimeout   = 2 * time.Second
)

// binDirs are where binaries are looked up, under Root, in the order of the PATH systemd
// gives services (and the agent's commands run with): a kubectl installed to /usr/local/bin
// is the one that runs, even where the distribution ships an older one in /usr/bin.
var binDirs = []string{"/usr/local/bin", "/usr/bin", "/bin"}

// Collector reads facts about a host whose filesystem is mounted at Root.
type Collector struct {
	// Root is where the host's filesystem is mounted; every host path is read under it.
	// Empty means "/".
	Root string
	// CRISocket is the container runtime's CRI socket, a path under Root. Empty means
	// DefaultCRISocket.
	CRISocket string
	// Exec runs a command, argv only, and returns its standard output. name is a bare
	// command name such as "kubelet". Nil runs the binary found in Root/usr/bin,
	// Root/usr/local/bin or Root/bin with exec.CommandContext.
	Exec func(ctx context.Context, name string, args ...string) ([]byte, error)
	// Timeout bounds each probe that runs a command or calls the runtime. Zero means
	// DefaultTimeout.
	Timeout time.Duration

	// procDir is the agent's own /proc (not under Root); tests replace it.
	procDir string

	// now is the clock of the version cache; tests replace it. Nil is time.Now.
	now func() time.Time

	// known holds each kube binary's version by the file it was read from: a facts
	// refresh runs a binary again only once that file changed (an upgrade renames a new
	// file in, or writes over the old one) or the version is VersionMaxAge old. Each of
	// the three is a Go program of about 100 MB whose start costs a host 50 to 150 ms of
	// CPU, and under load far more.
	mu    sync.Mutex
	known map[string]knownVersion
}

// VersionMaxAge bounds how long a kube binary's version is reused while its file stays the
// same: a binary whose answer does not depend on its own file alone (a wrapper that runs
// another) is read again within this long.
const VersionMaxAge = time.Hour

// knownVersion is a version read from a binary, with that binary's identity.
type knownVersion struct {
	file    fileID
	version string
	read    time.Time
}

func (c *Collector) clock() time.Time {
	if c.now != nil {
		return c.now()
	}
	return time.Now()
}

// fileID identifies a file's content as far as its metadata can: a file renamed in has a
// new inode, one written over a new size, mtime or ctime (which no one can set back).
type fileID struct {
	path         string
	dev, ino     uint64
	size         int64
	mtime, ctime unix.Timespec
}

func statID(p string) (fileID, bool) {
	var st unix.Stat_t
	if err := unix.Stat(p, &st); err != nil {
		return fileID{}, false
	}
	return fileID{path: p, dev: uint64(st.Dev), ino: st.Ino, size: st.Size, mtime: st.Mtim, ctime: st.Ctim}, true
}

// Collect reads the host's facts. A probe that fails leaves its fields empty and does not
// fail the collection; the only error is ctx being done before collection finished.
func (c *Collector) Collect(ctx context.Context) (*agentv1.Facts, error) {
	if err := ctx.Err(); err != nil {
		return nil, fmt.Errorf("collect host facts: %w", err)
	}
	f := &agentv1.Facts{
		Hostname:        c.hostname(),
		Kernel:          c.kernel(),
		Arch:            runtime.GOARCH,
		Cpus:            uint32(runtime.NumCPU()),
		IpAddresses:     ipAddresses(),
		CgroupVersion:   c.cgroupVersion(),
		CgroupDriver:    c.cgroupDriver(),
		FirewalldActive: c.firewalldActive(),
		MachineId:       cleanString(strings.TrimSpace(string(c.readFile("/etc/machine-id")))),
	}
	os := c.osRelease()
	f.OsId, f.OsVersion, f.OsName, f.OsFamily = os.ID, os.VersionID, os.PrettyName, string(os.Family())
	f.Selinux = c.selinux()
	f.ControlPlaneVersion = ControlPlaneVersion(c.readFile(APIServerManifest))
	f.Certificates = c.certificates()
	f.EtcdSnapshots = c.etcdSnapshots()
	if rotates, known := c.kubeletRotates(); known {
		f.KubeletRotatesCertificates = &rotates
	}
	if has, known := c.CapSysResource(); known {
		f.CapSysResource = &has
	}
	f.MemoryBytes, f.SwapBytes = parseMeminfo(c.readFile("/proc/meminfo"))

	// The probes that run commands or talk to the runtime can each take up to Timeout, so
	// they run side by side.
	var wg sync.WaitGroup
	versions := make([]string, len(kubeBinaries))
	for i, b := range kubeBinaries {
		wg.Go(func() { versions[i] = c.kubeVersion(ctx, b) })
	}
	wg.Go(func() { f.Runtime = c.runtimeFacts(ctx) })
	wg.Wait()

	if err := ctx.Err(); err != nil {
		return nil, fmt.Errorf("collect host facts: %w", err)
	}
	f.KubeVersions = make(map[string]string)
	for i, b := range kubeBinaries {
		if versions[i] != "" {
			f.KubeVersions[b.name] = versions[i]
		}
	}
	return f, nil
}

func (c *Collector) root() string {
	if c.Root == "" {
		return "/"
	}
	return c.Root
}

func (c *Collector) timeout() time.Duration {
	if c.Timeout <= 0 {
		return DefaultTimeout
	}
	return c.Timeout
}

// hostPath returns where the host path p is under Root.
func (c *Collector) hostPath(p string) string {
	return filepath.Join(c.root(), p)
}

// readFile returns the contents of host path p, or nil if it cannot be read.
func (c *Collector) readFile(p string) []byte {
	b, err := os.ReadFile(c.hostPath(p))
	if err != nil {
		return nil
	}
	return b
}

// selinux is SELinux's mode now (see hostos.SELinuxMode).
func (c *Collector) selinux() string {
	return hostos.SELinuxMode(c.readFile(hostos.SELinuxEnforce), c.readFile(hostos.SELinuxConfig))
}

func (c *Collector) exists(p string) bool {
	_, err := os.Stat(c.hostPath(p))
	return err == nil
}

func (c *Collector) hostname() string {
	if h := parseHostname(c.readFile("/etc/hostname")); h != "" {
		return h
	}
	h, err := os.Hostname()
	if err != nil {
		return ""
	}
	return cleanString(h)
}

// osRelease reads /etc/os-release, falling back to /usr/lib/os-release as os-release(5) says.
func (c *Collector) osRelease() hostos.OS {
	b := c.readFile("/etc/os-release")
	if b == nil {
		b = c.readFile("/usr/lib/os-release")
	}
	return hostos.Parse(b)
}

func (c *Collector) kernel() string {
	if k := strings.TrimSpace(string(c.readFile("/proc/sys/kernel/osrelease"))); k != "" {
		return cleanString(k)
	}
	var u unix.Utsname
	if err := unix.Uname(&u); err != nil {
		return ""
	}
	return cleanString(unix.ByteSliceToString(u.Release[:]))
}

// capSysResource is CAP_SYS_RESOURCE's bit in a capability set (linux/capability.h).
const capSysResource = 24

// CapSysResource reports whether the agent's process holds CAP_SYS_RESOURCE in its effective
// set, from Root/proc/self/status ("/proc" is the agent's own with Root "/"); known is false
// when that cannot be read.
func (c *Collector) CapSysResource() (has, known bool) {
	caps, ok := parseCapEff(c.readFile("/proc/self/status"))
	return ok && caps&(1<<capSysResource) != 0, ok
}

func (c *Collector) cgroupVersion() uint32 {
	if c.exists("/sys/fs/cgroup/cgroup.controllers") {
		return 2
	}
	return 1
}

// SystemdInitDir exists on a host whose init is systemd (sd_booted(3)): the cgroup_driver
// fact, and the runtime and kubeadm init tasks' default driver, follow it.
const SystemdInitDir = "/run/systemd/system"

func (c *Collector) cgroupDriver() string {
	if c.exists(SystemdInitDir) {
		return "systemd"
	}
	return "cgroupfs"
}

// firewalldActive reports whether a process named firewalld is alive in the agent's /proc.
// See the package doc for why the pid file is not used.
func (c *Collector) firewalldActive() bool {
	proc := c.procDir
	if proc == "" {
		proc = "/proc"
	}
	entries, err := os.ReadDir(proc)
	if err != nil {
		return false
	}
	for _, e := range entries {
		if _, err := strconv.ParseUint(e.Name(), 10, 32); err != nil || !e.IsDir() {
			continue
		}
		comm, err := os.ReadFile(filepath.Join(proc, e.Name(), "comm"))
		if err == nil && strings.TrimSpace(string(comm)) == "firewalld" {
			return true
		}
	}
	return false
}

// ipAddresses lists the addresses of the agent's network interfaces.
func ipAddresses() []string {
	addrs, err := net.InterfaceAddrs()
	if err != nil {
		return nil
	}
	return filterAddrs(addrs)
}

// RouteAddress is the local address the kernel picks on the route to controller
// (host:port): a UDP socket connected to it binds that address, and no packet is sent. It
// is "" when the route cannot be found or the address is loopback or link-local (a
// controller on the same host says nothing about the node's network).
func RouteAddress(ctx context.Context, controller string) string {
	var d net.Dialer
	ctx, cancel := context.WithTimeout(ctx, DefaultTimeout)
	defer cancel()
	c, err := d.DialContext(ctx, "udp", controller)
	if err != nil {
		return ""
	}
	defer c.Close()
	a, ok := c.LocalAddr().(*net.UDPAddr)
	if !ok {
		return ""
	}
	if got := filterAddrs([]net.Addr{&net.IPAddr{IP: a.IP}}); len(got) == 1 {
		return got[0]
	}
	return ""
}

// filterAddrs keeps the addresses another host could reach: no loopback, no link-local,
// no prefix length.
func filterAddrs(addrs []net.Addr) []string {
	var out []string
	for _, a := range addrs {
		var ip net.IP
		switch a := a.(type) {
		case *net.IPNet:
			ip = a.IP
		case *net.IPAddr:
			ip = a.IP
		}
		if ip == nil || ip.IsUnspecified() || ip.IsLoopback() || ip.IsLinkLocalUnicast() {
			continue
		}
		out = append(out, ip.String())
	}
	return out
}

// kubeBinary is a Kubernetes binary whose version is reported: the argv that prints the
// version, and the parser for what it prints.
type kubeBinary struct {
	name  string
	args  []string
	parse func([]byte) string
}

var kubeBinaries = []kubeBinary{
	{"kubelet", []string{"--version"}, parseKubeletVersion},
	{"kubeadm", []string{"version", "-o", "short"}, parseKubeadmVersion},
	{"kubectl", []string{"version", "--client", "-o", "json"}, parseKubectlVersion},
}

// kubeVersion returns the version binary b reports, or "" if it is not installed or does
// not answer with a version within Timeout.
func (c *Collector) kubeVersion(ctx context.Context, b kubeBinary) string {
	p, err := c.lookPath(b.name)
	if err != nil {
		return ""
	}
	id, idOK := statID(p)
	start := c.clock()
	if idOK {
		c.mu.Lock()
		k, ok := c.known[b.name]
		c.mu.Unlock()
		if ok && k.file == id && start.Sub(k.read) < VersionMaxAge {
			return k.version
		}
	}
	ctx, cancel := context.WithTimeout(ctx, c.timeout())
	defer cancel()
	run := c.Exec
	if run == nil {
		run = c.execHost
	}
	out, err := run(ctx, b.name, b.args...)
	if err != nil {
		return ""
	}
	v := b.parse(out)
	if v == "" || !idOK {
		return v
	}
	// Only a version read is kept, and only when the name still finds the file stat'ed
	// before the run, unchanged: a binary replaced (or one put earlier on the path) while
	// it ran is read again next time.
	if q, err := c.lookPath(b.name); err != nil || q != p {
		return v
	}
	if after, ok := statID(p); ok && after == id {
		c.mu.Lock()
		if c.known == nil {
			c.known = map[string]knownVersion{}
		}
		c.known[b.name] = knownVersion{file: id, version: v, read: start}
		c.mu.Unlock()
	}
	return v
}

// lookPath finds the executable file for a bare command name in binDirs under Root.
func (c *Collector) lookPath(name string) (string, error) {
	if name == "" || strings.ContainsRune(name, '/') || name == "." || name == ".." {
		return "", fmt.Errorf("look up %q: not a bare command name", name)
	}
	for _, dir := range binDirs {
		p := c.hostPath(filepath.Join(dir, name))
		fi, err := os.Stat(p)
		if err == nil && fi.Mode().IsRegular() && fi.Mode().Perm()&0o111 != 0 {
			return p, nil
		}
	}
	return "", fmt.Errorf("look up %q in %s under %s: %w", name, strings.Join(binDirs, ", "), c.root(), fs.ErrNotExist)
}

// execHost is the default Exec: the binary found by lookPath, argv only, stdout returned.
func (c *Collector) execHost(ctx context.Context, name string, args ...string) ([]byte, error) {
	p, err := c.lookPath(name)
	if err != nil {
		return nil, err
	}
	cmd := exec.CommandContext(ctx, p, args...)
	// A child that keeps stdout open must not hold us past the deadline.
	cmd.WaitDelay = 100 * time.Millisecond
	out, err := cmd.Output()
	if err != nil {
		return nil, fmt.Errorf("run %s: %w", p, err)
	}
	return out, nil
}

// APIServerManifest is a kubeadm control plane's kube-apiserver static pod.
const APIServerManifest = "/etc/kubernetes/manifests/kube-apiserver.yaml"

// apiServerImageRE finds the kube-apiserver image's tag in its static pod manifest.
var apiServerImageRE = regexp.MustCompile(`(?m)^\s*image:\s*["']?\S*/kube-apiserver:(v[0-9]+\.[0-9]+\.[0-9]+)["']?\s*$`)

// ControlPlaneVersion is the version of a control plane, the tag of the image its
// kube-apiserver static pod manifest runs ("" when there is none: a worker).
func ControlPlaneVersion(manifest []byte) string {
	if m := apiServerImageRE.FindSubmatch(manifest); m != nil {
		return string(m[1])
	}
	return ""
}
