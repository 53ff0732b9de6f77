#!/usr/bin/env bash
# make lab: a Deckhand lab on this machine. Every host is a network namespace on a bridge of
# its own (10.250.N.0/24, N chosen free, so two labs run side by side); three controllers and
# four hosts run in them, and the lab applies deploy/lab/cluster.yaml (1 control plane + 2
# workers; DECKHAND_LAB_CLUSTER names another document, such as deploy/lab/cluster-local.yaml),
# then joins node-4 with the live view. DECKHAND_LAB_FILES=DIR serves DIR's files at
# http://10.250.N.1:5000/files/ (a cluster document's manifest of the user's);
# DECKHAND_LAB_ROUTED="node-3" puts those hosts on a second L3 segment (10.250.N.128/25, the
# others on 10.250.N.0/25) behind a router namespace, as hosts in two racks or sites are.
#
# By default the hosts are REAL: each is also a mount + UTS namespace with its own /etc,
# /usr, /var (scripts/labnode, lab tooling) and its own containerd; deckhand-agent is installed
# in it with deploy/install.sh and runs with --root /; the product's tasks install the
# Kubernetes build kit's kubelet, kubeadm and kubectl (served by scripts/labserve, built by
# scripts/k8s.sh) and run the REAL kubeadm. The lab ends with the real API server's node list
# and a kubeconfig to use it.
#
# DECKHAND_LAB_UPGRADE_TO=v1.34.12 also builds that release's kit and serves its binaries and
# images beside the lab's own, for `deckctl upgrade apply --to v1.34.12`.
# DECKHAND_LAB_JOIN_FLAGS (e.g. --control-plane) are given to the lab's `deckctl join node-4`.
#
# DECKHAND_LAB_SIM=1 runs the fast SIMULATED lab instead: kubeadm, the kubelet and systemctl
# are simulated (internal/testkit/sim/hostsim) under a root directory per host.
#
# DECKHAND_LAB_DIR (default /tmp/deckhand-lab) holds the state; make lab-down removes it all.
set -euo pipefail
cd "$(dirname "$0")/.."
repo=$PWD
state=${DECKHAND_LAB_DIR:-/tmp/deckhand-lab}
case $state in /*) ;; *) state=$PWD/$state ;; esac
sim=${DECKHAND_LAB_SIM:-0}
version=v1.33.13
if [ -e "$state/pids" ]; then
  echo "a lab is already running (state in $state): make lab-down first" >&2
  exit 1
fi
start_time=$SECONDS
mkdir -p "$state/bin"
: >"$state/pids"
: >"$state/netns"
: >"$state/nodes"

if [ "$sim" != 1 ]; then
  # What a real lab needs from the machine, checked before anything is made.
  missing=()
  [ "$(id -u)" = 0 ] || { echo "lab: the real lab needs root (network, mount namespaces and cgroups); run it as root, or DECKHAND_LAB_SIM=1 make lab for the simulated lab" >&2; exit 1; }
  command -v containerd >/dev/null || missing+=(containerd)
  command -v runc >/dev/null || missing+=(runc)
  [ -x /usr/lib/cni/bridge ] || [ -x /opt/cni/bin/bridge ] || missing+=(containernetworking-plugins)
  [ -x /usr/sbin/xtables-nft-multi ] || missing+=(iptables)
  command -v nsenter >/dev/null && command -v unshare >/dev/null || missing+=(util-linux)
  # The load balancer's packages: the hosts see the machine's /usr, so Deckhand's
  # load_balancer task finds them installed there.
  [ -x /usr/sbin/haproxy ] || missing+=(haproxy)
  [ -x /usr/sbin/keepalived ] || missing+=(keepalived)
  if [ ${#missing[@]} -gt 0 ]; then
    if command -v apt-get >/dev/null; then
      echo "lab: installing what the real lab needs: ${missing[*]} (apt-get)"
      # No package may start its daemon on this machine: a refusing policy-rc.d for the
      # install when there is none.
      policy=
      if [ ! -e /usr/sbin/policy-rc.d ]; then
        printf '#!/bin/sh\nexit 101\n' >/usr/sbin/policy-rc.d && chmod 755 /usr/sbin/policy-rc.d && policy=1
      fi
      DEBIAN_FRONTEND=noninteractive apt-get install -y -qq "${missing[@]}" >/dev/null ||
        { apt-get update -qq && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq "${missing[@]}" >/dev/null; } ||
        { [ -z "$policy" ] || rm -f /usr/sbin/policy-rc.d; echo "lab: could not install ${missing[*]}: run: apt-get update && apt-get install -y ${missing[*]}" >&2; exit 1; }
      [ -z "$policy" ] || rm -f /usr/sbin/policy-rc.d
    else
      echo "lab: the real lab needs ${missing[*]}: install them with your package manager, or DECKHAND_LAB_SIM=1 make lab" >&2
      exit 1
    fi
  fi
  grep -q ' /sys/fs/cgroup/cpu[, ].* cgroup ' /proc/self/mountinfo || grep -q 'cgroup cgroup' /proc/self/mountinfo ||
    { echo "lab: the real lab needs cgroup v1 hierarchies under /sys/fs/cgroup (this machine has none)" >&2; exit 1; }
  if ! kit=$(scripts/k8s.sh "$version" | tail -1) || [ ! -d "$kit" ]; then
    echo "lab: building the Kubernetes kit failed (see above)" >&2
    exit 1
  fi
  upgrade_kit=
  if [ -n "${DECKHAND_LAB_UPGRADE_TO:-}" ]; then
    if ! upgrade_kit=$(scripts/k8s.sh "$DECKHAND_LAB_UPGRADE_TO" | tail -1) || [ ! -d "$upgrade_kit" ]; then
      echo "lab: building the Kubernetes $DECKHAND_LAB_UPGRADE_TO kit (DECKHAND_LAB_UPGRADE_TO) failed (see above)" >&2
      exit 1
    fi
  fi
fi

scripts/build.sh >/dev/null
go build -o "$state/bin/labserve" ./scripts/labserve
if [ "$sim" = 1 ]; then
  go build -o "$state/bin/hostsim" ./internal/testkit/sim/hostsim
else
  go build -o "$state/bin/labnode" ./scripts/labnode
  go build -o "$state/bin/k8skit" ./scripts/k8skit
  CGO_ENABLED=0 go build -o "$state/bin/probe" ./scripts/k8skit/probe
fi

routed=${DECKHAND_LAB_ROUTED:-} # hosts put on a second L3 segment, behind a router: "node-3"
for h in $routed; do
  # Workers only: the control planes' addresses (node-1's is pinned, the VIP) stay on the
  # first segment.
  [[ $h =~ ^node-[23]$ ]] || { echo "lab: DECKHAND_LAB_ROUTED names $h: give worker hosts, node-2 or node-3" >&2; exit 2; }
done
mode=${DECKHAND_LAB_MODE:-netns} # DECKHAND_LAB_MODE=loopback forces the simulated lab's fallback
if [ "$mode" != netns ] || [ "$(id -u)" != 0 ] || ! ip netns add "dhlab-probe-$$" 2>/dev/null; then
  [ "$sim" = 1 ] || { echo "lab: the real lab needs network namespaces (ip netns add failed)" >&2; exit 1; }
  mode=loopback
else
  ip netns del "dhlab-probe-$$"
fi

hosts=(ctl-0 ctl-1 ctl-2 node-1 node-2 node-3 node-4)
declare -A addr
if [ "$mode" = netns ]; then
  # The lab's number N: the first whose bridge and subnet are free (under a lock, so two labs
  # starting at once do not pick the same).
  install -d -m 0700 /run/deckhand-lab # machine-wide lab bookkeeping, root's only
  exec 9>/run/deckhand-lab/lock
  flock 9
  n=0
  while ip link show "dhlab$n" >/dev/null 2>&1 || ip link show "dhlab${n}r" >/dev/null 2>&1 || ip -o addr | grep -q " 10\.250\.$n\." || ip netns list | grep -q "^dhlab$n-"; do
    n=$((n + 1))
    [ $n -lt 250 ] || { echo "lab: no free lab number (10.250.0-249.0/24 all in use)" >&2; exit 1; }
  done
  prefix=dhlab$n
  net=10.250.$n
  ip link add "$prefix" type bridge
  echo "link $prefix" >>"$state/netns"
  flock -u 9
  exec 9>&-
  mask=24
  if [ -n "$routed" ]; then
    # Two L3 segments: $net.0/25 on the lab bridge, $net.128/25 on a second bridge, and a
    # router namespace between them (forwarding in its own namespace only).
    mask=25
    ip link add "${prefix}r" type bridge
    echo "link ${prefix}r" >>"$state/netns"
    ip link set "${prefix}r" up
    ip netns add "$prefix-router"
    echo "netns $prefix-router" >>"$state/netns"
    for side in a b; do
      ip link add "dhl$n-r$side" type veth peer name "eth$side" netns "$prefix-router"
      echo "link dhl$n-r$side" >>"$state/netns"
    done
    ip link set "dhl$n-ra" master "$prefix" up
    ip link set "dhl$n-rb" master "${prefix}r" up
    ip -n "$prefix-router" addr add "$net.126/25" dev etha
    ip -n "$prefix-router" addr add "$net.129/25" dev ethb
    for l in etha ethb lo; do ip -n "$prefix-router" link set dev "$l" up; done
    ip netns exec "$prefix-router" sysctl -qw net.ipv4.ip_forward=1
  fi
  ip addr add "$net.1/$mask" dev "$prefix"
  ip link set "$prefix" up
  # The lab's file server answers the second segment's hosts through the router.
  [ -z "$routed" ] || ip route add "$net.128/25" via "$net.126" dev "$prefix"
  for h in "${hosts[@]}"; do
    case $h in ctl-*) ip=$net.$((11 + ${h#ctl-})) ;; node-*) ip=$net.$((20 + ${h#node-})) ;; esac
    bridge=$prefix gw=$net.1 other="" via=""
    if [ -n "$routed" ]; then
      other=$net.128/25 via=$net.126
      if [[ " $routed " == *" $h "* ]]; then
        ip=$net.$((150 + ${h#node-})) bridge=${prefix}r gw=$net.129 other=$net.0/25 via=$net.129
      fi
    fi
    addr[$h]=$ip
    ip netns add "$prefix-$h"
    echo "netns $prefix-$h" >>"$state/netns"
    veth=dhl$n-$h
    ip link add "$veth" type veth peer name eth0 netns "$prefix-$h"
    echo "link $veth" >>"$state/netns"
    ip link set "$veth" master "$bridge" up
    ip -n "$prefix-$h" addr add "$ip/$mask" dev eth0
    ip -n "$prefix-$h" link set eth0 up
    ip -n "$prefix-$h" link set lo up
    ip -n "$prefix-$h" route add default via "$gw"
    # The other segment through the router (the default route moves to the NAT link later).
    [ -z "$other" ] || ip -n "$prefix-$h" route add "$other" via "$via" dev eth0
  done
  serve=$net.1:5000
  in_ns() { echo nsenter "--net=/var/run/netns/$prefix-$1"; } # the prefix that runs a command in host $1
  if [ -n "$routed" ]; then
    echo "lab: network namespaces $prefix-* on bridge $prefix ($net.0/25) and, behind the router $prefix-router, ${prefix}r ($net.128/25: $routed)"
  else
    echo "lab: network namespaces $prefix-* on bridge $prefix ($net.0/24)"
  fi
else
  prefix="" net=127.0.0
  base=${DECKHAND_LAB_PORT:-7450}
  for h in "${hosts[@]}"; do addr[$h]=127.0.0.1; done
  serve=127.0.0.1:$((base + 10))
  in_ns() { :; }
  echo "lab: no root or no network namespaces here: every host uses loopback (127.0.0.1) instead of its own address"
fi
port() { # the controller port of ctl-N
  if [ "$mode" = netns ]; then echo 7400; else echo $((base + ${1#ctl-})); fi
}
echo "mode=$mode sim=$sim prefix=$prefix net=$net serve=$serve kit=${kit:-}" >"$state/lab.env"

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

# The registry and file server the hosts use instead of the internet.
if [ "$sim" = 1 ]; then
  bg labserve "$state/labserve.log" "$state/bin/labserve" --listen "$serve" --ready-file "$state/labserve.ready"
  wait_for 60 test -f "$state/labserve.ready"
else
  bg labserve "$state/labserve.log" "$state/bin/labserve" --listen "$serve" --kit "$kit" --kubernetes-version "$version" --ready-file "$state/labserve.ready" \
    ${upgrade_kit:+--kit "$upgrade_kit"} ${DECKHAND_LAB_FILES:+--files "$DECKHAND_LAB_FILES"}
  wait_for 60 test -f "$state/labserve.ready"
  echo "lab: pushing the kit's images to the lab registry $serve"
  "$state/bin/k8skit" -kit "$kit" -registry "$serve" -kubernetes-version "$version" \
    -add "deckhand-probe:v1=$state/bin/probe" >"$state/images.txt"
  if [ -n "$upgrade_kit" ]; then
    echo "lab: pushing the $DECKHAND_LAB_UPGRADE_TO kit's images to the lab registry $serve (DECKHAND_LAB_UPGRADE_TO)"
    "$state/bin/k8skit" -kit "$upgrade_kit" -registry "$serve" -kubernetes-version "$DECKHAND_LAB_UPGRADE_TO" >>"$state/images.txt"
  fi
  # The kubelet changes these machine-wide (not per network namespace): the first lab on the
  # machine records them, and the last lab-down puts them back.
  (
    flock 9
    # A lab whose state directory is gone (removed by hand) runs no longer.
    if [ -f /run/deckhand-lab/running ]; then
      while read -r d; do [ -e "$d/pids" ] && echo "$d"; done </run/deckhand-lab/running >/run/deckhand-lab/running.new
      mv -f /run/deckhand-lab/running.new /run/deckhand-lab/running
    fi
    if [ ! -s /run/deckhand-lab/running ] || [ ! -s /run/deckhand-lab/sysctls ]; then
      for s in vm.overcommit_memory kernel.panic kernel.panic_on_oops; do
        echo "$s $(cat "/proc/sys/${s//.//}")"
      done >/run/deckhand-lab/sysctls
    fi
    echo "$state" >>/run/deckhand-lab/running
  ) 9>/run/deckhand-lab/lock
  echo "/run/deckhand-lab/sysctls" >"$state/sysctls"
fi

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

if [ "$sim" != 1 ]; then
  { echo "127.0.0.1 localhost"; for h in "${hosts[@]}"; do echo "${addr[$h]} $h"; done; } >"$state/hosts"
fi
for n in node-1 node-2 node-3 node-4; do
  enroll=$(bin/deckctl token create --usages 1 --ttl 10m -o json)
  token=$(echo "$enroll" | sed -n 's/.*"secret": *"\([^"]*\)".*/\1/p')
  hash=$(echo "$enroll" | sed -n 's/.*"caCertHash": *"\([^"]*\)".*/\1/p')
  mkdir -p "$state/$n"
  (umask 077 && echo "$token" >"$state/$n/token") # tokens stay off the process list
  if [ "$sim" != 1 ]; then
    # A real host: its holder makes the namespaces its own (scripts/labnode), then installs
    # and starts deckhand-agent as a user would (deploy/install.sh, systemctl enable --now).
    # Like a Vagrant box it has a second network (nat0) with the default route, which no
    # other host reaches: the cluster must use each node's lab address all the same.
    echo "$n $prefix-$n" >>"$state/nodes"
    bg "$n" "$state/$n.log" nsenter "--net=/var/run/netns/$prefix-$n" unshare --mount --uts --propagation private \
      "$state/bin/labnode" host --name "$n" --state "$state/$n" --cgroup "$prefix-$n" --hosts "$state/hosts" --nat-for "${addr[$n]}" -- \
      "$repo/deploy/install.sh" agent --bin-dir "$repo/bin" --controllers "$controllers" \
      --token-file "$state/$n/token" --ca-cert-hash "$hash" --args "--facts-interval 1m" # certificates show within a minute
    continue
  fi
  root=$state/$n/root
  mkdir -p "$root/usr/bin" "$root/etc" "$root/proc/sys/net/ipv4" "$root/proc/net" "$state/$n/data"
  for tool in systemctl firewall-cmd swapoff modprobe sysctl apt-get apt-mark iptables iptables-save iptables-restore ip6tables-save ip6tables-restore ipvsadm nft ip; do
    cp "$state/bin/hostsim" "$root/usr/bin/$tool"
  done
  mkdir -p "$root/usr/lib/cni" # the distribution's CNI plugins (the simulation: no pod runs)
  for plugin in bridge host-local portmap loopback; do
    cp "$state/bin/hostsim" "$root/usr/lib/cni/$plugin"
  done
  echo "$n" >"$root/etc/hostname"
  tr -d - </proc/sys/kernel/random/uuid >"$root/etc/machine-id"
  cp /etc/os-release "$root/etc/os-release" 2>/dev/null || echo 'ID=debian' >"$root/etc/os-release"
  echo "127.0.0.1 localhost" >"$root/etc/hosts"
  echo 0 >"$root/proc/sys/net/ipv4/ip_forward"
  echo "  sl  local_address rem_address   st" >"$root/proc/net/tcp"
  # shellcheck disable=SC2046
  bg "$n" "$state/$n.log" $(in_ns "$n") env DECKHAND_SIM_CLUSTER="$state/sim-cluster" \
    "$repo/bin/deckhand-agent" --controller "$controllers" --node-name "$n" --root "$root" --data-dir "$state/$n/data" \
    --token-file "$state/$n/token" --ca-cert-hash "$hash"
