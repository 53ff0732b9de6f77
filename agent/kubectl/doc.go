// Package kubectl is the agent's tasks that work through a control plane's Kubernetes API
// and credentials: drain (cordon, then evict the node's pods), delete_node (delete the Node
// object), node_ready (wait until a node reports Ready, or is registered with a podCIDR, and
// tell its podCIDR and InternalIP), run with kubectl and the node's admin kubeconfig, and
// kubeconfig_sign (sign a user's certificate request with the cluster CA, after binding the
// ClusterRole view to the user when asked; the CA key and admin.conf never leave the node).
// Each is safe to run again: draining or deleting a node that is already gone succeeds, and
// a view binding that exists is left as it is.
package kubectl
