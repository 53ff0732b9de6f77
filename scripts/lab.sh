#!/usr/bin/env bash
# make lab: a Deckhand lab on this machine. Simulated hosts are network namespaces on a
# bridge (10.250.0.0/24), each with its own root directory, the kubeadm/kubelet/systemctl
# SIMULATION (internal/sim/hostsim) and, when containerd is installed, a real containerd.
# Three controllers and an agent per host run in them; the lab then applies
# deploy/lab/cluster.yaml (1 control plane + 2 workers) and joins node-4 with the live view.
# Without root or network namespaces it falls back to loopback addresses and says so.
# make lab-down removes everything it made.
set -euo pipefail
cd "$(dirname "$0")/.."
repo=$PWD
state=${DECKHAND_LAB_DIR:-/tmp/deckhand-lab}
if [ -e "$state/pids" ]; then
  echo "a lab is already running (state in $state): make lab-down first" >&2
  exit 1
fi
scripts/build.sh >/dev/null
mkdir -p "$state/bin"
go build -o "$state/bin/hostsim" ./internal/sim/hostsim
go build -o "$state/bin/labserve" ./scripts/labserve
: >"$state/pids"
: >"$state/netns"

mode=${DECKHAND_LAB_MODE:-netns} # DECKHAND_LAB_MODE=loopback forces the fallback
if [ "$mode" != netns ] || [ "$(id -u)" != 0 ] || ! ip netns add dhlab-probe 2>/dev/null; then
  mode=loopback
else
  ip netns del dhlab-probe
fi

