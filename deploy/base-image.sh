#!/usr/bin/env bash
# The one recipe of the base image the quickstart and the tests build on: the host's
# busybox-static as a one-layer image, made byte for byte the same from the same busybox (no
# clock, owner or order in the bytes), so that the same recipe always gives the same image id.
#
#   base-image.sh rootfs          the layer: a tar of the root filesystem, on stdout
#   base-image.sh id              the image id the recipe makes (sha256:…)
#   base-image.sh ensure IMAGE    IMAGE (registry/repository:tag) in the engine and in its
#                                 registry is exactly that image: loaded, tagged and pushed
#                                 when missing or different (an old base in the registry is
#                                 replaced); prints the image id
#   base-image.sh ensure-multi LIST
#                                 the multi-arch base (issue 12): the same recipe made from
#                                 the host's busybox (amd64) and from Debian's arm64
#                                 busybox-static (arm64, variant v8; unpacked by
#                                 deploy/setup.sh into /var/cache/osbs/arm64), each ensured
#                                 as above under LIST's tag suffixed `-amd64` and `-arm64`,
#                                 and a Docker manifest list naming both pushed under LIST
#                                 (registry/repository:tag; the tests use
#                                 127.0.0.1:5000/osbs/busybox:multi, testkit's
#                                 ensure_multiarch_busybox_image); prints the list's digest.
#                                 The single-arch base (`ensure`) is left as it is.
#
# OSBS_BASE_BUSYBOX (default /bin/busybox) and OSBS_BASE_BUSYBOX_ARM64 (default
# /var/cache/osbs/arm64/bin/busybox) name the busybox binaries; the arm64 one runs under
# qemu-user-static through binfmt_misc (deploy/setup.sh registers it).
#
# Every busybox applet is linked but `rpm` and `rpm2cpio`: they are not RPM's tools (busybox's
# rpm reads package files, not the rpm database), and an image that offers them as `rpm`
# misleads whoever inspects it.
set -euo pipefail
work=$(mktemp -d)
trap 'rm -rf "$work"' EXIT

log() { printf 'base-image: %s\n' "$*" >&2; }
busybox=${OSBS_BASE_BUSYBOX:-/bin/busybox}
# Applets that must not look like RPM's tools (see above).
not_linked=" busybox rpm rpm2cpio "

rootfs() {
  [ -x "$busybox" ] || { log "$busybox is missing: apt-get install -y busybox-static (deploy/setup.sh does)"; exit 1; }
  local stage=$work/rootfs
  rm -rf "$stage"
  mkdir "$stage"
  umask 022
  chmod 0755 "$stage"
  mkdir -p "$stage"/{bin,etc,root,tmp,usr/bin,var}
  chmod 1777 "$stage/tmp"
  cp "$busybox" "$stage/bin/busybox"
  chmod 0755 "$stage/bin/busybox"
  local applet
  for applet in $("$busybox" --list); do
    case "$not_linked" in *" $applet "*) continue ;; esac
    ln -s busybox "$stage/bin/$applet"
  done
  printf 'root:x:0:0:root:/root:/bin/sh\nnobody:x:65534:65534:nobody:/:/bin/sh\n' >"$stage/etc/passwd"
  printf 'root:x:0:\nnobody:x:65534:\n' >"$stage/etc/group"
  tar --sort=name --format=gnu --mtime=@0 --owner=0 --group=0 --numeric-owner \
    -C "$stage" -cf - .
  rm -rf "$stage"
}

# The architecture and variant of the image: the host's unless ensure-multi sets them.
arch_oci=
arch_variant=

# The architecture of the busybox binary (the host's), in the engine's names.
architecture() {
  [ -z "$arch_oci" ] || { echo "$arch_oci"; return; }
  local arch
  arch=$(dpkg --print-architecture 2>/dev/null || uname -m)
  case "$arch" in
    amd64 | x86_64) echo amd64 ;;
    arm64 | aarch64) echo arm64 ;;
    armhf | armel | armv7l) echo arm ;;
    i386 | i686) echo 386 ;;
    ppc64el | ppc64le) echo ppc64le ;;
    *) echo "$arch" ;;
  esac
}

