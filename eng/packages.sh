#!/usr/bin/env bash
# Installs the Debian packages the platform needs that a fresh machine of ours lacks (once per machine):
#
#   eng/packages.sh run       what ./run.sh and the AppHost run: Redis, RabbitMQ, OpenBLAS (the CPU models' GEMM)
#   eng/packages.sh test      that, plus what the test suite needs: PyTorch and Jinja2 for the reference checks
#   eng/packages.sh browser   Debian's Chromium, for the screenshots in the docs
#
# PostgreSQL is preinstalled on our machines (apt-get install -y postgresql elsewhere). Two starts on one fresh
# machine (two checkouts, ./run.sh beside ./test.sh) take turns: apt holds a lock, so installs are serialised here.
set -euo pipefail

log() { printf '[packages] %s\n' "$*" >&2; }

profile=${1:-run}
case "$profile" in
  run) wanted=(redis-server rabbitmq-server libopenblas0-pthread) ;;
  test) wanted=(redis-server rabbitmq-server libopenblas0-pthread python3-torch python3-jinja2) ;;
  browser) wanted=(chromium) ;;
  *) log "usage: eng/packages.sh run|test|browser"; exit 2 ;;
esac

installed() { dpkg-query -W -f='${Status}' "$1" 2>/dev/null | grep -q 'install ok installed'; }

missing=()
for package in "${wanted[@]}"; do installed "$package" || missing+=("$package"); done

pg_bin=$(ls -d /usr/lib/postgresql/*/bin 2>/dev/null | sort -V | tail -n 1 || true)
if [ "$profile" != browser ] && { [ -z "$pg_bin" ] || [ ! -x "$pg_bin/postgres" ]; }; then
  if [ "$(id -u)" -eq 0 ] && command -v apt-get >/dev/null 2>&1; then missing+=(postgresql); else
    log "error: PostgreSQL server binaries not found under /usr/lib/postgresql/*/bin. Install them (Debian: sudo apt-get install -y postgresql) or set PG_BIN."
    exit 1
  fi
fi

[ ${#missing[@]} -eq 0 ] && exit 0
if [ "$(id -u)" -ne 0 ] || ! command -v apt-get >/dev/null 2>&1; then
  log "error: missing ${missing[*]}: install them with your package manager (Debian: sudo apt-get install -y ${missing[*]})"
  exit 1
fi

exec 9>/tmp/finetuneplatform-apt.lock
flock 9
# Someone else may have installed them while we waited for the lock.
still=()
for package in "${missing[@]}"; do installed "$package" || still+=("$package"); done
[ ${#still[@]} -eq 0 ] && exit 0
log "installing ${still[*]} with apt-get (once per machine)"
output=$(mktemp)
if ! { apt-get -o DPkg::Lock::Timeout=300 update -qq && DEBIAN_FRONTEND=noninteractive apt-get -o DPkg::Lock::Timeout=300 install -y -qq --no-install-recommends "${still[@]}"; } >"$output" 2>&1; then
  cat "$output" >&2
  rm -f "$output"
  log "error: apt-get could not install ${still[*]}"
  exit 1
fi
rm -f "$output"
log "installed ${still[*]}"
