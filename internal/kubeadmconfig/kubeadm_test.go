package kubeadmconfig

import (
	"bytes"
	"context"
	"crypto/ecdsa"
	"crypto/elliptic"
	"crypto/rand"
	"crypto/sha256"
	"crypto/x509"
	"crypto/x509/pkix"
	"encoding/base64"
	"encoding/hex"
	"encoding/pem"
	"math/big"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"runtime"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/deckhandhq/deckhand/internal/kubeimages"
	taskv1 "github.com/deckhandhq/deckhand/proto/deckhand/task/v1"
)

// realKubeadm builds (or finds in the cache) the real kubeadm with scripts/kubeadm.sh and
// returns its path. A failed build fails the test: the check must not silently vanish.
func realKubeadm(t *testing.T) string {
	t.Helper()
	_, file, _, ok := runtime.Caller(0)
	if !ok {
		t.Fatal("cannot locate the test file")
	}
	root := filepath.Join(filepath.Dir(file), "..", "..")
	// The first build takes minutes; stop it in time to report why, before go test's
	// -timeout kills the whole binary.
	deadline := time.Now().Add(25 * time.Minute)
	if d, ok := t.Deadline(); ok {
		deadline = d.Add(-30 * time.Second)
	}
	ctx, cancel := context.WithDeadline(t.Context(), deadline)
	defer cancel()
	cmd := exec.CommandContext(ctx, filepath.Join(root, "scripts", "kubeadm.sh"))
	cmd.Dir = root
	var stdout, stderr bytes.Buffer
	cmd.Stdout, cmd.Stderr = &stdout, &stderr
	start := time.Now()
	if err := cmd.Run(); err != nil {
		t.Fatalf("scripts/kubeadm.sh failed after %s: %v\n%s", time.Since(start).Round(time.Second), err, tail(stderr.String(), 40))
	}
	lines := strings.Split(strings.TrimSpace(stdout.String()), "\n")
	path := lines[len(lines)-1]
	if !filepath.IsAbs(path) {
		t.Fatalf("scripts/kubeadm.sh printed %q as its last line, want the binary's path", path)
	}
	t.Logf("real kubeadm %s (scripts/kubeadm.sh took %s)", path, time.Since(start).Round(time.Millisecond))
	return path
}

func tail(s string, n int) string {
	lines := strings.Split(strings.TrimRight(s, "\n"), "\n")
	if len(lines) > n {
		lines = lines[len(lines)-n:]
	}
	return strings.Join(lines, "\n")
}

// kubeadmRun runs the real kubeadm offline-safe: dry-run files go to a temp dir.
func kubeadmRun(t *testing.T, kubeadm string, args ...string) (stdout, stderr string, err error) {
	t.Helper()
	ctx, cancel := context.WithTimeout(t.Context(), 2*time.Minute)
	defer cancel()
	cmd := exec.CommandContext(ctx, kubeadm, args...)
	cmd.Env = append(os.Environ(), "KUBEADM_INIT_DRYRUN_DIR="+t.TempDir())
	var o, e bytes.Buffer
	cmd.Stdout, cmd.Stderr = &o, &e
	err = cmd.Run()
	return o.String(), e.String(), err
}

