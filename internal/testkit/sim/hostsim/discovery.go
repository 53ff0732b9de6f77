package main

import (
	"errors"
	"fmt"
	"net"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"time"

	"github.com/deckhandhq/deckhand/internal/pki"
	"github.com/deckhandhq/deckhand/internal/testkit/sim/simrecords"
)

// kubeadm join's discovery SIMULATION, as kubeadm v1.33.13 does it
// (cmd/kubeadm/app/discovery/token): the join asks the API server at
// discovery.bootstrapToken.apiServerEndpoint for the cluster-info ConfigMap, waits for the
// signature of its token's ID in it, checks the token's secret against that signature,
// then pins the cluster CA with caCertHashes. Like kubeadm it retries what may heal (no
// answer from the endpoint; no signature for the token ID: the token was deleted or
// expired, or is not signed yet) until the discovery timeout, then fails with the last
// error; a wrong token secret or CA pin fails at once.
//
// An endpoint answers when it is the API server of a control plane of the cluster
// (CLUSTER/apiservers/NAME, written by init and a control-plane join, removed by reset), or
// the endpoint init recorded (CLUSTER/endpoint: the controlPlaneEndpoint, standing for a
// load balancer) while a control plane runs. Any other endpoint refuses the connection.
//
// Test knobs, in ROOT/var/lib/deckhand-sim:
//   - unreachable: the API servers cannot be reached from this host (a partition): every
//     endpoint when the file is empty, else the host:port endpoints it lists one per line.
//     Dialling one fails with "connect: no route to host".
//   - kubeadm-discovery-timeout: the discovery timeout, a Go duration. Without it, the
//     JoinConfiguration's timeouts.discovery (kubeadm's default 5m) scaled from minutes to
//     seconds: 5s.

const (
	apiServersDir        = "apiservers"
	unreachableKnob      = "var/lib/deckhand-sim/unreachable"
	discoveryTimeoutKnob = "var/lib/deckhand-sim/kubeadm-discovery-timeout"
	// kubeadm's DiscoveryTimeout and DiscoveryRetryInterval (constants.go).
	kubeadmDiscoveryTimeout = 5 * time.Minute
	kubeadmDiscoveryRetry   = 5 * time.Second
)

// discover is kubeadm join's discovery of the cluster at the endpoint jc names. It returns
// the cluster CA, or kubeadm's error (without the phase prefix).
func discover(r, cluster string, jc map[string]any) (*pki.CA, error) {
	bt := mapAt(jc, "discovery", "bootstrapToken")
	endpoint, token := str(bt, "apiServerEndpoint"), str(bt, "token")
	id, _, _ := strings.Cut(token, ".")
	timeout, err := discoveryTimeout(r, jc)
	if err != nil {
		return nil, err
	}
	// kubeadm polls every 5s for 5m; the simulation keeps the ratio.
	interval := max(timeout*kubeadmDiscoveryRetry/kubeadmDiscoveryTimeout, 10*time.Millisecond)
	deadline := time.Now().Add(timeout)
	for {
		err = clusterInfo(r, cluster, endpoint, id)
		if err == nil {
			break
		}
		if !time.Now().Before(deadline) {
			return nil, fmt.Errorf("couldn't validate the identity of the API Server: %w", err)
		}
		time.Sleep(min(interval, time.Until(deadline)))
	}
	if !tokenValid(cluster, token) {
		return nil, errors.New("couldn't validate the identity of the API Server: failed to verify JWS signature of received cluster info object, can't trust this API Server")
	}
	ca, err := clusterCA(cluster)
	if err != nil {
		return nil, err
	}
	want := pki.Hash(ca.Cert)
	for _, h := range anyStrings(bt["caCertHashes"]) {
		if strings.EqualFold(h, want) {
			return ca, nil
		}
	}
	return nil, fmt.Errorf("couldn't validate the identity of the API Server: cluster CA found in cluster-info ConfigMap is invalid: none of the public keys %q are pinned", want)
}

// clusterInfo is one request for the cluster-info ConfigMap: nil when the endpoint answers
// and the ConfigMap carries a signature for the token ID.
func clusterInfo(r, cluster, endpoint, id string) error {
	if err := dial(r, cluster, endpoint); err != nil {
		return fmt.Errorf("failed to request the cluster-info ConfigMap: Get \"https://%s/api/v1/namespaces/kube-public/configmaps/cluster-info?timeout=10s\": %w", endpoint, err)
	}
	if !tokenSigned(cluster, id) {
		return fmt.Errorf("could not find a JWS signature in the cluster-info ConfigMap for token ID %q", id)
	}
	return nil
}

