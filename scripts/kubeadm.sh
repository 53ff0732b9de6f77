#!/usr/bin/env bash
# Builds a real kubeadm from the Go module proxy into .cache/kubeadm/<version>/kubeadm and
# prints the binary's path as the last line of stdout (progress goes to stderr). Tests use
# it to check every kubeadm config and command Deckhand generates against the real tool.
#
# k8s.io/kubernetes cannot be `go install`ed: its go.mod replaces the staging modules
# (k8s.io/api, k8s.io/client-go, ...) with local paths. So this builds it from a scratch
# module that requires k8s.io/kubernetes and replaces every staging module named in that
# go.mod with its published v0.<minor>.<patch> release (see
# ../shared/env/REAL-COMPONENTS.md). About 130 s on 2 cores the first time.
#
# Idempotent: does nothing when the binary exists and reports the right version. Safe to
# run concurrently: one flock serializes builders, and the binary is built under a temporary
# name and renamed into place, so nobody ever runs a half-written file.
#
# Network: the Go module proxy only (GOPROXY without "direct"; checksums are verified
# through the proxy's sumdb endpoint).
set -euo pipefail
cd "$(dirname "$0")/.."

version=v1.33.13
dir=$PWD/.cache/kubeadm/$version
bin=$dir/kubeadm

current() { [ -x "$bin" ] && [ "$("$bin" version -o short 2>/dev/null)" = "$version" ]; }

if current; then
  echo "$bin"
  exit 0
fi

if ! command -v go >/dev/null; then
  echo "kubeadm.sh: go is not in PATH; it builds kubeadm $version from the Go module proxy" >&2
  exit 1
fi
mkdir -p "$dir/src"
exec 9>"$dir/.lock"
flock 9
if current; then # another process built it while we waited for the lock
  echo "$bin"
  exit 0
fi

# The proxy list without "direct" or "off", so nothing is fetched from a VCS host.
proxy=$(go env GOPROXY | tr ',|' '\n\n' | grep -Ev '^(direct|off)?$' | paste -sd, - || true)
export GOPROXY=${proxy:-https://proxy.golang.org}
export GOTOOLCHAIN=local GOWORK=off GOFLAGS=-mod=mod CGO_ENABLED=0

start=$(date +%s)
cd "$dir/src"
printf 'module deckhand.local/kubeadm-build\n\ngo 1.24.0\n\nrequire k8s.io/kubernetes %s\n' "$version" >go.mod
gomod=$(go mod download -json "k8s.io/kubernetes@$version" | sed -n 's/^[[:space:]]*"GoMod": "\(.*\)",\{0,1\}$/\1/p')
if [ ! -s "$gomod" ]; then
  echo "kubeadm.sh: could not download k8s.io/kubernetes@$version from $GOPROXY" >&2
  exit 1
fi
# Every "k8s.io/X => ./staging/src/k8s.io/X" replacement, single-line or in a block.
staging=$(awk '
  /^replace[[:space:]]*\(/ { inblock = 1; next }
  inblock && /^\)/         { inblock = 0; next }
  inblock                  { if ($2 == "=>" && $3 ~ /^\.\/staging\//) print $1; next }
  /^replace[[:space:]]/    { if ($3 == "=>" && $4 ~ /^\.\/staging\//) print $2 }
' "$gomod")
if [ -z "$staging" ]; then
  echo "kubeadm.sh: found no staging replacements in $gomod" >&2
  exit 1
fi
minor=${version#v1.}
{
  printf 'module deckhand.local/kubeadm-build\n\ngo 1.24.0\n\n'
  # k8s.io/kubernetes builds with this setting; keep its runtime behaviour.
  sed -n 's/^godebug /godebug /p' "$gomod"
  printf '\nrequire k8s.io/kubernetes %s\n\nreplace (\n' "$version"
  for m in $staging; do printf '\t%s => %s v0.%s\n' "$m" "$m" "$minor"; done
  printf ')\n'
} >go.mod
echo "kubeadm.sh: building kubeadm $version ($(echo "$staging" | wc -l) staging modules at v0.$minor) ..." >&2

major=${version#v}
major=${major%%.*}
minornum=${minor%%.*}
tmp=$(mktemp "$dir/kubeadm.tmp.XXXXXX")
trap 'rm -f "$tmp"' EXIT
go build -trimpath -o "$tmp" -ldflags "\
  -X k8s.io/component-base/version.gitVersion=$version \
  -X k8s.io/component-base/version.gitMajor=$major \
  -X k8s.io/component-base/version.gitMinor=$minornum" \
  k8s.io/kubernetes/cmd/kubeadm
got=$("$tmp" version -o short)
if [ "$got" != "$version" ]; then
  echo "kubeadm.sh: built binary reports $got, want $version" >&2
  exit 1
fi
chmod 0755 "$tmp"
mv -f "$tmp" "$bin"
trap - EXIT
echo "kubeadm.sh: built $bin in $(($(date +%s) - start)) s" >&2
echo "$bin"
