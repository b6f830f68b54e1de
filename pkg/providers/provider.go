// Package providers defines what a cloud identity provider is to the injection
// engine, and the registry that builds the enabled providers from
// configuration. A provider reads a pod's ServiceAccount (and the pod) and says
// what to inject; the engine in package mutate decides where it goes.
package providers

import (
	"errors"
	"fmt"
	"strconv"
	"strings"

	corev1 "k8s.io/api/core/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"

	"github.com/pod-identity/injector/internal/quote"
)

// MaxValueBytes bounds every ServiceAccount annotation or label value a
// provider reads. The longest identity value any cloud we serve accepts is
// an IAM role ARN, at most 2048 characters (IAM's limit on an ARN); twice
// that leaves room for the other clouds' names and audiences and for
// declarative providers, and keeps a ServiceAccount from carrying a value
// the engine would copy into every container of every pod (a 250 KB value
// times 500 containers is a 120 MB patch). The engine treats a longer value
// as an invalid configuration of the provider that reads it, and the
// ServiceAccount cache keeps no more of it than shows it is too long.
const MaxValueBytes = 4096

// Request is what a provider is shown: the pod being created and the
// ServiceAccount it runs as. Providers must treat both as read-only.
type Request struct {
	// Namespace is the pod's namespace (the admission request's when the pod has none).
	Namespace string
	// PodName is the pod's name, or its generateName prefix when it has no name yet.
	PodName string
	// PodMeta holds the pod's (or pod template's) labels and annotations.
	PodMeta *metav1.ObjectMeta
	// PodSpec is the pod's (or pod template's) spec. The webhook fills in only
	// what providers may read: serviceAccountName, nodeSelector, affinity,
	// volumes, and each container's name, env and volumeMounts.
	PodSpec *corev1.PodSpec
	// ServiceAccount is the pod's ServiceAccount. Only its name, namespace, uid
	// and annotations are guaranteed to be set.
	ServiceAccount *corev1.ServiceAccount
	// Observed, when set, receives what the provider read from the pod in
	// a way the caller must apply itself: policy mode, which decides for
	// no pod in particular, applies a pod's token expiration in CEL.
	Observed *Observed
	// ServiceAccountOnly says the ServiceAccount is being written and there
	// is no pod (PodMeta and PodSpec are empty): the provider reports the
	// identities the ServiceAccount names and its invalid annotations, as
	// it would for a pod that opted in to everything it offers. A provider
	// the ServiceAccount is not set up for returns nil.
	ServiceAccountOnly bool
}

// PodRef names the pod in messages: "namespace/name".
func (r Request) PodRef() string {
	name := r.PodName
	if name == "" {
		name = "<generated>"
	}
	return r.Namespace + "/" + name
}

// SARef names the ServiceAccount in messages: "namespace/name".
func (r Request) SARef() string {
	return r.ServiceAccount.Namespace + "/" + r.ServiceAccount.Name
}

// Mount is a volume mount the engine adds to every container that is not
// skipped. The volume it names must be one of the Injection's Volumes.
type Mount struct {
	// VolumeName names the volume to mount.
	VolumeName string
	// MountPath is where the volume is mounted, read-only unless Writable.
	MountPath string
	// Writable mounts it read-write: a scratch directory a tool writes its
	// own state to (gcloud's configuration), never a credential.
	Writable bool
}

// KnownTokenFile is another injector's token file layout.
type KnownTokenFile struct {
	// Pattern matches the whole path (RE2, anchored by the writer; CEL's
	// matches() reads the same syntax in policy mode).
	Pattern string
	// Injector names the injector and version, for people.
	Injector string
}

// CredentialGroup names the EnvGroup that carries the identity itself.
// Like every group, it is left out of a container that sets any of its
// variables; the container still gets the mount and the other groups,
// unless it sets one of the injection's TokenFileVariables to another file.
const CredentialGroup = "credential"

// EnvGroup is a set of environment variables that belong together: if a
// container already sets any of them, none of the group is added to it.
type EnvGroup struct {
	// Name describes the group in warnings, e.g. "credential" or "region".
	Name string
	// Vars are the variables of the group, added in this order.
	Vars []corev1.EnvVar
}