// dial is the connection to endpoint, failing as Go's dialer does.
func dial(r, cluster, endpoint string) error {
	if unreachable(r, endpoint) {
		return fmt.Errorf("dial tcp %s: connect: no route to host", endpoint)
	}
	if answers(cluster, endpoint) {
		return nil
	}
	if host, _, err := net.SplitHostPort(endpoint); err == nil && net.ParseIP(host) == nil {
		return fmt.Errorf("dial tcp: lookup %s: no such host", host)
	}
	return fmt.Errorf("dial tcp %s: connect: connection refused", endpoint)
}

// unreachable reports whether the unreachable knob cuts this host off from endpoint.
func unreachable(r, endpoint string) bool {
	b, err := os.ReadFile(filepath.Join(r, unreachableKnob))
	if err != nil {
		return false
	}
	listed := strings.Fields(string(b))
	if len(listed) == 0 {
		return true
	}
	for _, l := range listed {
		if l == endpoint {
			return true
		}
	}
	return false
}

// answers reports whether an API server of the cluster listens at endpoint.
func answers(cluster, endpoint string) bool {
	entries, _ := os.ReadDir(filepath.Join(cluster, apiServersDir))
	for _, e := range entries {
		if b, err := os.ReadFile(filepath.Join(cluster, apiServersDir, e.Name())); err == nil && strings.TrimSpace(string(b)) == endpoint {
			return true
		}
	}
	recorded, err := os.ReadFile(filepath.Join(cluster, "endpoint"))
	return err == nil && len(entries) > 0 && strings.TrimSpace(string(recorded)) == endpoint
}

// addAPIServer records the API server a control plane runs at endpoint; removeAPIServer
// forgets it (kubeadm reset stops it).
func addAPIServer(cluster, name, endpoint string) {
	os.MkdirAll(filepath.Join(cluster, apiServersDir), 0o755)
	os.WriteFile(filepath.Join(cluster, apiServersDir, name), []byte(endpoint), 0o644)
}

func removeAPIServer(cluster, name string) {
	os.Remove(filepath.Join(cluster, apiServersDir, name))
}

// tokenSigned reports whether cluster-info carries a signature for the token ID: the
// bootstrap signer signs each token that exists and has not expired (an expired one is
// dropped at once; the real token cleaner deletes its Secret soon after).
func tokenSigned(cluster, id string) bool {
	b, err := os.ReadFile(filepath.Join(cluster, simrecords.TokensDir, id))
	if err != nil {
		return false
	}
	f := strings.Fields(string(b))
	if len(f) != 2 {
		return false
	}
	exp, err := time.Parse(time.RFC3339, f[1])
	return err == nil && time.Now().Before(exp)
}

// discoveryTimeout is the knob, else timeouts.discovery (default 5m) with minutes read as
// seconds.
func discoveryTimeout(r string, jc map[string]any) (time.Duration, error) {
	if b, err := os.ReadFile(filepath.Join(r, discoveryTimeoutKnob)); err == nil {
		d, err := time.ParseDuration(strings.TrimSpace(string(b)))
		if err != nil {
			return 0, fmt.Errorf("kubeadm (simulation): %s: %v", discoveryTimeoutKnob, err)
		}
		return d, nil
	}
	d := kubeadmDiscoveryTimeout
	if s := str(jc, "timeouts", "discovery"); s != "" {
		v, err := time.ParseDuration(s)
		if err != nil {
			return 0, fmt.Errorf("kubeadm (simulation): timeouts.discovery: %v", err)
		}
		d = v
	}
	return d / 60, nil
}

// apiServerEndpoint is where a control plane's API server listens: its advertise address
// (else the address kubeadm would pick) and bind port (default 6443).
func apiServerEndpoint(localAPIEndpoint map[string]any, fallbackAddr string) string {
	addr := str(localAPIEndpoint, "advertiseAddress")
	if addr == "" {
		addr = fallbackAddr
	}
	port := "6443"
	switch p := localAPIEndpoint["bindPort"].(type) {
	case float64:
		if p > 0 {
			port = strconv.Itoa(int(p))
		}
	case int:
		if p > 0 {
			port = strconv.Itoa(p)
		}
	}
	return net.JoinHostPort(addr, port)
}

// mapAt is the map at path in m (nil if there is none).
func mapAt(m map[string]any, path ...string) map[string]any {
	for _, p := range path {
		next, _ := m[p].(map[string]any)
		if next == nil {
			return nil
		}
		m = next
	}
	return m
}

func anyStrings(v any) []string {
	list, _ := v.([]any)
	var out []string
	for _, x := range list {
		if s, ok := x.(string); ok {
			out = append(out, s)
		}
	}
	return out
}
