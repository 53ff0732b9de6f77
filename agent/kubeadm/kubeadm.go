// Package kubeadm is the agent's kubeadm tasks: init (capturing the CA cert hash, the
// bootstrap token and the certificate key from kubeadm's own output), token (a short-lived
// join token minted just in time, plus uploaded certs and their key for a control-plane
// join; or deleting one), join (worker or control plane; a failed join names its cause,
// failures.go) and reset (kubeadm reset -f, then
// what kubeadm leaves behind, then a check that reports anything still there). Configs are
// written 0600 under /etc/kubernetes/deckhand: they hold secrets, and never go on argv.
//
// kubeadm init, join and reset run one at a time on a node, under an exclusive lock
// (LockFile) that the kubeadm process inherits: an agent killed while kubeadm runs leaves
// kubeadm running with the lock, and the restarted agent, given the task again, waits for
// that kubeadm to finish and then looks at what it did instead of starting a second one.
package kubeadm

import (
	"context"
	"fmt"
	"os"
	"path/filepath"
	"regexp"
	"strconv"
	"strings"
	"time"

	"google.golang.org/protobuf/proto"

	"github.com/deckhandhq/deckhand/agent/diagnostics"
	"github.com/deckhandhq/deckhand/agent/facts"
	"github.com/deckhandhq/deckhand/agent/firewall"
	"github.com/deckhandhq/deckhand/agent/host"
	"github.com/deckhandhq/deckhand/agent/kubectl"
	"github.com/deckhandhq/deckhand/agent/network"
	"github.com/deckhandhq/deckhand/agent/runtime"
	"github.com/deckhandhq/deckhand/agent/tasks"
	"github.com/deckhandhq/deckhand/internal/kubeadmconfig"
	"github.com/deckhandhq/deckhand/internal/pki"
	taskv1 "github.com/deckhandhq/deckhand/proto/deckhand/task/v1"
)

// Paths on the node.
const (
	ConfigDir  = "/etc/kubernetes/deckhand"
	initConfig = ConfigDir + "/kubeadm-init.yaml"
	joinConfig = ConfigDir + "/kubeadm-join.yaml"
	// uploadCertsConfigPath is what upload-certs reads on a control plane that joined.
	uploadCertsConfigPath = ConfigDir + "/kubeadm-upload-certs.yaml"
	adminConf             = "/etc/kubernetes/admin.conf"
	kubeletConf           = "/etc/kubernetes/kubelet.conf"
	caCert                = "/etc/kubernetes/pki/ca.crt"
	// LockFile serializes kubeadm init, join and reset on the node.
	LockFile = "/var/lib/deckhand/kubeadm.lock"
)

var (
	tokenOut   = regexp.MustCompile(`--token\s+([a-z0-9]{6}\.[a-z0-9]{16})`)
	hashOut    = regexp.MustCompile(`--discovery-token-ca-cert-hash\s+(sha256:[0-9a-f]{64})`)
	certKeyOut = regexp.MustCompile(`--certificate-key\s+([0-9a-f]{64})`)
	joinOut    = regexp.MustCompile(`kubeadm join (\S+)`)
	keyLine    = regexp.MustCompile(`(?m)^([0-9a-f]{64})\s*$`)
	usingToken = regexp.MustCompile(`Using token: ([a-z0-9]{6}\.[a-z0-9]{16})`)
)

func invalid(err error) error {
	return tasks.Errorf("INVALID_ARGUMENT", "fix the cluster or node spec", "%v", err)
}

// caHash pins the cluster CA the node has.
func caHash(h *host.Host) (string, error) {
	b, err := h.ReadFile(caCert)
	if err != nil {
		return "", err
	}
	c, err := pki.ParseCert(b)
	if err != nil {
		return "", err
	}
	return pki.Hash(c), nil
}

// lock takes LockFile, waiting for a kubeadm still running from before (an agent killed
// while it ran) or from another task.
func lock(ctx context.Context, h *host.Host, e *tasks.Emitter) (*host.Lock, error) {
	l, err := h.Lock(ctx, LockFile, func() {
		e.Logf("waiting for a kubeadm still running from before (it holds %s)", LockFile)
	})
	if err != nil {
		return nil, fmt.Errorf("wait for the kubeadm lock: %w", err)
	}
	return l, nil
}

