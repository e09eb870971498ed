#!/usr/bin/env bash
# PostgreSQL in the foreground on 127.0.0.1:PORT, its cluster under DIR (created on first start):
#
#   PG_PASSWORD=... eng/servers/postgres.sh DIR PORT
#
# The one way the platform starts PostgreSQL: eng/servers.sh (tests, scripts) and the AppHost both run this script.
# SIGTERM or SIGINT stops it with a fast shutdown (PostgreSQL's own SIGTERM waits for every client to disconnect).
# Set FTP_SERVERS_FAST=1 for throwaway servers (no fsync). The password is (re)applied at every start, so a cluster
# outlives a lost password file.
set -euo pipefail
here=$(cd "$(dirname "$0")" && pwd)
# shellcheck source=lib.sh
. "$here/lib.sh"
FTP_LOG_NAME=postgres

dir=${1:?usage: postgres.sh DIR PORT}
port=${2:?usage: postgres.sh DIR PORT}
: "${PG_PASSWORD:?PG_PASSWORD must be set}"
bin=${PG_BIN:-$(ls -d /usr/lib/postgresql/*/bin 2>/dev/null | sort -V | tail -n 1)}
[ -x "$bin/postgres" ] || { ftp_log "error: PostgreSQL server binaries not found under /usr/lib/postgresql/*/bin (Debian: apt-get install -y postgresql) or set PG_BIN"; exit 1; }

# PostgreSQL refuses to run as root: run it as the postgres user (setpriv execs, so signals reach postgres itself).
as_postgres() {
  if [ "$(id -u)" -eq 0 ]; then setpriv --reuid=postgres --regid=postgres --init-groups -- "$@"; else "$@"; fi
}

mkdir -p "$dir"
cluster=$(postgres_cluster_dir "$dir")
mkdir -p "$(dirname "$cluster")"
chmod 755 "$(dirname "$cluster")"
[ "$(id -u)" -eq 0 ] && chown postgres: "$(dirname "$cluster")"

secret=$(mktemp)
trap 'rm -f "$secret"' EXIT
printf '%s\n' "$PG_PASSWORD" > "$secret"
[ "$(id -u)" -eq 0 ] && chown postgres: "$secret"
if [ ! -f "$cluster/PG_VERSION" ]; then
  ftp_log "initialising a cluster in $cluster"
  rm -rf "$cluster"
  as_postgres "$bin/initdb" -D "$cluster" -U postgres --pwfile="$secret" --auth=scram-sha-256 --no-sync -E UTF8 --locale=C.UTF-8 >/dev/null
elif [ "$(cat "$dir/password.sha256" 2>/dev/null)" != "$(sha256sum < "$secret")" ]; then
  # Another password than the cluster was made with: single-user mode sets it before the server listens.
  ftp_log "setting the postgres user's password"
  printf "ALTER USER postgres PASSWORD '%s';\n" "${PG_PASSWORD//\'/\'\'}" | as_postgres "$bin/postgres" --single -D "$cluster" postgres >/dev/null
fi
(umask 077 && sha256sum < "$secret" > "$dir/password.sha256")
rm -f "$secret"

options=(-D "$cluster" -p "$port" -c listen_addresses=127.0.0.1 -c unix_socket_directories="$cluster"
  -c max_connections=400 -c shared_buffers=128MB -c logging_collector=off)
if [ "${FTP_SERVERS_FAST:-0}" = 1 ]; then options+=(-c fsync=off -c synchronous_commit=off -c full_page_writes=off); fi

# Started directly, not through a shell function: a function in the background is a subshell, and the signal below
# would reach that subshell instead of postgres.
if [ "$(id -u)" -eq 0 ]; then
  setpriv --reuid=postgres --regid=postgres --init-groups -- "$bin/postgres" "${options[@]}" &
else
  "$bin/postgres" "${options[@]}" &
fi
server=$!
trap 'kill -INT "$server" 2>/dev/null || true' TERM INT
status=0
wait "$server" || status=$?
# A signal interrupts the first wait; the second waits for the fast shutdown itself.
if is_running "$server"; then wait "$server" || status=$?; fi
exit "$status"
