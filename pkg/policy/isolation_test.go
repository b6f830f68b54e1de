package policy

import (
	"errors"
	"strings"
	"testing"

	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"

	v1alpha1 "github.com/pod-identity/injector/pkg/policy/v1alpha1"
	"github.com/pod-identity/injector/pkg/providers"
)

func compiled(name string, spec v1alpha1.IdentityPolicySpec) Scope {
	return NewSet(&v1alpha1.IdentityPolicy{ObjectMeta: metav1.ObjectMeta{Name: name}, Spec: spec}).Select(nil)
}

func messages(fs []*Finding) string {
	var out []string
	for _, f := range fs {
		out = append(out, string(f.Enforcement)+": "+f.Message)
	}
	return strings.Join(out, "\n")
}

func TestTokensThePodHasItself(t *testing.T) {
	pod := Check{Namespace: "acme", ServiceAccount: "app", Pod: "web", PodCheck: true}
	withTokens := func(ts ...Token) Check { c := pod; c.Tokens = ts; return c }
	aws := Token{Volume: "mine", Audience: "sts.amazonaws.com", Provider: "aws"}
	vault := Token{Volume: "vault", Audience: "vault.acme.example.com"}
	api := Token{Volume: "kube", Audience: ""}
	for _, tt := range []struct {
		name  string
		spec  v1alpha1.IdentityPolicySpec
		check Check
		want  []string // parts of the findings, in order; none for no finding
	}{
		{"a cloud token is refused by default, even with no identity from the injector", v1alpha1.IdentityPolicySpec{}, withTokens(aws),
			[]string{`Deny: pod "acme/web" (serviceaccount "acme/app"): volume "mine" has a serviceaccount token for audience "sts.amazonaws.com" that the injector did not give the pod`, "(spec.selfProjectedTokens: Deny)"}},
		{"Warn warns", v1alpha1.IdentityPolicySpec{SelfProjectedTokens: v1alpha1.RuleWarn}, withTokens(aws),
			[]string{"Warn: ", "(spec.selfProjectedTokens: Warn)"}},
		{"Allow lets only the listed audiences through", v1alpha1.IdentityPolicySpec{SelfProjectedTokens: v1alpha1.Allow}, withTokens(aws),
			[]string{`Deny: `, `does not allow that audience (spec.tokenAudiences allows no audience beyond each provider's own`}},
		{"a listed audience passes with Allow", v1alpha1.IdentityPolicySpec{SelfProjectedTokens: v1alpha1.Allow, TokenAudiences: &v1alpha1.Patterns{"sts.amazonaws.com"}},
			withTokens(aws), nil},
		{"an audience no cloud has is not the policy's business", v1alpha1.IdentityPolicySpec{}, withTokens(vault), nil},
		{"unless the policy lists it", v1alpha1.IdentityPolicySpec{TokenAudiences: &v1alpha1.Patterns{"vault.{namespace}.example.com"}}, withTokens(vault),
			[]string{`volume "vault"`, "(spec.selfProjectedTokens: Deny)"}},
		{"a token with the API server's audience is no cloud token", v1alpha1.IdentityPolicySpec{}, withTokens(api), nil},
		{"a policy that cannot be applied refuses every cloud token", v1alpha1.IdentityPolicySpec{Enforcement: "Sometimes"}, withTokens(aws),
			[]string{"cannot be applied", "so it refuses every cloud token"}},
		{"no identity and no token: nothing to say", v1alpha1.IdentityPolicySpec{APITokenWithIdentity: v1alpha1.RuleDeny},
			Check{Namespace: "acme", ServiceAccount: "app", PodCheck: true, APIToken: &APIToken{Mounted: true}}, nil},
		{"an API token with only a token of the pod's own is not an API token with an identity", v1alpha1.IdentityPolicySpec{APITokenWithIdentity: v1alpha1.RuleDeny, SelfProjectedTokens: v1alpha1.Allow, TokenAudiences: &v1alpha1.Patterns{"*"}},
			func() Check {
				c := withTokens(aws)
				c.APIToken = &APIToken{Mounted: true, Source: TokenProjected, Volume: "kube"}
				return c
			}(), nil},
	} {
		t.Run(tt.name, func(t *testing.T) {
			got := messages(compiled("tenants", tt.spec).Evaluate(tt.check).Findings)
			if len(tt.want) == 0 && got != "" {
				t.Fatalf("findings:\n%s", got)
			}
			rest := got
			for _, w := range tt.want {
				i := strings.Index(rest, w)
				if i < 0 {
					t.Fatalf("findings:\n%s\nlack, in order, %q", got, w)
				}
				rest = rest[i+len(w):]
			}
		})
	}
}

