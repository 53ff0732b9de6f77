package kubectl

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"slices"
	"strconv"
	"strings"

	"github.com/deckhandhq/deckhand/agent/host"
	"github.com/deckhandhq/deckhand/agent/tasks"
	"github.com/deckhandhq/deckhand/internal/taskkinds"
	taskv1 "github.com/deckhandhq/deckhand/proto/deckhand/task/v1"
)

// ClusterHealth checks, on a control plane, that the cluster may be changed (before an
// upgrade): its API server answers /readyz, every node listed exists and is Ready, and
// every etcd member answers (etcdctl endpoint health --cluster, through this control
// plane's etcd pod). Each failure names what is unhealthy.
func ClusterHealth(ctx context.Context, t *taskv1.Task, h *host.Host, e *tasks.Emitter) (map[string]string, error) {
	nodes := t.GetSpec().GetClusterHealth().GetNodes()
	if len(nodes) > taskkinds.MaxHealthNodes {
		return nil, tasks.Errorf("INVALID_ARGUMENT", fmt.Sprintf("list at most %d nodes", taskkinds.MaxHealthNodes), "nodes has %d entries", len(nodes))
	}
	for i, n := range nodes {
		if len(n) > 63 || !labelRE.MatchString(n) {
			return nil, tasks.Errorf("INVALID_ARGUMENT", "give the nodes' names as Kubernetes knows them", "nodes[%d] %q is not an RFC 1123 label", i, n)
		}
	}
	if err := check(h, "cluster_health", t.GetNode()); err != nil {
		return nil, err
	}
	if h.DryRun {
		e.Logf("would check the API server, that %d node(s) are Ready and every etcd member is healthy", len(nodes))
		return nil, nil
	}
	if _, err := h.QueryQuiet(ctx, argv("get", "--raw=/readyz")...); err != nil {
		return nil, tasks.Errorf("API_NOT_READY", "look at the API server on "+t.GetNode()+" (crictl ps --name kube-apiserver; kubectl get --raw='/readyz?verbose')", "the API server is not ready: %s", message(err))
	}
	out, err := h.QueryQuiet(ctx, argv("get", "nodes", "-o", "json")...)
	if err != nil {
		return nil, tasks.Errorf("API_NOT_READY", "check the control plane's health", "list the nodes: %s", message(err))
	}
	views, err := ParseNodes(out)
	if err != nil {
		return nil, tasks.Errorf("API_NOT_READY", "check the control plane's health", "%v", err)
	}
	var bad []string
	for _, n := range nodes {
		i := slices.IndexFunc(views, func(v NodeView) bool { return v.Name == n })
		switch {
		case i < 0:
			bad = append(bad, n+" (no Node object)")
		case views[i].Ready != "True":
			bad = append(bad, n+" (Ready is "+or(views[i].Ready, "unknown")+")")
		}
	}
	if len(bad) > 0 {
		return nil, tasks.Errorf("NODES_NOT_READY", "bring them back (deckctl task run NODE diagnostics), or upgrade without waiting for them with --force",
			"%d of %d node(s) are not Ready: %s", len(bad), len(nodes), strings.Join(bad, ", "))
	}
	e.Logf("the API server is ready and %d node(s) are Ready", len(nodes))
	members, err := etcdHealth(ctx, h, t.GetNode())
	if err != nil {
		return nil, err
	}
	e.Logf("%d etcd member(s) are healthy", members)
	return map[string]string{"nodes": strconv.Itoa(len(nodes)), "members": strconv.Itoa(members)}, nil
}

// ParseNodes reads kubectl get nodes -o json.
func ParseNodes(out []byte) ([]NodeView, error) {
	var l struct {
		Items []json.RawMessage `json:"items"`
	}
	if err := json.Unmarshal(out, &l); err != nil {
		return nil, fmt.Errorf("kubectl get nodes -o json: not a list: %w", err)
	}
	var views []NodeView
	for _, it := range l.Items {
		v, err := ParseNode(it)
		if err != nil {
			return nil, err
		}
		views = append(views, v)
	}
	return views, nil
}

// etcdHealth asks every etcd member for its health through node's etcd pod and returns how
// many answered healthy; any other is an error naming it.
func etcdHealth(ctx context.Context, h *host.Host, node string) (int, error) {
	out, err := h.QueryQuiet(ctx, etcdctl(node, "endpoint", "health", "--cluster", "-w", "json")...)
	hs, perr := ParseEtcdHealth(out)
	if perr != nil {
		if err == nil {
			err = perr
		}
		var ce *host.CommandError
		msg := err.Error()
		if errors.As(err, &ce) {
			msg = message(err)
		}
		return 0, tasks.Errorf("ETCD_UNHEALTHY", "check this control plane's etcd pod (kubectl -n kube-system get pod etcd-"+node+")", "etcd endpoint health through etcd-%s: %s", node, msg)
	}
	var bad []string
	for _, m := range hs {
		if !m.Health {
			bad = append(bad, m.Endpoint+" ("+or(m.Error, "unhealthy")+")")
		}
	}
	if len(bad) > 0 {
		return 0, tasks.Errorf("ETCD_UNHEALTHY", "bring the members back (their control planes' kubelet and etcd pod) before changing the cluster",
			"%d of %d etcd member(s) are unhealthy: %s", len(bad), len(hs), strings.Join(bad, ", "))
	}
	return len(hs), nil
}

// EtcdEndpointHealth is one entry of etcdctl endpoint health -w json.
type EtcdEndpointHealth struct {
	Endpoint string `json:"endpoint"`
	Health   bool   `json:"health"`
	Error    string `json:"error"`
}

// ParseEtcdHealth reads etcdctl endpoint health -w json (it prints the list also when a
// member is unhealthy, and exits 1).
func ParseEtcdHealth(out []byte) ([]EtcdEndpointHealth, error) {
	var hs []EtcdEndpointHealth
	if err := json.Unmarshal(out, &hs); err != nil {
		return nil, fmt.Errorf("etcdctl endpoint health -w json: %w", err)
	}
	if len(hs) == 0 {
		return nil, errors.New("etcdctl endpoint health -w json: no members")
	}
	return hs, nil
}
