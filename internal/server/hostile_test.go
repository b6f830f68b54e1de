//go:build !race && !mutation

// The race detector's shadow memory makes heap figures meaningless, so
// this file is left out of the -race run; hack/test.sh runs it on its own.

package server_test

import (
	"context"
	"encoding/json"
	"fmt"
	"io"
	"net/http"
	"net/http/httptest"
	"runtime"
	"strings"
	"sync"
	"testing"

	"github.com/prometheus/client_golang/prometheus"
	"github.com/sirupsen/logrus"
	corev1 "k8s.io/api/core/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/client-go/kubernetes/fake"

	"github.com/pod-identity/injector/internal/admission"
	"github.com/pod-identity/injector/internal/sacache"
	"github.com/pod-identity/injector/internal/server"
	"github.com/pod-identity/injector/internal/testenv"
)

// logMeter records how much each request made the server log.
type logMeter struct {
	mu      sync.Mutex
	written int
}

func (l *logMeter) Write(p []byte) (int, error) {
	l.mu.Lock()
	l.written += len(p)
	l.mu.Unlock()
	return len(p), nil
}

func (l *logMeter) take() int {
	l.mu.Lock()
	defer l.mu.Unlock()
	n := l.written
	l.written = 0
	return n
}

type hostile struct {
	name        string
	contentType string
	body        func(i int) string
}

func hostileRequests() []hostile {
	big := func(n int) string { return strings.Repeat("x", n) }
	const mib = 1 << 20
	deepArrays := `{"apiVersion":"admission.k8s.io/v1","kind":"AdmissionReview","x":` + strings.Repeat("[", 4*mib-100)
	deepObjects := review("v1", "CREATE", "Pod", `{"spec":{"affinity":`+strings.Repeat(`{"a":`, mib/5)+`}}`, false)
	manyContainers := review("v1", "CREATE", "Pod", `{"spec":{"serviceAccountName":"app","containers":[`+strings.TrimSuffix(strings.Repeat(`{"name":"c"},`, admission.MaxContainers+1), ",")+`]}}`, false)
	emptyVolumes := review("v1", "CREATE", "Pod", `{"spec":{"serviceAccountName":"app","volumes":[`+strings.TrimSuffix(strings.Repeat(`{},`, mib/3), ",")+`]}}`, false)
	var ann strings.Builder
	for i := range 20000 {
		fmt.Fprintf(&ann, `"a%d":"",`, i)
	}
	duplicates := review("v1", "CREATE", "Pod", podJSON("app", `,"annotations":{`+ann.String()+`"a7":""}`), false)
	hugeSA := review("v1", "CREATE", "Pod", podJSON(big(mib), ""), false)
	hugeExpiration := review("v1", "CREATE", "Pod", podJSON("app", `,"annotations":{"eks.amazonaws.com/token-expiration":"`+big(mib)+`"}`), false)
	hugeContainer := review("v1", "CREATE", "Pod", `{"metadata":{"name":"p"},"spec":{"serviceAccountName":"app","containers":[{"name":"`+big(mib)+`","env":[{"name":"AWS_ROLE_ARN","value":"mine"}]}]}}`, false)
	notJSON := big(mib)
	same := func(s string) func(int) string { return func(int) string { return s } }
	return []hostile{
		{name: "four million open arrays", body: same(deepArrays)},
		{name: "objects nested 200,000 deep in the pod's affinity", body: same(deepObjects)},
		{name: "a distinct 64 KiB namespace each time", body: func(i int) string {
			return strings.Replace(review("v1", "CREATE", "Pod", podJSON("app", ""), false), `"namespace":"ns"`, fmt.Sprintf(`"namespace":"%d%s"`, i, big(64<<10)), 1)
		}},
		{name: "a 1 MiB serviceAccountName", body: same(hugeSA)},
		{name: "a distinct 64 KiB kind each time", body: func(i int) string {
			return review("v1", "CREATE", fmt.Sprintf("%d%s", i, big(64<<10)), podJSON("app", ""), false)
		}},
		{name: "a distinct operation each time", body: func(i int) string {
			return review("v1", fmt.Sprintf("OP%d%s", i, big(1<<10)), "Pod", podJSON("app", ""), false)
		}},
		{name: "a distinct missing serviceaccount each time", body: func(i int) string {
			return review("v1", "CREATE", "Pod", podJSON(fmt.Sprintf("ghost-%d", i), ""), false)
		}},
		{name: "more containers than the injector reads", body: same(manyContainers)},
		{name: "a third of a million empty volumes", body: same(emptyVolumes)},
		{name: "a duplicate annotation after 20,000 others", body: same(duplicates)},
		{name: "a 1 MiB token-expiration annotation", body: same(hugeExpiration)},
		{name: "a 1 MiB container name in a warning", body: same(hugeContainer)},
		{name: "a distinct 64 KiB uid each time", body: func(i int) string {
			return strings.Replace(review("v1", "CREATE", "Pod", podJSON("ghost", ""), false), `"uid":"uid-1"`, fmt.Sprintf(`"uid":"%d%s"`, i, big(64<<10)), 1)
		}},
		{name: "a 64 KiB content type", contentType: "application/" + big(64<<10), body: same("{}")},
		{name: "a megabyte that is not JSON", body: same(notJSON)},
		{name: "a serviceaccount with a 1 MiB role annotation", body: same(review("v1", "CREATE", "ServiceAccount",
			`{"metadata":{"name":"app","namespace":"ns","annotations":{"eks.amazonaws.com/role-arn":"`+big(mib)+`"}}}`, false))},
		{name: "a distinct serviceaccount update with 20,000 annotations each time", body: func(i int) string {
			sa := fmt.Sprintf(`{"metadata":{"name":"sa-%d","namespace":"ns","annotations":{%s"eks.amazonaws.com/role-arn":"arn:aws:iam::111122223333:role/r%d"}}}`, i, ann.String(), i)
			return strings.Replace(review("v1", "UPDATE", "ServiceAccount", sa, false), `"object":`, `"oldObject":`+sa+`,"object":`, 1)
		}},
		{name: "a distinct made-up apiVersion each time", body: func(i int) string {
			return strings.Replace(review("v1", "CREATE", "Pod", podJSON("app", ""), false), "admission.k8s.io/v1", fmt.Sprintf("x%d%s", i, big(4<<10)), 1)
		}},
	}
}

