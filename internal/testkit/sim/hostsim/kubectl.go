package main

import (
	"encoding/json"
	"errors"
	"fmt"
	"hash/fnv"
	"os"
	"path/filepath"
	"regexp"
	"slices"
	"strconv"
	"strings"
	"time"

	"github.com/deckhandhq/deckhand/internal/testkit/sim/simrecords"
)

// kubectl SIMULATION: its version, the API server's readiness, and the node commands the
// agent runs on a control plane, each in exactly the form the agent uses:
//
//	kubectl version --client -o json
//	kubectl --kubeconfig F get --raw=/readyz
//	kubectl --kubeconfig F cordon NAME
//	kubectl --kubeconfig F drain NAME --ignore-daemonsets --delete-emptydir-data --timeout=D [--force]
//	kubectl --kubeconfig F delete node NAME --ignore-not-found
//	kubectl --kubeconfig F get node NAME -o jsonpath={.status.conditions[?(@.type=="Ready")].status}
//	kubectl --kubeconfig F get clusterrolebinding NAME --ignore-not-found -o jsonpath={.roleRef.kind}/{.roleRef.name}{range .subjects[*]} {.kind}/{.name}{end}
//	kubectl --kubeconfig F create clusterrolebinding NAME --clusterrole=ROLE --user=USER
//
// The node commands act on the cluster directory (DECKHAND_SIM_CLUSTER) the simulated
// kubeadm keeps: a node exists while nodes/NAME does, and is Ready while its host's kubelet
// runs (noderoots/NAME names the host root). cordoned/NAME marks it unschedulable ("drained"
// once its pods were evicted). clusterrolebindings/NAME holds a binding's "ROLE USER". Each
// pod-evicting, cordoning, deleting or binding effect is recorded (package simrecords).
//	kubectl --kubeconfig F get node NAME -o json
//	kubectl --kubeconfig F annotate node NAME KEY=VALUE --overwrite | KEY-
//	kubectl --kubeconfig F patch node NAME --type=merge -p JSON (metadata.resourceVersion,
//	  metadata.annotations, spec.unschedulable; a stale resourceVersion is a Conflict)
//	kubectl --kubeconfig F -n kube-system exec etcd-NODE -c etcd -- etcdctl FLAGS member list -w json
//	kubectl --kubeconfig F -n kube-system exec etcd-NODE -c etcd -- etcdctl FLAGS member remove HEXID
//
// The node commands act on the cluster directory (DECKHAND_SIM_CLUSTER) the simulated
// kubeadm keeps: a node exists while nodes/NAME does, and is Ready while its host's kubelet
// runs (noderoots/NAME names the host root); -o json shows its spec.podCIDR and InternalIP
// (nodenet.go) and its Ready condition. cordoned/NAME marks it unschedulable ("drained"
// once its pods were evicted). Each pod-evicting, cordoning or deleting effect is recorded
// (package simrecords).
//
// Test knob: CLUSTER/drain-blocked/NAME makes a drain of NAME fail at once the way kubectl
// fails when a PodDisruptionBudget blocks an eviction until the drain's timeout; --force
// does not help, as it does not with the real kubectl. CLUSTER/forbidden lists kubectl verbs
// (get, patch, drain), one a line: the next command with such a verb answers Forbidden, as
// an API server that has just started (its RBAC not synced) answers the cluster admin, and
// its line goes.
// CLUSTER/kcm-lease-lapsed holding a count N makes the next N reads of the
// kube-controller-manager Lease show it lapsed (its leader gone, as during a control
// plane's upgrade); otherwise it is held, renewed just now.

const (
	annotationsDir  = "annotations" // annotations/NAME: one KEY=VALUE per line
	versionsDir     = "versions"    // versions/NAME: the Node's resourceVersion
	cordonedDir     = "cordoned"
	drainBlockedDir = "drain-blocked"
	forbiddenFile   = "forbidden"
	leaseLapsedFile = "kcm-lease-lapsed"
	readyJSONPath   = `jsonpath={.status.conditions[?(@.type=="Ready")].status}`
	bindingJSONPath = `jsonpath={.roleRef.kind}/{.roleRef.name}{range .subjects[*]} {.kind}/{.name}{end}`
)

