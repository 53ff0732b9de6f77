package podnet_test

import (
	"encoding/json"
	"errors"
	"io"
	"slices"
	"sort"
	"strings"
	"testing"

	yaml "go.yaml.in/yaml/v3"

	"github.com/deckhandhq/deckhand/internal/manifests"
	"github.com/deckhandhq/deckhand/internal/podnet"
)

// notBetweenNodes are host ports a provider's pods listen on that no other node needs:
// the firewall does not open them (each with why).
var notBetweenNodes = map[string]map[string]string{
	"flannel": {"8081/tcp": "flanneld's health, probed by the node's own kubelet"},
	"cilium": {
		"9963/tcp": "the Cilium operator's metrics, for a Prometheus of the user's",
		"9964/tcp": "Envoy's metrics, for a Prometheus of the user's",
	},
}

// TestPresetManifests renders every provider's manifest as a node would for a new cluster
// and checks what a user would otherwise find on a broken cluster: the manifest parses
// into named objects; moved to a mirror, it runs exactly the images the provider declares
// (which every node pulls and an air-gapped export carries), each from the mirror; and
// the ports its own configuration uses between nodes are exactly the ones the firewall
// opens.
func TestPresetManifests(t *testing.T) {
	const repo = "mirror.example.com:5000/k8s"
	var rendered []string
	for _, name := range podnet.Providers {
		p := podnet.MustLookup(name)
		if p.Manifest == nil {
			continue
		}
		rendered = append(rendered, name)
		t.Run(name, func(t *testing.T) {
			m, err := p.Manifest(podnet.ManifestInput{PodSubnet: "10.244.0.0/16"})
			if err != nil {
				t.Fatal(err)
			}
			objs, err := manifests.Parse(string(m), true)
			if err != nil {
				t.Fatalf("the manifest does not parse: %v", err)
			}
			if !slices.ContainsFunc(objs, func(o manifests.Object) bool { return o.Kind == "DaemonSet" && (o.Namespace == p.Namespace) }) {
				t.Errorf("no DaemonSet in namespace %s among %d objects", p.Namespace, len(objs))
			}

			moved, upstream, err := manifests.RewriteImages(string(m), repo)
			if err != nil {
				t.Fatal(err)
			}
			if got, want := sorted(upstream), sorted(p.Images(p.Version)); !slices.Equal(got, want) {
				t.Errorf("the manifest runs %v, the provider declares %v", got, want)
			}
			_, pulled, err := manifests.RewriteImages(moved, "")
			if err != nil {
				t.Fatal(err)
			}
			if got, want := sorted(pulled), sorted(p.ImagesAt("", repo)); !slices.Equal(got, want) {
				t.Errorf("moved to %s, the manifest runs %v, want %v", repo, got, want)
			}

			var declared []string
			for _, port := range p.Ports {
				declared = append(declared, port.Spec)
			}
			if got, want := sorted(declared), sorted(usedPorts(t, name, m)); !slices.Equal(got, want) {
				t.Errorf("the firewall opens %v; the manifest's configuration uses %v between nodes", got, want)
			}
		})
	}
	for _, want := range []string{"flannel", "calico", "cilium"} {
		if !slices.Contains(rendered, want) {
			t.Errorf("no manifest of %s was checked", want)
		}
	}
}

