#!/usr/bin/env bash
# Installs Deckhand on a host from local files only (nothing is downloaded): the binaries
# from a directory, the systemd unit and its settings file. deploy/install.sh --help says how.
set -euo pipefail
here=$(cd "$(dirname "$0")" && pwd)
usage() {
  cat <<'EOF_USAGE'
Installs a Deckhand controller or agent on this host from local files (nothing is
downloaded): the binaries, the systemd unit and its settings file in /etc/default.

  deploy/install.sh controller --listen HOST:PORT [--bin-dir DIR]
      [--join HOST:PORT,... --token-file FILE --ca-cert-hash sha256:...] [--args "..."] [--no-start]
  deploy/install.sh agent --controllers HOST:PORT,... [--bin-dir DIR]
      [--token-file FILE --ca-cert-hash sha256:...] [--args "..."] [--no-start]

  --listen         the controller's address on this host, which other hosts dial (required)
  --controllers    every controller's address (required for an agent)
  --bin-dir        where deckhand-controller, deckhand-agent and deckctl are (default: the
                   build's bin/ beside deploy/, else this script's directory)
  --join           running controllers to join (a new replica; with --token-file and
                   --ca-cert-hash from deckctl token create --purpose controller)
  --token-file     the bootstrap token, copied 0600 under /etc/deckhand
  --ca-cert-hash   sha256:<hex> pin of the controller CA (printed by deckctl token create)
  --args           more flags for the daemon, written to its settings file
  --no-start       install only; do not run systemctl enable --now

DESTDIR installs under another root (packaging, tests) and never starts anything.
EOF_USAGE
}
fail() { echo "install.sh: $*" >&2; exit 1; }
case ${1:-} in
  -h | --help) usage; exit 0 ;;
  "") usage >&2; exit 2 ;;
esac
role=$1; shift
case $role in controller | agent) ;; *) echo "install.sh: role $role: use controller or agent (see --help)" >&2; exit 2 ;; esac
bin=""; start=1; listen=""; join=""; controllers=""; token_file=""; hash=""; extra=""
while [ $# -gt 0 ]; do
  case $1 in
    --bin-dir | --listen | --join | --controllers | --token-file | --ca-cert-hash | --args)
      [ $# -ge 2 ] || { echo "install.sh: $1 needs a value (see --help)" >&2; exit 2; } ;;
  esac
  case $1 in
    --bin-dir) bin=$2; shift 2 ;;
    --listen) listen=$2; shift 2 ;;
    --join) join=$2; shift 2 ;;
    --controllers) controllers=$2; shift 2 ;;
    --token-file) token_file=$2; shift 2 ;;
    --ca-cert-hash) hash=$2; shift 2 ;;
    --args) extra=$2; shift 2 ;;
    --no-start) start=0; shift ;;
    -h | --help) usage; exit 0 ;;
    *) echo "install.sh: unknown option $1 (see --help)" >&2; exit 2 ;;
  esac
done
root=${DESTDIR:-}
if [ -z "$bin" ]; then
  for d in "$here/../bin" "$here"; do [ -x "$d/deckhand-$role" ] && { bin=$d; break; }; done
fi
[ -n "$bin" ] && [ -x "$bin/deckhand-$role" ] || fail "no deckhand-$role in ${bin:-$here/../bin or $here}: build with make build, or pass --bin-dir DIR"

# Check everything before touching the host.
if [ "$role" = controller ]; then
  [ -n "$listen" ] || fail "controller needs --listen HOST:PORT (this host's address; other hosts dial it)"
  if [ -n "$join" ] && { [ -z "$token_file" ] || [ -z "$hash" ]; }; then
    fail "--join needs --token-file and --ca-cert-hash (deckctl token create --purpose controller)"
  fi
else
  [ -n "$controllers" ] || fail "agent needs --controllers HOST:PORT,... (every controller)"
  if [ -n "$token_file" ] && [ -z "$hash" ]; then
    fail "--token-file needs --ca-cert-hash (printed by deckctl token create)"
  fi
fi
[ -z "$token_file" ] || [ -r "$token_file" ] || fail "--token-file $token_file is not readable"

install -d -m 0755 "$root/usr/local/bin" "$root/etc/systemd/system" "$root/etc/default"
install -m 0755 "$bin/deckhand-$role" "$root/usr/local/bin/deckhand-$role"
[ -x "$bin/deckctl" ] && install -m 0755 "$bin/deckctl" "$root/usr/local/bin/deckctl"
install -m 0644 "$here/systemd/deckhand-$role.service" "$root/etc/systemd/system/deckhand-$role.service"

defaults=$root/etc/default/deckhand-$role
if [ "$role" = controller ]; then
  args=""
  if [ -n "$join" ]; then
    install -d -m 0700 "$root/etc/deckhand"
    install -m 0600 "$token_file" "$root/etc/deckhand/controller-token"
    args="--join $join --token-file /etc/deckhand/controller-token --ca-cert-hash $hash"
  fi
  umask 077
  printf '# Written by deploy/install.sh; see deploy/examples/deckhand-controller.default.\nDECKHAND_LISTEN=%s\nDECKHAND_CONTROLLER_ARGS="%s"\n' "$listen" "$args $extra" >"$defaults"
else
  args=""
  if [ -n "$token_file" ]; then
    install -d -m 0700 "$root/etc/deckhand"
    install -m 0600 "$token_file" "$root/etc/deckhand/agent-token"
    args="--token-file /etc/deckhand/agent-token --ca-cert-hash $hash"
  fi
  umask 077
  printf '# Written by deploy/install.sh; see deploy/examples/deckhand-agent.default.\nDECKHAND_CONTROLLERS="%s"\nDECKHAND_AGENT_ARGS="%s"\n' "$controllers" "$args $extra" >"$defaults"
fi
echo "installed deckhand-$role into $root/usr/local/bin, its unit into $root/etc/systemd/system and its settings into $defaults"
if [ "$start" = 1 ] && [ -z "$root" ]; then
  systemctl daemon-reload
  systemctl enable --now "deckhand-$role"
  echo "started: systemctl status deckhand-$role"
fi
