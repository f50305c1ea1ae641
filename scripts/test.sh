#!/usr/bin/env bash
# The whole test suite, as CI runs it. Installs what it needs first (see
# scripts/setup.sh), then: format check, clippy with warnings denied, the
# egress-core purity check, the CRD staleness check, the Helm chart lint,
# every test tier and the documentation build.
set -euo pipefail
cd "$(dirname "${BASH_SOURCE[0]}")/.."

cache="${EGRESS_CACHE:-$HOME/.cache/egress-gateway}"
# Shared across clones so a clean checkout does not rebuild every dependency.
export CARGO_TARGET_DIR="${CARGO_TARGET_DIR:-$cache/target}"
export CARGO_TERM_COLOR="${CARGO_TERM_COLOR:-never}"

step() { printf '\n==> %s (%ss)\n' "$*" "$SECONDS" >&2; }

step "setup"
eval "$(bash scripts/setup.sh)"

step "format"
cargo fmt --all --check

step "clippy"
cargo clippy --workspace --all-targets --locked -- -D warnings

step "egress-core purity"
bash scripts/check-purity.sh

step "generated CRDs are up to date"
cargo run --quiet --locked -p egressctl -- crds --check deploy/crds --check deploy/helm/egress-gateway/crds

step "Helm chart lint (the API-server checks run with egressctl's tests)"
"$EGRESS_HELM" lint --strict deploy/helm/egress-gateway
"$EGRESS_HELM" lint --strict deploy/helm/egress-gateway --values deploy/helm/egress-gateway/ci/private-closed-values.yaml

step "tier 1: egress-core unit and property tests"
cargo test --locked -p egress-core

step "tier 2: egress-k8s against a real kube-apiserver and etcd"
cargo test --locked -p egress-k8s

step "tier 2: egress-net in real network namespaces"
cargo test --locked -p egress-net

step "everything else (testkit, azure, binaries, examples, benches in test mode)"
cargo test --locked --workspace --all-targets --exclude egress-core --exclude egress-k8s --exclude egress-net

step "doc tests and docs"
cargo test --locked --workspace --doc
RUSTDOCFLAGS="-D warnings" cargo doc --locked --workspace --no-deps

step "all green"
