package main

import (
	"bufio"
	"crypto/rand"
	"encoding/hex"
	"errors"
	"fmt"
	"net"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"strconv"
	"strings"
	"time"

	"sigs.k8s.io/yaml"

	"github.com/deckhandhq/deckhand/internal/kubeimages"
	"github.com/deckhandhq/deckhand/internal/pki"
	"github.com/deckhandhq/deckhand/internal/testkit/sim/simrecords"
)

// kubeadm SIMULATION. The files a node gets live under ROOT/etc/kubernetes like the real
// tool's; what the cluster shares (CA, bootstrap tokens, uploaded certificate key, members)
// lives in the directory named by DECKHAND_SIM_CLUSTER, shared by the simulated hosts of one
// test or lab. Configs are checked by the REAL kubeadm (DECKHAND_SIM_REAL_KUBEADM, its
// `config validate`) when it is available, so the simulation refuses what kubeadm refuses;
// the output is kubeadm v1.33's, so the agent parses what kubeadm prints.
//
// Every command that changes the cluster appends a line to CLUSTER/records when it takes
// effect (package simrecords reads them for tests), and the cluster's state is kept next
// to it: nodes/NAME
// (its role), noderoots/NAME (its simulated host root, for kubectl to see its kubelet),
// podcidrs/NAME (its spec.podCIDR, nodenet.go), etcd/NAME (a stacked etcd member),
// apiservers/NAME (where a control plane's API server listens, discovery.go), tokens/ID,
// ca.crt, endpoint (where joins find the API server), control-plane-endpoint (when init
// set one) and certificate-key.
//
// It fails as kubeadm v1.33.13 fails (kubeadmutil.CheckErr): the error on stderr, then
// "To see the stack trace of this error execute with --v=5 or higher"; exit code 3 for a
// configuration that fails validation, 1 for everything else, failed preflight checks
// included (they reach CheckErr wrapped in "error execution phase preflight: ", so
// kubeadm's PreFlightExitCode 2 is never seen). An error in a phase of init or join reads
// "error execution phase PHASE: ...".
//
// Test knobs, in ROOT/var/lib/deckhand-sim: kubeadm-join-delay (a Go duration) makes
// kubeadm join wait that long after its preflight checks and before it changes anything,
// so a test can kill the agent while kubeadm runs; unreachable and
// kubeadm-discovery-timeout are discovery's (discovery.go).

var tokenRE = regexp.MustCompile(`^[a-z0-9]{6}\.[a-z0-9]{16}$`)

// stackTraceHint ends every error kubeadm prints without --v=5.
const stackTraceHint = "To see the stack trace of this error execute with --v=5 or higher"

// The files of a node that kubeadm's preflight checks look at.
const (
	kubeletConf          = "/etc/kubernetes/kubelet.conf"
	bootstrapKubeletConf = "/etc/kubernetes/bootstrap-kubelet.conf"
	adminConf            = "/etc/kubernetes/admin.conf"
	defaultCACertPath    = "/etc/kubernetes/pki/ca.crt"
	etcdDataDir          = "/var/lib/etcd"
	cpeFile              = "control-plane-endpoint"
)

var controlPlaneManifests = []string{"kube-apiserver", "kube-controller-manager", "kube-scheduler", "etcd"}

func kubeadm(r string, args []string) (int, error) {
	code, err := kubeadmCommand(r, args)
	if err != nil && !strings.HasSuffix(strings.TrimSpace(err.Error()), stackTraceHint) {
		err = fmt.Errorf("%w\n%s", err, stackTraceHint)
	}
	return code, err
}

// phaseError is an error in a phase of init, join or reset, as kubeadm's workflow runner
// wraps it.
func phaseError(phase string, err error) error {
	return fmt.Errorf("error execution phase %s: %w", phase, err)
}

// check is one of kubeadm's preflight checks: its name, and why it failed ("" if it did
// not).
type check struct{ name, failed string }

// preflight fails the way kubeadm's RunChecks does when any check failed, listing each
// failed check in order.
func preflight(checks ...check) error {
	var b strings.Builder
	for _, c := range checks {
		if c.failed != "" {
			fmt.Fprintf(&b, "\t[ERROR %s]: %s\n", c.name, c.failed)
		}
	}
	if b.Len() == 0 {
		return nil
	}
	return phaseError("preflight", errors.New("[preflight] Some fatal errors occurred:\n"+b.String()+
		"[preflight] If you know what you are doing, you can make a check non-fatal with `--ignore-preflight-errors=...`"))
}

// fileAvailable is kubeadm's FileAvailable check: the file must not exist yet.
func fileAvailable(r, p string) check {
	c := check{name: "FileAvailable-" + strings.ReplaceAll(p, "/", "-")}
	if _, err := os.Lstat(filepath.Join(r, p)); err == nil {
		c.failed = p + " already exists"
	}
	return c
}

// dirAvailable is kubeadm's DirAvailable check: the directory must be absent or empty.
func dirAvailable(r, p string) check {
	c := check{name: "DirAvailable-" + strings.ReplaceAll(p, "/", "-")}
	if entries, err := os.ReadDir(filepath.Join(r, p)); err == nil && len(entries) > 0 {
		c.failed = p + " is not empty"
	}
	return c
}

// controlPlaneChecks are the checks kubeadm runs on a node that becomes a control plane
// (init, or a control-plane join) about its own files.
func controlPlaneChecks(r string) []check {
	var out []check
	for _, c := range controlPlaneManifests {
		out = append(out, fileAvailable(r, "/etc/kubernetes/manifests/"+c+".yaml"))
	}
	return append(out, dirAvailable(r, etcdDataDir))
}

