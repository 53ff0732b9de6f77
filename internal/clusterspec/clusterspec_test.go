package clusterspec

import (
	"errors"
	"strings"
	"testing"
	"time"
)

func doc(extra string) []byte {
	return []byte("apiVersion: deckhand.dev/v1alpha1\nkind: Cluster\nmetadata:\n  name: lab\nspec:\n  kubernetesVersion: v1.33.13\n" + extra +
		"  nodes:\n  - {name: node-1, role: control-plane}\n")
}

// kube-proxy's settings reach the cluster spec kubeadm init is given; a host where
// nf_conntrack_max is read-only needs conntrackMaxPerCore 0, which is not the same as absent.
func TestKubeProxySettings(t *testing.T) {
	c, err := Parse(doc("  kubeProxy: {mode: iptables, conntrackMaxPerCore: 0}\n"))
	if err != nil {
		t.Fatal(err)
	}
	kp := c.Spec.GetKubeProxy()
	if kp.GetMode() != "iptables" || kp.ConntrackMaxPerCore == nil || kp.GetConntrackMaxPerCore() != 0 {
		t.Fatalf("kube_proxy = %v", kp)
	}
	c, err = Parse(doc("  kubeProxy: {mode: nftables}\n"))
	if err != nil || c.Spec.GetKubeProxy().ConntrackMaxPerCore != nil || c.Spec.GetKubeProxy().GetMode() != "nftables" {
		t.Fatalf("mode only: %v %v", c.Spec.GetKubeProxy(), err)
	}
	if c, err = Parse(doc("")); err != nil || c.Spec.GetKubeProxy() != nil {
		t.Fatalf("no kubeProxy: %v %v", c.Spec.GetKubeProxy(), err)
	}

	for extra, field := range map[string]string{
		"  kubeProxy: {mode: userspace}\n":           "spec.kubeProxy.mode",
		"  kubeProxy: {conntrackMaxPerCore: -1}\n":   "spec.kubeProxy.conntrackMaxPerCore",
		"  kubeProxy: {conntrackMax: 0}\n":           "conntrackMax",
		"  kubeProxy: {conntrackMaxPerCore: lots}\n": "conntrackMaxPerCore",
	} {
		_, err := Parse(doc(extra))
		if !errors.Is(err, ErrInvalid) || !strings.Contains(err.Error(), field) {
			t.Errorf("%q: %v, want an error naming %s", extra, err, field)
		}
	}
}

// A node's address in the document reaches the plan as given; a bad one is refused naming
// spec.nodes[i].address.
func TestNodeAddress(t *testing.T) {
	nodes := func(extra string) []byte {
		return []byte("apiVersion: deckhand.dev/v1alpha1\nkind: Cluster\nspec:\n  kubernetesVersion: v1.33.13\n  nodes:\n" +
			"  - {name: node-1, role: control-plane, address: 192.168.56.11}\n  - {name: node-2, role: worker}\n" + extra)
	}
	c, err := Parse(nodes(""))
	if err != nil {
		t.Fatal(err)
	}
	if c.Nodes[0].Address != "192.168.56.11" || c.Nodes[1].Address != "" {
		t.Fatalf("nodes = %+v", c.Nodes)
	}
	for extra, want := range map[string]string{
		"  - {name: node-3, role: worker, address: node-3.lan}\n":        "spec.nodes[2].address: \"node-3.lan\" is not an IP address",
		"  - {name: node-3, role: worker, address: 127.0.0.1}\n":         "spec.nodes[2].address: 127.0.0.1 is not a unicast address",
		"  - {name: node-3, role: worker, address: 192.168.56.0/24}\n":   "spec.nodes[2].address",
		"  - {name: node-3, role: worker, address: 192.168.56.11}\n":     "spec.nodes[2].address: 192.168.56.11 is node-1's address too",
		"  - {name: node-3, role: worker, address: '::ffff:10.0.0.1'}\n": "spec.nodes[2].address",
		"  - {name: node-3, role: worker, address: [192.168.56.13]}\n":   "address",
		"  - {name: node-3, role: worker, addresss: 192.168.56.13}\n":    "addresss",
		"  - {name: node-3, role: worker, address: 'fe80::1%eth0'}\n":    "spec.nodes[2].address",
		"  - {name: node-3, role: worker, address: 'fd00::13'}\n" + "":   "",
	} {
		_, err := Parse(nodes(extra))
		if want == "" {
			if err != nil {
				t.Errorf("%q: %v", extra, err)
			}
			continue
		}
		if !errors.Is(err, ErrInvalid) || !strings.Contains(err.Error(), want) {
			t.Errorf("%q: %v, want an error with %q", extra, err, want)
		}
	}
}

