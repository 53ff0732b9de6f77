#!/usr/bin/env bash
# Lab tooling: builds a real Kubernetes kit from the Go module proxy and prints the kit
# directory as the last line of stdout (progress goes to stderr, one line per binary).
#
#   scripts/k8s.sh [VERSION]     # default v1.33.13
#
# The kit is static (CGO_ENABLED=0) binaries:
#   kubeadm kubelet kubectl kube-apiserver kube-controller-manager kube-scheduler kube-proxy
#     (ONE go build, so the packages they share compile once),
#   etcd      (the tag kubeadm VERSION lists as DefaultEtcdVersion, e.g. 3.5.24 for v1.33),
#   etcdctl   (etcd's version, as registry.k8s.io/etcd images carry it; when the module proxy
#              does not serve that version, the newest etcdctl of the same minor it does),
#   etcdutl   (the same, for etcdutl snapshot restore),
#   coredns   (kubeadm's CoreDNSVersion, e.g. v1.12.0),
#   pause     (scripts/k8skit/pause, a tiny reaper; kubeadm's PauseVersion),
#   flanneld  (flannel, the version internal/podnet pins as FlannelVersion, for the flannel
#              pod network; without its Tencent Cloud backend, whose SDK module the proxy does
#              not serve, and its udp backend, which needs cgo),
#   install-conf (flannel's cmd/install_conf of that version: its image's /opt/bin/install-conf,
#              which its manifest's install-cni init container runs),
#   kube-flannel.yml (flannel's own manifest of that version, from its module: the lab's
#              "manifest of the user's"),
#   flannel-cni (the flannel CNI plugin that manifest installs: flannel-io/cni-plugin is not on
#              the proxy, so containernetworking/plugins v0.9.1, the last release with
#              plugins/meta/flannel; it speaks CNI up to 0.4.0),
#   cp        (scripts/k8skit/cp: the `cp -f SRC DST` that manifest's init containers run).
# scripts/k8skit packs them into images under the names kubeadm lists.
#
# Cache: ${DECKHAND_KIT_DIR:-${XDG_CACHE_HOME:-$HOME/.cache}/deckhand/kit}/
#   k8s-VERSION-etcd-V-coredns-V-GOVERSION/, outside the checkout, so a fresh clone reuses it.
# Idempotent: a complete kit (every binary present and reporting its version) returns at
# once. Safe to run concurrently: a flock per kit serializes builders, and binaries are
# built in a temporary directory and renamed into place.
#
# Cost: about 10 minutes the first time on 2 cores (GOCACHE grows by ~4 GB, the module
# cache by ~2.5 GB); ~580 MB of binaries. Network: the Go module proxy only.
set -euo pipefail
cd "$(dirname "$0")/.."
repo=$PWD

version=${1:-v1.33.13}
if ! [[ $version =~ ^v1\.([0-9]+)\.([0-9]+)$ ]]; then
  echo "k8s.sh: VERSION must look like v1.33.13, got \"$version\"" >&2
  exit 2
fi
minor=${BASH_REMATCH[1]}
patch=${BASH_REMATCH[2]}
if ! command -v go >/dev/null; then
  echo "k8s.sh: go is not in PATH; it builds Kubernetes $version from the Go module proxy" >&2
  exit 1
fi