func kubeadmCommand(r string, args []string) (int, error) {
	if len(args) == 3 && args[0] == "version" && args[1] == "-o" && args[2] == "short" {
		return kubeadmVersion(r, args)
	}
	if len(args) >= 3 && args[0] == "config" && args[1] == "images" && args[2] == "list" {
		return imagesList(args[3:])
	}
	cluster := os.Getenv("DECKHAND_SIM_CLUSTER")
	if cluster == "" {
		return 1, errors.New("kubeadm (simulation): DECKHAND_SIM_CLUSTER is not set: the simulated hosts of a cluster share it")
	}
	switch {
	case len(args) >= 1 && args[0] == "init" && (len(args) < 2 || args[1] != "phase"):
		return kubeadmInit(r, cluster, args[1:])
	case len(args) >= 3 && args[0] == "init" && args[1] == "phase" && args[2] == "upload-certs":
		return uploadCerts(r, cluster, args[3:])
	case len(args) >= 2 && args[0] == "token" && args[1] == "create":
		return tokenCreate(r, cluster, args[2:])
	case len(args) >= 2 && args[0] == "token" && args[1] == "delete":
		return tokenDelete(cluster, args[2:])
	case len(args) >= 1 && args[0] == "join":
		return kubeadmJoin(r, cluster, args[1:])
	case len(args) >= 1 && args[0] == "reset":
		return kubeadmReset(r, cluster, args[1:])
	case len(args) >= 2 && args[0] == "upgrade" && args[1] == "apply":
		return kubeadmUpgradeApply(r, cluster, args[2:])
	case len(args) >= 2 && args[0] == "upgrade" && args[1] == "node":
		return kubeadmUpgradeNode(r, cluster, args[2:])
	}
	return 1, fmt.Errorf("kubeadm (simulation): unsupported command %v", args)
}

// flags parses --name value / --name=value / --bool flags; unknown flags are refused.
func flags(args []string, known map[string]bool, boolean map[string]bool) (map[string]string, []string, error) {
	out := map[string]string{}
	var pos []string
	for i := 0; i < len(args); i++ {
		a := args[i]
		if a == "--" {
			pos = append(pos, args[i+1:]...)
			break
		}
		if !strings.HasPrefix(a, "--") {
			pos = append(pos, a)
			continue
		}
		name, val, hasVal := strings.Cut(strings.TrimPrefix(a, "--"), "=")
		if !known[name] && !boolean[name] {
			return nil, nil, fmt.Errorf("unknown flag: --%s", name)
		}
		if boolean[name] {
			out[name] = "true"
			continue
		}
		if !hasVal {
			if i+1 >= len(args) {
				return nil, nil, fmt.Errorf("flag needs an argument: --%s", name)
			}
			i++
			val = args[i]
		}
		out[name] = val
	}
	return out, pos, nil
}

// validate checks a config file with the real kubeadm when it is available, and fails
// with its message and exit code (3 for a configuration that fails validation, as the
// command given the config would).
func validate(r, file string) (int, error) {
	data, err := os.ReadFile(filepath.Join(r, file))
	if err != nil {
		return 1, fmt.Errorf("unable to read config from %q : open %s: no such file or directory", file, file)
	}
	if real := os.Getenv("DECKHAND_SIM_REAL_KUBEADM"); real != "" {
		tmp, err := os.CreateTemp("", "kubeadm-sim-*.yaml")
		if err != nil {
			return 1, err
		}
		defer os.Remove(tmp.Name())
		tmp.Write(data)
		tmp.Close()
		if out, err := exec.Command(real, "config", "validate", "--config", tmp.Name()).CombinedOutput(); err != nil {
			code := 1
			var exit *exec.ExitError
			if errors.As(err, &exit) {
				code = exit.ExitCode()
			}
			return code, fmt.Errorf("%s", strings.TrimSpace(string(out)))
		}
	}
	return 0, nil
}

// docs splits a multi-document YAML config into kind → document.
func docs(r, file string) (map[string]map[string]any, error) {
	data, err := os.ReadFile(filepath.Join(r, file))
	if err != nil {
		return nil, err
	}
	out := map[string]map[string]any{}
	for _, d := range strings.Split(string(data), "\n---") {
		var m map[string]any
		if err := yaml.Unmarshal([]byte(d), &m); err != nil {
			return nil, err
		}
		if k, _ := m["kind"].(string); k != "" {
			out[k] = m
		}
	}
	return out, nil
}

func str(m map[string]any, path ...string) string {
	var cur any = m
	for _, p := range path {
		mm, ok := cur.(map[string]any)
		if !ok {
			return ""
		}
		cur = mm[p]
	}
	s, _ := cur.(string)
	return s
}

func randHex(n int) string {
	b := make([]byte, n)
	rand.Read(b)
	return hex.EncodeToString(b)
}

func newToken() string {
	const a = "abcdefghijklmnopqrstuvwxyz0123456789"
	b := make([]byte, 23)
	rand.Read(b)
	for i := range b {
		b[i] = a[int(b[i])%len(a)]
	}
	b[6] = '.'
	return string(b)
}

func clusterCA(cluster string) (*pki.CA, error) {
	c, err1 := os.ReadFile(filepath.Join(cluster, "ca.crt"))
	k, err2 := os.ReadFile(filepath.Join(cluster, "ca.key"))
	if err1 != nil || err2 != nil {
		return nil, errors.New("couldn't validate the identity of the API Server: no cluster is initialized (simulation)")
	}
	return pki.LoadCA(c, k)
}

func addToken(cluster, token string, ttl time.Duration) error {
	os.MkdirAll(filepath.Join(cluster, "tokens"), 0o700)
	exp := time.Now().Add(ttl).Format(time.RFC3339)
	return os.WriteFile(filepath.Join(cluster, "tokens", strings.SplitN(token, ".", 2)[0]), []byte(token+" "+exp), 0o600)
}

func tokenValid(cluster, token string) bool {
	b, err := os.ReadFile(filepath.Join(cluster, "tokens", strings.SplitN(token, ".", 2)[0]))
	if err != nil {
		return false
	}
	f := strings.Fields(string(b))
	exp, err := time.Parse(time.RFC3339, f[1])
	return len(f) == 2 && f[0] == token && err == nil && time.Now().Before(exp)
}