func TestAPITokenProjectedByThePodIsNamed(t *testing.T) {
	c := Check{Namespace: "acme", ServiceAccount: "app", Pod: "web", PodCheck: true,
		Providers: []ProviderIdentities{{Provider: "aws", Identities: []providers.Identity{{Field: "roleARNs", Source: "annotation x", Value: "r"}}}},
		APIToken:  &APIToken{Mounted: true, Source: TokenProjected, Volume: "kube"}}
	got := messages(compiled("p", v1alpha1.IdentityPolicySpec{APITokenWithIdentity: v1alpha1.RuleDeny}).Evaluate(c).Findings)
	if !strings.Contains(got, `the pod projects a serviceaccount token the API server accepts (no audience, or one of its own) in volume "kube"`) {
		t.Errorf("findings %q", got)
	}
}

func TestAnIdentityWithNoValueIsNamedBySource(t *testing.T) {
	c := Check{Namespace: "acme", ServiceAccount: "app", Pod: "web", PodCheck: true,
		Providers: []ProviderIdentities{{Provider: "azure", Identities: []providers.Identity{
			{Field: "clientIDs", Source: "no annotation azure.workload.identity/client-id (the workload would choose the client ID)"},
			{Field: "clientIDs", Source: `container "app" env AZURE_CLIENT_ID`, Value: "x"}}}}}
	got := messages(compiled("p", v1alpha1.IdentityPolicySpec{Azure: &v1alpha1.AzureRules{ClientIDs: &v1alpha1.Patterns{}}}).Evaluate(c).Findings)
	for _, want := range []string{
		`pod "acme/web" (serviceaccount "acme/app"): no annotation azure.workload.identity/client-id (the workload would choose the client ID) is not allowed by identitypolicy "p"`,
		`container "app" env AZURE_CLIENT_ID "x" is not allowed`,
	} {
		if !strings.Contains(got, want) {
			t.Errorf("findings %q lack %q", got, want)
		}
	}
	if strings.Contains(got, `ID) ""`) {
		t.Errorf("an empty value is quoted: %q", got)
	}
}

func TestAnnotationChosenAudiences(t *testing.T) {
	c := Check{Namespace: "acme", ServiceAccount: "app",
		Providers: []ProviderIdentities{{Provider: "aws", Identities: []providers.Identity{providers.AudienceIdentity("eks.amazonaws.com/audience", "other")}}}}
	if got := messages(compiled("p", v1alpha1.IdentityPolicySpec{}).Evaluate(c).Findings); !strings.Contains(got,
		`annotation eks.amazonaws.com/audience "other" is not allowed by identitypolicy "p" (spec.tokenAudiences allows no audience beyond each provider's own: add it there if the cloud's trust expects it)`) {
		t.Errorf("findings %q", got)
	}
	if got := messages(compiled("p", v1alpha1.IdentityPolicySpec{TokenAudiences: &v1alpha1.Patterns{"oth*"}}).Evaluate(c).Findings); got != "" {
		t.Errorf("a listed audience: %q", got)
	}
	got := messages(compiled("p", v1alpha1.IdentityPolicySpec{TokenAudiences: &v1alpha1.Patterns{"a", "b", "c", "d"}}).Evaluate(c).Findings)
	if !strings.Contains(got, `spec.tokenAudiences allows only "a", "b", "c" and 1 more`) {
		t.Errorf("findings %q", got)
	}
	got = messages(compiled("p", v1alpha1.IdentityPolicySpec{TokenAudiences: &v1alpha1.Patterns{"a", "b", "c"}}).Evaluate(c).Findings)
	if !strings.Contains(got, `spec.tokenAudiences allows only "a", "b", "c")`) {
		t.Errorf("findings %q", got)
	}
}

