#!/usr/bin/env bash
# Dependencies point one way (STYLE.md): the agent never links the controller, a store
# backend, raft or etcd's server (etcd's client library it may: snapshots and a restore's
# member add talk to a control plane's etcd); the store never imports the controller; proto
# imports nothing of ours.
set -euo pipefail
cd "$(dirname "$0")/.."
mod=github.com/deckhandhq/deckhand
fail=0
check() { # check PKG_PATTERN FORBIDDEN_REGEX WHY
  local pkgs deps
  pkgs=$(go list "$1" 2>/dev/null || true)
  [ -z "$pkgs" ] && return 0
  for p in $pkgs; do
    deps=$(go list -deps "$p" | grep -E "$2" || true)
    if [ -n "$deps" ]; then
      echo "dependency rule broken: $p imports $(echo $deps | tr '\n' ' ')($3)"
      fail=1
    fi
  done
}
agentbad="^$mod/(controller|store)(/|\$)|hashicorp/raft|go.etcd.io/raft|go.etcd.io/bbolt|go.etcd.io/etcd/(server|etcdutl|pkg|raft)/"
check "./agent/..." "$agentbad" "the agent never links the controller, a store, raft, bbolt or etcd's server"
check "./cmd/deckhand-agent" "$agentbad" "the agent never links the controller, a store, raft, bbolt or etcd's server"
check "./store/..." "^$mod/(controller|agent)(/|$)" "the store never imports the controller or agent"
check "./proto/..." "^$mod/(controller|agent|store|internal)(/|$)" "generated API code imports only other API packages"
check "./cmd/deckctl/..." "^$mod/(controller|agent|store)(/|$)|hashicorp/raft" "deckctl speaks only the public API"
check "./client/..." "^$mod/(controller|agent|store|scripts)(/|$)|^$mod/internal/testkit(/|$)|hashicorp/raft|go.etcd.io/etcd" "the Go client speaks only the public API and links no test kit"
check "./cmd/..." "^$mod/scripts(/|$)" "product binaries never link lab tooling (scripts/k8skit)"
check "./agent/..." "^$mod/scripts(/|$)" "product code never links lab tooling (scripts/k8skit)"
check "./controller/..." "^$mod/scripts(/|$)" "product code never links lab tooling (scripts/k8skit)"
check "./cmd/..." "^$mod/internal/testkit(/|$)" "product binaries never link the test kit (internal/testkit: test clusters, stores, etcd, networks, waits and the simulation)"
check "./agent/..." "^$mod/internal/testkit(/|$)" "product code never links the test kit"
check "./controller/..." "^$mod/internal/testkit(/|$)" "product code never links the test kit"
check "./store" "^$mod/internal/testkit(/|$)" "product code never links the test kit"
exit $fail