func writeFile(r, p, content string, mode os.FileMode) {
	full := filepath.Join(r, p)
	os.MkdirAll(filepath.Dir(full), 0o755)
	os.WriteFile(full, []byte(content), mode)
}

// kubeletKubeconfig is kubelet.conf as a finished init (after its kubelet-finalize phase) or
// join leaves it: naming the kubelet's rotated client certificate file.
func kubeletKubeconfig(endpoint, name string) string {
	const pem = "/var/lib/kubelet/pki/kubelet-client-current.pem"
	return kubeconfig(endpoint, "system:node:"+name) + "  user:\n    client-certificate: " + pem + "\n    client-key: " + pem + "\n"
}

func kubeconfig(endpoint, user string) string {
	return fmt.Sprintf("apiVersion: v1\nkind: Config\nclusters:\n- cluster:\n    server: https://%s\n  name: kubernetes\nusers:\n- name: %s\n", endpoint, user)
}

func kubeadmInit(r, cluster string, args []string) (int, error) {
	f, pos, err := flags(args, map[string]bool{"config": true}, map[string]bool{"upload-certs": true})
	if err != nil || len(pos) > 0 || f["config"] == "" {
		return 1, fmt.Errorf("kubeadm (simulation): use kubeadm init --config FILE [--upload-certs] (%v)", err)
	}
	if code, err := validate(r, f["config"]); err != nil {
		return code, err
	}
	d, err := docs(r, f["config"])
	if err != nil {
		return 1, err
	}
	fmt.Println("[init] Using Kubernetes version: " + str(d["ClusterConfiguration"], "kubernetesVersion"))
	fmt.Println("[preflight] Running pre-flight checks")
	if err := preflight(controlPlaneChecks(r)...); err != nil {
		return 1, err
	}
	// kubeadm: the default route's interface's address, unless one is advertised.
	apiServer := apiServerEndpoint(mapAt(d["InitConfiguration"], "localAPIEndpoint"), defaultAddress())
	cpe := str(d["ClusterConfiguration"], "controlPlaneEndpoint")
	endpoint := cpe
	if endpoint == "" {
		endpoint = apiServer
	}
	name := str(d["InitConfiguration"], "nodeRegistration", "name")
	ca, err := pki.NewCA("kubernetes")
	if err != nil {
		return 1, err
	}
	os.MkdirAll(cluster, 0o700)
	os.WriteFile(filepath.Join(cluster, "ca.crt"), ca.CertPEM, 0o644)
	os.WriteFile(filepath.Join(cluster, "ca.key"), ca.KeyPEM, 0o600)
	os.WriteFile(filepath.Join(cluster, "endpoint"), []byte(endpoint), 0o644)
	os.Remove(filepath.Join(cluster, cpeFile))
	if cpe != "" {
		os.WriteFile(filepath.Join(cluster, cpeFile), []byte(cpe), 0o644)
	}
	os.Remove(filepath.Join(cluster, podSubnetFile))
	if sub := str(d["ClusterConfiguration"], "networking", "podSubnet"); sub != "" {
		os.WriteFile(filepath.Join(cluster, podSubnetFile), []byte(sub), 0o644)
	}
	// kubeadm mints the first bootstrap token (or the one the config gives) for its ttl,
	// 24 hours when the config has none.
	token, ttl := newToken(), 24*time.Hour
	if bt, ok := d["InitConfiguration"]["bootstrapTokens"].([]any); ok && len(bt) > 0 {
		if m, ok := bt[0].(map[string]any); ok {
			if str(m, "token") != "" {
				token = str(m, "token")
			}
			if v := str(m, "ttl"); v != "" {
				if ttl, err = time.ParseDuration(v); err != nil {
					return 3, fmt.Errorf("bootstrapTokens[0].ttl: %v", err)
				}
			}
		}
	}
	if ttl == 0 {
		ttl = 100 * 365 * 24 * time.Hour
	}
	addToken(cluster, token, ttl)
	writeFile(r, "etc/kubernetes/pki/ca.crt", string(ca.CertPEM), 0o644)
	writeFile(r, "etc/kubernetes/pki/ca.key", string(ca.KeyPEM), 0o600)
	writeFile(r, "etc/kubernetes/admin.conf", kubeconfig(endpoint, "kubernetes-admin"), 0o600)
	writeFile(r, "etc/kubernetes/kubelet.conf", kubeletKubeconfig(endpoint, name), 0o600)
	writeControlPlane(r, kubeadmOwnVersion(r))
	writeFile(cluster, clusterVersionFile, kubeadmOwnVersion(r), 0o644)
	writeFile(r, "var/lib/kubelet/config.yaml", "kind: KubeletConfiguration\n", 0o644)
	writeFile(r, "var/lib/etcd/member/snap/db", "", 0o600)
	writeFile(r, "var/lib/deckhand-sim/kubeadm-node", name, 0o644)
	startKubelet(r)
	addNode(r, cluster, name, "control-plane")
	addEtcdMember(cluster, name)
	addAPIServer(cluster, name, apiServer)
	record(cluster, simrecords.KubeadmInit, name)
	hash := pki.Hash(ca.Cert)

	fmt.Println("[addons] Applied essential addon: CoreDNS")
	fmt.Println("[addons] Applied essential addon: kube-proxy")
	fmt.Print("\nYour Kubernetes control-plane has initialized successfully!\n\nTo start using your cluster, you need to run the following as a regular user:\n\n  mkdir -p $HOME/.kube\n  sudo cp -i /etc/kubernetes/admin.conf $HOME/.kube/config\n  sudo chown $(id -u):$(id -g) $HOME/.kube/config\n\nAlternatively, if you are the root user, you can run:\n\n  export KUBECONFIG=/etc/kubernetes/admin.conf\n\nYou should now deploy a pod network to the cluster.\nRun \"kubectl apply -f [podnetwork].yaml\" with one of the options listed at:\n  https://kubernetes.io/docs/concepts/cluster-administration/addons/\n\n")
	if str(d["ClusterConfiguration"], "controlPlaneEndpoint") != "" {
		if f["upload-certs"] == "true" {
			key := randHex(32)
			os.WriteFile(filepath.Join(cluster, "certificate-key"), []byte(key+" "+time.Now().Add(2*time.Hour).Format(time.RFC3339)), 0o600)
			record(cluster, simrecords.UploadCerts, name)
			fmt.Printf("You can now join any number of the control-plane node running the following command on each as root:\n\n  kubeadm join %s --token %s \\\n\t--discovery-token-ca-cert-hash %s \\\n\t--control-plane --certificate-key %s\n\nPlease note that the certificate-key gives access to cluster sensitive data, keep it secret!\nAs a safeguard, uploaded-certs will be deleted in two hours; If necessary, you can use\n\"kubeadm init phase upload-certs --upload-certs\" to reload certs afterward.\n\n", endpoint, token, hash, key)
		} else {
			fmt.Printf("You can now join any number of control-plane nodes by copying certificate authorities\nand service account keys on each node and then running the following as root:\n\n  kubeadm join %s --token %s \\\n\t--discovery-token-ca-cert-hash %s \\\n\t--control-plane \n\n", endpoint, token, hash)
		}
	}
	fmt.Printf("Then you can join any number of worker nodes by running the following on each as root:\n\nkubeadm join %s --token %s \\\n\t--discovery-token-ca-cert-hash %s \n", endpoint, token, hash)
	return 0, nil
}

