package kubeadmconfig

import (
	"errors"
	"fmt"
	"net/netip"
	"regexp"
	"slices"
	"strconv"
	"strings"
	"time"

	"github.com/deckhandhq/deckhand/internal/kubeimages"
	"github.com/deckhandhq/deckhand/internal/lbconf"
	"github.com/deckhandhq/deckhand/internal/podnet"
	"github.com/deckhandhq/deckhand/internal/safetext"
	taskv1 "github.com/deckhandhq/deckhand/proto/deckhand/task/v1"
)

// Defaults for the empty fields of a ClusterSpec; the same as kubeadm's, except that the
// rendered files always state them.
const (
	DefaultClusterName   = "kubernetes"
	DefaultServiceSubnet = "10.96.0.0/12"
	DefaultCgroupDriver  = "systemd"
)

// Limits kubeadm v1.33 enforces on the subnets (cmd/kubeadm/app/constants and
// apis/kubeadm/validation), checked here first so the error names our field.
const (
	minServiceAddresses = 10 // MinimumAddressesInServiceSubnet
	maxServiceHostBits  = 20 // MaximumBitsForServiceSubnet
	minPodAddresses     = 14 // MinimumAddressesInPodSubnet
	nodeMaskIPv4        = 24 // the controller-manager's default node-cidr-mask-size-ipv4
	nodeMaskIPv6        = 64 // ... and -ipv6
	maxNodeMaskDiff     = 16 // PodSubnetNodeMaskMaxDiff
)

// minV1beta4Minor is the first Kubernetes minor whose kubeadm reads kubeadm.k8s.io/v1beta4
// (added in v1.31; v1.30's kubeadm knows only v1beta3).
const minV1beta4Minor = 31

// Cluster is a validated ClusterSpec with every default filled in.
type Cluster struct {
	// KubernetesVersion is "vMAJOR.MINOR.PATCH" of a minor in kubeimages.SupportedVersions.
	KubernetesVersion string
	// ControlPlaneEndpoint is host:port of the API server load balancer or first control
	// plane; empty for a single control plane that no other control plane joins.
	ControlPlaneEndpoint string
	// PodSubnet is one CIDR, or an IPv4 and an IPv6 CIDR joined by a comma (dual-stack);
	// empty leaves node CIDR allocation to the network plugin.
	PodSubnet string
	// ServiceSubnet is like PodSubnet, never empty, and overlaps no pod subnet.
	ServiceSubnet string
	// ClusterName is the name in the kubeconfig files kubeadm writes.
	ClusterName string
	// CgroupDriver is the kubelet's cgroup driver: "systemd" or "cgroupfs". The container
	// runtime must use the same one.
	CgroupDriver string
	// Registry is where the control-plane images come from.
	Registry kubeimages.Registry
	// KubeProxyMode is kube-proxy's mode: "iptables", "ipvs", "nftables", or "" for
	// kube-proxy's default.
	KubeProxyMode string
	// ConntrackMaxPerCore is kube-proxy's conntrack.maxPerCore; nil leaves kube-proxy's
	// default, 0 leaves the kernel's nf_conntrack_max alone.
	ConntrackMaxPerCore *int32
	// LoadBalancer is the API servers' load balancer Deckhand installs (type external when
	// none); its endpoint is ControlPlaneEndpoint.
	LoadBalancer lbconf.Settings
	// CertSANs are the API server certificate's extra names (IPs and DNS names).
	CertSANs []string
	// KubeletExtraArgs are extra kubelet flags of every node (name → value); a node's
	// own win per name.
	KubeletExtraArgs map[string]string
	// Patches are kubeadm patches, in order; the agent writes them as PatchFiles under
	// PatchesDir.
	Patches []Patch
}

// providerVersionRE is a pod network provider's release version.
var providerVersionRE = regexp.MustCompile(`^v[0-9]{1,4}\.[0-9]{1,4}\.[0-9]{1,4}$`)

