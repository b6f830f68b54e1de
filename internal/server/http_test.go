package server_test

import (
	"bytes"
	"context"
	"crypto/tls"
	"encoding/json"
	"fmt"
	"io"
	"net/http"
	"net/http/httptest"
	"reflect"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/prometheus/client_golang/prometheus"
	"github.com/sirupsen/logrus"
	jsonpatch "gopkg.in/evanphx/json-patch.v4"
	corev1 "k8s.io/api/core/v1"
	apierrors "k8s.io/apimachinery/pkg/api/errors"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/runtime"
	"k8s.io/client-go/kubernetes/fake"
	k8stesting "k8s.io/client-go/testing"

	"github.com/pod-identity/injector/internal/admission"
	"github.com/pod-identity/injector/internal/certwatch"
	"github.com/pod-identity/injector/internal/sacache"
	"github.com/pod-identity/injector/internal/server"
	"github.com/pod-identity/injector/internal/staticsa"
	"github.com/pod-identity/injector/internal/testenv"
	"github.com/pod-identity/injector/internal/testpki"
)

const roleARN = "arn:aws:iam::111122223333:role/app"

// webhookServer starts the real handler stack behind real TLS and returns
// its URL and a client that trusts it.
func webhookServer(t *testing.T, mode string) (string, *http.Client) {
	t.Helper()
	engine, err := testenv.Engine(context.Background(), logrus.New())
	if err != nil {
		t.Fatal(err)
	}
	sas := staticsa.Set{}.
		Add(&corev1.ServiceAccount{ObjectMeta: metav1.ObjectMeta{Namespace: "ns", Name: "app", Annotations: map[string]string{"eks.amazonaws.com/role-arn": roleARN}}}).
		Add(&corev1.ServiceAccount{ObjectMeta: metav1.ObjectMeta{Namespace: "ns", Name: "bad", Annotations: map[string]string{"eks.amazonaws.com/role-arn": "arn:aws:iam::1:role/x"}}}).
		Add(&corev1.ServiceAccount{ObjectMeta: metav1.ObjectMeta{Namespace: "ns", Name: "default"}})
	log := logrus.New()
	log.SetOutput(io.Discard)
	h, err := server.NewAdmissionHandler(admission.Config{Engine: engine, ServiceAccounts: sas, InvalidIdentity: mode, Log: log},
		prometheus.NewRegistry(), 64<<10)
	if err != nil {
		t.Fatal(err)
	}
	ca, certs := servingCerts(t)
	scfg := server.Config{}
	tc, err := scfg.TLSConfig(certs.GetCertificate)
	if err != nil {
		t.Fatal(err)
	}
	client := &http.Client{Transport: &http.Transport{TLSClientConfig: &tls.Config{RootCAs: ca.Pool(), MinVersion: tls.VersionTLS12}}}
	return serveTLS(t, h, tc), client
}

func podJSON(sa string, extra string) string {
	return fmt.Sprintf(`{"apiVersion":"v1","kind":"Pod","metadata":{"generateName":"web-"%s},"spec":{"serviceAccountName":%q,"containers":[{"name":"app","image":"app:1"}]}}`, extra, sa)
}

func review(version, op, kind, object string, dryRun bool) string {
	return fmt.Sprintf(`{"apiVersion":"admission.k8s.io/%s","kind":"AdmissionReview","request":{"uid":"uid-1","kind":{"group":"","version":"v1","kind":%q},"resource":{"group":"","version":"v1","resource":"pods"},"namespace":"ns","operation":%q,"userInfo":{"username":"admin"},"object":%s,"dryRun":%t}}`,
		version, kind, op, object, dryRun)
}

type response struct {
	APIVersion string `json:"apiVersion"`
	Response   struct {
		UID       string   `json:"uid"`
		Allowed   bool     `json:"allowed"`
		Patch     []byte   `json:"patch"`
		PatchType *string  `json:"patchType"`
		Warnings  []string `json:"warnings"`
		Status    *struct {
			Code    int    `json:"code"`
			Message string `json:"message"`
		} `json:"status"`
	} `json:"response"`
}