done
wait_for 60 sh -c "bin/deckctl nodes | grep -c ' Ready ' | grep -qx 4"

if [ "${DECKHAND_LAB_APPLY:-1}" = 0 ]; then
  bin/deckctl nodes
  echo "lab hosts are up (no cluster applied: DECKHAND_LAB_APPLY=0); state in $state"
  exit 0
fi
if [ "$sim" = 1 ]; then
  sed "s#10.250.0.1:5000#$serve#g" deploy/lab/cluster-sim.yaml >"$state/cluster.yaml"
else
  sed "s#10\.250\.0\.#$net.#g" "${DECKHAND_LAB_CLUSTER:-deploy/lab/cluster.yaml}" >"$state/cluster.yaml"
fi
echo
echo "\$ deckctl apply -f $state/cluster.yaml"
bin/deckctl apply -f "$state/cluster.yaml" --timeout 10m
echo
# shellcheck disable=SC2086
echo "\$ deckctl join node-4 ${DECKHAND_LAB_JOIN_FLAGS:-}"
# shellcheck disable=SC2086
bin/deckctl join node-4 ${DECKHAND_LAB_JOIN_FLAGS:-} --timeout 10m
echo
bin/deckctl nodes
echo
echo "\$ deckctl audit"
bin/deckctl audit
if [ "$sim" = 1 ]; then
  cat <<TXT

