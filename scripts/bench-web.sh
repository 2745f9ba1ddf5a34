#!/usr/bin/env bash
# make bench-web: the web app's JS per route (compressed, first load), the
# ask page's time to interactive (cold, warm) and "Ask" to the first token
# on screen against the API's own first token, on a running stack.
#
#   PAI=PATH          the pai binary (default: the debug build; the figures
#                     are the web app's overhead over the same API)
#   BENCH_WEB_RUNS=N  runs per measure (default 7)
set -euo pipefail
cd "$(dirname "$0")/.."
# shellcheck source=lib/stack.sh
. scripts/lib/stack.sh
# shellcheck source=lib/web.sh
. scripts/lib/web.sh
ensure_chromium
ensure_web_build
export EMBEDDING_MODEL_PATH=${EMBEDDING_MODEL_PATH:-$HOME/.cache/pai/models/all-minilm-l6-v2}
export LLM_MODEL_PATH=${LLM_MODEL_PATH:-$HOME/.cache/pai/models/qwen2.5-coder-0.5b-instruct-q4_k_m.gguf}
start_stack benchweb
export PAI_URL=$URL BENCH_WEB_OUT=${BENCH_WEB_OUT:-$PWD/frontend/test-results/bench-web.txt}
(cd frontend && npx playwright test -c playwright.bench.config.ts --reporter=line)
echo "bench-web: figures in $BENCH_WEB_OUT"