func post(t *testing.T, c *http.Client, url, contentType, body string) (int, string) {
	t.Helper()
	resp, err := c.Post(url, contentType, strings.NewReader(body))
	if err != nil {
		t.Fatal(err)
	}
	defer func() { _ = resp.Body.Close() }()
	b, _ := io.ReadAll(resp.Body)
	return resp.StatusCode, string(b)
}

func TestAdmissionOverHTTPS(t *testing.T) {
	url, client := webhookServer(t, admission.Deny)
	tests := []struct {
		name        string
		path        string
		body        string
		allowed     bool
		patched     bool
		apiVersion  string
		warning     string
		denyMessage string
		keeps       []string
	}{
		{name: "a v1 pod review gets the additive patch", path: server.MutatePath, body: review("v1", "CREATE", "Pod", podJSON("app", ""), false), allowed: true, patched: true, apiVersion: "admission.k8s.io/v1"},
		{name: "a v1beta1 pod review gets the same patch", path: server.MutatePath, body: review("v1beta1", "CREATE", "Pod", podJSON("app", ""), false), allowed: true, patched: true, apiVersion: "admission.k8s.io/v1beta1"},
		{name: "a dry-run review is mutated like any other", path: server.MutatePath, body: review("v1", "CREATE", "Pod", podJSON("app", ""), true), allowed: true, patched: true},
		{name: "fields the compiled API does not know survive the patch", path: server.MutatePath,
			body:    review("v1", "CREATE", "Pod", `{"apiVersion":"v1","kind":"Pod","metadata":{"name":"p","futureMeta":"m"},"spec":{"serviceAccountName":"app","futureSpec":{"a":1},"containers":[{"name":"app","futureContainer":true}]}}`, false),
			allowed: true, patched: true, keeps: []string{`"futureMeta":"m"`, `"futureSpec":{"a":1}`, `"futureContainer":true`}},
		{name: "an unrelated pod gets no patch", path: server.MutatePath, body: review("v1", "CREATE", "Pod", podJSON("default", ""), false), allowed: true},
		{name: "a pod whose serviceaccount is missing is admitted with a warning", path: server.MutatePath, body: review("v1", "CREATE", "Pod", podJSON("ghost", ""), false), allowed: true, warning: `serviceaccount "ns/ghost" was not found`},
		{name: "an update is let through untouched", path: server.MutatePath, body: review("v1", "UPDATE", "Pod", podJSON("app", ""), false), allowed: true},
		{name: "a kind other than Pod is let through untouched", path: server.MutatePath, body: review("v1", "CREATE", "ConfigMap", `{"apiVersion":"v1","kind":"ConfigMap","metadata":{"name":"c"}}`, false), allowed: true},
		{name: "an invalid annotation is denied by the mutator in the same call", path: server.MutatePath, body: review("v1", "CREATE", "Pod", podJSON("bad", ""), false),
			denyMessage: `serviceaccount "ns/bad": annotation eks.amazonaws.com/role-arn has invalid value "arn:aws:iam::1:role/x": expected arn:`},
		{name: "an invalid annotation is denied by the validator with the whole story", path: server.ValidatePath, body: review("v1", "CREATE", "Pod", podJSON("bad", ""), false),
			denyMessage: `serviceaccount "ns/bad": annotation eks.amazonaws.com/role-arn has invalid value "arn:aws:iam::1:role/x": expected arn:`},
		{name: "a v1beta1 invalid pod is denied too", path: server.ValidatePath, body: review("v1beta1", "CREATE", "Pod", podJSON("bad", ""), false), denyMessage: "eks.amazonaws.com/role-arn"},
		{name: "a valid pod is allowed by the validator", path: server.ValidatePath, body: review("v1", "CREATE", "Pod", podJSON("app", ""), false), allowed: true},
		{name: "an object that is not a pod is denied cleanly", path: server.MutatePath, body: review("v1", "CREATE", "Pod", `[1,2,3]`, false), denyMessage: "the object is not a pod"},
		{name: "the validator denies an object that is not a pod too", path: server.ValidatePath, body: review("v1", "CREATE", "Pod", `{"spec":"x"}`, false), denyMessage: "the object is not a pod"},
		{name: "a pod review with no object is denied", path: server.ValidatePath, body: review("v1", "CREATE", "Pod", `null`, false), denyMessage: "no object"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			code, body := post(t, client, url+tt.path, "application/json", tt.body)
			if code != http.StatusOK {
				t.Fatalf("HTTP %d: %s", code, body)
			}
			var r response
			if err := json.Unmarshal([]byte(body), &r); err != nil {
				t.Fatalf("response is not an AdmissionReview: %v\n%s", err, body)
			}
			if r.Response.UID != "uid-1" {
				t.Errorf("uid = %q", r.Response.UID)
			}
			if tt.apiVersion != "" && r.APIVersion != tt.apiVersion {
				t.Errorf("apiVersion = %q, want %q", r.APIVersion, tt.apiVersion)
			}
			if r.Response.Allowed != tt.allowed {
				t.Fatalf("allowed = %v, want %v: %s", r.Response.Allowed, tt.allowed, body)
			}
			if tt.denyMessage != "" {
				if r.Response.Status == nil || r.Response.Status.Code != http.StatusBadRequest || !strings.Contains(r.Response.Status.Message, tt.denyMessage) {
					t.Errorf("status = %+v, want code 400 and a message containing %q", r.Response.Status, tt.denyMessage)
				}
			}
			if tt.warning != "" && !strings.Contains(strings.Join(r.Response.Warnings, "\n"), tt.warning) {
				t.Errorf("warnings = %q, want one containing %q", r.Response.Warnings, tt.warning)
			}
			if !tt.patched {
				if len(r.Response.Patch) > 0 {
					t.Errorf("unexpected patch %s", r.Response.Patch)
				}
				return
			}
			var ops []map[string]any
			if err := json.Unmarshal(r.Response.Patch, &ops); err != nil || len(ops) == 0 {
				t.Fatalf("patch %s: %v", r.Response.Patch, err)
			}
			for _, op := range ops {
				if op["op"] != "add" {
					t.Errorf("non-additive op %v", op)
				}
			}
			var req struct {
				Request struct {
					Object json.RawMessage `json:"object"`
				} `json:"request"`
			}
			_ = json.Unmarshal([]byte(tt.body), &req)
			p, err := jsonpatch.DecodePatch(r.Response.Patch)
			if err != nil {
				t.Fatal(err)
			}
			out, err := p.Apply(req.Request.Object)
			if err != nil {
				t.Fatalf("the API server would fail to apply the patch: %v", err)
			}
			for _, s := range append([]string{`"AWS_ROLE_ARN","value":"` + roleARN + `"`, `"aws-iam-token"`}, tt.keeps...) {
				if !bytes.Contains(out, []byte(s)) {
					t.Errorf("patched pod lacks %s:\n%s", s, out)
				}
			}
		})
	}
}

