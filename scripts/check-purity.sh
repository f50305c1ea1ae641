#!/usr/bin/env bash
# egress-core must stay free of IO: no async runtime, Kubernetes, Azure,
# netlink, nftables or WireGuard crates anywhere in its normal dependency tree.
set -euo pipefail
cd "$(dirname "${BASH_SOURCE[0]}")/.."

banned='^(tokio|async-std|mio|kube|kube-[a-z]+|k8s-openapi|azure_[a-z_]+|rtnetlink|netlink-[a-z-]+|nftables|nftnl|defguard_[a-z_]+|boringtun|wireguard[a-z_-]*|hyper|reqwest)$'
deps="$(cargo tree --locked -p egress-core -e normal,build --prefix none --format '{p}' | awk '{print $1}' | sort -u)"
bad="$(grep -E "$banned" <<<"$deps" || true)"
if [[ -n "$bad" ]]; then
    echo "egress-core must stay pure, but depends on:" >&2
    echo "$bad" >&2
    exit 1
fi
echo "egress-core is pure: $(wc -l <<<"$deps") crates, none of them IO" >&2
