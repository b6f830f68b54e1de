package policywatch

import (
	"context"
	"strings"
	"testing"
	"time"

	"github.com/sirupsen/logrus"
	logtest "github.com/sirupsen/logrus/hooks/test"

	corev1 "k8s.io/api/core/v1"
	"k8s.io/apimachinery/pkg/api/meta"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/apis/meta/v1/unstructured"
	"k8s.io/apimachinery/pkg/runtime"
	"k8s.io/apimachinery/pkg/runtime/schema"
	dynamicfake "k8s.io/client-go/dynamic/fake"
	"k8s.io/client-go/kubernetes/fake"

	"github.com/pod-identity/injector/internal/testenv"
	"github.com/pod-identity/injector/pkg/policy"
	v1alpha1 "github.com/pod-identity/injector/pkg/policy/v1alpha1"
	"github.com/pod-identity/injector/pkg/providers"
)

func unstructuredPolicy(t *testing.T, name string, generation int64, spec v1alpha1.IdentityPolicySpec) *unstructured.Unstructured {
	t.Helper()
	ip := &v1alpha1.IdentityPolicy{TypeMeta: metav1.TypeMeta{APIVersion: v1alpha1.GroupVersion.String(), Kind: v1alpha1.Kind},
		ObjectMeta: metav1.ObjectMeta{Name: name, Generation: generation}, Spec: spec}
	obj, err := runtime.DefaultUnstructuredConverter.ToUnstructured(ip)
	if err != nil {
		t.Fatal(err)
	}
	return &unstructured.Unstructured{Object: obj}
}

func patterns(ps ...string) *v1alpha1.Patterns {
	out := v1alpha1.Patterns{}
	for _, p := range ps {
		out = append(out, v1alpha1.Pattern(p))
	}
	return &out
}

func denied(store *policy.Store, namespace, role string) bool {
	v := store.Scope(namespace).Evaluate(policy.Check{Namespace: namespace, ServiceAccount: "app",
		Providers: []policy.ProviderIdentities{{Provider: "aws", Identities: []providers.Identity{{Field: "roleARNs", Value: role}}}}})
	return len(v.Denied()) > 0
}

func eventually(t *testing.T, what string, cond func() bool) { testenv.WaitFor(t, what, cond) }

func storedReady(t *testing.T, dyn *dynamicfake.FakeDynamicClient, name string) *metav1.Condition {
	u, err := dyn.Resource(v1alpha1.GroupVersionResource).Get(context.Background(), name, metav1.GetOptions{})
	if err != nil {
		t.Fatal(err)
	}
	var st v1alpha1.IdentityPolicyStatus
	raw, _, _ := unstructured.NestedMap(u.Object, "status")
	_ = runtime.DefaultUnstructuredConverter.FromUnstructured(raw, &st)
	return meta.FindStatusCondition(st.Conditions, ConditionReady)
}

// serveCRD makes the fake API server's discovery list IdentityPolicies, as
// once the CRD is installed.
func serveCRD(client *fake.Clientset) {
	gvr := v1alpha1.GroupVersionResource
	client.Resources = append(client.Resources, &metav1.APIResourceList{GroupVersion: gvr.GroupVersion().String(),
		APIResources: []metav1.APIResource{{Name: gvr.Resource, Namespaced: false, Kind: "IdentityPolicy"}}})
}

// TestAMissingCRDIsSaidOnce: without the IdentityPolicy CRD the watcher
// does not sync, and says so in one line naming the CRD, what installs it
// and the flag that turns policies off, however often it asks again.
func TestAMissingCRDIsSaidOnce(t *testing.T) {
	const poll = 10 * time.Millisecond
	scheme := runtime.NewScheme()
	dyn := dynamicfake.NewSimpleDynamicClientWithCustomListKinds(scheme, map[schema.GroupVersionResource]string{v1alpha1.GroupVersionResource: "IdentityPolicyList"})
	client := fake.NewClientset()
	log, hook := logtest.NewNullLogger()
	w, err := New(Config{Client: client, Dynamic: dyn, Store: policy.NewStore(), Log: log, CRDPoll: poll})
	if err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	w.Start(ctx)
	time.Sleep(20 * poll) // many polls
	if w.HasSynced() {
		t.Fatal("synced without the CRD")
	}
	var missing []*logrus.Entry
	for _, e := range hook.AllEntries() {
		if strings.Contains(e.Message, "CustomResourceDefinition is not installed") {
			missing = append(missing, e)
		}
	}
	if len(missing) != 1 || missing[0].Level != logrus.ErrorLevel || missing[0].Data["crd"] != "identitypolicies.pod-identity.io" ||
		!strings.Contains(missing[0].Data["install"].(string), "deploy/manifests") || missing[0].Data["flag"] != "--identity-policies=false" {
		t.Fatalf("want one error line naming the CRD, the manifest and the flag; got %d: %+v", len(missing), missing)
	}
	// That it syncs once the CRD is served is the test below (the fake's
	// discovery list cannot change under a running watcher without a race).
}

