#!/usr/bin/env bash
# Regenerates the Go code next to the .proto files with the pinned local plugins, and the
# REST gateway's OpenAPI document (controller/rest/openapi.json) with scripts/openapigen.
set -euo pipefail
cd "$(dirname "$0")/.."
scripts/tools.sh
go build -o .cache/bin/protoc-gen-deckhand-openapi ./scripts/openapigen
export PATH="$PWD/.cache/bin:$PATH"
find proto -name '*.pb.go' -delete
buf generate
