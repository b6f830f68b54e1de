// Package parameters keeps, in each namespace with identities, the
// IdentityParameters object that the admission policies of policy mode read:
// per ServiceAccount, what the engine's providers inject into its pods, for
// every case a pod can present (its OS, the labels a provider reads), and
// why its pods are refused.
package parameters

import (
	"encoding/json"
	"fmt"
	"maps"
	"slices"
	"sort"

	corev1 "k8s.io/api/core/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"

	"github.com/pod-identity/injector/pkg/mutate"
	"github.com/pod-identity/injector/pkg/parameters/v1alpha1"
	"github.com/pod-identity/injector/pkg/policy"
	policyv1 "github.com/pod-identity/injector/pkg/policy/v1alpha1"
	"github.com/pod-identity/injector/pkg/providers"
)

// OS values of an entry.
const (
	osLinux   = "linux"
	osWindows = "windows"
)

// PodPlaceholder stands for the pod's name in the messages of the
// parameters, which are written for no pod in particular; the admission
// policies put the pod's name in its place.
const PodPlaceholder = "{pod}"

// ServiceAccountPlaceholder stands for the ServiceAccount's name in the
// messages of a namespace's default parameters.
const ServiceAccountPlaceholder = "{serviceaccount}"

// VolumePlaceholder stands for the name of the volume in which a pod
// projects a Kubernetes API token itself, in the messages about it.
const VolumePlaceholder = "{volume}"

// anyValue is what a provider lists for a label whose presence, whatever
// its value, changes what it injects.
const anyValue = "*"

// dimension is one thing about a pod that a provider may read: its OS, or
// one pod label. Value 0 is the default case.
type dimension struct {
	label  string   // "" for the OS
	values []string // for a label: the listed values ("*" for any)
}

func (d dimension) size() int {
	if d.label == "" {
		return 2
	}
	return 1 + len(d.values)
}

// examplePod returns the example pod of one case: the OS and label values of
// index, one per dimension.
func examplePod(dims []dimension, index []int, sa *corev1.ServiceAccount) (*metav1.ObjectMeta, *corev1.PodSpec) {
	meta := &metav1.ObjectMeta{Namespace: sa.Namespace}
	spec := &corev1.PodSpec{ServiceAccountName: sa.Name}
	for i, d := range dims {
		switch {
		case d.label == "":
			if index[i] == 1 {
				spec.NodeSelector = map[string]string{corev1.LabelOSStable: osWindows}
			}
		case index[i] > 0:
			if meta.Labels == nil {
				meta.Labels = map[string]string{}
			}
			v := d.values[index[i]-1]
			if v == anyValue {
				v = "true"
			}
			meta.Labels[d.label] = v
		}
	}
	return meta, spec
}

// requirement is the condition on the pod of value v of a label dimension.
func (d dimension) requirement(v int) metav1.LabelSelectorRequirement {
	if v > 0 {
		if d.values[v-1] == anyValue {
			return metav1.LabelSelectorRequirement{Key: d.label, Operator: metav1.LabelSelectorOpExists}
		}
		return metav1.LabelSelectorRequirement{Key: d.label, Operator: metav1.LabelSelectorOpIn, Values: []string{d.values[v-1]}}
	}
	if slices.Contains(d.values, anyValue) {
		return metav1.LabelSelectorRequirement{Key: d.label, Operator: metav1.LabelSelectorOpDoesNotExist}
	}
	return metav1.LabelSelectorRequirement{Key: d.label, Operator: metav1.LabelSelectorOpNotIn, Values: slices.Clone(d.values)}
}

// Options are the settings of serve that change the parameters.
type Options struct {
	// WarnInvalid admits pods of an invalid identity with a warning
	// (--invalid-identity=warn) instead of refusing them.
	WarnInvalid bool
}

// Parameters returns what the pods of sa get in policy mode, and whether
// that is anything at all. The providers decide, as they do for the
// webhook: each is asked once per case a pod can present, and the cases
// it does not tell apart are merged. The identity policies of scope are
// checked as for a ServiceAccount being written.
func Parameters(e *mutate.Engine, sa *corev1.ServiceAccount, scope policy.Scope, opts Options) (v1alpha1.ServiceAccountParameters, bool, error) {
	p, _, any, err := parameters(e, sa, scope, opts)
	return p, any, err
}

