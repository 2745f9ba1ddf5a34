# Sourced by the scripts that drive a whole running stack (fuzz, web tests,
# web benchmark): `start_stack NAME` runs `pai run` on its own database,
# events exchange, free ports and scratch folder, and removes all of them
# when the calling script exits.
#
# After it returns: URL (the gateway), WORK (scratch folder), PAI_LOG,
# PAI_PID, DATABASE_URL and the services' addresses are exported.
#
#   PAI=PATH   the pai binary (default: the debug build in CARGO_TARGET_DIR)
#   WEB_DIR    the web app the gateway serves (default: frontend/out)
#   STACK_EXTRA_PIDS  processes started beside the stack, stopped with it

stack_as_root() { if [ "$(id -u)" -eq 0 ]; then "$@"; else sudo "$@"; fi; }
stack_apt_install() {
  echo "stack: installing $*"
  stack_as_root apt-get update -qq
  stack_as_root env DEBIAN_FRONTEND=noninteractive apt-get install -y -qq "$@"
}

stack_cleanup() {
  if [ -n "${PAI_PID:-}" ]; then kill "$PAI_PID" 2>/dev/null && wait "$PAI_PID" 2>/dev/null || true; fi
  # Helpers the caller started beside the stack (a fake Google).
  for pid in ${STACK_EXTRA_PIDS:-}; do kill "$pid" 2>/dev/null || true; done
  [ -n "${STACK_DB:-}" ] && psql "$STACK_ADMIN_URL" -qc "DROP DATABASE IF EXISTS ${STACK_DB} WITH (FORCE)" >/dev/null 2>&1
  [ -n "${WORK:-}" ] && rm -rf "$WORK"
  [ -n "${STACK_EXCHANGE:-}" ] && bash scripts/rabbitmq-tidy.sh "$STACK_EXCHANGE"
  return 0
}

start_stack() {
  local name=$1
  command -v curl >/dev/null || stack_apt_install curl
  command -v psql >/dev/null || stack_apt_install postgresql-client
  local target=${CARGO_TARGET_DIR:-$HOME/.cache/pai/target}
  PAI=${PAI:-$target/debug/pai}
  STACK_ADMIN_URL=${PAI_TEST_DATABASE_URL:-postgres://postgres:postgres@127.0.0.1:5432/postgres?sslmode=disable}
  local base=${STACK_ADMIN_URL%%\?*}; base=${base%/*}
  local id=$$
  STACK_DB=pai_${name}_$id
  STACK_EXCHANGE=pai.$name.$id
  WORK=$(mktemp -d)
  trap stack_cleanup EXIT

  # Six free TCP ports: the gateway and five gRPC services.
  local port auth docs search inf mail
  read -r port auth docs search inf mail < <(python3 - <<'PY'
import socket
socks = [socket.socket() for _ in range(6)]
for s in socks:
    s.bind(("127.0.0.1", 0))
print(*(s.getsockname()[1] for s in socks))
PY
  )
  URL=http://127.0.0.1:$port
  PAI_LOG=$WORK/pai.log
  export URL WORK PAI_LOG
  export DATABASE_URL="$base/$STACK_DB?sslmode=disable" HOST=127.0.0.1 PORT=$port RATE_LIMIT_RPS=0 \
    AUTH_GRPC_ADDR=127.0.0.1:$auth AUTH_URL=http://127.0.0.1:$auth \
    DOCUMENTS_GRPC_ADDR=127.0.0.1:$docs DOCUMENTS_URL=http://127.0.0.1:$docs \
    SEARCH_GRPC_ADDR=127.0.0.1:$search SEARCH_URL=http://127.0.0.1:$search \
    INFERENCE_GRPC_ADDR=127.0.0.1:$inf INFERENCE_URL=http://127.0.0.1:$inf \
    MAIL_SYNC_GRPC_ADDR=127.0.0.1:$mail MAIL_SYNC_URL=http://127.0.0.1:$mail \
    AMQP_EVENTS_EXCHANGE=$STACK_EXCHANGE UPLOAD_PATH="$WORK/uploads" VECTOR_DB_PATH="$WORK/vector_db" \
    ALLOWED_ORIGINS=$URL WEB_DIR=${WEB_DIR:-$PWD/frontend/out} \
    GMAIL_REDIRECT_URI=${GMAIL_REDIRECT_URI:-$URL/api/gmail/callback} \
    JWT_SECRET_KEY=$(head -c 48 /dev/urandom | base64 | tr -d '\n/+=') RUST_LOG=${RUST_LOG:-warn}
  "$PAI" migrate >/dev/null
  "$PAI" run --no-migrate >"$PAI_LOG" 2>&1 &
  PAI_PID=$!
  for _ in $(seq 600); do curl -sf "$URL/readyz" >/dev/null && break; sleep 0.2; done
  if ! curl -sf "$URL/readyz" >/dev/null; then
    echo "stack: never became ready"; tail -20 "$PAI_LOG"; return 1
  fi
}

# Starts a fake Google (pai-fake-google: OAuth and Gmail v1 in Google's wire
# format) holding the e-mail corpus as the Gmail account $PAI_MAIL_ADDRESS,
# and points the next `start_stack` at it. Call before `start_stack`.
start_fake_google() {
  local target=${CARGO_TARGET_DIR:-$HOME/.cache/pai/target}
  local fake=${FAKE_GOOGLE:-$target/debug/fake-google}
  export PAI_MAIL_ADDRESS=${PAI_MAIL_ADDRESS:-mail-owner@example.com}
  local out
  out=$(mktemp)
  "$fake" --port 0 --mailbox "$PAI_MAIL_ADDRESS=testdata/email/dev" >"$out" 2>&1 &
  STACK_EXTRA_PIDS="${STACK_EXTRA_PIDS:-} $!"
  for _ in $(seq 100); do [ -s "$out" ] && break; sleep 0.1; done
  local google
  google=$(head -n1 "$out")
  case "$google" in
    http://*) ;;
    *) echo "stack: the fake Google did not start: $(cat "$out")"; return 1 ;;
  esac
  rm -f "$out"
  export GMAIL_CLIENT_ID=pai-test-client.apps.googleusercontent.com GMAIL_CLIENT_SECRET=GOCSPX-pai-test-secret \
    GOOGLE_AUTH_URL=$google/o/oauth2/v2/auth GOOGLE_TOKEN_URL=$google/token GOOGLE_REVOKE_URL=$google/revoke \
    GMAIL_API_BASE_URL=$google MAIL_TOKEN_ENCRYPTION_KEY=$(head -c 32 /dev/urandom | base64)
}

# Fails when the stack logged a panic or an error.
stack_log_clean() {
  if grep -qE "panicked|ERROR" "$PAI_LOG"; then
    echo "stack: the stack logged errors:"; grep -E "panicked|ERROR" "$PAI_LOG" | head -20
    echo "stack: its last warnings:"; grep -E "WARN" "$PAI_LOG" | tail -10
    return 1
  fi
}
