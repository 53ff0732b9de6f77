package kubeadm

import (
	"context"
	"errors"
	"fmt"
	"strings"
	"time"

	"github.com/deckhandhq/deckhand/agent/host"
	"github.com/deckhandhq/deckhand/agent/kubectl"
	"github.com/deckhandhq/deckhand/agent/tasks"
)

// A retried init or join must tell a node that finished the work from one a failed run left
// half done: kubeadm's preflight refuses a half-done node forever (its files are "already
// there"), and a half-done node reported as done is a cluster that never comes up. The
// evidence is the files kubeadm writes, in the order its phases write them, what the API
// server says about the Node, and Deckhand's own mark of a kubeadm run it started and did not
// see finish. A node is reset on its own only on that mark: kubeadm files Deckhand did not
// write (another cluster's, an administrator's CA) are never wiped on a guess.

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
	// apiTimeout bounds asking the API server about the node.
	apiTimeout = 20 * time.Second
	// startedDir holds Deckhand's mark of a kubeadm init or join it started (the task ID),
	// removed once kubeadm reported success.
	startedDir = "/var/lib/deckhand"
)

// startedMark is the mark of an unfinished kubeadm run of what ("init" or "join").
func startedMark(what string) string { return startedDir + "/kubeadm-" + what + ".started" }

// apiView is what the API server says about this node's Node object.
type apiView int

const (
	apiNotAsked     apiView = iota // no kubeconfig to ask with
	apiUnreachable                 // no answer (or an answer that says nothing about the node)
	apiUnauthorized                // the credential is refused: expired, or another cluster's
	apiAbsent                      // no such Node
	apiListed                      // the Node exists, without the control-plane label
	apiControlPlane                // the Node exists with the control-plane label
)

func (a apiView) String() string {
	return [...]string{"not asked", "does not answer", "refuses the node's credential", "does not list the node", "lists the node", "lists the node as a control plane"}[a]
}

// evidence is what a node shows of an earlier kubeadm init or join.
type evidence struct {
	files   []string // kubeadmFiles present, in their order
	caCert  bool     // /etc/kubernetes/pki/ca.crt
	started bool     // Deckhand's mark of a run it started and did not see finish
	// finalized: kubelet.conf names a client certificate file instead of embedding one:
	// after a join's TLS bootstrap, and after init's kubelet-finalize phase (which comes
	// after mark-control-plane and bootstrap-token), never before.
	finalized bool
	// otherCA: pki/ca.crt is not the CA the join pins (another cluster's).
	otherCA bool
	api     apiView
}

// verdict is what a retried init or join makes of the evidence.
type verdict int

const (
	fresh    verdict = iota // nothing of an earlier run: run it
	done                    // it finished: report it, change nothing
	halfDone                // Deckhand's run failed half way: kubeadm reset, then run it again
	unsure                  // it may have finished, and the API server cannot say: stop
	foreign                 // kubeadm files Deckhand did not write, or another cluster's: stop
)

func (v verdict) String() string {
	return [...]string{"fresh", "done", "half done", "unsure", "foreign"}[v]
}

// initVerdict judges a node an init ran on. Done is the Node listed as a control plane
// (kubeadm's mark-control-plane phase). Half done needs Deckhand's mark, and a node whose
// kubelet-finalize ran (its init got past mark-control-plane) is never half done.
func initVerdict(ev evidence) verdict {
	switch {
	case len(ev.files) == 0:
		return fresh
	case ev.api == apiControlPlane:
		return done
	case !ev.started:
		return foreign
	case ev.finalized || ev.api == apiUnauthorized:
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
	case ev.otherCA:
		return foreign
	case hasKubeletConf && (ev.api == apiControlPlane || ev.api == apiListed && !controlPlane):
		return done
	case !ev.started:
		return foreign
	case hasKubeletConf && (ev.api == apiUnreachable || ev.api == apiUnauthorized):
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

// gather reads the node's files and, with kubeconfig when it is given and there, asks the
// API server (at server, when given, else the kubeconfig's) about the Node name. what names
// Deckhand's mark to look for ("init", "join"); pinned is the CA hash a join pins.
func gather(ctx context.Context, h *host.Host, name, what, kubeconfig, server, pinned string) evidence {
	var ev evidence
	for _, f := range kubeadmFiles {
		if h.Exists(f) {
			ev.files = append(ev.files, f)
		}
	}
	ev.caCert = h.Exists(caCert)
	ev.started = what != "" && h.Exists(startedMark(what))
	if b, err := h.ReadFile(kubeletConf); err == nil {
		ev.finalized = !strings.Contains(string(b), "client-certificate-data:")
	}
	if ev.caCert && pinned != "" {
		// A CA that is not the pinned one, or no CA at all, was not written by this join.
		if hash, err := caHash(h); err != nil || hash != pinned {
			ev.otherCA = true
		}
	}
	if kubeconfig != "" && h.Exists(kubeconfig) {
		ev.api = askAPI(ctx, h, name, kubeconfig, server)
	}
	return ev
}

// askAPI asks the API server for the Node with kubectl and the node's kubeconfig.
func askAPI(ctx context.Context, h *host.Host, name, kubeconfig, server string) apiView {
	ctx, cancel := context.WithTimeout(ctx, apiTimeout)
	defer cancel()
	argv := []string{"kubectl", "--kubeconfig", kubeconfig}
	if server != "" {
		argv = append(argv, "--server", server)
	}
	out, err := h.QueryQuiet(ctx, append(argv, "get", "node", name, "-o", "json")...)
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
			// An expired credential, or another cluster's: it says nothing about the node.
			return apiUnauthorized
		}
		return apiUnreachable
	}
	n, perr := kubectl.ParseNode(out)
	switch {
	case perr != nil || n.Name != name:
		return apiUnreachable
	case n.ControlPlane:
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

// markStarted writes Deckhand's mark of a kubeadm run of what (the task ID), before kubeadm
// starts: a retry may reset a half-done node only on this mark.
func markStarted(h *host.Host, what, taskID string) error {
	if h.DryRun {
		return nil
	}
	_, err := h.WriteFile(startedMark(what), []byte(taskID+"\n"), 0o600)
	return err
}

// unmarkStarted removes the mark once kubeadm reported success.
func unmarkStarted(h *host.Host, what string) {
	if !h.DryRun {
		_, _ = h.RemoveFile(startedMark(what))
	}
}
