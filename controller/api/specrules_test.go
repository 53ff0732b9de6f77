package api

import (
	"crypto/ecdsa"
	"crypto/elliptic"
	"crypto/rand"
	"crypto/x509"
	"crypto/x509/pkix"
	"encoding/pem"
	"errors"
	"fmt"
	"strings"
	"sync"
	"testing"
	"time"

	"google.golang.org/protobuf/proto"
	"google.golang.org/protobuf/reflect/protoreflect"
	"google.golang.org/protobuf/types/known/durationpb"

	"github.com/deckhandhq/deckhand/internal/containerdrepo"
	"github.com/deckhandhq/deckhand/internal/podnet"
	"github.com/deckhandhq/deckhand/internal/tasksecrets"
	apiv1 "github.com/deckhandhq/deckhand/proto/deckhand/api/v1"
	taskv1 "github.com/deckhandhq/deckhand/proto/deckhand/task/v1"
)

func goodCluster() *taskv1.ClusterSpec {
	return &taskv1.ClusterSpec{KubernetesVersion: "v1.33.13", ControlPlaneEndpoint: "10.250.0.10:6443", PodSubnet: "10.244.0.0/16", ServiceSubnet: "10.96.0.0/12",
		CgroupDriver: "systemd", Registry: &taskv1.RegistrySettings{ImageRepository: "registry.k8s.io"},
		KubeProxy: &taskv1.KubeProxySettings{Mode: "iptables", ConntrackMaxPerCore: proto.Int32(0)}}
}

// goodSpecs has one valid spec per kind; each bad case below changes one field of one.
func goodSpecs() map[string]*taskv1.TaskSpec {
	reg := func() *taskv1.RegistrySettings {
		return &taskv1.RegistrySettings{ImageRepository: "registry.k8s.io", Mirrors: []string{"https://mirror.example"}, InsecureRegistries: []string{"10.0.0.5:5000"}}
	}
	return map[string]*taskv1.TaskSpec{
		"preflight": {Kind: &taskv1.TaskSpec_Preflight{Preflight: &taskv1.PreflightSpec{Role: taskv1.NodeRole_NODE_ROLE_WORKER, Fix: true, Ignore: []string{"Swap"}, ExtraPorts: []uint32{30080}}}},
		"packages": {Kind: &taskv1.TaskSpec_Packages{Packages: &taskv1.PackagesSpec{KubernetesVersion: "v1.33.13", Source: taskv1.PackageSource_PACKAGE_SOURCE_BINARIES,
			BaseUrl: "https://dl.k8s.io/release", Sha256: map[string]string{"kubelet": strings.Repeat("a", 64)}, Hold: true,
			Components: []string{"kubelet", "kubectl"}, DownloadOnly: true, RestartKubelet: true}}},
		"runtime": {Kind: &taskv1.TaskSpec_Runtime{Runtime: &taskv1.RuntimeSpec{Source: taskv1.RuntimeSource_RUNTIME_SOURCE_TARBALL, ContainerdTarball: "https://github.com/containerd/containerd.tar.gz",
			RuncBinary: "/tmp/runc", CniPluginsTarball: "/tmp/cni.tgz", Sha256: map[string]string{"/tmp/runc": strings.Repeat("b", 64)},
			KubernetesVersion: "v1.33.13", Registry: reg(), CgroupDriver: "systemd"}}},
		"images": {Kind: &taskv1.TaskSpec_Images{Images: &taskv1.ImagesSpec{Action: taskv1.ImagesAction_IMAGES_ACTION_EXPORT, Images: []string{"registry.k8s.io/pause:3.10"},
			KubernetesVersion: "v1.33.13", Registry: reg(), PullTimeout: durationpb.New(time.Minute), ArchivePath: "/var/tmp/images.tar"}}},
		"kubeadm_init": {Kind: &taskv1.TaskSpec_KubeadmInit{KubeadmInit: &taskv1.KubeadmInitSpec{Cluster: goodCluster(), UploadCerts: true, HealthTimeout: durationpb.New(time.Minute),
			Node: &taskv1.NodeSpec{Name: "cp-1", AdvertiseAddress: "10.0.0.1", CriSocket: "unix:///run/containerd/containerd.sock", Labels: map[string]string{"rack": "r1"},
				Taints: []*taskv1.Taint{{Key: "dedicated", Value: "infra", Effect: "NoSchedule"}}}}}},
		"kubeadm_token": {Kind: &taskv1.TaskSpec_KubeadmToken{KubeadmToken: &taskv1.KubeadmTokenSpec{DeleteTokenId: "abcdef", Ttl: durationpb.New(time.Hour), ControlPlane: true}}},
		"kubeadm_join": {Kind: &taskv1.TaskSpec_KubeadmJoin{KubeadmJoin: &taskv1.KubeadmJoinSpec{Cluster: goodCluster(), Node: &taskv1.NodeSpec{Name: "cp-2"},
			Role: taskv1.NodeRole_NODE_ROLE_CONTROL_PLANE, Token: "abcdef.0123456789abcdef", CaCertHash: "sha256:" + strings.Repeat("0", 64),
			CertificateKey: strings.Repeat("c", 64), HealthTimeout: durationpb.New(time.Minute)}}},
		"kubeadm_reset":   {Kind: &taskv1.TaskSpec_KubeadmReset{KubeadmReset: &taskv1.KubeadmResetSpec{Ipvs: true, RemoveEtcdMember: true}}},
		"drain":           {Kind: &taskv1.TaskSpec_Drain{Drain: &taskv1.DrainSpec{NodeName: "worker-1", Timeout: durationpb.New(time.Minute), Force: true}}},
		"delete_node":     {Kind: &taskv1.TaskSpec_DeleteNode{DeleteNode: &taskv1.DeleteNodeSpec{NodeName: "worker-1"}}},
		"etcd_members":    {Kind: &taskv1.TaskSpec_EtcdMembers{EtcdMembers: &taskv1.EtcdMembersSpec{Absent: "cp-2"}}},
		"node_ready":      {Kind: &taskv1.TaskSpec_NodeReady{NodeReady: &taskv1.NodeReadySpec{NodeName: "worker-1", Timeout: durationpb.New(time.Minute), KubeletVersion: "v1.34.12"}}},
		"kubeadm_upgrade": {Kind: &taskv1.TaskSpec_KubeadmUpgrade{KubeadmUpgrade: &taskv1.KubeadmUpgradeSpec{KubernetesVersion: "v1.34.12", Apply: true}}},
		"cluster_health":  {Kind: &taskv1.TaskSpec_ClusterHealth{ClusterHealth: &taskv1.ClusterHealthSpec{Nodes: []string{"cp-1", "worker-1"}}}},
		"certs_renew":     {Kind: &taskv1.TaskSpec_CertsRenew{CertsRenew: &taskv1.CertsRenewSpec{}}},
		"etcd_snapshot":   {Kind: &taskv1.TaskSpec_EtcdSnapshot{EtcdSnapshot: &taskv1.EtcdSnapshotSpec{Name: "scheduled-20261201t030000"}}},
		"etcd_restore": {Kind: &taskv1.TaskSpec_EtcdRestore{EtcdRestore: &taskv1.EtcdRestoreSpec{Phase: taskv1.EtcdRestorePhase_ETCD_RESTORE_PHASE_REJOIN,
			Snapshot: "nightly", Sha256: strings.Repeat("d", 64), Force: true, RestoreId: "restore-20261201t030000", FirstAddress: "10.250.0.21"}}},
		"diagnostics": {Kind: &taskv1.TaskSpec_Diagnostics{Diagnostics: &taskv1.DiagnosticsSpec{JournalLines: 500}}},
		"kubeconfig_sign": {Kind: &taskv1.TaskSpec_KubeconfigSign{KubeconfigSign: &taskv1.KubeconfigSignSpec{
			CsrPem: adminCSR(), Name: "alice", Groups: []string{"kubeadm:cluster-admins"}, Ttl: durationpb.New(time.Hour)}}},
		"load_balancer": {Kind: &taskv1.TaskSpec_LoadBalancer{LoadBalancer: &taskv1.LoadBalancerSpec{Settings: &taskv1.LoadBalancerSettings{Type: "vip", Address: "10.250.0.100", Port: 8443, Interface: "eth0", VirtualRouterId: 7},
			Backends: []string{"10.250.0.11:6443", "10.250.0.12:6443"}, Priority: 150, NodeAddress: "10.250.0.11", Generation: 9}}},
		"network": {Kind: &taskv1.TaskSpec_Network{Network: &taskv1.NetworkSpec{Provider: "bridge", PodCidr: "10.244.1.0/24", ClusterPodSubnet: "10.244.0.0/16", Mtu: 1450, Generation: 42,
			Routes: []*taskv1.NetworkRoute{{Cidr: "10.244.0.0/24", Via: "10.250.0.10"}, {Cidr: "10.244.2.0/24", Via: "10.250.0.12"}}}}},
		"manifest": {Kind: &taskv1.TaskSpec_Manifest{Manifest: &taskv1.ManifestSpec{Name: "flannel", Content: "apiVersion: v1\nkind: Namespace\nmetadata: {name: kube-flannel}\n",
			Timeout: durationpb.New(3 * time.Minute)}}},
	}
}

