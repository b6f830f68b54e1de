package deploy_test

import (
	"bytes"
	"encoding/json"
	"errors"
	"io"
	"os"
	"os/exec"
	"path/filepath"
	"reflect"
	"slices"
	"strings"
	"testing"

	admissionregv1 "k8s.io/api/admissionregistration/v1"
	appsv1 "k8s.io/api/apps/v1"
	utilyaml "k8s.io/apimachinery/pkg/util/yaml"
	"sigs.k8s.io/yaml"
)

// helmModule is the Helm the chart is tested with, run with `go run` so
// that the product's go.mod does not carry it.
const helmModule = "helm.sh/helm/v4/cmd/helm@v4.3.1"

// helm runs the Helm command line with its state in a temporary folder.
func helm(t *testing.T, args ...string) string {
	t.Helper()
	dir := t.TempDir()
	cmd := exec.Command("go", append([]string{"run", helmModule}, args...)...)
	cmd.Env = append(os.Environ(), "HELM_CACHE_HOME="+dir+"/cache", "HELM_CONFIG_HOME="+dir+"/config", "HELM_DATA_HOME="+dir+"/data")
	var out, stderr bytes.Buffer
	cmd.Stdout, cmd.Stderr = &out, &stderr
	if err := cmd.Run(); err != nil {
		t.Fatalf("helm %s: %v\n%s%s", strings.Join(args, " "), err, out.String(), stderr.String())
	}
	return out.String()
}

// objects decodes a YAML stream into objects keyed "Kind namespace/name".
func objects(t *testing.T, stream string) map[string]map[string]any {
	t.Helper()
	out := map[string]map[string]any{}
	r := utilyaml.NewYAMLReader(bufioReader([]byte(stream)))
	for {
		doc, err := r.Read()
		if errors.Is(err, io.EOF) {
			return out
		}
		if err != nil {
			t.Fatal(err)
		}
		var obj map[string]any
		if err := yaml.Unmarshal(doc, &obj); err != nil {
			t.Fatal(err)
		}
		if obj == nil {
			continue
		}
		meta, _ := obj["metadata"].(map[string]any)
		out[obj["kind"].(string)+" "+str(meta["namespace"])+"/"+str(meta["name"])] = obj
	}
}

func str(v any) string { s, _ := v.(string); return s }

// withoutHelmLabels removes the labels Helm's conventions add, and the
// maps that leaves empty.
func withoutHelmLabels(obj map[string]any) map[string]any {
	meta, _ := obj["metadata"].(map[string]any)
	if labels, ok := meta["labels"].(map[string]any); ok {
		for _, k := range []string{"helm.sh/chart", "app.kubernetes.io/managed-by", "app.kubernetes.io/instance"} {
			delete(labels, k)
		}
		if len(labels) == 0 {
			delete(meta, "labels")
		}
	}
	if ann, ok := meta["annotations"].(map[string]any); ok && len(ann) == 0 || meta["annotations"] == nil {
		delete(meta, "annotations")
	}
	return obj
}

func baseObjects(t *testing.T) map[string]map[string]any {
	t.Helper()
	var all strings.Builder
	for _, res := range readKustomization(t, "manifests").Resources {
		data, err := os.ReadFile(filepath.Join("manifests", res))
		if err != nil {
			t.Fatal(err)
		}
		all.WriteString("---\n" + string(data) + "\n")
	}
	return objects(t, all.String())
}

// TestTheChartLints: `helm lint --strict`, with the defaults and with
// every setting changed.
func TestTheChartLints(t *testing.T) {
	helm(t, "lint", "--strict", "chart")
	helm(t, append([]string{"lint", "--strict", "chart"}, nonDefaultValues...)...)
}

// TestTheChartRendersTheKustomizeBase: with its defaults (and the
// namespace created), `helm template` renders exactly the objects of
// deploy/manifests, but for Helm's own labels.
func TestTheChartRendersTheKustomizeBase(t *testing.T) {
	got := objects(t, helm(t, "template", "pod-identity-injector", "chart", "--namespace", "pod-identity-system", "--include-crds", "--set", "namespace.create=true"))
	want := baseObjects(t)
	var gotKeys, wantKeys []string
	for k := range got {
		gotKeys = append(gotKeys, k)
	}
	for k := range want {
		wantKeys = append(wantKeys, k)
	}
	slices.Sort(gotKeys)
	slices.Sort(wantKeys)
	if !slices.Equal(gotKeys, wantKeys) {
		t.Fatalf("the chart renders\n%v\nthe base has\n%v", gotKeys, wantKeys)
	}
	for _, k := range wantKeys {
		g, w := withoutHelmLabels(got[k]), withoutHelmLabels(want[k])
		if !reflect.DeepEqual(g, w) {
			gj, _ := json.MarshalIndent(g, "", " ")
			wj, _ := json.MarshalIndent(w, "", " ")
			t.Errorf("%s differs from the base:\nchart %s\nbase  %s", k, gj, wj)
		}
	}
	crd, _ := os.ReadFile("manifests/crds/pod-identity.io_identitypolicies.yaml")
	chartCRD, _ := os.ReadFile("chart/crds/pod-identity.io_identitypolicies.yaml")
	if !bytes.Equal(crd, chartCRD) || len(crd) == 0 {
		t.Error("chart/crds holds another CRD than manifests/crds: run hack/generate.sh")
	}
}

