package e2e

import (
	"context"
	"encoding/json"
	"fmt"
	"io"
	"net/http"
	"strings"
	"sync"
	"testing"
	"time"

	corev1 "k8s.io/api/core/v1"
	apierrors "k8s.io/apimachinery/pkg/api/errors"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/apis/meta/v1/unstructured"
	"k8s.io/apimachinery/pkg/runtime/schema"
	"k8s.io/apimachinery/pkg/types"
	"k8s.io/client-go/dynamic"
	"k8s.io/client-go/kubernetes"
	"k8s.io/client-go/rest"
)

var policiesGVR = schema.GroupVersionResource{Group: "pod-identity.io", Version: "v1alpha1", Resource: "identitypolicies"}

const (
	adminRole = "arn:aws:iam::111122223333:role/admin"
	// policyLabel marks the namespaces the test's policy governs.
	policyLabel = "e2e.pod-identity.io/governed"
)

func policies(t *testing.T) dynamic.ResourceInterface {
	t.Helper()
	dyn, err := dynamic.NewForConfig(cluster.Config)
	if err != nil {
		t.Fatal(err)
	}
	return dyn.Resource(policiesGVR)
}

// identityPolicy is an IdentityPolicy object as a user would write it.
func identityPolicy(name string, spec map[string]any) *unstructured.Unstructured {
	return &unstructured.Unstructured{Object: map[string]any{
		"apiVersion": "pod-identity.io/v1alpha1", "kind": "IdentityPolicy",
		"metadata": map[string]any{"name": name}, "spec": spec,
	}}
}

// createPolicy creates a policy as `kubectl apply` would (unknown fields
// are errors) and deletes it when the test ends.
func createPolicy(t *testing.T, p *unstructured.Unstructured) error {
	t.Helper()
	_, err := policies(t).Create(context.Background(), p, metav1.CreateOptions{FieldValidation: "Strict"})
	if err == nil {
		t.Cleanup(func() { _ = policies(t).Delete(context.Background(), p.GetName(), metav1.DeleteOptions{}) })
	}
	return err
}

// warningClient is a client that keeps the warnings the API server sends.
type warningClient struct {
	*kubernetes.Clientset
	mu       sync.Mutex
	warnings []string
}

func (w *warningClient) HandleWarningHeader(_ int, _ string, text string) {
	w.mu.Lock()
	defer w.mu.Unlock()
	w.warnings = append(w.warnings, text)
}

func (w *warningClient) take() []string {
	w.mu.Lock()
	defer w.mu.Unlock()
	out := w.warnings
	w.warnings = nil
	return out
}

func newWarningClient(t *testing.T) *warningClient {
	t.Helper()
	w := &warningClient{}
	cfg := rest.CopyConfig(cluster.Config)
	cfg.WarningHandler = w
	cs, err := kubernetes.NewForConfig(cfg)
	if err != nil {
		t.Fatal(err)
	}
	w.Clientset = cs
	return w
}

// annotate is `kubectl annotate serviceaccount NAME KEY=VALUE`.
func annotate(c kubernetes.Interface, ns, name, key, value string) error {
	patch := fmt.Sprintf(`{"metadata":{"annotations":{%q:%q}}}`, key, value)
	_, err := c.CoreV1().ServiceAccounts(ns).Patch(context.Background(), name, types.MergePatchType, []byte(patch), metav1.PatchOptions{})
	return err
}

// until polls cond every 50 ms for up to 20 s and returns how long it took.
func until(t *testing.T, what string, cond func() bool) time.Duration {
	t.Helper()
	t0 := time.Now()
	// 45 s: a policy reaches the injector through two informers (the
	// policy and the namespace's labels); on this two-core machine, with
	// the rest of the suite's servers busy, 20 s was once too short.
	for !cond() {
		if time.Since(t0) > 45*time.Second {
			t.Fatalf("after 45s, still not %s\ninjector log tail:\n%s", what, cluster.InjectorLog())
		}
		time.Sleep(50 * time.Millisecond)
	}
	return time.Since(t0)
}

// policyTable is `kubectl get identitypolicies`: the API server's table of
// them, with the CRD's printer columns.
func policyTable(t *testing.T) map[string]map[string]string {
	t.Helper()
	hc, err := rest.HTTPClientFor(cluster.Config)
	if err != nil {
		t.Fatal(err)
	}
	req, _ := http.NewRequest(http.MethodGet, cluster.APIURL+"/apis/pod-identity.io/v1alpha1/identitypolicies", nil)
	req.Header.Set("Accept", "application/json;as=Table;v=v1;g=meta.k8s.io")
	resp, err := hc.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	defer func() { _ = resp.Body.Close() }()
	body, _ := io.ReadAll(resp.Body)
	var table metav1.Table
	if err := json.Unmarshal(body, &table); err != nil {
		t.Fatalf("%v: %s", err, body)
	}
	rows := map[string]map[string]string{}
	for _, r := range table.Rows {
		row := map[string]string{}
		for i, c := range table.ColumnDefinitions {
			row[c.Name] = fmt.Sprint(r.Cells[i])
		}
		rows[row["Name"]] = row
	}
	return rows
}