# Writes layer.tar and config.json into $work; prints the image id (the config's digest).
make_image() {
  local dir=$work diff_id version
  rootfs >"$dir/layer.tar"
  diff_id=sha256:$(sha256sum "$dir/layer.tar" | cut -d' ' -f1)
  # Read whole, then cut: `busybox --help | head -n1` under pipefail fails (and ends the
  # script silently under set -e) whenever head closes the pipe before busybox is done.
  version=$("$busybox" --help 2>&1 || true)
  version=$(printf '%s\n' "$version" | sed -n -e '1{s/^BusyBox //' -e 's/ multi-call binary.*//' -e 's/["\\]//g' -e 'p;}')
  # Fixed bytes: no creation time, keys in a fixed order. No label: every image built on
  # the base would inherit it.
  # A variant (arm64's v8) goes after the architecture; without one the bytes are the
  # single-arch base's of before (same image id).
  local variant=
  [ -z "$arch_variant" ] || variant=$(printf ',"variant":"%s"' "$arch_variant")
  printf '{"architecture":"%s"%s,"config":{"Cmd":["/bin/sh"]},"created":"1970-01-01T00:00:00Z","history":[{"created":"1970-01-01T00:00:00Z","created_by":"deploy/base-image.sh: busybox-static %s"}],"os":"linux","rootfs":{"type":"layers","diff_ids":["%s"]}}' \
    "$(architecture)" "$variant" "$version" "$diff_id" >"$dir/config.json"
  echo "sha256:$(sha256sum "$dir/config.json" | cut -d' ' -f1)"
}

# The config digest of IMAGE's manifest in its registry; empty when the registry has none.
registry_config_digest() {
  local image=$1 registry rest repository tag
  registry=${image%%/*}
  rest=${image#*/}
  repository=${rest%:*}
  tag=${rest##*:}
  [ "$repository" != "$rest" ] || tag=latest
  curl -fsS -H 'Accept: application/vnd.docker.distribution.manifest.v2+json' \
    "http://$registry/v2/$repository/manifests/$tag" 2>/dev/null \
    | python3 -c 'import json, sys; print(json.load(sys.stdin)["config"]["digest"])' 2>/dev/null \
    || true
}

ensure() {
  local image=$1 id have
  case "${image%%/*}" in
    *.* | *:* | localhost) ;;
    *) log "ensure wants registry/repository[:tag], not $image"; exit 2 ;;
  esac
  id=$(make_image)
  have=$(docker image inspect --format '{{.Id}}' "$image" 2>/dev/null || true)
  if [ "$have" != "$id" ]; then
    if docker image inspect "$id" >/dev/null 2>&1; then
      docker tag "$id" "$image"
    else
      log "making $image from $busybox (${have:-none in the engine} → $id)"
      rm -rf "$work/archive"
      mkdir "$work/archive"
      mv "$work/layer.tar" "$work/config.json" "$work/archive/"
      printf '[{"Config":"config.json","RepoTags":["%s"],"Layers":["layer.tar"]}]' \
        "$image" >"$work/archive/manifest.json"
      tar -C "$work/archive" -cf - . | docker load -q >/dev/null
    fi
    have=$(docker image inspect --format '{{.Id}}' "$image")
    [ "$have" = "$id" ] || { log "the engine made $have of the recipe of $id"; exit 1; }
  fi
  if [ "$(registry_config_digest "$image")" != "$id" ]; then
    log "pushing $image ($id)"
    docker push -q "$image" >/dev/null
    have=$(registry_config_digest "$image")
    [ "$have" = "$id" ] || { log "the registry holds ${have:-nothing} for $image after the push of $id"; exit 1; }
  fi
  echo "$id"
}

# The manifest of IMAGE (registry/repository:tag) as the registry holds it, in FILE; fails
# when there is none.
fetch_manifest() {
  local image=$1 file=$2 registry rest
  registry=${image%%/*}
  rest=${image#*/}
  curl -fsS -o "$file" -H 'Accept: application/vnd.docker.distribution.manifest.v2+json' \
    "http://$registry/v2/${rest%:*}/manifests/${rest##*:}"
}

