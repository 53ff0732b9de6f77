// Package clusterspec reads the declarative cluster document `deckctl apply -f` takes:
//
//	apiVersion: deckhand.dev/v1alpha1
//	kind: Cluster
//	metadata:
//	  name: lab
//	spec:
//	  kubernetesVersion: v1.33.13
//	  controlPlaneEndpoint: 10.250.0.10:6443
//	  imageRepository: registry.k8s.io
//	  mirrors: [http://10.250.0.1:5000]
//	  networking: {podSubnet: 10.244.0.0/16, serviceSubnet: 10.96.0.0/12}
//	  kubeProxy: {mode: iptables, conntrackMaxPerCore: 0}
//	  network: {provider: bridge}
//	  packages: {source: repository, baseURL: https://pkgs.k8s.io/core:/stable:/v1.33/deb}
//	  runtime: {source: package}
//	  concurrency: 10
//	  apiServer: {certSANs: [api.example.com, 192.0.2.10]}
//	  kubelet: {extraArgs: {max-pods: "150"}}
//	  patches:
//	  - {target: kube-apiserver, type: strategic, patch: "metadata: {annotations: {a: b}}"}
//	  nodes:
//	  - {name: node-1, role: control-plane}
//	  - {name: node-2, role: worker, address: 192.168.56.12, labels: {example.com/rack: r1},
//	     taints: [{key: example.com/dedicated, value: infra, effect: NoSchedule}],
//	     kubeletExtraArgs: {max-pods: "60"}}
//
// Unknown fields are refused, and every error names the field by its path in the document.
package clusterspec

import (
	"errors"
	"fmt"
	"net/netip"
	"regexp"
	"slices"
	"strings"
	"time"

	"google.golang.org/protobuf/proto"
	"google.golang.org/protobuf/types/known/durationpb"
	"sigs.k8s.io/yaml"

	"github.com/deckhandhq/deckhand/internal/containerdrepo"
	"github.com/deckhandhq/deckhand/internal/hostos"
	"github.com/deckhandhq/deckhand/internal/kubeadmconfig"
	"github.com/deckhandhq/deckhand/internal/kubeimages"
	"github.com/deckhandhq/deckhand/internal/podnet"
	"github.com/deckhandhq/deckhand/internal/safetext"
	taskv1 "github.com/deckhandhq/deckhand/proto/deckhand/task/v1"
)

// APIVersion and Kind of the document.
const (
	APIVersion = "deckhand.dev/v1alpha1"
	Kind       = "Cluster"

	DefaultConcurrency = 10
	MaxConcurrency     = 1000
)

var (
	// ErrInvalid wraps every validation error.
	ErrInvalid = errors.New("invalid cluster document")

	nameRE = regexp.MustCompile(`^[a-z0-9]([-a-z0-9]{0,61}[a-z0-9])?$`)
)

// Document is the YAML document.
type Document struct {
	APIVersion string   `json:"apiVersion"`
	Kind       string   `json:"kind"`
	Metadata   Metadata `json:"metadata"`
	Spec       Spec     `json:"spec"`
}

// Metadata names the cluster.
type Metadata struct {
	Name string `json:"name,omitempty"`
}

// Spec is the cluster's desired state.
type Spec struct {
	KubernetesVersion    string        `json:"kubernetesVersion"`
	ControlPlaneEndpoint string        `json:"controlPlaneEndpoint,omitempty"`
	ImageRepository      string        `json:"imageRepository,omitempty"`
	Mirrors              []string      `json:"mirrors,omitempty"`
	InsecureRegistries   []string      `json:"insecureRegistries,omitempty"`
	Networking           Networking    `json:"networking,omitempty"`
	CgroupDriver         string        `json:"cgroupDriver,omitempty"`
	KubeProxy            KubeProxy     `json:"kubeProxy,omitempty"`
	Network              Network       `json:"network,omitempty"`
	LoadBalancer         *LoadBalancer `json:"loadBalancer,omitempty"`
	Packages             Packages      `json:"packages,omitempty"`
	Runtime              Runtime       `json:"runtime,omitempty"`
	Concurrency          int           `json:"concurrency,omitempty"`
	APIServer            APIServer     `json:"apiServer,omitempty"`
	Kubelet              Kubelet       `json:"kubelet,omitempty"`
	Patches              []Patch       `json:"patches,omitempty"`
	Certificates         *Certificates `json:"certificates,omitempty"`
	Etcd                 *Etcd         `json:"etcd,omitempty"`
	Nodes                []Node        `json:"nodes"`
}