// TestMalformedPoliciesAreRefusedByTheAPIServer: the CRD's schema and CEL
// rules refuse a malformed policy at `kubectl apply`, with a message that
// names the field.
func TestMalformedPoliciesAreRefusedByTheAPIServer(t *testing.T) {
	patterns := func(ps ...any) map[string]any { return map[string]any{"aws": map[string]any{"roleARNs": ps}} }
	many := make([]any, 257)
	for i := range many {
		many[i] = fmt.Sprintf("arn:aws:iam::111122223333:role/r%d", i)
	}
	for _, c := range []struct {
		name string
		spec map[string]any
		says string
	}{
		{"an unknown enforcement", map[string]any{"enforcement": "Audit"}, `spec.enforcement: Unsupported value: "Audit"`},
		{"an unknown default serviceaccount setting", map[string]any{"defaultServiceAccount": "Never"}, `spec.defaultServiceAccount: Unsupported value`},
		{"an unknown api token setting", map[string]any{"apiTokenWithIdentity": "false"}, `spec.apiTokenWithIdentity: Unsupported value`},
		{"a placeholder that does not exist", patterns("arn:aws:iam::111122223333:role/{team}/*"), "the only placeholders are {namespace} and {serviceaccount}"},
		{"a stray brace", patterns("arn:aws:iam::111122223333:role/{namespace"), "the only placeholders are {namespace} and {serviceaccount}"},
		{"an empty pattern", patterns(""), "spec.aws.roleARNs[0]: Invalid value"},
		{"a pattern over 512 bytes", patterns(strings.Repeat("a", 513)), "spec.aws.roleARNs[0]: Too long"},
		{"more than 256 patterns", patterns(many...), "spec.aws.roleARNs: Too many"},
		{"a pattern that is not a string", patterns(42), "spec.aws.roleARNs[0]: Invalid value"},
		{"a pattern list that is a string", map[string]any{"aws": map[string]any{"roleARNs": "arn:aws:iam::111122223333:role/x"}}, "spec.aws.roleARNs: Invalid value"},
		{"the same pattern twice", patterns("a", "a"), "spec.aws.roleARNs[1]: Duplicate value"},
		{"a misspelt field", map[string]any{"aws": map[string]any{"roleArns": []any{"x"}}}, `unknown field "spec.aws.roleArns"`},
		{"In without values", map[string]any{"namespaceSelector": map[string]any{"matchExpressions": []any{map[string]any{"key": "team", "operator": "In"}}}}, "In and NotIn need values"},
		{"Exists with values", map[string]any{"namespaceSelector": map[string]any{"matchExpressions": []any{map[string]any{"key": "team", "operator": "Exists", "values": []any{"a"}}}}}, "Exists and DoesNotExist take none"},
		{"an operator that does not exist", map[string]any{"namespaceSelector": map[string]any{"matchExpressions": []any{map[string]any{"key": "team", "operator": "Like", "values": []any{"a"}}}}}, "no other operator exists"},
		{"a compiled provider under spec.providers", map[string]any{"providers": map[string]any{"aws": map[string]any{"identities": []any{"x"}}}}, "use spec.aws, spec.azure and spec.gcp"},
	} {
		t.Run(c.name, func(t *testing.T) {
			err := createPolicy(t, identityPolicy("malformed-"+randomHex(3), c.spec))
			if err == nil {
				t.Fatal("the API server accepted it")
			}
			if !apierrors.IsInvalid(err) && !apierrors.IsBadRequest(err) {
				t.Errorf("refused as %v, want Invalid or BadRequest", apierrors.ReasonForError(err))
			}
			if !strings.Contains(err.Error(), c.says) {
				t.Errorf("error %q does not say %q", err, c.says)
			}
		})
	}
}