// sha256RE is a SHA-256 as sha256sum prints it.
var sha256RE = regexp.MustCompile(`^[0-9a-fA-F]{64}$`)

// Bounds of a pod network manifest's settings: its rollouts' timeout, its images and ports.
const (
	MaxRolloutTimeout = time.Hour
	MaxManifestImages = 256
	MaxManifestPorts  = 64
)

// KubeProxyModes are the kube-proxy modes on Linux.
var KubeProxyModes = []string{"iptables", "ipvs", "nftables"}

// ParseCluster validates spec and fills in the defaults. Every error is a
// *kubeimages.FieldError naming the ClusterSpec field (kubernetes_version,
// control_plane_endpoint, pod_subnet, service_subnet, cluster_name, cgroup_driver,
// kube_proxy.mode, kube_proxy.conntrack_max_per_core, registry.image_repository, registry.mirrors[i], registry.insecure_registries[i],
// api_server_cert_sans[i], kubelet_extra_args[NAME], patches[i].target|type|patch,
// network_provider_version, network_manifest[.location|.sha256|.images[i]|.ports[i]|.rollout_timeout]).
func ParseCluster(spec *taskv1.ClusterSpec) (Cluster, error) {
	var c Cluster
	if spec.GetKubernetesVersion() == "" {
		return Cluster{}, invalid("kubernetes_version", "", "is required",
			"give a release such as v1.33.13; kubeadm would otherwise look the version up on the internet")
	}
	v, row, err := kubeimages.ParseKubernetesVersion(spec.GetKubernetesVersion())
	if err != nil {
		var fe *kubeimages.FieldError
		if errors.As(err, &fe) {
			c := *fe
			c.Hint = "use " + supportedMinors() + ", e.g. v1.33.13"
			return Cluster{}, &c
		}
		return Cluster{}, err
	}
	if minorOf(row.Minor) < minV1beta4Minor {
		return Cluster{}, invalid("kubernetes_version", spec.GetKubernetesVersion(),
			fmt.Sprintf("is older than v1.%d, the first kubeadm that reads the %s configuration Deckhand writes", minV1beta4Minor, KubeadmAPIVersion),
			"use "+supportedMinors())
	}
	c.KubernetesVersion = v

	if ep := spec.GetControlPlaneEndpoint(); ep != "" {
		if err := checkHostPort("control_plane_endpoint", ep); err != nil {
			return Cluster{}, err
		}
		c.ControlPlaneEndpoint = ep
	}
	lb, err := lbconf.ParseSettings("load_balancer", func(n string) string { return n }, spec.GetLoadBalancer())
	if err != nil {
		var fe *lbconf.FieldError
		if errors.As(err, &fe) {
			return Cluster{}, invalid(fe.Field, "", fe.Msg, "")
		}
		return Cluster{}, err
	}
	if ep := lb.Endpoint(); ep != "" {
		if c.ControlPlaneEndpoint != "" && c.ControlPlaneEndpoint != ep {
			return Cluster{}, invalid("control_plane_endpoint", c.ControlPlaneEndpoint, "differs from the load balancer's address "+ep+" (load_balancer type "+lb.Type+")",
				"leave it out: the load balancer Deckhand installs is the cluster's endpoint")
		}
		c.ControlPlaneEndpoint = ep
	}
	c.LoadBalancer = lb

	c.ServiceSubnet = orDefault(spec.GetServiceSubnet(), DefaultServiceSubnet)
	services, err := parseSubnets("service_subnet", c.ServiceSubnet, true)
	if err != nil {
		return Cluster{}, err
	}
	if s := spec.GetPodSubnet(); s != "" {
		pods, err := parseSubnets("pod_subnet", s, false)
		if err != nil {
			return Cluster{}, err
		}
		svcName := "service_subnet " + c.ServiceSubnet
		if spec.GetServiceSubnet() == "" {
			svcName += " (the default)"
		}
		for _, p := range pods {
			for _, svc := range services {
				if p.Overlaps(svc) {
					return Cluster{}, invalid("pod_subnet", s,
						fmt.Sprintf("overlaps %s (pod %s and service %s share addresses; kubeadm does not catch this, and Services and Pods would then collide)", svcName, p, svc),
						"choose disjoint ranges, e.g. pod_subnet 10.244.0.0/16 with service_subnet 10.96.0.0/12")
				}
			}
		}
		c.PodSubnet = s
	}

	c.ClusterName = orDefault(spec.GetClusterName(), DefaultClusterName)
	if reason := subdomainProblem(c.ClusterName); reason != "" {
		return Cluster{}, invalid("cluster_name", c.ClusterName, reason, "use lower-case letters, digits, '-' and '.', e.g. "+DefaultClusterName)
	}

	c.CgroupDriver = orDefault(spec.GetCgroupDriver(), DefaultCgroupDriver)
	if c.CgroupDriver != "systemd" && c.CgroupDriver != "cgroupfs" {
		return Cluster{}, invalid("cgroup_driver", c.CgroupDriver, "is not systemd or cgroupfs",
			"use systemd (kubeadm's default) or cgroupfs, the same as the container runtime's")
	}

	if p := spec.GetNetworkProvider(); p != "" && !slices.Contains(podnet.Providers, p) {
		return Cluster{}, invalid("network_provider", p, "is not a pod network provider Deckhand installs",
			"use "+strings.Join(podnet.Providers, ", ")+", or leave it empty for "+podnet.Providers[0])
	}

	fromDocument := podnet.MustLookup(spec.GetNetworkProvider()).FromDocument
	switch nm := spec.GetNetworkManifest(); {
	case fromDocument && (nm.GetLocation() == "" || nm.GetSha256() == ""):
		return Cluster{}, invalid("network_manifest", "", "is required with the manifest provider",
			"give the manifest's location (an https URL, or a path on the first control plane) and its sha256")
	case !fromDocument && nm != nil:
		return Cluster{}, invalid("network_manifest", nm.GetLocation(), "is set, but the network provider is "+orDefault(spec.GetNetworkProvider(), podnet.Providers[0]),
			"set the provider to manifest, or leave the manifest out")
	case nm != nil:
		if err := safetext.Location("network_manifest.location", nm.GetLocation()); err != nil {
			return Cluster{}, invalid("network_manifest.location", nm.GetLocation(), "is neither an http(s) URL nor an absolute path", "give an https URL, or a path on the first control plane")
		}
		if !sha256RE.MatchString(nm.GetSha256()) {
			return Cluster{}, invalid("network_manifest.sha256", nm.GetSha256(), "is not a SHA-256", "give the manifest's 64 hex digits, as sha256sum prints them")
		}
		if n := len(nm.GetImages()); n > MaxManifestImages {
			return Cluster{}, invalid("network_manifest.images", fmt.Sprint(n), "has too many entries", fmt.Sprintf("list at most %d images", MaxManifestImages))
		}
		if n := len(nm.GetPorts()); n > MaxManifestPorts {
			return Cluster{}, invalid("network_manifest.ports", fmt.Sprint(n), "has too many entries", fmt.Sprintf("list at most %d ports", MaxManifestPorts))
		}
		for i, img := range nm.GetImages() {
			if _, err := kubeimages.ParseReference(img); err != nil {
				return Cluster{}, invalid(fmt.Sprintf("network_manifest.images[%d]", i), img, "is not an image reference", "give it as the manifest names it, such as docker.io/calico/node:v3.30.3")
			}
		}
		for i, p := range nm.GetPorts() {
			if err := podnet.ParsePort("", p); err != nil {
				return Cluster{}, invalid(fmt.Sprintf("network_manifest.ports[%d]", i), p, "is not a port", "give PORT/tcp, PORT/udp or FIRST-LAST/tcp, such as 179/tcp")
			}
		}
		if d := nm.GetRolloutTimeout(); d != nil && (!d.IsValid() || d.AsDuration() <= 0 || d.AsDuration() > MaxRolloutTimeout) {
			return Cluster{}, invalid("network_manifest.rollout_timeout", d.AsDuration().String(), "is not a rollout timeout", "give a duration above zero and at most 1h, such as 10m")
		}
	}
	if v := spec.GetNetworkProviderVersion(); v != "" && !providerVersionRE.MatchString(v) {
		return Cluster{}, invalid("network_provider_version", v, "is not a release version",
			"give the provider's version as vMAJOR.MINOR.PATCH (as recorded when the cluster was created), or leave it empty")
	}

	kp := spec.GetKubeProxy()
	if m := kp.GetMode(); m != "" && !slices.Contains(KubeProxyModes, m) {
		return Cluster{}, invalid("kube_proxy.mode", m, "is not a kube-proxy mode",
			"use "+strings.Join(KubeProxyModes, ", ")+", or leave it empty for kube-proxy's default (iptables)")
	}
	c.KubeProxyMode = kp.GetMode()
	if kp != nil && kp.ConntrackMaxPerCore != nil {
		n := kp.GetConntrackMaxPerCore()
		if n < 0 {
			return Cluster{}, invalid("kube_proxy.conntrack_max_per_core", strconv.Itoa(int(n)), "is negative",
				"give connections per CPU core (kube-proxy's default is 32768), or 0 to leave the kernel's nf_conntrack_max alone")
		}
		c.ConntrackMaxPerCore = &n
	}

	if c.CertSANs, err = parseCertSANs("api_server_cert_sans", spec.GetApiServerCertSans()); err != nil {
		return Cluster{}, err
	}
	if c.KubeletExtraArgs, err = parseKubeletArgs("kubelet_extra_args", spec.GetKubeletExtraArgs()); err != nil {
		return Cluster{}, err
	}
	if c.Patches, err = parsePatches("patches", spec.GetPatches()); err != nil {
		return Cluster{}, err
	}

	reg := spec.GetRegistry()
	c.Registry, err = kubeimages.ParseRegistry(reg.GetImageRepository(), reg.GetMirrors(), reg.GetInsecureRegistries())
	if err != nil {
		return Cluster{}, prefixField("registry.", err)
	}
	if err := checkMaintenance(spec); err != nil {
		return Cluster{}, err
	}
	return c, nil
}

