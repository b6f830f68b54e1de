package testenv

import (
	"fmt"
	"strings"

	corev1 "k8s.io/api/core/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"

	"github.com/pod-identity/injector/pkg/parameters/v1alpha1"
)

// TypedParametersName is the ServiceAccount that holds the typed
// parameters of apibench's and celbench's prototype.
const TypedParametersName = "pod-identity-prototype"

// TypedParameters is the prototype's parameters for spec: a ServiceAccount
// with, for each ServiceAccount of spec, an annotation of its name holding
// its entries and its values, split by '|'. The API server reads a typed
// parameter lazily, where it encodes a custom resource whole at every
// evaluation (docs/performance.md). A ServiceAccount with injections of
// its own (templates that did not fit) is refused.
func TypedParameters(namespace string, spec v1alpha1.IdentityParametersSpec) (*corev1.ServiceAccount, error) {
	ann := map[string]string{}
	for name, p := range spec.ServiceAccounts {
		if len(p.Injections) > 0 {
			return nil, fmt.Errorf("serviceaccount %s has injections of its own", name)
		}
		ann[name] = strings.Join(append([]string{entriesKey(p.Entries)}, p.Values...), "|")
	}
	return &corev1.ServiceAccount{ObjectMeta: metav1.ObjectMeta{Namespace: namespace, Name: TypedParametersName, Annotations: ann}}, nil
}

// entriesKey is a ServiceAccount's entries as TypedParameters writes them.
func entriesKey(entries []int32) string {
	s := make([]string, len(entries))
	for i, e := range entries {
		s[i] = fmt.Sprint(e)
	}
	return strings.Join(s, ",")
}