// A node name is a DNS subdomain; anything else is no node.
var nodeNameRE = regexp.MustCompile(`^[a-z0-9]([-a-z0-9]*[a-z0-9])?(\.[a-z0-9]([-a-z0-9]*[a-z0-9])?)*$`)

func kubectl(r string, args []string) (int, error) {
	if strings.Join(args, " ") == "version --client -o json" {
		v, err := toolVersion(r, "kubectl")
		if err != nil {
			return 1, err
		}
		b, _ := json.Marshal(map[string]any{"clientVersion": map[string]string{"gitVersion": v}, "kustomizeVersion": "v5.6.0"})
		fmt.Println(string(b))
		return 0, nil
	}
	if len(args) < 3 || args[0] != "--kubeconfig" {
		return 1, fmt.Errorf("kubectl (simulation): unsupported arguments %v", args)
	}
	kc, cmd := args[1], args[2:]
	if len(cmd) > 2 && cmd[0] == "--server" {
		// Another API server than the kubeconfig's, with its credential: the simulated
		// cluster has one API.
		cmd = cmd[2:]
	}
	var run func(cluster string) (int, error)
	switch {
	case len(cmd) == 2 && cmd[0] == "get" && cmd[1] == "--raw=/readyz":
		// The API server's readiness, as seen with a kubeconfig of the simulated host.
		if !exists(filepath.Join(r, kc)) {
			return 1, fmt.Errorf("error: stat %s: no such file or directory", kc)
		}
		if !exists(filepath.Join(r, "etc/kubernetes/manifests/kube-apiserver.yaml")) {
			return 1, errors.New("The connection to the server was refused - did you specify the right host or port?")
		}
		fmt.Println("ok")
		return 0, nil
	case len(cmd) == 2 && cmd[0] == "cordon" && !strings.HasPrefix(cmd[1], "-"):
		run = func(cluster string) (int, error) { return cordon(cluster, cmd[1]) }
	case len(cmd) == 2 && cmd[0] == "uncordon" && !strings.HasPrefix(cmd[1], "-"):
		run = func(cluster string) (int, error) { return uncordon(cluster, cmd[1]) }
	case strings.Join(cmd, " ") == "get nodes -o json":
		run = nodesJSON
	case strings.Join(cmd, " ") == "-n kube-system get configmap kubeadm-config -o jsonpath={.data.ClusterConfiguration}":
		// kubeadm's record of the cluster: its version (init, then each upgrade apply).
		run = func(cluster string) (int, error) {
			fmt.Printf("apiVersion: kubeadm.k8s.io/v1beta4\nkind: ClusterConfiguration\nkubernetesVersion: %s\n", clusterVersion(cluster, r))
			return 0, nil
		}
	case len(cmd) >= 2 && cmd[0] == "drain" && !strings.HasPrefix(cmd[1], "-"):
		run = func(cluster string) (int, error) { return drain(cluster, cmd[1], cmd[2:]) }
	case len(cmd) == 4 && cmd[0] == "delete" && cmd[1] == "node" && cmd[3] == "--ignore-not-found":
		run = func(cluster string) (int, error) { return deleteNode(cluster, cmd[2]) }
	case len(cmd) == 5 && cmd[0] == "get" && cmd[1] == "node" && cmd[3] == "-o" && cmd[4] == readyJSONPath:
		run = func(cluster string) (int, error) { return nodeReady(cluster, cmd[2]) }
	case len(cmd) == 6 && cmd[0] == "get" && cmd[1] == "clusterrolebinding" && cmd[3] == "--ignore-not-found" && cmd[4] == "-o" && cmd[5] == bindingJSONPath:
		run = func(cluster string) (int, error) { return getBinding(cluster, cmd[2]) }
	case len(cmd) == 5 && cmd[0] == "create" && cmd[1] == "clusterrolebinding" && strings.HasPrefix(cmd[3], "--clusterrole=") && strings.HasPrefix(cmd[4], "--user="):
		run = func(cluster string) (int, error) {
			return createBinding(cluster, cmd[2], strings.TrimPrefix(cmd[3], "--clusterrole="), strings.TrimPrefix(cmd[4], "--user="))
		}
	case len(cmd) == 5 && cmd[0] == "annotate" && cmd[1] == "node" && strings.Contains(cmd[3], "=") && cmd[4] == "--overwrite",
		len(cmd) == 4 && cmd[0] == "annotate" && cmd[1] == "node" && strings.HasSuffix(cmd[3], "-"):
		run = func(cluster string) (int, error) { return annotate(cluster, cmd[2], cmd[3]) }
	case len(cmd) == 6 && cmd[0] == "patch" && cmd[1] == "node" && cmd[3] == "--type=merge" && cmd[4] == "-p":
		run = func(cluster string) (int, error) { return patchNode(cluster, cmd[2], cmd[5]) }
	case strings.Join(cmd, " ") == "-n kube-system get lease kube-controller-manager -o json":
		run = controllerManagerLease
	case len(cmd) == 5 && cmd[0] == "get" && cmd[1] == "node" && cmd[3] == "-o" && cmd[4] == "json":
		run = func(cluster string) (int, error) { return nodeJSON(cluster, cmd[2]) }
	case len(cmd) > 12 && strings.Join(cmd[:3], " ") == "-n kube-system exec" && strings.HasPrefix(cmd[3], "etcd-") && strings.Join(cmd[4:8], " ") == "-c etcd -- etcdctl" &&
		strings.Join(cmd[8:12], " ") == etcdctlFlags:
		run = func(cluster string) (int, error) {
			return etcdctl(cluster, strings.TrimPrefix(cmd[3], "etcd-"), cmd[12:])
		}
	default:
		return 1, fmt.Errorf("kubectl (simulation): unsupported arguments %v", args)
	}
	if !exists(filepath.Join(r, kc)) {
		return 1, fmt.Errorf("error: stat %s: no such file or directory", kc)
	}
	cluster := os.Getenv("DECKHAND_SIM_CLUSTER")
	if cluster == "" {
		return 1, errors.New("kubectl (simulation): DECKHAND_SIM_CLUSTER is not set: the simulated hosts of a cluster share it")
	}
	if !exists(filepath.Join(cluster, "ca.crt")) {
		return 1, fmt.Errorf("The connection to the server %s was refused - did you specify the right host or port?", server(filepath.Join(r, kc)))
	}
	if verbs := readLines(filepath.Join(cluster, forbiddenFile)); len(verbs) > 0 {
		verb := cmd[0]
		if verb == "-n" && len(cmd) > 2 {
			verb = cmd[2]
		}
		if i := slices.Index(verbs, verb); i >= 0 {
			writeLines(filepath.Join(cluster, forbiddenFile), slices.Delete(verbs, i, i+1))
			return 1, errors.New(`Error from server (Forbidden): nodes is forbidden: User "kubernetes-admin" cannot ` + verb + ` resource "nodes" in API group "" at the cluster scope`)
		}
	}
	return run(cluster)
}

