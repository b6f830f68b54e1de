package policy

import (
	"regexp"
	"strings"
)

// ServiceAccountMarker stands for the pod's ServiceAccount name in the
// rules policy mode's admission policies read (its regexp-quoted name in
// expressions, its name in messages): the rules are written per
// namespace, for no ServiceAccount in particular.
const ServiceAccountMarker = "{serviceaccount}"

// TokenRule is what one policy says about a token with a cloud's audience
// that a pod has and the injector did not give it, as policy mode reads it.
type TokenRule struct {
	// Policy names the IdentityPolicy.
	Policy string
	// Enforcement is the policy's (Deny or Warn), for an audience it does
	// not allow; SelfProjected is spec.selfProjectedTokens.
	Enforcement, SelfProjected string
	// Audiences are spec.tokenAudiences as anchored regular expressions
	// (RE2) for the namespace, ServiceAccountMarker standing for the
	// ServiceAccount's regexp-quoted name.
	Audiences []string
	// Describe says what spec.tokenAudiences allows, ServiceAccountMarker
	// standing for the ServiceAccount's name.
	Describe string
	// Broken, when set, says why the policy cannot be applied: it refuses
	// every cloud token.
	Broken string
}

// FieldRule is what one policy allows in one identity field, as policy
// mode reads it.
type FieldRule struct {
	// Policy names the IdentityPolicy; Enforcement is its enforcement.
	Policy, Enforcement string
	// Patterns are the field's patterns as anchored regular expressions
	// (RE2) for the namespace, ServiceAccountMarker standing for the
	// ServiceAccount's regexp-quoted name.
	Patterns []string
	// Describe says what the field allows, ServiceAccountMarker standing
	// for the ServiceAccount's name.
	Describe string
	// Broken, when set, says why the policy cannot be applied: it refuses
	// every identity.
	Broken string
}

// TokenRules returns each policy's rule on cloud tokens a pod of the
// namespace has that the injector did not give it.
func (sc Scope) TokenRules(namespace string) []TokenRule {
	subj := subject{namespace: namespace, serviceAccount: ServiceAccountMarker}
	out := make([]TokenRule, 0, len(sc.policies))
	for _, p := range sc.policies {
		r := TokenRule{Policy: p.name, Enforcement: string(p.enforcement), SelfProjected: string(p.selfProjects),
			Describe: p.audiences.describe(subj)}
		for _, pat := range p.audiences.patterns {
			r.Audiences = append(r.Audiences, pat.regexp(namespace, false))
		}
		if p.err != nil {
			r.Broken = p.err.Error()
		}
		out = append(out, r)
	}
	return out
}

// Governs says whether a policy of the scope has a rule on a provider's
// identity field (or cannot be read, and so refuses everything): what
// FieldRules would return something for, without building it, for the
// admission path.
func (sc Scope) Governs(provider, field string) bool {
	for _, p := range sc.policies {
		if p.err != nil || p.rules(provider, field) != nil {
			return true
		}
	}
	return false
}

// FieldRules returns each policy's rule on a provider's identity field in
// the namespace; a policy that leaves the field out allows anything and
// has none.
func (sc Scope) FieldRules(namespace, provider, field string, caseInsensitive bool) []FieldRule {
	subj := subject{namespace: namespace, serviceAccount: ServiceAccountMarker}
	var out []FieldRule
	for _, p := range sc.policies {
		if p.err != nil {
			out = append(out, FieldRule{Policy: p.name, Enforcement: string(p.enforcement), Broken: p.err.Error()})
			continue
		}
		fr := p.rules(provider, field)
		if fr == nil {
			continue
		}
		r := FieldRule{Policy: p.name, Enforcement: string(p.enforcement), Describe: fr.describe(subj), Patterns: []string{}}
		for _, pat := range fr.patterns {
			r.Patterns = append(r.Patterns, pat.regexp(namespace, caseInsensitive))
		}
		out = append(out, r)
	}
	return out
}

// regexp returns the pattern as an anchored RE2 expression for the
// namespace, ServiceAccountMarker standing where the ServiceAccount's
// regexp-quoted name goes.
func (p pattern) regexp(namespace string, fold bool) string {
	var b strings.Builder
	if fold {
		b.WriteString("(?i)")
	}
	b.WriteString("^(?s)")
	for i, seg := range p.segs {
		if i > 0 {
			b.WriteString(".*")
		}
		for _, pc := range seg {
			switch pc.ph {
			case 'n':
				b.WriteString(regexp.QuoteMeta(namespace))
			case 's':
				b.WriteString(ServiceAccountMarker)
			default:
				b.WriteString(regexp.QuoteMeta(pc.lit))
			}
		}
	}
	b.WriteString("$")
	return b.String()
}
