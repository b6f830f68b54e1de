package celbench

import (
	"context"
	"encoding/json"
	"fmt"
	"math/rand"
	"os"
	"path/filepath"
	"reflect"
	"regexp"
	"strings"
	"testing"

	"github.com/google/cel-go/cel"
	"google.golang.org/protobuf/encoding/protojson"
	"google.golang.org/protobuf/types/known/structpb"
	corev1 "k8s.io/api/core/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/apis/meta/v1/unstructured"
	"k8s.io/apimachinery/pkg/runtime"
	plugincel "k8s.io/apiserver/pkg/admission/plugin/cel"
	"k8s.io/apiserver/pkg/cel/environment"
	"sigs.k8s.io/yaml"

	admissionregv1 "k8s.io/api/admissionregistration/v1"
)

// writtenVariables is the mutating policy that apibench's prototype
// "rules written for the templates" measures (test/e2e/apibench/
// specialised.yaml), its variables marked "from the shipped policy"
// taken from p, reading the ServiceAccount parameters' version where the
// shipped policy reads the custom resource's generation.
func writtenVariables(t testing.TB, p *admissionregv1.MutatingAdmissionPolicy) *admissionregv1.MutatingAdmissionPolicy {
	raw, err := os.ReadFile(filepath.Join("..", "e2e", "apibench", "specialised.yaml"))
	if err != nil {
		t.Fatal(err)
	}
	var vars []admissionregv1.Variable
	if err := yaml.UnmarshalStrict(raw, &vars); err != nil {
		t.Fatal(err)
	}
	shipped := map[string]string{}
	for _, v := range p.Spec.Variables {
		shipped[v.Name] = v.Expression
	}
	for i, v := range vars {
		if v.Expression == "from the shipped policy" {
			if vars[i].Expression = shipped[v.Name]; vars[i].Expression == "" {
				t.Fatalf("the shipped policy has no variable %s", v.Name)
			}
			vars[i].Expression = strings.ReplaceAll(vars[i].Expression, "string(params.metadata.generation)", "params.metadata.resourceVersion")
		}
	}
	w := p.DeepCopy()
	w.Spec.Variables = vars
	return w
}

// serviceAccountParameters is the typed prototype's parameters: for each
// ServiceAccount of spec, an annotation of its name holding its entries
// and its values, split by '|'.
func serviceAccountParameters(t testing.TB, params *unstructured.Unstructured) *corev1.ServiceAccount {
	sas, _, _ := unstructured.NestedMap(params.Object, "spec", "serviceAccounts")
	ann := map[string]string{}
	for name, v := range sas {
		p, _ := v.(map[string]any)
		if _, ok := p["injections"]; ok {
			t.Fatalf("serviceaccount %s has injections of its own", name)
		}
		var fields []string
		es, _ := p["entries"].([]any)
		var entries []string
		for _, e := range es {
			entries = append(entries, fmt.Sprint(e))
		}
		fields = append(fields, strings.Join(entries, ","))
		vs, _ := p["values"].([]any)
		for _, v := range vs {
			fields = append(fields, fmt.Sprint(v))
		}
		ann[name] = strings.Join(fields, "|")
	}
	return &corev1.ServiceAccount{ObjectMeta: metav1.ObjectMeta{Namespace: ns, Name: "pod-identity-parameters", UID: "u-sa-params", ResourceVersion: "7", Annotations: ann}}
}

// anyValue is an expression whose value is the result (a match
// condition's must be a bool).
type anyValue string

func (a anyValue) GetExpression() string    { return string(a) }
func (a anyValue) ReturnTypes() []*cel.Type { return []*cel.Type{cel.AnyType} }

// compileValue compiles expression against p's variables, of any type.
func compileValue(t testing.TB, p *admissionregv1.MutatingAdmissionPolicy, expression string) evaluator {
	e := compile(t, p, "true")
	opts := plugincel.OptionalVariableDeclarations{HasParams: true, HasAuthorizer: true}
	e.eval = e.compiler.CompileCondition([]plugincel.ExpressionAccessor{anyValue(expression)}, opts, environment.StoredExpressions)
	return e
}

// value evaluates e for obj and returns its result as JSON, or the error.
func (e evaluator) value(t testing.TB, obj *corev1.Pod, params runtime.Object) string {
	ctx := e.compiler.CreateContext(context.Background())
	va, req, namespace := creation(obj)
	res, _, err := e.eval.ForInput(ctx, va, req, plugincel.OptionalVariableBindings{VersionedParams: params}, namespace, 10_000_000)
	if err != nil {
		t.Fatal(err)
	}
	if res[0].Error != nil {
		t.Fatalf("%s", res[0].Error)
	}
	v, err := res[0].EvalResult.ConvertToNative(reflect.TypeOf(&structpb.Value{}))
	if err != nil {
		t.Fatal(err)
	}
	b, err := protojson.Marshal(v.(*structpb.Value))
	if err != nil {
		t.Fatal(err)
	}
	var x any
	_ = json.Unmarshal(b, &x)
	b, _ = json.Marshal(x)
	return string(b)
}