// TestIdentityPoliciesAreEnforcedWhenServiceAccountsAreAnnotatedAndWhenPodsAreCreated
// walks a platform team's day: a policy keeps a namespace inside its own
// roles, is Ready, refuses `kubectl annotate` of another role at once,
// lets an unrelated edit of an old non-compliant ServiceAccount through
// with a warning, denies (then, in Warn mode, warns about) that
// ServiceAccount's pods, and every change takes effect within seconds.
func TestIdentityPoliciesAreEnforcedWhenServiceAccountsAreAnnotatedAndWhenPodsAreCreated(t *testing.T) {
	ctx := context.Background()
	ns := namespace(t, map[string]string{policyLabel: "true"})
	own := "arn:aws:iam::111122223333:role/tenants/" + ns + "/app"
	// Annotated before any policy existed.
	legacy := &corev1.ServiceAccount{ObjectMeta: metav1.ObjectMeta{Name: "legacy", Annotations: map[string]string{"eks.amazonaws.com/role-arn": adminRole}},
		AutomountServiceAccountToken: ptrBool(false)}
	if _, err := cluster.Client.CoreV1().ServiceAccounts(ns).Create(ctx, legacy, metav1.CreateOptions{}); err != nil {
		t.Fatal(err)
	}
	fresh := serviceAccount(t, ns, "fresh", nil)
	_ = fresh
	name := "e2e-tenants-" + randomHex(3)
	t0 := time.Now()
	if err := createPolicy(t, identityPolicy(name, map[string]any{
		"namespaceSelector":     map[string]any{"matchLabels": map[string]any{policyLabel: "true"}},
		"aws":                   map[string]any{"roleARNs": []any{"arn:aws:iam::111122223333:role/tenants/{namespace}/*"}},
		"defaultServiceAccount": "Deny",
	})); err != nil {
		t.Fatalf("the CRD from deploy/manifests does not take a valid policy: %v", err)
	}
	legacyPod := func() (*corev1.Pod, error) {
		p := podSpec("legacy", "legacy")
		p.Spec.AutomountServiceAccountToken = ptrBool(false)
		return createPod(t, ns, p, true)
	}
	enforced := until(t, "a pod of the non-compliant serviceaccount is denied", func() bool { _, err := legacyPod(); return err != nil })
	t.Logf("policy created: enforced at pod creation %s later", enforced.Round(time.Millisecond))
	wantMessage := fmt.Sprintf(`annotation eks.amazonaws.com/role-arn "%s" is not allowed by identitypolicy %q (spec.aws.roleARNs allows only "arn:aws:iam::111122223333:role/tenants/%s/*")`, adminRole, name, ns)

	t.Run("the policy reports Ready in kubectl get identitypolicies", func(t *testing.T) {
		until(t, "Ready", func() bool { return policyTable(t)[name]["Ready"] == "True" })
		row := policyTable(t)[name]
		if row["Enforcement"] != "Deny" || row["Reason"] != "Compiled" {
			t.Errorf("row %v: want enforcement Deny (the default) and reason Compiled", row)
		}
		t.Logf("ready in the table %s after creation", time.Since(t0).Round(time.Millisecond))
	})
	t.Run("kubectl annotate of a role outside the namespace's path is refused at once", func(t *testing.T) {
		err := annotate(cluster.Client, ns, "fresh", "eks.amazonaws.com/role-arn", adminRole)
		requireDenied(t, err, fmt.Sprintf(`serviceaccount "%s/fresh": `, ns)+wantMessage)
	})
	t.Run("kubectl annotate of a role inside it succeeds, and its pods are injected", func(t *testing.T) {
		if err := annotate(cluster.Client, ns, "fresh", "eks.amazonaws.com/role-arn", own); err != nil {
			t.Fatal(err)
		}
		p := podSpec("fresh", "fresh")
		p.Spec.AutomountServiceAccountToken = ptrBool(false)
		// The injector's cache sees the annotation a moment after the
		// write that the API server acknowledged.
		took := until(t, "its pods are injected", func() bool {
			got, err := createPod(t, ns, p, true)
			return err == nil && envOf(got.Spec.Containers[0])["AWS_ROLE_ARN"] == own
		})
		t.Logf("injected %s after the annotation was written", took.Round(time.Millisecond))
	})
	t.Run("an identity on the default serviceaccount is refused", func(t *testing.T) {
		_, err := cluster.Client.CoreV1().ServiceAccounts(ns).Create(ctx, &corev1.ServiceAccount{ObjectMeta: metav1.ObjectMeta{Name: "default",
			Annotations: map[string]string{"eks.amazonaws.com/role-arn": own}}}, metav1.CreateOptions{})
		requireDenied(t, err, fmt.Sprintf(`serviceaccount "%s/default": identitypolicy %q does not allow a cloud identity on a namespace's default serviceaccount`, ns, name))
	})
	t.Run("an unrelated update of the non-compliant serviceaccount succeeds, with a warning", func(t *testing.T) {
		wc := newWarningClient(t)
		sa, err := wc.CoreV1().ServiceAccounts(ns).Get(ctx, "legacy", metav1.GetOptions{})
		if err != nil {
			t.Fatal(err)
		}
		sa.ImagePullSecrets = append(sa.ImagePullSecrets, corev1.LocalObjectReference{Name: "registry"})
		if _, err := wc.CoreV1().ServiceAccounts(ns).Update(ctx, sa, metav1.UpdateOptions{}); err != nil {
			t.Fatalf("adding an imagePullSecret was refused: %v", err)
		}
		warnings := strings.Join(wc.take(), "\n")
		if !strings.Contains(warnings, wantMessage) || !strings.Contains(warnings, "admitted because this update changes no identity annotation") {
			t.Errorf("warnings %q do not say what is wrong and why it was admitted", warnings)
		}
	})
	t.Run("a pod of the serviceaccount annotated before the policy is denied", func(t *testing.T) {
		_, err := legacyPod()
		requireDenied(t, err, fmt.Sprintf(`pod "%s/legacy" (serviceaccount "%s/legacy"): `, ns, ns)+wantMessage)
	})
	t.Run("switched to Warn, the pod is injected and warned, within seconds", func(t *testing.T) {
		patch := []byte(`{"spec":{"enforcement":"Warn"}}`)
		t1 := time.Now()
		if _, err := policies(t).Patch(ctx, name, types.MergePatchType, patch, metav1.PatchOptions{}); err != nil {
			t.Fatal(err)
		}
		took := until(t, "the pod is admitted", func() bool { _, err := legacyPod(); return err == nil })
		t.Logf("policy changed to Warn: in force at pod creation %s later", took.Round(time.Millisecond))
		wc := newWarningClient(t)
		p := podSpec("legacy", "legacy")
		p.Spec.AutomountServiceAccountToken = ptrBool(false)
		got, err := wc.CoreV1().Pods(ns).Create(ctx, p, metav1.CreateOptions{DryRun: []string{metav1.DryRunAll}})
		if err != nil {
			t.Fatal(err)
		}
		if envOf(got.Spec.Containers[0])["AWS_ROLE_ARN"] != adminRole {
			t.Error("in Warn mode the pod must be injected")
		}
		if w := strings.Join(wc.take(), "\n"); !strings.Contains(w, wantMessage+" (enforcement Warn: admitted)") {
			t.Errorf("warnings %q lack the policy's", w)
		}
		_ = t1
	})
}