// withAgentSocket fills the node's CRI socket, when the task leaves it out, with the one
// the agent is configured with (deckhand-agent --cri-socket), so kubeadm and the kubelet
// use the runtime the runtime task set up there.
func withAgentSocket(n *taskv1.NodeSpec, h *host.Host) *taskv1.NodeSpec {
	if n == nil || n.GetCriSocket() != "" || h.CRISocket == "" {
		return n
	}
	c := proto.Clone(n).(*taskv1.NodeSpec)
	c.CriSocket = "unix://" + runtime.HostSocket(h)
	return c
}

// Init runs kubeadm init on the first control-plane node.
func Init(ctx context.Context, t *taskv1.Task, h *host.Host, e *tasks.Emitter) (map[string]string, error) {
	spec := t.GetSpec().GetKubeadmInit()
	// The kubelet's cgroup driver, which kubeadm init stores for every node that joins:
	// the runtime task's default, from the host, when the cluster leaves it empty.
	driver, err := kubeadmconfig.CgroupDriverFor(spec.GetCluster().GetCgroupDriver(), h.Exists(facts.SystemdInitDir), t.GetNode())
	if err != nil {
		return nil, invalid(err)
	}
	cs := proto.Clone(spec.GetCluster()).(*taskv1.ClusterSpec)
	if cs != nil {
		cs.CgroupDriver = driver
	}
	c, err := kubeadmconfig.ParseCluster(cs)
	if err != nil {
		return nil, invalid(err)
	}
	n, err := kubeadmconfig.ParseNode(withAgentSocket(spec.GetNode(), h))
	if err != nil {
		return nil, invalid(err)
	}
	cfg, err := kubeadmconfig.InitConfig(c, n, spec.GetUploadCerts(), "")
	if err != nil {
		return nil, invalid(err)
	}
	l, err := lock(ctx, h, e)
	if err != nil {
		return nil, err
	}
	defer l.Unlock()
	if _, err := h.WriteFile(initConfig, cfg, 0o600, host.Secret); err != nil {
		return nil, err
	}
	if !h.DryRun {
		// A retry: an earlier init finished (report what a join needs, change nothing), or
		// failed half way (reset the node and init again), or cannot be told apart.
		ev := gather(ctx, h, n.Name, "init", adminConf, "", "")
		switch initVerdict(ev) {
		case done:
			hash, err := caHash(h)
			if err != nil {
				return nil, tasks.Errorf("INIT_STATE", "reset the node (deckctl reset NODE) and init again", "the node has %s but no readable CA: %v", adminConf, err)
			}
			unmarkStarted(h, "init")
			e.Logf("the node is already an initialized control plane (%s)", ev.describe())
			return map[string]string{"ca_cert_hash": hash, "control_plane_endpoint": c.ControlPlaneEndpoint}, nil
		case unsure:
			return nil, tasks.Errorf("INIT_STATE", "start the node's kubelet and control plane (systemctl status kubelet; crictl ps -a) and check admin.conf's certificate, then deckctl workflow retry ID; or reset the node (deckctl reset NODE) to init it anew",
				"an earlier kubeadm init got past marking the control plane on this node (%s), and the API server does not confirm it, so Deckhand cannot tell whether the node is a healthy control plane", ev.describe())
		case foreign:
			return nil, tasks.Errorf("INIT_STATE", "if the node is not part of another cluster, reset it (deckctl reset NODE), then deckctl workflow retry ID",
				"the node has kubeadm's files from a run Deckhand did not start (%s): Deckhand does not wipe them on its own", ev.describe())
		case halfDone:
			if err := resetHalfDone(ctx, l, h, e, "kubeadm init", ev); err != nil {
				return nil, err
			}
		}
	}
	if err := writePatches(h, c); err != nil {
		return nil, err
	}
	if err := markStarted(h, "init", t.GetId()); err != nil {
		return nil, err
	}
	out, err := l.RunOutput(ctx, "kubeadm init", kubeadmconfig.InitArgs(initConfig, spec.GetUploadCerts())...)
	if err == nil {
		unmarkStarted(h, "init")
	}
	l.Unlock()
	if err != nil {
		attachDiagnostics(ctx, h, e)
		return nil, tasks.Errorf("INIT_FAILED", "the diagnostics bundle is attached (deckctl task get ID --save FILE)", "%v", err)
	}
	if h.DryRun {
		return nil, nil
	}
	declareSecrets(e, string(out))
	logOutput(e, string(out))
	if err := waitHealthy(ctx, h, e, spec.GetHealthTimeout().AsDuration(), true); err != nil {
		return nil, err
	}
	res := map[string]string{"control_plane_endpoint": c.ControlPlaneEndpoint}
	if m := hashOut.FindStringSubmatch(string(out)); m != nil {
		res["ca_cert_hash"] = m[1]
	} else if hash, err := caHash(h); err == nil {
		res["ca_cert_hash"] = hash
	}
	if m := tokenOut.FindStringSubmatch(string(out)); m != nil {
		res["token"] = m[1]
	}
	if m := certKeyOut.FindStringSubmatch(string(out)); m != nil {
		res["certificate_key"] = m[1]
	}
	if m := joinOut.FindStringSubmatch(string(out)); m != nil {
		res["api_server"] = m[1]
	}
	if res["ca_cert_hash"] == "" {
		return res, tasks.Errorf("INIT_OUTPUT", "look at the task log", "kubeadm init succeeded but printed no CA cert hash")
	}
	return res, nil
}

