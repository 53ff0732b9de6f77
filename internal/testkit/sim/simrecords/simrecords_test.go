package simrecords_test

import (
	"errors"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"slices"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/deckhandhq/deckhand/internal/kubeadmconfig"
	"github.com/deckhandhq/deckhand/internal/testkit/sim/simrecords"
	"github.com/deckhandhq/deckhand/internal/testkit/testcluster"
	taskv1 "github.com/deckhandhq/deckhand/proto/deckhand/task/v1"
)

type host struct {
	t    *testing.T
	name string
	root string
}

func newHost(t *testing.T, name string) *host {
	root := testcluster.HostRoot(t, name)
	testcluster.InstallSim(t, root)
	testcluster.SimKubeadm(t, root)
	return &host{t: t, name: name, root: root}
}

// run runs a simulated tool of the host and returns its stdout and stderr.
func (h *host) run(tool string, args ...string) (string, string, error) {
	cmd := exec.Command(filepath.Join(h.root, "usr/bin", tool), args...)
	var stdout, stderr strings.Builder
	cmd.Stdout, cmd.Stderr = &stdout, &stderr
	err := cmd.Run()
	return stdout.String(), stderr.String(), err
}

func (h *host) must(tool string, args ...string) string {
	h.t.Helper()
	out, errOut, err := h.run(tool, args...)
	if err != nil {
		h.t.Fatalf("%s %v on %s: %v\n%s%s", tool, args, h.name, err, out, errOut)
	}
	return out
}

func (h *host) write(p string, data []byte) {
	h.t.Helper()
	full := filepath.Join(h.root, p)
	os.MkdirAll(filepath.Dir(full), 0o755)
	if err := os.WriteFile(full, data, 0o600); err != nil {
		h.t.Fatal(err)
	}
}

var (
	clusterSpec = &taskv1.ClusterSpec{KubernetesVersion: "v1.33.13", ControlPlaneEndpoint: "10.250.0.10:6443", PodSubnet: "10.244.0.0/16", ServiceSubnet: "10.96.0.0/12", CgroupDriver: "systemd"}
	tokenOut    = regexp.MustCompile(`--token ([a-z0-9]{6})\.[a-z0-9]{16}`)
	hashOut     = regexp.MustCompile(`sha256:[0-9a-f]{64}`)
	keyOut      = regexp.MustCompile(`(?m)^([0-9a-f]{64})$`)
)

func (h *host) init() {
	h.t.Helper()
	c, _ := kubeadmconfig.ParseCluster(clusterSpec)
	n, _ := kubeadmconfig.ParseNode(&taskv1.NodeSpec{Name: h.name, AdvertiseAddress: "10.250.0.10"})
	cfg, err := kubeadmconfig.InitConfig(c, n, false, "")
	if err != nil {
		h.t.Fatal(err)
	}
	h.write("/etc/kubeadm-init.yaml", cfg)
	h.must("kubeadm", "init", "--config", "/etc/kubeadm-init.yaml")
}

func (h *host) join(cp *host, controlPlane bool) {
	h.t.Helper()
	out := cp.must("kubeadm", kubeadmconfig.TokenCreateArgs(0)[1:]...)
	token := strings.TrimPrefix(tokenOut.FindString(out), "--token ")
	key := ""
	if controlPlane {
		key = keyOut.FindString(cp.must("kubeadm", kubeadmconfig.UploadCertsArgs("")[1:]...))
	}
	c, _ := kubeadmconfig.ParseCluster(clusterSpec)
	n, _ := kubeadmconfig.ParseNode(&taskv1.NodeSpec{Name: h.name})
	cfg, err := kubeadmconfig.JoinConfig(c, n, controlPlane, "", token, hashOut.FindString(out), key)
	if err != nil {
		h.t.Fatal(err)
	}
	h.write("/etc/kubeadm-join.yaml", cfg)
	h.must("kubeadm", "join", "--config", "/etc/kubeadm-join.yaml")
}

func read(t *testing.T, dir string) []simrecords.Record {
	t.Helper()
	recs, err := simrecords.Read(dir)
	if err != nil {
		t.Fatal(err)
	}
	return recs
}

