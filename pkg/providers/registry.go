package providers

import (
	"context"

	"github.com/sirupsen/logrus"
	"github.com/spf13/pflag"
)

// Plugin is how a provider package plugs into the binary: it owns its flags
// and builds its Provider from them. Each call of a package's NewPlugin
// returns a fresh plugin with default settings.
type Plugin interface {
	// Name is the provider's short name, used in the --enable-<name> flag.
	Name() string
	// AddFlags registers the provider's flags on fs.
	AddFlags(fs *pflag.FlagSet)
	// Build validates the settings and returns the provider. Background
	// work (such as watching a file) lives as long as ctx.
	Build(ctx context.Context, log logrus.FieldLogger) (Provider, error)
}

// FuncPlugin is a Plugin made of a provider package's flag registration
// and constructor, which share the package's config.
type FuncPlugin struct {
	// ProviderName is returned by Name.
	ProviderName string
	// Flags registers the provider's flags.
	Flags func(fs *pflag.FlagSet)
	// New builds the provider from the flags' values.
	New func(ctx context.Context, log logrus.FieldLogger) (Provider, error)
}

// Name implements Plugin.
func (p FuncPlugin) Name() string { return p.ProviderName }

// AddFlags implements Plugin.
func (p FuncPlugin) AddFlags(fs *pflag.FlagSet) { p.Flags(fs) }

// Build implements Plugin.
func (p FuncPlugin) Build(ctx context.Context, log logrus.FieldLogger) (Provider, error) {
	return p.New(ctx, log)
}