// Token mints a join token (and, for a control-plane join, uploads certs and returns the
// certificate key), or deletes a token.
func Token(ctx context.Context, t *taskv1.Task, h *host.Host, e *tasks.Emitter) (map[string]string, error) {
	spec := t.GetSpec().GetKubeadmToken()
	if !h.Exists(adminConf) && h.DryRun {
		// A dry-run of a workflow whose dry-run init comes first: the real init makes it one.
		e.Logf("%s is missing: this node is not a control plane yet (a dry run: what follows is what a control plane would run)", adminConf)
	} else if !h.Exists(adminConf) {
		return nil, tasks.Errorf("NOT_A_CONTROL_PLANE", "run the token task on a healthy control-plane node", "%s is missing: this node is not an initialized control plane", adminConf)
	}
	if id := spec.GetDeleteTokenId(); id != "" {
		if !regexp.MustCompile(`^[a-z0-9]{6}$`).MatchString(id) {
			return nil, tasks.Errorf("INVALID_ARGUMENT", "give the 6-character token ID", "delete_token_id %q is not a token ID", id)
		}
		if err := h.Run(ctx, "delete bootstrap token "+id, kubeadmconfig.TokenDeleteArgs(id)...); err != nil {
			return nil, tasks.Errorf("TOKEN_FAILED", "list tokens with kubeadm token list on the node", "%v", err)
		}
		return map[string]string{"deleted": id}, nil
	}
	out, err := h.RunOutput(ctx, "mint a join token", kubeadmconfig.TokenCreateArgs(spec.GetTtl().AsDuration())...)
	if err != nil {
		return nil, tasks.Errorf("TOKEN_FAILED", "check the control plane's health", "%v", err)
	}
	if h.DryRun {
		return nil, nil
	}
	res := map[string]string{}
	line := strings.TrimSpace(string(out))
	for name, re := range map[string]*regexp.Regexp{"token": tokenOut, "ca_cert_hash": hashOut, "api_server": joinOut} {
		m := re.FindStringSubmatch(line)
		if m == nil {
			return nil, tasks.Errorf("TOKEN_OUTPUT", "look at the task log", "kubeadm token create printed no %s", name)
		}
		res[name] = m[1]
	}
	e.Secret(res["token"])
	e.Logf("minted token %s for %s", strings.SplitN(res["token"], ".", 2)[0], res["api_server"])
	if spec.GetControlPlane() {
		cfgPath, err := uploadCertsConfig(ctx, t, h)
		if err != nil {
			return nil, err
		}
		out, err := h.RunOutput(ctx, "upload control-plane certificates", kubeadmconfig.UploadCertsArgs(cfgPath)...)
		if err != nil {
			return nil, tasks.Errorf("UPLOAD_CERTS_FAILED", "check the control plane's health", "%v", err)
		}
		m := keyLine.FindStringSubmatch(string(out))
		if m != nil {
			e.Secret(m[1])
		}
		if m == nil {
			return nil, tasks.Errorf("UPLOAD_CERTS_OUTPUT", "look at the task log", "kubeadm init phase upload-certs printed no certificate key")
		}
		res["certificate_key"] = m[1]
		e.Logf("uploaded control-plane certificates (the key expires in 2 hours)")
	}
	return res, nil
}

