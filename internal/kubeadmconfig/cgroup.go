package kubeadmconfig

// CgroupDriverFor decides the cgroup driver the kubelet and the container runtime of a host
// use, the same for both: want when set, else the host's own, "systemd" when systemd is its
// init (systemdInit) and "cgroupfs" otherwise. The systemd driver needs systemd as init,
// so asking for it on another host is an error naming the cgroup_driver field; cgroupfs
// works everywhere. host names the host in the error.
func CgroupDriverFor(want string, systemdInit bool, host string) (string, error) {
	switch {
	case want == "" && systemdInit:
		return "systemd", nil
	case want == "":
		return "cgroupfs", nil
	case want != "systemd" && want != "cgroupfs":
		return "", invalid("cgroup_driver", want, "is not systemd or cgroupfs",
			"leave it empty to follow the host (systemd when systemd is its init), or use systemd or cgroupfs")
	case want == "systemd" && !systemdInit:
		return "", invalid("cgroup_driver", want, "cannot work on "+host+": its init is not systemd",
			"leave it empty to follow the host, or set cgroupfs")
	}
	return want, nil
}
