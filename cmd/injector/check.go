package main

import (
	"context"
	"errors"

	"github.com/spf13/cobra"

	"github.com/pod-identity/injector/pkg/providers/builtin"
	"github.com/pod-identity/injector/pkg/providers/registry"
	"github.com/pod-identity/injector/pkg/render"
)

func newCheckCommand(configs *registry.Configs) *cobra.Command {
	opts := render.Options{}
	provs := builtin.New().WithConfigs(configs)
	cmd := &cobra.Command{
		Use:   "check -f FILE [-f FILE...]",
		Short: "Print every invalid identity annotation and identity policy violation in manifests, for CI",
		Long: `Reads a YAML or JSON stream of ServiceAccounts and workloads, with the
IdentityPolicy documents in it and in --policy files, and prints one line for
every invalid identity annotation and every identity policy rule broken: by each
ServiceAccount, as if it were being created, and by each pod template, as the
webhook would decide at pod creation. Nothing is mutated. Warnings go to stderr.
Exits non-zero when it printed anything.`,
		Args: cobra.NoArgs,
		RunE: func(cmd *cobra.Command, _ []string) error {
			if len(opts.Files) == 0 {
				return errors.New("-f is required: a file of manifests, or - for stdin")
			}
			ctx, cancel := context.WithCancel(cmd.Context())
			defer cancel()
			engine, err := buildEngine(ctx, provs, cmd.ErrOrStderr())
			if err != nil {
				return err
			}
			opts.Stdin = cmd.InOrStdin()
			cmd.SilenceUsage = true
			return render.Check(engine, opts, cmd.OutOrStdout(), cmd.ErrOrStderr())
		},
	}
	fs := cmd.Flags()
	addFilenameFlag(fs, &opts.Files, "manifest file to check")
	addServiceAccountsFlag(fs, &opts.ServiceAccountFiles, "the workloads run as")
	addNamespaceFlag(fs, &opts.Namespace, "default", "namespace of objects that name none")
	opts.AddPolicyFlags(fs)
	provs.AddFlags(fs)
	return cmd
}