// Injection is what one provider asks the engine to add to one pod.
type Injection struct {
	// Provider is the name of the provider that produced it.
	Provider string
	// Volumes are added to the pod once.
	Volumes []corev1.Volume
	// Mounts are added to every container that is not skipped.
	Mounts []Mount
	// Env groups are added to every container that is not skipped.
	Env []EnvGroup
	// Annotations are added to the pod.
	Annotations map[string]string
	// Labels are added to the pod.
	Labels map[string]string
	// SkipContainers names the containers that get nothing.
	SkipContainers []string
	// OnlyContainers, when set, names the only containers that get
	// anything (the opposite of SkipContainers; a pod sets one or the other).
	OnlyContainers []string
	// ContainerAnnotations are the pod annotations SkipContainers and
	// OnlyContainers were read from (Request.Containers sets them), for
	// policy mode, where the API server reads them.
	ContainerAnnotations ContainerAnnotations
	// Source names what triggered the injection in messages, e.g.
	// `serviceaccount "ns/sa" annotation eks.amazonaws.com/role-arn`.
	Source string
	// Warnings are shown to the user as they are (clamped values and the
	// like). An Injection with nothing to add but Warnings only warns: a
	// provider says so when a ServiceAccount is half-configured for it.
	Warnings []string
	// Identities are the cloud identities the injection hands the pod, as
	// identity policies see them.
	Identities []Identity
	// TokenFileVariables name the variables of Env that point the SDKs
	// at the token (or credential configuration) file. A container that
	// sets one to another file uses another identity's token, or its own:
	// it gets nothing from the provider. Any other container keeps every
	// variable it sets, and gets the mount and each group of which it sets
	// none, as the upstream webhooks do.
	TokenFileVariables []string
	// KnownTokenFiles are other injectors' token file paths (Azure
	// Workload Identity 1.6's directories): a container that sets a token
	// file variable to one of them is said to be that injector's.
	KnownTokenFiles []KnownTokenFile
	// OverridingVariables are variables that, set in a container, make
	// the cloud's SDK use them before the injected identity (a static API
	// key, say): a container that sets one gets the injection and a
	// warning that it will not be used.
	OverridingVariables []string
}

// Identity is one cloud identity a ServiceAccount names, as an identity
// policy sees it.
type Identity struct {
	// Field is the policy field that governs it: roleARNs (aws),
	// clientIDs and tenantIDs (azure), workloadIdentityProviders and
	// serviceAccountEmails (gcp), identities (any other provider).
	Field string
	// Source says where the value came from in messages: the annotation
	// key, or the flag that supplied a default.
	Source string
	// Value is the identity as used (a bare AWS role name already composed
	// into an ARN, spaces trimmed).
	Value string
	// CaseInsensitive says the cloud compares the value without regard to
	// case (GUIDs, e-mail addresses), so policies match it that way.
	CaseInsensitive bool
}

// Injects reports whether the injection hands the pod an identity (and
// not only warnings).
func (inj *Injection) Injects() bool {
	return inj != nil && (len(inj.Volumes) > 0 || len(inj.Env) > 0 || len(inj.Annotations) > 0)
}

// ContainerAnnotations names the pod annotations that list the containers
// to leave out or the only ones to inject, and the separator of the names.
type ContainerAnnotations struct {
	Skip, Only, Separator string
}

// PodLabelReader is implemented by a provider whose injection depends on
// the pod's labels (an opt-out label, a label that turns it on). Policy
// mode computes one entry per case, so every label the provider reads
// must be listed.
type PodLabelReader interface {
	// PodLabels maps each pod label the provider reads to the values that
	// change what it injects; "*" stands for any value. Absent, and any
	// value not listed, is the other case.
	PodLabels() map[string][]string
}

// KeyReader is implemented by a provider that can name every
// ServiceAccount annotation and label key it reads. The ServiceAccount
// cache then keeps only those keys rather than everything under the
// provider's prefixes, so a ServiceAccount cannot make the cache hold
// annotations no provider reads.
type KeyReader interface {
	// ServiceAccountKeys lists the keys; they do not change while the
	// provider runs.
	ServiceAccountKeys() []string
}

