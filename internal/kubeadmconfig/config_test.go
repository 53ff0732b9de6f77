package kubeadmconfig

import (
	"errors"
	"flag"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"google.golang.org/protobuf/proto"

	"github.com/deckhandhq/deckhand/internal/kubeimages"
	taskv1 "github.com/deckhandhq/deckhand/proto/deckhand/task/v1"
	"sigs.k8s.io/yaml"
)

var update = flag.Bool("update", false, "rewrite testdata/*.golden from the current output")

// golden compares got with testdata/name, or rewrites it with -update.
func golden(t *testing.T, name, got string) {
	t.Helper()
	path := filepath.Join("testdata", name)
	if *update {
		if err := os.WriteFile(path, []byte(got), 0o644); err != nil {
			t.Fatal(err)
		}
		return
	}
	want, err := os.ReadFile(path)
	if err != nil {
		t.Fatalf("%v (run go test -update to create it)", err)
	}
	if got != string(want) {
		t.Fatalf("output differs from %s (run go test -update if the change is intended)\ngot:\n%s\nwant:\n%s", path, got, want)
	}
}

const (
	testToken   = "abcdef.0123456789abcdef"
	testCAHash  = "sha256:7d7b7fa5b9e7b1d2e3c4a5b6c7d8e9f00112233445566778899aabbccddeeff0"
	testCertKey = "0123456789abcdef0123456789abcdef0123456789abcdef0123456789abcdef"
)

// configCase is one generated kubeadm configuration: a golden file here, and a file the
// real kubeadm must accept in TestRealKubeadmAcceptsGeneratedConfigs.
type configCase struct {
	name    string
	cluster *taskv1.ClusterSpec
	node    *taskv1.NodeSpec
	init    bool // InitConfig; otherwise JoinConfig
	upload  bool // InitConfig: uploadCerts
	token   string
	// JoinConfig only.
	controlPlane bool
	apiServer    string
	certKey      string
}

func configCases() []configCase {
	haCluster := &taskv1.ClusterSpec{
		KubernetesVersion:    "v1.33.13",
		ControlPlaneEndpoint: "cp.example.com:6443",
		PodSubnet:            "10.244.0.0/16",
	}
	return []configCase{
		{
			name:    "init_default",
			cluster: &taskv1.ClusterSpec{KubernetesVersion: "v1.33.13"},
			node:    &taskv1.NodeSpec{Name: "cp-1"},
			init:    true,
			token:   testToken,
		},
		{
			name: "init_custom_registry",
			cluster: &taskv1.ClusterSpec{
				KubernetesVersion:    "1.33.3",
				ControlPlaneEndpoint: "10.250.0.10:6443",
				PodSubnet:            "192.168.0.0/16",
				ServiceSubnet:        "10.112.0.0/20",
				ClusterName:          "prod-eu1",
				CgroupDriver:         "cgroupfs",
				Registry: &taskv1.RegistrySettings{
					ImageRepository:    "registry.example.com:5000/k8s",
					Mirrors:            []string{"https://mirror-a.example.com", "http://10.250.0.1:5000"},
					InsecureRegistries: []string{"10.250.0.1:5000"},
				},
			},
			node: &taskv1.NodeSpec{Name: "cp-1", AdvertiseAddress: "10.250.0.11"},
			init: true,
		},
		{
			name:    "init_labels_taints",
			cluster: haCluster,
			node: &taskv1.NodeSpec{
				Name:             "cp-1",
				AdvertiseAddress: "10.250.0.11",
				CriSocket:        "unix:///var/run/containerd/containerd.sock",
				Labels:           map[string]string{"example.com/rack": "r12", "node.kubernetes.io/pool": "system", "tier": ""},
				Taints: []*taskv1.Taint{
					{Key: "node-role.kubernetes.io/control-plane", Effect: "NoSchedule"},
					{Key: "example.com/dedicated", Value: "infra", Effect: "NoExecute"},
				},
			},
			init:  true,
			token: testToken,
		},
		{
			name:    "init_upload_certs",
			cluster: haCluster,
			node:    &taskv1.NodeSpec{Name: "cp-1", AdvertiseAddress: "10.250.0.11"},
			init:    true,
			upload:  true,
			token:   testToken,
		},
		{
			name: "init_dual_stack",
			cluster: &taskv1.ClusterSpec{
				KubernetesVersion:    "v1.33.13",
				ControlPlaneEndpoint: "[fd00:250::10]:6443",
				PodSubnet:            "10.244.0.0/16,fd00:10:244::/56",
				ServiceSubnet:        "10.96.0.0/16,fd00:10:96::/112",
			},
			node: &taskv1.NodeSpec{Name: "cp-1", AdvertiseAddress: "fd00:250::11"},
			init: true,
		},
		{
			// A host where nf_conntrack_max is read-only (a container, a child network
			// namespace): kube-proxy must leave it alone (maxPerCore 0, written as 0).
			name: "init_kube_proxy",
			cluster: &taskv1.ClusterSpec{
				KubernetesVersion: "v1.33.13",
				PodSubnet:         "10.244.0.0/16",
				CgroupDriver:      "cgroupfs",
				KubeProxy:         &taskv1.KubeProxySettings{Mode: "iptables", ConntrackMaxPerCore: proto.Int32(0)},
			},
			node: &taskv1.NodeSpec{Name: "cp-1", AdvertiseAddress: "10.250.0.11"},
			init: true,
		},
		{
			name:    "join_worker",
			cluster: haCluster,
			node: &taskv1.NodeSpec{
				Name:   "worker-1",
				Labels: map[string]string{"example.com/pool": "batch"},
				Taints: []*taskv1.Taint{{Key: "example.com/gpu", Value: "true", Effect: "PreferNoSchedule"}},
			},
			token: testToken,
		},
		{
			// Every setting a user adds: the API server's extra names, kubelet flags of the
			// cluster and the node (the node's win), kubeadm patches, and a single control
			// plane that runs workloads (no taints at all).
			name:    "init_settings",
			cluster: settingsCluster(),
			node: &taskv1.NodeSpec{Name: "cp-1", AdvertiseAddress: "10.250.0.11", NoTaints: true,
				Labels: map[string]string{"example.com/rack": "r1"}, KubeletExtraArgs: map[string]string{"v": "4"}},
			init:  true,
			token: testToken,
		},
		{
			name:    "join_worker_settings",
			cluster: settingsCluster(),
			node: &taskv1.NodeSpec{Name: "worker-3", AdvertiseAddress: "10.250.0.23",
				Taints:           []*taskv1.Taint{{Key: "example.com/dedicated", Value: "lab", Effect: "PreferNoSchedule"}},
				KubeletExtraArgs: map[string]string{"max-pods": "60", "node-status-update-frequency": "5s"}},
			token: testToken,
		},
		{
			name:         "join_control_plane_settings",
			cluster:      settingsCluster(),
			node:         &taskv1.NodeSpec{Name: "cp-2", AdvertiseAddress: "10.250.0.12"},
			token:        testToken,
			controlPlane: true,
			certKey:      testCertKey,
		},
		{
			// A host with several networks: the kubelet registers the given address.
			name:    "join_worker_address",
			cluster: haCluster,
			node:    &taskv1.NodeSpec{Name: "worker-2", AdvertiseAddress: "192.168.56.12"},
			token:   testToken,
		},
		{
			name:         "join_control_plane",
			cluster:      haCluster,
			node:         &taskv1.NodeSpec{Name: "cp-2", AdvertiseAddress: "10.250.0.12"},
			token:        testToken,
			controlPlane: true,
			apiServer:    "10.250.0.11:6443",
			certKey:      testCertKey,
		},
		{
			// Certificates copied to the node by hand: no key, no advertise address.
			name:         "join_control_plane_minimal",
			cluster:      haCluster,
			node:         &taskv1.NodeSpec{Name: "cp-3"},
			token:        testToken,
			controlPlane: true,
		},
	}
}

