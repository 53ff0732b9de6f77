package kubeadm

import (
	"context"
	"crypto/tls"
	"crypto/x509"
	"encoding/pem"
	"net/http"
	"regexp"
	"strings"
	"time"

	runtimeapi "k8s.io/cri-api/pkg/apis/runtime/v1"

	"github.com/deckhandhq/deckhand/agent/facts"
	"github.com/deckhandhq/deckhand/agent/host"
	"github.com/deckhandhq/deckhand/agent/runtime"
	"github.com/deckhandhq/deckhand/agent/tasks"
	"github.com/deckhandhq/deckhand/internal/lbconf"
	taskv1 "github.com/deckhandhq/deckhand/proto/deckhand/task/v1"
)

// StaticPods are the static pods a renewal restarts, in this order: the API server (it
// reads its etcd and kubelet client certificates only when it starts), then its clients
// (their kubeconfigs). etcd is not restarted: it reads its certificate files again for every
// new connection (etcd 3.2 and later), and restarting it would cost a cluster of two stacked
// members its quorum.
var StaticPods = []string{"kube-apiserver", "kube-controller-manager", "kube-scheduler"}

// restartTimeout bounds the wait for the kubelet to start a static pod's new container.
const restartTimeout = 3 * time.Minute

// RenewCerts renews a control plane's kubeadm certificates (kubeadm certs renew all: the
// leaf certificates under /etc/kubernetes/pki and in the kubeconfigs, not the CAs, not the
// kubelet's, which it rotates itself), then restarts its static pods one at a time, each
// waited for, so they load the new certificates (they do not reload them by themselves),
// and waits until this node's API server answers again. The output expires is the API
// server's new expiry.
func RenewCerts(ctx context.Context, t *taskv1.Task, h *host.Host, e *tasks.Emitter) (map[string]string, error) {
	if id := RestoreInProgress(h); id != "" {
		return nil, restoreInProgressError(id)
	}
	if !h.Exists(facts.APIServerManifest) {
		return nil, tasks.Errorf("NOT_CONTROL_PLANE", "renew the certificates of a control-plane node (deckctl certs renew)", "no %s: this node is not a control plane", facts.APIServerManifest)
	}
	l, err := lock(ctx, h, e)
	if err != nil {
		return nil, err
	}
	defer l.Unlock()
	const what = "kubeadm certs renew all"
	// Killed half way, kubeadm would leave some certificates renewed and others not.
	run, stop := host.ToTheEnd(ctx, 5*time.Minute, func(reason error) { e.Logf("%s: %s runs to its end first", host.Stopped(reason), what) })
	out, err := l.RunOutput(run, what, "kubeadm", "certs", "renew", "all")
	stop()
	l.Unlock()
	if ctx.Err() != nil {
		if err == nil {
			logOutput(e, string(out))
			e.Logf("the certificates are renewed but the static pods were not restarted (the task was stopped): they run on the old certificates until deckctl certs renew runs again")
		}
		return nil, ctx.Err()
	}
	if err != nil {
		return nil, tasks.Errorf("RENEW_FAILED", "look at the task log; kubeadm certs check-expiration on the node shows each certificate", "%s: %v", what, err)
	}
	for _, c := range StaticPods {
		h.Record("container", c, "restart the static pod's container so it loads the renewed certificates")
	}
	if h.DryRun {
		return nil, nil
	}
	logOutput(e, string(out))
	server := localAPIServer(h)
	for _, c := range StaticPods {
		if err := restartStaticPod(ctx, h, e, c); err != nil {
			return nil, err
		}
		if c == "kube-apiserver" {
			if err := waitLocalAPI(ctx, h, e, server); err != nil {
				return nil, err
			}
		}
	}
	outputs := map[string]string{"renewed": "true"}
	if b, err := h.ReadFile("/etc/kubernetes/pki/apiserver.crt"); err == nil {
		if blk, _ := pem.Decode(b); blk != nil {
			if c, err := x509.ParseCertificate(blk.Bytes); err == nil {
				outputs["expires"] = c.NotAfter.UTC().Format(time.RFC3339)
			}
		}
	}
	return outputs, nil
}

