package server_test

import (
	"context"
	"encoding/json"
	"io"
	"net/http"
	"net/http/httptest"
	"os"
	"strings"
	"testing"

	"github.com/prometheus/client_golang/prometheus"
	"github.com/sirupsen/logrus"
	corev1 "k8s.io/api/core/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"

	"github.com/pod-identity/injector/internal/admission"
	"github.com/pod-identity/injector/internal/server"
	"github.com/pod-identity/injector/internal/staticsa"
	"github.com/pod-identity/injector/internal/testenv"
)

// FuzzAdmissionHandler sends arbitrary bodies to both webhooks: every
// answer is a 4xx with a message or a well-formed AdmissionReview, never a
// panic, and any patch only adds.
func FuzzAdmissionHandler(f *testing.F) {
	review, err := os.ReadFile("testdata/pod-review.json")
	if err != nil {
		f.Fatal(err)
	}
	f.Add(review)
	f.Add([]byte(`{"apiVersion":"admission.k8s.io/v1","kind":"AdmissionReview"}`))
	f.Add([]byte(`{"apiVersion":"admission.k8s.io/v1beta1","kind":"AdmissionReview","request":{"uid":"u","kind":{"kind":"Pod"},"operation":"CREATE","object":{"spec":{"containers":[{"name":"c","env":[{"name":"AWS_ROLE_ARN"}]}],"volumes":[{"name":"aws-iam-token"}]}}}}`))
	f.Add([]byte(`{"apiVersion":"admission.k8s.io/v1","kind":"AdmissionReview","request":{"uid":"u","kind":{"kind":"Pod"},"operation":"CREATE","object":{"spec":"x"}}}`))
	f.Add([]byte(`[]`))
	log := logrus.New()
	log.SetOutput(io.Discard)
	engine, err := testenv.Engine(context.Background(), log)
	if err != nil {
		f.Fatal(err)
	}
	all := testenv.PodServiceAccount()
	all.Annotations["cloud.google.com/workload-identity-provider"] = "projects/1/locations/global/workloadIdentityPools/pool/providers/prov"
	sas := staticsa.Set{}.Add(all).
		Add(&corev1.ServiceAccount{ObjectMeta: metav1.ObjectMeta{Namespace: "", Name: "default", Annotations: map[string]string{"eks.amazonaws.com/role-arn": "arn:aws:iam::111122223333:role/x"}}})
	h, err := server.NewAdmissionHandler(admission.Config{Engine: engine, ServiceAccounts: sas, Log: log},
		prometheus.NewRegistry(), 1<<20)
	if err != nil {
		f.Fatal(err)
	}
	f.Fuzz(func(t *testing.T, body []byte) {
		for _, path := range []string{server.MutatePath, server.ValidatePath} {
			req := httptest.NewRequest(http.MethodPost, path, strings.NewReader(string(body)))
			req.Header.Set("Content-Type", "application/json")
			rec := httptest.NewRecorder()
			h.ServeHTTP(rec, req)
			switch {
			case rec.Code >= 400 && rec.Code < 500:
				if strings.TrimSpace(rec.Body.String()) == "" {
					t.Fatalf("%s: %d without a message", path, rec.Code)
				}
			case rec.Code == http.StatusOK:
				var r struct {
					Response *struct {
						Patch []byte `json:"patch"`
					} `json:"response"`
				}
				if err := json.Unmarshal(rec.Body.Bytes(), &r); err != nil || r.Response == nil {
					t.Fatalf("%s: 200 with a malformed review %q: %v", path, rec.Body, err)
				}
				if len(r.Response.Patch) > 0 {
					var ops []struct{ Op string }
					if err := json.Unmarshal(r.Response.Patch, &ops); err != nil {
						t.Fatalf("patch is not JSON: %v", err)
					}
					for _, op := range ops {
						if op.Op != "add" {
							t.Fatalf("non-additive op %q", op.Op)
						}
					}
				}
			default:
				t.Fatalf("%s: HTTP %d %s", path, rec.Code, rec.Body)
			}
		}
	})
}
