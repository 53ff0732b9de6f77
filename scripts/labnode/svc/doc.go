// Package svc is the lab's service manager (lab tooling, never part of a product binary).
//
// A lab host is a network + mount + UTS namespace with no systemd, yet kubeadm and the
// Deckhand agent call systemctl there. Inside each lab host /usr/bin/systemctl is a shim
// (Call) that sends its argv over a unix socket (SocketPath) to that host's Manager, which
// answers with systemd's own wording and exit codes and supervises the services for real:
// it reads the real unit files and drop-ins the product's tasks and packages wrote, starts
// real processes (argv only, never a shell), restarts them by their Restart= policy, keeps
// the enable state as systemd does (symlinks in /etc/systemd/system/TARGET.wants) and stops
// them by their KillMode.
//
// What it owns: unit loading (unit.go: the fragment from the first unit directory that has
// it, drop-ins from all of them; directives.go: the settings ignored on purpose and the
// lab's adjustments), environment files and ExecStart/ExecReload expansion (env.go:
// $NAME alone as a word splits its value into words, quotes grouping; ${NAME} is one
// word), supervision (manager.go, process.go), reload (reload.go: ExecReload= in order
// with $MAINPID), enablement (install.go), the systemctl verbs and their output
// (systemctl.go) and the wire protocol between shim and manager (wire.go).
//
// Every path the manager opens, creates or executes is under Options.Root ("/" in a lab
// host; a temp dir in tests). The processes themselves see the real filesystem.
//
// Settings: what the manager implements is in settings.set (Type, Exec{StartPre,Start,Reload},
// Environment, EnvironmentFile, WorkingDirectory, Restart, RestartSec, Timeout*Sec,
// KillMode, SuccessExitStatus, StateDirectory[Mode], StartLimit*, ConditionPathExists,
// ConditionFileNotEmpty, WantedBy, RequiredBy, Description, Documentation). These are
// accepted and ignored on purpose (ignoredDirectives):
//   - ordering and dependencies: After, Before, Wants, Requires, Requisite, BindsTo,
//     PartOf, Conflicts, DefaultDependencies, OnFailure;
//   - cgroups and resource limits: Delegate, Slice, TasksMax, TasksAccounting,
//     CPUAccounting, MemoryAccounting, IOAccounting, CPUQuota, CPUWeight, IOWeight,
//     MemoryMax, MemoryHigh, MemoryLimit, LimitNOFILE, LimitNPROC, LimitCORE,
//     LimitMEMLOCK, OOMScoreAdjust, Nice;
//   - sandboxing: NoNewPrivileges, ProtectSystem, ProtectHome, ProtectKernelTunables,
//     ProtectKernelModules, ProtectKernelLogs, ProtectControlGroups, ProtectClock,
//     ProtectHostname, ProtectProc, ProcSubset, PrivateTmp, PrivateDevices, PrivateMounts,
//     BindPaths, BindReadOnlyPaths, ReadWritePaths, ReadOnlyPaths, InaccessiblePaths,
//     TemporaryFileSystem, CapabilityBoundingSet, AmbientCapabilities, SystemCallFilter,
//     SystemCallArchitectures, SystemCallErrorNumber, RestrictAddressFamilies,
//     RestrictNamespaces, RestrictRealtime, RestrictSUIDSGID, LockPersonality,
//     MemoryDenyWriteExecute, RemoveIPC, KeyringMode, DevicePolicy, DeviceAllow;
//   - output and notification: StandardOutput, StandardError, SyslogIdentifier,
//     NotifyAccess.
//
// Sections named X-* are ignored, as systemd ignores them. Any other setting (User=,
// ExecStop=, PIDFile=, ...) is ignored too but reported: Unit.Warnings, written to the
// unit's log and the manager's log at every start. Values the manager implements but
// cannot parse make the unit refused (bad-setting), as systemd refuses them.
//
// Adjustments (labAdjust, also reported at every start): keepalived sends READY=1 only
// when its parent is PID 1 named systemd, so a Type=notify unit running keepalived runs
// as Type=simple.
//
// Not systemd: no cgroups (a unit's processes are its process group: KillMode=control-group
// signals the group), no dependencies or ordering, Type=forking is refused, a reload does
// not wait for a RELOADING=1/READY=1 pair, and the default TimeoutStopSec is 10 s
// (systemd's is 90 s). As in systemd, a stop whose main process exits uncleanly
// (SuccessExitStatus= counts) or has to be killed leaves the unit failed.
package svc
