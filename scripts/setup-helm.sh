#!/usr/bin/env bash
# Builds Helm (tools/helm/version) from the Go module proxy into
# $EGRESS_CACHE/helm-<version>/bin, for the chart tests.
# Called by scripts/setup.sh; prints nothing on stdout.
set -euo pipefail

repo="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
cache="${EGRESS_CACHE:-$HOME/.cache/egress-gateway}"
log() { echo "setup-helm: $*" >&2; }

version="$(tr -d '[:space:]' < "$repo/tools/helm/version")"
major="${version%%.*}"
dir="$cache/helm-$version/bin"
if [[ -x "$dir/helm" ]]; then
    log "helm $version cached in $dir"
    exit 0
fi
command -v go >/dev/null || { log "go is required to build helm"; exit 1; }
log "building helm $version"
mkdir -p "$dir"
tmp="$(mktemp -d "$dir/.build.XXXXXX")"
trap 'rm -rf "$tmp"' EXIT
module="helm.sh/helm/$major"
(cd "$tmp" && CGO_ENABLED=0 GOBIN="$tmp" GOFLAGS=-buildvcs=false go install -trimpath \
    -ldflags "-s -w -X $module/internal/version.version=$version" "$module/cmd/helm@$version") >&2
mv -f "$tmp/helm" "$dir/helm"