// Enforcer is implemented by a provider whose identity a pod could get
// without the injector: by projecting a token with the provider's audience
// itself, or by setting the variables its SDKs read. The engine's
// enforcement step checks what a pod has, as stored, against the identity
// policies with what it says.
type Enforcer interface {
	// TokenAudiences are the audiences the provider's cloud accepts; an
	// item ending in "*" matches any audience that starts with the rest.
	TokenAudiences() []string
	// IdentityVariables maps each environment variable that names an
	// identity of the provider's cloud to the Identity field that governs
	// it (the field of the identities the provider reports).
	IdentityVariables() map[string]string
}

// AudienceIdentity is the Identity of a token audience that a
// ServiceAccount annotation chose instead of the provider's own: identity
// policies govern it (spec.tokenAudiences), since a cloud's trust may
// accept a token for one audience and not for another.
func AudienceIdentity(annotation, audience string) Identity {
	return Identity{Field: "audiences", Source: "annotation " + annotation, Value: audience}
}

// Affixer is implemented by an Enforcer whose identity variables hold the
// identity inside fixed text (a declarative provider's
// acs:ram::<account>:role/{identity}): a value a container sets is read
// back through the affixes before the policies match it, and one of
// another form (another account's role) is one the policies cannot read.
type Affixer interface {
	// IdentityAffixes are, by variable name, the text before and after
	// the identity.
	IdentityAffixes() map[string]Affix
}

// Affix is the fixed text around an identity in a variable's value, and
// the pattern (RE2, matched as a whole) the identity between must match:
// text that is not an identity of the provider (another ARN nested
// inside) is not read as one.
type Affix struct {
	Prefix, Suffix, Pattern string
}

// Marker is implemented by a provider that can say what its injection
// leaves in a pod: explain and audit use the marks to find running pods
// that still carry an identity their ServiceAccount no longer gives.
type Marker interface {
	// InjectionMarks are the token volumes the provider adds, each with
	// the variable that names the identity.
	InjectionMarks() []Mark
}

// Mark is a token volume and the variable that names the identity: a pod
// that has both carries an identity of the provider.
type Mark struct {
	Volume, Variable string
}

// TrustObject is the object a cloud must hold so that it accepts one
// ServiceAccount's tokens: what `injector trust` prints.
type TrustObject struct {
	// Kind says what the object is, e.g. "RAM role trust policy".
	Kind string
	// Target is what the object belongs to, e.g. the role's ARN.
	Target string
	// Object is the document as the cloud's API takes it: parsed JSON, or
	// text.
	Object any
	// Command applies it with the cloud's CLI; empty when there is none.
	Command string
	// Additive says applying it adds to the target's documents rather
	// than replacing the target's one.
	Additive bool
}

// TrustDescriber is implemented by a provider that can say what its cloud
// must hold to trust a ServiceAccount (the compiled-in clouds are known to
// internal/trust itself).
type TrustDescriber interface {
	// Trust returns the objects for the injection inj that the provider
	// made for sa alone, with tokens of the cluster's issuer (an https
	// URL, already checked).
	Trust(issuer string, sa *corev1.ServiceAccount, inj *Injection) ([]TrustObject, error)
}

// Provider is a cloud identity provider. Implementations live in their own
// package under pkg/providers and register a Factory.
type Provider interface {
	// Name is the provider's short name: "aws", "azure", "gcp".
	Name() string
	// AnnotationPrefixes lists the annotation key prefixes of a
	// ServiceAccount that this provider reads; the ServiceAccount cache keeps
	// only those annotations, and the labels under the same prefixes.
	AnnotationPrefixes() []string
	// Inject returns what to add to the pod, nil when the provider does not
	// apply to it, or an *InvalidError when the identity configuration on the
	// ServiceAccount or the pod is invalid.
	Inject(req Request) (*Injection, error)
}

// InvalidError says that a pod's identity configuration is invalid: the
// object, the annotation, the bad value and the expected form.
type InvalidError struct {
	// Provider is the name of the provider that found the problem.
	Provider string
	// Kind is "ServiceAccount" or "Pod".
	Kind string
	// Object is "namespace/name".
	Object string
	// Annotation is the annotation key that holds the bad value.
	Annotation string
	// Value is the bad value.
	Value string
	// Expected is the form the value should take.
	Expected string
}

// Error implements error.
func (e *InvalidError) Error() string {
	return fmt.Sprintf("%s %q: annotation %s has invalid value %s: expected %s",
		strings.ToLower(e.Kind), e.Object, e.Annotation, quote.Value(e.Value), e.Expected)
}

