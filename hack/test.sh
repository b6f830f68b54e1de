#!/usr/bin/env bash
# The whole test suite: formatting, vet, staticcheck, the unit, fixture and
# HTTP tests, and the end-to-end suite against a real kube-apiserver.
set -euo pipefail
cd "$(dirname "$0")/.."

echo "== gofmt"
unformatted=$(gofmt -l $(git ls-files '*.go' 2>/dev/null || find . -name '*.go'))
if [ -n "$unformatted" ]; then
  echo "gofmt would change:"; echo "$unformatted"; exit 1
fi

echo "== generated files (hack/generate.sh)"
./hack/generate.sh
if git rev-parse --git-dir >/dev/null 2>&1 && ! git diff --exit-code -- deploy/manifests/crds deploy/chart/crds deploy/policy/crds pkg/policy/v1alpha1 pkg/parameters/v1alpha1; then
  echo "generated files differ from what is committed: run hack/generate.sh and commit the result"; exit 1
fi

echo "== go vet"
go vet ./...

echo "== staticcheck"
go run honnef.co/go/tools/cmd/staticcheck@v0.8.2 ./...

echo "== go test -race"
go test -race -count=1 ./...

# Heap figures mean nothing under the race detector: the hostile-request
# memory test runs on its own, without it.
echo "== go test (memory under hostile requests)"
go test -count=1 -run 'TestHostileRequestsGrowNothing' ./internal/server/

# The shipped mutating admission policy compiled and evaluated with the
# API server's CEL, offline (its own module: k8s.io/apiserver stays out of
# the product's go.mod): a policy the API server would not compile fails
# here, before the e2e suite; and the written policy (sync
# --written-policy) is held to the shipped one.
echo "== the mutating policy's CEL, offline (test/celbench)"
(cd test/celbench && go vet ./... && go test -count=1 -bench . -benchtime 1x ./...)

./hack/e2e.sh
