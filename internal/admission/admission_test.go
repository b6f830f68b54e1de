package admission_test

import (
	"context"
	"errors"
	"strings"
	"testing"

	"github.com/slok/kubewebhook/v2/pkg/model"
	corev1 "k8s.io/api/core/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"

	"github.com/pod-identity/injector/internal/admission"
	"github.com/pod-identity/injector/internal/sacache"
	"github.com/pod-identity/injector/internal/staticsa"
	"github.com/pod-identity/injector/internal/testenv"
	"github.com/pod-identity/injector/pkg/mutate"
	"github.com/pod-identity/injector/pkg/providers"
	"github.com/pod-identity/injector/pkg/providers/azure"
)

// brokenLookup fails every lookup, as an unreachable API server would.
type brokenLookup struct{}

func (brokenLookup) Get(context.Context, string, string) (*corev1.ServiceAccount, sacache.Source, error) {
	return nil, sacache.Failed, errors.New("connection refused")
}

func review(op model.AdmissionReviewOp, object string) model.AdmissionReview {
	return model.AdmissionReview{ID: "u", Namespace: "ns", Operation: op, RequestGVK: &metav1.GroupVersionKind{Version: "v1", Kind: "Pod"}, NewObjectRaw: []byte(object)}
}

func TestWebhooks(t *testing.T) {
	az, _ := azure.New(azure.Config{})
	engine := mutate.New([]providers.Provider{az})
	sas := staticsa.Set{}.Add(&corev1.ServiceAccount{ObjectMeta: metav1.ObjectMeta{Namespace: "ns", Name: "app",
		Annotations: map[string]string{"azure.workload.identity/client-id": "not-a-guid"}}})
	labelled := `{"metadata":{"name":"p","labels":{"azure.workload.identity/use":"true"}},"spec":{"serviceAccountName":"app","containers":[{"name":"c"}]}}`
	tests := []struct {
		name        string
		cfg         admission.Config
		validate    bool
		ar          model.AdmissionReview
		allowed     bool
		patched     bool
		warningSays string
		denialSays  string
	}{
		{name: "a config without a logger still logs nowhere safely", cfg: admission.Config{Engine: engine, ServiceAccounts: sas}, validate: true,
			ar: review(model.OperationCreate, labelled), denialSays: `annotation azure.workload.identity/client-id has invalid value "not-a-guid"`},
		{name: "deny mode's mutator denies an invalid pod in the same call", cfg: admission.Config{Engine: engine, ServiceAccounts: sas},
			ar: review(model.OperationCreate, labelled), denialSays: `annotation azure.workload.identity/client-id has invalid value "not-a-guid"`},
		{name: "warn mode admits with the message", cfg: admission.Config{Engine: engine, ServiceAccounts: sas, InvalidIdentity: admission.Warn},
			ar: review(model.OperationCreate, labelled), allowed: true, warningSays: "admitted without the azure identity"},
		{name: "warn mode's validator allows", cfg: admission.Config{Engine: engine, ServiceAccounts: sas, InvalidIdentity: admission.Warn}, validate: true,
			ar: review(model.OperationCreate, labelled), allowed: true},
		{name: "an update is not looked at", cfg: admission.Config{Engine: engine, ServiceAccounts: sas}, validate: true,
			ar: review(model.OperationUpdate, labelled), allowed: true},
		{name: "an unreadable serviceaccount admits the pod with a warning", cfg: admission.Config{Engine: engine, ServiceAccounts: brokenLookup{}},
			ar: review(model.OperationCreate, labelled), allowed: true, warningSays: `serviceaccount "ns/app" could not be read`},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			var resp model.AdmissionResponse
			var err error
			if tt.validate {
				v, verr := admission.NewValidator(tt.cfg)
				if verr != nil {
					t.Fatal(verr)
				}
				resp, err = v.Review(context.Background(), tt.ar)
			} else {
				m, merr := admission.NewMutator(tt.cfg)
				if merr != nil {
					t.Fatal(merr)
				}
				resp, err = m.Review(context.Background(), tt.ar)
			}
			if err != nil {
				t.Fatal(err)
			}
			var allowed bool
			var warnings []string
			var message string
			switch r := resp.(type) {
			case *model.MutatingAdmissionResponse:
				allowed, warnings = true, r.Warnings
				if (len(r.JSONPatchPatch) > 0) != tt.patched {
					t.Errorf("patch = %s", r.JSONPatchPatch)
				}
			case *model.ValidatingAdmissionResponse:
				allowed, warnings, message = r.Allowed, r.Warnings, r.Message
			}
			if allowed != tt.allowed {
				t.Errorf("allowed = %v, want %v (%s)", allowed, tt.allowed, message)
			}
			if tt.denialSays != "" && !strings.Contains(message, tt.denialSays) {
				t.Errorf("message %q does not say %q", message, tt.denialSays)
			}
			if tt.warningSays != "" && !strings.Contains(strings.Join(warnings, "\n"), tt.warningSays) {
				t.Errorf("warnings %q do not say %q", warnings, tt.warningSays)
			}
		})
	}
	if _, err := admission.NewMutator(admission.Config{Engine: engine, ServiceAccounts: sas, InvalidIdentity: "maybe"}); err == nil {
		t.Error("an unknown invalid-identity mode was accepted")
	}
}

