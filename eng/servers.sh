#!/usr/bin/env bash
# Private PostgreSQL, Redis and RabbitMQ servers on loopback, as plain processes (no containers), for the tests and
# scripts. Each server is started by its own script in eng/servers/ (the same scripts the AppHost runs).
#
#   eng/servers.sh start DIR   start all three under DIR (data kept between starts), wait until each is ready and
#                              is the one we started, write DIR/servers.env (shell-sourceable `export` lines)
#   eng/servers.sh stop DIR    stop the servers started under DIR and everything they started
#   eng/servers.sh status DIR  say which are running
#   eng/servers.sh wipe DIR    stop them and delete their data
#   eng/servers.sh start DIR --only postgres
#                              just a PostgreSQL cluster (tests that stop a database use their own)
#
# Ports: each is reserved (eng/servers/lib.sh reserve_port: a lock shared by every FineTunePlatform process on the
# machine) before its server binds it, and a start that still finds its port taken by someone else is retried on new
# ports, so starts side by side (two checkouts, ./run.sh beside ./test.sh) never collide. Readiness is checked
# against the process we started (PostgreSQL's postmaster.pid, Redis's process id, RabbitMQ's node name), never just
# "something answers on that port".
# Set FTP_SERVERS_FAST=1 for throwaway test servers (fsync off).
set -Eeuo pipefail
here=$(cd "$(dirname "$0")" && pwd)
# shellcheck source=servers/lib.sh
. "$here/servers/lib.sh"

log() { ftp_log "$*"; }
die() { log "error: $*"; exit 1; }
# No step fails silently (set -E: also inside functions and the background PostgreSQL start).
trap 'log "error: \"$BASH_COMMAND\" failed (exit $?) at line $LINENO"' ERR

# Attempts per server when its port turns out to be taken by a process that is not ours.
ATTEMPTS=5

# launch NAME ARGS...: starts eng/servers/NAME.sh in a session of its own (so stopping it takes everything it started),
# output in DIR/NAME.log; its PID (= its process group) goes to DIR/NAME.group.
launch() {
  local name=$1
  shift
  setsid "$here/servers/$name.sh" "$@" </dev/null >"$DIR/$name.log" 2>&1 &
  echo $! > "$DIR/$name.group"
}

# await NAME SECONDS CHECK...: waits until CHECK succeeds, or the server exits (status 2: its port was taken, retry;
# status 1: it failed), or SECONDS pass (status 1).
await() {
  local name=$1 seconds=$2 group
  shift 2
  group=$(cat "$DIR/$name.group")
  for _ in $(seq 1 $((seconds * 10))); do
    if "$@"; then return 0; fi
    if ! group_running "$group"; then
      if grep -qiE 'address already in use|eaddrinuse' "$DIR/$name.log"; then return 2; fi
      return 1
    fi
    sleep 0.1
  done
  return 1
}

# fail NAME WHAT: prints the server's own output, stops it and gives up.
fail() {
  local name=$1 what=$2
  log "$name: $what; its output ($DIR/$name.log):"
  tail -n 40 "$DIR/$name.log" >&2 || true
  stop_group "$name"
  die "$name did not start"
}

# listens_ours NAME PORT: the process listening on PORT belongs to the process group we started for NAME.
listens_ours() {
  local pid
  pid=$(listener_pid "$2")
  [ -n "$pid" ] && [ "$(ps -o pgid= -p "$pid" 2>/dev/null | tr -d ' ')" = "$(cat "$DIR/$1.group")" ]
}

# The broker's names: the platform's virtual host, the services' user, the operators' (management) user.
RABBITMQ_VHOST=finetuneplatform
RABBITMQ_USER=finetuneplatform
RABBITMQ_ADMIN_USER=finetuneplatform-admin

# new_secret FILE: a random secret in FILE, readable by its owner only, unless FILE already holds one.
new_secret() {
  [ -s "$1" ] || (umask 077 && openssl rand -hex 16 > "$1")
  chmod 600 "$1"
}

# PostgreSQL says it is ready in its postmaster.pid (what pg_ctl -w reads).
postgres_ready() {
  [ "$(sed -n 8p "$PG_CLUSTER/postmaster.pid" 2>/dev/null | tr -d ' ')" = ready ] \
    && listens_ours postgres "$PG_PORT"
}

