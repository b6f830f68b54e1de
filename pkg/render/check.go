package render

import (
	"fmt"
	"io"

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
	sas, err := manifest.ServiceAccountsOf(in.docs, opts.Namespace)
	if err != nil {
		return err
	}
	for _, sa := range sas {
		r := engine.CheckServiceAccount(nil, sa.ServiceAccount, scope(sa.Namespace))
		report(sa.Source, append(r.Invalid, r.Denied...), r.Warnings)
	}
	results, err := manifest.Mutate(engine, in.docs, manifest.Options{Namespace: opts.Namespace, ServiceAccounts: in.sas, Policies: in.policies})
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