The SIMULATED lab runs ($mode mode; state and logs in $state). Use it from this shell with:
  export DECKHAND_CONFIG=$DECKHAND_CONFIG DECKHAND_CONTROLLER=$controllers
  bin/deckctl members | nodes | cluster | workflows
  bin/deckctl reset node-3 ; bin/deckctl join node-3
  bin/deckctl workflow describe ID ; bin/deckctl logs ID --node node-2
Stop and remove everything with: DECKHAND_LAB_DIR=$state make lab-down
TXT
  exit 0
fi

# The real cluster, as its own API server sees it.
# A kubeconfig of its own: a user certificate signed through a control plane's agent (the
# cluster's admin.conf and CA key never leave node-1).
kubeconfig=$state/kubeconfig
bin/deckctl kubeconfig -o "$kubeconfig"
kubectl=$kit/kubectl
echo
echo "\$ kubectl get nodes -o wide"
failed=0
wait_for 120 sh -c "'$kubectl' --kubeconfig '$kubeconfig' get nodes --no-headers | grep -c ' Ready ' | grep -qx 4" ||
  { echo "lab: the API server does not list 4 Ready nodes"; failed=$((failed + 1)); }
"$kubectl" --kubeconfig "$kubeconfig" get nodes -o wide

# The pod network and DNS, checked the way a user would: a pod on node-3 serves, a pod on
# node-2 fetches from it by IP; the pod on node-3 resolves kubernetes.default through CoreDNS.
k() { "$kubectl" --kubeconfig "$kubeconfig" "$@"; }
probe=$serve/deckhand-probe:v1
for p in node-2 node-3; do
  k run "probe-$p" --image="$probe" --restart=Never --overrides="{\"spec\":{\"nodeName\":\"$p\"}}" -- serve :8080 >/dev/null