func TestReadySaysWhichPlaceholderIsAmbiguous(t *testing.T) {
	amb := Compile(&v1alpha1.IdentityPolicy{ObjectMeta: metav1.ObjectMeta{Name: "flat"}, Spec: v1alpha1.IdentityPolicySpec{
		AWS: &v1alpha1.AWSRules{RoleARNs: &v1alpha1.Patterns{"role/tenants/{namespace}/*", "role/{namespace}-{serviceaccount}"}}}})
	ready, reason, msg := amb.Ready()
	if !ready || reason != ReasonAmbiguousPlaceholder || !strings.Contains(msg, `spec.aws.roleARNs[1] "role/{namespace}-{serviceaccount}": {namespace} and {serviceaccount} are separated by "-"`) ||
		strings.Contains(msg, "roleARNs[0]") {
		t.Errorf("Ready() = %v %q %q", ready, reason, msg)
	}
	if w := amb.Warnings(); len(w) != 1 || !strings.HasPrefix(w[0], `identitypolicy "flat": spec.aws.roleARNs[1]`) {
		t.Errorf("Warnings() = %q", w)
	}
	clean := Compile(&v1alpha1.IdentityPolicy{ObjectMeta: metav1.ObjectMeta{Name: "clean"}, Spec: v1alpha1.IdentityPolicySpec{
		AWS: &v1alpha1.AWSRules{RoleARNs: &v1alpha1.Patterns{"role/tenants/{namespace}/*"}}}})
	if ready, reason, _ := clean.Ready(); !ready || reason != ReasonCompiled || len(clean.Warnings()) != 0 {
		t.Errorf("an unambiguous policy: %v %q %v", ready, reason, clean.Warnings())
	}
	broken := Compile(&v1alpha1.IdentityPolicy{ObjectMeta: metav1.ObjectMeta{Name: "broken"}, Spec: v1alpha1.IdentityPolicySpec{Enforcement: "Maybe",
		AWS: &v1alpha1.AWSRules{RoleARNs: &v1alpha1.Patterns{"role/{namespace}-{serviceaccount}"}}}})
	if ready, reason, _ := broken.Ready(); ready || reason != ReasonInvalidSetting {
		t.Errorf("a broken policy with an ambiguous pattern reports %v %q: the breakage comes first", ready, reason)
	}
	if why := ambiguity("role/{namespace}{serviceaccount}"); !strings.Contains(why, "separated by nothing") {
		t.Errorf("adjacent placeholders: %q", why)
	}
}

func TestAPolicyThatCannotBeReadRefusesEveryCloudTokenWithoutFailing(t *testing.T) {
	sc := Scope{policies: []*Policy{Broken("unreadable", 1, errors.New("the policy cannot be read"))}}
	c := Check{Namespace: "acme", ServiceAccount: "app", Pod: "web", PodCheck: true,
		Tokens: []Token{{Volume: "mesh", Audience: "istio-ca"}, {Volume: "mine", Audience: "sts.amazonaws.com", Provider: "aws"}}}
	got := messages(sc.Evaluate(c).Findings)
	if !strings.Contains(got, `Deny: pod "acme/web" (serviceaccount "acme/app"): volume "mine"`) || !strings.Contains(got, "cannot be applied (the policy cannot be read)") || strings.Contains(got, "istio-ca") {
		t.Errorf("findings:\n%s", got)
	}
	if r := sc.TokenRules("acme"); len(r) != 1 || r[0].Broken == "" || r[0].SelfProjected != "Deny" {
		t.Errorf("token rules %+v", r)
	}
}
