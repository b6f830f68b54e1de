package manifest_test

import (
	"bytes"
	"context"
	"strings"
	"testing"

	"github.com/sirupsen/logrus"

	"github.com/pod-identity/injector/internal/testenv"
	"github.com/pod-identity/injector/pkg/manifest"
)

const stream = `# a comment before the first document
apiVersion: v1
kind: ServiceAccount
metadata:
  name: app
  annotations:
    eks.amazonaws.com/role-arn: arn:aws:iam::111122223333:role/app
---
apiVersion: v1
kind: ConfigMap
metadata: {name: untouched}
data: {b: "2", a: "1"}
---
---
apiVersion: v1
kind: List
items:
- apiVersion: apps/v1
  kind: Deployment
  metadata: {name: web, namespace: shop}
  spec:
    template:
      spec:
        serviceAccountName: app
        containers: [{name: c, image: i}]
- apiVersion: v1
  kind: Pod
  metadata: {name: p}
  spec:
    serviceAccountName: app
    containers: [{name: c, image: i}]
`

func TestReadingAStream(t *testing.T) {
	for _, tt := range []struct {
		name, in string
		kinds    string
		err      string
	}{
		{name: "a YAML stream keeps its documents in order and drops empty ones", in: stream, kinds: "ServiceAccount,ConfigMap,List"},
		{name: "concatenated JSON objects", in: `{"kind":"Pod"} {"kind":"ServiceAccount"}`, kinds: "Pod,ServiceAccount"},
		{name: "a JSON array is refused with the source named", in: `[1]`, err: "in.yaml"},
		{name: "broken YAML names the document", in: "kind: Pod\n---\nkind: [", err: "in.yaml#2"},
	} {
		t.Run(tt.name, func(t *testing.T) {
			docs, err := manifest.Read(strings.NewReader(tt.in), "in.yaml")
			if tt.err != "" {
				if err == nil || !strings.Contains(err.Error(), tt.err) {
					t.Fatalf("error = %v, want one naming %s", err, tt.err)
				}
				return
			}
			if err != nil {
				t.Fatal(err)
			}
			kinds := make([]string, len(docs))
			for i, d := range docs {
				kinds[i] = d.Kind()
			}
			if got := strings.Join(kinds, ","); got != tt.kinds {
				t.Fatalf("kinds = %s, want %s", got, tt.kinds)
			}
		})
	}
}

func TestMutatingAStream(t *testing.T) {
	docs, err := manifest.Read(strings.NewReader(stream), "in.yaml")
	if err != nil {
		t.Fatal(err)
	}
	sas := manifest.ServiceAccounts{}
	if err := sas.Add(docs, "shop"); err != nil {
		t.Fatal(err)
	}
	if sas["shop/app"] == nil {
		t.Fatalf("serviceaccounts %v: the one without a namespace belongs to the default namespace", sas)
	}
	engine, err := testenv.Engine(context.Background(), logrus.New())
	if err != nil {
		t.Fatal(err)
	}
	results, err := manifest.Mutate(engine, docs, manifest.Options{Namespace: "default", ServiceAccounts: sas})
	if err != nil {
		t.Fatal(err)
	}
	if len(results) != 2 {
		t.Fatalf("%d pod results, want the Deployment's template and the Pod", len(results))
	}
	byName := map[string]manifest.PodResult{}
	for _, r := range results {
		byName[r.Kind+"/"+r.Namespace+"/"+r.Name] = r
	}
	if r := byName["Deployment/shop/web"]; len(r.Patch) == 0 || r.Source != "in.yaml#3" {
		t.Errorf("the Deployment in shop, whose serviceaccount is shop/app, was not injected: %+v", r)
	}
	if r := byName["Pod/default/p"]; len(r.Patch) != 0 || !strings.Contains(strings.Join(r.Warnings, ""), `serviceaccount "default/app"`) {
		t.Errorf("the Pod in default has no serviceaccount in the stream: want no patch and a warning, got %+v", r)
	}
	changed := map[*manifest.Document]bool{docs[2]: true}
	var out bytes.Buffer
	if err := manifest.Write(&out, docs, changed, "yaml"); err != nil {
		t.Fatal(err)
	}
	for _, want := range []string{"# a comment before the first document", "data: {b: \"2\", a: \"1\"}", "aws-iam-token", "AWS_ROLE_ARN"} {
		if !strings.Contains(out.String(), want) {
			t.Errorf("output lacks %q:\n%s", want, out.String())
		}
	}
	if err := manifest.Write(&out, docs, changed, "xml"); err == nil {
		t.Error("an unknown output format was accepted")
	}
}
