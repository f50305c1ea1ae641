//go:build tools

// Package tools pins the Kubernetes and etcd servers that the integration
// tests run against. scripts/setup.sh builds them from this module.
package tools

import (
	_ "go.etcd.io/etcd/server/v3"
	_ "k8s.io/kubernetes/cmd/kube-apiserver"
)
