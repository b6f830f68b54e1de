// Package policy compiles IdentityPolicy objects and evaluates them: which
// cloud identities the ServiceAccounts of a namespace may use, whether a
// namespace's default ServiceAccount may carry one, and whether a pod with a
// cloud identity may also mount a Kubernetes API token. It knows nothing of
// HTTP or admission: the engine asks it, for the webhook, `injector
// mutate` and `injector check` alike.
package policy

import (
	"fmt"
	"slices"
	"sort"
	"strconv"
	"strings"
	"sync/atomic"

	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/labels"

	"github.com/pod-identity/injector/internal/quote"
	v1alpha1 "github.com/pod-identity/injector/pkg/policy/v1alpha1"
	"github.com/pod-identity/injector/pkg/providers"
)

// AudiencesField is the Identity field of a token audience that a
// ServiceAccount annotation chose (rather than the provider's own): every
// provider's are governed by spec.tokenAudiences.
const AudiencesField = "audiences"

// Decisions, as the pod_identity_policy_decisions_total metric counts them.
const (
	Allow = "allow"
	Warn  = "warn"
	Deny  = "deny"
)

// fieldRules are the compiled patterns of one policy field. A field left
// out has none (it allows anything); an empty list has empty patterns.
type fieldRules struct {
	provider, field string
	path            string
	patterns        []pattern
}

// Policy is one compiled IdentityPolicy. It is immutable, but for the
// tally of its decisions.
type Policy struct {
	name        string
	generation  int64
	selector    labels.Selector
	enforcement v1alpha1.Enforcement
	// fields are the rules of the fields that are set. A slice, not a map:
	// there are at most a handful, and a scan costs less than hashing.
	fields    []*fieldRules
	defaultSA v1alpha1.Rule
	apiToken  v1alpha1.Rule
	// audiences are spec.tokenAudiences: left out, no pattern.
	audiences    *fieldRules
	selfProjects v1alpha1.Rule
	err          error
	errReason    string
	// ambiguous says, for each pattern two subjects could fill with the
	// same identity, why.
	ambiguous []string
	// tally counts the policy's decisions; a Store gives every version of
	// a policy the tally of its name, so that counts survive a change.
	tally atomic.Pointer[tally]
}

// Condition reasons of the Ready condition.
const (
	ReasonCompiled        = "Compiled"
	ReasonInvalidPattern  = "InvalidPattern"
	ReasonInvalidSelector = "InvalidSelector"
	ReasonInvalidSetting  = "InvalidSetting"
	// ReasonAmbiguousPlaceholder: in force, but a pattern lets one
	// namespace or ServiceAccount use what another's name would match.
	ReasonAmbiguousPlaceholder = "AmbiguousPlaceholder"
)

// Name is the policy's name.
func (p *Policy) Name() string { return p.name }

// Ready says whether the policy is in force as written; when it is not,
// reason and message say why (the policy then refuses every identity in
// the namespaces it may select).
func (p *Policy) Ready() (ready bool, reason, message string) {
	if p.err == nil && len(p.ambiguous) > 0 {
		return true, ReasonAmbiguousPlaceholder, "the policy is in force, but " + strings.Join(p.ambiguous, "; ")
	}
	if p.err == nil {
		return true, ReasonCompiled, "the policy is in force"
	}
	return false, p.errReason, p.err.Error() + "; until it is fixed, the policy refuses every cloud identity in the namespaces it selects (every namespace, when the selector is what is wrong)"
}

// Warnings say what in the policy is in force but likely not what its
// author meant: patterns whose placeholders two subjects could fill with
// the same identity.
func (p *Policy) Warnings() []string {
	out := make([]string, len(p.ambiguous))
	for i, a := range p.ambiguous {
		out[i] = fmt.Sprintf("identitypolicy %q: %s", p.name, a)
	}
	return out
}

