#!/usr/bin/env bash
# Builds the three binaries into bin/.
set -euo pipefail
cd "$(dirname "$0")/.."
mkdir -p bin
go build -trimpath -o bin/ ./cmd/deckhand-controller ./cmd/deckhand-agent ./cmd/deckctl
echo "built: $(ls bin | tr '\n' ' ')"