// IsInvalid reports whether err says that an identity configuration is invalid.
func IsInvalid(err error) bool {
	var ie *InvalidError
	return errors.As(err, &ie)
}

// Invalid returns an *InvalidError about an annotation of the request's
// ServiceAccount.
func (r Request) Invalid(provider, annotation, value, expected string) *InvalidError {
	return &InvalidError{Provider: provider, Kind: "ServiceAccount", Object: r.SARef(),
		Annotation: annotation, Value: value, Expected: expected}
}

// InvalidPod returns an *InvalidError about an annotation of the request's pod.
func (r Request) InvalidPod(provider, annotation, value, expected string) *InvalidError {
	return &InvalidError{Provider: provider, Kind: "Pod", Object: r.PodRef(),
		Annotation: annotation, Value: value, Expected: expected}
}

// Observed is what a provider read from the pod that policy mode applies
// itself.
type Observed struct {
	// Expiration is the token expiration annotation the provider reads
	// (TokenExpiration records it).
	Expiration *ExpirationRule
}

// ExpirationRule is how a token expiration annotation is read: its key,
// the value used when it is not a number (Lenient), and the bounds.
type ExpirationRule struct {
	Annotation string
	Default    int64
	// FromServiceAccount says Default is the ServiceAccount's value.
	FromServiceAccount bool
	Bounds             Bounds
}

// Bounds says how a token expiration outside its range is treated.
type Bounds struct {
	// Min and Max are the accepted range in seconds.
	Min, Max int64
	// Clamp moves an out-of-range value to the nearest bound with a warning.
	Clamp bool
	// Lenient replaces a value that is not a number (or, without Clamp, is
	// out of range) by the default with a warning, where the cloud's own
	// webhook ignores such a value; otherwise it is an *InvalidError, where
	// that webhook denies the pod.
	Lenient bool
}

// Value returns the ServiceAccount's annotation key with surrounding
// spaces trimmed, and whether it is set: an empty value counts as absent.
func (r Request) Value(key string) (string, bool) {
	return nonEmpty(r.ServiceAccount.Annotations, key)
}

func nonEmpty(m map[string]string, key string) (string, bool) {
	v := strings.TrimSpace(m[key])
	return v, v != ""
}

// Ignored words the warning for an annotation that only tunes an
// identity and whose value is invalid: the identity is injected with
// used (the default) instead, as the single-cloud webhooks do, rather
// than the pod being denied. onPod says the annotation is the pod's.
func (r Request) Ignored(provider string, onPod bool, key, value, expected, used string) string {
	return fmt.Sprintf("%s: %s: annotation %s has invalid value %s: expected %s; using %s instead",
		provider, r.object(onPod), key, quote.Value(value), expected, used)
}

// object names the pod or its ServiceAccount in messages.
func (r Request) object(onPod bool) string {
	if onPod {
		return "pod " + strconv.Quote(r.PodRef())
	}
	return "serviceaccount " + strconv.Quote(r.SARef())
}

// MissingIdentity warns about a ServiceAccount that has some of keys
// (annotations that only tune an identity) but not identityKey, the one
// that names it and turns the provider on: what names the identity in the
// message ("Google") and hint what to annotate the ServiceAccount with.
// Nil when it has none of keys.
func (r Request) MissingIdentity(provider string, keys []string, identityKey, what, hint string) *Injection {
	var found []string
	for _, key := range keys {
		if _, ok := r.Value(key); ok {
			found = append(found, key)
		}
	}
	if len(found) == 0 {
		return nil
	}
	return &Injection{Provider: provider, Source: "serviceaccount " + strconv.Quote(r.SARef()), Warnings: []string{
		fmt.Sprintf("%s: serviceaccount %q has %s but no %s annotation: no %s identity was injected (annotate the serviceaccount with %s)",
			provider, r.SARef(), strings.Join(found, ", "), identityKey, what, hint)}}
}