func commands(recs []simrecords.Record) []string {
	var out []string
	for _, r := range recs {
		out = append(out, r.Command+" "+r.Subject)
	}
	return out
}

// The simulated kubeadm and kubectl record each effect, in order, and keep nodes, tokens
// and stacked etcd members as a real cluster would.
func TestSimulatedClusterRecordsWhatHappened(t *testing.T) {
	dir := t.TempDir()
	t.Setenv("DECKHAND_SIM_CLUSTER", dir)
	cp1, cp2, w1 := newHost(t, "cp-1"), newHost(t, "cp-2"), newHost(t, "w-1")
	if recs := read(t, dir); recs != nil {
		t.Fatalf("records before anything happened: %v", recs)
	}
	cp1.init()
	cp2.join(cp1, true)
	w1.join(cp1, false)

	recs := read(t, dir)
	got := commands(recs)
	var tokens []string
	for _, r := range recs {
		if r.Command == simrecords.TokenCreate {
			tokens = append(tokens, r.Subject)
		}
	}
	if len(tokens) != 2 {
		t.Fatalf("want two token-create records, got %q", got)
	}
	want := []string{"kubeadm-init cp-1", "token-create " + tokens[0], "upload-certs cp-1", "kubeadm-join cp-2", "token-create " + tokens[1], "kubeadm-join w-1"}
	if !slices.Equal(got, want) {
		t.Fatalf("records %q, want %q", got, want)
	}
	for i := 1; i < len(recs); i++ {
		if recs[i].Time.Before(recs[i-1].Time) {
			t.Fatalf("records out of time order: %v", recs)
		}
	}
	raw, _ := os.ReadFile(filepath.Join(dir, "records"))
	line := regexp.MustCompile(`^\d{4}-\d\d-\d\dT\d\d:\d\d:\d\d(\.\d+)?Z\t[a-z-]+\t[a-z0-9-]*$`)
	for _, l := range strings.Split(strings.TrimSuffix(string(raw), "\n"), "\n") {
		if !line.MatchString(l) {
			t.Fatalf("record line %q is not <RFC3339Nano UTC>\\t<command>\\t<subject>", l)
		}
	}
	if nodes, err := simrecords.Nodes(dir); err != nil || len(nodes) != 3 || nodes["cp-1"] != "control-plane" || nodes["cp-2"] != "control-plane" || nodes["w-1"] != "worker" {
		t.Fatalf("nodes: %v %v", nodes, err)
	}
	if members, err := simrecords.EtcdMembers(dir); err != nil || !slices.Equal(members, []string{"cp-1", "cp-2"}) {
		t.Fatalf("etcd members: %v %v", members, err)
	}
	if ids, err := simrecords.Tokens(dir); err != nil || !slices.Contains(ids, tokens[0]) || !slices.Contains(ids, tokens[1]) {
		t.Fatalf("tokens %v %v, want %v among them", ids, err, tokens)
	}
	cp1.must("kubeadm", kubeadmconfig.TokenDeleteArgs(tokens[0])[1:]...)
	if ids, _ := simrecords.Tokens(dir); slices.Contains(ids, tokens[0]) {
		t.Fatalf("token %s still exists after its deletion: %v", tokens[0], ids)
	}

	// Reset of a control plane: its etcd member leaves first (kubeadm's remove-etcd-member
	// phase), then the node is reset. A worker has no member to remove.
	cp2.must("kubeadm", "reset", "-f")
	w1.must("kubeadm", "reset", "-f")
	got = commands(read(t, dir))
	if want := []string{"token-delete " + tokens[0], "etcd-member-remove cp-2", "kubeadm-reset cp-2", "kubeadm-reset w-1"}; !slices.Equal(got[len(got)-4:], want) {
		t.Fatalf("records after the resets %q, want them to end with %q", got, want)
	}
	if members, _ := simrecords.EtcdMembers(dir); !slices.Equal(members, []string{"cp-1"}) {
		t.Fatalf("etcd members after resetting cp-2: %v", members)
	}
	// kubeadm reset leaves the Node objects; they go through the API.
	if nodes, _ := simrecords.Nodes(dir); len(nodes) != 3 {
		t.Fatalf("nodes after the resets: %v, want all three until deleted", nodes)
	}
	for _, n := range []string{"cp-2", "w-1"} {
		cp1.must("kubectl", "--kubeconfig", "/etc/kubernetes/admin.conf", "delete", "node", n, "--ignore-not-found")
	}
	if nodes, _ := simrecords.Nodes(dir); len(nodes) != 1 || nodes["cp-1"] != "control-plane" {
		t.Fatalf("nodes after the resets and deletes: %v", nodes)
	}
	// Resetting again finds no member to remove.
	cp2.must("kubeadm", "reset", "-f")
	if n := simrecords.Count(read(t, dir), simrecords.EtcdMemberRemove, "cp-2"); n != 1 {
		t.Fatalf("%d etcd member removals of cp-2, want 1", n)
	}
}

