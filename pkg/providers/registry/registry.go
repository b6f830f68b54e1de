// Package registry lists the provider plugins compiled into the binary and
// builds the enabled ones from flags. Adding a cloud is one line in New.
package registry

import (
	"context"
	"fmt"

	"github.com/sirupsen/logrus"
	"github.com/spf13/pflag"

	"github.com/pod-identity/injector/pkg/providers"
	"github.com/pod-identity/injector/pkg/providers/aws"
	"github.com/pod-identity/injector/pkg/providers/azure"
	"github.com/pod-identity/injector/pkg/providers/gcp"
)

// Set is every compiled-in provider plugin with its --enable-<name> switch.
type Set struct {
	plugins []providers.Plugin
	enabled map[string]*bool
}

// New returns the set of all compiled-in providers, each enabled by default.
func New() *Set {
	return NewSet(aws.NewPlugin(), azure.NewPlugin(), gcp.NewPlugin())
}

// NewSet returns a set of the given plugins, each enabled by default: for
// a binary or a test that builds other providers than the compiled-in ones.
func NewSet(plugins ...providers.Plugin) *Set {
	return &Set{plugins: plugins, enabled: map[string]*bool{}}
}

// Names lists the compiled-in providers in order.
func (s *Set) Names() []string {
	names := make([]string, len(s.plugins))
	for i, p := range s.plugins {
		names[i] = p.Name()
	}
	return names
}

// AddFlags registers --enable-<name> and every provider's own flags on fs.
func (s *Set) AddFlags(fs *pflag.FlagSet) {
	for _, p := range s.plugins {
		on := true
		s.enabled[p.Name()] = &on
		fs.BoolVar(&on, "enable-"+p.Name(), true, fmt.Sprintf("inject %s identities", p.Name()))
		p.AddFlags(fs)
	}
}

// Build returns the enabled providers, in registry order.
func (s *Set) Build(ctx context.Context, log logrus.FieldLogger) ([]providers.Provider, error) {
	var out []providers.Provider
	for _, p := range s.plugins {
		if on, ok := s.enabled[p.Name()]; ok && !*on {
			continue
		}
		pr, err := p.Build(ctx, log.WithField("provider", p.Name()))
		if err != nil {
			return nil, fmt.Errorf("provider %s: %w", p.Name(), err)
		}
		out = append(out, pr)
	}
	return out, nil
}
