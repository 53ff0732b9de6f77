package podnet

import (
	"fmt"
	"slices"
	"strconv"
	"strings"

	"github.com/deckhandhq/deckhand/internal/kubeimages"
)

// FlannelVersion is the flannel release the flannel provider runs (scripts/k8s.sh builds
// the lab's flanneld of this version from the Go module proxy).
const FlannelVersion = "v0.28.10"

// flannelVXLANPort is the UDP port of flannel's VXLAN (its net-conf.json Backend.Port, the
// Linux kernel's default).
const flannelVXLANPort = "8472"

// flannelImage is flannel's upstream image of a version.
func flannelImage(version string) string { return "ghcr.io/flannel-io/flannel:" + version }

// Provider is one pod network Deckhand installs, declared once: what the plan adds for it,
// what the agent does on each node, which ports the firewall opens and which images every
// node pulls (and an air-gapped export carries).
type Provider struct {
	Name    string
	Summary string
	// HostRoutes: Deckhand routes every node's pod CIDR via the node's address itself
	// (host-gw: the network task gets the other nodes' routes and routes steps follow joins
	// and resets). Otherwise the provider routes between nodes on its own.
	HostRoutes bool
	// SubnetFile: the provider's agent on each node writes this file (flannel's
	// subnet.env: the node's subnet and the MTU pods get) once it runs there; the network
	// task waits for it and configures the CNI network from it.
	SubnetFile string
	// Ports are opened in the host firewall of every node (not checked free): the
	// provider's traffic between nodes.
	Ports []Port
	// Version is the provider's release this Deckhand installs in a new cluster ("": none,
	// Deckhand's own); a cluster records it (ClusterSpec.network_provider_version).
	Version string
	// Unrecorded is the release a cluster runs whose record has no version: one created
	// before Deckhand recorded versions, when Version was this.
	Unrecorded string
	// Images are the upstream references of the images a version of the provider runs;
	// RewriteImage moves them to the cluster's image repository.
	Images func(version string) []string
	// Manifest renders the objects applied to the cluster once its first control plane is
	// up (nil: nothing), naming the images upstream (the manifest task moves them to the
	// cluster's image repository); ManifestName names the manifest task.
	Manifest     func(ManifestInput) ([]byte, error)
	ManifestName string
	// Namespace is where the manifest runs the provider's pods.
	Namespace string
	// FromDocument: the cluster document gives the manifest (spec.network.manifest: its
	// location, SHA-256, images and ports).
	FromDocument bool
	// OwnCNI: the provider's pods write each node's CNI configuration themselves (Calico,
	// Cilium, a user's manifest): Deckhand runs no network task, a node is done once it is
	// Ready.
	OwnCNI bool
}

// Port is one firewall opening: "8472/udp", "30000-32767/tcp".
type Port struct {
	Spec string
	Why  string
}

// ManifestInput is what a provider's manifest depends on.
type ManifestInput struct {
	// PodSubnet is the cluster's IPv4 pod subnet (ClusterSubnet of its pod_subnet).
	PodSubnet string
	// Version is the provider's version ("": the one this Deckhand installs).
	Version string
}

// providers are every provider; the first is the default.
var providers = []Provider{
	{
		Name:       "bridge",
		Summary:    "a Linux bridge per node and a route to every other node's pods (host-gw): all nodes on one L2 segment",
		HostRoutes: true,
	},
	{
		Name:         "flannel",
		Summary:      "flannel " + FlannelVersion + " with VXLAN between nodes, which may be on different L3 segments",
		SubnetFile:   "/run/flannel/subnet.env",
		Ports:        []Port{{flannelVXLANPort + "/udp", "flannel's VXLAN traffic between nodes"}},
		Version:      FlannelVersion,
		Unrecorded:   "v0.28.10", // never changes: the version of every flannel cluster created before recording
		Images:       func(v string) []string { return []string{flannelImage(v)} },
		Manifest:     flannelManifest,
		ManifestName: "flannel",
		Namespace:    "kube-flannel",
	},
	{
		Name:         "manifest",
		Summary:      "a pod network of your own (Calico, Cilium, ...): its manifest, pinned by SHA-256, applied after init with its images rewritten through the cluster's image repository",
		ManifestName: "network",
		FromDocument: true,
		OwnCNI:       true,
	},
	calico,
	cilium,
}

