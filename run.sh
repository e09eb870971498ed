#!/usr/bin/env bash
# Starts the whole platform on this machine, no containers: private PostgreSQL, Redis and RabbitMQ on loopback,
# one build, every service as its own process (logs in .run/logs and a prefixed console), then prints the
# gateway's base URL and a bootstrap admin API key (also in .run/platform.env).
#
#   ./run.sh            start and follow the logs; Ctrl-C stops everything it started
#   ./run.sh --detach   start in the background and return once every service is healthy
#   ./run.sh --fresh    forget all data (databases, keys) before starting
#   ./run.sh stop       stop a detached (or stray) platform
#   ./run.sh status     say what runs
set -euo pipefail
cd "$(dirname "$0")"
root=$(pwd)
run="$root/.run"
pids="$run/pids"
logs="$run/logs"
configuration=Release
worker_replicas=${FTP_WORKER_REPLICAS:-2}

say() { printf '[run] %s\n' "$*"; }

# name:project:database for every process; workers get a replica suffix.
services=(
  "datasets:FineTunePlatform.Datasets"
  "training:FineTunePlatform.Training"
  "evaluation:FineTunePlatform.Evaluation"
  "gateway:FineTunePlatform.Gateway"
)
for i in $(seq 1 "$worker_replicas"); do services+=("training-worker-$i:FineTunePlatform.Training.Worker"); done

is_running() {
  local state
  state=$(ps -o stat= -p "$1" 2>/dev/null) || return 1
  [ -n "$state" ] && [ "${state:0:1}" != Z ]
}

