package policy

import (
	"fmt"
	"slices"
	"strings"
	"testing"

	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"

	v1alpha1 "github.com/pod-identity/injector/pkg/policy/v1alpha1"
	"github.com/pod-identity/injector/pkg/providers"
)

func TestPatterns(t *testing.T) {
	subj := subject{namespace: "team-a", serviceAccount: "app"}
	for _, c := range []struct {
		name, pattern, value string
		fold, want           bool
	}{
		{"an exact pattern matches only its value", "arn:aws:iam::1:role/x", "arn:aws:iam::1:role/x", false, true},
		{"an exact pattern does not match a longer value", "arn:aws:iam::1:role/x", "arn:aws:iam::1:role/xy", false, false},
		{"a trailing star matches any suffix", "role/tenants/{namespace}/*", "role/tenants/team-a/app", false, true},
		{"a trailing star matches nothing too", "role/{namespace}*", "role/team-a", false, true},
		{"the namespace placeholder is the serviceaccount's namespace", "role/tenants/{namespace}/*", "role/tenants/team-b/app", false, false},
		{"a namespace that only starts like another does not match", "role/{namespace}/*", "role/team-ab/x", false, false},
		{"both placeholders in one segment", "role/{namespace}-{serviceaccount}", "role/team-a-app", false, true},
		{"the serviceaccount placeholder is the serviceaccount's name", "role/{namespace}-{serviceaccount}", "role/team-a-batch", false, false},
		{"a leading star matches any prefix", "*@{namespace}.iam.gserviceaccount.com", "x@team-a.iam.gserviceaccount.com", false, true},
		{"stars in the middle match leftmost", "a*b*c", "axxbyyc", false, true},
		{"middle segments must appear in order", "a*c*b", "abc", false, false},
		{"the last segment cannot overlap the first", "ab*ba", "aba", false, false},
		{"a lone star matches anything", "*", "", false, true},
		{"case matters unless the identity says otherwise", "ABC-{namespace}", "abc-team-a", false, false},
		{"a case-insensitive identity matches in any case", "ABC-{namespace}", "abc-TEAM-A", true, true},
	} {
		t.Run(c.name, func(t *testing.T) {
			p, err := compilePattern(c.pattern)
			if err != nil {
				t.Fatal(err)
			}
			if got := p.match(c.value, subj, c.fold); got != c.want {
				t.Errorf("%q matching %q = %v, want %v", c.pattern, c.value, got, c.want)
			}
		})
	}
}

func TestBadPatterns(t *testing.T) {
	for _, c := range []struct{ name, pattern, want string }{
		{"an empty pattern", "", "an empty pattern"},
		{"an unknown placeholder", "role/{team}/*", `"{team}" is not a placeholder`},
		{"an unclosed brace", "role/{namespace", `"{" is not a placeholder`},
		{"a lone closing brace", "role/}", `"}" is not a placeholder`},
		{"a pattern over the length limit", strings.Repeat("a", maxPatternLen+1), "the limit is 512"},
	} {
		t.Run(c.name, func(t *testing.T) {
			_, err := compilePattern(c.pattern)
			if err == nil || !strings.Contains(err.Error(), c.want) {
				t.Errorf("error %v, want one containing %q", err, c.want)
			}
		})
	}
}

func roles(ps ...string) *v1alpha1.Patterns {
	out := v1alpha1.Patterns{}
	for _, p := range ps {
		out = append(out, v1alpha1.Pattern(p))
	}
	return &out
}

func awsCheck(sa, role string) Check {
	return Check{Namespace: "team-a", ServiceAccount: sa,
		Providers: []ProviderIdentities{{Provider: "aws", Identities: []providers.Identity{{Field: "roleARNs", Source: "annotation r", Value: role}}}}}
}

