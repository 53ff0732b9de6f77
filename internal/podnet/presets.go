package podnet

import (
	_ "embed" // the presets' manifests
	"fmt"
	"net/netip"
	"strings"
)

// The presets: Calico's and Cilium's manifests as their projects publish them, taken from
// the Go module proxy by scripts/presets.sh (Cilium's Helm chart rendered with Helm's own
// engine and the values that script lists) and embedded here. Each preset's pods write
// every node's CNI configuration themselves; Deckhand applies the manifest after init with
// the images moved to the cluster's image repository, opens the ports, pulls and exports
// the images. Tests check each rendering: it parses, runs only the declared images, and
// the ports its configuration uses are the declared ones.
const (
	// CalicoVersion is the Calico release of presets/calico-vxlan.yaml.
	CalicoVersion = "v3.28.5"
	// CiliumVersion is the Cilium release of presets/cilium.yaml.
	CiliumVersion = "v1.18.4"
)

var (
	//go:embed presets/calico-vxlan.yaml
	calicoYAML string
	//go:embed presets/cilium.yaml
	ciliumYAML string
)

// ciliumEnvoy is the Envoy image each Cilium release's chart runs (cilium-envoy DaemonSet).
var ciliumEnvoy = map[string]string{
	"v1.18.4": "quay.io/cilium/cilium-envoy:v1.34.10-1762597008-ff7ae7d623be00078865cff1b0672cc5d9bfc6d5@sha256:1deb6709afcb5523579bf1abbc3255adf9e354565a88c4a9162c8d9cb1d77ab5",
}

var calico = Provider{
	Name:    "calico",
	Summary: "Calico " + CalicoVersion + " (its VXLAN manifest): VXLAN between nodes on different subnets, routed directly within one, network policy",
	Ports: []Port{
		{"4789/udp", "Calico's VXLAN traffic between nodes (CALICO_IPV4POOL_VXLAN CrossSubnet)"},
	},
	Version:    CalicoVersion,
	Unrecorded: CalicoVersion,
	Images: func(v string) []string {
		return []string{"docker.io/calico/cni:" + v, "docker.io/calico/node:" + v, "docker.io/calico/kube-controllers:" + v}
	},
	Manifest:     calicoManifest,
	ManifestName: "calico",
	Namespace:    "kube-system",
	OwnCNI:       true,
}

var cilium = Provider{
	Name:    "cilium",
	Summary: "Cilium " + CiliumVersion + " (eBPF; its Helm chart's defaults, VXLAN tunnel, IPAM from each Node's podCIDR, Hubble off)",
	Ports: []Port{
		{"8472/udp", "Cilium's VXLAN tunnel between nodes"},
		{"4240/tcp", "Cilium's health checks between nodes (cilium-health)"},
	},
	Version:    CiliumVersion,
	Unrecorded: CiliumVersion,
	Images: func(v string) []string {
		out := []string{"quay.io/cilium/cilium:" + v, "quay.io/cilium/operator-generic:" + v}
		if e, ok := ciliumEnvoy[v]; ok {
			out = append(out, e)
		}
		return out
	},
	Manifest:     ciliumManifest,
	ManifestName: "cilium",
	Namespace:    "kube-system",
	OwnCNI:       true,
}

// calicoPoolCIDR is where Calico's manifest leaves its default IP pool to the installer.
const calicoPoolCIDR = "            # - name: CALICO_IPV4POOL_CIDR\n            #   value: \"192.168.0.0/16\"\n"

// calicoManifest is Calico's VXLAN manifest with its default IP pool set to the cluster's
// pod subnet (Calico's IPAM hands out blocks of it, not the Nodes' podCIDRs) and each
// node's address taken from its Node's InternalIP, the address it joined with (Calico's
// default picks the first interface it finds).
func calicoManifest(in ManifestInput) ([]byte, error) {
	subnet, err := ipv4Subnet(in.PodSubnet, "calico")
	if err != nil {
		return nil, err
	}
	if err := presetVersion("calico", in.Version, CalicoVersion); err != nil {
		return nil, err
	}
	if strings.Count(calicoYAML, calicoPoolCIDR) != 1 {
		return nil, fmt.Errorf("calico's manifest no longer leaves CALICO_IPV4POOL_CIDR to the installer: render scripts/presets.sh again and adapt calicoManifest")
	}
	env := fmt.Sprintf("            - name: CALICO_IPV4POOL_CIDR\n              value: %q\n"+
		"            # The node's address: its Node's InternalIP (written by Deckhand).\n"+
		"            - name: IP_AUTODETECTION_METHOD\n              value: kubernetes-internal-ip\n", subnet)
	return []byte("# Calico " + CalicoVersion + " for a Deckhand cluster (spec.network.provider: calico): manifests/calico-vxlan.yaml\n" +
		"# of its release, with the IP pool " + subnet.String() + " and the node address set by Deckhand.\n" +
		strings.Replace(calicoYAML, calicoPoolCIDR, env, 1)), nil
}

// ciliumManifest is Cilium's chart as scripts/presets.sh rendered it: nothing in it
// depends on the cluster (each node's pods get its Node's podCIDR).
func ciliumManifest(in ManifestInput) ([]byte, error) {
	if _, err := ipv4Subnet(in.PodSubnet, "cilium"); err != nil {
		return nil, err
	}
	if err := presetVersion("cilium", in.Version, CiliumVersion); err != nil {
		return nil, err
	}
	return []byte(ciliumYAML), nil
}

// ipv4Subnet checks the cluster's pod subnet a provider's manifest is rendered for.
func ipv4Subnet(s, provider string) (netip.Prefix, error) {
	subnet, err := netip.ParsePrefix(s)
	if err != nil || !subnet.Addr().Is4() {
		return netip.Prefix{}, &FieldError{"pod_subnet", fmt.Sprintf("%q: %s needs the cluster's IPv4 pod subnet, such as 10.244.0.0/16", s, provider)}
	}
	return subnet.Masked(), nil
}

// presetVersion checks that a preset is asked for the one version this Deckhand carries.
func presetVersion(provider, asked, have string) error {
	if asked != "" && asked != have {
		return &FieldError{"network_provider_version", fmt.Sprintf("%q: this Deckhand carries %s %s only", asked, provider, have)}
	}
	return nil
}