func TestSimulatedKubectl(t *testing.T) {
	dir := t.TempDir()
	t.Setenv("DECKHAND_SIM_CLUSTER", dir)
	cp1, w1 := newHost(t, "cp-1"), newHost(t, "w-1")
	const kc = "/etc/kubernetes/admin.conf"
	ready := `jsonpath={.status.conditions[?(@.type=="Ready")].status}`

	// No cluster yet: kubectl cannot reach the API server its kubeconfig names.
	cp1.write(kc, []byte("apiVersion: v1\nkind: Config\nclusters:\n- cluster:\n    server: https://10.250.0.10:6443\n  name: kubernetes\n"))
	if _, errOut, err := cp1.run("kubectl", "--kubeconfig", kc, "get", "node", "cp-1", "-o", ready); err == nil || !strings.Contains(errOut, "The connection to the server 10.250.0.10:6443 was refused - did you specify the right host or port?") {
		t.Fatalf("kubectl before init: %v %q", err, errOut)
	}
	os.Remove(filepath.Join(cp1.root, kc))
	cp1.init()
	w1.join(cp1, false)

	if _, errOut, err := w1.run("kubectl", "--kubeconfig", kc, "cordon", "cp-1"); err == nil || strings.TrimSpace(errOut) != "error: stat /etc/kubernetes/admin.conf: no such file or directory" {
		t.Fatalf("kubectl without the kubeconfig: %v %q", err, errOut)
	}
	for _, args := range [][]string{
		{"--kubeconfig", kc, "get", "nodes"},
		{"--kubeconfig", kc, "drain", "w-1", "--ignore-daemonsets", "--delete-emptydir-data", "--timeout=1m", "--disable-eviction"},
		{"--kubeconfig", kc, "delete", "node", "w-1"},
		{"cordon", "w-1"},
	} {
		if _, errOut, err := cp1.run("kubectl", args...); err == nil || errOut == "" {
			t.Fatalf("kubectl %v was not refused: %v", args, err)
		}
	}

	if out := cp1.must("kubectl", "--kubeconfig", kc, "get", "node", "w-1", "-o", ready); out != "True" {
		t.Fatalf("Ready of a joined worker: %q", out)
	}
	os.Remove(filepath.Join(w1.root, "var/lib/deckhand-sim/systemd/kubelet.active"))
	if out := cp1.must("kubectl", "--kubeconfig", kc, "get", "node", "w-1", "-o", ready); out != "False" {
		t.Fatalf("Ready with the kubelet stopped: %q", out)
	}
	if _, errOut, err := cp1.run("kubectl", "--kubeconfig", kc, "get", "node", "w-9", "-o", ready); err == nil || strings.TrimSpace(errOut) != `Error from server (NotFound): nodes "w-9" not found` {
		t.Fatalf("Ready of an unknown node: %v %q", err, errOut)
	}

	if out := cp1.must("kubectl", "--kubeconfig", kc, "cordon", "w-1"); out != "node/w-1 cordoned\n" {
		t.Fatalf("cordon: %q", out)
	}
	if out := cp1.must("kubectl", "--kubeconfig", kc, "cordon", "w-1"); out != "node/w-1 already cordoned\n" {
		t.Fatalf("second cordon: %q", out)
	}
	// Without --ignore-daemonsets kubectl refuses to drain.
	if _, errOut, err := cp1.run("kubectl", "--kubeconfig", kc, "drain", "w-1", "--delete-emptydir-data", "--timeout=1m"); err == nil || !strings.Contains(errOut, "cannot delete DaemonSet-managed Pods (use --ignore-daemonsets to ignore)") {
		t.Fatalf("drain without --ignore-daemonsets: %v %q", err, errOut)
	}
	out := cp1.must("kubectl", "--kubeconfig", kc, "drain", "w-1", "--ignore-daemonsets", "--delete-emptydir-data", "--timeout=1m")
	if out != "node/w-1 already cordoned\nevicting pod default/web-0\npod/web-0 evicted\nnode/w-1 drained\n" {
		t.Fatalf("drain output: %q", out)
	}
	if out := cp1.must("kubectl", "--kubeconfig", kc, "delete", "node", "w-1", "--ignore-not-found"); out != "node \"w-1\" deleted\n" {
		t.Fatalf("delete: %q", out)
	}
	if out := cp1.must("kubectl", "--kubeconfig", kc, "delete", "node", "w-1", "--ignore-not-found"); out != "" {
		t.Fatalf("delete of a deleted node: %q", out)
	}
	got := commands(read(t, dir))
	if want := []string{"kubectl-cordon w-1", "kubectl-drain w-1", "kubectl-delete-node w-1"}; !slices.Equal(got[len(got)-3:], want) {
		t.Fatalf("records %q, want them to end with %q", got, want)
	}
}