// server is the API server a kubeconfig names, as kubectl shows it in errors.
func server(kubeconfig string) string {
	for _, l := range readLines(kubeconfig) {
		if s, ok := strings.CutPrefix(strings.TrimSpace(l), "server: "); ok {
			return strings.TrimPrefix(strings.TrimPrefix(s, "https://"), "http://")
		}
	}
	return "localhost:8080"
}

func nodeExists(cluster, name string) bool {
	return nodeNameRE.MatchString(name) && len(name) <= 253 && exists(filepath.Join(cluster, simrecords.NodesDir, name))
}

func nodeNotFound(name string) error {
	return fmt.Errorf("Error from server (NotFound): nodes %q not found", name)
}

// cordonNode marks the node unschedulable, printing what kubectl prints.
func cordonNode(cluster, name string) {
	if exists(filepath.Join(cluster, cordonedDir, name)) {
		fmt.Printf("node/%s already cordoned\n", name)
		return
	}
	os.MkdirAll(filepath.Join(cluster, cordonedDir), 0o755)
	os.WriteFile(filepath.Join(cluster, cordonedDir, name), []byte("cordoned"), 0o644)
	record(cluster, simrecords.KubectlCordon, name)
	bumpVersion(cluster, name)
	fmt.Printf("node/%s cordoned\n", name)
}

func cordon(cluster, name string) (int, error) {
	if !nodeExists(cluster, name) {
		return 1, nodeNotFound(name)
	}
	cordonNode(cluster, name)
	return 0, nil
}

