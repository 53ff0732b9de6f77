package kubeadm_test

import (
	"archive/tar"
	"bytes"
	"compress/gzip"
	"context"
	"fmt"
	"io"
	"log/slog"
	"maps"
	"os"
	"os/exec"
	"path/filepath"
	"runtime"
	"slices"
	"strings"
	"testing"
	"time"

	"google.golang.org/protobuf/types/known/durationpb"

	"github.com/deckhandhq/deckhand/agent/kubeadm"
	"github.com/deckhandhq/deckhand/agent/tasks"
	"github.com/deckhandhq/deckhand/internal/testkit/sim/simrecords"
	"github.com/deckhandhq/deckhand/internal/testkit/testcluster"
	taskv1 "github.com/deckhandhq/deckhand/proto/deckhand/task/v1"
)

// realKubeadm is the real kubeadm the simulation validates every config with.
func realKubeadm(t *testing.T) string {
	t.Helper()
	_, file, _, _ := runtime.Caller(0)
	out, err := exec.Command(filepath.Join(filepath.Dir(file), "..", "..", "scripts", "kubeadm.sh")).Output()
	if err != nil {
		t.Fatalf("scripts/kubeadm.sh: %v", err)
	}
	lines := strings.Split(strings.TrimSpace(string(out)), "\n")
	return lines[len(lines)-1]
}

type node struct {
	name, root string
	r          *tasks.Runner
}

func newNode(t *testing.T, name string) *node {
	root := testcluster.HostRoot(t, name)
	testcluster.InstallSim(t, root)
	testcluster.SimKubeadm(t, root)
	r, err := tasks.NewRunner(t.TempDir(), root, map[string]tasks.Handler{
		"kubeadm_init": kubeadm.Init, "kubeadm_token": kubeadm.Token, "kubeadm_join": kubeadm.Join, "kubeadm_reset": kubeadm.Reset,
		"kubeadm_upgrade": kubeadm.Upgrade,
	}, slog.New(slog.NewTextHandler(io.Discard, nil)))
	if err != nil {
		t.Fatal(err)
	}
	return &node{name: name, root: root, r: r}
}

func (n *node) run(t *testing.T, id string, spec *taskv1.TaskSpec) (*taskv1.TaskResult, []string) {
	t.Helper()
	return n.start(t, &taskv1.Task{Id: id, Node: n.name, Spec: spec})
}

// runDry runs a task, as a dry-run or not, and returns its result.
func (n *node) runDry(t *testing.T, id string, spec *taskv1.TaskSpec, dry bool) *taskv1.TaskResult {
	t.Helper()
	res, _ := n.start(t, &taskv1.Task{Id: id, Node: n.name, Spec: spec, DryRun: dry})
	return res
}

func (n *node) start(t *testing.T, task *taskv1.Task) (*taskv1.TaskResult, []string) {
	t.Helper()
	var logs []string
	done := make(chan *taskv1.TaskResult, 1)
	n.r.Start(context.Background(), task, func(ev *taskv1.TaskEvent) {
		if l := ev.GetLog(); l != nil {
			logs = append(logs, l.GetText())
		}
	}, func(res *taskv1.TaskResult) { done <- res })
	select {
	case res := <-done:
		return res, logs
	case <-time.After(60 * time.Second):
		t.Fatal("task did not finish")
	}
	return nil, nil
}

func cluster() *taskv1.ClusterSpec {
	return &taskv1.ClusterSpec{KubernetesVersion: "v1.33.13", ControlPlaneEndpoint: "10.250.0.10:6443", PodSubnet: "10.244.0.0/16", ServiceSubnet: "10.96.0.0/12", CgroupDriver: "systemd"}
}

