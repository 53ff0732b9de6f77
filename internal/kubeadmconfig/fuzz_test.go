package kubeadmconfig

import (
	"net/netip"
	"reflect"
	"strings"
	"testing"

	taskv1 "github.com/deckhandhq/deckhand/proto/deckhand/task/v1"
)

func FuzzParseCluster(f *testing.F) {
	for _, tc := range configCases() {
		s := tc.cluster
		f.Add(s.GetKubernetesVersion(), s.GetControlPlaneEndpoint(), s.GetPodSubnet(), s.GetServiceSubnet(), s.GetClusterName(), s.GetCgroupDriver(),
			s.GetRegistry().GetImageRepository(), strings.Join(s.GetRegistry().GetMirrors(), " "),
			s.GetKubeProxy().GetMode(), s.GetKubeProxy().GetConntrackMaxPerCore(), s.GetKubeProxy() != nil && s.GetKubeProxy().ConntrackMaxPerCore != nil)
	}
	f.Add("v1.33.0", "[fd00::1]:6443", "10.244.0.0/16,fd00:10:244::/56", "10.96.0.0/12,fd00:10:96::/112", "", "", "", "", "nftables", int32(0), false)
	f.Add("1.34.1", "cp:1", "10.96.0.0/16", "", "a.b", "cgroupfs", "localhost:5000", "http://127.0.0.1:5999", "", int32(131072), true)
	f.Add("v1.99.0", "cp.example.com", "10.244.0.1/16", "10.0.0.0/8", "Bad Name", "x", "https://r", "r", "userspace", int32(-5), true)
	f.Add("v1.30.14", "\"q\":1", "::/0", "0.0.0.0/0", "-", "systemd", "r.io/A", "", "ipvs\n", int32(0), true)

	n, err := ParseNode(&taskv1.NodeSpec{Name: "cp-1", AdvertiseAddress: "10.0.0.1"})
	if err != nil {
		f.Fatal(err)
	}
	f.Fuzz(func(t *testing.T, version, endpoint, pod, svc, name, driver, repo, mirrors, proxyMode string, maxPerCore int32, setMax bool) {
		spec := &taskv1.ClusterSpec{
			KubernetesVersion:    version,
			ControlPlaneEndpoint: endpoint,
			PodSubnet:            pod,
			ServiceSubnet:        svc,
			ClusterName:          name,
			CgroupDriver:         driver,
			Registry:             &taskv1.RegistrySettings{ImageRepository: repo, Mirrors: strings.Fields(mirrors)},
			KubeProxy:            &taskv1.KubeProxySettings{Mode: proxyMode},
		}
		if setMax {
			spec.KubeProxy.ConntrackMaxPerCore = &maxPerCore
		}
		c, err := ParseCluster(spec)
		if err != nil {
			if !strings.Contains(err.Error(), ":") {
				t.Fatalf("error %q names no field", err)
			}
			return
		}
		// Accepted: parsing again gives the same settings.
		again, err := ParseCluster(c.spec())
		if err != nil || !reflect.DeepEqual(again, c) {
			t.Fatalf("ParseCluster is not idempotent: %+v then %+v, %v", c, again, err)
		}
		// No pod network shares an address with a service network.
		if c.PodSubnet != "" {
			for _, p := range strings.Split(c.PodSubnet, ",") {
				for _, s := range strings.Split(c.ServiceSubnet, ",") {
					if netip.MustParsePrefix(p).Overlaps(netip.MustParsePrefix(s)) {
						t.Fatalf("accepted overlapping pod %s and service %s", p, s)
					}
				}
			}
		}
		// Every accepted cluster renders, and the YAML reads back with the same values.
		out, err := InitConfig(c, n, false, testToken)
		if err != nil {
			t.Fatalf("InitConfig of an accepted cluster: %v", err)
		}
		d := docs(t, out)
		if want := map[bool]int{true: 3, false: 4}[proxyMode == "" && !setMax]; len(d) != want {
			t.Fatalf("got %d documents, want %d:\n%s", len(d), want, out)
		}
		if len(d) == 4 {
			if got, _ := d[3]["mode"].(string); got != proxyMode {
				t.Fatalf("kube-proxy mode = %q, want %q\n%s", got, proxyMode, out)
			}
			if got := get(d[3], "conntrack", "maxPerCore"); setMax && got != float64(maxPerCore) || !setMax && got != nil {
				t.Fatalf("conntrack.maxPerCore = %v, want %d (set %v)\n%s", got, maxPerCore, setMax, out)
			}
		}
		cc := d[1]
		for k, want := range map[string]string{
			"kubernetesVersion": c.KubernetesVersion, "imageRepository": c.Registry.ImageRepository, "clusterName": c.ClusterName,
		} {
			if cc[k] != want {
				t.Fatalf("%s = %v, want %q\n%s", k, cc[k], want, out)
			}
		}
		if got := get(cc, "networking", "serviceSubnet"); got != c.ServiceSubnet {
			t.Fatalf("serviceSubnet = %v, want %q", got, c.ServiceSubnet)
		}
		if d[2]["cgroupDriver"] != c.CgroupDriver {
			t.Fatalf("cgroupDriver = %v, want %q", d[2]["cgroupDriver"], c.CgroupDriver)
		}
		if c.ControlPlaneEndpoint != "" {
			out, err := JoinConfig(c, n, true, "", testToken, testCAHash, testCertKey)
			if err != nil {
				t.Fatalf("JoinConfig of an accepted cluster: %v", err)
			}
			j := docs(t, out)
			if got := get(j[0], "discovery", "bootstrapToken", "apiServerEndpoint"); got != c.ControlPlaneEndpoint {
				t.Fatalf("apiServerEndpoint = %v, want %q", got, c.ControlPlaneEndpoint)
			}
		}
	})
}

