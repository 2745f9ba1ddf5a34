#!/usr/bin/env bash
# make web-types: regenerate frontend/lib/openapi.ts, the web app's API
# types, from the gateway's OpenAPI document (`pai openapi`) with
# openapi-typescript. With --check (what `make test` runs) it changes
# nothing and fails when the committed file is stale.
#
#   PAI=PATH   the pai binary (default: the debug build in CARGO_TARGET_DIR)
set -euo pipefail
cd "$(dirname "$0")/.."
PAI=${PAI:-${CARGO_TARGET_DIR:-$HOME/.cache/pai/target}/debug/pai}
TYPES=frontend/lib/openapi.ts
# shellcheck source=lib/stack.sh
. scripts/lib/stack.sh
# shellcheck source=lib/web.sh
. scripts/lib/web.sh
ensure_node_modules

scratch=$(mktemp -d)
trap 'rm -rf "$scratch"' EXIT
"$PAI" openapi >"$scratch/openapi.json"
(cd frontend && npx --no-install openapi-typescript "$scratch/openapi.json" -o "$scratch/openapi.ts" >/dev/null)

if [ "${1:-}" = --check ]; then
  if ! diff -u "$TYPES" "$scratch/openapi.ts" >"$scratch/diff"; then
    head -40 "$scratch/diff"
    echo "web-types: $TYPES is stale: the API changed; run \`make web-types\` and commit it"
    exit 1
  fi
  echo "web-types: $TYPES matches the API"
else
  cp "$scratch/openapi.ts" "$TYPES"
  echo "web-types: wrote $TYPES"
fi