// settingsCluster sets every cluster-wide setting a user adds.
func settingsCluster() *taskv1.ClusterSpec {
	return &taskv1.ClusterSpec{
		KubernetesVersion:    "v1.33.13",
		ControlPlaneEndpoint: "cp.example.com:6443",
		PodSubnet:            "10.244.0.0/16",
		ApiServerCertSans:    []string{"api.lab.example", "192.0.2.10", "*.lab.example", "fd00::10"},
		KubeletExtraArgs:     map[string]string{"max-pods": "150", "v": "2"},
		Patches: []*taskv1.KubeadmPatch{
			{Target: "kube-apiserver", Patch: "metadata:\n  annotations:\n    example.com/patched: \"yes\"\n"},
			{Target: "kubeletconfiguration", Type: "merge", Patch: `{"maxPods": 150, "serializeImagePulls": false}`},
			{Target: "etcd", Type: "json", Patch: "- op: add\n  path: /metadata/annotations\n  value: {example.com/patched: \"yes\"}\n"},
		},
	}
}

// render parses the case's specs and renders its configuration.
func (tc configCase) render(t *testing.T) (Cluster, []byte) {
	t.Helper()
	c, err := ParseCluster(tc.cluster)
	if err != nil {
		t.Fatalf("ParseCluster: %v", err)
	}
	n, err := ParseNode(tc.node)
	if err != nil {
		t.Fatalf("ParseNode: %v", err)
	}
	var out []byte
	if tc.init {
		out, err = InitConfig(c, n, tc.upload, tc.token)
	} else {
		out, err = JoinConfig(c, n, tc.controlPlane, tc.apiServer, tc.token, testCAHash, tc.certKey)
	}
	if err != nil {
		t.Fatalf("render: %v", err)
	}
	return c, out
}

func TestConfigGolden(t *testing.T) {
	for _, tc := range configCases() {
		t.Run(tc.name, func(t *testing.T) {
			_, out := tc.render(t)
			golden(t, tc.name+".golden", string(out))
			_, again := tc.render(t)
			if string(again) != string(out) {
				t.Fatalf("second rendering differs:\n%s\n---\n%s", out, again)
			}
		})
	}
}

