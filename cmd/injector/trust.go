package main

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"os"
	"strconv"
	"strings"

	"github.com/spf13/cobra"
	corev1 "k8s.io/api/core/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/client-go/dynamic"
	"k8s.io/client-go/kubernetes"
	"sigs.k8s.io/yaml"

	"github.com/pod-identity/injector/internal/trust"
	"github.com/pod-identity/injector/pkg/manifest"
	"github.com/pod-identity/injector/pkg/mutate"
	"github.com/pod-identity/injector/pkg/policy"
	"github.com/pod-identity/injector/pkg/providers"
	"github.com/pod-identity/injector/pkg/providers/builtin"
	"github.com/pod-identity/injector/pkg/providers/registry"
	"github.com/pod-identity/injector/pkg/render"
)

// trustSource is one ServiceAccount to print trust for, and the policies
// that govern its namespace.
type trustSource struct {
	sa     *corev1.ServiceAccount
	name   string // in messages: the file and document, or the object
	policy policy.Scope
	// named says the user named the ServiceAccount: one with no identity
	// is then an error.
	named bool
}

func newTrustCommand(configs *registry.Configs) *cobra.Command {
	var files []string
	var output, namespace string
	var all bool
	var o trust.Options
	var policyOpts render.Options
	kube := newKubeOptions()
	provs := builtin.New().WithConfigs(configs)
	cmd := &cobra.Command{
		Use:   "trust [-f FILE | NAME...] [--issuer URL]",
		Short: "Print the cloud-side trust each annotated ServiceAccount needs, exactly as narrow as the ServiceAccount",
		Long: `Prints, for each identity the ServiceAccounts name, the object its cloud must
hold so that exactly that ServiceAccount's tokens, from the cluster's issuer, are
accepted: an IAM role's trust policy (the issuer's OIDC provider, the exact
subject and audience), or with --eks-cluster an EKS Pod Identity association
and its trust policy; an Entra federated identity credential; a Google
workload identity pool provider (its attribute condition admits exactly the
ServiceAccounts that name it) and IAM binding; and what a declarative
provider's file declares (trust:), such as an Alibaba Cloud RAM trust policy.

With -f it reads the ServiceAccounts of a YAML or JSON stream; without, it
reads the cluster's (kubectl's configuration: --kubeconfig, $KUBECONFIG,
~/.kube/config, --context), those named or all of the namespace (-n, default
the context's; -A every namespace), and --issuer defaults to the API server's.

No wildcard subject is ever printed, and nothing is printed for an identity
the IdentityPolicies refuse (those of the input or of --policy, or the
cluster's): the command fails naming it. -o commands prints the cloud CLIs'
commands instead.`,
		RunE: func(cmd *cobra.Command, names []string) error {
			live := len(files) == 0
			if !live && (len(names) > 0 || all) {
				return errors.New("NAME arguments and -A read the cluster: give them without -f")
			}
			if !live && o.Issuer == "" && o.EKSCluster == "" {
				return errors.New("--issuer is required with -f: the cluster's service account issuer, as the API server's --service-account-issuer (kubectl get --raw /.well-known/openid-configuration shows it)")
			}
			if err := o.Validate(false); err != nil {
				return err
			}
			ctx, cancel := context.WithCancel(cmd.Context())
			defer cancel()
			cmd.SilenceUsage = true
			engine, err := buildEngine(ctx, provs, cmd.ErrOrStderr())
			if err != nil {
				return err
			}
			o.Describers = describers(engine)
			o.APIAudience = engine.IsAPIAudience
			var sources []trustSource
			if live {
				var client kubernetes.Interface
				var dyn dynamic.Interface
				var contextNS string
				if _, client, dyn, contextNS, err = kube.clients(); err != nil {
					return err
				}
				sources, err = liveTrustSources(ctx, client, dyn, contextNS, &o, namespace, all, names)
			} else {
				sources, err = fileTrustSources(files, namespace, policyOpts, cmd.InOrStdin())
			}
			if err != nil {
				return err
			}
			docs, err := trustDocuments(engine, o, sources)
			if err != nil {
				return err
			}
			return writeTrust(cmd.OutOrStdout(), docs, output)
		},
	}
	fs := cmd.Flags()
	addFilenameFlag(fs, &files, "file of ServiceAccounts (without it the cluster's are read)")
	addIssuerFlag(fs, &o.Issuer, "default without -f: the API server's")
	fs.StringVar(&o.EKSCluster, "eks-cluster", "", "ARN of the EKS cluster whose pods get AWS roles through EKS Pod Identity: print associations and Pod Identity trust instead of IRSA trust")
	addOutputFlag(fs, &output, "yaml", "", "json", "yaml", "commands")
	addNamespaceFlag(fs, &namespace, "", "namespace of the ServiceAccounts (with -f: of those that name none, default \"default\"; live: default the context's)")
	addAllNamespacesFlag(fs, &all, "every namespace's ServiceAccounts (live only)")
	policyOpts.AddPolicyFlags(fs)
	kube.addFlags(fs)
	provs.AddFlags(fs)
	cmd.AddCommand(newTrustCheckCommand())
	return cmd
}