// imagesList is `kubeadm config images list --kubernetes-version V [--image-repository R]`:
// the images of kubeimages' table, which records kubeadm v1.33.13's own list.
func imagesList(args []string) (int, error) {
	f, pos, err := flags(args, map[string]bool{"kubernetes-version": true, "image-repository": true}, nil)
	if err != nil || len(pos) > 0 || f["kubernetes-version"] == "" {
		return 1, fmt.Errorf("kubeadm (simulation): use kubeadm config images list --kubernetes-version V [--image-repository R] (%v)", err)
	}
	refs, err := kubeimages.ControlPlaneImages(f["kubernetes-version"], f["image-repository"])
	if err != nil {
		return 1, err
	}
	fmt.Println(strings.Join(refs, "\n"))
	return 0, nil
}

func needAdmin(r string) error {
	if !exists(filepath.Join(r, "etc/kubernetes/admin.conf")) {
		return errors.New("failed to load admin kubeconfig: open /etc/kubernetes/admin.conf: no such file or directory")
	}
	return nil
}

func uploadCerts(r, cluster string, args []string) (int, error) {
	f, pos, err := flags(args, map[string]bool{"config": true, "certificate-key": true}, map[string]bool{"upload-certs": true, "skip-certificate-key-print": true})
	if err != nil || len(pos) > 0 {
		return 1, fmt.Errorf("kubeadm (simulation): %v", err)
	}
	if f["upload-certs"] != "true" {
		fmt.Println("[upload-certs] Skipping phase. Please see --upload-certs")
		return 0, nil
	}
	if err := needAdmin(r); err != nil {
		return 1, err
	}
	if f["config"] != "" {
		if code, err := validate(r, f["config"]); err != nil {
			return code, err
		}
	}
	key := f["certificate-key"]
	if key == "" {
		key = randHex(32)
	}
	os.WriteFile(filepath.Join(cluster, "certificate-key"), []byte(key+" "+time.Now().Add(2*time.Hour).Format(time.RFC3339)), 0o600)
	record(cluster, simrecords.UploadCerts, nodeName(r))
	fmt.Println("[upload-certs] Storing the certificates in Secret \"kubeadm-certs\" in the \"kube-system\" Namespace")
	fmt.Println("[upload-certs] Using certificate key:")
	fmt.Println(key)
	return 0, nil
}

func tokenCreate(r, cluster string, args []string) (int, error) {
	f, pos, err := flags(args, map[string]bool{"ttl": true, "certificate-key": true, "description": true, "config": true}, map[string]bool{"print-join-command": true})
	if err != nil || len(pos) > 1 {
		return 1, fmt.Errorf("kubeadm (simulation): %v", err)
	}
	if f["certificate-key"] != "" && f["print-join-command"] != "true" {
		return 1, errors.New("cannot use --certificate-key without --print-join-command")
	}
	if err := needAdmin(r); err != nil {
		return 1, err
	}
	ttl := 24 * time.Hour
	if f["ttl"] != "" {
		if ttl, err = time.ParseDuration(f["ttl"]); err != nil {
			return 1, fmt.Errorf("invalid argument %q for \"--ttl\" flag: %v", f["ttl"], err)
		}
	}
	token := newToken()
	if len(pos) == 1 {
		if !tokenRE.MatchString(pos[0]) {
			return 1, fmt.Errorf("token %q was not of form %q", pos[0], `\A([a-z0-9]{6})\.([a-z0-9]{16})\z`)
		}
		token = pos[0]
	}
	if ttl == 0 {
		ttl = 100 * 365 * 24 * time.Hour
	}
	addToken(cluster, token, ttl)
	record(cluster, simrecords.TokenCreate, strings.SplitN(token, ".", 2)[0])
	if f["print-join-command"] != "true" {
		fmt.Println(token)
		return 0, nil
	}
	ca, err := clusterCA(cluster)
	if err != nil {
		return 1, err
	}
	endpoint, _ := os.ReadFile(filepath.Join(cluster, "endpoint"))
	line := fmt.Sprintf("kubeadm join %s --token %s --discovery-token-ca-cert-hash %s ", endpoint, token, pki.Hash(ca.Cert))
	if k := f["certificate-key"]; k != "" {
		line += "--control-plane --certificate-key " + k
	}
	fmt.Println(line)
	return 0, nil
}