// docs splits a rendered file into its YAML documents, parsed.
func docs(t *testing.T, out []byte) []map[string]any {
	t.Helper()
	var all []map[string]any
	for _, d := range strings.Split(string(out), "\n---\n") {
		var m map[string]any
		if err := yaml.Unmarshal([]byte(d), &m); err != nil {
			t.Fatalf("document does not parse: %v\n%s", err, d)
		}
		all = append(all, m)
	}
	return all
}

// get walks a parsed document along keys.
func get(m map[string]any, keys ...string) any {
	var v any = m
	for _, k := range keys {
		mm, ok := v.(map[string]any)
		if !ok {
			return nil
		}
		v = mm[k]
	}
	return v
}

func TestConfigContents(t *testing.T) {
	cases := map[string]configCase{}
	for _, tc := range configCases() {
		cases[tc.name] = tc
	}

	t.Run("init documents and defaults", func(t *testing.T) {
		_, out := cases["init_default"].render(t)
		d := docs(t, out)
		if len(d) != 3 {
			t.Fatalf("got %d documents, want InitConfiguration, ClusterConfiguration, KubeletConfiguration", len(d))
		}
		for i, want := range []string{"InitConfiguration", "ClusterConfiguration", "KubeletConfiguration"} {
			if d[i]["kind"] != want {
				t.Errorf("document %d is %v, want %s", i, d[i]["kind"], want)
			}
		}
		checks := []struct {
			doc  int
			path []string
			want any
		}{
			{0, []string{"apiVersion"}, "kubeadm.k8s.io/v1beta4"},
			{0, []string{"nodeRegistration", "criSocket"}, DefaultCRISocket},
			{0, []string{"nodeRegistration", "name"}, "cp-1"},
			{1, []string{"kubernetesVersion"}, "v1.33.13"},
			{1, []string{"imageRepository"}, "registry.k8s.io"},
			{1, []string{"clusterName"}, "kubernetes"},
			{1, []string{"networking", "serviceSubnet"}, "10.96.0.0/12"},
			{2, []string{"apiVersion"}, "kubelet.config.k8s.io/v1beta1"},
			{2, []string{"cgroupDriver"}, "systemd"},
		}
		for _, c := range checks {
			if got := get(d[c.doc], c.path...); got != c.want {
				t.Errorf("%v: got %v, want %v", c.path, got, c.want)
			}
		}
		tokens, _ := d[0]["bootstrapTokens"].([]any)
		if len(tokens) != 1 || get(tokens[0].(map[string]any), "token") != testToken || get(tokens[0].(map[string]any), "ttl") != "15m0s" {
			t.Errorf("bootstrapTokens = %v, want the given token with ttl 15m0s (not kubeadm's 24h)", d[0]["bootstrapTokens"])
		}
		for _, absent := range [][]string{{"certificateKey"}, {"localAPIEndpoint"}, {"nodeRegistration", "taints"}, {"nodeRegistration", "kubeletExtraArgs"}} {
			if v := get(d[0], absent...); v != nil {
				t.Errorf("%v = %v, want it left out", absent, v)
			}
		}
		if v := get(d[1], "controlPlaneEndpoint"); v != nil {
			t.Errorf("controlPlaneEndpoint = %v, want it left out", v)
		}
	})

	t.Run("kube-proxy settings", func(t *testing.T) {
		_, out := cases["init_kube_proxy"].render(t)
		d := docs(t, out)
		if len(d) != 4 || d[3]["kind"] != "KubeProxyConfiguration" || d[3]["apiVersion"] != "kubeproxy.config.k8s.io/v1alpha1" {
			t.Fatalf("want a fourth document, KubeProxyConfiguration:\n%s", out)
		}
		if get(d[3], "mode") != "iptables" || get(d[3], "conntrack", "maxPerCore") != float64(0) || get(d[2], "cgroupDriver") != "cgroupfs" {
			t.Fatalf("kube-proxy mode, conntrack.maxPerCore (0 written out) or the kubelet's cgroupDriver is wrong:\n%s", out)
		}
		// Only what is set is written: kube-proxy's defaults stay its own.
		for _, tc := range []struct {
			kp   *taskv1.KubeProxySettings
			want string
		}{
			{&taskv1.KubeProxySettings{Mode: "nftables"}, "apiVersion: kubeproxy.config.k8s.io/v1alpha1\nkind: KubeProxyConfiguration\nmode: nftables\n"},
			{&taskv1.KubeProxySettings{ConntrackMaxPerCore: proto.Int32(65536)}, "apiVersion: kubeproxy.config.k8s.io/v1alpha1\nconntrack:\n  maxPerCore: 65536\nkind: KubeProxyConfiguration\n"},
		} {
			c, err := ParseCluster(&taskv1.ClusterSpec{KubernetesVersion: "v1.33.13", KubeProxy: tc.kp})
			if err != nil {
				t.Fatal(err)
			}
			n, _ := ParseNode(&taskv1.NodeSpec{Name: "cp-1"})
			out, err := InitConfig(c, n, false, "")
			if err != nil {
				t.Fatal(err)
			}
			if parts := strings.Split(string(out), "---\n"); len(parts) != 4 || parts[3] != tc.want {
				t.Errorf("%v: got\n%s", tc.kp, out)
			}
		}
		for _, kp := range []*taskv1.KubeProxySettings{nil, {}} {
			c, _ := ParseCluster(&taskv1.ClusterSpec{KubernetesVersion: "v1.33.13", KubeProxy: kp})
			n, _ := ParseNode(&taskv1.NodeSpec{Name: "cp-1"})
			if out, _ := InitConfig(c, n, false, ""); strings.Contains(string(out), "KubeProxyConfiguration") {
				t.Errorf("kube_proxy %v: a KubeProxyConfiguration with nothing set:\n%s", kp, out)
			}
		}
	})

	t.Run("no token: kubeadm generates one, valid 15 minutes, not its default 24 hours", func(t *testing.T) {
		_, out := cases["init_custom_registry"].render(t)
		tokens, _ := docs(t, out)[0]["bootstrapTokens"].([]any)
		if len(tokens) != 1 || len(tokens[0].(map[string]any)) != 1 || get(tokens[0].(map[string]any), "ttl") != "15m0s" {
			t.Fatalf("bootstrapTokens = %v, want one with only ttl 15m0s", tokens)
		}
	})

	t.Run("mirrors and insecure registries stay out of kubeadm's files", func(t *testing.T) {
		_, out := cases["init_custom_registry"].render(t)
		for _, s := range []string{"mirror-a", "10.250.0.1:5000"} {
			if strings.Contains(string(out), s) {
				t.Errorf("config mentions %q; mirrors belong to the runtime's hosts.toml", s)
			}
		}
		if got := get(docs(t, out)[1], "imageRepository"); got != "registry.example.com:5000/k8s" {
			t.Errorf("imageRepository = %v", got)
		}
		if got := get(docs(t, out)[1], "kubernetesVersion"); got != "v1.33.3" {
			t.Errorf("kubernetesVersion = %v, want the normalized v1.33.3", got)
		}
	})

	t.Run("labels become kubelet node-labels in v1beta4 list form", func(t *testing.T) {
		_, out := cases["init_labels_taints"].render(t)
		args, _ := get(docs(t, out)[0], "nodeRegistration", "kubeletExtraArgs").([]any)
		if len(args) != 2 {
			t.Fatalf("kubeletExtraArgs = %v, want node-ip and node-labels", args)
		}
		if a := args[0].(map[string]any); a["name"] != "node-ip" || a["value"] != "10.250.0.11" {
			t.Errorf("kubeletExtraArgs[0] = %v, want node-ip 10.250.0.11 (the node's address)", a)
		}
		a := args[1].(map[string]any)
		if a["name"] != "node-labels" || a["value"] != "example.com/rack=r12,node.kubernetes.io/pool=system,tier=" {
			t.Errorf("kubeletExtraArgs[1] = %v", a)
		}
		taints, _ := get(docs(t, out)[0], "nodeRegistration", "taints").([]any)
		if len(taints) != 2 {
			t.Fatalf("taints = %v, want the two given", taints)
		}
	})

	t.Run("worker join pins the CA and has no control plane", func(t *testing.T) {
		_, out := cases["join_worker"].render(t)
		d := docs(t, out)
		if len(d) != 1 || d[0]["kind"] != "JoinConfiguration" {
			t.Fatalf("got %v, want one JoinConfiguration", d)
		}
		bt := get(d[0], "discovery", "bootstrapToken").(map[string]any)
		if bt["apiServerEndpoint"] != "cp.example.com:6443" || bt["token"] != testToken {
			t.Errorf("bootstrapToken = %v, want the cluster endpoint and the token", bt)
		}
		if h, _ := bt["caCertHashes"].([]any); len(h) != 1 || h[0] != testCAHash {
			t.Errorf("caCertHashes = %v", bt["caCertHashes"])
		}
		if _, ok := bt["unsafeSkipCAVerification"]; ok {
			t.Error("unsafeSkipCAVerification is set")
		}
		if v := d[0]["controlPlane"]; v != nil {
			t.Errorf("controlPlane = %v on a worker", v)
		}
	})

	t.Run("control-plane join", func(t *testing.T) {
		_, out := cases["join_control_plane"].render(t)
		d := docs(t, out)[0]
		if got := get(d, "controlPlane", "certificateKey"); got != testCertKey {
			t.Errorf("certificateKey = %v", got)
		}
		if got := get(d, "controlPlane", "localAPIEndpoint", "advertiseAddress"); got != "10.250.0.12" {
			t.Errorf("advertiseAddress = %v", got)
		}
		if got := get(d, "discovery", "bootstrapToken", "apiServerEndpoint"); got != "10.250.0.11:6443" {
			t.Errorf("apiServerEndpoint = %v, want the explicit API server", got)
		}
	})
}

