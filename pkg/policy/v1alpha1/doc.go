// Package v1alpha1 holds the pod-identity.io/v1alpha1 API: IdentityPolicy,
// the cluster-scoped rule a platform team writes to say which cloud
// identities the ServiceAccounts of the namespaces it selects may use.
//
// The CustomResourceDefinition in deploy/manifests is generated from these
// types by controller-gen (hack/generate.sh), with the OpenAPI schema and
// the CEL validations that make the API server refuse a malformed policy.
//
// +kubebuilder:object:generate=true
// +groupName=pod-identity.io
package v1alpha1
