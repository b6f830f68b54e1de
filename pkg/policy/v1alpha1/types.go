package v1alpha1

import (
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/runtime"
	"k8s.io/apimachinery/pkg/runtime/schema"
)

// GroupVersion is the API group and version of IdentityPolicy.
var GroupVersion = schema.GroupVersion{Group: "pod-identity.io", Version: "v1alpha1"}

// Resource is the plural resource name of IdentityPolicy.
const Resource = "identitypolicies"

// Kind is IdentityPolicy's kind.
const Kind = "IdentityPolicy"

// GroupVersionResource names the identitypolicies resource.
var GroupVersionResource = GroupVersion.WithResource(Resource)

// Enforcement says what happens to a ServiceAccount or pod that breaks a policy.
// +kubebuilder:validation:Enum=Deny;Warn
type Enforcement string

// The enforcements.
const (
	// Deny refuses the ServiceAccount write or the pod.
	Deny Enforcement = "Deny"
	// Warn admits it with an admission warning, and counts it.
	Warn Enforcement = "Warn"
)

// Rule is the setting of a yes-or-no rule.
// +kubebuilder:validation:Enum=Allow;Warn;Deny
type Rule string

// The rule settings.
const (
	// Allow lets it happen.
	Allow Rule = "Allow"
	// RuleWarn admits it with an admission warning, and counts it.
	RuleWarn Rule = "Warn"
	// RuleDeny refuses it.
	RuleDeny Rule = "Deny"
)

// Pattern is an identity pattern: "*" matches any run of characters, and
// {namespace} and {serviceaccount} stand for the ServiceAccount's namespace
// and name. No other braces are allowed.
// +kubebuilder:validation:MinLength=1
// +kubebuilder:validation:MaxLength=512
// +kubebuilder:validation:XValidation:rule="self.matches('^([^{}]|[{]namespace[}]|[{]serviceaccount[}])*$')",message="the only placeholders are {namespace} and {serviceaccount}"
type Pattern string

// Patterns is a list of identity patterns. Left out, it allows anything;
// an empty list allows nothing.
// +kubebuilder:validation:MaxItems=256
// +listType=set
type Patterns []Pattern

// AWSRules are the AWS identities ServiceAccounts may use.
type AWSRules struct {
	// RoleARNs are the IAM role ARNs allowed in eks.amazonaws.com/role-arn
	// (after a bare role name is composed into an ARN).
	// +optional
	RoleARNs *Patterns `json:"roleARNs,omitempty"`
}

// AzureRules are the Azure identities ServiceAccounts may use.
type AzureRules struct {
	// ClientIDs are the Entra application (client) IDs allowed in
	// azure.workload.identity/client-id; matched without regard to case.
	// +optional
	ClientIDs *Patterns `json:"clientIDs,omitempty"`
	// TenantIDs are the tenants allowed, from
	// azure.workload.identity/tenant-id or the webhook's default tenant;
	// matched without regard to case.
	// +optional
	TenantIDs *Patterns `json:"tenantIDs,omitempty"`
}

// GCPRules are the Google Cloud identities ServiceAccounts may use.
type GCPRules struct {
	// WorkloadIdentityProviders are the provider resource names allowed in
	// cloud.google.com/workload-identity-provider.
	// +optional
	WorkloadIdentityProviders *Patterns `json:"workloadIdentityProviders,omitempty"`
	// ServiceAccountEmails are the Google service accounts allowed in
	// cloud.google.com/service-account-email; matched without regard to case.
	// +optional
	ServiceAccountEmails *Patterns `json:"serviceAccountEmails,omitempty"`
}

// ProviderRules are the identities allowed for a provider that is not
// compiled in (a declarative provider), by its name.
type ProviderRules struct {
	// Identities are the identities allowed.
	// +optional
	Identities *Patterns `json:"identities,omitempty"`
}

