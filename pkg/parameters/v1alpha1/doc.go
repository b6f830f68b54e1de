// Package v1alpha1 holds IdentityParameters, the namespaced
// pod-identity.io/v1alpha1 object that `injector sync` keeps in each
// namespace with identities: per ServiceAccount, what the engine injects
// into its pods. The MutatingAdmissionPolicy and ValidatingAdmissionPolicies
// of deploy/policy read it as their parameter, so that the API server
// injects pods without calling a webhook.
//
// The CustomResourceDefinition is generated from these types by
// controller-gen (hack/generate.sh).
//
// +kubebuilder:object:generate=true
// +groupName=pod-identity.io
package v1alpha1