// describers are the providers that describe their own trust.
func describers(engine *mutate.Engine) map[string]providers.TrustDescriber {
	out := map[string]providers.TrustDescriber{}
	for _, p := range engine.Providers() {
		if d, ok := p.(providers.TrustDescriber); ok {
			out[p.Name()] = d
		}
	}
	return out
}

func fileTrustSources(files []string, namespace string, opts render.Options, stdin io.Reader) ([]trustSource, error) {
	if namespace == "" {
		namespace = "default"
	}
	// One stream of every file's documents: a policy in one file governs
	// the ServiceAccounts of another.
	var in []*manifest.Document
	for _, f := range files {
		docs, err := readStream(f, stdin)
		if err != nil {
			return nil, err
		}
		in = append(in, docs...)
	}
	sas, err := manifest.ServiceAccountsOf(in, namespace)
	if err != nil {
		return nil, err
	}
	policies, err := render.PolicyStore(in, opts)
	if err != nil {
		return nil, err
	}
	var out []trustSource
	for _, sa := range sas {
		s := trustSource{sa: sa.ServiceAccount, name: sa.Source}
		if policies != nil {
			if policies.LabelsUnknown(sa.Namespace) {
				return nil, fmt.Errorf("%s: the labels of namespace %q are unknown, and an IdentityPolicy selects namespaces by label: give its Namespace document, or --namespace-labels %s=KEY=VALUE", sa.Source, sa.Namespace, sa.Namespace)
			}
			s.policy = policies.Scope(sa.Namespace)
		}
		out = append(out, s)
	}
	return out, nil
}

// liveTrustSources reads the cluster's ServiceAccounts, policies and, when
// o (non-nil) names none, its issuer. An empty namespace is contextNS.
func liveTrustSources(ctx context.Context, client kubernetes.Interface, dyn dynamic.Interface, contextNS string, o *trust.Options, namespace string, all bool, names []string) ([]trustSource, error) {
	var err error
	if namespace == "" {
		namespace = contextNS
	}
	if all && len(names) > 0 {
		return nil, errors.New("-A reads every ServiceAccount: name none with it")
	}
	if o != nil && o.Issuer == "" {
		if o.Issuer, err = apiServerIssuer(ctx, client); err != nil {
			return nil, fmt.Errorf("%w; give it with --issuer", err)
		}
	}
	store, err := livePolicies(ctx, dyn)
	if err != nil {
		return nil, err
	}
	var sas []corev1.ServiceAccount
	named := false
	switch {
	case len(names) > 0:
		for _, n := range names {
			sa, err := client.CoreV1().ServiceAccounts(namespace).Get(ctx, n, metav1.GetOptions{})
			if err != nil {
				return nil, fmt.Errorf("serviceaccount %q: %w", namespace+"/"+n, err)
			}
			sas = append(sas, *sa)
		}
		named = true
	default:
		ns := namespace
		if all {
			ns = metav1.NamespaceAll
		}
		list, err := client.CoreV1().ServiceAccounts(ns).List(ctx, metav1.ListOptions{})
		if err != nil {
			return nil, fmt.Errorf("list serviceaccounts: %w", err)
		}
		sas = list.Items
	}
	seen := map[string]bool{}
	var out []trustSource
	for i := range sas {
		sa := &sas[i]
		if !seen[sa.Namespace] {
			seen[sa.Namespace] = true
			nsObj, err := client.CoreV1().Namespaces().Get(ctx, sa.Namespace, metav1.GetOptions{})
			if err != nil {
				return nil, fmt.Errorf("namespace %q: %w", sa.Namespace, err)
			}
			store.SetNamespace(sa.Namespace, nsObj.Labels)
		}
		out = append(out, trustSource{sa: sa, name: "serviceaccount " + fmt.Sprintf("%q", sa.Namespace+"/"+sa.Name), policy: store.Scope(sa.Namespace), named: named})
	}
	return out, nil
}

