package server

// Whether the hand-written reader of reviews still pays for itself against
// the libraries:
//
//	go test -run - -bench Codec -benchmem ./internal/server/
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

	"github.com/pod-identity/injector/internal/admission"
)

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
		var rev refReviewOf[jsontext.Value]
		var pod admission.WirePod
		if err := jsonv2.Unmarshal(body, &rev); err != nil {
			b.Fatal(err)
		}
		if err := jsonv2.Unmarshal(rev.Request.Object, &pod); err != nil {
			b.Fatal(err)
		}
	}
}
