// Package celbench measures, without an API server, what each part of the
// shipped MutatingAdmissionPolicy costs to evaluate for one pod: its
// variables one by one (each measured with those before it, as the API
// server evaluates them lazily and once per request), its match
// conditions, and its mutation. It compiles the policy with the API
// server's own CEL plumbing (k8s.io/apiserver, the version the e2e suite
// runs) and reads parameters that `injector sync`'s controller computes
// for the pod's ServiceAccount. `make apibench` measures the API server
// as a whole; this says which expression to look at. policy_test.go and
// random_test.go hold the written policy (parameters.WrittenPolicy, what
// sync --written-policy writes) to the shipped policy.
//
//	cd test/celbench && go test -run '^$' -bench . -benchmem
package celbench

import (
	"context"
	"encoding/json"
	"fmt"
	"os"
	"path/filepath"
	"strings"
	"testing"

	admissionv1 "k8s.io/api/admission/v1"
	admissionregv1 "k8s.io/api/admissionregistration/v1"
	corev1 "k8s.io/api/core/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/apis/meta/v1/unstructured"
	"k8s.io/apimachinery/pkg/runtime"
	"k8s.io/apimachinery/pkg/runtime/schema"
	"k8s.io/apiserver/pkg/admission"
	plugincel "k8s.io/apiserver/pkg/admission/plugin/cel"
	"k8s.io/apiserver/pkg/admission/plugin/policy/mutating/patch"
	"k8s.io/apiserver/pkg/admission/plugin/policy/validating"
	"k8s.io/apiserver/pkg/admission/plugin/webhook/matchconditions"
	"k8s.io/apiserver/pkg/cel/environment"
	dynamicfake "k8s.io/client-go/dynamic/fake"
	"sigs.k8s.io/yaml"

	"github.com/pod-identity/injector/internal/parameters"
	"github.com/pod-identity/injector/internal/testenv"
	"github.com/pod-identity/injector/pkg/parameters/v1alpha1"
	"github.com/pod-identity/injector/pkg/providers/builtin"
	"github.com/pod-identity/injector/pkg/providers/providertest"
)

const ns = "apibench"

// serviceAccount is apibench's: AWS and Azure identities.
func serviceAccount() *corev1.ServiceAccount {
	return &corev1.ServiceAccount{ObjectMeta: metav1.ObjectMeta{Namespace: ns, Name: testenv.APIBenchServiceAccount, UID: "u-app", ResourceVersion: "1",
		Annotations: testenv.APIBenchAnnotations()}}
}

// pod is apibench's realistic pod, in its namespace.
func pod() *corev1.Pod {
	p := testenv.APIBenchPod()
	p.Namespace = ns
	return p
}

type serviceAccounts []*corev1.ServiceAccount

func (s serviceAccounts) List(string) ([]*corev1.ServiceAccount, error) { return s, nil }
func (s serviceAccounts) Namespaces() []string                          { return []string{ns} }
func (s serviceAccounts) HasSynced() bool                               { return true }

// identityParameters is the namespace's object as sync would write it.
func identityParameters(b testing.TB) *unstructured.Unstructured {
	return identityParametersOf(b, []*corev1.ServiceAccount{serviceAccount(), {ObjectMeta: metav1.ObjectMeta{Namespace: ns, Name: "default"}}})
}

// identityParametersOf is the namespace's object as sync would write it
// for these ServiceAccounts.
func identityParametersOf(b testing.TB, sas []*corev1.ServiceAccount) *unstructured.Unstructured {
	// The providers as `injector sync` builds them with its defaults, as
	// apibench's sync runs.
	engine, _, cancel, err := providertest.EngineFromFlags(builtin.New(), nil)
	if err != nil {
		b.Fatal(err)
	}
	b.Cleanup(cancel)
	c, err := parameters.New(parameters.Config{Engine: engine, ServiceAccounts: serviceAccounts(sas),
		Dynamic: dynamicfake.NewSimpleDynamicClientWithCustomListKinds(runtime.NewScheme(),
			map[schema.GroupVersionResource]string{v1alpha1.GroupVersionResource: "IdentityParametersList"})})
	if err != nil {
		b.Fatal(err)
	}
	spec, _, err := c.Desired(ns)
	if err != nil {
		b.Fatal(err)
	}
	u, err := runtime.DefaultUnstructuredConverter.ToUnstructured(&spec)
	if err != nil {
		b.Fatal(err)
	}
	return &unstructured.Unstructured{Object: map[string]any{
		"apiVersion": v1alpha1.GroupVersion.String(), "kind": v1alpha1.Kind,
		"metadata": map[string]any{"name": v1alpha1.Name, "namespace": ns, "uid": "u-params", "generation": int64(1)},
		"spec":     u,
	}}
}

