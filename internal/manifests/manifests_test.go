package manifests

import (
	"reflect"
	"slices"

	sigsyaml "sigs.k8s.io/yaml"

	"github.com/deckhandhq/deckhand/internal/podnet"

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
	// A container from a template (merge key, alias): its image is rewritten where written.
	tmpl := "x-tmpl: &t {name: c, image: docker.io/a/b:1}\nspec:\n  containers:\n  - <<: *t\n    name: d\n  - *t\n"
	if _, _, err := RewriteImages(tmpl, "r.example.com"); err == nil || !strings.Contains(err.Error(), "shared through an anchor") {
		t.Errorf("an image shared with a non-container field: %v", err)
	}
	merged := "spec:\n  initContainers:\n  - &t {name: c, image: docker.io/a/b:1}\n  containers:\n  - <<: *t\n    name: d\n  - *t\n"
	out, images, err = RewriteImages(merged, "r.example.com")
	if err != nil || !slices.Equal(images, []string{"docker.io/a/b:1"}) || !strings.Contains(out, "image: r.example.com/a/b:1}") {
		t.Errorf("containers through a merge key and an alias: %v %q\n%s", err, images, out)
	}
	// Nothing else changes: a flow mapping's nulls stay nulls.
	nulls := "x: {a, b: }\nspec: {containers: [{name: c, image: q.io/a:1}]}\n"
	if out, _, err := RewriteImages(nulls, "r.example.com"); err != nil || out != strings.Replace(nulls, "q.io/a:1", "r.example.com/a:1", 1) {
		t.Errorf("rewritten %q: %v", out, err)
	}
}

// rewriteDecoded is the oracle of RewriteImages: the manifest decoded by another YAML
// decoder (aliases and merge keys resolved there) with every container's image moved.
func rewriteDecoded(v any, repo string) any {
	switch x := v.(type) {
	case map[string]any:
		for k, val := range x {
			if items, ok := val.([]any); ok && podSpecLists[k] {
				for _, it := range items {
					if c, ok := it.(map[string]any); ok {
						if img, ok := c["image"].(string); ok {
							c["image"] = podnet.RewriteImage(img, repo)
						}
					}
				}
			}
			x[k] = rewriteDecoded(val, repo)
		}
	case []any:
		for i := range x {
			x[i] = rewriteDecoded(x[i], repo)
		}
	}
	return v
}

// decodeAll decodes each document of a manifest (as Parse splits them).
func decodeAll(t *testing.T, m string) []any {
	var out []any
	for _, doc := range separator.Split(m, -1) {
		var v any
		if err := sigsyaml.Unmarshal([]byte(doc), &v); err != nil {
			return nil
		}
		out = append(out, v)
	}
	return out
}

func FuzzRewriteImages(f *testing.F) {
	f.Add("spec: {containers: [{image: a/b:c}]}\n---\nx: y\n")
	f.Add("containers:\n- image: &x r.example.com/a:1\n- image: *x\n")
	f.Add("x: {a, b: }\ncontainers: [{name: c, image: \"q.io/a:1\"}]\n")
	f.Add("t: &t {name: c, image: docker.io/a/b:1}\ncontainers:\n- <<: *t\n  name: d\n- *t\n")
	f.Add("# only a comment\n---\ncontainers: [{image: 'quay.io/x/y:2'}]\n")
	f.Fuzz(func(t *testing.T, in string) {
		const repo = "m.example.com:5000"
		out, _, err := RewriteImages(in, repo)
		if err != nil {
			return
		}
		want := decodeAll(t, in)
		if want == nil {
			return // the other decoder refuses it: nothing to compare with
		}
		for i := range want {
			want[i] = rewriteDecoded(want[i], repo)
		}
		if got := decodeAll(t, out); !reflect.DeepEqual(got, want) {
			t.Fatalf("the rewritten manifest means something else:\n in  %q\n out %q\n got  %v\n want %v", in, out, got, want)
		}
	})
}
