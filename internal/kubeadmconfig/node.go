package kubeadmconfig

import (
	"fmt"
	"net/netip"
	"path"
	"slices"
	"strings"

	taskv1 "github.com/deckhandhq/deckhand/proto/deckhand/task/v1"
)

// DefaultCRISocket is containerd's socket, the runtime Deckhand installs.
const DefaultCRISocket = "unix:///run/containerd/containerd.sock"

// Node is a validated NodeSpec.
type Node struct {
	// Name is the Node object's name: an RFC 1123 label.
	Name string
	// AdvertiseAddress is the node's address in the cluster: the IP a control plane's API
	// server advertises, and every node's kubelet's --node-ip. Empty lets kubeadm and the
	// kubelet take the address of the default route's interface.
	AdvertiseAddress string
	// CRISocket is a unix:// URL.
	CRISocket string
	// Labels are set by the kubelet when it registers the node (--node-labels).
	Labels map[string]string
	// Taints replace kubeadm's default registration taints when not empty.
	Taints []*taskv1.Taint
	// NoTaints registers the node with no taints at all (kubeadm's taints: []), dropping
	// the control-plane taint; Taints is empty then.
	NoTaints bool
	// KubeletExtraArgs are the node's extra kubelet flags; they win over the cluster's.
	KubeletExtraArgs map[string]string
}

// Taint effects Kubernetes accepts.
var taintEffects = []string{"NoSchedule", "PreferNoSchedule", "NoExecute"}

// Label keys in the kubernetes.io and k8s.io namespaces that a kubelet may set on its own
// Node (k8s.io/kubelet/pkg/apis/well_known_labels.go, v0.33); any other key in those
// namespaces makes the kubelet refuse to start.
var (
	kubeletLabels = []string{
		"beta.kubernetes.io/arch",
		"beta.kubernetes.io/instance-type",
		"beta.kubernetes.io/os",
		"failure-domain.beta.kubernetes.io/region",
		"failure-domain.beta.kubernetes.io/zone",
		"kubernetes.io/arch",
		"kubernetes.io/hostname",
		"kubernetes.io/os",
		"node.kubernetes.io/instance-type",
		"topology.kubernetes.io/region",
		"topology.kubernetes.io/zone",
	}
	kubeletLabelNamespaces = []string{"kubelet.kubernetes.io", "node.kubernetes.io"}
)