// Compile compiles an IdentityPolicy. It never fails: a policy that cannot
// be used as written is kept, refusing every identity in the namespaces it
// selects (every namespace when its selector is what is wrong), and says
// why through Ready, since a security rule that silently stops applying is
// worse than a loud one.
func Compile(ip *v1alpha1.IdentityPolicy) *Policy {
	s := &ip.Spec
	p := &Policy{name: ip.Name, generation: ip.Generation, enforcement: s.Enforcement,
		defaultSA: s.DefaultServiceAccount, apiToken: s.APITokenWithIdentity, selfProjects: s.SelfProjectedTokens}
	if p.selfProjects == "" {
		// In a governed namespace, a pod does not mint its own cloud token.
		p.selfProjects = v1alpha1.RuleDeny
	}
	fail := func(reason string, err error) {
		if p.err == nil {
			p.err, p.errReason = err, reason
		}
	}
	if p.enforcement == "" {
		p.enforcement = v1alpha1.Deny
	}
	if p.enforcement != v1alpha1.Deny && p.enforcement != v1alpha1.Warn {
		fail(ReasonInvalidSetting, fmt.Errorf("spec.enforcement %s: expected Deny or Warn", quote.Value(string(p.enforcement))))
		p.enforcement = v1alpha1.Deny
	}
	for _, r := range []struct {
		path string
		rule *v1alpha1.Rule
	}{{"spec.defaultServiceAccount", &p.defaultSA}, {"spec.apiTokenWithIdentity", &p.apiToken}, {"spec.selfProjectedTokens", &p.selfProjects}} {
		switch *r.rule {
		case "":
			*r.rule = v1alpha1.Allow
		case v1alpha1.Allow, v1alpha1.RuleWarn, v1alpha1.RuleDeny:
		default:
			fail(ReasonInvalidSetting, fmt.Errorf("%s %s: expected Allow, Warn or Deny", r.path, quote.Value(string(*r.rule))))
			*r.rule = v1alpha1.RuleDeny
		}
	}
	sel, err := selector(s.NamespaceSelector)
	if err != nil {
		fail(ReasonInvalidSelector, fmt.Errorf("spec.namespaceSelector: %w", err))
		sel = labels.Everything()
	}
	p.selector = sel
	compile := func(provider, field, path string, pats *v1alpha1.Patterns) *fieldRules {
		fr := &fieldRules{provider: provider, field: field, path: path, patterns: []pattern{}}
		if pats == nil {
			return fr
		}
		if len(*pats) > maxPatterns {
			fail(ReasonInvalidPattern, fmt.Errorf("%s: %d patterns: the limit is %d", path, len(*pats), maxPatterns))
		}
		for i, raw := range *pats {
			pat, err := compilePattern(string(raw))
			if err != nil {
				fail(ReasonInvalidPattern, fmt.Errorf("%s[%d]: %w", path, i, err))
				continue
			}
			fr.patterns = append(fr.patterns, pat)
			if why := ambiguity(string(raw)); why != "" {
				p.ambiguous = append(p.ambiguous, fmt.Sprintf("%s[%d] %s: %s", path, i, quote.Value(string(raw)), why))
			}
		}
		return fr
	}
	add := func(provider, field, path string, pats *v1alpha1.Patterns) {
		if pats != nil {
			p.fields = append(p.fields, compile(provider, field, path, pats))
		}
	}
	p.audiences = compile("", AudiencesField, "spec.tokenAudiences", s.TokenAudiences)
	if s.AWS != nil {
		add("aws", "roleARNs", "spec.aws.roleARNs", s.AWS.RoleARNs)
	}
	if s.Azure != nil {
		add("azure", "clientIDs", "spec.azure.clientIDs", s.Azure.ClientIDs)
		add("azure", "tenantIDs", "spec.azure.tenantIDs", s.Azure.TenantIDs)
	}
	if s.GCP != nil {
		add("gcp", "workloadIdentityProviders", "spec.gcp.workloadIdentityProviders", s.GCP.WorkloadIdentityProviders)
		add("gcp", "serviceAccountEmails", "spec.gcp.serviceAccountEmails", s.GCP.ServiceAccountEmails)
	}
	names := make([]string, 0, len(s.Providers))
	for name := range s.Providers {
		names = append(names, name)
	}
	sort.Strings(names)
	for _, name := range names {
		if name == "aws" || name == "azure" || name == "gcp" {
			fail(ReasonInvalidSetting, fmt.Errorf("spec.providers.%s: %s has its own field, spec.%s", name, name, name))
			continue
		}
		add(name, "identities", "spec.providers."+name+".identities", s.Providers[name].Identities)
	}
	return p
}

