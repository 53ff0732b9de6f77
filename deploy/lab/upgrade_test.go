package lab_test

import (
	"crypto"
	"crypto/rand"
	"crypto/sha256"
	"crypto/tls"
	"crypto/x509"
	"encoding/base64"
	"encoding/hex"
	"encoding/json"
	"encoding/pem"
	"fmt"
	"math/big"
	"net"
	"net/http"
	"os"
	"path/filepath"
	"regexp"
	"slices"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/deckhandhq/deckhand/internal/testkit/testcluster"
)

// The releases of the real upgrade: the lab's own, and the newest v1.34 patch the Go module
// proxy serves (scripts/k8s.sh builds its kit; .ci/run builds both).
const (
	upgradeFrom = "v1.33.13"
	upgradeTo   = "v1.34.12"
)

// webWorkload is a Deployment of two probe servers, one on each worker (the control planes'
// taint keeps them off node-1 and node-4), a PodDisruptionBudget that keeps one available,
// and a Service in front. An evicted probe goes on serving 5 s after SIGTERM while kube-proxy
// drops it from the Service, as a server with a preStop delay does.
const webWorkload = `apiVersion: apps/v1
kind: Deployment
metadata: {name: web}
spec:
  replicas: 2
  selector: {matchLabels: {app: web}}
  template:
    metadata: {labels: {app: web}}
    spec:
      terminationGracePeriodSeconds: 10
      affinity:
        podAntiAffinity:
          requiredDuringSchedulingIgnoredDuringExecution:
          - {topologyKey: kubernetes.io/hostname, labelSelector: {matchLabels: {app: web}}}
      containers:
      - name: web
        image: IMAGE
        args: [serve, ":8080", "5s"]
        readinessProbe: {httpGet: {path: /, port: 8080}, periodSeconds: 1}
---
apiVersion: policy/v1
kind: PodDisruptionBudget
metadata: {name: web}
spec:
  minAvailable: 1
  selector: {matchLabels: {app: web}}
---
apiVersion: v1
kind: Service
metadata: {name: web}
spec:
  selector: {app: web}
  ports: [{port: 8080}]
`

