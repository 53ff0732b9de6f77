#!/usr/bin/env bash
# Fails when generated code (the Go next to the protos, the REST gateway's OpenAPI document) is
# stale, go.mod files are untidy, or any lint fails.
set -euo pipefail
cd "$(dirname "$0")/.."
scripts/generate.sh
generated=(proto controller/rest/openapi.json)
if [ -n "$(git status --porcelain -- "${generated[@]}")" ]; then
  echo "generated code is not current: run 'make generate' and commit:"
  git status --porcelain -- "${generated[@]}"
  git --no-pager diff --stat -- "${generated[@]}"
  exit 1
fi
# No breaking change to the protos (buf.yaml's FILE rule: the API, the agent protocol and the
# stored records) against where this branch left main, or on main against the commit before.
if base=$(git merge-base HEAD main 2>/dev/null) && [ "$base" = "$(git rev-parse HEAD)" ]; then
  base=$(git rev-parse --verify -q HEAD~1 || true)
fi
if [ -n "${base:-}" ]; then
  if ! PATH="$PWD/.cache/bin:$PATH" buf breaking proto --against ".git#ref=$base,subdir=proto"; then
    echo "a proto change above breaks compatibility with $base: add new fields and messages instead of renaming, renumbering or removing (reserve what goes)"
    exit 1
  fi
fi
# The embedded pod-network presets are what scripts/presets.sh renders from the module proxy.
presets=$(mktemp -d)
trap 'rm -rf "$presets"' EXIT
scripts/presets.sh "$presets" >/dev/null
for f in internal/podnet/presets/*.yaml; do
  if ! cmp -s "$f" "$presets/$(basename "$f")"; then
    echo "$f is not what scripts/presets.sh renders: run 'make presets' and commit"; exit 1
  fi
done
for m in . tools scripts/presets; do
  (cd "$m" && cp go.mod /tmp/verify.go.mod && cp go.sum /tmp/verify.go.sum && go mod tidy &&
    if ! cmp -s go.mod /tmp/verify.go.mod || ! cmp -s go.sum /tmp/verify.go.sum; then
      echo "go.mod/go.sum in $m is not tidy: run 'go mod tidy' there and commit"; git --no-pager diff -- go.mod go.sum; exit 1
    fi)
done
scripts/lint.sh
echo "verify: ok"