func TestInitTokenJoinReset(t *testing.T) {
	t.Setenv("DECKHAND_SIM_CLUSTER", t.TempDir())
	t.Setenv("DECKHAND_SIM_REAL_KUBEADM", realKubeadm(t))
	cp1, cp2, w1 := newNode(t, "cp-1"), newNode(t, "cp-2"), newNode(t, "w-1")

	res, logs := cp1.run(t, "init", &taskv1.TaskSpec{Kind: &taskv1.TaskSpec_KubeadmInit{KubeadmInit: &taskv1.KubeadmInitSpec{
		Cluster: cluster(), Node: &taskv1.NodeSpec{Name: "cp-1", AdvertiseAddress: "10.250.0.10"}, UploadCerts: true}}})
	if res.GetState() != taskv1.TaskState_TASK_STATE_SUCCEEDED {
		t.Fatalf("init: %v\n%v", res, logs)
	}
	out := res.GetOutputs()
	if !strings.HasPrefix(out["ca_cert_hash"], "sha256:") || len(out["token"]) != 23 || len(out["certificate_key"]) != 64 || out["api_server"] != "10.250.0.10:6443" {
		t.Fatalf("init outputs: %v", out)
	}
	for _, l := range logs {
		if strings.Contains(l, out["token"]) || strings.Contains(l, out["certificate_key"]) {
			t.Fatalf("a secret reached the task log: %q", l)
		}
	}
	if st, _ := os.Stat(filepath.Join(cp1.root, "etc/kubernetes/deckhand/kubeadm-init.yaml")); st == nil || st.Mode().Perm() != 0o600 {
		t.Fatalf("init config not written 0600: %v", st)
	}
	// Init again: no second init, same hash.
	if res2, _ := cp1.run(t, "init-again", &taskv1.TaskSpec{Kind: &taskv1.TaskSpec_KubeadmInit{KubeadmInit: &taskv1.KubeadmInitSpec{
		Cluster: cluster(), Node: &taskv1.NodeSpec{Name: "cp-1", AdvertiseAddress: "10.250.0.10"}, UploadCerts: true}}}); res2.GetState() != taskv1.TaskState_TASK_STATE_SUCCEEDED || res2.GetOutputs()["ca_cert_hash"] != out["ca_cert_hash"] || len(res2.GetChanges()) != 0 {
		t.Fatalf("second init: %v", res2)
	}

	// A worker joins with a token minted just in time.
	tok, _ := cp1.run(t, "token-w", &taskv1.TaskSpec{Kind: &taskv1.TaskSpec_KubeadmToken{KubeadmToken: &taskv1.KubeadmTokenSpec{Ttl: durationpb.New(15 * time.Minute)}}})
	if tok.GetState() != taskv1.TaskState_TASK_STATE_SUCCEEDED || tok.GetOutputs()["ca_cert_hash"] != out["ca_cert_hash"] {
		t.Fatalf("token: %v", tok)
	}
	join := func(n *node, id string, role taskv1.NodeRole, token, key, hash string) *taskv1.TaskResult {
		res, logs := n.run(t, id, &taskv1.TaskSpec{Kind: &taskv1.TaskSpec_KubeadmJoin{KubeadmJoin: &taskv1.KubeadmJoinSpec{
			Cluster: cluster(), Node: &taskv1.NodeSpec{Name: n.name}, Role: role, Token: token, CaCertHash: hash, CertificateKey: key}}})
		_ = logs
		return res
	}
	if res := join(w1, "join-w", taskv1.NodeRole_NODE_ROLE_WORKER, tok.GetOutputs()["token"], "", tok.GetOutputs()["ca_cert_hash"]); res.GetState() != taskv1.TaskState_TASK_STATE_SUCCEEDED || res.GetOutputs()["joined"] != "worker" {
		t.Fatalf("worker join: %v", res)
	}
	if _, err := os.Stat(filepath.Join(w1.root, "etc/kubernetes/deckhand/kubeadm-join.yaml")); !os.IsNotExist(err) {
		t.Fatal("the join config with its token was left on the node")
	}
	// A wrong CA pin is refused by kubeadm.
	badHash := "sha256:" + strings.Repeat("0", 64)
	if res := join(cp2, "join-badhash", taskv1.NodeRole_NODE_ROLE_WORKER, tok.GetOutputs()["token"], "", badHash); res.GetState() != taskv1.TaskState_TASK_STATE_FAILED || !strings.Contains(res.GetError().GetMessage(), "pinned") {
		t.Fatalf("wrong pin: %v", res)
	}
	// A control-plane join: token plus uploaded certs and their key.
	cpTok, _ := cp1.run(t, "token-cp", &taskv1.TaskSpec{Kind: &taskv1.TaskSpec_KubeadmToken{KubeadmToken: &taskv1.KubeadmTokenSpec{Ttl: durationpb.New(15 * time.Minute), ControlPlane: true}}})
	if len(cpTok.GetOutputs()["certificate_key"]) != 64 {
		t.Fatalf("control-plane token: %v", cpTok)
	}
	if res := join(cp2, "join-cp", taskv1.NodeRole_NODE_ROLE_CONTROL_PLANE, cpTok.GetOutputs()["token"], cpTok.GetOutputs()["certificate_key"], cpTok.GetOutputs()["ca_cert_hash"]); res.GetState() != taskv1.TaskState_TASK_STATE_SUCCEEDED || res.GetOutputs()["joined"] != "control-plane" {
		t.Fatalf("control-plane join: %v", res)
	}
	// Deleting the token makes it useless.
	id := strings.SplitN(tok.GetOutputs()["token"], ".", 2)[0]
	if res, _ := cp1.run(t, "token-del", &taskv1.TaskSpec{Kind: &taskv1.TaskSpec_KubeadmToken{KubeadmToken: &taskv1.KubeadmTokenSpec{DeleteTokenId: id}}}); res.GetState() != taskv1.TaskState_TASK_STATE_SUCCEEDED {
		t.Fatalf("token delete: %v", res)
	}

	// Reset: kubeadm reset, then the CNI config it leaves, then verification. A seeded
	// leftover kubeadm and Deckhand do not own is reported.
	rules := "*filter\n:INPUT DROP [0:0]\n:FORWARD ACCEPT [0:0]\n:OUTPUT ACCEPT [0:0]\n:KUBE-FIREWALL - [0:0]\n:KUBE-SERVICES - [0:0]\n-A INPUT -p tcp --dport 22 -j ACCEPT\n-A INPUT -j KUBE-FIREWALL\n-A KUBE-FIREWALL -m mark --mark 0x8000 -j DROP\nCOMMIT\n*nat\n:PREROUTING ACCEPT [0:0]\n:KUBE-SERVICES - [0:0]\n-A PREROUTING -m comment --comment \"kubernetes service portals\" -j KUBE-SERVICES\nCOMMIT\n"
	os.MkdirAll(filepath.Join(w1.root, "var/lib/deckhand-sim/netfilter"), 0o755)
	os.WriteFile(filepath.Join(w1.root, "var/lib/deckhand-sim/netfilter/iptables.rules"), []byte(rules), 0o644)
	// kubeadm's own temporary files (a join can leave some): reset asks kubeadm to clean them.
	os.MkdirAll(filepath.Join(w1.root, "etc/kubernetes/tmp/kubeadm-backup-etcd-x"), 0o755)
	os.MkdirAll(filepath.Join(w1.root, "etc/cni/net.d/cache"), 0o755)
	os.WriteFile(filepath.Join(w1.root, "etc/cni/net.d/10-flannel.conflist"), []byte("{}"), 0o644)
	res, _ = w1.run(t, "reset", &taskv1.TaskSpec{Kind: &taskv1.TaskSpec_KubeadmReset{KubeadmReset: &taskv1.KubeadmResetSpec{}}})
	if res.GetState() != taskv1.TaskState_TASK_STATE_FAILED || res.GetError().GetReason() != "RESET_INCOMPLETE" || res.GetOutputs()["leftovers"] != "/etc/cni/net.d/cache" {
		t.Fatalf("reset with a leftover: %v", res)
	}
	if _, err := os.Stat(filepath.Join(w1.root, "etc/cni/net.d/10-flannel.conflist")); !os.IsNotExist(err) || exists(w1.root, "etc/kubernetes/kubelet.conf") {
		t.Fatal("reset left the CNI config or the kubelet kubeconfig")
	}
	after, _ := os.ReadFile(filepath.Join(w1.root, "var/lib/deckhand-sim/netfilter/iptables.rules"))
	if strings.Contains(string(after), "KUBE-") || !strings.Contains(string(after), "-A INPUT -p tcp --dport 22 -j ACCEPT") || !strings.Contains(string(after), ":INPUT DROP") {
		t.Fatalf("iptables after reset (Kubernetes chains must go, the host's rules and policies stay):\n%s", after)
	}
	os.RemoveAll(filepath.Join(w1.root, "etc/cni/net.d/cache"))
	if res, _ = w1.run(t, "reset-2", &taskv1.TaskSpec{Kind: &taskv1.TaskSpec_KubeadmReset{KubeadmReset: &taskv1.KubeadmResetSpec{}}}); res.GetState() != taskv1.TaskState_TASK_STATE_SUCCEEDED || len(res.GetChanges()) != 0 {
		t.Fatalf("second reset: %v", res)
	}
	if exists(w1.root, "etc/kubernetes") {
		t.Fatal("reset left /etc/kubernetes (kubeadm's emptied pki, Deckhand's config directory)")
	}
	// The node can join again after the reset.
	tok2, _ := cp1.run(t, "token-w2", &taskv1.TaskSpec{Kind: &taskv1.TaskSpec_KubeadmToken{KubeadmToken: &taskv1.KubeadmTokenSpec{}}})
	if res := join(w1, "join-w2", taskv1.NodeRole_NODE_ROLE_WORKER, tok2.GetOutputs()["token"], "", tok2.GetOutputs()["ca_cert_hash"]); res.GetState() != taskv1.TaskState_TASK_STATE_SUCCEEDED {
		t.Fatalf("join after reset: %v", res)
	}
}