# The proxy list without "direct" or "off", so nothing is fetched from a VCS host.
proxy=$(go env GOPROXY | tr ',|' '\n\n' | grep -Ev '^(direct|off)?$' | paste -sd, - || true)
export GOPROXY=${proxy:-https://proxy.golang.org}
export GOTOOLCHAIN=local GOWORK=off GOFLAGS=-mod=mod CGO_ENABLED=0
say() { echo "k8s.sh: $*" >&2; }

# kubeadm's own constants name the etcd, CoreDNS and pause versions it pulls.
k8sdir=$(go mod download -json "k8s.io/kubernetes@$version" | sed -n 's/^[[:space:]]*"Dir": "\(.*\)",\{0,1\}$/\1/p')
consts=$k8sdir/cmd/kubeadm/app/constants/constants.go
if [ ! -s "$consts" ]; then
  say "could not download k8s.io/kubernetes@$version from $GOPROXY (no $consts)"
  exit 1
fi
constant() { sed -n "s/^[[:space:]]*$1[[:space:]]*=[[:space:]]*\"\(.*\)\"/\1/p" "$consts" | head -1; }
etcd=$(constant DefaultEtcdVersion)
etcd=${etcd%-*}   # "3.5.24-0" -> "3.5.24"
coredns=$(constant CoreDNSVersion)
pause=$(constant PauseVersion)
if [ -z "$etcd" ] || [ -z "$coredns" ] || [ -z "$pause" ]; then
  say "could not read DefaultEtcdVersion/CoreDNSVersion/PauseVersion from $consts"
  exit 1
fi
flannel=$(sed -n 's/^const FlannelVersion = "\(.*\)"$/\1/p' internal/podnet/providers.go)
if [ -z "$flannel" ]; then
  say "could not read FlannelVersion from internal/podnet/providers.go"
  exit 1
fi
gover=$(go env GOVERSION)
root=${DECKHAND_KIT_DIR:-${XDG_CACHE_HOME:-$HOME/.cache}/deckhand/kit}
kit=$root/k8s-$version-etcd-v$etcd-coredns-$coredns-$gover

k8sbins="kubeadm kubelet kubectl kube-apiserver kube-controller-manager kube-scheduler kube-proxy"

# reports BIN: the version line the binary prints.
reports() {
  local b=$kit/$1
  [ -x "$b" ] || return 1
  case $1 in
  kubeadm) "$b" version -o short ;;
  kubectl) "$b" version --client 2>/dev/null | sed -n 's/^Client Version: //p' ;;
  etcd) "$b" --version | sed -n 's/^etcd Version: //p' ;;
  etcdctl) "$b" version | sed -n 's/^etcdctl version: //p' ;;
  etcdutl) "$b" version | sed -n 's/^etcdutl version: //p' ;;
  coredns) "$b" -version | sed -n 's/^CoreDNS-//p' | head -1 ;;
  pause) "$b" --version | sed -n 's/^pause //p' ;;
  flanneld) "$b" --version 2>&1 ;; # flanneld prints its version on stderr
  flannel-cni) CNI_COMMAND=VERSION "$b" </dev/null | sed -n 's/.*"supportedVersions":.*"\(0\.4\.0\)".*/\1/p' ;;
  cp) "$b" --version ;;
  install-conf) { "$b" 2>&1 || true; } | sed -n 's/^usage: .* <src> <dest>$/usage/p' ;; # it has no version flag
  *) "$b" --version | sed -n 's/^Kubernetes //p' ;;
  esac 2>/dev/null
}
want() {
  case $1 in
  etcd | etcdctl | etcdutl) echo "$etcd" ;;
  coredns) echo "${coredns#v}" ;;
  pause) echo "$pause" ;;
  flanneld) echo "$flannel" ;;
  flannel-cni) echo 0.4.0 ;;
  cp) echo "cp (deckhand lab kit) 1" ;;
  install-conf) echo usage ;;
  *) echo "$version" ;;
  esac
}
good() {
  local got
  got=$(reports "$1") || return 1
  case $1 in
  etcdctl | etcdutl) [[ $got == "${etcd%.*}".* ]] ;; # etcd's minor: see the etcdctl build below
  *) [ "$got" = "$(want "$1")" ] ;;
  esac
}
complete() {
  local b
  for b in $k8sbins etcd etcdctl etcdutl coredns pause flanneld install-conf flannel-cni cp; do good "$b" || return 1; done
  grep -q "image: ghcr.io/flannel-io/flannel:$flannel\$" "$kit/kube-flannel.yml" 2>/dev/null || return 1
}

if complete; then
  echo "$kit"
  exit 0
fi
mkdir -p "$kit/src"
exec 9>"$kit/.lock"
if ! flock -n 9; then
  say "another k8s.sh is building $kit; waiting for it"
  flock 9
fi
if complete; then # another process built it while we waited for the lock
  echo "$kit"
  exit 0
fi

tmp=$(mktemp -d "$kit/.build.XXXXXX")
trap 'rm -rf "$tmp"' EXIT
total=$(date +%s)
say "building the Kubernetes $version kit (etcd $etcd, CoreDNS $coredns, pause $pause) into $kit"
say "about 10 minutes the first time on 2 cores; later runs reuse the kit"

place() { # place BIN [VERSION]: check the freshly built binary reports its version, then rename it in.
  local got w=${2:-$(want "$1")}
  got=$(kit=$tmp reports "$1" || true)
  if [ "$got" != "$w" ]; then
    say "built $1 reports \"$got\", want \"$w\""
    exit 1
  fi
  chmod 0755 "$tmp/$1"
  mv -f "$tmp/$1" "$kit/$1"
  say "$1 $w ready ($(($(stat -c %s "$kit/$1") / 1048576)) MiB, $(($(date +%s) - start)) s)"
}