func TestParseDefaults(t *testing.T) {
	c, err := ParseCluster(&taskv1.ClusterSpec{KubernetesVersion: "1.33.0"})
	if err != nil {
		t.Fatal(err)
	}
	want := Cluster{
		KubernetesVersion: "v1.33.0",
		ServiceSubnet:     "10.96.0.0/12",
		ClusterName:       "kubernetes",
		CgroupDriver:      "systemd",
		Registry:          kubeimages.Registry{ImageRepository: "registry.k8s.io"},
	}
	if c.KubernetesVersion != want.KubernetesVersion || c.ServiceSubnet != want.ServiceSubnet || c.ClusterName != want.ClusterName ||
		c.CgroupDriver != want.CgroupDriver || c.Registry.ImageRepository != want.Registry.ImageRepository || c.PodSubnet != "" || c.ControlPlaneEndpoint != "" {
		t.Errorf("ParseCluster defaults = %+v, want %+v", c, want)
	}
	n, err := ParseNode(&taskv1.NodeSpec{Name: "n1", AdvertiseAddress: "fd00::0:1"})
	if err != nil {
		t.Fatal(err)
	}
	if n.CRISocket != DefaultCRISocket || n.AdvertiseAddress != "fd00::1" || n.Labels != nil || n.Taints != nil {
		t.Errorf("ParseNode defaults = %+v", n)
	}
	for _, ok := range []*taskv1.ClusterSpec{
		{KubernetesVersion: "v1.33.1", PodSubnet: "10.244.0.0/16,fd00:10:244::/56", ServiceSubnet: "10.96.0.0/12,fd00:10:96::/112"},
		{KubernetesVersion: "v1.33.1", ControlPlaneEndpoint: "[fd00::10]:6443"},
		{KubernetesVersion: "v1.31.0"},
		{KubernetesVersion: "v1.34.2", ControlPlaneEndpoint: "api.k8s.example.com:443", PodSubnet: "100.64.0.0/10", ServiceSubnet: "10.96.0.0/16"},
	} {
		if _, err := ParseCluster(ok); err != nil {
			t.Errorf("ParseCluster(%v): %v", ok, err)
		}
	}
}

