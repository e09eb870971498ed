#!/usr/bin/env bash
# Starts the whole platform on this machine under its .NET Aspire AppHost (FineTunePlatform.AppHost): DCP runs every
# service, the trainer workers, and PostgreSQL, Redis and RabbitMQ (as local executables where no container runtime
# answers), and the Aspire dashboard shows every log, trace and metric. Prints the gateway's base URL (port 8480
# unless taken or Platform__GatewayPort says otherwise), a bootstrap platform-admin key and the dashboard's URL
# (also in .run/platform.env, as FINETUNE_BASE_URL, FINETUNE_ADMIN_KEY and FINETUNE_DASHBOARD_URL).
#
#   ./run.sh                 start, then follow the AppHost's output; Ctrl-C stops everything it started
#   ./run.sh --detach        start in the background and return once the platform is healthy
#   ./run.sh --fresh         forget all data (databases, keys) before starting
#   ./run.sh --verbose       console logs at Information (default: Warning; the dashboard has Information either way)
#   ./run.sh stop            stop a detached platform (and anything it left behind)
#   ./run.sh status          every resource's state and health
#   ./run.sh restart NAME    restart one resource (gateway, training, training-worker, postgres, ...)
#   ./run.sh logs NAME       follow one resource's logs
set -euo pipefail
cd "$(dirname "$0")"
root=$(pwd)
run="$root/.run"
configuration=Release
apphost_project="$root/FineTunePlatform.AppHost/FineTunePlatform.AppHost.csproj"
apphost_dll="$root/FineTunePlatform.AppHost/bin/$configuration/net10.0/FineTunePlatform.AppHost.dll"
# shellcheck source=eng/servers/lib.sh
. "$root/eng/servers/lib.sh"
FTP_LOG_NAME=run
say() { printf '[run] %s\n' "$*"; }
export ASPIRE_CLI_TELEMETRY_OPTOUT=1 DOTNET_CLI_TELEMETRY_OPTOUT=1 DOTNET_NOLOGO=1

apphost_pid() { [ -s "$run/apphost.pid" ] && is_running "$(cat "$run/apphost.pid")" && cat "$run/apphost.pid"; }

# Every process the platform starts inherits FTP_RUN_MARKER (DCP passes its environment on): after a stop, whatever
# still carries this checkout's marker was left behind and is stopped too.
leftovers() {
  local needle="FTP_RUN_MARKER=$run" pid
  for pid in $(ps -eo pid --no-headers); do
    [ "$pid" = $$ ] && continue
    if grep -qzxF "$needle" "/proc/$pid/environ" 2>/dev/null && is_running "$pid"; then echo "$pid"; fi
  done
}

stop_platform() {
  local pid left
  if pid=$(apphost_pid); then
    say "stopping the AppHost (pid $pid) and everything it started"
    kill -TERM "$pid" 2>/dev/null || true
    for _ in $(seq 1 600); do is_running "$pid" || break; sleep 0.1; done
    is_running "$pid" && kill -KILL "$pid" 2>/dev/null
  fi
  # DCP stops its executables once the AppHost is gone; give it a moment, then stop what is still there.
  for _ in $(seq 1 150); do left=$(leftovers); [ -z "$left" ] && break; sleep 0.2; done
  if [ -n "$left" ]; then
    say "stopping what was left behind: $(echo "$left" | tr '\n' ' ')"
    # shellcheck disable=SC2086
    kill -TERM $left 2>/dev/null || true
    sleep 5
    left=$(leftovers)
    # shellcheck disable=SC2086
    [ -n "$left" ] && kill -KILL $left 2>/dev/null || true
  fi
  rm -f "$run/apphost.pid" "$run/platform.env"
  say "stopped"
}

aspire() {
  dotnet tool restore >/dev/null
  dotnet aspire "$@" --apphost "$apphost_project" --nologo
}

