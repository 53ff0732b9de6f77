package podnet

import (
	"errors"
	"slices"
	"strings"
	"testing"

	"github.com/deckhandhq/deckhand/internal/kubeimages"
)

func TestRewriteImage(t *testing.T) {
	for _, c := range []struct{ ref, repo, want string }{
		{"ghcr.io/flannel-io/flannel:v0.28.10", "", "ghcr.io/flannel-io/flannel:v0.28.10"},
		{"ghcr.io/flannel-io/flannel:v0.28.10", "registry.k8s.io", "ghcr.io/flannel-io/flannel:v0.28.10"},
		{"ghcr.io/flannel-io/flannel:v0.28.10", "10.250.0.1:5000", "10.250.0.1:5000/flannel-io/flannel:v0.28.10"},
		{"ghcr.io/flannel-io/flannel:v0.28.10", "mirror.example.com/k8s/", "mirror.example.com/k8s/flannel-io/flannel:v0.28.10"},
		{"calico/node:v3.30.0", "mirror.example.com", "mirror.example.com/calico/node:v3.30.0"},
		{"quay.io/cilium/cilium:v1.18.0@sha256:" + strings.Repeat("a", 64), "m.example.com", "m.example.com/cilium/cilium:v1.18.0@sha256:" + strings.Repeat("a", 64)},
	} {
		if got := RewriteImage(c.ref, c.repo); got != c.want {
			t.Errorf("RewriteImage(%q, %q) = %q, want %q", c.ref, c.repo, got, c.want)
		}
	}
}

func TestParsePort(t *testing.T) {
	for _, ok := range []string{"8472/udp", "179/tcp", "30000-32767/tcp", "1/tcp", "65535/udp"} {
		if err := ParsePort("p", ok); err != nil {
			t.Errorf("ParsePort(%q) = %v", ok, err)
		}
	}
	for _, bad := range []string{"", "8472", "8472/sctp", "0/tcp", "65536/udp", "20-10/tcp", "a/tcp", "10-/tcp", " 8472/udp"} {
		var fe *FieldError
		if err := ParsePort("ports[1]", bad); !errors.As(err, &fe) || fe.Field != "ports[1]" {
			t.Errorf("ParsePort(%q) = %v, want a FieldError naming ports[1]", bad, err)
		}
	}
}

// TestProviderDeclarations checks every provider's declaration: its ports and images
// parse, a manifest has a name, and who writes each node's CNI configuration is one
// answer. (presets_test.go renders the manifests.)
func TestProviderDeclarations(t *testing.T) {
	if Providers[0] != "bridge" || MustLookup("").Name != "bridge" || MustLookup("nope").Name != "bridge" {
		t.Fatalf("the default provider is %q, want bridge", Providers[0])
	}
	for _, p := range providers {
		if q, ok := Lookup(p.Name); !ok || q.Name != p.Name {
			t.Errorf("Lookup(%q) = %v, %v", p.Name, q.Name, ok)
		}
		if p.Summary == "" {
			t.Errorf("%s: no summary", p.Name)
		}
		if (p.Version == "") != (p.Images == nil) {
			t.Errorf("%s: a version without images or images without a version", p.Name)
		}
		if !p.HostRoutes && p.Manifest == nil && !p.FromDocument {
			t.Errorf("%s: neither routes by Deckhand nor a manifest: nothing would route between nodes", p.Name)
		}
		for i, port := range p.Ports {
			if err := ParsePort("ports", port.Spec); err != nil || port.Why == "" {
				t.Errorf("%s: ports[%d] %q: %v (why %q)", p.Name, i, port.Spec, err, port.Why)
			}
		}
		for _, img := range p.ImagesAt("", "") {
			if _, err := kubeimages.ParseReference(img); err != nil {
				t.Errorf("%s: image %q: %v", p.Name, img, err)
			}
		}
		if (p.Manifest != nil || p.FromDocument) && p.ManifestName == "" {
			t.Errorf("%s: a manifest without a name", p.Name)
		}
		if p.FromDocument && p.Manifest != nil {
			t.Errorf("%s: the manifest is the document's, not one of Deckhand's", p.Name)
		}
		if p.OwnCNI && (p.SubnetFile != "" || p.HostRoutes) {
			t.Errorf("%s: its pods write the CNI configuration: no subnet file or routes of Deckhand's", p.Name)
		}
		if p.FromDocument && !p.OwnCNI {
			t.Errorf("%s: a manifest from the document writes the CNI configuration itself", p.Name)
		}
	}
}

func TestFlannelManifest(t *testing.T) {
	m, err := MustLookup("flannel").Manifest(ManifestInput{PodSubnet: "10.32.0.0/12"})
	if err != nil {
		t.Fatal(err)
	}
	for _, want := range []string{`"Network": "10.32.0.0/12"`, `"Port": 8472}`, "image: ghcr.io/flannel-io/flannel:" + FlannelVersion, "--ip-masq=false", "--iface=$(NODE_IP)", "fieldPath: status.hostIP"} {
		if !strings.Contains(string(m), want) {
			t.Errorf("flannel's manifest lacks %q", want)
		}
	}
	for _, bad := range []string{"", "fd00::/64", "10.244.0.0"} {
		var fe *FieldError
		if _, err := MustLookup("flannel").Manifest(ManifestInput{PodSubnet: bad}); !errors.As(err, &fe) || fe.Field != "pod_subnet" {
			t.Errorf("manifest for pod subnet %q = %v, want a FieldError naming pod_subnet", bad, err)
		}
	}
}

// A cluster records its provider's version: its images and manifest follow the recorded
// version, not the one this Deckhand would install in a new cluster.
func TestProviderVersionFollowsTheRecord(t *testing.T) {
	f := MustLookup("flannel")
	if got := f.ImagesAt("v0.27.4", "r.example.com"); !slices.Equal(got, []string{"r.example.com/flannel-io/flannel:v0.27.4"}) {
		t.Errorf("images of a recorded v0.27.4: %v", got)
	}
	if got := f.ImagesAt("", ""); !slices.Equal(got, []string{"ghcr.io/flannel-io/flannel:" + FlannelVersion}) {
		t.Errorf("images of this Deckhand's version: %v", got)
	}
	m, err := f.Manifest(ManifestInput{PodSubnet: "10.244.0.0/16", Version: "v0.27.4"})
	if err != nil || !strings.Contains(string(m), "image: ghcr.io/flannel-io/flannel:v0.27.4") {
		t.Errorf("manifest of a recorded v0.27.4: %v\n%s", err, m)
	}
	// A record from before versions were recorded runs the version flannel had then, whatever
	// this Deckhand's is.
	if got := f.VersionOf(""); got != "v0.28.10" {
		t.Errorf("an unrecorded flannel cluster runs %q, want v0.28.10", got)
	}
	if got := f.VersionOf("v0.29.0"); got != "v0.29.0" {
		t.Errorf("a recorded v0.29.0 runs %q", got)
	}
	if got := MustLookup("bridge").ImagesAt("", "r.example.com"); len(got) != 0 {
		t.Errorf("bridge runs no image, got %v", got)
	}
}
