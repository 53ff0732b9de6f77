// Package network is the agent's pod network task (kind network). For the bridge provider
// it writes the node's CNI configuration (bridge cni0 with host-local addresses from the
// node's pod CIDR, and portmap) and keeps the host's routes to the other nodes' pod CIDRs
// (host-gw: via each node's address, all nodes on one L2 segment) exactly as the controller
// lists them. The routes it owns carry route protocol RouteProto; no other route is ever
// read for a decision, changed or deleted. Pods keep their own addresses between nodes (the
// bridge plugin masquerades nothing); what they send outside the cluster's pod subnet is
// masqueraded by one iptables rule in nat POSTROUTING, marked with the comment NATComment,
// the only rule the task ever adds or deletes. CleanUp removes what it installed, for a reset.
package network