// IdentityPolicySpec states the rules.
// +kubebuilder:validation:XValidation:rule="!has(self.providers) || !self.providers.exists(k, k in ['aws', 'azure', 'gcp'])",message="aws, azure and gcp have their own fields: use spec.aws, spec.azure and spec.gcp"
type IdentityPolicySpec struct {
	// NamespaceSelector selects the namespaces the policy applies to; left
	// out or empty, it selects every namespace.
	// +optional
	// +kubebuilder:validation:XValidation:rule="!has(self.matchExpressions) || self.matchExpressions.all(e, e.operator in ['In', 'NotIn'] ? has(e.values) && size(e.values) > 0 : (e.operator in ['Exists', 'DoesNotExist'] && (!has(e.values) || size(e.values) == 0)))",message="matchExpressions: In and NotIn need values; Exists and DoesNotExist take none; no other operator exists"
	NamespaceSelector *metav1.LabelSelector `json:"namespaceSelector,omitempty"`
	// Enforcement says what happens to an identity the policy does not
	// allow: Deny (the default) refuses the ServiceAccount write or the
	// pod; Warn admits it with a warning.
	// +optional
	// +kubebuilder:default=Deny
	Enforcement Enforcement `json:"enforcement,omitempty"`
	// AWS holds the AWS identities allowed.
	// +optional
	AWS *AWSRules `json:"aws,omitempty"`
	// Azure holds the Azure identities allowed.
	// +optional
	Azure *AzureRules `json:"azure,omitempty"`
	// GCP holds the Google Cloud identities allowed.
	// +optional
	GCP *GCPRules `json:"gcp,omitempty"`
	// Providers holds the identities allowed for other providers, by name.
	// +optional
	// +kubebuilder:validation:MaxProperties=8
	Providers map[string]ProviderRules `json:"providers,omitempty"`
	// DefaultServiceAccount says what happens to a cloud identity on a
	// namespace's "default" ServiceAccount. Left out: Allow.
	// +optional
	DefaultServiceAccount Rule `json:"defaultServiceAccount,omitempty"`
	// APITokenWithIdentity says what happens to a pod that gets a cloud
	// identity and also mounts a Kubernetes API token
	// (automountServiceAccountToken of the pod, else of its
	// ServiceAccount, else true; or a token the pod projects itself with
	// no audience or the API server's, as --kubernetes-api-audiences names
	// it). Left out: Allow.
	// +optional
	APITokenWithIdentity Rule `json:"apiTokenWithIdentity,omitempty"`
	// TokenAudiences are the token audiences, beyond each provider's own,
	// that the namespace's pods may get: an audience a ServiceAccount
	// annotation chooses (eks.amazonaws.com/audience,
	// cloud.google.com/audience, a declarative provider's), or that a pod
	// projects itself where SelfProjectedTokens allows it. Left out or
	// empty: each provider's own audience only.
	// +optional
	TokenAudiences *Patterns `json:"tokenAudiences,omitempty"`
	// SelfProjectedTokens says what happens to a pod that has a
	// ServiceAccount token with a cloud's audience that the injector did
	// not give it (projected by the pod itself, or by another webhook).
	// Left out: Deny. With Allow, its audience must still be one that
	// TokenAudiences allows.
	// +optional
	SelfProjectedTokens Rule `json:"selfProjectedTokens,omitempty"`
}

// IdentityPolicyStatus is what the injector reports about a policy.
type IdentityPolicyStatus struct {
	// ObservedGeneration is the generation the conditions describe.
	// +optional
	ObservedGeneration int64 `json:"observedGeneration,omitempty"`
	// Conditions hold Ready: True when the policy is in force as written;
	// False, with the reason, when part of it cannot be used (the policy
	// then refuses every identity in the namespaces it may select).
	// +optional
	// +listType=map
	// +listMapKey=type
	Conditions []metav1.Condition `json:"conditions,omitempty"`
}

// IdentityPolicy says which cloud identities the ServiceAccounts of the
// namespaces it selects may use, and the rules every workload there follows.
//
// +kubebuilder:object:root=true
// +kubebuilder:resource:scope=Cluster,shortName=idpol
// +kubebuilder:subresource:status
// +kubebuilder:printcolumn:name="Enforcement",type=string,JSONPath=`.spec.enforcement`
// +kubebuilder:printcolumn:name="Ready",type=string,JSONPath=`.status.conditions[?(@.type=="Ready")].status`
// +kubebuilder:printcolumn:name="Reason",type=string,JSONPath=`.status.conditions[?(@.type=="Ready")].reason`
// +kubebuilder:printcolumn:name="Age",type=date,JSONPath=`.metadata.creationTimestamp`
type IdentityPolicy struct {
	metav1.TypeMeta   `json:",inline"`
	metav1.ObjectMeta `json:"metadata,omitempty"`

	// Spec states the rules.
	Spec IdentityPolicySpec `json:"spec"`
	// Status is what the injector reports.
	// +optional
	Status IdentityPolicyStatus `json:"status,omitempty"`
}

// IdentityPolicyList is a list of IdentityPolicy.
//
// +kubebuilder:object:root=true
type IdentityPolicyList struct {
	metav1.TypeMeta `json:",inline"`
	metav1.ListMeta `json:"metadata,omitempty"`
	// Items are the policies.
	Items []IdentityPolicy `json:"items"`
}

// AddToScheme registers the API's types in a scheme.
func AddToScheme(s *runtime.Scheme) error {
	s.AddKnownTypes(GroupVersion, &IdentityPolicy{}, &IdentityPolicyList{})
	metav1.AddToGroupVersion(s, GroupVersion)
	return nil
}
