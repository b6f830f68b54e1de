// Package testenv builds the engine and ServiceAccounts that the HTTP
// tests, the benchmarks, the fuzz targets and the load harness share: all
// three providers, and the ServiceAccount of the realistic pod in
// internal/server/testdata/pod-review.json; and the pod and ServiceAccount
// of apibench and celbench (apibench.go).
package testenv

import (
	"context"
	"encoding/json"
	"io"
	"net/http"
	"os"
	"strconv"
	"testing"
	"time"

	"github.com/sirupsen/logrus"
	admissionv1 "k8s.io/api/admission/v1"
	corev1 "k8s.io/api/core/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"

	"github.com/pod-identity/injector/pkg/mutate"
	"github.com/pod-identity/injector/pkg/policy"
	v1alpha1 "github.com/pod-identity/injector/pkg/policy/v1alpha1"
	"github.com/pod-identity/injector/pkg/providers"
	"github.com/pod-identity/injector/pkg/providers/aws"
	"github.com/pod-identity/injector/pkg/providers/azure"
	"github.com/pod-identity/injector/pkg/providers/gcp"
)

// TenantID is the Azure tenant the engine injects by default.
const TenantID = "72f988bf-86f1-41af-91ab-2d7cd011db47"

// Engine returns an engine with AWS (region eu-west-1), Azure (TenantID)
// and Google Cloud, each otherwise at its defaults.
func Engine(ctx context.Context, log logrus.FieldLogger) (*mutate.Engine, error) {
	awsP, err := aws.New(ctx, aws.Config{DefaultRegion: "eu-west-1"}, log)
	if err != nil {
		return nil, err
	}
	azP, err := azure.New(azure.Config{TenantID: TenantID})
	if err != nil {
		return nil, err
	}
	gcpP, err := gcp.New(gcp.Config{})
	if err != nil {
		return nil, err
	}
	return mutate.New([]providers.Provider{awsP, azP, gcpP}), nil
}

// PodServiceAccount is the ServiceAccount of the pod in the shared review:
// ns-7/sa-7, annotated for AWS and Azure.
func PodServiceAccount() *corev1.ServiceAccount {
	return &corev1.ServiceAccount{ObjectMeta: metav1.ObjectMeta{Namespace: "ns-7", Name: "sa-7", Annotations: map[string]string{
		"eks.amazonaws.com/role-arn":        "arn:aws:iam::111122223333:role/ns-7-sa-7",
		"azure.workload.identity/client-id": "2f9c1a4e-7b3d-4c8e-9a61-0d5e8f7b2c11",
	}}}
}

// FloorHandler is the yardstick of the benchmarks and the load harness: it
// only decodes the AdmissionReview and answers allowed, with patch when one
// is given (to price sending a patch apart from working it out).
func FloorHandler(patch []byte) http.Handler {
	var patchType *admissionv1.PatchType
	if len(patch) > 0 {
		pt := admissionv1.PatchTypeJSONPatch
		patchType = &pt
	}
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		var ar admissionv1.AdmissionReview
		if err := json.NewDecoder(r.Body).Decode(&ar); err != nil || ar.Request == nil {
			http.Error(w, "bad review", http.StatusBadRequest)
			return
		}
		out, _ := json.Marshal(admissionv1.AdmissionReview{TypeMeta: ar.TypeMeta,
			Response: &admissionv1.AdmissionResponse{UID: ar.Request.UID, Allowed: true, Patch: patch, PatchType: patchType}})
		w.Header().Set("Content-Type", "application/json")
		_, _ = w.Write(out)
	})
}

// Stderr runs f with os.Stderr sent to a pipe and returns what f wrote to
// it: for checking that something logs nowhere by default.
func Stderr(t testing.TB, f func()) []byte {
	t.Helper()
	r, w, err := os.Pipe()
	if err != nil {
		t.Fatal(err)
	}
	stderr := os.Stderr
	os.Stderr = w
	done := make(chan []byte)
	go func() { b, _ := io.ReadAll(r); done <- b }()
	func() {
		defer func() { os.Stderr = stderr }()
		f()
	}()
	_ = w.Close()
	return <-done
}

// Policies builds a store of n identity policies over the 500 namespaces
// of the load harness (ns-0 to ns-499), as a platform team with many tenants might write
// them: a tenth select every namespace (role and client ID patterns with
// placeholders, no identity on default ServiceAccounts), the others one
// team label each (which one in ten namespaces carries). Every policy that
// selects the pod's namespace allows its identities, so the pod of
// the shared review (in ns-7, as PodServiceAccount) is injected, and 20 of
// the 100 policies are evaluated for it.
func Policies(n int) *policy.Store {
	store := policy.NewStore()
	if n == 0 {
		return store
	}
	for i := range 500 {
		store.SetNamespace("ns-"+strconv.Itoa(i), map[string]string{"kubernetes.io/metadata.name": "ns-" + strconv.Itoa(i), "team": "team-" + strconv.Itoa(i%10)})
	}
	var ps []*v1alpha1.IdentityPolicy
	for i := range n {
		p := &v1alpha1.IdentityPolicy{ObjectMeta: metav1.ObjectMeta{Name: "policy-" + strconv.Itoa(i)}}
		roles := v1alpha1.Patterns{"arn:aws:iam::111122223333:role/{namespace}-{serviceaccount}", "arn:aws:iam::444455556666:role/shared/*"}
		clients := v1alpha1.Patterns{"2F9C1A4E-7B3D-4C8E-9A61-*"}
		p.Spec.AWS = &v1alpha1.AWSRules{RoleARNs: &roles}
		p.Spec.Azure = &v1alpha1.AzureRules{ClientIDs: &clients}
		if i%10 == 0 {
			p.Spec.DefaultServiceAccount = v1alpha1.RuleDeny
		} else {
			p.Spec.NamespaceSelector = &metav1.LabelSelector{MatchLabels: map[string]string{"team": "team-" + strconv.Itoa(i%10)}}
		}
		ps = append(ps, p)
	}
	store.SetPolicies(policy.NewSet(ps...))
	return store
}

// WaitFor polls cond every 10 ms until it holds, failing t after 10 s
// with what it waited for.
func WaitFor(t testing.TB, what string, cond func() bool) {
	t.Helper()
	deadline := time.Now().Add(10 * time.Second)
	for !cond() {
		if time.Now().After(deadline) {
			t.Fatalf("timed out waiting until %s", what)
		}
		time.Sleep(10 * time.Millisecond)
	}
}
