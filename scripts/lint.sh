#!/usr/bin/env bash
# Static checks: buf lint and format, gofmt, go vet, and the dependency rules.
set -euo pipefail
cd "$(dirname "$0")/.."
scripts/tools.sh
export PATH="$PWD/.cache/bin:$PATH"
buf lint
buf format --diff --exit-code
bad=$(gofmt -l $(git ls-files '*.go' | grep -v '\.pb\.go$') || true)
if [ -n "$bad" ]; then
  echo "gofmt would change:"; echo "$bad"; exit 1
fi
go vet ./...
scripts/lint-deps.sh