func exists(root, p string) bool {
	_, err := os.Stat(filepath.Join(root, p))
	return err == nil
}

func TestUnhealthyControlPlaneReportsDiagnostics(t *testing.T) {
	t.Setenv("DECKHAND_SIM_CLUSTER", t.TempDir())
	cp := newNode(t, "cp-9")
	os.MkdirAll(filepath.Join(cp.root, "var/lib/deckhand-sim"), 0o755)
	os.WriteFile(filepath.Join(cp.root, "var/lib/deckhand-sim/kubelet-broken"), nil, 0o644)
	res, _ := cp.run(t, "init", &taskv1.TaskSpec{Kind: &taskv1.TaskSpec_KubeadmInit{KubeadmInit: &taskv1.KubeadmInitSpec{
		Cluster: cluster(), Node: &taskv1.NodeSpec{Name: "cp-9", AdvertiseAddress: "10.250.0.19"}, HealthTimeout: durationpb.New(time.Second)}}})
	if res.GetState() != taskv1.TaskState_TASK_STATE_FAILED || res.GetError().GetReason() != "NOT_HEALTHY" {
		t.Fatalf("unhealthy init: %v", res)
	}
	names := tarNames(t, res.GetArtifact())
	for _, want := range []string{"kubelet.journal", "containers.txt", "files/etc/os-release"} {
		if !strings.Contains(names, want) {
			t.Fatalf("diagnostics bundle lacks %s: %s", want, names)
		}
	}
	if strings.Contains(names, "kubeadm-join") || strings.Contains(names, "pki") {
		t.Fatalf("diagnostics bundle carries secrets: %s", names)
	}
}

