// Package fixturetest runs the golden fixtures with every compiled-in
// provider: through the renderer `injector mutate` uses, and through the
// webhook's HTTP handler. Only the tests of the packages that see every
// provider (the engine, admission, the command) use it; a provider's own
// tests use pkg/providers/providertest with only that provider.
package fixturetest

import (
	"encoding/json"
	"fmt"
	"io"
	"net/http"
	"net/http/httptest"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/prometheus/client_golang/prometheus"
	"github.com/sirupsen/logrus"
	jsonpatch "gopkg.in/evanphx/json-patch.v4"

	"github.com/pod-identity/injector/internal/admission"
	"github.com/pod-identity/injector/internal/golden"
	"github.com/pod-identity/injector/internal/server"
	"github.com/pod-identity/injector/internal/staticsa"
	"github.com/pod-identity/injector/pkg/manifest"
	"github.com/pod-identity/injector/pkg/providers/builtin"
	"github.com/pod-identity/injector/pkg/providers/providertest"
	"github.com/pod-identity/injector/pkg/render"
)

// Mutate is the Renderer of every compiled-in provider.
var Mutate = providertest.RendererOf(builtin.New)

// RunWebhook sends every Pod of every case below dir through the
// webhook's HTTP handler (with the compiled providers and the case's
// flags), as the API server would, and checks that the patched pod is the
// one in expected.yaml, that its warnings are those of warnings.txt, and
// that an invalid one is denied, by the mutator and the validator alike,
// with the message in error.txt and no patch: `injector mutate` and
// `injector serve` do the same thing.
func RunWebhook(t *testing.T, dir string) {
	if golden.Update {
		t.Skip("expectations are being rewritten")
	}
	for _, c := range providertest.Cases(t, dir) {
		name, _ := filepath.Rel(dir, c)
		t.Run(filepath.ToSlash(name), func(t *testing.T) { runWebhookCase(t, c) })
	}
}

func runWebhookCase(t *testing.T, dir string) {
	engine, opts, cancel, err := providertest.EngineFromFlags(builtin.New(), providertest.Flags(t, dir))
	if err != nil {
		t.Fatal(err)
	}
	defer cancel()
	mode := opts.InvalidIdentity
	in := providertest.ReadDocuments(t, filepath.Join(dir, "input.yaml"))
	sas := manifest.ServiceAccounts{}
	if err := sas.Add(in, "default"); err != nil {
		t.Fatal(err)
	}
	static := staticsa.Set{}
	for _, sa := range sas {
		static.Add(sa)
	}
	log := logrus.New()
	log.SetOutput(io.Discard)
	policies, err := render.PolicyStore(in, opts)
	if err != nil {
		t.Fatal(err)
	}
	h, err := server.NewAdmissionHandler(admission.Config{Engine: engine, ServiceAccounts: static, InvalidIdentity: mode, Log: log, Policies: policies},
		prometheus.NewRegistry(), 0)
	if err != nil {
		t.Fatal(err)
	}
	wantErr, _ := os.ReadFile(filepath.Join(dir, "error.txt"))
	// The webhook joins the messages that `injector mutate` prints a line each.
	wantMessage := strings.ReplaceAll(strings.TrimSuffix(string(wantErr), "\n"), "\n", "; ")
	wantWarnings, _ := os.ReadFile(filepath.Join(dir, "warnings.txt"))
	webhookWarnings, podsOnly := 0, true
	var expected []*manifest.Document
	if len(wantErr) == 0 {
		expected = providertest.ReadDocuments(t, filepath.Join(dir, "expected.yaml"))
	}
	for i, d := range in {
		if d.Kind() != "Pod" {
			switch d.Kind() {
			case "Deployment", "StatefulSet", "DaemonSet", "ReplicaSet", "Job", "CronJob", "List":
				podsOnly = false // its warnings are in warnings.txt too
			}
			continue
		}
		raw, _ := json.Marshal(d.Object)
		ns := "default"
		if meta, ok := d.Object["metadata"].(map[string]any); ok && meta["namespace"] != nil {
			ns = meta["namespace"].(string)
		}
		reviewOf := func(obj []byte) string {
			return fmt.Sprintf(`{"apiVersion":"admission.k8s.io/v1","kind":"AdmissionReview","request":{"uid":"u","kind":{"group":"","version":"v1","kind":"Pod"},"resource":{"group":"","version":"v1","resource":"pods"},"namespace":%q,"operation":"CREATE","userInfo":{},"object":%s}}`, ns, obj)
		}
		review := reviewOf(raw)
		// As the API server does: the mutating webhook, its patch applied,
		// then the enforcement webhook on the pod as it would be stored.
		m := call(t, h, server.MutatePath, review)
		got := raw
		if len(m.Response.Patch) > 0 {
			p, err := jsonpatch.DecodePatch(m.Response.Patch)
			if err != nil {
				t.Fatal(err)
			}
			if got, err = p.Apply(raw); err != nil {
				t.Fatal(err)
			}
		}
		if len(wantErr) > 0 {
			if m.Response.Allowed {
				// Admitted by the mutating step: the enforcement step refuses it.
				e := call(t, h, server.EnforcePath, reviewOf(got))
				if e.Response.Allowed || e.Response.Status == nil || e.Response.Status.Message != wantMessage {
					t.Errorf("enforcement answer %+v, want a denial with %q", e.Response, wantMessage)
				}
				continue
			}
			r := call(t, h, server.ValidatePath, review)
			if r.Response.Allowed || r.Response.Status == nil || r.Response.Status.Message != wantMessage {
				t.Errorf("validator answer %+v, want a denial with %q", r.Response, wantMessage)
			}
			// The mutator denies it in the same call, with the same
			// message, and adds nothing, not even the clouds that are
			// valid, until the pod is fixed.
			if len(m.Response.Patch) > 0 || m.Response.Status == nil || m.Response.Status.Message != wantMessage {
				t.Errorf("mutator answer %+v, want a denial with %q and no patch", m.Response, wantMessage)
			}
			continue
		}
		e := call(t, h, server.EnforcePath, reviewOf(got))
		if !e.Response.Allowed {
			t.Errorf("the enforcement step denied a pod injected as expected: %+v", e.Response.Status)
		}
		for _, w := range append(m.Response.Warnings, e.Response.Warnings...) {
			if !strings.Contains(string(wantWarnings), "Warning: "+offlineWording(w)+"\n") {
				t.Errorf("the webhook warns %q, which warnings.txt does not have", w)
			}
		}
		webhookWarnings += len(m.Response.Warnings) + len(e.Response.Warnings)
		want, _ := json.Marshal(expected[i].Object)
		if !jsonpatch.Equal(got, want) {
			t.Errorf("document %d: webhook result differs from expected.yaml\n got %s\nwant %s", i+1, got, want)
		}
		if r := call(t, h, server.ValidatePath, review); !r.Response.Allowed {
			t.Errorf("validator denied a valid pod: %+v", r.Response.Status)
		}
	}
	if policies != nil {
		checkServiceAccounts(t, h, dir, in)
	}
	if podsOnly && len(wantErr) == 0 {
		if n := strings.Count(string(wantWarnings), "Warning: "); n != webhookWarnings {
			t.Errorf("the webhook gave %d warnings, warnings.txt has %d", webhookWarnings, n)
		}
	}
}

