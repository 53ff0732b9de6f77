package kubeadm

import (
	"errors"
	"testing"

	"github.com/deckhandhq/deckhand/agent/host"
)

func TestInitVerdict(t *testing.T) {
	all := []string{adminConf, kubeletConf, "/etc/kubernetes/manifests/kube-apiserver.yaml", kubeletConfig}
	for _, c := range []struct {
		name string
		ev   evidence
		want verdict
	}{
		{"nothing there", evidence{}, fresh},
		{"only an administrator's CA", evidence{caCert: true}, fresh},
		{"finished: listed as a control plane, kubelet-finalize ran", evidence{files: all, finalized: true, api: apiControlPlane}, done},
		{"failed waiting for the control plane: admin.conf, no answer", evidence{files: all, api: apiUnreachable}, halfDone},
		{"failed before kubelet-finalize: listed, not finalized", evidence{files: all, api: apiControlPlane}, halfDone},
		{"failed before mark-control-plane: listed without the label", evidence{files: all, finalized: true, api: apiListed}, halfDone},
		{"API answers without the node", evidence{files: all, finalized: true, api: apiAbsent}, halfDone},
		{"finished, API server down now", evidence{files: all, finalized: true, api: apiUnreachable}, unsure},
		{"failed in the certs or kubeconfig phase: no admin.conf", evidence{files: []string{"/etc/kubernetes/controller-manager.conf"}, caCert: true}, halfDone},
	} {
		if got := initVerdict(c.ev); got != c.want {
			t.Errorf("%s: %v, want %v", c.name, got, c.want)
		}
	}
}

func TestJoinVerdict(t *testing.T) {
	joined := []string{kubeletConf, kubeletConfig}
	for _, c := range []struct {
		name string
		ev   evidence
		cp   bool
		want verdict
	}{
		{"nothing there", evidence{}, false, fresh},
		{"worker joined", evidence{files: joined, api: apiListed}, false, done},
		{"control plane joined", evidence{files: joined, api: apiControlPlane}, true, done},
		{"worker failed after bootstrap-kubelet.conf and pki/ca.crt", evidence{files: []string{bootstrapKubeletConf}, caCert: true}, false, halfDone},
		{"worker failed after pki/ca.crt only (kubeadm removed bootstrap-kubelet.conf)", evidence{caCert: true}, false, halfDone},
		{"control plane failed after kubelet.conf: listed without the label", evidence{files: joined, api: apiListed}, true, halfDone},
		{"kubelet.conf of a node the cluster does not list", evidence{files: joined, api: apiAbsent}, false, halfDone},
		{"kubelet.conf, API server does not answer", evidence{files: joined, api: apiUnreachable}, false, unsure},
		{"control-plane files without kubelet.conf", evidence{files: []string{adminConf, "/etc/kubernetes/manifests/etcd.yaml"}, caCert: true}, true, halfDone},
	} {
		if got := joinVerdict(c.ev, c.cp); got != c.want {
			t.Errorf("%s: %v, want %v", c.name, got, c.want)
		}
	}
}

// The answers kubectl v1.33 gives, as the agent sees them.
func TestParseAPIView(t *testing.T) {
	fail := func(stderr string) error { return &host.CommandError{Err: errors.New("exit status 1"), Stderr: stderr} }
	for _, c := range []struct {
		name string
		out  string
		err  error
		want apiView
	}{
		{"worker", `{"kind":"Node","metadata":{"name":"node-3","labels":{"kubernetes.io/hostname":"node-3"}}}`, nil, apiListed},
		{"control plane", `{"kind":"Node","metadata":{"name":"node-1","labels":{"node-role.kubernetes.io/control-plane":""}}}`, nil, apiControlPlane},
		{"another node's object", `{"kind":"Node","metadata":{"name":"node-9"}}`, nil, apiUnreachable},
		{"not JSON", `<html>`, nil, apiUnreachable},
		{"not found", "", fail(`Error from server (NotFound): nodes "node-3" not found`), apiAbsent},
		{"another node not found", "", fail(`Error from server (NotFound): nodes "node-33" not found`), apiUnreachable},
		{"credential unknown", "", fail("error: You must be logged in to the server (Unauthorized)"), apiAbsent},
		{"refused", "", fail("The connection to the server 10.250.0.1:6443 was refused - did you specify the right host or port?"), apiUnreachable},
		{"forbidden", "", fail(`Error from server (Forbidden): nodes "node-3" is forbidden: User "system:node:node-3" cannot get resource "nodes"`), apiUnreachable},
		{"killed by the timeout", "", errors.New("signal: killed"), apiUnreachable},
	} {
		name := "node-3"
		if c.name == "control plane" {
			name = "node-1"
		}
		if got := parseAPIView([]byte(c.out), c.err, name); got != c.want {
			t.Errorf("%s: %v, want %v", c.name, got, c.want)
		}
	}
}