func TestRealKubeadmAcceptsGeneratedConfigs(t *testing.T) {
	kubeadm := realKubeadm(t)
	dir := t.TempDir()

	for _, tc := range configCases() {
		t.Run("config/"+tc.name, func(t *testing.T) {
			c, out := tc.render(t)
			f := filepath.Join(dir, tc.name+".yaml")
			if err := os.WriteFile(f, out, 0o600); err != nil {
				t.Fatal(err)
			}
			stdout, stderr, err := kubeadmRun(t, kubeadm, "config", "validate", "--config", f)
			if err != nil || strings.TrimSpace(stdout) != "ok" {
				t.Fatalf("kubeadm config validate rejected %s: %v\nstdout: %s\nstderr: %s\nconfig:\n%s", tc.name, err, stdout, stderr, out)
			}
			// A warning means kubeadm rewrote or deprecated something we wrote.
			if stderr != "" {
				t.Fatalf("kubeadm config validate warned about %s:\n%s", tc.name, stderr)
			}
			t.Logf("kubeadm config validate --config %s.yaml: %s", tc.name, strings.TrimSpace(stdout))
			if !tc.init {
				return
			}
			stdout, stderr, err = kubeadmRun(t, kubeadm, "config", "images", "list", "--config", f)
			if err != nil {
				t.Fatalf("kubeadm config images list: %v\n%s", err, stderr)
			}
			want, err := kubeimages.ControlPlaneImages(c.KubernetesVersion, c.Registry.ImageRepository)
			if err != nil {
				t.Fatal(err)
			}
			got := strings.Split(strings.TrimSpace(stdout), "\n")
			for i := range max(len(got), len(want)) {
				var g, w string
				if i < len(got) {
					g = got[i]
				}
				if i < len(want) {
					w = want[i]
				}
				if g != w {
					t.Errorf("image %d: kubeadm lists %q, kubeimages.ControlPlaneImages has %q", i, g, w)
				}
			}
		})
	}

	// The check can fail: v1beta3's map form of kubeletExtraArgs is rejected by v1beta4.
	t.Run("config/negative control", func(t *testing.T) {
		i := slices.IndexFunc(configCases(), func(c configCase) bool { return c.name == "init_labels_taints" })
		_, out := configCases()[i].render(t)
		bad := regexp.MustCompile(`(?m)^  kubeletExtraArgs:\n  - name: node-ip\n    value: (.*)\n  - name: node-labels\n    value: (.*)$`).ReplaceAllString(string(out), "  kubeletExtraArgs:\n    node-ip: $1\n    node-labels: $2")
		if bad == string(out) {
			t.Fatal("negative control: nothing replaced")
		}
		f := filepath.Join(dir, "bad.yaml")
		if err := os.WriteFile(f, []byte(bad), 0o600); err != nil {
			t.Fatal(err)
		}
		if stdout, _, err := kubeadmRun(t, kubeadm, "config", "validate", "--config", f); err == nil {
			t.Fatalf("kubeadm config validate accepted the v1beta3 map form: %s", stdout)
		}
	})

	// Every argv: the real kubeadm knows the command and its flags (with --help it parses
	// them, then prints help and exits 0) and, where --config is given, allows the other
	// flags beside it (a missing file then fails on reading, not on `can not mix`).
	for _, tc := range argvCases() {
		t.Run("argv/"+tc.name, func(t *testing.T) {
			args := slices.Clone(tc.argv[1:])
			end := slices.Index(args, "--")
			if end < 0 {
				end = len(args)
			}
			help := slices.Insert(slices.Clone(args), end, "--help")
			if _, stderr, err := kubeadmRun(t, kubeadm, help...); err != nil {
				t.Fatalf("kubeadm %s: %v\n%s", strings.Join(help, " "), err, stderr)
			}
			if i := slices.Index(args, "--config"); i >= 0 {
				args[i+1] = filepath.Join(dir, "missing", "config.yaml")
				_, stderr, err := kubeadmRun(t, kubeadm, args...)
				if err == nil || !strings.Contains(stderr, "unable to read config from") {
					t.Fatalf("kubeadm %s: %v, want it to fail reading the config file; stderr:\n%s", strings.Join(args, " "), err, stderr)
				}
			}
		})
	}

	// token create and delete in dry-run against a kubeconfig with a CA and no server:
	// the TTL is honoured, the join command has the shape the kubeadm task parses, and its
	// token and CA pin make a JoinConfiguration the real kubeadm accepts.
	t.Run("argv/token dry-run", func(t *testing.T) {
		kc, caHash := testKubeconfig(t, dir)
		args := slices.Insert(TokenCreateArgs(time.Hour)[1:], 2, "--kubeconfig", kc, "--dry-run")
		before := time.Now()
		stdout, stderr, err := kubeadmRun(t, kubeadm, args...)
		if err != nil {
			t.Fatalf("kubeadm %s: %v\n%s", strings.Join(args, " "), err, stderr)
		}
		m := regexp.MustCompile(`(?m)^\s+expiration: (\S+)$`).FindStringSubmatch(stdout)
		if m == nil {
			t.Fatalf("no expiration in the dry-run Secret:\n%s", stdout)
		}
		raw, err := base64.StdEncoding.DecodeString(m[1])
		if err != nil {
			t.Fatal(err)
		}
		exp, err := time.Parse(time.RFC3339, string(raw))
		if err != nil {
			t.Fatal(err)
		}
		if d := exp.Sub(before); d < time.Hour-time.Minute || d > time.Hour+time.Minute {
			t.Errorf("token expires in %s, want 1h", d)
		}
		lines := strings.Split(strings.TrimRight(stdout, "\n"), "\n")
		join := lines[len(lines)-1]
		jm := regexp.MustCompile(`^kubeadm join (127\.0\.0\.1:1) --token ([a-z0-9]{6}\.[a-z0-9]{16}) --discovery-token-ca-cert-hash (sha256:[0-9a-f]{64}) $`).FindStringSubmatch(join)
		if jm == nil {
			t.Fatalf("join command %q does not have kubeadm's shape", join)
		}
		if jm[3] != caHash {
			t.Errorf("join command pins %s, want the CA's %s", jm[3], caHash)
		}
		c, err := ParseCluster(&taskv1.ClusterSpec{KubernetesVersion: "v1.33.13"})
		if err != nil {
			t.Fatal(err)
		}
		n, err := ParseNode(&taskv1.NodeSpec{Name: "worker-2"})
		if err != nil {
			t.Fatal(err)
		}
		out, err := JoinConfig(c, n, false, jm[1], jm[2], jm[3], "")
		if err != nil {
			t.Fatalf("JoinConfig from the printed join command: %v", err)
		}
		f := filepath.Join(dir, "join-from-token.yaml")
		if err := os.WriteFile(f, out, 0o600); err != nil {
			t.Fatal(err)
		}
		if stdout, stderr, err := kubeadmRun(t, kubeadm, "config", "validate", "--config", f); err != nil || stderr != "" {
			t.Fatalf("kubeadm config validate: %v\n%s%s", err, stdout, stderr)
		}

		id := strings.SplitN(jm[2], ".", 2)[0]
		args = slices.Insert(TokenDeleteArgs(id)[1:], 2, "--kubeconfig", kc, "--dry-run")
		stdout, stderr, err = kubeadmRun(t, kubeadm, args...)
		if err != nil || !strings.Contains(stdout, `bootstrap token "`+id+`" deleted`) {
			t.Fatalf("kubeadm %s: %v\n%s%s", strings.Join(args, " "), err, stdout, stderr)
		}
		// "--" keeps an ID that looks like a flag from being read as one.
		args = slices.Insert(TokenDeleteArgs("--help")[1:], 2, "--kubeconfig", kc, "--dry-run")
		if stdout, stderr, err := kubeadmRun(t, kubeadm, args...); err == nil || !strings.Contains(stderr, "didn't match pattern") {
			t.Fatalf("kubeadm %s: %v, want a rejected token\n%s%s", strings.Join(args, " "), err, stdout, stderr)
		}
	})
}