// uploadCertsConfig is the config file `kubeadm init phase upload-certs` reads on this
// control plane: the one kubeadm init ran with on the first, else (a control plane that
// joined) one rendered for the node with the Kubernetes version of the kubeadm installed
// (the packages step installs the cluster's). Without a config, kubeadm looks the version
// up on the internet first (see kubeadmconfig.UploadCertsArgs).
func uploadCertsConfig(ctx context.Context, t *taskv1.Task, h *host.Host) (string, error) {
	if h.Exists(initConfig) {
		return initConfig, nil
	}
	out, err := h.Query(ctx, kubeadmconfig.Kubeadm, "version", "-o", "short")
	if err != nil {
		return "", tasks.Errorf("UPLOAD_CERTS_FAILED", "check that kubeadm is installed on the node (the packages task)", "kubeadm version: %v", err)
	}
	c, err := kubeadmconfig.ParseCluster(&taskv1.ClusterSpec{KubernetesVersion: strings.TrimSpace(string(out))})
	if err != nil {
		return "", tasks.Errorf("UPLOAD_CERTS_FAILED", "install a kubeadm of the cluster's version (the packages task)", "the installed kubeadm's version: %v", err)
	}
	n, err := kubeadmconfig.ParseNode(withAgentSocket(&taskv1.NodeSpec{Name: t.GetNode()}, h))
	if err != nil {
		return "", invalid(err)
	}
	cfg, err := kubeadmconfig.InitConfig(c, n, false, "")
	if err != nil {
		return "", invalid(err)
	}
	if _, err := h.WriteFile(uploadCertsConfigPath, cfg, 0o600); err != nil {
		return "", err
	}
	return uploadCertsConfigPath, nil
}

