# Sourced by the scripts that need the web app's toolchain or build:
# `ensure_node_modules` runs `npm ci` when node_modules is missing or older
# than package-lock.json (never downloading a browser); `ensure_web_build`
# runs `next build` when frontend/out is missing or older than a source.

ensure_node_modules() {
  command -v npm >/dev/null || stack_apt_install nodejs npm
  if ! node -e 'process.exit(Number(process.versions.node.split(".")[0]) >= 20 ? 0 : 1)'; then
    echo "web: Next.js 16 needs Node.js 20 or newer; this machine has $(node --version)" >&2
    return 1
  fi
  if [ ! -d frontend/node_modules ] || [ frontend/package-lock.json -nt frontend/node_modules ]; then
    echo "web: npm ci"
    (cd frontend && PLAYWRIGHT_SKIP_BROWSER_DOWNLOAD=1 npm ci --no-audit --no-fund)
    touch frontend/node_modules
  fi
}

ensure_web_build() {
  ensure_node_modules
  local stale=
  if [ ! -f frontend/out/index.html ]; then
    stale=1
  elif [ -n "$(cd frontend && find app components contexts hooks lib public package-lock.json next.config.ts tsconfig.json \
      -newer out/index.html -type f -print -quit 2>/dev/null)" ]; then
    stale=1
  fi
  if [ -n "$stale" ]; then
    echo "web: npm run build"
    (cd frontend && npm run build)
    touch frontend/out/index.html
  fi
}

# Debian's chromium for the browser tests (Playwright downloads none).
ensure_chromium() {
  export CHROMIUM_PATH=${CHROMIUM_PATH:-/usr/bin/chromium}
  export PLAYWRIGHT_SKIP_BROWSER_DOWNLOAD=1
  [ -x "$CHROMIUM_PATH" ] || stack_apt_install chromium
}
