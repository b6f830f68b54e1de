package server_test

// Every test binary accepts -update, so that `go test ./... -update`
// (which rewrites the golden fixtures) runs in every package.
import _ "github.com/pod-identity/injector/internal/golden"
