package config

import (
	"bufio"
	"errors"
	"flag"
	"fmt"
	"os"
	"path/filepath"
	"regexp"
	"strings"
	"testing"

	"github.com/deckhandhq/deckhand/internal/kubeimages"
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

var (
	headerRE = regexp.MustCompile(`^\[([^\[].*)\]$`)
	keyRE    = regexp.MustCompile(`^([A-Za-z0-9_-]+) = (.+)$`)
)

// tables reads the TOML subset the generators write (comments, top-level keys, [table]
// headers and key = value lines) into table -> key -> raw value; "" is the top level.
// Anything else, and any repeated table or key (invalid TOML), fails the test.
func tables(t *testing.T, doc string) map[string]map[string]string {
	t.Helper()
	out := map[string]map[string]string{"": {}}
	cur := ""
	sc := bufio.NewScanner(strings.NewReader(doc))
	for n := 1; sc.Scan(); n++ {
		line := strings.TrimSpace(sc.Text())
		switch {
		case line == "" || strings.HasPrefix(line, "#"):
		case strings.HasPrefix(line, "["):
			m := headerRE.FindStringSubmatch(line)
			if m == nil {
				t.Fatalf("line %d: bad table header %q", n, line)
			}
			cur = m[1]
			if _, dup := out[cur]; dup {
				t.Fatalf("line %d: table [%s] defined twice", n, cur)
			}
			out[cur] = map[string]string{}
		default:
			m := keyRE.FindStringSubmatch(line)
			if m == nil {
				t.Fatalf("line %d: not a key = value line: %q", n, line)
			}
			if _, dup := out[cur][m[1]]; dup {
				t.Fatalf("line %d: key %s repeated in [%s]", n, m[1], cur)
			}
			out[cur][m[1]] = m[2]
		}
	}
	return out
}

func baseOptions(major int, systemd bool) ContainerdOptions {
	return ContainerdOptions{
		Major:         major,
		SandboxImage:  "registry.k8s.io/pause:3.10",
		SystemdCgroup: systemd,
		ConfigPath:    "/etc/containerd/certs.d",
		CNIBinDir:     "/usr/lib/cni",
		CNIConfDir:    "/etc/cni/net.d",
	}
}

func TestContainerdGolden(t *testing.T) {
	for _, major := range []int{1, 2} {
		for _, systemd := range []bool{true, false} {
			name := fmt.Sprintf("containerd%d_systemd_%t.toml.golden", major, systemd)
			t.Run(name, func(t *testing.T) {
				got, err := Containerd(baseOptions(major, systemd))
				if err != nil {
					t.Fatal(err)
				}
				golden(t, name, got)
			})
		}
	}
	// The options a test instance needs: its own root, state, socket and runc root.
	for _, major := range []int{1, 2} {
		name := fmt.Sprintf("containerd%d_instance.toml.golden", major)
		t.Run(name, func(t *testing.T) {
			o := baseOptions(major, false)
			o.SandboxImage = "registry.example.com:5000/k8s/pause:3.10.1"
			o.Root, o.State, o.GRPCAddress = "/tmp/dh/root", "/tmp/dh/state", "/tmp/dh/containerd.sock"
			o.RestrictOOMScoreAdj, o.RuncRoot = true, "/tmp/dh/runc"
			o.ConfigPath = "/tmp/dh/certs.d:/etc/docker/certs.d"
			got, err := Containerd(o)
			if err != nil {
				t.Fatal(err)
			}
			golden(t, name, got)
		})
	}
}

// TestContainerdLayout checks that each setting sits in the table containerd reads it from
// (docs/cri/config.md of containerd 1.x and 2.x), independently of the golden files.
func TestContainerdLayout(t *testing.T) {
	const (
		cri1    = `plugins."io.containerd.grpc.v1.cri"`
		images2 = `plugins."io.containerd.cri.v1.images"`
		rt2     = `plugins."io.containerd.cri.v1.runtime"`
	)
	type want struct{ table, key, value string }
	for _, tc := range []struct {
		major int
		wants []want
	}{
		{1, []want{
			{"", "version", "2"},
			{cri1, "sandbox_image", `"registry.k8s.io/pause:3.10"`},
			{cri1, "restrict_oom_score_adj", "true"},
			{cri1 + ".containerd.runtimes.runc", "runtime_type", `"io.containerd.runc.v2"`},
			{cri1 + ".containerd.runtimes.runc.options", "SystemdCgroup", "true"},
			{cri1 + ".containerd.runtimes.runc.options", "Root", `"/run/dh-runc"`},
			{cri1 + ".cni", "bin_dir", `"/usr/lib/cni"`},
			{cri1 + ".cni", "conf_dir", `"/etc/cni/net.d"`},
			{cri1 + ".registry", "config_path", `"/etc/containerd/certs.d"`},
		}},
		{2, []want{
			{"", "version", "3"},
			{images2 + ".pinned_images", "sandbox", `"registry.k8s.io/pause:3.10"`},
			{images2 + ".registry", "config_path", `"/etc/containerd/certs.d"`},
			{rt2, "restrict_oom_score_adj", "true"},
			{rt2 + ".containerd.runtimes.runc", "runtime_type", `"io.containerd.runc.v2"`},
			{rt2 + ".containerd.runtimes.runc.options", "SystemdCgroup", "true"},
			{rt2 + ".containerd.runtimes.runc.options", "Root", `"/run/dh-runc"`},
			{rt2 + ".cni", "bin_dir", `"/usr/lib/cni"`},
			{rt2 + ".cni", "conf_dir", `"/etc/cni/net.d"`},
		}},
	} {
		t.Run(fmt.Sprint(tc.major), func(t *testing.T) {
			o := baseOptions(tc.major, true)
			o.RestrictOOMScoreAdj, o.RuncRoot = true, "/run/dh-runc"
			doc, err := Containerd(o)
			if err != nil {
				t.Fatal(err)
			}
			got := tables(t, doc)
			for _, w := range tc.wants {
				if v, ok := got[w.table][w.key]; !ok || v != w.value {
					t.Errorf("[%s] %s = %q, want %q", w.table, w.key, v, w.value)
				}
			}
			if g := got["grpc"]["address"]; g != `"/run/containerd/containerd.sock"` {
				t.Errorf("grpc address defaults to %s", g)
			}
			if r, s := got[""]["root"], got[""]["state"]; r != `"/var/lib/containerd"` || s != `"/run/containerd"` {
				t.Errorf("root, state default to %s, %s", r, s)
			}
			if tc.major == 2 {
				for name := range got {
					if strings.Contains(name, "io.containerd.grpc.v1.cri") {
						t.Errorf("containerd 2.x file has the 1.x table [%s]", name)
					}
				}
			}
		})
	}
}

func TestContainerdDefaultsAndOptionalRoot(t *testing.T) {
	doc, err := Containerd(ContainerdOptions{Major: 1, SandboxImage: "registry.k8s.io/pause:3.10"})
	if err != nil {
		t.Fatal(err)
	}
	got := tables(t, doc)
	const cri = `plugins."io.containerd.grpc.v1.cri"`
	for _, w := range [][3]string{
		{cri + ".cni", "bin_dir", `"/opt/cni/bin"`},
		{cri + ".cni", "conf_dir", `"/etc/cni/net.d"`},
		{cri + ".registry", "config_path", `"/etc/containerd/certs.d"`},
		{cri + ".containerd.runtimes.runc.options", "SystemdCgroup", "false"},
		{cri, "restrict_oom_score_adj", "false"},
	} {
		if got[w[0]][w[1]] != w[2] {
			t.Errorf("[%s] %s = %q, want %q", w[0], w[1], got[w[0]][w[1]], w[2])
		}
	}
	if _, ok := got[cri+".containerd.runtimes.runc.options"]["Root"]; ok {
		t.Error("runc Root is written although RuncRoot is empty")
	}
}

func TestContainerdRejects(t *testing.T) {
	ok := baseOptions(1, true)
	for _, tc := range []struct {
		name  string
		edit  func(*ContainerdOptions)
		field string
		msg   string
	}{
		{"major 0", func(o *ContainerdOptions) { o.Major = 0 }, "major", `"0" is not a supported containerd major version: use 1 (containerd 1.x) or 2 (containerd 2.x)`},
		{"major 3", func(o *ContainerdOptions) { o.Major = 3 }, "major", "not a supported containerd major version"},
		{"no sandbox image", func(o *ContainerdOptions) { o.SandboxImage = "" }, "sandbox_image", "is required"},
		{"bad sandbox image", func(o *ContainerdOptions) { o.SandboxImage = "registry.k8s.io/Pause:3.10" }, "sandbox_image", "upper-case"},
		{"injected sandbox image", func(o *ContainerdOptions) { o.SandboxImage = "pause\"\n[x]" }, "sandbox_image", "bad"},
		{"relative config path", func(o *ContainerdOptions) { o.ConfigPath = "certs.d" }, "config_path", "absolute"},
		{"relative config path in list", func(o *ContainerdOptions) { o.ConfigPath = "/etc/containerd/certs.d:certs.d" }, "config_path", "absolute"},
		{"relative cni bin", func(o *ContainerdOptions) { o.CNIBinDir = "opt/cni/bin" }, "cni_bin_dir", "absolute"},
		{"relative cni conf", func(o *ContainerdOptions) { o.CNIConfDir = "net.d" }, "cni_conf_dir", "absolute"},
		{"relative root", func(o *ContainerdOptions) { o.Root = "root" }, "root", "absolute"},
		{"relative state", func(o *ContainerdOptions) { o.State = "state" }, "state", "absolute"},
		{"socket URL", func(o *ContainerdOptions) { o.GRPCAddress = "unix:///run/containerd/containerd.sock" }, "grpc_address", "without unix://"},
		{"newline in runc root", func(o *ContainerdOptions) { o.RuncRoot = "/run/runc\n[x]" }, "runc_root", "absolute"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			o := ok
			tc.edit(&o)
			_, err := Containerd(o)
			var fe *kubeimages.FieldError
			if !errors.Is(err, kubeimages.ErrInvalid) || !errors.As(err, &fe) || fe.Field != tc.field {
				t.Fatalf("got %v, want a FieldError for %s", err, tc.field)
			}
			if !strings.HasPrefix(err.Error(), tc.field+": ") || !strings.Contains(err.Error(), tc.msg) {
				t.Fatalf("message %q does not name %s and contain %q", err, tc.field, tc.msg)
			}
		})
	}
}