// ParseNode validates spec and fills in the defaults. Every error is a
// *kubeimages.FieldError naming node.name, node.advertise_address, node.cri_socket,
// node.labels[KEY], node.taints[i], node.no_taints or node.kubelet_extra_args[NAME].
func ParseNode(spec *taskv1.NodeSpec) (Node, error) {
	n := Node{Name: spec.GetName()}
	if n.Name == "" {
		return Node{}, invalid("node.name", "", "is required", "give the node's name, e.g. its short host name in lower case")
	}
	if reason := labelProblem(n.Name); reason != "" {
		hint := "use lower-case letters, digits and '-', at most 63 characters, e.g. " + suggestName(n.Name)
		return Node{}, invalid("node.name", n.Name, reason, hint)
	}

	if a := spec.GetAdvertiseAddress(); a != "" {
		ip, err := netip.ParseAddr(a)
		switch {
		case err != nil || ip.Zone() != "":
			return Node{}, invalid("node.advertise_address", a, "is not an IP address", "give the node's address on the cluster network, e.g. 10.0.0.10")
		case ip.IsUnspecified() || ip.IsMulticast():
			return Node{}, invalid("node.advertise_address", a, "is not a unicast address", "give the node's address on the cluster network, or leave it empty to use the default route's interface")
		case ip.Is4In6():
			return Node{}, invalid("node.advertise_address", a, "is an IPv4-mapped IPv6 address", "write the IPv4 address "+ip.Unmap().String())
		}
		n.AdvertiseAddress = ip.String()
	}

	n.CRISocket = orDefault(spec.GetCriSocket(), DefaultCRISocket)
	if p, ok := strings.CutPrefix(n.CRISocket, "unix://"); !ok || !path.IsAbs(p) || path.Clean(p) != p || strings.ContainsFunc(p, badPathRune) {
		if strings.HasPrefix(n.CRISocket, "/") {
			return Node{}, invalid("node.cri_socket", n.CRISocket, "has no unix:// scheme", "write unix://"+n.CRISocket)
		}
		return Node{}, invalid("node.cri_socket", n.CRISocket, "is not a unix:// URL of an absolute socket path", "e.g. "+DefaultCRISocket)
	}

	keys := make([]string, 0, len(spec.GetLabels()))
	for k := range spec.GetLabels() {
		keys = append(keys, k)
	}
	slices.Sort(keys)
	for _, k := range keys {
		v := spec.GetLabels()[k]
		field := "node.labels[" + k + "]"
		if reason := qualifiedNameProblem(k); reason != "" {
			return Node{}, invalid(field, k, "is not a label key: "+reason, "write [prefix/]name, e.g. example.com/rack")
		}
		if reason := labelValueProblem(v); reason != "" {
			return Node{}, invalid(field, v, "is not a label value: "+reason, "use at most 63 letters, digits, '-', '_' and '.'")
		}
		if !kubeletMaySet(k) {
			return Node{}, invalid(field, k, "is in the kubernetes.io or k8s.io namespace, and the kubelet refuses to start with such a label in --node-labels",
				"use your own prefix (e.g. example.com/role), a node.kubernetes.io/ key, or set it with kubectl label after the node has joined")
		}
		if n.Labels == nil {
			n.Labels = map[string]string{}
		}
		n.Labels[k] = v
	}

	seen := map[string]int{}
	for i, t := range spec.GetTaints() {
		field := fmt.Sprintf("node.taints[%d]", i)
		s := t.GetKey() + "=" + t.GetValue() + ":" + t.GetEffect()
		if reason := qualifiedNameProblem(t.GetKey()); reason != "" {
			return Node{}, invalid(field, s, "has a bad key: "+reason, "write [prefix/]name, e.g. example.com/dedicated")
		}
		if reason := labelValueProblem(t.GetValue()); reason != "" {
			return Node{}, invalid(field, s, "has a bad value: "+reason, "use at most 63 letters, digits, '-', '_' and '.'")
		}
		if !slices.Contains(taintEffects, t.GetEffect()) {
			return Node{}, invalid(field, s, fmt.Sprintf("has effect %q", t.GetEffect()), "use NoSchedule, PreferNoSchedule or NoExecute")
		}
		id := t.GetKey() + ":" + t.GetEffect()
		if j, dup := seen[id]; dup {
			return Node{}, invalid(field, s, fmt.Sprintf("repeats the key and effect of node.taints[%d]", j), "list each key and effect once")
		}
		seen[id] = i
		n.Taints = append(n.Taints, &taskv1.Taint{Key: t.GetKey(), Value: t.GetValue(), Effect: t.GetEffect()})
	}
	if spec.GetNoTaints() {
		if len(n.Taints) > 0 {
			return Node{}, invalid("node.no_taints", "true", fmt.Sprintf("contradicts the %d taint(s) listed", len(n.Taints)), "list the taints, or ask for none, not both")
		}
		n.NoTaints = true
	}
	var err error
	if n.KubeletExtraArgs, err = parseKubeletArgs("node.kubelet_extra_args", spec.GetKubeletExtraArgs()); err != nil {
		return Node{}, err
	}
	return n, nil
}

// kubeletMaySet reports whether the kubelet accepts key in --node-labels.
func kubeletMaySet(key string) bool {
	ns, _, ok := strings.Cut(key, "/")
	if !ok {
		return true
	}
	if !inNamespace(ns, "kubernetes.io") && !inNamespace(ns, "k8s.io") {
		return true
	}
	if slices.Contains(kubeletLabels, key) {
		return true
	}
	return slices.ContainsFunc(kubeletLabelNamespaces, func(allowed string) bool { return inNamespace(ns, allowed) })
}

func inNamespace(ns, domain string) bool {
	return ns == domain || strings.HasSuffix(ns, "."+domain)
}

func badPathRune(r rune) bool {
	return r <= ' ' || r == 0x7f || r == ',' || r == '"' || r == '\'' || r == '\\'
}

// suggestName turns s into a valid node name where it can, for the error hint.
func suggestName(s string) string {
	s, _, _ = strings.Cut(strings.ToLower(s), ".")
	s = strings.Map(func(r rune) rune {
		if r >= 'a' && r <= 'z' || r >= '0' && r <= '9' || r == '-' {
			return r
		}
		return '-'
	}, s)
	s = strings.Trim(s, "-")
	if len(s) > 63 {
		s = strings.TrimRight(s[:63], "-")
	}
	if s == "" {
		return "node-1"
	}
	return s
}
