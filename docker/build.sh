#!/usr/bin/env bash
# Builds the Docker images, with no container registry (nothing is pulled):
#
#   zkrs:latest         FROM scratch: the release zkrs binary, exactly the shared libraries it
#                       links (ldd) and the dynamic loader, a static entrypoint (docker/entrypoint)
#                       and a non-root user `zookeeper` (uid 1000). docker/Dockerfile.
#   zkrs-zkcli:latest   Apache ZooKeeper's zkCli.sh (Debian's zookeeper package) + headless JRE +
#                       netcat + compat-tests/{zkcli,fourlw}/run.sh, on zkrs-debian-base:bookworm,
#                       a `debootstrap --variant=minbase` rootfs imported with `docker import`.
#                       docker/zkcli.Dockerfile.
#
#   docker/build.sh [all|zkrs|zkcli]        (default: all)
#
# Every stage is skipped when its output is present and its inputs are unchanged: cargo builds
# are incremental; each image carries a label `zkrs.inputs` (a hash of everything that goes
# into it) and is rebuilt only when that hash changes; the debootstrap tarball is cached in
# $ZKRS_DOCKER_CACHE (default ~/.cache/zkrs-docker). Network: crates.io (cargo, only when the
# lock file asks for a crate not cached yet) and the Debian mirror (debootstrap, apt in the
# zkcli image); nothing else.
#
# Environment:
#   ZKRS_BIN=path           package this zkrs binary instead of building one
#   CARGO_TARGET_DIR        for zkrs (default ~/.cache/zkrs-target)
#   ZKRS_DOCKER_TARGET_DIR  for the entrypoint (default ~/.cache/zkrs-docker-target)
#   ZKRS_DOCKER_CACHE       debootstrap tarball and staging dirs (default ~/.cache/zkrs-docker)
#   ZKRS_DOCKER_REBUILD=1   ignore the labels: rebuild the images (docker's layer cache still applies)
#   DEBIAN_MIRROR           default http://deb.debian.org/debian
# debootstrap needs root (it is installed with apt-get when missing).
set -euo pipefail
cd "$(dirname "$0")/.."
what=${1:-all}
case $what in all | zkrs | zkcli) ;; *) echo "usage: $0 [all|zkrs|zkcli]" >&2; exit 2 ;; esac

