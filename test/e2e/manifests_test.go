package e2e

import (
	"bufio"
	"bytes"
	"context"
	"errors"
	"io"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"
	"time"

	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/apis/meta/v1/unstructured"
	"k8s.io/apimachinery/pkg/runtime/schema"
	utilyaml "k8s.io/apimachinery/pkg/util/yaml"
	"k8s.io/client-go/discovery/cached/memory"
	"k8s.io/client-go/dynamic"
	"k8s.io/client-go/restmapper"
	"sigs.k8s.io/yaml"
)

func readObjects(t *testing.T, files ...string) []*unstructured.Unstructured {
	t.Helper()
	var out []*unstructured.Unstructured
	for _, f := range files {
		data, err := os.ReadFile(f)
		if err != nil {
			t.Fatal(err)
		}
		r := utilyaml.NewYAMLReader(bufio.NewReader(bytes.NewReader(data)))
		for {
			doc, err := r.Read()
			if errors.Is(err, io.EOF) {
				break
			}
			if err != nil {
				t.Fatal(err)
			}
			js, err := yaml.YAMLToJSON(doc)
			if err != nil {
				t.Fatal(err)
			}
			if len(bytes.TrimSpace(js)) == 0 || string(js) == "null" {
				continue
			}
			u := &unstructured.Unstructured{}
			if err := u.UnmarshalJSON(js); err != nil {
				t.Fatalf("%s: %v", f, err)
			}
			out = append(out, u)
		}
	}
	return out
}

// TestShippedManifestsAreAcceptedByTheAPIServer is `kubectl apply
// --dry-run=server -k deploy/manifests` against the test cluster with
// cert-manager's CRDs installed: the server's own validation accepts every
// object we ship.
func TestShippedManifestsAreAcceptedByTheAPIServer(t *testing.T) {
	root, err := RepoRoot()
	if err != nil {
		t.Fatal(err)
	}
	var k struct {
		Resources []string `json:"resources"`
	}
	data, err := os.ReadFile(filepath.Join(root, "deploy", "manifests", "kustomization.yaml"))
	if err != nil {
		t.Fatal(err)
	}
	if err := yaml.Unmarshal(data, &k); err != nil {
		t.Fatal(err)
	}
	var files []string
	for _, r := range k.Resources {
		files = append(files, filepath.Join(root, "deploy", "manifests", r))
	}
	dryRunApply(t, root, readObjects(t, files...))
}

// TestTheHelmRenderIsAcceptedByTheAPIServer is `helm template` of
// deploy/chart (the namespace created, CRDs included) applied with
// --dry-run=server: the chart's objects pass the server's validation too.
func TestTheHelmRenderIsAcceptedByTheAPIServer(t *testing.T) {
	root, err := RepoRoot()
	if err != nil {
		t.Fatal(err)
	}
	dir := t.TempDir()
	cmd := exec.Command("go", "run", "helm.sh/helm/v4/cmd/helm@v4.3.1", "template", "pod-identity-injector", filepath.Join(root, "deploy", "chart"),
		"--namespace", "pod-identity-system", "--include-crds", "--set", "namespace.create=true")
	cmd.Env = append(os.Environ(), "HELM_CACHE_HOME="+dir+"/cache", "HELM_CONFIG_HOME="+dir+"/config", "HELM_DATA_HOME="+dir+"/data")
	out, err := cmd.Output()
	if err != nil {
		t.Fatalf("helm template: %v", err)
	}
	file := filepath.Join(dir, "render.yaml")
	if err := os.WriteFile(file, out, 0o600); err != nil {
		t.Fatal(err)
	}
	dryRunApply(t, root, readObjects(t, file))
}

