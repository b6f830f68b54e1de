#!/usr/bin/env bash
# Mutation testing (not part of CI): gremlins v0.6.0 puts small bugs into
# each package's code one at a time and runs that package's tests; a bug no
# test notices "lived". The provider packages, the engine and the CLI run
# the golden fixtures from their own tests (pkg/providers/providertest), so
# the fixtures count. The hostile-request memory test (40 s a run, about
# resource bounds rather than behaviour) is left out with the mutation tag.
#
#   make mutation                      # every package below, about 30 min on 2 cores
#   PACKAGES="./pkg/mutate" make mutation
#
# Figures and the surviving mutants judged equivalent: docs/testing.md.
set -euo pipefail
cd "$(dirname "$0")/.."
out=${OUT:-/tmp/pod-identity-mutation}
mkdir -p "$out"
# ./pkg/providers takes in its subpackages: the three providers and the registry.
packages=${PACKAGES:-"./internal/jsonscan ./pkg/mutate ./pkg/providers ./internal/admission ./internal/server"}
go install github.com/go-gremlins/gremlins/cmd/gremlins@v0.6.0
gremlins=$(go env GOPATH)/bin/gremlins
for p in $packages; do
  name=$(echo "${p#./}" | tr / -)
  echo "== $p"
  "$gremlins" unleash "$p" --tags mutation --workers 2 --timeout-coefficient 5 \
    --exclude-files 'providertest/' -o "$out/$name.json" 2>&1 | tee "$out/$name.txt" | grep -E "LIVED|^Killed|^Timed|^Test efficacy|^Mutator coverage" || true
done
echo "reports in $out"
