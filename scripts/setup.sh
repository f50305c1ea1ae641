#!/usr/bin/env bash
# Installs everything the test suite needs on a fresh Debian machine.
# Idempotent: a second run only checks, and the slow Go builds are cached
# under $EGRESS_CACHE keyed by the pinned Kubernetes version.
#
# Prints `export EGRESS_...=...` lines on stdout (everything else goes to
# stderr) so callers can eval them.
set -euo pipefail

repo="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
cache="${EGRESS_CACHE:-$HOME/.cache/egress-gateway}"
k8s_version="$(tr -d '[:space:]' < "$repo/tools/k8s/version")"
bin_dir="$cache/k8s-$k8s_version/bin"

log() { echo "setup: $*" >&2; }

# Debian packages: nft for the SNAT adapter, iproute2 for namespaces and veth,
# the reference CNI plugins for chaining tests (and as the test cluster's primary
# CNI, whose portmap plugin needs iptables), openssl for service-account keys;
# util-linux's nsenter and unshare for the test cluster's nodes, gcc,
# pkg-config and libseccomp-dev for runc and the static pause binary,
# busybox-static for the test cluster's test image, ca-certificates for the
# product image (its Azure client needs TLS roots).
packages=(nftables iproute2 containernetworking-plugins openssl procps iptables util-linux
    gcc libc6-dev pkg-config libseccomp-dev busybox-static ca-certificates)
missing=()
for p in "${packages[@]}"; do
    if ! dpkg-query -W -f='${Status}' "$p" 2>/dev/null | grep -q "install ok installed"; then
        missing+=("$p")
    fi
done
if ((${#missing[@]})); then
    log "installing Debian packages: ${missing[*]}"
    export DEBIAN_FRONTEND=noninteractive
    apt-get update -qq >&2
    apt-get install -y -qq --no-install-recommends "${missing[@]}" >&2
else
    log "Debian packages present"
fi

# kube-apiserver and etcd, built from the Go module proxy. The tools module pins
# k8s.io/kubernetes and replaces its staging modules with the matching tags.
if ! grep -q "k8s.io/kubernetes $k8s_version" "$repo/tools/k8s/go.mod"; then
    log "tools/k8s/version ($k8s_version) does not match tools/k8s/go.mod"
    exit 1
fi
# Stamped version strings, so clients (kubectl, Helm) see the real server version.
k8s_ldflags="$(bash "$repo/scripts/k8s-ldflags.sh" "$k8s_version")"
stamp="$bin_dir/.built-from-$( (cat "$repo/tools/k8s/go.sum"; echo "$k8s_ldflags") | sha256sum | cut -c1-16)"
if [[ -x "$bin_dir/kube-apiserver" && -x "$bin_dir/etcd" && -f "$stamp" ]]; then
    log "kube-apiserver and etcd $k8s_version cached in $bin_dir"
else
    command -v go >/dev/null || { log "go is required to build kube-apiserver"; exit 1; }
    log "building kube-apiserver and etcd for Kubernetes $k8s_version (slow the first time)"
    mkdir -p "$bin_dir"
    tmp="$(mktemp -d "$bin_dir/.build.XXXXXX")"
    (
        cd "$repo/tools/k8s"
        export CGO_ENABLED=0 GOFLAGS=-mod=mod
        go build -trimpath -ldflags="$k8s_ldflags" -o "$tmp/kube-apiserver" k8s.io/kubernetes/cmd/kube-apiserver
        go build -trimpath -ldflags='-s -w' -o "$tmp/etcd" go.etcd.io/etcd/server/v3
    ) >&2
    mv -f "$tmp/kube-apiserver" "$tmp/etcd" "$bin_dir/"
    rmdir "$tmp"
    rm -f "$bin_dir"/.built-from-*
    touch "$stamp"
fi

# The local test cluster (egress_testkit::cluster): the other Kubernetes
# components, the container runtime, Helm, and the images.
bash "$repo/scripts/setup-kube-node.sh"
bash "$repo/scripts/setup-containerd.sh"
bash "$repo/scripts/setup-helm.sh"
images_dir="$(bash "$repo/scripts/setup-images.sh")"

# Userspace WireGuard for hosts without the kernel module (prints its export).
bash "$repo/scripts/setup-wireguard-go.sh"

echo "export EGRESS_K8S_BIN_DIR=$bin_dir"
echo "export EGRESS_CONTAINERD_BIN_DIR=$cache/containerd-$(tr -d '[:space:]' < "$repo/tools/containerd/version")/bin"
echo "export EGRESS_RUNC_BIN_DIR=$cache/runc-$(tr -d '[:space:]' < "$repo/tools/runc/version")/bin"
echo "export EGRESS_HELM=$cache/helm-$(tr -d '[:space:]' < "$repo/tools/helm/version")/bin/helm"
echo "export EGRESS_IMAGES_DIR=$images_dir"