// LoadBalancer is the API servers' load balancer Deckhand installs and keeps.
type LoadBalancer struct {
	// vip, local or external (the default: controlPlaneEndpoint is yours).
	Type string `json:"type"`
	// vip: the virtual IP.
	Address string `json:"address,omitempty"`
	// The port it listens on: 8443 (vip) or 7443 (local) by default.
	Port uint32 `json:"port,omitempty"`
	// vip: the interface VRRP runs on; by default the one holding the node's address.
	Interface string `json:"interface,omitempty"`
	// vip: the VRRP virtual router ID, 1..255 (51 by default).
	VirtualRouterID uint32 `json:"virtualRouterId,omitempty"`
}

// Certificates says when the leading controller renews the control planes' kubeadm
// certificates by itself.
type Certificates struct {
	// Renew once a certificate expires within this (Go duration; default 720h, 30 days).
	RenewBefore string `json:"renewBefore,omitempty"`
	// Never renew by itself; deckctl certs renew still does.
	Manual bool `json:"manual,omitempty"`
}

// Etcd is the cluster's etcd settings Deckhand keeps.
type Etcd struct {
	Backup *EtcdBackup `json:"backup,omitempty"`
}

// EtcdBackup takes scheduled snapshots on two control planes.
type EtcdBackup struct {
	// How often: "@hourly", "@daily", "@weekly", "@every 6h" or a Go duration ("6h").
	Schedule string `json:"schedule"`
	// Snapshots kept per control plane (default 7).
	Keep uint32 `json:"keep,omitempty"`
}

// ParseSchedule reads a backup schedule: @hourly, @daily, @weekly, "@every D" or "D".
func ParseSchedule(s string) (time.Duration, error) {
	switch s {
	case "@hourly":
		return time.Hour, nil
	case "@daily":
		return 24 * time.Hour, nil
	case "@weekly":
		return 7 * 24 * time.Hour, nil
	}
	d, err := time.ParseDuration(strings.TrimSpace(strings.TrimPrefix(s, "@every ")))
	if err != nil {
		return 0, fmt.Errorf("%q is not a schedule: give @hourly, @daily, @weekly, \"@every 6h\" or a duration such as 6h", s)
	}
	return d, nil
}

// APIServer is the API server's settings.
type APIServer struct {
	// Extra names of its serving certificate: IP addresses or DNS names (*.example.com too).
	CertSANs []string `json:"certSANs,omitempty"`
}

// Kubelet is the kubelet's settings on every node.
type Kubelet struct {
	// Extra flags: name without "--" → value; a node's own kubeletExtraArgs win per name.
	ExtraArgs map[string]string `json:"extraArgs,omitempty"`
}

// Patch is a kubeadm patch, applied on every node by kubeadm init and join.
type Patch struct {
	// etcd, kube-apiserver, kube-controller-manager, kube-scheduler, kubeletconfiguration
	// or corednsdeployment.
	Target string `json:"target"`
	// strategic (the default), merge or json.
	Type string `json:"type,omitempty"`
	// One YAML or JSON document.
	Patch string `json:"patch"`
}

// Taint is a node taint: key[=value]:effect.
type Taint struct {
	Key    string `json:"key"`
	Value  string `json:"value,omitempty"`
	Effect string `json:"effect"`
}

// Networking is the cluster's subnets.
type Networking struct {
	PodSubnet     string `json:"podSubnet,omitempty"`
	ServiceSubnet string `json:"serviceSubnet,omitempty"`
}

