package kubeadm

import (
	"errors"
	"os/exec"
	"strings"
	"testing"

	"github.com/deckhandhq/deckhand/agent/host"
)

// What kubeadm v1.33.13 prints on stderr for each cause (the unreachable one as a real
// kubeadm printed it, klog warnings included), and the reason the task reports.
func TestJoinFailuresNameTheCause(t *testing.T) {
	const trace = "\nTo see the stack trace of this error execute with --v=5 or higher\n"
	cases := []struct {
		stderr, reason, line string
	}{{
		stderr: "W1130 08:37:49.029124   56974 checks.go:1062] [preflight] WARNING: Couldn't create the interface used for talking to the container runtime\n" +
			"\t[WARNING Service-Kubelet]: kubelet service is not enabled, please run 'systemctl enable kubelet.service'\n" +
			`error execution phase preflight: couldn't validate the identity of the API Server: failed to request the cluster-info ConfigMap: Get "https://10.0.0.10:6443/api/v1/namespaces/kube-public/configmaps/cluster-info?timeout=10s": dial tcp 10.0.0.10:6443: connect: no route to host` + trace,
		reason: "ENDPOINT_UNREACHABLE",
		line:   `error execution phase preflight: couldn't validate the identity of the API Server: failed to request the cluster-info ConfigMap: Get "https://10.0.0.10:6443/api/v1/namespaces/kube-public/configmaps/cluster-info?timeout=10s": dial tcp 10.0.0.10:6443: connect: no route to host`,
	}, {
		stderr: `error execution phase preflight: couldn't validate the identity of the API Server: could not find a JWS signature in the cluster-info ConfigMap for token ID "abcdef"` + trace,
		reason: "TOKEN_INVALID",
		line:   `error execution phase preflight: couldn't validate the identity of the API Server: could not find a JWS signature in the cluster-info ConfigMap for token ID "abcdef"`,
	}, {
		stderr: "error execution phase preflight: couldn't validate the identity of the API Server: failed to verify JWS signature of received cluster info object, can't trust this API Server" + trace,
		reason: "TOKEN_INVALID",
	}, {
		stderr: `error execution phase preflight: couldn't validate the identity of the API Server: token id "abcdef" is invalid for this cluster or it has expired. Use "kubeadm token create" on the control-plane node to create a new valid token` + trace,
		reason: "TOKEN_INVALID",
	}, {
		stderr: `error execution phase preflight: couldn't validate the identity of the API Server: cluster CA found in cluster-info ConfigMap is invalid: none of the public keys "sha256:9b1f2a6d0c8e4f3a7b5d1e9c2f4a6b8d0e2f4a6c8e0a2c4e6a8c0e2a4c6e8a0c" are pinned` + trace,
		reason: "CA_HASH_MISMATCH",
	}, {
		stderr: "error execution phase control-plane-prepare/download-certs: error downloading certs: error decoding secret data with provided key: cipher: message authentication failed" + trace,
		reason: "CERTIFICATE_KEY_INVALID",
		line:   "error execution phase control-plane-prepare/download-certs: error downloading certs: error decoding secret data with provided key: cipher: message authentication failed",
	}, {
		stderr: "error execution phase control-plane-prepare/download-certs: error downloading certs: error downloading the secret: Secret \"kubeadm-certs\" was not found in the \"kube-system\" Namespace. This Secret might have expired. Please, run `kubeadm init phase upload-certs --upload-certs` on a control plane to generate a new one" + trace,
		reason: "CERTIFICATE_KEY_INVALID",
	}, {
		stderr: "error execution phase preflight: [preflight] Some fatal errors occurred:\n\t[ERROR FileAvailable--etc-kubernetes-pki-ca.crt]: /etc/kubernetes/pki/ca.crt already exists\n[preflight] If you know what you are doing, you can make a check non-fatal with `--ignore-preflight-errors=...`" + trace,
		reason: "JOIN_FAILED",
	}}
	seen := map[string]bool{}
	for _, c := range cases {
		err := classifyJoin(&host.CommandError{Argv: []string{"kubeadm", "join"}, Err: &exec.ExitError{}, Stderr: c.stderr})
		if err.Reason != c.reason || err.Hint == "" {
			t.Errorf("reason %q hint %q for:\n%s\nwant reason %q", err.Reason, err.Hint, c.stderr, c.reason)
			continue
		}
		seen[c.reason] = true
		if strings.Contains(err.Msg, "stack trace") || (c.line != "" && !strings.HasSuffix(err.Msg, ": "+c.line)) {
			t.Errorf("message %q, want it to end with kubeadm's error %q", err.Msg, c.line)
		}
	}
	// Each reason is declared once, and each has a case above.
	declared := map[string]bool{}
	for _, f := range joinFailures {
		if declared[f.Reason] || f.Reason == "JOIN_FAILED" || f.What == "" || f.Hint == "" {
			t.Errorf("join failure %q is declared twice, or lacks what failed or a hint", f.Reason)
		}
		declared[f.Reason] = true
		if !seen[f.Reason] {
			t.Errorf("join failure %q has no case", f.Reason)
		}
	}
	if !seen["JOIN_FAILED"] {
		t.Error("no case of an unrecognised failure")
	}
	if err := classifyJoin(errors.New("wait for the kubeadm lock: context canceled")); err.Reason != "JOIN_FAILED" || !strings.Contains(err.Msg, "context canceled") {
		t.Errorf("a failure without kubeadm output: %+v", err)
	}
}