func tarNames(t *testing.T, data []byte) string {
	t.Helper()
	zr, err := gzip.NewReader(bytes.NewReader(data))
	if err != nil {
		t.Fatalf("artifact is not a tar.gz: %v", err)
	}
	tr := tar.NewReader(zr)
	var names []string
	for {
		h, err := tr.Next()
		if err != nil {
			break
		}
		names = append(names, h.Name)
	}
	return strings.Join(names, ",")
}

// A join that kubeadm refuses fails the task with a reason naming the cause and kubeadm's
// own error, and leaves the node as it was.
func TestJoinFailureNamesItsCause(t *testing.T) {
	t.Setenv("DECKHAND_SIM_CLUSTER", t.TempDir())
	cp1, w1, cp2 := newNode(t, "cp-1"), newNode(t, "w-1"), newNode(t, "cp-2")
	if res, logs := cp1.run(t, "init", &taskv1.TaskSpec{Kind: &taskv1.TaskSpec_KubeadmInit{KubeadmInit: &taskv1.KubeadmInitSpec{
		Cluster: cluster(), Node: &taskv1.NodeSpec{Name: "cp-1", AdvertiseAddress: "10.250.0.10"}, UploadCerts: true}}}); res.GetState() != taskv1.TaskState_TASK_STATE_SUCCEEDED {
		t.Fatalf("init: %v\n%v", res, logs)
	}
	mint := func(id string, cp bool) map[string]string {
		res, _ := cp1.run(t, id, &taskv1.TaskSpec{Kind: &taskv1.TaskSpec_KubeadmToken{KubeadmToken: &taskv1.KubeadmTokenSpec{Ttl: durationpb.New(15 * time.Minute), ControlPlane: cp}}})
		if res.GetState() != taskv1.TaskState_TASK_STATE_SUCCEEDED {
			t.Fatalf("token: %v", res)
		}
		return res.GetOutputs()
	}
	tok, cpTok, gone := mint("token", false), mint("token-cp", true), mint("token-gone", false)
	if res, _ := cp1.run(t, "token-del", &taskv1.TaskSpec{Kind: &taskv1.TaskSpec_KubeadmToken{KubeadmToken: &taskv1.KubeadmTokenSpec{DeleteTokenId: gone["token"][:6]}}}); res.GetState() != taskv1.TaskState_TASK_STATE_SUCCEEDED {
		t.Fatalf("token delete: %v", res)
	}
	for _, n := range []*node{w1, cp2} {
		os.MkdirAll(filepath.Join(n.root, "var/lib/deckhand-sim"), 0o755)
		os.WriteFile(filepath.Join(n.root, "var/lib/deckhand-sim/kubeadm-discovery-timeout"), []byte("200ms"), 0o644)
	}
	for _, c := range []struct {
		name, reason, kubeadmSays string
		n                         *node
		role                      taskv1.NodeRole
		token, hash, key          string
		unreachable               bool
	}{
		{"wrong CA hash", "CA_HASH_MISMATCH", "none of the public keys \"" + tok["ca_cert_hash"] + "\" are pinned", w1, taskv1.NodeRole_NODE_ROLE_WORKER, tok["token"], "sha256:" + strings.Repeat("0", 64), "", false},
		{"deleted token", "TOKEN_INVALID", "could not find a JWS signature in the cluster-info ConfigMap for token ID \"" + gone["token"][:6] + "\"", w1, taskv1.NodeRole_NODE_ROLE_WORKER, gone["token"], gone["ca_cert_hash"], "", false},
		{"unreachable endpoint", "ENDPOINT_UNREACHABLE", "dial tcp 10.250.0.10:6443: connect: no route to host", w1, taskv1.NodeRole_NODE_ROLE_WORKER, tok["token"], tok["ca_cert_hash"], "", true},
		{"wrong certificate key", "CERTIFICATE_KEY_INVALID", "error decoding secret data with provided key: cipher: message authentication failed", cp2, taskv1.NodeRole_NODE_ROLE_CONTROL_PLANE, cpTok["token"], cpTok["ca_cert_hash"], strings.Repeat("ab", 32), false},
	} {
		t.Run(c.name, func(t *testing.T) {
			knob := filepath.Join(c.n.root, "var/lib/deckhand-sim/unreachable")
			if c.unreachable {
				os.WriteFile(knob, nil, 0o644)
				defer os.Remove(knob)
			}
			res, _ := c.n.run(t, "join-"+strings.ReplaceAll(c.name, " ", "-"), &taskv1.TaskSpec{Kind: &taskv1.TaskSpec_KubeadmJoin{KubeadmJoin: &taskv1.KubeadmJoinSpec{
				Cluster: cluster(), Node: &taskv1.NodeSpec{Name: c.n.name}, Role: c.role, Token: c.token, CaCertHash: c.hash, CertificateKey: c.key}}})
			e := res.GetError()
			if res.GetState() != taskv1.TaskState_TASK_STATE_FAILED || e.GetReason() != c.reason || !strings.Contains(e.GetMessage(), c.kubeadmSays) || e.GetHint() == "" || strings.Contains(e.GetMessage(), "stack trace") {
				t.Fatalf("join: %v, want reason %s and kubeadm's %q", res, c.reason, c.kubeadmSays)
			}
			if exists(c.n.root, "etc/kubernetes/kubelet.conf") || exists(c.n.root, "etc/kubernetes/deckhand/kubeadm-join.yaml") {
				t.Fatal("the failed join left the node joined, or its config with the token")
			}
		})
	}
}