// Join joins the node as a worker or a control plane.
func Join(ctx context.Context, t *taskv1.Task, h *host.Host, e *tasks.Emitter) (map[string]string, error) {
	spec := t.GetSpec().GetKubeadmJoin()
	c, err := kubeadmconfig.ParseCluster(spec.GetCluster())
	if err != nil {
		return nil, invalid(err)
	}
	n, err := kubeadmconfig.ParseNode(withAgentSocket(spec.GetNode(), h))
	if err != nil {
		return nil, invalid(err)
	}
	cp := spec.GetRole() == taskv1.NodeRole_NODE_ROLE_CONTROL_PLANE
	cfg, err := kubeadmconfig.JoinConfig(c, n, cp, "", spec.GetToken(), spec.GetCaCertHash(), spec.GetCertificateKey())
	if err != nil {
		return nil, invalid(err)
	}
	l, err := lock(ctx, h, e)
	if err != nil {
		return nil, err
	}
	defer l.Unlock()
	if !h.DryRun {
		// A retry: an earlier join finished (change nothing), or failed half way (reset the
		// node and join again), or cannot be told apart.
		// A control plane's kubelet.conf names its own API server (kubeadm v1.33's
		// ControlPlaneKubeletLocalMode), which a half-done join may never have started: ask
		// through the cluster's endpoint.
		server := ""
		if cp && c.ControlPlaneEndpoint != "" {
			server = "https://" + c.ControlPlaneEndpoint
		}
		ev := gather(ctx, h, n.Name, "join", kubeletConf, server, spec.GetCaCertHash())
		switch joinVerdict(ev, cp) {
		case done:
			// A join config left by an agent killed during the join holds a token.
			_, _ = h.RemoveFile(joinConfig)
			unmarkStarted(h, "join")
			e.Logf("the node has already joined the cluster (%s)", ev.describe())
			return map[string]string{"joined": "already"}, nil
		case unsure:
			_, _ = h.RemoveFile(joinConfig)
			return nil, tasks.Errorf("JOIN_STATE", "check the node's kubelet (systemctl status kubelet) and its route to the control-plane endpoint, then deckctl workflow retry ID; or reset the node (deckctl reset NODE) to join it anew",
				"an earlier kubeadm join wrote the kubelet's credentials on this node (%s), and the API server does not confirm them, so Deckhand cannot tell whether the node joined", ev.describe())
		case foreign:
			_, _ = h.RemoveFile(joinConfig)
			return nil, tasks.Errorf("JOIN_STATE", "if the node is not part of another cluster, reset it (deckctl reset NODE), then deckctl workflow retry ID",
				"the node has kubeadm's files from a run Deckhand did not start, or of another cluster (%s): Deckhand does not wipe them on its own", ev.describe())
		case halfDone:
			if err := resetHalfDone(ctx, l, h, e, "kubeadm join", ev); err != nil {
				return nil, err
			}
		}
	}
	if _, err := h.WriteFile(joinConfig, cfg, 0o600, host.Secret); err != nil {
		return nil, err
	}
	if err := writePatches(h, c); err != nil {
		return nil, err
	}
	if err := markStarted(h, "join", t.GetId()); err != nil {
		return nil, err
	}
	out, err := l.RunOutput(ctx, "kubeadm join", kubeadmconfig.JoinArgs(joinConfig)...)
	if err == nil {
		unmarkStarted(h, "join")
	}
	l.Unlock()
	// The join config holds the token: it has no use after the join.
	_, _ = h.RemoveFile(joinConfig)
	if err != nil {
		attachDiagnostics(ctx, h, e)
		return nil, classifyJoin(err)
	}
	if h.DryRun {
		return nil, nil
	}
	logOutput(e, string(out))
	if !strings.Contains(string(out), "This node has joined the cluster") {
		return nil, tasks.Errorf("JOIN_OUTPUT", "look at the task log", "kubeadm join did not report that the node joined")
	}
	if err := waitHealthy(ctx, h, e, spec.GetHealthTimeout().AsDuration(), cp); err != nil {
		return nil, err
	}
	return map[string]string{"joined": map[bool]string{true: "control-plane", false: "worker"}[cp]}, nil
}

// leftovers are what a reset must not leave behind.
var leftovers = []string{"/etc/kubernetes/manifests", "/etc/kubernetes/pki", "/var/lib/kubelet", "/var/lib/etcd", "/etc/cni/net.d"}