func tokenDelete(cluster string, args []string) (int, error) {
	_, pos, err := flags(args, map[string]bool{"kubeconfig": true}, nil)
	if err != nil || len(pos) == 0 {
		return 1, errors.New("missing subcommand; 'token delete' is missing token of form \"[a-z0-9]{6}\" or \"[a-z0-9]{6}\\.[a-z0-9]{16}\"")
	}
	for _, id := range pos {
		id = strings.SplitN(id, ".", 2)[0]
		if !regexp.MustCompile(`^[a-z0-9]{6}$`).MatchString(id) {
			return 1, fmt.Errorf("given token didn't match pattern \"[a-z0-9]{6}\" or \"[a-z0-9]{6}\\.[a-z0-9]{16}\"")
		}
		if err := os.Remove(filepath.Join(cluster, "tokens", id)); err != nil {
			return 1, fmt.Errorf("failed to delete bootstrap token %q: secrets \"bootstrap-token-%s\" not found", id, id)
		}
		record(cluster, simrecords.TokenDelete, id)
		fmt.Printf("bootstrap token %q deleted\n", id)
	}
	return 0, nil
}

func kubeadmJoin(r, cluster string, args []string) (int, error) {
	f, pos, err := flags(args, map[string]bool{"config": true}, nil)
	if err != nil || len(pos) > 0 || f["config"] == "" {
		return 1, fmt.Errorf("kubeadm (simulation): use kubeadm join --config FILE (%v)", err)
	}
	if code, err := validate(r, f["config"]); err != nil {
		return code, err
	}
	d, err := docs(r, f["config"])
	if err != nil {
		return 1, err
	}
	jc := d["JoinConfiguration"]
	if code, err := checkDiscovery(jc); err != nil {
		return code, err
	}
	controlPlane := jc["controlPlane"] != nil
	fmt.Println("[preflight] Running pre-flight checks")
	checks := []check{fileAvailable(r, kubeletConf), fileAvailable(r, bootstrapKubeletConf)}
	if !controlPlane {
		caPath := str(jc, "caCertPath")
		if caPath == "" {
			caPath = defaultCACertPath
		}
		checks = append(checks, fileAvailable(r, caPath))
	}
	if err := preflight(checks...); err != nil {
		return 1, err
	}
	ca, err := discover(r, cluster, jc)
	if err != nil {
		return 1, phaseError("preflight", err)
	}
	key := str(jc, "controlPlane", "certificateKey")
	if controlPlane {
		if err := readyForControlPlane(r, cluster, key); err != nil {
			return 1, phaseError("preflight", err)
		}
		fmt.Println("[preflight] Running pre-flight checks before initializing the new control plane instance")
		if err := preflight(controlPlaneChecks(r)...); err != nil {
			return 1, err
		}
		fmt.Println("[preflight] Pulling images required for setting up a Kubernetes cluster")
		fmt.Println("[preflight] This might take a minute or two, depending on the speed of your internet connection")
		fmt.Println("[preflight] You can also perform this action beforehand using 'kubeadm config images pull'")
		if key != "" {
			if err := downloadCerts(cluster, key); err != nil {
				return 1, phaseError("control-plane-prepare/download-certs", fmt.Errorf("error downloading certs: %w", err))
			}
		}
	}
	name := str(jc, "nodeRegistration", "name")
	endpoint, _ := os.ReadFile(filepath.Join(cluster, "endpoint"))
	if err := joinDelay(r); err != nil {
		return 1, err
	}
	// Like the real kubeadm, it prints as it goes: a kubeadm whose stdout is a pipe to a
	// dead agent dies of SIGPIPE here, before it changes anything.
	fmt.Println("[kubelet-start] Writing kubelet configuration to file \"/var/lib/kubelet/config.yaml\"")
	if controlPlane {
		writeFile(r, "etc/kubernetes/admin.conf", kubeconfig(string(endpoint), "kubernetes-admin"), 0o600)
		// The shared certificates a control-plane join downloads (kubeadm-certs).
		writeFile(r, "etc/kubernetes/pki/ca.key", string(ca.KeyPEM), 0o600)
		writeControlPlane(r, clusterVersion(cluster, r))
		writeFile(r, "var/lib/etcd/member/snap/db", "", 0o600)
	}
	writeFile(r, "etc/kubernetes/pki/ca.crt", string(ca.CertPEM), 0o644)
	writeFile(r, "etc/kubernetes/kubelet.conf", kubeletKubeconfig(string(endpoint), name), 0o600)
	writeFile(r, "var/lib/kubelet/config.yaml", "kind: KubeletConfiguration\n", 0o644)
	writeFile(r, "var/lib/deckhand-sim/kubeadm-node", name, 0o644)
	startKubelet(r)
	role := "worker"
	if controlPlane {
		role = "control-plane"
		addEtcdMember(cluster, name)
	}
	addNode(r, cluster, name, role)
	if controlPlane {
		addAPIServer(cluster, name, apiServerEndpoint(mapAt(jc, "controlPlane", "localAPIEndpoint"), hostAddress(r, cluster)))
	}
	record(cluster, simrecords.KubeadmJoin, name)
	if controlPlane {
		fmt.Print("\nThis node has joined the cluster and a new control plane instance was created:\n\n* Certificate signing request was sent to apiserver and approval was received.\n* The Kubelet was informed of the new secure connection details.\n* Control plane label and taint were applied to the new node.\n* The Kubernetes control plane instances scaled up.\n* A new etcd member was added to the local/stacked etcd cluster.\n\nTo start administering your cluster from this node, you need to run the following as a regular user:\n\n\tmkdir -p $HOME/.kube\n\tsudo cp -i /etc/kubernetes/admin.conf $HOME/.kube/config\n\tsudo chown $(id -u):$(id -g) $HOME/.kube/config\n\nRun 'kubectl get nodes' to see this node join the cluster.\n\n")
	} else {
		fmt.Print("\nThis node has joined the cluster:\n* Certificate signing request was sent to apiserver and a response was received.\n* The Kubelet was informed of the new secure connection details.\n\nRun 'kubectl get nodes' on the control-plane to see this node join the cluster.\n\n")
	}
	return 0, nil
}

