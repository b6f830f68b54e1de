package server_test

import (
	"context"
	"errors"
	"net/http"
	"net/http/httptest"
	"strings"
	"testing"
	"time"

	"github.com/prometheus/client_golang/prometheus"
	"github.com/prometheus/client_golang/prometheus/testutil"
	"github.com/slok/kubewebhook/v2/pkg/model"
	"github.com/slok/kubewebhook/v2/pkg/webhook"
	admissionv1 "k8s.io/api/admission/v1"
	admissionv1beta1 "k8s.io/api/admission/v1beta1"

	"github.com/pod-identity/injector/internal/server"
	"github.com/pod-identity/injector/internal/testenv"
)

// recorder is a stock kubewebhook webhook: it keeps the model it is given.
type recorder struct {
	got  model.AdmissionReview
	resp model.AdmissionResponse
}

func (r *recorder) ID() string              { return "recorder" }
func (r *recorder) Kind() model.WebhookKind { return model.WebhookKindValidating }
func (r *recorder) Review(_ context.Context, ar model.AdmissionReview) (model.AdmissionResponse, error) {
	r.got = ar
	return r.resp, nil
}

var _ webhook.Webhook = (*recorder)(nil)

func handlerWith(t *testing.T, wh webhook.Webhook, reg prometheus.Registerer, limit int64) http.Handler {
	t.Helper()
	h, err := server.NewHandler(server.HandlerConfig{Mutator: wh, Validator: wh, Metrics: reg, MaxRequestBytes: limit})
	if err != nil {
		t.Fatal(err)
	}
	return h
}

func serve(h http.Handler, path, body string) *httptest.ResponseRecorder {
	req := httptest.NewRequest(http.MethodPost, path, strings.NewReader(body))
	req.Header.Set("Content-Type", "application/json")
	rec := httptest.NewRecorder()
	h.ServeHTTP(rec, req)
	return rec
}

func TestAStockWebhookGetsTheWholeModel(t *testing.T) {
	const body = `{"apiVersion":"admission.k8s.io/%s","kind":"AdmissionReview","request":{"uid":"u-1","kind":{"group":"","version":"v1","kind":"Pod"},"resource":{"group":"","version":"v1","resource":"pods"},"subResource":"ephemeralcontainers","name":"p","namespace":"ns","operation":"UPDATE","userInfo":{"username":"alice","groups":["dev"]},"object":{"metadata":{"name":"p"}},"oldObject":{"metadata":{"name":"old"}},"dryRun":true,"options":{"kind":"UpdateOptions"}}}`
	for _, version := range []string{"v1", "v1beta1"} {
		t.Run(version, func(t *testing.T) {
			wh := &recorder{resp: &model.ValidatingAdmissionResponse{Allowed: true}}
			if rec := serve(handlerWith(t, wh, nil, 0), server.ValidatePath, strings.Replace(body, "%s", version, 1)); rec.Code != http.StatusOK {
				t.Fatalf("HTTP %d %s", rec.Code, rec.Body)
			}
			ar := wh.got
			if ar.ID != "u-1" || ar.Name != "p" || ar.Namespace != "ns" || ar.Operation != model.OperationUpdate || !ar.DryRun ||
				ar.UserInfo.Username != "alice" || len(ar.UserInfo.Groups) != 1 ||
				string(ar.NewObjectRaw) != `{"metadata":{"name":"p"}}` || string(ar.OldObjectRaw) != `{"metadata":{"name":"old"}}` ||
				ar.RequestGVK == nil || ar.RequestGVK.Kind != "Pod" || ar.RequestGVR == nil || ar.RequestGVR.Resource != "pods" {
				t.Fatalf("model %+v", ar)
			}
			switch orig := ar.OriginalAdmissionReview.(type) {
			case *admissionv1.AdmissionReview:
				if version != "v1" || ar.Version != model.AdmissionReviewVersionV1 || orig.Request.SubResource != "ephemeralcontainers" || string(orig.Request.Options.Raw) != `{"kind":"UpdateOptions"}` {
					t.Fatalf("v1 original %+v, version %s", orig.Request, ar.Version)
				}
			case *admissionv1beta1.AdmissionReview:
				if version != "v1beta1" || ar.Version != model.AdmissionReviewVersionV1beta1 || orig.Request.SubResource != "ephemeralcontainers" || string(orig.Request.Options.Raw) != `{"kind":"UpdateOptions"}` {
					t.Fatalf("v1beta1 original %+v, version %s", orig.Request, ar.Version)
				}
			default:
				t.Fatalf("original review %T", orig)
			}
		})
	}
}