// testKubeconfig writes a kubeconfig whose cluster has a fresh CA and a server nobody
// listens on, and returns its path and the CA's sha256 pin.
func testKubeconfig(t *testing.T, dir string) (path, caHash string) {
	t.Helper()
	key, err := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	if err != nil {
		t.Fatal(err)
	}
	tmpl := &x509.Certificate{
		SerialNumber:          big.NewInt(1),
		Subject:               pkix.Name{CommonName: "kubernetes"},
		NotBefore:             time.Now().Add(-time.Hour),
		NotAfter:              time.Now().Add(time.Hour),
		IsCA:                  true,
		BasicConstraintsValid: true,
		KeyUsage:              x509.KeyUsageCertSign,
	}
	der, err := x509.CreateCertificate(rand.Reader, tmpl, tmpl, &key.PublicKey, key)
	if err != nil {
		t.Fatal(err)
	}
	cert, err := x509.ParseCertificate(der)
	if err != nil {
		t.Fatal(err)
	}
	sum := sha256.Sum256(cert.RawSubjectPublicKeyInfo)
	caPEM := pem.EncodeToMemory(&pem.Block{Type: "CERTIFICATE", Bytes: der})
	kc := `apiVersion: v1
kind: Config
clusters:
- name: test
  cluster:
    server: https://127.0.0.1:1
    certificate-authority-data: ` + base64.StdEncoding.EncodeToString(caPEM) + `
contexts:
- name: test
  context: {cluster: test, user: test}
current-context: test
users:
- name: test
  user: {token: test}
`
	path = filepath.Join(dir, "admin.conf")
	if err := os.WriteFile(path, []byte(kc), 0o600); err != nil {
		t.Fatal(err)
	}
	return path, "sha256:" + hex.EncodeToString(sum[:])
}