func drain(cluster, name string, args []string) (int, error) {
	f, pos, err := flags(args, map[string]bool{"timeout": true}, map[string]bool{"ignore-daemonsets": true, "delete-emptydir-data": true, "force": true})
	if err != nil {
		return 1, fmt.Errorf("error: %v\nSee 'kubectl drain --help' for usage.", err)
	}
	if len(pos) > 0 {
		return 1, fmt.Errorf("kubectl (simulation): drain one node at a time (%v)", pos)
	}
	if f["timeout"] == "" {
		return 1, errors.New("kubectl (simulation): drain needs --timeout: without it a blocked eviction waits forever")
	}
	timeout, err := time.ParseDuration(f["timeout"])
	if err != nil {
		return 1, fmt.Errorf("error: invalid argument %q for \"--timeout\" flag: %v\nSee 'kubectl drain --help' for usage.", f["timeout"], err)
	}
	if !nodeExists(cluster, name) {
		return 1, nodeNotFound(name)
	}
	cordonNode(cluster, name)
	fail := func(reason string) (int, error) {
		fmt.Fprintf(os.Stderr, "error: unable to drain node %q, aborting command...\n\nThere are pending nodes to be drained:\n %s\n", name, name)
		return 1, errors.New("error: " + reason)
	}
	const proxy, web = "kube-system/kube-proxy-x7k2p", "default/web-0"
	if f["ignore-daemonsets"] != "true" {
		return fail("cannot delete DaemonSet-managed Pods (use --ignore-daemonsets to ignore): " + proxy)
	}
	state, _ := os.ReadFile(filepath.Join(cluster, cordonedDir, name))
	drained := string(state) == "drained"
	if !drained && f["delete-emptydir-data"] != "true" {
		return fail("cannot delete Pods with local storage (use --delete-emptydir-data to override): " + web)
	}
	fmt.Fprintf(os.Stderr, "Warning: ignoring DaemonSet-managed Pods: %s\n", proxy)
	if !drained {
		fmt.Printf("evicting pod %s\n", web)
		if exists(filepath.Join(cluster, drainBlockedDir, name)) {
			// What kubectl prints when a PodDisruptionBudget refuses the eviction until the
			// timeout; the simulation does not wait for it.
			const evict = `error when evicting pods/"web-0" -n "default"`
			fmt.Fprintf(os.Stderr, "%s (will retry after 5s): Cannot evict pod as it would violate the pod's disruption budget.\n", evict)
			reason := fmt.Sprintf("%s: global timeout reached: %v", evict, timeout)
			fmt.Fprintf(os.Stderr, "There are pending pods in node %q when an error occurred: %s\npod/web-0\n", name, reason)
			return fail(reason)
		}
		os.WriteFile(filepath.Join(cluster, cordonedDir, name), []byte("drained"), 0o644)
		record(cluster, simrecords.KubectlDrain, name)
		fmt.Println("pod/web-0 evicted")
	}
	fmt.Printf("node/%s drained\n", name)
	return 0, nil
}

func deleteNode(cluster, name string) (int, error) {
	if !nodeExists(cluster, name) {
		return 0, nil // --ignore-not-found
	}
	forgetNode(cluster, name)
	record(cluster, simrecords.KubectlDeleteNode, name)
	fmt.Printf("node %q deleted\n", name)
	return 0, nil
}

// nodeJSON prints the parts of the Node object the agent reads.
func nodeJSON(cluster, name string) (int, error) {
	if !nodeExists(cluster, name) {
		return 1, nodeNotFound(name)
	}
	b, _ := json.MarshalIndent(nodeObject(cluster, name), "", "    ")
	fmt.Println(string(b))
	return 0, nil
}

// nodesJSON prints every Node as kubectl get nodes -o json does.
func nodesJSON(cluster string) (int, error) {
	names, _ := os.ReadDir(filepath.Join(cluster, simrecords.NodesDir))
	items := []any{}
	for _, n := range names {
		items = append(items, nodeObject(cluster, n.Name()))
	}
	b, _ := json.MarshalIndent(map[string]any{"apiVersion": "v1", "kind": "List", "items": items}, "", "    ")
	fmt.Println(string(b))
	return 0, nil
}

func uncordon(cluster, name string) (int, error) {
	if !nodeExists(cluster, name) {
		return 1, nodeNotFound(name)
	}
	if !exists(filepath.Join(cluster, cordonedDir, name)) {
		fmt.Printf("node/%s already uncordoned\n", name)
		return 0, nil
	}
	os.Remove(filepath.Join(cluster, cordonedDir, name))
	record(cluster, simrecords.KubectlUncordon, name)
	bumpVersion(cluster, name)
	fmt.Printf("node/%s uncordoned\n", name)
	return 0, nil
}