// KubeProxy is kube-proxy's configuration.
type KubeProxy struct {
	// "iptables", "ipvs" or "nftables"; empty is kube-proxy's default.
	Mode string `json:"mode,omitempty"`
	// Connections tracked per CPU core; 0 leaves the kernel's nf_conntrack_max alone
	// (needed where it is read-only); absent is kube-proxy's default.
	ConntrackMaxPerCore *int32 `json:"conntrackMaxPerCore,omitempty"`
}

// Network is the pod network Deckhand installs.
type Network struct {
	// "bridge" (the default: host-gw routes, every node on one L2 segment), "flannel"
	// (VXLAN, nodes on any routed network), "calico", "cilium", or "manifest" (a CNI
	// manifest of the user's); see podnet's providers.
	Provider string `json:"provider,omitempty"`
	// Manifest is the pod network of provider "manifest".
	Manifest *NetworkManifest `json:"manifest,omitempty"`
}

// NetworkManifest is a CNI manifest of the user's (provider "manifest").
type NetworkManifest struct {
	// An https URL, or an absolute path on the first control plane.
	Location string `json:"location"`
	SHA256   string `json:"sha256"`
	// The images it runs, as it names them: pre-pulled on every node, carried by an
	// air-gapped export; the manifest may run no other.
	Images []string `json:"images,omitempty"`
	// Ports its pods need open between nodes: "179/tcp", "4789/udp".
	Ports []string `json:"ports,omitempty"`
	// How long its rollouts may take (Go duration); default 5m.
	RolloutTimeout string `json:"rolloutTimeout,omitempty"`
}

// Packages says where kubelet, kubeadm and kubectl come from.
type Packages struct {
	// "repository" (default) or "binaries".
	Source  string            `json:"source,omitempty"`
	BaseURL string            `json:"baseURL,omitempty"`
	SHA256  map[string]string `json:"sha256,omitempty"`
}

// Runtime says how containerd, runc and the CNI plugins are installed.
type Runtime struct {
	// "package" (default) or "tarball".
	Source            string            `json:"source,omitempty"`
	ContainerdTarball string            `json:"containerdTarball,omitempty"`
	RuncBinary        string            `json:"runcBinary,omitempty"`
	CNIPluginsTarball string            `json:"cniPluginsTarball,omitempty"`
	SHA256            map[string]string `json:"sha256,omitempty"`
	// Repository is where a dnf host (Rocky Linux, AlmaLinux, RHEL) gets containerd.io:
	// empty, Docker's repository with its key pinned by Docker's published fingerprint; or
	// a mirror of it with its key's URL and fingerprint.
	Repository RuntimeRepository `json:"repository,omitempty"`
	// ContainerdVersion pins containerd.io on a dnf host ("1.7.27"); empty: the newest.
	ContainerdVersion string `json:"containerdVersion,omitempty"`
}

// RuntimeRepository is a dnf repository of containerd.io and its pinned signing key.
type RuntimeRepository struct {
	BaseURL           string `json:"baseURL,omitempty"`
	GPGKeyURL         string `json:"gpgKeyURL,omitempty"`
	GPGKeyFingerprint string `json:"gpgKeyFingerprint,omitempty"`
}

// Node is one host of the cluster.
type Node struct {
	Name string `json:"name"`
	// "control-plane" or "worker".
	Role string `json:"role"`
	// The node's address in the cluster (advertiseAddress, the kubelet's node-ip, the
	// /etc/hosts entry); empty: the host's address on the route to its controller.
	Address string `json:"address,omitempty"`
	// Labels the kubelet sets on the node.
	Labels map[string]string `json:"labels,omitempty"`
	// Taints the node registers with, replacing kubeadm's default (the control-plane taint
	// on a control plane). An empty list (taints: []) registers it with none at all.
	Taints *[]Taint `json:"taints,omitempty"`
	// Extra kubelet flags of this node; they win over spec.kubelet.extraArgs per name.
	KubeletExtraArgs map[string]string `json:"kubeletExtraArgs,omitempty"`
}

// Cluster is a validated document in the API's terms.
type Cluster struct {
	Name        string
	Spec        *taskv1.ClusterSpec
	Packages    *taskv1.PackagesSpec
	Runtime     *taskv1.RuntimeSpec
	Concurrency int
	Nodes       []NodeRole
}

