// Package packages is the agent's packages task: kubelet, kubeadm and kubectl at a pinned
// version, from the distribution's package manager with the pkgs.k8s.io repository (or a
// mirror of it) or as plain binaries from a base URL verified by SHA-256 with the kubelet's
// systemd unit and kubeadm's drop-in, held back from unplanned upgrades, the kubelet
// enabled, and the installed versions reported.
package packages

import (
	"context"
	"crypto/sha256"
	"encoding/hex"
	"fmt"
	"runtime"
	"slices"
	"strings"
	"time"

	"github.com/deckhandhq/deckhand/agent/facts"
	"github.com/deckhandhq/deckhand/agent/host"
	"github.com/deckhandhq/deckhand/agent/kubectl"
	"github.com/deckhandhq/deckhand/agent/tasks"
	"github.com/deckhandhq/deckhand/internal/hostos"
	"github.com/deckhandhq/deckhand/internal/kubeimages"
	"github.com/deckhandhq/deckhand/internal/kubepkgs"
	"github.com/deckhandhq/deckhand/internal/safetext"
	taskv1 "github.com/deckhandhq/deckhand/proto/deckhand/task/v1"
)

var tools = kubepkgs.Tools

// Paths the task manages.
const (
	aptKeyring = "/etc/apt/keyrings/kubernetes-apt-keyring.asc"
	aptSource  = "/etc/apt/sources.list.d/kubernetes.list"
	yumRepo    = "/etc/yum.repos.d/kubernetes.repo"

	kubeletService = "/etc/systemd/system/kubelet.service"
	kubeadmDropIn  = "/etc/systemd/system/kubelet.service.d/10-kubeadm.conf"
)

// Run is the packages task handler.
func Run(ctx context.Context, t *taskv1.Task, h *host.Host, e *tasks.Emitter) (map[string]string, error) {
	spec := t.GetSpec().GetPackages()
	version, _, err := kubeimages.ParseKubernetesVersion(spec.GetKubernetesVersion())
	if err != nil {
		return nil, tasks.Errorf("INVALID_ARGUMENT", "give a supported --kubernetes-version", "%v", err)
	}
	base := strings.TrimRight(spec.GetBaseUrl(), "/")
	if base != "" {
		if err := safetext.HTTPURL("base_url", spec.GetBaseUrl()); err != nil {
			return nil, tasks.Errorf("INVALID_ARGUMENT", "use an http(s) URL", "%v", err)
		}
	}
	minor := version[:strings.LastIndex(version, ".")] // v1.33
	want, err := kubepkgs.Components(spec.GetComponents())
	if err != nil {
		return nil, tasks.Errorf("INVALID_ARGUMENT", "name kubelet, kubeadm or kubectl", "%v", err)
	}
	names := strings.Join(want, ", ")

	have := installed(ctx, h)
	at := allAt(have, want, version)
	if at {
		e.Logf("%s at %s", names, version)
	}
	if spec.GetDownloadOnly() {
		if at {
			return versionsOut(have), nil
		}
		return versionsOut(have), download(ctx, h, e, spec, base, version, minor, want)
	}
	switch spec.GetSource() {
	case taskv1.PackageSource_PACKAGE_SOURCE_BINARIES:
		if base == "" {
			return nil, tasks.Errorf("INVALID_ARGUMENT", "pass --base-url, for example https://dl.k8s.io/release", "base_url is required for binaries")
		}
		if !at {
			if err := binaries(ctx, h, e, base, version, spec.GetSha256(), want, false); err != nil {
				return nil, err
			}
		}
		if err := kubeletUnit(ctx, h); err != nil {
			return nil, err
		}
	default:
		if err := repository(ctx, h, e, base, version, minor, spec.GetHold(), want, !at); err != nil {
			return nil, err
		}
	}
	// The rpm packages do not enable the kubelet, and plain binaries have no packaging to.
	if _, err := h.Query(ctx, "systemctl", "is-enabled", "kubelet"); err != nil {
		if err := h.Run(ctx, "enable the kubelet", "systemctl", "enable", "kubelet"); err != nil {
			return nil, tasks.Errorf("SERVICE_FAILED", "look at systemctl status kubelet on the node", "enable kubelet: %v", err)
		}
	}
	kubeletChanged := slices.Contains(want, "kubelet") && have["kubelet"] != version
	if !kubeletChanged && spec.GetRestartKubelet() && slices.Contains(want, "kubelet") {
		// Installed before, but the running kubelet may be the old one (its restart failed,
		// or the result was lost): its Node says.
		if v := runningKubelet(ctx, h, t.GetNode()); v != "" && v != version {
			e.Logf("the kubelet %s is installed, and the node reports kubelet %s running", version, v)
			kubeletChanged = true
		}
	}
	if h.DryRun {
		if kubeletChanged && spec.GetRestartKubelet() {
			e.Logf("would restart the kubelet on %s", version)
		}
		return versionsOut(have), nil
	}
	have = installed(ctx, h)
	if !allAt(have, want, version) {
		return versionsOut(have), tasks.Errorf("VERSION_MISMATCH", "look at the task log for what the package manager did", "after installing, the versions are %v, not %s", have, version)
	}
	if kubeletChanged && spec.GetRestartKubelet() {
		if err := h.Run(ctx, "reload systemd units", "systemctl", "daemon-reload"); err != nil {
			return nil, tasks.Errorf("SERVICE_FAILED", "look at systemctl status kubelet on the node", "systemctl daemon-reload: %v", err)
		}
		if err := h.Run(ctx, "restart the kubelet on "+version, "systemctl", "restart", "kubelet"); err != nil {
			return nil, tasks.Errorf("SERVICE_FAILED", "look at systemctl status kubelet and journalctl -u kubelet on the node", "restart kubelet: %v", err)
		}
	}
	return versionsOut(have), nil
}

