package v1alpha1

import (
	corev1 "k8s.io/api/core/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/runtime"
	"k8s.io/apimachinery/pkg/runtime/schema"
)

// GroupVersion is the API group and version of IdentityParameters.
var GroupVersion = schema.GroupVersion{Group: "pod-identity.io", Version: "v1alpha1"}

// Resource is the plural resource name of IdentityParameters.
const Resource = "identityparameters"

// Kind is IdentityParameters' kind.
const Kind = "IdentityParameters"

// Name is the name of the one IdentityParameters object of a namespace,
// the name the admission policies' bindings look for.
const Name = "pod-identity"

// EnforcedLabel says whether an IdentityPolicy governs the object's
// namespace ("true": its spec holds enforcement) or not ("false"). The
// binding pod-identity-enforce selects the parameters unless it is
// "false", so that the API server evaluates that policy for a new pod only
// where there may be something to enforce, and an object without the
// label (written by an older sync) is still checked.
const EnforcedLabel = "pod-identity.io/enforced"

// PolicyChecksLabel is the pod label the mutating admission policy gives
// every pod it acts on (its ServiceAccount is not listed yet, or has
// parameters of its own, or the namespace's default may apply to the pod):
// which of the validating policies the pod needs, one of the PolicyChecks
// values. The bindings of pod-identity-deny and pod-identity-warn select
// their values, so that the API server never reads the parameters for
// those policies for any other pod (most pods of a cluster). The mutating
// policy replaces a value the pod came with; a pod that skips it
// (pod-identity.io/inject=false, or PolicyCheckedContainersAnnotation
// set) skips them too, and the enforcement policy is not selected by it.
const PolicyChecksLabel = "pod-identity.io/policy-checks"

// The values of PolicyChecksLabel.
const (
	PolicyChecksDeny     = "deny"
	PolicyChecksWarn     = "warn"
	PolicyChecksDenyWarn = "deny-warn"
	PolicyChecksNone     = "none"
)

// PolicyCheckedContainersAnnotation is the pod annotation the mutating
// admission policy gives every pod it acts on: what it leaves, as
// "<init containers>|<containers>;<serviceaccount>;<parameters UID>;<parameters generation>;<labels>;<annotations>",
// each container written "<name>:<variables>:<mounts>" (its numbers of
// environment variables and volume mounts after the policy's patch) and
// joined by commas, and the pod's numbers of labels and annotations after
// the patch. Reinvoked (the API server reinvokes it after its own
// patch) on a pod whose annotation still says so and that has a volume of
// its ServiceAccount's entries, it skips the pod rather than evaluate it
// all again.
const PolicyCheckedContainersAnnotation = "pod-identity.io/policy-checked-containers"

// GroupVersionResource names the identityparameters resource.
var GroupVersionResource = GroupVersion.WithResource(Resource)

// IdentityParameters holds, for the ServiceAccounts of its namespace that
// have an identity (or an invalid one), what their pods get. It is written
// by `injector sync` and read by the admission policies; do not edit it.
//
// +kubebuilder:object:root=true
// +kubebuilder:resource:scope=Namespaced,shortName=idparams,categories=pod-identity
type IdentityParameters struct {
	metav1.TypeMeta   `json:",inline"`
	metav1.ObjectMeta `json:"metadata,omitempty"`

	// Spec holds the parameters by ServiceAccount.
	Spec IdentityParametersSpec `json:"spec"`
}

