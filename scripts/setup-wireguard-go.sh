#!/usr/bin/env bash
# Builds the userspace WireGuard implementation (wireguard-go) from the Go
# module proxy, for hosts without the kernel module. Idempotent: the binary is
# cached under $EGRESS_CACHE keyed by the pinned module version.
#
# Prints `export EGRESS_WIREGUARD_GO=...` as its last line so callers can eval it.
set -euo pipefail

# The newest wireguard-go on the module proxy (it publishes pseudo-versions only).
version="v0.0.0-20260522210424-ecfc5a8d5446"
cache="${EGRESS_CACHE:-$HOME/.cache/egress-gateway}"
dir="$cache/wireguard-go-$version"
bin="$dir/wireguard-go"

log() { echo "setup-wireguard-go: $*" >&2; }

if [[ -x "$bin" ]]; then
    log "wireguard-go $version cached in $dir"
else
    command -v go >/dev/null || { log "go is required to build wireguard-go"; exit 1; }
    log "building wireguard-go $version"
    mkdir -p "$dir"
    tmp="$(mktemp -d "$dir/.build.XXXXXX")"
    (
        export CGO_ENABLED=0 GOBIN="$tmp" GOFLAGS=-mod=mod
        go install -trimpath -ldflags='-s -w' "golang.zx2c4.com/wireguard@$version"
    ) >&2
    mv -f "$tmp/wireguard" "$bin"
    rmdir "$tmp"
fi

echo "export EGRESS_WIREGUARD_GO=$bin"
