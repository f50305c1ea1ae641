#!/usr/bin/env bash
# Builds the rest of the local test cluster's Kubernetes components from the
# same pinned module as kube-apiserver (tools/k8s): kubelet,
# kube-controller-manager, kube-scheduler and kubectl (for debugging by hand
# and for `kubectl exec`-style checks). They land beside kube-apiserver in
# $EGRESS_CACHE/k8s-<version>/bin, stamped with the go.sum they came from.
#
# Called by scripts/setup.sh; prints nothing on stdout.
set -euo pipefail

repo="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
cache="${EGRESS_CACHE:-$HOME/.cache/egress-gateway}"
k8s_version="$(tr -d '[:space:]' < "$repo/tools/k8s/version")"
bin_dir="$cache/k8s-$k8s_version/bin"
log() { echo "setup-kube-node: $*" >&2; }

components=(kubelet kube-controller-manager kube-scheduler kubectl)
# Its own stamp name: setup.sh clears `.built-from-*` when it rebuilds the API server.
k8s_ldflags="$(bash "$repo/scripts/k8s-ldflags.sh" "$k8s_version")"
stamp_for() { echo "$bin_dir/.node-built-from-$( (cat "$repo/tools/k8s/go.sum"; echo "$k8s_ldflags") | sha256sum | cut -c1-16)"; }
stamp="$(stamp_for)"
have_all=1
for c in "${components[@]}"; do [[ -x "$bin_dir/$c" ]] || have_all=0; done
if ((have_all)) && [[ -f "$stamp" ]]; then
    log "${components[*]} $k8s_version cached in $bin_dir"
    exit 0
fi

command -v go >/dev/null || { log "go is required to build the Kubernetes node components"; exit 1; }
log "building ${components[*]} for Kubernetes $k8s_version"
mkdir -p "$bin_dir"
tmp="$(mktemp -d "$bin_dir/.node-build.XXXXXX")"
trap 'rm -rf "$tmp"' EXIT
(
    cd "$repo/tools/k8s"
    export CGO_ENABLED=0 GOFLAGS=-mod=mod
    for c in "${components[@]}"; do
        go build -trimpath -ldflags="$k8s_ldflags" -o "$tmp/$c" "k8s.io/kubernetes/cmd/$c"
    done
) >&2
for c in "${components[@]}"; do mv -f "$tmp/$c" "$bin_dir/"; done
rm -f "$bin_dir"/.node-built-from-*
# After the build: `-mod=mod` may have completed go.sum.
touch "$(stamp_for)"