// IdentityParametersSpec maps ServiceAccount names to their parameters.
type IdentityParametersSpec struct {
	// ServiceAccounts maps the name of every ServiceAccount of the
	// namespace that sync has seen to what its pods get; an empty value
	// means the default. The pods of a ServiceAccount missing here are
	// refused (it was created moments ago, or sync is not running): their
	// identity is not known yet. The map is atomic, so that server-side
	// apply keeps one managed field for it rather than one per
	// ServiceAccount.
	// +optional
	// +mapType=atomic
	ServiceAccounts map[string]ServiceAccountParameters `json:"serviceAccounts,omitempty"`
	// Templates are the distinct entries of the namespace's
	// ServiceAccounts, which their Entries name by index: in a template's
	// variable values, added annotation values and messages,
	// "{value:N}" stands for the ServiceAccount's Values[N], and in its
	// messages "{serviceaccount}" for its name. Written once however many
	// ServiceAccounts share them, they keep a namespace of thousands of
	// identities within one object.
	// +optional
	// +listType=atomic
	// +kubebuilder:validation:MaxItems=512
	Templates []Injection `json:"templates,omitempty"`
	// Incomplete says that some ServiceAccounts with an identity did not
	// fit in the object (see sync's log): their pods are refused.
	// +optional
	Incomplete bool `json:"incomplete,omitempty"`
	// Default is what the pods of a ServiceAccount not listed get (those
	// with no identity annotation: a provider may still inject a pod that
	// asks for it by a label). Its messages name the ServiceAccount
	// "{serviceaccount}", which the admission policies replace.
	// +optional
	Default *ServiceAccountParameters `json:"default,omitempty"`
	// Enforcement is what the ValidatingAdmissionPolicy
	// pod-identity-enforce checks on every pod of the namespace, whatever
	// its labels; set where an IdentityPolicy governs the namespace.
	// +optional
	Enforcement *Enforcement `json:"enforcement,omitempty"`
}

// Enforcement is what the identity policies of a namespace say about what
// a pod has that the injector did not give it: tokens with a cloud's
// audience, and identity variables its containers set.
type Enforcement struct {
	// CloudAudiences are the audiences the providers' clouds accept,
	// written as audiences are compared: in lower case, with no scheme and
	// no trailing slash. One that ends in "*" is a prefix.
	// +optional
	// +kubebuilder:validation:MaxItems=64
	CloudAudiences []CloudAudience `json:"cloudAudiences,omitempty"`
	// Tokens are each governing policy's rule on such a token.
	// +optional
	// +kubebuilder:validation:MaxItems=64
	Tokens []TokenRule `json:"tokens,omitempty"`
	// Variables are the providers' identity variables, with what each
	// governing policy allows in them.
	// +optional
	// +kubebuilder:validation:MaxItems=64
	Variables []VariableRule `json:"variables,omitempty"`
	// ServiceAccountDenied holds, by ServiceAccount, why a policy refuses
	// its identity: refused even for a pod that opts out of injection
	// (another webhook, such as EKS's, reads the same annotations).
	// +optional
	ServiceAccountDenied map[string][]string `json:"serviceAccountDenied,omitempty"`
	// APIToken is what the policies say about a Kubernetes API token in a
	// pod that gets a cloud identity its ServiceAccount does not name (a
	// container sets the identity's variables itself, or another webhook
	// did, or a pod label asks a provider for one): the ServiceAccount's
	// own findings, where it names an identity, are in its parameters. "{serviceaccount}" stands for the pod's
	// ServiceAccount's name, "{pod}" for the pod's.
	// +optional
	APIToken *APITokenFindings `json:"apiToken,omitempty"`
	// APITokenVariables, with APIToken, are the names of the providers'
	// identity variables: a container that sets one itself gives the pod
	// that identity.
	// +optional
	// +kubebuilder:validation:MaxItems=256
	APITokenVariables []string `json:"apiTokenVariables,omitempty"`
	// APIAudiences, with APIToken, are the audiences the API server
	// accepts tokens for (--kubernetes-api-audiences), written as
	// CloudAudiences are: a token a pod projects itself with one of them
	// (and no cloud's) is a Kubernetes API token, as one with no audience
	// is.
	// +optional
	// +kubebuilder:validation:MaxItems=16
	APIAudiences []string `json:"apiAudiences,omitempty"`
}