// The bounds of the settings the controller acts on by itself.
const (
	DefaultRenewBefore = 30 * 24 * time.Hour
	MinRenewBefore     = time.Hour
	MaxRenewBefore     = 5 * 365 * 24 * time.Hour
	MinBackupInterval  = 10 * time.Minute
	MaxBackupInterval  = 30 * 24 * time.Hour
	DefaultBackupKeep  = 7
	MaxBackupKeep      = 30 // a node's facts list 64 snapshots: the scheduled ones and some more
)

// RenewBefore is how long before a certificate expires the controller renews it.
func RenewBefore(c *taskv1.CertificateSettings) time.Duration {
	if d := c.GetRenewBefore().AsDuration(); d > 0 {
		return d
	}
	return DefaultRenewBefore
}

// BackupKeep is how many scheduled etcd snapshots each control plane keeps.
func BackupKeep(b *taskv1.EtcdBackup) int {
	if k := b.GetKeep(); k > 0 {
		return int(k)
	}
	return DefaultBackupKeep
}

// checkMaintenance bounds the certificate and etcd backup settings.
func checkMaintenance(spec *taskv1.ClusterSpec) error {
	if rb := spec.GetCertificates().GetRenewBefore(); rb != nil {
		if err := rb.CheckValid(); err != nil || rb.AsDuration() < MinRenewBefore || rb.AsDuration() > MaxRenewBefore {
			return invalid("certificates.renew_before", rb.AsDuration().String(), "is out of range",
				fmt.Sprintf("give %v to %v (kubeadm's certificates live a year: 720h renews a month before)", MinRenewBefore, MaxRenewBefore))
		}
	}
	b := spec.GetEtcd().GetBackup()
	if iv := b.GetInterval(); iv != nil {
		if err := iv.CheckValid(); err != nil || iv.AsDuration() < MinBackupInterval || iv.AsDuration() > MaxBackupInterval {
			return invalid("etcd.backup.interval", iv.AsDuration().String(), "is out of range",
				fmt.Sprintf("give %v to %v between snapshots", MinBackupInterval, MaxBackupInterval))
		}
	}
	if b.GetKeep() > MaxBackupKeep {
		return invalid("etcd.backup.keep", strconv.Itoa(int(b.GetKeep())), "is too many", fmt.Sprintf("keep 1 to %d snapshots per control plane", MaxBackupKeep))
	}
	if b.GetKeep() > 0 && b.GetInterval() == nil {
		return invalid("etcd.backup.keep", strconv.Itoa(int(b.GetKeep())), "is set without a schedule", "give etcd.backup.schedule too (for example @daily or 6h)")
	}
	return nil
}

