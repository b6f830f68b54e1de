package main

import (
	"context"
	"io"

	"github.com/sirupsen/logrus"
	"github.com/spf13/pflag"

	"github.com/pod-identity/injector/pkg/mutate"
	"github.com/pod-identity/injector/pkg/providers/registry"
)

func addInvalidIdentityFlag(fs *pflag.FlagSet, v *string) {
	fs.StringVar(v, "invalid-identity", "deny", "what an invalid identity annotation does: deny the pod, or warn and admit it without that provider's injection")
}

// buildEngine builds the enabled providers of set, logging to stderr,
// into the engine; what they watch lives as long as ctx.
func buildEngine(ctx context.Context, set *registry.Set, stderr io.Writer) (*mutate.Engine, error) {
	log := logrus.New()
	log.SetOutput(stderr)
	ps, err := set.Build(ctx, log)
	if err != nil {
		return nil, err
	}
	return mutate.New(ps), nil
}
