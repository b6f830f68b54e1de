// Command kube-apiserver builds the upstream Kubernetes API server from the Go
// module proxy so that the end-to-end suite can run against the real thing.
// It is a test-only helper and lives in its own module to keep the product's
// dependency graph small.
package main

import (
	"os"

	"k8s.io/component-base/cli"
	"k8s.io/kubernetes/cmd/kube-apiserver/app"
)

func main() {
	os.Exit(cli.Run(app.NewAPIServerCommand()))
}