start_postgres() {
  local attempt result
  new_secret "$DIR/postgres.password"
  PG_CLUSTER=$(postgres_cluster_dir "$DIR/postgres")
  for attempt in $(seq 1 $ATTEMPTS); do
    reserve_port PG_PORT
    PG_PASSWORD=$(cat "$DIR/postgres.password") launch postgres "$DIR/postgres" "$PG_PORT"
    result=0
    await postgres 90 postgres_ready || result=$?
    case $result in
      0) head -n 1 "$PG_CLUSTER/postmaster.pid" > "$DIR/postgres.pid"
         echo "$PG_PORT" > "$DIR/postgres.port"
         log "PostgreSQL listening on 127.0.0.1:$PG_PORT (pid $(cat "$DIR/postgres.pid"))"
         return ;;
      2) log "PostgreSQL: port $PG_PORT was taken meanwhile (attempt $attempt); trying another" ;;
      *) fail postgres "not ready" ;;
    esac
  done
  fail postgres "no port could be bound in $ATTEMPTS attempts"
}

redis_ready() {
  listens_ours redis "$REDIS_PORT" && redis-cli -h 127.0.0.1 -p "$REDIS_PORT" ping 2>/dev/null | grep -q PONG
}

start_redis() {
  local attempt result
  for attempt in $(seq 1 $ATTEMPTS); do
    reserve_port REDIS_PORT
    launch redis "$DIR/redis" "$REDIS_PORT"
    result=0
    await redis 20 redis_ready || result=$?
    case $result in
      0) listener_pid "$REDIS_PORT" > "$DIR/redis.pid"
         log "Redis listening on 127.0.0.1:$REDIS_PORT (pid $(cat "$DIR/redis.pid"))"
         return ;;
      2) log "Redis: port $REDIS_PORT was taken meanwhile (attempt $attempt); trying another" ;;
      *) fail redis "not ready" ;;
    esac
  done
  fail redis "no port could be bound in $ATTEMPTS attempts"
}

# The broker answers an AMQP 0-9-1 protocol header with a Connection.Start method frame (frame type 1).
amqp_answers() {
  timeout 3 bash -c 'exec 3<>"/dev/tcp/127.0.0.1/$1" && printf "AMQP\x00\x00\x09\x01" >&3 && head -c 1 <&3' _ "$1" 2>/dev/null \
    | od -An -tu1 | grep -qw 1
}

rabbitmq_ready() {
  local node overview
  node="ftp-$(printf '%s' "$(cd "$DIR/rabbitmq" && pwd)" | sha256sum | cut -c1-10)@localhost"
  overview=$(curl -fsS -m 3 -u "$RABBITMQ_ADMIN_USER:$(cat "$DIR/rabbitmq-admin.password")" "http://127.0.0.1:$RABBIT_MANAGEMENT_PORT/api/overview" 2>/dev/null) || return 1
  [[ $overview == *"\"node\":\"$node\""* ]] && listens_ours rabbitmq "$RABBITMQ_PORT" && amqp_answers "$RABBITMQ_PORT"
}

start_rabbitmq() {
  local attempt result
  mkdir -p "$DIR/rabbitmq"
  new_secret "$DIR/rabbitmq.password"
  new_secret "$DIR/rabbitmq-admin.password"
  for attempt in $(seq 1 $ATTEMPTS); do
    reserve_port RABBITMQ_PORT
    reserve_port RABBIT_MANAGEMENT_PORT
    RABBITMQ_VHOST=$RABBITMQ_VHOST RABBITMQ_USER=$RABBITMQ_USER RABBITMQ_PASSWORD=$(cat "$DIR/rabbitmq.password") \
      RABBITMQ_ADMIN_USER=$RABBITMQ_ADMIN_USER RABBITMQ_ADMIN_PASSWORD=$(cat "$DIR/rabbitmq-admin.password") \
      launch rabbitmq "$DIR/rabbitmq" "$RABBITMQ_PORT" "$RABBIT_MANAGEMENT_PORT"
    result=0
    await rabbitmq 120 rabbitmq_ready || result=$?
    case $result in
      0) listener_pid "$RABBITMQ_PORT" > "$DIR/rabbitmq.pid"
         cp "$DIR/rabbitmq/epmd.pid" "$DIR/epmd.pid"
         log "RabbitMQ listening on 127.0.0.1:$RABBITMQ_PORT, management on :$RABBIT_MANAGEMENT_PORT (pid $(cat "$DIR/rabbitmq.pid"))"
         return ;;
      2) log "RabbitMQ: a port was taken meanwhile (attempt $attempt); trying others" ;;
      *) fail rabbitmq "not ready" ;;
    esac
  done
  fail rabbitmq "no ports could be bound in $ATTEMPTS attempts"
}