func TestWatcherKeepsTheStoreAndStatusCurrent(t *testing.T) {
	scheme := runtime.NewScheme()
	dyn := dynamicfake.NewSimpleDynamicClientWithCustomListKinds(scheme,
		map[schema.GroupVersionResource]string{v1alpha1.GroupVersionResource: "IdentityPolicyList"},
		unstructuredPolicy(t, "tenants", 1, v1alpha1.IdentityPolicySpec{
			NamespaceSelector: &metav1.LabelSelector{MatchLabels: map[string]string{"tenant": "true"}},
			AWS:               &v1alpha1.AWSRules{RoleARNs: patterns("role/{namespace}/*")},
		}))
	client := fake.NewClientset(
		&corev1.Namespace{ObjectMeta: metav1.ObjectMeta{Name: "team-a", Labels: map[string]string{"tenant": "true"}}},
		&corev1.Namespace{ObjectMeta: metav1.ObjectMeta{Name: "platform"}})
	serveCRD(client)
	store := policy.NewStore()
	w, err := New(Config{Client: client, Dynamic: dyn, Store: store})
	if err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	w.Start(ctx)
	if !w.WaitForSync(ctx) {
		t.Fatal("never synced")
	}

	t.Run("the policy applies in the namespaces it selects, by their labels", func(t *testing.T) {
		eventually(t, "team-a is governed", func() bool { return denied(store, "team-a", "role/team-b/x") })
		if denied(store, "team-a", "role/team-a/x") || denied(store, "platform", "role/team-b/x") {
			t.Error("the policy refuses what it allows, or applies where it does not select")
		}
	})
	t.Run("a compiled policy reports Ready", func(t *testing.T) {
		eventually(t, "Ready=True", func() bool {
			c := storedReady(t, dyn, "tenants")
			return c != nil && c.Status == metav1.ConditionTrue && c.Reason == policy.ReasonCompiled && c.ObservedGeneration == 1
		})
	})
	t.Run("relabelling a namespace brings it under the policy", func(t *testing.T) {
		ns := &corev1.Namespace{ObjectMeta: metav1.ObjectMeta{Name: "platform", Labels: map[string]string{"tenant": "true"}}}
		if _, err := client.CoreV1().Namespaces().Update(ctx, ns, metav1.UpdateOptions{}); err != nil {
			t.Fatal(err)
		}
		eventually(t, "platform is governed", func() bool { return denied(store, "platform", "role/team-b/x") })
	})
	t.Run("a new generation with a bad pattern refuses everything and says why", func(t *testing.T) {
		u, err := dyn.Resource(v1alpha1.GroupVersionResource).Get(ctx, "tenants", metav1.GetOptions{})
		if err != nil {
			t.Fatal(err)
		}
		bad := unstructuredPolicy(t, "tenants", 2, v1alpha1.IdentityPolicySpec{AWS: &v1alpha1.AWSRules{RoleARNs: patterns("role/{tenant}/*")}})
		bad.SetResourceVersion(u.GetResourceVersion())
		if _, err := dyn.Resource(v1alpha1.GroupVersionResource).Update(ctx, bad, metav1.UpdateOptions{}); err != nil {
			t.Fatal(err)
		}
		eventually(t, "the allowed role is refused", func() bool { return denied(store, "team-a", "role/team-a/x") })
		eventually(t, "Ready=False", func() bool {
			c := storedReady(t, dyn, "tenants")
			return c != nil && c.Status == metav1.ConditionFalse && c.Reason == policy.ReasonInvalidPattern &&
				c.ObservedGeneration == 2 && strings.Contains(c.Message, `"{tenant}" is not a placeholder`)
		})
	})
	t.Run("a deleted policy applies no more", func(t *testing.T) {
		if err := dyn.Resource(v1alpha1.GroupVersionResource).Delete(ctx, "tenants", metav1.DeleteOptions{}); err != nil {
			t.Fatal(err)
		}
		eventually(t, "nothing is refused", func() bool { return !denied(store, "team-a", "anything") })
		if store.Policies().Len() != 0 {
			t.Errorf("%d policies left", store.Policies().Len())
		}
	})
}
