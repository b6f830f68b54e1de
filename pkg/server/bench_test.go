package server_test

// Benchmarks of the admission handler against a floor handler that only
// decodes the review and answers allowed, in process and without TLS:
//
//	go test -run - -bench Handler -benchmem ./pkg/server/
//
// hack/loadtest measures the same over TLS with a full ServiceAccount cache.

import (
	"bytes"
	"context"
	"encoding/json"
	"io"
	"net/http"
	"net/http/httptest"
	"os"
	"testing"

	"github.com/prometheus/client_golang/prometheus"
	"github.com/sirupsen/logrus"
	admissionv1 "k8s.io/api/admission/v1"
	corev1 "k8s.io/api/core/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"

	"github.com/pod-identity/injector/internal/staticsa"
	"github.com/pod-identity/injector/pkg/admission"
	"github.com/pod-identity/injector/pkg/mutate"
	"github.com/pod-identity/injector/pkg/providers"
	"github.com/pod-identity/injector/pkg/providers/aws"
	"github.com/pod-identity/injector/pkg/providers/azure"
	"github.com/pod-identity/injector/pkg/providers/gcp"
	"github.com/pod-identity/injector/pkg/server"
)

func BenchmarkInjectorHandler(b *testing.B) {
	benchBody := readBenchBody(b)
	log := logrus.New()
	log.SetOutput(io.Discard)
	log.SetFormatter(&logrus.JSONFormatter{})
	awsP, _ := aws.New(context.Background(), aws.Config{DefaultRegion: "eu-west-1"}, log)
	azP, _ := azure.New(azure.Config{TenantID: "72f988bf-86f1-41af-91ab-2d7cd011db47"})
	gcpP, _ := gcp.New(gcp.Config{})
	engine := mutate.New([]providers.Provider{awsP, azP, gcpP})
	sas := staticsa.Set{}.Add(&corev1.ServiceAccount{ObjectMeta: metav1.ObjectMeta{Namespace: "ns-7", Name: "sa-7", Annotations: map[string]string{"eks.amazonaws.com/role-arn": "arn:aws:iam::111122223333:role/x", "azure.workload.identity/client-id": "2f9c1a4e-7b3d-4c8e-9a61-0d5e8f7b2c11"}}})
	h, err := server.NewAdmissionHandler(admission.Config{Engine: engine, ServiceAccounts: sas, Log: log}, prometheus.NewRegistry(), 0)
	if err != nil {
		b.Fatal(err)
	}
	body := benchBody
	b.ReportAllocs()
	for b.Loop() {
		req := httptest.NewRequest("POST", "/mutate", bytes.NewReader(body))
		req.Header.Set("Content-Type", "application/json")
		w := httptest.NewRecorder()
		h.ServeHTTP(w, req)
		if w.Code != 200 || !bytes.Contains(w.Body.Bytes(), []byte(`"patch"`)) {
			b.Fatal(w.Body.String())
		}
	}
}

func BenchmarkFloorHandler(b *testing.B) {
	benchBody := readBenchBody(b)
	h := http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		var ar admissionv1.AdmissionReview
		if err := json.NewDecoder(r.Body).Decode(&ar); err != nil || ar.Request == nil {
			http.Error(w, "bad", 400)
			return
		}
		out, _ := json.Marshal(admissionv1.AdmissionReview{TypeMeta: ar.TypeMeta, Response: &admissionv1.AdmissionResponse{UID: ar.Request.UID, Allowed: true}})
		w.Header().Set("Content-Type", "application/json")
		_, _ = w.Write(out)
	})
	b.ReportAllocs()
	for b.Loop() {
		req := httptest.NewRequest("POST", "/mutate", bytes.NewReader(benchBody))
		req.Header.Set("Content-Type", "application/json")
		w := httptest.NewRecorder()
		h.ServeHTTP(w, req)
	}
}

// readBenchBody reads the review of a realistic three-container pod.
func readBenchBody(b *testing.B) []byte {
	b.Helper()
	body, err := os.ReadFile("testdata/pod-review.json")
	if err != nil {
		b.Fatal(err)
	}
	return body
}