// The token kubeadm init mints lives 15 minutes, not kubeadm's default 24 hours, and the
// token task deletes it by its ID (what the init workflow's token-delete step does).
func TestInitTokenIsShortLivedAndDeleted(t *testing.T) {
	dir := t.TempDir()
	t.Setenv("DECKHAND_SIM_CLUSTER", dir)
	t.Setenv("DECKHAND_SIM_REAL_KUBEADM", realKubeadm(t))
	cp1 := newNode(t, "cp-1")
	start := time.Now()
	res, logs := cp1.run(t, "init", &taskv1.TaskSpec{Kind: &taskv1.TaskSpec_KubeadmInit{KubeadmInit: &taskv1.KubeadmInitSpec{
		Cluster: cluster(), Node: &taskv1.NodeSpec{Name: "cp-1", AdvertiseAddress: "10.250.0.10"}}}})
	if res.GetState() != taskv1.TaskState_TASK_STATE_SUCCEEDED {
		t.Fatalf("init: %v\n%v", res, logs)
	}
	id, _, _ := strings.Cut(res.GetOutputs()["token"], ".")
	if ids, _ := simrecords.Tokens(dir); !slices.Equal(ids, []string{id}) {
		t.Fatalf("tokens after init: %v, want the init's %s", ids, id)
	}
	exp, err := simrecords.TokenExpires(dir, id)
	if err != nil || exp.After(time.Now().Add(15*time.Minute)) || exp.Before(start.Add(14*time.Minute)) {
		t.Fatalf("the init token expires at %v (%v), want about 15 minutes after the init", exp, err)
	}
	del, _ := cp1.run(t, "token-delete", &taskv1.TaskSpec{Kind: &taskv1.TaskSpec_KubeadmToken{KubeadmToken: &taskv1.KubeadmTokenSpec{DeleteTokenId: id}}})
	if del.GetState() != taskv1.TaskState_TASK_STATE_SUCCEEDED || del.GetOutputs()["deleted"] != id {
		t.Fatalf("token delete: %v", del)
	}
	if ids, _ := simrecords.Tokens(dir); len(ids) != 0 {
		t.Fatalf("tokens after the delete: %v, want none", ids)
	}
}