func TestAnAllowedAnswerWithoutAPatchHasNoPatchType(t *testing.T) {
	wh := &recorder{resp: &model.MutatingAdmissionResponse{}}
	rec := serve(handlerWith(t, wh, nil, 0), server.MutatePath, review("v1", "CREATE", "Pod", podJSON("app", ""), false))
	if strings.Contains(rec.Body.String(), "patchType") || !strings.Contains(rec.Body.String(), `"allowed":true`) {
		t.Fatalf("answer %s", rec.Body)
	}
	wh.resp = &model.MutatingAdmissionResponse{JSONPatchPatch: []byte(`[]`)}
	if rec := serve(handlerWith(t, wh, nil, 0), server.MutatePath, review("v1", "CREATE", "Pod", podJSON("app", ""), false)); !strings.Contains(rec.Body.String(), `"patchType":"JSONPatch"`) {
		t.Fatalf("a patched answer %s has no patchType", rec.Body)
	}
}

func TestABodyExactlyAtTheLimitIsRead(t *testing.T) {
	body := review("v1", "CREATE", "Pod", podJSON("app", ""), false)
	wh := &recorder{resp: &model.ValidatingAdmissionResponse{Allowed: true}}
	if rec := serve(handlerWith(t, wh, nil, int64(len(body))), server.ValidatePath, body); rec.Code != http.StatusOK {
		t.Fatalf("a body of exactly the limit: HTTP %d %s", rec.Code, rec.Body)
	}
	if rec := serve(handlerWith(t, wh, nil, int64(len(body)-1)), server.ValidatePath, body); rec.Code != http.StatusOK || !strings.Contains(rec.Body.String(), `"allowed":false`) {
		t.Fatalf("a body one byte over the limit: HTTP %d %s, want a denial", rec.Code, rec.Body)
	}
}

func TestAHandlerWithoutALoggerWritesNothing(t *testing.T) {
	out := testenv.Stderr(t, func() {
		h := handlerWith(t, &recorder{}, nil, 0) // answers nothing: an error to log
		serve(h, server.MutatePath, review("v1", "CREATE", "Pod", podJSON("app", ""), false))
	})
	if len(out) > 0 {
		t.Errorf("a handler without a logger wrote:\n%s", out)
	}
}

func TestReviewMetricsCountByWebhookOperationAndResult(t *testing.T) {
	reg := prometheus.NewRegistry()
	wh := &recorder{}
	h := handlerWith(t, wh, reg, 0)
	wh.resp = &model.MutatingAdmissionResponse{JSONPatchPatch: []byte(`[]`), Warnings: []string{"w1", "w2"}}
	serve(h, server.MutatePath, review("v1", "CREATE", "Pod", podJSON("app", ""), false))
	wh.resp = &model.ValidatingAdmissionResponse{Allowed: false, Message: "no"}
	serve(h, server.ValidatePath, review("v1", "CREATE", "Pod", podJSON("app", ""), false))
	wh.resp = &model.ValidatingAdmissionResponse{Allowed: true}
	serve(h, server.ValidatePath, review("v1", "MADE-UP", "Pod", podJSON("app", ""), false))
	serve(h, server.ValidatePath, `not json`)
	want := `
# HELP pod_identity_admission_review_warnings_total Warnings returned with admission reviews, by webhook.
# TYPE pod_identity_admission_review_warnings_total counter
pod_identity_admission_review_warnings_total{webhook="recorder"} 2
`
	if err := testutil.GatherAndCompare(reg, strings.NewReader(want), "pod_identity_admission_review_warnings_total"); err != nil {
		t.Error(err)
	}
	families, err := reg.Gather()
	if err != nil {
		t.Fatal(err)
	}
	got := map[string]uint64{}
	for _, f := range families {
		if f.GetName() != "pod_identity_admission_review_duration_seconds" {
			continue
		}
		for _, m := range f.GetMetric() {
			key := ""
			for _, l := range m.GetLabel() {
				key += l.GetName() + "=" + l.GetValue() + " "
			}
			got[strings.TrimSpace(key)] = m.GetHistogram().GetSampleCount()
		}
	}
	for key, n := range map[string]uint64{
		"operation=CREATE result=mutated webhook=recorder":  1,
		"operation=CREATE result=denied webhook=recorder":   1,
		"operation=other result=allowed webhook=recorder":   1,
		"operation=other result=malformed webhook=recorder": 1,
	} {
		if got[key] != n {
			t.Errorf("%s: %d reviews, want %d (all: %v)", key, got[key], n, got)
		}
	}
	if len(got) != 4 {
		t.Errorf("series %v, want exactly four", got)
	}
}