# --- Kubernetes: a scratch module requiring k8s.io/kubernetes with every staging module
# replaced by its published v0.<minor>.<patch> (k8s.io/kubernetes's go.mod replaces them
# with local paths, so it cannot be built from the proxy as it is).
missing=""
for b in $k8sbins; do good "$b" || missing="$missing $b"; done
if [ -n "$missing" ]; then
  start=$(date +%s)
  gomod=$k8sdir/go.mod
  staging=$(awk '
    /^replace[[:space:]]*\(/ { inblock = 1; next }
    inblock && /^\)/         { inblock = 0; next }
    inblock                  { if ($2 == "=>" && $3 ~ /^\.\/staging\//) print $1; next }
    /^replace[[:space:]]/    { if ($3 == "=>" && $4 ~ /^\.\/staging\//) print $2 }
  ' "$gomod")
  if [ -z "$staging" ]; then
    say "found no staging replacements in $gomod"
    exit 1
  fi
  mkdir -p "$kit/src/k8s"
  {
    printf 'module deckhand.local/k8s-kit\n\ngo 1.24.0\n\n'
    sed -n 's/^godebug /godebug /p' "$gomod" # keep k8s.io/kubernetes's runtime behaviour
    printf '\nrequire k8s.io/kubernetes %s\n\nreplace (\n' "$version"
    for m in $staging; do printf '\t%s => %s v0.%s.%s\n' "$m" "$m" "$minor" "$patch"; done
    printf ')\n'
  } >"$kit/src/k8s/go.mod"
  say "building$missing in one go build ($(echo "$staging" | wc -l) staging modules at v0.$minor.$patch; about 6-10 minutes cold, 20 s warm) ..."
  pkgs=""
  for b in $missing; do pkgs="$pkgs k8s.io/kubernetes/cmd/$b"; done
  v=k8s.io/component-base/version
  # shellcheck disable=SC2086
  (cd "$kit/src/k8s" && go build -trimpath -o "$tmp/" -ldflags "-s -w \
    -X $v.gitVersion=$version -X $v.gitMajor=1 -X $v.gitMinor=$minor \
    -X $v.gitTreeState=clean -X $v.buildDate=$(date -u +%Y-%m-%dT%H:%M:%SZ)" $pkgs)
  for b in $missing; do place "$b"; done
fi

# --- etcd: the server module's go.mod has replace directives, so a scratch module too.
if ! good etcd; then
  start=$(date +%s)
  say "building etcd $etcd (about 30 s after the Kubernetes build, 5 minutes alone) ..."
  mkdir -p "$kit/src/etcd"
  printf 'module deckhand.local/etcd-kit\n\ngo 1.24.0\n\nrequire go.etcd.io/etcd/server/v3 v%s\n' "$etcd" >"$kit/src/etcd/go.mod"
  (cd "$kit/src/etcd" && go build -trimpath -ldflags "-s -w" -o "$tmp/etcd" go.etcd.io/etcd/server/v3)
  place etcd
fi

# --- etcdctl and etcdutl, which registry.k8s.io/etcd images carry beside etcd (kubeadm's
# docs check and remove members with etcdctl through `kubectl exec`; a Deckhand restore runs
# `etcdutl snapshot restore` from the cluster's own etcd image). Their go.mods have replace
# directives too, so a scratch module each: requiring one beside etcd would move etcd's
# dependencies when the versions differ. A proxy may not serve etcd's own version of them (a
# mirror that holds only some versions): then the newest of etcd's minor it lists, which
# speaks the same API and reads the same data files.
etcd_tool() { # etcd_tool NAME: build go.etcd.io/etcd/NAME/v3 of etcd's version (or minor)
  local name=$1 v=$etcd mod="go.etcd.io/etcd/$1/v3"
  start=$(date +%s)
  if ! go mod download -json "$mod@v$v" >/dev/null 2>&1; then
    v=$(go list -m -versions "$mod" 2>/dev/null | tr ' ' '\n' |
      grep -E "^v${etcd%.*}\.[0-9]+\$" | sort -V | tail -1 || true)
    v=${v#v}
    if [ -z "$v" ]; then
      say "$GOPROXY serves no $mod v$etcd nor any v${etcd%.*}.x"
      exit 1
    fi
    say "$GOPROXY does not serve $mod v$etcd; building v$v, the newest v${etcd%.*}.x it lists"
  fi
  say "building $name $v (about 1 minute the first time, seconds once GOCACHE has it) ..."
  mkdir -p "$kit/src/$name"
  printf 'module deckhand.local/%s-kit\n\ngo 1.24.0\n\nrequire %s v%s\n' "$name" "$mod" "$v" >"$kit/src/$name/go.mod"
  (cd "$kit/src/$name" && go build -trimpath -ldflags "-s -w" -o "$tmp/$name" "$mod")
  place "$name" "$v"
}
good etcdctl || etcd_tool etcdctl
good etcdutl || etcd_tool etcdutl

# --- CoreDNS installs directly from the proxy (its go.mod has no replaces).
if ! good coredns; then
  start=$(date +%s)
  say "building CoreDNS $coredns (about 3 minutes cold) ..."
  GOFLAGS= GOBIN=$tmp go install -trimpath -ldflags "-s -w" "github.com/coredns/coredns@$coredns"
  place coredns
fi

# --- pause: lab tooling in this repository.
if ! good pause; then
  start=$(date +%s)
  say "building pause $pause ..."
  (cd "$repo" && GOFLAGS= go build -trimpath -ldflags "-s -w -X main.version=$pause" -o "$tmp/pause" ./scripts/k8skit/pause)
  place pause
fi

# --- flanneld: flannel's main package as it is, in a scratch module, less two backend
# imports: tencentvpc (github.com/tencentcloud/tencentcloud-sdk-go/tencentcloud/vpc is not on
# the proxy) and udp (cgo; flannel's debugging backend). vxlan, host-gw, ipip, wireguard and
# ipsec stay.
if ! good flanneld; then
  start=$(date +%s)
  say "building flanneld $flannel (about 90 s cold) ..."
  fldir=$(go mod download -json "github.com/flannel-io/flannel@$flannel" | sed -n 's/^[[:space:]]*"Dir": "\(.*\)",\{0,1\}$/\1/p')
  if [ ! -s "$fldir/main.go" ]; then
    say "could not download github.com/flannel-io/flannel@$flannel from $GOPROXY"
    exit 1
  fi
  mkdir -p "$kit/src/flannel"
  grep -v -e '"github.com/flannel-io/flannel/pkg/backend/tencentvpc"' -e '"github.com/flannel-io/flannel/pkg/backend/udp"' "$fldir/main.go" >"$kit/src/flannel/main.go"
  printf 'module deckhand.local/flannel-kit\n\ngo 1.24.0\n\nrequire github.com/flannel-io/flannel %s\n' "$flannel" >"$kit/src/flannel/go.mod"
  (cd "$kit/src/flannel" && go build -trimpath -ldflags "-s -w -X github.com/flannel-io/flannel/pkg/version.Version=$flannel" -o "$tmp/flanneld" .)
  place flanneld
fi
if ! good install-conf; then
  start=$(date +%s)
  mkdir -p "$kit/src/flannel"
  printf 'module deckhand.local/flannel-kit\n\ngo 1.24.0\n\nrequire github.com/flannel-io/flannel %s\n' "$flannel" >"$kit/src/flannel/go.mod"
  [ -s "$kit/src/flannel/main.go" ] || printf 'package main\n\nfunc main() {}\n' >"$kit/src/flannel/main.go"
  (cd "$kit/src/flannel" && go build -trimpath -ldflags "-s -w" -o "$tmp/install-conf" github.com/flannel-io/flannel/cmd/install_conf)
  place install-conf
fi

# --- flannel's own manifest, and what it installs on each node.
if ! grep -q "image: ghcr.io/flannel-io/flannel:$flannel\$" "$kit/kube-flannel.yml" 2>/dev/null; then
  fldir=$(go mod download -json "github.com/flannel-io/flannel@$flannel" | sed -n 's/^[[:space:]]*"Dir": "\(.*\)",\{0,1\}$/\1/p')
  cp "$fldir/Documentation/kube-flannel.yml" "$tmp/kube-flannel.yml"
  chmod 0644 "$tmp/kube-flannel.yml"
  mv -f "$tmp/kube-flannel.yml" "$kit/kube-flannel.yml"
  say "kube-flannel.yml of flannel $flannel ready"
fi
if ! good flannel-cni; then
  start=$(date +%s)
  say "building the flannel CNI plugin (containernetworking/plugins v0.9.1) ..."
  mkdir -p "$kit/src/flannel-cni"
  printf 'module deckhand.local/flannel-cni-kit\n\ngo 1.24.0\n\nrequire github.com/containernetworking/plugins v0.9.1\n' >"$kit/src/flannel-cni/go.mod"
  (cd "$kit/src/flannel-cni" && go build -trimpath -ldflags "-s -w" -o "$tmp/flannel-cni" github.com/containernetworking/plugins/plugins/meta/flannel)
  place flannel-cni
fi
if ! good cp; then
  start=$(date +%s)
  (cd "$repo" && GOFLAGS= go build -trimpath -ldflags "-s -w" -o "$tmp/cp" ./scripts/k8skit/cp)
  place cp
fi

complete || { say "the kit in $kit is incomplete after the build"; exit 1; }
say "kit complete in $(($(date +%s) - total)) s: $kit"
echo "$kit"
