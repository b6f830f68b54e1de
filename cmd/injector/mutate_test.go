package main

import (
	"encoding/json"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/pod-identity/injector/pkg/providers/registry"
)

const saAndPod = `apiVersion: v1
kind: ServiceAccount
metadata: {name: app, namespace: ns, annotations: {eks.amazonaws.com/role-arn: "arn:aws:iam::111122223333:role/app"}}
---
apiVersion: v1
kind: Pod
metadata: {name: p, namespace: ns}
spec:
  serviceAccountName: app
  containers: [{name: c, image: i}]
`

func TestMutateCommand(t *testing.T) {
	tests := []struct {
		name     string
		args     []string
		stdin    string
		contains []string
		err      string
		json     bool
	}{
		{name: "stdin is read with -f -", args: []string{"-f", "-"}, stdin: saAndPod, contains: []string{"AWS_ROLE_ARN", "---\n"}},
		{name: "json output has one object per document", args: []string{"-f", "-", "-o", "json"}, stdin: saAndPod, contains: []string{`"kind": "Pod"`, `"AWS_WEB_IDENTITY_TOKEN_FILE"`}},
		{name: "a JSON stream is read as well as YAML", args: []string{"-f", "-", "-o", "json"}, stdin: `{"apiVersion":"v1","kind":"ServiceAccount","metadata":{"name":"default","namespace":"default","annotations":{"eks.amazonaws.com/role-arn":"arn:aws:iam::111122223333:role/x"}}}
{"apiVersion":"v1","kind":"Pod","metadata":{"name":"q"},"spec":{"containers":[{"name":"c"}]}}`, contains: []string{`"aws-iam-token"`}},
		{name: "a List's items are mutated", args: []string{"-f", "-"}, stdin: `{"apiVersion":"v1","kind":"List","items":[{"apiVersion":"v1","kind":"ServiceAccount","metadata":{"name":"default","namespace":"default","annotations":{"eks.amazonaws.com/role-arn":"arn:aws:iam::111122223333:role/x"}}},{"apiVersion":"v1","kind":"Pod","metadata":{"name":"q"},"spec":{"containers":[{"name":"c"}]}}]}`, contains: []string{"aws-iam-token"}},
		{name: "--patch prints one JSON patch per pod", args: []string{"-f", "-", "--patch"}, stdin: saAndPod, contains: []string{`"kind":"Pod","name":"p","namespace":"ns","patch":[{"op":"add","path":"/spec/volumes"`}},
		{name: "JSON input stays JSON without -o", args: []string{"-f", "-"}, stdin: `{"apiVersion":"v1","kind":"ServiceAccount","metadata":{"name":"default","namespace":"default","annotations":{"eks.amazonaws.com/role-arn":"arn:aws:iam::111122223333:role/x"}}}
{"apiVersion":"v1","kind":"Pod","metadata":{"name":"q"},"spec":{"containers":[{"name":"c"}]}}`, contains: []string{`"kind": "Pod"`, `"aws-iam-token"`}, json: true},
		{name: "a stream of YAML and JSON is written as YAML", args: []string{"-f", "-"}, stdin: saAndPod + "---\n" + `{"apiVersion":"v1","kind":"ConfigMap","metadata":{"name":"c"}}`, contains: []string{"kind: ConfigMap", "AWS_ROLE_ARN"}},
		{name: "malformed YAML names the document", args: []string{"-f", "-"}, stdin: "kind: Pod\n---\nkind: [\n", err: "stdin#2"},
		{name: "a missing file is an error", args: []string{"-f", "/nonexistent/pods.yaml"}, err: "/nonexistent/pods.yaml"},
		{name: "an unknown output format is refused", args: []string{"-f", "-", "-o", "toml"}, err: `invalid argument "toml" for "-o, --output" flag: expected yaml or json`},
		{name: "an unknown invalid-identity mode is refused", args: []string{"-f", "-", "--invalid-identity", "maybe"}, err: "expected deny or warn"},
		{name: "-f is required", args: nil, err: "-f is required"},
		{name: "a pod template that is not an object is an error", args: []string{"-f", "-"}, stdin: "kind: Deployment\nmetadata: {name: d}\nspec: {template: 3}\n", err: "deployment default/d: expected a pod template"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			out, _, err := runInjector(append([]string{"mutate"}, tt.args...), []byte(tt.stdin))
			if tt.err != "" {
				if err == nil || !strings.Contains(err.Error(), tt.err) {
					t.Fatalf("error = %v, want one containing %q", err, tt.err)
				}
				return
			}
			if err != nil {
				t.Fatal(err)
			}
			for _, s := range tt.contains {
				if !strings.Contains(string(out), s) {
					t.Errorf("output lacks %q:\n%s", s, out)
				}
			}
			if tt.json || tt.args[len(tt.args)-1] == "json" {
				dec := json.NewDecoder(strings.NewReader(string(out)))
				for dec.More() {
					var v map[string]any
					if err := dec.Decode(&v); err != nil {
						t.Fatalf("output is not a JSON stream: %v", err)
					}
				}
			}
		})
	}
}

// TestEachProviderConfigFileIsReadOncePerProcess: the command line, every
// command's flags and the providers' first load share one read of each
// --provider-config file, however many commands the binary has.
func TestEachProviderConfigFileIsReadOncePerProcess(t *testing.T) {
	reads := map[string]int{}
	defer func(read func(string) ([]byte, error)) { registry.ReadFile = read }(registry.ReadFile)
	registry.ReadFile = func(name string) ([]byte, error) {
		reads[filepath.Base(name)]++
		return os.ReadFile(name)
	}
	root := filepath.Join("..", "..")
	args := []string{"mutate", "-f", filepath.Join(root, "examples", "alibaba-pod.yaml"),
		"--provider-config", filepath.Join(root, "deploy", "providers", "alibaba-rrsa.yaml"),
		"--provider-config=" + filepath.Join(root, "deploy", "providers", "vault.yaml")}
	if _, _, err := runInjector(args, nil); err != nil {
		t.Fatal(err)
	}
	if reads["alibaba-rrsa.yaml"] != 1 || reads["vault.yaml"] != 1 {
		t.Errorf("reads %v, want each file once", reads)
	}
}
