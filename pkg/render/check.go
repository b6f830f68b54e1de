package render

import (
	"encoding/json"
	"fmt"
	"io"
	"slices"
	"strings"

	"github.com/pod-identity/injector/internal/explain"
	"github.com/pod-identity/injector/pkg/manifest"
	"github.com/pod-identity/injector/pkg/mutate"
	"github.com/pod-identity/injector/pkg/policy"
)

// Check is what `injector check` does: it reads the streams as Run does
// and, without mutating anything, prints to stdout one line for every
// invalid identity annotation and every identity policy rule broken, by
// the ServiceAccounts (as if each were being created) and by the pod
// templates of the workloads. Warnings go to stderr. It returns an error
// when it printed anything.
func Check(engine *mutate.Engine, opts Options, stdout, stderr io.Writer) error {
	in, err := load(opts)
	if err != nil {
		return err
	}
	scope := func(namespace string) policy.Scope {
		if in.policies == nil {
			return policy.Scope{}
		}
		return in.policies.Scope(namespace)
	}
	problems := 0
	report := func(source string, errs []error, warnings []string) {
		for _, e := range errs {
			problems++
			_, _ = fmt.Fprintf(stdout, "%s: %v\n", source, e)
		}
		for _, w := range warnings {
			_, _ = fmt.Fprintf(stderr, "Warning: %s: %s\n", source, w)
		}
	}
	if in.policies != nil {
		for _, p := range in.policies.Policies().All() {
			for _, w := range p.Warnings() {
				_, _ = fmt.Fprintf(stderr, "Warning: %s\n", w)
			}
		}
	}
	sas, err := manifest.ServiceAccountsOf(in.docs, opts.Namespace)
	if err != nil {
		return err
	}
	for _, sa := range sas {
		r := engine.CheckServiceAccount(nil, sa.ServiceAccount, scope(sa.Namespace))
		report(sa.Source, append(r.Invalid, r.Denied...), r.Warnings)
	}
	results, err := manifest.Mutate(engine, in.docs, manifest.Options{Namespace: opts.Namespace, ServiceAccounts: in.sas, Policies: in.policies, InvalidAdmitted: opts.InvalidIdentity == "warn"})
	if err != nil {
		return err
	}
	for _, r := range results {
		report(r.Source, append(r.Invalid, r.Denied...), r.Warnings)
	}
	if problems > 0 {
		return fmt.Errorf("%d problem(s) found", problems)
	}
	return nil
}

// Explain is what `injector explain` does: for every pod template of the
// streams (or those that targets name, as "kind/name"; a ServiceAccount
// only when named, as "serviceaccount/name"), the report of internal/explain,
// as text or JSON; excluded are the namespaces the webhook
// configuration never sends.
func Explain(engine *mutate.Engine, opts Options, targets, excluded []string, stdout io.Writer) error {
	in, err := load(opts)
	if err != nil {
		return err
	}
	_, namespaces, err := manifest.Policies(in.docs)
	if err != nil {
		return err
	}
	for name, labels := range opts.NamespaceLabels {
		namespaces[name] = labels
	}
	var reports []explain.Report
	matched := map[string]bool{}
	sas, err := manifest.ServiceAccountsOf(in.docs, opts.Namespace)
	if err != nil {
		return err
	}
	for _, sa := range sas {
		for _, key := range []string{"serviceaccount/" + sa.Name, "sa/" + sa.Name} {
			if slices.Contains(targets, key) {
				matched[key] = true
				reports = append(reports, explain.ExplainServiceAccount(engine, explain.ServiceAccountInput{
					ServiceAccount: sa.ServiceAccount, Policy: in.policies.Scope(sa.Namespace)}))
			}
		}
	}
	for _, d := range in.docs {
		for _, obj := range d.Objects() {
			tp, err := manifest.ReadTemplate(obj, opts.Namespace)
			if err != nil {
				return err
			}
			if tp == nil {
				continue
			}
			key := strings.ToLower(tp.Kind) + "/" + tp.Name
			if len(targets) > 0 && !slices.Contains(targets, key) {
				continue
			}
			matched[key] = true
			t := tp.Target()
			if in.policies != nil {
				t.Policy = in.policies.Scope(tp.Namespace)
			}
			reports = append(reports, explain.Explain(engine, explain.Input{
				Kind: tp.Kind, Target: t, ServiceAccount: in.sas[tp.Namespace+"/"+tp.ServiceAccount], ServiceAccountName: tp.ServiceAccount,
				NamespaceLabels: namespaces[tp.Namespace], ExcludedNamespaces: excluded,
			}))
		}
	}
	for _, t := range targets {
		if !matched[t] {
			return fmt.Errorf("%s: no such pod or workload in the input (name it as kind/name, e.g. deployment/web)", t)
		}
	}
	return WriteReports(stdout, reports, opts.Output)
}

// WriteReports writes explain reports as text, or as JSON when output
// is "json".
func WriteReports(w io.Writer, reports []explain.Report, output string) error {
	if output == "json" {
		enc := json.NewEncoder(w)
		enc.SetIndent("", "  ")
		return enc.Encode(reports)
	}
	for i, r := range reports {
		if i > 0 {
			_, _ = fmt.Fprintln(w)
		}
		_, _ = fmt.Fprint(w, r.Text())
	}
	return nil
}
