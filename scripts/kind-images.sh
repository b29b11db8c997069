#!/usr/bin/env bash
# The product images for kind (`kind load docker-image`): the operator + agent image
# (the root Dockerfile's ghcr.io/modeldr/modeldr:dev) and the CPU serving one
# (ghcr.io/modeldr/modeldr-serve:cpu-dev).
#
#   scripts/kind-images.sh          build them; print the image names
#   scripts/kind-images.sh --mode   print how they would be built: upstream or offline
#   scripts/kind-images.sh --base   only the offline base image (tests/kind's containers run it)
#   scripts/kind-images.sh --base-name  print the base image's name
#   scripts/kind-images.sh --source-digest  print the digest of what goes into the images
#
# The images carry the label modeldr.source: a digest of what goes into them (the package's
# files, pyproject.toml, constraints.txt, this script); when both images in the engine already
# carry the digest of this checkout, nothing is rebuilt (scripts/kind-prepare.sh builds them
# once, scripts/kind-demo.sh then finds them).
#
# upstream: `docker build` of Dockerfile and serving/Dockerfile.cpu (a user's Docker, which
#   pulls python:3.11-slim-bookworm and installs from PyPI inside the build).
# offline (the project's own engine, scripts/kind-docker.sh, which must never dial out and
#   has no registry): the base is a Debian bookworm root filesystem from Debian's mirror
#   (debootstrap, as scripts/kind-node-image.sh makes the node's) with python3, python3-venv,
#   nftables and iproute2 and the root Dockerfile's user 65532, `docker import`ed as
#   modeldr.local/python-bookworm; the wheels (this checkout's and its pinned dependencies,
#   constraints.txt) are built on the host with pip (its cache), and the image installs them
#   into /opt/venv with --no-index in a build whose containers have no network at all.
#   The serving image there has no torch (PyPI's torch is the CUDA build, ~4 GB with the CUDA
#   libraries it links; the CPU wheels' index does not resolve here): modeldr[serving-cpu],
#   the server's numpy backend (serving/README.md), about 300 MB.
# MODELDR_KIND_IMAGES=upstream|offline overrides the choice. Cached under $MODELDR_CACHE
# (default ~/.cache/modeldr): kind-images-<rev>/rootfs (+ .done-rootfs), wheels/.
set -euo pipefail
cd "$(dirname "$0")/.."

OPERATOR_IMAGE=ghcr.io/modeldr/modeldr:dev     # = scripts/kind-demo.sh, the chart's image.tag=dev
SERVE_IMAGE=ghcr.io/modeldr/modeldr-serve:cpu-dev
UPSTREAM_BASE=python:3.11-slim-bookworm        # = Dockerfile's PYTHON_IMAGE
DEBIAN_SUITE=bookworm                          # Python 3.11, as the upstream base
REV=r1                                         # bump when the recipe changes (cache key)
CACHE=${MODELDR_CACHE:-$HOME/.cache/modeldr}
DIR=$CACHE/kind-images-$REV
ROOT=$DIR/rootfs
BASE_IMAGE=modeldr.local/python-bookworm:$REV
PY=${PYTHON:-.venv/bin/python}

log() { printf '[kind-images %(%H:%M:%S)T] %s\n' -1 "$*" >&2; }

mode() {
  local want=${MODELDR_KIND_IMAGES:-auto}
  if [[ $want != auto ]]; then echo "$want"; return; fi
  # The project's engine (DOCKER_HOST names it): offline unless the upstream base is already
  # there (it never pulls). Any other engine: Dockerfile and serving/Dockerfile.cpu as they are.
  if [[ $(bash scripts/kind-docker.sh env) == *" DOCKER_HOST=${DOCKER_HOST:-} "* ]] \
    && ! docker image inspect "$UPSTREAM_BASE" >/dev/null 2>&1; then
    echo offline
  else
    echo upstream
  fi
}
if [[ ${1:-} == --mode ]]; then mode; exit 0; fi
if [[ ${1:-} == --base-name ]]; then echo "$BASE_IMAGE"; exit 0; fi

