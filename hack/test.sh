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

./hack/e2e.sh
