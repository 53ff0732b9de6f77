#!/usr/bin/env bash
# Benchmarks; record the figures in docs/benchmarks.md with the machine they ran on.
set -euo pipefail
cd "$(dirname "$0")/.."
echo "machine: $(nproc) cores, $(awk '/MemTotal/ {printf "%.0f GiB", $2/1048576}' /proc/meminfo), $(grep -m1 'model name' /proc/cpuinfo | cut -d: -f2 | sed 's/^ //'), $(uname -sr), $(go version | cut -d' ' -f3)"
go test -run '^$' -bench 'BenchmarkWrite' -benchtime "${BENCH_WRITES:-5000}x" ./store/raftstore/ | grep -E '^(Benchmark|ok|FAIL)'