// parameters is Parameters, with the refusals of the identity that sa
// names (invalid, or refused by an identity policy) apart: enforcement
// repeats those for a pod that the refusing policy does not check (one
// that opts out of injection). They are all of the parameters' refusals
// but policy mode's own limit (more cases than it holds), which is no
// refusal of the identity.
func parameters(e *mutate.Engine, sa *corev1.ServiceAccount, scope policy.Scope, opts Options) (out v1alpha1.ServiceAccountParameters, refusals []string, any bool, err error) {
	check := e.CheckServiceAccount(nil, sa, scope)
	for _, err := range check.Denied {
		out.Denied = append(out.Denied, err.Error())
	}
	refusals = capMessages(slices.Clone(out.Denied))
	for _, p := range e.Providers() {
		entries, err := providerEntries(p, sa, scope, opts)
		if err != nil {
			return out, nil, false, err
		}
		out.Injections = append(out.Injections, entries...)
	}
	// The Warn rules of the policies are shown for every pod; the
	// providers' warnings are in the entries of the cases that give them.
	out.Warnings = check.PolicyWarnings
	if len(out.Injections) > maxInjections {
		// More cases than the CRD holds: the namespace's object would be
		// refused whole. Its pods are refused instead, saying why.
		out.Denied = append(out.Denied, fmt.Sprintf("serviceaccount %q: its providers tell apart %d cases of pod, more than the %d policy mode holds for one serviceaccount; use webhook mode for this namespace",
			sa.Namespace+"/"+sa.Name, len(out.Injections), maxInjections))
		out.Injections = nil
	}
	out.Denied, out.Warnings = capMessages(out.Denied), capMessages(out.Warnings)
	out.APIToken = apiTokenFindings(scope, sa, check.Identities)
	return out, refusals, len(out.Denied) > 0 || len(out.Warnings) > 0 || len(out.Injections) > 0 || out.APIToken != nil, nil
}

// maxAPITokenVariables is the CRD's maxItems on
// spec.enforcement.apiTokenVariables.
const maxAPITokenVariables = 256

// maxInjections is the CRD's maxItems on a ServiceAccount's injections
// (and entries).
const maxInjections = 32

// maxMessages is the CRD's maxItems on a ServiceAccount's refusals and
// warnings: one more would make the whole namespace's object unwritable.
const maxMessages = 16

// capMessages keeps at most maxMessages, the last saying how many more
// there are.
func capMessages(m []string) []string {
	if len(m) <= maxMessages {
		return m
	}
	return append(m[:maxMessages-1:maxMessages-1], fmt.Sprintf("and %d more (see `injector check` on the serviceaccount)", len(m)-maxMessages+1))
}

// providerEntries asks p about every case and returns one entry per case
// it tells apart, leaving out the cases where it does nothing.
func providerEntries(p providers.Provider, sa *corev1.ServiceAccount, scope policy.Scope, opts Options) ([]v1alpha1.Injection, error) {
	dims := []dimension{{}}
	if r, ok := p.(providers.PodLabelReader); ok {
		labels := r.PodLabels()
		keys := make([]string, 0, len(labels))
		for k := range labels {
			keys = append(keys, k)
		}
		sort.Strings(keys)
		for _, k := range keys {
			dims = append(dims, dimension{label: k, values: labels[k]})
		}
	}
	// Every case, as a mixed-radix number over the dimensions.
	total := 1
	for _, d := range dims {
		total *= d.size()
	}
	outcomes := make([]v1alpha1.Injection, total)
	keys := make([]string, total)
	index := make([]int, len(dims))
	for n := range total {
		decode(dims, n, index)
		meta, spec := examplePod(dims, index, sa)
		entry, err := outcome(p, providers.Request{Namespace: sa.Namespace, PodName: PodPlaceholder, PodMeta: meta, PodSpec: spec, ServiceAccount: sa}, scope, opts)
		if err != nil {
			return nil, err
		}
		outcomes[n] = entry
		b, _ := json.Marshal(entry)
		keys[n] = string(b)
	}
	// A dimension matters when changing it alone changes the outcome.
	matters := make([]bool, len(dims))
	other := make([]int, len(dims))
	for n := range total {
		decode(dims, n, index)
		for i, d := range dims {
			if matters[i] {
				continue
			}
			copy(other, index)
			for v := range d.size() {
				other[i] = v
				if keys[encode(dims, other)] != keys[n] {
					matters[i] = true
					break
				}
			}
		}
	}
	var entries []v1alpha1.Injection
	seen := map[string]bool{}
	for n := range total {
		if empty(outcomes[n]) {
			continue
		}
		decode(dims, n, index)
		entry := outcomes[n]
		for i, d := range dims {
			if !matters[i] {
				continue
			}
			if d.label == "" {
				entry.OS = [2]string{osLinux, osWindows}[index[i]]
				continue
			}
			entry.PodLabels = append(entry.PodLabels, d.requirement(index[i]))
		}
		b, _ := json.Marshal(entry)
		if !seen[string(b)] {
			seen[string(b)] = true
			entries = append(entries, entry)
		}
	}
	return entries, nil
}

