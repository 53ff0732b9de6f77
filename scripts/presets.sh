#!/usr/bin/env bash
# Renders the pod-network presets Deckhand embeds (internal/podnet/presets) from the Go
# module proxy: Cilium's Helm chart rendered by Helm's own engine (scripts/presets, a
# module of its own, so Helm never links into Deckhand) and Calico's release manifest.
# Run after changing a preset's version or values; internal/podnet's tests check the
# result (it parses, its images are the declared ones, its ports are opened), and
# `make verify` renders them again into a scratch directory (scripts/presets.sh DIR) and
# compares.
set -euo pipefail
cd "$(dirname "$0")/.."

# The versions: internal/podnet/presets.go declares the same (CiliumVersion,
# CalicoVersion). Calico's repository is on the proxy only as this pseudo-version of its
# release-v3.28 branch, whose manifests are v3.28.5's.
CILIUM_MODULE=github.com/cilium/cilium@v1.18.4
CALICO_MODULE=github.com/projectcalico/calico@v1.11.0-cni-plugin.0.20250813170300-a0db560f0520

export GOPROXY="${GOPROXY:-https://proxy.golang.org}" GOFLAGS=-mod=mod
dir() { (cd scripts/presets && go mod download -json "$1") | sed -n 's/^\s*"Dir": "\(.*\)",$/\1/p'; }
cilium=$(dir "$CILIUM_MODULE")
calico=$(dir "$CALICO_MODULE")
[ -d "$cilium" ] && [ -d "$calico" ] || { echo "presets: could not download $CILIUM_MODULE and $CALICO_MODULE" >&2; exit 1; }

bin=$(mktemp -d)
trap 'rm -rf "$bin"' EXIT
(cd scripts/presets && go build -o "$bin/presets" .)
out=${1:-internal/podnet/presets}
"$bin/presets" -cilium "$cilium" -calico "$calico" -out "$out"