write_env() {
  local file="$DIR/servers.env" pg
  pg="Host=127.0.0.1;Port=$PG_PORT;Username=postgres;Password=$(cat "$DIR/postgres.password")"
  # Created readable by its owner only before a secret is written into it.
  install -m 600 /dev/null "$file.new"
  {
    echo "# Written by eng/servers.sh start; source it to reach the private servers."
    for db in datasetsdb trainingdb evaluationdb gatewaydb; do
      echo "export ConnectionStrings__$db='$pg;Database=$db'"
    done
    echo "export FTP_POSTGRES_SERVER='$pg;Database=postgres'"
    echo "export FTP_SERVERS_DIR='$DIR'"
    if [ "$ONLY" != postgres ]; then
      echo "export ConnectionStrings__redis='127.0.0.1:$REDIS_PORT'"
      echo "export ConnectionStrings__rabbitmq='amqp://$RABBITMQ_USER:$(cat "$DIR/rabbitmq.password")@127.0.0.1:$RABBITMQ_PORT/$RABBITMQ_VHOST'"
      echo "export FTP_RABBITMQ_MANAGEMENT='http://$RABBITMQ_ADMIN_USER:$(cat "$DIR/rabbitmq-admin.password")@127.0.0.1:$RABBIT_MANAGEMENT_PORT'"
    fi
  } > "$file.new"
  mv "$file.new" "$file"
}

# stop_group NAME: asks the server's script to stop (it stops its server cleanly), then kills whatever of its process
# group is left after 20 s.
stop_group() {
  local name=$1 group
  [ -s "$DIR/$name.group" ] || return 0
  group=$(cat "$DIR/$name.group")
  if group_running "$group"; then
    kill -TERM "$group" 2>/dev/null || true
    for _ in $(seq 1 200); do group_running "$group" || break; sleep 0.1; done
    if group_running "$group"; then
      log "$name (process group $group) did not stop in 20 s; killing it"
      kill -KILL -- "-$group" 2>/dev/null || true
      for _ in $(seq 1 50); do group_running "$group" || break; sleep 0.1; done
    fi
  fi
  rm -f "$DIR/$name.group" "$DIR/$name.pid"
}

stop_all() {
  [ -d "$DIR" ] || return 0
  stop_group rabbitmq
  stop_group redis
  stop_group postgres
  rm -f "$DIR/epmd.pid" "$DIR/servers.env"
  log "servers under $DIR stopped"
}

status() {
  local name
  for name in postgres redis rabbitmq; do
    if [ -s "$DIR/$name.group" ] && group_running "$(cat "$DIR/$name.group")"; then
      echo "$name: running (pid $(cat "$DIR/$name.pid" 2>/dev/null || cat "$DIR/$name.group"))"
    else
      echo "$name: stopped"
    fi
  done
}

command=${1:-}
DIR=${2:-}
ONLY=all
[ "${3:-}" = "--only" ] && ONLY=${4:-}
[ "$ONLY" = all ] || [ "$ONLY" = postgres ] || die "--only takes: postgres"
[ -n "$command" ] && [ -n "$DIR" ] || die "usage: eng/servers.sh start|stop|status|wipe DIR [--only postgres]"
mkdir -p "$DIR"
DIR=$(cd "$DIR" && pwd)

case "$command" in
  start)
    for name in postgres redis rabbitmq; do
      if [ -s "$DIR/$name.group" ] && group_running "$(cat "$DIR/$name.group")"; then
        die "servers under $DIR are already running (eng/servers.sh stop $DIR first)"
      fi
    done
    "$here/packages.sh" "${FTP_PACKAGES_PROFILE:-run}"
    # Whatever fails part-way, leave nothing running behind us (PostgreSQL's start is waited for first, so that a
    # server it is launching right now is not missed).
    pg_job=
    trap 'if [ -n "$pg_job" ]; then wait "$pg_job" 2>/dev/null || true; fi; stop_all' EXIT
    trap 'exit 130' INT TERM
    # PostgreSQL starts beside the other two (initdb takes a moment); it reports its port through DIR/postgres.port.
    start_postgres &
    pg_job=$!
    if [ "$ONLY" = all ]; then
      start_redis
      start_rabbitmq
    fi
    wait "$pg_job" || die "PostgreSQL did not start"
    PG_PORT=$(cat "$DIR/postgres.port")
    write_env
    trap - EXIT INT TERM
    log "connection strings written to $DIR/servers.env"
    ;;
  stop) stop_all ;;
  status) status ;;
  wipe)
    stop_all
    rm -rf "$(dirname "$(postgres_cluster_dir "$DIR/postgres")")" "$DIR"
    log "data under $DIR deleted"
    ;;
  *) die "unknown command '$command' (start|stop|status|wipe)" ;;
esac