// CloudAudience is an audience of a provider's cloud.
type CloudAudience struct {
	// Provider names the provider.
	Provider string `json:"provider"`
	// Audience is the audience, or a prefix ending in "*".
	Audience string `json:"audience"`
}

// TokenRule is one policy's rule on a cloud token a pod has that the
// injector did not give it. "{serviceaccount}" in its expressions stands
// for the pod's ServiceAccount's regexp-quoted name, in its texts for the
// name.
type TokenRule struct {
	// Policy names the IdentityPolicy.
	Policy string `json:"policy"`
	// Enforcement is the policy's; SelfProjected is its
	// spec.selfProjectedTokens.
	Enforcement   string `json:"enforcement"`
	SelfProjected string `json:"selfProjected"`
	// Audiences are the audiences it allows, as anchored regular expressions.
	// +optional
	Audiences []string `json:"audiences,omitempty"`
	// Describe says what it allows, for the message.
	// +optional
	Describe string `json:"describe,omitempty"`
	// Broken, when set, says why the policy cannot be applied.
	// +optional
	Broken string `json:"broken,omitempty"`
}

// VariableRule is an identity variable of a provider, and what each
// governing policy allows in it.
type VariableRule struct {
	// Name is the variable's; Provider the provider's.
	Name     string `json:"name"`
	Provider string `json:"provider"`
	// Rules are the policies' rules on its field.
	Rules []FieldRule `json:"rules"`
	// Prefix and Suffix, when set, are the fixed text around the identity
	// in the variable's value: the rules match what is between them, and a
	// value of another form is refused.
	// +optional
	Prefix string `json:"prefix,omitempty"`
	// +optional
	Suffix string `json:"suffix,omitempty"`
	// IdentityPattern, with Prefix or Suffix, is what the identity between
	// them must match as a whole (RE2); a value with anything else there
	// is refused.
	// +optional
	IdentityPattern string `json:"identityPattern,omitempty"`
}

// FieldRule is what one policy allows in an identity field.
// "{serviceaccount}" in its expressions stands for the pod's
// ServiceAccount's regexp-quoted name, in its texts for the name.
type FieldRule struct {
	// Policy names the IdentityPolicy; Enforcement is its enforcement.
	Policy      string `json:"policy"`
	Enforcement string `json:"enforcement"`
	// Patterns are the values it allows, as anchored regular expressions.
	// +optional
	Patterns []string `json:"patterns,omitempty"`
	// Describe says what it allows, for the message.
	// +optional
	Describe string `json:"describe,omitempty"`
	// Broken, when set, says why the policy cannot be applied.
	// +optional
	Broken string `json:"broken,omitempty"`
}

// ServiceAccountParameters is what the pods of one ServiceAccount get.
type ServiceAccountParameters struct {
	// Denied holds why its pods are refused: an invalid identity, or an
	// IdentityPolicy that refuses it. The ValidatingAdmissionPolicy
	// pod-identity-deny refuses them with these messages.
	// +optional
	// +kubebuilder:validation:MaxItems=16
	Denied []string `json:"denied,omitempty"`
	// Warnings are shown when one of its pods is created.
	// +optional
	// +kubebuilder:validation:MaxItems=16
	Warnings []string `json:"warnings,omitempty"`
	// APIToken holds the identity policies' findings about a pod of the
	// ServiceAccount that mounts a Kubernetes API token
	// (spec.apiTokenWithIdentity), by what made it mount one.
	// +optional
	APIToken *APITokenFindings `json:"apiToken,omitempty"`
	// Injections are what the providers add, in the engine's order. A
	// provider whose injection depends on the pod (its OS, a label it
	// reads) has one entry per case.
	// +optional
	// +kubebuilder:validation:MaxItems=32
	Injections []Injection `json:"injections,omitempty"`
	// Entries are more injections, by index into the namespace's
	// Templates, after Injections in the engine's order.
	// +optional
	// +listType=atomic
	// +kubebuilder:validation:MaxItems=32
	Entries []int32 `json:"entries,omitempty"`
	// Values are what "{value:N}" stands for in the Templates that
	// Entries name.
	// +optional
	// +listType=atomic
	// +kubebuilder:validation:MaxItems=4
	Values []string `json:"values,omitempty"`
}