// Providers are the names of the pod networks Deckhand can install; the first is the
// default.
var Providers = func() []string {
	var names []string
	for _, p := range providers {
		names = append(names, p.Name)
	}
	return names
}()

// Lookup returns the provider named name ("" is the default).
func Lookup(name string) (Provider, bool) {
	if name == "" {
		return providers[0], true
	}
	i := slices.IndexFunc(providers, func(p Provider) bool { return p.Name == name })
	if i < 0 {
		return Provider{}, false
	}
	return providers[i], true
}

// MustLookup is Lookup for a name a parser has accepted; an unknown one is the default.
func MustLookup(name string) Provider {
	if p, ok := Lookup(name); ok {
		return p
	}
	return providers[0]
}

// VersionOf is the release a cluster runs that recorded version recorded ("" for a record
// from before versions were recorded).
func (p Provider) VersionOf(recorded string) string {
	switch {
	case recorded != "":
		return recorded
	case p.Unrecorded != "":
		return p.Unrecorded
	}
	return p.Version
}

// ImagesAt are the images of the provider's version (empty: p.Version) as a cluster with
// image repository repo pulls them (RewriteImage).
func (p Provider) ImagesAt(version, repo string) []string {
	if p.Images == nil {
		return nil
	}
	if version == "" {
		version = p.Version
	}
	var out []string
	for _, ref := range p.Images(version) {
		out = append(out, RewriteImage(ref, repo))
	}
	return out
}

// RewriteImage moves an image reference to the cluster's image repository: with a
// repository set (other than registry.k8s.io, kubeadm's default), the reference's
// registry host is replaced by it and its path kept, so ghcr.io/flannel-io/flannel:v1 is
// pulled as REPO/flannel-io/flannel:v1 (as the control-plane images are REPO/NAME). An
// image mirrored elsewhere by path is found where `crane copy` or `skopeo sync` put it.
func RewriteImage(ref, repo string) string {
	repo = strings.TrimSuffix(repo, "/")
	if repo == "" || repo == kubeimages.DefaultImageRepository {
		return ref
	}
	r, err := kubeimages.ParseReference(ref)
	if err != nil {
		return ref // the declarations are checked by a test; a user's is parsed before
	}
	out := repo + "/" + r.Repository()
	if r.Tag() != "" {
		out += ":" + r.Tag()
	}
	if r.Digest() != "" {
		out += "@" + r.Digest()
	}
	return out
}

// ParsePort checks a firewall opening "PORT/PROTO" or "FIRST-LAST/PROTO" (tcp or udp).
func ParsePort(field, s string) error {
	ports, proto, ok := strings.Cut(s, "/")
	if !ok || (proto != "tcp" && proto != "udp") {
		return &FieldError{field, fmt.Sprintf("%q: give PORT/tcp, PORT/udp or FIRST-LAST/tcp, such as 8472/udp", s)}
	}
	first, last, isRange := strings.Cut(ports, "-")
	a, errA := strconv.ParseUint(first, 10, 16)
	b, errB := a, error(nil)
	if isRange {
		b, errB = strconv.ParseUint(last, 10, 16)
	}
	if errA != nil || errB != nil || a == 0 || b < a {
		return &FieldError{field, fmt.Sprintf("%q: ports are 1..65535, a range FIRST-LAST with FIRST <= LAST", s)}
	}
	return nil
}

// flannelManifest is flannel in the cluster: its namespace, service account and the
// permissions of its kube subnet manager (read the pod and nodes, patch a node's status
// with its lease), net-conf.json with the pod subnet and VXLAN, and a DaemonSet on every
// node (host network, every taint tolerated) running flanneld on the node's InternalIP.
// Deckhand's network task writes the CNI configuration from flannel's subnet.env and owns
// the masquerade rule, so flanneld runs without --ip-masq.
func flannelManifest(in ManifestInput) ([]byte, error) {
	subnet, err := ipv4Subnet(in.PodSubnet, "flannel")
	if err != nil {
		return nil, err
	}
	v := in.Version
	if v == "" {
		v = FlannelVersion
	}
	return []byte(strings.NewReplacer("@SUBNET@", subnet.String(), "@IMAGE@", flannelImage(v), "@PORT@", flannelVXLANPort).Replace(flannelYAML)), nil
}