func mutatingPolicy(b testing.TB) *admissionregv1.MutatingAdmissionPolicy {
	file := filepath.Join("..", "..", "deploy", "policy", "mutatingadmissionpolicy.yaml")
	if f := os.Getenv("CELBENCH_POLICY"); f != "" {
		file = f
	}
	raw, err := os.ReadFile(file)
	if err != nil {
		b.Fatal(err)
	}
	var p admissionregv1.MutatingAdmissionPolicy
	if err := yaml.UnmarshalStrict(raw, &p); err != nil {
		b.Fatal(err)
	}
	return &p
}

// evaluator is a condition, or the policy's mutation, compiled against the
// policy's variables.
type evaluator struct {
	compiler *plugincel.CompositedCompiler
	eval     plugincel.ConditionEvaluator
	mutation plugincel.MutatingEvaluator
}

func compile(b testing.TB, p *admissionregv1.MutatingAdmissionPolicy, expression string) evaluator {
	compiler, err := plugincel.NewCompositedCompiler(environment.MustBaseEnvSet(environment.DefaultCompatibilityVersion()))
	if err != nil {
		b.Fatal(err)
	}
	opts := plugincel.OptionalVariableDeclarations{HasParams: true, HasAuthorizer: true}
	vars := make([]plugincel.NamedExpressionAccessor, len(p.Spec.Variables))
	for i, v := range p.Spec.Variables {
		vars[i] = &validating.Variable{Name: v.Name, Expression: v.Expression}
	}
	compiler.CompileAndStoreVariables(vars, opts, environment.StoredExpressions)
	if expression == "" {
		opts.HasPatchTypes = true
		return evaluator{compiler: compiler, mutation: compiler.CompileMutatingEvaluator(&patch.JSONPatchCondition{Expression: p.Spec.Mutations[0].JSONPatch.Expression}, opts, environment.StoredExpressions)}
	}
	eval := compiler.CompileCondition([]plugincel.ExpressionAccessor{&matchconditions.MatchCondition{Name: "probe", Expression: expression}}, opts, environment.StoredExpressions)
	return evaluator{compiler: compiler, eval: eval}
}

// creation is what the API server evaluates a policy with for a new
// pod: its attributes (the pod read lazily), the request, the namespace.
func creation(obj *corev1.Pod) (*admission.VersionedAttributes, *admissionv1.AdmissionRequest, *corev1.Namespace) {
	gvk := corev1.SchemeGroupVersion.WithKind("Pod")
	attrs := admission.NewAttributesRecord(obj, nil, gvk, ns, "", corev1.SchemeGroupVersion.WithResource("pods"), "", admission.Create, &metav1.CreateOptions{}, false, nil)
	va := &admission.VersionedAttributes{Attributes: attrs, VersionedObject: admission.NewLazyObject(obj), VersionedOldObject: admission.NewLazyObject(nil), VersionedKind: gvk}
	va.VersionedObject.UseSchemalessTypeRef = true
	va.VersionedOldObject.UseSchemalessTypeRef = true
	req := &admissionv1.AdmissionRequest{Kind: metav1.GroupVersionKind{Version: "v1", Kind: "Pod"}, Namespace: ns, Operation: admissionv1.Create}
	return va, req, &corev1.Namespace{ObjectMeta: metav1.ObjectMeta{Name: ns}}
}

