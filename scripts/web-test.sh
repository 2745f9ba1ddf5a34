#!/usr/bin/env bash
# Browser tests of the web app (issue 30): Playwright with Debian's chromium,
# headless, against a real running stack (scripts/lib/stack.sh).
#
# Installs only what is missing: chromium (apt), the npm packages (when
# node_modules is missing or older than package-lock.json); builds the
# static export when frontend/out is missing or older than its sources.
# Never downloads a browser. Exit status: the tests'.
#
#   CHROMIUM_PATH   the browser (default /usr/bin/chromium)
#   PAI             the pai binary (default: the debug build)
#   WEB_DIR         test this export as it is (default: frontend/out, rebuilt when stale)
#   any extra arguments go to `playwright test` (e.g. e2e/auth.spec.ts)
set -euo pipefail
cd "$(dirname "$0")/.."
# shellcheck source=lib/stack.sh
. scripts/lib/stack.sh
# shellcheck source=lib/web.sh
. scripts/lib/web.sh

export CHROMIUM_PATH=${CHROMIUM_PATH:-/usr/bin/chromium}
export PLAYWRIGHT_SKIP_BROWSER_DOWNLOAD=1
export EMBEDDING_MODEL_PATH=${EMBEDDING_MODEL_PATH:-$HOME/.cache/pai/models/all-minilm-l6-v2}
export LLM_MODEL_PATH=${LLM_MODEL_PATH:-$HOME/.cache/pai/models/qwen2.5-coder-0.5b-instruct-q4_k_m.gguf}

[ -x "$CHROMIUM_PATH" ] || stack_apt_install chromium
# npm ci when node_modules is missing or stale; next build when out/ is
# (scripts/lib/web.sh); a WEB_DIR given is tested as it is.
ensure_node_modules
if [ -z "${WEB_DIR:-}" ]; then ensure_web_build; fi

# A fake Google serving the e-mail corpus as the Gmail account the mail
# tests connect.
start_fake_google
start_stack web
export PAI_URL=$URL

# One administrator for the admin page (the password comes from stdin).
export PAI_ADMIN_EMAIL=admin-$$@example.test PAI_ADMIN_USERNAME=admin$$
export PAI_ADMIN_PASSWORD="admin-$(head -c 12 /dev/urandom | base64 | tr -d '\n/+=')"
printf '%s\n' "$PAI_ADMIN_PASSWORD" |
  "$PAI" admin create-user --email "$PAI_ADMIN_EMAIL" --username "$PAI_ADMIN_USERNAME" --admin >/dev/null

status=0
(cd frontend && npx --no-install playwright test "$@") || status=$?
# The stack's log stays with the test results for a look after.
cp "$PAI_LOG" frontend/test-results/pai.log 2>/dev/null || true
stack_log_clean || status=1
exit "$status"
