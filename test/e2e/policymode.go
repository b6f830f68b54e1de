package e2e

import (
	"context"
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"strings"
	"time"

	authenticationv1 "k8s.io/api/authentication/v1"
	corev1 "k8s.io/api/core/v1"
	rbacv1 "k8s.io/api/rbac/v1"
	apierrors "k8s.io/apimachinery/pkg/api/errors"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/apis/meta/v1/unstructured"
	"k8s.io/apimachinery/pkg/runtime/schema"
	"k8s.io/client-go/dynamic"
	"sigs.k8s.io/kustomize/api/krusty"
	"sigs.k8s.io/kustomize/kyaml/filesys"
	"sigs.k8s.io/yaml"
)

// RenderKustomization builds a kustomize base of the repository (a path
// relative to its root) as `kubectl apply -k` would.
func RenderKustomization(repoRoot, dir string) ([]*unstructured.Unstructured, error) {
	k := krusty.MakeKustomizer(krusty.MakeDefaultOptions())
	res, err := k.Run(filesys.MakeFsOnDisk(), filepath.Join(repoRoot, dir))
	if err != nil {
		return nil, fmt.Errorf("kustomize build %s: %w", dir, err)
	}
	var out []*unstructured.Unstructured
	for _, r := range res.Resources() {
		m, err := r.Map()
		if err != nil {
			return nil, err
		}
		out = append(out, &unstructured.Unstructured{Object: m})
	}
	return out, nil
}

// ParameterWriters names the policy (and binding) that lets only sync
// write IdentityParameters.
const ParameterWriters = "pod-identity-parameters-writers"

// AdmissionPolicies returns the admission policies and bindings of
// deploy/policy. When selector is set, the bindings match only the
// namespaces it selects (label=value) instead of the shipped selector, so
// that a test cluster can run both modes side by side.
func AdmissionPolicies(repoRoot string, selector map[string]string) ([]*unstructured.Unstructured, error) {
	objs, err := RenderKustomization(repoRoot, "deploy/policy")
	if err != nil {
		return nil, err
	}
	var out []*unstructured.Unstructured
	for _, o := range objs {
		if o.GroupVersionKind().Group != "admissionregistration.k8s.io" {
			continue
		}
		if selector != nil && (o.GetKind() == "MutatingAdmissionPolicyBinding" || o.GetKind() == "ValidatingAdmissionPolicyBinding") && o.GetName() != ParameterWriters {
			sel := map[string]any{}
			for k, v := range selector {
				sel[k] = v
			}
			if err := unstructured.SetNestedMap(o.Object, map[string]any{"matchLabels": sel}, "spec", "matchResources", "namespaceSelector"); err != nil {
				return nil, err
			}
		}
		out = append(out, o)
	}
	if len(out) != 11 {
		return nil, fmt.Errorf("deploy/policy holds %d admission policies and bindings, want 11", len(out))
	}
	return out, nil
}

// WrittenRules says whether the suite runs policy mode with the rules
// sync writes (E2E_POLICY_RULES=written: `injector sync --written-policy`,
// deploy/overlays/policy-written) rather than the generic policy.
func WrittenRules() bool { return os.Getenv("E2E_POLICY_RULES") == "written" }

// WrittenWriters are the writers policy of deploy/overlays/policy-written
// and its binding.
func WrittenWriters(repoRoot string) ([]*unstructured.Unstructured, error) {
	data, err := os.ReadFile(filepath.Join(repoRoot, "deploy", "overlays", "policy-written", "written.yaml"))
	if err != nil {
		return nil, err
	}
	var out []*unstructured.Unstructured
	for _, doc := range strings.Split(string(data), "\n---\n") {
		o := &unstructured.Unstructured{}
		if err := yaml.Unmarshal([]byte(doc), &o.Object); err != nil {
			return nil, err
		}
		if o.GroupVersionKind().Group == "admissionregistration.k8s.io" {
			out = append(out, o)
		}
	}
	if len(out) != 2 {
		return nil, fmt.Errorf("deploy/overlays/policy-written/written.yaml holds %d admission policies and bindings, want 2", len(out))
	}
	return out, nil
}