// TokenExpiration resolves a token expiration annotation with the precedence
// pod > ServiceAccount > def (an empty value counts as absent), then applies
// the bounds. It returns the value and a warning when it clamped the value
// or fell back to def, or an *InvalidError.
func (r Request) TokenExpiration(provider, key string, def int64, b Bounds) (int64, string, error) {
	// What the ServiceAccount (else the default) gives: a lenient pod
	// value that is not valid falls back to it, as the EKS webhook does.
	fallback, saWarning, saErr := def, "", error(nil)
	fromSA := false
	if raw, ok := r.Value(key); ok {
		fallback, saWarning, saErr = r.parseExpiration(provider, key, raw, false, def, false, b)
		v, err := strconv.ParseInt(raw, 10, 64)
		fromSA = saErr == nil && err == nil && (b.Clamp || v >= b.Min && v <= b.Max)
	}
	if saErr != nil {
		fallback = def
	}
	if r.Observed != nil {
		r.Observed.Expiration = &ExpirationRule{Annotation: key, Default: fallback, FromServiceAccount: fromSA, Bounds: b}
	}
	raw, onPod := nonEmpty(r.PodMeta.Annotations, key)
	if !onPod {
		return fallback, saWarning, saErr
	}
	return r.parseExpiration(provider, key, raw, true, fallback, fromSA, b)
}

// parseExpiration reads one expiration annotation's value; a lenient one
// that is not valid gives fallback, with a warning.
func (r Request) parseExpiration(provider, key, raw string, onPod bool, fallback int64, fromSA bool, b Bounds) (int64, string, error) {
	rangeText := fmt.Sprintf("a whole number of seconds from %d to %d", b.Min, b.Max)
	invalid := func() (int64, string, error) {
		if b.Lenient {
			what := fmt.Sprintf("the default of %d seconds", fallback)
			if fromSA {
				what = fmt.Sprintf("the serviceaccount's %d seconds", fallback)
			}
			return fallback, r.Ignored(provider, onPod, key, raw, rangeText, what), nil
		}
		if onPod {
			return 0, "", r.InvalidPod(provider, key, raw, rangeText)
		}
		return 0, "", r.Invalid(provider, key, raw, rangeText)
	}
	v, err := strconv.ParseInt(raw, 10, 64)
	if err != nil {
		return invalid()
	}
	where := r.object(onPod)
	switch {
	case v >= b.Min && v <= b.Max:
		return v, "", nil
	case !b.Clamp:
		return invalid()
	case v < b.Min:
		return b.Min, fmt.Sprintf("%s: annotation %s=%s is below the minimum; using %d seconds (set it to at least %d)",
			where, key, quote.Value(raw), b.Min, b.Min), nil
	default:
		return b.Max, fmt.Sprintf("%s: annotation %s=%s is above the maximum; using %d seconds (set it to at most %d)",
			where, key, quote.Value(raw), b.Max, b.Max), nil
	}
}

// Containers reads the pod's skip-containers and only-containers
// annotations (lists separated by sep) into inj. Both set is an
// *InvalidError: a pod names the containers to leave out or the ones to
// inject, not both.
func (r Request) Containers(provider, skipKey, onlyKey, sep string, inj *Injection) error {
	skip, hasSkip := nonEmpty(r.PodMeta.Annotations, skipKey)
	only, hasOnly := nonEmpty(r.PodMeta.Annotations, onlyKey)
	if hasSkip && hasOnly {
		return r.InvalidPod(provider, onlyKey, only, "no "+onlyKey+" annotation beside "+skipKey+": name the containers to leave out or the only ones to inject, not both")
	}
	inj.SkipContainers = SplitList(skip, sep)
	inj.OnlyContainers = SplitList(only, sep)
	inj.ContainerAnnotations = ContainerAnnotations{Skip: skipKey, Only: onlyKey, Separator: sep}
	return nil
}

// SplitList splits a skip-containers annotation value on sep, trimming spaces
// and dropping empty names.
func SplitList(value, sep string) []string {
	var out []string
	for _, p := range strings.Split(value, sep) {
		if p = strings.TrimSpace(p); p != "" {
			out = append(out, p)
		}
	}
	return out
}

// TokenVolume returns a projected volume holding one ServiceAccount token.
func TokenVolume(name, audience string, expirationSeconds int64, path string) corev1.Volume {
	exp := expirationSeconds
	return corev1.Volume{
		Name: name,
		VolumeSource: corev1.VolumeSource{Projected: &corev1.ProjectedVolumeSource{
			Sources: []corev1.VolumeProjection{{ServiceAccountToken: &corev1.ServiceAccountTokenProjection{
				Audience:          audience,
				ExpirationSeconds: &exp,
				Path:              path,
			}}},
		}},
	}
}
