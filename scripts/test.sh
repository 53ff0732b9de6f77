#!/usr/bin/env bash
# The whole test suite, always with the race detector. The real-cluster tests (deploy/lab)
# run last and alone: a real control plane keeps both cores of a small machine busy, which
# would starve the in-process raft clusters' sub-second timeouts of the other packages.
set -uo pipefail
cd "$(dirname "$0")/.."
rc=0
go test -race -count=1 -timeout 20m $(go list ./... | grep -v '/deploy/lab$') || rc=1
go test -race -count=1 -timeout 50m ./deploy/lab/ || rc=1
exit $rc
