#!/usr/bin/env bash
# Install the Debian packages the build needs, only those that are missing.
set -euo pipefail

# cmake, clang and libclang-dev build llama.cpp (llama-cpp-2: cmake and bindgen).
BUILD_DEPS="build-essential pkg-config cmake clang libclang-dev"

say() { echo "ensure-build-deps: $*"; }

if ! command -v dpkg-query >/dev/null; then
  say "not a Debian system; make sure these are installed: $BUILD_DEPS"
  exit 0
fi

missing=()
for pkg in $BUILD_DEPS; do
  status=$(dpkg-query -W -f='${Status}' "$pkg" 2>/dev/null || true)
  [ "$status" = "install ok installed" ] || missing+=("$pkg")
done

if [ ${#missing[@]} -eq 0 ]; then
  say "all present ($BUILD_DEPS)"
  exit 0
fi

as_root() { if [ "$(id -u)" -eq 0 ]; then "$@"; else sudo "$@"; fi; }
say "installing ${missing[*]}"
as_root apt-get update -qq
as_root env DEBIAN_FRONTEND=noninteractive apt-get install -y -qq "${missing[@]}"