// usedPorts reads from a provider's manifest which ports its pods use between nodes: the
// encapsulation, health and peering ports its configuration turns on (with the provider's
// defaults where it leaves them unset), and every host port of its host-network pods but
// those of notBetweenNodes.
func usedPorts(t *testing.T, name string, m []byte) []string {
	t.Helper()
	var used []string
	use := func(p string) {
		if !slices.Contains(used, p) {
			used = append(used, p)
		}
	}
	or := func(v, def string) string {
		if v == "" {
			return def
		}
		return v
	}
	dec := yaml.NewDecoder(strings.NewReader(string(m)))
	for {
		var doc map[string]any
		if err := dec.Decode(&doc); errors.Is(err, io.EOF) {
			break
		} else if err != nil {
			t.Fatal(err)
		}
		kind, _ := doc["kind"].(string)
		objName, _ := get(doc, "metadata", "name").(string)
		data, _ := doc["data"].(map[string]any)
		str := func(k string) string { s, _ := data[k].(string); return s }
		switch {
		case kind == "ConfigMap" && name == "flannel" && objName == "kube-flannel-cfg":
			var nc struct {
				Backend struct {
					Type string
					Port json.Number
				}
			}
			if err := json.Unmarshal([]byte(str("net-conf.json")), &nc); err != nil {
				t.Fatal(err)
			}
			if nc.Backend.Type == "vxlan" {
				use(or(nc.Backend.Port.String(), "8472") + "/udp")
			}
		case kind == "ConfigMap" && name == "calico" && objName == "calico-config":
			if v := str("typha_service_name"); v != "none" {
				use("5473/tcp")
			}
			if str("calico_backend") == "bird" {
				use("179/tcp")
			}
		case kind == "ConfigMap" && name == "cilium" && objName == "cilium-config":
			if str("routing-mode") == "tunnel" {
				switch str("tunnel-protocol") {
				case "vxlan":
					use(or(str("tunnel-port"), "8472") + "/udp")
				case "geneve":
					use(or(str("tunnel-port"), "6081") + "/udp")
				default:
					t.Errorf("cilium's tunnel protocol %q", str("tunnel-protocol"))
				}
			}
			if str("enable-health-checking") == "true" {
				use(or(str("cluster-health-port"), "4240") + "/tcp")
			}
			if str("enable-hubble") == "true" {
				use("4244/tcp")
			}
			if str("enable-wireguard") == "true" {
				use("51820/udp")
			}
		case kind == "DaemonSet" || kind == "Deployment":
			spec, _ := get(doc, "spec", "template", "spec").(map[string]any)
			containers, _ := spec["containers"].([]any)
			for _, c := range containers {
				env, _ := get(c, "env").([]any)
				vars := map[string]string{}
				for _, e := range env {
					k, _ := get(e, "name").(string)
					v, _ := get(e, "value").(string)
					vars[k] = v
				}
				if name == "calico" && get(c, "name") == "calico-node" {
					if or(vars["CALICO_IPV4POOL_VXLAN"], "Never") != "Never" {
						use(or(vars["FELIX_VXLANPORT"], "4789") + "/udp")
					}
					if or(vars["CALICO_IPV4POOL_IPIP"], "Always") != "Never" {
						t.Errorf("calico runs IPIP (IP protocol 4), which the firewall does not open")
					}
				}
				if spec["hostNetwork"] != true {
					continue
				}
				ports, _ := get(c, "ports").([]any)
				for _, p := range ports {
					port := get(p, "hostPort")
					if port == nil {
						port = get(p, "containerPort")
					}
					proto, _ := get(p, "protocol").(string)
					spec := strings.ToLower(or(proto, "TCP"))
					spec = jsonString(port) + "/" + spec
					if _, ok := notBetweenNodes[name][spec]; !ok {
						use(spec)
					}
				}
			}
		}
	}
	return used
}

func get(v any, path ...string) any {
	for _, k := range path {
		m, ok := v.(map[string]any)
		if !ok {
			return nil
		}
		v = m[k]
	}
	return v
}

func jsonString(v any) string { b, _ := json.Marshal(v); return strings.Trim(string(b), `"`) }

func sorted(s []string) []string {
	out := slices.Clone(s)
	sort.Strings(out)
	return slices.Compact(out)
}

// TestCalicoManifestTakesTheCluster: Calico's IP pool is the cluster's pod subnet and each
// node's address its Node's InternalIP; a pod subnet Calico cannot take, or another
// version than the one carried, is refused with the field named.
func TestCalicoManifestTakesTheCluster(t *testing.T) {
	c := podnet.MustLookup("calico")
	m, err := c.Manifest(podnet.ManifestInput{PodSubnet: "10.32.0.0/12"})
	if err != nil {
		t.Fatal(err)
	}
	for _, want := range []string{"- name: CALICO_IPV4POOL_CIDR\n              value: \"10.32.0.0/12\"", "- name: IP_AUTODETECTION_METHOD\n              value: kubernetes-internal-ip"} {
		if !strings.Contains(string(m), want) {
			t.Errorf("calico's manifest lacks %q", want)
		}
	}
	for _, p := range []string{"calico", "cilium"} {
		var fe *podnet.FieldError
		if _, err := podnet.MustLookup(p).Manifest(podnet.ManifestInput{PodSubnet: "fd00::/64"}); !errors.As(err, &fe) || fe.Field != "pod_subnet" {
			t.Errorf("%s for an IPv6 pod subnet: %v, want a FieldError naming pod_subnet", p, err)
		}
		if _, err := podnet.MustLookup(p).Manifest(podnet.ManifestInput{PodSubnet: "10.244.0.0/16", Version: "v0.0.1"}); !errors.As(err, &fe) || fe.Field != "network_provider_version" {
			t.Errorf("%s of another version: %v, want a FieldError naming network_provider_version", p, err)
		}
	}
}