// Reset runs kubeadm reset -f, removes what it leaves (iptables chains, kube-proxy's IPVS
// services, the pod network's links, directories and nftables tables, CNI configuration,
// kubeconfigs, Deckhand's kubeadm configs), and reports anything still there by name.
func Reset(ctx context.Context, t *taskv1.Task, h *host.Host, e *tasks.Emitter) (map[string]string, error) {
	l, err := lock(ctx, h, e)
	if err != nil {
		return nil, err
	}
	defer l.Unlock()
	// kubeadm reset whenever kubeadm left anything here, a half-done join's files included.
	if ev := gather(ctx, h, t.GetNode(), "", "", "", ""); len(ev.files) > 0 || ev.caCert || nonEmpty(h, "/etc/kubernetes/manifests") || nonEmpty(h, "/etc/kubernetes/pki") {
		if err := kubeadmReset(ctx, l, h, e); err != nil {
			return nil, err
		}
	}
	// What kubeadm says it does not clean: network filtering rules, IPVS, CNI configuration
	// and kubeconfigs; and the pod network.
	if err := cleanNetfilter(ctx, h, e); err != nil {
		return nil, err
	}
	// kube-proxy's IPVS virtual services and its dummy link (before the pod network goes:
	// the node's addresses on cni0 tell its NodePort services).
	var done []string
	if t.GetSpec().GetKubeadmReset().GetIpvs() {
		if done, err = cleanIPVS(ctx, h, e); err != nil {
			return nil, err
		}
	}
	// The pod network: Deckhand's NAT rule, its routes to other nodes' pods, the cni0 bridge
	// and the addresses host-local handed out, so that a node joining again starts clean.
	if err := network.CleanUp(ctx, h, e); err != nil {
		return nil, tasks.Errorf("RESET_FAILED", "remove them by hand: iptables -t nat -S POSTROUTING (the rules with the comment \""+network.NATComment+"\"), ip route show proto "+strconv.Itoa(network.RouteProto)+", ip link delete "+network.Bridge, "pod network clean-up: %v", err)
	}
	// The firewall rules Deckhand's preflight opened for the node (its ports, VRRP), and
	// only those.
	if err := firewall.RemoveAdded(ctx, h, e); err != nil {
		return nil, err
	}
	// What any pod network and kube-proxy leave: links, state directories, nftables tables.
	if err := cleanPodNetwork(ctx, h, e, append(done, network.Bridge)...); err != nil {
		return nil, err
	}
	// What Deckhand kept there: the manifests the node applied (a pod network provider's)
	// and the kubeadm patches.
	for _, dir := range []string{kubectl.ManifestDir, kubeadmconfig.PatchesDir} {
		if _, err := h.RemoveAll(dir); err != nil {
			return nil, tasks.Errorf("RESET_FAILED", "remove it by hand: rm -r "+dir, "remove %s: %v", dir, err)
		}
	}
	for _, dir := range []string{"/etc/cni/net.d", ConfigDir} {
		entries, _ := os.ReadDir(h.Path(dir))
		for _, en := range entries {
			if en.Type().IsRegular() {
				if _, err := h.RemoveFile(filepath.Join(dir, en.Name())); err != nil {
					return nil, err
				}
			}
		}
	}
	// Deckhand's marks of kubeadm runs: the node starts anew.
	unmarkStarted(h, "init")
	unmarkStarted(h, "join")
	for _, kc := range []string{"/root/.kube/config"} {
		if _, err := h.RemoveFile(kc); err != nil {
			return nil, err
		}
	}
	// The directories kubeadm and Deckhand made, once empty (kubeadm empties pki and
	// manifests but keeps them), so the host looks as it did before the join. A directory
	// someone else put files in stays, and is reported below when it is one of kubeadm's.
	for _, dir := range []string{ConfigDir, "/etc/kubernetes/pki", "/etc/kubernetes/manifests", "/etc/kubernetes/tmp", "/etc/kubernetes"} {
		if entries, err := os.ReadDir(h.Path(dir)); err == nil && len(entries) == 0 {
			if _, err := h.RemoveFile(dir); err != nil {
				return nil, err
			}
		}
	}
	if h.DryRun {
		return nil, nil
	}
	var left []string
	for _, fam := range []string{"iptables", "ip6tables"} {
		if !h.Has(fam + "-save") {
			continue
		}
		out, _ := h.Query(ctx, fam+"-save")
		if _, removed, chains := withoutCluster(string(out)); len(chains) > 0 {
			for _, c := range chains {
				left = append(left, fam+" chain "+c)
			}
		} else if removed > 0 {
			left = append(left, fmt.Sprintf("%d %s rule(s) of Kubernetes or the pod network", removed, fam))
		}
	}
	net, err := podNetworkLeftovers(ctx, h)
	if err != nil {
		return nil, err
	}
	left = append(left, net...)
	for _, dir := range leftovers {
		entries, _ := os.ReadDir(h.Path(dir))
		for _, en := range entries {
			left = append(left, filepath.Join(dir, en.Name()))
		}
	}
	if len(left) > 0 {
		return map[string]string{"leftovers": strings.Join(left, ",")}, tasks.Errorf("RESET_INCOMPLETE", "remove them by hand (they are not kubeadm's or Deckhand's) or look at what created them", "reset left %d item(s) behind: %s", len(left), strings.Join(left, ", "))
	}
	return map[string]string{"leftovers": ""}, nil
}

