package main

import (
	"context"
	"errors"
	"fmt"

	"github.com/sirupsen/logrus"
	"github.com/spf13/cobra"

	"github.com/pod-identity/injector/pkg/mutate"
	"github.com/pod-identity/injector/pkg/providers/registry"
	"github.com/pod-identity/injector/pkg/render"
)

func newExplainCommand() *cobra.Command {
	opts := render.Options{}
	provs := registry.New()
	var excluded []string
	cmd := &cobra.Command{
		Use:   "explain -f FILE [KIND/NAME...]",
		Short: "Say, for each pod template of manifests, what each provider decides and why",
		Long: `Reads a YAML or JSON stream as mutate does and, for every pod template in it (or
those named as kind/name, e.g. deployment/web), prints the pod's ServiceAccount, why
the shipped webhook configuration would not send it to the injector (opt-out labels,
excluded namespaces, mirror pods), each provider's decision with the annotations it
read and its reasons (not set up, invalid, skipped, denied by an identity policy),
and what the pod would get. -o json prints the same for scripts.`,
		RunE: func(cmd *cobra.Command, args []string) error {
			if len(opts.Files) == 0 {
				return errors.New("-f is required: a file of manifests, or - for stdin")
			}
			if opts.Output != "text" && opts.Output != "json" {
				return fmt.Errorf("-o %q: expected text or json", opts.Output)
			}
			ctx, cancel := context.WithCancel(context.Background())
			defer cancel()
			log := logrus.New()
			log.SetOutput(cmd.ErrOrStderr())
			ps, err := provs.Build(ctx, log)
			if err != nil {
				return err
			}
			opts.Stdin = cmd.InOrStdin()
			return render.Explain(mutate.New(ps), opts, args, excluded, cmd.OutOrStdout())
		},
	}
	fs := cmd.Flags()
	fs.StringArrayVarP(&opts.Files, "filename", "f", nil, "manifest file to explain, - for stdin (repeatable)")
	fs.StringArrayVar(&opts.ServiceAccountFiles, "serviceaccounts", nil, "file of ServiceAccounts the workloads run as (repeatable)")
	fs.StringVarP(&opts.Namespace, "namespace", "n", "default", "namespace of objects that name none")
	fs.StringVarP(&opts.Output, "output", "o", "text", "output format: text or json")
	fs.StringSliceVar(&excluded, "excluded-namespaces", []string{"kube-system", "pod-identity-system"}, "namespaces the webhook configuration never sends to the injector")
	opts.AddPolicyFlags(fs)
	provs.AddFlags(fs)
	return cmd
}
