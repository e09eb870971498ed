#!/usr/bin/env bash
# Private PostgreSQL, Redis and RabbitMQ servers on loopback, as plain processes (no containers).
#
#   eng/servers.sh start DIR   start all three under DIR (data kept between starts), wait until each accepts
#                              connections, write DIR/servers.env (shell-sourceable `export` lines)
#   eng/servers.sh stop DIR    stop the servers started under DIR, by PID, and wait until their ports close
#   eng/servers.sh status DIR  say which are running
#   eng/servers.sh wipe DIR    stop them and delete their data
#   eng/servers.sh start DIR --only postgres
#                              just a PostgreSQL cluster (tests that stop a database use their own)
#
# Ports are chosen free at every start, so two checkouts (or ./run.sh and ./test.sh) never collide.
# Recipe measured on our machines: see ../shared/ENVIRONMENT.md (PostgreSQL runs as the postgres user when we
# are root; RabbitMQ runs a private node with its own epmd).
# Set FTP_SERVERS_FAST=1 for throwaway test servers (fsync off).
set -euo pipefail

log() { printf '[servers] %s\n' "$*" >&2; }
die() { log "error: $*"; exit 1; }

PG_BIN=${PG_BIN:-$(ls -d /usr/lib/postgresql/*/bin 2>/dev/null | sort -V | tail -n 1)}
RABBIT_BIN=${RABBIT_BIN:-/usr/lib/rabbitmq/bin}

ensure_packages() {
  local missing=()
  command -v redis-server >/dev/null 2>&1 || missing+=(redis-server)
  [ -x "$RABBIT_BIN/rabbitmq-server" ] || missing+=(rabbitmq-server)
  if [ ${#missing[@]} -gt 0 ]; then
    if [ "$(id -u)" -ne 0 ] || ! command -v apt-get >/dev/null 2>&1; then
      die "missing ${missing[*]}: install them with your package manager (Debian: sudo apt-get install -y ${missing[*]})"
    fi
    log "installing ${missing[*]} with apt-get (once per machine)"
    apt-get update -qq >/dev/null
    DEBIAN_FRONTEND=noninteractive apt-get install -y -qq "${missing[@]}" >/dev/null
  fi
  if [ -z "$PG_BIN" ] || [ ! -x "$PG_BIN/postgres" ]; then
    die "PostgreSQL server binaries not found under /usr/lib/postgresql/*/bin. Install them (Debian: sudo apt-get install -y postgresql) or set PG_BIN."
  fi
}

port_in_use() { ss -Htln "sport = :$1" 2>/dev/null | grep -q .; }

# A random free port in 20000-59999; the caller retries if a server still loses a race for it.
free_port() {
  local port
  for _ in $(seq 1 200); do
    port=$((20000 + RANDOM % 40000))
    if ! port_in_use "$port" && ! grep -qx "$port" "$TAKEN_PORTS" 2>/dev/null; then
      echo "$port" >> "$TAKEN_PORTS"
      echo "$port"
      return
    fi
  done
  die "no free port found"
}

wait_port_closed() {
  local port=$1
  for _ in $(seq 1 150); do port_in_use "$port" || return 0; sleep 0.1; done
  return 1
}

# PostgreSQL refuses to run as root: run it as the postgres user, who must be able to traverse to its data.
as_pg() {
  if [ "$(id -u)" -eq 0 ]; then runuser -u postgres -- "$@"; else "$@"; fi
}

pg_data_dir() {
  local dir=$1
  if [ "$(id -u)" -eq 0 ] && ! runuser -u postgres -- test -x "$dir" 2>/dev/null; then
    # A parent of DIR is closed to the postgres user (a root mktemp -d is mode 700): keep the cluster in a
    # world-traversable place named after DIR instead, so it still persists between starts.
    echo "/var/tmp/finetuneplatform-pg-$(printf '%s' "$dir" | sha256sum | cut -c1-12)"
  else
    echo "$dir/postgres"
  fi
}

start_postgres() {
  local dir=$1 data port password
  # Runs in the background beside the other servers: it reports its port through $dir/postgres.port.
  data=$(pg_data_dir "$dir")
  mkdir -p "$data"
  chmod 755 "$data"
  if [ "$(id -u)" -eq 0 ]; then chown postgres: "$data"; fi
  if [ ! -s "$dir/postgres.password" ]; then
    openssl rand -hex 16 > "$dir/postgres.password"
  fi
  password=$(cat "$dir/postgres.password")
  if [ ! -f "$data/cluster/PG_VERSION" ]; then
    log "initialising PostgreSQL cluster in $data/cluster"
    local pwfile="$data/pwfile"
    printf '%s\n' "$password" > "$pwfile"
    [ "$(id -u)" -eq 0 ] && chown postgres: "$pwfile"
    as_pg "$PG_BIN/initdb" -D "$data/cluster" -U postgres --pwfile="$pwfile" --auth=scram-sha-256 \
      --no-sync -E UTF8 --locale=C.UTF-8 >"$dir/postgres-initdb.log" 2>&1 || { cat "$dir/postgres-initdb.log" >&2; die "initdb failed"; }
    rm -f "$pwfile"
  fi
  local options="-c listen_addresses=127.0.0.1 -c unix_socket_directories=$data -c max_connections=400 -c shared_buffers=128MB"
  if [ "${FTP_SERVERS_FAST:-0}" = 1 ]; then options+=" -c fsync=off -c synchronous_commit=off -c full_page_writes=off"; fi
  for _ in 1 2 3; do
    port=$(free_port)
    if as_pg "$PG_BIN/pg_ctl" -D "$data/cluster" -l "$data/postgres.log" -o "-p $port $options" -w -t 60 start >/dev/null 2>&1; then
      head -n 1 "$data/cluster/postmaster.pid" > "$dir/postgres.pid"
      echo "$port" > "$dir/postgres.port"
      log "PostgreSQL listening on 127.0.0.1:$port (pid $(cat "$dir/postgres.pid"))"
      return
    fi
  done
  tail -n 20 "$data/postgres.log" >&2 || true
  die "PostgreSQL did not start"
}

start_redis() {
  local dir=$1 port
  mkdir -p "$dir/redis"
  for _ in 1 2 3; do
    port=$(free_port)
    setsid redis-server --port "$port" --bind 127.0.0.1 --save '' --appendonly no --dir "$dir/redis" \
      --logfile "$dir/redis/redis.log" --daemonize no </dev/null >/dev/null 2>&1 &
    echo $! > "$dir/redis.pid"
    for _ in $(seq 1 100); do
      if redis-cli -h 127.0.0.1 -p "$port" ping 2>/dev/null | grep -q PONG; then
        REDIS_PORT=$port
        log "Redis listening on 127.0.0.1:$port (pid $(cat "$dir/redis.pid"))"
        return
      fi
      is_running "$(cat "$dir/redis.pid")" || break
      sleep 0.05
    done
  done
  die "Redis did not start (see $dir/redis/redis.log)"
}

rabbit_env() {
  local dir=$1
  export HOME="$dir/rabbitmq"
  export RABBITMQ_NODENAME="ftp-$(printf '%s' "$dir" | sha256sum | cut -c1-10)@localhost"
  export RABBITMQ_NODE_IP_ADDRESS=127.0.0.1
  export RABBITMQ_MNESIA_BASE="$dir/rabbitmq/mnesia"
  export RABBITMQ_LOG_BASE="$dir/rabbitmq/log"
  export RABBITMQ_CONFIG_FILE="$dir/rabbitmq/rabbitmq.conf"
  export RABBITMQ_ENABLED_PLUGINS_FILE="$dir/rabbitmq/enabled_plugins"
  export RABBITMQ_PID_FILE="$dir/rabbitmq/rabbitmq.pid"
  export ERL_EPMD_ADDRESS=127.0.0.1
  export RABBITMQ_SERVER_ADDITIONAL_ERL_ARGS="-kernel inet_dist_use_interface {127,0,0,1}"
  export RABBITMQ_CTL_ERL_ARGS="-kernel inet_dist_use_interface {127,0,0,1}"
  if [ -f "$dir/rabbitmq/ports" ]; then
    # shellcheck disable=SC1091
    . "$dir/rabbitmq/ports"
    export ERL_EPMD_PORT RABBITMQ_NODE_PORT RABBITMQ_DIST_PORT
  fi
}

start_rabbitmq() {
  local dir=$1
  mkdir -p "$dir/rabbitmq/mnesia" "$dir/rabbitmq/log"
  ERL_EPMD_PORT=$(free_port)
  RABBITMQ_NODE_PORT=$(free_port)
  RABBITMQ_DIST_PORT=$(free_port)
  RABBIT_MANAGEMENT_PORT=$(free_port)
  cat > "$dir/rabbitmq/ports" <<EOF
ERL_EPMD_PORT=$ERL_EPMD_PORT
RABBITMQ_NODE_PORT=$RABBITMQ_NODE_PORT
RABBITMQ_DIST_PORT=$RABBITMQ_DIST_PORT
RABBIT_MANAGEMENT_PORT=$RABBIT_MANAGEMENT_PORT
EOF
  cat > "$dir/rabbitmq/rabbitmq.conf" <<EOF
listeners.tcp.default = 127.0.0.1:$RABBITMQ_NODE_PORT
management.tcp.ip = 127.0.0.1
management.tcp.port = $RABBIT_MANAGEMENT_PORT
log.file.level = warning
# Trainer workers hold a TrainJob message (unacknowledged) for the whole job, so the prefetch limit is their
# capacity; the default 30-minute delivery timeout would take a long job away from a healthy worker.
consumer_timeout = 86400000
EOF
  echo '[rabbitmq_management].' > "$dir/rabbitmq/enabled_plugins"
  rabbit_env "$dir"
  # Our own epmd, so we own its PID and it binds loopback only.
  setsid epmd -port "$ERL_EPMD_PORT" -address 127.0.0.1 </dev/null >/dev/null 2>&1 &
  echo $! > "$dir/epmd.pid"
  setsid "$RABBIT_BIN/rabbitmq-server" </dev/null >"$dir/rabbitmq/log/console.log" 2>&1 &
  echo $! > "$dir/rabbitmq.launcher.pid"
  if ! "$RABBIT_BIN/rabbitmqctl" -q -n "$RABBITMQ_NODENAME" wait --timeout 90 "$RABBITMQ_PID_FILE" >/dev/null 2>&1; then
    tail -n 30 "$dir/rabbitmq/log/console.log" >&2 || true
    die "RabbitMQ did not start"
  fi
  cp "$RABBITMQ_PID_FILE" "$dir/rabbitmq.pid"
  for _ in $(seq 1 100); do
    curl -fsS -u guest:guest "http://127.0.0.1:$RABBIT_MANAGEMENT_PORT/api/overview" >/dev/null 2>&1 && break
    sleep 0.1
  done
  log "RabbitMQ listening on 127.0.0.1:$RABBITMQ_NODE_PORT, management on :$RABBIT_MANAGEMENT_PORT (pid $(cat "$dir/rabbitmq.pid"))"
}

write_env() {
  local dir=$1 file="$1/servers.env" pg
  pg="Host=127.0.0.1;Port=$PG_PORT;Username=postgres;Password=$PG_PASSWORD"
  {
    echo "# Written by eng/servers.sh start; source it to reach the private servers."
    for db in datasetsdb trainingdb evaluationdb gatewaydb; do
      echo "export ConnectionStrings__$db='$pg;Database=$db'"
    done
    echo "export FTP_POSTGRES_SERVER='$pg;Database=postgres'"
    echo "export FTP_SERVERS_DIR='$dir'"
    if [ "$ONLY" != postgres ]; then
      echo "export ConnectionStrings__redis='127.0.0.1:$REDIS_PORT'"
      echo "export ConnectionStrings__rabbitmq='amqp://guest:guest@127.0.0.1:$RABBITMQ_NODE_PORT'"
      echo "export FTP_RABBITMQ_MANAGEMENT='http://guest:guest@127.0.0.1:$RABBIT_MANAGEMENT_PORT'"
    fi
  } > "$file"
  chmod 600 "$file"
}

# A stopped server can linger as a zombie until its (re-parented) parent reaps it: that counts as stopped.
is_running() {
  local state
  state=$(ps -o stat= -p "$1" 2>/dev/null) || return 1
  [ -n "$state" ] && [ "${state:0:1}" != Z ]
}

stop_pid_file() {
  local name=$1 file=$2 signal=${3:-TERM} pid
  [ -s "$file" ] || return 0
  pid=$(cat "$file")
  if is_running "$pid"; then
    kill "-$signal" "$pid" 2>/dev/null || true
    for _ in $(seq 1 150); do is_running "$pid" || break; sleep 0.1; done
    if is_running "$pid"; then
      log "$name (pid $pid) did not stop in 15 s; killing it"
      kill -KILL "$pid" 2>/dev/null || true
    fi
  fi
  rm -f "$file"
}

stop_all() {
  local dir=$1
  [ -d "$dir" ] || return 0
  stop_pid_file RabbitMQ "$dir/rabbitmq.pid"
  stop_pid_file "RabbitMQ launcher" "$dir/rabbitmq.launcher.pid"
  stop_pid_file epmd "$dir/epmd.pid"
  stop_pid_file Redis "$dir/redis.pid"
  stop_pid_file PostgreSQL "$dir/postgres.pid" INT
  if [ -f "$dir/rabbitmq/ports" ]; then
    # shellcheck disable=SC1091
    . "$dir/rabbitmq/ports"
    wait_port_closed "$RABBITMQ_NODE_PORT" || log "warning: port $RABBITMQ_NODE_PORT still open"
  fi
  rm -f "$dir/servers.env"
  log "servers under $dir stopped"
}

status() {
  local dir=$1 name
  for name in postgres redis rabbitmq epmd; do
    if [ -s "$dir/$name.pid" ] && is_running "$(cat "$dir/$name.pid")"; then
      echo "$name: running (pid $(cat "$dir/$name.pid"))"
    else
      echo "$name: stopped"
    fi
  done
}

command=${1:-}
dir=${2:-}
ONLY=all
[ "${3:-}" = "--only" ] && ONLY=${4:-}
[ "$ONLY" = all ] || [ "$ONLY" = postgres ] || die "--only takes: postgres"
[ -n "$command" ] && [ -n "$dir" ] || die "usage: eng/servers.sh start|stop|status DIR [--only postgres]"
mkdir -p "$dir"
dir=$(cd "$dir" && pwd)

case "$command" in
  start)
    if [ -s "$dir/postgres.pid" ] && is_running "$(cat "$dir/postgres.pid")"; then
      die "servers under $dir are already running (eng/servers.sh stop $dir first)"
    fi
    ensure_packages
    TAKEN_PORTS=$(mktemp)
    trap 'rm -f "$TAKEN_PORTS"' EXIT
    # Whatever fails part-way, leave nothing running behind us.
    trap 'stop_all "$dir"; exit 1' ERR INT TERM
    start_postgres "$dir" &
    pg_job=$!
    if [ "$ONLY" = all ]; then
      start_redis "$dir"
      start_rabbitmq "$dir"
    fi
    wait "$pg_job" || die "PostgreSQL did not start"
    PG_PORT=$(cat "$dir/postgres.port")
    PG_PASSWORD=$(cat "$dir/postgres.password")
    write_env "$dir"
    trap - ERR INT TERM
    log "connection strings written to $dir/servers.env"
    ;;
  stop) stop_all "$dir" ;;
  status) status "$dir" ;;
  wipe)
    stop_all "$dir"
    data=$(pg_data_dir "$dir")
    rm -rf "$data" "$dir"
    log "data under $dir deleted"
    ;;
  *) die "unknown command '$command' (start|stop|status|wipe)" ;;
esac