// checkHostPort checks that s is host:port: an IP address (IPv6 in brackets) or a
// lower-case DNS name, and a port from 1 to 65535.
func checkHostPort(field, s string) error {
	const hint = "write host:port, e.g. cp.example.com:6443 or [fd00::1]:6443"
	if strings.ContainsFunc(s, func(r rune) bool { return r < 0x20 || r == 0x7f }) {
		return invalid(field, s, "contains a control character", hint)
	}
	if scheme, rest, ok := strings.Cut(s, "://"); ok {
		return invalid(field, s, "has a URL scheme", "write host:port without "+scheme+"://, e.g. "+strings.TrimSuffix(rest, "/"))
	}
	host, port, ok := splitHostPort(s)
	if !ok {
		if _, err := netip.ParseAddr(s); err == nil && strings.Contains(s, ":") {
			return invalid(field, s, "is an IPv6 address without a port", "write [addr]:6443")
		}
		return invalid(field, s, "is not host:port", "add the API server port, e.g. "+s+":6443")
	}
	if !validPort(port) {
		return invalid(field, s, "has a bad port", "use a port from 1 to 65535, e.g. 6443")
	}
	if strings.HasPrefix(host, "[") {
		a, err := netip.ParseAddr(strings.Trim(host, "[]"))
		if err != nil || !a.Is6() || a.Zone() != "" {
			return invalid(field, s, "has a bad IPv6 address", hint)
		}
		return nil
	}
	if _, err := netip.ParseAddr(host); err == nil {
		return nil
	}
	if strings.Count(host, ".") == 3 && strings.Trim(host, "0123456789.") == "" {
		return invalid(field, s, "has a bad IPv4 address", hint)
	}
	if reason := subdomainProblem(host); reason != "" {
		return invalid(field, s, "has a bad host: "+reason, hint)
	}
	return nil
}

