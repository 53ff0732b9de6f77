package kubeadmconfig

import (
	"encoding/json"
	"fmt"
	"net/netip"
	"regexp"
	"slices"
	"strings"

	taskv1 "github.com/deckhandhq/deckhand/proto/deckhand/task/v1"
	"sigs.k8s.io/yaml"
)

// Limits of the settings users add, so a document cannot grow a kubeadm configuration or
// a host's flag file without bound.
const (
	MaxCertSANs          = 32
	MaxKubeletArgs       = 32 // per cluster and per node
	MaxKubeletArgValue   = 1024
	MaxPatches           = 32
	MaxPatchBytes        = 64 << 10
	maxKubeletArgNameLen = 63
)

// PatchesDir is where the agent writes the cluster's kubeadm patches (PatchFiles) and what
// the InitConfiguration and JoinConfiguration name as patches.directory.
const PatchesDir = "/etc/kubernetes/deckhand/patches"

// PatchTargets are the targets kubeadm v1.33 patches (cmd/kubeadm/app/util/patches).
var PatchTargets = []string{"etcd", "kube-apiserver", "kube-controller-manager", "kube-scheduler", "kubeletconfiguration", "corednsdeployment"}

// PatchTypes are kubeadm's patch types; the first is the default.
var PatchTypes = []string{"strategic", "merge", "json"}

// Patch is a validated kubeadm patch.
type Patch struct {
	Target string
	// Type is strategic, merge or json, never empty.
	Type  string
	Patch string
}

// PatchFile is one file of kubeadm's patches directory.
type PatchFile struct {
	// Name is kubeadm's target[suffix]+type.yaml; the suffix orders the patches as listed.
	Name string
	Data []byte
}

// PatchFiles are the files of c's patches, in order (kubeadm applies a directory's files in
// name order). Empty when c has none.
func PatchFiles(c Cluster) []PatchFile {
	out := make([]PatchFile, 0, len(c.Patches))
	for i, p := range c.Patches {
		data := p.Patch
		if !strings.HasSuffix(data, "\n") {
			data += "\n"
		}
		out = append(out, PatchFile{Name: fmt.Sprintf("%s%03d+%s.yaml", p.Target, i, p.Type), Data: []byte(data)})
	}
	return out
}

// reservedKubeletFlags are the kubelet flags Deckhand or kubeadm set themselves, or that
// would break what they set up, with why: a user's value would replace theirs unseen.
var reservedKubeletFlags = map[string]string{
	"node-ip":                    "Deckhand sets it to the node's address: give the address (spec.nodes[].address, --address) instead",
	"node-labels":                "Deckhand sets it from the node's labels: give them as labels (spec.nodes[].labels, --label) instead",
	"register-with-taints":       "kubeadm sets it from the node's taints: give them as taints (spec.nodes[].taints, --taint) instead",
	"hostname-override":          "kubeadm sets it to the node's name, which Deckhand knows the node by",
	"container-runtime-endpoint": "kubeadm sets it to the runtime socket Deckhand installs",
	"pod-infra-container-image":  "the sandbox image is the runtime's, set from the cluster's registry",
	"kubeconfig":                 "kubeadm's drop-in sets it to /etc/kubernetes/kubelet.conf",
	"bootstrap-kubeconfig":       "kubeadm's drop-in sets it for the TLS bootstrap",
	"config":                     "kubeadm's drop-in sets it to /var/lib/kubelet/config.yaml (patch kubeletconfiguration instead)",
	"cgroup-driver":              "the cluster's cgroupDriver sets it for the kubelet and containerd alike (spec.cgroupDriver)",
	"cert-dir":                   "kubeadm and Deckhand's reset expect the kubelet's certificates in /var/lib/kubelet/pki",
	"root-dir":                   "kubeadm, the pod network and Deckhand's reset expect /var/lib/kubelet",
}

var kubeletFlagRE = regexp.MustCompile(`^[a-z0-9]([a-z0-9-]*[a-z0-9])?$`)

