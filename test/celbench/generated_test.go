package celbench

import (
	"context"
	"encoding/json"
	"fmt"
	"math/rand"
	"reflect"
	"slices"
	"strings"
	"testing"

	"github.com/google/cel-go/cel"
	"google.golang.org/protobuf/encoding/protojson"
	"google.golang.org/protobuf/types/known/structpb"
	admissionregv1 "k8s.io/api/admissionregistration/v1"
	corev1 "k8s.io/api/core/v1"
	"k8s.io/apimachinery/pkg/runtime"
	plugincel "k8s.io/apiserver/pkg/admission/plugin/cel"
	"k8s.io/apiserver/pkg/cel/environment"
)

// generatedCases are ServiceAccounts whose templates the test writes rules
// for: each provider alone, with the annotations that change its
// injection, and together.
var generatedCases = map[string]map[string]string{
	"aws":          {"eks.amazonaws.com/role-arn": "arn:aws:iam::111122223333:role/app"},
	"aws-tuned":    {"eks.amazonaws.com/role-arn": "arn:aws:iam::111122223333:role/tuned", "eks.amazonaws.com/audience": "sts.example.com", "eks.amazonaws.com/token-expiration": "3600", "eks.amazonaws.com/sts-regional-endpoints": "true"},
	"azure":        {"azure.workload.identity/client-id": "22222222-2222-3333-4444-555555555555", "azure.workload.identity/tenant-id": "contoso.onmicrosoft.com"},
	"azure-tuned":  {"azure.workload.identity/client-id": "33333333-2222-3333-4444-555555555555", "azure.workload.identity/service-account-token-expiration": "7200"},
	"gcp":          {"cloud.google.com/workload-identity-provider": "projects/123456789/locations/global/workloadIdentityPools/pool/providers/provider", "cloud.google.com/service-account-email": "app@project.iam.gserviceaccount.com"},
	"three-clouds": {"eks.amazonaws.com/role-arn": "arn:aws:iam::111122223333:role/three", "azure.workload.identity/client-id": "44444444-2222-3333-4444-555555555555", "cloud.google.com/workload-identity-provider": "projects/123456789/locations/global/workloadIdentityPools/pool/providers/provider"},
}

// generatedPod is randomPod's pod with the ServiceAccount and the Google
// annotations and container variables too.
func generatedPod(r *rand.Rand, serviceAccount string) *corev1.Pod {
	p := randomPod(r)
	p.Spec.ServiceAccountName = serviceAccount
	if r.Intn(4) == 0 {
		if p.Annotations == nil {
			p.Annotations = map[string]string{}
		}
		p.Annotations["cloud.google.com/"+[]string{"skip-containers", "only-containers", "token-expiration", "other"}[r.Intn(4)]] = []string{"app", "logs", "3600", "x"}[r.Intn(4)]
	}
	if r.Intn(5) == 0 {
		c := &p.Spec.Containers[r.Intn(len(p.Spec.Containers))]
		c.Env = append(c.Env, corev1.EnvVar{Name: []string{"GOOGLE_APPLICATION_CREDENTIALS", "CLOUDSDK_AUTH_CREDENTIAL_FILE_OVERRIDE"}[r.Intn(2)], Value: "/mine"})
	}
	return p
}

// canonical is a value as the patch applies it: the annotations added in
// any order.
func canonical(variable, value string) string {
	if variable != "newAnnotations" {
		return value
	}
	var pairs [][]string
	if err := json.Unmarshal([]byte(value), &pairs); err != nil {
		return value
	}
	slices.SortFunc(pairs, func(a, b []string) int { return strings.Compare(fmt.Sprint(a), fmt.Sprint(b)) })
	b, _ := json.Marshal(pairs)
	return string(b)
}

func sanitize(s string) string { return strings.ReplaceAll(s, "-", "") }

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
	if r.Intn(4) == 0 {
		p.Spec.NodeSelector = map[string]string{"kubernetes.io/os": "windows"}
	}
	withInitContainer(r, p)
	if plain(r) {
		return p
	}
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
	for _, c := range allContainers(p) {
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

// withInitContainer gives p, one time in three, an init container: with
// variables, mounts, both or neither of its own.
func withInitContainer(r *rand.Rand, p *corev1.Pod) {
	if r.Intn(3) != 0 {
		return
	}
	c := corev1.Container{Name: "init", Image: "registry.example.com/init:1"}
	if r.Intn(2) == 0 {
		c.Env = []corev1.EnvVar{{Name: "MODE", Value: "init"}}
	}
	if r.Intn(2) == 0 {
		c.VolumeMounts = []corev1.VolumeMount{{Name: "data", MountPath: "/data"}}
	}
	p.Spec.InitContainers = append(p.Spec.InitContainers, c)
}

// plain is true one time in three: the random pod then stays as it is,
// its labels and OS aside, touching none of the names the identities read
// or add (the written policy's quick way).
func plain(r *rand.Rand) bool { return r.Intn(3) == 0 }

// allContainers are p's init containers and containers.
func allContainers(p *corev1.Pod) []*corev1.Container {
	var out []*corev1.Container
	for i := range p.Spec.InitContainers {
		out = append(out, &p.Spec.InitContainers[i])
	}
	for i := range p.Spec.Containers {
		out = append(out, &p.Spec.Containers[i])
	}
	return out
}