// checkDiscovery is kubeadm's validation of the JoinConfiguration's discovery (exit code
// 3), and the simulation's refusal of what Deckhand never uses.
func checkDiscovery(jc map[string]any) (int, error) {
	if mapAt(jc, "discovery", "file") != nil {
		return 1, errors.New("kubeadm (simulation): discovery.file is not simulated: Deckhand joins with token discovery")
	}
	bt := mapAt(jc, "discovery", "bootstrapToken")
	if bt == nil {
		return 3, errors.New(`discovery: Invalid value: "": bootstrapToken or file must be set`)
	}
	if skip, _ := bt["unsafeSkipCAVerification"].(bool); skip {
		return 1, errors.New("kubeadm (simulation): discovery.bootstrapToken.unsafeSkipCAVerification is not simulated: Deckhand always pins the cluster CA with caCertHashes")
	}
	if len(anyStrings(bt["caCertHashes"])) == 0 {
		return 3, errors.New(`discovery.bootstrapToken.caCertHashes: Invalid value: "": using token-based discovery without caCertHashes can be unsafe. Set unsafeSkipCAVerification as true in your kubeadm config file or pass --discovery-token-unsafe-skip-ca-verification flag to continue`)
	}
	return 0, nil
}

// readyForControlPlane is kubeadm's check that the cluster can take another control plane
// and that the node will have the shared certificates.
func readyForControlPlane(r, cluster, key string) error {
	reason := ""
	switch {
	case !exists(filepath.Join(cluster, cpeFile)):
		reason = "unable to add a new control plane instance to a cluster that doesn't have a stable controlPlaneEndpoint address"
	case key == "" && !exists(filepath.Join(r, "etc/kubernetes/pki/ca.key")):
		reason = "[failure loading key for CA: couldn't load the private key file /etc/kubernetes/pki/ca.key: open /etc/kubernetes/pki/ca.key: no such file or directory]"
	default:
		return nil
	}
	return errors.New("\nOne or more conditions for hosting a new control plane instance is not satisfied.\n\n" + reason +
		"\n\nPlease ensure that:\n* The cluster has a stable controlPlaneEndpoint address.\n* The certificates that must be shared among control plane instances are provided.\n\n")
}

// downloadCerts is the download of the kubeadm-certs Secret that upload-certs stored,
// decrypted with the certificate key: it fails as kubeadm's copycerts.DownloadCerts does.
func downloadCerts(cluster, key string) error {
	fmt.Println("[download-certs] Downloading the certificates in Secret \"kubeadm-certs\" in the \"kube-system\" Namespace")
	decoded, err := hex.DecodeString(key)
	if err != nil {
		return fmt.Errorf("error decoding certificate key: %w", err)
	}
	b, err := os.ReadFile(filepath.Join(cluster, "certificate-key"))
	f := strings.Fields(string(b))
	var exp time.Time
	if err == nil && len(f) == 2 {
		exp, err = time.Parse(time.RFC3339, f[1])
	}
	if err != nil || len(f) != 2 || !time.Now().Before(exp) {
		return errors.New("error downloading the secret: Secret \"kubeadm-certs\" was not found in the \"kube-system\" Namespace. This Secret might have expired. Please, run `kubeadm init phase upload-certs --upload-certs` on a control plane to generate a new one")
	}
	if f[0] != key {
		// AES-GCM: a key of the wrong size is refused, one of the right size fails to open.
		cause := "cipher: message authentication failed"
		if n := len(decoded); n != 16 && n != 24 && n != 32 {
			cause = "crypto/aes: invalid key size " + strconv.Itoa(n)
		}
		return errors.New("error decoding secret data with provided key: " + cause)
	}
	fmt.Println("[download-certs] Saving the certificates to the folder: \"/etc/kubernetes/pki\"")
	return nil
}