// parseKubeletArgs checks extra kubelet flags; field names the map, each error names the
// flag (field[NAME]).
func parseKubeletArgs(field string, args map[string]string) (map[string]string, error) {
	if len(args) > MaxKubeletArgs {
		return nil, invalid(field, fmt.Sprintf("%d flags", len(args)), fmt.Sprintf("has more than %d flags", MaxKubeletArgs), "set the rest in a kubeletconfiguration patch")
	}
	if len(args) == 0 {
		return nil, nil
	}
	names := make([]string, 0, len(args))
	for k := range args {
		names = append(names, k)
	}
	slices.Sort(names)
	out := make(map[string]string, len(args))
	for _, k := range names {
		v := args[k]
		f := field + "[" + k + "]"
		switch {
		case strings.HasPrefix(k, "-"):
			return nil, invalid(f, k, "starts with '-'", "write the flag's name without dashes, e.g. "+strings.TrimLeft(k, "-"))
		case strings.Contains(k, "="):
			return nil, invalid(f, k, "contains '='", "write the name as the key and the value as its value, e.g. max-pods: \"110\"")
		case len(k) > maxKubeletArgNameLen || !kubeletFlagRE.MatchString(k):
			return nil, invalid(f, k, "is not a kubelet flag name", "use lower-case letters, digits and '-', e.g. max-pods")
		}
		if why, ok := reservedKubeletFlags[k]; ok {
			return nil, invalid(f, k, "is a flag Deckhand or kubeadm sets", why)
		}
		if len(v) > MaxKubeletArgValue {
			return nil, invalid(f, fmt.Sprintf("%d bytes", len(v)), fmt.Sprintf("is longer than %d bytes", MaxKubeletArgValue), "shorten it, or set it in a kubeletconfiguration patch")
		}
		// kubeadm writes the flags into /var/lib/kubelet/kubeadm-flags.env, one
		// double-quoted shell-style line that systemd splits at spaces.
		if strings.ContainsFunc(v, func(r rune) bool {
			return r <= ' ' || r == 0x7f || r == '"' || r == '\'' || r == '\\' || r == '$' || r == '`'
		}) {
			return nil, invalid(f, v, "has a space, quote, '\\', '$', '`' or control character, which the kubelet's flags file cannot hold",
				"give a value without them, or set it in a kubeletconfiguration patch")
		}
		out[k] = v
	}
	return out, nil
}

// parseCertSANs checks the API server's extra certificate names as kubeadm does (an IP
// address, a DNS subdomain or a *. wildcard of one), and drops repeats.
func parseCertSANs(field string, sans []string) ([]string, error) {
	if len(sans) > MaxCertSANs {
		return nil, invalid(field, fmt.Sprintf("%d names", len(sans)), fmt.Sprintf("has more than %d names", MaxCertSANs), "list the names clients use to reach the API server")
	}
	var out []string
	for i, s := range sans {
		f := fmt.Sprintf("%s[%d]", field, i)
		name := s
		if a, err := netip.ParseAddr(s); err == nil {
			if a.Zone() != "" || a.Is4In6() {
				return nil, invalid(f, s, "is not a plain IP address", "write the address without a zone, IPv4 as a.b.c.d")
			}
			name = a.String()
		} else if reason := subdomainProblem(strings.TrimPrefix(s, "*.")); reason != "" {
			return nil, invalid(f, s, "is neither an IP address nor a DNS name: "+reason, "give an IP address, a lower-case DNS name such as api.example.com, or a wildcard such as *.example.com")
		}
		if !slices.Contains(out, name) {
			out = append(out, name)
		}
	}
	return out, nil
}