// Commands running at once each append whole lines.
func TestConcurrentRecordsDoNotInterleave(t *testing.T) {
	dir := t.TempDir()
	const n = 40
	var wg sync.WaitGroup
	for i := range n {
		wg.Add(1)
		go func() {
			defer wg.Done()
			if err := simrecords.Append(dir, simrecords.TokenCreate, fmt.Sprintf("tok%03d", i)); err != nil {
				t.Error(err)
			}
		}()
	}
	wg.Wait()
	recs := read(t, dir)
	if len(recs) != n {
		t.Fatalf("%d records, want %d", len(recs), n)
	}
	for i := range n {
		if c := simrecords.Count(recs, simrecords.TokenCreate, fmt.Sprintf("tok%03d", i)); c != 1 {
			t.Fatalf("token tok%03d recorded %d times", i, c)
		}
	}
	if err := simrecords.Append(dir, "bad\tcommand", "x"); err == nil {
		t.Fatal("a record with a tab was accepted")
	}
	os.WriteFile(filepath.Join(dir, "records"), []byte("2026-01-01T00:00:00Z\tkubeadm-init\n"), 0o644)
	if _, err := simrecords.Read(dir); err == nil || !strings.Contains(err.Error(), "line 1") {
		t.Fatalf("a malformed records file: %v", err)
	}
}

// joinConfig is a JoinConfiguration for h as Deckhand writes it.
func (h *host) joinConfig(controlPlane bool, endpoint, token, hash, key string) []byte {
	h.t.Helper()
	c, _ := kubeadmconfig.ParseCluster(&taskv1.ClusterSpec{KubernetesVersion: clusterSpec.KubernetesVersion, ControlPlaneEndpoint: endpoint,
		PodSubnet: clusterSpec.PodSubnet, ServiceSubnet: clusterSpec.ServiceSubnet, CgroupDriver: clusterSpec.CgroupDriver})
	n, _ := kubeadmconfig.ParseNode(&taskv1.NodeSpec{Name: h.name})
	cfg, err := kubeadmconfig.JoinConfig(c, n, controlPlane, "", token, hash, key)
	if err != nil {
		h.t.Fatal(err)
	}
	return cfg
}

func exitCode(err error) int {
	var exit *exec.ExitError
	if errors.As(err, &exit) {
		return exit.ExitCode()
	}
	if err != nil {
		return -1
	}
	return 0
}

