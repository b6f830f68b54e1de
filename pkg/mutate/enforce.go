package mutate

import (
	"fmt"
	"maps"
	"regexp"
	"slices"
	"strconv"
	"strings"
	"sync"

	corev1 "k8s.io/api/core/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"

	"github.com/pod-identity/injector/internal/quote"
	"github.com/pod-identity/injector/pkg/policy"
	v1alpha1 "github.com/pod-identity/injector/pkg/policy/v1alpha1"
	"github.com/pod-identity/injector/pkg/providers"
)

// Enforce checks a pod as it will be stored, after every mutating webhook,
// against the identity policies of its namespace (t.Policy): whatever gave
// the pod its identity, and whatever its labels say. It refuses
//   - an identity its ServiceAccount names that a policy refuses, even when
//     the pod opted out of injection (another webhook, such as EKS's, reads
//     the same annotations);
//   - a token with a cloud's audience that the injector did not give the
//     pod (the pod projects it itself, or another webhook added it), unless
//     spec.selfProjectedTokens allows it;
//   - an identity variable a container sets itself (AWS_ROLE_ARN,
//     AZURE_CLIENT_ID, ...) to an identity a policy refuses;
//   - an Azure token with no client ID where a policy governs client IDs.
//
// It only ever denies or warns; Patch stays empty. An invalid identity
// configuration is the mutating step's to answer, and is not repeated.
// Warnings the mutating step gave already are not repeated either.
func (e *Engine) Enforce(t Target, sa *corev1.ServiceAccount) Result {
	var res Result
	if t.Policy.Empty() || isMirror(t) {
		return res
	}
	req := providers.Request{Namespace: t.Namespace, PodName: t.Name, PodMeta: t.Meta, PodSpec: t.Spec, ServiceAccount: sa}
	saOnly := providers.Request{Namespace: t.Namespace, PodMeta: &metav1.ObjectMeta{}, PodSpec: &corev1.PodSpec{}, ServiceAccount: sa, ServiceAccountOnly: true}
	var injected, named, set []policy.ProviderIdentities
	var ours []*providers.Injection
	for _, p := range e.providers {
		if err := oversized(p, sa); err != nil {
			// The policies cannot read the identity, and another webhook
			// may inject it whatever this one did.
			res.Denied = append(res.Denied, unreadable(err))
		} else if inj, err := p.Inject(saOnly); err != nil {
			res.Denied = append(res.Denied, unreadable(err))
		} else if inj.Injects() {
			named = append(named, policy.ProviderIdentities{Provider: p.Name(), Identities: inj.Identities})
		}
		if inj, err := p.Inject(req); err == nil && inj.Injects() {
			ours = append(ours, inj)
			injected = append(injected, policy.ProviderIdentities{Provider: p.Name(), Identities: inj.Identities})
			res.Denied = append(res.Denied, ownCopies(t, sa, inj)...)
			if en, ok := p.(providers.Enforcer); ok {
				res.Denied = append(res.Denied, hiddenCredentials(t, en, inj, p.Name())...)
			}
		}
		if en, ok := p.(providers.Enforcer); ok {
			if ids := variables(t.Spec, en, p.Name(), ours); len(ids) > 0 {
				set = append(set, policy.ProviderIdentities{Provider: p.Name(), Identities: ids})
			}
		}
	}
	tokens, projectedAPI := e.foreignTokens(t.Spec, ours)
	res.Denied = append(res.Denied, e.selfProjectedHidden(t, tokens)...)
	api := apiToken(t.Spec, sa)
	if !api.Mounted && projectedAPI != "" {
		api = &policy.APIToken{Mounted: true, Source: policy.TokenProjected, Volume: projectedAPI}
	}
	base := policy.Check{Namespace: sa.Namespace, ServiceAccount: sa.Name, Pod: t.Name, PodCheck: true, APIToken: api, Uncounted: true}
	mutating := base
	mutating.Providers = injected
	full := base
	full.Providers = slices.Concat(injected, named, set)
	full.Tokens = tokens
	already := map[string]bool{}
	for _, w := range t.Policy.Evaluate(mutating).Warnings() {
		already[w] = true
	}
	v := t.Policy.Evaluate(full)
	seen := map[string]bool{}
	for _, f := range v.Findings {
		if seen[f.Message] {
			continue
		}
		seen[f.Message] = true
		if f.Enforcement == v1alpha1.Deny {
			res.Denied = append(res.Denied, f)
		} else if w := f.Warning(); !already[w] {
			res.Warnings = append(res.Warnings, w)
		}
	}
	return res
}