func TestWarnModeAdmitsWithTheMessage(t *testing.T) {
	url, client := webhookServer(t, admission.Warn)
	for _, path := range []string{server.MutatePath, server.ValidatePath} {
		t.Run(path, func(t *testing.T) {
			_, body := post(t, client, url+path, "application/json", review("v1", "CREATE", "Pod", podJSON("bad", ""), false))
			var r response
			if err := json.Unmarshal([]byte(body), &r); err != nil {
				t.Fatal(err)
			}
			if !r.Response.Allowed || len(r.Response.Patch) > 0 {
				t.Errorf("allowed=%v patch=%s, want allowed without a patch", r.Response.Allowed, r.Response.Patch)
			}
			if path == server.MutatePath && !strings.Contains(strings.Join(r.Response.Warnings, "\n"), "admitted without the aws identity") {
				t.Errorf("warnings = %q", r.Response.Warnings)
			}
		})
	}
}

func TestBadRequestsGetAClearAnswer(t *testing.T) {
	url, client := webhookServer(t, admission.Deny)
	huge := review("v1", "CREATE", "Pod", podJSON("app", `,"annotations":{"pad":"`+strings.Repeat("x", 70<<10)+`"}`), false)
	tests := []struct {
		name, method, contentType, body string
		// chunked sends the body without a Content-Length.
		chunked bool
		code    int
		says    string
	}{
		{name: "malformed JSON", method: http.MethodPost, contentType: "application/json", body: `{"apiVersion":`, code: http.StatusBadRequest, says: "malformed"},
		{name: "an empty body", method: http.MethodPost, contentType: "application/json", body: "", code: http.StatusBadRequest, says: "empty body"},
		{name: "a wrong content type", method: http.MethodPost, contentType: "text/plain", body: review("v1", "CREATE", "Pod", podJSON("app", ""), false), code: http.StatusUnsupportedMediaType, says: "expected application/json"},
		{name: "a GET", method: http.MethodGet, contentType: "application/json", code: http.StatusMethodNotAllowed, says: "POSTed"},
		{name: "a review with no request", method: http.MethodPost, contentType: "application/json", body: `{"apiVersion":"admission.k8s.io/v1","kind":"AdmissionReview"}`, code: http.StatusBadRequest, says: "no request"},
		{name: "a review with a null request", method: http.MethodPost, contentType: "application/json", body: `{"apiVersion":"admission.k8s.io/v1","kind":"AdmissionReview","request":null}`, code: http.StatusBadRequest, says: "no request"},
		{name: "a JSON array", method: http.MethodPost, contentType: "application/json", body: `[]`, code: http.StatusBadRequest, says: "expected a JSON object"},
		{name: "an unknown review kind", method: http.MethodPost, contentType: "application/json", body: `{"apiVersion":"admission.k8s.io/v9","kind":"AdmissionReview","request":{}}`, code: http.StatusBadRequest, says: "could not"},
		// Over the limit, a review is refused, never left to the failure
		// policy (Ignore would admit the pod unchecked)...
		{name: "an oversized review", method: http.MethodPost, contentType: "application/json", body: huge, code: http.StatusOK, says: `"allowed":false`},
		{name: "an oversized review sent without a Content-Length", method: http.MethodPost, contentType: "application/json", body: huge, chunked: true, code: http.StatusOK, says: `admission review \"uid-1\" is over the injector's limit`},
		// ... unless it names no uid to answer.
		{name: "an oversized body that is no review", method: http.MethodPost, contentType: "application/json", body: `{"pad":"` + strings.Repeat("x", 70<<10) + `"}`, code: http.StatusRequestEntityTooLarge, says: "over the limit"},
	}
	for _, tt := range tests {
		for _, path := range []string{server.MutatePath, server.ValidatePath} {
			t.Run(tt.name+" at "+path, func(t *testing.T) {
				var body io.Reader = strings.NewReader(tt.body)
				if tt.chunked {
					body = io.MultiReader(body) // a reader whose length the client cannot know
				}
				req, err := http.NewRequest(tt.method, url+path, body)
				if err != nil {
					t.Fatal(err)
				}
				if tt.chunked && req.ContentLength != 0 {
					t.Fatalf("the request has a Content-Length of %d", req.ContentLength)
				}
				req.Header.Set("Content-Type", tt.contentType)
				resp, err := client.Do(req)
				if err != nil {
					t.Fatal(err)
				}
				defer func() { _ = resp.Body.Close() }()
				b, _ := io.ReadAll(resp.Body)
				if resp.StatusCode != tt.code || !strings.Contains(string(b), tt.says) {
					t.Errorf("HTTP %d %q, want %d and %q", resp.StatusCode, b, tt.code, tt.says)
				}
			})
		}
	}
}

