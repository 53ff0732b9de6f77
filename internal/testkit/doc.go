// Package testkit holds Deckhand's test tooling, and nothing else: in-process clusters of
// controllers and agents (testcluster), a raft store for a package's tests (teststore), real
// etcd processes (testetcd), network namespaces (testnet), the one polling wait (testwait),
// and the kubeadm/kubelet SIMULATION with its records (sim). Product binaries and product
// packages never link it (scripts/lint-deps.sh checks it).
package testkit
