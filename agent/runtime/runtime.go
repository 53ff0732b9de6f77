// Package runtime is the agent's runtime task: it makes containerd, runc, the CNI plugins
// and crictl present and configured the way kubeadm needs them (SystemdCgroup matching the
// kubelet, the sandbox image from the cluster's image repository, hosts.toml mirrors for
// that repository), starts containerd, and verifies it through the CRI API, reporting what
// is not ready and why. Every step checks before it acts, so a second run changes nothing.
package runtime

import (
	"context"
	"fmt"
	"io/fs"
	"net"
	"os"
	"regexp"
	"strconv"
	"strings"
	"time"

	"google.golang.org/grpc"
	"google.golang.org/grpc/credentials/insecure"
	runtimeapi "k8s.io/cri-api/pkg/apis/runtime/v1"

	"github.com/deckhandhq/deckhand/agent/facts"
	"github.com/deckhandhq/deckhand/agent/host"
	"github.com/deckhandhq/deckhand/agent/runtime/config"
	"github.com/deckhandhq/deckhand/agent/tasks"
	"github.com/deckhandhq/deckhand/internal/hostos"
	"github.com/deckhandhq/deckhand/internal/kubeadmconfig"
	"github.com/deckhandhq/deckhand/internal/kubeimages"
	taskv1 "github.com/deckhandhq/deckhand/proto/deckhand/task/v1"
)

// Host paths the task manages.
const (
	ConfigPath = "/etc/containerd/config.toml"
	CertsDir   = "/etc/containerd/certs.d"
	CrictlPath = "/etc/crictl.yaml"
	// Socket is containerd's CRI socket, used when the agent is given no --cri-socket.
	Socket      = "/run/containerd/containerd.sock"
	CNIBinDir   = "/opt/cni/bin"
	CNIConfDir  = "/etc/cni/net.d"
	readyWithin = 60 * time.Second
)

var versionRE = regexp.MustCompile(`\bv?(\d+)\.(\d+)\.(\d+)`)

// distroCNIDirs are where the distributions' containernetworking-plugins packages put the
// plugins: Debian's and Ubuntu's, and RHEL's and its rebuilds'.
var distroCNIDirs = []string{"/usr/lib/cni", "/usr/libexec/cni"}

// linkDistroPlugins links each plugin of the distribution's package into CNIBinDir, unless
// a file of that name is there (the release tarball's, a pod network's own).
func linkDistroPlugins(h *host.Host, e *tasks.Emitter) error {
	for _, dir := range distroCNIDirs {
		entries, err := os.ReadDir(h.Path(dir))
		if err != nil {
			continue // not installed from this distribution's package
		}
		n := 0
		for _, en := range entries {
			link := CNIBinDir + "/" + en.Name()
			if !en.Type().IsRegular() || h.Exists(link) {
				continue
			}
			changed, err := h.Symlink(dir+"/"+en.Name(), link)
			if err != nil {
				return tasks.Errorf("INSTALL_FAILED", "remove what is at "+link+", or install the CNI plugins there yourself", "%v", err)
			}
			if changed {
				n++
			}
		}
		if n > 0 {
			e.Did("linked %d of the distribution's CNI plugins ("+dir+") into "+CNIBinDir, "would link %d of the distribution's CNI plugins ("+dir+") into "+CNIBinDir, n)
		}
	}
	return nil
}

// HostSocket is the CRI socket the agent is configured with (deckhand-agent --cri-socket),
// as a host path (not yet under h.Root): the socket the runtime task makes containerd
// serve, and the one the images, diagnostics and preflight tasks talk to.
func HostSocket(h *host.Host) string {
	if s := strings.TrimPrefix(h.CRISocket, "unix://"); s != "" {
		return s
	}
	return Socket
}