// ApplyAdmissionPolicies creates objs (from AdmissionPolicies), replacing
// any of the same name.
func (c *Cluster) ApplyAdmissionPolicies(ctx context.Context, objs []*unstructured.Unstructured) error {
	dyn, err := dynamic.NewForConfig(c.Config)
	if err != nil {
		return err
	}
	for _, o := range objs {
		gvk := o.GroupVersionKind()
		res := dyn.Resource(schema.GroupVersionResource{Group: gvk.Group, Version: gvk.Version, Resource: resourceOf(gvk.Kind)})
		_ = res.Delete(ctx, o.GetName(), metav1.DeleteOptions{})
		if _, err := res.Create(ctx, o, metav1.CreateOptions{FieldValidation: "Strict"}); err != nil {
			return fmt.Errorf("create %s %s: %w", gvk.Kind, o.GetName(), err)
		}
	}
	return nil
}

// WaitForWrittenBinding waits until sync has pointed the mutating
// policy's binding at its written policy (up to 60 s).
func (c *Cluster) WaitForWrittenBinding(ctx context.Context) error {
	dyn, err := dynamic.NewForConfig(c.Config)
	if err != nil {
		return err
	}
	res := dyn.Resource(schema.GroupVersionResource{Group: "admissionregistration.k8s.io", Version: "v1", Resource: "mutatingadmissionpolicybindings"})
	deadline := time.Now().Add(60 * time.Second)
	for {
		b, err := res.Get(ctx, "pod-identity-injector", metav1.GetOptions{})
		if err == nil {
			if name, _, _ := unstructured.NestedString(b.Object, "spec", "policyName"); name == "pod-identity-injector-written" {
				return nil
			}
		}
		if time.Now().After(deadline) {
			return fmt.Errorf("the binding pod-identity-injector was not pointed at pod-identity-injector-written within 60s (%v)", err)
		}
		time.Sleep(50 * time.Millisecond)
	}
}

// DeleteAdmissionPolicies deletes objs; those already gone are no error.
func (c *Cluster) DeleteAdmissionPolicies(ctx context.Context, objs []*unstructured.Unstructured) error {
	dyn, err := dynamic.NewForConfig(c.Config)
	if err != nil {
		return err
	}
	var errs []error
	for _, o := range objs {
		gvk := o.GroupVersionKind()
		res := dyn.Resource(schema.GroupVersionResource{Group: gvk.Group, Version: gvk.Version, Resource: resourceOf(gvk.Kind)})
		if err := res.Delete(ctx, o.GetName(), metav1.DeleteOptions{}); err != nil && !apierrors.IsNotFound(err) {
			errs = append(errs, err)
		}
	}
	return errors.Join(errs...)
}

func resourceOf(kind string) string {
	return map[string]string{
		"MutatingAdmissionPolicy":          "mutatingadmissionpolicies",
		"MutatingAdmissionPolicyBinding":   "mutatingadmissionpolicybindings",
		"ValidatingAdmissionPolicy":        "validatingadmissionpolicies",
		"ValidatingAdmissionPolicyBinding": "validatingadmissionpolicybindings",
	}[kind]
}

// IdentityParametersGVR names the objects `injector sync` writes.
var IdentityParametersGVR = schema.GroupVersionResource{Group: "pod-identity.io", Version: "v1alpha1", Resource: "identityparameters"}

// WaitForParameters waits until the namespace's IdentityParameters holds
// an entry for the ServiceAccount, and returns how long that took.
func (c *Cluster) WaitForParameters(ctx context.Context, ns, sa string, timeout time.Duration) (time.Duration, error) {
	dyn, err := dynamic.NewForConfig(c.Config)
	if err != nil {
		return 0, err
	}
	start := time.Now()
	for {
		u, err := dyn.Resource(IdentityParametersGVR).Namespace(ns).Get(ctx, "pod-identity", metav1.GetOptions{})
		if err == nil {
			if _, ok, _ := unstructured.NestedMap(u.Object, "spec", "serviceAccounts", sa); ok {
				return time.Since(start), nil
			}
		}
		if time.Since(start) > timeout {
			return 0, fmt.Errorf("no identity parameters for serviceaccount %s/%s after %s", ns, sa, timeout)
		}
		time.Sleep(5 * time.Millisecond)
	}
}

