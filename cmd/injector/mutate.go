package main

import (
	"context"
	"errors"
	"io"

	"github.com/spf13/cobra"

	"github.com/pod-identity/injector/pkg/providers/builtin"
	"github.com/pod-identity/injector/pkg/providers/registry"
	"github.com/pod-identity/injector/pkg/render"
)

// mutateConfig is the configuration of `injector mutate`.
type mutateConfig struct {
	files           []string
	serviceAccounts []string
	output          string
	patch           bool
	namespace       string
	invalidIdentity string
	policies        render.Options
	providers       *registry.Set
}

func (c *mutateConfig) validate() error {
	if len(c.files) == 0 {
		return errors.New("-f is required: a file of manifests, or - for stdin")
	}
	return nil
}

func newMutateCommand(configs *registry.Configs) *cobra.Command {
	cfg := &mutateConfig{providers: builtin.New().WithConfigs(configs)}
	cmd := &cobra.Command{
		Use:   "mutate -f FILE [-f FILE...]",
		Short: "Print manifests with pod templates mutated exactly as the webhook would",
		Long: `Reads a YAML or JSON stream of Pods, Deployments, StatefulSets, DaemonSets,
ReplicaSets, Jobs, CronJobs and ServiceAccounts and writes it back in order, with
every pod template mutated as the webhook would mutate it. The ServiceAccounts in
the stream (and in --serviceaccounts files) drive the injection. IdentityPolicy
documents in the stream or in --policy files apply as the webhook applies them,
selecting namespaces by the labels of Namespace documents and --namespace-labels.
Warnings go to stderr; an invalid identity configuration exits non-zero in deny
mode, and a pod an identity policy denies exits non-zero in either mode.`,
		Args: cobra.NoArgs,
		RunE: func(cmd *cobra.Command, _ []string) error {
			return runMutate(cmd.Context(), cfg, cmd.InOrStdin(), cmd.OutOrStdout(), cmd.ErrOrStderr())
		},
	}
	fs := cmd.Flags()
	addFilenameFlag(fs, &cfg.files, "manifest file to mutate")
	addServiceAccountsFlag(fs, &cfg.serviceAccounts, "that drive the injection")
	addOutputFlag(fs, &cfg.output, "", "default: json when the input is all JSON, else yaml", "yaml", "json")
	fs.BoolVar(&cfg.patch, "patch", false, "print the JSON patch of each pod instead of the manifests")
	addNamespaceFlag(fs, &cfg.namespace, "default", "namespace of objects that name none")
	addInvalidIdentityFlag(fs, &cfg.invalidIdentity)
	cfg.policies.AddPolicyFlags(fs)
	cfg.providers.AddFlags(fs)
	return cmd
}

func runMutate(ctx context.Context, cfg *mutateConfig, stdin io.Reader, stdout, stderr io.Writer) error {
	if err := cfg.validate(); err != nil {
		return err
	}
	if ctx == nil {
		ctx = context.Background()
	}
	ctx, cancel := context.WithCancel(ctx)
	defer cancel()
	engine, err := buildEngine(ctx, cfg.providers, stderr)
	if err != nil {
		return err
	}
	return render.Run(engine, render.Options{
		Files: cfg.files, ServiceAccountFiles: cfg.serviceAccounts, Stdin: stdin,
		Output: cfg.output, Patch: cfg.patch, Namespace: cfg.namespace, InvalidIdentity: cfg.invalidIdentity,
		PolicyFiles: cfg.policies.PolicyFiles, NamespaceLabels: cfg.policies.NamespaceLabels,
	}, stdout, stderr)
}