func TestCertificateRotationNeedsNoRestart(t *testing.T) {
	dir := t.TempDir()
	ca1, _ := testpki.NewCA("ca-1")
	ca2, _ := testpki.NewCA("ca-2")
	certFile, keyFile, err := ca1.WriteServing(dir, "webhook")
	if err != nil {
		t.Fatal(err)
	}
	log := logrus.New()
	log.SetOutput(io.Discard)
	certs, err := certwatch.New(certFile, keyFile, log)
	if err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	if err := certs.Watch(ctx, 50*1e6); err != nil {
		t.Fatal(err)
	}
	url := serveTLS(t, http.HandlerFunc(func(w http.ResponseWriter, _ *http.Request) { _, _ = w.Write([]byte("ok")) }),
		&tls.Config{GetCertificate: certs.GetCertificate})
	get := func(ca *testpki.CA) error {
		c := &http.Client{Transport: &http.Transport{TLSClientConfig: &tls.Config{RootCAs: ca.Pool()}, DisableKeepAlives: true}}
		resp, err := c.Get(url)
		if err == nil {
			_ = resp.Body.Close()
		}
		return err
	}
	if err := get(ca1); err != nil {
		t.Fatalf("first certificate: %v", err)
	}
	// A half-written rotation is passed over: the old pair keeps serving
	// through several reload attempts (the poll is 50 ms; certwatch's own
	// tests check the reload itself deterministically).
	if err := writeFile(certFile, []byte("-----BEGIN CERTIFICATE-----\ngarbage")); err != nil {
		t.Fatal(err)
	}
	for range 10 {
		sleep()
		if err := get(ca1); err != nil {
			t.Fatalf("a broken rotation interrupted service: %v", err)
		}
	}
	if _, _, err := ca2.WriteServing(dir, "webhook"); err != nil {
		t.Fatal(err)
	}
	for i := 0; ; i++ {
		if err := get(ca2); err == nil {
			break
		}
		if i > 200 {
			t.Fatal("the rotated certificate was never served")
		}
		if err := get(ca1); err != nil && get(ca2) != nil {
			t.Fatalf("neither certificate served during rotation: %v", err)
		}
		sleep()
	}
}

