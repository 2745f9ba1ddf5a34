#!/usr/bin/env bash
# make bench-auth: the auth path's throughput and latency, each beside its
# reference measured in the same run on the same machine:
#   1. GET /api/users/profile at 64 connections vs `pgbench -S -c 64`
#   2. logins/s vs the raw argon2id verification rate (same cost, all cores)
#   3. profile p99 while a login storm runs beside it
# Needs a release build of pai and the argon2_rate example (make bench-auth).
# BENCH_PERF_DIR=DIR also records `perf record -a -g` of phases 1 and 2 there.
set -euo pipefail

DURATION=${BENCH_SECONDS:-10}
# Logins in flight in phase 2 (the storm of phase 3 always uses 8).
LOGIN_CONNECTIONS=${BENCH_LOGIN_CONNECTIONS:-8}
TARGET=${CARGO_TARGET_DIR:-$HOME/.cache/pai/target}/release
PAI=$TARGET/pai
ADMIN_URL=${PAI_TEST_DATABASE_URL:-postgres://postgres:postgres@127.0.0.1:5432/postgres?sslmode=disable}
BASE=${ADMIN_URL%%\?*}; BASE=${BASE%/*}
DB=pai_bench_$$
PORT=${BENCH_PORT:-18080}
URL=http://127.0.0.1:$PORT
WORK=$(mktemp -d)

need() { command -v "$1" >/dev/null || { echo "bench-auth: installing $2"; apt-get install -y "$2" >/dev/null; }; }
need wrk wrk
need pgbench postgresql-contrib
need jq jq

# perf_during NAME: records the whole machine for the next DURATION seconds.
perf_during() {
  [ -n "${BENCH_PERF_DIR:-}" ] || return 0
  mkdir -p "$BENCH_PERF_DIR"
  perf record -a -g -q -o "$BENCH_PERF_DIR/$1.data" -- sleep "$DURATION" >/dev/null 2>&1 &
  PERF_PID=$!
}

cleanup() {
  [ -n "${PAI_PID:-}" ] && kill "$PAI_PID" 2>/dev/null && wait "$PAI_PID" 2>/dev/null || true
  psql "$ADMIN_URL" -qc "DROP DATABASE IF EXISTS ${DB} WITH (FORCE)" >/dev/null 2>&1 || true
  psql "$ADMIN_URL" -qc "DROP DATABASE IF EXISTS ${DB}_pg WITH (FORCE)" >/dev/null 2>&1 || true
  rm -rf "$WORK"
}
trap cleanup EXIT

export DATABASE_URL="$BASE/$DB?sslmode=disable" RATE_LIMIT_RPS=0 PORT HOST=127.0.0.1 \
  AUTH_GRPC_ADDR=127.0.0.1:18051 AUTH_URL=http://127.0.0.1:18051 RUST_LOG=warn \
  JWT_SECRET_KEY=$(head -c 48 /dev/urandom | base64 | tr -d "\n/+=") DB_POOL_SIZE=${DB_POOL_SIZE:-16} \
  AMQP_EVENTS_EXCHANGE=pai.bench
"$PAI" migrate >/dev/null
# Only what the measured routes use: auth behind the gateway.
"$PAI" run --no-migrate --service auth --service gateway >"$WORK/pai.log" 2>&1 &
PAI_PID=$!
for _ in $(seq 100); do curl -sf "$URL/healthz" >/dev/null && break; sleep 0.1; done

PW=plum-orchard-lantern-42
TOKEN=$(curl -sf "$URL/api/auth/register" -H 'content-type: application/json' \
  -d "{\"email\":\"bench@example.com\",\"username\":\"bench\",\"password\":\"$PW\"}" | jq -r .access_token)

cat >"$WORK/login.lua" <<LUA
wrk.method = "POST"
wrk.headers["Content-Type"] = "application/json"
wrk.body = '{"email":"bench@example.com","password":"$PW"}'
LUA

# wrk --latency prints "50%  1.23ms"; normalise to milliseconds.
pct() { awk -v p="$1%" '$1==p { v=$2; if (v ~ /us$/) { sub(/us/,"",v); v/=1000 } else if (v ~ /ms$/) { sub(/ms/,"",v) } else if (v ~ /s$/) { sub(/s/,"",v); v*=1000 }; printf "%.2f", v }' "$2"; }
rps() { awk '/Requests\/sec/ { printf "%.0f", $2 }' "$1"; }
non2xx() { awk '/Non-2xx/ { print $NF }' "$1"; }

echo "== 1. profile throughput, 64 connections, ${DURATION}s"
perf_during profile
wrk -t2 -c64 -d"${DURATION}s" --latency -H "Authorization: Bearer $TOKEN" "$URL/api/users/profile" >"$WORK/profile.txt"
psql "$ADMIN_URL" -qc "CREATE DATABASE ${DB}_pg" >/dev/null
pgbench -q -i -s 1 "$BASE/${DB}_pg" >/dev/null 2>&1
pgbench -S -c 64 -j 2 -T "$DURATION" "$BASE/${DB}_pg" >"$WORK/pgbench.txt" 2>/dev/null
PROFILE_RPS=$(rps "$WORK/profile.txt")
PG_TPS=$(awk '/^tps/ { printf "%.0f", $3 }' "$WORK/pgbench.txt")

echo "== 2. logins/s ($LOGIN_CONNECTIONS connections) vs raw argon2id"
RAW=$("$TARGET/examples/argon2_rate" "$DURATION" | awk '{ print $(NF-1) }')
perf_during login
wrk -t2 -c"$LOGIN_CONNECTIONS" -d"${DURATION}s" -s "$WORK/login.lua" "$URL/api/auth/login" >"$WORK/login.txt"
[ -z "${PERF_PID:-}" ] || wait "$PERF_PID"
LOGIN_RPS=$(awk '/Requests\/sec/ { printf "%.1f", $2 }' "$WORK/login.txt")

echo "== 3. profile p99 (16 connections) during a login storm"
wrk -t1 -c8 -d"$((DURATION + 2))s" -s "$WORK/login.lua" "$URL/api/auth/login" >"$WORK/storm.txt" &
STORM=$!
sleep 1
wrk -t1 -c16 -d"${DURATION}s" --latency -H "Authorization: Bearer $TOKEN" "$URL/api/users/profile" >"$WORK/mixed.txt"
wait "$STORM"

ratio() { awk -v a="$1" -v b="$2" 'BEGIN { printf "%.2f", (b > 0 ? a / b : 0) }'; }
echo
printf '%-44s %12s %14s %8s %8s\n' "measure" "pai" "reference" "ratio" "target"
printf '%-44s %12s %14s %8s %8s\n' "profile req/s @64 vs pgbench -S tps @64" "$PROFILE_RPS" "$PG_TPS" "$(ratio "$PROFILE_RPS" "$PG_TPS")" ">=0.5"
printf '%-44s %12s %14s %8s %8s\n' "profile p50 / p99 ms @64" "$(pct 50 "$WORK/profile.txt") / $(pct 99 "$WORK/profile.txt")" "" "" ""
printf '%-44s %12s %14s %8s %8s\n' "logins/s vs argon2id verifications/s" "$LOGIN_RPS" "$RAW" "$(ratio "$LOGIN_RPS" "$RAW")" ">=0.9"
printf '%-44s %12s %14s %8s %8s\n' "profile p99 ms during login storm @16" "$(pct 99 "$WORK/mixed.txt")" "" "" "<20"
printf '%-44s %12s\n' "profile p50 ms during login storm @16" "$(pct 50 "$WORK/mixed.txt")"
printf '%-44s %12s\n' "logins/s during the storm" "$(awk '/Requests\/sec/ { printf "%.1f", $2 }' "$WORK/storm.txt")"
for f in profile login mixed storm; do
  n=$(non2xx "$WORK/$f.txt"); [ -n "$n" ] && echo "warning: $f had $n non-2xx answers"
done
true
