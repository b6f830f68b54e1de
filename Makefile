# Convenience targets; each runs what the README documents.
.PHONY: build test unit lint generate e2e bench loadtest mutation apibench celbench

build:
	go build -o bin/injector ./cmd/injector

# Everything CI runs: lint, generated files, unit tests, then e2e.
test:
	./hack/test.sh

# The unit, fixture and HTTP tests with the race detector; no e2e.
unit:
	go test -race -count=1 ./...

# Formatting, vet and staticcheck.
lint:
	@unformatted=$$(gofmt -l $$(git ls-files '*.go')); if [ -n "$$unformatted" ]; then echo "gofmt would change:"; echo "$$unformatted"; exit 1; fi
	go vet ./...
	cd test/e2e && go vet ./...
	cd test/celbench && go vet ./...
	go run honnef.co/go/tools/cmd/staticcheck@v0.8.2 ./...

# What is generated: deep copies and CRDs (hack/generate.sh), and
# docs/flags.md from the commands. Review the diff before committing.
generate:
	./hack/generate.sh
	GOLDEN_UPDATE=1 go test ./cmd/injector -run TestTheFlagReferenceIsCurrent

e2e:
	./hack/e2e.sh

bench:
	go test -run - -bench . -benchmem ./pkg/mutate/... ./internal/server/...

loadtest:
	go run ./hack/loadtest

# Mutation testing with gremlins (not part of CI; see docs/testing.md).
mutation:
	./hack/mutation.sh

# Pod creation at a real kube-apiserver, per admission setup (docs/performance.md).
# ARGS passes flags, e.g. ARGS="-setups policy -profile 'policy mode (shipped)'".
apibench:
	cd test/e2e && go run ./apibench $(ARGS)

# What each part of the mutating admission policy costs to evaluate for one
# pod, offline, with the API server's CEL (docs/performance.md).
celbench:
	cd test/celbench && go test -run '^$$' -bench . -benchmem $(ARGS)
