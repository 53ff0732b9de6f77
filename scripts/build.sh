#!/usr/bin/env bash
# Builds the three binaries into bin/.
set -euo pipefail
cd "$(dirname "$0")/.."
mkdir -p bin
# Two labs (or a lab and a test) may build at once: one at a time writes bin/.
exec 9>bin/.build.lock
flock 9
# -buildvcs=auto stamps the VCS revision (--version, deckctl version) even where GOFLAGS turns
# it off. In a linked git worktree (.git is a file) Go finds no repository: no revision then.
go build -trimpath -buildvcs=auto -o bin/ ./cmd/deckhand-controller ./cmd/deckhand-agent ./cmd/deckctl
echo "built: $(ls bin | tr '\n' ' ')"