// randomPod is apibench's pod as a tenant may vary it: the labels and
// annotations the two providers read, containers that set their
// variables or mount at their paths, volumes of their names, Windows.
func randomPod(r *rand.Rand) *corev1.Pod {
	pick := func(xs ...string) string { return xs[r.Intn(len(xs))] }
	p := pod()
	set := func(m map[string]string, k, v string) {
		if v != "" {
			m[k] = v
		}
	}
	labels := map[string]string{"app": "web"}
	set(labels, "azure.workload.identity/use", pick("", "true", "false", "true"))
	set(labels, "eks.amazonaws.com/pod-identity", pick("", "", "enabled", "disabled"))
	set(labels, "eks.amazonaws.com/skip-pod-identity-webhook", pick("", "", "", "true"))
	p.Labels = labels
	ann := map[string]string{}
	set(ann, "eks.amazonaws.com/skip-containers", pick("", "", "proxy", "app, logs", " "))
	set(ann, "eks.amazonaws.com/only-containers", pick("", "", "app", "logs,"))
	set(ann, "azure.workload.identity/skip-containers", pick("", "", "proxy", "app;logs"))
	set(ann, "azure.workload.identity/only-containers", pick("", "", "app", "app,logs"))
	set(ann, "eks.amazonaws.com/token-expiration", pick("", "", "3600", "100", "999999", "x", " 7200 "))
	set(ann, "azure.workload.identity/service-account-token-expiration", pick("", "", "3600", "100", "90000", "x"))
	set(ann, "eks.amazonaws.com/sts-regional-endpoints", pick("", "", "true"))
	set(ann, "azure.workload.identity/inject-proxy-sidecar", pick("", "", "true"))
	if len(ann) > 0 {
		p.Annotations = ann
	}
	if r.Intn(4) == 0 {
		p.Spec.NodeSelector = map[string]string{"kubernetes.io/os": "windows"}
	}
	for i := range p.Spec.Containers {
		c := &p.Spec.Containers[i]
		switch r.Intn(8) {
		case 0:
			c.Env = append(c.Env, corev1.EnvVar{Name: "AWS_ROLE_ARN", Value: "arn:aws:iam::111122223333:role/mine"})
		case 1:
			c.Env = append(c.Env, corev1.EnvVar{Name: "AWS_WEB_IDENTITY_TOKEN_FILE", Value: pick("/var/run/secrets/eks.amazonaws.com/serviceaccount/token", "/mine")})
		case 2:
			c.Env = append(c.Env, corev1.EnvVar{Name: "AZURE_CLIENT_ID", Value: "mine"})
		case 3:
			c.Env = append(c.Env, corev1.EnvVar{Name: "AZURE_FEDERATED_TOKEN_FILE", Value: pick("/var/run/secrets/azure/tokens/azure-identity-token", "/mine")})
		case 4:
			c.VolumeMounts = append(c.VolumeMounts, corev1.VolumeMount{Name: pick("aws-iam-token", "mine"), MountPath: "/var/run/secrets/eks.amazonaws.com/serviceaccount"})
		case 5:
			c.VolumeMounts = append(c.VolumeMounts, corev1.VolumeMount{Name: pick("azure-identity-token", "mine"), MountPath: "/var/run/secrets/azure/tokens"})
		}
	}
	switch r.Intn(6) {
	case 0:
		p.Spec.Volumes = append(p.Spec.Volumes, corev1.Volume{Name: pick("aws-iam-token", "azure-identity-token", "mine"), VolumeSource: corev1.VolumeSource{EmptyDir: &corev1.EmptyDirVolumeSource{}}})
	case 1:
		p.Spec.Volumes = append(p.Spec.Volumes, corev1.Volume{Name: "aws-iam-token", VolumeSource: corev1.VolumeSource{Projected: &corev1.ProjectedVolumeSource{
			Sources: []corev1.VolumeProjection{{ServiceAccountToken: &corev1.ServiceAccountTokenProjection{Audience: pick("sts.amazonaws.com", "other"), Path: "token"}}}}}})
	}
	return p
}

// TestTheWrittenPolicyDecidesAsTheGenericOne holds apibench's prototype of
// a mutating policy written for its templates to the shipped, generic
// one: for random pods of apibench's ServiceAccount, each reading its own
// parameters, the same volumes, mounts and variables for each container,
// annotations (the mark's parameters aside) and labels.
func TestTheWrittenPolicyDecidesAsTheGenericOne(t *testing.T) {
	generic := mutatingPolicy(t)
	written := writtenVariables(t, generic)
	crd := identityParameters(t)
	typed := serviceAccountParameters(t, crd)
	// The mark names the parameters object it was computed from.
	mark := regexp.MustCompile(`;app;u-(params;1|sa-params;7);`)
	r := rand.New(rand.NewSource(1))
	const pods = 300
	for _, v := range []string{"additions", "newVolumes", "newAnnotations", "newLabels"} {
		g, w := compileValue(t, generic, "variables."+v), compileValue(t, written, "variables."+v)
		r.Seed(1)
		differ := 0
		for i := range pods {
			p := randomPod(r)
			want := mark.ReplaceAllString(g.value(t, p, crd), ";app;P;")
			got := mark.ReplaceAllString(w.value(t, p, typed), ";app;P;")
			if got != want {
				differ++
				if differ <= 3 {
					b, _ := json.Marshal([]any{p.Labels, p.Annotations, p.Spec.NodeSelector, p.Spec.Volumes, p.Spec.Containers})
					t.Errorf("%s, pod %d %.600s:\n written %.700s\n generic %.700s", v, i, b, got, want)
				}
			}
		}
		if differ > 0 {
			t.Errorf("%s differs for %d of %d pods", v, differ, pods)
		}
	}
}