// apiServerIssuer reads the issuer from the API server's discovery
// document.
func apiServerIssuer(ctx context.Context, client kubernetes.Interface) (string, error) {
	body, err := client.Discovery().RESTClient().Get().AbsPath("/.well-known/openid-configuration").Do(ctx).Raw()
	if err != nil {
		return "", fmt.Errorf("the API server's issuer (/.well-known/openid-configuration): %w", err)
	}
	var d struct {
		Issuer string `json:"issuer"`
	}
	if err := json.Unmarshal(body, &d); err != nil || d.Issuer == "" {
		return "", errors.New("the API server's /.well-known/openid-configuration names no issuer")
	}
	return d.Issuer, nil
}

// trustDocuments builds every source's documents; the first refused or
// invalid identity fails the whole, so nothing is half-printed.
func trustDocuments(engine *mutate.Engine, o trust.Options, sources []trustSource) ([]trust.Document, error) {
	var docs []trust.Document
	for _, s := range sources {
		injs, invalid := engine.ServiceAccountInjections(s.sa)
		if len(invalid) > 0 {
			return nil, fmt.Errorf("%s: %w", s.name, errors.Join(invalid...))
		}
		// The cloud must not trust what the cluster refuses.
		if denied := engine.CheckServiceAccount(nil, s.sa, s.policy).Denied; len(denied) > 0 {
			return nil, fmt.Errorf("%s: %w", s.name, errors.Join(denied...))
		}
		d, err := trust.For(o, s.sa, injs)
		if err != nil {
			return nil, fmt.Errorf("%s: %w", s.name, err)
		}
		if len(d) == 0 && s.named {
			return nil, fmt.Errorf("%s names no identity the cloud must trust: expected an identity annotation such as eks.amazonaws.com/role-arn, azure.workload.identity/client-id or cloud.google.com/workload-identity-provider (injector explain serviceaccount/%s says what it gets)", s.name, s.sa.Name)
		}
		docs = append(docs, d...)
	}
	if len(docs) == 0 {
		var names []string
		for _, s := range sources {
			names = append(names, s.sa.Namespace+"/"+s.sa.Name)
		}
		if len(names) > 5 {
			names = append(names[:5], fmt.Sprintf("and %d more", len(names)-5))
		}
		return nil, fmt.Errorf("no identity to trust: none of the serviceaccounts read (%s) names an identity with a cloud object this command knows", strings.Join(names, ", "))
	}
	return trust.Merge(docs)
}

// exitTrustFindings is trust check's exit code on a finding.
const exitTrustFindings = 2