// invalidCase is a spec that must be rejected with a FieldError naming field.
type invalidCase struct {
	name  string
	field string
	run   func() error
	// secret must not appear in the error.
	secret string
}

func cluster(mod func(*taskv1.ClusterSpec)) func() error {
	return func() error {
		s := &taskv1.ClusterSpec{KubernetesVersion: "v1.33.13", ControlPlaneEndpoint: "cp.example.com:6443", PodSubnet: "10.244.0.0/16"}
		mod(s)
		_, err := ParseCluster(s)
		return err
	}
}

func node(mod func(*taskv1.NodeSpec)) func() error {
	return func() error {
		s := &taskv1.NodeSpec{Name: "node-1"}
		mod(s)
		_, err := ParseNode(s)
		return err
	}
}

func join(mod func(c *Cluster, controlPlane *bool, apiServer, token, hash, key *string)) func() error {
	return func() error {
		c, err := ParseCluster(&taskv1.ClusterSpec{KubernetesVersion: "v1.33.13", ControlPlaneEndpoint: "cp.example.com:6443"})
		if err != nil {
			return err
		}
		n, err := ParseNode(&taskv1.NodeSpec{Name: "node-1"})
		if err != nil {
			return err
		}
		cp, api, token, hash, key := false, "", testToken, testCAHash, ""
		mod(&c, &cp, &api, &token, &hash, &key)
		_, err = JoinConfig(c, n, cp, api, token, hash, key)
		return err
	}
}

