#!/usr/bin/env bash
# Regenerates the Go code next to the .proto files with the pinned local plugins.
set -euo pipefail
cd "$(dirname "$0")/.."
scripts/tools.sh
export PATH="$PWD/.cache/bin:$PATH"
find proto -name '*.pb.go' -delete
buf generate