# What goes into the images: the package (its symlinked roots followed), its pins, this recipe.
source_digest() {
  { find -L modeldr -type f ! -path '*/__pycache__/*' ! -name '*.pyc' -print0 | sort -z \
      | xargs -0 sha256sum; sha256sum pyproject.toml constraints.txt scripts/kind-images.sh; } | sha256sum | cut -c1-16
}
if [[ ${1:-} == --source-digest ]]; then source_digest; exit 0; fi
# Both images in the engine, built from this source (the label), and the offline base too.
up_to_date() {
  local image
  for image in "$OPERATOR_IMAGE" "$SERVE_IMAGE"; do
    [[ $(docker image inspect -f '{{index .Config.Labels "modeldr.source"}}' "$image" 2>/dev/null) == "$SOURCE" ]] \
      || return 1
  done
  [[ $MODE != offline ]] || docker image inspect "$BASE_IMAGE" >/dev/null 2>&1
}

if ! { command -v docker >/dev/null && docker info >/dev/null 2>&1; }; then
  # No engine answers: the project's own (as scripts/kind.sh does).
  bash scripts/kind-docker.sh start
  eval "$(bash scripts/kind-docker.sh env)"
  export DOCKER_HOST
fi
BASE_ONLY=0
if [[ ${1:-} == --base ]]; then BASE_ONLY=1; MODE=offline; else MODE=$(mode); fi
SOURCE=$(source_digest)
t_all=$SECONDS
if [[ $BASE_ONLY == 0 ]] && up_to_date; then
  log "$OPERATOR_IMAGE and $SERVE_IMAGE: up to date (source $SOURCE)"
  printf '%s\n' "$OPERATOR_IMAGE" "$SERVE_IMAGE"
  exit 0
fi

if [[ $MODE == upstream ]]; then
  docker build -t "$OPERATOR_IMAGE" -f Dockerfile --label "modeldr.source=$SOURCE" .
  docker build -t "$SERVE_IMAGE" -f serving/Dockerfile.cpu --label "modeldr.source=$SOURCE" .
  printf '%s\n' "$OPERATOR_IMAGE" "$SERVE_IMAGE"
  exit 0
fi
[[ $MODE == offline ]] || { echo "MODELDR_KIND_IMAGES: upstream or offline, not $MODE" >&2; exit 2; }

