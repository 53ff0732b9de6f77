#!/usr/bin/env bash
# Runs a 3-replica controller cluster on loopback in the foreground; Ctrl-C stops it.
# State lives in .cache/local (delete it to start from scratch).
set -euo pipefail
cd "$(dirname "$0")/.."
scripts/build.sh >/dev/null
base=${DECKHAND_BASE_PORT:-7400}
state=.cache/local
mkdir -p "$state"
pids=()
cleanup() {
  for p in "${pids[@]}"; do kill "$p" 2>/dev/null || true; done
  for p in "${pids[@]}"; do wait "$p" 2>/dev/null || true; done
}
trap cleanup EXIT INT TERM
addrs=()
for i in 0 1 2; do
  addr="127.0.0.1:$((base + i))"
  addrs+=("$addr")
  args=(--data-dir "$state/ctl-$i" --listen "$addr" --name "ctl-$i")
  if [ "$i" -gt 0 ] && [ ! -f "$state/ctl-$i/member.json" ]; then args+=(--join "${addrs[0]}"); fi
  bin/deckhand-controller "${args[@]}" 2>>"$state/ctl-$i.log" &
  pids+=($!)
  # Let the first replica bootstrap before the others join it.
  if [ "$i" -eq 0 ]; then
    for _ in $(seq 100); do bin/deckctl --controller "$addr" --timeout 1s members >/dev/null 2>&1 && break; sleep 0.1; done
  fi
done
export DECKHAND_CONTROLLER=$(IFS=,; echo "${addrs[*]}")
for _ in $(seq 100); do
  out=$(bin/deckctl members 2>/dev/null || true)
  [ "$(echo "$out" | grep -c -E 'leader|follower')" -ge 3 ] && break
  sleep 0.1
done
bin/deckctl members
cat <<TXT

3 controller replicas are running (logs: $state/ctl-N.log). In another shell:
  export DECKHAND_CONTROLLER=$DECKHAND_CONTROLLER
  bin/deckctl members
Ctrl-C stops them; the state in $state survives a restart.
TXT
wait