// adminCSR is a certificate request for alice in kubeadm:cluster-admins, made once.
var adminCSR = sync.OnceValue(func() string {
	key, err := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	if err != nil {
		panic(err)
	}
	der, err := x509.CreateCertificateRequest(rand.Reader, &x509.CertificateRequest{Subject: pkix.Name{CommonName: "alice", Organization: []string{"kubeadm:cluster-admins"}}}, key)
	if err != nil {
		panic(err)
	}
	return string(pem.EncodeToMemory(&pem.Block{Type: "CERTIFICATE REQUEST", Bytes: der}))
})

// badCase sets one field of a kind's good spec to a bad value.
type badCase struct {
	field protoreflect.FullName
	kind  string
	set   func(s *taskv1.TaskSpec)
	path  string // the error names this field path
}

func many(n int, f func(i int) string) []string {
	out := make([]string, n)
	for i := range out {
		out[i] = f(i)
	}
	return out
}

func badCases() []badCase {
	const t = "deckhand.task.v1."
	neg := durationpb.New(-time.Second)
	nm := func(s *taskv1.TaskSpec) *taskv1.NetworkManifest {
		c := s.GetKubeadmInit().Cluster
		c.NetworkProvider = "manifest"
		c.NetworkManifest = &taskv1.NetworkManifest{Location: "https://example.com/cni.yaml", Sha256: strings.Repeat("a", 64)}
		return c.NetworkManifest
	}
	return []badCase{
		{t + "PreflightSpec.role", "preflight", func(s *taskv1.TaskSpec) { s.GetPreflight().Role = 99 }, "spec.preflight.role"},
		{t + "PreflightSpec.ignore", "preflight", func(s *taskv1.TaskSpec) { s.GetPreflight().Ignore = []string{"all; reboot"} }, "spec.preflight.ignore[0]"},
		{t + "PreflightSpec.extra_ports", "preflight", func(s *taskv1.TaskSpec) { s.GetPreflight().ExtraPorts = []uint32{0} }, "spec.preflight.extra_ports[0]"},
		{t + "PreflightSpec.network_ports", "preflight", func(s *taskv1.TaskSpec) { s.GetPreflight().NetworkPorts = []string{"8472/udp", "8472"} }, "spec.preflight.network_ports[1]"},
		{t + "PreflightSpec.network_ports", "preflight", func(s *taskv1.TaskSpec) { s.GetPreflight().NetworkPorts = []string{"0-10/tcp"} }, "spec.preflight.network_ports[0]"},
		{t + "PreflightSpec.trusted_sources", "preflight", func(s *taskv1.TaskSpec) { s.GetPreflight().TrustedSources = []string{"10.244.0.0/16", "10.244.0.1/16"} }, "spec.preflight.trusted_sources[1]"},
		{t + "PreflightSpec.trusted_sources", "preflight", func(s *taskv1.TaskSpec) { s.GetPreflight().TrustedSources = []string{"any"} }, "spec.preflight.trusted_sources[0]"},
		{t + "PreflightSpec.extra_ports", "preflight", func(s *taskv1.TaskSpec) { s.GetPreflight().ExtraPorts = []uint32{443, 70000} }, "spec.preflight.extra_ports[1]"},
		{t + "PreflightSpec.node_address", "preflight", func(s *taskv1.TaskSpec) { s.GetPreflight().NodeAddress = "node-1.lan" }, "spec.preflight.node_address"},
		{t + "PreflightSpec.node_address", "preflight", func(s *taskv1.TaskSpec) { s.GetPreflight().NodeAddress = "127.0.0.1" }, "spec.preflight.node_address"},

		{t + "PackagesSpec.kubernetes_version", "packages", func(s *taskv1.TaskSpec) { s.GetPackages().KubernetesVersion = "v1.99.0" }, "spec.packages.kubernetes_version"},
		{t + "PackagesSpec.kubernetes_version", "packages", func(s *taskv1.TaskSpec) { s.GetPackages().KubernetesVersion = "" }, "spec.packages.kubernetes_version"},
		{t + "PackagesSpec.source", "packages", func(s *taskv1.TaskSpec) { s.GetPackages().Source = 7 }, "spec.packages.source"},
		{t + "PackagesSpec.base_url", "packages", func(s *taskv1.TaskSpec) { s.GetPackages().BaseUrl = "file:///srv/repo" }, "spec.packages.base_url"},
		{t + "PackagesSpec.base_url", "packages", func(s *taskv1.TaskSpec) {
			s.GetPackages().BaseUrl = "https://mirror.example/rpm\n[evil]\nbaseurl=https://evil.example\ngpgcheck=0"
		}, "spec.packages.base_url"},
		{t + "PackagesSpec.sha256", "packages", func(s *taskv1.TaskSpec) { s.GetPackages().Sha256 = map[string]string{"kubelet": "xyz"} }, "spec.packages.sha256"},
		{t + "PackagesSpec.sha256", "packages", func(s *taskv1.TaskSpec) { s.GetPackages().Sha256 = map[string]string{"bash": strings.Repeat("a", 64)} }, "spec.packages.sha256"},

		{t + "RegistrySettings.image_repository", "runtime", func(s *taskv1.TaskSpec) { s.GetRuntime().Registry.ImageRepository = "https://registry.example" }, "spec.runtime.registry.image_repository"},
		{t + "RegistrySettings.mirrors", "runtime", func(s *taskv1.TaskSpec) {
			s.GetRuntime().Registry.Mirrors = many(1000, func(i int) string { return fmt.Sprintf("https://m%d.example", i) })
		}, "spec.runtime.registry.mirrors"},
		{t + "RegistrySettings.mirrors", "images", func(s *taskv1.TaskSpec) { s.GetImages().Registry.Mirrors = []string{"ftp://mirror"} }, "spec.images.registry.mirrors[0]"},
		{t + "RegistrySettings.insecure_registries", "runtime", func(s *taskv1.TaskSpec) { s.GetRuntime().Registry.InsecureRegistries = []string{"bad host\n"} }, "spec.runtime.registry.insecure_registries[0]"},
		{t + "RegistrySettings.insecure_registries", "runtime", func(s *taskv1.TaskSpec) {
			s.GetRuntime().Registry.InsecureRegistries = many(100, func(i int) string { return fmt.Sprintf("10.0.0.%d:5000", i) })
		}, "spec.runtime.registry.insecure_registries"},

		{t + "RuntimeSpec.source", "runtime", func(s *taskv1.TaskSpec) { s.GetRuntime().Source = 9 }, "spec.runtime.source"},
		{t + "RuntimeSpec.containerd_tarball", "runtime", func(s *taskv1.TaskSpec) { s.GetRuntime().ContainerdTarball = "containerd.tar.gz" }, "spec.runtime.containerd_tarball"},
		{t + "RuntimeSpec.runc_binary", "runtime", func(s *taskv1.TaskSpec) { s.GetRuntime().RuncBinary = "/tmp/../etc/shadow" }, "spec.runtime.runc_binary"},
		{t + "RuntimeSpec.cni_plugins_tarball", "runtime", func(s *taskv1.TaskSpec) { s.GetRuntime().CniPluginsTarball = "https://x.example/cni.tgz\n" }, "spec.runtime.cni_plugins_tarball"},
		{t + "RuntimeSpec.sha256", "runtime", func(s *taskv1.TaskSpec) { s.GetRuntime().Sha256 = map[string]string{"/tmp/runc": "nothex"} }, "spec.runtime.sha256"},
		{t + "RuntimeSpec.kubernetes_version", "runtime", func(s *taskv1.TaskSpec) { s.GetRuntime().KubernetesVersion = "latest" }, "spec.runtime.kubernetes_version"},
		{t + "RuntimeSpec.cgroup_driver", "runtime", func(s *taskv1.TaskSpec) { s.GetRuntime().CgroupDriver = "none" }, "spec.runtime.cgroup_driver"},
		{t + "RuntimeSpec.containerd_version", "runtime", func(s *taskv1.TaskSpec) { s.GetRuntime().ContainerdVersion = "1.7; rm -rf /" }, "spec.runtime.containerd_version"},
		{t + "RuntimeSpec.repository", "runtime", func(s *taskv1.TaskSpec) {
			s.GetRuntime().Repository = &taskv1.RuntimeRepository{BaseUrl: "http://m.example/el9", GpgKeyUrl: "http://m.example/gpg", GpgKeyFingerprint: "621E9F35"}
		}, "spec.runtime.repository"},
		{t + "RuntimeRepository.base_url", "runtime", func(s *taskv1.TaskSpec) {
			s.GetRuntime().Repository = &taskv1.RuntimeRepository{BaseUrl: "http://m.example/el9\ngpgcheck=0", GpgKeyUrl: "http://m.example/gpg", GpgKeyFingerprint: containerdrepo.DockerKeyFingerprint}
		}, "spec.runtime.repository"},
		{t + "RuntimeRepository.gpg_key_url", "runtime", func(s *taskv1.TaskSpec) {
			s.GetRuntime().Repository = &taskv1.RuntimeRepository{BaseUrl: "http://m.example/el9", GpgKeyFingerprint: containerdrepo.DockerKeyFingerprint}
		}, "spec.runtime.repository"},
		{t + "RuntimeRepository.gpg_key_fingerprint", "runtime", func(s *taskv1.TaskSpec) {
			s.GetRuntime().Repository = &taskv1.RuntimeRepository{BaseUrl: "http://m.example/el9", GpgKeyUrl: "http://m.example/gpg"}
		}, "spec.runtime.repository"},

		{t + "ImagesSpec.action", "images", func(s *taskv1.TaskSpec) { s.GetImages().Action = 99 }, "spec.images.action"},
		{t + "ImagesSpec.images", "images", func(s *taskv1.TaskSpec) { s.GetImages().Images = []string{"Registry/UPPER::x"} }, "spec.images.images[0]"},
		{t + "ImagesSpec.extra_images", "images", func(s *taskv1.TaskSpec) { s.GetImages().ExtraImages = []string{"ghcr.io/flannel-io/flannel:v1", "a b"} }, "spec.images.extra_images[1]"},
		{t + "ManifestSpec.name", "manifest", func(s *taskv1.TaskSpec) { s.GetManifest().Name = "../etc/passwd" }, "spec.manifest.name"},
		{t + "ManifestSpec.name", "manifest", func(s *taskv1.TaskSpec) { s.GetManifest().Name = "" }, "spec.manifest.name"},
		{t + "ManifestSpec.content", "manifest", func(s *taskv1.TaskSpec) { s.GetManifest().Content = " \n" }, "spec.manifest.content"},
		{t + "ManifestSpec.content", "manifest", func(s *taskv1.TaskSpec) { s.GetManifest().Content = strings.Repeat("#", MaxManifestBytes+1) }, "spec.manifest.content"},
		{t + "ManifestSpec.timeout", "manifest", func(s *taskv1.TaskSpec) { s.GetManifest().Timeout = neg }, "spec.manifest.timeout"},
		{t + "ImagesSpec.kubernetes_version", "images", func(s *taskv1.TaskSpec) { s.GetImages().KubernetesVersion = "v9" }, "spec.images.kubernetes_version"},
		{t + "ImagesSpec.pull_timeout", "images", func(s *taskv1.TaskSpec) { s.GetImages().PullTimeout = neg }, "spec.images.pull_timeout"},
		{t + "ImagesSpec.archive_path", "images", func(s *taskv1.TaskSpec) { s.GetImages().ArchivePath = "images.tar" }, "spec.images.archive_path"},
		{t + "ImagesSpec.archive_path", "images", func(s *taskv1.TaskSpec) { s.GetImages().ArchivePath = "" }, "spec.images.archive_path"},

		{t + "ClusterSpec.kubernetes_version", "kubeadm_init", func(s *taskv1.TaskSpec) { s.GetKubeadmInit().Cluster.KubernetesVersion = "v1.99.0" }, "spec.kubeadm_init.cluster.kubernetes_version"},
		{t + "ClusterSpec.control_plane_endpoint", "kubeadm_init", func(s *taskv1.TaskSpec) { s.GetKubeadmInit().Cluster.ControlPlaneEndpoint = "cp:6443\nx: y" }, "spec.kubeadm_init.cluster.control_plane_endpoint"},
		{t + "ClusterSpec.pod_subnet", "kubeadm_init", func(s *taskv1.TaskSpec) { s.GetKubeadmInit().Cluster.PodSubnet = "10.96.0.0/16" }, "spec.kubeadm_init.cluster"},
		{t + "ClusterSpec.service_subnet", "kubeadm_init", func(s *taskv1.TaskSpec) { s.GetKubeadmInit().Cluster.ServiceSubnet = "x" }, "spec.kubeadm_init.cluster.service_subnet"},
		{t + "ClusterSpec.cluster_name", "kubeadm_init", func(s *taskv1.TaskSpec) { s.GetKubeadmInit().Cluster.ClusterName = "Bad Name" }, "spec.kubeadm_init.cluster.cluster_name"},
		{t + "ClusterSpec.cgroup_driver", "kubeadm_init", func(s *taskv1.TaskSpec) { s.GetKubeadmInit().Cluster.CgroupDriver = "x" }, "spec.kubeadm_init.cluster.cgroup_driver"},
		{t + "ClusterSpec.kube_proxy", "kubeadm_init", func(s *taskv1.TaskSpec) { s.GetKubeadmInit().Cluster.KubeProxy.Mode = "userspace" }, "spec.kubeadm_init.cluster.kube_proxy.mode"},
		{t + "KubeProxySettings.mode", "kubeadm_join", func(s *taskv1.TaskSpec) { s.GetKubeadmJoin().Cluster.KubeProxy.Mode = "ipvs\nx: y" }, "spec.kubeadm_join.cluster.kube_proxy.mode"},
		{t + "KubeProxySettings.conntrack_max_per_core", "kubeadm_init", func(s *taskv1.TaskSpec) {
			s.GetKubeadmInit().Cluster.KubeProxy.ConntrackMaxPerCore = proto.Int32(-1)
		}, "spec.kubeadm_init.cluster.kube_proxy.conntrack_max_per_core"},
		{t + "ClusterSpec.registry", "kubeadm_init", func(s *taskv1.TaskSpec) { s.GetKubeadmInit().Cluster.Registry.ImageRepository = "a b" }, "spec.kubeadm_init.cluster"},

		{t + "NodeSpec.name", "kubeadm_init", func(s *taskv1.TaskSpec) { s.GetKubeadmInit().Node.Name = "Bad_Name" }, "spec.kubeadm_init.node"},
		{t + "NodeSpec.advertise_address", "kubeadm_init", func(s *taskv1.TaskSpec) { s.GetKubeadmInit().Node.AdvertiseAddress = "not-an-ip" }, "spec.kubeadm_init.node"},
		{t + "NodeSpec.cri_socket", "kubeadm_init", func(s *taskv1.TaskSpec) { s.GetKubeadmInit().Node.CriSocket = "/run/x.sock" }, "spec.kubeadm_init.node"},
		{t + "NodeSpec.labels", "kubeadm_init", func(s *taskv1.TaskSpec) { s.GetKubeadmInit().Node.Labels = map[string]string{"bad key!": "v"} }, "spec.kubeadm_init.node"},
		{t + "NodeSpec.labels", "kubeadm_init", func(s *taskv1.TaskSpec) {
			s.GetKubeadmInit().Node.Labels = map[string]string{}
			for i := range 65 {
				s.GetKubeadmInit().Node.Labels[fmt.Sprintf("l%d", i)] = "v"
			}
		}, "spec.kubeadm_init.node.labels"},
		{t + "NodeSpec.taints", "kubeadm_init", func(s *taskv1.TaskSpec) {
			for range 40 {
				s.GetKubeadmInit().Node.Taints = append(s.GetKubeadmInit().Node.Taints, &taskv1.Taint{Key: "k", Effect: "NoSchedule"})
			}
		}, "spec.kubeadm_init.node.taints"},
		{t + "Taint.key", "kubeadm_init", func(s *taskv1.TaskSpec) { s.GetKubeadmInit().Node.Taints[0].Key = "bad key!" }, "spec.kubeadm_init.node"},
		{t + "Taint.value", "kubeadm_init", func(s *taskv1.TaskSpec) { s.GetKubeadmInit().Node.Taints[0].Value = "bad value!" }, "spec.kubeadm_init.node"},
		{t + "Taint.effect", "kubeadm_init", func(s *taskv1.TaskSpec) { s.GetKubeadmInit().Node.Taints[0].Effect = "NoRun" }, "spec.kubeadm_init.node"},

		{t + "KubeadmInitSpec.cluster", "kubeadm_init", func(s *taskv1.TaskSpec) { s.GetKubeadmInit().Cluster = nil }, "spec.kubeadm_init.cluster"},
		{t + "KubeadmInitSpec.node", "kubeadm_init", func(s *taskv1.TaskSpec) { s.GetKubeadmInit().Node = nil }, "spec.kubeadm_init.node"},
		{t + "KubeadmInitSpec.health_timeout", "kubeadm_init", func(s *taskv1.TaskSpec) { s.GetKubeadmInit().HealthTimeout = neg }, "spec.kubeadm_init.health_timeout"},

		{t + "KubeadmTokenSpec.delete_token_id", "kubeadm_token", func(s *taskv1.TaskSpec) { s.GetKubeadmToken().DeleteTokenId = "--help" }, "spec.kubeadm_token.delete_token_id"},
		// A full token would be stored in the spec and shown to viewers.
		{t + "KubeadmTokenSpec.delete_token_id", "kubeadm_token", func(s *taskv1.TaskSpec) { s.GetKubeadmToken().DeleteTokenId = "abcdef.0123456789abcdeX" }, "spec.kubeadm_token.delete_token_id"},
		{t + "KubeadmTokenSpec.delete_token_id", "kubeadm_token", func(s *taskv1.TaskSpec) { s.GetKubeadmToken().DeleteTokenId = "abcdef.0123456789abcdef" }, "spec.kubeadm_token.delete_token_id"},
		{t + "KubeadmTokenSpec.ttl", "kubeadm_token", func(s *taskv1.TaskSpec) { s.GetKubeadmToken().Ttl = durationpb.New(-time.Hour) }, "spec.kubeadm_token.ttl"},

		{t + "KubeadmJoinSpec.cluster", "kubeadm_join", func(s *taskv1.TaskSpec) { s.GetKubeadmJoin().Cluster = nil }, "spec.kubeadm_join.cluster"},
		{t + "KubeadmJoinSpec.node", "kubeadm_join", func(s *taskv1.TaskSpec) { s.GetKubeadmJoin().Node = &taskv1.NodeSpec{} }, "spec.kubeadm_join.node"},
		{t + "KubeadmJoinSpec.role", "kubeadm_join", func(s *taskv1.TaskSpec) { s.GetKubeadmJoin().Role = 99 }, "spec.kubeadm_join.role"},
		{t + "KubeadmJoinSpec.token", "kubeadm_join", func(s *taskv1.TaskSpec) { s.GetKubeadmJoin().Token = "abcdef.0123456789abcdeX\n" }, "spec.kubeadm_join.token"},
		{t + "KubeadmJoinSpec.token", "kubeadm_join", func(s *taskv1.TaskSpec) { s.GetKubeadmJoin().Token = "" }, "spec.kubeadm_join.token"},
		{t + "KubeadmJoinSpec.ca_cert_hash", "kubeadm_join", func(s *taskv1.TaskSpec) { s.GetKubeadmJoin().CaCertHash = "md5:abc" }, "spec.kubeadm_join.ca_cert_hash"},
		{t + "KubeadmJoinSpec.certificate_key", "kubeadm_join", func(s *taskv1.TaskSpec) { s.GetKubeadmJoin().CertificateKey = "key" }, "spec.kubeadm_join.certificate_key"},
		{t + "KubeadmJoinSpec.certificate_key", "kubeadm_join", func(s *taskv1.TaskSpec) { s.GetKubeadmJoin().Role = taskv1.NodeRole_NODE_ROLE_WORKER }, "spec.kubeadm_join.certificate_key"},
		{t + "KubeadmJoinSpec.health_timeout", "kubeadm_join", func(s *taskv1.TaskSpec) { s.GetKubeadmJoin().HealthTimeout = durationpb.New(2 * time.Hour) }, "spec.kubeadm_join.health_timeout"},

		{t + "DrainSpec.node_name", "drain", func(s *taskv1.TaskSpec) { s.GetDrain().NodeName = "--kubeconfig=/etc/kubernetes/admin.conf" }, "spec.drain.node_name"},
		{t + "DrainSpec.timeout", "drain", func(s *taskv1.TaskSpec) { s.GetDrain().Timeout = neg }, "spec.drain.timeout"},
		{t + "DeleteNodeSpec.node_name", "delete_node", func(s *taskv1.TaskSpec) { s.GetDeleteNode().NodeName = "--kubeconfig=/tmp/x" }, "spec.delete_node.node_name"},
		{t + "DeleteNodeSpec.node_name", "delete_node", func(s *taskv1.TaskSpec) { s.GetDeleteNode().NodeName = "" }, "spec.delete_node.node_name"},
		{t + "EtcdMembersSpec.absent", "etcd_members", func(s *taskv1.TaskSpec) { s.GetEtcdMembers().Absent = "--kubeconfig=/tmp/x" }, "spec.etcd_members.absent"},
		{t + "EtcdMembersSpec.absent_address", "etcd_members", func(s *taskv1.TaskSpec) { s.GetEtcdMembers().AbsentAddress = "node-2:2380" }, "spec.etcd_members.absent_address"},
		{t + "NodeReadySpec.node_name", "node_ready", func(s *taskv1.TaskSpec) { s.GetNodeReady().NodeName = "-A" }, "spec.node_ready.node_name"},
		{t + "NodeReadySpec.timeout", "node_ready", func(s *taskv1.TaskSpec) { s.GetNodeReady().Timeout = durationpb.New(25 * time.Hour) }, "spec.node_ready.timeout"},
		{t + "KubeconfigSignSpec.csr_pem", "kubeconfig_sign", func(s *taskv1.TaskSpec) { s.GetKubeconfigSign().CsrPem = "hello" }, "spec.kubeconfig_sign.csr_pem"},
		{t + "KubeconfigSignSpec.csr_pem", "kubeconfig_sign", func(s *taskv1.TaskSpec) { s.GetKubeconfigSign().CsrPem = "" }, "spec.kubeconfig_sign.csr_pem"},
		// The CSR asks for alice: signing it for bob would give bob's name to alice's key.
		{t + "KubeconfigSignSpec.name", "kubeconfig_sign", func(s *taskv1.TaskSpec) { s.GetKubeconfigSign().Name = "bob" }, "spec.kubeconfig_sign.csr_pem"},
		{t + "KubeconfigSignSpec.name", "kubeconfig_sign", func(s *taskv1.TaskSpec) { s.GetKubeconfigSign().Name = "system:admin" }, "spec.kubeconfig_sign.name"},
		{t + "KubeconfigSignSpec.name", "kubeconfig_sign", func(s *taskv1.TaskSpec) { s.GetKubeconfigSign().Name = "Alice Smith" }, "spec.kubeconfig_sign.name"},
		{t + "KubeconfigSignSpec.groups", "kubeconfig_sign", func(s *taskv1.TaskSpec) { s.GetKubeconfigSign().Groups = []string{"system:masters"} }, "spec.kubeconfig_sign.groups[0]"},
		{t + "KubeconfigSignSpec.ttl", "kubeconfig_sign", func(s *taskv1.TaskSpec) { s.GetKubeconfigSign().Ttl = durationpb.New(time.Minute) }, "spec.kubeconfig_sign.ttl"},
		{t + "KubeconfigSignSpec.ttl", "kubeconfig_sign", func(s *taskv1.TaskSpec) { s.GetKubeconfigSign().Ttl = nil }, "spec.kubeconfig_sign.ttl"},
		{t + "KubeconfigSignSpec.view_binding", "kubeconfig_sign", func(s *taskv1.TaskSpec) { s.GetKubeconfigSign().ViewBinding = true }, "spec.kubeconfig_sign.view_binding"},
		{t + "NodeReadySpec.wait", "node_ready", func(s *taskv1.TaskSpec) { s.GetNodeReady().Wait = 9 }, "spec.node_ready.wait"},
		{t + "NodeReadySpec.kubelet_version", "node_ready", func(s *taskv1.TaskSpec) { s.GetNodeReady().KubeletVersion = "1.34" }, "spec.node_ready.kubelet_version"},
		{t + "KubeadmUpgradeSpec.kubernetes_version", "kubeadm_upgrade", func(s *taskv1.TaskSpec) { s.GetKubeadmUpgrade().KubernetesVersion = "latest" }, "spec.kubeadm_upgrade.kubernetes_version"},
		{t + "KubeadmUpgradeSpec.kubernetes_version", "kubeadm_upgrade", func(s *taskv1.TaskSpec) { s.GetKubeadmUpgrade().KubernetesVersion = "" }, "spec.kubeadm_upgrade.kubernetes_version"},
		{t + "ClusterSpec.certificates", "kubeadm_init", func(s *taskv1.TaskSpec) {
			s.GetKubeadmInit().Cluster.Certificates = &taskv1.CertificateSettings{RenewBefore: durationpb.New(time.Minute)}
		}, "spec.kubeadm_init.cluster.certificates.renew_before"},
		{t + "CertificateSettings.renew_before", "kubeadm_init", func(s *taskv1.TaskSpec) {
			s.GetKubeadmInit().Cluster.Certificates = &taskv1.CertificateSettings{RenewBefore: durationpb.New(10 * 365 * 24 * time.Hour)}
		}, "spec.kubeadm_init.cluster.certificates.renew_before"},
		{t + "ClusterSpec.etcd", "kubeadm_init", func(s *taskv1.TaskSpec) {
			s.GetKubeadmInit().Cluster.Etcd = &taskv1.EtcdSettings{Backup: &taskv1.EtcdBackup{Keep: 3}}
		}, "spec.kubeadm_init.cluster.etcd.backup.keep"},
		{t + "EtcdSettings.backup", "kubeadm_init", func(s *taskv1.TaskSpec) {
			s.GetKubeadmInit().Cluster.Etcd = &taskv1.EtcdSettings{Backup: &taskv1.EtcdBackup{Interval: durationpb.New(time.Second)}}
		}, "spec.kubeadm_init.cluster.etcd.backup.interval"},
		{t + "EtcdBackup.interval", "kubeadm_init", func(s *taskv1.TaskSpec) {
			s.GetKubeadmInit().Cluster.Etcd = &taskv1.EtcdSettings{Backup: &taskv1.EtcdBackup{Interval: durationpb.New(-time.Hour)}}
		}, "spec.kubeadm_init.cluster.etcd.backup.interval"},
		{t + "EtcdBackup.keep", "kubeadm_init", func(s *taskv1.TaskSpec) {
			s.GetKubeadmInit().Cluster.Etcd = &taskv1.EtcdSettings{Backup: &taskv1.EtcdBackup{Interval: durationpb.New(time.Hour), Keep: 31}}
		}, "spec.kubeadm_init.cluster.etcd.backup.keep"},
		{t + "EtcdSnapshotSpec.name", "etcd_snapshot", func(s *taskv1.TaskSpec) { s.GetEtcdSnapshot().Name = "../etc" }, "spec.etcd_snapshot.name"},
		{t + "EtcdSnapshotSpec.upload_address", "etcd_snapshot", func(s *taskv1.TaskSpec) { s.GetEtcdSnapshot().UploadAddress = "attacker.example:443" }, "spec.etcd_snapshot.upload_address"},
		{t + "EtcdSnapshotSpec.transfer_id", "etcd_snapshot", func(s *taskv1.TaskSpec) { s.GetEtcdSnapshot().TransferId = "x-1" }, "spec.etcd_snapshot.transfer_id"},
		{t + "EtcdSnapshotSpec.keep", "etcd_snapshot", func(s *taskv1.TaskSpec) { s.GetEtcdSnapshot().Keep = 1 }, "spec.etcd_snapshot.keep"},
		{t + "EtcdRestoreSpec.phase", "etcd_restore", func(s *taskv1.TaskSpec) { s.GetEtcdRestore().Phase = 99 }, "spec.etcd_restore.phase"},
		{t + "EtcdRestoreSpec.snapshot", "etcd_restore", func(s *taskv1.TaskSpec) { s.GetEtcdRestore().Snapshot = "a/b" }, "spec.etcd_restore.snapshot"},
		{t + "EtcdRestoreSpec.sha256", "etcd_restore", func(s *taskv1.TaskSpec) { s.GetEtcdRestore().Sha256 = "abc" }, "spec.etcd_restore.sha256"},
		{t + "EtcdRestoreSpec.restore_id", "etcd_restore", func(s *taskv1.TaskSpec) { s.GetEtcdRestore().RestoreId = "-x" }, "spec.etcd_restore.restore_id"},
		{t + "EtcdRestoreSpec.first_address", "etcd_restore", func(s *taskv1.TaskSpec) { s.GetEtcdRestore().FirstAddress = "node-1" }, "spec.etcd_restore.first_address"},
		{t + "ClusterHealthSpec.nodes", "cluster_health", func(s *taskv1.TaskSpec) { s.GetClusterHealth().Nodes = []string{"-A"} }, "spec.cluster_health.nodes[0]"},
		{t + "PackagesSpec.components", "packages", func(s *taskv1.TaskSpec) { s.GetPackages().Components = []string{"kubelet", "kube-proxy"} }, "spec.packages.components"},
		{t + "ClusterSpec.api_server_cert_sans", "kubeadm_init", func(s *taskv1.TaskSpec) {
			s.GetKubeadmInit().Cluster.ApiServerCertSans = []string{"ok.example", "bad name"}
		}, "spec.kubeadm_init.cluster.api_server_cert_sans[1]"},
		{t + "ClusterSpec.api_server_cert_sans", "kubeadm_init", func(s *taskv1.TaskSpec) {
			s.GetKubeadmInit().Cluster.ApiServerCertSans = many(MaxCertSANs+1, func(i int) string { return fmt.Sprintf("n%d.example", i) })
		}, "spec.kubeadm_init.cluster.api_server_cert_sans"},
		{t + "ClusterSpec.kubelet_extra_args", "kubeadm_init", func(s *taskv1.TaskSpec) {
			s.GetKubeadmInit().Cluster.KubeletExtraArgs = map[string]string{"node-ip": "10.0.0.1"}
		}, "spec.kubeadm_init.cluster.kubelet_extra_args[node-ip]"},
		{t + "ClusterSpec.kubelet_extra_args", "kubeadm_init", func(s *taskv1.TaskSpec) {
			s.GetKubeadmInit().Cluster.KubeletExtraArgs = map[string]string{"v": "2\nKUBELET=x"}
		}, "spec.kubeadm_init.cluster.kubelet_extra_args[v]"},
		{t + "ClusterSpec.patches", "kubeadm_init", func(s *taskv1.TaskSpec) {
			s.GetKubeadmInit().Cluster.Patches = []*taskv1.KubeadmPatch{{Target: "kube-proxy", Patch: "a: b"}}
		}, "spec.kubeadm_init.cluster.patches[0].target"},
		{t + "KubeadmPatch.target", "kubeadm_init", func(s *taskv1.TaskSpec) {
			s.GetKubeadmInit().Cluster.Patches = []*taskv1.KubeadmPatch{{Target: "../etc", Patch: "a: b"}}
		}, "spec.kubeadm_init.cluster.patches[0].target"},
		{t + "KubeadmPatch.type", "kubeadm_init", func(s *taskv1.TaskSpec) {
			s.GetKubeadmInit().Cluster.Patches = []*taskv1.KubeadmPatch{{Target: "etcd", Type: "replace", Patch: "a: b"}}
		}, "spec.kubeadm_init.cluster.patches[0].type"},
		{t + "KubeadmPatch.patch", "kubeadm_init", func(s *taskv1.TaskSpec) {
			s.GetKubeadmInit().Cluster.Patches = []*taskv1.KubeadmPatch{{Target: "etcd", Patch: "a: b\n---\nc: d"}}
		}, "spec.kubeadm_init.cluster.patches[0].patch"},
		{t + "KubeadmPatch.patch", "kubeadm_init", func(s *taskv1.TaskSpec) {
			s.GetKubeadmInit().Cluster.Patches = []*taskv1.KubeadmPatch{{Target: "etcd", Patch: strings.Repeat("a", MaxPatchBytes+1)}}
		}, "spec.kubeadm_init.cluster.patches[0].patch"},
		{t + "NodeSpec.no_taints", "kubeadm_init", func(s *taskv1.TaskSpec) {
			s.GetKubeadmInit().Node.NoTaints = true
			s.GetKubeadmInit().Node.Taints = []*taskv1.Taint{{Key: "a", Effect: "NoSchedule"}}
		}, "spec.kubeadm_init.node.no_taints"},
		{t + "NodeSpec.kubelet_extra_args", "kubeadm_init", func(s *taskv1.TaskSpec) { s.GetKubeadmInit().Node.KubeletExtraArgs = map[string]string{"--v": "2"} }, "spec.kubeadm_init.node.kubelet_extra_args[--v]"},
		{t + "NodeSpec.kubelet_extra_args", "kubeadm_init", func(s *taskv1.TaskSpec) {
			s.GetKubeadmInit().Node.KubeletExtraArgs = map[string]string{}
			for i := range MaxKubeletArgs + 1 {
				s.GetKubeadmInit().Node.KubeletExtraArgs[fmt.Sprintf("f%d", i)] = "1"
			}
		}, "spec.kubeadm_init.node.kubelet_extra_args"},
		{t + "ClusterSpec.network_provider", "kubeadm_init", func(s *taskv1.TaskSpec) { s.GetKubeadmInit().Cluster.NetworkProvider = "weave" }, "spec.kubeadm_init.cluster.network_provider"},
		{t + "ClusterSpec.network_manifest", "kubeadm_init", func(s *taskv1.TaskSpec) {
			s.GetKubeadmInit().Cluster.NetworkManifest = &taskv1.NetworkManifest{Location: "https://example.com/cni.yaml", Sha256: strings.Repeat("a", 64)}
		}, "spec.kubeadm_init.cluster.network_manifest"},
		{t + "ClusterSpec.network_manifest", "kubeadm_init", func(s *taskv1.TaskSpec) { s.GetKubeadmInit().Cluster.NetworkProvider = "manifest" }, "spec.kubeadm_init.cluster.network_manifest"},
		{t + "NetworkManifest.location", "kubeadm_init", func(s *taskv1.TaskSpec) { nm(s).Location = "cni.yaml" }, "spec.kubeadm_init.cluster.network_manifest.location"},
		{t + "NetworkManifest.sha256", "kubeadm_init", func(s *taskv1.TaskSpec) { nm(s).Sha256 = "abc" }, "spec.kubeadm_init.cluster.network_manifest.sha256"},
		{t + "NetworkManifest.images", "kubeadm_init", func(s *taskv1.TaskSpec) { nm(s).Images = []string{"a b"} }, "spec.kubeadm_init.cluster.network_manifest.images[0]"},
		{t + "NetworkManifest.ports", "kubeadm_init", func(s *taskv1.TaskSpec) { nm(s).Ports = []string{"179"} }, "spec.kubeadm_init.cluster.network_manifest.ports[0]"},
		{t + "NetworkManifest.rollout_timeout", "kubeadm_init", func(s *taskv1.TaskSpec) { nm(s).RolloutTimeout = neg }, "spec.kubeadm_init.cluster.network_manifest.rollout_timeout"},
		{t + "ManifestSpec.location", "manifest", func(s *taskv1.TaskSpec) { s.GetManifest().Location = "cni.yaml" }, "spec.manifest.location"},
		{t + "ManifestSpec.location", "manifest", func(s *taskv1.TaskSpec) { s.GetManifest().Location = "https://example.com/cni.yaml" }, "spec.manifest.location"},
		{t + "ManifestSpec.sha256", "manifest", func(s *taskv1.TaskSpec) {
			s.GetManifest().Content, s.GetManifest().Location = "", "https://example.com/cni.yaml"
		}, "spec.manifest.sha256"},
		{t + "ManifestSpec.sha256", "manifest", func(s *taskv1.TaskSpec) { s.GetManifest().Sha256 = "xyz" }, "spec.manifest.sha256"},
		{t + "ManifestSpec.images", "manifest", func(s *taskv1.TaskSpec) { s.GetManifest().Images = []string{"Bad::ref"} }, "spec.manifest.images[0]"},
		{t + "ManifestSpec.preset", "manifest", func(s *taskv1.TaskSpec) {
			s.GetManifest().Preset = &taskv1.NetworkPreset{Provider: "calico", Version: podnet.CalicoVersion, PodSubnet: "10.244.0.0/16"}
		}, "spec.manifest.preset"},
		{t + "NetworkPreset.provider", "manifest", func(s *taskv1.TaskSpec) {
			s.GetManifest().Content, s.GetManifest().Preset = "", &taskv1.NetworkPreset{Provider: "bridge", Version: "v1.0.0", PodSubnet: "10.244.0.0/16"}
		}, "spec.manifest.preset.provider"},
		{t + "NetworkPreset.version", "manifest", func(s *taskv1.TaskSpec) {
			s.GetManifest().Content, s.GetManifest().Preset = "", &taskv1.NetworkPreset{Provider: "cilium", Version: "v1.0.0", PodSubnet: "10.244.0.0/16"}
		}, "spec.manifest.preset.version"},
		{t + "NetworkPreset.version", "manifest", func(s *taskv1.TaskSpec) {
			s.GetManifest().Content, s.GetManifest().Preset = "", &taskv1.NetworkPreset{Provider: "cilium", Version: "latest", PodSubnet: "10.244.0.0/16"}
		}, "spec.manifest.preset.version"},
		{t + "NetworkPreset.provider", "manifest", func(s *taskv1.TaskSpec) {
			s.GetManifest().Content, s.GetManifest().Preset = "", &taskv1.NetworkPreset{}
		}, "spec.manifest.preset.provider"},
		{t + "NetworkPreset.pod_subnet", "manifest", func(s *taskv1.TaskSpec) {
			s.GetManifest().Content, s.GetManifest().Preset = "", &taskv1.NetworkPreset{Provider: "calico", Version: podnet.CalicoVersion, PodSubnet: "fd00::/64"}
		}, "spec.manifest.preset.pod_subnet"},
		{t + "ClusterSpec.network_provider_version", "kubeadm_init", func(s *taskv1.TaskSpec) { s.GetKubeadmInit().Cluster.NetworkProviderVersion = "latest" }, "spec.kubeadm_init.cluster.network_provider_version"},

		{t + "ClusterSpec.load_balancer", "kubeadm_init", func(s *taskv1.TaskSpec) {
			s.GetKubeadmInit().Cluster.LoadBalancer = &taskv1.LoadBalancerSettings{Type: "vip"}
		}, "spec.kubeadm_init.cluster.load_balancer.address"},
		{t + "LoadBalancerSettings.type", "load_balancer", func(s *taskv1.TaskSpec) { s.GetLoadBalancer().Settings.Type = "kube-vip" }, "spec.load_balancer.settings.type"},
		{t + "LoadBalancerSettings.type", "load_balancer", func(s *taskv1.TaskSpec) { s.GetLoadBalancer().Settings.Type = "external" }, "spec.load_balancer.settings"},
		{t + "LoadBalancerSettings.address", "load_balancer", func(s *taskv1.TaskSpec) { s.GetLoadBalancer().Settings.Address = "lb.example" }, "spec.load_balancer.settings.address"},
		{t + "LoadBalancerSettings.port", "load_balancer", func(s *taskv1.TaskSpec) { s.GetLoadBalancer().Settings.Port = 6443 }, "spec.load_balancer.settings.port"},
		{t + "LoadBalancerSettings.interface", "load_balancer", func(s *taskv1.TaskSpec) { s.GetLoadBalancer().Settings.Interface = "eth0 dev lo" }, "spec.load_balancer.settings.interface"},
		{t + "LoadBalancerSettings.virtual_router_id", "load_balancer", func(s *taskv1.TaskSpec) { s.GetLoadBalancer().Settings.VirtualRouterId = 300 }, "spec.load_balancer.settings.virtual_router_id"},
		{t + "LoadBalancerSpec.settings", "load_balancer", func(s *taskv1.TaskSpec) { s.GetLoadBalancer().Settings = nil }, "spec.load_balancer.settings.type"},
		{t + "LoadBalancerSpec.backends", "load_balancer", func(s *taskv1.TaskSpec) { s.GetLoadBalancer().Backends = []string{"node-1:6443"} }, "spec.load_balancer.backends[0]"},
		{t + "LoadBalancerSpec.priority", "load_balancer", func(s *taskv1.TaskSpec) { s.GetLoadBalancer().Priority = 255 }, "spec.load_balancer.priority"},
		{t + "LoadBalancerSpec.node_address", "load_balancer", func(s *taskv1.TaskSpec) { s.GetLoadBalancer().NodeAddress = "10.0.0.1; ls" }, "spec.load_balancer.node_address"},
		{t + "LoadBalancerSpec.generation", "load_balancer", func(s *taskv1.TaskSpec) { s.GetLoadBalancer().Generation = 1 << 60 }, "spec.load_balancer.generation"},
		{t + "NetworkSpec.provider", "network", func(s *taskv1.TaskSpec) { s.GetNetwork().Provider = "weave" }, "spec.network.provider"},
		{t + "NetworkSpec.routes", "network", func(s *taskv1.TaskSpec) { s.GetNetwork().Provider = "flannel" }, "spec.network.routes"},
		{t + "NetworkSpec.provider", "network", func(s *taskv1.TaskSpec) { s.GetNetwork().Provider = "" }, "spec.network.provider"},
		{t + "NetworkSpec.pod_cidr", "network", func(s *taskv1.TaskSpec) { s.GetNetwork().PodCidr = "" }, "spec.network.pod_cidr"},
		{t + "NetworkSpec.pod_cidr", "network", func(s *taskv1.TaskSpec) { s.GetNetwork().PodCidr = "10.244.1.7/24" }, "spec.network.pod_cidr"},
		{t + "NetworkSpec.pod_cidr", "network", func(s *taskv1.TaskSpec) { s.GetNetwork().PodCidr = "fd00::/64" }, "spec.network.pod_cidr"},
		{t + "NetworkSpec.pod_cidr", "network", func(s *taskv1.TaskSpec) { s.GetNetwork().PodCidr = "10.244.1.0/31" }, "spec.network.pod_cidr"},
		{t + "NetworkSpec.routes", "network", func(s *taskv1.TaskSpec) {
			for i := range 5001 {
				s.GetNetwork().Routes = append(s.GetNetwork().Routes, &taskv1.NetworkRoute{Cidr: fmt.Sprintf("10.%d.%d.0/24", 100+i/256, i%256), Via: "10.250.0.9"})
			}
		}, "spec.network.routes"},
		{t + "NetworkSpec.routes", "network", func(s *taskv1.TaskSpec) { s.GetNetwork().Routes[1].Cidr = "10.244.0.128/25" }, "spec.network.routes"},
		{t + "NetworkSpec.cluster_pod_subnet", "network", func(s *taskv1.TaskSpec) { s.GetNetwork().ClusterPodSubnet = "" }, "spec.network.cluster_pod_subnet"},
		{t + "NetworkSpec.cluster_pod_subnet", "network", func(s *taskv1.TaskSpec) { s.GetNetwork().ClusterPodSubnet = "10.245.0.0/16" }, "spec.network.cluster_pod_subnet"},
		{t + "NetworkSpec.mtu", "network", func(s *taskv1.TaskSpec) { s.GetNetwork().Mtu = 100 }, "spec.network.mtu"},
		{t + "NetworkSpec.packed_routes", "network", func(s *taskv1.TaskSpec) { s.GetNetwork().PackedRoutes = make([]byte, 10) }, "spec.network.packed_routes"},
		{t + "NetworkSpec.packed_routes", "network", func(s *taskv1.TaskSpec) {
			s.GetNetwork().Routes, s.GetNetwork().PackedRoutes = nil, []byte{10, 244, 1, 0, 24, 10, 250, 0, 9} // its own pod CIDR
		}, "spec.network.packed_routes[0].cidr"},
		{t + "NetworkSpec.routes_from_record", "network", func(s *taskv1.TaskSpec) { s.GetNetwork().Routes, s.GetNetwork().RoutesFromRecord = nil, true }, "spec.network.routes_from_record"},
		{t + "NetworkSpec.generation", "network", func(s *taskv1.TaskSpec) { s.GetNetwork().Generation = 1 << 60 }, "spec.network.generation"},
		{t + "NetworkRoute.cidr", "network", func(s *taskv1.TaskSpec) { s.GetNetwork().Routes[0].Cidr = "10.244.1.0/24" }, "spec.network.routes[0].cidr"},
		{t + "NetworkRoute.cidr", "network", func(s *taskv1.TaskSpec) { s.GetNetwork().Routes[0].Cidr = "10.244.0.0/24 dev eth0" }, "spec.network.routes[0].cidr"},
		{t + "NetworkRoute.via", "network", func(s *taskv1.TaskSpec) { s.GetNetwork().Routes[0].Via = "127.0.0.1" }, "spec.network.routes[0].via"},
		{t + "NetworkRoute.via", "network", func(s *taskv1.TaskSpec) { s.GetNetwork().Routes[0].Via = "10.244.1.9" }, "spec.network.routes[0].via"},
		{t + "NetworkRoute.via", "network", func(s *taskv1.TaskSpec) { s.GetNetwork().Routes[0].Via = "" }, "spec.network.routes[0].via"},
		{t + "DiagnosticsSpec.journal_lines", "diagnostics", func(s *taskv1.TaskSpec) { s.GetDiagnostics().JournalLines = 10_000_000 }, "spec.diagnostics.journal_lines"},
	}
}