// Broken returns the Policy of an IdentityPolicy that cannot be read at
// all: it selects every namespace and denies every identity, saying why.
func Broken(name string, generation int64, err error) *Policy {
	return &Policy{name: name, generation: generation, selector: labels.Everything(), enforcement: v1alpha1.Deny,
		defaultSA: v1alpha1.Allow, apiToken: v1alpha1.Allow, selfProjects: v1alpha1.RuleDeny, err: err, errReason: ReasonInvalidSetting,
		audiences: &fieldRules{field: AudiencesField, path: "spec.tokenAudiences", patterns: []pattern{}}}
}

// selector converts a namespace selector; nil or empty selects everything.
func selector(ls *metav1.LabelSelector) (labels.Selector, error) {
	if ls == nil {
		return labels.Everything(), nil
	}
	for _, e := range ls.MatchExpressions {
		// LabelSelectorAsSelector accepts values for Exists; the API
		// server's own validation of selectors does not.
		if (e.Operator == metav1.LabelSelectorOpExists || e.Operator == metav1.LabelSelectorOpDoesNotExist) && len(e.Values) > 0 {
			return nil, fmt.Errorf("matchExpressions key %s: operator %s takes no values", quote.Value(e.Key), e.Operator)
		}
	}
	return metav1.LabelSelectorAsSelector(ls)
}

// Set is the compiled policies in force. It is immutable; the zero Set
// holds none.
type Set struct {
	policies []*Policy
}

// NewSet compiles policies into a Set, ordered by name.
func NewSet(policies ...*v1alpha1.IdentityPolicy) *Set {
	s := &Set{}
	for _, ip := range policies {
		s.policies = append(s.policies, Compile(ip))
	}
	return NewCompiledSet(s.policies)
}

// NewCompiledSet returns the Set of already compiled policies, ordered by name.
func NewCompiledSet(ps []*Policy) *Set {
	ps = slices.Clone(ps)
	slices.SortFunc(ps, func(a, b *Policy) int { return strings.Compare(a.name, b.name) })
	return &Set{policies: ps}
}

// All returns the policies, ordered by name.
func (s *Set) All() []*Policy {
	if s == nil {
		return nil
	}
	return slices.Clone(s.policies)
}

// Len returns the number of policies.
func (s *Set) Len() int {
	if s == nil {
		return 0
	}
	return len(s.policies)
}

// Select returns the policies that select a namespace with these labels.
func (s *Set) Select(namespaceLabels map[string]string) Scope {
	if s == nil {
		return Scope{}
	}
	var out []*Policy
	set := labels.Set(namespaceLabels)
	for _, p := range s.policies {
		if p.selector.Matches(set) {
			out = append(out, p)
		}
	}
	return Scope{policies: out}
}

// Scope is the policies that apply in one namespace. The zero Scope holds
// none, and allows everything.
type Scope struct {
	policies []*Policy
}

// Empty reports whether no policy applies.
func (sc Scope) Empty() bool { return len(sc.policies) == 0 }

// Finding is one rule of one policy that a ServiceAccount or pod breaks.
type Finding struct {
	// Policy names the IdentityPolicy.
	Policy string
	// Provider is the provider whose identity is concerned.
	Provider string
	// Enforcement is Deny or Warn.
	Enforcement v1alpha1.Enforcement
	// Message says what breaks which rule, naming the object, the
	// annotation, the value and the rule.
	Message string
}

// Error implements error, so that a denying Finding can be returned as one.
func (f *Finding) Error() string { return f.Message }

