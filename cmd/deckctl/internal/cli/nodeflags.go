package cli

import (
	"fmt"
	"strings"

	"github.com/spf13/pflag"

	apiv1 "github.com/deckhandhq/deckhand/proto/deckhand/api/v1"
	taskv1 "github.com/deckhandhq/deckhand/proto/deckhand/task/v1"
)

// nodeFlags are the per-node settings of init and join: labels, taints and kubelet flags.
type nodeFlags struct {
	labels, taints, kubeletArgs []string
	noTaints                    bool
}

func (n *nodeFlags) add(fl *pflag.FlagSet) {
	fl.StringArrayVar(&n.labels, "label", nil, "a label the node registers with, KEY=VALUE (repeatable); keys in kubernetes.io/k8s.io are refused except node.kubernetes.io/...")
	fl.StringArrayVar(&n.taints, "taint", nil, "a taint the node registers with, KEY[=VALUE]:EFFECT, EFFECT NoSchedule, PreferNoSchedule or NoExecute (repeatable); replaces kubeadm's default taints (a control plane's node-role.kubernetes.io/control-plane:NoSchedule: list it too to keep it)")
	fl.BoolVar(&n.noTaints, "no-taints", false, "register the node with no taints at all, not even the control-plane one: a single control plane that runs workloads")
	fl.StringArrayVar(&n.kubeletArgs, "kubelet-arg", nil, "an extra kubelet flag for this node, NAME=VALUE without the dashes (repeatable), e.g. max-pods=60; flags Deckhand or kubeadm set (node-ip, node-labels, ...) are refused")
}

// options turns the flags into the workflow's node options; nil when none is set.
func (n *nodeFlags) options() (*apiv1.NodeOptions, error) {
	if len(n.labels) == 0 && len(n.taints) == 0 && len(n.kubeletArgs) == 0 && !n.noTaints {
		return nil, nil
	}
	o := &apiv1.NodeOptions{NoTaints: n.noTaints}
	var err error
	if o.Labels, err = keyValues("--label", n.labels); err != nil {
		return nil, err
	}
	if o.KubeletExtraArgs, err = keyValues("--kubelet-arg", n.kubeletArgs); err != nil {
		return nil, err
	}
	for _, s := range n.taints {
		t, err := parseTaint(s)
		if err != nil {
			return nil, err
		}
		o.Taints = append(o.Taints, t)
	}
	if o.NoTaints && len(o.Taints) > 0 {
		return nil, fmt.Errorf("--no-taints and --taint contradict each other: give the taints, or ask for none")
	}
	return o, nil
}

// keyValues parses repeated KEY=VALUE flags; a key given twice is refused.
func keyValues(flag string, in []string) (map[string]string, error) {
	if len(in) == 0 {
		return nil, nil
	}
	out := map[string]string{}
	for _, s := range in {
		k, v, ok := strings.Cut(s, "=")
		if !ok || k == "" {
			return nil, fmt.Errorf("%s %q: write KEY=VALUE, e.g. %s", flag, s, map[string]string{"--label": "example.com/rack=r1", "--kubelet-arg": "max-pods=60"}[flag])
		}
		if _, dup := out[k]; dup {
			return nil, fmt.Errorf("%s %q: %s is given twice", flag, s, k)
		}
		out[k] = v
	}
	return out, nil
}

// parseTaint parses KEY[=VALUE]:EFFECT, as kubectl taint writes a taint. The key, value and
// effect themselves are checked by the controller, which names what is wrong.
func parseTaint(s string) (*taskv1.Taint, error) {
	i := strings.LastIndex(s, ":")
	if i <= 0 || i == len(s)-1 {
		return nil, fmt.Errorf("--taint %q: write KEY[=VALUE]:EFFECT, e.g. example.com/dedicated=infra:NoSchedule", s)
	}
	kv, effect := s[:i], s[i+1:]
	k, v, _ := strings.Cut(kv, "=")
	if k == "" {
		return nil, fmt.Errorf("--taint %q: the key is empty; write KEY[=VALUE]:EFFECT", s)
	}
	return &taskv1.Taint{Key: k, Value: v, Effect: effect}, nil
}
