#!/usr/bin/env bash
# make fuzz: schemathesis against /api/openapi.json on a running stack with a
# signed-in user, every operation: no 5xx, every error body problem+json,
# only documented status codes and response shapes.
#
#   FUZZ_EXAMPLES=N   examples per operation (default 30; CI runs fewer)
#   PAI=PATH          the pai binary (default: the debug build in CARGO_TARGET_DIR)
#
# The stack runs on its own database, events exchange, ports and folders,
# all removed at the end; schemathesis lives in a virtualenv under
# ~/.cache/pai/fuzz-venv, installed from PyPI when missing.
set -euo pipefail
cd "$(dirname "$0")/.."

EXAMPLES=${FUZZ_EXAMPLES:-30}
SCHEMATHESIS_VERSION=4.32.5
TARGET=${CARGO_TARGET_DIR:-$HOME/.cache/pai/target}
PAI=${PAI:-$TARGET/debug/pai}
VENV=${PAI_FUZZ_VENV:-$HOME/.cache/pai/fuzz-venv}
ADMIN_URL=${PAI_TEST_DATABASE_URL:-postgres://postgres:postgres@127.0.0.1:5432/postgres?sslmode=disable}
BASE=${ADMIN_URL%%\?*}; BASE=${BASE%/*}
ID=$$
DB=pai_fuzz_$ID
WORK=$(mktemp -d)

as_root() { if [ "$(id -u)" -eq 0 ]; then "$@"; else sudo "$@"; fi; }
apt_install() {
  echo "fuzz: installing $*"
  as_root apt-get update -qq
  as_root env DEBIAN_FRONTEND=noninteractive apt-get install -y -qq "$@"
}
command -v curl >/dev/null || apt_install curl
command -v psql >/dev/null || apt_install postgresql-client

if ! "$VENV/bin/schemathesis" --version 2>/dev/null | grep -q "$SCHEMATHESIS_VERSION"; then
  echo "fuzz: installing schemathesis $SCHEMATHESIS_VERSION into $VENV"
  rm -rf "$VENV"
  # Debian's python3 needs its venv package; pyenv's and others carry it.
  python3 -m venv "$VENV" 2>/dev/null || { apt_install python3-venv; python3 -m venv "$VENV"; }
  "$VENV/bin/pip" install -q "schemathesis==$SCHEMATHESIS_VERSION"
fi

# Five free TCP ports: the gateway and four gRPC services.
read -r PORT AUTH_PORT DOCS_PORT SEARCH_PORT INF_PORT < <(python3 - <<'PY'
import socket
socks = [socket.socket() for _ in range(5)]
for s in socks:
    s.bind(("127.0.0.1", 0))
print(*(s.getsockname()[1] for s in socks))
PY
)
URL=http://127.0.0.1:$PORT

cleanup() {
  [ -n "${PAI_PID:-}" ] && kill "$PAI_PID" 2>/dev/null && wait "$PAI_PID" 2>/dev/null || true
  psql "$ADMIN_URL" -qc "DROP DATABASE IF EXISTS ${DB} WITH (FORCE)" >/dev/null 2>&1 || true
  rm -rf "$WORK"
}
trap cleanup EXIT

export DATABASE_URL="$BASE/$DB?sslmode=disable" HOST=127.0.0.1 PORT RATE_LIMIT_RPS=0 \
  AUTH_GRPC_ADDR=127.0.0.1:$AUTH_PORT AUTH_URL=http://127.0.0.1:$AUTH_PORT \
  DOCUMENTS_GRPC_ADDR=127.0.0.1:$DOCS_PORT DOCUMENTS_URL=http://127.0.0.1:$DOCS_PORT \
  SEARCH_GRPC_ADDR=127.0.0.1:$SEARCH_PORT SEARCH_URL=http://127.0.0.1:$SEARCH_PORT \
  INFERENCE_GRPC_ADDR=127.0.0.1:$INF_PORT INFERENCE_URL=http://127.0.0.1:$INF_PORT \
  AMQP_EVENTS_EXCHANGE=pai.fuzz.$ID UPLOAD_PATH="$WORK/uploads" VECTOR_DB_PATH="$WORK/vector_db" \
  JWT_SECRET_KEY=$(head -c 48 /dev/urandom | base64 | tr -d '\n/+=') RUST_LOG=warn
"$PAI" migrate >/dev/null
"$PAI" run --no-migrate >"$WORK/pai.log" 2>&1 &
PAI_PID=$!
for _ in $(seq 600); do curl -sf "$URL/readyz" >/dev/null && break; sleep 0.2; done
curl -sf "$URL/readyz" >/dev/null || { echo "fuzz: the stack never became ready"; tail -20 "$WORK/pai.log"; exit 1; }

PW=plum-orchard-lantern-42
TOKEN=$(curl -sf "$URL/api/auth/register" -H 'content-type: application/json' \
  -d "{\"email\":\"fuzz@example.com\",\"username\":\"fuzz\",\"password\":\"$PW\"}" |
  python3 -c 'import json,sys; print(json.load(sys.stdin)["access_token"])')
# A document, so that routes taking a document id have one to find.
printf '%%PDF-1.4\n%%fuzz\n' >"$WORK/fuzz.pdf"
curl -sf "$URL/api/documents" -H "Authorization: Bearer $TOKEN" -F "file=@$WORK/fuzz.pdf" >/dev/null

# Operations that end the fuzzer's own session would turn the rest of the
# run into 401s: the end-to-end tests cover them instead.
echo "fuzz: $EXAMPLES examples per operation against $URL"
set +e
# From the scratch folder, where schemathesis leaves its own files.
(cd "$WORK" && "$VENV/bin/schemathesis" run "$URL/api/openapi.json" \
  --header "Authorization: Bearer $TOKEN" \
  --checks not_a_server_error,status_code_conformance,content_type_conformance,response_schema_conformance \
  --exclude-path /api/auth/logout \
  --exclude-path-regex '^/api/auth/sessions/' \
  --max-examples "$EXAMPLES" --seed 1 --no-color --generation-database none \
  --report junit --report-dir "$WORK/report") 2>&1 | tee "$WORK/schemathesis.txt"
status=${PIPESTATUS[0]}
set -e
if grep -qE "panicked|ERROR" "$WORK/pai.log"; then
  echo "fuzz: the stack logged errors:"; grep -E "panicked|ERROR" "$WORK/pai.log" | head -20
  status=1
fi
exit "$status"