// Warning words a Warn finding as an admission warning.
func (f *Finding) Warning() string {
	return f.Message + " (enforcement Warn: admitted)"
}

// Verdict is what the policies of a Scope say about one ServiceAccount or pod.
type Verdict struct {
	// Findings are the rules broken, Deny and Warn alike.
	Findings []*Finding
}

// Denied returns the findings whose enforcement is Deny, as errors.
func (v Verdict) Denied() []error {
	var out []error
	for _, f := range v.Findings {
		if f.Enforcement == v1alpha1.Deny {
			out = append(out, f)
		}
	}
	return out
}

// Warnings returns the findings whose enforcement is Warn, as warnings.
func (v Verdict) Warnings() []string {
	var out []string
	for _, f := range v.Findings {
		if f.Enforcement == v1alpha1.Warn {
			out = append(out, f.Warning())
		}
	}
	return out
}

// ProviderIdentities are the identities one provider hands out.
type ProviderIdentities struct {
	// Provider is the provider's name.
	Provider string
	// Identities are what it hands out; none for an identity a policy
	// cannot see (an EKS Pod Identity association).
	Identities []providers.Identity
}

// TokenSource says what decided that a pod mounts a Kubernetes API token.
type TokenSource int

// The token sources.
const (
	// TokenDefault: neither the pod nor its ServiceAccount sets
	// automountServiceAccountToken, which defaults to true.
	TokenDefault TokenSource = iota
	// TokenFromPod: the pod sets it.
	TokenFromPod
	// TokenFromServiceAccount: the ServiceAccount sets it, the pod does not.
	TokenFromServiceAccount
	// TokenProjected: the pod projects a token with no audience (the API
	// server's) in a volume of its own.
	TokenProjected
)

// APIToken says whether and why a pod mounts a Kubernetes API token.
type APIToken struct {
	// Mounted says the pod gets the token.
	Mounted bool
	// Source says what decided it.
	Source TokenSource
	// Volume names the volume, for TokenProjected.
	Volume string
}

// Token is a ServiceAccount token with an audience that a pod has and the
// injector did not give it: projected by the pod itself, or by another
// webhook.
type Token struct {
	// Volume names the pod's volume; Audience is the token's.
	Volume, Audience string
	// Provider names the provider whose cloud the audience is (the
	// provider's own audience), empty when it is no provider's.
	Provider string
}

// Check is one ServiceAccount or pod to evaluate.
type Check struct {
	// Namespace and ServiceAccount are the ServiceAccount's.
	Namespace, ServiceAccount string
	// Pod is the pod's name (a generateName prefix, or empty for a
	// generated name) when a pod is checked; PodCheck says one is.
	Pod      string
	PodCheck bool
	// Providers are the identities the ServiceAccount (or pod) gets.
	Providers []ProviderIdentities
	// APIToken, for a pod, says whether it mounts a Kubernetes API token;
	// nil for a ServiceAccount.
	APIToken *APIToken
	// Tokens, for a pod as stored, are the tokens with an audience that
	// the injector did not give it.
	Tokens []Token
	// Uncounted says the decisions are not counted (Store.Decisions): a
	// second look at a pod already counted, as the enforcement step's.
	Uncounted bool
}

// object names what is checked in messages: `pod "ns/name" (serviceaccount
// "ns/sa")` or `serviceaccount "ns/sa"`. Only a finding pays for it.
func (c *Check) object() string {
	sa := strconv.Quote(c.Namespace + "/" + c.ServiceAccount)
	if !c.PodCheck {
		return "serviceaccount " + sa
	}
	name := c.Pod
	if name == "" {
		name = "<generated>"
	}
	return "pod " + strconv.Quote(c.Namespace+"/"+name) + " (serviceaccount " + sa + ")"
}