// dryRunApply installs cert-manager's CRDs and applies objs with
// --dry-run=server (Namespaces for real: namespaced objects need theirs),
// requiring every kind of the shipped installation to be there.
func dryRunApply(t *testing.T, root string, objs []*unstructured.Unstructured) {
	t.Helper()
	ctx := context.Background()
	cmd := exec.Command("go", "list", "-m", "-f", "{{.Dir}}", "github.com/cert-manager/cert-manager")
	cmd.Dir = root
	out, err := cmd.Output()
	if err != nil {
		t.Fatalf("locate the cert-manager module: %v", err)
	}
	crds, _ := filepath.Glob(filepath.Join(strings.TrimSpace(string(out)), "deploy", "crds", "*.yaml"))
	if len(crds) == 0 {
		t.Fatal("the cert-manager module ships no CRDs under deploy/crds")
	}
	dyn, err := dynamic.NewForConfig(cluster.Config)
	if err != nil {
		t.Fatal(err)
	}
	crdGVR := schema.GroupVersionResource{Group: "apiextensions.k8s.io", Version: "v1", Resource: "customresourcedefinitions"}
	for _, crd := range readObjects(t, crds...) {
		if crd.GetKind() != "CustomResourceDefinition" {
			continue
		}
		if _, err := dyn.Resource(crdGVR).Apply(ctx, crd.GetName(), crd, metav1.ApplyOptions{FieldManager: "e2e", Force: true}); err != nil {
			t.Fatalf("install CRD %s: %v", crd.GetName(), err)
		}
	}
	mapper := restmapper.NewDeferredDiscoveryRESTMapper(memory.NewMemCacheClient(cluster.Client.Discovery()))
	deadline := time.Now().Add(60 * time.Second)
	for _, u := range objs {
		gvk := u.GroupVersionKind()
		for {
			if _, err := mapper.RESTMapping(gvk.GroupKind(), gvk.Version); err == nil {
				break
			} else if time.Now().After(deadline) {
				t.Fatalf("the API server does not serve %s: %v", gvk, err)
			}
			time.Sleep(250 * time.Millisecond)
			mapper.Reset()
		}
	}
	apply := func(u *unstructured.Unstructured, dryRun bool) error {
		gvk := u.GroupVersionKind()
		m, err := mapper.RESTMapping(gvk.GroupKind(), gvk.Version)
		if err != nil {
			return err
		}
		opts := metav1.ApplyOptions{FieldManager: "e2e", Force: true}
		if dryRun {
			opts.DryRun = []string{metav1.DryRunAll}
		}
		var ri dynamic.ResourceInterface = dyn.Resource(m.Resource)
		if m.Scope.Name() == "namespace" {
			ri = dyn.Resource(m.Resource).Namespace(u.GetNamespace())
		}
		_, err = ri.Apply(ctx, u.GetName(), u, opts)
		return err
	}
	// Namespaced objects need their namespace to exist, even in a dry run.
	for _, u := range objs {
		if u.GetKind() == "Namespace" {
			if err := apply(u, false); err != nil {
				t.Fatalf("namespace %s: %v", u.GetName(), err)
			}
		}
	}
	kinds := map[string]int{}
	for _, u := range objs {
		if strings.HasSuffix(u.GetKind(), "WebhookConfiguration") {
			// The suite registered configurations of these names pointing at
			// the injector under test; check the shipped ones under another name.
			u.SetName(u.GetName() + "-shipped")
		}
		if err := apply(u, true); err != nil {
			t.Errorf("%s %s/%s refused by the API server: %v", u.GetKind(), u.GetNamespace(), u.GetName(), err)
		}
		kinds[u.GetKind()]++
	}
	for _, want := range []string{"Namespace", "ServiceAccount", "ClusterRole", "ClusterRoleBinding", "Deployment", "PodDisruptionBudget", "Service",
		"Issuer", "Certificate", "MutatingWebhookConfiguration", "ValidatingWebhookConfiguration", "CustomResourceDefinition", "NetworkPolicy"} {
		if kinds[want] == 0 {
			t.Errorf("the manifests have no %s", want)
		}
	}
}
