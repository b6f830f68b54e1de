package render

import (
	"fmt"
	"sort"
	"strings"

	"github.com/spf13/pflag"
	"k8s.io/apimachinery/pkg/util/validation"
)

// AddPolicyFlags registers the flags that bring identity policies in:
// --policy FILE and --namespace-labels NS=KEY=VALUE,...; both repeatable.
func (o *Options) AddPolicyFlags(fs *pflag.FlagSet) {
	fs.StringArrayVar(&o.PolicyFiles, "policy", nil, "file of IdentityPolicy (and Namespace) documents to apply besides those in the input (repeatable)")
	fs.Var((*namespaceLabels)(&o.NamespaceLabels), "namespace-labels",
		"labels of a namespace the policies select by, as NAMESPACE=KEY=VALUE,KEY=VALUE (repeatable; Namespace documents in the input count too)")
}

// namespaceLabels is the value of --namespace-labels.
type namespaceLabels map[string]map[string]string

func (n *namespaceLabels) String() string {
	var parts []string
	for ns, labels := range *n {
		var kv []string
		for k, v := range labels {
			kv = append(kv, k+"="+v)
		}
		sort.Strings(kv)
		parts = append(parts, ns+"="+strings.Join(kv, ","))
	}
	sort.Strings(parts)
	return strings.Join(parts, " ")
}

func (n *namespaceLabels) Type() string { return "NAMESPACE=KEY=VALUE,..." }

func (n *namespaceLabels) Set(v string) error {
	ns, rest, ok := strings.Cut(v, "=")
	if !ok || ns == "" {
		return fmt.Errorf("%q: expected NAMESPACE=KEY=VALUE,KEY=VALUE", v)
	}
	if errs := validation.IsDNS1123Label(ns); len(errs) > 0 {
		return fmt.Errorf("namespace %q: %s", ns, errs[0])
	}
	labels := map[string]string{}
	for _, pair := range strings.Split(rest, ",") {
		if pair = strings.TrimSpace(pair); pair == "" {
			continue
		}
		k, val, ok := strings.Cut(pair, "=")
		if !ok {
			return fmt.Errorf("namespace %q: label %q: expected KEY=VALUE", ns, pair)
		}
		if errs := validation.IsQualifiedName(k); len(errs) > 0 {
			return fmt.Errorf("namespace %q: label key %q: %s", ns, k, errs[0])
		}
		if errs := validation.IsValidLabelValue(val); len(errs) > 0 {
			return fmt.Errorf("namespace %q: label %s value %q: %s", ns, k, val, errs[0])
		}
		labels[k] = val
	}
	if *n == nil {
		*n = namespaceLabels{}
	}
	(*n)[ns] = labels
	return nil
}