func TestContainerdQuotesStrings(t *testing.T) {
	o := baseOptions(2, true)
	o.Root = `/var/lib/a "quoted" \ dir`
	doc, err := Containerd(o)
	if err != nil {
		t.Fatal(err)
	}
	if got := tables(t, doc)[""]["root"]; got != `"/var/lib/a \"quoted\" \\ dir"` {
		t.Fatalf("root rendered as %s", got)
	}
}

func TestHostsTomlGolden(t *testing.T) {
	dir, content, err := HostsToml("registry.k8s.io",
		[]string{"https://mirror.example.com", "http://127.0.0.1:5000"},
		map[string]bool{"127.0.0.1:5000": true})
	if err != nil {
		t.Fatal(err)
	}
	if dir != "registry.k8s.io" {
		t.Fatalf("dir %q", dir)
	}
	golden(t, "hosts_registry.k8s.io.toml.golden", content)

	got := tables(t, content)
	if got[""]["server"] != `"https://registry.k8s.io"` {
		t.Errorf("server = %s", got[""]["server"])
	}
	first, second := `host."https://mirror.example.com"`, `host."http://127.0.0.1:5000"`
	if got[first]["capabilities"] != `["pull", "resolve"]` || got[second]["capabilities"] != `["pull", "resolve"]` {
		t.Errorf("capabilities: %v", got)
	}
	if _, ok := got[first]["skip_verify"]; ok {
		t.Error("the secure mirror has skip_verify")
	}
	if got[second]["skip_verify"] != "true" {
		t.Error("the insecure mirror has no skip_verify = true")
	}
	if strings.Index(content, first) > strings.Index(content, second) {
		t.Error("mirrors are not in the given order")
	}
}

