// Command presets renders the pod-network presets Deckhand embeds
// (internal/podnet/presets): Cilium's Helm chart rendered with Helm's own engine, and
// Calico's release manifest taken as published, both from the Go module proxy. It is
// development tooling in a module of its own (Helm never links into Deckhand); run it with
// scripts/presets.sh, which finds the modules' directories.
//
//	presets -cilium DIR -calico DIR -out DIR
package main

import (
	"bytes"
	"crypto/sha256"
	"encoding/hex"
	"flag"
	"fmt"
	"os"
	"path/filepath"
	"sort"
	"strings"

	"helm.sh/helm/v3/pkg/chart/loader"
	"helm.sh/helm/v3/pkg/chartutil"
	"helm.sh/helm/v3/pkg/engine"
)

func main() {
	cilium := flag.String("cilium", "", "the directory of module github.com/cilium/cilium")
	calico := flag.String("calico", "", "the directory of module github.com/projectcalico/calico")
	out := flag.String("out", "", "the directory the presets are written to")
	kube := flag.String("kube-version", "v1.33.13", "the Kubernetes version the chart is rendered for")
	flag.Parse()
	if *cilium == "" || *calico == "" || *out == "" {
		flag.Usage()
		os.Exit(2)
	}
	if err := run(*cilium, *calico, *out, *kube); err != nil {
		fmt.Fprintln(os.Stderr, "presets:", err)
		os.Exit(1)
	}
}

func run(ciliumDir, calicoDir, out, kube string) error {
	c, err := renderCilium(filepath.Join(ciliumDir, "install/kubernetes/cilium"), kube)
	if err != nil {
		return fmt.Errorf("cilium: %w", err)
	}
	if err := write(out, "cilium.yaml", c); err != nil {
		return err
	}
	k, err := os.ReadFile(filepath.Join(calicoDir, "manifests/calico-vxlan.yaml"))
	if err != nil {
		return fmt.Errorf("calico: %w", err)
	}
	return write(out, "calico-vxlan.yaml", k)
}

func write(dir, name string, b []byte) error {
	if err := os.WriteFile(filepath.Join(dir, name), b, 0o644); err != nil {
		return err
	}
	sum := sha256.Sum256(b)
	fmt.Printf("%s  %s (%d bytes)\n", hex.EncodeToString(sum[:]), name, len(b))
	return nil
}

// ciliumValues are the chart values Deckhand's preset sets; every other value is the
// chart's default.
var ciliumValues = map[string]any{
	// Each node's pods get its Node's podCIDR, which kube-controller-manager allocates
	// from the cluster's pod subnet (kubeadm's podSubnet), as with every other provider.
	"ipam": map[string]any{"mode": "kubernetes"},
	// Hubble (and the certificates its TLS needs, from a certgen job) is an add-on.
	"hubble": map[string]any{"enabled": false},
	// One operator: a one-node cluster can roll out its Deployment (two replicas with
	// anti-affinity would wait for a second node).
	"operator": map[string]any{"replicas": 1},
	// Where kubelet's and containerd's CNI plugins are on every Deckhand node.
	"cni": map[string]any{"binPath": "/opt/cni/bin", "confPath": "/etc/cni/net.d"},
	// VXLAN between nodes, which may be on different L3 segments.
	"routingMode":    "tunnel",
	"tunnelProtocol": "vxlan",
}

func renderCilium(dir, kube string) ([]byte, error) {
	ch, err := loader.Load(dir)
	if err != nil {
		return nil, err
	}
	caps := chartutil.DefaultCapabilities.Copy()
	v := strings.TrimPrefix(kube, "v")
	parts := strings.SplitN(v, ".", 3)
	if len(parts) < 2 {
		return nil, fmt.Errorf("-kube-version %q: give vMAJOR.MINOR.PATCH", kube)
	}
	caps.KubeVersion = chartutil.KubeVersion{Version: kube, Major: parts[0], Minor: parts[1]}
	vals, err := chartutil.ToRenderValues(ch, ciliumValues, chartutil.ReleaseOptions{
		Name: "cilium", Namespace: "kube-system", Revision: 1, IsInstall: true,
	}, caps)
	if err != nil {
		return nil, err
	}
	files, err := engine.Render(ch, vals)
	if err != nil {
		return nil, err
	}
	names := make([]string, 0, len(files))
	for n := range files {
		names = append(names, n)
	}
	sort.Strings(names)
	var b bytes.Buffer
	fmt.Fprintf(&b, "# Cilium %s for a Deckhand cluster: its Helm chart (module github.com/cilium/cilium@v%s,\n", ch.Metadata.Version, ch.Metadata.Version)
	b.WriteString("# install/kubernetes/cilium) rendered by scripts/presets.sh with these values:\n")
	for _, k := range sortedKeys(ciliumValues) {
		fmt.Fprintf(&b, "#   %s: %v\n", k, ciliumValues[k])
	}
	for _, n := range names {
		body := strings.TrimSpace(files[n])
		if body == "" || strings.HasSuffix(n, "NOTES.txt") || !strings.HasSuffix(n, ".yaml") {
			continue
		}
		// A template may render several documents, separated by ---, or only comments.
		if !strings.Contains(body, "kind:") {
			continue
		}
		fmt.Fprintf(&b, "---\n# Source: %s\n%s\n", strings.TrimPrefix(n, ch.Metadata.Name+"/"), strings.TrimPrefix(body, "---\n"))
	}
	return b.Bytes(), nil
}

func sortedKeys(m map[string]any) []string {
	var ks []string
	for k := range m {
		ks = append(ks, k)
	}
	sort.Strings(ks)
	return ks
}