// restartStaticPod stops the sandbox of a static pod of this node (as crictl stopp does)
// and waits until the kubelet runs its container again: the kubelet makes a new sandbox and
// container at once, where a stopped container would wait out its restart back-off. One
// that is not running (crash-looping, say) starts with the new certificates anyway.
func restartStaticPod(ctx context.Context, h *host.Host, e *tasks.Emitter, component string) error {
	cc, err := runtime.Dial(h.Path(runtime.HostSocket(h)))
	if err != nil {
		return tasks.Errorf("RUNTIME_UNAVAILABLE", "check that containerd runs (systemctl status containerd)", "connect to the container runtime: %v", err)
	}
	defer cc.Close()
	rs := runtimeapi.NewRuntimeServiceClient(cc)
	running := func() ([]*runtimeapi.Container, error) {
		cctx, cancel := context.WithTimeout(ctx, 10*time.Second)
		defer cancel()
		resp, err := rs.ListContainers(cctx, &runtimeapi.ListContainersRequest{Filter: &runtimeapi.ContainerFilter{
			State:         &runtimeapi.ContainerStateValue{State: runtimeapi.ContainerState_CONTAINER_RUNNING},
			LabelSelector: map[string]string{"io.kubernetes.pod.namespace": "kube-system", "io.kubernetes.container.name": component},
		}})
		if err != nil {
			return nil, err
		}
		var out []*runtimeapi.Container
		for _, c := range resp.GetContainers() {
			// A static pod's mirror is COMPONENT-NODENAME.
			if strings.HasPrefix(c.GetLabels()["io.kubernetes.pod.name"], component+"-") {
				out = append(out, c)
			}
		}
		return out, nil
	}
	before, err := running()
	if err != nil {
		return tasks.Errorf("RUNTIME_UNAVAILABLE", "check that containerd runs (systemctl status containerd)", "list the %s container: %v", component, err)
	}
	if len(before) == 0 {
		e.Logf("%s has no running container: it loads the renewed certificates when the kubelet starts it", component)
		return nil
	}
	old := map[string]bool{}
	for _, c := range before {
		old[c.GetId()] = true
		// SIGTERM first, with the pods' grace period: the API server leaves the kubernetes
		// Service's endpoints and finishes its requests, the others give up their leases.
		sctx, cancel := context.WithTimeout(ctx, 45*time.Second)
		_, err := rs.StopContainer(sctx, &runtimeapi.StopContainerRequest{ContainerId: c.GetId(), Timeout: 30})
		if err == nil && component == "kube-apiserver" {
			// Out of the load balancer's rotation before a new one starts: a new API server
			// answers (Forbidden, its RBAC not synced) before it is ready, and Deckhand's
			// haproxy sends it nothing until two /readyz checks in a row pass once it has
			// seen this one fail (an external load balancer wants the same).
			select {
			case <-sctx.Done():
				err = sctx.Err()
			case <-time.After(lbconf.DrainTime):
			}
		}
		if err == nil {
			// Then its sandbox, so the kubelet starts it afresh at once, without the
			// restart back-off of a stopped container.
			_, err = rs.StopPodSandbox(sctx, &runtimeapi.StopPodSandboxRequest{PodSandboxId: c.GetPodSandboxId()})
		}
		cancel()
		if err != nil {
			return tasks.Errorf("RESTART_FAILED", "restart it by hand: move its manifest out of /etc/kubernetes/manifests and back", "stop the %s pod: %v", component, err)
		}
	}
	start := time.Now()
	for {
		now, err := running()
		if err == nil {
			for _, c := range now {
				if !old[c.GetId()] && healthy(ctx, component) {
					e.Logf("restarted %s (new container, healthy, after %v)", component, time.Since(start).Round(100*time.Millisecond))
					return nil
				}
			}
		}
		if time.Since(start) > restartTimeout {
			attachDiagnostics(ctx, h, e)
			return tasks.Errorf("RESTART_FAILED", "look at the kubelet's log (journalctl -u kubelet) and the attached diagnostics",
				"the kubelet did not start a new %s container within %v", component, restartTimeout)
		}
		select {
		case <-ctx.Done():
			return ctx.Err()
		case <-time.After(500 * time.Millisecond):
		}
	}
}

// healthzPorts are where kubeadm's kube-controller-manager and kube-scheduler answer
// /healthz (on 127.0.0.1, anonymously: --authorization-always-allow-paths).
var healthzPorts = map[string]string{"kube-controller-manager": "10257", "kube-scheduler": "10259"}

// healthy says whether a restarted component answers its /healthz (the API server's
// readiness is waited for apart, through kubectl).
func healthy(ctx context.Context, component string) bool {
	port, ok := healthzPorts[component]
	if !ok {
		return true
	}
	c := &http.Client{Timeout: 2 * time.Second, Transport: &http.Transport{TLSClientConfig: &tls.Config{InsecureSkipVerify: true}, DisableKeepAlives: true}}
	req, err := http.NewRequestWithContext(ctx, http.MethodGet, "https://127.0.0.1:"+port+"/healthz", nil)
	if err != nil {
		return false
	}
	resp, err := c.Do(req)
	if err != nil {
		return false
	}
	resp.Body.Close()
	return resp.StatusCode == http.StatusOK
}

var (
	advertiseRE  = regexp.MustCompile(`--advertise-address=(\S+)`)
	securePortRE = regexp.MustCompile(`--secure-port=(\d+)`)
)

// localAPIServer is this node's own API server (its static pod's advertise address and
// port), not the cluster's endpoint, which another control plane may answer; "" when the
// manifest does not say.
func localAPIServer(h *host.Host) string {
	m, err := h.ReadFile(facts.APIServerManifest)
	if err != nil {
		return ""
	}
	a := advertiseRE.FindSubmatch(m)
	if a == nil {
		return ""
	}
	port := "6443"
	if p := securePortRE.FindSubmatch(m); p != nil {
		port = string(p[1])
	}
	addr := strings.Trim(string(a[1]), `"'`)
	if strings.Contains(addr, ":") {
		addr = "[" + addr + "]"
	}
	return "https://" + addr + ":" + port
}

// waitLocalAPI waits until this node's API server answers /readyz (its etcd check
// included), through the cluster's endpoint when the local one is unknown.
func waitLocalAPI(ctx context.Context, h *host.Host, e *tasks.Emitter, server string) error {
	argv := []string{"kubectl", "--kubeconfig", adminConf}
	if server != "" {
		argv = append(argv, "--server", server)
	}
	argv = append(argv, "--request-timeout=5s", "get", "--raw=/readyz")
	start := time.Now()
	var last error
	for time.Since(start) < restartTimeout {
		if _, last = h.QueryQuiet(ctx, argv...); last == nil {
			e.Logf("the API server %s is ready (after %v)", or(server, "of the cluster's endpoint"), time.Since(start).Round(100*time.Millisecond))
			return nil
		}
		select {
		case <-ctx.Done():
			return ctx.Err()
		case <-time.After(500 * time.Millisecond):
		}
	}
	attachDiagnostics(ctx, h, e)
	return tasks.Errorf("NOT_HEALTHY", "look at the attached diagnostics and kube-apiserver's log", "the API server %s did not answer /readyz within %v: %v", or(server, "of the cluster's endpoint"), restartTimeout, last)
}

func or(s, def string) string {
	if s == "" {
		return def
	}
	return s
}
