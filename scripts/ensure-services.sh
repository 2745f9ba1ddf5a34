#!/usr/bin/env bash
# Make PostgreSQL and RabbitMQ reachable for local runs and tests.
# Does nothing when both already answer; otherwise installs (Debian apt) and
# starts the local server. Never touches a remote host.
set -euo pipefail

DATABASE_URL="${DATABASE_URL:-postgres://postgres:postgres@127.0.0.1:5432/pai?sslmode=disable}"
AMQP_URL="${AMQP_URL:-amqp://guest:guest@127.0.0.1:5672/%2f}"

say() { echo "ensure-services: $*"; }
die() { echo "ensure-services: error: $*" >&2; exit 1; }

as_root() { if [ "$(id -u)" -eq 0 ]; then "$@"; else sudo "$@"; fi; }
as_postgres() {
  if [ "$(id -u)" -eq 0 ]; then runuser -u postgres -- "$@"; else sudo -u postgres "$@"; fi
}

apt_updated=0
apt_install() {
  if [ "$apt_updated" -eq 0 ]; then
    say "apt-get update"
    as_root apt-get update -qq
    apt_updated=1
  fi
  say "installing $*"
  as_root env DEBIAN_FRONTEND=noninteractive apt-get install -y -qq "$@"
}

# parse_url URL DEFAULT_PORT: sets HOST and PORT from scheme://[user[:pw]@]host[:port][/...]
parse_url() {
  local rest=${1#*://}
  rest=${rest%%[/?#]*}
  rest=${rest##*@}
  if [[ $rest == \[* ]]; then # [ipv6]:port
    HOST=${rest%%]*}; HOST=${HOST#[}
    PORT=${rest##*]}; PORT=${PORT#:}
  else
    HOST=${rest%%:*}
    PORT=${rest#"$HOST"}; PORT=${PORT#:}
  fi
  HOST=${HOST:-127.0.0.1}
  PORT=${PORT:-$2}
}

# shellcheck disable=SC2016 # $1/$2 expand in the child bash
reachable() { timeout 2 bash -c 'exec 3<>"/dev/tcp/$1/$2"' _ "$1" "$2" 2>/dev/null; }

wait_port() { # host port seconds
  local i
  for ((i = 0; i < $3; i++)); do
    reachable "$1" "$2" && return 0
    sleep 1
  done
  return 1
}

is_local() { case $1 in 127.0.0.1 | localhost | ::1) return 0 ;; *) return 1 ;; esac; }

# check NAME VAR HOST PORT: 0 if reachable, 1 if local and must be started; exits if remote.
check() {
  if reachable "$3" "$4"; then
    say "$1 reachable at $3:$4"
    return 0
  fi
  is_local "$3" || die "$1 at $3:$4 (from $2) is unreachable; start it or point $2 at a reachable server"
  say "$1 not reachable at $3:$4, starting a local server"
  return 1
}

start_postgres() { # host port
  local host=$1 port=$2 ver
  if ! compgen -G '/usr/lib/postgresql/*/bin/postgres' >/dev/null; then
    apt_install postgresql
  fi
  if [ -z "$(ls /etc/postgresql 2>/dev/null)" ]; then
    # shellcheck disable=SC2012 # version folder names are plain
    ver=$(ls /usr/lib/postgresql | sort -V | tail -1)
    say "creating postgresql cluster $ver/main"
    as_root pg_createcluster "$ver" main
  fi
  # shellcheck disable=SC2012
  ver=$(ls /etc/postgresql | sort -V | tail -1)
  say "starting postgresql $ver/main"
  as_root pg_ctlcluster --skip-systemctl-redirect "$ver" main start \
    || as_root service postgresql start
  wait_port "$host" "$port" 30 || die "postgresql did not open port $port within 30 s"
  say "setting the postgres role's password to 'postgres'"
  as_postgres psql -q -p "$port" -c "ALTER USER postgres PASSWORD 'postgres'"
}

start_rabbitmq() { # host port
  local host=$1 port=$2
  if [ ! -x /usr/sbin/rabbitmq-server ] && ! command -v rabbitmq-server >/dev/null; then
    apt_install rabbitmq-server
  fi
  say "starting rabbitmq-server"
  as_root rabbitmq-server -detached || as_root service rabbitmq-server start
  wait_port "$host" "$port" 60 || die "rabbitmq did not open port $port within 60 s"
}

parse_url "$DATABASE_URL" 5432
check postgresql DATABASE_URL "$HOST" "$PORT" || {
  start_postgres "$HOST" "$PORT"
  say "postgresql reachable at $HOST:$PORT"
}

parse_url "$AMQP_URL" 5672
check rabbitmq AMQP_URL "$HOST" "$PORT" || {
  start_rabbitmq "$HOST" "$PORT"
  say "rabbitmq reachable at $HOST:$PORT"
}

# Queues that killed test runs left behind slow a local broker to a halt.
if is_local "$HOST"; then
  bash "$(dirname "$0")/rabbitmq-tidy.sh" || die "rabbitmq at $HOST:$PORT does not answer"
fi
