#!/usr/bin/env bash
# Regenerates what is generated from Go types: the IdentityPolicy
# CustomResourceDefinition in deploy/manifests and the deep-copy functions.
# hack/test.sh runs it and fails when the result differs from what is committed.
set -euo pipefail
cd "$(dirname "$0")/.."
controller_gen=(go run sigs.k8s.io/controller-tools/cmd/controller-gen@v0.23.0)
"${controller_gen[@]}" object paths=./pkg/policy/v1alpha1/...
"${controller_gen[@]}" crd:maxDescLen=400 paths=./pkg/policy/v1alpha1/... output:crd:dir=deploy/manifests/crds
# The Helm chart ships the same CRD.
cp deploy/manifests/crds/*.yaml deploy/chart/crds/