// download fetches the components of a version without installing them (an upgrade's
// staging): the package manager's cache, or the verified binaries in StageDir.
func download(ctx context.Context, h *host.Host, e *tasks.Emitter, spec *taskv1.PackagesSpec, base, version, minor string, want []string) error {
	if spec.GetSource() == taskv1.PackageSource_PACKAGE_SOURCE_BINARIES {
		if base == "" {
			return tasks.Errorf("INVALID_ARGUMENT", "pass --base-url, for example https://dl.k8s.io/release", "base_url is required for binaries")
		}
		return binaries(ctx, h, e, base, version, spec.GetSha256(), want, true)
	}
	// The hold is kept while staging (dnf's exclude in the repository file): the new release
	// is not to be installed by anything else before its node's turn.
	return repository(ctx, h, e, base, version, minor, spec.GetHold(), want, true, "--download-only")
}

// runningKubelet is the version the node's kubelet reports on its Node object, read with
// the kubelet's own credentials; "" when the node has none or it cannot be read.
func runningKubelet(ctx context.Context, h *host.Host, node string) string {
	const kubeletConf = "/etc/kubernetes/kubelet.conf"
	if node == "" || !h.Exists(kubeletConf) {
		return ""
	}
	out, err := h.QueryQuiet(ctx, "kubectl", "--kubeconfig", kubeletConf, "get", "node", node, "-o", "json")
	if err != nil {
		return ""
	}
	v, err := kubectl.ParseNode(out)
	if err != nil {
		return ""
	}
	return v.KubeletVersion
}

func installed(ctx context.Context, h *host.Host) map[string]string {
	f, _ := (&facts.Collector{Root: h.Root, Timeout: 5 * time.Second}).Collect(ctx)
	return f.GetKubeVersions()
}

func allAt(have map[string]string, want []string, version string) bool {
	for _, t := range want {
		if have[t] != version {
			return false
		}
	}
	return true
}

func versionsOut(have map[string]string) map[string]string {
	out := map[string]string{}
	for _, t := range tools {
		v := have[t]
		if v == "" {
			v = "not installed"
		}
		out[t+"_version"] = v
	}
	return out
}

