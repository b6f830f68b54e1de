package server

import (
	"encoding/json"
	"os"
	"path/filepath"
	"reflect"
	"testing"

	"github.com/pod-identity/injector/pkg/admission"
)

// jsonDecode is the reference: the review decoded by encoding/json.
func jsonDecode(body []byte) (wireReview, *admission.WirePod, error) {
	var pr wirePodReview
	if err := json.Unmarshal(body, &pr); err != nil {
		return wireReview{}, nil, err
	}
	rev := wireReview{APIVersion: pr.APIVersion, Kind: pr.Kind}
	if pr.Request == nil {
		return rev, nil, nil
	}
	rev.Request = &wireRequest{requestMeta: pr.Request.requestMeta}
	return rev, pr.Request.Object, nil
}

func sameDecode(t *testing.T, body []byte) {
	t.Helper()
	rev, pod, err := scanReview(body)
	if err != nil {
		return // the scanner passes the body on to encoding/json
	}
	wrev, wpod, werr := jsonDecode(body)
	if werr != nil {
		t.Fatalf("the scanner accepted what encoding/json refuses (%v): %q", werr, body)
	}
	if !reflect.DeepEqual(rev, wrev) {
		t.Fatalf("review differs:\nscan %+v\njson %+v", rev, wrev)
	}
	if !reflect.DeepEqual(pod, wpod) {
		t.Fatalf("pod differs:\nscan %+v\njson %+v", pod, wpod)
	}
}

func TestScannerDecodesReviewsAsEncodingJSONDoes(t *testing.T) {
	bodies := [][]byte{}
	body, err := os.ReadFile("testdata/pod-review.json")
	if err != nil {
		t.Fatal(err)
	}
	bodies = append(bodies, body)
	for _, b := range []string{
		`{"apiVersion":"admission.k8s.io/v1","kind":"AdmissionReview","request":{"uid":"u","kind":{"group":"","version":"v1","kind":"Pod"},"operation":"CREATE","dryRun":true,"object":{"metadata":{"labels":{},"annotations":null},"spec":{"volumes":[],"containers":[{"name":"c","env":[],"volumeMounts":null}],"initContainers":null}}}}`,
		`{"request":{"object":null,"dryRun":null}}`,
		`{"request":null}`,
		`{"apiVersion":"admission.k8s.io/v1","request":{"object":{"spec":{"containers":[{"name":"a\u00e9\"b","env":[{"name":"X","valueFrom":{"fieldRef":{"fieldPath":"metadata.name"}}}],"volumeMounts":[{"name":"v","mountPath":"/p","readOnly":true,"mountPropagation":"None","subPath":"s"}]}],"affinity":{"nodeAffinity":{}},"nodeSelector":{"kubernetes.io/os":"windows"}}}}}`,
	} {
		bodies = append(bodies, []byte(b))
	}
	for _, b := range bodies {
		sameDecode(t, b)
	}
	// And every pod of every fixture, as the API server would send it.
	dirs, _ := filepath.Glob(filepath.Join("..", "..", "test", "fixtures", "*", "*", "expected.yaml"))
	if len(dirs) == 0 {
		t.Fatal("no fixtures")
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
	} {
		f.Add([]byte(seed))
	}
	f.Fuzz(func(t *testing.T, b []byte) { sameDecode(t, b) })
}