// TestRealLabUpgrade upgrades a real cluster of two control planes (node-1, node-4) and two
// workers from v1.33.13 to v1.34.12 with `deckctl upgrade apply`: the leading controller is
// SIGKILLed while the first control plane's kubeadm upgrade apply runs, and the upgrade
// completes all the same; a PodDisruptionBudget-protected Deployment on the workers answers
// every request through the Service while the workers are drained and upgraded; every node
// ran kubeadm upgrade once; kubelets, control planes, etcd and the records are at the target.
func TestRealLabUpgrade(t *testing.T) {
	l, _, env := startLab(t, "upgrade", "DECKHAND_LAB_UPGRADE_TO="+upgradeTo, "DECKHAND_LAB_JOIN_FLAGS=--control-plane")
	ctl := &lab{t: t, dir: l.dir, env: env, prefix: l.prefix, net: l.net}
	cps, workers := []string{"node-1", "node-4"}, []string{"node-2", "node-3"}
	all := append(append([]string{}, cps...), workers...)

	// kubeadm upgrade backs up the kubelet's configuration into a new directory
	// /etc/kubernetes/tmp/kubeadm-kubelet-config* on every run, apply and node alike (its
	// kubelet-config phase): the count says how many times it ran on a host.
	upgrades := func(node string) int {
		m, _ := filepath.Glob(filepath.Join(l.dir, node, "fs", "etc", "kubernetes", "tmp", "kubeadm-kubelet-config*"))
		return len(m)
	}
	for _, n := range all {
		if c := upgrades(n); c != 0 {
			t.Fatalf("%s has %d kubelet configuration backups of kubeadm upgrade before any upgrade", n, c)
		}
	}
	if got := l.etcdMembers(); fmt.Sprint(got) != "[node-1 node-4]" {
		t.Fatalf("etcd members of the lab: %v, want node-1 and node-4", got)
	}
	if out, err := l.kubectl("version", "-o", "json"); err != nil || !strings.Contains(out, `"gitVersion": "`+upgradeFrom+`"`) {
		t.Fatalf("the API server's version before the upgrade: %v\n%s", err, out)
	}

	// The workload the workers' batches must keep serving.
	manifest := filepath.Join(t.TempDir(), "web.yaml")
	if err := os.WriteFile(manifest, []byte(strings.Replace(webWorkload, "IMAGE", l.net+".1:5000/deckhand-probe:v1", 1)), 0o644); err != nil {
		t.Fatal(err)
	}
	if out, err := l.kubectl("apply", "-f", manifest); err != nil {
		t.Fatalf("kubectl apply the web workload: %v\n%s", err, out)
	}
	if out, err := l.kubectl("rollout", "status", "deployment/web", "--timeout=180s"); err != nil {
		t.Fatalf("the web Deployment did not roll out: %v\n%s", err, out)
	}
	if out, err := l.kubectl("get", "pods", "-l", "app=web", "-o", `jsonpath={range .items[*]}{.spec.nodeName}{" "}{end}`); err != nil || !slices.Equal(sorted(strings.Fields(out)), workers) {
		t.Fatalf("the web pods run on %q (%v), want one on each worker", out, err)
	}
	ip, err := l.kubectl("get", "service", "web", "-o", "jsonpath={.spec.clusterIP}")
	if err != nil {
		t.Fatal(err, ip)
	}
	url := "http://" + ip + ":8080/"
	probe := filepath.Join(l.dir, "bin", "probe")
	// kube-proxy on node-1 programs the new Service within a second or so.
	testcluster.WaitFor(t, time.Minute, func() error {
		if out, err := l.onHost("node-1", probe, "get", url); err != nil || !strings.HasPrefix(out, "web-") {
			return fmt.Errorf("the web Service from node-1 before the upgrade: %v %q", err, out)
		}
		return nil
	})

	// The plan names the target and every node, and changes nothing.
	plan, err := l.deckctl("upgrade", "plan", "--to", upgradeTo)
	if err != nil {
		t.Fatalf("deckctl upgrade plan --to %s: %v\n%s", upgradeTo, err, plan)
	}
	for _, want := range append([]string{upgradeTo}, all...) {
		if !strings.Contains(plan, want) {
			t.Fatalf("deckctl upgrade plan does not mention %s:\n%s", want, plan)
		}
	}
	t.Logf("deckctl upgrade plan --to %s:\n%s", upgradeTo, plan)

	// The Service is asked from node-1 every 200 ms from here to the end of the upgrade.
	var (
		mu               sync.Mutex
		served, failures int
		failed           []string
	)
	stop := make(chan struct{})
	polled := make(chan struct{})
	go func() {
		defer close(polled)
		for {
			select {
			case <-stop:
				return
			case <-time.After(200 * time.Millisecond):
			}
			out, err := l.onHost("node-1", probe, "get", url)
			mu.Lock()
			if err != nil {
				failures++
				if len(failed) < 10 {
					failed = append(failed, fmt.Sprintf("%s %v %s", time.Now().Format(time.TimeOnly), err, strings.TrimSpace(out)))
				}
			} else {
				served++
			}
			mu.Unlock()
		}
	}()
	defer func() {
		select {
		case <-stop:
		default:
			close(stop)
		}
		<-polled
	}()

	start := time.Now()
	idOut, err := l.deckctl("upgrade", "apply", "--to", upgradeTo, "--detach")
	if err != nil {
		t.Fatalf("deckctl upgrade apply --to %s --detach: %v\n%s", upgradeTo, err, idOut)
	}
	id := strings.TrimSpace(idOut)

	// The leading controller dies while the real kubeadm upgrade apply runs on node-1; it is
	// started again as its service manager would.
	testcluster.WaitFor(t, 15*time.Minute, func() error {
		if len(l.hostPIDs("node-1", "kubeadm", "upgrade", "apply")) == 0 {
			return fmt.Errorf("kubeadm upgrade apply has not started on node-1")
		}
		return nil
	})
	leader := ctl.leader()
	ctl.kill(leader)
	t.Logf("SIGKILLed the leading controller %s %v into the upgrade, while kubeadm upgrade apply ran on node-1", leader, time.Since(start).Round(time.Second))
	ctl.restart(leader)

	st := l.waitWorkflow(id, 40*time.Minute)
	close(stop)
	<-polled
	took := time.Since(start)
	if st != "WORKFLOW_STATE_SUCCEEDED" {
		out, _ := l.deckctl("workflow", "describe", id)
		logs, _ := l.deckctl("logs", id)
		t.Fatalf("the upgrade ended %s:\n%s\n%s", st, out, logs)
	}
	desc, _ := l.deckctl("workflow", "describe", id)
	t.Logf("the upgrade %s took %v:\n%s", id, took.Round(time.Second), desc)
	for _, n := range cps {
		logs, _ := l.deckctl("logs", id, "--node", n)
		var lines []string
		for _, line := range strings.Split(logs, "\n") {
			if strings.HasPrefix(line, n+"/upgrade ") {
				lines = append(lines, line)
			}
		}
		t.Logf("%s's kubeadm upgrade:\n%s", n, strings.Join(lines, "\n"))
	}

	// Served throughout: every request through the Service got a pod's answer.
	mu.Lock()
	t.Logf("the web Service from node-1: %d requests served, %d failed during the upgrade", served, failures)
	if failures > 0 || served < 100 {
		// When: the drains' and evictions' lines of the workflow's log, to set beside the failures' times.
		logs, _ := l.deckctl("logs", id)
		var when []string
		for _, line := range strings.Split(logs, "\n") {
			if strings.Contains(line, "/drain") || strings.Contains(line, "/uncordon") {
				when = append(when, line)
			}
		}
		errorf(t, "the PodDisruptionBudget-protected Deployment was not served throughout the upgrade: %d served, %d failed: %s\nthe drains:\n%s",
			served, failures, strings.Join(failed, "; "), strings.Join(when, "\n"))
	}
	mu.Unlock()

	// Once per node: one kubelet configuration backup of kubeadm upgrade on each.
	for _, n := range all {
		if c := upgrades(n); c != 1 {
			errorf(t, "kubeadm upgrade ran %d times on %s, want once", c, n)
		}
	}

	// The cluster at the target, as its API server and the hosts see it.
	testcluster.WaitFor(t, 3*time.Minute, func() error {
		out, err := l.kubectl("get", "nodes", "-o", `jsonpath={range .items[*]}{.metadata.name}={.status.nodeInfo.kubeletVersion},{.spec.unschedulable}{"\n"}{end}`)
		if err != nil {
			return fmt.Errorf("%v %s", err, out)
		}
		if marks, err := l.kubectl("get", "nodes", "-o", `jsonpath={.items[*].metadata.annotations.deckhand\.dev/cordoned}`); err != nil || strings.TrimSpace(marks) != "" {
			return fmt.Errorf("Deckhand's cordon mark is left on nodes after their uncordon: %v %q", err, marks)
		}
		for _, n := range all {
			if !strings.Contains(out, n+"="+upgradeTo+",\n") {
				return fmt.Errorf("node %s is not a schedulable %s kubelet:\n%s", n, upgradeTo, out)
			}
			if err := l.nodeReady(n); err != nil {
				return err
			}
		}
		return nil
	})
	if out, err := l.kubectl("version", "-o", "json"); err != nil || !strings.Contains(out, `"gitVersion": "`+upgradeTo+`"`) {
		t.Fatalf("the API server's version after the upgrade: %v\n%s", err, out)
	}
	for _, n := range cps {
		for component, tag := range map[string]string{"kube-apiserver": upgradeTo, "kube-controller-manager": upgradeTo, "kube-scheduler": upgradeTo, "etcd": "3.6.5-0"} {
			m, err := os.ReadFile(filepath.Join(l.dir, n, "fs", "etc", "kubernetes", "manifests", component+".yaml"))
			if err != nil || !strings.Contains(string(m), "/"+component+":"+tag+"\n") {
				errorf(t, "%s's %s static pod after the upgrade does not run %s (%v)", n, component, tag, err)
			}
		}
	}
	if got := l.etcdMembers(); fmt.Sprint(got) != "[node-1 node-4]" {
		t.Fatalf("etcd members after the upgrade: %v", got)
	}

	// Deckhand's records: the cluster's version and each node's kubelet and control plane
	// (deckctl nodes: from the facts each agent reports after its tasks, within seconds); a
	// second plan finds nothing to do.
	if cl, err := l.deckctl("cluster"); err != nil || !strings.Contains(cl, "Kubernetes:  "+upgradeTo) || strings.Count(cl, upgradeTo) != 1+4+2 {
		errorf(t, "the cluster record after the upgrade (want the version, 4 kubelets and 2 control planes at %s): %v\n%s", upgradeTo, err, cl)
	}
	testcluster.WaitFor(t, 2*time.Minute, func() error {
		ns, err := l.deckctl("nodes")
		if err != nil {
			return fmt.Errorf("%v %s", err, ns)
		}
		for _, n := range all {
			want := 1
			if slices.Contains(cps, n) {
				want = 2
			}
			line := regexp.MustCompile(`(?m)^` + n + `\s.*$`).FindString(ns)
			if c := strings.Count(line, upgradeTo); c != want {
				return fmt.Errorf("deckctl nodes shows %s at %s %d times, want %d (kubelet, control plane):\n%s", n, upgradeTo, c, want, ns)
			}
		}
		if again, err := l.deckctl("upgrade", "plan", "--to", upgradeTo); err != nil || !strings.Contains(again, "Nothing to upgrade") {
			return fmt.Errorf("a second upgrade plan: %v\n%s", err, again)
		}
		return nil
	})
	nodes, _ := l.deckctl("nodes")
	t.Logf("deckctl nodes after the upgrade:\n%s", nodes)

	l.renewCertificates(cps)
	doc := l.autoRenewal(upgradeTo)
	l.etcdBackupAndRestore(cps, all, doc)

	stopLab(t, l, env)
}

