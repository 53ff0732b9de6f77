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
		objs, err := Parse(c.content)
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