// syncKubeconfig installs what deploy/policy gives `injector sync` (its
// namespace, ServiceAccount and RBAC, as shipped) and writes a kubeconfig
// holding a token of that ServiceAccount: sync runs with its shipped
// rights, as the one user the parameters' writers policy admits.
func (c *Cluster) syncKubeconfig(ctx context.Context) (string, error) {
	cs := c.Client
	files := []string{"namespace.yaml", "rbac.yaml"}
	if WrittenRules() {
		files = append(files, filepath.Join("..", "overlays", "policy-written", "written.yaml"))
	}
	for _, file := range files {
		data, err := os.ReadFile(filepath.Join(c.repoRoot, "deploy", "policy", file))
		if err != nil {
			return "", err
		}
		for _, doc := range strings.Split(string(data), "\n---\n") {
			var meta struct{ Kind string }
			if err := yaml.Unmarshal([]byte(doc), &meta); err != nil {
				return "", err
			}
			var err error
			switch meta.Kind {
			case "Namespace":
				var o corev1.Namespace
				if err = yaml.UnmarshalStrict([]byte(doc), &o); err == nil {
					_, err = cs.CoreV1().Namespaces().Create(ctx, &o, metav1.CreateOptions{})
				}
			case "ServiceAccount":
				var o corev1.ServiceAccount
				if err = yaml.UnmarshalStrict([]byte(doc), &o); err == nil {
					_, err = cs.CoreV1().ServiceAccounts(o.Namespace).Create(ctx, &o, metav1.CreateOptions{})
				}
			case "ClusterRole":
				var o rbacv1.ClusterRole
				if err = yaml.UnmarshalStrict([]byte(doc), &o); err == nil {
					_, err = cs.RbacV1().ClusterRoles().Create(ctx, &o, metav1.CreateOptions{})
				}
			case "ClusterRoleBinding":
				var o rbacv1.ClusterRoleBinding
				if err = yaml.UnmarshalStrict([]byte(doc), &o); err == nil {
					_, err = cs.RbacV1().ClusterRoleBindings().Create(ctx, &o, metav1.CreateOptions{})
				}
			case "Role":
				var o rbacv1.Role
				if err = yaml.UnmarshalStrict([]byte(doc), &o); err == nil {
					_, err = cs.RbacV1().Roles(o.Namespace).Create(ctx, &o, metav1.CreateOptions{})
				}
			case "RoleBinding":
				var o rbacv1.RoleBinding
				if err = yaml.UnmarshalStrict([]byte(doc), &o); err == nil {
					_, err = cs.RbacV1().RoleBindings(o.Namespace).Create(ctx, &o, metav1.CreateOptions{})
				}
			case "ValidatingAdmissionPolicy", "ValidatingAdmissionPolicyBinding":
				// The written mode's writers policy: applied with the
				// admission policies (WrittenWriters).
			default:
				return "", fmt.Errorf("deploy/policy/%s: unexpected %s", file, meta.Kind)
			}
			if err != nil && !apierrors.IsAlreadyExists(err) {
				return "", fmt.Errorf("deploy/policy/%s: %s: %w", file, meta.Kind, err)
			}
		}
	}
	exp := int64(24 * 3600)
	tr, err := cs.CoreV1().ServiceAccounts(SyncNamespace).CreateToken(ctx, SyncServiceAccount,
		&authenticationv1.TokenRequest{Spec: authenticationv1.TokenRequestSpec{ExpirationSeconds: &exp}}, metav1.CreateOptions{})
	if err != nil {
		return "", fmt.Errorf("a token for sync's serviceaccount: %w", err)
	}
	return c.kubeconfigFor("sync-kubeconfig", c.APIURL, tr.Status.Token)
}

// Sync's namespace and ServiceAccount, as deploy/policy ships them.
const (
	SyncNamespace      = "pod-identity-system"
	SyncServiceAccount = "pod-identity-sync"
)