// The settings users add reach the cluster and node specs; taints: [] (no taints at all)
// differs from no taints listed (kubeadm's default); each bad one is refused naming its
// path in the document.
func TestSettings(t *testing.T) {
	base := "apiVersion: deckhand.dev/v1alpha1\nkind: Cluster\nspec:\n  kubernetesVersion: v1.33.13\n"
	good := base + `  apiServer: {certSANs: [api.lab.example, 192.0.2.10]}
  kubelet: {extraArgs: {max-pods: "150", v: "2"}}
  patches:
  - {target: kube-apiserver, patch: "metadata: {annotations: {a: b}}"}
  - {target: etcd, type: json, patch: "[{op: add, path: /metadata/labels, value: {a: b}}]"}
  nodes:
  - {name: node-1, role: control-plane, taints: []}
  - {name: node-2, role: worker, labels: {example.com/rack: r1}, taints: [{key: example.com/dedicated, value: lab, effect: PreferNoSchedule}], kubeletExtraArgs: {v: "4"}}
  - {name: node-3, role: worker}
`
	c, err := Parse([]byte(good))
	if err != nil {
		t.Fatal(err)
	}
	s := c.Spec
	if strings.Join(s.GetApiServerCertSans(), ",") != "api.lab.example,192.0.2.10" || s.GetKubeletExtraArgs()["max-pods"] != "150" || len(s.GetPatches()) != 2 ||
		s.GetPatches()[1].GetType() != "json" || s.GetPatches()[0].GetTarget() != "kube-apiserver" {
		t.Errorf("cluster spec = %v", s)
	}
	n1, n2, n3 := c.Nodes[0].Settings, c.Nodes[1].Settings, c.Nodes[2].Settings
	if !n1.GetNoTaints() || len(n1.GetTaints()) != 0 {
		t.Errorf("node-1 (taints: []) = %v, want no taints at all", n1)
	}
	if n2.GetNoTaints() || len(n2.GetTaints()) != 1 || n2.GetTaints()[0].GetEffect() != "PreferNoSchedule" || n2.GetLabels()["example.com/rack"] != "r1" || n2.GetKubeletExtraArgs()["v"] != "4" {
		t.Errorf("node-2 = %v", n2)
	}
	if n3.GetNoTaints() || len(n3.GetTaints()) != 0 {
		t.Errorf("node-3 (no taints listed) = %v, want kubeadm's default", n3)
	}

	nodes := func(extra string) string {
		return "  nodes:\n  - {name: node-1, role: control-plane}\n  - {name: node-2, role: worker" + extra + "}\n"
	}
	node := func(extra string) string { return base + nodes(extra) }
	for doc, want := range map[string]string{
		node(", taints: [{key: a, effect: Sometimes}]"):                                "spec.nodes[1].taints[0]",
		node(", taints: [{key: a, effect: NoSchedule}, {key: a, effect: NoSchedule}]"): "spec.nodes[1].taints[1]",
		node(", labels: {node-role.kubernetes.io/worker: \"\"}"):                       "spec.nodes[1].labels[node-role.kubernetes.io/worker]",
		node(", kubeletExtraArgs: {node-ip: 10.0.0.1}"):                                "spec.nodes[1].kubeletExtraArgs[node-ip]",
		node(", kubeletExtraArgs: {--max-pods: \"1\"}"):                                "spec.nodes[1].kubeletExtraArgs[--max-pods]",
		base + "  apiServer: {certSANs: [ok.example, 'bad name']}\n" + nodes(""):       "spec.apiServer.certSANs[1]",
		base + "  kubelet: {extraArgs: {cgroup-driver: cgroupfs}}\n" + nodes(""):       "spec.kubelet.extraArgs[cgroup-driver]",
		base + "  kubelet: {extraArgs: {v: \"2 3\"}}\n" + nodes(""):                    "spec.kubelet.extraArgs[v]",
		base + "  patches: [{target: kubelet, patch: 'a: b'}]\n" + nodes(""):           "spec.patches[0].target",
		base + "  patches: [{target: etcd, type: yaml, patch: 'a: b'}]\n" + nodes(""):  "spec.patches[0].type",
		base + "  patches: [{target: etcd, type: json, patch: 'a: b'}]\n" + nodes(""):  "spec.patches[0].patch",
		base + "  patches: [{target: etcd, patch: '[1, 2]'}]\n" + nodes(""):            "spec.patches[0].patch",
		base + "  patches: [{target: etcd}]\n" + nodes(""):                             "spec.patches[0].patch",
		base + "  apiServer: {certSANz: [a]}\n" + nodes(""):                            "certSANz",
	} {
		_, err := Parse([]byte(doc))
		if !errors.Is(err, ErrInvalid) || !strings.Contains(err.Error(), want) {
			t.Errorf("%s: %v, want an error naming %s", doc, err, want)
		}
	}
}

