#!/usr/bin/env bash
# Long fault schedules for the store checker (store/storetest/lincheck): SOAK_SCHEDULES
# schedules of SOAK_FAULTS faults each, on raftstore (3 replicas in process) and on etcd
# 3.5.24 from the Kubernetes build kit (3 member processes: kill -9, SIGSTOP, peer
# partitions). Prints each backend's totals (operations, faults, unknown outcomes resolved,
# check time, violations); full logs in bin/soak/. Record the figures in docs/benchmarks.md.
set -uo pipefail
cd "$(dirname "$0")/.."
echo "machine: $(nproc) cores, $(awk '/MemTotal/ {printf "%.0f GiB", $2/1048576}' /proc/meminfo), $(grep -m1 'model name' /proc/cpuinfo | cut -d: -f2 | sed 's/^ //'), $(uname -sr), $(go version | cut -d' ' -f3)"
scripts/k8s.sh v1.33.13 >/dev/null || { echo "soak: the Kubernetes v1.33.13 kit (etcd 3.5.24) did not build" >&2; exit 1; }
export LINCHECK_SCHEDULES=${SOAK_SCHEDULES:-50} LINCHECK_FAULTS=${SOAK_FAULTS:-7} DECKHAND_REQUIRE_ETCD=1
mkdir -p bin/soak
rc=0
for pkg in raftstore etcdstore; do
  start=$SECONDS
  go test -race -count=1 -timeout 4h -run '^TestLincheckUnderFaults$' -v "./store/$pkg/" >"bin/soak/$pkg.log" 2>&1 || rc=1
  grep -h 'lincheck summary' "bin/soak/$pkg.log" | sed 's/^ *lincheck.go:[0-9]*: //'
  awk -v pkg="$pkg" '/snapshots installed on a lagging follower/ {split($NF, a, " "); got += $(NF-2); of += $NF}
    END {printf "%s: snapshots installed on a lagging follower after %d of %d snapshot faults\n", pkg, got, of}' "bin/soak/$pkg.log"
  grep -h -E 'violation:|replay:' "bin/soak/$pkg.log" | head -20
  echo "$pkg: $((SECONDS - start)) s wall; log: bin/soak/$pkg.log"
done
# And the checker still fails on backends broken as real bugs would break them.
scripts/lincheck-mutants.sh || rc=1
exit $rc