hosts=(ctl-0 ctl-1 ctl-2 node-1 node-2 node-3 node-4)
declare -A addr
if [ "$mode" = netns ]; then
  ip link add dhlab0 type bridge
  echo "link dhlab0" >>"$state/netns"
  ip addr add 10.250.0.1/24 dev dhlab0
  ip link set dhlab0 up
  i=0
  for h in "${hosts[@]}"; do
    case $h in ctl-*) ip=10.250.0.$((11 + ${h#ctl-})) ;; node-*) ip=10.250.0.$((20 + ${h#node-})) ;; esac
    addr[$h]=$ip
    ip netns add "dhlab-$h"
    echo "netns dhlab-$h" >>"$state/netns"
    ip link add "dhl-$h" type veth peer name eth0 netns "dhlab-$h"
    echo "link dhl-$h" >>"$state/netns"
    ip link set "dhl-$h" master dhlab0 up
    ip -n "dhlab-$h" addr add "$ip/24" dev eth0
    ip -n "dhlab-$h" link set eth0 up
    ip -n "dhlab-$h" link set lo up
    ip -n "dhlab-$h" route add default via 10.250.0.1
    i=$((i + 1))
  done
  serve=10.250.0.1:5000
  in_ns() { echo nsenter "--net=/var/run/netns/dhlab-$1"; } # the prefix that runs a command in host $1
  echo "lab: network namespaces on bridge dhlab0 (10.250.0.0/24)"
else
  base=${DECKHAND_LAB_PORT:-7450}
  for h in "${hosts[@]}"; do addr[$h]=127.0.0.1; done
  serve=127.0.0.1:$((base + 10))
  in_ns() { :; }
  echo "lab: no root or no network namespaces here: every host uses loopback (127.0.0.1) instead of its own address"
fi
port() { # the controller port of ctl-N
  if [ "$mode" = netns ]; then echo 7400; else echo $((base + ${1#ctl-})); fi
}

bg() { # bg NAME LOG CMD...: start CMD in the background, its own session; remember its PID
  local name=$1 log=$2; shift 2
  setsid "$@" >>"$log" 2>&1 </dev/null &
  echo $! >>"$state/pids"
  echo $! >"$state/$name.pid"
  printf '%s\0' "$@" >"$state/$name.cmd" # how to start it again (the fault tests restart it)
}
wait_for() { # wait_for SECONDS CMD...: poll until CMD succeeds
  local deadline=$((SECONDS + $1)); shift
  until "$@" >/dev/null 2>&1; do
    [ $SECONDS -lt $deadline ] || { echo "lab: timed out waiting for: $*" >&2; return 1; }
    sleep 0.1
  done
}

# The mirror and package repository the hosts use instead of the internet.
bg labserve "$state/labserve.log" "$state/bin/labserve" --listen "$serve" --ready-file "$state/labserve.ready"
wait_for 60 test -f "$state/labserve.ready"

export DECKHAND_CONFIG=$state/ctl-0/admin.conf
ctl_addrs=()
for c in ctl-0 ctl-1 ctl-2; do
  a="${addr[$c]}:$(port "$c")"
  ctl_addrs+=("$a")
  args=(--data-dir "$state/$c" --listen "$a" --name "$c" --heartbeat-interval 1s --node-not-ready-after 5s)
  if [ "$c" != ctl-0 ]; then
    join=$(bin/deckctl --controller "${ctl_addrs[0]}" token create --purpose controller --ttl 10m --usages 1 -o json)
    token=$(echo "$join" | sed -n 's/.*"secret": *"\([^"]*\)".*/\1/p')
    hash=$(echo "$join" | sed -n 's/.*"caCertHash": *"\([^"]*\)".*/\1/p')
    (umask 077 && echo "$token" >"$state/$c.token")
    args+=(--join "${ctl_addrs[0]}" --token-file "$state/$c.token" --ca-cert-hash "$hash")
  fi
  # shellcheck disable=SC2046
  bg "$c" "$state/$c.log" $(in_ns "$c") "$repo/bin/deckhand-controller" "${args[@]}"
  wait_for 30 test -f "$DECKHAND_CONFIG"
  wait_for 30 bin/deckctl --controller "$a" members
done
controllers=$(IFS=,; echo "${ctl_addrs[*]}")
export DECKHAND_CONTROLLER=$controllers

for n in node-1 node-2 node-3 node-4; do
  root=$state/$n/root
  mkdir -p "$root/usr/bin" "$root/etc" "$root/proc/sys/net/ipv4" "$root/proc/net" "$state/$n/data"
  for tool in systemctl firewall-cmd swapoff modprobe sysctl apt-get apt-mark iptables-save iptables-restore ip6tables-save ip6tables-restore ipvsadm; do
    cp "$state/bin/hostsim" "$root/usr/bin/$tool"
  done
  echo "$n" >"$root/etc/hostname"
  tr -d - </proc/sys/kernel/random/uuid >"$root/etc/machine-id"
  cp /etc/os-release "$root/etc/os-release" 2>/dev/null || echo 'ID=debian' >"$root/etc/os-release"
  echo "127.0.0.1 localhost" >"$root/etc/hosts"
  echo 0 >"$root/proc/sys/net/ipv4/ip_forward"
  echo "  sl  local_address rem_address   st" >"$root/proc/net/tcp"
  enroll=$(bin/deckctl token create --usages 1 --ttl 10m -o json)
  token=$(echo "$enroll" | sed -n 's/.*"secret": *"\([^"]*\)".*/\1/p')
  hash=$(echo "$enroll" | sed -n 's/.*"caCertHash": *"\([^"]*\)".*/\1/p')
  (umask 077 && echo "$token" >"$state/$n/token") # tokens stay off the process list
  # shellcheck disable=SC2046
  bg "$n" "$state/$n.log" $(in_ns "$n") env DECKHAND_SIM_CLUSTER="$state/sim-cluster" \
    "$repo/bin/deckhand-agent" --controller "$controllers" --node-name "$n" --root "$root" --data-dir "$state/$n/data" \
    --token-file "$state/$n/token" --ca-cert-hash "$hash"
done
wait_for 60 sh -c "bin/deckctl nodes | grep -c ' Ready ' | grep -qx 4"

echo "mode=$mode serve=$serve controllers=$controllers" >"$state/lab.env"
if [ "${DECKHAND_LAB_APPLY:-1}" = 0 ]; then
  bin/deckctl nodes
  echo "lab hosts are up (no cluster applied: DECKHAND_LAB_APPLY=0); state in $state"
  exit 0
fi
doc=deploy/lab/cluster.yaml
if [ "$mode" = loopback ]; then
  sed "s#10.250.0.1:5000#$serve#g" deploy/lab/cluster.yaml >"$state/cluster.yaml"
  doc=$state/cluster.yaml
fi
echo
echo "\$ deckctl apply -f $doc"
bin/deckctl apply -f "$doc" --timeout 60s
echo
echo "\$ deckctl join node-4"
bin/deckctl join node-4 --timeout 60s
echo
bin/deckctl nodes
cat <<TXT

The lab runs ($mode mode; state and logs in $state). Use it from this shell with:
  export DECKHAND_CONFIG=$DECKHAND_CONFIG DECKHAND_CONTROLLER=$controllers
  bin/deckctl members | nodes | cluster | workflows
  bin/deckctl reset node-3 ; bin/deckctl join node-3
  bin/deckctl workflow describe ID ; bin/deckctl logs ID --node node-2
Stop and remove everything with: make lab-down
TXT