func TestServerConfigDefaults(t *testing.T) {
	var c server.Config
	c.Defaults()
	if c.Address != ":8443" || c.MetricsAddress != ":8080" || c.TLSMinVersion != "1.2" || c.ShutdownTimeout != 20*time.Second {
		t.Errorf("defaults %+v", c)
	}
	kept := server.Config{Address: ":1", MetricsAddress: ":2", TLSMinVersion: "1.3", ShutdownTimeout: time.Second}
	kept.Defaults()
	if kept.Address != ":1" || kept.MetricsAddress != ":2" || kept.TLSMinVersion != "1.3" || kept.ShutdownTimeout != time.Second {
		t.Errorf("set values were overwritten: %+v", kept)
	}
}

// failing is a webhook that cannot decide.
type failing struct{ recorder }

func (failing) Review(context.Context, model.AdmissionReview) (model.AdmissionResponse, error) {
	return nil, errors.New("the engine broke")
}

func TestAWebhookThatFailsGetsA500WithTheReason(t *testing.T) {
	rec := serve(handlerWith(t, &failing{}, nil, 0), server.MutatePath, review("v1", "CREATE", "Pod", podJSON("app", ""), false))
	if rec.Code != http.StatusInternalServerError || !strings.Contains(rec.Body.String(), "the engine broke") || !strings.Contains(rec.Body.String(), `"code":500`) {
		t.Fatalf("HTTP %d %s", rec.Code, rec.Body)
	}
}

// brokenBody fails after a few bytes, as a connection reset would.
type brokenBody struct{ n int }

func (b *brokenBody) Read(p []byte) (int, error) {
	if b.n > 0 {
		b.n--
		p[0] = '{'
		return 1, nil
	}
	return 0, errors.New("connection reset")
}

func TestABodyThatCannotBeReadIsABadRequest(t *testing.T) {
	req := httptest.NewRequest(http.MethodPost, server.MutatePath, &brokenBody{n: 3})
	req.Header.Set("Content-Type", "application/json")
	rec := httptest.NewRecorder()
	handlerWith(t, &recorder{}, nil, 0).ServeHTTP(rec, req)
	if rec.Code != http.StatusBadRequest || !strings.Contains(rec.Body.String(), "connection reset") {
		t.Fatalf("HTTP %d %s", rec.Code, rec.Body)
	}
}

type panicking struct{ recorder }

func (p *panicking) Review(context.Context, model.AdmissionReview) (model.AdmissionResponse, error) {
	panic("a bug")
}

func TestAPanickingWebhookGetsA500AndTheServerLives(t *testing.T) {
	h := handlerWith(t, &panicking{}, nil, 0)
	body := review("v1", "CREATE", "Pod", podJSON("app", ""), false)
	for range 2 {
		if rec := serve(h, server.ValidatePath, body); rec.Code != http.StatusInternalServerError || !strings.Contains(rec.Body.String(), "see its log") {
			t.Fatalf("HTTP %d %s", rec.Code, rec.Body)
		}
	}
}