done
if k wait --for=condition=Ready pod/probe-node-2 pod/probe-node-3 --timeout=180s >/dev/null; then
  ip2=$(k get pod probe-node-2 -o 'jsonpath={.status.podIP}')
  ip3=$(k get pod probe-node-3 -o 'jsonpath={.status.podIP}')
  # The pod on node-3 sees the caller's own pod IP: no NAT between nodes.
  if got=$(k exec probe-node-2 -- deckhand-probe get "http://$ip3:8080" 2>&1) && [ "$got" = "probe-node-3 from $ip2" ]; then
    echo "pod to pod: passed (the pod on node-2, $ip2, fetched http://$ip3:8080 from the pod on node-3, which saw $ip2)"
  else
    echo "pod to pod: FAILED (a pod on node-2 fetching http://$ip3:8080: $got)"
    failed=$((failed + 1))
  fi
  # CoreDNS answers once it has synced with the API server through the kubernetes Service.
  k -n kube-system wait --for=condition=Ready pod -l k8s-app=kube-dns --timeout=180s >/dev/null || true
  if got=$(k exec probe-node-3 -- deckhand-probe resolve kubernetes.default 2>&1); then
    echo "DNS: passed (kubernetes.default resolves to $got from a pod on node-3, through CoreDNS)"
  else
    echo "DNS: FAILED (resolving kubernetes.default from a pod on node-3: $got)"
    failed=$((failed + 1))
  fi
else
  echo "pod to pod: FAILED (the probe pods did not become Ready)"
  failed=$((failed + 1))
  k get pods -o wide
fi
k delete pod probe-node-2 probe-node-3 --timeout=60s >/dev/null 2>&1 || true
echo "make lab took $((SECONDS - start_time)) s"
cat <<TXT

The REAL lab runs (state and logs in $state). Use it from this shell with:
  export DECKHAND_CONFIG=$DECKHAND_CONFIG DECKHAND_CONTROLLER=$controllers
  export KUBECONFIG=$kubeconfig PATH=$kit:\$PATH
  kubectl get pods -A ; bin/deckctl workflows
  bin/deckctl reset node-3 ; bin/deckctl join node-3
Stop and remove everything with: DECKHAND_LAB_DIR=$state make lab-down
TXT
if [ "$failed" -gt 0 ]; then
  echo "make lab: $failed check(s) FAILED (above); the lab is left running to look at" >&2
  exit 1
fi