func TestAClientCertificateCanBeRequired(t *testing.T) {
	dir := t.TempDir()
	apiCA, _ := testpki.NewCA("api-server-client-ca")
	otherCA, _ := testpki.NewCA("someone-else")
	caFile := dir + "/client-ca.crt"
	if err := writeFile(caFile, apiCA.PEM); err != nil {
		t.Fatal(err)
	}
	log := logrus.New()
	log.SetOutput(io.Discard)
	clientCAs, err := certwatch.NewCAPool(caFile, log)
	if err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	if err := clientCAs.Watch(ctx, 20*time.Millisecond); err != nil {
		t.Fatal(err)
	}
	serving, certs := servingCerts(t)
	cfg := server.Config{ClientCAs: clientCAs.Pool}
	tc, err := cfg.TLSConfig(certs.GetCertificate)
	if err != nil {
		t.Fatal(err)
	}
	url := serveTLS(t, http.HandlerFunc(func(w http.ResponseWriter, _ *http.Request) { _, _ = w.Write([]byte("ok")) }), tc)
	pinned := server.Config{ClientCAs: clientCAs.Pool, ClientNames: []string{"kube-apiserver"}}
	ptc, err := pinned.TLSConfig(certs.GetCertificate)
	if err != nil {
		t.Fatal(err)
	}
	pinnedURL := serveTLS(t, http.HandlerFunc(func(w http.ResponseWriter, _ *http.Request) { _, _ = w.Write([]byte("ok")) }), ptc)
	getAs := func(url, cn string, ca *testpki.CA) error {
		tlsc := &tls.Config{RootCAs: serving.Pool(), MinVersion: tls.VersionTLS12}
		if ca != nil {
			c, k, err := ca.IssueClient(cn)
			if err != nil {
				t.Fatal(err)
			}
			pair, err := tls.X509KeyPair(c, k)
			if err != nil {
				t.Fatal(err)
			}
			tlsc.Certificates = []tls.Certificate{pair}
		}
		c := &http.Client{Transport: &http.Transport{TLSClientConfig: tlsc, DisableKeepAlives: true}}
		resp, err := c.Get(url)
		if err != nil {
			return err
		}
		defer func() { _ = resp.Body.Close() }()
		if resp.StatusCode != http.StatusOK {
			return fmt.Errorf("HTTP %d", resp.StatusCode)
		}
		return nil
	}
	get := func(ca *testpki.CA) error { return getAs(url, "kube-apiserver", ca) }
	t.Run("with --client-names, another certificate of the same CA is refused", func(t *testing.T) {
		if err := getAs(pinnedURL, "kube-apiserver", apiCA); err != nil {
			t.Fatalf("the named client: %v", err)
		}
		if err := getAs(pinnedURL, "system:node:worker-1", apiCA); err == nil {
			t.Fatal("served a client the CA signed under another name")
		}
	})
	t.Run("the API server's certificate is accepted", func(t *testing.T) {
		if err := get(apiCA); err != nil {
			t.Fatal(err)
		}
	})
	t.Run("a client without a certificate is refused", func(t *testing.T) {
		if err := get(nil); err == nil {
			t.Fatal("served a client with no certificate")
		}
	})
	t.Run("a certificate of another CA is refused", func(t *testing.T) {
		if err := get(otherCA); err == nil {
			t.Fatal("served a client whose certificate no trusted CA signed")
		}
	})
	t.Run("a rotated bundle is used without a restart", func(t *testing.T) {
		if err := writeFile(caFile, otherCA.PEM); err != nil {
			t.Fatal(err)
		}
		deadline := time.Now().Add(10 * time.Second)
		for get(otherCA) != nil {
			if time.Now().After(deadline) {
				t.Fatal("the new bundle was never used")
			}
			sleep()
		}
		if err := get(apiCA); err == nil {
			t.Fatal("the old CA is still trusted after the rotation")
		}
	})
}