// taskFields lists every field of every message a TaskSpec holds, from the descriptors.
func taskFields() []protoreflect.FieldDescriptor {
	var out []protoreflect.FieldDescriptor
	seen := map[protoreflect.FullName]bool{}
	var walk func(md protoreflect.MessageDescriptor)
	walk = func(md protoreflect.MessageDescriptor) {
		if seen[md.FullName()] {
			return
		}
		seen[md.FullName()] = true
		for i := range md.Fields().Len() {
			fd := md.Fields().Get(i)
			out = append(out, fd)
			if fd.Kind() == protoreflect.MessageKind && !fd.IsMap() && strings.HasPrefix(string(fd.Message().FullName()), "deckhand.") {
				walk(fd.Message())
			}
		}
	}
	walk((&taskv1.TaskSpec{}).ProtoReflect().Descriptor())
	return out
}

// Every field of every TaskSpec kind has a rule, and every field that can hold a bad value
// has a bad case here that the API refuses with an error naming the field.
func TestEveryTaskSpecFieldIsValidated(t *testing.T) {
	covered := map[protoreflect.FullName]bool{}
	for _, c := range badCases() {
		covered[c.field] = true
	}
	for _, fd := range taskFields() {
		r, ok := specRules[fd.FullName()]
		if ok && r.secret != tasksecrets.Field(fd) {
			t.Errorf("%s: marked secret in the proto is %v but its rule's secret is %v: use secretStr for exactly the secret fields", fd.FullName(), tasksecrets.Field(fd), r.secret)
		}
		switch {
		case !ok:
			t.Errorf("%s has no validation rule in specRules", fd.FullName())
		case r.check == nil && fd.Kind() != protoreflect.BoolKind:
			t.Errorf("%s is not a bool but accepts any value (%s)", fd.FullName(), r.why)
		case r.check == nil:
		case fd.Kind() == protoreflect.MessageKind && fd.ContainingMessage().FullName() == "deckhand.task.v1.TaskSpec":
			// A kind: its fields are checked one by one.
		case fd.Kind() == protoreflect.MessageKind && fd.Message().FullName() == "deckhand.task.v1.RegistrySettings":
			// Walked into: its fields have their own cases.
		case !covered[fd.FullName()]:
			t.Errorf("%s has no bad case in badCases: add one the API must refuse", fd.FullName())
		}
	}
	for kind, s := range goodSpecs() {
		if err := validate(&apiv1.CreateTaskRequest{Node: "n1", Spec: s}); err != nil {
			t.Errorf("good %s spec refused: %v", kind, err)
		}
	}
	for _, c := range badCases() {
		s := proto.Clone(goodSpecs()[c.kind]).(*taskv1.TaskSpec)
		c.set(s)
		err := validate(&apiv1.CreateTaskRequest{Node: "n1", Spec: s})
		var fe *fieldError
		if !errors.As(err, &fe) {
			t.Errorf("%s (%s): not refused with a field error: %v", c.field, c.path, err)
			continue
		}
		if !strings.HasPrefix(fe.field, c.path) || len(fe.msg) < 15 {
			t.Errorf("%s: the error names %q, not %s, or says too little: %v", c.field, fe.field, c.path, err)
		}
		if strings.Contains(err.Error(), "\n") {
			t.Errorf("%s: the error has a raw newline: %q", c.field, err)
		}
		if strings.Contains(err.Error(), "0123456789abcde") {
			t.Errorf("%s: the error shows a secret: %v", c.field, err)
		}
	}
}