// repository installs from pkgs.k8s.io (one repository per minor version) or a mirror.
func repository(ctx context.Context, h *host.Host, e *tasks.Emitter, base, version, minor string, hold bool, want []string, install bool, extra ...string) error {
	fam := h.OSFamily()
	if base == "" {
		base = "https://pkgs.k8s.io/core:/stable:/" + minor + "/" + string(fam)
	}
	v := strings.TrimPrefix(version, "v")
	switch fam {
	case hostos.Deb:
		if !h.Exists(aptKeyring) {
			key, err := host.Download(ctx, base+"/Release.key")
			if err != nil {
				return tasks.Errorf("FETCH_FAILED", "check --base-url and the node's network", "repository key %s/Release.key: %v", base, err)
			}
			if _, err := h.WriteFile(aptKeyring, key, 0o644); err != nil {
				return err
			}
		}
		src, err := AptSource(base)
		if err != nil {
			return tasks.Errorf("INVALID_ARGUMENT", "use an http(s) URL", "%v", err)
		}
		changed, err := h.WriteFile(aptSource, []byte(src), 0o644)
		if err != nil {
			return err
		}
		if changed {
			if err := h.Run(ctx, "refresh the package lists", "apt-get", "update"); err != nil {
				return tasks.Errorf("REPOSITORY_FAILED", "check the repository URL and its key", "apt-get update: %v", err)
			}
		}
		if install {
			argv := append([]string{"apt-get", "install", "-y", "--allow-change-held-packages"}, extra...)
			for _, t := range want {
				argv = append(argv, t+"="+v+"-1.1")
			}
			if err := runToTheEnd(ctx, h, e, verb(extra)+" "+strings.Join(want, ", ")+" "+version, argv...); err != nil {
				return tasks.Errorf("INSTALL_FAILED", "check that the repository serves "+version, "%v", err)
			}
		}
		if hold {
			held, _ := h.Query(ctx, "apt-mark", "showhold")
			var missing []string
			for _, t := range want {
				if !strings.Contains("\n"+string(held), "\n"+t+"\n") {
					missing = append(missing, t)
				}
			}
			if len(missing) > 0 {
				return h.Run(ctx, "hold "+strings.Join(missing, ", ")+" back from upgrades", append([]string{"apt-mark", "hold"}, missing...)...)
			}
		}
		return nil
	case hostos.RPM:
		repo, err := YumRepo(base, hold)
		if err != nil {
			return tasks.Errorf("INVALID_ARGUMENT", "use an http(s) URL", "%v", err)
		}
		if _, err := h.WriteFile(yumRepo, []byte(repo), 0o644); err != nil {
			return err
		}
		if install {
			argv := []string{"dnf", "install", "-y"}
			if len(extra) > 0 {
				argv = append(argv, "--downloadonly")
			}
			for _, t := range want {
				argv = append(argv, t+"-"+v)
			}
			argv = append(argv, "--disableexcludes=kubernetes")
			if err := runToTheEnd(ctx, h, e, verb(extra)+" "+strings.Join(want, ", ")+" "+version, argv...); err != nil {
				return tasks.Errorf("INSTALL_FAILED", "check that the repository serves "+version, "%v", err)
			}
		}
		return nil
	}
	return tasks.Errorf("UNSUPPORTED_OS", "use --source binaries on this OS", "no package repository recipe for this OS (need Debian/Ubuntu or a RHEL family)")
}

// runToTheEnd runs a package manager to its end (see host.RunToTheEnd).
func runToTheEnd(ctx context.Context, h *host.Host, e *tasks.Emitter, what string, argv ...string) error {
	return h.RunToTheEnd(ctx, e.Logf, what, argv...)
}

// verb says what a package manager run does.
func verb(extra []string) string {
	if len(extra) > 0 {
		return "download"
	}
	return "install"
}

// AptSource renders /etc/apt/sources.list.d/kubernetes.list for the repository at base. A
// base that would change the line's structure (a space, a newline) is refused, not written.
func AptSource(base string) (string, error) {
	if err := safetext.HTTPURL("base_url", base); err != nil {
		return "", err
	}
	return fmt.Sprintf("deb [signed-by=%s] %s/ /\n", aptKeyring, base), nil
}

// YumRepo renders /etc/yum.repos.d/kubernetes.repo for the repository at base, with the
// packages excluded from upgrades when hold is set. A base with a newline would add its own
// lines (a section with gpgcheck=0): it is refused, not written.
func YumRepo(base string, hold bool) (string, error) {
	if err := safetext.HTTPURL("base_url", base); err != nil {
		return "", err
	}
	exclude := ""
	if hold {
		exclude = "exclude=kubelet kubeadm kubectl cri-tools kubernetes-cni\n"
	}
	return fmt.Sprintf("[kubernetes]\nname=Kubernetes\nbaseurl=%s/\nenabled=1\ngpgcheck=1\ngpgkey=%s/repodata/repomd.xml.key\n%s", base, base, exclude), nil
}

