package mutate

import (
	"fmt"
	"maps"
	"strings"

	corev1 "k8s.io/api/core/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"

	"github.com/pod-identity/injector/pkg/policy"
	"github.com/pod-identity/injector/pkg/providers"
)

// ServiceAccountResult is what the engine decided about a ServiceAccount
// being written.
type ServiceAccountResult struct {
	// Invalid holds the invalid identity annotations, one error per
	// provider (each an *providers.InvalidError).
	Invalid []error
	// Denied holds the identity policy rules the ServiceAccount breaks
	// whose enforcement is Deny (each a *policy.Finding).
	Denied []error
	// Warnings are to be shown as they are: the providers' warnings, the
	// Warn rules broken, and, for a write that changes no identity
	// annotation, what would otherwise be Invalid or Denied.
	Warnings []string
	// PolicyWarnings are the Warn rules broken (also in Warnings).
	PolicyWarnings []string
	// Identities are the identities the ServiceAccount hands its pods, as
	// the policies see them.
	Identities []policy.ProviderIdentities
}

// CheckServiceAccount checks a ServiceAccount being created (old is nil)
// or updated from old: its identity annotations must be valid and allowed
// by the policies of scope. A write that sets or changes no annotation a
// provider reads is never refused: what is wrong with the ServiceAccount
// (since a policy changed, say) is returned as warnings instead, so that
// an unrelated edit such as adding an imagePullSecret goes through.
func (e *Engine) CheckServiceAccount(old, sa *corev1.ServiceAccount, scope policy.Scope) ServiceAccountResult {
	var res ServiceAccountResult
	req := providers.Request{Namespace: sa.Namespace, PodMeta: &metav1.ObjectMeta{}, PodSpec: &corev1.PodSpec{},
		ServiceAccount: sa, ServiceAccountOnly: true}
	var ids []policy.ProviderIdentities
	for _, p := range e.providers {
		if err := oversized(p, sa); err != nil {
			res.Invalid = append(res.Invalid, err)
			continue
		}
		inj, err := p.Inject(req)
		switch {
		case err != nil:
			res.Invalid = append(res.Invalid, err)
		case inj != nil:
			// A half-configured ServiceAccount says so when it is written.
			res.Warnings = append(res.Warnings, inj.Warnings...)
			if inj.Injects() {
				ids = append(ids, policy.ProviderIdentities{Provider: inj.Provider, Identities: inj.Identities})
			}
		}
	}
	res.Identities = ids
	v := scope.Evaluate(policy.Check{Namespace: sa.Namespace, ServiceAccount: sa.Name, Providers: ids})
	res.Denied = v.Denied()
	res.PolicyWarnings = v.Warnings()
	res.Warnings = append(res.Warnings, res.PolicyWarnings...)
	if old != nil && !e.identityChanged(old, sa) {
		for _, errs := range [][]error{res.Invalid, res.Denied} {
			for _, err := range errs {
				res.Warnings = append(res.Warnings, fmt.Sprintf("%v (admitted because this update changes no identity annotation; until the serviceaccount is fixed, pods that run as it do not get the identity)", err))
			}
		}
		res.Invalid, res.Denied = nil, nil
	}
	return res
}

// identityChanged reports whether an update sets, changes or removes an
// annotation that a provider reads.
func (e *Engine) identityChanged(old, sa *corev1.ServiceAccount) bool {
	return !maps.Equal(e.identityAnnotations(old), e.identityAnnotations(sa))
}

func (e *Engine) identityAnnotations(sa *corev1.ServiceAccount) map[string]string {
	out := map[string]string{}
	prefixes := e.AnnotationPrefixes()
	for k, v := range sa.Annotations {
		for _, p := range prefixes {
			if strings.HasPrefix(k, p) {
				out[k] = v
				break
			}
		}
	}
	return out
}

// ServiceAccountInjections returns what each provider hands the pods of
// sa, judged as for a ServiceAccount being written (every label and case
// a pod could bring), and the invalid configurations, one per provider.
func (e *Engine) ServiceAccountInjections(sa *corev1.ServiceAccount) ([]*providers.Injection, []error) {
	req := providers.Request{Namespace: sa.Namespace, PodMeta: &metav1.ObjectMeta{}, PodSpec: &corev1.PodSpec{},
		ServiceAccount: sa, ServiceAccountOnly: true}
	var out []*providers.Injection
	var invalid []error
	for _, p := range e.providers {
		if err := oversized(p, sa); err != nil {
			invalid = append(invalid, err)
			continue
		}
		inj, err := p.Inject(req)
		switch {
		case err != nil:
			invalid = append(invalid, err)
		case inj.Injects():
			out = append(out, inj)
		}
	}
	return out, invalid
}