// NodeRole is a node, its role, the address it was given ("" when none) and its own
// settings (Name and AdvertiseAddress are not set in Settings).
type NodeRole struct {
	Name     string
	Role     taskv1.NodeRole
	Address  string
	Settings *taskv1.NodeSpec
}

// ControlPlanes returns the control-plane nodes in document order.
func (c *Cluster) ControlPlanes() []string {
	var out []string
	for _, n := range c.Nodes {
		if n.Role == taskv1.NodeRole_NODE_ROLE_CONTROL_PLANE {
			out = append(out, n.Name)
		}
	}
	return out
}

func fieldErr(field, format string, args ...any) error {
	return fmt.Errorf("%w: %s: %s", ErrInvalid, field, fmt.Sprintf(format, args...))
}

// specFields maps the ClusterSpec field names kubeadmconfig reports to document paths.
var specFields = map[string]string{
	"kubernetes_version":                "spec.kubernetesVersion",
	"control_plane_endpoint":            "spec.controlPlaneEndpoint",
	"pod_subnet":                        "spec.networking.podSubnet",
	"service_subnet":                    "spec.networking.serviceSubnet",
	"cluster_name":                      "metadata.name",
	"cgroup_driver":                     "spec.cgroupDriver",
	"kube_proxy.mode":                   "spec.kubeProxy.mode",
	"kube_proxy.conntrack_max_per_core": "spec.kubeProxy.conntrackMaxPerCore",
	"registry.image_repository":         "spec.imageRepository",
	"registry.mirrors":                  "spec.mirrors",
	"registry.insecure_registries":      "spec.insecureRegistries",
	"api_server_cert_sans":              "spec.apiServer.certSANs",
	"kubelet_extra_args":                "spec.kubelet.extraArgs",
	"patches":                           "spec.patches",
	"load_balancer":                     "spec.loadBalancer",
	"network_manifest":                  "spec.network.manifest",
	"network_manifest.location":         "spec.network.manifest.location",
	"network_manifest.sha256":           "spec.network.manifest.sha256",
	"network_manifest.images":           "spec.network.manifest.images",
	"network_manifest.ports":            "spec.network.manifest.ports",
	"network_manifest.rollout_timeout":  "spec.network.manifest.rolloutTimeout",
	"load_balancer.type":                "spec.loadBalancer.type",
	"load_balancer.address":             "spec.loadBalancer.address",
	"load_balancer.port":                "spec.loadBalancer.port",
	"load_balancer.interface":           "spec.loadBalancer.interface",
	"load_balancer.virtual_router_id":   "spec.loadBalancer.virtualRouterId",
	"certificates.renew_before":         "spec.certificates.renewBefore",
	"etcd.backup.interval":              "spec.etcd.backup.schedule",
	"etcd.backup.keep":                  "spec.etcd.backup.keep",
}

// nodeFields maps the NodeSpec field names kubeadmconfig reports to a node's fields in the
// document.
var nodeFields = map[string]string{
	"node.labels":             "labels",
	"node.taints":             "taints",
	"node.no_taints":          "taints",
	"node.kubelet_extra_args": "kubeletExtraArgs",
}