platform_running() {
  local file
  for file in "$pids"/*.pid; do
    [ -s "$file" ] && is_running "$(cat "$file")" && return 0
  done
  return 1
}

stop_platform() {
  local file pid name
  for file in "$pids"/*.pid; do
    [ -s "$file" ] || continue
    pid=$(cat "$file")
    name=$(basename "$file" .pid)
    if is_running "$pid"; then
      kill -TERM "$pid" 2>/dev/null || true
    fi
  done
  for file in "$pids"/*.pid; do
    [ -s "$file" ] || continue
    pid=$(cat "$file")
    name=$(basename "$file" .pid)
    for _ in $(seq 1 100); do is_running "$pid" || break; sleep 0.1; done
    if is_running "$pid"; then
      say "$name (pid $pid) did not stop in 10 s; killing it"
      kill -KILL "$pid" 2>/dev/null || true
    fi
    rm -f "$file"
  done
  eng/servers.sh stop "$run/servers"
  rm -f "$run/platform.env"
  say "stopped"
}

command=start
detach=0
fresh=0
for argument in "$@"; do
  case "$argument" in
    stop) command=stop ;;
    status) command=status ;;
    --detach) detach=1 ;;
    --fresh) fresh=1 ;;
    -h|--help) sed -n '2,11p' "$0"; exit 0 ;;
    *) echo "unknown argument: $argument (see ./run.sh --help)" >&2; exit 2 ;;
  esac
done

mkdir -p "$pids" "$logs"

case "$command" in
  stop) stop_platform; exit 0 ;;
  status)
    if platform_running; then say "running"; cat "$run/platform.env" 2>/dev/null; else say "not running"; fi
    eng/servers.sh status "$run/servers"
    exit 0 ;;
esac

if platform_running; then
  say "the platform is already running (./run.sh stop to stop it):"
  cat "$run/platform.env" 2>/dev/null || true
  exit 1
fi

if [ "$fresh" = 1 ]; then
  say "--fresh: forgetting all data under $run"
  eng/servers.sh wipe "$run/servers"
  rm -rf "$run/servers" "$run/secrets.env" "$logs"
  mkdir -p "$logs"
fi

started_ms=$(($(date +%s%N) / 1000000))

# Secrets are made once and kept, so keys and data survive restarts.
if [ ! -s "$run/secrets.env" ]; then
  {
    echo "export Internal__Token='$(openssl rand -hex 32)'"
    echo "export Gateway__BootstrapAdminKey='sk-ft-admin-$(openssl rand -hex 24)'"
  } > "$run/secrets.env"
  chmod 600 "$run/secrets.env"
fi
# shellcheck disable=SC1091
. "$run/secrets.env"

cleanup_on_failure() {
  say "start-up failed; stopping what was started (logs: $logs)"
  stop_platform >/dev/null 2>&1 || true
}
trap 'cleanup_on_failure; exit 1' ERR
trap 'echo; say "interrupted during start-up"; stop_platform; exit 130' INT TERM

eng/servers.sh start "$run/servers"
# shellcheck disable=SC1091
. "$run/servers/servers.env"

say "building ($configuration)"
eng/solution-filter.sh "$run/platform.slnf" '^src/'
dotnet build "$run/platform.slnf" -c "$configuration" -nologo -clp:ErrorsOnly -v:q

free_port() {
  local port
  while :; do
    port=$((20000 + RANDOM % 40000))
    ss -Htln "sport = :$port" | grep -q . || { echo "$port"; return; }
  done
}

# Every process gets an HTTP/1.1 port (health, REST) and an HTTP/2 port (gRPC), and every peer's addresses
# under Aspire's service-discovery names (services__{name}__{endpoint}__0).
declare -A http_port grpc_port
discovery=()
for entry in "${services[@]}"; do
  name=${entry%%:*}
  http_port[$name]=$(free_port)
  grpc_port[$name]=$(free_port)
  case "$name" in training-worker-*) continue ;; esac
  discovery+=("services__${name}__http__0=http://127.0.0.1:${http_port[$name]}" "services__${name}__grpc__0=http://127.0.0.1:${grpc_port[$name]}")
done

for entry in "${services[@]}"; do
  name=${entry%%:*}
  project=${entry#*:}
  output="$root/src/$project/bin/$configuration/net10.0"
  (
    cd "$output"
    exec env "${discovery[@]}" \
      ASPNETCORE_ENVIRONMENT=Production \
      OTEL_SERVICE_NAME="$name" \
      Kestrel__Endpoints__http__Url="http://127.0.0.1:${http_port[$name]}" \
      Kestrel__Endpoints__grpc__Url="http://127.0.0.1:${grpc_port[$name]}" \
      setsid dotnet "$project.dll" </dev/null >>"$logs/$name.log" 2>&1
  ) &
  echo $! > "$pids/$name.pid"
done

say "waiting for every service's /health"
for entry in "${services[@]}"; do
  name=${entry%%:*}
  ready=0
  for _ in $(seq 1 600); do
    if curl -fsS -o /dev/null "http://127.0.0.1:${http_port[$name]}/health" 2>/dev/null; then ready=1; break; fi
    is_running "$(cat "$pids/$name.pid")" || break
    sleep 0.1
  done
  if [ "$ready" != 1 ]; then
    say "$name did not become healthy; the end of its log:"
    tail -n 30 "$logs/$name.log" >&2
    false
  fi
done
trap - ERR

base_url="http://127.0.0.1:${http_port[gateway]}/v1"
{
  echo "FINETUNE_BASE_URL=$base_url"
  echo "FINETUNE_API_KEY=$Gateway__BootstrapAdminKey"
} > "$run/platform.env"
chmod 600 "$run/platform.env"
elapsed_ms=$(($(date +%s%N) / 1000000 - started_ms))
elapsed="$((elapsed_ms / 1000)).$(((elapsed_ms % 1000) / 100))"

cat <<EOF
[run] FineTunePlatform is ready in ${elapsed} s.

  FINETUNE_BASE_URL=$base_url
  FINETUNE_API_KEY=$Gateway__BootstrapAdminKey

  (both in .run/platform.env: \`set -a; . .run/platform.env; set +a\`)
  logs: $logs    stop: ./run.sh stop$([ "$detach" = 1 ] || echo " or Ctrl-C")
EOF

if [ "$detach" = 1 ]; then
  exit 0
fi

# The log follower runs in its own process group, so stopping it takes tail and awk together.
setsid eng/follow-logs.sh "$logs" &
follower=$!
stop_follower() { kill -TERM -- "-$follower" 2>/dev/null || true; }
trap 'echo; stop_follower; stop_platform; exit 0' INT TERM
while platform_running; do sleep 1; done
stop_follower
say "every service has exited"
stop_platform