func kubeadmReset(r, cluster string, args []string) (int, error) {
	norm := make([]string, len(args))
	for i, a := range args {
		if a == "-f" {
			a = "--force"
		}
		norm[i] = a
	}
	f, pos, err := flags(norm, map[string]bool{"cri-socket": true, "kubeconfig": true}, map[string]bool{"force": true, "cleanup-tmp-dir": true})
	if err != nil || len(pos) > 0 {
		return 1, fmt.Errorf("kubeadm (simulation): %v", err)
	}
	name := nodeName(r)
	controlPlane := exists(filepath.Join(r, "etc/kubernetes/manifests/etcd.yaml"))
	// kubeadm reads the cluster's configuration through the kubeconfig (admin.conf, which
	// only a control plane has), and this node's registration from its Node object; without
	// them it warns, and cannot remove this node's etcd member.
	fetched := false
	if kc := filepath.Join(r, adminConf); exists(kc) {
		fmt.Print("[reset] Reading configuration from the \"kubeadm-config\" ConfigMap in namespace \"kube-system\"...\n[reset] Use 'kubeadm init phase upload-config --config your-config-file' to re-upload it.\n")
		endpoint := server(kc)
		if err := dial(r, cluster, endpoint); err != nil {
			klogWarning("reset.go:141", fmt.Sprintf("[reset] Unable to fetch the kubeadm-config ConfigMap from cluster: failed to get config map: Get \"https://%s/api/v1/namespaces/kube-system/configmaps/kubeadm-config?timeout=10s\": %v", endpoint, err))
		} else if name == "" || !nodeExists(cluster, name) {
			klogWarning("reset.go:141", fmt.Sprintf("[reset] Unable to fetch the kubeadm-config ConfigMap from cluster: failed to get node registration: failed to get corresponding node: nodes %q not found", name))
		} else {
			fetched = true
		}
	}
	if f["force"] != "true" {
		klogWarning("preflight.go:56", "[reset] WARNING: Changes made to this host by 'kubeadm init' or 'kubeadm join' will be reverted.")
		fmt.Print("[reset] Are you sure you want to proceed? [y/N]: ")
		answer, _ := bufio.NewReader(os.Stdin).ReadString('\n')
		if a := strings.TrimSpace(answer); !strings.EqualFold(a, "y") && !strings.EqualFold(a, "yes") {
			return 1, phaseError("preflight", errors.New("won't proceed; the user didn't answer (Y|y) in order to continue"))
		}
	}
	fmt.Println("[preflight] Running pre-flight checks")
	// Phase remove-etcd-member: a stacked etcd member leaves the cluster, then its data
	// goes; kubeadm finds the data directory in the configuration it fetched, else in the
	// etcd manifest.
	if fetched || controlPlane {
		if fetched && controlPlane {
			if err := os.Remove(filepath.Join(cluster, simrecords.EtcdDir, name)); err == nil {
				record(cluster, simrecords.EtcdMemberRemove, name)
			}
		}
		if entries, _ := os.ReadDir(filepath.Join(r, etcdDataDir)); len(entries) > 0 {
			fmt.Println("[reset] Deleted contents of the etcd data directory: " + etcdDataDir)
		}
	} else {
		fmt.Print("[reset] No etcd config found. Assuming external etcd\n[reset] Please, manually reset etcd to prevent further issues\n")
	}
	// The API server stops with the kubelet. As with the real kubeadm reset, the Node
	// object stays (NotReady once the kubelet stops): it is deleted through the API
	// (kubectl delete node), not by the reset.
	if name != "" && controlPlane {
		removeAPIServer(cluster, name)
	}
	for _, dir := range []string{"etc/kubernetes/manifests", "var/lib/kubelet", "etc/kubernetes/pki", "var/lib/etcd"} {
		entries, _ := os.ReadDir(filepath.Join(r, dir))
		for _, e := range entries {
			os.RemoveAll(filepath.Join(r, dir, e.Name()))
		}
	}
	for _, file := range []string{"admin.conf", "super-admin.conf", "kubelet.conf", "bootstrap-kubelet.conf", "controller-manager.conf", "scheduler.conf"} {
		os.Remove(filepath.Join(r, "etc/kubernetes", file))
	}
	if f["cleanup-tmp-dir"] == "true" {
		os.RemoveAll(filepath.Join(r, "etc/kubernetes/tmp"))
	}
	os.Remove(filepath.Join(r, "var/lib/deckhand-sim/kubeadm-node"))
	os.Remove(filepath.Join(r, "var/lib/deckhand-sim/systemd/kubelet.active")) // [reset] Stopping the kubelet service
	record(cluster, simrecords.KubeadmReset, name)
	fmt.Print("[reset] Stopping the kubelet service\n[reset] Unmounting mounted directories in \"/var/lib/kubelet\"\n[reset] Deleting contents of directories: [/etc/kubernetes/manifests /var/lib/kubelet /etc/kubernetes/pki]\n[reset] Deleting files: [/etc/kubernetes/admin.conf /etc/kubernetes/super-admin.conf /etc/kubernetes/kubelet.conf /etc/kubernetes/bootstrap-kubelet.conf /etc/kubernetes/controller-manager.conf /etc/kubernetes/scheduler.conf]\n\nThe reset process does not perform cleanup of CNI plugin configuration,\nnetwork filtering rules and kubeconfig files.\n\nFor information on how to perform this cleanup manually, please see:\n    https://k8s.io/docs/reference/setup-tools/kubeadm/kubeadm-reset/\n\n")
	return 0, nil
}

// klogWarning prints a warning to stderr the way kubeadm's klog does, headed by the
// source line that logs it in kubeadm v1.33.13.
func klogWarning(at, msg string) {
	fmt.Fprintf(os.Stderr, "W%s %7d %s] %s\n", time.Now().Format("0102 15:04:05.000000"), os.Getpid(), at, msg)
}

// defaultAddress is this machine's first non-loopback IPv4 address, standing in for the
// address of the default route's interface that kubeadm picks.
func defaultAddress() string {
	addrs, _ := net.InterfaceAddrs()
	for _, a := range addrs {
		if ip, ok := a.(*net.IPNet); ok && !ip.IP.IsLoopback() && ip.IP.To4() != nil {
			return ip.IP.String()
		}
	}
	return "127.0.0.1"
}

// startKubelet is kubeadm's [kubelet-start] phase. A test marks a host's kubelet broken
// (ROOT/var/lib/deckhand-sim/kubelet-broken) to simulate one that never comes up.
func startKubelet(r string) {
	if exists(filepath.Join(r, "var/lib/deckhand-sim/kubelet-broken")) {
		return
	}
	v, _ := toolVersion(r, "kubelet")
	writeFile(r, kubeletRunningFile, v, 0o644)
	writeFile(r, "var/lib/deckhand-sim/systemd/kubelet.active", "", 0o644)
}

// kubeletRunningFile holds the version of the kubelet running on a simulated host: the one
// installed when it last started.
const kubeletRunningFile = "var/lib/deckhand-sim/kubelet-running-version"

// nodeName is the node this host joined as ("" if none).
func nodeName(r string) string {
	b, _ := os.ReadFile(filepath.Join(r, "var/lib/deckhand-sim/kubeadm-node"))
	return strings.TrimSpace(string(b))
}

// joinDelay is the slow-join test knob.
func joinDelay(r string) error {
	b, err := os.ReadFile(filepath.Join(r, "var/lib/deckhand-sim/kubeadm-join-delay"))
	if err != nil {
		return nil
	}
	d, err := time.ParseDuration(strings.TrimSpace(string(b)))
	if err != nil {
		return fmt.Errorf("kubeadm (simulation): var/lib/deckhand-sim/kubeadm-join-delay: %v", err)
	}
	time.Sleep(d)
	return nil
}

// addNode registers a Node object and the host root it runs on (first, so that kubectl
// never sees the node without it).
func addNode(r, cluster, name, role string) {
	hostAddress(r, cluster)
	allocatePodCIDR(cluster, name)
	for _, f := range [][2]string{{simrecords.RootsDir, r}, {simrecords.NodesDir, role}} {
		os.MkdirAll(filepath.Join(cluster, f[0]), 0o755)
		os.WriteFile(filepath.Join(cluster, f[0], name), []byte(f[1]), 0o644)
	}
}