// nonDefaultValues changes every setting the chart has.
var nonDefaultValues = []string{
	"--set", "image.repository=registry.example.com/injector,image.tag=v1.2.3,image.pullPolicy=Always",
	"--set", "replicas=3,priorityClassName=,invalidIdentity=warn,logFormat=text",
	"--set", "args.aws-default-region=eu-west-1,args.client-ca-file=/etc/client-ca/ca.crt",
	"--set", "failurePolicy=Fail,serviceAccountFailurePolicy=Fail,timeoutSeconds=3",
	"--set", "excludeNamespaces={monitoring}",
	"--set", "certificate.certManager=false,certificate.secretName=injector-tls,certificate.caBundle=-----BEGIN CERTIFICATE-----",
	"--set", "networkPolicy.enabled=false,podDisruptionBudget.minAvailable=2,namespace.create=true",
	"--set", "commonLabels.team=platform,commonAnnotations.owner=platform@example.com",
}

// TestEverySettingReachesItsObject renders with every setting changed and
// finds each change where it belongs.
func TestEverySettingReachesItsObject(t *testing.T) {
	got := objects(t, helm(t, append([]string{"template", "injector", "chart", "--namespace", "identity"}, nonDefaultValues...)...))
	var dep appsv1.Deployment
	var mut admissionregv1.MutatingWebhookConfiguration
	var val, enf admissionregv1.ValidatingWebhookConfiguration
	for key, into := range map[string]any{"Deployment identity/pod-identity-injector": &dep,
		"MutatingWebhookConfiguration /pod-identity-injector": &mut, "ValidatingWebhookConfiguration /pod-identity-injector-serviceaccounts": &val,
		"ValidatingWebhookConfiguration /pod-identity-injector-enforce": &enf} {
		raw, _ := json.Marshal(got[key])
		if err := json.Unmarshal(raw, into); err != nil || got[key] == nil {
			t.Fatalf("%s: %v", key, err)
		}
	}
	c := dep.Spec.Template.Spec.Containers[0]
	for _, check := range []struct {
		what string
		ok   bool
	}{
		{"image", c.Image == "registry.example.com/injector:v1.2.3" && c.ImagePullPolicy == "Always"},
		{"replicas", *dep.Spec.Replicas == 3},
		{"no priority class", dep.Spec.Template.Spec.PriorityClassName == ""},
		{"flags", slices.Contains(c.Args, "--invalid-identity=warn") && slices.Contains(c.Args, "--log-format=text") &&
			slices.Contains(c.Args, "--aws-default-region=eu-west-1") && slices.Contains(c.Args, "--client-ca-file=/etc/client-ca/ca.crt")},
		{"the serving secret", dep.Spec.Template.Spec.Volumes[0].Secret.SecretName == "injector-tls"},
		{"failure policies and timeout", *mut.Webhooks[0].FailurePolicy == admissionregv1.Fail && *val.Webhooks[0].FailurePolicy == admissionregv1.Fail &&
			*enf.Webhooks[0].FailurePolicy == admissionregv1.Fail && *mut.Webhooks[0].TimeoutSeconds == 3 && *enf.Webhooks[0].TimeoutSeconds == 3},
		{"the enforcement webhook's path and excluded namespaces", *enf.Webhooks[0].ClientConfig.Service.Path == "/enforce" &&
			slices.Equal(enf.Webhooks[0].NamespaceSelector.MatchExpressions[1].Values, []string{"identity", "kube-system", "monitoring"})},
		{"the CA bundle instead of cert-manager's injection", string(mut.Webhooks[0].ClientConfig.CABundle) == "-----BEGIN CERTIFICATE-----" &&
			mut.Annotations["cert-manager.io/inject-ca-from"] == "" && got["Certificate identity/pod-identity-injector-serving"] == nil},
		{"the release namespace and the extra one excluded", slices.Equal(mut.Webhooks[0].NamespaceSelector.MatchExpressions[1].Values, []string{"identity", "kube-system", "monitoring"}) &&
			mut.Webhooks[0].ClientConfig.Service.Namespace == "identity"},
		{"no network policy", got["NetworkPolicy identity/pod-identity-injector"] == nil},
		{"the disruption budget", got["PodDisruptionBudget identity/pod-identity-injector"]["spec"].(map[string]any)["minAvailable"] == float64(2)},
		{"the namespace, labelled", got["Namespace /identity"]["metadata"].(map[string]any)["labels"].(map[string]any)["pod-identity.io/inject"] == "disabled"},
		{"common labels and annotations", dep.Labels["team"] == "platform" && dep.Annotations["owner"] == "platform@example.com" && mut.Labels["team"] == "platform"},
	} {
		if !check.ok {
			t.Errorf("%s: not as set", check.what)
		}
	}
}
