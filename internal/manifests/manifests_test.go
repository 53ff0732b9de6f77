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
	in := `spec:
  initContainers:
  - name: install-cni-plugin
    image: ghcr.io/flannel-io/flannel-cni-plugin:v1.9.1-flannel3
  containers:
  - image: "docker.io/calico/node:v3.30.3" # pinned
    name: node
  - name: again
    image: 'ghcr.io/flannel-io/flannel-cni-plugin:v1.9.1-flannel3'
  # image: not-a-field
  - name: other
    imagePullPolicy: IfNotPresent
`
	out, images := RewriteImages(in, "10.250.0.1:5000")
	want := []string{"ghcr.io/flannel-io/flannel-cni-plugin:v1.9.1-flannel3", "docker.io/calico/node:v3.30.3"}
	if strings.Join(images, " ") != strings.Join(want, " ") {
		t.Errorf("images %q, want %q", images, want)
	}
	for _, line := range []string{
		"    image: 10.250.0.1:5000/flannel-io/flannel-cni-plugin:v1.9.1-flannel3\n",
		"  - image: \"10.250.0.1:5000/calico/node:v3.30.3\" # pinned\n",
		"    image: '10.250.0.1:5000/flannel-io/flannel-cni-plugin:v1.9.1-flannel3'\n",
		"  # image: not-a-field\n", "    imagePullPolicy: IfNotPresent\n",
	} {
		if !strings.Contains(out, line) {
			t.Errorf("rewritten manifest lacks %q:\n%s", line, out)
		}
	}
	if same, _ := RewriteImages(in, ""); same != in {
		t.Errorf("without an image repository the manifest changed:\n%s", same)
	}
}
