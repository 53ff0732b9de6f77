package kubeadm

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"strings"
	"time"

	"github.com/deckhandhq/deckhand/agent/host"
	"github.com/deckhandhq/deckhand/agent/tasks"
)

// A retried init or join must tell a node that finished the work from one a failed run left
// half done: kubeadm's preflight refuses a half-done node forever (its files are "already
// there"), and a half-done node reported as done is a cluster that never comes up. The
// evidence is the files kubeadm writes, in the order its phases write them, and what the API
// server says about the Node.

// kubeadmFiles are what kubeadm init and join write on a node (or the kubelet writes for
// them), each a sign that one ran here. /etc/kubernetes/pki is evidence only for a join: an
// init takes a CA that an administrator put there first.
var kubeadmFiles = []string{
	adminConf, kubeletConf, bootstrapKubeletConf, "/etc/kubernetes/super-admin.conf",
	"/etc/kubernetes/controller-manager.conf", "/etc/kubernetes/scheduler.conf",
	"/etc/kubernetes/manifests/kube-apiserver.yaml", "/etc/kubernetes/manifests/etcd.yaml",
	kubeletConfig, "/var/lib/kubelet/kubeadm-flags.env", "/var/lib/etcd/member",
}

const (
	bootstrapKubeletConf = "/etc/kubernetes/bootstrap-kubelet.conf"
	kubeletConfig        = "/var/lib/kubelet/config.yaml"
	// rotatedClientCert is the kubelet's client certificate file once it rotates its own:
	// kubelet.conf names it after a join's TLS bootstrap and after init's kubelet-finalize
	// phase (which comes after mark-control-plane and bootstrap-token), and not before.
	rotatedClientCert = "/var/lib/kubelet/pki/kubelet-client-current.pem"
	controlPlaneLabel = "node-role.kubernetes.io/control-plane"
	// apiTimeout bounds asking the API server about the node.
	apiTimeout = 20 * time.Second
)

// apiView is what the API server says about this node's Node object.
type apiView int

const (
	apiNotAsked     apiView = iota // no kubeconfig to ask with
	apiUnreachable                 // no answer (or an answer that says nothing about the node)
	apiAbsent                      // no such Node, or the node's credential is unknown there
	apiListed                      // the Node exists, without the control-plane label
	apiControlPlane                // the Node exists with the control-plane label
)

func (a apiView) String() string {
	return [...]string{"not asked", "does not answer", "does not list the node", "lists the node", "lists the node as a control plane"}[a]
}

// evidence is what a node shows of an earlier kubeadm init or join.
type evidence struct {
	files     []string // kubeadmFiles present, in their order
	caCert    bool     // /etc/kubernetes/pki/ca.crt
	finalized bool     // kubelet.conf uses the rotated client certificate (rotatedClientCert)
	api       apiView
}

// verdict is what a retried init or join makes of the evidence.
type verdict int

const (
	fresh    verdict = iota // nothing of an earlier run: run it
	done                    // it finished: report it, change nothing
	halfDone                // it failed half way: kubeadm reset, then run it again
	unsure                  // it may have finished, and the API server cannot say: stop
)

func (v verdict) String() string {
	return [...]string{"fresh", "done", "half done", "unsure"}[v]
}

// initVerdict judges a node an init ran on. Done is the Node listed as a control plane and
// kubelet-finalize run; a node whose API server does not answer is half done only when
// kubelet-finalize never ran (so a finished control plane that is merely down is never reset).
func initVerdict(ev evidence) verdict {
	switch {
	case len(ev.files) == 0:
		return fresh
	case ev.api == apiControlPlane && ev.finalized:
		return done
	case ev.api == apiUnreachable && ev.finalized:
		return unsure
	}
	return halfDone
}

// joinVerdict judges a node a join ran on. Done is kubelet.conf there and the Node listed (as
// a control plane, for a control-plane join: kubeadm labels it in the join's last phase).
func joinVerdict(ev evidence, controlPlane bool) verdict {
	hasKubeletConf := false
	for _, f := range ev.files {
		hasKubeletConf = hasKubeletConf || f == kubeletConf
	}
	switch {
	case len(ev.files) == 0 && !ev.caCert:
		return fresh
	case hasKubeletConf && (ev.api == apiControlPlane || ev.api == apiListed && !controlPlane):
		return done
	case hasKubeletConf && ev.api == apiUnreachable:
		return unsure
	}
	return halfDone
}

// describe names the evidence in one phrase for the log line of a reset or a refusal.
func (ev evidence) describe() string {
	var files []string
	for _, f := range ev.files {
		files = append(files, strings.TrimPrefix(f, "/etc/kubernetes/"))
	}
	if ev.caCert {
		files = append(files, "pki/ca.crt")
	}
	s := strings.Join(files, ", ") + " on the node"
	if ev.api != apiNotAsked {
		s += "; the API server " + ev.api.String()
	}
	return s
}

// gather reads the node's files and, with kubeconfig when it is there, asks the API server
// about the Node name.
func gather(ctx context.Context, h *host.Host, name, kubeconfig string) evidence {
	var ev evidence
	for _, f := range kubeadmFiles {
		if h.Exists(f) {
			ev.files = append(ev.files, f)
		}
	}
	ev.caCert = h.Exists(caCert)
	if b, err := h.ReadFile(kubeletConf); err == nil {
		ev.finalized = strings.Contains(string(b), rotatedClientCert)
	}
	if h.Exists(kubeconfig) {
		ev.api = askAPI(ctx, h, name, kubeconfig)
	}
	return ev
}

// askAPI asks the API server for the Node with kubectl and the node's kubeconfig.
func askAPI(ctx context.Context, h *host.Host, name, kubeconfig string) apiView {
	ctx, cancel := context.WithTimeout(ctx, apiTimeout)
	defer cancel()
	out, err := h.QueryQuiet(ctx, "kubectl", "--kubeconfig", kubeconfig, "get", "node", name, "-o", "json")
	return parseAPIView(out, err, name)
}

// parseAPIView reads kubectl get node NAME -o json's answer.
func parseAPIView(out []byte, err error, name string) apiView {
	if err != nil {
		var ce *host.CommandError
		if !errors.As(err, &ce) {
			return apiUnreachable
		}
		switch {
		case strings.Contains(ce.Stderr, fmt.Sprintf("(NotFound): nodes %q not found", name)):
			return apiAbsent
		case strings.Contains(ce.Stderr, "(Unauthorized)") || strings.Contains(ce.Stderr, "You must be logged in to the server"):
			// The cluster does not know this node's credential: not its cluster (any more).
			return apiAbsent
		}
		return apiUnreachable
	}
	var n struct {
		Metadata struct {
			Name   string            `json:"name"`
			Labels map[string]string `json:"labels"`
		} `json:"metadata"`
	}
	if json.Unmarshal(out, &n) != nil || n.Metadata.Name != name {
		return apiUnreachable
	}
	if _, ok := n.Metadata.Labels[controlPlaneLabel]; ok {
		return apiControlPlane
	}
	return apiListed
}

// resetHalfDone runs kubeadm reset on a half-done node, under the kubeadm lock l, so that
// the init or join can run again.
func resetHalfDone(ctx context.Context, l *host.Lock, h *host.Host, e *tasks.Emitter, what string, ev evidence) error {
	e.Logf("the node is half way through an earlier %s (%s): resetting it with kubeadm reset, then running %s again", what, ev.describe(), what)
	return kubeadmReset(ctx, l, h, e)
}
