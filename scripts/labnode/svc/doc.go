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
// it, drop-ins from all of them), environment files and ExecStart expansion (env.go),
// supervision (manager.go, process.go), enablement (install.go), the systemctl verbs and
// their output (systemctl.go) and the wire protocol between shim and manager (wire.go).
//
// Every path the manager opens, creates or executes is under Options.Root ("/" in a lab
// host; a temp dir in tests). The processes themselves see the real filesystem.
//
// Not systemd: no cgroups (a unit's processes are its process group: KillMode=control-group
// signals the group), no dependencies or ordering (After=, Wants= are ignored), Type=forking
// is refused, and the default TimeoutStopSec is 10 s (systemd's is 90 s).
package svc
