// Package facts collects what a node agent reports about its host in the Hello message
// (deckhand.agent.v1.Facts): OS, kernel, CPU and memory, addresses, cgroup setup, firewalld,
// installed Kubernetes binaries and the container runtime as seen through the CRI API.
//
// It owns reading the host and nothing else: it never changes the host, never runs a shell
// (commands are argv only) and never fails a whole collection because one probe failed. A
// probe that cannot answer leaves its fields empty; Collect returns an error only when its
// context is done.
//
// Every host file is read under Collector.Root ("/" in production, a temp dir in tests).
// Paths are joined under Root, not chrooted into it: with a Root other than "/", an absolute
// symlink inside it resolves against the agent's own root. Some facts are about the agent's
// process, not Root, by nature: IP addresses come from the interfaces of the agent's network
// namespace, CPU count and architecture from the agent itself, and firewalld liveness from
// the agent's /proc. An agent run in a container therefore needs the host network and PID
// namespaces for those to describe the host.
//
// Choices worth knowing:
//   - cgroup_driver is an inference, not a reading of kubelet's config: "systemd" when systemd
//     is init (Root/run/systemd/system exists), else "cgroupfs". That is the driver kubelet
//     and the runtime should agree on for this host.
//   - firewalld_active is true when a process named "firewalld" is alive in /proc. We do not
//     trust firewalld's pid file: the stock firewalld.service runs it with --nopid, so on
//     systemd hosts the file is absent while firewalld is running, and a stale file can name
//     a reused pid.
//   - cap_sys_resource is read from Root/proc/self/status (CapEff, bit 24): with Root "/"
//     that is the agent's own process; it is unset when the file is not there to read.
//     Without it, the runtime task has containerd restrict oom_score_adj.
//   - kube_versions lists kubelet, kubeadm and kubectl only when the binary is found in
//     Root/usr/bin, Root/usr/local/bin or Root/bin (in that order) and its version output
//     parses as "vMAJOR.MINOR.PATCH"; anything else is left out rather than guessed. A
//     Collector reuses a version it read while the binary's file is the same one (path,
//     device, inode, size, mtime and ctime; a symlink is followed) and for at most
//     VersionMaxAge: a refresh stats three files rather than starting three Go programs.
package facts
