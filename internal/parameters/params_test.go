package parameters

import (
	"context"
	"encoding/json"
	"fmt"
	"slices"
	"strings"
	"testing"

	"github.com/sirupsen/logrus"
	"github.com/spf13/pflag"
	corev1 "k8s.io/api/core/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"

	"github.com/pod-identity/injector/pkg/mutate"
	"github.com/pod-identity/injector/pkg/parameters/v1alpha1"
	"github.com/pod-identity/injector/pkg/policy"
	policyv1 "github.com/pod-identity/injector/pkg/policy/v1alpha1"
	"github.com/pod-identity/injector/pkg/providers"
	"github.com/pod-identity/injector/pkg/providers/builtin"
)

const (
	role     = "arn:aws:iam::111122223333:role/app"
	clientID = "11111111-2222-3333-4444-555555555555"
)

func engine(t *testing.T, args ...string) *mutate.Engine {
	t.Helper()
	set := builtin.New()
	fs := pflag.NewFlagSet("sync", pflag.ContinueOnError)
	set.AddFlags(fs)
	if err := fs.Parse(args); err != nil {
		t.Fatal(err)
	}
	provs, err := set.Build(context.Background(), logrus.New())
	if err != nil {
		t.Fatal(err)
	}
	return mutate.New(provs)
}

func sa(ann map[string]string) *corev1.ServiceAccount {
	return &corev1.ServiceAccount{ObjectMeta: metav1.ObjectMeta{Name: "app", Namespace: "team", Annotations: ann}}
}

// entry finds the entry of provider for the pods with the given OS and
// label requirement ("" for none), or fails.
func entry(t *testing.T, p v1alpha1.ServiceAccountParameters, provider, os, requirement string) v1alpha1.Injection {
	t.Helper()
	for _, e := range p.Injections {
		var reqs []string
		for _, r := range e.PodLabels {
			reqs = append(reqs, r.Key+" "+string(r.Operator)+" "+strings.Join(r.Values, ","))
		}
		if e.Provider == provider && e.OS == os && (requirement == "" || strings.Contains(strings.Join(reqs, "; "), requirement)) {
			return e
		}
	}
	b, _ := json.MarshalIndent(p.Injections, "", "  ")
	t.Fatalf("no %s entry for os %q and %q in\n%s", provider, os, requirement, b)
	return v1alpha1.Injection{}
}

func envValue(e v1alpha1.Injection, name string) string {
	for _, g := range e.Env {
		for _, v := range g.Vars {
			if v.Name == name {
				return v.Value
			}
		}
	}
	return ""
}

