package kubeadm

import (
	"errors"
	"regexp"
	"strings"

	"github.com/deckhandhq/deckhand/agent/host"
	"github.com/deckhandhq/deckhand/agent/tasks"
)

// joinFailure is a cause of a failed kubeadm join that the user can act on, recognised by
// the text kubeadm v1.33 prints for it. Each reason is declared here once.
type joinFailure struct {
	Reason string
	// What the task error says failed, before kubeadm's own error line.
	What string
	Hint string
	// Text matches kubeadm's error (cmd/kubeadm/app/discovery/token, util/pubkeypin,
	// phases/copycerts, cmd/phases/join).
	Text *regexp.Regexp
}

// joinFailures are the causes of a failed join that Deckhand tells apart; a failure that
// matches none is JOIN_FAILED. The first that matches wins.
var joinFailures = []joinFailure{{
	Reason: "ENDPOINT_UNREACHABLE",
	What:   "kubeadm join could not reach the API server at the cluster's control-plane endpoint",
	Hint:   "check the route and firewall from this node to the endpoint's host:port (the dial error is in the message), then deckctl workflow retry ID",
	// kubeadm retries until its discovery timeout (5m by default), then prints the last
	// dial error.
	Text: regexp.MustCompile(`failed to request the cluster-info ConfigMap: `),
}, {
	Reason: "TOKEN_INVALID",
	What:   "the cluster does not know the join token (it expired or was deleted before kubeadm used it)",
	Hint:   "deckctl workflow retry ID mints a new token; if it happens again, check the control plane's clock",
	// An unknown token ID: kubeadm waits its discovery timeout for a signature that never
	// comes. A known ID with another secret fails at once.
	Text: regexp.MustCompile(`could not find a JWS signature in the cluster-info ConfigMap for token ID|token id "[a-z0-9]*" is invalid for this cluster or it has expired|failed to verify JWS signature of received cluster info object`),
}, {
	Reason: "CA_HASH_MISMATCH",
	What:   "the API server at the endpoint serves a cluster CA other than the pinned CA cert hash",
	Hint:   "the control-plane endpoint leads to another (or a re-initialized) cluster: point control_plane_endpoint at this cluster's API servers, then deckctl workflow retry ID",
	Text:   regexp.MustCompile(`cluster CA found in cluster-info ConfigMap is invalid: none of the public keys "[^"]*" are pinned`),
}, {
	Reason: "CERTIFICATE_KEY_INVALID",
	What:   "kubeadm join could not download the control-plane certificates with the certificate key",
	Hint:   "the uploaded certificates expire after 2 hours and need the key of their upload: deckctl workflow retry ID uploads them again with a new key",
	Text:   regexp.MustCompile(`error downloading certs: `),
}}

// classifyJoin turns a failed kubeadm join into the task error that names its cause.
func classifyJoin(err error) *tasks.Error {
	text := err.Error()
	var ce *host.CommandError
	if errors.As(err, &ce) {
		text = ce.Stderr
	}
	for _, f := range joinFailures {
		if f.Text.MatchString(text) {
			return tasks.Errorf(f.Reason, f.Hint, "%s: %s", f.What, kubeadmError(text))
		}
	}
	const hint = "see kubeadm's output in the task log and the attached diagnostics bundle (deckctl task get ID --save FILE), then deckctl workflow retry ID"
	if ce != nil {
		return tasks.Errorf("JOIN_FAILED", hint, "kubeadm join failed (%v): %s", ce.Err, kubeadmError(text))
	}
	return tasks.Errorf("JOIN_FAILED", hint, "%v", err)
}

// kubeadmError is the error line kubeadm printed last, without its klog lines and the
// stack-trace hint.
func kubeadmError(stderr string) string {
	lines := strings.Split(strings.TrimSpace(stderr), "\n")
	for i := len(lines) - 1; i >= 0; i-- {
		if strings.HasPrefix(lines[i], "error execution phase ") {
			msg := lines[i:]
			for j, l := range msg {
				if strings.HasPrefix(l, stackTraceHint) {
					msg = msg[:j]
					break
				}
			}
			return strings.TrimSpace(strings.Join(msg, " "))
		}
	}
	var keep []string
	for _, l := range lines {
		if l = strings.TrimSpace(l); l != "" && !strings.HasPrefix(l, stackTraceHint) && !klogLine.MatchString(l) {
			keep = append(keep, l)
		}
	}
	if len(keep) == 0 {
		return strings.TrimSpace(stderr)
	}
	return keep[len(keep)-1]
}

// stackTraceHint ends every error kubeadm prints without --v=5.
const stackTraceHint = "To see the stack trace of this error"

var klogLine = regexp.MustCompile(`^[IWEF]\d{4} \d\d:\d\d:\d\d\.\d+ +\d+ \S+:\d+\] `)
