package server

import (
	"bytes"
	"encoding/json"
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"reflect"
	"strings"
	"testing"

	authenticationv1 "k8s.io/api/authentication/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"

	"github.com/pod-identity/injector/internal/admission"
	"github.com/pod-identity/injector/internal/jsonscan"
	"github.com/pod-identity/injector/pkg/manifest"
)

// refRequest is the reference: a review's request decoded by encoding/json.
type refRequest = refRequestOf[json.RawMessage]

// refRequestOf is a review's request as a library decodes it, with raw
// values of the library's own type.
type refRequestOf[Raw any] struct {
	UID                string                       `json:"uid"`
	Kind               metav1.GroupVersionKind      `json:"kind"`
	Resource           metav1.GroupVersionResource  `json:"resource"`
	SubResource        string                       `json:"subResource"`
	RequestKind        *metav1.GroupVersionKind     `json:"requestKind"`
	RequestResource    *metav1.GroupVersionResource `json:"requestResource"`
	RequestSubResource string                       `json:"requestSubResource"`
	Name               string                       `json:"name"`
	Namespace          string                       `json:"namespace"`
	Operation          string                       `json:"operation"`
	UserInfo           authenticationv1.UserInfo    `json:"userInfo"`
	Object             Raw                          `json:"object"`
	OldObject          Raw                          `json:"oldObject"`
	Options            Raw                          `json:"options"`
	DryRun             *bool                        `json:"dryRun"`
}

type refReview = refReviewOf[json.RawMessage]

type refReviewOf[Raw any] struct {
	APIVersion string             `json:"apiVersion"`
	Kind       string             `json:"kind"`
	Request    *refRequestOf[Raw] `json:"request"`
}

// refusedOnPurpose says err is input the scanner refuses although
// encoding/json would take it: what an API server never sends.
func refusedOnPurpose(err error) bool {
	return errors.Is(err, jsonscan.ErrDuplicate) || errors.Is(err, jsonscan.ErrCaseVariant) ||
		errors.Is(err, jsonscan.ErrTooDeep) || errors.Is(err, admission.ErrTooLarge)
}

func nullToNil(b []byte) []byte {
	if bytes.Equal(b, []byte("null")) {
		return nil
	}
	return b
}

// sameDecode checks the scanner against encoding/json on body. It reports
// whether the scanner read it.
func sameDecode(t *testing.T, body []byte) bool {
	t.Helper()
	rev, err := decodeReview(body)
	var ref refReview
	refErr := json.Unmarshal(body, &ref)
	if err != nil {
		if refErr == nil && !refusedOnPurpose(err) {
			t.Fatalf("the scanner refused what encoding/json reads (%v): %q", err, body)
		}
		return false
	}
	if refErr != nil {
		t.Fatalf("the scanner read what encoding/json refuses (%v): %q", refErr, body)
	}
	if rev.APIVersion != ref.APIVersion || rev.Kind != ref.Kind || (rev.Request == nil) != (ref.Request == nil) {
		t.Fatalf("review differs:\nscan %+v\njson %+v", rev, ref)
	}
	if rev.Request == nil {
		return true
	}
	r := rev.Request
	got := refRequest{UID: r.UID, Kind: r.Kind, Resource: r.Resource, SubResource: r.SubResource, RequestKind: r.RequestKind,
		RequestResource: r.RequestResource, RequestSubResource: r.RequestSubResource, Name: r.Name, Namespace: r.Namespace,
		Operation: r.Operation, UserInfo: r.UserInfo, Object: r.Object, OldObject: r.OldObject, Options: r.Options, DryRun: r.DryRun}
	want := *ref.Request
	want.Object, want.OldObject, want.Options = nullToNil(want.Object), nullToNil(want.OldObject), nullToNil(want.Options)
	if !reflect.DeepEqual(got, want) {
		t.Fatalf("request differs:\nscan %+v\njson %+v", got, want)
	}
	if want.Object == nil {
		if r.pod != nil || r.podErr != nil {
			t.Fatalf("no object, yet a pod %+v or an error %v", r.pod, r.podErr)
		}
		return true
	}
	var wantPod admission.WirePod
	podErr := json.Unmarshal(want.Object, &wantPod)
	switch {
	case r.podErr != nil && refusedOnPurpose(r.podErr):
	case (r.podErr != nil) != (podErr != nil):
		t.Fatalf("reading the object as a pod: scanner %v, encoding/json %v: %s", r.podErr, podErr, want.Object)
	case podErr == nil && !reflect.DeepEqual(*r.pod, wantPod):
		t.Fatalf("pod differs:\nscan %+v\njson %+v", *r.pod, wantPod)
	}
	return true
}

