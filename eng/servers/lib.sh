# shellcheck shell=bash
# Shared by eng/servers.sh and the per-server scripts beside this file (postgres.sh, redis.sh, rabbitmq.sh).

# Port reservations of every FineTunePlatform process on this machine (these scripts and the test suite's
# LoopbackPorts): one lock file per port, held with flock(2) by whoever reserved the port, for as long as that
# process or anything it started lives.
FTP_PORT_LOCKS=${FTP_PORT_LOCKS:-/tmp/finetuneplatform-ports}

ftp_log() { printf '[%s] %s\n' "${FTP_LOG_NAME:-servers}" "$*" >&2; }

port_in_use() { ss -Htln "sport = :$1" 2>/dev/null | grep -q .; }

# The first port of the kernel's ephemeral range: ports from it up are what outgoing connections (and bind to port 0)
# get, so a server port chosen there can be taken by any client in the meantime.
ephemeral_start() {
  local low _
  read -r low _ < /proc/sys/net/ipv4/ip_local_port_range 2>/dev/null || low=32768
  echo "$low"
}

# reserve_port VAR: sets VAR to a loopback port below the ephemeral range that nobody listens on and that no other
# FineTunePlatform process has reserved, and keeps the reservation: the lock is taken on a new file descriptor of
# this shell, which every process started from here on inherits, so the server that binds the port holds it too.
# Choosing and binding are two steps; the lock is what keeps two of our starts from choosing the same port between
# them. (A process that is not ours can still take it: the callers check who listens and retry.)
reserve_port() {
  local target=$1 high port fd
  mkdir -p "$FTP_PORT_LOCKS" 2>/dev/null || true
  chmod 1777 "$FTP_PORT_LOCKS" 2>/dev/null || true
  high=$(($(ephemeral_start) - 1))
  for _ in $(seq 1 500); do
    port=$((15000 + (RANDOM * 32768 + RANDOM) % (high - 15000)))
    port_in_use "$port" && continue
    { exec {fd}>>"$FTP_PORT_LOCKS/$port.lock"; } 2>/dev/null || continue
    if flock -n "$fd"; then
      if ! port_in_use "$port"; then
        printf -v "$target" '%s' "$port"
        return 0
      fi
    fi
    exec {fd}>&-
  done
  ftp_log "error: no free port found below $high"
  return 1
}

# The PID listening on 127.0.0.1:PORT (empty when none).
listener_pid() {
  ss -Htlnp "sport = :$1" 2>/dev/null | grep -o 'pid=[0-9]*' | head -n 1 | cut -d= -f2
}

# A stopped process can linger as a zombie until its (re-parented) parent reaps it: that counts as stopped.
is_running() {
  local state
  state=$(ps -o stat= -p "$1" 2>/dev/null) || return 1
  [ -n "$state" ] && [ "${state:0:1}" != Z ]
}

# Whether any process of the process group is alive (zombies do not count).
group_running() {
  ps -o stat= -g "$1" 2>/dev/null | grep -qv '^Z'
}

# Where PostgreSQL keeps the cluster of the server directory DIR: DIR/cluster, unless a parent of DIR is closed to
# the postgres user (a root `mktemp -d` is mode 700, so is /root): then a world-traversable place named after DIR, so
# it still persists between starts.
postgres_cluster_dir() {
  local dir=$1
  mkdir -p "$dir"
  if [ "$(id -u)" -eq 0 ] && ! runuser -u postgres -- test -x "$dir" 2>/dev/null; then
    echo "/var/tmp/finetuneplatform-pg-$(printf '%s' "$dir" | sha256sum | cut -c1-12)/cluster"
  else
    echo "$dir/cluster"
  fi
}

# A JSON string's content for VALUE (backslashes and double quotes escaped; the callers' values have no control
# characters).
json_escape() {
  local value=${1//\\/\\\\}
  printf '%s' "${value//\"/\\\"}"
}

# RabbitMQ's rabbit_password_hashing_sha256 of PASSWORD, as its definitions files hold it:
# base64(salt ++ sha256(salt ++ password)) with a random 4-byte salt.
rabbit_password_hash() {
  local salt
  salt=$(openssl rand -hex 4 | sed 's/../\\x&/g')
  { printf '%b' "$salt"; { printf '%b' "$salt"; printf '%s' "$1"; } | openssl dgst -sha256 -binary; } | base64 -w0
}
