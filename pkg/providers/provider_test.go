package providers_test

import (
	"errors"
	"strings"
	"testing"

	corev1 "k8s.io/api/core/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"

	"github.com/pod-identity/injector/pkg/providers"
)

func request(podAnn, saAnn map[string]string) providers.Request {
	return providers.Request{Namespace: "ns", PodName: "web", PodMeta: &metav1.ObjectMeta{Annotations: podAnn},
		ServiceAccount: &corev1.ServiceAccount{ObjectMeta: metav1.ObjectMeta{Namespace: "ns", Name: "app", Annotations: saAnn}}}
}

func TestTokenExpirationPrecedenceAndBounds(t *testing.T) {
	const key = "example.com/token-expiration"
	clamp := providers.Bounds{Min: 600, Max: 86400, Clamp: true, Lenient: true}
	strict := providers.Bounds{Min: 3600, Max: 86400}
	lenient := providers.Bounds{Min: 3600, Max: 86400, Lenient: true}
	tests := []struct {
		name       string
		pod, sa    map[string]string
		bounds     providers.Bounds
		want       int64
		warning    string
		invalidOn  string // "Pod" or "ServiceAccount"
		invalidVal string
	}{
		{name: "neither annotation gives the default", bounds: clamp, want: 3600},
		{name: "the serviceaccount's value beats the default", sa: map[string]string{key: "7200"}, bounds: clamp, want: 7200},
		{name: "the pod's value beats the serviceaccount's", pod: map[string]string{key: "1200"}, sa: map[string]string{key: "7200"}, bounds: clamp, want: 1200},
		{name: "spaces around the number are trimmed", sa: map[string]string{key: " 900 "}, bounds: clamp, want: 900},
		{name: "a value at the minimum is kept", sa: map[string]string{key: "600"}, bounds: clamp, want: 600},
		{name: "a value at the maximum is kept", sa: map[string]string{key: "86400"}, bounds: clamp, want: 86400},
		{name: "below the minimum is raised with a warning naming the pod", pod: map[string]string{key: "60"}, bounds: clamp, want: 600,
			warning: `pod "ns/web": annotation example.com/token-expiration="60" is below the minimum; using 600 seconds`},
		{name: "above the maximum is lowered with a warning naming the serviceaccount", sa: map[string]string{key: "100000"}, bounds: clamp, want: 86400,
			warning: `serviceaccount "ns/app": annotation example.com/token-expiration="100000" is above the maximum; using 86400 seconds`},
		{name: "out of range without clamping is invalid on the serviceaccount", sa: map[string]string{key: "600"}, bounds: strict, invalidOn: "ServiceAccount", invalidVal: "600"},
		{name: "not a number is invalid on the pod that set it, where the cloud denies", pod: map[string]string{key: "1h"}, bounds: strict, invalidOn: "Pod", invalidVal: "1h"},
		{name: "out of range without clamping falls back to the default where the cloud ignores it", sa: map[string]string{key: "600"}, bounds: lenient, want: 3600,
			warning: `example: serviceaccount "ns/app": annotation example.com/token-expiration has invalid value "600": expected a whole number of seconds from 3600 to 86400; using the default of 3600 seconds instead`},
		{name: "not a number on the pod falls back to the serviceaccount's value, as the EKS webhook does", pod: map[string]string{key: "1h"}, sa: map[string]string{key: "7200"}, bounds: clamp, want: 7200,
			warning: `example: pod "ns/web": annotation example.com/token-expiration has invalid value "1h": expected a whole number of seconds from 600 to 86400; using the serviceaccount's 7200 seconds instead`},
		{name: "not a number on the pod falls back to the default when the serviceaccount sets none", pod: map[string]string{key: "1h"}, bounds: clamp, want: 3600,
			warning: `example: pod "ns/web": annotation example.com/token-expiration has invalid value "1h": expected a whole number of seconds from 600 to 86400; using the default of 3600 seconds instead`},
		{name: "not a number on the pod and on the serviceaccount falls back to the default", pod: map[string]string{key: "1h"}, sa: map[string]string{key: "2h"}, bounds: clamp, want: 3600,
			warning: `example: pod "ns/web": annotation example.com/token-expiration has invalid value "1h"`},
		{name: "an empty value on the pod counts as absent", pod: map[string]string{key: " "}, sa: map[string]string{key: "7200"}, bounds: clamp, want: 7200},
		{name: "an empty value everywhere gives the default", pod: map[string]string{key: ""}, sa: map[string]string{key: ""}, bounds: clamp, want: 3600},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			got, warning, err := request(tt.pod, tt.sa).TokenExpiration("example", key, 3600, tt.bounds)
			if tt.invalidOn != "" {
				var ie *providers.InvalidError
				if !errors.As(err, &ie) || ie.Kind != tt.invalidOn || ie.Value != tt.invalidVal || ie.Annotation != key || ie.Provider != "example" {
					t.Fatalf("error = %#v, want an InvalidError on the %s with value %q", err, tt.invalidOn, tt.invalidVal)
				}
				return
			}
			if err != nil || got != tt.want {
				t.Fatalf("= %d, %v; want %d", got, err, tt.want)
			}
			if !strings.HasPrefix(warning, tt.warning) || (tt.warning == "") != (warning == "") {
				t.Fatalf("warning = %q, want one starting %q", warning, tt.warning)
			}
		})
	}
}

func TestInvalidErrorsNameEverythingAndQuoteABoundedValue(t *testing.T) {
	r := request(nil, nil)
	err := r.Invalid("aws", "eks.amazonaws.com/role-arn", "bad", "arn:aws:iam::<12 digits>:role/<name>")
	if want := `serviceaccount "ns/app": annotation eks.amazonaws.com/role-arn has invalid value "bad": expected arn:aws:iam::<12 digits>:role/<name>`; err.Error() != want {
		t.Errorf("got  %s\nwant %s", err, want)
	}
	long := r.InvalidPod("aws", "eks.amazonaws.com/token-expiration", strings.Repeat("9", 1<<20), "a number").Error()
	if len(long) > 400 || !strings.Contains(long, `pod "ns/web"`) || !strings.Contains(long, "(1048576 bytes)") {
		t.Errorf("a megabyte value gives a %d-byte message: %.300s", len(long), long)
	}
	if !providers.IsInvalid(err) || providers.IsInvalid(errors.New("other")) {
		t.Error("IsInvalid does not tell an InvalidError")
	}
}

func TestSplitList(t *testing.T) {
	for _, tt := range []struct{ name, in, sep, want string }{
		{name: "commas with spaces", in: " a, b ,c ", sep: ",", want: "a|b|c"},
		{name: "empty names are dropped", in: "a,,b,", sep: ",", want: "a|b"},
		{name: "another separator", in: "a;b", sep: ";", want: "a|b"},
		{name: "nothing", in: "", sep: ",", want: ""},
	} {
		t.Run(tt.name, func(t *testing.T) {
			if got := strings.Join(providers.SplitList(tt.in, tt.sep), "|"); got != tt.want {
				t.Errorf("= %q, want %q", got, tt.want)
			}
		})
	}
}