const stackTrace = "To see the stack trace of this error execute with --v=5 or higher\n"

// A join fails where kubeadm v1.33.13 fails, with its text and exit code: discovery checks
// the endpoint, the token and the CA pin; a control-plane join the certificate key. What
// kubeadm retries (an endpoint that does not answer, a token the cluster does not sign)
// fails only after the discovery timeout; the rest at once. A failed join changes nothing.
func TestSimulatedJoinFailsAsKubeadmDoes(t *testing.T) {
	dir := t.TempDir()
	t.Setenv("DECKHAND_SIM_CLUSTER", dir)
	cp1, w1, cp2 := newHost(t, "cp-1"), newHost(t, "w-1"), newHost(t, "cp-2")
	cp1.init()
	out := cp1.must("kubeadm", kubeadmconfig.TokenCreateArgs(0)[1:]...)
	token, hash := strings.TrimPrefix(tokenOut.FindString(out), "--token "), hashOut.FindString(out)
	id := token[:6]
	key := keyOut.FindString(cp1.must("kubeadm", kubeadmconfig.UploadCertsArgs("")[1:]...))
	deleted := strings.TrimPrefix(tokenOut.FindString(cp1.must("kubeadm", kubeadmconfig.TokenCreateArgs(0)[1:]...)), "--token ")
	cp1.must("kubeadm", kubeadmconfig.TokenDeleteArgs(deleted)[1:]...)
	// A token past its expiry, as the simulation keeps it.
	const expired = "exp123.0123456789abcdef"
	os.WriteFile(filepath.Join(dir, simrecords.TokensDir, "exp123"), []byte(expired+" 2020-01-01T00:00:00Z"), 0o600)
	const endpoint = "10.250.0.10:6443"
	otherHash := "sha256:" + strings.Repeat("0", 64)
	otherKey := strings.Repeat("ab", 32)
	if len(token) != 23 || hash == "" || len(key) != 64 {
		t.Fatalf("token %q, hash %q, key %q from the simulated kubeadm", token, hash, key)
	}

	discovery := func(msg string) string {
		return "error execution phase preflight: couldn't validate the identity of the API Server: " + msg + "\n" + stackTrace
	}
	const slow, fast = 300 * time.Millisecond, time.Minute
	for _, c := range []struct {
		name string
		h    *host
		cfg  []byte
		// timeout is the discovery timeout: a failure that kubeadm retries must take it
		// all, one it does not retry must not wait for it.
		timeout time.Duration
		// cutOff sets the unreachable knob, listing unreachable (all endpoints if empty).
		cutOff      bool
		unreachable string
		leftover    string // a file left on the node
		code        int
		stderr      string
	}{{
		name: "wrong CA hash", h: w1, cfg: w1.joinConfig(false, endpoint, token, otherHash, ""), timeout: fast, code: 1,
		stderr: discovery(`cluster CA found in cluster-info ConfigMap is invalid: none of the public keys "` + hash + `" are pinned`),
	}, {
		name: "deleted token", h: w1, cfg: w1.joinConfig(false, endpoint, deleted, hash, ""), timeout: slow, code: 1,
		stderr: discovery(`could not find a JWS signature in the cluster-info ConfigMap for token ID "` + deleted[:6] + `"`),
	}, {
		name: "expired token", h: w1, cfg: w1.joinConfig(false, endpoint, expired, hash, ""), timeout: slow, code: 1,
		stderr: discovery(`could not find a JWS signature in the cluster-info ConfigMap for token ID "exp123"`),
	}, {
		name: "wrong token secret", h: w1, cfg: w1.joinConfig(false, endpoint, id+".zzzzzzzzzzzzzzzz", hash, ""), timeout: fast, code: 1,
		stderr: discovery("failed to verify JWS signature of received cluster info object, can't trust this API Server"),
	}, {
		name: "unreachable endpoint", h: w1, cfg: w1.joinConfig(false, endpoint, token, hash, ""), timeout: slow, cutOff: true, code: 1,
		stderr: discovery(`failed to request the cluster-info ConfigMap: Get "https://10.250.0.10:6443/api/v1/namespaces/kube-public/configmaps/cluster-info?timeout=10s": dial tcp 10.250.0.10:6443: connect: no route to host`),
	}, {
		name: "endpoint listed unreachable", h: w1, cfg: w1.joinConfig(false, endpoint, token, hash, ""), timeout: slow, cutOff: true, unreachable: "10.250.0.99:6443\n" + endpoint + "\n", code: 1,
		stderr: discovery(`failed to request the cluster-info ConfigMap: Get "https://10.250.0.10:6443/api/v1/namespaces/kube-public/configmaps/cluster-info?timeout=10s": dial tcp 10.250.0.10:6443: connect: no route to host`),
	}, {
		name: "endpoint with no API server", h: w1, cfg: w1.joinConfig(false, "10.250.0.99:6443", token, hash, ""), timeout: slow, code: 1,
		stderr: discovery(`failed to request the cluster-info ConfigMap: Get "https://10.250.0.99:6443/api/v1/namespaces/kube-public/configmaps/cluster-info?timeout=10s": dial tcp 10.250.0.99:6443: connect: connection refused`),
	}, {
		name: "wrong certificate key", h: cp2, cfg: cp2.joinConfig(true, endpoint, token, hash, otherKey), timeout: fast, code: 1,
		stderr: "error execution phase control-plane-prepare/download-certs: error downloading certs: error decoding secret data with provided key: cipher: message authentication failed\n" + stackTrace,
	}, {
		name: "a worker's leftover CA", h: w1, cfg: w1.joinConfig(false, endpoint, token, hash, ""), timeout: fast, leftover: "/etc/kubernetes/pki/ca.crt", code: 1,
		stderr: "error execution phase preflight: [preflight] Some fatal errors occurred:\n\t[ERROR FileAvailable--etc-kubernetes-pki-ca.crt]: /etc/kubernetes/pki/ca.crt already exists\n[preflight] If you know what you are doing, you can make a check non-fatal with `--ignore-preflight-errors=...`\n" + stackTrace,
	}, {
		name: "no CA pin", h: w1, timeout: fast, code: 3,
		cfg:    []byte("apiVersion: kubeadm.k8s.io/v1beta4\nkind: JoinConfiguration\ndiscovery:\n  bootstrapToken:\n    apiServerEndpoint: " + endpoint + "\n    token: " + token + "\nnodeRegistration:\n  name: w-1\n"),
		stderr: `discovery.bootstrapToken.caCertHashes: Invalid value: "": using token-based discovery without caCertHashes can be unsafe. Set unsafeSkipCAVerification as true in your kubeadm config file or pass --discovery-token-unsafe-skip-ca-verification flag to continue` + "\n" + stackTrace,
	}} {
		t.Run(c.name, func(t *testing.T) {
			knobs := filepath.Join(c.h.root, "var/lib/deckhand-sim")
			c.h.write("/var/lib/deckhand-sim/kubeadm-discovery-timeout", []byte(c.timeout.String()))
			if c.cutOff {
				c.h.write("/var/lib/deckhand-sim/unreachable", []byte(c.unreachable))
				defer os.Remove(filepath.Join(knobs, "unreachable"))
			}
			if c.leftover != "" {
				c.h.write(c.leftover, []byte("x"))
				defer os.Remove(filepath.Join(c.h.root, c.leftover))
			}
			c.h.write("/etc/kubeadm-join.yaml", c.cfg)
			start := time.Now()
			stdout, stderr, err := c.h.run("kubeadm", "join", "--config", "/etc/kubeadm-join.yaml")
			took := time.Since(start)
			if exitCode(err) != c.code || stderr != c.stderr {
				t.Fatalf("exit code %d (want %d), stderr:\n%q\nwant:\n%q\nstdout:\n%s", exitCode(err), c.code, stderr, c.stderr, stdout)
			}
			if c.timeout == slow && took < slow {
				t.Fatalf("failed after %v, before the discovery timeout %v", took, slow)
			}
			if c.timeout == fast && took > fast/2 {
				t.Fatalf("failed after %v: it waited for the discovery timeout", took)
			}
			if exists(c.h.root, "etc/kubernetes/kubelet.conf") || simrecords.Count(read(t, dir), simrecords.KubeadmJoin, c.h.name) != 0 {
				t.Fatal("the failed join changed the node or the cluster")
			}
		})
	}

	// The same hosts join with what the control plane minted, also through an endpoint that
	// the unreachable knob does not list.
	w1.write("/var/lib/deckhand-sim/unreachable", []byte("10.250.0.99:6443\n"))
	w1.write("/etc/kubeadm-join.yaml", w1.joinConfig(false, endpoint, token, hash, ""))
	w1.must("kubeadm", "join", "--config", "/etc/kubeadm-join.yaml")
	cp2.write("/etc/kubeadm-join.yaml", cp2.joinConfig(true, endpoint, token, hash, key))
	cp2.must("kubeadm", "join", "--config", "/etc/kubeadm-join.yaml")
	if nodes, _ := simrecords.Nodes(dir); len(nodes) != 3 {
		t.Fatalf("nodes after the joins: %v", nodes)
	}
}