func TestInvalidSpecs(t *testing.T) {
	cases := []invalidCase{
		// The acceptance cases.
		{"pod and service subnets overlap", "pod_subnet", cluster(func(s *taskv1.ClusterSpec) { s.PodSubnet, s.ServiceSubnet = "10.96.0.0/16", "10.96.0.0/12" }), ""},
		{"service subnet inside the pod subnet", "pod_subnet", cluster(func(s *taskv1.ClusterSpec) { s.PodSubnet, s.ServiceSubnet = "10.0.0.0/8", "10.96.0.0/12" }), ""},
		{"default service subnet overlaps", "pod_subnet", cluster(func(s *taskv1.ClusterSpec) { s.PodSubnet = "10.96.0.0/16" }), ""},
		{"dual-stack overlap in IPv6", "pod_subnet", cluster(func(s *taskv1.ClusterSpec) {
			s.PodSubnet, s.ServiceSubnet = "10.244.0.0/16,fd00:10::/56", "10.96.0.0/12,fd00:10::/112"
		}), ""},
		{"node name not RFC 1123: upper case", "node.name", node(func(s *taskv1.NodeSpec) { s.Name = "Node-1" }), ""},
		{"node name not RFC 1123: underscore", "node.name", node(func(s *taskv1.NodeSpec) { s.Name = "node_1" }), ""},
		{"node name not an RFC 1123 label: dots", "node.name", node(func(s *taskv1.NodeSpec) { s.Name = "node-1.example.com" }), ""},
		{"node name too long", "node.name", node(func(s *taskv1.NodeSpec) { s.Name = strings.Repeat("a", 64) }), ""},
		{"node name missing", "node.name", node(func(s *taskv1.NodeSpec) { s.Name = "" }), ""},
		{"unsupported version", "kubernetes_version", cluster(func(s *taskv1.ClusterSpec) { s.KubernetesVersion = "v1.99.0" }), ""},
		{"version whose kubeadm predates v1beta4", "kubernetes_version", cluster(func(s *taskv1.ClusterSpec) { s.KubernetesVersion = "v1.30.14" }), ""},
		{"version label", "kubernetes_version", cluster(func(s *taskv1.ClusterSpec) { s.KubernetesVersion = "stable-1" }), ""},
		{"version missing", "kubernetes_version", cluster(func(s *taskv1.ClusterSpec) { s.KubernetesVersion = "" }), ""},
		{"endpoint without port", "control_plane_endpoint", cluster(func(s *taskv1.ClusterSpec) { s.ControlPlaneEndpoint = "cp.example.com" }), ""},
		{"endpoint IPv6 without brackets", "control_plane_endpoint", cluster(func(s *taskv1.ClusterSpec) { s.ControlPlaneEndpoint = "fd00::1" }), ""},
		{"endpoint port 0", "control_plane_endpoint", cluster(func(s *taskv1.ClusterSpec) { s.ControlPlaneEndpoint = "cp.example.com:0" }), ""},
		{"endpoint port too big", "control_plane_endpoint", cluster(func(s *taskv1.ClusterSpec) { s.ControlPlaneEndpoint = "cp.example.com:65536" }), ""},
		{"endpoint with scheme", "control_plane_endpoint", cluster(func(s *taskv1.ClusterSpec) { s.ControlPlaneEndpoint = "https://cp.example.com:6443" }), ""},
		{"endpoint bad IPv4", "control_plane_endpoint", cluster(func(s *taskv1.ClusterSpec) { s.ControlPlaneEndpoint = "10.0.0.300:6443" }), ""},

		// Subnets as kubeadm checks them.
		{"pod subnet not a CIDR", "pod_subnet", cluster(func(s *taskv1.ClusterSpec) { s.PodSubnet = "10.244.0.0" }), ""},
		{"pod subnet with host bits", "pod_subnet", cluster(func(s *taskv1.ClusterSpec) { s.PodSubnet = "10.244.0.1/16" }), ""},
		{"pod subnet smaller than a node's range", "pod_subnet", cluster(func(s *taskv1.ClusterSpec) { s.PodSubnet = "10.244.0.0/25" }), ""},
		{"pod subnet too large for node masks", "pod_subnet", cluster(func(s *taskv1.ClusterSpec) { s.PodSubnet = "10.0.0.0/7" }), ""},
		{"pod subnet two of one family", "pod_subnet", cluster(func(s *taskv1.ClusterSpec) { s.PodSubnet = "10.244.0.0/16,10.245.0.0/16" }), ""},
		{"pod subnet three networks", "pod_subnet", cluster(func(s *taskv1.ClusterSpec) { s.PodSubnet = "10.244.0.0/16,fd00::/56,10.245.0.0/16" }), ""},
		{"service subnet too large", "service_subnet", cluster(func(s *taskv1.ClusterSpec) { s.ServiceSubnet = "10.0.0.0/8" }), ""},
		{"service subnet too small", "service_subnet", cluster(func(s *taskv1.ClusterSpec) { s.ServiceSubnet = "10.96.0.0/29" }), ""},
		{"service subnet IPv6 too large", "service_subnet", cluster(func(s *taskv1.ClusterSpec) { s.ServiceSubnet = "fd00::/64" }), ""},

		{"cgroup driver", "cgroup_driver", cluster(func(s *taskv1.ClusterSpec) { s.CgroupDriver = "cgroupfs2" }), ""},
		{"kube-proxy mode", "kube_proxy.mode", cluster(func(s *taskv1.ClusterSpec) { s.KubeProxy = &taskv1.KubeProxySettings{Mode: "userspace"} }), ""},
		{"kube-proxy mode upper case", "kube_proxy.mode", cluster(func(s *taskv1.ClusterSpec) { s.KubeProxy = &taskv1.KubeProxySettings{Mode: "IPVS"} }), ""},
		{"conntrack max per core negative", "kube_proxy.conntrack_max_per_core", cluster(func(s *taskv1.ClusterSpec) {
			s.KubeProxy = &taskv1.KubeProxySettings{ConntrackMaxPerCore: proto.Int32(-1)}
		}), ""},
		{"cluster name", "cluster_name", cluster(func(s *taskv1.ClusterSpec) { s.ClusterName = "Prod Cluster" }), ""},
		{"image repository", "registry.image_repository", cluster(func(s *taskv1.ClusterSpec) {
			s.Registry = &taskv1.RegistrySettings{ImageRepository: "https://registry.example.com"}
		}), ""},
		{"mirror", "registry.mirrors[1]", cluster(func(s *taskv1.ClusterSpec) {
			s.Registry = &taskv1.RegistrySettings{Mirrors: []string{"https://a.example.com", "a.example.com"}}
		}), ""},

		{"advertise address not an IP", "node.advertise_address", node(func(s *taskv1.NodeSpec) { s.AdvertiseAddress = "node-1.example.com" }), ""},
		{"advertise address unspecified", "node.advertise_address", node(func(s *taskv1.NodeSpec) { s.AdvertiseAddress = "0.0.0.0" }), ""},
		{"CRI socket without scheme", "node.cri_socket", node(func(s *taskv1.NodeSpec) { s.CriSocket = "/run/containerd/containerd.sock" }), ""},
		{"CRI socket over TCP", "node.cri_socket", node(func(s *taskv1.NodeSpec) { s.CriSocket = "tcp://127.0.0.1:1234" }), ""},
		{"CRI socket relative", "node.cri_socket", node(func(s *taskv1.NodeSpec) { s.CriSocket = "unix://run/containerd.sock" }), ""},
		{"label key", "node.labels[bad key]", node(func(s *taskv1.NodeSpec) { s.Labels = map[string]string{"bad key": "x"} }), ""},
		{"label value", "node.labels[example.com/rack]", node(func(s *taskv1.NodeSpec) { s.Labels = map[string]string{"example.com/rack": "a,b"} }), ""},
		{"label the kubelet refuses", "node.labels[node-role.kubernetes.io/worker]", node(func(s *taskv1.NodeSpec) {
			s.Labels = map[string]string{"node-role.kubernetes.io/worker": ""}
		}), ""},
		{"label in k8s.io", "node.labels[example.k8s.io/x]", node(func(s *taskv1.NodeSpec) { s.Labels = map[string]string{"example.k8s.io/x": "y"} }), ""},
		{"taint effect", "node.taints[0]", node(func(s *taskv1.NodeSpec) { s.Taints = []*taskv1.Taint{{Key: "a", Effect: "NoRun"}} }), ""},
		{"taint without effect", "node.taints[0]", node(func(s *taskv1.NodeSpec) { s.Taints = []*taskv1.Taint{{Key: "a"}} }), ""},
		{"taint key", "node.taints[0]", node(func(s *taskv1.NodeSpec) { s.Taints = []*taskv1.Taint{{Key: "", Effect: "NoSchedule"}} }), ""},
		{"taint value", "node.taints[0]", node(func(s *taskv1.NodeSpec) { s.Taints = []*taskv1.Taint{{Key: "a", Value: "b c", Effect: "NoSchedule"}} }), ""},
		{"taint repeated", "node.taints[1]", node(func(s *taskv1.NodeSpec) {
			s.Taints = []*taskv1.Taint{{Key: "a", Value: "1", Effect: "NoSchedule"}, {Key: "a", Value: "2", Effect: "NoSchedule"}}
		}), ""},

		// Renderer arguments.
		{"init token malformed", "token", func() error {
			c, _ := ParseCluster(&taskv1.ClusterSpec{KubernetesVersion: "v1.33.13"})
			n, _ := ParseNode(&taskv1.NodeSpec{Name: "cp-1"})
			_, err := InitConfig(c, n, false, "ABCDEF.0123456789abcdef")
			return err
		}, "ABCDEF.0123456789abcdef"},
		{"upload certs without endpoint", "control_plane_endpoint", func() error {
			c, _ := ParseCluster(&taskv1.ClusterSpec{KubernetesVersion: "v1.33.13"})
			n, _ := ParseNode(&taskv1.NodeSpec{Name: "cp-1"})
			_, err := InitConfig(c, n, true, "")
			return err
		}, ""},
		{"hand-built cluster with overlapping subnets", "pod_subnet", func() error {
			c, _ := ParseCluster(&taskv1.ClusterSpec{KubernetesVersion: "v1.33.13"})
			n, _ := ParseNode(&taskv1.NodeSpec{Name: "cp-1"})
			c.PodSubnet = "10.96.0.0/16"
			_, err := InitConfig(c, n, false, "")
			return err
		}, ""},
		{"join without token", "token", join(func(_ *Cluster, _ *bool, _, token, _, _ *string) { *token = "" }), ""},
		{"join token malformed", "token", join(func(_ *Cluster, _ *bool, _, token, _, _ *string) { *token = "abcdef0123456789abcdef" }), "abcdef0123456789abcdef"},
		{"join without CA hash", "ca_cert_hash", join(func(_ *Cluster, _ *bool, _, _, hash, _ *string) { *hash = "" }), ""},
		{"join CA hash malformed", "ca_cert_hash", join(func(_ *Cluster, _ *bool, _, _, hash, _ *string) { *hash = "sha256:ABC" }), ""},
		{"join API server without port", "api_server", join(func(_ *Cluster, _ *bool, api, _, _, _ *string) { *api = "10.0.0.1" }), ""},
		{"join without any endpoint", "control_plane_endpoint", join(func(c *Cluster, _ *bool, _, _, _, _ *string) { c.ControlPlaneEndpoint = "" }), ""},
		{"control-plane join without endpoint", "control_plane_endpoint", join(func(c *Cluster, cp *bool, api, _, _, _ *string) {
			c.ControlPlaneEndpoint, *cp, *api = "", true, "10.0.0.1:6443"
		}), ""},
		{"worker join with certificate key", "certificate_key", join(func(_ *Cluster, _ *bool, _, _, _, key *string) { *key = testCertKey }), testCertKey},
		{"certificate key malformed", "certificate_key", join(func(_ *Cluster, cp *bool, _, _, _, key *string) {
			*cp, *key = true, "0123456789abcdef"
		}), "0123456789abcdef"},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			err := tc.run()
			if err == nil {
				t.Fatal("accepted, want an error")
			}
			var fe *kubeimages.FieldError
			if !errors.Is(err, kubeimages.ErrInvalid) || !errors.As(err, &fe) {
				t.Fatalf("error %q (%T) is not a FieldError wrapping ErrInvalid", err, err)
			}
			if fe.Field != tc.field || !strings.Contains(err.Error(), tc.field) {
				t.Fatalf("error %q names field %q, want %q", err, fe.Field, tc.field)
			}
			if fe.Hint == "" {
				t.Errorf("error %q says nothing about what to do", err)
			}
			if tc.secret != "" && strings.Contains(err.Error(), tc.secret) {
				t.Errorf("error %q shows the secret", err)
			}
			t.Log(err)
		})
	}
}