command=start
detach=0
fresh=0
resource=
while [ $# -gt 0 ]; do
  case "$1" in
    stop|status) command=$1 ;;
    restart|logs) command=$1; resource=${2:?"usage: ./run.sh $1 NAME"}; shift ;;
    --detach) detach=1 ;;
    --fresh) fresh=1 ;;
    --verbose) export Logging__Console__LogLevel__Default=Information Logging__LogLevel__Default=Information ;;
    -h|--help) sed -n '2,17p' "$0"; exit 0 ;;
    *) echo "unknown argument: $1 (see ./run.sh --help)" >&2; exit 2 ;;
  esac
  shift
done

mkdir -p "$run/logs"

case "$command" in
  stop) stop_platform; exit 0 ;;
  status)
    apphost_pid >/dev/null || { say "not running"; exit 0; }
    cat "$run/platform.env" 2>/dev/null || true
    # shellcheck disable=SC1091
    [ -s "$run/platform.env" ] && . "$run/platform.env" && { code=$(curl -s -m 5 -o /dev/null -w '%{http_code}' "${FINETUNE_BASE_URL%/v1}/health" || true); [ "$code" = 000 ] && code="unreachable" || code="HTTP $code"; say "gateway ${FINETUNE_BASE_URL%/v1}/health: $code"; }
    # Every resource with its state, health and URLs.
    aspire describe --non-interactive
    exit 0 ;;
  restart)
    apphost_pid >/dev/null || { say "not running"; exit 1; }
    # A resource with replicas (training-worker) runs as instances named NAME-xxxxxxxx: restart each.
    instances=$(aspire describe --format Json --non-interactive | awk -v wanted="$resource" '
      /"name":/ { gsub(/[",]/, "", $2); name = $2 }
      /"displayName":/ { gsub(/[",]/, "", $2); if ($2 == wanted) print name }')
    [ -n "$instances" ] || { say "no resource named $resource (./run.sh status lists them)"; exit 1; }
    for instance in $instances; do aspire resource "$instance" restart --non-interactive; done
    exit ;;
  logs) apphost_pid >/dev/null || { say "not running"; exit 1; }; aspire logs "$resource" --follow; exit ;;
esac

if apphost_pid >/dev/null; then
  say "the platform is already running (./run.sh stop to stop it):"
  cat "$run/platform.env" 2>/dev/null || true
  exit 1
fi
# A platform killed hard may have left processes behind.
[ -n "$(leftovers)" ] && stop_platform

if [ "$fresh" = 1 ]; then
  say "--fresh: forgetting all data under $run"
  [ -d "$run/data/postgres" ] && rm -rf "$(dirname "$(postgres_cluster_dir "$run/data/postgres")")"
  rm -rf "$run/data" "$run/secrets.env" "$run/logs"
  mkdir -p "$run/logs"
fi

started_ms=$(($(date +%s%N) / 1000000))
"$root/eng/packages.sh" run

# Secrets are made once per checkout and kept, so keys and data survive restarts.
if [ ! -s "$run/secrets.env" ]; then
  {
    echo "internal_token=$(openssl rand -hex 32)"
    echo "bootstrap_admin_key=sk-ft-admin-$(openssl rand -hex 24)"
    echo "postgres_password=$(openssl rand -hex 16)"
  } > "$run/secrets.env"
  chmod 600 "$run/secrets.env"
fi
# The broker's passwords (the operators' management user; each service's own user; rabbitmq_password is the one user
# of a container broker) and each service's PostgreSQL role's, added to older secrets.env too.
database_roles="datasets training evaluation gateway"
broker_users="datasets training training-worker evaluation gateway"
for secret in rabbitmq_password rabbitmq_admin_password $(for role in $database_roles; do echo "postgres_${role}_password"; done) \
  $(for user in $broker_users; do echo "rabbitmq_${user//-/_}_password"; done); do
  grep -q "^$secret=" "$run/secrets.env" || echo "$secret=$(openssl rand -hex 16)" >> "$run/secrets.env"
done
# shellcheck disable=SC1091
. "$run/secrets.env"
role_passwords=()
for role in $database_roles; do
  secret="postgres_${role}_password"
  role_passwords+=("Parameters__postgres-$role-password=${!secret}")
done
for user in $broker_users; do
  secret="rabbitmq_${user//-/_}_password"
  role_passwords+=("Parameters__rabbitmq-$user-password=${!secret}")
done

say "building ($configuration)"
dotnet build "$apphost_project" -c "$configuration" -nologo -v:q -clp:ErrorsOnly\;NoSummary
dotnet build "$root/src/FineTunePlatform.Cli" -c "$configuration" -nologo -v:q -clp:ErrorsOnly\;NoSummary

# The dashboard's own ports, reserved like every other port of ours (eng/servers/lib.sh); the AppHost inherits the
# reservations and reserves the services' and servers' ports itself.
reserve_port dashboard_port
reserve_port otlp_port
reserve_port resource_service_port
trap 'say "start-up failed or was interrupted; stopping what was started"; stop_platform; exit 1' ERR INT TERM
rm -f "$run/platform.env"
(
  cd "$root/FineTunePlatform.AppHost"
  exec env FTP_RUN_MARKER="$run" \
    DOTNET_ENVIRONMENT=Development \
    ASPIRE_ALLOW_UNSECURED_TRANSPORT=true \
    ASPNETCORE_URLS="http://127.0.0.1:$dashboard_port" \
    ASPIRE_DASHBOARD_OTLP_ENDPOINT_URL="http://127.0.0.1:$otlp_port" \
    ASPIRE_RESOURCE_SERVICE_ENDPOINT_URL="http://127.0.0.1:$resource_service_port" \
    "Parameters__internal-token=$internal_token" \
    "Parameters__bootstrap-admin-key=$bootstrap_admin_key" \
    "Parameters__postgres-password=$postgres_password" \
    "Parameters__rabbitmq-password=$rabbitmq_password" \
    "Parameters__rabbitmq-admin-password=$rabbitmq_admin_password" \
    "${role_passwords[@]}" \
    setsid dotnet "$apphost_dll" --Platform:DataDirectory="$run/data" --Platform:EnvironmentFile="$run/platform.env" \
    </dev/null >"$run/logs/apphost.log" 2>&1
) &
echo $! > "$run/apphost.pid"

say "waiting for every resource to be healthy (the AppHost's output: $run/logs/apphost.log)"
for _ in $(seq 1 3000); do
  [ -s "$run/platform.env" ] && break
  if ! apphost_pid >/dev/null; then
    say "the AppHost exited; the end of its output:"
    tail -n 40 "$run/logs/apphost.log" >&2
    false
  fi
  sleep 0.2
done
if [ ! -s "$run/platform.env" ]; then
  say "the platform did not become healthy in 10 minutes; the end of the AppHost's output:"
  tail -n 40 "$run/logs/apphost.log" >&2
  false
fi
trap - ERR INT TERM

elapsed_ms=$(($(date +%s%N) / 1000000 - started_ms))
# shellcheck disable=SC1091
. "$run/platform.env"
cat <<EOF
[run] FineTunePlatform is ready in $((elapsed_ms / 1000)).$(((elapsed_ms % 1000) / 100)) s.

  FINETUNE_BASE_URL=$FINETUNE_BASE_URL
  FINETUNE_ADMIN_KEY=$FINETUNE_ADMIN_KEY
  FINETUNE_DASHBOARD_URL=$FINETUNE_DASHBOARD_URL

  (all in .run/platform.env: \`set -a; . .run/platform.env; set +a\`; README.md, "Using it", makes a team's key)
  status: ./run.sh status    one resource: ./run.sh restart NAME, ./run.sh logs NAME    stop: ./run.sh stop$([ "$detach" = 1 ] || echo " or Ctrl-C")
EOF

if [ "$detach" = 1 ]; then
  exit 0
fi

trap 'echo; stop_platform; exit 0' INT TERM
tail -n 0 -f "$run/logs/apphost.log" &
follower=$!
while apphost_pid >/dev/null; do sleep 1; done
kill "$follower" 2>/dev/null || true
say "the AppHost has exited"
stop_platform