// unreadable words an invalid identity configuration for the enforcement
// step: in a namespace an identity policy governs, an identity the policy
// cannot read is refused.
func unreadable(err error) error {
	return fmt.Errorf("%w; the identity policies of the namespace cannot check an identity they cannot read, so the pod is refused whatever its labels", err)
}

// ownCopies refuses pod annotations that the injection writes (a
// credential configuration the pod reads through the downward API) and
// that the pod carries with another value, and volumes with the name of
// one the injection adds and other content: the pod would use its own
// configuration under the injector's name.
func ownCopies(t Target, sa *corev1.ServiceAccount, inj *providers.Injection) []error {
	var out []error
	for _, k := range sortedKeys(inj.Annotations) {
		if v, ok := t.Meta.Annotations[k]; ok && v != inj.Annotations[k] {
			out = append(out, fmt.Errorf("pod %s: annotation %s is not the %s credential configuration the injector writes for serviceaccount %s: a pod may not bring its own (remove the annotation)",
				podRef(t), k, inj.Provider, strconv.Quote(sa.Namespace+"/"+sa.Name)))
		}
	}
	// A volume of its own under the injection's volume's name would hand
	// the containers, at the injector's paths and variables, a credential
	// configuration or token the injector did not write.
	for _, want := range inj.Volumes {
		for _, v := range t.Spec.Volumes {
			if v.Name == want.Name && !sameVolume(v, want) {
				out = append(out, fmt.Errorf("pod %s: volume %s has the name of the %s injection's volume but not its content: the injector cannot vouch for what it holds (rename the volume)",
					podRef(t), strconv.Quote(v.Name), inj.Provider))
			}
		}
	}
	return out
}

// containerView is what the enforcement step reads of a container, an
// init container or an ephemeral one.
type containerView struct {
	name    string
	env     []corev1.EnvVar
	envFrom []corev1.EnvFromSource
	mounts  []corev1.VolumeMount
}

// everyContainer lists the pod's containers of every kind: an ephemeral
// container (kubectl debug) runs with the pod's volumes as well.
func everyContainer(spec *corev1.PodSpec) []containerView {
	var out []containerView
	for _, list := range [2][]corev1.Container{spec.InitContainers, spec.Containers} {
		for _, c := range list {
			out = append(out, containerView{c.Name, c.Env, c.EnvFrom, c.VolumeMounts})
		}
	}
	for _, c := range spec.EphemeralContainers {
		out = append(out, containerView{c.Name, c.Env, c.EnvFrom, c.VolumeMounts})
	}
	return out
}

// hiddenCredentials refuses what lets a container that mounts the
// injection's token use it with an identity the policies cannot see: a
// token file variable pointing at a credential configuration of its own,
// and identity variables left to envFrom (a ConfigMap or Secret the
// admission request does not show). The injector sets the identity
// variables explicitly, which envFrom cannot override; a container that
// sets some variable of their group itself does not get them.
func hiddenCredentials(t Target, en providers.Enforcer, inj *providers.Injection, provider string) []error {
	// The volumes that hold a token or a credential configuration (not a
	// scratch directory such as gcloud's).
	volumes := map[string]bool{}
	for _, v := range inj.Volumes {
		if v.EmptyDir == nil {
			volumes[v.Name] = true
		}
	}
	// The variables a container with envFrom must set itself: the token
	// file variables, and the identity variables whose field a policy of
	// the namespace governs (an ungoverned one may hold anything anyway).
	// Found only for a container that needs them.
	var names []string
	mustSet := func() []string {
		if names == nil {
			vars := en.IdentityVariables()
			names = slices.Clone(inj.TokenFileVariables)
			for _, name := range slices.Sorted(maps.Keys(vars)) {
				if !slices.Contains(names, name) && t.Policy.Governs(provider, vars[name]) {
					names = append(names, name)
				}
			}
		}
		return names
	}
	var out []error
	for _, c := range everyContainer(t.Spec) {
		// Something of its own mounted at, or inside, one of the
		// injection's mount paths would stand in for the injector's
		// token or credential configuration.
		for _, m := range inj.Mounts {
			path := cleanPath(m.MountPath)
			for _, cm := range c.mounts {
				if p := cleanPath(cm.MountPath); (p == path || strings.HasPrefix(p, path+"/")) && cm.Name != m.VolumeName {
					out = append(out, fmt.Errorf("pod %s container %s mounts volume %s at %s, where the %s injection puts its token or credential configuration: the identity policies cannot vouch for it (mount it elsewhere)",
						podRef(t), strconv.Quote(c.name), strconv.Quote(cm.Name), cm.MountPath, inj.Provider))
				}
			}
		}
		volume := ""
		for _, m := range c.mounts {
			if volumes[m.Name] {
				volume = m.Name
				break
			}
		}
		if volume == "" {
			continue
		}
		where := fmt.Sprintf("pod %s container %s mounts the %s token (volume %s)", podRef(t), strconv.Quote(c.name), inj.Provider, strconv.Quote(volume))
		// Every entry, in any case: the last of duplicates is the one
		// that counts, and Windows reads names without regard to case.
		for _, ev := range c.env {
			if slices.ContainsFunc(inj.TokenFileVariables, func(n string) bool { return strings.EqualFold(n, ev.Name) }) && !setsExactly(inj, ev) {
				out = append(out, fmt.Errorf("%s but sets %s=%s: a credential configuration the injector did not write, which the identity policies cannot read (remove %s from the container)",
					where, ev.Name, quote.Value(ev.Value), ev.Name))
			}
		}
		if len(c.envFrom) > 0 {
			out = append(out, leftToEnvFrom(where, c, mustSet())...)
		}
	}
	return out
}