func sorted(s []string) []string {
	slices.Sort(s)
	return s
}

// kubeadmCerts are the leaf certificates kubeadm certs renew all renews on a control plane
// (files and kubeconfigs), by the names kubeadm gives them.
var kubeadmCerts = map[string]string{
	"apiserver": "pki/apiserver.crt", "apiserver-etcd-client": "pki/apiserver-etcd-client.crt", "apiserver-kubelet-client": "pki/apiserver-kubelet-client.crt",
	"front-proxy-client": "pki/front-proxy-client.crt", "etcd-healthcheck-client": "pki/etcd/healthcheck-client.crt", "etcd-peer": "pki/etcd/peer.crt",
	"etcd-server": "pki/etcd/server.crt", "admin.conf": "admin.conf", "controller-manager.conf": "controller-manager.conf", "scheduler.conf": "scheduler.conf",
}

// hostCert reads a certificate of a lab host's /etc/kubernetes: a PEM file, or a
// kubeconfig's client-certificate-data.
func (l *realLab) hostCert(node, rel string) (*x509.Certificate, error) {
	b, err := os.ReadFile(filepath.Join(l.dir, node, "fs", "etc", "kubernetes", rel))
	if err != nil {
		return nil, err
	}
	if strings.HasSuffix(rel, ".conf") {
		m := regexp.MustCompile(`client-certificate-data:\s*(\S+)`).FindSubmatch(b)
		if m == nil {
			return nil, fmt.Errorf("%s: no client-certificate-data", rel)
		}
		if b, err = base64.StdEncoding.DecodeString(string(m[1])); err != nil {
			return nil, err
		}
	}
	blk, _ := pem.Decode(b)
	if blk == nil {
		return nil, fmt.Errorf("%s: no PEM block", rel)
	}
	return x509.ParseCertificate(blk.Bytes)
}