// run evaluates e once for a new request, as the API server does.
func (e evaluator) run(b *testing.B, obj *corev1.Pod, params runtime.Object) {
	ctx := e.compiler.CreateContext(context.Background())
	va, req, namespace := creation(obj)
	bindings := plugincel.OptionalVariableBindings{VersionedParams: params}
	if e.mutation != nil {
		res, _, err := e.mutation.ForInput(ctx, va, req, bindings, namespace, 10_000_000)
		if err != nil {
			b.Fatal(err)
		}
		if res.Error != nil {
			b.Fatal(res.Error)
		}
		return
	}
	res, _, err := e.eval.ForInput(ctx, va, req, bindings, namespace, 10_000_000)
	if err != nil {
		b.Fatal(err)
	}
	if res[0].Error != nil {
		b.Fatal(res[0].Error)
	}
}

// BenchmarkMutatingPolicy evaluates the policy's variables (each with
// those before it), then its match conditions, for apibench's pod.
// Subtract a variable's figure from the next one's for what it adds.
func BenchmarkMutatingPolicy(b *testing.B) {
	p := mutatingPolicy(b)
	params := identityParameters(b)
	if raw, err := json.Marshal(params.Object); err == nil {
		b.Logf("parameters: %d templates, %d bytes as JSON", len(params.Object["spec"].(map[string]any)["templates"].([]any)), len(raw))
		if f := os.Getenv("CELBENCH_DUMP"); f != "" {
			_ = os.WriteFile(f, raw, 0o644)
		}
	}
	o := pod()
	b.Run("nothing, no parameters", func(b *testing.B) {
		e := compile(b, p, "true")
		for b.Loop() {
			e.run(b, o, nil)
		}
	})
	b.Run("nothing (the activation)", func(b *testing.B) {
		e := compile(b, p, "true")
		for b.Loop() {
			e.run(b, o, params)
		}
	})
	var seen []string
	for _, v := range p.Spec.Variables {
		seen = append(seen, "dyn(variables."+v.Name+")")
		e := compile(b, p, "size(["+strings.Join(seen, ", ")+"]) >= 0")
		b.Run(fmt.Sprintf("variables to %s", v.Name), func(b *testing.B) {
			for b.Loop() {
				e.run(b, o, params)
			}
		})
	}
	b.Run("the mutation (its variables, the patch)", func(b *testing.B) {
		e := compile(b, p, "")
		for b.Loop() {
			e.run(b, o, params)
		}
	})
	// The written policy for apibench's namespace (policy_test.go holds
	// it to the shipped one), with the records it reads.
	b.Run("the mutation of the written policy, with its records", func(b *testing.B) {
		_, records, written := writtenForSync(b, p, params)
		e := compile(b, written, "")
		for b.Loop() {
			e.run(b, o, records)
		}
	})
	for _, m := range p.Spec.MatchConditions {
		e := compile(b, p, m.Expression)
		b.Run("match condition "+m.Name, func(b *testing.B) {
			for b.Loop() {
				e.run(b, o, params)
			}
		})
	}
}

// BenchmarkWrittenPolicy evaluates the written policy (what sync
// --written-policy writes for apibench's namespace) with its records:
// each match condition, then each variable the mutation reads on its own
// (with what it reads: the pod's set only), then the mutation.
func BenchmarkWrittenPolicy(b *testing.B) {
	_, records, p := writtenForSync(b, mutatingPolicy(b), identityParameters(b))
	o := pod()
	for _, m := range p.Spec.MatchConditions {
		e := compile(b, p, m.Expression)
		b.Run("match condition "+m.Name, func(b *testing.B) {
			for b.Loop() {
				e.run(b, o, records)
			}
		})
	}
	for _, v := range []string{"chosen", "values", "listed", "fast", "fastMounts", "fastEnv", "containers", "additions", "newVolumes", "addedAnnotations", "mayWarn", "mayDeny", "newAnnotations", "newLabels"} {
		e := compile(b, p, "size([dyn(variables."+v+")]) >= 0")
		b.Run("variable "+v, func(b *testing.B) {
			for b.Loop() {
				e.run(b, o, records)
			}
		})
	}
	b.Run("the mutation", func(b *testing.B) {
		e := compile(b, p, "")
		for b.Loop() {
			e.run(b, o, records)
		}
	})
}
