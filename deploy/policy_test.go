package deploy_test

import (
	"reflect"
	"slices"
	"strings"
	"testing"

	admissionregv1 "k8s.io/api/admissionregistration/v1"
	appsv1 "k8s.io/api/apps/v1"
	corev1 "k8s.io/api/core/v1"
	policyv1 "k8s.io/api/policy/v1"
	rbacv1 "k8s.io/api/rbac/v1"
	apiextensionsv1 "k8s.io/apiextensions-apiserver/pkg/apis/apiextensions/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/labels"

	syncv1 "github.com/pod-identity/injector/pkg/parameters/v1alpha1"
)

// TestPolicyModeBase checks deploy/policy: strictly decoded, every file
// listed, the three policies reading the same parameters the same way, the
// webhook's opt-outs, and the sync Deployment.
func TestPolicyModeBase(t *testing.T) {
	objs := decodeBase(t, "policy")
	maps := find[*admissionregv1.MutatingAdmissionPolicy](objs)
	var vaps []*admissionregv1.ValidatingAdmissionPolicy
	var writers *admissionregv1.ValidatingAdmissionPolicy
	for _, v := range find[*admissionregv1.ValidatingAdmissionPolicy](objs) {
		if v.Name == "pod-identity-parameters-writers" {
			writers = v
			continue
		}
		vaps = append(vaps, v)
	}
	if len(maps) != 1 || len(vaps) != 3 || writers == nil {
		t.Fatalf("want one MutatingAdmissionPolicy, three ValidatingAdmissionPolicies on pods and the writers' policy, got %d, %d and %v", len(maps), len(vaps), writers != nil)
	}

	t.Run("only sync's serviceaccount may write IdentityParameters", func(t *testing.T) {
		var sa *corev1.ServiceAccount
		for _, s := range find[*corev1.ServiceAccount](objs) {
			sa = s
		}
		want := "system:serviceaccount:" + sa.Namespace + ":" + sa.Name
		if writers.Spec.FailurePolicy == nil || *writers.Spec.FailurePolicy != admissionregv1.Fail || len(writers.Spec.Validations) != 1 ||
			!strings.Contains(writers.Spec.Validations[0].Expression, "'"+want+"'") {
			t.Errorf("the writers' policy must fail closed and name %s: %+v", want, writers.Spec)
		}
		r := writers.Spec.MatchConstraints.ResourceRules
		if len(r) != 1 || !slices.Equal(r[0].Resources, []string{"identityparameters"}) || len(r[0].Operations) != 3 {
			t.Errorf("the writers' policy matches %+v, want identityparameters CREATE, UPDATE and DELETE", r)
		}
		var bound bool
		for _, b := range find[*admissionregv1.ValidatingAdmissionPolicyBinding](objs) {
			bound = bound || (b.Spec.PolicyName == writers.Name && slices.Equal(b.Spec.ValidationActions, []admissionregv1.ValidationAction{admissionregv1.Deny}) && b.Spec.MatchResources == nil)
		}
		if !bound {
			t.Error("the writers' policy has no Deny binding over every namespace")
		}
	})

	t.Run("no webhook, no Service and no certificate", func(t *testing.T) {
		if n := len(find[*admissionregv1.MutatingWebhookConfiguration](objs)) + len(find[*admissionregv1.ValidatingWebhookConfiguration](objs)) + len(find[*corev1.Service](objs)); n != 0 {
			t.Errorf("%d webhook configurations and services", n)
		}
		for _, o := range objs {
			if strings.Contains(reflect.TypeOf(o).String(), "certmanager") {
				t.Errorf("a cert-manager object: %T", o)
			}
		}
	})

	t.Run("both CRDs are installed, and the policies' parameter kind is the one sync writes", func(t *testing.T) {
		var kinds []string
		for _, crd := range find[*apiextensionsv1.CustomResourceDefinition](objs) {
			kinds = append(kinds, crd.Spec.Group+"/"+crd.Spec.Names.Kind)
		}
		slices.Sort(kinds)
		if !slices.Equal(kinds, []string{"pod-identity.io/IdentityParameters", "pod-identity.io/IdentityPolicy"}) {
			t.Errorf("CRDs %v", kinds)
		}
		want := syncv1.GroupVersion.String() + "/" + syncv1.Kind
		if pk := maps[0].Spec.ParamKind; pk == nil || pk.APIVersion+"/"+pk.Kind != want {
			t.Errorf("mutating policy's paramKind %+v, want %s", pk, want)
		}
		for _, v := range vaps {
			if pk := v.Spec.ParamKind; pk == nil || pk.APIVersion+"/"+pk.Kind != want {
				t.Errorf("%s's paramKind %+v, want %s", v.Name, pk, want)
			}
		}
	})

	t.Run("the three policies find the pod's entries with the same variables, word for word", func(t *testing.T) {
		shared := func(vars []admissionregv1.Variable) []admissionregv1.Variable {
			for i, v := range vars {
				if v.Name == "entries" {
					return vars[:i+1]
				}
			}
			return nil
		}
		m := shared(maps[0].Spec.Variables)
		if len(m) < 5 {
			t.Fatalf("the mutating policy's variables down to entries: %v", m)
		}
		for _, v := range vaps {
			var vv []admissionregv1.Variable
			for _, x := range v.Spec.Variables {
				vv = append(vv, admissionregv1.Variable{Name: x.Name, Expression: x.Expression})
			}
			if got := shared(vv); !reflect.DeepEqual(got, m) {
				t.Errorf("%s's variables down to entries differ from the mutating policy's", v.Name)
			}
			if len(v.Spec.MatchConditions) == 0 || !reflect.DeepEqual(v.Spec.MatchConditions[0], maps[0].Spec.MatchConditions[0]) {
				t.Errorf("%s's first matchCondition differs from the mutating policy's (leaving mirror pods alone)", v.Name)
			}
		}
		if maps[0].Spec.ReinvocationPolicy != admissionregv1.IfNeededReinvocationPolicy {
			t.Errorf("reinvocationPolicy %q, want IfNeeded", maps[0].Spec.ReinvocationPolicy)
		}
	})

	t.Run("the policies that inject, refuse and enforce fail closed; the warnings do not", func(t *testing.T) {
		fail := map[string]bool{maps[0].Name: maps[0].Spec.FailurePolicy != nil && *maps[0].Spec.FailurePolicy == admissionregv1.Fail}
		for _, v := range vaps {
			fail[v.Name] = v.Spec.FailurePolicy != nil && *v.Spec.FailurePolicy == admissionregv1.Fail
		}
		want := map[string]bool{"pod-identity-injector": true, "pod-identity-deny": true, "pod-identity-enforce": true, "pod-identity-warn": false}
		if !reflect.DeepEqual(fail, want) {
			t.Errorf("failing closed: %v, want %v", fail, want)
		}
	})

	t.Run("every binding reads the namespace's pod-identity parameters and has the webhook's opt-outs", func(t *testing.T) {
		hooks := find[*admissionregv1.MutatingWebhookConfiguration](decodeAll(t))
		hook := hooks[0].Webhooks[0]
		check := func(name string, ref *admissionregv1.ParamRef, mr *admissionregv1.MatchResources) {
			// The refusing policy refuses where the parameters are not
			// there yet: the pod's identity is not known.
			absent := admissionregv1.AllowAction
			if name == "pod-identity-deny" || name == "pod-identity-injector" {
				absent = admissionregv1.DenyAction
			}
			wantName, wantSelector := syncv1.Name, (*metav1.LabelSelector)(nil)
			if name == "pod-identity-injector" {
				// Sync's label: the IdentityParameters for this policy,
				// the records for the written one (the same binding).
				wantName, wantSelector = "", &metav1.LabelSelector{MatchLabels: map[string]string{"app.kubernetes.io/managed-by": "pod-identity-injector-sync"}}
			}
			if name == "pod-identity-enforce" {
				// New pods: only where the object says the namespace is governed.
				// An object without the label (an older sync's) is still selected.
				wantName, wantSelector = "", &metav1.LabelSelector{MatchExpressions: []metav1.LabelSelectorRequirement{{Key: syncv1.EnforcedLabel, Operator: metav1.LabelSelectorOpNotIn, Values: []string{"false"}}}}
			}
			if ref == nil || ref.Name != wantName || !reflect.DeepEqual(ref.Selector, wantSelector) || ref.Namespace != "" || ref.ParameterNotFoundAction == nil || *ref.ParameterNotFoundAction != absent {
				t.Errorf("%s: paramRef %+v, want name %q, selector %v in the pod's namespace, %s when absent", name, ref, wantName, wantSelector, absent)
			}
			wantObjects := hook.ObjectSelector
			if strings.HasPrefix(name, "pod-identity-enforce") {
				wantObjects = nil // as the enforcement webhook: a pod's labels cannot take it out
			}
			// Only the pods the mutating policy labelled as needing the policy.
			selects := map[string][]string{
				"pod-identity-deny": {syncv1.PolicyChecksDeny, syncv1.PolicyChecksDenyWarn},
				"pod-identity-warn": {syncv1.PolicyChecksWarn, syncv1.PolicyChecksDenyWarn},
			}
			if values, ok := selects[name]; ok {
				wantObjects = wantObjects.DeepCopy()
				wantObjects.MatchExpressions = append(wantObjects.MatchExpressions, metav1.LabelSelectorRequirement{Key: syncv1.PolicyChecksLabel, Operator: metav1.LabelSelectorOpIn, Values: values})
			}
			if mr == nil || !reflect.DeepEqual(mr.NamespaceSelector, hook.NamespaceSelector) || !reflect.DeepEqual(mr.ObjectSelector, wantObjects) {
				t.Errorf("%s: selectors differ from the webhook's", name)
			}
		}
		mbs := find[*admissionregv1.MutatingAdmissionPolicyBinding](objs)
		var vbs []*admissionregv1.ValidatingAdmissionPolicyBinding
		for _, b := range find[*admissionregv1.ValidatingAdmissionPolicyBinding](objs) {
			if b.Spec.PolicyName != writers.Name {
				vbs = append(vbs, b)
			}
		}
		if len(mbs) != 1 || len(vbs) != 4 {
			t.Fatalf("want 1 and 4 bindings, got %d and %d", len(mbs), len(vbs))
		}
		check(mbs[0].Name, mbs[0].Spec.ParamRef, mbs[0].Spec.MatchResources)
		actions := map[string][]admissionregv1.ValidationAction{}
		operations := map[string][]string{}
		for _, b := range vbs {
			check(b.Name, b.Spec.ParamRef, b.Spec.MatchResources)
			actions[b.Spec.PolicyName] = b.Spec.ValidationActions
			for _, r := range b.Spec.MatchResources.ResourceRules {
				for _, op := range r.Operations {
					operations[b.Name] = append(operations[b.Name], string(op)+" "+strings.Join(r.Resources, ","))
				}
			}
		}
		// The enforcement step's two bindings split its requests, so that
		// none is evaluated twice: new pods and ephemeral containers where
		// governed, updates everywhere.
		if want := map[string][]string{"pod-identity-enforce": {"CREATE pods", "UPDATE pods/ephemeralcontainers"}, "pod-identity-enforce-updates": {"UPDATE pods"}}; !reflect.DeepEqual(operations, want) {
			t.Errorf("bindings' operations %v, want %v", operations, want)
		}
		if !slices.Equal(actions["pod-identity-deny"], []admissionregv1.ValidationAction{admissionregv1.Deny}) ||
			!slices.Equal(actions["pod-identity-warn"], []admissionregv1.ValidationAction{admissionregv1.Warn}) ||
			!slices.Equal(actions["pod-identity-enforce"], []admissionregv1.ValidationAction{admissionregv1.Deny}) {
			t.Errorf("validation actions %v", actions)
		}
	})

	t.Run("sync runs two replicas under the restricted profile, with a PodDisruptionBudget and the RBAC it needs", func(t *testing.T) {
		deps := find[*appsv1.Deployment](objs)
		if len(deps) != 1 {
			t.Fatalf("%d deployments", len(deps))
		}
		dep := deps[0]
		c := dep.Spec.Template.Spec.Containers[0]
		if *dep.Spec.Replicas != 2 || len(c.Args) == 0 || c.Args[0] != "sync" {
			t.Errorf("replicas %d, args %v", *dep.Spec.Replicas, c.Args)
		}
		sc, psc := c.SecurityContext, dep.Spec.Template.Spec.SecurityContext
		if sc == nil || psc == nil || !*psc.RunAsNonRoot || *sc.AllowPrivilegeEscalation || !*sc.ReadOnlyRootFilesystem ||
			!slices.Equal(sc.Capabilities.Drop, []corev1.Capability{"ALL"}) || sc.SeccompProfile.Type != corev1.SeccompProfileTypeRuntimeDefault {
			t.Errorf("container security context %+v, pod %+v", sc, psc)
		}
		var podNS bool
		for _, e := range c.Env {
			podNS = podNS || (e.Name == "POD_NAMESPACE" && e.ValueFrom != nil && e.ValueFrom.FieldRef.FieldPath == "metadata.namespace")
		}
		if !podNS {
			t.Error("POD_NAMESPACE (the lease's namespace) is not set")
		}
		pdbs := find[*policyv1.PodDisruptionBudget](objs)
		if len(pdbs) != 1 || !selects(t, pdbs[0].Spec.Selector, labels.Set(dep.Spec.Template.Labels).String()) {
			t.Error("no PodDisruptionBudget selects the sync pods")
		}
		can := func(group, resource, verb string) bool {
			for _, r := range find[*rbacv1.ClusterRole](objs) {
				for _, rule := range r.Rules {
					if slices.Contains(rule.APIGroups, group) && slices.Contains(rule.Resources, resource) && slices.Contains(rule.Verbs, verb) {
						return true
					}
				}
			}
			for _, r := range find[*rbacv1.Role](objs) {
				for _, rule := range r.Rules {
					if r.Namespace == dep.Namespace && slices.Contains(rule.APIGroups, group) && slices.Contains(rule.Resources, resource) && slices.Contains(rule.Verbs, verb) {
						return true
					}
				}
			}
			return false
		}
		for _, want := range [][3]string{
			{"", "serviceaccounts", "watch"}, {"", "namespaces", "watch"}, {"pod-identity.io", "identitypolicies", "watch"},
			{"pod-identity.io", "identitypolicies/status", "update"}, {"pod-identity.io", "identityparameters", "watch"},
			{"pod-identity.io", "identityparameters", "patch"}, {"pod-identity.io", "identityparameters", "delete"},
			{"coordination.k8s.io", "leases", "update"},
		} {
			if !can(want[0], want[1], want[2]) {
				t.Errorf("sync may not %s %s", want[2], want[1])
			}
		}
	})
}
