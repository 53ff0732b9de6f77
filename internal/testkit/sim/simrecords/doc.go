// Package simrecords reads the state of the hostsim SIMULATION (internal/testkit/sim/hostsim), not
// of a real cluster: the records the simulated kubeadm and kubectl append when a command
// takes effect, and the tokens, nodes and etcd members they keep in the cluster directory
// the simulated hosts of one cluster share (env DECKHAND_SIM_CLUSTER). It is for tests and
// the lab, to assert what happened to the simulated cluster ("exactly one kubeadm join of
// w-1"); the product never imports it.
//
// The records file is CLUSTER/records, one line per effect, appended with O_APPEND in one
// write:
//
//	<time, RFC 3339 with nanoseconds, UTC>\t<command>\t<subject>\n
//
// command is one of the Command constants; subject is a node name (a token ID for the
// token commands). A command that finds nothing to change (cordoning a node already
// cordoned, deleting a node that is absent) records nothing.
package simrecords
