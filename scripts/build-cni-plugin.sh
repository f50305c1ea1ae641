#!/usr/bin/env bash
# Builds the CNI plugin `egress-cni` statically linked (release, crt-static):
# it is copied onto nodes whose C library it cannot assume, and a static
# binary starts faster, which is most of a CNI ADD's cost. Only the plugin's
# own link is static, so the workspace's proc-macros build as usual.
# Prints `export EGRESS_CNI_PLUGIN=...` as its last line.
set -euo pipefail
repo="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
cache="${EGRESS_CACHE:-$HOME/.cache/egress-gateway}"
target="$cache/target-static"
CARGO_TARGET_DIR="$target" cargo rustc --quiet --locked --release \
    --manifest-path "$repo/Cargo.toml" -p egress-cni-plugin --bin egress-cni \
    -- -C target-feature=+crt-static >&2
bin="$target/release/egress-cni"
ldd "$bin" 2>&1 | grep -Eq "statically linked|not a dynamic" || {
    echo "build-cni-plugin: $bin is not statically linked" >&2
    exit 1
}
echo "export EGRESS_CNI_PLUGIN=$bin"