// The task ID of a direct task cannot look like a workflow step's.
func TestCreateTaskIDAtTheEdge(t *testing.T) {
	spec := goodSpecs()["diagnostics"]
	for id, ok := range map[string]bool{"": true, "diag-1": true, "wf-abc.n1.preflight.2": false, "-x": false, "a b": false, strings.Repeat("a", 200): false} {
		err := validate(&apiv1.CreateTaskRequest{Node: "n1", Spec: spec, Id: id})
		if (err == nil) != ok {
			t.Errorf("id %q: %v", id, err)
		}
	}
}

// An init workflow's packages and runtime settings are the task specs' fields, checked the
// same way; so is an applied cluster document's.
func TestWorkflowSettingsAreValidated(t *testing.T) {
	init := &apiv1.WorkflowSpec{Kind: &apiv1.WorkflowSpec_Init{Init: &apiv1.InitWorkflow{Node: "cp-1", Cluster: goodCluster(),
		Packages: &taskv1.PackagesSpec{BaseUrl: "https://mirror.example/rpm\n[evil]\ngpgcheck=0"}}}}
	if err := validate(&apiv1.CreateWorkflowRequest{Spec: init}); err == nil || !strings.Contains(err.Error(), "spec.init.packages.base_url") {
		t.Fatalf("init with a bad base URL: %v", err)
	}
	doc := "apiVersion: deckhand.dev/v1alpha1\nkind: Cluster\nmetadata:\n  name: test\nspec:\n  kubernetesVersion: v1.33.13\n  packages:\n    baseURL: \"https://m.example/rpm\\n[evil]\\ngpgcheck=0\"\n  nodes:\n  - {name: cp-1, role: control-plane}\n"
	err := validate(&apiv1.CreateWorkflowRequest{Spec: &apiv1.WorkflowSpec{Kind: &apiv1.WorkflowSpec_Apply{Apply: &apiv1.ApplyWorkflow{ClusterYaml: []byte(doc)}}}})
	if err == nil || !strings.Contains(err.Error(), "baseURL") && !strings.Contains(err.Error(), "base_url") {
		t.Fatalf("apply with a bad base URL: %v", err)
	}
}