# One entry of a manifest list: the manifest in FILE for ARCH (and VARIANT).
list_entry() {
  local file=$1 arch=$2 variant=$3 platform
  platform=$(printf '{"architecture":"%s","os":"linux"}' "$arch")
  [ -z "$variant" ] || platform=$(printf '{"architecture":"%s","os":"linux","variant":"%s"}' "$arch" "$variant")
  printf '{"mediaType":"application/vnd.docker.distribution.manifest.v2+json","size":%s,"digest":"sha256:%s","platform":%s}' \
    "$(stat -c %s "$file")" "$(sha256sum "$file" | cut -d' ' -f1)" "$platform"
}

ensure_multi() {
  local list=$1 registry rest repository tag amd64 arm64 have
  registry=${list%%/*}
  rest=${list#*/}
  repository=${rest%:*}
  tag=${rest##*:}
  [ "$repository" != "$rest" ] || tag=latest
  amd64=$registry/$repository:$tag-amd64
  arm64=$registry/$repository:$tag-arm64
  local arm64_busybox=${OSBS_BASE_BUSYBOX_ARM64:-/var/cache/osbs/arm64/bin/busybox}
  [ -x "$arm64_busybox" ] || { log "$arm64_busybox is missing: run ./deploy/setup.sh (it fetches busybox-static:arm64)"; exit 1; }
  [ "$("$arm64_busybox" uname -m 2>/dev/null)" = aarch64 ] \
    || { log "$arm64_busybox does not run: qemu-aarch64 is not registered in binfmt_misc; run ./deploy/setup.sh"; exit 1; }
  ensure "$amd64" >/dev/null
  # Each ensure runs in a subshell: its own work files, the same recipe.
  (busybox=$arm64_busybox arch_oci=arm64 arch_variant=v8 ensure "$arm64") >/dev/null
  fetch_manifest "$amd64" "$work/amd64.json"
  fetch_manifest "$arm64" "$work/arm64.json"
  printf '{"schemaVersion":2,"mediaType":"application/vnd.docker.distribution.manifest.list.v2+json","manifests":[%s,%s]}' \
    "$(list_entry "$work/amd64.json" amd64 "")" "$(list_entry "$work/arm64.json" arm64 v8)" >"$work/list.json"
  # What the registry holds under the tag, if anything (no pipe: a missing tag fails curl).
  curl -fsS -o "$work/have.json" -H 'Accept: application/vnd.docker.distribution.manifest.list.v2+json' \
    "http://$registry/v2/$repository/manifests/$tag" 2>/dev/null || : >"$work/have.json"
  if ! cmp -s "$work/have.json" "$work/list.json"; then
    log "pushing the manifest list $list (amd64, arm64/v8)"
    curl -fsS -X PUT -H 'Content-Type: application/vnd.docker.distribution.manifest.list.v2+json' \
      --data-binary @"$work/list.json" "http://$registry/v2/$repository/manifests/$tag" >/dev/null
  fi
  echo "sha256:$(sha256sum "$work/list.json" | cut -d' ' -f1)"
}

# One ensure at a time on this host: parallel tests ensure the same tags at once, and the
# registry's filesystem storage rewrites a tag's link in place, so a check made while another
# push rewrites it can find the tag missing (seen in CI: "holds nothing ... after the push").
# The lock is this script's own file: nothing to create, released when the script exits.
lock_ensures() {
  exec 9<"${BASH_SOURCE[0]}"
  flock 9
}

case "${1:-}" in
  rootfs) rootfs ;;
  id) make_image ;;
  ensure)
    [ $# -eq 2 ] || { log "usage: $0 ensure REGISTRY/REPOSITORY[:TAG]"; exit 2; }
    lock_ensures
    ensure "$2"
    ;;
  ensure-multi)
    [ $# -eq 2 ] || { log "usage: $0 ensure-multi REGISTRY/REPOSITORY[:TAG]"; exit 2; }
    lock_ensures
    ensure_multi "$2"
    ;;
  *)
    log "usage: $0 rootfs | id | ensure REGISTRY/REPOSITORY[:TAG] | ensure-multi REGISTRY/REPOSITORY[:TAG]"
    exit 2
    ;;
esac
