// Package staticsa is a fixed set of ServiceAccounts for tests and the load
// harness, answering lookups as the production cache does.
package staticsa

import (
	"context"

	corev1 "k8s.io/api/core/v1"

	"github.com/pod-identity/injector/internal/sacache"
)

// Set maps "namespace/name" to a ServiceAccount.
type Set map[string]*corev1.ServiceAccount

// Get implements admission.ServiceAccounts.
func (s Set) Get(_ context.Context, namespace, name string) (*corev1.ServiceAccount, sacache.Source, error) {
	if sa, ok := s[namespace+"/"+name]; ok {
		return sa, sacache.FromCache, nil
	}
	return nil, sacache.NotFound, nil
}

// Add records sa.
func (s Set) Add(sa *corev1.ServiceAccount) Set {
	s[sa.Namespace+"/"+sa.Name] = sa
	return s
}