ZKRS_IMAGE=zkrs:latest
ZKCLI_IMAGE=zkrs-zkcli:latest
BASE_IMAGE=zkrs-debian-base:bookworm
cache=${ZKRS_DOCKER_CACHE:-$HOME/.cache/zkrs-docker}
mirror=${DEBIAN_MIRROR:-http://deb.debian.org/debian}
mkdir -p "$cache"
# One build at a time per cache dir (the staging dirs are shared).
exec 9>"$cache/.build.lock"
flock 9
# Without the buildx plugin BuildKit is unavailable: ask for the classic builder explicitly.
docker buildx version >/dev/null 2>&1 || export DOCKER_BUILDKIT=${DOCKER_BUILDKIT:-0}

log() { echo "[docker/build.sh] $*"; }
now() { date +%s; }
hash_stdin() { sha256sum | cut -c1-16; }
label_of() { docker image inspect -f '{{index .Config.Labels "zkrs.inputs"}}' "$1" 2>/dev/null || true; }
up_to_date() { [[ ${ZKRS_DOCKER_REBUILD:-0} != 1 && "$(label_of "$1")" == "$2" ]]; }
size_of() { docker image inspect -f '{{.Size}}' "$1" | awk '{printf "%.1f MB", $1 / 1e6}'; }
# drop_old ID NAME: after NAME was rebuilt, remove its previous image ID when nothing uses it.
drop_old() {
  [[ -n $1 && $1 != "$(docker image inspect -f '{{.Id}}' "$2" 2>/dev/null)" ]] || return 0
  docker rmi "$1" >/dev/null 2>&1 || true
}
old_id() { docker image inspect -f '{{.Id}}' "$1" 2>/dev/null || true; }
# docker_build LOG ARGS...: docker build, its output in LOG, shown when it fails.
docker_build() {
  local out=$1; shift
  nice -n 10 docker build --force-rm "$@" >"$out" 2>&1 || {
    tail -n 40 "$out" >&2
    echo "docker build failed (full log: $out)" >&2
    exit 1
  }
}
# The content of a directory tree (names, types, modes, link targets, file hashes), for labels.
tree_hash() {
  (cd "$1" && find . -printf '%p %y %m %l\n' | LC_ALL=C sort &&
    find . -type f -print0 | LC_ALL=C sort -z | xargs -0r sha256sum) | hash_stdin
}

# ------------------------------------------------------------------------------- zkrs:latest
build_zkrs() {
  local t0 bin entry stage ctx h
  t0=$(now)
  if [[ -n ${ZKRS_BIN:-} ]]; then
    bin=$ZKRS_BIN
    log "zkrs: packaging $bin (ZKRS_BIN)"
  else
    local target=${CARGO_TARGET_DIR:-$HOME/.cache/zkrs-target}
    log "zkrs: cargo build --release --bin zkrs (target dir $target)"
    CARGO_TARGET_DIR=$target nice -n 10 cargo build --release --bin zkrs
    bin=$target/release/zkrs
  fi
  local etarget=${ZKRS_DOCKER_TARGET_DIR:-$HOME/.cache/zkrs-docker-target}
  log "zkrs: building the entrypoint (target dir $etarget)"
  # cd: the entrypoint's .cargo/config.toml (static linking) is found from the working dir.
  (cd docker/entrypoint && CARGO_TARGET_DIR=$etarget nice -n 10 cargo build --release --locked)
  entry=$etarget/release/docker-entrypoint

  # The root filesystem: $stage/root (owned by root) and $stage/user (owned by zookeeper).
  stage=$cache/zkrs-rootfs
  rm -rf "$stage"
  # /var/tmp: where MIT's Kerberos keeps the replay cache of a server accepting Kerberos clients.
  mkdir -p "$stage/root/etc" "$stage/root/tmp" "$stage/root/var/tmp" "$stage/user/data" "$stage/user/datalog" "$stage/user/conf"
  chmod 1777 "$stage/root/tmp" "$stage/root/var/tmp"
  install -m 755 "$bin" "$stage/root/zkrs"
  install -m 755 "$entry" "$stage/root/docker-entrypoint"
  # Exactly the libraries the dynamic loader resolves, at the paths it resolves them to: the
  # real file under its own name plus the soname symlink (libfoo.so.1 -> libfoo.so.1.2.3).
  local interp lib dir real
  interp=$(readelf -l "$bin" | sed -n 's/.*Requesting program interpreter: \(.*\)]/\1/p')
  [[ -n $interp ]] || { echo "cannot find the program interpreter of $bin" >&2; exit 1; }
  if ldd "$bin" | grep -q 'not found'; then ldd "$bin" >&2; exit 1; fi
  for lib in $(ldd "$bin" | awk '$2 == "=>" && $3 ~ /^\// {print $3}') "$interp"; do
    dir=$(dirname "$lib")
    real=$(readlink -f "$lib")
    mkdir -p "$stage/root$dir"
    cp "$real" "$stage/root$dir/$(basename "$real")"
    if [[ $(basename "$real") != "$(basename "$lib")" ]]; then
      ln -sfn "$(basename "$real")" "$stage/root$dir/$(basename "$lib")"
    fi
  done
  # The interpreter is usually /lib64/ld-linux-x86-64.so.2 -> /lib/x86_64-linux-gnu/...: keep
  # it a symlink to the copy next to libc when the host has it that way.
  real=$(readlink -f "$interp")
  local libc_dir
  libc_dir=$(dirname "$(ldd "$bin" | awk '$1 ~ /^libc\.so/ {print $3}')")
  if [[ $(dirname "$interp") != "$libc_dir" && -f $libc_dir/$(basename "$real") ]]; then
    mkdir -p "$stage/root$libc_dir"
    cp "$real" "$stage/root$libc_dir/$(basename "$real")"
    rm -f "$stage/root$interp"
    ln -s "$libc_dir/$(basename "$real")" "$stage/root$interp"
  fi
  cat >"$stage/root/etc/passwd" <<'EOF'
root:x:0:0:root:/root:/sbin/nologin
zookeeper:x:1000:1000:ZooKeeper:/data:/sbin/nologin
nobody:x:65534:65534:nobody:/nonexistent:/sbin/nologin
EOF
  cat >"$stage/root/etc/group" <<'EOF'
root:x:0:
zookeeper:x:1000:
nogroup:x:65534:
EOF
  # glibc >= 2.34 has the files and dns NSS modules built in: host names (zk1, zk2, ...) resolve
  # from Docker's /etc/hosts and its DNS with no libnss_*.so in the image.
  printf 'passwd: files\ngroup: files\nhosts: files dns\n' >"$stage/root/etc/nsswitch.conf"
  chmod 644 "$stage/root/etc/"*

  ctx=$cache/zkrs-context
  mkdir -p "$ctx"
  cp docker/Dockerfile "$ctx/Dockerfile"
  h=$( (tree_hash "$stage"; sha256sum <"$ctx/Dockerfile") | hash_stdin)
  if up_to_date "$ZKRS_IMAGE" "$h"; then
    log "zkrs: $ZKRS_IMAGE is up to date ($(size_of "$ZKRS_IMAGE"), inputs $h), $(($(now) - t0))s"
    return
  fi
  # One tar, reproducible (sorted, fixed mtime, numeric owners): root's files, then the
  # zookeeper-owned directories. ADD unpacks it keeping the owners.
  local tar_opts=(--sort=name --mtime=@946684800 --numeric-owner --format=gnu)
  tar "${tar_opts[@]}" --owner=0 --group=0 -C "$stage/root" -cf "$ctx/rootfs.tar" .
  tar "${tar_opts[@]}" --owner=1000 --group=1000 -C "$stage/user" -rf "$ctx/rootfs.tar" data datalog conf
  log "zkrs: docker build -t $ZKRS_IMAGE (inputs $h)"
  local old
  old=$(old_id "$ZKRS_IMAGE")
  docker_build "$cache/zkrs-build.log" --label "zkrs.inputs=$h" -t "$ZKRS_IMAGE" "$ctx"
  rm -f "$ctx/rootfs.tar"
  drop_old "$old" "$ZKRS_IMAGE"
  log "zkrs: built $ZKRS_IMAGE ($(size_of "$ZKRS_IMAGE")) in $(($(now) - t0))s"
}

# ------------------------------------------------------------------ zkrs-debian-base:bookworm
# The recipe of the base rootfs; its hash names the cached tarball and labels the image.
BASE_RECIPE="debootstrap --variant=minbase bookworm $mirror; recipe v2 (policy-rc.d, no docs, no recommends, updates+security)"

build_base() {
  local t0 h tarball dir
  t0=$(now)
  h=$(hash_stdin <<<"$BASE_RECIPE")
  if up_to_date "$BASE_IMAGE" "$h"; then
    log "base: $BASE_IMAGE is up to date ($(size_of "$BASE_IMAGE"))"
    return
  fi
  tarball=$cache/debian-bookworm-minbase-$h.tar.gz
  if [[ ! -s $tarball ]]; then
    if [[ $(id -u) != 0 ]]; then
      echo "debootstrap needs root: run docker/build.sh as root (or sudo), once; the tarball is cached" >&2
      exit 1
    fi
    command -v debootstrap >/dev/null || {
      log "base: apt-get install debootstrap"
      apt-get install -y debootstrap >/dev/null || { apt-get update >/dev/null && apt-get install -y debootstrap >/dev/null; }
    }
    dir=$cache/debootstrap-$h
    cleanup_rootfs "$dir"
    log "base: debootstrap --variant=minbase bookworm $dir $mirror"
    nice -n 10 debootstrap --variant=minbase bookworm "$dir" "$mirror" >"$cache/debootstrap.log" 2>&1 || {
      tail -30 "$cache/debootstrap.log" >&2
      cleanup_rootfs "$dir"
      exit 1
    }
    # What Docker's own Debian images do: no service starts during apt-get install, no docs,
    # no recommends, no apt caches; plus the updates and security suites.
    printf '#!/bin/sh\nexit 101\n' >"$dir/usr/sbin/policy-rc.d"
    chmod 755 "$dir/usr/sbin/policy-rc.d"
    cat >"$dir/etc/dpkg/dpkg.cfg.d/zkrs-docker-slim" <<'EOF'
path-exclude /usr/share/doc/*
path-include /usr/share/doc/*/copyright
path-exclude /usr/share/man/*
path-exclude /usr/share/info/*
path-exclude /usr/share/locale/*
path-exclude /usr/share/lintian/*
EOF
    printf 'APT::Install-Recommends "false";\nAPT::Install-Suggests "false";\n' >"$dir/etc/apt/apt.conf.d/zkrs-docker-no-recommends"
    printf 'Acquire::Languages "none";\n' >"$dir/etc/apt/apt.conf.d/zkrs-docker-no-languages"
    cat >"$dir/etc/apt/sources.list" <<EOF
deb $mirror bookworm main
deb $mirror bookworm-updates main
deb http://deb.debian.org/debian-security bookworm-security main
EOF
    rm -rf "$dir"/var/lib/apt/lists/* "$dir"/var/cache/apt/*.bin "$dir"/var/cache/apt/archives/*.deb \
      "$dir"/var/log/* "$dir"/usr/share/doc/*/changelog* "$dir"/usr/share/man/* "$dir"/usr/share/info/* \
      "$dir"/usr/share/locale/*
    # update-alternatives (openjdk's postinst) fails when its man page dir is missing.
    mkdir -p "$dir/usr/share/man/man1"
    : >"$dir/etc/hostname"
    tar --numeric-owner -C "$dir" -czf "$tarball.tmp" .
    mv "$tarball.tmp" "$tarball"
    # tarballs of older recipes
    find "$cache" -maxdepth 1 -name 'debian-bookworm-minbase-*.tar.gz' ! -name "$(basename "$tarball")" -delete
    cleanup_rootfs "$dir"
    log "base: cached $tarball ($(du -h "$tarball" | cut -f1)) in $(($(now) - t0))s"
  else
    log "base: reusing $tarball"
  fi
  log "base: docker import -> $BASE_IMAGE"
  local old
  old=$(old_id "$BASE_IMAGE")
  docker import --change "LABEL zkrs.inputs=$h" --change 'CMD ["bash"]' \
    --change 'ENV LANG=C.UTF-8' "$tarball" "$BASE_IMAGE" >/dev/null
  drop_old "$old" "$BASE_IMAGE"
  log "base: $BASE_IMAGE ($(size_of "$BASE_IMAGE")) in $(($(now) - t0))s"
}

# Remove a (possibly half-made) debootstrap dir: unmount what debootstrap mounted inside it
# first, and never cross into another file system.
cleanup_rootfs() {
  local dir=$1 m
  [[ -e $dir ]] || return 0
  awk -v d="$dir" 'index($2, d) == 1 {print $2}' /proc/mounts | sort -r | while read -r m; do
    umount -l "$m" || true
  done
  rm -rf --one-file-system "$dir"
}

# -------------------------------------------------------------------------- zkrs-zkcli:latest
build_zkcli() {
  local t0 ctx h base_id
  t0=$(now)
  build_base
  ctx=$cache/zkcli-context
  rm -rf "$ctx"
  mkdir -p "$ctx/zkcli" "$ctx/fourlw"
  cp docker/zkcli.Dockerfile "$ctx/Dockerfile"
  cp compat-tests/zkcli/run.sh "$ctx/zkcli/run.sh"
  cp compat-tests/fourlw/run.sh "$ctx/fourlw/run.sh"
  base_id=$(docker image inspect -f '{{.Id}}' "$BASE_IMAGE")
  h=$( (tree_hash "$ctx"; echo "$base_id") | hash_stdin)
  if up_to_date "$ZKCLI_IMAGE" "$h"; then
    log "zkcli: $ZKCLI_IMAGE is up to date ($(size_of "$ZKCLI_IMAGE"), inputs $h), $(($(now) - t0))s"
    return
  fi
  log "zkcli: docker build -t $ZKCLI_IMAGE (inputs $h; apt-get install zookeeper on first build)"
  local old
  old=$(old_id "$ZKCLI_IMAGE")
  docker_build "$cache/zkcli-build.log" --build-arg "BASE=$BASE_IMAGE" --label "zkrs.inputs=$h" \
    -t "$ZKCLI_IMAGE" "$ctx"
  drop_old "$old" "$ZKCLI_IMAGE"
  log "zkcli: built $ZKCLI_IMAGE ($(size_of "$ZKCLI_IMAGE")) in $(($(now) - t0))s"
}

t_all=$(now)
case $what in
  zkrs) build_zkrs ;;
  zkcli) build_zkcli ;;
  all) build_zkrs; build_zkcli ;;
esac
log "done in $(($(now) - t_all))s"