// APITokenFindings are the findings about a pod that mounts a
// Kubernetes API token.
type APITokenFindings struct {
	// Pod applies when the pod sets automountServiceAccountToken: true.
	// +optional
	Pod *Findings `json:"pod,omitempty"`
	// Otherwise applies when the pod does not set it and mounts the token
	// (its ServiceAccount's setting, or the default, decided).
	// +optional
	Otherwise *Findings `json:"otherwise,omitempty"`
	// Projected applies when the pod mounts no such token but projects
	// one itself with no audience (one the API server accepts); in its
	// messages "{volume}" stands for the volume's name.
	// +optional
	Projected *Findings `json:"projected,omitempty"`
}

// Findings are refusals and warnings.
type Findings struct {
	// Denied refuse the pod.
	// +optional
	Denied []string `json:"denied,omitempty"`
	// Warnings are shown.
	// +optional
	Warnings []string `json:"warnings,omitempty"`
}

// Injection is one provider's addition for pods that meet its conditions.
type Injection struct {
	// Provider names the provider.
	Provider string `json:"provider"`
	// Source says what gave the identity, in warnings.
	// +optional
	Source string `json:"source,omitempty"`
	// OS is "windows" when the entry is for pods that can only run on
	// Windows nodes, "linux" for the others, and empty for both.
	// +optional
	// +kubebuilder:validation:Enum="";linux;windows
	OS string `json:"os,omitempty"`
	// PodLabels are the requirements on the pod's labels that the entry
	// is for, as in a label selector (NotIn also matches an absent label).
	// +optional
	PodLabels []metav1.LabelSelectorRequirement `json:"podLabels,omitempty"`
	// Denied holds why pods that meet the entry's conditions are refused:
	// an invalid identity. The entry then injects nothing.
	// +optional
	Denied []string `json:"denied,omitempty"`
	// Warnings are shown when a pod that meets the conditions is created.
	// +optional
	Warnings []string `json:"warnings,omitempty"`
	// Volumes are added to the pod once.
	// +optional
	Volumes []Volume `json:"volumes,omitempty"`
	// Mounts are added to every container the entry applies to.
	// +optional
	Mounts []Mount `json:"mounts,omitempty"`
	// Env groups are added to every container the entry applies to; a
	// group of which the container already sets a variable is left out.
	// +optional
	Env []EnvGroup `json:"env,omitempty"`
	// TokenFileVariables name the variables of Env that point at the
	// token file: a container that sets one to another value gets nothing
	// from the entry.
	// +optional
	TokenFileVariables []string `json:"tokenFileVariables,omitempty"`
	// KnownTokenFiles are other injectors' token file paths, named in the
	// warning for a container that sets a token file variable to one.
	// +optional
	KnownTokenFiles []KnownTokenFile `json:"knownTokenFiles,omitempty"`
	// OverridingVariables are variables the SDKs use before the injected
	// identity: a container that sets one is warned.
	// +optional
	OverridingVariables []string `json:"overridingVariables,omitempty"`
	// Annotations are added to the pod where it does not have them.
	// +optional
	Annotations map[string]string `json:"annotations,omitempty"`
	// Labels are added to the pod where it does not have them.
	// +optional
	Labels map[string]string `json:"labels,omitempty"`
	// SkipContainersAnnotation is the pod annotation listing containers
	// that get nothing.
	// +optional
	SkipContainersAnnotation string `json:"skipContainersAnnotation,omitempty"`
	// OnlyContainersAnnotation is the pod annotation listing the only
	// containers that get anything.
	// +optional
	OnlyContainersAnnotation string `json:"onlyContainersAnnotation,omitempty"`
	// ContainersSeparator separates the names in those annotations.
	// +optional
	ContainersSeparator string `json:"containersSeparator,omitempty"`
	// Expiration, when set, is the pod annotation that overrides the token
	// expiration of the entry's volumes, and how it is read.
	// +optional
	Expiration *Expiration `json:"expiration,omitempty"`
	// PodAnnotationPrefixes are the prefixes of the pod annotations that
	// tune this provider in webhook mode; in policy mode a pod that sets
	// one is warned that it is not read.
	// +optional
	PodAnnotationPrefixes []string `json:"podAnnotationPrefixes,omitempty"`
}