// splitHostPort splits "host:port" or "[v6]:port". Unlike net.SplitHostPort it refuses an
// empty host or port and an unbracketed IPv6 address.
func splitHostPort(s string) (host, port string, ok bool) {
	if strings.HasPrefix(s, "[") {
		end := strings.Index(s, "]")
		if end < 0 || !strings.HasPrefix(s[end+1:], ":") {
			return "", "", false
		}
		host, port = s[:end+1], s[end+2:]
	} else {
		i := strings.LastIndex(s, ":")
		if i < 0 || strings.Count(s, ":") > 1 {
			return "", "", false
		}
		host, port = s[:i], s[i+1:]
	}
	return host, port, host != "" && host != "[]" && port != ""
}

func validPort(p string) bool {
	if p == "" || len(p) > 5 || p[0] == '0' {
		return false
	}
	n := 0
	for _, r := range p {
		if r < '0' || r > '9' {
			return false
		}
		n = n*10 + int(r-'0')
	}
	return n >= 1 && n <= 65535
}

// parseSubnets parses a subnet setting as kubeadm reads it (one CIDR, or one IPv4 and one
// IPv6 CIDR joined by a comma) and applies kubeadm's size rules, so that kubeadm never
// rejects what this package accepts.
func parseSubnets(field, s string, service bool) ([]netip.Prefix, error) {
	const hint = "write a network in CIDR form, e.g. 10.244.0.0/16, or an IPv4 and an IPv6 network joined by a comma"
	parts := strings.Split(s, ",")
	if len(parts) > 2 {
		return nil, invalid(field, s, "has more than two networks", "give one network, or one IPv4 and one IPv6 network for dual-stack")
	}
	var out []netip.Prefix
	for _, part := range parts {
		p, err := netip.ParsePrefix(part)
		if err != nil || p.Addr().Zone() != "" {
			return nil, invalid(field, s, fmt.Sprintf("has %q, which is not a CIDR network", part), hint)
		}
		if p.Addr().Is4In6() {
			return nil, invalid(field, s, fmt.Sprintf("has %q, an IPv4-mapped IPv6 network", part), "write the IPv4 network itself")
		}
		if p.Masked() != p {
			return nil, invalid(field, s, fmt.Sprintf("has %q, which has host bits set", part), fmt.Sprintf("write the network address: %s", p.Masked()))
		}
		bits := p.Addr().BitLen()
		hostBits := bits - p.Bits()
		if service {
			if hostBits > maxServiceHostBits {
				return nil, invalid(field, s, fmt.Sprintf("has %s, larger than kubeadm allows for services", p),
					fmt.Sprintf("use a prefix length of at least /%d", bits-maxServiceHostBits))
			}
			if hostBits < 63 && 1<<hostBits < minServiceAddresses {
				return nil, invalid(field, s, fmt.Sprintf("has %s, too small for the cluster's services", p), fmt.Sprintf("use at least %d addresses", minServiceAddresses))
			}
		} else {
			nodeMask := nodeMaskIPv4
			if p.Addr().Is6() {
				nodeMask = nodeMaskIPv6
			}
			if hostBits < 63 && 1<<hostBits < minPodAddresses {
				return nil, invalid(field, s, fmt.Sprintf("has %s, too small for the cluster's pods", p), fmt.Sprintf("use at least %d addresses", minPodAddresses))
			}
			if p.Bits() > nodeMask || nodeMask-p.Bits() > maxNodeMaskDiff {
				return nil, invalid(field, s, fmt.Sprintf("has %s, which does not fit the per-node /%d ranges the controller-manager allocates", p, nodeMask),
					fmt.Sprintf("use a prefix length from /%d to /%d", nodeMask-maxNodeMaskDiff, nodeMask))
			}
		}
		out = append(out, p)
	}
	if len(out) == 2 && out[0].Addr().Is4() == out[1].Addr().Is4() {
		return nil, invalid(field, s, "has two networks of the same IP family", "for dual-stack give one IPv4 and one IPv6 network")
	}
	return out, nil
}

// minorOf returns MINOR of "vMAJOR.MINOR" for major 1, or -1.
func minorOf(v string) int {
	m, ok := strings.CutPrefix(v, "v1.")
	if !ok {
		return -1
	}
	n, err := strconv.Atoi(m)
	if err != nil {
		return -1
	}
	return n
}

// supportedMinors lists the minors ParseCluster accepts: those of kubeimages'
// table that read v1beta4.
func supportedMinors() string {
	var m []string
	for _, row := range kubeimages.SupportedVersions() {
		if minorOf(row.Minor) >= minV1beta4Minor {
			m = append(m, row.Minor)
		}
	}
	return "a release of " + strings.Join(m, ", ")
}

func orDefault(s, def string) string {
	if s == "" {
		return def
	}
	return s
}
