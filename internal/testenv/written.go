package testenv

import (
	"fmt"
	"strconv"
	"strings"

	admissionregv1 "k8s.io/api/admissionregistration/v1"
	corev1 "k8s.io/api/core/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"

	"github.com/pod-identity/injector/internal/parameters"
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

// WrittenPolicy is generic (the shipped mutating policy) with the rules
// parameters.WrittenRules writes for the entries of serviceAccount in spec
// in place of its generic ones, reading TypedParameters: the prototype of
// the policy sync would write. It acts on the pods of the ServiceAccounts
// with the same entries and of those not listed (to mark them), with the
// generic policy's match conditions on the typed parameters. Its inputs:
// the ServiceAccount's values and whether it is listed come from its
// annotation; no findings of its own and no API token rule.
func WrittenPolicy(generic *admissionregv1.MutatingAdmissionPolicy, spec v1alpha1.IdentityParametersSpec, serviceAccount string) (*admissionregv1.MutatingAdmissionPolicy, error) {
	sa, ok := spec.ServiceAccounts[serviceAccount]
	if !ok || len(sa.Injections) > 0 {
		return nil, fmt.Errorf("serviceaccount %s: want its entries in the parameters, and no injections of its own", serviceAccount)
	}
	var entries []v1alpha1.Injection
	for _, i := range sa.Entries {
		if int(i) >= len(spec.Templates) {
			return nil, fmt.Errorf("serviceaccount %s: entry %d past the %d templates", serviceAccount, i, len(spec.Templates))
		}
		entries = append(entries, spec.Templates[i])
	}
	key := entriesKey(sa.Entries)
	rules, err := parameters.WrittenRules(entries, 0)
	if err != nil {
		return nil, err
	}
	shipped := map[string]string{}
	for _, v := range generic.Spec.Variables {
		shipped[v.Name] = v.Expression
	}
	variable := func(name string) admissionregv1.Variable {
		return admissionregv1.Variable{Name: name, Expression: strings.ReplaceAll(shipped[name], "string(params.metadata.generation)", "params.metadata.resourceVersion")}
	}
	vars := []admissionregv1.Variable{variable("serviceAccount"), variable("labels"), variable("annotations"), variable("windows"),
		{Name: "values", Expression: "[params.metadata.?annotations[?variables.serviceAccount].orValue('').split('|')].map(f, lists.range(size(f) - 1).map(i, f[i + 1]))[0]"},
		{Name: "listed", Expression: "variables.serviceAccount in params.metadata.?annotations.orValue({})"},
		{Name: "own", Expression: "''"},
		{Name: "enforcement", Expression: "''"}}
	vars = append(vars, rules...)
	vars = append(vars, variable("newAnnotations"), variable("newLabels"))
	var volumes []string
	for _, e := range entries {
		for _, v := range e.Volumes {
			volumes = append(volumes, strconv.Quote(v.Name))
		}
	}
	const mark = "'" + v1alpha1.PolicyCheckedContainersAnnotation + "'"
	counts := "c.name + ':' + string(size(c.?env.orValue([]))) + ':' + string(size(c.?volumeMounts.orValue([])))"
	p := generic.DeepCopy()
	p.Spec.Variables = vars
	p.Spec.ParamKind = &admissionregv1.ParamKind{APIVersion: "v1", Kind: "ServiceAccount"}
	p.Spec.MatchConditions = []admissionregv1.MatchCondition{
		generic.Spec.MatchConditions[0],
		{Name: "not-checked-yet", Expression: "!(" + mark + " in object.metadata.?annotations.orValue({})) || [" + shipped["serviceAccount"] + "].all(n, " +
			"object.metadata.annotations[" + mark + "] != " +
			"object.spec.?initContainers.orValue([]).map(c, " + counts + ").join(',') + '|' + object.spec.containers.map(c, " + counts + ").join(',') + " +
			"';' + n + ';' + params.metadata.uid + ';' + params.metadata.resourceVersion + ';' + string(size(object.metadata.?labels.orValue({}))) + ';' + string(size(object.metadata.?annotations.orValue({}))) || " +
			"!(n in params.metadata.?annotations.orValue({})) || 'pod-identity.io/serviceaccount-not-known' in object.metadata.?annotations.orValue({}) || " +
			"!object.spec.?volumes.orValue([]).exists(v, v.name in [" + strings.Join(volumes, ", ") + "]))"},
		{Name: "may-act", Expression: "'pod-identity.io/serviceaccount-not-known' in object.metadata.?annotations.orValue({}) || [" + shipped["serviceAccount"] + "].all(n, " +
			"!(n in params.metadata.?annotations.orValue({})) || params.metadata.annotations[n].split('|')[0] == " + strconv.Quote(key) + ")"},
	}
	return p, nil
}
