#!/usr/bin/env bash
# Builds the local test cluster's container images without a registry:
# a static pause binary (from the pinned Kubernetes module's own source) and
# OCI tarballs for pause and for a small test image with Debian's
# busybox-static. Cached in $EGRESS_CACHE/images-<key>, the key covering the
# Kubernetes version, the busybox package version and the image scripts.
#
# Images of the project's own binaries are built the same way by
# scripts/mkimage.sh (see egress_testkit::image). Called by scripts/setup.sh;
# prints the cache directory on stdout.
set -euo pipefail

repo="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
cache="${EGRESS_CACHE:-$HOME/.cache/egress-gateway}"
log() { echo "setup-images: $*" >&2; }

k8s_version="$(tr -d '[:space:]' < "$repo/tools/k8s/version")"
busybox_version="$(dpkg-query -W -f='${Version}' busybox-static)"
key="$( (echo "$k8s_version $busybox_version"; cat "$repo/scripts/mkimage.sh" "${BASH_SOURCE[0]}") | sha256sum | cut -c1-16)"
dir="$cache/images-$key"
if [[ -f "$dir/pause.tar" && -f "$dir/busybox.tar" && -x "$dir/pause" ]]; then
    log "images cached in $dir"
    ln -sfn "images-$key" "$cache/images"
    echo "$dir"
    exit 0
fi

log "building pause and busybox images"
mkdir -p "$dir"
tmp="$(mktemp -d "$dir/.build.XXXXXX")"
trap 'rm -rf "$tmp"' EXIT

# pause.c ships in the Kubernetes module the API server is built from.
src="$(cd "$repo/tools/k8s" && GOFLAGS=-mod=mod go mod download -json "k8s.io/kubernetes@$k8s_version" |
    sed -n 's/^\s*"Dir": "\(.*\)",$/\1/p')/build/pause/linux/pause.c"
[[ -f "$src" ]] || { log "pause source not found at $src"; exit 1; }
gcc -Os -static -Wall -Werror -DVERSION="\"$k8s_version-egress\"" -o "$tmp/pause" "$src" >&2
strip "$tmp/pause"
bash "$repo/scripts/mkimage.sh" "$tmp/pause.tar" localhost/pause:egress-testkit \
    --file "$tmp/pause:/pause" --entrypoint '["/pause"]'

# busybox-static with one symlink per applet, as the busybox image does.
links=()
while read -r applet; do
    [[ "$applet" == bin/busybox ]] || links+=(--symlink "/$applet:/bin/busybox")
done < <(/bin/busybox --list-full)
bash "$repo/scripts/mkimage.sh" "$tmp/busybox.tar" localhost/busybox:egress-testkit \
    --file /bin/busybox:/bin/busybox "${links[@]}" --dir /tmp --dir /etc \
    --cmd '["sh"]'

mv -f "$tmp/pause" "$tmp/pause.tar" "$tmp/busybox.tar" "$dir/"
# A stable name for callers that do not read the exports (egress_testkit::tools).
ln -sfn "images-$key" "$cache/images"
echo "$dir"