// On a control plane that joined (no init config there), upload-certs still reads a config
// that names the Kubernetes version, so kubeadm does not look it up on the internet.
func TestUploadCertsOnAJoinedControlPlaneGetsAConfig(t *testing.T) {
	t.Setenv("DECKHAND_SIM_CLUSTER", t.TempDir())
	t.Setenv("DECKHAND_SIM_REAL_KUBEADM", realKubeadm(t))
	cp1, cp2 := newNode(t, "cp-1"), newNode(t, "cp-2")
	if res, logs := cp1.run(t, "init", &taskv1.TaskSpec{Kind: &taskv1.TaskSpec_KubeadmInit{KubeadmInit: &taskv1.KubeadmInitSpec{
		Cluster: cluster(), Node: &taskv1.NodeSpec{Name: "cp-1", AdvertiseAddress: "10.250.0.10"}, UploadCerts: true}}}); res.GetState() != taskv1.TaskState_TASK_STATE_SUCCEEDED {
		t.Fatalf("init: %v\n%v", res, logs)
	}
	cpToken := &taskv1.TaskSpec{Kind: &taskv1.TaskSpec_KubeadmToken{KubeadmToken: &taskv1.KubeadmTokenSpec{Ttl: durationpb.New(15 * time.Minute), ControlPlane: true}}}
	tok, _ := cp1.run(t, "token-cp", cpToken)
	o := tok.GetOutputs()
	if res, _ := cp2.run(t, "join-cp", &taskv1.TaskSpec{Kind: &taskv1.TaskSpec_KubeadmJoin{KubeadmJoin: &taskv1.KubeadmJoinSpec{
		Cluster: cluster(), Node: &taskv1.NodeSpec{Name: "cp-2"}, Role: taskv1.NodeRole_NODE_ROLE_CONTROL_PLANE, Token: o["token"], CaCertHash: o["ca_cert_hash"], CertificateKey: o["certificate_key"]}}}); res.GetState() != taskv1.TaskState_TASK_STATE_SUCCEEDED {
		t.Fatalf("control-plane join: %v", res)
	}
	// The kubeadm the packages task installed.
	os.MkdirAll(filepath.Join(cp2.root, "var/lib/deckhand-sim/versions"), 0o755)
	os.WriteFile(filepath.Join(cp2.root, "var/lib/deckhand-sim/versions/kubeadm"), []byte("v1.33.13\n"), 0o644)
	res, logs := cp2.run(t, "token-cp-2", cpToken)
	if res.GetState() != taskv1.TaskState_TASK_STATE_SUCCEEDED || len(res.GetOutputs()["certificate_key"]) != 64 {
		t.Fatalf("control-plane token on cp-2: %v\n%v", res, logs)
	}
	const want = "kubeadm init phase upload-certs --upload-certs --config /etc/kubernetes/deckhand/kubeadm-upload-certs.yaml"
	var ran []string
	for _, c := range res.GetChanges() {
		ran = append(ran, c.GetTarget())
	}
	if !slices.Contains(ran, want) {
		t.Fatalf("cp-2 ran %q, want %q", ran, want)
	}
	cfg, _ := os.ReadFile(filepath.Join(cp2.root, "etc/kubernetes/deckhand/kubeadm-upload-certs.yaml"))
	if !strings.Contains(string(cfg), "kubernetesVersion: v1.33.13") || !strings.Contains(string(cfg), "name: cp-2") {
		t.Fatalf("upload-certs config on cp-2:\n%s", cfg)
	}
}