// spec.loadBalancer makes the load balancer's address the cluster's endpoint; a bad one is
// refused naming the document's field.
func TestLoadBalancer(t *testing.T) {
	for extra, endpoint := range map[string]string{
		"  loadBalancer: {type: vip, address: 10.250.0.100}\n":                                            "10.250.0.100:8443",
		"  loadBalancer: {type: vip, address: 10.250.0.100, port: 443, virtualRouterId: 9}\n":             "10.250.0.100:443",
		"  loadBalancer: {type: local}\n":                                                                 "127.0.0.1:7443",
		"  loadBalancer: {type: external}\n  controlPlaneEndpoint: lb.example:6443\n":                     "lb.example:6443",
		"  controlPlaneEndpoint: 10.250.0.100:8443\n  loadBalancer: {type: vip, address: 10.250.0.100}\n": "10.250.0.100:8443",
	} {
		c, err := Parse(doc(extra))
		if err != nil {
			t.Fatalf("%q: %v", extra, err)
		}
		if got := c.Spec.GetControlPlaneEndpoint(); got != endpoint {
			t.Errorf("%q: endpoint %q, want %q", extra, got, endpoint)
		}
	}
	for extra, field := range map[string]string{
		"  loadBalancer: {type: vip}\n":                                                            "spec.loadBalancer.address",
		"  loadBalancer: {type: vip, address: 10.250.0.100, virtualRouterId: 300}\n":               "spec.loadBalancer.virtualRouterId",
		"  loadBalancer: {type: vip, address: 10.250.0.100, port: 6443}\n":                         "spec.loadBalancer.port",
		"  loadBalancer: {type: haproxy}\n":                                                        "spec.loadBalancer.type",
		"  loadBalancer: {type: local, interface: eth0}\n":                                         "spec.loadBalancer",
		"  loadBalancer: {type: vip, address: 10.250.0.100, vip: 1}\n":                             "vip",
		"  controlPlaneEndpoint: other:6443\n  loadBalancer: {type: vip, address: 10.250.0.100}\n": "spec.controlPlaneEndpoint",
	} {
		_, err := Parse(doc(extra))
		if !errors.Is(err, ErrInvalid) || !strings.Contains(err.Error(), field) {
			t.Errorf("%q: %v, want an error naming %s", extra, err, field)
		}
	}
}