const flannelYAML = `# flannel for this cluster, written by Deckhand (spec.network.provider: flannel).
apiVersion: v1
kind: Namespace
metadata:
  name: kube-flannel
  labels:
    app.kubernetes.io/managed-by: deckhand
    pod-security.kubernetes.io/enforce: privileged
---
apiVersion: v1
kind: ServiceAccount
metadata:
  name: flannel
  namespace: kube-flannel
---
apiVersion: rbac.authorization.k8s.io/v1
kind: ClusterRole
metadata:
  name: flannel
rules:
- apiGroups: [""]
  resources: [pods]
  verbs: [get]
- apiGroups: [""]
  resources: [nodes]
  verbs: [get, list, watch]
- apiGroups: [""]
  resources: [nodes/status]
  verbs: [patch]
---
apiVersion: rbac.authorization.k8s.io/v1
kind: ClusterRoleBinding
metadata:
  name: flannel
roleRef:
  apiGroup: rbac.authorization.k8s.io
  kind: ClusterRole
  name: flannel
subjects:
- kind: ServiceAccount
  name: flannel
  namespace: kube-flannel
---
apiVersion: v1
kind: ConfigMap
metadata:
  name: kube-flannel-cfg
  namespace: kube-flannel
data:
  net-conf.json: |
    {"Network": "@SUBNET@", "EnableNFTables": false, "Backend": {"Type": "vxlan", "VNI": 1, "Port": @PORT@}}
---
apiVersion: apps/v1
kind: DaemonSet
metadata:
  name: kube-flannel-ds
  namespace: kube-flannel
  labels:
    app: flannel
spec:
  selector:
    matchLabels:
      app: flannel
  updateStrategy:
    type: RollingUpdate
  template:
    metadata:
      labels:
        app: flannel
    spec:
      hostNetwork: true
      priorityClassName: system-node-critical
      serviceAccountName: flannel
      nodeSelector:
        kubernetes.io/os: linux
      tolerations:
      - operator: Exists
      containers:
      - name: kube-flannel
        image: @IMAGE@
        command: [/opt/bin/flanneld]
        args: [--kube-subnet-mgr, --ip-masq=false, --iface=$(NODE_IP), --healthz-port=8081]
        ports:
        - {name: healthz, containerPort: 8081, protocol: TCP}
        # Ready once flanneld has the node's lease, its rules and subnet.env in place.
        readinessProbe:
          httpGet: {path: /readyz, port: healthz}
          initialDelaySeconds: 5
          periodSeconds: 10
        livenessProbe:
          httpGet: {path: /healthz, port: healthz}
          initialDelaySeconds: 10
          periodSeconds: 30
        env:
        - name: NODE_NAME
          valueFrom: {fieldRef: {fieldPath: spec.nodeName}}
        - name: POD_NAME
          valueFrom: {fieldRef: {fieldPath: metadata.name}}
        - name: POD_NAMESPACE
          valueFrom: {fieldRef: {fieldPath: metadata.namespace}}
        - name: NODE_IP
          valueFrom: {fieldRef: {fieldPath: status.hostIP}}
        - name: EVENT_QUEUE_DEPTH
          value: "5000"
        resources:
          requests: {cpu: 100m, memory: 50Mi}
        securityContext:
          privileged: false
          capabilities:
            add: [NET_ADMIN, NET_RAW]
        volumeMounts:
        - {name: run, mountPath: /run/flannel}
        - {name: cfg, mountPath: /etc/kube-flannel/}
        - {name: xtables-lock, mountPath: /run/xtables.lock}
      volumes:
      - name: run
        hostPath: {path: /run/flannel}
      - name: cfg
        configMap: {name: kube-flannel-cfg}
      - name: xtables-lock
        hostPath: {path: /run/xtables.lock, type: FileOrCreate}
`
