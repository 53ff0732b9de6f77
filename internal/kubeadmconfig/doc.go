// Package kubeadmconfig turns a cluster spec and a node spec into what kubeadm is given: the
// kubeadm.k8s.io/v1beta4 configuration files for `kubeadm init` (InitConfiguration,
// ClusterConfiguration, the KubeletConfiguration with the cgroup driver and, when set, the
// KubeProxyConfiguration with kube-proxy's mode and conntrack limit) and for
// `kubeadm join` (JoinConfiguration, as worker or control plane), and the argv of every
// kubeadm command the agent runs (init, join, token create and delete, upload-certs,
// reset). Running them, parsing their output and cleaning up belong to the kubeadm task.
//
// [ParseCluster] and [ParseNode] validate and default the specs before anything is
// rendered, and catch what kubeadm itself lets through or only reports once it is half way
// through a host: pod and service subnets that overlap (kubeadm v1.33 accepts them), a
// control-plane endpoint without a port, node labels the kubelet refuses to set on itself
// (node-role.kubernetes.io/..., which makes the kubelet exit at start), a Kubernetes
// version outside the image table of package kubeimages. Every error is a
// *kubeimages.FieldError naming the spec field (kubernetes_version, pod_subnet,
// node.name, node.labels[KEY], ...) and wraps kubeimages.ErrInvalid, so the API edge
// maps it to InvalidArgument.
//
// The renderers are pure functions: no I/O, no clock, and the same input gives the same
// bytes (keys in a stable order), so a task can compare a rendered file with the one on
// the host and a dry-run can show the difference. Secrets (bootstrap tokens, certificate
// keys) are written into the files but never into an error.
//
// Choices that follow kubeadm's own semantics:
//   - No taints on a node leaves nodeRegistration.taints out, so kubeadm applies its
//     default: node-role.kubernetes.io/control-plane:NoSchedule on control planes, nothing
//     on workers. Listing taints replaces that default; list the control-plane taint too
//     if it should stay.
//   - The KubeletConfiguration (cgroup driver) is part of the init files only: kubeadm
//     uploads it to the kubelet-config ConfigMap and every joining node reads it from
//     there. So is the KubeProxyConfiguration (mode, conntrack.maxPerCore), kept in the
//     kube-proxy ConfigMap; it is written only when the cluster sets one of them, so
//     kube-proxy's own defaults stay its defaults. A maxPerCore of 0 is written as 0: it
//     tells kube-proxy to leave nf_conntrack_max alone.
//   - A node's address (NodeSpec.advertise_address) is every node's kubelet --node-ip and
//     a control plane's localAPIEndpoint.advertiseAddress; empty leaves both to kubeadm and
//     the kubelet (the default route's interface, wrong on a host with several networks).
//   - taints: [] (Node.NoTaints) registers a node with no taints at all, which drops the
//     control-plane taint; no taints listed keeps kubeadm's default.
//   - Extra kubelet flags of the cluster and of the node go to kubeletExtraArgs after the
//     ones Deckhand sets (node-ip, node-labels), the node's value winning per name; the
//     flags Deckhand or kubeadm set themselves are refused.
//   - Patches are files of their own (PatchFiles, named target<index>+type.yaml so that
//     kubeadm applies them in order) under PatchesDir, which patches.directory names in
//     the InitConfiguration and JoinConfiguration; the API server's certSANs go to
//     ClusterConfiguration apiServer.certSANs.
//   - Join discovery always pins the cluster CA (caCertHashes); this package never writes
//     unsafeSkipCAVerification.
//
// Every generated file and command is checked against a real kubeadm v1.33 built by
// scripts/kubeadm.sh (see TestRealKubeadmAcceptsGeneratedConfigs).
package kubeadmconfig
