package server_test

// Benchmarks of the admission handler against a floor handler that only
// decodes the review and answers allowed, in process and without TLS:
//
//	go test -run - -bench Handler -benchmem ./internal/server/
//
// hack/loadtest measures the same over TLS with a full ServiceAccount cache.

import (
	"bytes"
	"context"
	"encoding/json"
	"fmt"
	"io"
	"net/http"
	"net/http/httptest"
	"os"
	"testing"

	"github.com/prometheus/client_golang/prometheus"
	"github.com/sirupsen/logrus"
	jsonpatch "gopkg.in/evanphx/json-patch.v4"

	"github.com/pod-identity/injector/internal/admission"
	"github.com/pod-identity/injector/internal/server"
	"github.com/pod-identity/injector/internal/staticsa"
	"github.com/pod-identity/injector/internal/testenv"
)

// BenchmarkInjectorHandler serves the shared review with no identity
// policy, and with 100 loaded (testenv.Policies: 20 select the pod's
// namespace and allow its identities).
func BenchmarkInjectorHandler(b *testing.B) {
	benchBody := readBenchBody(b)
	withPolicies(b, func(b *testing.B, h http.Handler) {
		b.ReportAllocs()
		for b.Loop() {
			w := serveReview(h, benchBody)
			if w.Code != 200 || !bytes.Contains(w.Body.Bytes(), []byte(`"patch"`)) {
				b.Fatal(w.Body.String())
			}
		}
	})
}

// withPolicies runs f on the admission handler with no identity policy,
// and with 100 loaded (testenv.Policies: 20 select the pod's namespace
// and allow its identities).
func withPolicies(b *testing.B, f func(*testing.B, http.Handler)) {
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
			f(b, h)
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
	return serveReviewAt(h, server.MutatePath, body)
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

// BenchmarkEnforceHandler serves the shared pod, as the mutating webhook
// left it, to the enforcement webhook: with no identity policy (the
// namespace is not governed: answered at once) and with 100 loaded (20
// govern the pod's namespace: every check runs).
func BenchmarkEnforceHandler(b *testing.B) {
	benchBody := readBenchBody(b)
	withPolicies(b, func(b *testing.B, h http.Handler) {
		stored := storedReview(b, h, benchBody)
		b.ReportAllocs()
		for b.Loop() {
			w := serveReviewAt(h, server.EnforcePath, stored)
			if w.Code != 200 || !bytes.Contains(w.Body.Bytes(), []byte(`"allowed":true`)) {
				b.Fatal(w.Body.String())
			}
		}
	})
}

// storedReview returns body's review with its pod as the mutating
// webhook's patch leaves it.
func storedReview(b *testing.B, h http.Handler, body []byte) []byte {
	b.Helper()
	var rev map[string]any
	if err := json.Unmarshal(body, &rev); err != nil {
		b.Fatal(err)
	}
	var out struct {
		Response struct {
			Patch []byte `json:"patch"`
		} `json:"response"`
	}
	if err := json.Unmarshal(serveReview(h, body).Body.Bytes(), &out); err != nil {
		b.Fatal(err)
	}
	req := rev["request"].(map[string]any)
	obj, _ := json.Marshal(req["object"])
	p, err := jsonpatch.DecodePatch(out.Response.Patch)
	if err != nil {
		b.Fatal(err)
	}
	patched, err := p.Apply(obj)
	if err != nil {
		b.Fatal(err)
	}
	req["object"] = json.RawMessage(patched)
	stored, _ := json.Marshal(rev)
	return stored
}

// serveReviewAt sends body to h at path.
func serveReviewAt(h http.Handler, path string, body []byte) *httptest.ResponseRecorder {
	req := httptest.NewRequest("POST", path, bytes.NewReader(body))
	req.Header.Set("Content-Type", "application/json")
	w := httptest.NewRecorder()
	h.ServeHTTP(w, req)
	return w
}
