package admission_test

import (
	"context"
	"errors"
	"strings"
	"testing"

	"github.com/prometheus/client_golang/prometheus"
	"github.com/slok/kubewebhook/v2/pkg/model"
	corev1 "k8s.io/api/core/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"

	"github.com/pod-identity/injector/internal/admission"
	"github.com/pod-identity/injector/internal/staticsa"
	"github.com/pod-identity/injector/pkg/mutate"
	"github.com/pod-identity/injector/pkg/providers"
	"github.com/pod-identity/injector/pkg/providers/azure"
)

func items(n int, item string) string { return strings.TrimSuffix(strings.Repeat(item+",", n), ",") }

func TestPodsAreReadUpToTheLimits(t *testing.T) {
	for _, tt := range []struct {
		name, pod string
		tooLarge  bool
	}{
		{name: "exactly as many containers as the limit", pod: `{"spec":{"containers":[` + items(admission.MaxContainers, `{"name":"c"}`) + `]}}`},
		{name: "one container more, counting init containers", pod: `{"spec":{"initContainers":[{"name":"i"}],"containers":[` + items(admission.MaxContainers, `{"name":"c"}`) + `]}}`, tooLarge: true},
		{name: "exactly as many list items as the limit", pod: `{"spec":{"containers":[{"name":"c","env":[` + items(admission.MaxListItems-1, `{"name":"E"}`) + `]}]}}`},
		{name: "one list item more", pod: `{"spec":{"containers":[{"name":"c","env":[` + items(admission.MaxListItems-1, `{"name":"E"}`) + `],"volumeMounts":[{"name":"v","mountPath":"/v"}]}]}}`, tooLarge: true},
		{name: "items inside volumes count", pod: `{"spec":{"volumes":[{"name":"v","projected":{"sources":[` + items(admission.MaxListItems, `{}`) + `]}}]}}`, tooLarge: true},
	} {
		t.Run(tt.name, func(t *testing.T) {
			_, err := admission.ReadPod([]byte(tt.pod))
			if got := errors.Is(err, admission.ErrTooLarge); got != tt.tooLarge || (!tt.tooLarge && err != nil) {
				t.Fatalf("error = %v, want too large: %v", err, tt.tooLarge)
			}
		})
	}
	if _, err := admission.ReadPod([]byte(`{"spec":{}} {"spec":{}}`)); err == nil {
		t.Error("a pod followed by more data was read")
	}
	if _, err := admission.ReadPod([]byte(` `)); err == nil {
		t.Error("nothing was read as a pod")
	}
}

func TestNamesAreCheckedAsTheAPIServerChecksThem(t *testing.T) {
	az, _ := azure.New(azure.Config{})
	m, err := admission.NewMutator(admission.Config{Engine: mutate.New([]providers.Provider{az}), ServiceAccounts: staticsa.Set{}.
		Add(&corev1.ServiceAccount{ObjectMeta: metav1.ObjectMeta{Namespace: strings.Repeat("n", 63), Name: strings.Repeat("s", 253)}})})
	if err != nil {
		t.Fatal(err)
	}
	pod := func(meta, sa string) string {
		return `{"metadata":{` + meta + `},"spec":{"serviceAccountName":"` + sa + `","containers":[{"name":"c"}]}}`
	}
	for _, tt := range []struct {
		name, namespace, object string
		refused                 string // what the denial names, or "" when admitted
	}{
		{name: "names at their longest are valid", namespace: strings.Repeat("n", 63), object: pod(`"name":"`+strings.Repeat("p", 253)+`"`, strings.Repeat("s", 253))},
		{name: "a namespace one character too long", namespace: strings.Repeat("n", 64), object: pod(`"name":"p"`, "s"), refused: "namespace"},
		{name: "a namespace with a capital", namespace: "Team", object: pod(`"name":"p"`, "s"), refused: "namespace"},
		{name: "a serviceaccount name one character too long", namespace: "ns", object: pod(`"name":"p"`, strings.Repeat("s", 254)), refused: "spec.serviceAccountName"},
		{name: "a serviceaccount name with an underscore", namespace: "ns", object: pod(`"name":"p"`, "my_sa"), refused: "spec.serviceAccountName"},
		{name: "a pod name with an underscore", namespace: "ns", object: pod(`"name":"web_1"`, "s"), refused: "pod name"},
		{name: "a generateName prefix ending in a dash is valid", namespace: "ns", object: pod(`"generateName":"web-"`, "s")},
		{name: "a generateName prefix with a capital", namespace: "ns", object: pod(`"generateName":"Web-"`, "s"), refused: "pod name"},
	} {
		t.Run(tt.name, func(t *testing.T) {
			ar := review(model.OperationCreate, tt.object)
			ar.Namespace = tt.namespace
			resp, err := m.Review(context.Background(), ar)
			if err != nil {
				t.Fatal(err)
			}
			denial, denied := resp.(*model.ValidatingAdmissionResponse)
			switch {
			case tt.refused == "" && denied:
				t.Fatalf("refused: %s", denial.Message)
			case tt.refused != "" && (!denied || denial.Allowed || !strings.Contains(denial.Message, tt.refused)):
				t.Fatalf("answer %+v, want a denial naming the %s", resp, tt.refused)
			}
		})
	}
}

func TestAGeneratedPodIsNamedByItsPrefix(t *testing.T) {
	az, _ := azure.New(azure.Config{})
	m, err := admission.NewMutator(admission.Config{Engine: mutate.New([]providers.Provider{az}), ServiceAccounts: staticsa.Set{}})
	if err != nil {
		t.Fatal(err)
	}
	resp, err := m.Review(context.Background(), review(model.OperationCreate, `{"metadata":{"generateName":"web-"},"spec":{"serviceAccountName":"ghost","containers":[{"name":"c"}]}}`))
	if err != nil {
		t.Fatal(err)
	}
	if w := strings.Join(resp.(*model.MutatingAdmissionResponse).Warnings, ""); !strings.Contains(w, `pod "ns/web-"`) {
		t.Errorf("warning %q does not name the pod by its prefix", w)
	}
}

func TestListsTheInjectorSkipsDoNotCountAgainstTheLimit(t *testing.T) {
	// A long list the injector does not decode (ports), then a volume with
	// one item: only what is decoded counts.
	pod := `{"spec":{"containers":[{"name":"c","ports":[` + items(admission.MaxListItems, `{}`) + `]}],"volumes":[{"name":"v","projected":{"sources":[{}]}}]}}`
	if _, err := admission.ReadPod([]byte(pod)); err != nil {
		t.Fatalf("refused: %v", err)
	}
}

func TestMetricsCannotBeRegisteredTwice(t *testing.T) {
	reg := prometheus.NewRegistry()
	if _, err := admission.NewMetrics(reg); err != nil {
		t.Fatal(err)
	}
	if _, err := admission.NewMetrics(reg); err == nil {
		t.Fatal("a second registration on the same registry succeeded")
	}
}
