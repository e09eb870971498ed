#!/usr/bin/env bash
# RabbitMQ in the foreground as a private node on 127.0.0.1: AMQP on PORT, the management API on MANAGEMENT_PORT,
# its data, logs, Erlang cookie and its own epmd under DIR:
#
#   RABBITMQ_VHOST=... RABBITMQ_ADMIN_USER=... RABBITMQ_ADMIN_PASSWORD=... \
#     [RABBITMQ_USER=... RABBITMQ_PASSWORD=...] [RABBITMQ_PASSWORD_<SERVICE>=...]... \
#     eng/servers/rabbitmq.sh DIR PORT MANAGEMENT_PORT
#
# Its users, applied at every start (so a changed password takes effect), none with a tag but the operators':
# - per service, when RABBITMQ_PASSWORD_<SERVICE> is set (SERVICE upper-cased, `-` as `_`: TRAINING_WORKER), the
#   service's own user finetuneplatform-<service> with the permissions on RABBITMQ_VHOST that
#   eng/servers/rabbitmq-permissions.tsv gives it (what the AppHost's services connect as);
# - RABBITMQ_USER, when set, a user with every permission on RABBITMQ_VHOST only (the tests' services, which each
#   get a virtual host of their own; the AppHost does not make it);
# - RABBITMQ_ADMIN_USER, the operators' user (administrator tag, the management API on loopback), whose password only
#   the operator scripts know.
# `guest` is never created (a node that imports definitions at boot makes no default user). Importing definitions
# only adds, so on a node that existed before this start every user the definitions do not name (guest on a node made
# before definitions, the shared services' user of the AppHost's broker before each service had its own) is deleted
# once the node is up.
# The one way the platform starts RabbitMQ: eng/servers.sh and the AppHost both run this script. SIGTERM or SIGINT
# stops the broker, then its epmd. Recipe measured on our machines: ../shared/ENVIRONMENT.md.
#
# Why each step is here (found starting brokers on freshly installed machines):
# - The Erlang cookie is written before any Erlang VM starts. The broker and every CLI tool create one when they find
#   none, so tools started beside the broker could each write their own.
# - epmd is started and seen listening before the broker: an Erlang VM that finds no epmd on its port starts one of
#   its own as a daemon (`epmd -daemon`, not ours to stop, bound to ::1 as well), and ours then fails to bind.
# - Readiness is not `rabbitmqctl wait`: it reads the PID file the broker truncates and then writes, and an empty
#   file ends the wait at once ({:garbage_in_pid_file}, exit 69); callers probe the AMQP port and the management API.
set -uo pipefail
here=$(cd "$(dirname "$0")" && pwd)
# shellcheck source=lib.sh
. "$here/lib.sh"
FTP_LOG_NAME=rabbitmq

dir=${1:?usage: rabbitmq.sh DIR PORT MANAGEMENT_PORT}
port=${2:?usage: rabbitmq.sh DIR PORT MANAGEMENT_PORT}
management_port=${3:?usage: rabbitmq.sh DIR PORT MANAGEMENT_PORT}
for required in RABBITMQ_VHOST RABBITMQ_ADMIN_USER RABBITMQ_ADMIN_PASSWORD; do
  [ -n "${!required:-}" ] || { ftp_log "error: $required must be set"; exit 1; }
done
bin=${RABBIT_BIN:-/usr/lib/rabbitmq/bin}
[ -x "$bin/rabbitmq-server" ] || { ftp_log "error: rabbitmq-server is not installed (Debian: apt-get install -y rabbitmq-server)"; exit 1; }

# A node that existed before this start may hold users the definitions no longer name (deleted once it is up).
made_before=0
[ -d "$dir/mnesia" ] && [ -n "$(ls -A "$dir/mnesia" 2>/dev/null)" ] && made_before=1
mkdir -p "$dir/mnesia" "$dir/log"
dir=$(cd "$dir" && pwd)
rm -f "$dir/guest-deleted"
export HOME=$dir
if [ ! -s "$dir/.erlang.cookie" ]; then
  rm -f "$dir/.erlang.cookie"
  (umask 077 && openssl rand -hex 20 | tr 'a-f' 'A-F' > "$dir/.erlang.cookie")
fi
chmod 400 "$dir/.erlang.cookie"

export RABBITMQ_NODENAME="ftp-$(printf '%s' "$dir" | sha256sum | cut -c1-10)@localhost"
export RABBITMQ_NODE_IP_ADDRESS=127.0.0.1 RABBITMQ_NODE_PORT=$port
export RABBITMQ_MNESIA_BASE="$dir/mnesia" RABBITMQ_LOG_BASE="$dir/log"
export RABBITMQ_CONFIG_FILE="$dir/rabbitmq.conf" RABBITMQ_ENABLED_PLUGINS_FILE="$dir/enabled_plugins"
export RABBITMQ_PID_FILE="$dir/rabbitmq.pid"
export ERL_EPMD_ADDRESS=127.0.0.1
export RABBITMQ_SERVER_ADDITIONAL_ERL_ARGS="-kernel inet_dist_use_interface {127,0,0,1}"
export RABBITMQ_CTL_ERL_ARGS="-kernel inet_dist_use_interface {127,0,0,1}"
# Debian's /etc/rabbitmq/rabbitmq-env.conf is the machine's node, not this one.
export RABBITMQ_CONF_ENV_FILE=/dev/null

