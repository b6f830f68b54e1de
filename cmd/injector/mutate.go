package main

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"os"
	"strings"

	"github.com/sirupsen/logrus"
	"github.com/spf13/cobra"

	"github.com/pod-identity/injector/pkg/manifest"
	"github.com/pod-identity/injector/pkg/mutate"
	"github.com/pod-identity/injector/pkg/providers/registry"
)

// mutateConfig is the configuration of `injector mutate`.
type mutateConfig struct {
	files           []string
	serviceAccounts []string
	output          string
	patch           bool
	namespace       string
	invalidIdentity string
	providers       *registry.Set
}

func (c *mutateConfig) validate() error {
	if len(c.files) == 0 {
		return errors.New("-f is required: a file of manifests, or - for stdin")
	}
	if c.output != "yaml" && c.output != "json" {
		return fmt.Errorf("-o %q: expected yaml or json", c.output)
	}
	return validateInvalidIdentity(c.invalidIdentity)
}

func validateInvalidIdentity(mode string) error {
	if mode != "deny" && mode != "warn" {
		return fmt.Errorf("--invalid-identity %q: expected deny or warn", mode)
	}
	return nil
}

func newMutateCommand() *cobra.Command {
	cfg := &mutateConfig{providers: registry.New()}
	cmd := &cobra.Command{
		Use:   "mutate -f FILE [-f FILE...]",
		Short: "Print manifests with pod templates mutated exactly as the webhook would",
		Long: `Reads a YAML or JSON stream of Pods, Deployments, StatefulSets, DaemonSets,
ReplicaSets, Jobs, CronJobs and ServiceAccounts and writes it back in order, with
every pod template mutated as the webhook would mutate it. The ServiceAccounts in
the stream (and in --serviceaccounts files) drive the injection. Warnings go to
stderr; an invalid identity configuration exits non-zero in deny mode.`,
		Args: cobra.NoArgs,
		RunE: func(cmd *cobra.Command, _ []string) error {
			return runMutate(cmd.Context(), cfg, cmd.InOrStdin(), cmd.OutOrStdout(), cmd.ErrOrStderr())
		},
	}
	fs := cmd.Flags()
	fs.StringArrayVarP(&cfg.files, "filename", "f", nil, "manifest file to mutate, - for stdin (repeatable)")
	fs.StringArrayVar(&cfg.serviceAccounts, "serviceaccounts", nil, "file of ServiceAccounts that drive the injection (repeatable)")
	fs.StringVarP(&cfg.output, "output", "o", "yaml", "output format: yaml or json")
	fs.BoolVar(&cfg.patch, "patch", false, "print the JSON patch of each pod instead of the manifests")
	fs.StringVarP(&cfg.namespace, "namespace", "n", "default", "namespace of objects that name none")
	addInvalidIdentityFlag(fs, &cfg.invalidIdentity)
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
	log := logrus.New()
	log.SetOutput(stderr)
	provs, err := cfg.providers.Build(ctx, log)
	if err != nil {
		return err
	}
	engine := mutate.New(provs)

	read := func(name string) ([]*manifest.Document, error) {
		if name == "-" {
			return manifest.Read(stdin, "stdin")
		}
		f, err := os.Open(name)
		if err != nil {
			return nil, err
		}
		defer func() { _ = f.Close() }()
		return manifest.Read(f, name)
	}
	sas := manifest.ServiceAccounts{}
	for _, name := range cfg.serviceAccounts {
		docs, err := read(name)
		if err != nil {
			return err
		}
		if err := sas.Add(docs, cfg.namespace); err != nil {
			return err
		}
	}
	var docs []*manifest.Document
	for _, name := range cfg.files {
		d, err := read(name)
		if err != nil {
			return err
		}
		docs = append(docs, d...)
	}
	if err := sas.Add(docs, cfg.namespace); err != nil {
		return err
	}
	results, err := manifest.Mutate(engine, docs, manifest.Options{Namespace: cfg.namespace, ServiceAccounts: sas})
	if err != nil {
		return err
	}
	var invalid []string
	changed := map[*manifest.Document]bool{}
	bySource := map[string]*manifest.Document{}
	for _, d := range docs {
		bySource[d.Source] = d
	}
	for _, r := range results {
		for _, w := range r.Warnings {
			_, _ = fmt.Fprintln(stderr, "Warning:", w)
		}
		if cfg.invalidIdentity == "warn" {
			for _, w := range r.InvalidAsWarnings() {
				_, _ = fmt.Fprintln(stderr, "Warning:", w)
			}
		} else {
			for _, e := range r.Invalid {
				invalid = append(invalid, e.Error())
			}
		}
		if len(r.Patch) > 0 {
			changed[bySource[r.Source]] = true
		}
	}
	if len(invalid) > 0 {
		return errors.New(strings.Join(invalid, "\n"))
	}
	if cfg.patch {
		enc := json.NewEncoder(stdout)
		for _, r := range results {
			patch := r.Patch
			if patch == nil {
				patch = []mutate.Op{}
			}
			if err := enc.Encode(map[string]any{"kind": r.Kind, "namespace": r.Namespace, "name": r.Name, "patch": patch}); err != nil {
				return err
			}
		}
		return nil
	}
	return manifest.Write(stdout, docs, changed, cfg.output)
}