mkdir -p "$DIR"
if [[ ! -f $DIR/.done-rootfs ]]; then
  t0=$SECONDS; log "base rootfs: debootstrap $DEBIAN_SUITE"
  command -v debootstrap >/dev/null || apt-get install -y -q debootstrap >/dev/null
  rm -rf "$ROOT.tmp"
  nice -n 19 debootstrap --variant=minbase --include=python3,python3-venv,nftables,iproute2 \
    "$DEBIAN_SUITE" "$ROOT.tmp" http://deb.debian.org/debian >"$DIR/debootstrap.log" 2>&1 \
    || { tail -20 "$DIR/debootstrap.log" >&2; exit 1; }
  # The root Dockerfile's user (the chart runs the operator as 65532).
  chroot "$ROOT.tmp" useradd --system --uid 65532 --user-group --home-dir /nonexistent \
    --shell /usr/sbin/nologin modeldr
  rm -rf "$ROOT.tmp"/var/cache/apt/archives/*.deb "$ROOT.tmp"/var/lib/apt/lists/*
  rm -rf "$ROOT"; mv "$ROOT.tmp" "$ROOT"
  touch "$DIR/.done-rootfs"; rm -f "$DIR/.done-base"
  log "base rootfs: done in $((SECONDS - t0)) s"
fi
if [[ ! -f $DIR/.done-base ]] || ! docker image inspect "$BASE_IMAGE" >/dev/null 2>&1; then
  t0=$SECONDS
  tar -C "$ROOT" --numeric-owner -c . | docker import \
    -c 'ENV PATH=/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin LANG=C.UTF-8' \
    -c 'CMD ["/bin/bash"]' - "$BASE_IMAGE" >/dev/null
  touch "$DIR/.done-base"
  log "base image $BASE_IMAGE: imported in $((SECONDS - t0)) s"
fi
if [[ $BASE_ONLY == 1 ]]; then echo "$BASE_IMAGE"; exit 0; fi

# The wheels: this checkout's modeldr (rebuilt every time) and its pinned dependencies
# (pip's cache makes them quick after the first time). [serving-cpu]: the server, no torch.
t0=$SECONDS
CTX=$(mktemp -d "$DIR/ctx.XXXX")
trap 'rm -rf "$CTX"' EXIT
mkdir -p "$CTX/wheels"
nice -n 19 "$PY" -m pip wheel -q --disable-pip-version-check -c constraints.txt -w "$CTX/wheels" \
  ".[serving-cpu]" >&2
cp constraints.txt "$CTX/"
log "wheels: $(ls "$CTX/wheels" | wc -l) in $((SECONDS - t0)) s"

# The build stage both images share: a venv of REQUIREMENT from the wheels (no network).
venv_stage() {
  cat <<DOCKERFILE
FROM $BASE_IMAGE AS build
ENV PIP_NO_CACHE_DIR=1 PIP_DISABLE_PIP_VERSION_CHECK=1
COPY wheels /wheels
COPY constraints.txt /constraints.txt
RUN python3 -m venv /opt/venv \\
    && /opt/venv/bin/pip install -q --no-index --find-links /wheels -c /constraints.txt "$1" \\
    && /opt/venv/bin/pip check \\
    && ! /opt/venv/bin/python -c "import torch" 2>/dev/null

DOCKERFILE
}

# The root Dockerfile's two stages, from the local base and the wheels.
{ venv_stage modeldr; cat <<DOCKERFILE
FROM $BASE_IMAGE
COPY --from=build /opt/venv /opt/venv
ENV PATH=/opt/venv/bin:\$PATH \\
    PYTHONUNBUFFERED=1 \\
    PYTHONDONTWRITEBYTECODE=1
USER 65532:65532
EXPOSE 8080 9090
STOPSIGNAL SIGTERM
ENTRYPOINT ["modeldr"]
CMD ["operator"]
DOCKERFILE
} >"$CTX/Dockerfile"
t0=$SECONDS
nice -n 19 docker build -q --network none -t "$OPERATOR_IMAGE" --label "modeldr.source=$SOURCE" "$CTX" >/dev/null
log "$OPERATOR_IMAGE: built in $((SECONDS - t0)) s"

# serving/Dockerfile.cpu's environment, from the same base and wheels, without torch.
{ venv_stage "modeldr[serving-cpu]"; cat <<DOCKERFILE
FROM $BASE_IMAGE
RUN useradd --system --uid 10001 --home-dir /nonexistent --shell /usr/sbin/nologin modeldr-serve
COPY --from=build /opt/venv /opt/venv
ENV PATH=/opt/venv/bin:\$PATH \\
    PYTHONUNBUFFERED=1 \\
    PYTHONDONTWRITEBYTECODE=1 \\
    HF_HUB_OFFLINE=1 \\
    TRANSFORMERS_OFFLINE=1 \\
    HF_HOME=/tmp/huggingface \\
    XDG_CACHE_HOME=/tmp/.cache \\
    MODELDR_SERVE_MODEL_DIR=/models \\
    MODELDR_SERVE_HOST=0.0.0.0 \\
    MODELDR_SERVE_PORT=8080 \\
    MODELDR_SERVE_DEVICE=cpu \\
    MODELDR_SERVE_BACKEND=numpy
USER 10001:10001
EXPOSE 8080
STOPSIGNAL SIGTERM
ENTRYPOINT ["modeldr-serve"]
CMD ["run"]
DOCKERFILE
} >"$CTX/Dockerfile"
t0=$SECONDS
nice -n 19 docker build -q --network none -t "$SERVE_IMAGE" --label "modeldr.source=$SOURCE" "$CTX" >/dev/null
# Earlier builds of the same tags.
docker image prune -f >/dev/null
log "$SERVE_IMAGE: built in $((SECONDS - t0)) s ($((SECONDS - t_all)) s in all)"
printf '%s\n' "$OPERATOR_IMAGE" "$SERVE_IMAGE"