// Run is the runtime task handler.
func Run(ctx context.Context, t *taskv1.Task, h *host.Host, e *tasks.Emitter) (map[string]string, error) {
	spec := t.GetSpec().GetRuntime()
	reg, err := kubeimages.ParseRegistry(spec.GetRegistry().GetImageRepository(), spec.GetRegistry().GetMirrors(), spec.GetRegistry().GetInsecureRegistries())
	if err != nil {
		return nil, tasks.Errorf("INVALID_ARGUMENT", "fix the registry settings of the task", "registry: %v", err)
	}
	sandbox, err := kubeimages.SandboxImage(spec.GetKubernetesVersion(), reg.ImageRepository)
	if err != nil {
		return nil, tasks.Errorf("INVALID_ARGUMENT", "give a supported --kubernetes-version", "%v", err)
	}
	driver, err := kubeadmconfig.CgroupDriverFor(spec.GetCgroupDriver(), h.Exists(facts.SystemdInitDir), t.GetNode())
	if err != nil {
		return nil, tasks.Errorf("INVALID_ARGUMENT", "the kubelet must use the same driver (the cluster's cgroup_driver)", "%v", err)
	}
	e.Logf("cgroup driver %s (%s)", driver, map[bool]string{true: "as the task asks", false: "the host's: " + map[bool]string{true: "systemd is its init", false: "its init is not systemd"}[driver == "systemd"]}[spec.GetCgroupDriver() != ""])

	// 1. Installed: from release artifacts (checked file by file), or the distribution's
	// packages when containerd is missing.
	if spec.GetSource() == taskv1.RuntimeSource_RUNTIME_SOURCE_TARBALL {
		if err := installTarballs(ctx, spec, h, e); err != nil {
			return nil, err
		}
	}
	major, err := installed(ctx, h)
	if err != nil {
		if spec.GetSource() == taskv1.RuntimeSource_RUNTIME_SOURCE_TARBALL && h.DryRun {
			major, err = 1, nil // the dry-run did not unpack it; the config layout is decided on the real run
		} else if spec.GetSource() == taskv1.RuntimeSource_RUNTIME_SOURCE_TARBALL {
			return nil, tasks.Errorf("INSTALL_FAILED", "check that the tarball is a containerd release (bin/containerd inside)", "containerd does not run after unpacking %s: %v", spec.GetContainerdTarball(), err)
		} else {
			e.Logf("containerd is not installed: installing the distribution packages")
			if err := installPackages(ctx, h, e, spec); err != nil {
				return nil, err
			}
			if major, err = installed(ctx, h); err != nil && !h.DryRun {
				return nil, tasks.Errorf("INSTALL_FAILED", "check the node's package sources", "containerd is still not installed after the package install: %v", err)
			}
			if h.DryRun {
				major = 1
			}
		}
	} else {
		e.Logf("containerd %d.x is installed", major)
	}

	// 2. Configuration.
	// The CNI plugin directory is /opt/cni/bin, where every pod network's manifest installs
	// its plugin (flannel's, Calico's, Cilium's); the distribution's containernetworking-plugins
	// are linked into it.
	if err := linkDistroPlugins(h, e); err != nil {
		return nil, err
	}
	cniBin := CNIBinDir
	// Without CAP_SYS_RESOURCE (a container, an LXC guest) containerd cannot give a
	// container a lower oom_score_adj than its own, and fails to start it.
	hasCap, known := (&facts.Collector{Root: h.Root}).CapSysResource()
	restrictOOM := known && !hasCap
	if restrictOOM {
		e.Logf("the agent lacks CAP_SYS_RESOURCE (/proc/self/status CapEff): containerd gets restrict_oom_score_adj = true")
	}
	toml, err := config.Containerd(config.ContainerdOptions{
		Major:               major,
		SandboxImage:        sandbox,
		SystemdCgroup:       driver == "systemd",
		ConfigPath:          CertsDir,
		CNIBinDir:           cniBin,
		CNIConfDir:          CNIConfDir,
		GRPCAddress:         HostSocket(h),
		RestrictOOMScoreAdj: restrictOOM,
	})
	if err != nil {
		return nil, err
	}
	changed := false
	write := func(path, content string) error {
		c, err := h.WriteFile(path, []byte(content), 0o644)
		if err != nil {
			return err
		}
		if c {
			e.Did("wrote %s", "would write %s", path)
		}
		changed = changed || c
		return nil
	}
	if err := write(ConfigPath, toml); err != nil {
		return nil, err
	}
	repoHost := strings.SplitN(reg.ImageRepository, "/", 2)[0]
	insecure := map[string]bool{}
	for _, i := range reg.Insecure {
		insecure[i] = true
	}
	if len(reg.Mirrors) > 0 || insecure[repoHost] {
		dir, content, err := config.HostsToml(repoHost, reg.Mirrors, insecure)
		if err != nil {
			return nil, err
		}
		if err := write(CertsDir+"/"+dir+"/hosts.toml", content); err != nil {
			return nil, err
		}
	}
	if err := write(CrictlPath, config.Crictl(HostSocket(h), 10)); err != nil {
		return nil, err
	}

	// 3. Service: enabled, and (re)started when the configuration changed or it is down.
	if _, err := h.Query(ctx, "systemctl", "is-enabled", "containerd"); err != nil {
		if err := h.Run(ctx, "enable containerd at boot", "systemctl", "enable", "containerd"); err != nil {
			return nil, tasks.Errorf("SERVICE_FAILED", "look at journalctl -u containerd on the node", "enable containerd: %v", err)
		}
	}
	_, activeErr := h.Query(ctx, "systemctl", "is-active", "containerd")
	switch {
	case activeErr != nil:
		if err := h.Run(ctx, "start containerd", "systemctl", "start", "containerd"); err != nil {
			return nil, tasks.Errorf("SERVICE_FAILED", "look at journalctl -u containerd on the node", "start containerd: %v", err)
		}
	case changed:
		if err := h.Run(ctx, "restart containerd to load the new configuration", "systemctl", "restart", "containerd"); err != nil {
			return nil, tasks.Errorf("SERVICE_FAILED", "look at journalctl -u containerd on the node", "restart containerd: %v", err)
		}
	}
	if h.DryRun {
		return map[string]string{"sandbox_image": sandbox, "cgroup_driver": driver}, nil
	}

	// 4. Verify through the CRI API, as kubelet and crictl see it.
	out, err := verify(ctx, h, e)
	if err != nil {
		return out, err
	}
	out["sandbox_image"] = sandbox
	out["cgroup_driver"] = driver
	return out, nil
}

