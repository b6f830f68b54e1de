package e2e

import (
	"context"
	"fmt"
	"io"
	"strings"
	"testing"
	"time"

	admissionregv1 "k8s.io/api/admissionregistration/v1"
	corev1 "k8s.io/api/core/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/apis/meta/v1/unstructured"
	"k8s.io/client-go/dynamic"

	"github.com/pod-identity/injector/pkg/parameters/v1alpha1"
)

// TestPolicyParametersStayCurrentAfterTheirBindingsWent is why policy
// mode keeps its parameters in a custom resource, though a ConfigMap would
// be cheaper to read at every pod (docs/performance.md). A reinstall, an
// upgrade that replaces the bindings, or another product's policy leaves
// a moment when no binding reads parameters of a kind, and the API server
// stops watching that kind. For a custom resource it watches the kind
// again once a binding names it. For a ConfigMap (v1.37.2) it restarts
// nothing: its bindings read the parameters as they were, whatever is
// written since, until the API server restarts. For policy mode that
// would be a new ServiceAccount's pods refused and a changed role still
// injected. Should the API server learn to watch again, this test fails,
// and that design is open again. A ServiceAccount, also typed and read as
// cheaply, stays current: the ServiceAccount admission plugin keeps that
// informer running for the server's life, and the policy plugin's stop
// does not stop it (the route docs/performance.md describes).
func TestPolicyParametersStayCurrentAfterTheirBindingsWent(t *testing.T) {
	ctx, cancel := context.WithTimeout(context.Background(), 3*time.Minute)
	defer cancel()
	bare, err := StartBareCluster(ctx, t.TempDir(), cluster.repoRoot, io.Discard)
	if err != nil {
		t.Fatal(err)
	}
	defer bare.Stop()
	if err := bare.InstallCRDs(ctx); err != nil {
		t.Fatal(err)
	}
	const ns = "probe"
	client := bare.Client
	if _, err := client.CoreV1().Namespaces().Create(ctx, &corev1.Namespace{ObjectMeta: metav1.ObjectMeta{Name: ns}}, metav1.CreateOptions{}); err != nil {
		t.Fatal(err)
	}
	if _, err := client.CoreV1().ConfigMaps(ns).Create(ctx, &corev1.ConfigMap{ObjectMeta: metav1.ObjectMeta{Name: "params"}, Data: map[string]string{"allowed": "yes"}}, metav1.CreateOptions{}); err != nil {
		t.Fatal(err)
	}
	if _, err := client.CoreV1().ServiceAccounts(ns).Create(ctx, &corev1.ServiceAccount{ObjectMeta: metav1.ObjectMeta{Name: "params", Annotations: map[string]string{"allowed": "yes"}}}, metav1.CreateOptions{}); err != nil {
		t.Fatal(err)
	}
	dyn, err := dynamic.NewForConfig(bare.Config)
	if err != nil {
		t.Fatal(err)
	}
	params := &unstructured.Unstructured{Object: map[string]any{
		"apiVersion": v1alpha1.GroupVersion.String(), "kind": v1alpha1.Kind,
		"metadata": map[string]any{"name": "params", "namespace": ns},
		"spec":     map[string]any{"serviceAccounts": map[string]any{"allowed": map[string]any{}}},
	}}
	if params, err = dyn.Resource(v1alpha1.GroupVersionResource).Namespace(ns).Create(ctx, params, metav1.CreateOptions{}); err != nil {
		t.Fatal(err)
	}

	for _, tc := range []struct {
		name, kind, apiVersion, expression string
		// allow changes the parameters so that they admit the probe, or
		// refuse it.
		allow       func(bool) error
		seesChanges bool
	}{
		{"a custom resource's bindings see their parameters change again", v1alpha1.Kind, v1alpha1.GroupVersion.String(), "'allowed' in params.spec.serviceAccounts",
			func(allow bool) error {
				name := "other"
				if allow {
					name = "allowed"
				}
				params.Object["spec"] = map[string]any{"serviceAccounts": map[string]any{name: map[string]any{}}}
				var err error
				params, err = dyn.Resource(v1alpha1.GroupVersionResource).Namespace(ns).Update(ctx, params, metav1.UpdateOptions{})
				return err
			}, true},
		{"a ConfigMap's bindings keep reading what their parameters were", "ConfigMap", "v1", "params.data.allowed == 'yes'",
			func(allow bool) error {
				v := "no"
				if allow {
					v = "yes"
				}
				_, err := client.CoreV1().ConfigMaps(ns).Update(ctx, &corev1.ConfigMap{ObjectMeta: metav1.ObjectMeta{Name: "params"}, Data: map[string]string{"allowed": v}}, metav1.UpdateOptions{})
				return err
			}, false},
		{"a ServiceAccount's bindings see their parameters change again", "ServiceAccount", "v1", "params.metadata.?annotations[?'allowed'].orValue('') == 'yes'",
			func(allow bool) error {
				v := "no"
				if allow {
					v = "yes"
				}
				sa, err := client.CoreV1().ServiceAccounts(ns).Get(ctx, "params", metav1.GetOptions{})
				if err != nil {
					return err
				}
				sa.Annotations = map[string]string{"allowed": v}
				_, err = client.CoreV1().ServiceAccounts(ns).Update(ctx, sa, metav1.UpdateOptions{})
				return err
			}, true},
	} {
		t.Run(tc.name, func(t *testing.T) {
			label := strings.ToLower(tc.kind)
			policy := &admissionregv1.ValidatingAdmissionPolicy{
				ObjectMeta: metav1.ObjectMeta{Name: "probe-" + label},
				Spec: admissionregv1.ValidatingAdmissionPolicySpec{
					ParamKind: &admissionregv1.ParamKind{APIVersion: tc.apiVersion, Kind: tc.kind},
					MatchConstraints: &admissionregv1.MatchResources{ResourceRules: []admissionregv1.NamedRuleWithOperations{{
						RuleWithOperations: admissionregv1.RuleWithOperations{
							Operations: []admissionregv1.OperationType{admissionregv1.Create},
							Rule:       admissionregv1.Rule{APIGroups: []string{""}, APIVersions: []string{"v1"}, Resources: []string{"configmaps"}},
						},
					}}},
					Validations: []admissionregv1.Validation{{Expression: "!has(object.data) && " + tc.expression}},
				},
			}
			deny := admissionregv1.DenyAction
			binding := &admissionregv1.ValidatingAdmissionPolicyBinding{
				ObjectMeta: metav1.ObjectMeta{Name: policy.Name},
				Spec: admissionregv1.ValidatingAdmissionPolicyBindingSpec{
					PolicyName:        policy.Name,
					ParamRef:          &admissionregv1.ParamRef{Name: "params", ParameterNotFoundAction: &deny},
					MatchResources:    &admissionregv1.MatchResources{ObjectSelector: &metav1.LabelSelector{MatchLabels: map[string]string{"probe": label}}},
					ValidationActions: []admissionregv1.ValidationAction{admissionregv1.Deny},
				},
			}
			ar := client.AdmissionregistrationV1()
			if _, err := ar.ValidatingAdmissionPolicies().Create(ctx, policy, metav1.CreateOptions{}); err != nil {
				t.Fatal(err)
			}
			n := 0
			// probe creates a ConfigMap the policy matches: with data, one
			// its validation refuses; without, one it admits once the
			// binding found parameters that allow it.
			probe := func(data map[string]string) error {
				n++
				_, err := client.CoreV1().ConfigMaps(ns).Create(ctx, &corev1.ConfigMap{ObjectMeta: metav1.ObjectMeta{
					Name: fmt.Sprintf("probe-%s-%d", label, n), Labels: map[string]string{"probe": label}}, Data: data}, metav1.CreateOptions{})
				return err
			}
			refusing := map[string]string{"refused": "yes"}
			// until polls f for d; it says whether f ever held, and f's last error.
			until := func(d time.Duration, f func() (bool, error)) (bool, error) {
				var last error
				for deadline := time.Now().Add(d); time.Now().Before(deadline); time.Sleep(250 * time.Millisecond) {
					var ok bool
					if ok, last = f(); ok {
						return true, last
					}
				}
				return false, last
			}
			inForce := func() (bool, error) { err := probe(refusing); return err != nil, err }
			gone := func() (bool, error) { err := probe(refusing); return err == nil, err }
			found := func() (bool, error) { err := probe(nil); return err == nil, err }
			if _, err := ar.ValidatingAdmissionPolicyBindings().Create(ctx, binding, metav1.CreateOptions{}); err != nil {
				t.Fatal(err)
			}
			if ok, _ := until(30*time.Second, inForce); !ok {
				t.Fatal("the binding never came into force")
			}
			if ok, last := until(10*time.Second, found); !ok {
				t.Fatalf("the first binding never found its parameters: %v", last)
			}
			// Before: the API server sees the parameters change, both ways.
			refused := func() (bool, error) { err := probe(nil); return err != nil, err }
			if err := tc.allow(false); err != nil {
				t.Fatal(err)
			}
			if ok, _ := until(20*time.Second, refused); !ok {
				t.Fatal("the first binding never saw its parameters refuse the probe")
			}
			if err := tc.allow(true); err != nil {
				t.Fatal(err)
			}
			if ok, last := until(20*time.Second, found); !ok {
				t.Fatalf("the first binding never saw its parameters admit the probe again: %v", last)
			}
			if err := ar.ValidatingAdmissionPolicyBindings().Delete(ctx, binding.Name, metav1.DeleteOptions{}); err != nil {
				t.Fatal(err)
			}
			if ok, last := until(30*time.Second, gone); !ok {
				t.Fatalf("the binding, deleted, stayed in force: %v", last)
			}
			// Past the API server's refresh of its policies (every second).
			time.Sleep(3 * time.Second)
			binding.ResourceVersion = ""
			if _, err := ar.ValidatingAdmissionPolicyBindings().Create(ctx, binding, metav1.CreateOptions{}); err != nil {
				t.Fatal(err)
			}
			if ok, _ := until(30*time.Second, inForce); !ok {
				t.Fatal("the binding, made again, never came into force")
			}
			if ok, last := until(20*time.Second, found); !ok {
				t.Fatalf("the binding, made again, never found its parameters: %v", last)
			}
			// The parameters no longer allow the probe: the API server
			// refuses it once it sees the change.
			if err := tc.allow(false); err != nil {
				t.Fatal(err)
			}
			ok, last := until(15*time.Second, refused)
			switch {
			case tc.seesChanges && !ok:
				t.Error("the binding, made again, never saw its parameters change")
			case tc.seesChanges && !strings.Contains(last.Error(), "failed expression"):
				t.Errorf("refused for another reason than the changed parameters: %v", last)
			case !tc.seesChanges && ok:
				t.Errorf("the API server now sees a ConfigMap's parameters change after its bindings went and came back (%v): a ConfigMap can hold policy mode's parameters (docs/performance.md)", last)
			}
		})
	}
}