// TestAFloodOfMadeUpReviewsDoesNotStarveRealPods: reviews naming missing
// ServiceAccounts (in one namespace, and in made-up ones) are sent as fast
// as the server answers them, while real pods whose ServiceAccounts were
// created a moment ago (not in the informer yet, found by the direct
// lookup) are reviewed: every real pod gets its identity.
func TestAFloodOfMadeUpReviewsDoesNotStarveRealPods(t *testing.T) {
	engine, err := testenv.Engine(context.Background(), logrus.New())
	if err != nil {
		t.Fatal(err)
	}
	client := fake.NewClientset(
		&corev1.ServiceAccount{ObjectMeta: metav1.ObjectMeta{Namespace: "attacker", Name: "default"}},
		&corev1.ServiceAccount{ObjectMeta: metav1.ObjectMeta{Namespace: "team", Name: "default"}})
	// The new ServiceAccounts are served only by the GET, as ones the
	// informer has not seen yet.
	client.PrependReactor("get", "serviceaccounts", func(a k8stesting.Action) (bool, runtime.Object, error) {
		name := a.(k8stesting.GetAction).GetName()
		if a.GetNamespace() == "team" && strings.HasPrefix(name, "new-") {
			return true, &corev1.ServiceAccount{ObjectMeta: metav1.ObjectMeta{Namespace: "team", Name: name,
				Annotations: map[string]string{"eks.amazonaws.com/role-arn": roleARN}}}, nil
		}
		return true, nil, apierrors.NewNotFound(corev1.Resource("serviceaccounts"), name)
	})
	// The production budget.
	prefixes, keys := engine.CacheKeys()
	sas := syncedCache(t, sacache.Config{Client: client, AnnotationPrefixes: prefixes, AnnotationKeys: keys})
	log := logrus.New()
	log.SetOutput(io.Discard)
	h, err := server.NewAdmissionHandler(admission.Config{Engine: engine, ServiceAccounts: sas, Log: log}, prometheus.NewRegistry(), 0)
	if err != nil {
		t.Fatal(err)
	}
	send := func(body string) *response {
		req := httptest.NewRequest(http.MethodPost, server.MutatePath, strings.NewReader(body))
		req.Header.Set("Content-Type", "application/json")
		rec := httptest.NewRecorder()
		h.ServeHTTP(rec, req)
		var r response
		if err := json.Unmarshal(rec.Body.Bytes(), &r); err != nil {
			t.Errorf("HTTP %d %s", rec.Code, rec.Body)
		}
		return &r
	}
	inNamespace := func(ns, body string) string {
		return strings.Replace(body, `"namespace":"ns"`, `"namespace":"`+ns+`"`, 1)
	}
	stop := make(chan struct{})
	var flood sync.WaitGroup
	for w := range 64 {
		flood.Go(func() {
			for i := 0; ; i++ {
				select {
				case <-stop:
					return
				default:
				}
				ns := "attacker"
				if w%2 == 1 {
					ns = fmt.Sprintf("made-up-%d-%d", w, i)
				}
				send(inNamespace(ns, review("v1", "CREATE", "Pod", podJSON(fmt.Sprintf("ghost-%d-%d", w, i), ""), false)))
			}
		})
	}
	time.Sleep(200 * time.Millisecond) // the flood has spent what it can
	injected := 0
	// Three Deployments whose ServiceAccounts were just created, seven pods each.
	const pods = 21
	for i := range pods {
		r := send(inNamespace("team", review("v1", "CREATE", "Pod", podJSON(fmt.Sprintf("new-%d", i%3), ""), false)))
		if len(r.Response.Patch) > 0 {
			injected++
		} else {
			t.Logf("pod %d: %q", i, r.Response.Warnings)
		}
		time.Sleep(50 * time.Millisecond) // a Deployment's pods arrive over time
	}
	close(stop)
	flood.Wait()
	if injected != pods {
		t.Errorf("%d of %d real pods got their identity during the flood", injected, pods)
	}
}

