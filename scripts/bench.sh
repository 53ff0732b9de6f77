#!/usr/bin/env bash
# Benchmarks; record the figures in docs/benchmarks.md with the machine they ran on.
set -euo pipefail
cd "$(dirname "$0")/.."
echo "machine: $(nproc) cores, $(awk '/MemTotal/ {printf "%.0f GiB", $2/1048576}' /proc/meminfo), $(grep -m1 'model name' /proc/cpuinfo | cut -d: -f2 | sed 's/^ //'), $(uname -sr), $(go version | cut -d' ' -f3)"
# raftstore (3 replicas, in process) against real etcd (3 members, Debian's etcd-server), in
# one run: the same writes, 1 and 64 concurrent writers.
go test -run '^$' -bench 'BenchmarkWrite' -benchtime "${BENCH_WRITES:-5000}x" ./store/raftstore/ ./store/etcdstore/ | grep -E '^(pkg:|Benchmark|ok|FAIL)'

# Control-plane image pull on real containerd from a real registry: CRI (the images task)
# against ctr, in one run.
go test -run '^$' -bench 'BenchmarkPullControlPlane' -benchtime "${BENCH_PULLS:-5}x" ./agent/images/ | grep -E '^(Benchmark|ok|FAIL)'

# Agents per controller: one controller process, N enrolled mTLS sessions with heartbeats
# from a load generator process; the controller's RSS and CPU while they run, and the top
# entries of its CPU and heap profiles (kept in bin/profiles/agentload for go tool pprof).
scripts/build.sh >/dev/null
go build -o bin/agentload ./scripts/agentload
echo
echo "agents per controller (1 replica, heartbeat 2s):"
bin/agentload --controller-bin bin/deckhand-controller --sessions "${BENCH_SESSIONS:-1000,5000,10000,20000}" --window "${BENCH_WINDOW:-20s}" \
  --profile-dir "${BENCH_PROFILE_DIR:-bin/profiles/agentload}"

# A 500-node apply against simulated agents whose every task takes a fixed time, then an
# upgrade of that cluster in batches: the workflow engine's overhead as the wall time over
# a lower bound from the DAG (the tool prints its formulas), and the controller's peak RSS.
go build -o bin/applyload ./scripts/applyload
echo
echo "apply and upgrade workflows against simulated agents (1 replica):"
bin/applyload --controller-bin bin/deckhand-controller --nodes "${BENCH_APPLY_NODES:-500}" \
  --concurrency "${BENCH_APPLY_CONCURRENCY:-50}" --task-time "${BENCH_TASK_TIME:-200ms}" \
  --upgrade-to "${BENCH_UPGRADE_TO:-v1.34.12}" --max-unavailable "${BENCH_MAX_UNAVAILABLE:-10%}"

# Controller failover: three controller processes, the raft leader SIGKILLed again and
# again while simulated agents run dry-run workflows; the time until a write through the API
# succeeds, until a new leader shows and until workflows move again, and the elections nobody
# caused under a write load, per --raft-timeout, in one run.
echo
echo "controller failover (3 replicas, leader SIGKILLed):"
go run ./scripts/failoverload --kills "${BENCH_KILLS:-20}" --raft-timeout "${BENCH_RAFT_TIMEOUTS:-1s,500ms}"

# The real lab (make lab with the Kubernetes kit built): its wall time, init-to-Ready and
# join-to-Ready from the real API server, and the memory of each host and of the lab.
echo
echo "the real lab (make lab, kit already built):"
go test -run '^$' -bench 'BenchmarkRealLab' -benchtime "${BENCH_LAB_RUNS:-1}x" -timeout 60m ./deploy/lab/ | grep -E '^(Benchmark|ok|FAIL)'