// spec.network.manifest: a CNI manifest of the user's, pinned by SHA-256; every mistake
// names its field in the document.
func TestNetworkManifest(t *testing.T) {
	sum := strings.Repeat("ab", 32)
	c, err := Parse(doc("  network:\n    provider: manifest\n    manifest:\n      location: https://example.com/calico.yaml\n      sha256: " + sum +
		"\n      images: [docker.io/calico/node:v3.30.3]\n      ports: [179/tcp, 4789/udp]\n      rolloutTimeout: 8m\n"))
	if err != nil {
		t.Fatal(err)
	}
	nm := c.Spec.GetNetworkManifest()
	if c.Spec.GetNetworkProvider() != "manifest" || nm.GetLocation() != "https://example.com/calico.yaml" || nm.GetSha256() != sum ||
		len(nm.GetImages()) != 1 || len(nm.GetPorts()) != 2 || nm.GetRolloutTimeout().AsDuration() != 8*time.Minute {
		t.Errorf("network manifest: %v", nm)
	}
	for extra, field := range map[string]string{
		"  network: {provider: manifest}\n":                                                                                                          "spec.network.manifest",
		"  network: {provider: flannel, manifest: {location: /m.yaml, sha256: " + sum + "}}\n":                                                       "spec.network.manifest",
		"  network: {provider: manifest, manifest: {location: m.yaml, sha256: " + sum + "}}\n":                                                       "spec.network.manifest.location",
		"  network: {provider: manifest, manifest: {location: /m.yaml, sha256: abc}}\n":                                                              "spec.network.manifest.sha256",
		"  network: {provider: manifest, manifest: {location: /m.yaml, sha256: " + sum + ", images: ['a b']}}\n":                                     "spec.network.manifest.images[0]",
		"  network: {provider: manifest, manifest: {location: /m.yaml, sha256: " + sum + ", ports: [179]}}\n":                                        "spec.network.manifest.ports[0]",
		"  network: {provider: manifest, manifest: {location: /m.yaml, sha256: " + sum + ", rolloutTimeout: 2d}}\n":                                  "spec.network.manifest.rolloutTimeout",
		"  network: {provider: manifest, manifest: {location: /m.yaml, sha256: " + sum + ", rolloutTimeout: 2h}}\n":                                  "spec.network.manifest.rolloutTimeout",
		"  network: {provider: manifest, manifest: {location: /m.yaml, sha256: " + sum + ", ports: [" + strings.Repeat("1/tcp, ", 64) + "2/tcp]}}\n": "spec.network.manifest.ports",
	} {
		_, err := Parse(doc(extra))
		if !errors.Is(err, ErrInvalid) || !strings.Contains(err.Error(), field+": ") {
			t.Errorf("%q: %v, want an error naming %s", extra, err, field)
		}
	}
}