// apiTokenFindings evaluates the policies for a pod of sa that mounts a
// Kubernetes API token, as the pod decided it and as the ServiceAccount
// (or the default) did, and keeps the findings that a pod without the
// token does not have.
func apiTokenFindings(scope policy.Scope, sa *corev1.ServiceAccount, ids []policy.ProviderIdentities) *v1alpha1.APITokenFindings {
	if scope.Empty() || len(ids) == 0 {
		return nil
	}
	check := policy.Check{Namespace: sa.Namespace, ServiceAccount: sa.Name, Pod: PodPlaceholder, PodCheck: true, Providers: ids,
		APIToken: &policy.APIToken{}}
	without := map[string]bool{}
	for _, f := range scope.Evaluate(check).Findings {
		without[f.Error()] = true
	}
	findings := func(source policy.TokenSource) *v1alpha1.Findings {
		c := check
		c.APIToken = &policy.APIToken{Mounted: true, Source: source}
		if source == policy.TokenProjected {
			c.APIToken.Volume = VolumePlaceholder
		}
		var out v1alpha1.Findings
		for _, f := range scope.Evaluate(c).Findings {
			switch {
			case without[f.Error()]:
			case f.Enforcement == policyv1.Deny:
				out.Denied = append(out.Denied, f.Error())
			default:
				out.Warnings = append(out.Warnings, f.Warning())
			}
		}
		if len(out.Denied) == 0 && len(out.Warnings) == 0 {
			return nil
		}
		return &out
	}
	otherwise := policy.TokenDefault
	if sa.AutomountServiceAccountToken != nil {
		otherwise = policy.TokenFromServiceAccount
	}
	out := &v1alpha1.APITokenFindings{Pod: findings(policy.TokenFromPod), Otherwise: findings(otherwise), Projected: findings(policy.TokenProjected)}
	if out.Pod == nil && out.Otherwise == nil && out.Projected == nil {
		return nil
	}
	return out
}

func decode(dims []dimension, n int, index []int) {
	for i, d := range dims {
		index[i] = n % d.size()
		n /= d.size()
	}
}

func encode(dims []dimension, index []int) int {
	n, scale := 0, 1
	for i, d := range dims {
		n += index[i] * scale
		scale *= d.size()
	}
	return n
}

func empty(e v1alpha1.Injection) bool {
	return len(e.Denied) == 0 && len(e.Warnings) == 0 && len(e.Volumes) == 0 && len(e.Env) == 0 &&
		len(e.Mounts) == 0 && len(e.Annotations) == 0 && len(e.Labels) == 0
}

// outcome is what p does for one example pod, as an entry without
// conditions.
func outcome(p providers.Provider, req providers.Request, scope policy.Scope, opts Options) (v1alpha1.Injection, error) {
	entry := v1alpha1.Injection{Provider: p.Name()}
	req.Observed = &providers.Observed{}
	inj, err := p.Inject(req)
	switch {
	case err != nil && providers.IsInvalid(err):
		if opts.WarnInvalid {
			entry.Warnings = mutate.Result{Invalid: []error{err}}.InvalidAsWarnings()
		} else {
			entry.Denied = []string{err.Error()}
		}
		return entry, nil
	case err != nil:
		return entry, fmt.Errorf("serviceaccount %q: provider %s: %w", req.SARef(), p.Name(), err)
	case inj == nil:
		return entry, nil
	}
	entry.Warnings = inj.Warnings
	if !inj.Injects() {
		return entry, nil
	}
	// What the injection hands this case's pods, as the webhook judges
	// it for a pod: an identity the pod's labels bring (Azure's label
	// with no client ID on the ServiceAccount) is one the
	// ServiceAccount's own check does not see.
	v := scope.Evaluate(policy.Check{Namespace: req.Namespace, ServiceAccount: req.ServiceAccount.Name, Pod: PodPlaceholder, PodCheck: true,
		Providers: []policy.ProviderIdentities{{Provider: p.Name(), Identities: inj.Identities}}, Uncounted: true})
	if denied := v.Denied(); len(denied) > 0 {
		for _, err := range denied {
			entry.Denied = append(entry.Denied, err.Error())
		}
		return entry, nil
	}
	entry.Source = inj.Source
	for _, v := range inj.Volumes {
		if v.Projected == nil && v.DownwardAPI == nil && v.EmptyDir == nil {
			return entry, fmt.Errorf("serviceaccount %q: provider %s: volume %q is neither projected, downward API nor an empty directory, which policy mode cannot carry", req.SARef(), p.Name(), v.Name)
		}
		entry.Volumes = append(entry.Volumes, v1alpha1.Volume{Name: v.Name, Projected: v.Projected, DownwardAPI: v.DownwardAPI, EmptyDir: v.EmptyDir})
	}
	for _, m := range inj.Mounts {
		entry.Mounts = append(entry.Mounts, v1alpha1.Mount{VolumeName: m.VolumeName, MountPath: m.MountPath, Writable: m.Writable})
	}
	for _, g := range inj.Env {
		entry.Env = append(entry.Env, v1alpha1.EnvGroup{Name: g.Name, Vars: g.Vars})
	}
	entry.TokenFileVariables = inj.TokenFileVariables
	for _, k := range inj.KnownTokenFiles {
		entry.KnownTokenFiles = append(entry.KnownTokenFiles, v1alpha1.KnownTokenFile{Pattern: k.Pattern, Injector: k.Injector})
	}
	entry.OverridingVariables = inj.OverridingVariables
	entry.Annotations, entry.Labels = inj.Annotations, inj.Labels
	entry.SkipContainersAnnotation = inj.ContainerAnnotations.Skip
	entry.OnlyContainersAnnotation = inj.ContainerAnnotations.Only
	entry.ContainersSeparator = inj.ContainerAnnotations.Separator
	entry.PodAnnotationPrefixes = p.AnnotationPrefixes()
	if r := req.Observed.Expiration; r != nil {
		entry.Expiration = &v1alpha1.Expiration{Annotation: r.Annotation, Default: r.Default, DefaultFromServiceAccount: r.FromServiceAccount, Min: r.Bounds.Min, Max: r.Bounds.Max,
			Clamp: r.Bounds.Clamp, Lenient: r.Bounds.Lenient, WarnInvalid: opts.WarnInvalid}
	}
	return entry, nil
}

