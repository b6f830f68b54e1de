package server_test

import (
	"bytes"
	"context"
	"net/http"
	"net/http/httptest"
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

// TestLogsOneInfoLinePerMutatedPodAndNothingElse checks the logging
// contract at info level: a line per pod that was changed, none for a
// request that changes nothing, and never the patch.
func TestLogsOneInfoLinePerMutatedPodAndNothingElse(t *testing.T) {
	var out bytes.Buffer
	log := logrus.New()
	log.SetOutput(&out)
	log.SetFormatter(&logrus.JSONFormatter{})
	engine, err := testenv.Engine(context.Background(), log)
	if err != nil {
		t.Fatal(err)
	}
	sas := staticsa.Set{}.Add(&corev1.ServiceAccount{ObjectMeta: metav1.ObjectMeta{Namespace: "ns", Name: "app",
		Annotations: map[string]string{"eks.amazonaws.com/role-arn": roleARN}}}).
		Add(&corev1.ServiceAccount{ObjectMeta: metav1.ObjectMeta{Namespace: "ns", Name: "default"}}).
		Add(&corev1.ServiceAccount{ObjectMeta: metav1.ObjectMeta{Namespace: "ns", Name: "bad", Annotations: map[string]string{"eks.amazonaws.com/role-arn": "not-an-arn"}}})
	h, err := server.NewAdmissionHandler(admission.Config{Engine: engine, ServiceAccounts: sas, Log: log}, prometheus.NewRegistry(), 0)
	if err != nil {
		t.Fatal(err)
	}
	send := func(path, body string) {
		req := httptest.NewRequest(http.MethodPost, path, strings.NewReader(body))
		req.Header.Set("Content-Type", "application/json")
		rec := httptest.NewRecorder()
		h.ServeHTTP(rec, req)
		if rec.Code != http.StatusOK {
			t.Fatalf("HTTP %d: %s", rec.Code, rec.Body)
		}
	}
	for range 3 {
		send(server.MutatePath, review("v1", "CREATE", "Pod", podJSON("default", ""), false))
		send(server.ValidatePath, review("v1", "CREATE", "Pod", podJSON("app", ""), false))
	}
	if out.Len() != 0 {
		t.Errorf("requests that changed nothing logged at info:\n%s", out.String())
	}
	send(server.MutatePath, review("v1", "CREATE", "Pod", podJSON("app", ""), false))
	lines := strings.Split(strings.TrimSpace(out.String()), "\n")
	if len(lines) != 1 || !strings.Contains(lines[0], "injected cloud identity") || !strings.Contains(lines[0], `"providers":"aws"`) {
		t.Fatalf("want one info line for the mutated pod, got:\n%s", out.String())
	}
	for _, secret := range []string{`"patch"`, roleARN, "AWS_WEB_IDENTITY_TOKEN_FILE"} {
		if strings.Contains(lines[0], secret) {
			t.Errorf("the info line carries %s: %s", secret, lines[0])
		}
	}

	// A denial is one info line too, naming the pod and serviceaccount.
	out.Reset()
	send(server.ValidatePath, review("v1", "CREATE", "Pod", podJSON("bad", ""), false))
	lines = strings.Split(strings.TrimSpace(out.String()), "\n")
	if len(lines) != 1 || !strings.Contains(lines[0], `"level":"info"`) || !strings.Contains(lines[0], "denied pod") || !strings.Contains(lines[0], `"serviceaccount":"bad"`) {
		t.Fatalf("want one info line for the denied pod, got:\n%s", out.String())
	}
}