func TestMalformedPoliciesRefuseEveryIdentity(t *testing.T) {
	for _, c := range []struct {
		name   string
		spec   v1alpha1.IdentityPolicySpec
		reason string
	}{
		{"a bad pattern", v1alpha1.IdentityPolicySpec{AWS: &v1alpha1.AWSRules{RoleARNs: roles("role/{x}")}}, ReasonInvalidPattern},
		{"too many patterns", v1alpha1.IdentityPolicySpec{AWS: &v1alpha1.AWSRules{RoleARNs: roles(strings.Split(strings.Repeat("p,", maxPatterns+1), ",")...)}}, ReasonInvalidPattern},
		{"a selector with a bad key", v1alpha1.IdentityPolicySpec{NamespaceSelector: &metav1.LabelSelector{MatchLabels: map[string]string{"a b": "c"}}}, ReasonInvalidSelector},
		{"a selector with an unknown operator", v1alpha1.IdentityPolicySpec{NamespaceSelector: &metav1.LabelSelector{MatchExpressions: []metav1.LabelSelectorRequirement{{Key: "a", Operator: "Near", Values: []string{"b"}}}}}, ReasonInvalidSelector},
		{"In without values", v1alpha1.IdentityPolicySpec{NamespaceSelector: &metav1.LabelSelector{MatchExpressions: []metav1.LabelSelectorRequirement{{Key: "a", Operator: "In"}}}}, ReasonInvalidSelector},
		{"Exists with values", v1alpha1.IdentityPolicySpec{NamespaceSelector: &metav1.LabelSelector{MatchExpressions: []metav1.LabelSelectorRequirement{{Key: "a", Operator: "Exists", Values: []string{"b"}}}}}, ReasonInvalidSelector},
		{"an unknown enforcement", v1alpha1.IdentityPolicySpec{Enforcement: "Maybe"}, ReasonInvalidSetting},
		{"an unknown rule setting", v1alpha1.IdentityPolicySpec{DefaultServiceAccount: "Sometimes"}, ReasonInvalidSetting},
		{"a compiled provider under spec.providers", v1alpha1.IdentityPolicySpec{Providers: map[string]v1alpha1.ProviderRules{"aws": {Identities: roles("*")}}}, ReasonInvalidSetting},
	} {
		t.Run(c.name, func(t *testing.T) {
			p := Compile(&v1alpha1.IdentityPolicy{ObjectMeta: metav1.ObjectMeta{Name: "bad"}, Spec: c.spec})
			ready, reason, msg := p.Ready()
			if ready || reason != c.reason || !strings.Contains(msg, "refuses every cloud identity") {
				t.Errorf("Ready() = %v, %q, %q; want false, %q", ready, reason, msg, c.reason)
			}
			// Selected everywhere when the selector is what is wrong, and
			// refusing the identity an empty policy would allow.
			v := NewCompiledSet([]*Policy{p}).Select(map[string]string{"kubernetes.io/metadata.name": "team-a"}).Evaluate(awsCheck("app", "role/anything"))
			if len(v.Denied()) != 1 || !strings.Contains(v.Denied()[0].Error(), `identitypolicy "bad" cannot be applied`) {
				t.Errorf("verdict %+v, want one denial saying the policy cannot be applied", v)
			}
		})
	}
}

// decisions returns what Store.Decisions reports, by "policy/provider=decision".
func decisions(s *Store) map[string]uint64 {
	out := map[string]uint64{}
	s.Decisions(func(pol, provider, decision string, n uint64) { out[pol+"/"+provider+"="+decision] = n })
	return out
}

func TestEveryPolicyMustAllow(t *testing.T) {
	store := NewStore()
	store.SetPolicies(NewSet(
		&v1alpha1.IdentityPolicy{ObjectMeta: metav1.ObjectMeta{Name: "account"}, Spec: v1alpha1.IdentityPolicySpec{AWS: &v1alpha1.AWSRules{RoleARNs: roles("role/*")}}},
		&v1alpha1.IdentityPolicy{ObjectMeta: metav1.ObjectMeta{Name: "tenants"}, Spec: v1alpha1.IdentityPolicySpec{Enforcement: v1alpha1.Warn, AWS: &v1alpha1.AWSRules{RoleARNs: roles("role/{namespace}/*")}}},
		&v1alpha1.IdentityPolicy{ObjectMeta: metav1.ObjectMeta{Name: "elsewhere"}, Spec: v1alpha1.IdentityPolicySpec{
			NamespaceSelector: &metav1.LabelSelector{MatchLabels: map[string]string{"tier": "prod"}}, AWS: &v1alpha1.AWSRules{RoleARNs: roles()}}},
	))
	store.SetNamespace("team-a", map[string]string{"tier": "dev"})
	for _, c := range []struct {
		name, role      string
		denied, warned  int
		decisionsByName string
	}{
		{"allowed by both selecting policies", "role/team-a/app", 0, 0, "account=allow tenants=allow"},
		{"refused by the Warn policy only: admitted with a warning", "role/shared", 0, 1, "account=allow tenants=warn"},
		{"refused by both: denied, and warned", "other/x", 1, 1, "account=deny tenants=warn"},
	} {
		t.Run(c.name, func(t *testing.T) {
			before := decisions(store)
			v := store.Scope("team-a").Evaluate(awsCheck("app", c.role))
			if len(v.Denied()) != c.denied || len(v.Warnings()) != c.warned {
				t.Errorf("denied %v, warnings %v; want %d and %d", v.Denied(), v.Warnings(), c.denied, c.warned)
			}
			var got []string
			for k, n := range decisions(store) {
				if n != before[k] {
					got = append(got, strings.Replace(k, "/aws", "", 1))
				}
			}
			slices.Sort(got)
			if strings.Join(got, " ") != c.decisionsByName {
				t.Errorf("decisions counted: %v, want %s", got, c.decisionsByName)
			}
		})
	}
}

