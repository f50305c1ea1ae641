#!/usr/bin/env bash
# Prints the Go linker flags for a Kubernetes component built from tools/k8s:
# stripped, and stamped with the release version (`go build` alone reports
# v0.0.0-master, which clients such as Helm and kubectl check against).
# usage: k8s-ldflags.sh v1.34.3
set -euo pipefail
version="${1:?usage: k8s-ldflags.sh VERSION}"
major="${version#v}" major="${major%%.*}"
minor="${version#v*.}" minor="${minor%%.*}"
flags="-s -w"
for pkg in k8s.io/component-base/version k8s.io/client-go/pkg/version; do
    flags+=" -X $pkg.gitVersion=$version -X $pkg.gitMajor=$major -X $pkg.gitMinor=$minor"
    flags+=" -X $pkg.gitTreeState=clean -X $pkg.buildDate=1970-01-01T00:00:00Z"
done
echo "$flags"