func TestOverlapNamesBothFields(t *testing.T) {
	_, err := ParseCluster(&taskv1.ClusterSpec{KubernetesVersion: "v1.33.13", PodSubnet: "10.96.0.0/16", ServiceSubnet: "10.96.0.0/12"})
	if err == nil || !strings.Contains(err.Error(), "pod_subnet") || !strings.Contains(err.Error(), "service_subnet") {
		t.Fatalf("error %v, want one naming pod_subnet and service_subnet", err)
	}
}

func TestRenderRejectsZeroValues(t *testing.T) {
	n, _ := ParseNode(&taskv1.NodeSpec{Name: "n1"})
	c, _ := ParseCluster(&taskv1.ClusterSpec{KubernetesVersion: "v1.33.13", ControlPlaneEndpoint: "cp:6443"})
	if _, err := InitConfig(Cluster{}, n, false, ""); err == nil {
		t.Error("InitConfig accepted a zero Cluster")
	}
	if _, err := JoinConfig(c, Node{}, false, "", testToken, testCAHash, ""); err == nil {
		t.Error("JoinConfig accepted a zero Node")
	}
}

// argvCases are every argv builder's outputs: golden files here, and flags the real
// kubeadm must know in TestRealKubeadmAcceptsGeneratedConfigs.
func argvCases() []struct {
	name string
	argv []string
} {
	return []struct {
		name string
		argv []string
	}{
		{"init", InitArgs("/etc/deckhand/kubeadm/init.yaml", false)},
		{"init_upload_certs", InitArgs("/etc/deckhand/kubeadm/init.yaml", true)},
		{"join", JoinArgs("/etc/deckhand/kubeadm/join.yaml")},
		{"token_create", TokenCreateArgs(time.Hour)},
		{"token_create_rounded", TokenCreateArgs(90*time.Minute + 1500*time.Millisecond)},
		{"token_create_zero_ttl", TokenCreateArgs(0)},
		{"upload_certs", UploadCertsArgs("/etc/deckhand/kubeadm/init.yaml")},
		{"upload_certs_no_config", UploadCertsArgs("")},
		{"token_delete", TokenDeleteArgs("abcdef")},
		{"reset", ResetArgs()},
	}
}