// renewCertificates: deckctl certs lists every control plane's kubeadm certificates with
// their real expiry (the files'); deckctl certs renew renews them on both control planes,
// one after the other, while the API answers through the cluster's endpoint throughout;
// then every expiry has moved forward, on the hosts and in deckctl certs.
func (l *realLab) renewCertificates(cps []string) map[string]time.Time {
	t := l.t
	type row struct {
		Kind, Node, Name, RenewedBy string
		Expires                     time.Time
	}
	listed := func() map[string]row {
		out, err := l.deckctl("certs", "-o", "json")
		if err != nil {
			t.Fatalf("deckctl certs -o json: %v\n%s", err, out)
		}
		var v struct{ Certificates []row }
		if err := json.Unmarshal([]byte(out), &v); err != nil {
			t.Fatalf("deckctl certs -o json: %v\n%s", err, out)
		}
		m := map[string]row{}
		for _, r := range v.Certificates {
			if r.Kind == "node" {
				m[r.Node+"/"+r.Name] = r
			}
		}
		return m
	}
	onHosts := func() map[string]time.Time {
		m := map[string]time.Time{}
		for _, n := range cps {
			for name, rel := range kubeadmCerts {
				c, err := l.hostCert(n, rel)
				if err != nil {
					t.Fatalf("%s's %s: %v", n, name, err)
				}
				m[n+"/"+name] = c.NotAfter
			}
		}
		return m
	}
	// The agents report what the files hold (their facts, refreshed after each task).
	same := func(want map[string]time.Time) error {
		got := listed()
		for k, exp := range want {
			r, ok := got[k]
			if !ok || !r.Expires.Equal(exp) || r.RenewedBy != "kubeadm" {
				return fmt.Errorf("deckctl certs shows %s as %+v, want expiring %v, renewed by kubeadm", k, r, exp)
			}
		}
		return nil
	}
	before := onHosts()
	testcluster.WaitFor(t, 2*time.Minute, func() error { return same(before) })
	table, _ := l.deckctl("certs")
	t.Logf("deckctl certs:\n%s", table)
	for _, n := range []string{"node-2", "node-3"} {
		if r, ok := listed()[n+"/kubelet-client"]; !ok || r.RenewedBy != "kubelet" || time.Until(r.Expires) < 300*24*time.Hour {
			errorf(t, "deckctl certs: %s's kubelet client certificate %+v, want one the kubelet renews, valid about a year", n, r)
		}
	}

	// The API through the cluster's endpoint, asked every 100 ms during the renewal.
	var mu sync.Mutex
	var asked, failed int
	var failures []string
	stop, polled := make(chan struct{}), make(chan struct{})
	go func() {
		defer close(polled)
		c := &http.Client{Timeout: 2 * time.Second, Transport: &http.Transport{TLSClientConfig: &tls.Config{InsecureSkipVerify: true}, DisableKeepAlives: true}}
		for {
			select {
			case <-stop:
				return
			case <-time.After(100 * time.Millisecond):
			}
			resp, err := c.Get("https://" + l.vip() + ":8443/version")
			mu.Lock()
			asked++
			if err != nil || resp.StatusCode != http.StatusOK {
				failed++
				if len(failures) < 5 {
					failures = append(failures, fmt.Sprintf("%s %v %v", time.Now().Format(time.TimeOnly), err, resp))
				}
			}
			mu.Unlock()
			if resp != nil {
				resp.Body.Close()
			}
		}
	}()
	// Which processes run each control plane's components now: the renewal restarts the
	// API server, controller manager and scheduler, and leaves etcd alone.
	pids := func() map[string]string {
		m := map[string]string{}
		for _, n := range cps {
			for _, comp := range []string{"kube-apiserver", "kube-controller-manager", "kube-scheduler", "etcd"} {
				m[n+"/"+comp] = fmt.Sprint(l.hostPIDs(n, comp[:min(len(comp), 15)])) // /proc/PID/comm keeps 15 bytes
			}
		}
		return m
	}
	running := pids()
	start := time.Now()
	out, err := l.deckctl("certs", "renew")
	close(stop)
	<-polled
	if err != nil || !strings.Contains(out, "succeeded") {
		t.Fatalf("deckctl certs renew: %v\n%s", err, out)
	}
	t.Logf("deckctl certs renew took %v:\n%s", time.Since(start).Round(time.Second), out)
	t.Logf("the API through the endpoint during the renewal: %d asked, %d failed %v", asked, failed, failures)
	if failed > 0 || asked < 50 {
		errorf(t, "the API did not answer throughout the renewal: %d of %d failed: %v", failed, asked, failures)
	}
	for k, was := range pids() {
		restarted := running[k] != was
		if was == "[]" || restarted == strings.HasSuffix(k, "/etcd") {
			errorf(t, "%s: processes %s before the renewal, %s after: want the API server, controller manager and scheduler restarted, etcd not", k, running[k], was)
		}
	}
	after := onHosts()
	for k, exp := range after {
		if !exp.After(before[k]) {
			errorf(t, "%s expires %v after the renewal, %v before: not moved forward", k, exp, before[k])
		}
	}
	testcluster.WaitFor(t, 2*time.Minute, func() error { return same(after) })
	// The servers present the renewed certificates to a new connection: each API server
	// (restarted) and each etcd member (not restarted: it reads its files per connection).
	for _, n := range cps {
		if err := l.nodeReady(n); err != nil {
			errorf(t, "after the renewal: %v", err)
		}
		addr := l.net + ".2" + strings.TrimPrefix(n, "node-")
		for port, name := range map[string]string{"6443": "apiserver", "2379": "etcd-server"} {
			served, err := l.servedCert(n, addr+":"+port)
			if err != nil || !served.NotAfter.Equal(after[n+"/"+name]) {
				errorf(t, "%s:%s serves a certificate expiring %v (%v), want the renewed %s expiring %v", addr, port, served, err, name, after[n+"/"+name])
			}
		}
	}
	return after
}