// Parse reads and validates a cluster document.
func Parse(data []byte) (*Cluster, error) {
	var doc Document
	if err := yaml.UnmarshalStrict(data, &doc); err != nil {
		return nil, fmt.Errorf("%w: %v (see deploy/lab/cluster.yaml for an example)", ErrInvalid, err)
	}
	if doc.APIVersion != APIVersion {
		return nil, fieldErr("apiVersion", "is %q; use %s", doc.APIVersion, APIVersion)
	}
	if doc.Kind != Kind {
		return nil, fieldErr("kind", "is %q; use %s", doc.Kind, Kind)
	}
	s := doc.Spec
	if s.Network.Provider == "" {
		s.Network.Provider = podnet.Providers[0]
	}
	if !slices.Contains(podnet.Providers, s.Network.Provider) {
		return nil, fieldErr("spec.network.provider", "is %q; use %s", s.Network.Provider, strings.Join(podnet.Providers, ", "))
	}
	if s.Networking.PodSubnet == "" {
		// The bridge provider routes each node's share of the pod subnet: it needs one, and
		// kubeadm has no default.
		s.Networking.PodSubnet = podnet.DefaultPodSubnet
	}
	spec := &taskv1.ClusterSpec{
		KubernetesVersion:    s.KubernetesVersion,
		ControlPlaneEndpoint: s.ControlPlaneEndpoint,
		PodSubnet:            s.Networking.PodSubnet,
		ServiceSubnet:        s.Networking.ServiceSubnet,
		ClusterName:          doc.Metadata.Name,
		CgroupDriver:         s.CgroupDriver,
		NetworkProvider:      s.Network.Provider,
		Registry:             &taskv1.RegistrySettings{ImageRepository: s.ImageRepository, Mirrors: s.Mirrors, InsecureRegistries: s.InsecureRegistries},
	}
	spec.ApiServerCertSans = s.APIServer.CertSANs
	spec.KubeletExtraArgs = s.Kubelet.ExtraArgs
	for _, p := range s.Patches {
		spec.Patches = append(spec.Patches, &taskv1.KubeadmPatch{Target: p.Target, Type: p.Type, Patch: p.Patch})
	}
	if s.KubeProxy != (KubeProxy{}) {
		spec.KubeProxy = &taskv1.KubeProxySettings{Mode: s.KubeProxy.Mode, ConntrackMaxPerCore: s.KubeProxy.ConntrackMaxPerCore}
	}
	if m := s.Network.Manifest; m != nil {
		nm := &taskv1.NetworkManifest{Location: m.Location, Sha256: m.SHA256, Images: m.Images, Ports: m.Ports}
		if m.RolloutTimeout != "" {
			d, err := time.ParseDuration(m.RolloutTimeout)
			if err != nil {
				return nil, fieldErr("spec.network.manifest.rolloutTimeout", "is %q, not a duration: give one such as 10m", m.RolloutTimeout)
			}
			nm.RolloutTimeout = durationpb.New(d) // bounded by kubeadmconfig.ParseCluster
		}
		spec.NetworkManifest = nm
	}
	if c := s.Certificates; c != nil {
		spec.Certificates = &taskv1.CertificateSettings{Manual: c.Manual}
		if c.RenewBefore != "" {
			d, err := time.ParseDuration(c.RenewBefore)
			if err != nil {
				return nil, fieldErr("spec.certificates.renewBefore", "is %q, not a duration: give one such as 720h (30 days)", c.RenewBefore)
			}
			spec.Certificates.RenewBefore = durationpb.New(d) // bounded by kubeadmconfig.ParseCluster
		}
	}
	if e := s.Etcd; e != nil && e.Backup != nil {
		d, err := ParseSchedule(e.Backup.Schedule)
		if err != nil {
			return nil, fieldErr("spec.etcd.backup.schedule", "%v", err)
		}
		spec.Etcd = &taskv1.EtcdSettings{Backup: &taskv1.EtcdBackup{Interval: durationpb.New(d), Keep: e.Backup.Keep}}
	}
	if lb := s.LoadBalancer; lb != nil {
		spec.LoadBalancer = &taskv1.LoadBalancerSettings{Type: lb.Type, Address: lb.Address, Port: lb.Port, Interface: lb.Interface, VirtualRouterId: lb.VirtualRouterID}
	}
	parsed, err := kubeadmconfig.ParseCluster(spec)
	if err != nil {
		return nil, renameField(err)
	}
	// The load balancer's address is the cluster's endpoint: kubeadm puts it in every
	// kubeconfig and the API server's certificate.
	spec.ControlPlaneEndpoint = parsed.ControlPlaneEndpoint
	c := &Cluster{Name: doc.Metadata.Name, Spec: spec, Concurrency: s.Concurrency}
	switch {
	case c.Concurrency == 0:
		c.Concurrency = DefaultConcurrency
	case c.Concurrency < 0 || c.Concurrency > MaxConcurrency:
		return nil, fieldErr("spec.concurrency", "is %d; give 1..%d (how many workers join at once)", c.Concurrency, MaxConcurrency)
	}
	switch strings.ToLower(s.Packages.Source) {
	case "", "repository":
		c.Packages = &taskv1.PackagesSpec{Source: taskv1.PackageSource_PACKAGE_SOURCE_REPOSITORY, BaseUrl: s.Packages.BaseURL, Hold: true}
	case "binaries":
		if s.Packages.BaseURL == "" {
			return nil, fieldErr("spec.packages.baseURL", "is required for binaries; for example https://dl.k8s.io/release")
		}
		c.Packages = &taskv1.PackagesSpec{Source: taskv1.PackageSource_PACKAGE_SOURCE_BINARIES, BaseUrl: s.Packages.BaseURL, Sha256: s.Packages.SHA256, Hold: true}
	default:
		return nil, fieldErr("spec.packages.source", "is %q; use repository or binaries", s.Packages.Source)
	}
	if u := s.Packages.BaseURL; u != "" {
		if err := safetext.HTTPURL("spec.packages.baseURL", u); err != nil {
			return nil, fmt.Errorf("%w: %w", ErrInvalid, err)
		}
	}
	switch strings.ToLower(s.Runtime.Source) {
	case "", "package":
		c.Runtime = &taskv1.RuntimeSpec{Source: taskv1.RuntimeSource_RUNTIME_SOURCE_PACKAGE, ContainerdVersion: s.Runtime.ContainerdVersion}
		if r := s.Runtime.Repository; r != (RuntimeRepository{}) {
			c.Runtime.Repository = &taskv1.RuntimeRepository{BaseUrl: r.BaseURL, GpgKeyUrl: r.GPGKeyURL, GpgKeyFingerprint: r.GPGKeyFingerprint}
		}
		if err := checkRuntimeRepository(c.Runtime); err != nil {
			return nil, err
		}
	case "tarball":
		if s.Runtime.ContainerdTarball == "" {
			return nil, fieldErr("spec.runtime.containerdTarball", "is required for a tarball runtime")
		}
		c.Runtime = &taskv1.RuntimeSpec{Source: taskv1.RuntimeSource_RUNTIME_SOURCE_TARBALL, ContainerdTarball: s.Runtime.ContainerdTarball,
			RuncBinary: s.Runtime.RuncBinary, CniPluginsTarball: s.Runtime.CNIPluginsTarball, Sha256: s.Runtime.SHA256}
	default:
		return nil, fieldErr("spec.runtime.source", "is %q; use package or tarball", s.Runtime.Source)
	}
	if s.Runtime.Source != "" && !strings.EqualFold(s.Runtime.Source, "package") && (s.Runtime.Repository != (RuntimeRepository{}) || s.Runtime.ContainerdVersion != "") {
		return nil, fieldErr("spec.runtime.repository", "and spec.runtime.containerdVersion are for source package; a tarball names its files instead")
	}
	if len(s.Nodes) == 0 {
		return nil, fieldErr("spec.nodes", "is empty; list the nodes with their roles (control-plane or worker)")
	}
	seen := map[string]bool{}
	addrs := map[netip.Addr]string{}
	for i, n := range s.Nodes {
		field := fmt.Sprintf("spec.nodes[%d]", i)
		if !nameRE.MatchString(n.Name) {
			return nil, fieldErr(field+".name", "%q must be an RFC 1123 label (lower-case letters, digits and '-', at most 63), as Kubernetes node names are", n.Name)
		}
		if seen[n.Name] {
			return nil, fieldErr(field+".name", "%q is listed twice", n.Name)
		}
		seen[n.Name] = true
		var role taskv1.NodeRole
		switch n.Role {
		case "control-plane":
			role = taskv1.NodeRole_NODE_ROLE_CONTROL_PLANE
		case "worker":
			role = taskv1.NodeRole_NODE_ROLE_WORKER
		default:
			return nil, fieldErr(field+".role", "is %q; use control-plane or worker", n.Role)
		}
		if n.Address != "" {
			ip, err := netip.ParseAddr(n.Address)
			switch {
			case err != nil || ip.Zone() != "":
				return nil, fieldErr(field+".address", "%q is not an IP address: give the node's address on the network the cluster's hosts share, or leave it out for the address on the route to its controller", n.Address)
			case ip.Is4In6() || !ip.IsGlobalUnicast():
				return nil, fieldErr(field+".address", "%s is not a unicast address other hosts can reach: give the node's address on the network the cluster's hosts share", n.Address)
			}
			if other, dup := addrs[ip]; dup {
				return nil, fieldErr(field+".address", "%s is %s's address too: every node needs its own", n.Address, other)
			}
			addrs[ip] = n.Name
		}
		settings := &taskv1.NodeSpec{Labels: n.Labels, KubeletExtraArgs: n.KubeletExtraArgs}
		if n.Taints != nil {
			settings.NoTaints = len(*n.Taints) == 0
			for _, t := range *n.Taints {
				settings.Taints = append(settings.Taints, &taskv1.Taint{Key: t.Key, Value: t.Value, Effect: t.Effect})
			}
		}
		check := proto.Clone(settings).(*taskv1.NodeSpec)
		check.Name = n.Name
		if _, err := kubeadmconfig.ParseNode(check); err != nil {
			return nil, renameNodeField(field, err)
		}
		c.Nodes = append(c.Nodes, NodeRole{Name: n.Name, Role: role, Address: n.Address, Settings: settings})
	}
	cps := c.ControlPlanes()
	if len(cps) == 0 {
		return nil, fieldErr("spec.nodes", "has no control-plane node; give at least one node role: control-plane")
	}
	if len(cps) > 1 && spec.GetControlPlaneEndpoint() == "" {
		return nil, fieldErr("spec.controlPlaneEndpoint", "is required with %d control-plane nodes; give the load balancer's host:port (kubeadm needs a shared endpoint for more than one control plane)", len(cps))
	}
	return c, nil
}