// init and join refuse a bad node address or node option at the edge, naming the field.
func TestWorkflowNodeSettingsAreValidated(t *testing.T) {
	cluster := &taskv1.ClusterSpec{KubernetesVersion: "v1.33.13"}
	for _, c := range []struct {
		spec *apiv1.WorkflowSpec
		path string
	}{
		{&apiv1.WorkflowSpec{Kind: &apiv1.WorkflowSpec_Join{Join: &apiv1.JoinWorkflow{Node: "w-1", Address: "w-1.lan"}}}, "spec.join.address"},
		{&apiv1.WorkflowSpec{Kind: &apiv1.WorkflowSpec_Init{Init: &apiv1.InitWorkflow{Node: "cp-1", Cluster: cluster, Address: "127.0.0.1"}}}, "spec.init.address"},
		{&apiv1.WorkflowSpec{Kind: &apiv1.WorkflowSpec_Join{Join: &apiv1.JoinWorkflow{Node: "w-1", Options: &apiv1.NodeOptions{
			Taints: []*taskv1.Taint{{Key: "a", Effect: "Never"}}}}}}, "spec.join.options.taints[0]"},
		{&apiv1.WorkflowSpec{Kind: &apiv1.WorkflowSpec_Join{Join: &apiv1.JoinWorkflow{Node: "w-1", Options: &apiv1.NodeOptions{
			NoTaints: true, Taints: []*taskv1.Taint{{Key: "a", Effect: "NoSchedule"}}}}}}, "spec.join.options.no_taints"},
		{&apiv1.WorkflowSpec{Kind: &apiv1.WorkflowSpec_Init{Init: &apiv1.InitWorkflow{Node: "cp-1", Cluster: cluster, Options: &apiv1.NodeOptions{
			Labels: map[string]string{"node-role.kubernetes.io/x": ""}}}}}, "spec.init.options.labels[node-role.kubernetes.io/x]"},
		{&apiv1.WorkflowSpec{Kind: &apiv1.WorkflowSpec_Join{Join: &apiv1.JoinWorkflow{Node: "w-1", Options: &apiv1.NodeOptions{
			KubeletExtraArgs: map[string]string{"hostname-override": "x"}}}}}, "spec.join.options.kubelet_extra_args[hostname-override]"},
	} {
		err := validateWorkflow(c.spec)
		var fe *fieldError
		if !errors.As(err, &fe) || !strings.HasPrefix(fe.field, c.path) {
			t.Errorf("%v: %v, want an error naming %s", c.spec, err, c.path)
		}
	}
	ok := &apiv1.WorkflowSpec{Kind: &apiv1.WorkflowSpec_Join{Join: &apiv1.JoinWorkflow{Node: "w-1", Address: "192.168.56.21", Options: &apiv1.NodeOptions{
		Labels: map[string]string{"example.com/rack": "r1"}, NoTaints: true, KubeletExtraArgs: map[string]string{"max-pods": "60"}}}}}
	if err := validateWorkflow(ok); err != nil {
		t.Errorf("a good join: %v", err)
	}
}
