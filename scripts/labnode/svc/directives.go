package svc

import (
	"path"
	"strings"
	"syscall"
)

// ignoredDirectives are the unit settings the lab accepts and deliberately ignores, by
// "Section.Key", with the reason (doc.go lists them too). A setting that is neither
// handled by settings.set nor listed here is reported as a warning (Unit.Warnings).
var ignoredDirectives = map[string]string{}

func init() {
	add := func(reason string, keys ...string) {
		for _, k := range keys {
			ignoredDirectives[k] = reason
		}
	}
	add("no dependencies or ordering: every unit is started by an explicit request",
		"Unit.After", "Unit.Before", "Unit.Wants", "Unit.Requires", "Unit.Requisite", "Unit.BindsTo",
		"Unit.PartOf", "Unit.Conflicts", "Unit.DefaultDependencies", "Unit.OnFailure")
	add("no cgroups or resource limits: services inherit the manager's",
		"Service.Delegate", "Service.Slice", "Service.TasksMax", "Service.TasksAccounting",
		"Service.CPUAccounting", "Service.MemoryAccounting", "Service.IOAccounting", "Service.CPUQuota",
		"Service.CPUWeight", "Service.IOWeight", "Service.MemoryMax", "Service.MemoryHigh", "Service.MemoryLimit",
		"Service.LimitNOFILE", "Service.LimitNPROC", "Service.LimitCORE", "Service.LimitMEMLOCK",
		"Service.OOMScoreAdjust", "Service.Nice")
	add("no sandboxing: services see the lab host's filesystem and privileges as they are",
		"Service.NoNewPrivileges", "Service.ProtectSystem", "Service.ProtectHome", "Service.ProtectKernelTunables",
		"Service.ProtectKernelModules", "Service.ProtectKernelLogs", "Service.ProtectControlGroups",
		"Service.ProtectClock", "Service.ProtectHostname", "Service.ProtectProc", "Service.ProcSubset",
		"Service.PrivateTmp", "Service.PrivateDevices", "Service.PrivateMounts", "Service.BindPaths",
		"Service.BindReadOnlyPaths", "Service.ReadWritePaths", "Service.ReadOnlyPaths", "Service.InaccessiblePaths",
		"Service.TemporaryFileSystem", "Service.CapabilityBoundingSet", "Service.AmbientCapabilities",
		"Service.SystemCallFilter", "Service.SystemCallArchitectures", "Service.SystemCallErrorNumber",
		"Service.RestrictAddressFamilies", "Service.RestrictNamespaces", "Service.RestrictRealtime",
		"Service.RestrictSUIDSGID", "Service.LockPersonality", "Service.MemoryDenyWriteExecute",
		"Service.RemoveIPC", "Service.KeyringMode", "Service.DevicePolicy", "Service.DeviceAllow")
	add("output goes to the unit's log file; notifications are accepted from any process",
		"Service.StandardOutput", "Service.StandardError", "Service.SyslogIdentifier", "Service.NotifyAccess")
}

// labAdjust applies the lab's departures from a unit file, each for a program that
// cannot behave under this manager as under systemd, and records them in u.Adjustments.
//
// keepalived sends READY=1 only when its parent is PID 1 and named systemd
// (lib/systemd.c check_parent_systemd): under this manager a Type=notify keepalived
// would never be ready and its start would time out, so it runs as Type=simple.
func labAdjust(u *Unit) {
	if u.Type == "notify" && len(u.ExecStart) > 0 && path.Base(u.ExecStart[0].Path) == "keepalived" {
		u.Type = "simple"
		u.Adjustments = append(u.Adjustments, "Type=notify runs as Type=simple in the lab: keepalived notifies only a PID 1 systemd")
	}
}

// signalByName reads a signal as SuccessExitStatus= names it: "SIGKILL" or "KILL".
func signalByName(s string) (syscall.Signal, bool) {
	name := strings.TrimPrefix(s, "SIG")
	for sig, n := range signalNames {
		if n == name {
			return sig, true
		}
	}
	return 0, false
}