// autoRenewal: node-1's API server certificate re-issued by the cluster's CA for three hours,
// two of them left (as a cluster with short-lived certificates has them), crosses
// spec.certificates.renewBefore 2h30m set by deckctl apply; the leading controller starts a
// certs-renew workflow by itself, listed by deckctl workflow list as created by
// deckhand-controller with the certificate that crossed, which renews node-1 (only: nothing
// else is due) and its certificate is good for a year again.
func (l *realLab) autoRenewal(version string) string {
	t := l.t
	const renewBefore = "2h30m0s"
	cert, err := l.hostCert("node-1", "pki/apiserver.crt")
	if err != nil {
		t.Fatal(err)
	}
	ca, err := l.hostCert("node-1", "pki/ca.crt")
	if err != nil {
		t.Fatal(err)
	}
	caKey := l.hostKey("node-1", "pki/ca.key")
	tmpl := *cert
	tmpl.SerialNumber = big.NewInt(time.Now().UnixNano())
	tmpl.NotBefore, tmpl.NotAfter = time.Now().Add(-time.Hour).Truncate(time.Second), time.Now().Add(2*time.Hour).Truncate(time.Second)
	der, err := x509.CreateCertificate(rand.Reader, &tmpl, ca, cert.PublicKey, caKey)
	if err != nil {
		t.Fatal(err)
	}
	crt := filepath.Join(l.dir, "node-1", "fs", "etc", "kubernetes", "pki", "apiserver.crt")
	if err := os.WriteFile(crt, pem.EncodeToMemory(&pem.Block{Type: "CERTIFICATE", Bytes: der}), 0o644); err != nil {
		t.Fatal(err)
	}
	doc, err := os.ReadFile(filepath.Join(l.dir, "cluster.yaml"))
	if err != nil {
		t.Fatal(err)
	}
	text := regexp.MustCompile(`(?m)^  kubernetesVersion: .*$`).ReplaceAllString(string(doc), "  kubernetesVersion: "+version+"\n  certificates: {renewBefore: "+renewBefore+"}")
	file := filepath.Join(t.TempDir(), "cluster.yaml")
	if err := os.WriteFile(file, []byte(text), 0o600); err != nil {
		t.Fatal(err)
	}
	out, err := l.deckctl("apply", "-f", file)
	if err != nil || !strings.Contains(out, "record-settings") || !strings.Contains(out, "succeeded") {
		t.Fatalf("deckctl apply with renewBefore %s: %v\n%s", renewBefore, err, out)
	}
	start := time.Now()
	var id, list string
	testcluster.WaitFor(t, 10*time.Minute, func() error {
		list, err = l.deckctl("workflows")
		if err != nil {
			return fmt.Errorf("%v %s", err, list)
		}
		var auto []string
		for _, line := range strings.Split(list, "\n") {
			if strings.Contains(line, "certs renew") && strings.Contains(line, "deckhand-controller: ") {
				auto = append(auto, line)
			}
		}
		switch {
		case len(auto) > 1:
			t.Fatalf("more than one automatic renewal:\n%s", list)
		case len(auto) == 0:
			return fmt.Errorf("no automatic renewal listed yet:\n%s", list)
		case !strings.Contains(auto[0], "succeeded"):
			return fmt.Errorf("the automatic renewal is not done:\n%s", auto[0])
		}
		id = strings.Fields(auto[0])[0]
		return nil
	})
	t.Logf("the automatic renewal %s ended %v after the apply:\n%s", id, time.Since(start).Round(time.Second), list)
	if !strings.Contains(list, "deckhand-controller: apiserver on node-1 expires "+tmpl.NotAfter.UTC().Format(time.RFC3339)+", within renewBefore "+renewBefore) {
		errorf(t, "the workflow list does not say which certificate crossed renewBefore:\n%s", list)
	}
	desc, _ := l.deckctl("workflow", "describe", id)
	if !strings.Contains(desc, "node-1/renew") || strings.Contains(desc, "node-4/renew") {
		errorf(t, "the automatic renewal should renew node-1 only:\n%s", desc)
	}
	if now, err := l.hostCert("node-1", "pki/apiserver.crt"); err != nil || time.Until(now.NotAfter) < 300*24*time.Hour {
		errorf(t, "node-1's API server certificate after the automatic renewal: %v (%v), want a year's", now.NotAfter, err)
	}
	if err := l.nodeReady("node-1"); err != nil {
		errorf(t, "after the automatic renewal: %v", err)
	}
	return text
}