func podReview(object []byte) []byte {
	return fmt.Appendf(nil, `{"apiVersion":"admission.k8s.io/v1","kind":"AdmissionReview","request":{"uid":"u","kind":{"group":"","version":"v1","kind":"Pod"},"resource":{"group":"","version":"v1","resource":"pods"},"namespace":"ns","operation":"CREATE","userInfo":{"username":"system:serviceaccount:kube-system:replicaset-controller","uid":"1","groups":["system:serviceaccounts","system:authenticated"],"extra":{"k":["v"]}},"object":%s,"oldObject":null,"dryRun":false,"options":{"kind":"CreateOptions","apiVersion":"meta.k8s.io/v1"}}}`, object)
}

func TestScannerReadsReviewsAsEncodingJSONDoes(t *testing.T) {
	body, err := os.ReadFile("testdata/pod-review.json")
	if err != nil {
		t.Fatal(err)
	}
	bodies := map[string][]byte{"the recorded pod review": body}
	for name, b := range map[string]string{
		"empty and null lists keep their difference":     `{"apiVersion":"admission.k8s.io/v1","kind":"AdmissionReview","request":{"uid":"u","kind":{"group":"","version":"v1","kind":"Pod"},"operation":"CREATE","dryRun":true,"object":{"metadata":{"labels":{},"annotations":null},"spec":{"volumes":[],"containers":[{"name":"c","env":[],"volumeMounts":null}],"initContainers":null}}}}`,
		"null object and dryRun":                         `{"request":{"object":null,"dryRun":null}}`,
		"a null request":                                 `{"request":null}`,
		"escapes, valueFrom, mount options, affinity":    `{"apiVersion":"admission.k8s.io/v1","request":{"object":{"spec":{"containers":[{"name":"a\u00e9\"b","env":[{"name":"X","valueFrom":{"fieldRef":{"fieldPath":"metadata.name"}}}],"volumeMounts":[{"name":"v","mountPath":"/p","readOnly":true,"mountPropagation":"None","subPath":"s"}]}],"affinity":{"nodeAffinity":{}},"nodeSelector":{"kubernetes.io/os":"windows"}}}}}`,
		"an update with an old object and a subresource": `{"apiVersion":"admission.k8s.io/v1","kind":"AdmissionReview","request":{"uid":"u","kind":{"group":"","version":"v1","kind":"Pod"},"requestKind":{"group":"","version":"v1","kind":"Pod"},"requestResource":{"group":"","version":"v1","resource":"pods"},"subResource":"status","requestSubResource":"status","name":"p","operation":"UPDATE","object":{"metadata":{"name":"p"}},"oldObject":{"metadata":{"name":"p"}}}}`,
		"an object of another kind is kept raw":          `{"apiVersion":"admission.k8s.io/v1","kind":"AdmissionReview","request":{"uid":"u","kind":{"group":"apps","version":"v1","kind":"Deployment"},"operation":"CREATE","object":{"spec":{"containers":"not a list","template":{}}}}}`,
	} {
		bodies[name] = []byte(b)
	}
	// And every pod of every fixture, as the API server would send it.
	files, _ := filepath.Glob(filepath.Join("..", "..", "test", "fixtures", "*", "*", "*.yaml"))
	pods := 0
	for _, file := range files {
		f, err := os.Open(file)
		if err != nil {
			t.Fatal(err)
		}
		docs, err := manifest.Read(f, file)
		_ = f.Close()
		if err != nil {
			t.Fatal(err)
		}
		for i, d := range docs {
			if d.Kind() != "Pod" {
				continue
			}
			raw, err := json.Marshal(d.Object)
			if err != nil {
				t.Fatal(err)
			}
			bodies[fmt.Sprintf("%s document %d", strings.TrimPrefix(file, "../../test/fixtures/"), i+1)] = podReview(raw)
			pods++
		}
	}
	if pods < 20 {
		t.Fatalf("found %d fixture pods in %d files; the fixtures moved?", pods, len(files))
	}
	for name, b := range bodies {
		t.Run(name, func(t *testing.T) {
			// Every one of these is what an API server sends: the scanner
			// must read it, not merely agree when it does.
			if !sameDecode(t, b) {
				rev, err := decodeReview(b)
				t.Fatalf("the scanner refused it: %v (%+v)", err, rev)
			}
		})
	}
}

