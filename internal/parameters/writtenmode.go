package parameters

import (
	"context"
	"encoding/json"
	"fmt"
	"maps"
	"slices"
	"strings"
	gosync "sync"

	"github.com/sirupsen/logrus"
	admissionregv1 "k8s.io/api/admissionregistration/v1"
	corev1 "k8s.io/api/core/v1"
	apierrors "k8s.io/apimachinery/pkg/api/errors"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/apis/meta/v1/unstructured"
	"k8s.io/apimachinery/pkg/runtime"
	"k8s.io/apimachinery/pkg/runtime/schema"
	"k8s.io/client-go/dynamic"
	"sigs.k8s.io/yaml"

	policymanifests "github.com/pod-identity/injector/deploy/policy"
)

// MaxNamespaceSets bounds the distinct sets of entries one namespace puts
// in the written policy, which all namespaces share: a namespace whose
// ServiceAccounts differ more (own injections, tuned token expirations)
// cannot take the cluster's room. Its ServiceAccounts past the bound,
// those of the sets fewest of them share, are left out (refused as not
// known; use webhook mode there).
const MaxNamespaceSets = 16

// MaxPolicyBytes bounds the written policy: etcd refuses an object over
// 1.5 MiB by default, and server-side apply's managed fields come on top.
// Past it the sets fewest namespaces use are left out.
const MaxPolicyBytes = 1 << 20

// Resources the written mode writes.
var (
	mutatingPolicies        = schema.GroupVersionResource{Group: "admissionregistration.k8s.io", Version: "v1", Resource: "mutatingadmissionpolicies"}
	mutatingBindings        = schema.GroupVersionResource{Group: "admissionregistration.k8s.io", Version: "v1", Resource: "mutatingadmissionpolicybindings"}
	serviceAccountsResource = schema.GroupVersionResource{Version: "v1", Resource: "serviceaccounts"}
)

// BindingName is the mutating policy binding of policy mode: in written
// mode sync points it at the written policy (WrittenPolicyName, reading
// RecordsName), once every namespace has its records; applying
// deploy/policy points it back at the generic policy.
const BindingName = "pod-identity-injector"

// written keeps the written policy: the sets every namespace uses.
type written struct {
	generic *admissionregv1.MutatingAdmissionPolicy
	binding *admissionregv1.MutatingAdmissionPolicyBinding
	dyn     dynamic.Interface
	log     logrus.FieldLogger

	mu      gosync.Mutex
	byNS    map[string]map[string]WrittenSet
	applied []string          // the keys of the policy last applied
	records map[string]string // namespace -> its records as last applied
	bound   bool              // the binding points at the written policy
}

// newWritten reads the generic policy and binding that sync starts from.
func newWritten(dyn dynamic.Interface, log logrus.FieldLogger) (*written, error) {
	var generic admissionregv1.MutatingAdmissionPolicy
	if err := yaml.UnmarshalStrict(policymanifests.MutatingPolicy, &generic); err != nil {
		return nil, fmt.Errorf("the generic mutating policy: %w", err)
	}
	var binding admissionregv1.MutatingAdmissionPolicyBinding
	first, _, _ := strings.Cut(string(policymanifests.Bindings), "\n---\n")
	if err := yaml.UnmarshalStrict([]byte(first), &binding); err != nil || binding.Name != BindingName || binding.Spec.ParamRef == nil {
		return nil, fmt.Errorf("the generic mutating policy's binding %s: %v", BindingName, err)
	}
	binding.Spec.PolicyName = WrittenPolicyName
	binding.Spec.ParamRef.Name = RecordsName
	return &written{generic: &generic, binding: &binding, dyn: dyn, log: log, byNS: map[string]map[string]WrittenSet{}, records: map[string]string{}}, nil
}

// chosen are the keys of the sets the policy holds, and the policy: the
// sets by the number of namespaces using them, most first, within
// MaxPolicyBytes.
func (w *written) chosen() ([]string, *admissionregv1.MutatingAdmissionPolicy, error) {
	uses := map[string]int{}
	sets := map[string]WrittenSet{}
	for _, nsSets := range w.byNS {
		for k, s := range nsSets {
			uses[k]++
			sets[k] = s
		}
	}
	keys := slices.Collect(maps.Keys(sets))
	slices.SortFunc(keys, func(a, b string) int {
		if uses[a] != uses[b] {
			return uses[b] - uses[a]
		}
		return strings.Compare(a, b)
	})
	for n := len(keys); n >= 0; n-- {
		in := map[string]WrittenSet{}
		for _, k := range keys[:n] {
			in[k] = sets[k]
		}
		p, err := WrittenPolicy(w.generic, in)
		if err != nil {
			return nil, nil, err
		}
		b, err := json.Marshal(p)
		if err != nil {
			return nil, nil, err
		}
		if len(b) <= MaxPolicyBytes {
			if n < len(keys) {
				w.log.WithFields(logrus.Fields{"sets": len(keys), "held": n, "max_bytes": MaxPolicyBytes}).
					Error("written policy too large: the serviceaccounts of the sets left out are refused as not known (use webhook mode, or fewer distinct identities)")
			}
			return slices.Sorted(slices.Values(keys[:n])), p, nil
		}
	}
	return nil, nil, fmt.Errorf("mutatingadmissionpolicy %s: larger than %d bytes with no sets", WrittenPolicyName, MaxPolicyBytes)
}