// leftToEnvFrom refuses a container with envFrom that does not set each
// of names in env itself (exactly that name: on Linux another spelling is
// another variable, which would leave this one to envFrom). where says
// which container and which token.
func leftToEnvFrom(where string, c containerView, names []string) []error {
	var out []error
	for _, name := range names {
		if !slices.ContainsFunc(c.env, func(ev corev1.EnvVar) bool { return ev.Name == name }) {
			out = append(out, fmt.Errorf("%s and takes variables from envFrom without setting %s itself: the identity policies cannot read what envFrom gives it (set %s in env, or remove envFrom)",
				where, name, name))
		}
	}
	return out
}

// selfProjectedHidden refuses a container that mounts a cloud token the
// pod projected itself (where a policy allows that) and takes variables
// from envFrom without setting that cloud's governed identity variables
// in env: the rule hiddenCredentials applies to the injector's own token.
func (e *Engine) selfProjectedHidden(t Target, tokens []policy.Token) []error {
	var out []error
	for _, tok := range tokens {
		if tok.Provider == "" {
			continue
		}
		var en providers.Enforcer
		for _, p := range e.providers {
			if p.Name() == tok.Provider {
				en, _ = p.(providers.Enforcer)
			}
		}
		if en == nil {
			continue
		}
		vars := en.IdentityVariables()
		var governed []string
		for _, name := range slices.Sorted(maps.Keys(vars)) {
			if t.Policy.Governs(tok.Provider, vars[name]) {
				governed = append(governed, name)
			}
		}
		for _, c := range everyContainer(t.Spec) {
			if len(c.envFrom) > 0 && slices.ContainsFunc(c.mounts, func(m corev1.VolumeMount) bool { return m.Name == tok.Volume }) {
				where := fmt.Sprintf("pod %s container %s mounts the %s token the pod projects itself (volume %s)", podRef(t), strconv.Quote(c.name), tok.Provider, strconv.Quote(tok.Volume))
				out = append(out, leftToEnvFrom(where, c, governed)...)
			}
		}
	}
	return out
}