func newTrustCheckCommand() *cobra.Command {
	var issuer, identity string
	var policyOpts render.Options
	cmd := &cobra.Command{
		Use:   "check --issuer URL FILE...",
		Short: "Say which ServiceAccounts a trust document admits, and whether it is wider than they need",
		Long: `Reads trust documents as the clouds' CLIs print them, JSON or YAML: IAM role
trust policies (alone or as aws iam get-role prints them; IRSA and EKS Pod
Identity), Alibaba Cloud RAM role trust policies, Entra federated identity
credentials (one, a list, or a Graph API page), Google workload identity pool
providers and Google IAM policies. It prints the ServiceAccount subjects each
admits exactly, and a line for everything wider than one ServiceAccount of the
cluster's issuer needs (another issuer, an issuer that differs by a trailing
slash, no subject condition or a wildcard one, no audience condition, a
principalSet). With --policy, it also says which admitted ServiceAccounts an
IdentityPolicy refuses the identity the document belongs to (--identity, when
the document does not name it). Exit 0 no finding, 2 a finding (for CI), 1
the check could not run (a file that is not a trust document).`,
		Args: cobra.MinimumNArgs(1),
		RunE: func(cmd *cobra.Command, files []string) error {
			if issuer == "" {
				return errors.New("--issuer is required: the cluster's service account issuer")
			}
			if err := trust.ValidIssuer(issuer); err != nil {
				return err
			}
			cmd.SilenceUsage = true
			policies, err := render.PolicyStore(nil, policyOpts)
			if err != nil {
				return err
			}
			var lines []string
			found := 0
			for _, f := range files {
				data, err := readLimited(f, trust.MaxDocumentBytes)
				if err != nil {
					return err
				}
				r, err := trust.Check(data, issuer)
				if err != nil {
					return fmt.Errorf("%s: %w", f, err)
				}
				target := r.Target
				if identity != "" {
					target = identity
				}
				if len(r.Subjects) == 0 && len(r.Findings) == 0 {
					lines = append(lines, fmt.Sprintf("%s: %s admits no ServiceAccount", f, r.Kind))
				}
				for _, s := range r.Subjects {
					lines = append(lines, fmt.Sprintf("%s: %s admits %s", f, r.Kind, s))
					for _, d := range refusedBy(policies, r, target, s) {
						found++
						lines = append(lines, fmt.Sprintf("%s: %v", f, d))
					}
				}
				for _, fd := range r.Findings {
					found++
					lines = append(lines, fmt.Sprintf("%s: %s", f, fd.Message))
				}
			}
			_, _ = fmt.Fprintln(cmd.OutOrStdout(), strings.Join(lines, "\n"))
			if found > 0 {
				return &exitCodeError{code: exitTrustFindings, err: fmt.Errorf("%d finding(s)", found)}
			}
			return nil
		},
	}
	addIssuerFlag(cmd.Flags(), &issuer, "")
	cmd.Flags().StringVar(&identity, "identity", "", "the identity the documents belong to (role ARN, client ID, Google service account email), for --policy")
	policyOpts.AddPolicyFlags(cmd.Flags())
	return cmd
}

// refusedBy says why the policies refuse the subject the identity.
func refusedBy(policies *policy.Store, r *trust.Report, identity, subject string) []error {
	ns, name, ok := strings.Cut(strings.TrimPrefix(subject, "system:serviceaccount:"), ":")
	if policies == nil || identity == "" || !ok {
		return nil
	}
	v := policies.Scope(ns).Evaluate(policy.Check{Namespace: ns, ServiceAccount: name, Uncounted: true,
		Providers: []policy.ProviderIdentities{{Provider: r.Provider, Identities: []providers.Identity{{Field: r.Field, Source: "the trust document", Value: identity}}}}})
	return v.Denied()
}

// readLimited reads a file of at most limit bytes.
func readLimited(name string, limit int64) ([]byte, error) {
	f, err := os.Open(name)
	if err != nil {
		return nil, err
	}
	defer func() { _ = f.Close() }()
	data, err := io.ReadAll(io.LimitReader(f, limit+1))
	if err != nil {
		return nil, fmt.Errorf("%s: %w", name, err)
	}
	if int64(len(data)) > limit {
		return nil, fmt.Errorf("%s: larger than %d bytes, more than any trust document", name, limit)
	}
	return data, nil
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

// oneLineText escapes what would break a line or mislead a reader:
// control characters and invisible ones (bidirectional overrides).
func oneLineText(s string) string {
	q := strconv.Quote(s)
	return strings.ReplaceAll(q[1:len(q)-1], `\"`, `"`)
}

func writeTrust(w io.Writer, docs []trust.Document, output string) error {
	switch output {
	case "commands":
		var b strings.Builder
		for _, d := range docs {
			// One comment line, whatever the names hold.
			fmt.Fprintf(&b, "# %s\n", oneLineText(fmt.Sprintf("%s %s: %s for %s", d.Provider, d.ServiceAccount, d.Kind, d.Target)))
			if d.Note != "" {
				fmt.Fprintf(&b, "# note: %s\n", oneLineText(d.Note))
			}
			if d.Command != "" {
				b.WriteString(d.Command + "\n")
				continue
			}
			// No CLI applies it: the document itself, commented.
			text, ok := d.Object.(string)
			if !ok {
				j, _ := json.Marshal(d.Object)
				text = string(j)
			}
			b.WriteString("#   " + oneLineText(text) + "\n")
		}
		_, err := io.WriteString(w, b.String())
		return err
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
