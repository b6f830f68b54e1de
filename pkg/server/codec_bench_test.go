package server

// Whether the hand-written reader of reviews still pays for itself against
// the libraries:
//
//	go test -run - -bench Codec -benchmem ./pkg/server/
//
// Each reads the recorded three-container pod review as the handler needs
// it (the request's fields, the objects kept raw, the pod's fields the
// providers read). Figures in docs/performance.md.

import (
	"encoding/json"
	"os"
	"testing"

	jsonv2 "github.com/go-json-experiment/json"
	"github.com/go-json-experiment/json/jsontext"
	authenticationv1 "k8s.io/api/authentication/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"

	"github.com/pod-identity/injector/pkg/admission"
)

// refRequestV2 is refRequest with raw values as json v2 keeps them.
type refRequestV2 struct {
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
	Object             jsontext.Value               `json:"object"`
	OldObject          jsontext.Value               `json:"oldObject"`
	Options            jsontext.Value               `json:"options"`
	DryRun             *bool                        `json:"dryRun"`
}

type refReviewV2 struct {
	APIVersion string        `json:"apiVersion"`
	Kind       string        `json:"kind"`
	Request    *refRequestV2 `json:"request"`
}

func benchReview(b *testing.B) []byte {
	body, err := os.ReadFile("testdata/pod-review.json")
	if err != nil {
		b.Fatal(err)
	}
	return body
}

func BenchmarkCodecReadScanner(b *testing.B) {
	body := benchReview(b)
	b.ReportAllocs()
	for b.Loop() {
		rev, err := decodeReview(body)
		if err != nil || rev.Request.pod == nil {
			b.Fatal(err)
		}
	}
}

func BenchmarkCodecReadEncodingJSON(b *testing.B) {
	body := benchReview(b)
	b.ReportAllocs()
	for b.Loop() {
		var rev refReview
		var pod admission.WirePod
		if err := json.Unmarshal(body, &rev); err != nil {
			b.Fatal(err)
		}
		if err := json.Unmarshal(rev.Request.Object, &pod); err != nil {
			b.Fatal(err)
		}
	}
}

func BenchmarkCodecReadJSONv2(b *testing.B) {
	body := benchReview(b)
	b.ReportAllocs()
	for b.Loop() {
		var rev refReviewV2
		var pod admission.WirePod
		if err := jsonv2.Unmarshal(body, &rev); err != nil {
			b.Fatal(err)
		}
		if err := jsonv2.Unmarshal(rev.Request.Object, &pod); err != nil {
			b.Fatal(err)
		}
	}
}
