#!/usr/bin/env bash
# make lab-down: stops what make lab started (by PID) and removes its containerd instances,
# network namespaces, bridge and files.
set -uo pipefail
cd "$(dirname "$0")/.."
state=${DECKHAND_LAB_DIR:-/tmp/deckhand-lab}
[ -d "$state" ] || { echo "no lab at $state"; exit 0; }
if [ -f "$state/pids" ]; then
  while read -r pid; do kill -TERM -- "-$pid" 2>/dev/null || kill -TERM "$pid" 2>/dev/null; done <"$state/pids"
  deadline=$((SECONDS + 10))
  while read -r pid; do
    while kill -0 "$pid" 2>/dev/null && [ $SECONDS -lt $deadline ]; do sleep 0.1; done
    kill -KILL -- "-$pid" 2>/dev/null || kill -KILL "$pid" 2>/dev/null || true
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
rm -rf "$state"
echo "lab removed"
