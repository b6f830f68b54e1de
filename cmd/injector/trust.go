package main

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"os"
	"strings"

	"github.com/spf13/cobra"
	"sigs.k8s.io/yaml"

	"github.com/pod-identity/injector/pkg/manifest"
	"github.com/pod-identity/injector/pkg/providers/registry"
	"github.com/pod-identity/injector/pkg/render"
	"github.com/pod-identity/injector/pkg/trust"
)

func newTrustCommand(args []string) *cobra.Command {
	var files []string
	var issuer, output, namespace string
	var policyOpts render.Options
	provs := registry.New().WithArgs(args)
	cmd := &cobra.Command{
		Use:   "trust -f FILE --issuer URL",
		Short: "Print the cloud-side trust each annotated ServiceAccount needs, exactly as narrow as the ServiceAccount",
		Long: `Reads the ServiceAccounts of a YAML or JSON stream and prints, for each
identity they name, the object its cloud must hold so that exactly that
ServiceAccount's tokens, from the cluster's issuer, are accepted: an IAM role's
trust policy (the issuer's OIDC provider, the exact subject and audience), an
Entra federated identity credential, a Google workload identity pool provider
and IAM binding. No wildcard subject is ever printed, and nothing is printed for
an identity the IdentityPolicies of the input (or of --policy) refuse: the
command fails naming it. -o commands prints the cloud CLIs' commands instead.`,
		Args: cobra.NoArgs,
		RunE: func(cmd *cobra.Command, _ []string) error {
			if len(files) == 0 {
				return errors.New("-f is required: a file of ServiceAccounts, or - for stdin")
			}
			if issuer == "" {
				return errors.New("--issuer is required: the cluster's service account issuer, as the API server's --service-account-issuer (kubectl get --raw /.well-known/openid-configuration shows it)")
			}
			if err := trust.ValidIssuer(issuer); err != nil {
				return err
			}
			if output != "json" && output != "yaml" && output != "commands" {
				return fmt.Errorf("-o %q: expected json, yaml or commands", output)
			}
			ctx, cancel := context.WithCancel(cmd.Context())
			defer cancel()
			engine, err := buildEngine(ctx, provs, cmd.ErrOrStderr())
			if err != nil {
				return err
			}
			cmd.SilenceUsage = true
			var docs []trust.Document
			seen := map[string]bool{}
			for _, f := range files {
				in, err := readStream(f, cmd.InOrStdin())
				if err != nil {
					return err
				}
				sas, err := manifest.ServiceAccountsOf(in, namespace)
				if err != nil {
					return err
				}
				policies, err := render.PolicyStore(in, policyOpts)
				if err != nil {
					return err
				}
				for _, sa := range sas {
					injs, invalid := engine.ServiceAccountInjections(sa.ServiceAccount)
					if len(invalid) > 0 {
						return fmt.Errorf("%s: %w", sa.Source, errors.Join(invalid...))
					}
					if policies != nil {
						// The cloud must not trust what the cluster refuses.
						if denied := engine.CheckServiceAccount(nil, sa.ServiceAccount, policies.Scope(sa.Namespace)).Denied; len(denied) > 0 {
							return fmt.Errorf("%s: %w", sa.Source, errors.Join(denied...))
						}
					}
					d, err := trust.For(issuer, sa.ServiceAccount, injs)
					if err != nil {
						return fmt.Errorf("%s: %w", sa.Source, err)
					}
					for _, doc := range d {
						// A pool provider serves every ServiceAccount: once.
						if doc.Kind == trust.KindPoolProvider {
							if seen[doc.Target] {
								continue
							}
							seen[doc.Target] = true
						}
						docs = append(docs, doc)
					}
				}
			}
			return writeTrust(cmd.OutOrStdout(), docs, output)
		},
	}
	fs := cmd.Flags()
	fs.StringArrayVarP(&files, "filename", "f", nil, "file of ServiceAccounts, - for stdin (repeatable)")
	fs.StringVar(&issuer, "issuer", "", "the cluster's service account issuer URL")
	fs.StringVarP(&output, "output", "o", "yaml", "json, yaml or commands")
	fs.StringVarP(&namespace, "namespace", "n", "default", "namespace of ServiceAccounts that name none")
	policyOpts.AddPolicyFlags(fs)
	provs.AddFlags(fs)
	cmd.AddCommand(newTrustCheckCommand())
	return cmd
}

func newTrustCheckCommand() *cobra.Command {
	var issuer string
	cmd := &cobra.Command{
		Use:   "check --issuer URL FILE...",
		Short: "Say which ServiceAccounts an IAM role trust policy admits, and whether it is wider than they need",
		Long: `Reads IAM role trust policies (JSON, as aws iam get-role prints their
AssumeRolePolicyDocument) and prints the ServiceAccount subjects each admits
exactly, and a line for everything wider than one ServiceAccount of the
cluster's issuer needs: a statement for another issuer, no subject condition,
a wildcard subject, no audience condition. Exits non-zero on a finding, for CI.`,
		Args: cobra.MinimumNArgs(1),
		RunE: func(cmd *cobra.Command, files []string) error {
			if issuer == "" {
				return errors.New("--issuer is required: the cluster's service account issuer")
			}
			cmd.SilenceUsage = true
			found := 0
			for _, f := range files {
				data, err := os.ReadFile(f)
				if err != nil {
					return err
				}
				subjects, findings, err := trust.CheckIAM(data, issuer)
				if err != nil {
					return fmt.Errorf("%s: %w", f, err)
				}
				for _, s := range subjects {
					_, _ = fmt.Fprintf(cmd.OutOrStdout(), "%s: admits %s\n", f, s)
				}
				for _, fd := range findings {
					found++
					_, _ = fmt.Fprintf(cmd.OutOrStdout(), "%s: %s\n", f, fd.Message)
				}
			}
			if found > 0 {
				return fmt.Errorf("%d finding(s)", found)
			}
			return nil
		},
	}
	cmd.Flags().StringVar(&issuer, "issuer", "", "the cluster's service account issuer URL")
	return cmd
}

// readStream reads the documents of a file, - for stdin.
func readStream(name string, stdin io.Reader) ([]*manifest.Document, error) {
	if name == "-" {
		return manifest.Read(stdin, "-")
	}
	f, err := os.Open(name)
	if err != nil {
		return nil, err
	}
	defer func() { _ = f.Close() }()
	return manifest.Read(f, name)
}

func writeTrust(w io.Writer, docs []trust.Document, output string) error {
	switch output {
	case "commands":
		for _, d := range docs {
			if _, err := fmt.Fprintf(w, "# %s %s: %s for %s\n%s\n", d.Provider, d.ServiceAccount, d.Kind, d.Target, d.Command); err != nil {
				return err
			}
		}
		return nil
	case "json":
		b, err := json.MarshalIndent(docs, "", "  ")
		if err != nil {
			return err
		}
		_, err = fmt.Fprintln(w, string(b))
		return err
	}
	b, err := yaml.Marshal(docs)
	if err != nil {
		return err
	}
	_, err = io.WriteString(w, strings.TrimRight(string(b), "\n")+"\n")
	return err
}