// renameNodeField rewrites a kubeadmconfig error about a node's settings to the document's
// field path under node (spec.nodes[i]).
func renameNodeField(node string, err error) error {
	var fe *kubeimages.FieldError
	if !errors.As(err, &fe) {
		return fmt.Errorf("%w: %s: %v", ErrInvalid, node, err)
	}
	c := *fe
	for from, to := range nodeFields {
		if c.Field == from || strings.HasPrefix(c.Field, from+"[") {
			c.Field = node + "." + to + strings.TrimPrefix(c.Field, from)
			break
		}
	}
	return fmt.Errorf("%w: %w", ErrInvalid, &c)
}

// renameField rewrites a kubeadmconfig field error to the document's field path.
func renameField(err error) error {
	var fe *kubeimages.FieldError
	if !errors.As(err, &fe) {
		return fmt.Errorf("%w: %v", ErrInvalid, err)
	}
	c := *fe
	for from, to := range specFields {
		if c.Field == from || strings.HasPrefix(c.Field, from+"[") {
			c.Field = to + strings.TrimPrefix(c.Field, from)
			break
		}
	}
	return fmt.Errorf("%w: %w", ErrInvalid, &c)
}

// checkRuntimeRepository validates the containerd repository of a dnf host as the agent
// will use it (package containerdrepo), naming the cluster file's fields.
func checkRuntimeRepository(rt *taskv1.RuntimeSpec) error {
	if err := containerdrepo.CheckVersion("spec.runtime.containerdVersion", rt.GetContainerdVersion()); err != nil {
		return fmt.Errorf("%w: %w", ErrInvalid, err)
	}
	if r := rt.GetRepository(); r != nil {
		if _, err := containerdrepo.Resolve("spec.runtime.repository.", r.GetBaseUrl(), r.GetGpgKeyUrl(), r.GetGpgKeyFingerprint(), hostos.OS{}); err != nil {
			return fmt.Errorf("%w: %w", ErrInvalid, err)
		}
	}
	return nil
}
