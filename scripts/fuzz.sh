#!/usr/bin/env bash
# make fuzz: schemathesis against /api/openapi.json on a running stack with a
# signed-in user, every operation: no 5xx, every error body problem+json,
# only documented status codes and response shapes.
#
#   FUZZ_EXAMPLES=N   examples per operation (default 30; CI runs fewer)
#   PAI=PATH          the pai binary (default: the debug build in CARGO_TARGET_DIR)
#
# The stack runs on its own database, events exchange, ports and folders,
# all removed at the end (scripts/lib/stack.sh); schemathesis lives in a virtualenv under
# ~/.cache/pai/fuzz-venv, installed from PyPI when missing.
set -euo pipefail
cd "$(dirname "$0")/.."

EXAMPLES=${FUZZ_EXAMPLES:-30}
SCHEMATHESIS_VERSION=4.32.5
VENV=${PAI_FUZZ_VENV:-$HOME/.cache/pai/fuzz-venv}
# shellcheck source=lib/stack.sh
. scripts/lib/stack.sh

if ! "$VENV/bin/schemathesis" --version 2>/dev/null | grep -q "$SCHEMATHESIS_VERSION"; then
  echo "fuzz: installing schemathesis $SCHEMATHESIS_VERSION into $VENV"
  rm -rf "$VENV"
  # Debian's python3 needs its venv package; pyenv's and others carry it.
  python3 -m venv "$VENV" 2>/dev/null || { stack_apt_install python3-venv; python3 -m venv "$VENV"; }
  "$VENV/bin/pip" install -q "schemathesis==$SCHEMATHESIS_VERSION"
fi

# Mail routes answer as with a real Google behind them.
start_fake_google
start_stack fuzz

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
stack_log_clean || status=1
exit "$status"