func TestHostsToml(t *testing.T) {
	for _, tc := range []struct {
		name     string
		upstream string
		mirrors  []string
		insecure map[string]bool
		dir      string
		top      map[string]string
		skip     map[string]bool // mirror -> has skip_verify
	}{
		{
			name: "port is kept in the directory name", upstream: "127.0.0.1:5000", dir: "127.0.0.1:5000",
			top: map[string]string{"server": `"https://127.0.0.1:5000"`},
		},
		{
			// As Docker's insecure-registries: HTTPS without verification, then plain HTTP.
			name: "insecure upstream", upstream: "registry.local:5000", insecure: map[string]bool{"registry.local:5000": true},
			dir: "registry.local:5000", top: map[string]string{"server": `"http://registry.local:5000"`},
			skip: map[string]bool{"https://registry.local:5000": true},
		},
		{
			name: "docker hub", upstream: "docker.io", mirrors: []string{"https://mirror.gcr.io"}, dir: "docker.io",
			top: map[string]string{"server": `"https://registry-1.docker.io"`}, skip: map[string]bool{"https://mirror.gcr.io": false},
		},
		{
			name: "insecure by mirror URL", upstream: "registry.k8s.io", mirrors: []string{"https://m.example.com:8443/v2/k8s"},
			insecure: map[string]bool{"https://m.example.com:8443/v2/k8s": true}, dir: "registry.k8s.io",
			top: map[string]string{"server": `"https://registry.k8s.io"`}, skip: map[string]bool{"https://m.example.com:8443/v2/k8s": true},
		},
		{
			name: "ipv6", upstream: "[fd00::1]:5000", mirrors: []string{"http://[fd00::2]:5000"}, insecure: map[string]bool{"[fd00::2]:5000": true},
			dir: "[fd00::1]:5000", top: map[string]string{"server": `"https://[fd00::1]:5000"`}, skip: map[string]bool{"http://[fd00::2]:5000": true},
		},
	} {
		t.Run(tc.name, func(t *testing.T) {
			dir, content, err := HostsToml(tc.upstream, tc.mirrors, tc.insecure)
			if err != nil {
				t.Fatal(err)
			}
			if dir != tc.dir {
				t.Errorf("dir %q, want %q", dir, tc.dir)
			}
			got := tables(t, content)
			if len(got[""]) != len(tc.top) {
				t.Errorf("top-level keys %v, want %v", got[""], tc.top)
			}
			for k, v := range tc.top {
				if got[""][k] != v {
					t.Errorf("%s = %s, want %s", k, got[""][k], v)
				}
			}
			for m, skip := range tc.skip {
				tbl, ok := got["host."+tomlString(m)]
				if !ok {
					t.Fatalf("no table for mirror %s in\n%s", m, content)
				}
				if _, has := tbl["skip_verify"]; has != skip {
					t.Errorf("mirror %s: skip_verify present = %t, want %t", m, has, skip)
				}
			}
		})
	}
}