// A reset deletes kube-proxy's IPVS virtual services (on kube-ipvs0's addresses, and
// NodePorts on the node's own) and its dummy link, and keeps the host's own virtual
// services: here a keepalived/LVS balancer for the control-plane endpoint. A dry-run
// says so and changes nothing; a second reset changes nothing.
func TestResetKeepsForeignIPVSServices(t *testing.T) {
	t.Setenv("DECKHAND_SIM_CLUSTER", t.TempDir())
	n := newNode(t, "w-ipvs")
	// The simulated host's own address (it gets one when it joins).
	const node = "198.18.0.77"
	os.MkdirAll(filepath.Join(n.root, "var/lib/deckhand-sim"), 0o755)
	os.WriteFile(filepath.Join(n.root, "var/lib/deckhand-sim/address"), []byte(node+"\n"), 0o644)
	lvs := "-A -t 198.18.200.1:6443 -s wlc\n-a -t 198.18.200.1:6443 -r " + node + ":6443 -g -w 1\n"
	seed := map[string]string{
		"var/lib/deckhand-sim/ipvs": "-A -t 10.96.0.1:443 -s rr\n-a -t 10.96.0.1:443 -r " + node + ":6443 -m -w 1\n-A -u 10.96.0.10:53 -s rr\n" +
			"-A -t " + node + ":30080 -s rr\n" + lvs,
		"var/lib/deckhand-sim/links/kube-ipvs0": "kind dummy\n10.96.0.1/32\n10.96.0.10/32\n",
	}
	for f, c := range seed {
		os.MkdirAll(filepath.Dir(filepath.Join(n.root, f)), 0o755)
		os.WriteFile(filepath.Join(n.root, f), []byte(c), 0o644)
	}
	spec := &taskv1.TaskSpec{Kind: &taskv1.TaskSpec_KubeadmReset{KubeadmReset: &taskv1.KubeadmResetSpec{Ipvs: true}}}
	want := []string{"ipvsadm -D -t 10.96.0.1:443", "ipvsadm -D -u 10.96.0.10:53", "ipvsadm -D -t " + node + ":30080", "ip link delete kube-ipvs0"}
	for _, dry := range []bool{true, false} {
		res := n.runDry(t, fmt.Sprintf("reset-dry-%v", dry), spec, dry)
		if res.GetState() != taskv1.TaskState_TASK_STATE_SUCCEEDED {
			t.Fatalf("reset (dry-run %v): %v", dry, res)
		}
		var cmds []string
		for _, c := range res.GetChanges() {
			if c.GetKind() == "command" {
				cmds = append(cmds, c.GetTarget())
			}
		}
		if !slices.Equal(cmds, want) {
			t.Fatalf("reset (dry-run %v) ran:\n%q\nwant\n%q", dry, cmds, want)
		}
		if got, _ := os.ReadFile(filepath.Join(n.root, "var/lib/deckhand-sim/ipvs")); dry && string(got) != seed["var/lib/deckhand-sim/ipvs"] {
			t.Fatalf("the dry-run changed IPVS:\n%s", got)
		}
	}
	if got, _ := os.ReadFile(filepath.Join(n.root, "var/lib/deckhand-sim/ipvs")); string(got) != lvs {
		t.Fatalf("IPVS after the reset:\n%s\nwant only the host's balancer:\n%s", got, lvs)
	}
	if exists(n.root, "var/lib/deckhand-sim/links/kube-ipvs0") {
		t.Fatal("reset left kube-ipvs0")
	}
	if again, _ := n.run(t, "reset-2", spec); again.GetState() != taskv1.TaskState_TASK_STATE_SUCCEEDED || len(again.GetChanges()) != 0 {
		t.Fatalf("second reset: %v", again)
	}
}

