package facts

import (
	"strings"
	"testing"
	"unicode/utf8"
)

func TestParseMeminfo(t *testing.T) {
	for _, tc := range []struct {
		name      string
		in        string
		mem, swap uint64
	}{
		{"typical", "MemTotal:       16318412 kB\nMemFree:  1 kB\nSwapTotal:       2097148 kB\nSwapFree: 2 kB\n", 16318412 * 1024, 2097148 * 1024},
		{"no swap", "MemTotal: 1024 kB\nSwapTotal: 0 kB\n", 1024 * 1024, 0},
		{"missing unit", "MemTotal: 1024\n", 0, 0},
		{"other unit", "MemTotal: 1 MB\n", 0, 0},
		{"negative", "MemTotal: -5 kB\n", 0, 0},
		{"overflow", "MemTotal: 18446744073709551615 kB\n", 0, 0},
		{"largest that fits", "MemTotal: 18014398509481983 kB\n", 18014398509481983 * 1024, 0},
		{"similar keys ignored", "MemTotalX: 5 kB\nSwapTotals: 5 kB\n", 0, 0},
		{"garbage", "\x00::::\n", 0, 0},
	} {
		mem, swap := parseMeminfo([]byte(tc.in))
		if mem != tc.mem || swap != tc.swap {
			t.Errorf("%s: got mem %d swap %d, want %d %d", tc.name, mem, swap, tc.mem, tc.swap)
		}
	}
}

func TestParseHostname(t *testing.T) {
	for in, want := range map[string]string{
		"node-a\n":                 "node-a",
		"# comment\n\n  node-b \n": "node-b",
		"":                         "",
		"#only a comment\n":        "",
	} {
		if got := parseHostname([]byte(in)); got != want {
			t.Errorf("parseHostname(%q) = %q, want %q", in, got, want)
		}
	}
}

func TestParseKubeVersions(t *testing.T) {
	for _, tc := range []struct {
		parse func([]byte) string
		in    string
		want  string
	}{
		{parseKubeletVersion, "Kubernetes v1.33.4\n", "v1.33.4"},
		{parseKubeletVersion, "Flag --foo has been deprecated\nKubernetes v1.34.0-rc.1\n", "v1.34.0-rc.1"},
		{parseKubeletVersion, "Kubernetes v1.33.4+k3s1\n", "v1.33.4+k3s1"},
		{parseKubeletVersion, "v1.33.4\n", ""},
		{parseKubeletVersion, "Kubernetes 1.33.4\n", ""},
		{parseKubeletVersion, "Kubernetes v1.33\n", ""},
		{parseKubeadmVersion, "v1.33.4\n", "v1.33.4"},
		{parseKubeadmVersion, "kubeadm version: &version.Info{Major:\"1\"}\n", ""},
		{parseKubeadmVersion, "v1.33.4 extra\n", ""},
		{parseKubeadmVersion, "v1.33.4-" + strings.Repeat("a", 100), ""},
		{parseKubectlVersion, `{"clientVersion":{"gitVersion":"v1.33.4"},"kustomizeVersion":"v5.6.0"}`, "v1.33.4"},
		{parseKubectlVersion, `{"serverVersion":{"gitVersion":"v1.33.4"}}`, ""},
		{parseKubectlVersion, `{"clientVersion":{"gitVersion":"v1.33.4; rm -rf /"}}`, ""},
		{parseKubectlVersion, `Client Version: v1.33.4`, ""},
	} {
		if got := tc.parse([]byte(tc.in)); got != tc.want {
			t.Errorf("parse %q = %q, want %q", tc.in, got, tc.want)
		}
	}
}

func FuzzParseMeminfo(f *testing.F) {
	f.Add([]byte("MemTotal:       16318412 kB\nSwapTotal:       2097148 kB\n"))
	f.Add([]byte("MemTotal: 18446744073709551615 kB\n"))
	f.Add([]byte("SwapTotal:\n:"))
	f.Fuzz(func(t *testing.T, data []byte) {
		mem, swap := parseMeminfo(data)
		for _, v := range []uint64{mem, swap} {
			if v%1024 != 0 {
				t.Fatalf("parseMeminfo(%q) gave %d bytes: want a whole number of kB", data, v)
			}
		}
	})
}

func FuzzParseHostname(f *testing.F) {
	f.Add([]byte("node-a\n"))
	f.Add([]byte("# c\n \t\n node-b\r\n"))
	f.Fuzz(func(t *testing.T, data []byte) {
		h := parseHostname(data)
		if !utf8.ValidString(h) || strings.Contains(h, "\n") || strings.HasPrefix(h, "#") || h != strings.TrimSpace(h) {
			t.Fatalf("parseHostname(%q) = %q", data, h)
		}
	})
}

// FuzzParseKubeVersion feeds the same bytes to all three version parsers: whatever a binary
// prints, what is recorded is a version or nothing.
func FuzzParseKubeVersion(f *testing.F) {
	f.Add([]byte("Kubernetes v1.33.4\n"))
	f.Add([]byte("v1.34.0-rc.1\n"))
	f.Add([]byte(`{"clientVersion":{"gitVersion":"v1.33.4+k3s1"}}`))
	f.Fuzz(func(t *testing.T, data []byte) {
		for name, parse := range map[string]func([]byte) string{
			"kubelet": parseKubeletVersion, "kubeadm": parseKubeadmVersion, "kubectl": parseKubectlVersion,
		} {
			v := parse(data)
			if v != "" && (len(v) > maxVersionLen || !kubeVersionRE.MatchString(v)) {
				t.Fatalf("%s parser read %q from %q: not a version", name, v, data)
			}
		}
	})
}

func FuzzParseCapEff(f *testing.F) {
	f.Add([]byte("CapPrm:\t000001ffffffffff\nCapEff:\t000001fffeffffff\n"))
	f.Add([]byte("CapEff:\t\nCapEff: 1\n"))
	f.Add([]byte("CapEff:\tffffffffffffffffff\n"))
	f.Fuzz(func(t *testing.T, data []byte) {
		caps, ok := parseCapEff(data)
		if !ok && caps != 0 {
			t.Fatalf("parseCapEff(%q) = %x without a CapEff line that parses", data, caps)
		}
	})
}
