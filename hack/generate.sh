#!/usr/bin/env bash
# Regenerates what is generated from Go types: the deep-copy functions, the
# IdentityPolicy CustomResourceDefinition in deploy/manifests (and the Helm
# chart) and the IdentityParameters one in deploy/policy.
# hack/test.sh runs it and fails when the result differs from what is committed.
set -euo pipefail
cd "$(dirname "$0")/.."
controller_gen=(go run sigs.k8s.io/controller-tools/cmd/controller-gen@v0.23.0)
"${controller_gen[@]}" object paths=./pkg/policy/v1alpha1/... paths=./pkg/parameters/v1alpha1/...
"${controller_gen[@]}" crd:maxDescLen=400 paths=./pkg/policy/v1alpha1/... output:crd:dir=deploy/manifests/crds
"${controller_gen[@]}" crd:maxDescLen=400 paths=./pkg/parameters/v1alpha1/... output:crd:dir=deploy/policy/crds
# The Helm chart ships the same IdentityPolicy CRD.
cp deploy/manifests/crds/pod-identity.io_*.yaml deploy/chart/crds/
