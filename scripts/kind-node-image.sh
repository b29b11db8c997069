#!/usr/bin/env bash
# Builds a kind node image offline (no registry is reachable here): every binary from Go
# modules, C source or Debian packages, every image it preloads FROM scratch, then the node
# image itself the way kind's `kind build node-image` makes one (a base image, the binaries
# copied in, the images imported into the node's containerd, `docker commit`).
#
#   scripts/kind-node-image.sh          build what is missing; print the image name
#   scripts/kind-node-image.sh --name   print the image name only (--etcd-tag: etcd's tag)
#   scripts/kind-node-image.sh --binaries  only the binaries (no Docker engine needed)
#
# Cached by version under $MODELDR_CACHE (default ~/.cache/modeldr), like scripts/tools.sh:
#   kind-node-<k8s>-<rev>/bin     node binaries        kind-node-<k8s>-<rev>/images  image tars
#   kind-node-<k8s>-<rev>/rootfs  Debian rootfs tar    + one .done-<step> stamp per step
# The image is tagged modeldr.local/kind-node:<k8s>-<rev> in the project's Docker engine
# (scripts/kind-docker.sh), which must be running. Each step prints its time.
#
# Kubernetes is the sandbox's v1.36.3 build (scripts/tools.sh: the apiserver, controller
# manager and scheduler binaries are reused as they are, kubelet/kubeadm/kube-proxy are built
# from the same module copy, so the Go build cache is shared). That copy carries the
# sandbox's one-line patch (the apiserver accepts loopback endpoint addresses); nothing on
# kind relies on it. 1.36 needs containerd 2.x (Debian bookworm ships 1.6): containerd is
# built from its Go module. The hosts are cgroup v1 (hybrid): kind/*.yaml set the kubelet's
# failCgroupV1: false.
set -euo pipefail
cd "$(dirname "$0")/.."

KIND_VERSION=v0.32.0            # scripts/kind.sh pins the same; its images/base files are used
K8S_VERSION=v1.36.3             # = scripts/tools.sh
CONTAINERD_VERSION=v2.3.1       # what kind v0.32.0's base image ships
CRICTL_VERSION=v1.36.0
CNI_PLUGINS_VERSION=v1.9.1
ETCD_VERSION=v3.6.16            # = scripts/tools.sh (kubeadm 1.36 defaults to 3.6.8-0)
COREDNS_VERSION=v1.14.2         # kubeadm 1.36's CoreDNSVersion
PAUSE_VERSION=3.10.2            # kubeadm 1.36's PauseVersion (built from build/pause/linux)
LOCAL_PATH_VERSION=v0.0.30      # newest local-path-provisioner on the Go module proxy
DEBIAN_SUITE=bookworm           # the host's release; the rootfs comes from its mirror
REV=r1                          # bump when the binaries' recipe changes (the cache key)
IMAGE_REV=r2                    # bump when the images' or the node image's recipe changes

CACHE=${MODELDR_CACHE:-$HOME/.cache/modeldr}
# Go's build cache lives there too, so one variable moves every cache the scripts write
# (MODELDR_CACHE=$(mktemp -d) is a cold machine; Go's module download cache stays shared).
export GOCACHE=$CACHE/go-build
IMAGE=modeldr.local/kind-node:$K8S_VERSION-$IMAGE_REV
DIR=$CACHE/kind-node-$K8S_VERSION-$REV
BIN=$DIR/bin
IMAGES=$DIR/images
if [[ ${1:-} == --name ]]; then echo "$IMAGE"; exit 0; fi
# The etcd image's tag (kubeadm's ClusterConfiguration etcd.local.imageTag; kindtools/offline.py).
if [[ ${1:-} == --etcd-tag ]]; then echo "$ETCD_VERSION"; exit 0; fi

eval "$(bash scripts/tools.sh --print-env)"
# The control plane and etcd binaries are the sandbox's (a fresh machine builds them first).
[[ -x $MODELDR_KUBECTL && -x $MODELDR_ETCD ]] || bash scripts/tools.sh
K8S_DIR=$(dirname "$(dirname "$MODELDR_KUBECTL")")
ETCD=$MODELDR_ETCD
# The builds share two cores with other work: lowest priority, one package at a time.
export CGO_ENABLED=0 GOFLAGS=-mod=mod
GOBUILD=(nice -n 19 go build -p 1 -trimpath)