func TestHostsTomlRejects(t *testing.T) {
	for _, tc := range []struct {
		name     string
		upstream string
		mirrors  []string
		field    string
		msg      string
	}{
		{"upstream with scheme", "https://registry.k8s.io", nil, "upstream", `upstream: "https://registry.k8s.io" has a URL scheme: write host[:port] without http:// or https://`},
		{"upstream with path", "registry.k8s.io/k8s", nil, "upstream", "has a path"},
		{"empty upstream", "", nil, "upstream", "empty host"},
		{"ftp mirror", "registry.k8s.io", []string{"https://a.example.com", "ftp://x"}, "mirrors[1]", `mirrors[1]: "ftp://x" is not an http(s) URL: use https://host[:port]`},
		{"quote in mirror", "registry.k8s.io", []string{`https://a.example.com/"]`}, "mirrors[0]", "quote"},
		{"duplicate mirror", "registry.k8s.io", []string{"https://a.example.com", "https://a.example.com"}, "mirrors[1]", "repeats mirrors[0]"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			_, _, err := HostsToml(tc.upstream, tc.mirrors, nil)
			var fe *kubeimages.FieldError
			if !errors.Is(err, kubeimages.ErrInvalid) || !errors.As(err, &fe) || fe.Field != tc.field {
				t.Fatalf("got %v, want a FieldError for %s", err, tc.field)
			}
			if !strings.Contains(err.Error(), tc.msg) {
				t.Fatalf("message %q does not contain %q", err, tc.msg)
			}
		})
	}
}

func TestCrictlGolden(t *testing.T) {
	golden(t, "crictl.yaml.golden", Crictl("/run/containerd/containerd.sock", 10))
}

func TestCrictl(t *testing.T) {
	for _, tc := range []struct {
		socket  string
		timeout int
		want    []string
		absent  string
	}{
		{"/tmp/dh/containerd.sock", 30, []string{"runtime-endpoint: unix:///tmp/dh/containerd.sock\n", "image-endpoint: unix:///tmp/dh/containerd.sock\n", "timeout: 30\n"}, ""},
		{"unix:///run/containerd/containerd.sock", 10, []string{"runtime-endpoint: unix:///run/containerd/containerd.sock\n"}, "unix://unix://"},
		{"", 0, []string{"image-endpoint: unix:///run/containerd/containerd.sock\n", "debug: false\n", "pull-image-on-create: false\n"}, "timeout:"},
		{"/tmp/a dir: x/c.sock", 5, []string{`runtime-endpoint: "unix:///tmp/a dir: x/c.sock"` + "\n"}, ""},
	} {
		got := Crictl(tc.socket, tc.timeout)
		for _, w := range tc.want {
			if !strings.Contains(got, w) {
				t.Errorf("Crictl(%q, %d) lacks %q:\n%s", tc.socket, tc.timeout, w, got)
			}
		}
		if tc.absent != "" && strings.Contains(got, tc.absent) {
			t.Errorf("Crictl(%q, %d) has %q:\n%s", tc.socket, tc.timeout, tc.absent, got)
		}
	}
}

// TestGeneratorsAreDeterministic: the runtime task decides "no changes" by comparing bytes.
func TestGeneratorsAreDeterministic(t *testing.T) {
	insecure := map[string]bool{"a.example.com": true, "b.example.com": true, "c.example.com": true}
	mirrors := []string{"https://c.example.com", "https://a.example.com", "https://b.example.com", "https://d.example.com"}
	_, first, err := HostsToml("registry.k8s.io", mirrors, insecure)
	if err != nil {
		t.Fatal(err)
	}
	for range 20 {
		if _, again, _ := HostsToml("registry.k8s.io", mirrors, insecure); again != first {
			t.Fatalf("HostsToml output changes between calls:\n%s\n%s", first, again)
		}
	}
}
