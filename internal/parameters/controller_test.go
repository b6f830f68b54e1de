package parameters

import (
	"context"
	"encoding/json"
	"fmt"
	"reflect"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/prometheus/client_golang/prometheus"
	"github.com/prometheus/client_golang/prometheus/testutil"
	corev1 "k8s.io/api/core/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/apis/meta/v1/unstructured"
	"k8s.io/apimachinery/pkg/runtime"
	"k8s.io/apimachinery/pkg/runtime/schema"
	"k8s.io/apimachinery/pkg/types"
	dynamicfake "k8s.io/client-go/dynamic/fake"

	"github.com/pod-identity/injector/pkg/parameters/v1alpha1"
	"github.com/pod-identity/injector/pkg/policy"
	policyv1 "github.com/pod-identity/injector/pkg/policy/v1alpha1"
)

// serviceAccounts is a fixed ServiceAccount source.
type serviceAccounts map[string][]*corev1.ServiceAccount

func (s serviceAccounts) List(ns string) ([]*corev1.ServiceAccount, error) { return s[ns], nil }
func (s serviceAccounts) HasSynced() bool                                  { return true }
func (s serviceAccounts) Namespaces() []string {
	var out []string
	for ns := range s {
		out = append(out, ns)
	}
	return out
}

func named(ns, name string, ann map[string]string) *corev1.ServiceAccount {
	return &corev1.ServiceAccount{ObjectMeta: metav1.ObjectMeta{Namespace: ns, Name: name, Annotations: ann}}
}

func parametersObject(ns string) *unstructured.Unstructured {
	return &unstructured.Unstructured{Object: map[string]any{
		"apiVersion": v1alpha1.GroupVersion.String(), "kind": v1alpha1.Kind,
		"metadata": map[string]any{"name": v1alpha1.Name, "namespace": ns, "labels": map[string]any{ManagedByLabel: ManagedBy}},
		"spec":     map[string]any{"serviceAccounts": map[string]any{"gone": map[string]any{}}},
	}}
}

func newController(t *testing.T, sas serviceAccounts, maxBytes int, objs ...*unstructured.Unstructured) (*Controller, *dynamicfake.FakeDynamicClient, *prometheus.Registry) {
	t.Helper()
	dyn := dynamicfake.NewSimpleDynamicClientWithCustomListKinds(runtime.NewScheme(),
		map[schema.GroupVersionResource]string{v1alpha1.GroupVersionResource: "IdentityParametersList"})
	for _, o := range objs {
		// Created through the resource: the fake would guess its plural from the kind.
		if _, err := dyn.Resource(v1alpha1.GroupVersionResource).Namespace(o.GetNamespace()).Create(context.Background(), o, metav1.CreateOptions{}); err != nil {
			t.Fatal(err)
		}
	}
	reg := prometheus.NewRegistry()
	c, err := New(Config{Engine: engine(t), ServiceAccounts: sas, Dynamic: dyn, Registerer: reg, MaxObjectBytes: maxBytes})
	if err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithCancel(context.Background())
	t.Cleanup(cancel)
	c.Start(ctx)
	deadline := time.Now().Add(5 * time.Second)
	for !c.HasSynced() {
		if time.Now().After(deadline) {
			t.Fatal("the informer did not sync")
		}
		time.Sleep(5 * time.Millisecond)
	}
	return c, dyn, reg
}