func TestStoreRemembersScopesUntilSomethingChanges(t *testing.T) {
	s := NewStore()
	sel := func(v string) *v1alpha1.IdentityPolicy {
		return &v1alpha1.IdentityPolicy{ObjectMeta: metav1.ObjectMeta{Name: "p-" + v}, Spec: v1alpha1.IdentityPolicySpec{
			NamespaceSelector: &metav1.LabelSelector{MatchLabels: map[string]string{"tier": v}}}}
	}
	s.SetPolicies(NewSet(sel("prod")))
	s.SetNamespace("a", map[string]string{"tier": "dev"})
	if !s.Scope("a").Empty() {
		t.Fatal("a dev namespace is selected by the prod policy")
	}
	s.SetNamespace("a", map[string]string{"tier": "prod"})
	if s.Scope("a").Empty() {
		t.Fatal("relabelling the namespace did not change its scope")
	}
	s.SetPolicies(NewSet(sel("dev")))
	if !s.Scope("a").Empty() {
		t.Fatal("replacing the policies did not change the scope")
	}
	byName := &v1alpha1.IdentityPolicy{ObjectMeta: metav1.ObjectMeta{Name: "by-name"}, Spec: v1alpha1.IdentityPolicySpec{
		NamespaceSelector: &metav1.LabelSelector{MatchLabels: map[string]string{"kubernetes.io/metadata.name": "fresh"}}}}
	s.SetPolicies(NewSet(sel("dev"), byName))
	if s.Scope("fresh").Empty() {
		t.Error("a namespace not seen yet is not selected by its name, the label the API server gives every namespace")
	}
	for i := range 1000 {
		s.Scope(fmt.Sprint("unknown-", i))
	}
	if len(s.scopes) > 1 {
		t.Errorf("the store remembers %d scopes: namespaces it does not know must add nothing", len(s.scopes))
	}
	var nilStore *Store
	if !nilStore.Scope("a").Empty() {
		t.Error("a nil store has policies")
	}
}

func TestDecisionCountsSurviveAPolicyChangeAndGoWithIt(t *testing.T) {
	store := NewStore()
	policy := func(pattern string) *v1alpha1.IdentityPolicy {
		return &v1alpha1.IdentityPolicy{ObjectMeta: metav1.ObjectMeta{Name: "p"}, Spec: v1alpha1.IdentityPolicySpec{AWS: &v1alpha1.AWSRules{RoleARNs: roles(pattern)}}}
	}
	store.SetPolicies(NewSet(policy("role/*")))
	store.Scope("team-a").Evaluate(awsCheck("app", "role/x"))
	store.SetPolicies(NewSet(policy("other/*")))
	store.Scope("team-a").Evaluate(awsCheck("app", "role/x"))
	if got := decisions(store); got["p/aws=allow"] != 1 || got["p/aws=deny"] != 1 {
		t.Errorf("counts after a change %v: want the allow of the first version and the deny of the second", got)
	}
	store.SetPolicies(NewSet())
	if got := decisions(store); len(got) != 0 {
		t.Errorf("counts of a deleted policy remain: %v", got)
	}
}

