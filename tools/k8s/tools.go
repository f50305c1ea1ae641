//go:build tools

// Package tools pins the Kubernetes and etcd servers that the integration
// tests run against, and the node and control-plane components of the local
// test cluster. scripts/setup.sh and scripts/setup-kube-node.sh build them
// from this module.
package tools

import (
	_ "go.etcd.io/etcd/server/v3"
	_ "k8s.io/kubernetes/cmd/kube-apiserver"
	_ "k8s.io/kubernetes/cmd/kube-controller-manager"
	_ "k8s.io/kubernetes/cmd/kube-scheduler"
	_ "k8s.io/kubernetes/cmd/kubectl"
	_ "k8s.io/kubernetes/cmd/kubelet"
)
