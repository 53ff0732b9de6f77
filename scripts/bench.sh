#!/usr/bin/env bash
# Benchmarks; record the figures in docs/benchmarks.md with the machine they ran on.
set -euo pipefail
cd "$(dirname "$0")/.."
# The load tools are built as scripts/build.sh builds the binaries (the VCS revision stamped):
# their simulated agents report the agent version the controller's rules compare with its own.
gobuild() { go build -trimpath -buildvcs=auto "$@"; }
echo "machine: $(nproc) cores, $(awk '/MemTotal/ {printf "%.0f GiB", $2/1048576}' /proc/meminfo), $(grep -m1 'model name' /proc/cpuinfo | cut -d: -f2 | sed 's/^ //'), $(uname -sr), $(go version | cut -d' ' -f3)"
# raftstore (3 replicas, in process) against real etcd (3 members, Debian's etcd-server), in
# one run: the same writes, 1 and 64 concurrent writers.
go test -run '^$' -bench 'BenchmarkWrite' -benchtime "${BENCH_WRITES:-5000}x" ./store/raftstore/ ./store/etcdstore/ | grep -E '^(pkg:|Benchmark|ok|FAIL)'

# Control-plane image pull on real containerd from a real registry: CRI (the images task)
# against ctr, in one run.
go test -run '^$' -bench 'BenchmarkPullControlPlane' -benchtime "${BENCH_PULLS:-5}x" ./agent/images/ | grep -E '^(Benchmark|ok|FAIL)'

# Agents per controller: one controller process, N enrolled mTLS sessions with heartbeats
# from a load generator process; the controller's RSS (at the end and the peak, read each
# second) and mean CPU over a minute while they run, and the top
# entries of its CPU and heap profiles (kept in bin/profiles/agentload for go tool pprof).
scripts/build.sh >/dev/null
gobuild -o bin/agentload ./scripts/agentload
echo
echo "agents per controller (1 replica, heartbeat 2s):"
bin/agentload --controller-bin bin/deckhand-controller --sessions "${BENCH_SESSIONS:-1000,5000,10000,20000}" --window "${BENCH_WINDOW:-60s}" \
  --profile-dir "${BENCH_PROFILE_DIR:-bin/profiles/agentload}"

# Fan-out: one controller, 1,000 simulated agents answering at once; `ping` on all of them
# through TaskService/RunTasks, 5 times per concurrency: the wall time from the request to
# every result stored, the per-node task time (p50/p99) and the controller's CPU per run.
gobuild -o bin/fanoutload ./scripts/fanoutload
echo
echo "fan-out to simulated agents (1 replica):"
bin/fanoutload --controller-bin bin/deckhand-controller --nodes "${BENCH_FANOUTLOAD_NODES:-1000}" --concurrency "${BENCH_FANOUTLOAD_CONCURRENCY:-100,1000}" --runs "${BENCH_FANOUTLOAD_RUNS:-5}"

# A 500-node apply against simulated agents whose every task takes a fixed time, then an
# upgrade of that cluster in batches: the workflow engine's overhead as the wall time over
# the ideal (the apply's own steps scheduled with the engine's admission, every task T and
# nothing else costing; the upgrade's from its formula), where a step's time went, and the
# controller's peak RSS and CPU per step.
# Each run prints its ratio to the ideal, the controller's CPU-seconds per step, and the
# machine's load average at its start and end (the machine may be shared). Each apply is
# measured BENCH_APPLY_RUNS times (3), every time on a fresh controller and agents, and the
# medians close its output: one 4-second apply on this 2-core machine swings by a tenth.
gobuild -o bin/applyload ./scripts/applyload
echo
echo "apply and upgrade workflows against simulated agents (1 replica):"
bin/applyload --controller-bin bin/deckhand-controller --nodes "${BENCH_APPLY_NODES:-500}" \
  --concurrency "${BENCH_APPLY_CONCURRENCY:-50}" --task-time "${BENCH_TASK_TIME:-200ms}" \
  --upgrade-to "${BENCH_UPGRADE_TO:-v1.34.12}" --max-unavailable "${BENCH_MAX_UNAVAILABLE:-10%}" \
  --runs "${BENCH_APPLY_RUNS:-3}"
echo
echo "the same apply with every lane at once (concurrency = nodes):"
bin/applyload --controller-bin bin/deckhand-controller --nodes "${BENCH_APPLY_NODES:-500}" \
  --concurrency "${BENCH_APPLY_NODES:-500}" --task-time "${BENCH_TASK_TIME:-200ms}" \
  --runs "${BENCH_APPLY_RUNS:-3}"

# Adding one node to a big cluster: deckctl join's workflow into a recorded 1,000-node
# cluster against the same join into a 3-node one, and the tasks it sends to every host.
# flannel routes between nodes itself, so a join touches only the joining node and the
# control plane that mints its token; the bridge provider (host routes) gives every host
# a routes task (see docs/benchmarks.md).
echo
echo "one join into a recorded cluster (1 replica, simulated agents):"
bin/applyload --controller-bin bin/deckhand-controller --join-into "${BENCH_JOIN_INTO:-1000,3}" \
  --task-time "${BENCH_TASK_TIME:-200ms}" --provider flannel
bin/applyload --controller-bin bin/deckhand-controller --join-into "${BENCH_JOIN_INTO_BRIDGE:-1000,3}" \
  --task-time "${BENCH_TASK_TIME:-200ms}" --provider bridge

# Controller failover: three controller processes, the raft leader SIGKILLed again and
# again while simulated agents run dry-run workflows; the time until a write through the API
# succeeds, until a new leader shows and until workflows move again, and the elections nobody
# caused under a write load, per --raft-timeout, in one run.
echo
echo "controller failover (3 replicas, leader SIGKILLed):"
go run ./scripts/failoverload --kills "${BENCH_KILLS:-20}" --raft-timeout "${BENCH_RAFT_TIMEOUTS:-1s,500ms}"

# Fan-out side by side with Ansible: 100 hosts in network namespaces (10.250.100.0/24 on the
# bridge dhfan0), each with a real deckhand-agent and a real sshd; deckctl task run --nodes all
# ping|facts against ansible all -m ping|setup|command -a true (forks 50, pipelining), median
# of 3 runs each after a first run, per host and ratios, in one run. Needs root and
# Debian's ansible-core and openssh-server (apt-get install -y ansible-core openssh-server):
# the tool says so and stops when they are missing.
gobuild -o bin/fanoutbench ./scripts/fanoutbench
echo
echo "fan-out against Ansible (${BENCH_FANOUT_HOSTS:-100} hosts, each a real deckhand-agent and a real sshd):"
bin/fanoutbench --hosts "${BENCH_FANOUT_HOSTS:-100}" --runs "${BENCH_FANOUT_RUNS:-3}"

# The real lab (make lab with the Kubernetes kit built): its wall time, init-to-Ready and
# join-to-Ready from the real API server, and the memory of each host and of the lab.
echo
echo "the real lab (make lab, kit already built):"
go test -run '^$' -bench 'BenchmarkRealLab' -benchtime "${BENCH_LAB_RUNS:-1}x" -timeout 60m ./deploy/lab/ | grep -E '^(Benchmark|ok|FAIL)'