func TestEvaluateSaysWhichRuleAndOnlyWhenItApplies(t *testing.T) {
	pats := func(n int) *v1alpha1.Patterns {
		out := v1alpha1.Patterns{}
		for i := range n {
			out = append(out, v1alpha1.Pattern(fmt.Sprintf("role/r%d", i)))
		}
		return &out
	}
	check := func(sa string, token *APIToken) Check {
		c := awsCheck(sa, "role/other")
		c.APIToken = token
		return c
	}
	mounted := &APIToken{Mounted: true, Source: TokenFromServiceAccount}
	for _, c := range []struct {
		name  string
		spec  v1alpha1.IdentityPolicySpec
		check Check
		want  []string // one substring per finding, in order; none: allowed
	}{
		{"two patterns are both named", v1alpha1.IdentityPolicySpec{AWS: &v1alpha1.AWSRules{RoleARNs: pats(2)}}, check("app", nil),
			[]string{`allows only "role/r0", "role/r1")`}},
		{"more than three patterns are counted", v1alpha1.IdentityPolicySpec{AWS: &v1alpha1.AWSRules{RoleARNs: pats(5)}}, check("app", nil),
			[]string{`allows only "role/r0", "role/r1", "role/r2" and 2 more)`}},
		{"256 patterns are allowed", v1alpha1.IdentityPolicySpec{AWS: &v1alpha1.AWSRules{RoleARNs: pats(maxPatterns)}}, check("app", nil),
			[]string{"and 253 more"}},
		{"a field of another provider does not apply", v1alpha1.IdentityPolicySpec{Azure: &v1alpha1.AzureRules{ClientIDs: pats(0)}}, check("app", nil), nil},
		{"the default serviceaccount rule spares other serviceaccounts", v1alpha1.IdentityPolicySpec{DefaultServiceAccount: v1alpha1.RuleDeny}, check("app", nil), nil},
		{"the default serviceaccount rule", v1alpha1.IdentityPolicySpec{DefaultServiceAccount: v1alpha1.RuleWarn}, check("default", nil),
			[]string{`serviceaccount "team-a/default": identitypolicy "p" does not allow a cloud identity on a namespace's default serviceaccount (spec.defaultServiceAccount: Warn)`}},
		{"the api token rule spares a pod without the token", v1alpha1.IdentityPolicySpec{APITokenWithIdentity: v1alpha1.RuleDeny}, check("app", &APIToken{}), nil},
		{"the api token rule spares serviceaccount writes", v1alpha1.IdentityPolicySpec{APITokenWithIdentity: v1alpha1.RuleDeny}, check("app", nil), nil},
		{"the api token rule names where the token comes from", v1alpha1.IdentityPolicySpec{APITokenWithIdentity: v1alpha1.RuleDeny}, check("app", mounted),
			[]string{`serviceaccount "team-a/app" sets automountServiceAccountToken: true and the pod does not set it`}},
		{"allowing rules say nothing", v1alpha1.IdentityPolicySpec{DefaultServiceAccount: v1alpha1.Allow, APITokenWithIdentity: v1alpha1.Allow}, check("default", mounted), nil},
	} {
		t.Run(c.name, func(t *testing.T) {
			p := Compile(&v1alpha1.IdentityPolicy{ObjectMeta: metav1.ObjectMeta{Name: "p"}, Spec: c.spec})
			if ready, _, msg := p.Ready(); !ready {
				t.Fatal(msg)
			}
			v := NewCompiledSet([]*Policy{p}).Select(nil).Evaluate(c.check)
			if len(v.Findings) != len(c.want) {
				t.Fatalf("findings %v, want %d", v.Findings, len(c.want))
			}
			for i, w := range c.want {
				if !strings.Contains(v.Findings[i].Message, w) {
					t.Errorf("finding %q does not say %q", v.Findings[i].Message, w)
				}
			}
		})
	}
	for _, name := range []string{"aws", "azure", "gcp"} {
		p := Compile(&v1alpha1.IdentityPolicy{Spec: v1alpha1.IdentityPolicySpec{Providers: map[string]v1alpha1.ProviderRules{name: {}}}})
		if ready, _, _ := p.Ready(); ready {
			t.Errorf("spec.providers.%s was accepted", name)
		}
	}
	for _, op := range []metav1.LabelSelectorOperator{metav1.LabelSelectorOpExists, metav1.LabelSelectorOpDoesNotExist} {
		p := Compile(&v1alpha1.IdentityPolicy{Spec: v1alpha1.IdentityPolicySpec{NamespaceSelector: &metav1.LabelSelector{
			MatchExpressions: []metav1.LabelSelectorRequirement{{Key: "team", Operator: op}}}}})
		if ready, _, msg := p.Ready(); !ready {
			t.Errorf("%s without values: %s", op, msg)
		}
	}
}

func TestDecisionsAreCountedByProvider(t *testing.T) {
	store := NewStore()
	store.SetPolicies(NewSet(&v1alpha1.IdentityPolicy{ObjectMeta: metav1.ObjectMeta{Name: "p"}}))
	c := awsCheck("app", "role/x")
	c.Providers = append(c.Providers, ProviderIdentities{Provider: "azure"})
	for range 3 {
		store.Scope("team-a").Evaluate(c)
	}
	if got := decisions(store); got["p/aws=allow"] != 3 || got["p/azure=allow"] != 3 || len(got) != 2 {
		t.Errorf("counts %v, want 3 allows for each of aws and azure, and nothing else", got)
	}
}
