#!/usr/bin/env bash
# The local demo: installs what it needs (scripts/setup.sh, cached), builds
# the four components and runs `egress-demo`: a local cluster of real
# kubelets with the Helm chart installed, the fake Azure and its edge, five
# namespaces with five egress addresses. Pass --keep to leave it running.
# Needs root (network namespaces, containerd).
set -euo pipefail
cd "$(dirname "${BASH_SOURCE[0]}")/.."
cache="${EGRESS_CACHE:-$HOME/.cache/egress-gateway}"
export CARGO_TARGET_DIR="${CARGO_TARGET_DIR:-$cache/target}"
echo "==> setup (cached after the first run)" >&2
eval "$(bash scripts/setup.sh)"
echo "==> building the controller, gateway daemon, node agent and CNI plugin" >&2
cargo build --quiet --locked -p egress-controller -p egress-gateway-daemon \
    -p egress-node-agent -p egress-cni-plugin -p egress-e2e --bins
exec "$CARGO_TARGET_DIR/debug/egress-demo" "$@"
