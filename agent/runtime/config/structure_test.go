package config

import (
	"strings"
	"testing"
)

// Values with a newline or a quote never reach containerd's files as new lines or tables:
// they are refused, or (a mirror URL is a table name) quoted and escaped.
func TestRenderedFilesRefuseValuesThatChangeTheirStructure(t *testing.T) {
	for _, tc := range []struct {
		upstream string
		mirrors  []string
	}{
		{"registry.k8s.io\n[host.\"https://evil\"]", nil},
		{"registry.k8s.io", []string{"https://mirror.example\n  skip_verify = true"}},
		{"registry.k8s.io", []string{"https://mirror.example\"]\n[x]"}},
	} {
		if _, content, err := HostsToml(tc.upstream, tc.mirrors, nil); err == nil {
			t.Errorf("HostsToml(%q, %q) rendered:\n%s", tc.upstream, tc.mirrors, content)
		}
	}
	for _, o := range []ContainerdOptions{
		{Major: 2, SandboxImage: "registry.k8s.io/pause:3.10\n[plugins.x]"},
		{Major: 2, SandboxImage: "registry.k8s.io/pause:3.10", Root: "/var/lib/containerd\n[x]"},
		{Major: 1, SandboxImage: "registry.k8s.io/pause:3.10", ConfigPath: "/etc/containerd/certs.d:/x\ny"},
	} {
		if out, err := Containerd(o); err == nil {
			t.Errorf("Containerd(%+v) rendered:\n%s", o, out)
		}
	}
	// crictl.yaml: a socket path with a newline is one quoted scalar, not a new key.
	out := Crictl("/run/containerd/containerd.sock\ndebug: true", 0)
	if strings.Count(out, "\ndebug:") != 1 || strings.Contains(out, "\ndebug: true") {
		t.Fatalf("crictl.yaml took a new key from the socket path:\n%s", out)
	}
}