// parsePatches checks kubeadm patches: a known target and type, one document of the right
// shape (an object, or for json a list of operations), bounded in number and size.
func parsePatches(field string, ps []*taskv1.KubeadmPatch) ([]Patch, error) {
	if len(ps) > MaxPatches {
		return nil, invalid(field, fmt.Sprintf("%d patches", len(ps)), fmt.Sprintf("has more than %d patches", MaxPatches), "merge patches of one target into one")
	}
	var out []Patch
	for i, p := range ps {
		f := fmt.Sprintf("%s[%d]", field, i)
		if !slices.Contains(PatchTargets, p.GetTarget()) {
			return nil, invalid(f+".target", p.GetTarget(), "is not a target kubeadm patches", "use one of "+strings.Join(PatchTargets, ", "))
		}
		typ := p.GetType()
		if typ == "" {
			typ = PatchTypes[0]
		}
		if !slices.Contains(PatchTypes, typ) {
			return nil, invalid(f+".type", typ, "is not a kubeadm patch type", "use "+strings.Join(PatchTypes, ", ")+" (or leave it empty for strategic)")
		}
		body := p.GetPatch()
		if len(body) > MaxPatchBytes {
			return nil, invalid(f+".patch", fmt.Sprintf("%d bytes", len(body)), fmt.Sprintf("is longer than %d bytes", MaxPatchBytes), "keep a patch to what it changes")
		}
		if strings.TrimSpace(body) == "" {
			return nil, invalid(f+".patch", "", "is empty", "give the patch, e.g. {spec: {containers: [{name: kube-apiserver, resources: {requests: {cpu: 500m}}}]}}")
		}
		for _, l := range strings.Split(body, "\n") {
			if strings.HasPrefix(l, "---") || strings.HasPrefix(l, "...") {
				return nil, invalid(f+".patch", "---", "has more than one YAML document", "give one patch per entry of the list")
			}
		}
		j, err := yaml.YAMLToJSON([]byte(body))
		if err != nil {
			return nil, invalid(f+".patch", "", "is not YAML or JSON: "+err.Error(), "give one YAML or JSON document")
		}
		var v any
		if err := json.Unmarshal(j, &v); err != nil {
			return nil, invalid(f+".patch", "", "is not YAML or JSON: "+err.Error(), "give one YAML or JSON document")
		}
		if typ == "json" {
			ops, ok := v.([]any)
			if !ok || len(ops) == 0 {
				return nil, invalid(f+".patch", "", "is not a list of JSON patch operations", `give e.g. [{op: add, path: /spec/containers/0/args/-, value: --v=2}]`)
			}
			for k, op := range ops {
				m, ok := op.(map[string]any)
				if _, hasOp := m["op"].(string); !ok || !hasOp {
					return nil, invalid(fmt.Sprintf("%s.patch[%d]", f, k), "", "is not a JSON patch operation with an op", "give {op: add|remove|replace|move|copy|test, path: /..., value: ...}")
				}
				if _, hasPath := m["path"].(string); !hasPath {
					return nil, invalid(fmt.Sprintf("%s.patch[%d]", f, k), "", "has no path", "give the JSON pointer it changes, e.g. /spec/containers/0/args/-")
				}
			}
		} else if _, ok := v.(map[string]any); !ok {
			return nil, invalid(f+".patch", "", "is not an object", fmt.Sprintf("a %s patch is the part of the object it changes, e.g. {metadata: {annotations: {example.com/x: y}}}", typ))
		}
		out = append(out, Patch{Target: p.GetTarget(), Type: typ, Patch: body})
	}
	return out, nil
}

// mergedKubeletArgs are the cluster's extra kubelet flags with the node's over them, sorted
// by name.
func mergedKubeletArgs(cluster, node map[string]string) []arg {
	m := make(map[string]string, len(cluster)+len(node))
	for k, v := range cluster {
		m[k] = v
	}
	for k, v := range node {
		m[k] = v
	}
	names := make([]string, 0, len(m))
	for k := range m {
		names = append(names, k)
	}
	slices.Sort(names)
	out := make([]arg, 0, len(names))
	for _, k := range names {
		out = append(out, arg{Name: k, Value: m[k]})
	}
	return out
}