func TestArgvGolden(t *testing.T) {
	for _, tc := range argvCases() {
		t.Run(tc.name, func(t *testing.T) {
			if tc.argv[0] != Kubeadm {
				t.Fatalf("argv[0] = %q", tc.argv[0])
			}
			golden(t, "args_"+tc.name+".golden", strings.Join(tc.argv, "\n")+"\n")
		})
	}
	if got := TokenCreateArgs(-time.Minute); got[4] != "1h0m0s" {
		t.Errorf("TokenCreateArgs(-1m) ttl = %s, want the default, never 0 (a token that never expires)", got[4])
	}
	if got := TokenCreateArgs(time.Millisecond); got[4] != "1h0m0s" {
		t.Errorf("TokenCreateArgs(1ms) ttl = %s, want the default, never 0 (a token that never expires)", got[4])
	}
}

// Behind Deckhand's load balancer the API server waits lbconf.ShutdownDelay before it stops
// serving (haproxy takes it out of rotation first); behind the user's, kubeadm's default.
func TestAPIServerShutdownDelayBehindDeckhandsLoadBalancer(t *testing.T) {
	n, _ := ParseNode(&taskv1.NodeSpec{Name: "cp-1"})
	for lb, want := range map[*taskv1.LoadBalancerSettings]bool{
		{Type: "vip", Address: "10.250.0.100"}: true,
		{Type: "local"}:                        true,
		{Type: "external"}:                     false,
		nil:                                    false,
	} {
		c, err := ParseCluster(&taskv1.ClusterSpec{KubernetesVersion: "v1.33.13", LoadBalancer: lb, ControlPlaneEndpoint: map[bool]string{true: "", false: "10.0.0.1:6443"}[lb != nil && lb.Type != "external"]})
		if err != nil {
			t.Fatal(err)
		}
		out, err := InitConfig(c, n, false, "")
		if err != nil {
			t.Fatal(err)
		}
		got := strings.Contains(string(out), "extraArgs:\n  - name: shutdown-delay-duration\n    value: 5s\n")
		if got != want {
			t.Errorf("load balancer %v: shutdown delay written %v, want %v:\n%s", lb, got, want, out)
		}
	}
}
