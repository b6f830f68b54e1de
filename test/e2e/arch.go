package e2e

import "runtime"

func goarch() string { return runtime.GOARCH }