func FuzzParseNode(f *testing.F) {
	f.Add("cp-1", "10.0.0.1", "", "example.com/rack", "r1", "example.com/dedicated", "infra", "NoSchedule")
	f.Add("worker-1", "fd00::1", "unix:///var/run/crio/crio.sock", "tier", "", "a", "", "NoExecute")
	f.Add("Bad_Name", "0.0.0.0", "/run/x.sock", "node-role.kubernetes.io/worker", "a,b", "", "b c", "NoRun")
	f.Add("n", "::ffff:10.0.0.1", "unix:///a/../b", "a/b/c", strings.Repeat("x", 64), "k8s.io/x", "v", "PreferNoSchedule")

	c, err := ParseCluster(&taskv1.ClusterSpec{KubernetesVersion: "v1.33.13", ControlPlaneEndpoint: "cp.example.com:6443"})
	if err != nil {
		f.Fatal(err)
	}
	f.Fuzz(func(t *testing.T, name, addr, socket, labelKey, labelValue, taintKey, taintValue, effect string) {
		spec := &taskv1.NodeSpec{
			Name:             name,
			AdvertiseAddress: addr,
			CriSocket:        socket,
			Labels:           map[string]string{labelKey: labelValue},
			Taints:           []*taskv1.Taint{{Key: taintKey, Value: taintValue, Effect: effect}},
		}
		n, err := ParseNode(spec)
		if err != nil {
			return
		}
		out, err := InitConfig(c, n, false, "")
		if err != nil {
			t.Fatalf("InitConfig of an accepted node: %v", err)
		}
		nr, _ := get(docs(t, out)[0], "nodeRegistration").(map[string]any)
		if nr["name"] != n.Name || nr["criSocket"] != n.CRISocket {
			t.Fatalf("nodeRegistration = %v, want name %q criSocket %q", nr, n.Name, n.CRISocket)
		}
		args, _ := nr["kubeletExtraArgs"].([]any)
		if n.AdvertiseAddress != "" {
			if len(args) == 0 || args[0].(map[string]any)["name"] != "node-ip" || args[0].(map[string]any)["value"] != n.AdvertiseAddress {
				t.Fatalf("kubeletExtraArgs = %v, want node-ip %s first", args, n.AdvertiseAddress)
			}
			args = args[1:]
		}
		if len(args) != 1 || args[0].(map[string]any)["value"] != labelKey+"="+labelValue {
			t.Fatalf("kubeletExtraArgs = %v, want node-labels %s=%s", args, labelKey, labelValue)
		}
		taints, _ := nr["taints"].([]any)
		if len(taints) != 1 || taints[0].(map[string]any)["key"] != taintKey || taints[0].(map[string]any)["effect"] != effect {
			t.Fatalf("taints = %v", taints)
		}
		if _, err := JoinConfig(c, n, false, "", testToken, testCAHash, ""); err != nil {
			t.Fatalf("JoinConfig of an accepted node: %v", err)
		}
	})
}