// TestAV1beta1AnswerIsTheV1AnswerWithoutWarnings: warnings are a v1 field;
// an old API server gets the same answer without them.
func TestAV1beta1AnswerIsTheV1AnswerWithoutWarnings(t *testing.T) {
	url, client := webhookServer(t, admission.Deny)
	for _, tt := range []struct{ name, path, sa string }{
		{name: "a patch with a warning", path: server.MutatePath, sa: "ghost"},
		{name: "a patch", path: server.MutatePath, sa: "app"},
		{name: "a denial", path: server.ValidatePath, sa: "bad"},
	} {
		t.Run(tt.name, func(t *testing.T) {
			answer := func(version string) response {
				_, body := post(t, client, url+tt.path, "application/json", review(version, "CREATE", "Pod", podJSON(tt.sa, ""), false))
				var r response
				if err := json.Unmarshal([]byte(body), &r); err != nil {
					t.Fatal(err)
				}
				return r
			}
			v1, v1beta1 := answer("v1"), answer("v1beta1")
			if tt.sa == "ghost" && len(v1.Response.Warnings) == 0 {
				t.Fatal("the v1 answer has no warning to compare")
			}
			if len(v1beta1.Response.Warnings) != 0 {
				t.Errorf("v1beta1 answer has warnings %q", v1beta1.Response.Warnings)
			}
			if v1beta1.APIVersion != "admission.k8s.io/v1beta1" {
				t.Errorf("apiVersion %q", v1beta1.APIVersion)
			}
			v1.APIVersion, v1beta1.APIVersion, v1.Response.Warnings = "", "", nil
			if !reflect.DeepEqual(v1, v1beta1) {
				t.Errorf("answers differ beyond warnings:\nv1      %+v\nv1beta1 %+v", v1.Response, v1beta1.Response)
			}
		})
	}
}