// forgetNode removes a Node object and what the simulation keeps about it.
func forgetNode(cluster, name string) {
	releasePodCIDR(cluster, name)
	for _, dir := range []string{simrecords.NodesDir, simrecords.RootsDir, cordonedDir, annotationsDir, versionsDir} {
		os.Remove(filepath.Join(cluster, dir, name))
	}
}

func addEtcdMember(cluster, name string) {
	os.MkdirAll(filepath.Join(cluster, simrecords.EtcdDir), 0o755)
	os.WriteFile(filepath.Join(cluster, simrecords.EtcdDir, name), nil, 0o644)
}

// record appends to the cluster's records the effect a command just had. A record that
// cannot be written is reported, not fatal: the effect already happened.
func record(cluster, command, subject string) {
	if err := simrecords.Append(cluster, command, subject); err != nil {
		fmt.Fprintln(os.Stderr, "hostsim:", err)
	}
}

// clusterVersionFile in the cluster directory holds the cluster's version (kubeadm-config's
// kubernetesVersion): init writes it, upgrade apply changes it.
const clusterVersionFile = "kubernetes-version"

// kubeadmOwnVersion is this host's kubeadm's version.
func kubeadmOwnVersion(r string) string {
	v, _ := toolVersion(r, "kubeadm")
	return v
}

// clusterVersion is the cluster's version (a cluster from before it was recorded: this
// host's kubeadm's).
func clusterVersion(cluster, r string) string {
	if b, err := os.ReadFile(filepath.Join(cluster, clusterVersionFile)); err == nil && len(b) > 0 {
		return strings.TrimSpace(string(b))
	}
	return kubeadmOwnVersion(r)
}

// writeControlPlane writes the static pods of a control plane at version.
func writeControlPlane(r, version string) {
	for _, c := range controlPlaneManifests {
		image := "registry.k8s.io/" + c + ":" + version
		if c == "etcd" {
			image = "registry.k8s.io/etcd:3.5.24-0"
		}
		writeFile(r, "etc/kubernetes/manifests/"+c+".yaml", "apiVersion: v1\nkind: Pod\nmetadata:\n  name: "+c+"\nspec:\n  containers:\n  - name: "+c+"\n    image: "+image+"\n", 0o600)
	}
}

// kubeadmUpgradeApply is `kubeadm upgrade apply VERSION --yes` on a control plane: the
// cluster's version and this node's static pods move to VERSION, which this kubeadm must be
// and at most one minor past the cluster's.
func kubeadmUpgradeApply(r, cluster string, args []string) (int, error) {
	f, pos, err := flags(args, map[string]bool{"config": true}, map[string]bool{"yes": true, "y": true, "force": true, "f": true, "etcd-upgrade": true, "certificate-renewal": true})
	if err != nil {
		return 1, err
	}
	if len(pos) != 1 {
		return 1, errors.New("[upgrade/version] FATAL: the version argument is required (simulation)")
	}
	if _, yes := f["yes"]; !yes {
		return 1, errors.New("[upgrade] Are you sure you want to proceed? [y/N]: no terminal (simulation: pass --yes)")
	}
	target := pos[0]
	if !exists(filepath.Join(r, "etc/kubernetes/manifests/kube-apiserver.yaml")) {
		return 1, errors.New("[upgrade] FATAL: this is not a control-plane node (simulation): no kube-apiserver static pod")
	}
	if own := kubeadmOwnVersion(r); own != target {
		return 1, fmt.Errorf("[upgrade/version] FATAL: the --version argument is invalid due to these errors:\n\n\t- Specified version to upgrade to %q is higher than the kubeadm version %q. Upgrade kubeadm first using the tool you used to install kubeadm", target, own)
	}
	if cur := clusterVersion(cluster, r); minorNum(target) > minorNum(cur)+1 || minorNum(target) < minorNum(cur) {
		return 1, fmt.Errorf("[upgrade/version] FATAL: the --version argument is invalid due to these errors:\n\n\t- Specified version to upgrade to %q is too high; kubeadm can upgrade only 1 minor version at a time (the cluster runs %q)", target, cur)
	}
	writeControlPlane(r, target)
	writeFile(cluster, clusterVersionFile, target, 0o644)
	record(cluster, simrecords.KubeadmUpgrade, nodeName(r))
	fmt.Printf("[upgrade] SUCCESS! A control plane node of your cluster was upgraded to %q.\n", target)
	return 0, nil
}

// kubeadmUpgradeNode is `kubeadm upgrade node`: a control plane's static pods move to the
// cluster's version; a worker's kubelet configuration is fetched again.
func kubeadmUpgradeNode(r, cluster string, args []string) (int, error) {
	if _, _, err := flags(args, map[string]bool{"config": true}, map[string]bool{"etcd-upgrade": true, "certificate-renewal": true}); err != nil {
		return 1, err
	}
	if !exists(filepath.Join(r, "etc/kubernetes/kubelet.conf")) {
		return 1, errors.New("[upgrade] FATAL: this node has not joined a cluster (simulation): no /etc/kubernetes/kubelet.conf")
	}
	v := clusterVersion(cluster, r)
	if exists(filepath.Join(r, "etc/kubernetes/manifests/kube-apiserver.yaml")) {
		if own := kubeadmOwnVersion(r); own != v {
			return 1, fmt.Errorf("[upgrade] FATAL: the cluster runs %q and this kubeadm is %q: upgrade kubeadm first", v, own)
		}
		writeControlPlane(r, v)
	}
	record(cluster, simrecords.KubeadmUpgrade, nodeName(r))
	fmt.Println("[upgrade] The configuration for this node was successfully upgraded!")
	return 0, nil
}

func minorNum(v string) int {
	f := strings.SplitN(strings.TrimPrefix(v, "v"), ".", 3)
	if len(f) < 2 {
		return -1
	}
	n, _ := strconv.Atoi(f[1])
	return n
}