// checkServiceAccounts sends every ServiceAccount of a case with identity
// policies to the ServiceAccount webhook, as a CREATE, and requires the
// denials that `injector check` reports in check.txt (by document), and
// no other.
func checkServiceAccounts(t *testing.T, h http.Handler, dir string, in []*manifest.Document) {
	t.Helper()
	report, _ := os.ReadFile(filepath.Join(dir, "check.txt"))
	for i, d := range in {
		if d.Kind() != "ServiceAccount" {
			continue
		}
		var want []string
		prefix := fmt.Sprintf("input.yaml#%d: ", i+1)
		for _, l := range strings.Split(string(report), "\n") {
			if m, ok := strings.CutPrefix(l, prefix); ok {
				want = append(want, m)
			}
		}
		raw, _ := json.Marshal(d.Object)
		ns := d.Object["metadata"].(map[string]any)["namespace"].(string)
		review := fmt.Sprintf(`{"apiVersion":"admission.k8s.io/v1","kind":"AdmissionReview","request":{"uid":"u","kind":{"group":"","version":"v1","kind":"ServiceAccount"},"resource":{"group":"","version":"v1","resource":"serviceaccounts"},"namespace":%q,"operation":"CREATE","userInfo":{},"object":%s}}`, ns, raw)
		r := call(t, h, server.ServiceAccountPath, review)
		switch {
		case len(want) == 0 && !r.Response.Allowed:
			t.Errorf("document %d: the serviceaccount webhook refused what injector check accepts: %+v", i+1, r.Response.Status)
		case len(want) > 0 && (r.Response.Allowed || r.Response.Status == nil || r.Response.Status.Message != strings.Join(want, "; ")):
			t.Errorf("document %d: serviceaccount webhook answer %+v, want a denial with %q", i+1, r.Response, strings.Join(want, "; "))
		}
	}
}

// offlineWording is the webhook's warning as `injector mutate` words it:
// offline, a ServiceAccount missing from the stream "is not in the input".
func offlineWording(w string) string {
	pod, rest, ok := strings.Cut(w, ": serviceaccount ")
	sa, found := strings.CutSuffix(rest, " was not found, so no cloud identity was injected (create the serviceaccount before the pod)")
	if !ok || !found {
		return w
	}
	return pod + ": serviceaccount " + sa + " is not in the input; not mutated (add it to the stream or to --serviceaccounts)"
}

type reviewResponse struct {
	Response struct {
		Allowed bool   `json:"allowed"`
		Patch   []byte `json:"patch"`
		Status  *struct {
			Message string `json:"message"`
		} `json:"status"`
		Warnings []string `json:"warnings"`
	} `json:"response"`
}

func call(t *testing.T, h http.Handler, path, body string) reviewResponse {
	t.Helper()
	req := httptest.NewRequest(http.MethodPost, path, strings.NewReader(body))
	req.Header.Set("Content-Type", "application/json")
	rec := httptest.NewRecorder()
	h.ServeHTTP(rec, req)
	var r reviewResponse
	if rec.Code != http.StatusOK {
		t.Fatalf("HTTP %d: %s", rec.Code, rec.Body)
	}
	if err := json.Unmarshal(rec.Body.Bytes(), &r); err != nil {
		t.Fatal(err)
	}
	return r
}