// TestAPolicyThatCannotBeAppliedSaysSoAndRefusesEverything: a selector
// the API server accepts but that is not a label selector (a key with a
// space) makes the policy Ready=False with the reason, and until it is
// fixed it refuses every identity in every namespace, loudly, rather than
// silently applying nowhere. The server stays up.
func TestAPolicyThatCannotBeAppliedSaysSoAndRefusesEverything(t *testing.T) {
	ns := namespace(t, nil)
	serviceAccount(t, ns, "app", map[string]string{"eks.amazonaws.com/role-arn": roleARN})
	pod := func() error {
		p := podSpec("app", "app")
		_, err := createPod(t, ns, p, true)
		return err
	}
	if err := pod(); err != nil {
		t.Fatalf("before the policy: %v", err)
	}
	name := "e2e-typo-" + randomHex(3)
	if err := createPolicy(t, identityPolicy(name, map[string]any{
		"namespaceSelector": map[string]any{"matchLabels": map[string]any{"team name": "a"}},
	})); err != nil {
		t.Fatalf("the API server refused a selector it does not check: %v", err)
	}
	t.Cleanup(func() {
		// Other tests must not see it: wait until it is gone from the injector.
		_ = policies(t).Delete(context.Background(), name, metav1.DeleteOptions{})
		until(t, "the broken policy is gone", func() bool { return pod() == nil })
	})
	until(t, "Ready=False", func() bool { return policyTable(t)[name]["Ready"] == "False" })
	if r := policyTable(t)[name]["Reason"]; r != "InvalidSelector" {
		t.Errorf("reason %q, want InvalidSelector", r)
	}
	until(t, "the pod is refused", func() bool { return pod() != nil })
	requireDenied(t, pod(), fmt.Sprintf("identitypolicy %q cannot be applied (spec.namespaceSelector:", name), "fix the policy")
	if code := getStatus(t, "http://"+cluster.Injector.MetricsAddr+"/healthz"); code != http.StatusOK {
		t.Errorf("/healthz: HTTP %d", code)
	}
}

func ptrBool(b bool) *bool { return &b }