// TestWithoutALoggerNothingIsWritten: a Config with no Log logs nowhere,
// not to stderr, however much the webhooks have to say.
func TestWithoutALoggerNothingIsWritten(t *testing.T) {
	out := testenv.Stderr(t, func() { logWithoutALogger(t) })
	if len(out) > 0 {
		t.Errorf("a Config without a logger wrote:\n%s", out)
	}
}

// logWithoutALogger builds the webhooks with no logger and runs reviews
// that log: a mutation, a denial and a failed lookup.
func logWithoutALogger(t *testing.T) {
	az, _ := azure.New(azure.Config{})
	engine := mutate.New([]providers.Provider{az})
	sas := staticsa.Set{}.
		Add(&corev1.ServiceAccount{ObjectMeta: metav1.ObjectMeta{Namespace: "ns", Name: "good", Annotations: map[string]string{"azure.workload.identity/client-id": "11111111-2222-3333-4444-555555555555", "azure.workload.identity/tenant-id": "t"}}}).
		Add(&corev1.ServiceAccount{ObjectMeta: metav1.ObjectMeta{Namespace: "ns", Name: "bad", Annotations: map[string]string{"azure.workload.identity/client-id": "not-a-guid"}}})
	m, err := admission.NewMutator(admission.Config{Engine: engine, ServiceAccounts: sas})
	if err != nil {
		t.Fatal(err)
	}
	v, err := admission.NewValidator(admission.Config{Engine: engine, ServiceAccounts: sas})
	if err != nil {
		t.Fatal(err)
	}
	pod := func(sa string) string {
		return `{"metadata":{"name":"p","labels":{"azure.workload.identity/use":"true"}},"spec":{"serviceAccountName":"` + sa + `","containers":[{"name":"c"}]}}`
	}
	if resp, err := m.Review(context.Background(), review(model.OperationCreate, pod("good"))); err != nil || len(resp.(*model.MutatingAdmissionResponse).JSONPatchPatch) == 0 {
		t.Fatalf("the mutation that should log did not happen: %v", err)
	}
	if resp, _ := v.Review(context.Background(), review(model.OperationCreate, pod("bad"))); resp.(*model.ValidatingAdmissionResponse).Allowed {
		t.Fatal("the denial that should log did not happen")
	}
	_, _ = brokenLookupReview(t)
}

// brokenLookupReview runs a review whose lookup fails, which logs a warning.
func brokenLookupReview(t *testing.T) (model.AdmissionResponse, error) {
	az, _ := azure.New(azure.Config{})
	m, err := admission.NewMutator(admission.Config{Engine: mutate.New([]providers.Provider{az}), ServiceAccounts: brokenLookup{}})
	if err != nil {
		t.Fatal(err)
	}
	return m.Review(context.Background(), review(model.OperationCreate, `{"metadata":{"name":"p"},"spec":{"containers":[{"name":"c"}]}}`))
}