// use records the sets of namespace ns and applies the policy when the
// sets it holds change: before the records that name a new set.
func (w *written) use(ctx context.Context, ns string, sets map[string]WrittenSet) error {
	w.mu.Lock()
	defer w.mu.Unlock()
	if len(sets) == 0 {
		delete(w.byNS, ns)
	} else {
		w.byNS[ns] = sets
	}
	return w.apply(ctx)
}

// apply writes the policy if the sets it holds changed.
func (w *written) apply(ctx context.Context) error {
	keys, p, err := w.chosen()
	if err != nil {
		return err
	}
	if w.applied != nil && slices.Equal(keys, w.applied) {
		return nil
	}
	if err := applyObject(ctx, w.dyn.Resource(mutatingPolicies), p, "MutatingAdmissionPolicy"); err != nil {
		return fmt.Errorf("apply mutatingadmissionpolicy %s: %w", p.Name, err)
	}
	w.applied = keys
	w.log.WithFields(logrus.Fields{"policy": p.Name, "sets": len(keys)}).Info("written policy applied")
	return nil
}

// bind points the binding at the written policy.
func (w *written) bind(ctx context.Context) error {
	w.mu.Lock()
	defer w.mu.Unlock()
	if w.bound {
		return nil
	}
	// A binding the operator applied keeps what it matches (their
	// namespaces, their opt-outs): only its policy and its parameters
	// change. Without one, the shipped binding's.
	client := w.dyn.Resource(mutatingBindings)
	var obj runtime.Object = w.binding
	if _, err := client.Get(ctx, w.binding.Name, metav1.GetOptions{}); err == nil {
		obj = &admissionregv1.MutatingAdmissionPolicyBinding{
			ObjectMeta: metav1.ObjectMeta{Name: w.binding.Name},
			Spec:       admissionregv1.MutatingAdmissionPolicyBindingSpec{PolicyName: w.binding.Spec.PolicyName, ParamRef: w.binding.Spec.ParamRef},
		}
	} else if !apierrors.IsNotFound(err) {
		return fmt.Errorf("get mutatingadmissionpolicybinding %s: %w", w.binding.Name, err)
	}
	if err := applyObject(ctx, client, obj, "MutatingAdmissionPolicyBinding"); err != nil {
		return fmt.Errorf("apply mutatingadmissionpolicybinding %s: %w", w.binding.Name, err)
	}
	w.bound = true
	w.log.WithField("binding", w.binding.Name).Info("policy mode now injects with the written policy")
	return nil
}

// writeRecords applies namespace ns's records (nil: deletes them) unless
// they are as last applied.
func (w *written) writeRecords(ctx context.Context, ns string, annotations map[string]string) error {
	w.mu.Lock()
	b, _ := json.Marshal(annotations)
	last, ok := w.records[ns]
	w.mu.Unlock()
	if ok && last == string(b) {
		return nil
	}
	client := w.dyn.Resource(serviceAccountsResource).Namespace(ns)
	if annotations == nil {
		if err := client.Delete(ctx, RecordsName, metav1.DeleteOptions{}); err != nil && !apierrors.IsNotFound(err) {
			return fmt.Errorf("delete serviceaccount %s/%s: %w", ns, RecordsName, err)
		}
	} else {
		sa := &corev1.ServiceAccount{
			TypeMeta:   metav1.TypeMeta{APIVersion: "v1", Kind: "ServiceAccount"},
			ObjectMeta: metav1.ObjectMeta{Name: RecordsName, Namespace: ns, Labels: map[string]string{ManagedByLabel: ManagedBy}, Annotations: annotations},
			// Pods never need this ServiceAccount's token.
			AutomountServiceAccountToken: new(bool),
		}
		if err := applyObject(ctx, client, sa, "ServiceAccount"); err != nil {
			return fmt.Errorf("apply serviceaccount %s/%s: %w", ns, RecordsName, err)
		}
	}
	w.mu.Lock()
	w.records[ns] = string(b)
	w.mu.Unlock()
	return nil
}

// applyObject applies obj whole with server-side apply, forced: sync owns
// it.
func applyObject(ctx context.Context, client dynamic.ResourceInterface, obj runtime.Object, kind string) error {
	m, err := runtime.DefaultUnstructuredConverter.ToUnstructured(obj)
	if err != nil {
		return err
	}
	u := &unstructured.Unstructured{Object: m}
	if u.GetAPIVersion() == "" {
		u.SetAPIVersion(admissionregv1.SchemeGroupVersion.String())
		u.SetKind(kind)
	}
	unstructured.RemoveNestedField(u.Object, "metadata", "creationTimestamp")
	unstructured.RemoveNestedField(u.Object, "status")
	_, err = client.Apply(ctx, u.GetName(), u, metav1.ApplyOptions{FieldManager: ManagedBy, Force: true})
	return err
}