// why says why the pod mounts the token, for the message.
func (c *Check) why() string {
	sa := strconv.Quote(c.Namespace + "/" + c.ServiceAccount)
	switch c.APIToken.Source {
	case TokenFromPod:
		return "the pod sets automountServiceAccountToken: true"
	case TokenFromServiceAccount:
		return "serviceaccount " + sa + " sets automountServiceAccountToken: true and the pod does not set it"
	case TokenProjected:
		return "the pod projects a serviceaccount token the API server accepts (no audience, or one of its own) in volume " + strconv.Quote(c.APIToken.Volume)
	}
	return "neither the pod nor serviceaccount " + sa + " sets automountServiceAccountToken, which defaults to true"
}

// Evaluate applies every policy of the scope to c: an identity must be
// allowed by each of them, and each broken rule is a Finding with that
// policy's enforcement (so the strictest wins). Each policy's decision
// about each provider is counted (see Store.Decisions).
func (sc Scope) Evaluate(c Check) Verdict {
	var v Verdict
	if len(sc.policies) == 0 || (len(c.Providers) == 0 && len(c.Tokens) == 0) {
		return v
	}
	subj := subject{namespace: c.Namespace, serviceAccount: c.ServiceAccount}
	for _, p := range sc.policies {
		v.Findings = append(v.Findings, p.tokenFindings(&c, subj)...)
		var token *Finding
		if len(c.Providers) > 0 && c.APIToken != nil && c.APIToken.Mounted && p.apiToken != v1alpha1.Allow {
			token = p.finding(c.Providers[0].Provider, enforcement(p.apiToken), fmt.Sprintf(
				"%s: identitypolicy %q does not allow a Kubernetes API token in a pod that gets a cloud identity (spec.apiTokenWithIdentity: %s), and %s: set automountServiceAccountToken: false in the pod spec unless the workload calls the Kubernetes API",
				c.object(), p.name, p.apiToken, c.why()))
		}
		for _, pi := range c.Providers {
			decision := Allow
			findings := p.identityFindings(&c, subj, pi)
			if c.ServiceAccount == "default" && p.defaultSA != v1alpha1.Allow {
				findings = append(findings, p.finding(pi.Provider, enforcement(p.defaultSA), fmt.Sprintf(
					"%s: identitypolicy %q does not allow a cloud identity on a namespace's default serviceaccount (spec.defaultServiceAccount: %s): give the workload a serviceaccount of its own and annotate that one",
					c.object(), p.name, p.defaultSA)))
			}
			if token != nil {
				decision = stricter(decision, token.Enforcement)
			}
			for _, f := range findings {
				v.Findings = append(v.Findings, f)
				decision = stricter(decision, f.Enforcement)
			}
			if t := p.tally.Load(); t != nil && !c.Uncounted {
				t.add(pi.Provider, decision)
			}
		}
		if token != nil {
			v.Findings = append(v.Findings, token)
		}
	}
	return v
}

// tokenFindings checks the tokens with a cloud's audience that the pod has
// and the injector did not give it: an audience a provider's cloud
// accepts, or one the policy lists. Other audiences (a service mesh's, a
// secrets store's) are not the policy's business: only a cloud trust
// policy that accepts them could make them an identity.
func (p *Policy) tokenFindings(c *Check, subj subject) []*Finding {
	var out []*Finding
	for _, t := range c.Tokens {
		listed := p.audiences.allows(providers.Identity{Value: t.Audience}, subj)
		if t.Audience == "" || (t.Provider == "" && !listed) {
			continue
		}
		provider := t.Provider
		if provider == "" {
			provider = "unknown"
		}
		where := fmt.Sprintf("%s: volume %s has a serviceaccount token for audience %s that the injector did not give the pod (the pod projects it itself, or another webhook added it)",
			c.object(), strconv.Quote(t.Volume), quote.Value(t.Audience))
		switch {
		case p.err != nil:
			out = append(out, p.finding(provider, p.enforcement, fmt.Sprintf("%s, and identitypolicy %q cannot be applied (%v), so it refuses every cloud token: fix the policy", where, p.name, p.err)))
		case p.selfProjects != v1alpha1.Allow:
			out = append(out, p.finding(provider, enforcement(p.selfProjects), fmt.Sprintf(
				"%s; identitypolicy %q does not allow a pod to get a cloud token that way (spec.selfProjectedTokens: %s): remove the volume and annotate the pod's serviceaccount with the identity instead",
				where, p.name, p.selfProjects)))
		case !listed:
			out = append(out, p.finding(provider, p.enforcement, fmt.Sprintf("%s, and identitypolicy %q does not allow that audience (%s)", where, p.name, p.audiences.describe(subj))))
		}
	}
	return out
}