// binaries downloads the tools names from BASE/VERSION/bin/linux/ARCH/NAME and checks each
// against its SHA-256 (from the task, else NAME.sha256 next to it), then installs it in
// /usr/local/bin, or (stage) keeps it in StageDir for a later install.
func binaries(ctx context.Context, h *host.Host, e *tasks.Emitter, base, version string, sums map[string]string, names []string, stage bool) error {
	for _, t := range names {
		staged := StageDir + "/" + version + "/" + t
		url := fmt.Sprintf("%s/%s/bin/linux/%s/%s", base, version, runtime.GOARCH, t)
		want := sums[t]
		if want == "" {
			b, err := host.Download(ctx, url+".sha256")
			if err != nil {
				return tasks.Errorf("FETCH_FAILED", "give sha256 for each binary, or serve NAME.sha256 next to it", "%s.sha256: %v", url, err)
			}
			want = strings.Fields(string(b) + " ")[0]
		}
		// A binary staged before (and checked again here) is not downloaded twice.
		data, err := h.ReadFile(staged)
		if err != nil || !matches(data, want) {
			if data, err = host.Download(ctx, url); err != nil {
				return tasks.Errorf("FETCH_FAILED", "check --base-url and the node's network", "%s: %v", url, err)
			}
		}
		sum := sha256.Sum256(data)
		// Only the expected digest is shown, never the actual one (see runtime's fetch).
		if got := hex.EncodeToString(sum[:]); !strings.EqualFold(got, want) {
			return tasks.Errorf("CHECKSUM_MISMATCH", "check the SHA-256; the download may be corrupt or tampered with", "sha256[%s]: %s does not match the expected digest %s", t, url, want)
		}
		dst := "/usr/local/bin/" + t
		if stage {
			dst = staged
		}
		if _, err := h.WriteFile(dst, data, 0o755); err != nil {
			return err
		}
		if !stage {
			if _, err := h.RemoveFile(staged); err != nil {
				return err
			}
		}
		e.Progress(t, uint64(len(data)), uint64(len(data)), "bytes")
	}
	return nil
}

// StageDir keeps binaries an upgrade staged, VERSION/NAME, until they are installed.
const StageDir = "/var/lib/deckhand/staged"

func matches(data []byte, want string) bool {
	sum := sha256.Sum256(data)
	return strings.EqualFold(hex.EncodeToString(sum[:]), want)
}

// kubeletServiceUnit is the kubelet's systemd unit for a kubelet binary at bin: the unit the
// pkgs.k8s.io packages install (kubernetes/release, krel templates kubelet/kubelet.service).
func kubeletServiceUnit(bin string) string {
	return `[Unit]
Description=kubelet: The Kubernetes Node Agent
Documentation=https://kubernetes.io/docs/
Wants=network-online.target
After=network-online.target

[Service]
ExecStart=` + bin + `
Restart=always
StartLimitInterval=0
RestartSec=10

[Install]
WantedBy=multi-user.target
`
}

// kubeadmDropInConf is the kubelet unit's drop-in that runs it as kubeadm configures it
// (krel templates kubeadm/10-kubeadm.conf): kubeadm init and join write the kubeconfigs,
// config.yaml and kubeadm-flags.env it names; envFile is where an administrator puts
// KUBELET_EXTRA_ARGS (/etc/default/kubelet on Debian, /etc/sysconfig/kubelet on RHEL).
func kubeadmDropInConf(bin, envFile string) string {
	return `# Written by deckhand packages: the kubelet as kubeadm runs it (kubeadm v1.11 and later).
[Service]
Environment="KUBELET_KUBECONFIG_ARGS=--bootstrap-kubeconfig=/etc/kubernetes/bootstrap-kubelet.conf --kubeconfig=/etc/kubernetes/kubelet.conf"
Environment="KUBELET_CONFIG_ARGS=--config=/var/lib/kubelet/config.yaml"
# kubeadm init and join write KUBELET_KUBEADM_ARGS here.
EnvironmentFile=-/var/lib/kubelet/kubeadm-flags.env
# KUBELET_EXTRA_ARGS, a last resort: prefer nodeRegistration.kubeletExtraArgs in kubeadm's configuration.
EnvironmentFile=-` + envFile + `
ExecStart=
ExecStart=` + bin + ` $KUBELET_KUBECONFIG_ARGS $KUBELET_CONFIG_ARGS $KUBELET_KUBEADM_ARGS $KUBELET_EXTRA_ARGS
`
}

// kubeletUnit installs the kubelet unit and kubeadm's drop-in for the binaries in
// /usr/local/bin, as the kubeadm install guide does without a package manager, and has
// systemd reload its units when either file changed.
func kubeletUnit(ctx context.Context, h *host.Host) error {
	const bin = "/usr/local/bin/kubelet"
	envFile := "/etc/sysconfig/kubelet"
	if h.OSFamily() == hostos.Deb {
		envFile = "/etc/default/kubelet"
	}
	changed := false
	for _, f := range []struct{ path, content string }{
		{kubeletService, kubeletServiceUnit(bin)},
		{kubeadmDropIn, kubeadmDropInConf(bin, envFile)},
	} {
		c, err := h.WriteFile(f.path, []byte(f.content), 0o644)
		if err != nil {
			return err
		}
		changed = changed || c
	}
	if changed {
		return h.Run(ctx, "reload systemd units", "systemctl", "daemon-reload")
	}
	return nil
}