// Enforcement returns what pod-identity-enforce checks in a namespace the
// policies of scope govern: the providers' cloud audiences, each policy's
// rule on a cloud token the injector did not give, and each policy's rule
// on every identity variable of a provider whose field it governs.
func Enforcement(e *mutate.Engine, scope policy.Scope, ns string) *v1alpha1.Enforcement {
	out := &v1alpha1.Enforcement{}
	seen := map[string]bool{}
	for _, p := range e.Providers() {
		en, ok := p.(providers.Enforcer)
		if !ok {
			continue
		}
		for _, a := range en.TokenAudiences() {
			a = mutate.LooseAudience(a)
			if a != "" && !seen[a] {
				seen[a] = true
				out.CloudAudiences = append(out.CloudAudiences, v1alpha1.CloudAudience{Provider: p.Name(), Audience: a})
			}
		}
		vars := en.IdentityVariables()
		for _, name := range slices.Sorted(maps.Keys(vars)) {
			field := vars[name]
			var rules []v1alpha1.FieldRule
			for _, r := range scope.FieldRules(ns, p.Name(), field, mutate.CaseInsensitiveField(field)) {
				rules = append(rules, v1alpha1.FieldRule{Policy: r.Policy, Enforcement: r.Enforcement, Patterns: r.Patterns, Describe: r.Describe, Broken: r.Broken})
			}
			if len(rules) > 0 {
				vr := v1alpha1.VariableRule{Name: name, Provider: p.Name(), Rules: rules}
				if a, ok := en.(providers.Affixer); ok {
					af := a.IdentityAffixes()[name]
					vr.Prefix, vr.Suffix = af.Prefix, af.Suffix
					if af.Prefix != "" || af.Suffix != "" {
						vr.IdentityPattern = af.Pattern
					}
				}
				out.Variables = append(out.Variables, vr)
			}
		}
	}
	for _, r := range scope.TokenRules(ns) {
		out.Tokens = append(out.Tokens, v1alpha1.TokenRule{Policy: r.Policy, Enforcement: r.Enforcement, SelfProjected: r.SelfProjected,
			Audiences: r.Audiences, Describe: r.Describe, Broken: r.Broken})
	}
	// A pod whose containers set an identity's variables themselves, or
	// that a pod label gets an identity, has that identity whatever its
	// ServiceAccount names: the API token rule applies to it as to one
	// the ServiceAccount names (the rule reads no identity).
	if ps := e.Providers(); len(ps) > 0 {
		placeholder := &corev1.ServiceAccount{ObjectMeta: metav1.ObjectMeta{Namespace: ns, Name: ServiceAccountPlaceholder}}
		if out.APIToken = apiTokenFindings(scope, placeholder, []policy.ProviderIdentities{{Provider: ps[0].Name()}}); out.APIToken != nil {
			var names []string
			for _, p := range ps {
				if en, ok := p.(providers.Enforcer); ok {
					names = slices.AppendSeq(names, maps.Keys(en.IdentityVariables()))
				}
			}
			slices.Sort(names)
			out.APITokenVariables, out.APIAudiences = slices.Compact(names), e.APIAudiences()
			// The CRD's maxItems: more would make the namespace's object
			// unwritable. Providers declare a handful of variables each
			// (declarative providers at most 8, --provider-config), so
			// this is never reached in practice.
			if len(out.APITokenVariables) > maxAPITokenVariables {
				out.APITokenVariables = out.APITokenVariables[:maxAPITokenVariables]
			}
		}
	}
	return out
}