// annotate sets (KEY=VALUE) or removes (KEY-) an annotation of the node.
func annotate(cluster, name, arg string) (int, error) {
	if !nodeExists(cluster, name) {
		return 1, nodeNotFound(name)
	}
	anns := annotations(cluster, name)
	if key, ok := strings.CutSuffix(arg, "-"); ok && !strings.Contains(arg, "=") {
		delete(anns, key)
	} else {
		key, value, _ := strings.Cut(arg, "=")
		anns[key] = value
	}
	if err := writeAnnotations(cluster, name, anns); err != nil {
		return 1, err
	}
	bumpVersion(cluster, name)
	fmt.Printf("node/%s annotated\n", name)
	return 0, nil
}

// patchNode applies a merge patch of the node's annotations and spec.unschedulable, only
// to the resourceVersion it names (when it names one), as the API server does.
func patchNode(cluster, name, patch string) (int, error) {
	if !nodeExists(cluster, name) {
		return 1, nodeNotFound(name)
	}
	var p struct {
		Metadata struct {
			ResourceVersion string             `json:"resourceVersion"`
			Annotations     map[string]*string `json:"annotations"`
		} `json:"metadata"`
		Spec struct {
			Unschedulable *bool `json:"unschedulable"`
		} `json:"spec"`
	}
	if err := json.Unmarshal([]byte(patch), &p); err != nil {
		return 1, fmt.Errorf("error: unable to parse %q: %v", patch, err)
	}
	if rv := p.Metadata.ResourceVersion; rv != "" && rv != resourceVersion(cluster, name) {
		return 1, fmt.Errorf("Error from server (Conflict): Operation cannot be fulfilled on nodes %q: the object has been modified; please apply your changes to the latest version and try again", name)
	}
	anns := annotations(cluster, name)
	for k, v := range p.Metadata.Annotations {
		if v == nil {
			delete(anns, k)
		} else {
			anns[k] = *v
		}
	}
	writeAnnotations(cluster, name, anns)
	if u := p.Spec.Unschedulable; u != nil {
		cordoned := exists(filepath.Join(cluster, cordonedDir, name))
		switch {
		case *u && !cordoned:
			os.MkdirAll(filepath.Join(cluster, cordonedDir), 0o755)
			os.WriteFile(filepath.Join(cluster, cordonedDir, name), []byte("cordoned"), 0o644)
			record(cluster, simrecords.KubectlCordon, name)
		case !*u && cordoned:
			os.Remove(filepath.Join(cluster, cordonedDir, name))
			record(cluster, simrecords.KubectlUncordon, name)
		}
	}
	bumpVersion(cluster, name)
	fmt.Printf("node/%s patched\n", name)
	return 0, nil
}

// resourceVersion is the node's version: it changes with every change made through
// kubectl cordon, uncordon, annotate and patch.
func resourceVersion(cluster, name string) string {
	b, err := os.ReadFile(filepath.Join(cluster, versionsDir, name))
	if err != nil {
		return "1"
	}
	return strings.TrimSpace(string(b))
}

func bumpVersion(cluster, name string) {
	n, _ := strconv.Atoi(resourceVersion(cluster, name))
	os.MkdirAll(filepath.Join(cluster, versionsDir), 0o755)
	os.WriteFile(filepath.Join(cluster, versionsDir, name), []byte(strconv.Itoa(n+1)), 0o644)
}

func writeAnnotations(cluster, name string, anns map[string]string) error {
	var b strings.Builder
	for k, v := range anns {
		fmt.Fprintf(&b, "%s=%s\n", k, v)
	}
	os.MkdirAll(filepath.Join(cluster, annotationsDir), 0o755)
	return os.WriteFile(filepath.Join(cluster, annotationsDir, name), []byte(b.String()), 0o644)
}

// annotations are the node's annotations.
func annotations(cluster, name string) map[string]string {
	anns := map[string]string{}
	for _, l := range readLines(filepath.Join(cluster, annotationsDir, name)) {
		if k, v, ok := strings.Cut(l, "="); ok {
			anns[k] = v
		}
	}
	return anns
}

