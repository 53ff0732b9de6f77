#!/usr/bin/env bash
# The whole test suite, always with the race detector.
set -euo pipefail
cd "$(dirname "$0")/.."
go test -race -count=1 -timeout 30m ./...