// hostKey reads a private key of a lab host's /etc/kubernetes (PKCS #1, PKCS #8 or EC).
func (l *realLab) hostKey(node, rel string) crypto.Signer {
	b, err := os.ReadFile(filepath.Join(l.dir, node, "fs", "etc", "kubernetes", rel))
	if err != nil {
		l.t.Fatal(err)
	}
	blk, _ := pem.Decode(b)
	if blk == nil {
		l.t.Fatalf("%s: no PEM block", rel)
	}
	if k, err := x509.ParsePKCS1PrivateKey(blk.Bytes); err == nil {
		return k
	}
	if k, err := x509.ParseECPrivateKey(blk.Bytes); err == nil {
		return k
	}
	k, err := x509.ParsePKCS8PrivateKey(blk.Bytes)
	if err != nil {
		l.t.Fatalf("%s: %v", rel, err)
	}
	return k.(crypto.Signer)
}

// etcdBackupAndRestore: spec.etcd.backup makes the leader take scheduled snapshots on both
// control planes; a ConfigMap written, a snapshot taken (deckctl etcd snapshot), the
// ConfigMap deleted; a truncated snapshot is refused with nothing stopped, a healthy
// cluster without --force too; deckctl etcd restore --force brings the ConfigMap back, with
// both control planes' etcd members and every node Ready.
func (l *realLab) etcdBackupAndRestore(cps, all []string, doc string) {
	t := l.t
	file := filepath.Join(t.TempDir(), "cluster.yaml")
	doc = strings.Replace(doc, "  certificates: {", "  etcd: {backup: {schedule: 10m, keep: 2}}\n  certificates: {", 1)
	if err := os.WriteFile(file, []byte(doc), 0o600); err != nil {
		t.Fatal(err)
	}
	if out, err := l.deckctl("apply", "-f", file); err != nil || !strings.Contains(out, "record-settings") || !strings.Contains(out, "succeeded") {
		t.Fatalf("deckctl apply with etcd.backup: %v\n%s", err, out)
	}
	type snap struct {
		Node, Name, SHA256 string
		Size               uint64
		Damaged            bool
	}
	snapshots := func() []snap {
		out, err := l.deckctl("etcd", "snapshots", "-o", "json")
		if err != nil {
			t.Fatalf("deckctl etcd snapshots: %v\n%s", err, out)
		}
		var v struct{ Snapshots []snap }
		if err := json.Unmarshal([]byte(out), &v); err != nil {
			t.Fatalf("deckctl etcd snapshots -o json: %v\n%s", err, out)
		}
		return v.Snapshots
	}
	testcluster.WaitFor(t, 4*time.Minute, func() error {
		on := map[string]bool{}
		for _, s := range snapshots() {
			if strings.HasPrefix(s.Name, "scheduled-") && s.Size > 0 && len(s.SHA256) == 64 {
				on[s.Node] = true
			}
		}
		for _, n := range cps {
			if !on[n] {
				return fmt.Errorf("no scheduled snapshot listed on %s yet", n)
			}
		}
		return nil
	})
	listing, _ := l.deckctl("etcd", "snapshots")
	t.Logf("deckctl etcd snapshots:\n%s", listing)

	if out, err := l.kubectl("create", "configmap", "restore-check", "--from-literal=written=before-the-snapshot"); err != nil {
		t.Fatalf("kubectl create configmap: %v\n%s", err, out)
	}
	out, err := l.deckctl("etcd", "snapshot", "--node", cps[0], "--name", "before-delete")
	if err != nil || !strings.Contains(out, "snapshot before-delete on "+cps[0]) {
		t.Fatalf("deckctl etcd snapshot: %v\n%s", err, out)
	}
	t.Logf("deckctl etcd snapshot: %s", lastLine(out))
	// Streamed to deckctl as it is taken, and kept on the control plane too: the same bytes.
	saved := filepath.Join(t.TempDir(), "etcd.db")
	out, err = l.deckctl("etcd", "snapshot", "--node", cps[1], "--name", "saved-here", "--save", saved)
	if err != nil || !strings.Contains(out, "saved to "+saved) {
		t.Fatalf("deckctl etcd snapshot --save: %v\n%s", err, out)
	}
	t.Logf("deckctl etcd snapshot --save: %s", lastLine(out))
	fi, err := os.Stat(saved)
	if err != nil || fi.Mode().Perm() != 0o600 || fi.Size() < 1<<20 {
		t.Fatalf("the saved snapshot: %v %v", fi, err)
	}
	b, err := os.ReadFile(saved)
	if err != nil {
		t.Fatal(err)
	}
	sum := sha256.Sum256(b)
	testcluster.WaitFor(t, time.Minute, func() error {
		for _, s := range snapshots() {
			if s.Node == cps[1] && s.Name == "saved-here" && s.SHA256 == hex.EncodeToString(sum[:]) && s.Size == uint64(len(b)) {
				return nil
			}
		}
		return fmt.Errorf("no snapshot saved-here on %s with the saved file's SHA-256 %x", cps[1], sum)
	})
	if out, err := l.deckctl("etcd", "snapshot", "--node", cps[0], "--name", "to-truncate"); err != nil {
		t.Fatalf("deckctl etcd snapshot: %v\n%s", err, out)
	}
	if out, err := l.kubectl("delete", "configmap", "restore-check"); err != nil {
		t.Fatalf("kubectl delete configmap: %v\n%s", err, out)
	}
	// Both members healthy (its health check also wants every node Ready, which a loaded
	// machine's kubelet may miss for a moment): also what the unforced restore below is
	// refused for.
	testcluster.WaitFor(t, 2*time.Minute, func() error {
		if members, err := l.deckctl("etcd", "members"); err != nil || !strings.Contains(members, "node-1, node-4; 2 healthy") {
			return fmt.Errorf("deckctl etcd members: %v\n%s", err, members)
		}
		return nil
	})

	pids := func() string {
		var out []string
		for _, n := range cps {
			for _, comp := range []string{"etcd", "kube-apiserver"} {
				out = append(out, fmt.Sprint(n, comp, l.hostPIDs(n, comp)))
			}
		}
		return strings.Join(out, " ")
	}
	running := pids()
	if strings.Contains(running, "[]") {
		t.Fatalf("etcd or an API server is not running before the restore: %s", running)
	}
	// A snapshot cut in half on the disk: refused by its SHA-256 before anything stops.
	cut := filepath.Join(l.dir, cps[0], "fs", "var", "lib", "deckhand", "etcd-snapshots", "to-truncate.db")
	fi, err = os.Stat(cut)
	if err != nil {
		t.Fatal(err)
	}
	if err := os.Truncate(cut, fi.Size()/2); err != nil {
		t.Fatal(err)
	}
	out, err = l.deckctl("etcd", "restore", "--from", "to-truncate", "--force")
	// Refused by the agent's check (its SHA-256), or already by the controller when the
	// node's facts were read again meanwhile (its size).
	if err == nil || !strings.Contains(out, "truncated") || !(strings.Contains(out, "SNAPSHOT_CORRUPT") || strings.Contains(out, "damaged")) {
		errorf(t, "a restore from a truncated snapshot: %v, want it refused naming the damage:\n%s", err, out)
	}
	if now := pids(); now != running {
		errorf(t, "a refused restore stopped something: %s before, %s after", running, now)
	}
	// A healthy cluster: refused without --force, nothing stopped.
	out, err = l.deckctl("etcd", "restore", "--from", "before-delete")
	if err == nil || !strings.Contains(out, "CLUSTER_HEALTHY") || !strings.Contains(out, "--force") {
		errorf(t, "a restore of a healthy cluster without --force: %v, want it refused:\n%s", err, out)
	}
	if now := pids(); now != running {
		errorf(t, "a refused restore stopped something: %s before, %s after", running, now)
	}

	start := time.Now()
	out, err = l.deckctl("etcd", "restore", "--from", "before-delete", "--force", "--timeout", "15m")
	if err != nil || !strings.Contains(out, "succeeded") {
		t.Fatalf("deckctl etcd restore: %v\n%s", err, out)
	}
	t.Logf("deckctl etcd restore took %v:\n%s", time.Since(start).Round(time.Second), out)
	testcluster.WaitFor(t, 3*time.Minute, func() error {
		v, err := l.kubectl("get", "configmap", "restore-check", "-o", "jsonpath={.data.written}")
		if err != nil || v != "before-the-snapshot" {
			return fmt.Errorf("the ConfigMap after the restore: %v %q", err, v)
		}
		for _, n := range all {
			if err := l.nodeReady(n); err != nil {
				return err
			}
		}
		return nil
	})
	if got := l.etcdMembers(); !slices.Equal(got, sorted(slices.Clone(cps))) {
		errorf(t, "etcd members after the restore: %v, want %v", got, cps)
	}
	if now := pids(); now == running {
		errorf(t, "etcd and the API servers were not restarted by the restore: %s", now)
	}
	for _, n := range cps {
		if kept, _ := filepath.Glob(filepath.Join(l.dir, n, "fs", "var", "lib", "etcd", "member.before-restore-*")); len(kept) != 1 {
			errorf(t, "%s: the old etcd data directory was not kept: %v", n, kept)
		}
	}
}

func lastLine(s string) string {
	lines := strings.Split(strings.TrimSpace(s), "\n")
	return lines[len(lines)-1]
}

// servedCert is the certificate a server of node presents to a new TLS connection, made with
// the node's etcd health-check client certificate (etcd asks for one).
func (l *realLab) servedCert(node, addr string) (*x509.Certificate, error) {
	pki := filepath.Join(l.dir, node, "fs", "etc", "kubernetes", "pki", "etcd")
	cert, err := tls.LoadX509KeyPair(filepath.Join(pki, "healthcheck-client.crt"), filepath.Join(pki, "healthcheck-client.key"))
	if err != nil {
		return nil, err
	}
	conn, err := tls.DialWithDialer(&net.Dialer{Timeout: 5 * time.Second}, "tcp", addr, &tls.Config{InsecureSkipVerify: true, Certificates: []tls.Certificate{cert}})
	if err != nil {
		return nil, err
	}
	defer conn.Close()
	return conn.ConnectionState().PeerCertificates[0], nil
}
