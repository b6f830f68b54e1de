// Package builtin lists the provider plugins compiled into the binary.
// Adding a compiled cloud is one line in New.
package builtin

import (
	"github.com/pod-identity/injector/pkg/providers/aws"
	"github.com/pod-identity/injector/pkg/providers/azure"
	"github.com/pod-identity/injector/pkg/providers/gcp"
	"github.com/pod-identity/injector/pkg/providers/registry"
)

// New returns the set of all compiled-in providers, each enabled by default.
func New() *registry.Set {
	return registry.NewSet(aws.NewPlugin(), azure.NewPlugin(), gcp.NewPlugin())
}