func (p *Policy) finding(provider string, e v1alpha1.Enforcement, msg string) *Finding {
	return &Finding{Policy: p.name, Provider: provider, Enforcement: e, Message: msg}
}

// identityFindings checks one provider's identities against the policy.
func (p *Policy) identityFindings(c *Check, subj subject, pi ProviderIdentities) []*Finding {
	if p.err != nil {
		return []*Finding{p.finding(pi.Provider, p.enforcement, fmt.Sprintf(
			"%s: identitypolicy %q cannot be applied (%v), so it refuses every cloud identity in the namespaces it selects: fix the policy",
			c.object(), p.name, p.err))}
	}
	var out []*Finding
	for _, id := range pi.Identities {
		fr := p.rules(pi.Provider, id.Field)
		if fr == nil || fr.allows(id, subj) {
			continue
		}
		what := id.Source + " " + quote.Value(id.Value)
		if id.Value == "" {
			// No value to show: the source says why (a value the pod
			// chooses, or one the injector cannot read).
			what = id.Source
		}
		out = append(out, p.finding(pi.Provider, p.enforcement, fmt.Sprintf(
			"%s: %s is not allowed by identitypolicy %q (%s)",
			c.object(), what, p.name, fr.describe(subj))))
	}
	return out
}

// rules returns the rules of a provider's field, nil when it is not set
// (it allows anything). Audiences are always governed: spec.tokenAudiences
// left out allows none beyond the providers' own.
func (p *Policy) rules(provider, field string) *fieldRules {
	if field == AudiencesField {
		return p.audiences
	}
	for _, fr := range p.fields {
		if fr.provider == provider && fr.field == field {
			return fr
		}
	}
	return nil
}

func (fr *fieldRules) allows(id providers.Identity, subj subject) bool {
	if fr == nil {
		return false // a policy that could not be read allows nothing
	}
	for _, pat := range fr.patterns {
		if pat.match(id.Value, subj, id.CaseInsensitive) {
			return true
		}
	}
	return false
}

// describe says what the field allows for subj, naming at most three patterns.
func (fr *fieldRules) describe(subj subject) string {
	if len(fr.patterns) == 0 && fr.field == AudiencesField {
		return fr.path + " allows no audience beyond each provider's own: add it there if the cloud's trust expects it"
	}
	if len(fr.patterns) == 0 {
		return fr.path + " is empty: it allows no identity"
	}
	const shown = 3
	var b strings.Builder
	b.WriteString(fr.path + " allows only ")
	for i, pat := range fr.patterns[:min(shown, len(fr.patterns))] {
		if i > 0 {
			b.WriteString(", ")
		}
		b.WriteString(quote.Value(pat.expand(subj)))
	}
	if n := len(fr.patterns) - shown; n > 0 {
		b.WriteString(" and " + strconv.Itoa(n) + " more")
	}
	return b.String()
}

// enforcement is the enforcement of a Warn or Deny rule.
func enforcement(r v1alpha1.Rule) v1alpha1.Enforcement {
	if r == v1alpha1.RuleWarn {
		return v1alpha1.Warn
	}
	return v1alpha1.Deny
}

// stricter returns the stricter of a decision and an enforcement.
func stricter(decision string, e v1alpha1.Enforcement) string {
	if e == v1alpha1.Deny || decision == Deny {
		return Deny
	}
	return Warn
}

// Same reports whether sc and other hold the same policies, as loaded:
// what is decided under one holds under the other.
func (sc Scope) Same(other Scope) bool { return slices.Equal(sc.policies, other.policies) }