// kubeadmReset runs kubeadm reset -f (with the agent's CRI socket) under the kubeadm lock l.
func kubeadmReset(ctx context.Context, l *host.Lock, h *host.Host, e *tasks.Emitter) error {
	argv := kubeadmconfig.ResetArgs()
	if h.CRISocket != "" {
		argv = append(argv, "--cri-socket", "unix://"+runtime.HostSocket(h))
	}
	out, err := l.RunOutput(ctx, "kubeadm reset", argv...)
	if err != nil {
		return tasks.Errorf("RESET_FAILED", "look at the task log", "%v", err)
	}
	logOutput(e, string(out))
	return nil
}

func nonEmpty(h *host.Host, dir string) bool {
	entries, err := os.ReadDir(h.Path(dir))
	return err == nil && len(entries) > 0
}

// declareSecrets tells the task's masker the tokens and certificate keys kubeadm printed,
// so they are masked by value everywhere the task reports, whatever line they are on.
func declareSecrets(e *tasks.Emitter, out string) {
	for _, re := range []*regexp.Regexp{tokenOut, certKeyOut, keyLine, usingToken} {
		for _, m := range re.FindAllStringSubmatch(out, -1) {
			e.Secret(m[1])
		}
	}
}

// logOutput logs kubeadm's output line by line; the Emitter masks every secret in it.
func logOutput(e *tasks.Emitter, out string) {
	for _, l := range strings.Split(strings.TrimRight(out, "\n"), "\n") {
		if strings.TrimSpace(l) != "" {
			e.Log("stdout", l)
		}
	}
}

// waitHealthy waits until the kubelet runs and, on a control plane, the API server answers
// /readyz; on timeout it fails with the diagnostics bundle attached.
func waitHealthy(ctx context.Context, h *host.Host, e *tasks.Emitter, timeout time.Duration, controlPlane bool) error {
	if timeout <= 0 {
		timeout = 4 * time.Minute
	}
	deadline := time.Now().Add(timeout)
	var last error
	for {
		_, last = h.Query(ctx, "systemctl", "is-active", "kubelet")
		if last == nil && controlPlane {
			_, last = h.Query(ctx, "kubectl", "--kubeconfig", adminConf, "get", "--raw=/readyz")
		}
		if last == nil {
			e.Logf("kubelet is running%s", map[bool]string{true: " and the API server is ready"}[controlPlane])
			return nil
		}
		if time.Now().After(deadline) {
			attachDiagnostics(ctx, h, e)
			return tasks.Errorf("NOT_HEALTHY", "the diagnostics bundle is attached (deckctl task get ID --save FILE)", "not healthy after %v: %v", timeout, last)
		}
		select {
		case <-ctx.Done():
			return ctx.Err()
		case <-time.After(500 * time.Millisecond):
		}
	}
}

func attachDiagnostics(ctx context.Context, h *host.Host, e *tasks.Emitter) {
	if bundle, _, err := diagnostics.Collect(ctx, h, 200); err == nil {
		e.Attach(bundle)
	}
}

// cleanNetfilter removes what kube-proxy, kubeadm and the pod networks left in iptables
// and ip6tables (see clusterRule).
func cleanNetfilter(ctx context.Context, h *host.Host, e *tasks.Emitter) error {
	for _, fam := range []string{"iptables", "ip6tables"} {
		if !h.Has(fam+"-save") || !h.Has(fam+"-restore") {
			continue
		}
		out, err := h.Query(ctx, fam+"-save")
		if err != nil {
			return tasks.Errorf("RESET_FAILED", "look at "+fam+"-save on the node", "%s-save: %v", fam, err)
		}
		clean, removed, _ := withoutCluster(string(out))
		if removed == 0 {
			continue
		}
		if err := h.RunInput(ctx, fmt.Sprintf("remove %d %s rules and chains of Kubernetes and the pod network (the host's own rules and policies stay)", removed, fam), []byte(clean), fam+"-restore"); err != nil {
			return tasks.Errorf("RESET_FAILED", "the ruleset was left as it was; look at "+fam+"-save on the node", "%v", err)
		}
		e.Did("removed %d lines of Kubernetes and the pod network from %s", "would remove %d lines of Kubernetes and the pod network from %s", removed, fam)
	}
	return nil
}
