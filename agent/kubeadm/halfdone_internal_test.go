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
		{"finished: listed as a control plane", evidence{files: all, finalized: true, api: apiControlPlane}, done},
		{"finished before kubelet-finalize: listed as a control plane", evidence{files: all, started: true, api: apiControlPlane}, done},
		{"Deckhand's init failed waiting for the control plane: no answer", evidence{files: all, started: true, api: apiUnreachable}, halfDone},
		{"Deckhand's init failed before mark-control-plane: listed without the label", evidence{files: all, started: true, api: apiListed}, halfDone},
		{"Deckhand's init: the API answers without the node", evidence{files: all, started: true, api: apiAbsent}, halfDone},
		{"Deckhand's init failed in the certs or kubeconfig phase: no admin.conf", evidence{files: []string{"/etc/kubernetes/controller-manager.conf"}, caCert: true, started: true}, halfDone},
		{"kubelet-finalize ran, the API server down now", evidence{files: all, started: true, finalized: true, api: apiUnreachable}, unsure},
		{"kubelet-finalize ran, the label removed by someone", evidence{files: all, started: true, finalized: true, api: apiListed}, unsure},
		{"admin.conf's certificate refused (expired)", evidence{files: all, started: true, api: apiUnauthorized}, unsure},
		{"kubeadm files Deckhand did not write: a worker", evidence{files: []string{kubeletConf, kubeletConfig}, caCert: true}, foreign},
		{"kubeadm files Deckhand did not write: a control plane that is down", evidence{files: all, finalized: true, api: apiUnreachable}, foreign},
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
		{"worker joined, Deckhand's agent killed before it saw kubeadm end", evidence{files: joined, started: true, api: apiListed}, false, done},
		{"control plane joined", evidence{files: joined, api: apiControlPlane}, true, done},
		{"worker failed after bootstrap-kubelet.conf and pki/ca.crt", evidence{files: []string{bootstrapKubeletConf}, caCert: true, started: true}, false, halfDone},
		{"worker failed after pki/ca.crt only (kubeadm removed bootstrap-kubelet.conf)", evidence{caCert: true, started: true}, false, halfDone},
		{"control plane failed after kubelet.conf: listed without the label", evidence{files: joined, started: true, api: apiListed}, true, halfDone},
		{"kubelet.conf of a node the cluster does not list", evidence{files: joined, started: true, api: apiAbsent}, false, halfDone},
		{"kubelet.conf, API server does not answer", evidence{files: joined, started: true, api: apiUnreachable}, false, unsure},
		{"kubelet.conf refused (expired, or another cluster's)", evidence{files: joined, started: true, api: apiUnauthorized}, false, unsure},
		{"control-plane files without kubelet.conf", evidence{files: []string{adminConf, "/etc/kubernetes/manifests/etcd.yaml"}, caCert: true, started: true}, true, halfDone},
		{"another cluster's node", evidence{files: joined, caCert: true, otherCA: true, started: true, api: apiListed}, false, foreign},
		{"half-joined files Deckhand did not write", evidence{files: []string{bootstrapKubeletConf}, caCert: true}, false, foreign},
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
		{"credential refused", "", fail("error: You must be logged in to the server (Unauthorized)"), apiUnauthorized},
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