func exists(root, p string) bool {
	_, err := os.Stat(filepath.Join(root, p))
	return err == nil
}

// kubeadm reset on a control plane whose Node object is already deleted cannot read this
// node's registration: like kubeadm v1.33.13 it warns and leaves the etcd member in the
// cluster. Once no control plane runs, the endpoint answers no join.
func TestSimulatedResetOfDeletedNodeKeepsItsEtcdMember(t *testing.T) {
	dir := t.TempDir()
	t.Setenv("DECKHAND_SIM_CLUSTER", dir)
	cp1, cp2, w1 := newHost(t, "cp-1"), newHost(t, "cp-2"), newHost(t, "w-1")
	cp1.init()
	cp2.join(cp1, true)
	cp1.must("kubectl", "--kubeconfig", "/etc/kubernetes/admin.conf", "delete", "node", "cp-2", "--ignore-not-found")
	stdout, stderr, err := cp2.run("kubeadm", "reset", "-f")
	warning := regexp.MustCompile(`(?m)^W\d{4} \d\d:\d\d:\d\d\.\d{6} +\d+ reset\.go:141\] \[reset\] Unable to fetch the kubeadm-config ConfigMap from cluster: failed to get node registration: failed to get corresponding node: nodes "cp-2" not found$`)
	if err != nil || !warning.MatchString(stderr) || !strings.Contains(stdout, "[reset] Deleted contents of the etcd data directory: /var/lib/etcd") {
		t.Fatalf("reset of a control plane without its Node: %v\nstdout:\n%s\nstderr:\n%s", err, stdout, stderr)
	}
	if members, _ := simrecords.EtcdMembers(dir); !slices.Equal(members, []string{"cp-1", "cp-2"}) {
		t.Fatalf("etcd members after resetting cp-2 without its Node: %v, want cp-2's member left behind", members)
	}
	if n := simrecords.Count(read(t, dir), simrecords.EtcdMemberRemove, "cp-2"); n != 0 {
		t.Fatalf("%d etcd member removals of cp-2 recorded", n)
	}

	// The last control plane goes: nothing answers at the endpoint any more.
	out := cp1.must("kubeadm", kubeadmconfig.TokenCreateArgs(0)[1:]...)
	token, hash := strings.TrimPrefix(tokenOut.FindString(out), "--token "), hashOut.FindString(out)
	cp1.must("kubeadm", "reset", "-f")
	w1.write("/var/lib/deckhand-sim/kubeadm-discovery-timeout", []byte("100ms"))
	w1.write("/etc/kubeadm-join.yaml", w1.joinConfig(false, "10.250.0.10:6443", token, hash, ""))
	_, stderr, err = w1.run("kubeadm", "join", "--config", "/etc/kubeadm-join.yaml")
	if exitCode(err) != 1 || !strings.Contains(stderr, "dial tcp 10.250.0.10:6443: connect: connection refused") {
		t.Fatalf("join with no control plane left: %v\n%s", err, stderr)
	}
}
