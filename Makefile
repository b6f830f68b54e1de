# Convenience targets; each runs what the README documents.
.PHONY: build test e2e bench loadtest mutation apibench

build:
	go build -o bin/injector ./cmd/injector

test:
	./hack/test.sh

e2e:
	./hack/e2e.sh

bench:
	go test -run - -bench . -benchmem ./pkg/mutate/... ./pkg/server/...

loadtest:
	go run ./hack/loadtest

# Mutation testing with gremlins (not part of CI; see docs/testing.md).
mutation:
	./hack/mutation.sh

# Pod creation at a real kube-apiserver, per admission setup (docs/performance.md).
# ARGS passes flags, e.g. ARGS="-setups policy -profile 'policy mode (shipped)'".
apibench:
	cd test/e2e && go run ./apibench $(ARGS)