// variables returns the identities that the containers of spec set in the
// provider's identity variables themselves: every value but the one the
// injector gives (ours). Names are compared without regard to case, as
// Windows reads them.
func variables(spec *corev1.PodSpec, en providers.Enforcer, provider string, ours []*providers.Injection) []providers.Identity {
	vars := map[string]string{}
	for name, field := range en.IdentityVariables() {
		vars[strings.ToUpper(name)] = field
	}
	if len(vars) == 0 {
		return nil
	}
	affixes := map[string]providers.Affix{}
	if a, ok := en.(providers.Affixer); ok {
		for name, af := range a.IdentityAffixes() {
			affixes[strings.ToUpper(name)] = af
		}
	}
	var out []providers.Identity
	for _, c := range everyContainer(spec) {
		for _, ev := range c.env {
			field, ok := vars[strings.ToUpper(ev.Name)]
			if !ok || injects(ours, provider, ev) {
				continue
			}
			id := providers.Identity{Field: field, Source: fmt.Sprintf("container %s env %s", strconv.Quote(c.name), ev.Name), Value: ev.Value,
				CaseInsensitive: CaseInsensitiveField(field)}
			af, wrapped := affixes[strings.ToUpper(ev.Name)]
			switch {
			case ev.ValueFrom != nil:
				id.Source += " (set from a reference the policies cannot read)"
				id.Value = ""
			case wrapped && len(ev.Value) >= len(af.Prefix)+len(af.Suffix) && strings.HasPrefix(ev.Value, af.Prefix) && strings.HasSuffix(ev.Value, af.Suffix) &&
				wholeMatch(af.Pattern, ev.Value[len(af.Prefix):len(ev.Value)-len(af.Suffix)]):
				// The policies match the identity, not the text around it.
				id.Value = ev.Value[len(af.Prefix) : len(ev.Value)-len(af.Suffix)]
			case wrapped:
				// Another account's role, say: not an identity of this form.
				id.Source += " " + quote.Value(ev.Value) + " (not of the form " + af.Prefix + "<identity>" + af.Suffix + ")"
				id.Value = ""
			}
			out = append(out, id)
		}
	}
	return out
}

// wholeMatch says whether s matches the RE2 pattern as a whole (any s
// when there is no pattern; none when it does not compile).
func wholeMatch(pattern, s string) bool {
	if pattern == "" {
		return true
	}
	re, _ := compiled.Load(pattern)
	if re == nil {
		// A few patterns per process, from the providers' code and files:
		// each is compiled once, not for every container of every review
		// (a hostile pod may carry thousands).
		c, err := regexp.Compile(`^(?:` + pattern + `)$`)
		if err != nil {
			c = nil
		}
		re, _ = compiled.LoadOrStore(pattern, c)
	}
	r, _ := re.(*regexp.Regexp)
	return r != nil && r.MatchString(s)
}

// compiled holds wholeMatch's patterns, compiled (nil when one does not).
var compiled sync.Map

// CaseInsensitiveField says whether the cloud compares the values of an
// identity field without regard to case (Entra's GUIDs).
func CaseInsensitiveField(field string) bool { return field == "clientIDs" || field == "tenantIDs" }

// injects reports whether the provider's injection sets ev exactly.
func injects(ours []*providers.Injection, provider string, ev corev1.EnvVar) bool {
	return slices.ContainsFunc(ours, func(inj *providers.Injection) bool { return inj.Provider == provider && setsExactly(inj, ev) })
}

// setsExactly reports whether the injection sets ev, value and all.
func setsExactly(inj *providers.Injection, ev corev1.EnvVar) bool {
	for _, g := range inj.Env {
		for _, v := range g.Vars {
			if v.Name == ev.Name && v.Value == ev.Value && ev.ValueFrom == nil {
				return true
			}
		}
	}
	return false
}

// foreignTokens returns the ServiceAccount tokens with an audience in the
// pod's projected volumes that are not the injector's (ours), with the
// provider whose cloud each audience is; and the name of a volume with a
// token of no audience (the API server's), if there is one.
func (e *Engine) foreignTokens(spec *corev1.PodSpec, ours []*providers.Injection) (tokens []policy.Token, apiVolume string) {
	for _, v := range spec.Volumes {
		if v.Projected == nil || injectedVolume(ours, v) {
			continue
		}
		for _, src := range v.Projected.Sources {
			t := src.ServiceAccountToken
			if t == nil {
				continue
			}
			provider := e.audienceOf(t.Audience)
			if t.Audience == "" || (provider == "" && slices.Contains(e.apiAudiences, LooseAudience(t.Audience))) {
				// The API server's audience (a cloud's that is also the
				// API server's, as OKE's, stays the cloud's).
				if apiVolume == "" {
					apiVolume = v.Name
				}
				continue
			}
			tokens = append(tokens, policy.Token{Volume: v.Name, Audience: t.Audience, Provider: provider})
		}
	}
	return tokens, apiVolume
}

func injectedVolume(ours []*providers.Injection, v corev1.Volume) bool {
	for _, inj := range ours {
		for _, w := range inj.Volumes {
			if w.Name == v.Name && sameVolume(v, w) {
				return true
			}
		}
	}
	return false
}