// A reset removes every kind of pod-network debris that breaks the next join: the links of
// the pod networks and kube-proxy, their state directories, their iptables chains (the
// host's own rules and chains stay) and kube-proxy's nftables tables; the ipip module's
// tunl0 stays (the kernel keeps it) without Calico's address. What it cannot remove is
// reported by name. A dry-run changes nothing; a second reset changes nothing.
func TestResetRemovesPodNetworkDebris(t *testing.T) {
	t.Setenv("DECKHAND_SIM_CLUSTER", t.TempDir())
	n := newNode(t, "w-debris")
	links := map[string]string{
		"cni0": "kind bridge\n10.244.1.1/24\n", "flannel.1": "kind vxlan\n10.244.1.0/32\n", "kube-ipvs0": "kind dummy\n10.96.0.1/32\n",
		"cali1a2b3c4d5e6": "kind veth\n", "vxlan.calico": "kind vxlan\n10.244.1.192/32\n", "tunl0": "kind ipip\n10.244.1.193/32\n",
		"cilium_host": "kind veth\n10.244.1.7/32\n", "cilium_vxlan": "kind vxlan\n",
		// The host's own.
		"docker0": "kind bridge\n172.17.0.1/16\n",
	}
	seed := map[string]string{
		"var/lib/cni/networks/cbr0/10.244.1.5": "abc",
		"var/lib/cni/results/cbr0-abc-eth0":    "{}",
		"run/flannel/subnet.env":               "FLANNEL_SUBNET=10.244.1.1/24\n",
		"var/lib/deckhand-sim/nft-tables":      "table inet filter\ntable ip kube-proxy\ntable ip6 kube-proxy\n",
		"var/lib/deckhand-sim/netfilter/iptables.rules": "*filter\n:INPUT DROP [0:0]\n:FORWARD ACCEPT [0:0]\n:OUTPUT ACCEPT [0:0]\n:DOCKER - [0:0]\n:FLANNEL-FWD - [0:0]\n:cali-FORWARD - [0:0]\n:CILIUM_FORWARD - [0:0]\n" +
			"-A INPUT -p tcp --dport 22 -j ACCEPT\n-A FORWARD -j DOCKER\n-A FORWARD -j FLANNEL-FWD\n-A FORWARD -j cali-FORWARD\n-A FORWARD -j CILIUM_FORWARD\n-A FLANNEL-FWD -s 10.244.0.0/16 -j ACCEPT\nCOMMIT\n" +
			"*nat\n:PREROUTING ACCEPT [0:0]\n:POSTROUTING ACCEPT [0:0]\n:CNI-HOSTPORT-DNAT - [0:0]\n:FLANNEL-POSTRTG - [0:0]\n-A PREROUTING -m addrtype --dst-type LOCAL -j CNI-HOSTPORT-DNAT\n-A POSTROUTING -j FLANNEL-POSTRTG\n-A POSTROUTING -s 192.168.50.0/24 -o eth1 -j MASQUERADE\nCOMMIT\n",
	}
	for name, c := range links {
		seed["var/lib/deckhand-sim/links/"+name] = c
	}
	for f, c := range seed {
		os.MkdirAll(filepath.Dir(filepath.Join(n.root, f)), 0o755)
		os.WriteFile(filepath.Join(n.root, f), []byte(c), 0o644)
	}
	spec := &taskv1.TaskSpec{Kind: &taskv1.TaskSpec_KubeadmReset{KubeadmReset: &taskv1.KubeadmResetSpec{Ipvs: true}}}
	snapshot := func() map[string]string {
		m := map[string]string{}
		filepath.Walk(n.root, func(p string, info os.FileInfo, err error) error {
			if err == nil && info.Mode().IsRegular() && !strings.Contains(p, "/usr/") && !strings.Contains(p, "/var/lib/deckhand/") {
				b, _ := os.ReadFile(p)
				m[strings.TrimPrefix(p, n.root)] = string(b)
			}
			return nil
		})
		return m
	}
	before := snapshot()
	dry := n.runDry(t, "reset-dry", spec, true)
	if dry.GetState() != taskv1.TaskState_TASK_STATE_SUCCEEDED {
		t.Fatalf("dry-run: %v", dry)
	}
	if after := snapshot(); !maps.Equal(before, after) {
		t.Fatalf("the dry-run changed the host")
	}
	res := n.runDry(t, "reset", spec, false)
	if res.GetState() != taskv1.TaskState_TASK_STATE_SUCCEEDED {
		t.Fatalf("reset: %v", res)
	}
	var changes []string
	for _, c := range res.GetChanges() {
		changes = append(changes, c.GetTarget()+" ("+c.GetDetail()+")")
	}
	if d := dry.GetChanges(); len(d) != len(res.GetChanges()) {
		t.Errorf("the dry-run announced %d changes, the reset made %d:\n%s", len(d), len(res.GetChanges()), strings.Join(changes, "\n"))
	}
	for name := range links {
		if gone := !exists(n.root, "var/lib/deckhand-sim/links/"+name); gone != (name != "docker0" && name != "tunl0") {
			t.Errorf("link %s: deleted %v\n%s", name, gone, strings.Join(changes, "\n"))
		}
	}
	if b, _ := os.ReadFile(filepath.Join(n.root, "var/lib/deckhand-sim/links/tunl0")); string(b) != "kind ipip\n" {
		t.Errorf("tunl0 after the reset: %q, want it without Calico's address", b)
	}
	for _, dir := range []string{"var/lib/cni", "run/flannel"} {
		if exists(n.root, dir) {
			t.Errorf("reset left %s", dir)
		}
	}
	if b, _ := os.ReadFile(filepath.Join(n.root, "var/lib/deckhand-sim/nft-tables")); string(b) != "table inet filter\n" {
		t.Errorf("nftables tables after the reset: %q", b)
	}
	want := "*filter\n:INPUT DROP [0:0]\n:FORWARD ACCEPT [0:0]\n:OUTPUT ACCEPT [0:0]\n:DOCKER - [0:0]\n-A INPUT -p tcp --dport 22 -j ACCEPT\n-A FORWARD -j DOCKER\nCOMMIT\n" +
		"*nat\n:PREROUTING ACCEPT [0:0]\n:POSTROUTING ACCEPT [0:0]\n-A POSTROUTING -s 192.168.50.0/24 -o eth1 -j MASQUERADE\nCOMMIT\n"
	if b, _ := os.ReadFile(filepath.Join(n.root, "var/lib/deckhand-sim/netfilter/iptables.rules")); string(b) != want {
		t.Errorf("iptables after the reset:\n%s\nwant\n%s", b, want)
	}
	if again := n.runDry(t, "reset-2", spec, false); again.GetState() != taskv1.TaskState_TASK_STATE_SUCCEEDED || len(again.GetChanges()) != 0 {
		t.Fatalf("second reset: %v", again)
	}

}