// installed reports containerd's major version, or an error when it is not installed.
func installed(ctx context.Context, h *host.Host) (int, error) {
	out, err := h.Query(ctx, "containerd", "--version")
	if err != nil {
		return 0, err
	}
	m := versionRE.FindStringSubmatch(string(out))
	if m == nil {
		return 0, fmt.Errorf("cannot read a version from %q", strings.TrimSpace(string(out)))
	}
	major, _ := strconv.Atoi(m[1])
	if major != 1 && major != 2 {
		return 0, fmt.Errorf("containerd %s is not supported (1.x and 2.x are)", m[0])
	}
	return major, nil
}

// installPackages installs containerd, runc and the CNI plugins with the distribution's
// package manager: Debian's own packages; on a dnf host, containerd.io from its repository
// (see installRPM).
func installPackages(ctx context.Context, h *host.Host, e *tasks.Emitter, spec *taskv1.RuntimeSpec) error {
	o := h.OS()
	switch o.Family() {
	case hostos.Deb:
		return h.Run(ctx, "install containerd, runc and the CNI plugins", "apt-get", "install", "-y", "containerd", "runc", "containernetworking-plugins")
	case hostos.RPM:
		return installRPM(ctx, h, e, spec)
	}
	return tasks.Errorf("UNSUPPORTED_OS", "install containerd yourself, then run the task again to configure it", "no package recipe for %s", o.Name())
}

// verify waits for the CRI socket and reports Version and Status.
func verify(ctx context.Context, h *host.Host, e *tasks.Emitter) (map[string]string, error) {
	path := h.Path(HostSocket(h))
	deadline := time.Now().Add(readyWithin)
	var lastErr error
	for {
		out, err := criStatus(ctx, path)
		if err == nil {
			ready := out["runtime_ready"] == "true"
			if out["network_ready"] != "true" {
				e.Logf("network not ready: %s (a CNI configuration in %s is installed by the cluster's network add-on)", out["network_reason"], CNIConfDir)
			}
			if ready {
				e.Logf("CRI answers: %s %s, runtime ready", out["runtime_name"], out["runtime_version"])
				return out, nil
			}
			lastErr = fmt.Errorf("runtime not ready: %s", out["runtime_reason"])
		} else {
			lastErr = err
		}
		if time.Now().After(deadline) {
			return nil, tasks.Errorf("RUNTIME_NOT_READY", "look at journalctl -u containerd on the node, and crictl info", "containerd did not become ready on %s within %v: %v", HostSocket(h), readyWithin, lastErr)
		}
		select {
		case <-ctx.Done():
			return nil, ctx.Err()
		case <-time.After(100 * time.Millisecond):
		}
	}
}

// criStatus asks the runtime behind socket for Version and Status.
func criStatus(ctx context.Context, socket string) (map[string]string, error) {
	if fi, err := os.Stat(socket); err != nil || fi.Mode().Type() != fs.ModeSocket {
		return nil, fmt.Errorf("no socket at %s", socket)
	}
	cc, err := Dial(socket)
	if err != nil {
		return nil, err
	}
	defer cc.Close()
	rs := runtimeapi.NewRuntimeServiceClient(cc)
	cctx, cancel := context.WithTimeout(ctx, 5*time.Second)
	defer cancel()
	v, err := rs.Version(cctx, &runtimeapi.VersionRequest{})
	if err != nil {
		return nil, err
	}
	st, err := rs.Status(cctx, &runtimeapi.StatusRequest{})
	if err != nil {
		return nil, err
	}
	out := map[string]string{"runtime_name": v.GetRuntimeName(), "runtime_version": v.GetRuntimeVersion(), "runtime_ready": "false", "network_ready": "false"}
	for _, c := range st.GetStatus().GetConditions() {
		switch c.GetType() {
		case runtimeapi.RuntimeReady:
			out["runtime_ready"] = strconv.FormatBool(c.GetStatus())
			out["runtime_reason"] = strings.TrimSpace(c.GetReason() + " " + c.GetMessage())
		case runtimeapi.NetworkReady:
			out["network_ready"] = strconv.FormatBool(c.GetStatus())
			out["network_reason"] = strings.TrimSpace(c.GetReason() + " " + c.GetMessage())
		}
	}
	return out, nil
}

// Dial connects to a CRI unix socket.
func Dial(socket string) (*grpc.ClientConn, error) {
	return grpc.NewClient("passthrough:///cri",
		grpc.WithTransportCredentials(insecure.NewCredentials()),
		grpc.WithDefaultCallOptions(grpc.MaxCallRecvMsgSize(16<<20)),
		grpc.WithContextDialer(func(ctx context.Context, _ string) (net.Conn, error) {
			var d net.Dialer
			return d.DialContext(ctx, "unix", socket)
		}))
}
