#!/usr/bin/env bash
# Builds the container runtime of the local test cluster's nodes from the Go
# module proxy: containerd v2 with its runc shim and `ctr`
# (tools/containerd/version), and runc with seccomp support
# (tools/runc/version; needs gcc, pkg-config and libseccomp-dev, which
# setup.sh installs). Debian's containerd is too old for the kubelet's CRI.
#
# Each lands in $EGRESS_CACHE/<name>-<version>/bin. Called by scripts/setup.sh;
# prints nothing on stdout.
set -euo pipefail

repo="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
cache="${EGRESS_CACHE:-$HOME/.cache/egress-gateway}"
log() { echo "setup-containerd: $*" >&2; }

# go install into a scratch GOBIN, then move the binaries into place together,
# so an interrupted build never leaves a half-filled cache directory.
install_into() {
    local dest="$1"; shift
    mkdir -p "$dest"
    local tmp
    tmp="$(mktemp -d "$dest/.build.XXXXXX")"
    if ! (cd "$tmp" && GOBIN="$tmp" GOFLAGS=-buildvcs=false go install -trimpath "$@") >&2; then
        rm -rf "$tmp"
        return 1
    fi
    mv -f "$tmp"/* "$dest/"
    rmdir "$tmp"
}

command -v go >/dev/null || { log "go is required to build containerd and runc"; exit 1; }

containerd_version="$(tr -d '[:space:]' < "$repo/tools/containerd/version")"
dir="$cache/containerd-$containerd_version/bin"
if [[ -x "$dir/containerd" && -x "$dir/containerd-shim-runc-v2" && -x "$dir/ctr" ]]; then
    log "containerd $containerd_version cached in $dir"
else
    log "building containerd, containerd-shim-runc-v2 and ctr $containerd_version"
    module=github.com/containerd/containerd/v2
    CGO_ENABLED=0 install_into "$dir" \
        -ldflags "-s -w -X $module/version.Version=$containerd_version" \
        "$module/cmd/containerd@$containerd_version" \
        "$module/cmd/containerd-shim-runc-v2@$containerd_version" \
        "$module/cmd/ctr@$containerd_version"
fi

runc_version="$(tr -d '[:space:]' < "$repo/tools/runc/version")"
dir="$cache/runc-$runc_version/bin"
if [[ -x "$dir/runc" ]]; then
    log "runc $runc_version cached in $dir"
else
    log "building runc $runc_version with seccomp"
    CGO_ENABLED=1 install_into "$dir" -tags seccomp \
        -ldflags "-s -w -X main.version=${runc_version#v}" \
        "github.com/opencontainers/runc@$runc_version"
fi
