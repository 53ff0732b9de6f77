#!/usr/bin/env bash
# Runs a 3-replica controller cluster and two agents on loopback in the foreground;
# Ctrl-C stops them. State lives in .cache/local (delete it to start from scratch).
set -euo pipefail
cd "$(dirname "$0")/.."
scripts/build.sh >/dev/null
# The simulated hosts get the hostsim SIMULATION of systemctl, firewall-cmd, swapoff,
# modprobe, sysctl, apt, kubeadm, ...: tasks run against them act on the host's root
# directory, never on this machine.
go build -o .cache/bin/hostsim ./internal/testkit/sim/hostsim
base=${DECKHAND_BASE_PORT:-7400}
state=$PWD/.cache/local
mkdir -p "$state"
pids=()
cleanup() {
  for p in "${pids[@]}"; do kill "$p" 2>/dev/null || true; done
  for p in "${pids[@]}"; do wait "$p" 2>/dev/null || true; done
}
trap cleanup EXIT INT TERM

export DECKHAND_CONFIG=$state/ctl-0/admin.conf
wait_for() { # wait_for SECONDS CMD...: poll until CMD succeeds
  local deadline=$((SECONDS + $1)); shift
  until "$@" >/dev/null 2>&1; do
    [ $SECONDS -lt $deadline ] || { echo "timed out waiting for: $*" >&2; return 1; }
    sleep 0.1
  done
}

addrs=()
for i in 0 1 2; do
  addr="127.0.0.1:$((base + i))"
  addrs+=("$addr")
  args=(--data-dir "$state/ctl-$i" --listen "$addr" --name "ctl-$i" --heartbeat-interval 1s --node-not-ready-after 5s)
  if [ "$i" -gt 0 ] && [ ! -f "$state/ctl-$i/member.json" ]; then
    # A new replica joins with a controller token, pinning the cluster CA.
    join=$(bin/deckctl --controller "${addrs[0]}" token create --purpose controller --ttl 10m --usages 1 -o json)
    token=$(echo "$join" | sed -n 's/.*"secret": *"\([^"]*\)".*/\1/p')
    hash=$(echo "$join" | sed -n 's/.*"caCertHash": *"\([^"]*\)".*/\1/p')
    args+=(--join "${addrs[0]}" --token "$token" --ca-cert-hash "$hash")
  fi
  bin/deckhand-controller "${args[@]}" 2>>"$state/ctl-$i.log" &
  pids+=($!)
  wait_for 30 test -f "$DECKHAND_CONFIG"
  wait_for 30 bin/deckctl --controller "$addr" members
done
controllers=$(IFS=,; echo "${addrs[*]}")

for n in node-1 node-2; do
  root=$state/$n/root
  mkdir -p "$root/usr/bin"
  for tool in systemctl firewall-cmd swapoff modprobe sysctl apt-get apt-mark iptables iptables-save iptables-restore ip6tables-save ip6tables-restore ipvsadm nft ip; do
    cp .cache/bin/hostsim "$root/usr/bin/$tool"
  done
  mkdir -p "$root/usr/lib/cni" # the distribution's CNI plugins (the simulation: no pod runs)
  for plugin in bridge host-local portmap loopback; do
    cp .cache/bin/hostsim "$root/usr/lib/cni/$plugin"
  done
  if [ ! -f "$state/$n/data/agent.json" ]; then
    mkdir -p "$root/etc"
    echo "$n" > "$root/etc/hostname"
    cat /proc/sys/kernel/random/uuid | tr -d - > "$root/etc/machine-id"
    cp /etc/os-release "$root/etc/os-release" 2>/dev/null || true
    enroll=$(bin/deckctl token create --usages 1 --ttl 10m -o json)
    token=$(echo "$enroll" | sed -n 's/.*"secret": *"\([^"]*\)".*/\1/p')
    hash=$(echo "$enroll" | sed -n 's/.*"caCertHash": *"\([^"]*\)".*/\1/p')
    enroll_args=(--token "$token" --ca-cert-hash "$hash")
  else
    enroll_args=()
  fi
  DECKHAND_SIM_CLUSTER=$state/sim-cluster bin/deckhand-agent --controller "$controllers" --node-name "$n" --root "$root" --data-dir "$state/$n/data" "${enroll_args[@]}" 2>>"$state/$n.log" &
  pids+=($!)
done
wait_for 30 sh -c "bin/deckctl nodes | grep -c Ready | grep -q 2"
bin/deckctl members
echo
bin/deckctl nodes
cat <<TXT

3 controller replicas and 2 agents are running (logs in $state). In another shell:
  export DECKHAND_CONFIG=$DECKHAND_CONFIG
  bin/deckctl members
  bin/deckctl nodes
  bin/deckctl node describe node-1
Ctrl-C stops them; the state in $state survives a restart.
TXT
wait