func TestScannerRefusesWhatAnAPIServerNeverSends(t *testing.T) {
	deep := func(n int) string { return strings.Repeat("[", n) + strings.Repeat("]", n) }
	tests := []struct {
		name, body string
		err        error
	}{
		{name: "a duplicate member", body: `{"apiVersion":"admission.k8s.io/v1","apiVersion":"admission.k8s.io/v1"}`, err: jsonscan.ErrDuplicate},
		{name: "a duplicate annotation among many", body: `{"request":{"object":{"metadata":{"annotations":{` + manyMembers(100) + `,"k7":""}}}}}`, err: nil},
		{name: "a case variant of a member read", body: `{"Request":{}}`, err: jsonscan.ErrCaseVariant},
		{name: "nesting deeper than encoding/json allows", body: `{"apiVersion":"admission.k8s.io/v1","kind":"AdmissionReview","x":` + deep(jsonscan.MaxDepth+1) + `}`, err: jsonscan.ErrTooDeep},
		{name: "deep nesting inside the pod", body: `{"request":{"kind":{"kind":"Pod"},"object":{"spec":{"affinity":` + deep(jsonscan.MaxDepth) + `}}}}`, err: jsonscan.ErrTooDeep},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			rev, err := decodeReview([]byte(tt.body))
			if tt.err == nil {
				// The duplicate is in the pod: the review is read, the pod is not.
				if err != nil || rev.Request == nil || !errors.Is(rev.Request.podErr, jsonscan.ErrDuplicate) {
					t.Fatalf("err = %v, pod error = %v; want the pod refused as a duplicate", err, rev.Request)
				}
				return
			}
			if !errors.Is(err, tt.err) {
				t.Fatalf("err = %v, want %v", err, tt.err)
			}
		})
	}
}

func manyMembers(n int) string {
	parts := make([]string, n)
	for i := range parts {
		parts[i] = fmt.Sprintf(`"k%d":""`, i)
	}
	return strings.Join(parts, ",")
}

func TestPodsBeyondTheLimitsAreNotRead(t *testing.T) {
	items := func(n int, item string) string { return strings.TrimSuffix(strings.Repeat(item+",", n), ",") }
	tests := []struct {
		name, object string
		tooLarge     bool
	}{
		{name: "as many containers as the limit", object: `{"spec":{"containers":[` + items(admission.MaxContainers, `{"name":"c"}`) + `]}}`},
		{name: "one container more", object: `{"spec":{"initContainers":[{"name":"i"}],"containers":[` + items(admission.MaxContainers, `{"name":"c"}`) + `]}}`, tooLarge: true},
		{name: "too many empty volumes", object: `{"spec":{"volumes":[` + items(admission.MaxListItems+1, `{}`) + `]}}`, tooLarge: true},
		{name: "too many projected sources in one volume", object: `{"spec":{"volumes":[{"name":"v","projected":{"sources":[` + items(admission.MaxListItems, `{}`) + `]}}]}}`, tooLarge: true},
		{name: "too many env entries", object: `{"spec":{"containers":[{"name":"c","env":[` + items(admission.MaxListItems, `{}`) + `]}]}}`, tooLarge: true},
		{name: "a large list the injector skips is no matter", object: `{"spec":{"containers":[{"name":"c","ports":[` + items(admission.MaxListItems*2, `{}`) + `]}]}}`},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			rev, err := decodeReview(podReview([]byte(tt.object)))
			if err != nil {
				t.Fatal(err)
			}
			if got := errors.Is(rev.Request.podErr, admission.ErrTooLarge); got != tt.tooLarge {
				t.Fatalf("too large = %v (%v), want %v", got, rev.Request.podErr, tt.tooLarge)
			}
		})
	}
}

