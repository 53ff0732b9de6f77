package agent

import (
	"github.com/deckhandhq/deckhand/agent/diagnostics"
	"github.com/deckhandhq/deckhand/agent/facts"
	"github.com/deckhandhq/deckhand/agent/images"
	"github.com/deckhandhq/deckhand/agent/kubeadm"
	"github.com/deckhandhq/deckhand/agent/kubectl"
	"github.com/deckhandhq/deckhand/agent/loadbalancer"
	"github.com/deckhandhq/deckhand/agent/network"
	"github.com/deckhandhq/deckhand/agent/packages"
	"github.com/deckhandhq/deckhand/agent/preflight"
	"github.com/deckhandhq/deckhand/agent/runtime"
	"github.com/deckhandhq/deckhand/agent/tasks"
)

// handlers are the task kinds this agent runs, by the name of the kind in the TaskSpec
// oneof; c collects the host's facts.
func handlers(c *facts.Collector) map[string]tasks.Handler {
	return map[string]tasks.Handler{
		"runtime":   runtime.Run,
		"images":    images.Run,
		"preflight": preflight.Run,
		"packages":  packages.Run,

		"kubeadm_init":    kubeadm.Init,
		"kubeadm_token":   kubeadm.Token,
		"kubeadm_join":    kubeadm.Join,
		"kubeadm_reset":   kubeadm.Reset,
		"kubeadm_upgrade": kubeadm.Upgrade,
		"certs_renew":     kubeadm.RenewCerts,
		"etcd_snapshot":   kubeadm.EtcdSnapshot,
		"etcd_restore":    kubeadm.EtcdRestore,
		"diagnostics":     diagnostics.Run,

		"drain":       kubectl.Drain,
		"delete_node": kubectl.DeleteNode,
		"node_ready":  kubectl.NodeReady,
		// etcd_members verifies a reset control plane's etcd member is gone.
		"etcd_members": kubectl.EtcdMembers,

		"kubeconfig_sign": kubectl.KubeconfigSign,
		"network":         network.Run,
		"load_balancer":   loadbalancer.Run,
		"manifest":        kubectl.Manifest,
		"cluster_health":  kubectl.ClusterHealth,

		"ping":  ping,
		"facts": factsTask(c),
	}
}