// The settings users add do what they say in the real kubeadm's own phases (certificates
// in a temporary directory, the rest in dry-run): the API server's certificate carries the
// extra names, every patch file is applied to its target, the kubelet gets the node's
// address, labels and extra flags (the node's over the cluster's), and a node with no
// taints is not given the control-plane taint, which a default one is.
func TestRealKubeadmAppliesSettings(t *testing.T) {
	kubeadm := realKubeadm(t)
	dir := t.TempDir()
	cases := map[string]configCase{}
	for _, tc := range configCases() {
		cases[tc.name] = tc
	}
	c, out := cases["init_settings"].render(t)
	patchDir := filepath.Join(dir, "patches")
	if err := os.MkdirAll(patchDir, 0o700); err != nil {
		t.Fatal(err)
	}
	files := PatchFiles(c)
	if len(files) != 3 {
		t.Fatalf("PatchFiles = %d files, want 3", len(files))
	}
	for _, f := range files {
		if err := os.WriteFile(filepath.Join(patchDir, f.Name), f.Data, 0o600); err != nil {
			t.Fatal(err)
		}
	}
	pki := filepath.Join(dir, "pki")
	cfg := strings.Replace(string(out), PatchesDir, patchDir, 1)
	cfg = strings.Replace(cfg, "kind: ClusterConfiguration\n", "kind: ClusterConfiguration\ncertificatesDir: "+pki+"\n", 1)
	f := filepath.Join(dir, "init.yaml")
	if err := os.WriteFile(f, []byte(cfg), 0o600); err != nil {
		t.Fatal(err)
	}
	dry := t.TempDir()
	phase := func(args ...string) string {
		t.Helper()
		cmd := exec.CommandContext(t.Context(), kubeadm, append(append([]string{"init", "phase"}, args...), "--config", f)...)
		cmd.Env = append(os.Environ(), "KUBEADM_INIT_DRYRUN_DIR="+dry)
		b, err := cmd.CombinedOutput()
		if err != nil {
			t.Fatalf("kubeadm init phase %s: %v\n%s", strings.Join(args, " "), err, b)
		}
		return string(b)
	}

	phase("certs", "ca")
	phase("certs", "apiserver")
	pemBytes, err := os.ReadFile(filepath.Join(pki, "apiserver.crt"))
	if err != nil {
		t.Fatal(err)
	}
	blk, _ := pem.Decode(pemBytes)
	cert, err := x509.ParseCertificate(blk.Bytes)
	if err != nil {
		t.Fatal(err)
	}
	var ips []string
	for _, ip := range cert.IPAddresses {
		ips = append(ips, ip.String())
	}
	for _, want := range []string{"api.lab.example", "*.lab.example"} {
		if !slices.Contains(cert.DNSNames, want) {
			t.Errorf("API server certificate names %v, want %s", cert.DNSNames, want)
		}
	}
	for _, want := range []string{"192.0.2.10", "fd00::10", "10.250.0.11"} {
		if !slices.Contains(ips, want) {
			t.Errorf("API server certificate IPs %v, want %s", ips, want)
		}
	}

	for target, args := range map[string][]string{
		"kube-apiserver":       {"control-plane", "apiserver", "--dry-run"},
		"etcd":                 {"etcd", "local", "--dry-run"},
		"kubeletconfiguration": {"kubelet-start", "--dry-run"},
	} {
		if got := phase(args...); !regexp.MustCompile(`\[patches\] Applied patch of type "[^"]+" to target "` + target + `"`).MatchString(got) {
			t.Errorf("kubeadm init phase %s did not apply the %s patch:\n%s", strings.Join(args, " "), target, got)
		}
	}
	for file, want := range map[string]string{
		"kube-apiserver.yaml": `example.com/patched: "yes"`,
		"etcd.yaml":           `example.com/patched: "yes"`,
		"config.yaml":         "maxPods: 150",
		"kubeadm-flags.env":   "--node-ip=10.250.0.11 --node-labels=example.com/rack=r1 --max-pods=150 --v=4\"",
	} {
		b, err := os.ReadFile(filepath.Join(dry, file))
		if err != nil || !strings.Contains(string(b), want) {
			t.Errorf("%s (%v) lacks %q:\n%s", file, err, want, b)
		}
	}
	if b, _ := os.ReadFile(filepath.Join(dry, "config.yaml")); !strings.Contains(string(b), "serializeImagePulls: false") {
		t.Errorf("config.yaml lacks the merge patch's serializeImagePulls: false:\n%s", b)
	}

	// taints: [] leaves the control plane without kubeadm's taint; absent taints do not.
	kc, _ := testKubeconfig(t, dir)
	kcData, err := os.ReadFile(kc)
	if err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(filepath.Join(dry, "admin.conf"), kcData, 0o600); err != nil {
		t.Fatal(err)
	}
	if got := phase("mark-control-plane", "--dry-run"); !strings.Contains(got, "by adding the labels") || strings.Contains(got, "taints") {
		t.Errorf("mark-control-plane with taints: []:\n%s\nwant labels and no taints", got)
	}
	_, def := cases["init_upload_certs"].render(t)
	if err := os.WriteFile(f, def, 0o600); err != nil {
		t.Fatal(err)
	}
	if got := phase("mark-control-plane", "--dry-run"); !strings.Contains(got, "node-role.kubernetes.io/control-plane:NoSchedule") {
		t.Errorf("mark-control-plane without taints:\n%s\nwant kubeadm's control-plane taint (the negative control)", got)
	}
}
