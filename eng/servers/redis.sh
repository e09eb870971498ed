#!/usr/bin/env bash
# Redis in the foreground on 127.0.0.1:PORT, nothing persisted (the platform keeps only rate-limit counters and
# caches there), its working directory DIR:
#
#   eng/servers/redis.sh DIR PORT
#
# The one way the platform starts Redis: eng/servers.sh and the AppHost both run this script. SIGTERM stops it.
set -euo pipefail
dir=${1:?usage: redis.sh DIR PORT}
port=${2:?usage: redis.sh DIR PORT}
command -v redis-server >/dev/null || { echo "[redis] error: redis-server is not installed (Debian: apt-get install -y redis-server)" >&2; exit 1; }
mkdir -p "$dir"
# set-proc-title no: Redis would otherwise write its title over its environment, which is how a stop finds what a
# platform left behind (FTP_RUN_MARKER, the tests' markers).
exec redis-server --port "$port" --bind 127.0.0.1 --save '' --appendonly no --dir "$dir" --daemonize no --loglevel warning --set-proc-title no
