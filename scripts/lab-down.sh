#!/usr/bin/env bash
# make lab-down: stops what make lab started (by PID), its real hosts (every process in their
# cgroups, containers included, then the cgroups), the simulated hosts' containerd, and removes
# the lab's network namespaces, links, mounts and files, and puts back the machine-wide sysctls
# the kubelet changed. It touches only the lab in DECKHAND_LAB_DIR (default /tmp/deckhand-lab).
set -uo pipefail
cd "$(dirname "$0")/.."
state=${DECKHAND_LAB_DIR:-/tmp/deckhand-lab}
case $state in /*) ;; *) state=$PWD/$state ;; esac
[ -d "$state" ] || { echo "no lab at $state"; exit 0; }
# Real hosts first: their holders stop the services they supervise, then what is left in the
# host's cgroups and mount namespace is killed and the cgroups removed.
if [ -s "$state/nodes" ] && [ -x "$state/bin/labnode" ]; then
  while read -r node cgroup; do
    "$state/bin/labnode" down --state "$state/$node" --cgroup "$cgroup" &
  done <"$state/nodes"
  wait
fi
# ours PID: the process is still the one the lab started (a PID the kernel handed to another
# process since is left alone): its command line ends the one recorded in NAME.cmd (wrappers
# such as nsenter and env exec what follows them).
ours() {
  local pid=$1 f c
  c=$(tr '\0' '\n' <"/proc/$pid/cmdline" 2>/dev/null) || return 1
  [ -n "$c" ] || return 1
  for f in "$state"/*.pid; do
    [ "$(cat "$f" 2>/dev/null)" = "$pid" ] && [ -f "${f%.pid}.cmd" ] || continue
    [ "$(tr '\0' '\n' <"${f%.pid}.cmd" | tail -n "$(printf '%s\n' "$c" | wc -l)")" = "$c" ] && return 0
  done
  return 1
}
if [ -f "$state/pids" ]; then
  while read -r pid; do
    ours "$pid" && { kill -TERM -- "-$pid" 2>/dev/null || kill -TERM "$pid" 2>/dev/null; }
  done <"$state/pids"
  deadline=$((SECONDS + 10))
  while read -r pid; do
    while ours "$pid" && [ $SECONDS -lt $deadline ]; do sleep 0.1; done
    if ours "$pid"; then kill -KILL -- "-$pid" 2>/dev/null || kill -KILL "$pid" 2>/dev/null || true; fi
  done <"$state/pids"
fi
# The simulated hosts' containerd (started by their simulated systemctl) and what it mounted.
for root in "$state"/node-*/root; do
  [ -x "$root/usr/bin/systemctl" ] && "$root/usr/bin/systemctl" stop containerd >/dev/null 2>&1 || true
done
grep -F " $state/" /proc/self/mounts | awk '{print $2}' | sort -r | while read -r m; do umount -l "$m" 2>/dev/null || true; done
if [ -f "$state/netns" ]; then
  # Links first (deleting a veth removes both ends at once), then the namespaces.
  while read -r kind name; do
    [ "$kind" = link ] && { ip link del "$name" 2>/dev/null || true; }
  done <"$state/netns"
  while read -r kind name; do
    [ "$kind" = netns ] && { ip netns del "$name" 2>/dev/null || true; }
  done <"$state/netns"
fi
if [ -f "$state/sysctls" ]; then
  (
    flock 9
    saved=$(cat "$state/sysctls")
    # The last real lab on the machine restores what the first one recorded (labs whose
    # state directory is gone run no longer).
    touch /run/deckhand-lab/running
    while read -r d; do [ "$d" != "$state" ] && [ -e "$d/pids" ] && echo "$d"; done </run/deckhand-lab/running >/run/deckhand-lab/running.new
    mv -f /run/deckhand-lab/running.new /run/deckhand-lab/running
    if [ ! -s /run/deckhand-lab/running ]; then
      if [ -f "$saved" ]; then
        while read -r key value; do
          echo "$value" >"/proc/sys/${key//.//}" 2>/dev/null || echo "lab-down: could not restore $key to $value" >&2
        done <"$saved"
      fi
      rm -rf /run/deckhand-lab
    fi
  ) 9>/run/deckhand-lab/lock
fi
rm -rf "$state"
echo "lab removed"