log() { printf '[kind-node %(%H:%M:%S)T] %s\n' -1 "$*" >&2; }
# step NAME FUNCTION: runs FUNCTION once (a stamp per step), printing how long it took.
step() {
  local name=$1 fn=$2 t0=$SECONDS
  if [[ -f $DIR/.done-$name ]]; then log "$name: cached"; return; fi
  log "$name: building"
  "$fn"
  touch "$DIR/.done-$name"
  log "$name: done in $((SECONDS - t0)) s"
}

# A throwaway Go module in $1 requiring $2@$3 (extra go.mod text in $4).
new_module() {
  rm -rf "$1/src"; mkdir -p "$1/src"
  printf 'module modeldr.local/kindbuild\n\ngo 1.25\n\nrequire %s %s\n%s\n' "$2" "$3" "${4:-}" >"$1/src/go.mod"
}
mod_dir() { (cd /tmp && go mod download -json "$1" | sed -n 's/.*"Dir": "\(.*\)".*/\1/p'); }

build_kubernetes() {
  # The sandbox's module (go.mod with the staging replaces, the patched copy beside it).
  mkdir -p "$DIR/k8s/src" "$BIN"
  sed "s#=> ../kubernetes#=> $K8S_DIR/kubernetes#" "$K8S_DIR/src/go.mod" >"$DIR/k8s/src/go.mod"
  cp "$K8S_DIR/src/go.sum" "$DIR/k8s/src/go.sum"
  local major=${K8S_VERSION#v}; major=${major%%.*}
  local minor=${K8S_VERSION#v*.}; minor=${minor%%.*}
  local ld="-s -w" pkg
  for pkg in k8s.io/component-base/version k8s.io/client-go/pkg/version; do
    ld+=" -X $pkg.gitVersion=$K8S_VERSION -X $pkg.gitMajor=$major -X $pkg.gitMinor=$minor"
    ld+=" -X $pkg.gitTreeState=clean -X $pkg.buildDate=1970-01-01T00:00:00Z"
  done
  (cd "$DIR/k8s/src" && "${GOBUILD[@]}" -ldflags "$ld" -o "$BIN/" \
    k8s.io/kubernetes/cmd/kubelet k8s.io/kubernetes/cmd/kubeadm k8s.io/kubernetes/cmd/kube-proxy)
  cp "$K8S_DIR"/bin/{kube-apiserver,kube-controller-manager,kube-scheduler,kubectl} "$BIN/"
}

build_containerd() {
  # No optional snapshotters, as kind's base image; static (no cgo: btrfs is the only user).
  new_module "$DIR/containerd" github.com/containerd/containerd/v2 "$CONTAINERD_VERSION"
  (cd "$DIR/containerd/src" && "${GOBUILD[@]}" -tags "no_aufs no_zfs no_btrfs no_devmapper" \
    -ldflags "-s -w -X github.com/containerd/containerd/v2/version.Version=$CONTAINERD_VERSION" \
    -o "$BIN/" github.com/containerd/containerd/v2/cmd/containerd \
    github.com/containerd/containerd/v2/cmd/containerd-shim-runc-v2 \
    github.com/containerd/containerd/v2/cmd/ctr)
}

build_crictl() {
  new_module "$DIR/crictl" sigs.k8s.io/cri-tools "$CRICTL_VERSION"
  (cd "$DIR/crictl/src" && "${GOBUILD[@]}" \
    -ldflags "-s -w -X sigs.k8s.io/cri-tools/pkg/version.Version=$CRICTL_VERSION" \
    -o "$BIN/" sigs.k8s.io/cri-tools/cmd/crictl)
}

build_cni() {
  # kind's base image has these four; kind/*.yaml's CNI is ptp + host-local (no kindnetd:
  # its module is not on the proxy), see scripts/kind.sh.
  mkdir -p "$BIN/cni"
  new_module "$DIR/cni" github.com/containernetworking/plugins "$CNI_PLUGINS_VERSION"
  local p
  for p in ipam/host-local main/loopback main/ptp meta/portmap; do
    (cd "$DIR/cni/src" && "${GOBUILD[@]}" -ldflags "-s -w" -o "$BIN/cni/" \
      "github.com/containernetworking/plugins/plugins/$p")
  done
}

build_coredns() {
  new_module "$DIR/coredns" github.com/coredns/coredns "$COREDNS_VERSION"
  (cd "$DIR/coredns/src" && "${GOBUILD[@]}" -ldflags "-s -w" -o "$BIN/" github.com/coredns/coredns)
}

build_local_path() {
  new_module "$DIR/local-path" github.com/rancher/local-path-provisioner "$LOCAL_PATH_VERSION"
  (cd "$DIR/local-path/src" && "${GOBUILD[@]}" -ldflags "-s -w -X main.VERSION=$LOCAL_PATH_VERSION" \
    -o "$BIN/" github.com/rancher/local-path-provisioner)
}

build_pause() {
  # pause.c from the Kubernetes module (build/pause/linux), static as upstream builds it.
  command -v gcc >/dev/null || apt-get install -y -q gcc libc6-dev >/dev/null
  nice -n 19 gcc -Os -Wall -Werror -static -DVERSION="v$PAUSE_VERSION-modeldr" \
    -o "$BIN/pause" "$K8S_DIR/kubernetes/build/pause/linux/pause.c"
  strip "$BIN/pause"
}

mkdir -p "$DIR" "$BIN" "$IMAGES"
t_all=$SECONDS
step kubernetes build_kubernetes
step containerd build_containerd
step crictl build_crictl
step cni build_cni
step pause build_pause
step coredns build_coredns
step local-path build_local_path
[[ ${1:-} == --binaries ]] && { log "binaries ready in $((SECONDS - t_all)) s"; exit 0; }

# --- the node's root filesystem ------------------------------------------------------------
KIND_SRC=$(mod_dir "sigs.k8s.io/kind@$KIND_VERSION")
ROOT=$DIR/rootfs

build_rootfs() {
  # kind's images/base (Dockerfile): the same packages less the network-storage and rootless
  # ones (nfs-common, open-iscsi, fuse-overlayfs), from Debian's mirror; runc is Debian's.
  command -v debootstrap >/dev/null || apt-get install -y -q debootstrap >/dev/null
  rm -rf "$ROOT.tmp"
  nice -n 19 debootstrap --variant=minbase \
    --include=systemd,dbus,conntrack,iptables,nftables,iproute2,ethtool,util-linux,mount,kmod,libseccomp2,pigz,bash,ca-certificates,procps,runc,jq,e2fsprogs,socat \
    "$DEBIAN_SUITE" "$ROOT.tmp" http://deb.debian.org/debian >"$DIR/debootstrap.log" 2>&1 \
    || { tail -20 "$DIR/debootstrap.log" >&2; exit 1; }
  rm -rf "$ROOT"; mv "$ROOT.tmp" "$ROOT"
}

install_node_files() {
  local f=$KIND_SRC/images/base/files r=$ROOT
  install -m 0755 "$f"/usr/local/bin/* "$r/usr/local/bin/"
  mkdir -p "$r/kind/bin" "$r/kind/manifests" "$r/LICENSES" "$r/etc/containerd" "$r/etc/systemd/system/kubelet.service.d"
  install -m 0644 "$f/kind/README.txt" "$r/kind/"
  install -m 0755 "$f"/kind/bin/* "$r/kind/bin/"
  install -m 0644 "$f"/LICENSES/* "$r/LICENSES/"
  install -m 0644 "$f/etc/crictl.yaml" "$r/etc/"
  install -m 0644 "$f"/etc/containerd/* "$r/etc/containerd/"
  install -m 0644 "$f"/etc/default/* "$r/etc/default/"
  install -m 0644 "$f"/etc/sysctl.d/* "$r/etc/sysctl.d/"
  install -m 0644 "$f"/etc/systemd/system/*.service "$f"/etc/systemd/system/*.slice "$r/etc/systemd/system/"
  install -m 0644 "$f"/etc/systemd/system/kubelet.service.d/* "$r/etc/systemd/system/kubelet.service.d/"
  # What kind's base Dockerfile does after installing the packages.
  find "$r/lib/systemd/system/sysinit.target.wants/" -name systemd-tmpfiles-setup.service -delete
  rm -f "$r"/lib/systemd/system/multi-user.target.wants/* "$r"/etc/systemd/system/*.wants/* \
    "$r"/lib/systemd/system/local-fs.target.wants/* "$r"/lib/systemd/system/sockets.target.wants/*udev* \
    "$r"/lib/systemd/system/sockets.target.wants/*initctl* "$r"/lib/systemd/system/basic.target.wants/*
  grep -q '^ReadKMsg=no' "$r/etc/systemd/journald.conf" || echo "ReadKMsg=no" >>"$r/etc/systemd/journald.conf"
  ln -sf /usr/lib/systemd/systemd "$r/sbin/init"
  mkdir -p "$r/etc/kubernetes/manifests" "$r/opt/cni/bin" "$r/etc/cni/net.d"
  # The binaries (kind's node-image build puts kubelet, kubeadm, kubectl in /usr/bin).
  install -m 0755 "$BIN"/{containerd,containerd-shim-runc-v2,ctr,crictl} "$r/usr/local/bin/"
  install -m 0755 "$BIN"/{kubelet,kubeadm,kubectl} "$r/usr/bin/"
  install -m 0755 "$BIN"/cni/* "$r/opt/cni/bin/"
  ln -sf /usr/sbin/runc "$r/usr/local/sbin/runc"
  chroot "$r" systemctl enable kubelet.service containerd.service undo-mount-hacks.service >/dev/null 2>&1
  chroot "$r" systemctl mask systemd-binfmt.service >/dev/null 2>&1
  chroot "$r" ctr oci spec \
    | chroot "$r" jq '.hooks.createContainer[.hooks.createContainer| length] |= . + {"path": "/kind/bin/mount-product-files.sh"}' \
    | chroot "$r" jq 'del(.process.rlimits)' >"$r/etc/containerd/cri-base.json"
  # kubeadm 1.36's pause, not the base config's 3.10.
  sed -i "s#sandbox_image = .*#sandbox_image = \"registry.k8s.io/pause:$PAUSE_VERSION\"#" "$r/etc/containerd/config.toml"
  # The hosts withhold CAP_SYS_RESOURCE (scripts/kind-docker.sh): nothing in a node may lower
  # an oom_score_adj, so containerd clamps pods' to its own (as kind does when rootless);
  # without this every pod sandbox dies in runc init.
  sed -i 's/restrict_oom_score_adj = false/restrict_oom_score_adj = true/' "$r/etc/containerd/config.toml"
  grep -q 'restrict_oom_score_adj = true' "$r/etc/containerd/config.toml"
  echo -n "$K8S_VERSION" >"$r/kind/version"
  storage_manifest >"$r/kind/manifests/default-storage.yaml"
  rm -rf "$r/var/cache/apt/archives/"*.deb "$r/var/lib/apt/lists/"*
}

LOCAL_PATH_IMAGE=modeldr.local/local-path-provisioner:$LOCAL_PATH_VERSION
HELPER_IMAGE=modeldr.local/local-path-helper:busybox-$DEBIAN_SUITE
storage_manifest() {
  # kind's own default storage manifest (pkg/build/nodeimage/const_storage.go), our images.
  python3 - "$KIND_SRC/pkg/build/nodeimage/const_storage.go" "$LOCAL_PATH_IMAGE" "$HELPER_IMAGE" <<'PY'
import sys
src, provisioner, helper = sys.argv[1:]
text = open(src).read().split("const defaultStorageManifest = `", 1)[1].rsplit("`", 1)[0]
text = text.replace("` + storageProvisionerImage + `", provisioner).replace("` + storageHelperImage + `", helper)
assert "`" not in text, "kind's storage manifest changed shape"
print(text.strip())
PY
}

# --- the images a node preloads: FROM scratch, static binaries ------------------------------
[[ -n ${DOCKER_HOST:-} ]] || eval "$(bash scripts/kind-docker.sh env)"
docker_() { docker "$@"; }

# image NAME ENTRYPOINT-JSON FILE... : a FROM scratch image with FILEs under /usr/local/bin
# (a FILE "SRC=DEST" lands at DEST), saved as a tar for the node's containerd.
image() {
  local name=$1 entry=$2; shift 2
  local ctx; ctx=$(mktemp -d "$DIR/ctx.XXXX")
  local df="FROM scratch"$'\n'"ENV PATH=/usr/local/bin:/usr/bin:/bin:/usr/sbin:/sbin"
  local f src dest
  for f in "$@"; do
    if [[ $f == *=* ]]; then src=${f%%=*}; dest=${f#*=}; else src=$f; dest=/usr/local/bin/$(basename "$f"); fi
    mkdir -p "$ctx/fs$(dirname "$dest")"
    # Links of our own (tool names) stay links; the rootfs's (merged /usr, the loader) are
    # followed, so the image holds the files.
    if [[ -L $src && ! -e $src ]]; then cp -P "$src" "$ctx/fs$dest"; else cp -rL "$src" "$ctx/fs$dest"; fi
  done
  df+=$'\n'"COPY fs/ /"$'\n'"ENTRYPOINT $entry"
  printf '%s\n' "$df" >"$ctx/Dockerfile"
  docker_ build -q -t "$name" "$ctx" >/dev/null 2>&1 || docker_ build -t "$name" "$ctx"
  docker_ save "$name" -o "$IMAGES/$(echo "$name" | tr '/:' '__').tar"
  rm -rf "$ctx"
}

# Files an executable in the rootfs needs (itself and its shared libraries), as SRC=DEST.
with_libs() {
  local exe lib
  for exe in "$@"; do
    echo "$ROOT$exe=$exe"
    for lib in $(chroot "$ROOT" ldd "$exe" | grep -o '/[^ ]*'); do echo "$ROOT$lib=$lib"; done
  done | sort -u
}

build_images() {
  rm -f "$IMAGES"/*.tar
  local c
  for c in kube-apiserver kube-controller-manager kube-scheduler; do
    image "registry.k8s.io/$c:$K8S_VERSION" "[\"/usr/local/bin/$c\"]" "$BIN/$c"
  done
  # kube-proxy programs iptables (kind's default mode) or nftables: Debian's tools and their
  # libraries beside it (upstream's image is distroless plus the same).
  local stage; stage=$(mktemp -d "$DIR/proxy.XXXX")
  # The xtables extensions are dlopen()ed (ldd of the tools misses them and their libraries:
  # without libm, the `statistic` match of every multi-endpoint Service fails to load).
  local -a files; mapfile -t files < <(with_libs /usr/sbin/xtables-nft-multi /usr/sbin/nft \
    /usr/sbin/conntrack $(cd "$ROOT" && ls usr/lib/x86_64-linux-gnu/xtables/*.so | sed 's#^#/#'))
  local t
  for t in iptables iptables-save iptables-restore ip6tables ip6tables-save ip6tables-restore; do
    ln -s xtables-nft-multi "$stage/$t"; files+=("$stage/$t=/usr/sbin/$t")
  done
  files+=("$ROOT/usr/lib/x86_64-linux-gnu/xtables=/usr/lib/x86_64-linux-gnu/xtables")
  [[ -f $ROOT/etc/protocols ]] && files+=("$ROOT/etc/protocols=/etc/protocols")
  mkdir -p "$stage/run" "$stage/tmp"; files+=("$stage/run=/run" "$stage/tmp=/tmp")
  image "registry.k8s.io/kube-proxy:$K8S_VERSION" '["/usr/local/bin/kube-proxy"]' "$BIN/kube-proxy" "${files[@]}"
  rm -rf "$stage"
  image "registry.k8s.io/etcd:$ETCD_VERSION" '["/usr/local/bin/etcd"]' "$ETCD"
  image "registry.k8s.io/coredns/coredns:$COREDNS_VERSION" '["/coredns"]' "$BIN/coredns=/coredns"
  image "registry.k8s.io/pause:$PAUSE_VERSION" '["/pause"]' "$BIN/pause=/pause"
  image "$LOCAL_PATH_IMAGE" '["/usr/local/bin/local-path-provisioner"]' "$BIN/local-path-provisioner"
  # The helper pod runs sh scripts (mkdir, rm): Debian's static busybox.
  stage=$(mktemp -d "$DIR/helper.XXXX"); files=("$DIR/busybox=/bin/busybox")
  [[ -f $DIR/busybox ]] || { (cd "$DIR" && apt-get download -q busybox-static >/dev/null 2>&1 && \
    dpkg-deb -x busybox-static_*.deb bb && cp bb/bin/busybox busybox && rm -rf bb busybox-static_*.deb); }
  for t in sh mkdir rm rmdir ls chmod cat; do ln -s busybox "$stage/$t"; files+=("$stage/$t=/bin/$t"); done
  image "$HELPER_IMAGE" '["/bin/sh"]' "${files[@]}"
  rm -rf "$stage"
}

# --- the node image: kind's recipe (a build container, images imported into its containerd)
build_node_image() {
  local base=modeldr.local/kind-base:$K8S_VERSION-$IMAGE_REV
  tar -C "$ROOT" --numeric-owner -c . | docker_ import \
    -c 'ENV container=docker' \
    -c 'ENTRYPOINT ["/usr/local/bin/entrypoint", "/sbin/init"]' - "$base" >/dev/null
  local id=modeldr-kind-build-$$
  docker_ rm -f "$id" >/dev/null 2>&1 || true
  trap 'docker_ rm -f -v '"$id"' >/dev/null 2>&1 || true' EXIT
  docker_ run -d --name "$id" --entrypoint=sleep --privileged --security-opt seccomp=unconfined \
    --network none -v "$IMAGES:/kind/images-in:ro" "$base" infinity >/dev/null
  docker_ exec "$id" bash -c 'nohup containerd >/var/log/containerd-build.log 2>&1 &'
  local i
  for i in $(seq 60); do docker_ exec "$id" crictl info >/dev/null 2>&1 && break; sleep 1; done
  local tarball
  for tarball in "$IMAGES"/*.tar; do
    docker_ exec "$id" ctr --namespace=k8s.io images import --all-platforms --no-unpack --digests \
      "/kind/images-in/$(basename "$tarball")" >/dev/null
  done
  docker_ exec "$id" ctr --namespace=k8s.io images list -q | grep -v -e '^sha256:' -e '^import-' >"$DIR/preloaded.txt"
  docker_ exec "$id" pkill containerd || true
  sleep 2
  docker_ exec "$id" rm -rf /kind/images-in /var/log/containerd-build.log || true
  docker_ commit "$id" "$IMAGE-commit" >/dev/null
  docker_ rm -f -v "$id" >/dev/null; trap - EXIT
  # What kind's base image and node-image build set (this engine's import and commit take no
  # STOPSIGNAL): systemd stops on SIGRTMIN+3.
  local ctx; ctx=$(mktemp -d "$DIR/ctx.XXXX")
  printf '%s\n' "FROM $IMAGE-commit" 'STOPSIGNAL SIGRTMIN+3' \
    'ENV container=docker HTTP_PROXY="" HTTPS_PROXY="" NO_PROXY=""' \
    'ENTRYPOINT [ "/usr/local/bin/entrypoint", "/sbin/init" ]' >"$ctx/Dockerfile"
  docker_ build -q -t "$IMAGE" "$ctx" >/dev/null
  docker_ rmi "$IMAGE-commit" >/dev/null
  rm -rf "$ctx"
}

docker_ info >/dev/null 2>&1 || { echo "no Docker engine: scripts/kind-docker.sh start (make kind-up does)" >&2; exit 1; }
step rootfs build_rootfs
step node-files install_node_files
step "images-$IMAGE_REV" build_images
if ! docker_ image inspect "$IMAGE" >/dev/null 2>&1; then rm -f "$DIR/.done-node-image-$IMAGE_REV"; fi
step "node-image-$IMAGE_REV" build_node_image
# Earlier builds of the same tags (only this engine's untagged images).
docker_ image prune -f >/dev/null
log "node image $IMAGE ready in $((SECONDS - t_all)) s; preloaded: $(tr '\n' ' ' <"$DIR/preloaded.txt")"
echo "$IMAGE"