// audienceOf names the provider whose cloud accepts the audience, "" when
// none does. The comparison is loose on purpose, as the clouds' are:
// without regard to case, to a trailing slash, or to an https:// or //
// in front (Google accepts its provider's name with or without https:).
func (e *Engine) audienceOf(audience string) string {
	aud := LooseAudience(audience)
	for _, p := range e.providers {
		en, ok := p.(providers.Enforcer)
		if !ok {
			continue
		}
		for _, a := range en.TokenAudiences() {
			a = LooseAudience(a)
			if a == aud || (strings.HasSuffix(a, "*") && strings.HasPrefix(aud, strings.TrimSuffix(a, "*"))) {
				return p.Name()
			}
		}
	}
	return ""
}

// LooseAudience is an audience as the enforcement step compares it: in
// lower case, with no scheme and no trailing slash.
func LooseAudience(a string) string {
	a = strings.TrimSpace(a)
	// ASCII only, as the admission policy's lowerAscii: a character
	// outside it is no cloud's audience either way.
	b := []byte(a)
	for i, c := range b {
		if 'A' <= c && c <= 'Z' {
			b[i] = c + 'a' - 'A'
		}
	}
	a = string(b)
	for _, scheme := range []string{"https://", "http://", "//"} {
		if rest, ok := strings.CutPrefix(a, scheme); ok {
			a = rest
			break
		}
	}
	return strings.TrimRight(a, "/")
}

// downwardAnnotation reads the key of a downward API field path that
// names an annotation: metadata.annotations['key'].
var downwardAnnotation = regexp.MustCompile(`^metadata\.annotations\['(.+)'\]$`)

// CheckUpdate refuses an update of a pod that changes, adds or removes an
// annotation under a provider's prefix that the pod reads through the
// downward API: such an annotation is a credential configuration the
// injector wrote (Google's), and changing it after admission would change
// the identity the pod's SDK uses after every check passed. pod names the
// pod in messages, "namespace/name".
func (e *Engine) CheckUpdate(pod string, old, cur *metav1.ObjectMeta, spec *corev1.PodSpec) []error {
	prefixes := e.AnnotationPrefixes()
	var out []error
	for _, ref := range downwardRefs(spec) {
		m := downwardAnnotation.FindStringSubmatch(ref.path)
		if m == nil || !hasAnyPrefix(m[1], prefixes) {
			continue
		}
		key := m[1]
		was, hadIt := old.Annotations[key]
		now, hasIt := cur.Annotations[key]
		if was == now && hadIt == hasIt {
			continue
		}
		change := fmt.Sprintf("from %s to %s", quote.Value(was), quote.Value(now))
		switch {
		case !hadIt:
			change = "by adding it"
		case !hasIt:
			change = "by removing it"
		}
		out = append(out, fmt.Errorf("pod %s: annotation %s is the cloud credential configuration the pod reads through the downward API (%s), and cannot change once the pod exists; this update would change it %s: delete and recreate the pod instead",
			strconv.Quote(pod), key, ref.where, change))
	}
	return out
}

type downwardRef struct{ path, where string }

// downwardRefs lists the field paths the pod reads through the downward
// API, in volumes and in environment variables.
func downwardRefs(spec *corev1.PodSpec) []downwardRef {
	var out []downwardRef
	items := func(where string, items []corev1.DownwardAPIVolumeFile) {
		for _, it := range items {
			if it.FieldRef != nil {
				out = append(out, downwardRef{it.FieldRef.FieldPath, where})
			}
		}
	}
	for _, v := range spec.Volumes {
		where := "volume " + strconv.Quote(v.Name)
		if v.DownwardAPI != nil {
			items(where, v.DownwardAPI.Items)
		}
		if v.Projected != nil {
			for _, src := range v.Projected.Sources {
				if src.DownwardAPI != nil {
					items(where, src.DownwardAPI.Items)
				}
			}
		}
	}
	for _, list := range [2][]corev1.Container{spec.InitContainers, spec.Containers} {
		for _, c := range list {
			for _, ev := range c.Env {
				if ev.ValueFrom != nil && ev.ValueFrom.FieldRef != nil {
					out = append(out, downwardRef{ev.ValueFrom.FieldRef.FieldPath, fmt.Sprintf("container %s env %s", strconv.Quote(c.Name), ev.Name)})
				}
			}
		}
	}
	return out
}