cat > "$dir/rabbitmq.conf" <<CONF
listeners.tcp.default = 127.0.0.1:$port
management.tcp.ip = 127.0.0.1
management.tcp.port = $management_port
log.console = true
log.console.level = warning
log.file = false
# Trainer workers hold a TrainJob message (unacknowledged) for the whole job, so the prefetch limit is their
# capacity; the default 30-minute delivery timeout would take a long job away from a healthy worker.
consumer_timeout = 86400000
# Users, the platform's virtual host and permissions (written below at every start). A node that imports definitions
# at boot creates no default guest user.
load_definitions = $dir/definitions.json
CONF
vhost=$(json_escape "$RABBITMQ_VHOST")
# user NAME PASSWORD TAG...: one entry of the definitions' users.
user() {
  local name=$1 password=$2 tags=
  shift 2
  [ $# -eq 0 ] || tags=$(printf '"%s",' "$@")
  printf '    {"name": "%s", "password_hash": "%s", "hashing_algorithm": "rabbit_password_hashing_sha256", "tags": [%s]},\n' \
    "$(json_escape "$name")" "$(rabbit_password_hash "$password")" "${tags%,}"
}
# permission NAME CONFIGURE WRITE READ: one entry of the definitions' permissions on the platform's virtual host.
permission() {
  printf '    {"user": "%s", "vhost": "%s", "configure": "%s", "write": "%s", "read": "%s"},\n' \
    "$(json_escape "$1")" "$vhost" "$(json_escape "$2")" "$(json_escape "$3")" "$(json_escape "$4")"
}
defined_users=("$RABBITMQ_ADMIN_USER")
users=$(user "$RABBITMQ_ADMIN_USER" "$RABBITMQ_ADMIN_PASSWORD" administrator)
permissions=$(permission "$RABBITMQ_ADMIN_USER" '.*' '.*' '.*')
if [ -n "${RABBITMQ_USER:-}" ]; then
  defined_users+=("$RABBITMQ_USER")
  users+=$'\n'$(user "$RABBITMQ_USER" "${RABBITMQ_PASSWORD:?RABBITMQ_PASSWORD must be set with RABBITMQ_USER}")
  permissions+=$'\n'$(permission "$RABBITMQ_USER" '.*' '.*' '.*')
fi
while IFS=$'\t' read -r service configure write read; do
  case $service in ''|'#'*) continue ;; esac
  variable="RABBITMQ_PASSWORD_$(printf '%s' "$service" | tr 'a-z-' 'A-Z_')"
  [ -n "${!variable:-}" ] || continue
  defined_users+=("finetuneplatform-$service")
  users+=$'\n'$(user "finetuneplatform-$service" "${!variable}")
  permissions+=$'\n'$(permission "finetuneplatform-$service" "$configure" "$write" "$read")
done < "$here/rabbitmq-permissions.tsv"
(umask 077 && cat > "$dir/definitions.json" <<JSON
{
  "users": [
${users%,}
  ],
  "vhosts": [{"name": "$vhost"}],
  "permissions": [
${permissions%,}
  ]
}
JSON
)
echo '[rabbitmq_management].' > "$dir/enabled_plugins"

epmd_pid=
server_pid=
user_deletion_pid=
stop() {
  if [ -n "$user_deletion_pid" ]; then kill -TERM "$user_deletion_pid" 2>/dev/null; fi
  if [ -n "$server_pid" ]; then kill -TERM "$server_pid" 2>/dev/null; wait "$server_pid" 2>/dev/null; fi
  if [ -n "$epmd_pid" ]; then kill -TERM "$epmd_pid" 2>/dev/null; wait "$epmd_pid" 2>/dev/null; fi
}
trap 'stop; exit 0' TERM INT

# Our own epmd (we own its PID; it binds loopback only), on a port and with a distribution port of our own.
for _ in 1 2 3 4 5; do
  reserve_port ERL_EPMD_PORT || exit 1
  epmd -port "$ERL_EPMD_PORT" -address 127.0.0.1 &
  epmd_pid=$!
  for _ in $(seq 1 100); do
    [ "$(listener_pid "$ERL_EPMD_PORT")" = "$epmd_pid" ] && break
    is_running "$epmd_pid" || break
    sleep 0.05
  done
  [ "$(listener_pid "$ERL_EPMD_PORT")" = "$epmd_pid" ] && break
  ftp_log "epmd could not listen on $ERL_EPMD_PORT; trying another port"
  kill "$epmd_pid" 2>/dev/null; wait "$epmd_pid" 2>/dev/null
  epmd_pid=
done
[ -n "$epmd_pid" ] || { ftp_log "error: epmd did not start"; exit 1; }
echo "$epmd_pid" > "$dir/epmd.pid"
reserve_port RABBITMQ_DIST_PORT || { stop; exit 1; }
export ERL_EPMD_PORT RABBITMQ_DIST_PORT

"$bin/rabbitmq-server" &
server_pid=$!
if [ "$made_before" = 1 ]; then
  # Once the node answers its CLI: every user the definitions do not name goes.
  (
    for _ in $(seq 1 120); do
      if existing=$("$bin/rabbitmqctl" --silent -n "$RABBITMQ_NODENAME" list_users 2>/dev/null); then
        while IFS=$'\t' read -r name _; do
          [ -n "$name" ] || continue
          printf '%s\n' "${defined_users[@]}" | grep -qxF -- "$name" && continue
          "$bin/rabbitmqctl" -q -n "$RABBITMQ_NODENAME" delete_user "$name" >/dev/null && ftp_log "deleted the user $name (not in the definitions)"
        done <<< "$existing"
        exit 0
      fi
      sleep 1
    done
  ) &
  user_deletion_pid=$!
fi
status=0
wait "$server_pid" || status=$?
server_pid=
stop
exit "$status"
