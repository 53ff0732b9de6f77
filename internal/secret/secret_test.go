package secret

import (
	"strings"
	"testing"
)

const (
	tok  = "abcdef.0123456789abcdef"
	key  = "9f2c4a61e0b7d8355a1e6c0f3b9d27a4c8e15f60b2d9a7c3e41f8b06d5a2c97e"
	hash = "sha256:4c1d0f7e5b2a9c8d3e6f1a0b7c2d9e8f5a4b3c2d1e0f9a8b7c6d5e4f3a2b1c0d"
)

func TestMask(t *testing.T) {
	for _, tc := range []struct{ in, want string }{
		{"[bootstrap-token] Using token: " + tok, "[bootstrap-token] Using token: abcdef." + Redacted},
		{"[bootstrap-token] Using tokens: [" + tok + " zyxwvu.0123456789zyxwvu]", "[bootstrap-token] Using tokens: [abcdef." + Redacted + " zyxwvu." + Redacted + "]"},
		{"kubeadm join 10.0.0.1:6443 --token " + tok + " \\", "kubeadm join 10.0.0.1:6443 --token abcdef." + Redacted + " \\"},
		{"\t--discovery-token-ca-cert-hash " + hash + " \\", "\t--discovery-token-ca-cert-hash " + hash + " \\"},
		{"\t--control-plane --certificate-key " + key, "\t--control-plane --certificate-key " + Redacted},
		{"--certificate-key=" + key, "--certificate-key=" + Redacted},
		{"[upload-certs] Using certificate key: " + key, "[upload-certs] Using certificate key: " + Redacted},
		{key, Redacted},
		{"  " + key + " ", "  " + Redacted + " "},
		{"certificateKey: " + key, "certificateKey: " + Redacted},
		{"  certificateKey: \"" + key + "\"", "  certificateKey: " + Redacted},
		{"+    token: anything-at-all", "+    token: " + Redacted},
		{"-  tlsBootstrapToken: x", "-  tlsBootstrapToken: " + Redacted},
		{"    client-key-data: LS0tLS1CRUdJTi...", "    client-key-data: " + Redacted},
		{"- token: " + tok, "- token: " + Redacted},
		{"a\n-----BEGIN EC PRIVATE KEY-----\nMHcCAQEE\n-----END EC PRIVATE KEY-----\nb", "a\n-----BEGIN EC PRIVATE KEY----- " + Redacted + " -----END EC PRIVATE KEY-----\nb"},
		// Not secrets.
		{"caCertHashes:", "caCertHashes:"},
		{"bootstrapToken:", "bootstrapToken:"},
		{"minted token abcdef for 10.0.0.1:6443", "minted token abcdef for 10.0.0.1:6443"},
		{"image sha256:" + key, "image sha256:" + key},
		{"[certs] Generating \"sa\" key and public key", "[certs] Generating \"sa\" key and public key"},
	} {
		if got := Mask(tc.in); got != tc.want {
			t.Errorf("Mask(%q)\n got %q\nwant %q", tc.in, got, tc.want)
		}
	}
}

func TestMaskerByValue(t *testing.T) {
	var m Masker
	m.Add("", "abc", "s3cr3t-password-value", "qwerty.0123456789qwerty")
	for _, tc := range []struct{ in, want string }{
		{"login with s3cr3t-password-value now", "login with " + Redacted + " now"},
		// The secret half of a known token alone, as kubeadm token list or a Secret shows it.
		{"token-secret 0123456789qwerty", "token-secret " + Redacted},
		{"abc stays", "abc stays"},
		{"--token " + tok, "--token abcdef." + Redacted},
	} {
		if got := m.Mask(tc.in); got != tc.want {
			t.Errorf("Mask(%q) = %q, want %q", tc.in, got, tc.want)
		}
	}
}

func TestLineMaskerHidesAKeyPrintedLineByLine(t *testing.T) {
	l := LineMasker{M: &Masker{}}
	var out []string
	for _, s := range strings.Split("before\n-----BEGIN RSA PRIVATE KEY-----\nMIIEpAIBAAKCAQEA\nAAAA\n-----END RSA PRIVATE KEY-----\nafter", "\n") {
		out = append(out, l.Line(s))
	}
	got := strings.Join(out, "|")
	if strings.Contains(got, "MIIE") || strings.Contains(got, "AAAA") || !strings.HasSuffix(got, "|after") || !strings.HasPrefix(got, "before|") {
		t.Fatalf("got %s", got)
	}
}

// FuzzMask: whatever surrounds a token or a certificate key, they do not survive Mask,
// and Mask is idempotent.
func FuzzMask(f *testing.F) {
	f.Add("[bootstrap-token] Using token: ", "\n")
	f.Add("token%3A", "&x=1")
	f.Add("--certificate-key=", "")
	f.Add("", "zzz")
	f.Fuzz(func(t *testing.T, prefix, suffix string) {
		for _, s := range []string{prefix + tok + suffix, prefix + "certificate key: " + key + suffix, prefix + "\n" + key + "\n" + suffix} {
			m := Mask(s)
			secretHalf := tok[7:]
			if strings.Contains(m, secretHalf) && !strings.Contains(prefix+suffix, secretHalf) && !strings.ContainsAny(prefix, ".") {
				t.Fatalf("Mask(%q) = %q keeps the token", s, m)
			}
			if strings.Contains(m, key) && !strings.Contains(prefix+suffix, key) && strings.Contains(s, "certificate key: "+key) {
				t.Fatalf("Mask(%q) = %q keeps the key", s, m)
			}
			if strings.Contains(m, "\n"+key+"\n") {
				t.Fatalf("Mask(%q) = %q keeps a key alone on its line", s, m)
			}
			if Mask(m) != m {
				t.Fatalf("Mask is not idempotent on %q: %q then %q", s, m, Mask(m))
			}
		}
	})
}

// BenchmarkMaskLine is the cost Emitter.Log adds to one line of kubeadm output.
func BenchmarkMaskLine(b *testing.B) {
	var m Masker
	m.Add(tok, key)
	line := "[control-plane-check] Checking kube-apiserver at https://10.250.0.10:6443/livez"
	for i := 0; i < b.N; i++ {
		m.Mask(line)
	}
}