func TestParameters(t *testing.T) {
	t.Run("a serviceaccount with no identity gets nothing from aws and google", func(t *testing.T) {
		p, any, err := Parameters(engine(t, "--enable-azure=false"), sa(nil), policy.Scope{}, Options{})
		if err != nil || any || len(p.Injections) != 0 {
			t.Fatalf("got %+v, %t, %v", p, any, err)
		}
	})
	t.Run("but azure injects a pod labelled for it whatever its serviceaccount", func(t *testing.T) {
		p, any, err := Parameters(engine(t), sa(nil), policy.Scope{}, Options{})
		if err != nil || !any {
			t.Fatal(any, err)
		}
		if e := entry(t, p, "azure", "", "azure.workload.identity/use In true"); len(e.Volumes) != 1 || envValue(e, "AZURE_CLIENT_ID") != "" {
			t.Errorf("entry %+v", e)
		}
	})
	t.Run("aws has an entry per OS, for pods without the opt-out and Pod Identity labels", func(t *testing.T) {
		p, any, err := Parameters(engine(t), sa(map[string]string{"eks.amazonaws.com/role-arn": role}), policy.Scope{}, Options{})
		if err != nil || !any {
			t.Fatal(any, err)
		}
		linux := entry(t, p, "aws", "linux", "eks.amazonaws.com/skip-pod-identity-webhook DoesNotExist")
		windows := entry(t, p, "aws", "windows", "eks.amazonaws.com/skip-pod-identity-webhook DoesNotExist")
		if got := envValue(linux, "AWS_WEB_IDENTITY_TOKEN_FILE"); got != "/var/run/secrets/eks.amazonaws.com/serviceaccount/token" {
			t.Errorf("linux token file %q", got)
		}
		if got := envValue(windows, "AWS_WEB_IDENTITY_TOKEN_FILE"); !strings.HasPrefix(got, `C:\`) {
			t.Errorf("windows token file %q", got)
		}
		if envValue(linux, "AWS_ROLE_ARN") != role || len(linux.Volumes) != 1 || linux.Volumes[0].Projected == nil {
			t.Errorf("linux entry %+v", linux)
		}
		if linux.SkipContainersAnnotation != "eks.amazonaws.com/skip-containers" || linux.ContainersSeparator != "," {
			t.Errorf("containers annotations %q %q", linux.SkipContainersAnnotation, linux.ContainersSeparator)
		}
		if !strings.Contains(linux.Source, `serviceaccount "team/app"`) {
			t.Errorf("source %q", linux.Source)
		}
		// A pod the EKS webhook gave Pod Identity gets no role, and a warning.
		pi := entry(t, p, "aws", "linux", "eks.amazonaws.com/pod-identity In enabled")
		if len(pi.Volumes) != 0 || len(pi.Warnings) != 1 || !strings.Contains(pi.Warnings[0], `pod "team/{pod}"`) {
			t.Errorf("pod identity entry %+v: want a warning naming the pod by the placeholder", pi)
		}
		for _, e := range p.Injections {
			for _, r := range e.PodLabels {
				if r.Key == "eks.amazonaws.com/skip-pod-identity-webhook" && r.Operator != metav1.LabelSelectorOpDoesNotExist {
					t.Errorf("an entry for opted-out pods: %+v", e)
				}
			}
		}
	})
	t.Run("azure injects only for pods labelled use=true, and warns the others", func(t *testing.T) {
		p, _, err := Parameters(engine(t), sa(map[string]string{"azure.workload.identity/client-id": clientID}), policy.Scope{}, Options{})
		if err != nil {
			t.Fatal(err)
		}
		on := entry(t, p, "azure", "", "azure.workload.identity/use In true")
		off := entry(t, p, "azure", "", "azure.workload.identity/use NotIn true")
		if envValue(on, "AZURE_CLIENT_ID") != clientID || len(off.Volumes) != 0 || len(off.Warnings) != 1 {
			t.Errorf("labelled %+v\nunlabelled %+v", on, off)
		}
	})
	t.Run("an invalid identity is a denial of the pods it applies to", func(t *testing.T) {
		p, any, err := Parameters(engine(t), sa(map[string]string{"eks.amazonaws.com/role-arn": "arn:aws:iam::12345:role/app"}), policy.Scope{}, Options{})
		if err != nil || !any {
			t.Fatal(any, err)
		}
		e := entry(t, p, "aws", "", "")
		if len(e.Denied) != 1 || !strings.Contains(e.Denied[0], `annotation eks.amazonaws.com/role-arn has invalid value "arn:aws:iam::12345:role/app"`) || len(e.Volumes) != 0 {
			t.Errorf("entry %+v", e)
		}
	})
	t.Run("with --invalid-identity=warn it is a warning that says the pod is admitted without it", func(t *testing.T) {
		p, _, err := Parameters(engine(t), sa(map[string]string{"eks.amazonaws.com/role-arn": "nope"}), policy.Scope{}, Options{WarnInvalid: true})
		if err != nil {
			t.Fatal(err)
		}
		e := entry(t, p, "aws", "", "")
		if len(e.Denied) != 0 || len(e.Warnings) != 1 || !strings.HasSuffix(e.Warnings[0], "; admitted without the aws identity") {
			t.Errorf("entry %+v", e)
		}
	})
	t.Run("an identity policy's refusal refuses every pod of the serviceaccount", func(t *testing.T) {
		store := policy.NewStore()
		store.SetNamespace("team", nil)
		store.SetPolicies(policy.NewCompiledSet([]*policy.Policy{policy.Compile(&policyv1.IdentityPolicy{
			ObjectMeta: metav1.ObjectMeta{Name: "tenants", Generation: 1},
			Spec:       policyv1.IdentityPolicySpec{AWS: &policyv1.AWSRules{RoleARNs: &policyv1.Patterns{"arn:aws:iam::*:role/tenants/*"}}},
		})}))
		p, any, err := Parameters(engine(t), sa(map[string]string{"eks.amazonaws.com/role-arn": role}), store.Scope("team"), Options{})
		if err != nil || !any {
			t.Fatal(any, err)
		}
		if len(p.Denied) != 1 || !strings.Contains(p.Denied[0], `is not allowed by identitypolicy "tenants"`) {
			t.Errorf("denied %q", p.Denied)
		}
	})
	t.Run("a provider that reads neither the OS nor labels has one entry with no conditions", func(t *testing.T) {
		e := mutate.New([]providers.Provider{fixed{volume: providers.TokenVolume("tok", "aud", 3600, "token")}})
		p, _, err := Parameters(e, sa(nil), policy.Scope{}, Options{})
		if err != nil || len(p.Injections) != 1 || p.Injections[0].OS != "" || len(p.Injections[0].PodLabels) != 0 {
			t.Fatalf("%+v %v", p.Injections, err)
		}
	})
	t.Run("a volume policy mode cannot carry is an error naming the serviceaccount and the volume", func(t *testing.T) {
		e := mutate.New([]providers.Provider{fixed{volume: corev1.Volume{Name: "scratch", VolumeSource: corev1.VolumeSource{HostPath: &corev1.HostPathVolumeSource{Path: "/tmp"}}}}})
		_, _, err := Parameters(e, sa(nil), policy.Scope{}, Options{})
		if err == nil || !strings.Contains(err.Error(), `serviceaccount "team/app"`) || !strings.Contains(err.Error(), `volume "scratch"`) {
			t.Fatalf("err %v", err)
		}
	})
}

// fixed is a provider that always injects one volume and one variable.
type fixed struct{ volume corev1.Volume }

func (fixed) Name() string                 { return "fixed" }
func (fixed) AnnotationPrefixes() []string { return []string{"fixed.example.com/"} }
func (f fixed) Inject(req providers.Request) (*providers.Injection, error) {
	return &providers.Injection{Provider: "fixed", Source: "always", Volumes: []corev1.Volume{f.volume},
		Mounts: []providers.Mount{{VolumeName: f.volume.Name, MountPath: "/var/run/fixed"}},
		Env:    []providers.EnvGroup{{Name: providers.CredentialGroup, Vars: []corev1.EnvVar{{Name: "FIXED", Value: "1"}}}}}, nil
}

func TestEnforcement(t *testing.T) {
	e := engine(t)
	pol := &policyv1.IdentityPolicy{ObjectMeta: metav1.ObjectMeta{Name: "tenants"}, Spec: policyv1.IdentityPolicySpec{
		AWS:            &policyv1.AWSRules{RoleARNs: &policyv1.Patterns{"arn:aws:iam::111122223333:role/tenants/{namespace}/{serviceaccount}.*"}},
		Azure:          &policyv1.AzureRules{ClientIDs: &policyv1.Patterns{}},
		TokenAudiences: &policyv1.Patterns{"vault.{namespace}.example.com"},
	}}
	scope := policy.NewSet(pol).Select(nil)
	en := Enforcement(e, scope, "team.a")
	t.Run("every provider's cloud audiences, compared loosely", func(t *testing.T) {
		got := map[string]string{}
		for _, a := range en.CloudAudiences {
			got[a.Audience] = a.Provider
		}
		for aud, provider := range map[string]string{"sts.amazonaws.com": "aws", "pods.eks.amazonaws.com": "aws",
			"api://azureadtokenexchange": "azure", "iam.googleapis.com/*": "gcp"} {
			if got[aud] != provider {
				t.Errorf("audience %s: provider %q, want %q (all: %v)", aud, got[aud], provider, got)
			}
		}
	})
	t.Run("only the governed fields' variables, with regular expressions for the namespace", func(t *testing.T) {
		byName := map[string]v1alpha1.VariableRule{}
		for _, v := range en.Variables {
			byName[v.Name] = v
		}
		if _, ok := byName["GOOGLE_APPLICATION_CREDENTIALS"]; ok {
			t.Error("a variable of a field no policy governs has rules")
		}
		aws := byName["AWS_ROLE_ARN"]
		if len(aws.Rules) != 1 || len(aws.Rules[0].Patterns) != 1 {
			t.Fatalf("AWS_ROLE_ARN rules %+v", aws.Rules)
		}
		re := aws.Rules[0].Patterns[0]
		if want := `^(?s)arn:aws:iam::111122223333:role/tenants/team\.a/{serviceaccount}\..*$`; re != want {
			t.Errorf("pattern %s, want %s", re, want)
		}
		az := byName["AZURE_CLIENT_ID"]
		if len(az.Rules) != 1 || len(az.Rules[0].Patterns) != 0 || !strings.Contains(az.Rules[0].Describe, "allows no identity") {
			t.Errorf("AZURE_CLIENT_ID rules %+v: an empty list allows nothing", az.Rules)
		}
	})
	t.Run("each policy's token rule", func(t *testing.T) {
		if len(en.Tokens) != 1 {
			t.Fatalf("tokens %+v", en.Tokens)
		}
		r := en.Tokens[0]
		if r.Policy != "tenants" || r.SelfProjected != "Deny" || r.Enforcement != "Deny" ||
			len(r.Audiences) != 1 || r.Audiences[0] != `^(?s)vault\.team\.a\.example\.com$` {
			t.Errorf("token rule %+v", r)
		}
	})
}

func TestCapMessages(t *testing.T) {
	t.Run("sixteen messages are kept as they are", func(t *testing.T) {
		m := make([]string, 16)
		if got := capMessages(m); len(got) != 16 {
			t.Errorf("%d kept", len(got))
		}
	})
	t.Run("past sixteen, the sixteenth says how many more there are", func(t *testing.T) {
		m := []string{}
		for i := range 20 {
			m = append(m, fmt.Sprint("finding ", i))
		}
		got := capMessages(m)
		if len(got) != 16 || got[14] != "finding 14" || got[15] != "and 5 more (see `injector check` on the serviceaccount)" {
			t.Errorf("got %q", got)
		}
		if m[15] != "finding 15" {
			t.Error("the caller's messages were changed")
		}
	})
}

// manyCases is a provider that injects a different variable for each of 40
// values of one pod label: more cases than policy mode holds.
type manyCases struct{}

func (manyCases) Name() string                 { return "many" }
func (manyCases) AnnotationPrefixes() []string { return []string{"many.example.com/"} }
func (manyCases) PodLabels() map[string][]string {
	var v []string
	for i := range 40 {
		v = append(v, fmt.Sprint("v", i))
	}
	return map[string][]string{"many.example.com/case": v}
}
func (manyCases) Inject(req providers.Request) (*providers.Injection, error) {
	return &providers.Injection{Env: []providers.EnvGroup{{Name: "g", Vars: []corev1.EnvVar{{Name: "CASE", Value: req.PodMeta.Labels["many.example.com/case"]}}}}}, nil
}

func TestAServiceAccountWithMoreCasesThanPolicyModeHoldsIsRefused(t *testing.T) {
	p, refusals, _, err := parameters(mutate.New([]providers.Provider{manyCases{}}), sa(nil), policy.Scope{}, Options{})
	if err != nil {
		t.Fatal(err)
	}
	if len(p.Injections) != 0 || len(p.Denied) != 1 || !strings.Contains(p.Denied[0], `serviceaccount "team/app": its providers tell apart 41 cases of pod, more than the 32`) {
		t.Errorf("injections %d, denied %q", len(p.Injections), p.Denied)
	}
	// Policy mode's limit, not a refusal of the identity: enforcement
	// does not repeat it for a pod that opts out.
	if len(refusals) != 0 {
		t.Errorf("enforcement would repeat the capacity refusal: %q", refusals)
	}
}

func TestTheIdentitysRefusalsAreWhatEnforcementRepeats(t *testing.T) {
	store := policy.NewStore()
	store.SetNamespace("team", nil)
	store.SetPolicies(policy.NewCompiledSet([]*policy.Policy{policy.Compile(&policyv1.IdentityPolicy{
		ObjectMeta: metav1.ObjectMeta{Name: "tenants", Generation: 1},
		Spec:       policyv1.IdentityPolicySpec{AWS: &policyv1.AWSRules{RoleARNs: &policyv1.Patterns{"arn:aws:iam::*:role/tenants/*"}}},
	})}))
	for _, tc := range []struct {
		name, role string
		refused    bool
	}{
		{"a role the policy refuses is a refusal of the identity", "arn:aws:iam::111122223333:role/app", true},
		{"a role it allows is none", "arn:aws:iam::111122223333:role/tenants/app", false},
	} {
		t.Run(tc.name, func(t *testing.T) {
			p, refusals, _, err := parameters(engine(t), sa(map[string]string{"eks.amazonaws.com/role-arn": tc.role}), store.Scope("team"), Options{})
			if err != nil {
				t.Fatal(err)
			}
			if tc.refused != (len(refusals) > 0) || !slices.Equal(refusals, p.Denied) {
				t.Errorf("refusals %q, the parameters' %q", refusals, p.Denied)
			}
		})
	}
}

func TestTheAPITokenRuleIsWrittenForEveryWayAPodMountsAToken(t *testing.T) {
	store := policy.NewStore()
	store.SetNamespace("team", nil)
	store.SetPolicies(policy.NewCompiledSet([]*policy.Policy{policy.Compile(&policyv1.IdentityPolicy{
		ObjectMeta: metav1.ObjectMeta{Name: "no-api-token", Generation: 1},
		Spec: policyv1.IdentityPolicySpec{AWS: &policyv1.AWSRules{RoleARNs: &policyv1.Patterns{"arn:aws:iam::*:role/*"}},
			APITokenWithIdentity: policyv1.RuleDeny},
	})}))
	p, _, err := Parameters(engine(t), sa(map[string]string{"eks.amazonaws.com/role-arn": "arn:aws:iam::111122223333:role/app"}), store.Scope("team"), Options{})
	if err != nil {
		t.Fatal(err)
	}
	ns := Enforcement(engine(t), store.Scope("team"), "team")
	for _, tc := range []struct {
		name     string
		findings *v1alpha1.APITokenFindings
		subject  string
	}{
		{"the serviceaccount's own", p.APIToken, `serviceaccount "team/app"`},
		{"the namespace's, for identities containers set themselves", ns.APIToken, `serviceaccount "team/{serviceaccount}"`},
	} {
		t.Run(tc.name, func(t *testing.T) {
			if tc.findings == nil {
				t.Fatal("no findings")
			}
			for source, f := range map[string]*v1alpha1.Findings{"pod": tc.findings.Pod, "otherwise": tc.findings.Otherwise, "projected": tc.findings.Projected} {
				if f == nil || len(f.Denied) != 1 || !strings.Contains(f.Denied[0], `identitypolicy "no-api-token" does not allow a Kubernetes API token`) ||
					!strings.Contains(f.Denied[0], tc.subject) {
					t.Errorf("%s: %+v", source, f)
				}
			}
			if f := tc.findings.Projected; f != nil && len(f.Denied) == 1 && !strings.Contains(f.Denied[0], `in volume "{volume}"`) {
				t.Errorf("projected: %q names no volume placeholder", f.Denied[0])
			}
		})
	}
}