// TestHostileRequestsGrowNothing sends 1,000 requests of every hostile
// kind found so far to the three webhooks (with identity policies in force). Each gets a clear answer (a 4xx
// with a message, or a well-formed review) whose size and log lines do not
// grow with what it sent; afterwards the heap is back within 20 MiB of
// where it started and /metrics is under 100 KiB.
func TestHostileRequestsGrowNothing(t *testing.T) {
	log := logrus.New()
	meter := &logMeter{}
	log.SetOutput(meter)
	log.SetFormatter(&logrus.JSONFormatter{})
	engine, err := testenv.Engine(context.Background(), log)
	if err != nil {
		t.Fatal(err)
	}
	client := fake.NewClientset(&corev1.ServiceAccount{ObjectMeta: metav1.ObjectMeta{Namespace: "ns", Name: "app",
		Annotations: map[string]string{"eks.amazonaws.com/role-arn": roleARN}}})
	// A lookup budget that never throttles: this test is about what the
	// lookups keep, not how fast they may come (sacache's tests cover that).
	prefixes, keys := engine.CacheKeys()
	sas := syncedCache(t, sacache.Config{Client: client, AnnotationPrefixes: prefixes, AnnotationKeys: keys, LookupQPS: 1e6, LookupBurst: 1e6})
	reg := prometheus.NewRegistry()
	policies := testenv.Policies(10) // one of them selects every namespace
	policies.SetNamespace("ns", map[string]string{"kubernetes.io/metadata.name": "ns"})
	h, err := server.NewAdmissionHandler(admission.Config{Engine: engine, ServiceAccounts: sas, Log: log, Policies: policies}, reg, server.DefaultMaxRequestBytes)
	if err != nil {
		t.Fatal(err)
	}
	ops := server.New(server.Config{}, nil, h, reg, func() error { return nil }, log).OpsHandler()
	send := func(path, contentType, body string) *httptest.ResponseRecorder {
		req := httptest.NewRequest(http.MethodPost, path, strings.NewReader(body))
		if contentType == "" {
			contentType = "application/json"
		}
		req.Header.Set("Content-Type", contentType)
		rec := httptest.NewRecorder()
		h.ServeHTTP(rec, req)
		return rec
	}
	// Warm up: a real review through every path, then the baseline.
	for _, p := range []string{server.MutatePath, server.ValidatePath} {
		if rec := send(p, "", review("v1", "CREATE", "Pod", podJSON("app", ""), false)); rec.Code != http.StatusOK {
			t.Fatalf("a real review: HTTP %d %s", rec.Code, rec.Body)
		}
	}
	sa := `{"metadata":{"name":"app","namespace":"ns","annotations":{"eks.amazonaws.com/role-arn":"` + roleARN + `"}}}`
	if rec := send(server.ServiceAccountPath, "", review("v1", "CREATE", "ServiceAccount", sa, false)); rec.Code != http.StatusOK {
		t.Fatalf("a real serviceaccount review: HTTP %d %s", rec.Code, rec.Body)
	}
	before := heapInUse()
	meter.take()

	for _, k := range hostileRequests() {
		t.Run(k.name, func(t *testing.T) {
			maxResponse, maxLog := 0, 0
			for i := range 1000 {
				path := []string{server.MutatePath, server.ValidatePath, server.ServiceAccountPath}[i%3]
				rec := send(path, k.contentType, k.body(i))
				switch {
				case rec.Code >= 400 && rec.Code < 500:
					if strings.TrimSpace(rec.Body.String()) == "" {
						t.Fatalf("request %d: HTTP %d without a message", i, rec.Code)
					}
				case rec.Code == http.StatusOK:
					var r struct {
						Response *struct {
							UID string `json:"uid"`
						} `json:"response"`
					}
					if err := json.Unmarshal(rec.Body.Bytes(), &r); err != nil || r.Response == nil {
						t.Fatalf("request %d: 200 with a malformed review: %v", i, err)
					}
				default:
					t.Fatalf("request %d: HTTP %d %.300s", i, rec.Code, rec.Body)
				}
				maxResponse = max(maxResponse, rec.Body.Len())
				maxLog = max(maxLog, meter.take())
			}
			// A bounded prefix of a value is at most quote.MaxBytes; the
			// uid is echoed whole, as the protocol requires.
			limit := 4 << 10
			if strings.Contains(k.name, "uid") {
				limit += 65 << 10
			}
			if maxResponse > limit {
				t.Errorf("a response of %d bytes: request values are not bounded in messages", maxResponse)
			}
			if maxLog > 4<<10 {
				t.Errorf("a request logged %d bytes: request values are not bounded in logs", maxLog)
			}
		})
	}
	after := heapInUse()
	t.Logf("heap in use: %.1f MiB before, %.1f MiB after", float64(before)/(1<<20), float64(after)/(1<<20))
	if after > before+20<<20 {
		t.Errorf("heap in use grew by %.1f MiB over the hostile requests, want at most 20 MiB", float64(after-before)/(1<<20))
	}
	rec := httptest.NewRecorder()
	ops.ServeHTTP(rec, httptest.NewRequest(http.MethodGet, "/metrics", nil))
	body, _ := io.ReadAll(rec.Body)
	t.Logf("/metrics: %d bytes", len(body))
	if len(body) > 100<<10 {
		t.Errorf("/metrics is %d bytes after the hostile requests, want under 100 KiB", len(body))
	}
}

func heapInUse() uint64 {
	// Twice: sync.Pool keeps its contents for one collection.
	runtime.GC()
	runtime.GC()
	var m runtime.MemStats
	runtime.ReadMemStats(&m)
	return m.HeapInuse
}
