package admission_test

import (
	"context"
	"strings"
	"testing"

	"github.com/prometheus/client_golang/prometheus"
	"github.com/prometheus/client_golang/prometheus/testutil"
	logtest "github.com/sirupsen/logrus/hooks/test"
	"github.com/slok/kubewebhook/v2/pkg/model"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"

	"github.com/pod-identity/injector/internal/admission"
	"github.com/pod-identity/injector/internal/staticsa"
	"github.com/pod-identity/injector/internal/testenv"
	"github.com/pod-identity/injector/pkg/policy"
	v1alpha1 "github.com/pod-identity/injector/pkg/policy/v1alpha1"
)

func saReview(op model.AdmissionReviewOp, object, old string) model.AdmissionReview {
	ar := model.AdmissionReview{ID: "u", Namespace: "team-a", Operation: op,
		RequestGVK: &metav1.GroupVersionKind{Version: "v1", Kind: "ServiceAccount"}, NewObjectRaw: []byte(object)}
	if old != "" {
		ar.OldObjectRaw = []byte(old)
	}
	return ar
}

func sa(roleARN string, extra string) string {
	return `{"metadata":{"name":"app","namespace":"team-a","annotations":{"eks.amazonaws.com/role-arn":"` + roleARN + `"}}` + extra + `}`
}

func TestServiceAccountWebhook(t *testing.T) {
	roles := v1alpha1.Patterns{"arn:aws:iam::111122223333:role/tenants/{namespace}/*"}
	tenants := &v1alpha1.IdentityPolicy{ObjectMeta: metav1.ObjectMeta{Name: "tenants"},
		Spec: v1alpha1.IdentityPolicySpec{AWS: &v1alpha1.AWSRules{RoleARNs: &roles}}}
	const (
		own     = "arn:aws:iam::111122223333:role/tenants/team-a/app"
		other   = "arn:aws:iam::111122223333:role/admin"
		invalid = "arn:aws:iam::1234:role/app"
	)
	tests := []struct {
		name        string
		mode        string
		ar          model.AdmissionReview
		allowed     bool
		says        string
		decision    string
		warningSays string
	}{
		{name: "an allowed role is admitted", ar: saReview(model.OperationCreate, sa(own, ""), ""), allowed: true, decision: policy.Allow},
		{name: "a role the policy refuses is denied with the rule", ar: saReview(model.OperationCreate, sa(other, ""), ""), decision: policy.Deny,
			says: `serviceaccount "team-a/app": annotation eks.amazonaws.com/role-arn "arn:aws:iam::111122223333:role/admin" is not allowed by identitypolicy "tenants"`},
		{name: "an invalid role is denied in deny mode", ar: saReview(model.OperationCreate, sa(invalid, ""), ""),
			says: `annotation eks.amazonaws.com/role-arn has invalid value "arn:aws:iam::1234:role/app"`},
		{name: "an invalid role is admitted with a warning in warn mode", mode: admission.Warn, ar: saReview(model.OperationCreate, sa(invalid, ""), ""),
			allowed: true, warningSays: "admitted without the aws identity"},
		{name: "an update that changes the role to a refused one is denied", ar: saReview(model.OperationUpdate, sa(other, ""), sa(own, "")), decision: policy.Deny,
			says: `is not allowed by identitypolicy "tenants"`},
		{name: "an update that changes no identity annotation is admitted with a warning", ar: saReview(model.OperationUpdate, sa(other, `,"imagePullSecrets":[{"name":"r"}]`), sa(other, "")),
			allowed: true, decision: policy.Deny, warningSays: "admitted because this update changes no identity annotation"},
		{name: "an update that removes the identity is admitted", ar: saReview(model.OperationUpdate, `{"metadata":{"name":"app"}}`, sa(other, "")), allowed: true},
		{name: "a delete is not looked at", ar: saReview(model.OperationDelete, "", sa(other, "")), allowed: true},
		{name: "another kind is not looked at", ar: model.AdmissionReview{ID: "u", Operation: model.OperationCreate,
			RequestGVK: &metav1.GroupVersionKind{Version: "v1", Kind: "Secret"}, NewObjectRaw: []byte(`{}`)}, allowed: true},
		{name: "a request without an object is denied cleanly", ar: saReview(model.OperationCreate, "", ""), says: "the request has no object"},
		{name: "an object that is not a serviceaccount is denied cleanly", ar: saReview(model.OperationCreate, `[1,2]`, ""), says: "not a serviceaccount the injector can read"},
		{name: "an invalid name is refused before anything uses it", ar: saReview(model.OperationCreate, `{"metadata":{"name":"`+strings.Repeat("x", 300)+`"}}`, ""),
			says: "must be no more than 253 characters"},
		{name: "an update without its old object is denied cleanly", ar: saReview(model.OperationUpdate, sa(own, ""), ""), says: "old object: the request has no object"},
	}
	log, _ := logtest.NewNullLogger()
	engine, err := testenv.Engine(context.Background(), log)
	if err != nil {
		t.Fatal(err)
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			reg := prometheus.NewRegistry()
			metrics, err := admission.NewMetrics(reg)
			if err != nil {
				t.Fatal(err)
			}
			// Counts live in the store: each case starts from a fresh one.
			store := policy.NewStore()
			store.SetPolicies(policy.NewSet(tenants))
			if err := admission.RegisterPolicyMetrics(reg, store); err != nil {
				t.Fatal(err)
			}
			v, err := admission.NewServiceAccountValidator(admission.Config{Engine: engine, ServiceAccounts: staticsa.Set{},
				InvalidIdentity: tt.mode, Policies: store, Metrics: metrics})
			if err != nil {
				t.Fatal(err)
			}
			resp, err := v.Review(context.Background(), tt.ar)
			if err != nil {
				t.Fatal(err)
			}
			r := resp.(*model.ValidatingAdmissionResponse)
			if r.Allowed != tt.allowed || !strings.Contains(r.Message, tt.says) {
				t.Errorf("allowed %v with %q; want %v saying %q", r.Allowed, r.Message, tt.allowed, tt.says)
			}
			if !strings.Contains(strings.Join(r.Warnings, "\n"), tt.warningSays) {
				t.Errorf("warnings %q do not say %q", r.Warnings, tt.warningSays)
			}
			want := 0.0
			if tt.decision != "" {
				want = 1
			}
			if got := testutil.ToFloat64(metricsDecision(t, reg, tt.decision)); got != want {
				t.Errorf("pod_identity_policy_decisions_total{policy=tenants,provider=aws,decision=%q} = %v, want %v", tt.decision, got, want)
			}
		})
	}
}

// metricsDecision returns the decisions counter of tenants/aws/decision,
// or a zero counter when decision is empty or it was never counted.
func metricsDecision(t *testing.T, reg *prometheus.Registry, decision string) prometheus.Collector {
	t.Helper()
	families, err := reg.Gather()
	if err != nil {
		t.Fatal(err)
	}
	c := prometheus.NewCounter(prometheus.CounterOpts{Name: "zero"})
	total := 0.0
	for _, f := range families {
		if f.GetName() != "pod_identity_policy_decisions_total" {
			continue
		}
		for _, m := range f.GetMetric() {
			labels := map[string]string{}
			for _, l := range m.GetLabel() {
				labels[l.GetName()] = l.GetValue()
			}
			if decision == "" || (labels["policy"] == "tenants" && labels["provider"] == "aws" && labels["decision"] == decision) {
				total += m.GetCounter().GetValue()
			}
		}
	}
	c.Add(total)
	return c
}
