// Package kubectl is the agent's Node tasks, run on a control-plane node with kubectl and
// the node's admin kubeconfig: drain (cordon, then evict the node's pods), delete_node
// (delete the Node object) and node_ready (wait until a node reports Ready). Each is safe
// to run again: draining or deleting a node that is already gone succeeds.
package kubectl