// nodeObject is the Node object of name: Ready while its host's kubelet runs, reporting the
// version that kubelet started with.
func nodeObject(cluster, name string) map[string]any {
	ready := "False"
	spec := map[string]any{}
	status := map[string]any{}
	root, err := os.ReadFile(filepath.Join(cluster, simrecords.RootsDir, name))
	if err == nil {
		if exists(filepath.Join(string(root), "var/lib/deckhand-sim/systemd/kubelet.active")) {
			ready = "True"
		}
		if a, err := os.ReadFile(filepath.Join(string(root), hostAddrFile)); err == nil {
			status["addresses"] = []map[string]string{{"type": "InternalIP", "address": strings.TrimSpace(string(a))}, {"type": "Hostname", "address": name}}
		}
		if v, err := os.ReadFile(filepath.Join(string(root), kubeletRunningFile)); err == nil {
			status["nodeInfo"] = map[string]string{"kubeletVersion": strings.TrimSpace(string(v))}
		}
	}
	if exists(filepath.Join(cluster, cordonedDir, name)) {
		spec["unschedulable"] = true
	}
	if c, err := os.ReadFile(filepath.Join(cluster, podCIDRsDir, name)); err == nil {
		spec["podCIDR"], spec["podCIDRs"] = string(c), []string{string(c)}
	}
	status["conditions"] = []map[string]string{{"type": "Ready", "status": ready}}
	meta := map[string]any{"name": name, "resourceVersion": resourceVersion(cluster, name)}
	if anns := annotations(cluster, name); len(anns) > 0 {
		meta["annotations"] = anns
	}
	if role, _ := os.ReadFile(filepath.Join(cluster, simrecords.NodesDir, name)); string(role) == "control-plane" {
		// What kubeadm's mark-control-plane phase sets.
		meta["labels"] = map[string]string{"node-role.kubernetes.io/control-plane": ""}
	}
	return map[string]any{"apiVersion": "v1", "kind": "Node", "metadata": meta, "spec": spec, "status": status}
}

// nodeReady prints the status of the node's Ready condition: True while the kubelet of its
// host runs.
func nodeReady(cluster, name string) (int, error) {
	if !nodeExists(cluster, name) {
		return 1, nodeNotFound(name)
	}
	root, err := os.ReadFile(filepath.Join(cluster, simrecords.RootsDir, name))
	if err == nil && exists(filepath.Join(string(root), "var/lib/deckhand-sim/systemd/kubelet.active")) {
		fmt.Print("True")
	} else {
		fmt.Print("False")
	}
	return 0, nil
}

// bindingPath is where a ClusterRoleBinding is kept; a name with '/' is no object name.
func bindingPath(cluster, name string) (string, error) {
	if name == "" || strings.ContainsAny(name, "/%") || name == "." || name == ".." {
		return "", fmt.Errorf("error: invalid resource name %q: may not contain '/' or '%%'", name)
	}
	return filepath.Join(cluster, simrecords.BindingsDir, name), nil
}

// getBinding prints a ClusterRoleBinding as the agent's jsonpath asks, nothing when absent
// (--ignore-not-found).
func getBinding(cluster, name string) (int, error) {
	p, err := bindingPath(cluster, name)
	if err != nil {
		return 1, err
	}
	b, err := os.ReadFile(p)
	if errors.Is(err, os.ErrNotExist) {
		return 0, nil
	}
	f := strings.Fields(string(b))
	if err != nil || len(f) != 2 {
		return 1, fmt.Errorf("kubectl (simulation): clusterrolebinding %s is damaged", name)
	}
	fmt.Printf("ClusterRole/%s User/%s", f[0], f[1])
	return 0, nil
}

// createBinding creates a ClusterRoleBinding of role to user; one that exists is an error,
// as with the real kubectl.
func createBinding(cluster, name, role, user string) (int, error) {
	p, err := bindingPath(cluster, name)
	if err != nil {
		return 1, err
	}
	if role == "" || user == "" || strings.ContainsAny(role+user, " \t\n") {
		return 1, fmt.Errorf("kubectl (simulation): create clusterrolebinding needs --clusterrole and --user")
	}
	if exists(p) {
		return 1, fmt.Errorf("error: failed to create clusterrolebinding: clusterrolebindings.rbac.authorization.k8s.io %q already exists", name)
	}
	os.MkdirAll(filepath.Dir(p), 0o755)
	os.WriteFile(p, []byte(role+" "+user), 0o644)
	record(cluster, simrecords.KubectlBindView, name)
	fmt.Printf("clusterrolebinding.rbac.authorization.k8s.io/%s created\n", name)
	return 0, nil
}

