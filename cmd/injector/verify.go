package main

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"strings"
	"time"

	"github.com/spf13/cobra"
	authenticationv1 "k8s.io/api/authentication/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/utils/ptr"

	"github.com/pod-identity/injector/internal/trust"
	"github.com/pod-identity/injector/pkg/providers/builtin"
	"github.com/pod-identity/injector/pkg/providers/registry"
)

// exitVerifyRefused is verify's exit code when a cloud refused a token.
const exitVerifyRefused = 2

// verifyResult is one exchange's outcome, as printed.
type verifyResult struct {
	ServiceAccount string `json:"serviceAccount"`
	Provider       string `json:"provider"`
	Identity       string `json:"identity,omitempty"`
	// Result is accepted, refused or skipped.
	Result string `json:"result"`
	Detail string `json:"detail"`
}

func newVerifyCommand(configs *registry.Configs) *cobra.Command {
	kube := newKubeOptions()
	provs := builtin.New().WithConfigs(configs)
	var namespace, output string
	var all bool
	var o trust.VerifyOptions
	var timeout time.Duration
	cmd := &cobra.Command{
		Use:   "verify [NAME...]",
		Short: "Exchange a fresh token of each annotated ServiceAccount with its cloud, as its pods would",
		Long: `For each annotated ServiceAccount of the cluster (those named, the namespace's,
or -A every namespace's), requests a ten-minute token with the audience its pods
get (TokenRequest) and makes the token exchange its pods would, with the
clouds' own SDKs configured from what the injector hands the pods (the same
provider flags as serve): AWS STS AssumeRoleWithWebIdentity, Entra's token
endpoint, Google's STS and service account impersonation. It reports who
accepted and who refused, with the cloud's own words.

Opt-in, for CI or a Job: it calls the clouds, never on the admission path. It
needs create on serviceaccounts/token. An identity an IdentityPolicy refuses is
reported, not exchanged. Exit 0 all accepted, 2 a cloud refused, 1 the check
could not run.`,
		RunE: func(cmd *cobra.Command, names []string) error {
			if all && len(names) > 0 {
				return errors.New("-A reads every ServiceAccount: name none with it")
			}
			cmd.SilenceUsage = true
			ctx, cancel := context.WithCancel(cmd.Context())
			defer cancel()
			engine, err := buildEngine(ctx, provs, cmd.ErrOrStderr())
			if err != nil {
				return err
			}
			_, client, dyn, contextNS, err := kube.clients()
			if err != nil {
				return err
			}
			sources, err := liveTrustSources(ctx, client, dyn, contextNS, nil, namespace, all, names)
			if err != nil {
				return err
			}
			var results []verifyResult
			refused := 0
			for _, s := range sources {
				injs, invalid := engine.ServiceAccountInjections(s.sa)
				ref := s.sa.Namespace + "/" + s.sa.Name
				if len(invalid) > 0 {
					results = append(results, verifyResult{ServiceAccount: ref, Result: "refused", Detail: errors.Join(invalid...).Error()})
					refused++
					continue
				}
				if denied := engine.CheckServiceAccount(nil, s.sa, s.policy).Denied; len(denied) > 0 {
					results = append(results, verifyResult{ServiceAccount: ref, Result: "skipped", Detail: "refused by the cluster, so its pods never get it: " + errors.Join(denied...).Error()})
					continue
				}
				exchanges := trust.Exchanges(s.sa, injs, o)
				if len(exchanges) == 0 && s.named {
					results = append(results, verifyResult{ServiceAccount: ref, Result: "skipped", Detail: "names no identity"})
				}
				for _, e := range exchanges {
					r := verifyResult{ServiceAccount: ref, Provider: e.Provider, Identity: e.Identity}
					if e.Skip != "" {
						r.Result, r.Detail = "skipped", e.Skip
						results = append(results, r)
						continue
					}
					ectx, ecancel := context.WithTimeout(ctx, timeout)
					tr, err := client.CoreV1().ServiceAccounts(s.sa.Namespace).CreateToken(ectx, s.sa.Name, &authenticationv1.TokenRequest{Spec: authenticationv1.TokenRequestSpec{
						Audiences: []string{e.Audience}, ExpirationSeconds: ptr.To[int64](600)}}, metav1.CreateOptions{})
					if err != nil {
						ecancel()
						return fmt.Errorf("serviceaccount %q: token request: %w", ref, err)
					}
					granted, err := e.Run(ectx, tr.Status.Token)
					ecancel()
					if err != nil {
						r.Result, r.Detail = "refused", oneLine(err.Error())
						refused++
					} else {
						r.Result, r.Detail = "accepted", granted
					}
					results = append(results, r)
				}
			}
			if err := writeVerify(cmd.OutOrStdout(), results, output); err != nil {
				return err
			}
			if refused > 0 {
				return &exitCodeError{code: exitVerifyRefused, err: fmt.Errorf("%d exchange(s) refused", refused)}
			}
			return nil
		},
	}
	fs := cmd.Flags()
	kube.addFlags(fs)
	addNamespaceFlag(fs, &namespace, "", "namespace of the ServiceAccounts (default: the context's)")
	addAllNamespacesFlag(fs, &all, "every namespace's ServiceAccounts")
	fs.StringVar(&o.AWSRegion, "aws-region", "us-east-1", "STS region when the injection names none")
	addTimeoutFlag(fs, &timeout, 30*time.Second, "each exchange")
	addOutputFlag(fs, &output, "text", "", "text", "json")
	provs.AddFlags(fs)
	return cmd
}

// oneLine keeps an SDK's multi-line error on one line.
func oneLine(s string) string {
	return strings.Join(strings.Fields(s), " ")
}

func writeVerify(w io.Writer, results []verifyResult, output string) error {
	if output == "json" {
		b, err := json.MarshalIndent(results, "", "  ")
		if err != nil {
			return err
		}
		_, err = fmt.Fprintln(w, string(b))
		return err
	}
	var b strings.Builder
	for _, r := range results {
		fmt.Fprintf(&b, "%-9s %s", r.Result, r.ServiceAccount)
		if r.Provider != "" {
			fmt.Fprintf(&b, " %s", r.Provider)
		}
		if r.Identity != "" {
			fmt.Fprintf(&b, " %s", r.Identity)
		}
		fmt.Fprintf(&b, ": %s\n", r.Detail)
	}
	_, err := io.WriteString(w, b.String())
	return err
}