// Expiration is how a pod's token expiration annotation is read: a whole
// number of seconds from Min to Max; outside, moved to the nearest bound
// (Clamp) or, like a value that is not a number, replaced by Default
// (Lenient) or refused (neither; with WarnInvalid the provider's identity
// is left out with a warning instead).
type Expiration struct {
	// Annotation is the pod annotation.
	Annotation string `json:"annotation"`
	// Default replaces a value that cannot be used, when Lenient.
	Default int64 `json:"default"`
	// DefaultFromServiceAccount says Default is the ServiceAccount's own
	// value, not the provider's default (for the warning's words).
	// +optional
	DefaultFromServiceAccount bool `json:"defaultFromServiceAccount,omitempty"`
	// Min and Max bound the value.
	Min int64 `json:"min"`
	Max int64 `json:"max"`
	// Clamp moves an out-of-range value to the nearest bound.
	// +optional
	Clamp bool `json:"clamp,omitempty"`
	// Lenient uses Default for a value that is not a number.
	// +optional
	Lenient bool `json:"lenient,omitempty"`
	// WarnInvalid admits a pod with a value that cannot be used without
	// the provider's identity, with a warning (--invalid-identity=warn).
	// +optional
	WarnInvalid bool `json:"warnInvalid,omitempty"`
}

// Volume is a volume the engine adds: a projected ServiceAccount token,
// a downward API file, or an empty scratch directory.
type Volume struct {
	// Name is the volume's name.
	Name string `json:"name"`
	// Projected is a projected volume.
	// +optional
	Projected *corev1.ProjectedVolumeSource `json:"projected,omitempty"`
	// DownwardAPI is a downward API volume.
	// +optional
	DownwardAPI *corev1.DownwardAPIVolumeSource `json:"downwardAPI,omitempty"`
	// EmptyDir is an empty directory.
	// +optional
	EmptyDir *corev1.EmptyDirVolumeSource `json:"emptyDir,omitempty"`
}

// Mount is a volume mount, read-only unless Writable.
type Mount struct {
	// VolumeName names the volume.
	VolumeName string `json:"volumeName"`
	// MountPath is where it is mounted.
	MountPath string `json:"mountPath"`
	// Writable mounts it read-write (a scratch directory).
	// +optional
	Writable bool `json:"writable,omitempty"`
}

// KnownTokenFile is another injector's token file layout.
type KnownTokenFile struct {
	// Pattern matches the whole path (RE2).
	Pattern string `json:"pattern"`
	// Injector names the injector, for people.
	Injector string `json:"injector"`
}

// EnvGroup is a set of variables added together or not at all.
type EnvGroup struct {
	// Name names the group.
	Name string `json:"name"`
	// Vars are its variables, in order.
	Vars []corev1.EnvVar `json:"vars"`
}

// IdentityParametersList is a list of IdentityParameters.
//
// +kubebuilder:object:root=true
type IdentityParametersList struct {
	metav1.TypeMeta `json:",inline"`
	metav1.ListMeta `json:"metadata,omitempty"`
	// Items are the objects.
	Items []IdentityParameters `json:"items"`
}

// AddToScheme registers the API's types in a scheme.
func AddToScheme(s *runtime.Scheme) error {
	s.AddKnownTypes(GroupVersion, &IdentityParameters{}, &IdentityParametersList{})
	metav1.AddToGroupVersion(s, GroupVersion)
	return nil
}
