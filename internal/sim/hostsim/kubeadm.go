package main

import (
	"crypto/rand"
	"encoding/hex"
	"errors"
	"fmt"
	"net"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"strings"
	"time"

	"sigs.k8s.io/yaml"

	"github.com/deckhandhq/deckhand/internal/pki"
	"github.com/deckhandhq/deckhand/internal/sim/simrecords"
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
// podcidrs/NAME (its spec.podCIDR, nodenet.go), etcd/NAME (a stacked etcd member), tokens/ID, ca.crt, endpoint and certificate-key.
//
// Test knob: ROOT/var/lib/deckhand-sim/kubeadm-join-delay (a Go duration) makes kubeadm
// join wait that long after its preflight checks and before it changes anything, so a test
// can kill the agent while kubeadm runs.

var tokenRE = regexp.MustCompile(`^[a-z0-9]{6}\.[a-z0-9]{16}$`)

func kubeadm(r string, args []string) (int, error) {
	if len(args) == 3 && args[0] == "version" && args[1] == "-o" && args[2] == "short" {
		return kubeadmVersion(r, args)
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

// validate checks a config file with the real kubeadm when it is available.
func validate(r, file string) error {
	data, err := os.ReadFile(filepath.Join(r, file))
	if err != nil {
		return fmt.Errorf("unable to read config from %q : open %s: no such file or directory", file, file)
	}
	if real := os.Getenv("DECKHAND_SIM_REAL_KUBEADM"); real != "" {
		tmp, err := os.CreateTemp("", "kubeadm-sim-*.yaml")
		if err != nil {
			return err
		}
		defer os.Remove(tmp.Name())
		tmp.Write(data)
		tmp.Close()
		if out, err := exec.Command(real, "config", "validate", "--config", tmp.Name()).CombinedOutput(); err != nil {
			return fmt.Errorf("%s", strings.TrimSpace(string(out)))
		}
	}
	return nil
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

func kubeconfig(endpoint, user string) string {
	return fmt.Sprintf("apiVersion: v1\nkind: Config\nclusters:\n- cluster:\n    server: https://%s\n  name: kubernetes\nusers:\n- name: %s\n", endpoint, user)
}

func kubeadmInit(r, cluster string, args []string) (int, error) {
	f, pos, err := flags(args, map[string]bool{"config": true}, map[string]bool{"upload-certs": true})
	if err != nil || len(pos) > 0 || f["config"] == "" {
		return 1, fmt.Errorf("kubeadm (simulation): use kubeadm init --config FILE [--upload-certs] (%v)", err)
	}
	if err := validate(r, f["config"]); err != nil {
		return 1, err
	}
	if exists(filepath.Join(r, "etc/kubernetes/manifests/kube-apiserver.yaml")) {
		return 1, errors.New("[preflight] Some fatal errors occurred:\n\t[ERROR FileAvailable--etc-kubernetes-manifests-kube-apiserver.yaml]: /etc/kubernetes/manifests/kube-apiserver.yaml already exists\n[preflight] If you know what you are doing, you can make a check non-fatal with `--ignore-preflight-errors=...`")
	}
	d, err := docs(r, f["config"])
	if err != nil {
		return 1, err
	}
	endpoint := str(d["ClusterConfiguration"], "controlPlaneEndpoint")
	if endpoint == "" {
		addr := str(d["InitConfiguration"], "localAPIEndpoint", "advertiseAddress")
		if addr == "" {
			addr = defaultAddress() // kubeadm: the default route's interface
		}
		endpoint = net.JoinHostPort(addr, "6443")
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
	os.Remove(filepath.Join(cluster, podSubnetFile))
	if sub := str(d["ClusterConfiguration"], "networking", "podSubnet"); sub != "" {
		os.WriteFile(filepath.Join(cluster, podSubnetFile), []byte(sub), 0o644)
	}
	token := newToken()
	if bt, ok := d["InitConfiguration"]["bootstrapTokens"].([]any); ok && len(bt) > 0 {
		if m, ok := bt[0].(map[string]any); ok && str(m, "token") != "" {
			token = str(m, "token")
		}
	}
	addToken(cluster, token, 24*time.Hour)
	writeFile(r, "etc/kubernetes/pki/ca.crt", string(ca.CertPEM), 0o644)
	writeFile(r, "etc/kubernetes/pki/ca.key", string(ca.KeyPEM), 0o600)
	writeFile(r, "etc/kubernetes/admin.conf", kubeconfig(endpoint, "kubernetes-admin"), 0o600)
	writeFile(r, "etc/kubernetes/kubelet.conf", kubeconfig(endpoint, "system:node:"+name), 0o600)
	for _, c := range []string{"kube-apiserver", "kube-controller-manager", "kube-scheduler", "etcd"} {
		writeFile(r, "etc/kubernetes/manifests/"+c+".yaml", "apiVersion: v1\nkind: Pod\nmetadata:\n  name: "+c+"\n", 0o600)
	}
	writeFile(r, "var/lib/kubelet/config.yaml", "kind: KubeletConfiguration\n", 0o644)
	writeFile(r, "var/lib/etcd/member/snap/db", "", 0o600)
	writeFile(r, "var/lib/deckhand-sim/kubeadm-node", name, 0o644)
	startKubelet(r)
	addNode(r, cluster, name, "control-plane")
	addEtcdMember(cluster, name)
	record(cluster, simrecords.KubeadmInit, name)
	hash := pki.Hash(ca.Cert)

	fmt.Println("[init] Using Kubernetes version: " + str(d["ClusterConfiguration"], "kubernetesVersion"))
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
		if err := validate(r, f["config"]); err != nil {
			return 1, err
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
	fmt.Println("[preflight] Running pre-flight checks")
	if err := validate(r, f["config"]); err != nil {
		return 1, err
	}
	if exists(filepath.Join(r, "etc/kubernetes/kubelet.conf")) {
		return 1, errors.New("[preflight] Some fatal errors occurred:\n\t[ERROR FileAvailable--etc-kubernetes-kubelet.conf]: /etc/kubernetes/kubelet.conf already exists")
	}
	d, err := docs(r, f["config"])
	if err != nil {
		return 1, err
	}
	jc := d["JoinConfiguration"]
	token := str(jc, "discovery", "bootstrapToken", "token")
	if !tokenValid(cluster, token) {
		return 1, errors.New("error execution phase preflight: couldn't validate the identity of the API Server: could not find a JWS signature in the cluster-info ConfigMap for token ID \"" + strings.SplitN(token, ".", 2)[0] + "\"")
	}
	ca, err := clusterCA(cluster)
	if err != nil {
		return 1, err
	}
	hashes, _ := jc["discovery"].(map[string]any)["bootstrapToken"].(map[string]any)["caCertHashes"].([]any)
	matched := false
	for _, h := range hashes {
		if h == pki.Hash(ca.Cert) {
			matched = true
		}
	}
	if !matched {
		return 1, fmt.Errorf("error execution phase preflight: couldn't validate the identity of the API Server: cluster CA found in cluster-info ConfigMap is invalid: none of the public keys \"%s\" are pinned", pki.Hash(ca.Cert))
	}
	name := str(jc, "nodeRegistration", "name")
	endpoint, _ := os.ReadFile(filepath.Join(cluster, "endpoint"))
	controlPlane := jc["controlPlane"] != nil
	if controlPlane {
		b, err := os.ReadFile(filepath.Join(cluster, "certificate-key"))
		f := strings.Fields(string(b))
		var exp time.Time
		perr := errors.New("no certificate key")
		if len(f) == 2 {
			exp, perr = time.Parse(time.RFC3339, f[1])
		}
		if err != nil || perr != nil || f[0] != str(jc, "controlPlane", "certificateKey") || time.Now().After(exp) {
			return 1, errors.New("error execution phase control-plane-prepare/download-certs: error downloading certs: error downloading the secret: Secret \"kubeadm-certs\" was not found in the \"kube-system\" Namespace. This Secret might have expired. Please, run `kubeadm init phase upload-certs --upload-certs` on a control plane to generate a new one")
		}
	}
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
		for _, c := range []string{"kube-apiserver", "kube-controller-manager", "kube-scheduler", "etcd"} {
			writeFile(r, "etc/kubernetes/manifests/"+c+".yaml", "apiVersion: v1\nkind: Pod\n", 0o600)
		}
		writeFile(r, "var/lib/etcd/member/snap/db", "", 0o600)
	}
	writeFile(r, "etc/kubernetes/pki/ca.crt", string(ca.CertPEM), 0o644)
	writeFile(r, "etc/kubernetes/kubelet.conf", kubeconfig(string(endpoint), "system:node:"+name), 0o600)
	writeFile(r, "var/lib/kubelet/config.yaml", "kind: KubeletConfiguration\n", 0o644)
	writeFile(r, "var/lib/deckhand-sim/kubeadm-node", name, 0o644)
	startKubelet(r)
	role := "worker"
	if controlPlane {
		role = "control-plane"
		addEtcdMember(cluster, name)
	}
	addNode(r, cluster, name, role)
	record(cluster, simrecords.KubeadmJoin, name)
	if controlPlane {
		fmt.Print("\nThis node has joined the cluster and a new control plane instance was created:\n\n* Certificate signing request was sent to apiserver and approval was received.\n* The Kubelet was informed of the new secure connection details.\n* Control plane label and taint were applied to the new node.\n* The Kubernetes control plane instances scaled up.\n* A new etcd member was added to the local/stacked etcd cluster.\n\nTo start administering your cluster from this node, you need to run the following as a regular user:\n\n\tmkdir -p $HOME/.kube\n\tsudo cp -i /etc/kubernetes/admin.conf $HOME/.kube/config\n\tsudo chown $(id -u):$(id -g) $HOME/.kube/config\n\nRun 'kubectl get nodes' to see this node join the cluster.\n\n")
	} else {
		fmt.Print("\nThis node has joined the cluster:\n* Certificate signing request was sent to apiserver and a response was received.\n* The Kubelet was informed of the new secure connection details.\n\nRun 'kubectl get nodes' on the control-plane to see this node join the cluster.\n\n")
	}
	return 0, nil
}

func kubeadmReset(r, cluster string, args []string) (int, error) {
	norm := make([]string, len(args))
	for i, a := range args {
		if a == "-f" {
			a = "--force"
		}
		norm[i] = a
	}
	f, pos, err := flags(norm, map[string]bool{"cri-socket": true, "kubeconfig": true}, map[string]bool{"force": true})
	if err != nil || len(pos) > 0 {
		return 1, fmt.Errorf("kubeadm (simulation): %v", err)
	}
	if f["force"] != "true" {
		return 1, errors.New("[reset] Are you sure you want to proceed? [y/N]: aborted reset operation (no terminal)")
	}
	name := nodeName(r)
	// Phase remove-etcd-member, which runs first: a stacked etcd member leaves the cluster.
	if name != "" && exists(filepath.Join(r, "etc/kubernetes/manifests/etcd.yaml")) {
		if err := os.Remove(filepath.Join(cluster, simrecords.EtcdDir, name)); err == nil {
			record(cluster, simrecords.EtcdMemberRemove, name)
		}
	}
	// As real kubeadm reset, the Node object stays (NotReady once the kubelet stops): it is
	// deleted through the API (kubectl delete node), not by the reset.
	for _, dir := range []string{"etc/kubernetes/manifests", "var/lib/kubelet", "etc/kubernetes/pki", "var/lib/etcd"} {
		entries, _ := os.ReadDir(filepath.Join(r, dir))
		for _, e := range entries {
			os.RemoveAll(filepath.Join(r, dir, e.Name()))
		}
	}
	for _, file := range []string{"admin.conf", "super-admin.conf", "kubelet.conf", "bootstrap-kubelet.conf", "controller-manager.conf", "scheduler.conf"} {
		os.Remove(filepath.Join(r, "etc/kubernetes", file))
	}
	os.Remove(filepath.Join(r, "var/lib/deckhand-sim/kubeadm-node"))
	os.Remove(filepath.Join(r, "var/lib/deckhand-sim/systemd/kubelet.active")) // [reset] Stopping the kubelet service
	record(cluster, simrecords.KubeadmReset, name)
	fmt.Print("[preflight] Running pre-flight checks\n[reset] Deleted contents of the etcd data directory: /var/lib/etcd\n[reset] Stopping the kubelet service\n[reset] Unmounting mounted directories in \"/var/lib/kubelet\"\n[reset] Deleting contents of directories: [/etc/kubernetes/manifests /var/lib/kubelet /etc/kubernetes/pki]\n[reset] Deleting files: [/etc/kubernetes/admin.conf /etc/kubernetes/super-admin.conf /etc/kubernetes/kubelet.conf /etc/kubernetes/bootstrap-kubelet.conf /etc/kubernetes/controller-manager.conf /etc/kubernetes/scheduler.conf]\n\nThe reset process does not perform cleanup of CNI plugin configuration,\nnetwork filtering rules and kubeconfig files.\n\nFor information on how to perform this cleanup manually, please see:\n    https://k8s.io/docs/reference/setup-tools/kubeadm/kubeadm-reset/\n\n")
	return 0, nil
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
	writeFile(r, "var/lib/deckhand-sim/systemd/kubelet.active", "", 0o644)
}

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
	for _, dir := range []string{simrecords.NodesDir, simrecords.RootsDir, cordonedDir} {
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
