package manifests

import (
	"strings"
	"testing"
)

func TestParse(t *testing.T) {
	ns := "apiVersion: v1\nkind: Namespace\nmetadata: {name: a}\n"
	ds := "apiVersion: apps/v1\nkind: DaemonSet\nmetadata: {name: d, namespace: a}\n"
	for _, c := range []struct {
		content string
		want    []string // kind/namespace/name
		err     string
	}{
		{ns + "---\n" + ds, []string{"Namespace//a", "DaemonSet/a/d"}, ""},
		// kubectl reads a separator with a comment after it, and CRLF lines.
		{ns + "--- # the workload\n" + ds, []string{"Namespace//a", "DaemonSet/a/d"}, ""},
		{strings.ReplaceAll(ns+"---\n"+ds, "\n", "\r\n"), []string{"Namespace//a", "DaemonSet/a/d"}, ""},
		{"---\n# only a comment\n---\n" + ds + "---\n", []string{"DaemonSet/a/d"}, ""},
		{ns + "---\nkind: [\n", nil, "document 2: not YAML"},
		{"apiVersion: v1\nkind: ConfigMap\nmetadata: {namespace: a}\n", nil, "document 1 (ConfigMap): no metadata.name"},
		{"apiVersion: v1\nkind: List\nitems: []\n", nil, "a List"},
		{"metadata: {name: x}\n", nil, "no apiVersion or kind"},
		{ns + "---\napiVersion: v1\nkind: Secret\nmetadata: {name: s}\nstringData: {password: hunter2}\n", nil, "document 2: a Secret"},
		{"---\n# nothing\n---\n", nil, "no objects"},
		{strings.Repeat("#", MaxBytes+1), nil, "at most"},
	} {
		objs, err := Parse(c.content, false)
		if c.err != "" {
			if err == nil || !strings.Contains(err.Error(), c.err) {
				t.Errorf("Parse(%q) = %v, want an error saying %q", c.content, err, c.err)
			}
			continue
		}
		var got []string
		for _, o := range objs {
			got = append(got, o.Kind+"/"+o.Namespace+"/"+o.Name)
		}
		if err != nil || strings.Join(got, " ") != strings.Join(c.want, " ") {
			t.Errorf("Parse(%q) = %v, %v; want %v", c.content, got, err, c.want)
		}
	}
	for name, ok := range map[string]bool{"flannel": true, "calico-v3": true, "Flannel": false, "../x": false, "": false, "9a": false, strings.Repeat("a", 64): false} {
		if ValidName(name) != ok {
			t.Errorf("ValidName(%q) = %v", name, !ok)
		}
	}
}

// A manifest read from a location may carry Secrets (only its location is stored) and be
// bigger.
func TestParseFetched(t *testing.T) {
	secret := "apiVersion: v1\nkind: Secret\nmetadata: {name: s}\n"
	if _, err := Parse(secret, true); err != nil {
		t.Errorf("a Secret in a fetched manifest: %v", err)
	}
	big := secret + "# " + strings.Repeat("x", MaxBytes) + "\n"
	if _, err := Parse(big, true); err != nil {
		t.Errorf("a fetched manifest above the inline limit: %v", err)
	}
	if _, err := Parse(big, false); err == nil {
		t.Error("an inline manifest above the limit was accepted")
	}
}

func TestRewriteImages(t *testing.T) {
	in := `# a comment that stays
apiVersion: apps/v1
kind: DaemonSet
metadata: {name: cni}
spec:
  template:
    spec:
      initContainers:
      - name: install-cni-plugin
        image: ghcr.io/flannel-io/flannel-cni-plugin:v1.9.1-flannel3
      containers:
      - image: "docker.io/calico/node:v3.30.3" # pinned
        name: node
      - {name: flow, image: quay.io/cilium/cilium:v1.18.4}
      - name: again
        image: &plugin ghcr.io/example/agent:v1
      - name: alias
        image: *plugin
---
apiVersion: v1
kind: ConfigMap
metadata: {name: cfg}
data:
  notes: |
    image: docker.io/not/a-container:v1
---
{"apiVersion": "v1", "kind": "Pod", "metadata": {"name": "p"}, "spec": {"containers": [{"name": "c", "image": "docker.io/library/busybox:1.36"}]}}
---
apiVersion: apiextensions.k8s.io/v1
kind: CustomResourceDefinition
metadata: {name: imagesets.example.com}
spec:
  versions:
  - name: v1
    schema:
      openAPIV3Schema:
        properties:
          image:
            description: an image, not a container's
            type: string
`
	out, images, err := RewriteImages(in, "10.250.0.1:5000")
	if err != nil {
		t.Fatal(err)
	}
	want := []string{"ghcr.io/flannel-io/flannel-cni-plugin:v1.9.1-flannel3", "docker.io/calico/node:v3.30.3", "quay.io/cilium/cilium:v1.18.4",
		"ghcr.io/example/agent:v1", "docker.io/library/busybox:1.36"}
	if strings.Join(images, " ") != strings.Join(want, " ") {
		t.Errorf("images %q, want %q", images, want)
	}
	for _, s := range []string{"10.250.0.1:5000/flannel-io/flannel-cni-plugin:v1.9.1-flannel3", `"10.250.0.1:5000/calico/node:v3.30.3" # pinned`,
		"10.250.0.1:5000/cilium/cilium:v1.18.4", "&plugin 10.250.0.1:5000/example/agent:v1", "image: *plugin", "10.250.0.1:5000/library/busybox:1.36",
		"image: docker.io/not/a-container:v1", "description: an image, not a container's", "# a comment that stays"} {
		if !strings.Contains(out, s) {
			t.Errorf("rewritten manifest lacks %q:\n%s", s, out)
		}
	}
	if objs, err := Parse(out, false); err != nil || len(objs) != 4 {
		t.Errorf("the rewritten manifest parses into %d objects (%v), want 4", len(objs), err)
	}
	if same, _, _ := RewriteImages(in, ""); same != in {
		t.Errorf("without an image repository the manifest changed:\n%s", same)
	}
	if _, _, err := RewriteImages("a: [\n", "r.example.com"); err == nil {
		t.Error("a manifest that is not YAML was rewritten")
	}
}

func FuzzRewriteImages(f *testing.F) {
	f.Add("spec: {containers: [{image: a/b:c}]}\n---\nx: y\n")
	f.Add("containers:\n- image: &x r.example.com/a:1\n- image: *x\n")
	f.Fuzz(func(t *testing.T, in string) {
		out, images, err := RewriteImages(in, "m.example.com:5000")
		if err != nil {
			return
		}
		// The rewritten manifest names the same containers, each image moved.
		again, moved, err := RewriteImages(out, "m.example.com:5000")
		if err != nil {
			t.Fatalf("the rewritten manifest does not parse: %v\n%q", err, out)
		}
		if len(moved) != len(images) || again != out {
			t.Fatalf("rewriting twice: %q then %q (%q -> %q)", images, moved, out, again)
		}
	})
}
