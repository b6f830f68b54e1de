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
	"fmt"
	"io"
	"net/http"
	"net/http/httptest"
	"os"
	"testing"

	"github.com/prometheus/client_golang/prometheus"
	"github.com/sirupsen/logrus"

	"github.com/pod-identity/injector/internal/staticsa"
	"github.com/pod-identity/injector/internal/testenv"
	"github.com/pod-identity/injector/pkg/admission"
	"github.com/pod-identity/injector/pkg/server"
)

// BenchmarkInjectorHandler serves the shared review with no identity
// policy, and with 100 loaded (testenv.Policies: 20 select the pod's
// namespace and allow its identities).
func BenchmarkInjectorHandler(b *testing.B) {
	benchBody := readBenchBody(b)
	log := logrus.New()
	log.SetOutput(io.Discard)
	log.SetFormatter(&logrus.JSONFormatter{})
	engine, err := testenv.Engine(context.Background(), log)
	if err != nil {
		b.Fatal(err)
	}
	sas := staticsa.Set{}.Add(testenv.PodServiceAccount())
	for _, n := range []int{0, 100} {
		b.Run(fmt.Sprintf("%d policies", n), func(b *testing.B) {
			h, err := server.NewAdmissionHandler(admission.Config{Engine: engine, ServiceAccounts: sas, Log: log, Policies: testenv.Policies(n)}, prometheus.NewRegistry(), 0)
			if err != nil {
				b.Fatal(err)
			}
			b.ReportAllocs()
			for b.Loop() {
				w := serveReview(h, benchBody)
				if w.Code != 200 || !bytes.Contains(w.Body.Bytes(), []byte(`"patch"`)) {
					b.Fatal(w.Body.String())
				}
			}
		})
	}
}

func BenchmarkFloorHandler(b *testing.B) {
	benchBody := readBenchBody(b)
	h := testenv.FloorHandler(nil)
	b.ReportAllocs()
	for b.Loop() {
		serveReview(h, benchBody)
	}
}

// serveReview sends body to h's /mutate as the API server would.
func serveReview(h http.Handler, body []byte) *httptest.ResponseRecorder {
	req := httptest.NewRequest("POST", "/mutate", bytes.NewReader(body))
	req.Header.Set("Content-Type", "application/json")
	w := httptest.NewRecorder()
	h.ServeHTTP(w, req)
	return w
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