func TestController(t *testing.T) {
	t.Run("a serviceaccount that gets what the default gives is listed with nothing of its own", func(t *testing.T) {
		c, _, _ := newController(t, serviceAccounts{"team": {named("team", "default", nil), named("team", "app", map[string]string{"eks.amazonaws.com/role-arn": role})}}, 0)
		spec, dropped, err := c.Desired("team")
		if err != nil || len(dropped) != 0 {
			t.Fatal(err, dropped)
		}
		if spec.Default == nil || len(spec.Default.Injections) == 0 {
			t.Errorf("no default (azure injects a labelled pod of any serviceaccount): %+v", spec.Default)
		}
		if len(spec.ServiceAccounts) != 2 {
			t.Errorf("listed %v, want app and default", keys(spec.ServiceAccounts))
		}
		if d, ok := spec.ServiceAccounts["default"]; !ok || !isEmpty(d) || len(d.Values) != 0 {
			t.Errorf("default is listed as %+v, %t; want listed, empty", d, ok)
		}
		if app := spec.ServiceAccounts["app"]; len(app.Entries) == 0 || len(app.Injections) != 0 || !slices.Equal(app.Values, []string{role}) {
			t.Errorf("app is listed as %+v; want its entries as templates, and its role as its one value", app)
		}
		for _, w := range spec.Default.Injections[0].Warnings {
			if !strings.Contains(w, `"team/{serviceaccount}"`) {
				t.Errorf("default warning %q does not name the serviceaccount by the placeholder", w)
			}
		}
	})
	t.Run("serviceaccounts that would make the object too large are left out and reported, the newest first", func(t *testing.T) {
		// b's expiration makes templates of its own, which do not fit.
		sas := serviceAccounts{"team": {named("team", "a", map[string]string{"eks.amazonaws.com/role-arn": role}),
			named("team", "b", map[string]string{"eks.amazonaws.com/role-arn": role, "eks.amazonaws.com/token-expiration": "3600"}),
			named("team", "c", nil)}}
		for i, age := range []int{3, 1, 2} { // b is the newest
			sas["team"][i].CreationTimestamp = metav1.NewTime(time.Unix(int64(1000-age), 0))
		}
		c, _, _ := newController(t, sas, 8000)
		spec, dropped, err := c.Desired("team")
		if err != nil {
			t.Fatal(err)
		}
		if _, ok := spec.ServiceAccounts["a"]; !ok || len(spec.ServiceAccounts) != 2 || len(dropped) != 1 || dropped[0] != "b" || !spec.Incomplete {
			t.Errorf("listed %v, dropped %v, incomplete %t: want a and c listed and b dropped", keys(spec.ServiceAccounts), dropped, spec.Incomplete)
		}
		if size := specSize(t, spec); size > 8000 {
			t.Errorf("the spec takes %d bytes, over the bound of 8000", size)
		}
	})
	t.Run("thousands of serviceaccounts of one shape take a template each and a short record", func(t *testing.T) {
		var list []*corev1.ServiceAccount
		for i := range 5000 {
			list = append(list, named("ai", fmt.Sprintf("user-%04d", i), map[string]string{"eks.amazonaws.com/role-arn": fmt.Sprintf("arn:aws:iam::111122223333:role/user-%04d", i)}))
		}
		for _, sa := range list {
			sa.UID, sa.ResourceVersion = types.UID("uid-"+sa.Name), "1"
		}
		c, _, _ := newController(t, serviceAccounts{"ai": list}, 0)
		t0 := time.Now()
		spec, dropped, err := c.Desired("ai")
		firstTook := time.Since(t0)
		if err != nil || len(dropped) != 0 || len(spec.ServiceAccounts) != 5000 {
			t.Fatalf("listed %d, dropped %d, %v", len(spec.ServiceAccounts), len(dropped), err)
		}
		one, _, _ := newController(t, serviceAccounts{"ai": list[:1]}, 0)
		first, _, _ := one.Desired("ai")
		if len(spec.Templates) != len(first.Templates) {
			t.Errorf("%d templates for 5000 serviceaccounts of one shape, %d for one", len(spec.Templates), len(first.Templates))
		}
		size := specSize(t, spec)
		t0 = time.Now()
		again, _, _ := c.Desired("ai")
		t.Logf("5000 AWS identities: %d bytes (%d per serviceaccount), %d templates; computed in %s, again with none changed in %s",
			size, size/5000, len(spec.Templates), firstTook.Round(time.Millisecond), time.Since(t0).Round(time.Millisecond))
		if !reflect.DeepEqual(again, spec) {
			t.Error("computed again from the cache, the spec differs")
		}
		if size > DefaultMaxObjectBytes {
			t.Errorf("%d bytes, over the bound", size)
		}
	})
	t.Run("an object for a namespace that no longer has serviceaccounts is deleted, and counted", func(t *testing.T) {
		c, dyn, reg := newController(t, serviceAccounts{}, 0, parametersObject("gone"))
		if err := c.Sync(context.Background(), "gone"); err != nil {
			t.Fatal(err)
		}
		if _, err := dyn.Resource(v1alpha1.GroupVersionResource).Namespace("gone").Get(context.Background(), v1alpha1.Name, metav1.GetOptions{}); err == nil {
			t.Error("the object is still there")
		}
		if got := testutil.ToFloat64(c.writes.WithLabelValues("delete")); got != 1 {
			t.Errorf("deletes counted %v", got)
		}
		if n, err := testutil.GatherAndCount(reg, "pod_identity_sync_writes_total"); err != nil || n != 1 {
			t.Errorf("registered writes series %d, %v", n, err)
		}
	})
	t.Run("a governed namespace gets the enforcement rules, with its refused serviceaccounts, within the bound", func(t *testing.T) {
		sas := serviceAccounts{"team": {named("team", "default", nil), named("team", "admin", map[string]string{"eks.amazonaws.com/role-arn": role})}, "free": {named("free", "default", nil)}}
		c, _, _ := newController(t, sas, 0)
		store := policy.NewStore()
		store.SetPolicies(policy.NewSet(&policyv1.IdentityPolicy{ObjectMeta: metav1.ObjectMeta{Name: "tenants"}, Spec: policyv1.IdentityPolicySpec{
			NamespaceSelector: &metav1.LabelSelector{MatchLabels: map[string]string{"governed": "yes"}},
			AWS:               &policyv1.AWSRules{RoleARNs: &policyv1.Patterns{"arn:aws:iam::111122223333:role/tenants/*"}}}}))
		store.SetNamespace("team", map[string]string{"governed": "yes"})
		store.SetNamespace("free", nil)
		c.cfg.Policies = store
		spec, _, err := c.Desired("team")
		if err != nil {
			t.Fatal(err)
		}
		if spec.Enforcement == nil || len(spec.Enforcement.Tokens) != 1 || len(spec.Enforcement.ServiceAccountDenied["admin"]) != 1 {
			t.Fatalf("enforcement %+v", spec.Enforcement)
		}
		if free, _, _ := c.Desired("free"); free.Enforcement != nil {
			t.Errorf("an ungoverned namespace has enforcement rules: %+v", free.Enforcement)
		}
		// What the namespace costs before its serviceaccounts: the
		// default and the enforcement rules without refusals.
		base := spec.DeepCopy()
		base.ServiceAccounts, base.Templates, base.Enforcement.ServiceAccountDenied = nil, nil, nil
		refusal := len("admin") + len(spec.Enforcement.ServiceAccountDenied["admin"][0])
		// Room for the refusal and the default serviceaccount but not for
		// admin's parameters: its pods are still refused
		// (pod-identity-enforce reads the refusal of a serviceaccount
		// that is not listed).
		small, _, _ := newController(t, sas, specSize(t, *base)+refusal+len("default")+4+2+64)
		small.cfg.Policies = store
		spec, dropped, err := small.Desired("team")
		if _, listed := spec.ServiceAccounts["admin"]; err != nil || listed || len(spec.Enforcement.ServiceAccountDenied["admin"]) != 1 || !slices.Equal(dropped, []string{"admin"}) {
			t.Errorf("over the bound: listed %v, denied %v, dropped %v, %v", keys(spec.ServiceAccounts), spec.Enforcement.ServiceAccountDenied, dropped, err)
		}
		if _, listed := spec.ServiceAccounts["default"]; !listed {
			t.Errorf("the default serviceaccount is not listed: %v", keys(spec.ServiceAccounts))
		}
		// No room even for the refusal: left out, and reported.
		tiny, _, _ := newController(t, sas, specSize(t, *base)+refusal/2)
		tiny.cfg.Policies = store
		spec, dropped, _ = tiny.Desired("team")
		if len(spec.Enforcement.ServiceAccountDenied) != 0 || !slices.Contains(dropped, "admin") {
			t.Errorf("far over the bound: denied %v, dropped %v", spec.Enforcement.ServiceAccountDenied, dropped)
		}
	})
	t.Run("a serviceaccount is computed again when it changes, and when the policies do", func(t *testing.T) {
		sa := named("team", "app", map[string]string{"eks.amazonaws.com/role-arn": role})
		sa.UID, sa.ResourceVersion = "u1", "1"
		sas := serviceAccounts{"team": {sa}}
		c, _, _ := newController(t, sas, 0)
		roleOf := func() string {
			t.Helper()
			spec, _, err := c.Desired("team")
			if err != nil {
				t.Fatal(err)
			}
			p := spec.ServiceAccounts["app"]
			if len(p.Denied) > 0 || len(p.Values) == 0 {
				return fmt.Sprintf("denied %v", p.Denied)
			}
			return p.Values[0]
		}
		if got := roleOf(); got != role {
			t.Fatalf("first: %s", got)
		}
		other := "arn:aws:iam::111122223333:role/other"
		changed := named("team", "app", map[string]string{"eks.amazonaws.com/role-arn": other})
		changed.UID, changed.ResourceVersion = "u1", "2"
		sas["team"] = []*corev1.ServiceAccount{changed}
		if got := roleOf(); got != other {
			t.Errorf("after the annotation changed: %s, want %s", got, other)
		}
		store := policy.NewStore()
		store.SetPolicies(policy.NewSet(&policyv1.IdentityPolicy{ObjectMeta: metav1.ObjectMeta{Name: "tenants"}, Spec: policyv1.IdentityPolicySpec{
			NamespaceSelector: &metav1.LabelSelector{MatchLabels: map[string]string{"governed": "yes"}},
			AWS:               &policyv1.AWSRules{RoleARNs: &policyv1.Patterns{"arn:aws:iam::111122223333:role/tenants/*"}}}}))
		store.SetNamespace("team", map[string]string{"governed": "yes"})
		c.cfg.Policies = store
		if got := roleOf(); !strings.Contains(got, "denied") {
			t.Errorf("after a policy that refuses the role: %s, want it refused", got)
		}
	})
	t.Run("a namespace is held back after it is computed or written, and put back when the pace allows", func(t *testing.T) {
		c, dyn, _ := newController(t, serviceAccounts{"team": {named("team", "app", map[string]string{"eks.amazonaws.com/role-arn": role})}}, 0)
		ctx := context.Background()
		c.pace("team", 100*time.Millisecond)
		c.pace("team", time.Millisecond)
		if wait := time.Until(c.paced["team"]); wait <= 50*time.Millisecond || wait > 100*time.Millisecond {
			t.Errorf("held back by 100ms, then by 1ms: the next write waits %s, want the longer", wait)
		}
		// A change while the pace holds is put back, not written.
		c.paced["team"] = time.Now().Add(300 * time.Millisecond)
		writes := len(dyn.Actions())
		c.Changed("team")
		if !c.next(ctx) || len(dyn.Actions()) != writes || c.queue.Len() != 0 {
			t.Fatalf("written at once: %d actions, was %d; queue %d", len(dyn.Actions()), writes, c.queue.Len())
		}
		deadline := time.Now().Add(5 * time.Second)
		for c.queue.Len() == 0 {
			if time.Now().After(deadline) {
				t.Fatal("the namespace was not put back once the pace allowed")
			}
			time.Sleep(10 * time.Millisecond)
		}
		if time.Now().Before(c.paced["team"]) {
			t.Error("put back before the pace allowed")
		}
	})
	t.Run("a namespace with nothing to hold and no object is left alone", func(t *testing.T) {
		c, dyn, _ := newController(t, serviceAccounts{}, 0)
		if err := c.Sync(context.Background(), "empty"); err != nil {
			t.Fatal(err)
		}
		if len(dyn.Actions()) != 2 { // the informer's list and watch, nothing else
			t.Errorf("actions %v", dyn.Actions())
		}
	})
}

func isEmpty(p v1alpha1.ServiceAccountParameters) bool {
	return len(p.Denied) == 0 && len(p.Warnings) == 0 && p.APIToken == nil && len(p.Injections) == 0 && len(p.Entries) == 0
}

func specSize(t *testing.T, spec v1alpha1.IdentityParametersSpec) int {
	t.Helper()
	b, err := json.Marshal(spec)
	if err != nil {
		t.Fatal(err)
	}
	return len(b)
}

func keys(m map[string]v1alpha1.ServiceAccountParameters) []string {
	var out []string
	for k := range m {
		out = append(out, k)
	}
	return out
}