func FuzzScannerAgreesWithEncodingJSON(f *testing.F) {
	body, err := os.ReadFile("testdata/pod-review.json")
	if err != nil {
		f.Fatal(err)
	}
	f.Add(body)
	for _, seed := range []string{
		`{"request":{"object":{"spec":{"containers":[{"env":[{"name":"A","value":"1"}]}]}}}}`,
		`{"request":{"uid":"u","dryRun":true,"kind":{"kind":"Pod"},"object":{"metadata":{"labels":{"a":"b"}}}}}`,
		`{"request":{"object":{"spec":{"volumes":[{"name":"v","projected":{"sources":[]}}],"containers":[],"nodeSelector":{}}}}}`,
		`{"request":{"object":{"spec":{"containers":[{"volumeMounts":[{"name":"v","mountPath":"/p","readOnly":false}]}]}}}}`,
		`{"request":{"userInfo":{"groups":["a"]},"oldObject":{"a":[[[]]]},"options":null}}`,
		`{"request":{"object":{"spec":{"affinity":[[[[[[[[[[{}]]]]]]]]]]}}}}`,
	} {
		f.Add([]byte(seed))
	}
	f.Fuzz(func(t *testing.T, b []byte) { sameDecode(t, b) })
}

// FuzzDeepNesting builds reviews nested as deeply as the fuzzer likes, at
// the places an attacker would choose: the scanner answers every one
// without exhausting its stack, and agrees with encoding/json.
func FuzzDeepNesting(f *testing.F) {
	f.Add(uint16(10), uint8(0), uint8(0))
	f.Add(uint16(jsonscan.MaxDepth), uint8(1), uint8(1))
	f.Add(uint16(jsonscan.MaxDepth+1), uint8(2), uint8(0))
	f.Add(uint16(60000), uint8(3), uint8(1))
	f.Fuzz(func(t *testing.T, depth uint16, where, shape uint8) {
		open, closer := "[", "]"
		if shape%2 == 1 {
			open, closer = `{"a":`, "}"
		}
		nested := strings.Repeat(open, int(depth)) + "1" + strings.Repeat(closer, int(depth))
		var body string
		switch where % 4 {
		case 0:
			body = `{"apiVersion":"admission.k8s.io/v1","kind":"AdmissionReview","x":` + nested + `}`
		case 1:
			body = string(podReview([]byte(`{"spec":{"affinity":` + nested + `}}`)))
		case 2:
			body = string(podReview([]byte(`{"spec":{"containers":[{"name":"c","env":[{"name":"E","valueFrom":` + nested + `}]}]}}`)))
		default:
			body = string(podReview([]byte(`{"metadata":{"managedFields":` + nested + `}}`)))
		}
		sameDecode(t, []byte(body))
	})
}

func TestReviewHeadReadsTheUIDOfACutReview(t *testing.T) {
	full := `{"kind":"AdmissionReview","apiVersion":"admission.k8s.io/v1beta1","request":{"uid":"u-1","kind":{"kind":"Pod"},"object":{"metadata":{"annotations":{"a":"` + strings.Repeat("\\u003c", 100) + `"}}}}}`
	tests := []struct {
		name, head, apiVersion, uid string
	}{
		{"a review cut inside its object", full[:len(full)/2], reviewV1beta1, "u-1"},
		{"a whole review", full, reviewV1beta1, "u-1"},
		{"a review cut inside its uid", full[:strings.Index(full, "u-1")+1], reviewV1beta1, ""},
		{"a review whose uid is not a string", `{"apiVersion":"admission.k8s.io/v1","request":{"uid":7}}`, reviewV1, ""},
		{"a review with no apiVersion before its request", `{"request":{"uid":"u-2"`, reviewV1, "u-2"},
		{"an unknown apiVersion is answered as v1", `{"apiVersion":"x","request":{"uid":"u-3"`, reviewV1, "u-3"},
		{"no JSON at all", `<html>`, reviewV1, ""},
		{"nothing", ``, reviewV1, ""},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			v, uid := reviewHead([]byte(tt.head))
			if v != tt.apiVersion || uid != tt.uid {
				t.Errorf("got %q %q, want %q %q", v, uid, tt.apiVersion, tt.uid)
			}
		})
	}
}
