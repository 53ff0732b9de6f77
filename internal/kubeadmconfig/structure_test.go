package kubeadmconfig

import (
	"strings"
	"testing"

	"google.golang.org/protobuf/proto"
	"google.golang.org/protobuf/reflect/protoreflect"

	taskv1 "github.com/deckhandhq/deckhand/proto/deckhand/task/v1"
)

// Every string a kubeadm config is rendered from refuses a newline or another control
// character: none can add a key or a document to the YAML (sigs.k8s.io/yaml quotes what it
// writes, and the parsers refuse it before that).
func TestConfigValuesRefuseControlCharacters(t *testing.T) {
	goodCluster := &taskv1.ClusterSpec{KubernetesVersion: "v1.33.13", ControlPlaneEndpoint: "cp.example.com:6443", PodSubnet: "10.244.0.0/16",
		ServiceSubnet: "10.96.0.0/12", ClusterName: "lab", CgroupDriver: "systemd", KubeProxy: &taskv1.KubeProxySettings{Mode: "ipvs", ConntrackMaxPerCore: proto.Int32(0)},
		Registry:          &taskv1.RegistrySettings{ImageRepository: "registry.k8s.io", Mirrors: []string{"https://m.example"}, InsecureRegistries: []string{"m.example"}},
		ApiServerCertSans: []string{"api.example.com"}, KubeletExtraArgs: map[string]string{"max-pods": "50"},
		NetworkProvider: "manifest", NetworkProviderVersion: "v1.2.3",
		NetworkManifest: &taskv1.NetworkManifest{Location: "https://example.com/cni.yaml", Sha256: strings.Repeat("a", 64), Images: []string{"docker.io/calico/node:v3.30.3"}, Ports: []string{"179/tcp"}},
		Patches:         []*taskv1.KubeadmPatch{{Target: "kube-apiserver", Type: "merge", Patch: "metadata: {annotations: {a: b}}"}}}
	goodNode := &taskv1.NodeSpec{Name: "cp-1", AdvertiseAddress: "10.0.0.1", CriSocket: "unix:///run/containerd/containerd.sock",
		Labels: map[string]string{"rack": "r1"}, Taints: []*taskv1.Taint{{Key: "dedicated", Value: "infra", Effect: "NoSchedule"}},
		KubeletExtraArgs: map[string]string{"v": "2"}}
	if _, err := ParseCluster(goodCluster); err != nil {
		t.Fatal(err)
	}
	if _, err := ParseNode(goodNode); err != nil {
		t.Fatal(err)
	}
	for _, bad := range []string{"\n---\nkind: InitConfiguration", "\nx: y", "\r", "\x00", "\t"} {
		// Every string field (and list element) of the cluster spec, registry included.
		forEachString(goodCluster, func(name string, set func(*taskv1.ClusterSpec)) {
			c := proto.Clone(goodCluster).(*taskv1.ClusterSpec)
			set(c)
			if _, err := ParseCluster(c); err == nil {
				t.Errorf("ParseCluster accepted %s with %q", name, bad)
			}
		}, bad)
		for name, set := range map[string]func(n *taskv1.NodeSpec){
			"name":               func(n *taskv1.NodeSpec) { n.Name += bad },
			"advertise_address":  func(n *taskv1.NodeSpec) { n.AdvertiseAddress += bad },
			"cri_socket":         func(n *taskv1.NodeSpec) { n.CriSocket += bad },
			"label key":          func(n *taskv1.NodeSpec) { n.Labels["rack"+bad] = "r1" },
			"label value":        func(n *taskv1.NodeSpec) { n.Labels["rack"] += bad },
			"taint key":          func(n *taskv1.NodeSpec) { n.Taints[0].Key += bad },
			"taint value":        func(n *taskv1.NodeSpec) { n.Taints[0].Value += bad },
			"taint effect":       func(n *taskv1.NodeSpec) { n.Taints[0].Effect += bad },
			"kubelet flag name":  func(n *taskv1.NodeSpec) { n.KubeletExtraArgs["v"+bad] = "2" },
			"kubelet flag value": func(n *taskv1.NodeSpec) { n.KubeletExtraArgs["v"] += bad },
		} {
			n := proto.Clone(goodNode).(*taskv1.NodeSpec)
			set(n)
			if _, err := ParseNode(n); err == nil {
				t.Errorf("ParseNode accepted %s with %q", name, bad)
			}
		}
	}
}

// forEachString calls fn once per string field, string list element or string map value of c
// (recursing into the registry and the first patch), with a setter that appends bad to it.
// A patch's body is the one string that is not: it is a file of its own, YAML over many
// lines, and never part of a configuration file.
func forEachString(c *taskv1.ClusterSpec, fn func(name string, set func(*taskv1.ClusterSpec)), bad string) {
	var visit func(prefix string, get func(*taskv1.ClusterSpec) protoreflect.Message, md protoreflect.MessageDescriptor)
	visit = func(prefix string, get func(*taskv1.ClusterSpec) protoreflect.Message, md protoreflect.MessageDescriptor) {
		for i := range md.Fields().Len() {
			fd := md.Fields().Get(i)
			name := prefix + string(fd.Name())
			switch {
			case name == "patches[0].patch":
			case fd.IsMap() && fd.MapValue().Kind() == protoreflect.StringKind:
				fn(name+"[value]", func(c *taskv1.ClusterSpec) {
					mp := get(c).Mutable(fd).Map()
					mp.Range(func(k protoreflect.MapKey, v protoreflect.Value) bool {
						mp.Set(k, protoreflect.ValueOfString(v.String()+bad))
						return false
					})
				})
				fn(name+"[key]", func(c *taskv1.ClusterSpec) {
					get(c).Mutable(fd).Map().Set(protoreflect.ValueOfString("x"+bad).MapKey(), protoreflect.ValueOfString("1"))
				})
			case fd.Kind() == protoreflect.MessageKind && fd.IsList():
				visit(name+"[0].", func(c *taskv1.ClusterSpec) protoreflect.Message { return get(c).Mutable(fd).List().Get(0).Message() }, fd.Message())
			case fd.Kind() == protoreflect.StringKind && fd.IsList():
				fn(name+"[0]", func(c *taskv1.ClusterSpec) {
					l := get(c).Mutable(fd).List()
					l.Set(0, protoreflect.ValueOfString(l.Get(0).String()+bad))
				})
			case fd.Kind() == protoreflect.StringKind:
				fn(name, func(c *taskv1.ClusterSpec) {
					m := get(c)
					m.Set(fd, protoreflect.ValueOfString(m.Get(fd).String()+bad))
				})
			case fd.Kind() == protoreflect.MessageKind && strings.HasPrefix(string(fd.Message().FullName()), "deckhand."):
				visit(name+".", func(c *taskv1.ClusterSpec) protoreflect.Message { return get(c).Mutable(fd).Message() }, fd.Message())
			}
		}
	}
	visit("", func(c *taskv1.ClusterSpec) protoreflect.Message { return c.ProtoReflect() }, c.ProtoReflect().Descriptor())
}