// etcdctlFlags are the flags the agent gives etcdctl in a control plane's etcd pod.
const etcdctlFlags = "--endpoints=https://127.0.0.1:2379 --cacert=/etc/kubernetes/pki/etcd/ca.crt --cert=/etc/kubernetes/pki/etcd/healthcheck-client.crt --key=/etc/kubernetes/pki/etcd/healthcheck-client.key"

// memberID is a simulated etcd member's ID, stable for its node name.
func memberID(name string) uint64 {
	h := fnv.New64a()
	h.Write([]byte(name))
	return h.Sum64() | 1
}

// etcdctl answers member list -w json and member remove HEXID in the etcd pod of node, a
// stacked etcd member (CLUSTER/etcd/NODE), over the members in CLUSTER/etcd.
func etcdctl(cluster, node string, args []string) (int, error) {
	if !exists(filepath.Join(cluster, simrecords.EtcdDir, node)) {
		return 1, fmt.Errorf("Error from server (NotFound): pods %q not found", "etcd-"+node)
	}
	members, _ := simrecords.EtcdMembers(cluster)
	switch {
	case strings.Join(args, " ") == "member list -w json":
		var ms []map[string]any
		for _, m := range members {
			ms = append(ms, map[string]any{"ID": memberID(m), "name": m, "peerURLs": []string{"https://" + m + ":2380"}, "clientURLs": []string{"https://" + m + ":2379"}})
		}
		b, _ := json.Marshal(map[string]any{"header": map[string]any{"cluster_id": 1, "member_id": memberID(node), "raft_term": 2}, "members": ms})
		fmt.Println(string(b))
		return 0, nil
	case strings.Join(args, " ") == "endpoint health --cluster -w json":
		// A member is healthy while the kubelet of its host runs its static pod.
		var hs []map[string]any
		for _, m := range members {
			root, _ := os.ReadFile(filepath.Join(cluster, simrecords.RootsDir, m))
			ok := exists(filepath.Join(string(root), "var/lib/deckhand-sim/systemd/kubelet.active"))
			h := map[string]any{"endpoint": "https://" + m + ":2379", "health": ok, "took": "1.2ms"}
			if !ok {
				h["error"] = "context deadline exceeded"
			}
			hs = append(hs, h)
		}
		b, _ := json.Marshal(hs)
		fmt.Println(string(b))
		return 0, nil
	case len(args) == 3 && args[0] == "member" && args[1] == "remove":
		for _, m := range members {
			if fmt.Sprintf("%x", memberID(m)) == args[2] {
				os.Remove(filepath.Join(cluster, simrecords.EtcdDir, m))
				record(cluster, simrecords.EtcdMemberRemove, m)
				fmt.Printf("Member %s removed from cluster %x\n", args[2], 1)
				return 0, nil
			}
		}
		return 1, fmt.Errorf("Error: etcdserver: member not found")
	}
	return 1, fmt.Errorf("etcdctl (simulation): unsupported arguments %v", args)
}

// controllerManagerLease prints the kube-controller-manager Lease: held and renewed now,
// or lapsed (last renewed on 2026-01-01) while CLUSTER/kcm-lease-lapsed counts down.
func controllerManagerLease(cluster string) (int, error) {
	renewed := time.Now().UTC()
	if n, err := strconv.Atoi(strings.TrimSpace(strings.Join(readLines(filepath.Join(cluster, leaseLapsedFile)), ""))); err == nil && n > 0 {
		os.WriteFile(filepath.Join(cluster, leaseLapsedFile), []byte(strconv.Itoa(n-1)), 0o644)
		renewed = time.Date(2026, 1, 1, 0, 0, 0, 0, time.UTC) // its last holder's last renewal
	}
	fmt.Printf(`{"apiVersion":"coordination.k8s.io/v1","kind":"Lease","metadata":{"name":"kube-controller-manager","namespace":"kube-system"},"spec":{"holderIdentity":"cp-1_sim","leaseDurationSeconds":15,"renewTime":%q}}`+"\n",
		renewed.Format("2006-01-02T15:04:05.000000Z07:00"))
	return 0, nil
}
