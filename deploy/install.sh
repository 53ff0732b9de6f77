#!/usr/bin/env bash
# Installs Deckhand on a host from local files only (nothing is downloaded): the binaries
# from a directory (default: ./bin of a build, or the directory of this script), the
# systemd unit and its settings file.
#
#   deploy/install.sh controller --bin-dir bin [--listen 10.0.0.11:7400] [--join ...]
#   deploy/install.sh agent --bin-dir bin --controllers 10.0.0.11:7400,... \
#       --token-file token --ca-cert-hash sha256:...
#
# DESTDIR installs under another root (packaging, tests); --no-start skips systemctl.
set -euo pipefail
here=$(cd "$(dirname "$0")" && pwd)
usage() { sed -n '2,11p' "$0" | sed 's/^# \{0,1\}//'; exit 2; }
[ $# -ge 1 ] || usage
role=$1; shift
case $role in controller | agent) ;; *) echo "install.sh: role $role: use controller or agent" >&2; exit 2 ;; esac
bin=""; start=1; listen=""; join=""; controllers=""; token_file=""; hash=""; extra=""
while [ $# -gt 0 ]; do
  case $1 in
    --bin-dir) bin=$2; shift 2 ;;
    --listen) listen=$2; shift 2 ;;
    --join) join=$2; shift 2 ;;
    --controllers) controllers=$2; shift 2 ;;
    --token-file) token_file=$2; shift 2 ;;
    --ca-cert-hash) hash=$2; shift 2 ;;
    --args) extra=$2; shift 2 ;;
    --no-start) start=0; shift ;;
    -h | --help) usage ;;
    *) echo "install.sh: unknown option $1 (see --help)" >&2; exit 2 ;;
  esac
done
root=${DESTDIR:-}
if [ -z "$bin" ]; then
  for d in "$here/../bin" "$here"; do [ -x "$d/deckhand-$role" ] && { bin=$d; break; }; done
fi
[ -n "$bin" ] && [ -x "$bin/deckhand-$role" ] || { echo "install.sh: no deckhand-$role in ${bin:-bin/}: build with make build, or pass --bin-dir" >&2; exit 1; }

# Check everything before touching the host.
if [ "$role" = controller ]; then
  [ -n "$listen" ] || { echo "install.sh: controller needs --listen HOST:PORT (this host's address; other hosts dial it)" >&2; exit 1; }
  if [ -n "$join" ] && { [ -z "$token_file" ] || [ -z "$hash" ]; }; then
    echo "install.sh: --join needs --token-file and --ca-cert-hash (deckctl token create --purpose controller)" >&2; exit 1
  fi
else
  [ -n "$controllers" ] || { echo "install.sh: agent needs --controllers HOST:PORT,... (every controller)" >&2; exit 1; }
  if [ -n "$token_file" ] && [ -z "$hash" ]; then
    echo "install.sh: --token-file needs --ca-cert-hash (printed by deckctl token create)" >&2; exit 1
  fi
fi
[ -z "$token_file" ] || [ -r "$token_file" ] || { echo "install.sh: --token-file $token_file is not readable" >&2; exit 1; }

install -d -m 0755 "$root/usr/local/bin" "$root/etc/systemd/system" "$root/etc/default"
install -m 0755 "$bin/deckhand-$role" "$root/usr/local/bin/deckhand-$role"
[ -x "$bin/deckctl" ] && install -m 0755 "$bin/deckctl" "$root/usr/local/bin/deckctl"
install -m 0644 "$here/systemd/deckhand-$role.service" "$root/etc/systemd/system/deckhand-$role.service"

defaults=$root/etc/default/deckhand-$role
if [ "$role" = controller ]; then
  [ -n "$listen" ] || { echo "install.sh: controller needs --listen HOST:PORT (this host's address; other hosts dial it)" >&2; exit 1; }
  args=""
  if [ -n "$join" ]; then
    [ -n "$token_file" ] && [ -n "$hash" ] || { echo "install.sh: --join needs --token-file and --ca-cert-hash (deckctl token create --purpose controller)" >&2; exit 1; }
    install -d -m 0700 "$root/etc/deckhand"
    install -m 0600 "$token_file" "$root/etc/deckhand/controller-token"
    args="--join $join --token-file /etc/deckhand/controller-token --ca-cert-hash $hash"
  fi
  umask 077
  printf '# Written by deploy/install.sh; see deploy/examples/deckhand-controller.default.\nDECKHAND_LISTEN=%s\nDECKHAND_CONTROLLER_ARGS="%s"\n' "$listen" "$args $extra" >"$defaults"
else
  [ -n "$controllers" ] || { echo "install.sh: agent needs --controllers HOST:PORT,... (every controller)" >&2; exit 1; }
  args=""
  if [ -n "$token_file" ]; then
    [ -n "$hash" ] || { echo "install.sh: --token-file needs --ca-cert-hash (printed by deckctl token create)" >&2; exit 1; }
    install -d -m 0700 "$root/etc/deckhand"
    install -m 0600 "$token_file" "$root/etc/deckhand/agent-token"
    args="--token-file /etc/deckhand/agent-token --ca-cert-hash $hash"
  fi
  umask 077
  printf '# Written by deploy/install.sh; see deploy/examples/deckhand-agent.default.\nDECKHAND_CONTROLLERS="%s"\nDECKHAND_AGENT_ARGS="%s"\n' "$controllers" "$args $extra" >"$defaults"
fi
echo "installed deckhand-$role into ${root:-/}usr/local/bin, its unit and $defaults"
if [ "$start" = 1 ] && [ -z "$root" ]; then
  systemctl daemon-reload
  systemctl enable --now "deckhand-$role"
  echo "started: systemctl status deckhand-$role"
fi
