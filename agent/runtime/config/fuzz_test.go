package config

import (
	"strings"
	"testing"
)

// FuzzHostsToml: whatever the mirrors and hosts, an accepted input renders a file with
// exactly the server and one table per mirror, in order: nothing in the input can add or
// break a TOML line.
func FuzzHostsToml(f *testing.F) {
	f.Add("registry.k8s.io", "https://mirror.example.com", "http://127.0.0.1:5000", "127.0.0.1:5000")
	f.Add("127.0.0.1:5000", "http://[fd00::2]:5000/x]", "https://a/b", "a")
	f.Add("docker.io", "https://m\"]\n[x]", "", "")
	f.Fuzz(func(t *testing.T, upstream, m1, m2, insecure string) {
		var mirrors []string
		for _, m := range []string{m1, m2} {
			if m != "" {
				mirrors = append(mirrors, m)
			}
		}
		dir, content, err := HostsToml(upstream, mirrors, map[string]bool{insecure: true})
		if err != nil {
			return
		}
		if dir != upstream {
			t.Fatalf("dir %q for upstream %q", dir, upstream)
		}
		got := tables(t, content)
		if len(got) != 1+len(mirrors) {
			t.Fatalf("%d tables for %d mirrors:\n%s", len(got)-1, len(mirrors), content)
		}
		if !strings.HasPrefix(got[""]["server"], `"https://`) {
			t.Fatalf("server = %s", got[""]["server"])
		}
		last := -1
		for _, m := range mirrors {
			name := "host." + tomlString(m)
			if got[name]["capabilities"] != `["pull", "resolve"]` {
				t.Fatalf("mirror %q: table %v in\n%s", m, got[name], content)
			}
			i := strings.Index(content, "\n["+name+"]\n")
			if i <= last {
				t.Fatalf("mirror %q out of order in\n%s", m, content)
			}
			last = i
		}
	})
}

// FuzzContainerd: an accepted sandbox image or path never changes the file's structure.
func FuzzContainerd(f *testing.F) {
	f.Add(1, "registry.k8s.io/pause:3.10", "/etc/containerd/certs.d", "/run/runc")
	f.Add(2, "pause\"\n[x]", "/a \"b\"", "/c\\d")
	f.Fuzz(func(t *testing.T, major int, sandbox, configPath, runcRoot string) {
		o := ContainerdOptions{Major: major, SandboxImage: sandbox, ConfigPath: configPath, RuncRoot: runcRoot}
		doc, err := Containerd(o)
		if err != nil {
			return
		}
		got := tables(t, doc)
		if want := map[int]int{1: 1 + 7, 2: 1 + 8}[major]; len(got) != want {
			t.Fatalf("%d tables:\n%s", len(got), doc)
		}
		key := map[int]string{1: `plugins."io.containerd.grpc.v1.cri"`, 2: `plugins."io.containerd.cri.v1.images".pinned_images`}[major]
		val := map[int]string{1: "sandbox_image", 2: "sandbox"}[major]
		if got[key][val] != tomlString(sandbox) {
			t.Fatalf("sandbox image %q rendered as %s", sandbox, got[key][val])
		}
	})
}