// The certificate and backup settings reach the cluster spec; bad ones name their field.
func TestMaintenanceSettings(t *testing.T) {
	c, err := Parse(doc("  certificates: {renewBefore: 1000h}\n  etcd: {backup: {schedule: \"@every 6h\", keep: 3}}\n"))
	if err != nil {
		t.Fatal(err)
	}
	if got := c.Spec.GetCertificates().GetRenewBefore().AsDuration(); got != 1000*time.Hour {
		t.Errorf("renewBefore = %v", got)
	}
	if b := c.Spec.GetEtcd().GetBackup(); b.GetInterval().AsDuration() != 6*time.Hour || b.GetKeep() != 3 {
		t.Errorf("backup = %v", b)
	}
	for sched, want := range map[string]time.Duration{"@hourly": time.Hour, "@daily": 24 * time.Hour, "@weekly": 168 * time.Hour, "90m": 90 * time.Minute} {
		c, err := Parse(doc("  etcd: {backup: {schedule: \"" + sched + "\"}}\n"))
		if err != nil || c.Spec.GetEtcd().GetBackup().GetInterval().AsDuration() != want {
			t.Errorf("%s: %v %v", sched, c, err)
		}
	}
	if c, err := Parse(doc("")); err != nil || c.Spec.GetCertificates() != nil || c.Spec.GetEtcd() != nil {
		t.Fatalf("none: %v", err)
	}
	for extra, field := range map[string]string{
		"  certificates: {renewBefore: soon}\n":                 "spec.certificates.renewBefore",
		"  certificates: {renewBefore: 10m}\n":                  "spec.certificates.renewBefore",
		"  certificates: {renewBefore: 50000h}\n":               "spec.certificates.renewBefore",
		"  certificates: {renewAfter: 1h}\n":                    "renewAfter",
		"  etcd: {backup: {schedule: \"0 3 * * *\"}}\n":         "spec.etcd.backup.schedule",
		"  etcd: {backup: {schedule: 1m}}\n":                    "spec.etcd.backup.schedule",
		"  etcd: {backup: {schedule: \"@daily\", keep: 101}}\n": "spec.etcd.backup.keep",
		"  etcd: {backup: {keep: 3}}\n":                         "spec.etcd.backup.schedule",
	} {
		_, err := Parse(doc(extra))
		if !errors.Is(err, ErrInvalid) || !strings.Contains(err.Error(), field) {
			t.Errorf("%q: %v, want an error naming %s", extra, err, field)
		}
	}
}

// containerd's repository on dnf hosts: Docker's by default (nothing in the task: the agent
// resolves it for the host's OS), a mirror with its pinned key reaches the runtime task, and
// a half-given or wrong one is refused naming its field.
func TestRuntimeRepository(t *testing.T) {
	c, err := Parse(doc(""))
	if err != nil || c.Runtime.GetRepository() != nil || c.Runtime.GetContainerdVersion() != "" {
		t.Fatalf("no runtime settings: %v %v", c.Runtime, err)
	}
	c, err = Parse(doc("  runtime:\n    containerdVersion: 1.7.27\n    repository: {baseURL: \"http://mirror.example/docker/el$releasever\", gpgKeyURL: http://mirror.example/docker/gpg, gpgKeyFingerprint: \"060A 61C5 1B55 8A7F 742B 77AA C52F EB6B 621E 9F35\"}\n"))
	if err != nil {
		t.Fatal(err)
	}
	if r := c.Runtime.GetRepository(); r.GetBaseUrl() != "http://mirror.example/docker/el$releasever" || r.GetGpgKeyFingerprint() == "" || c.Runtime.GetContainerdVersion() != "1.7.27" {
		t.Fatalf("runtime = %v", c.Runtime)
	}
	for extra, field := range map[string]string{
		"  runtime: {containerdVersion: latest}\n":                                                 "spec.runtime.containerdVersion",
		"  runtime: {repository: {baseURL: http://m.example/el9}}\n":                               "spec.runtime.repository.gpgKeyURL",
		"  runtime: {repository: {gpgKeyFingerprint: 621E9F35}}\n":                                 "spec.runtime.repository.baseURL",
		"  runtime: {repository: {baseURL: http://m/a, gpgKeyURL: http://m/k}}\n":                  "spec.runtime.repository.gpgKeyFingerprint",
		"  runtime: {repository: {baseURL: ftp://m/a, gpgKeyURL: http://m/k}}\n":                   "spec.runtime.repository.baseURL",
		"  runtime: {source: tarball, containerdTarball: /srv/c.tgz, containerdVersion: 1.7.27}\n": "spec.runtime.repository",
	} {
		_, err := Parse(doc(extra))
		if !errors.Is(err, ErrInvalid) || !strings.Contains(err.Error(), field) {
			t.Errorf("%q: %v, want an error naming %s", extra, err, field)
		}
	}
}
