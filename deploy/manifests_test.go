// Package deploy holds the shipped manifests; its test checks them against
// the real Kubernetes and cert-manager API types and against the server.
package deploy_test

import (
	"bytes"
	"context"
	"errors"
	"io"
	"os"
	"path/filepath"
	"reflect"
	"slices"
	"strconv"
	"strings"
	"testing"

	cmv1 "github.com/cert-manager/cert-manager/pkg/apis/certmanager/v1"
	"github.com/sirupsen/logrus"
	"github.com/spf13/pflag"
	jsonpatch "gopkg.in/evanphx/json-patch.v4"
	admissionregv1 "k8s.io/api/admissionregistration/v1"
	appsv1 "k8s.io/api/apps/v1"
	corev1 "k8s.io/api/core/v1"
	networkingv1 "k8s.io/api/networking/v1"
	rbacv1 "k8s.io/api/rbac/v1"
	apiextensionsv1 "k8s.io/apiextensions-apiserver/pkg/apis/apiextensions/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/labels"
	"k8s.io/apimachinery/pkg/runtime"
	"k8s.io/apimachinery/pkg/runtime/serializer/json"
	utilyaml "k8s.io/apimachinery/pkg/util/yaml"
	clientgoscheme "k8s.io/client-go/kubernetes/scheme"
	"sigs.k8s.io/yaml"

	"github.com/pod-identity/injector/internal/server"
	v1alpha1 "github.com/pod-identity/injector/pkg/policy/v1alpha1"
	"github.com/pod-identity/injector/pkg/providers"
	"github.com/pod-identity/injector/pkg/providers/builtin"
)

type kustomization struct {
	Resources []string `json:"resources"`
	Patches   []struct {
		Path   string `json:"path"`
		Target struct {
			Name string `json:"name"`
		} `json:"target"`
	} `json:"patches"`
}

func readKustomization(t *testing.T, dir string) kustomization {
	t.Helper()
	data, err := os.ReadFile(filepath.Join(dir, "kustomization.yaml"))
	if err != nil {
		t.Fatal(err)
	}
	var k kustomization
	if err := yaml.UnmarshalStrict(data, &k, yaml.DisallowUnknownFields); err != nil {
		// apiVersion and kind are the only other keys a base has.
		var loose kustomization
		if err2 := yaml.Unmarshal(data, &loose); err2 != nil {
			t.Fatal(err2)
		}
		k = loose
	}
	return k
}

// decodeAll strictly decodes every document of every resource of the
// kustomize base in deploy/manifests: an unknown or duplicated field is an
// error.
func decodeAll(t *testing.T) []runtime.Object {
	t.Helper()
	return decodeBase(t, "manifests")
}

// decodeBase strictly decodes every document of every resource of the
// kustomize base in dir, following resources that are bases themselves,
// and fails for a YAML file of dir that the base does not list.
func decodeBase(t *testing.T, dir string) []runtime.Object {
	t.Helper()
	scheme := runtime.NewScheme()
	if err := clientgoscheme.AddToScheme(scheme); err != nil {
		t.Fatal(err)
	}
	if err := cmv1.AddToScheme(scheme); err != nil {
		t.Fatal(err)
	}
	if err := apiextensionsv1.AddToScheme(scheme); err != nil {
		t.Fatal(err)
	}
	strict := json.NewSerializerWithOptions(json.DefaultMetaFactory, scheme, scheme, json.SerializerOptions{Yaml: true, Strict: true})
	k := readKustomization(t, dir)
	files, _ := filepath.Glob(filepath.Join(dir, "*.yaml"))
	for _, f := range files {
		if base := filepath.Base(f); base != "kustomization.yaml" && !slices.Contains(k.Resources, base) {
			t.Errorf("%s is not listed in kustomization.yaml", f)
		}
	}
	var objs []runtime.Object
	for _, res := range k.Resources {
		path := filepath.Join(dir, res)
		if fi, err := os.Stat(path); err == nil && fi.IsDir() {
			objs = append(objs, decodeBase(t, path)...)
			continue
		}
		data, err := os.ReadFile(path)
		if err != nil {
			t.Fatalf("kustomization lists %s: %v", res, err)
		}
		r := utilyaml.NewYAMLReader(bufioReader(data))
		for i := 1; ; i++ {
			doc, err := r.Read()
			if errors.Is(err, io.EOF) {
				break
			}
			if err != nil {
				t.Fatal(err)
			}
			if len(bytes.TrimSpace(doc)) == 0 {
				continue
			}
			obj, gvk, err := strict.Decode(doc, nil, nil)
			if err != nil {
				t.Errorf("%s document %d: %v", path, i, err)
				continue
			}
			if gvk.Kind == "" {
				t.Errorf("%s document %d has no kind", path, i)
			}
			objs = append(objs, obj)
		}
	}
	return objs
}

func find[T any](objs []runtime.Object) []T {
	var out []T
	for _, o := range objs {
		if v, ok := o.(T); ok {
			out = append(out, v)
		}
	}
	return out
}

func TestManifestsDecodeStrictlyAndAgreeWithTheServer(t *testing.T) {
	objs := decodeAll(t)
	services := find[*corev1.Service](objs)
	deployments := find[*appsv1.Deployment](objs)
	certs := find[*cmv1.Certificate](objs)
	if len(services) != 1 || len(deployments) != 1 {
		t.Fatalf("want one Service and one Deployment, got %d and %d", len(services), len(deployments))
	}
	svc, dep := services[0], deployments[0]
	c := dep.Spec.Template.Spec.Containers[0]

	t.Run("the service reaches the container's webhook port", func(t *testing.T) {
		var port corev1.ServicePort
		for _, p := range svc.Spec.Ports {
			if p.Port == 443 {
				port = p
			}
		}
		var cport int32
		for _, p := range c.Ports {
			if p.Name == port.TargetPort.String() {
				cport = p.ContainerPort
			}
		}
		if cport == 0 || !slices.Contains(c.Args, "--listen-address=:"+strconv.Itoa(int(cport))) {
			t.Errorf("service port 443 targets %q, which is not the --listen-address of %v", port.TargetPort.String(), c.Args)
		}
		for k, v := range svc.Spec.Selector {
			if dep.Spec.Template.Labels[k] != v {
				t.Errorf("service selector %s=%s does not select the deployment's pods", k, v)
			}
		}
	})

	t.Run("the network policy admits the container's two ports and nothing else", func(t *testing.T) {
		pols := find[*networkingv1.NetworkPolicy](objs)
		if len(pols) != 1 {
			t.Fatalf("want one NetworkPolicy, got %d", len(pols))
		}
		pol := pols[0]
		if pol.Namespace != dep.Namespace || !selects(t, &pol.Spec.PodSelector, labels.Set(dep.Spec.Template.Labels).String()) {
			t.Errorf("the policy in %s selecting %v does not select the deployment's pods", pol.Namespace, pol.Spec.PodSelector)
		}
		if !slices.Equal(pol.Spec.PolicyTypes, []networkingv1.PolicyType{networkingv1.PolicyTypeIngress}) {
			t.Errorf("policyTypes %v, want Ingress only (the API server's address is not known in advance)", pol.Spec.PolicyTypes)
		}
		var admitted, want []string
		for _, r := range pol.Spec.Ingress {
			for _, p := range r.Ports {
				admitted = append(admitted, p.Port.String())
			}
		}
		for _, p := range c.Ports {
			want = append(want, p.Name)
		}
		slices.Sort(admitted)
		slices.Sort(want)
		if !slices.Equal(admitted, want) {
			t.Errorf("the policy admits ports %v, want exactly the container's %v", admitted, want)
		}
	})

	t.Run("pods cost one mutating and one enforcing call, and serviceaccount writes are checked by the server's paths", func(t *testing.T) {
		muts := find[*admissionregv1.MutatingWebhookConfiguration](objs)
		all := find[*admissionregv1.ValidatingWebhookConfiguration](objs)
		if len(muts) != 1 || len(muts[0].Webhooks) != 1 {
			t.Fatal("want one mutating webhook")
		}
		var vals, enfs []*admissionregv1.ValidatingWebhookConfiguration
		for _, c := range all {
			if len(c.Webhooks) == 1 && c.Webhooks[0].ClientConfig.Service != nil && c.Webhooks[0].ClientConfig.Service.Path != nil && *c.Webhooks[0].ClientConfig.Service.Path == server.EnforcePath {
				enfs = append(enfs, c)
			} else {
				vals = append(vals, c)
			}
		}
		if len(vals) != 1 || len(vals[0].Webhooks) != 1 || len(enfs) != 1 {
			t.Fatal("want two validating webhooks: one for serviceaccounts, one enforcing on pods")
		}
		m, v, en := muts[0].Webhooks[0], vals[0].Webhooks[0], enfs[0].Webhooks[0]
		if en.ObjectSelector != nil {
			t.Errorf("the enforcement webhook has an objectSelector %+v: a pod's labels must not take it out", en.ObjectSelector)
		}
		var mayCarry string
		for _, c := range en.MatchConditions {
			if c.Name == "may-carry-an-identity" {
				mayCarry = c.Expression
			}
		}
		vars, names := identityNames(t)
		for _, v := range append(vars, names...) {
			if !strings.Contains(mayCarry, "'"+v+"'") {
				t.Errorf("the enforcement webhook's matchCondition may-carry-an-identity does not name %s: a pod that has only it would skip the check", v)
			}
		}
		if len(en.Rules) != 1 || !slices.Equal(en.Rules[0].Resources, []string{"pods", "pods/ephemeralcontainers"}) ||
			!slices.Equal(en.Rules[0].Operations, []admissionregv1.OperationType{admissionregv1.Create, admissionregv1.Update}) {
			t.Errorf("enforcement webhook rules %+v: want pods and their ephemeral containers (kubectl debug), CREATE and UPDATE", en.Rules)
		}
		if len(m.MatchConditions) != 1 || !strings.Contains(m.MatchConditions[0].Expression, "'kubernetes.io/config.mirror' in object.metadata.annotations") {
			t.Errorf("matchConditions %+v: mirror pods must not even cost a call", m.MatchConditions)
		}
		if len(v.Rules) != 1 || !slices.Equal(v.Rules[0].Resources, []string{"serviceaccounts"}) || !slices.Equal(v.Rules[0].APIGroups, []string{""}) ||
			!slices.Equal(v.Rules[0].Operations, []admissionregv1.OperationType{admissionregv1.Create, admissionregv1.Update}) {
			t.Errorf("validating webhook rules %+v: want serviceaccounts CREATE and UPDATE only (a pod must cost one call)", v.Rules)
		}
		if p := v.ClientConfig.Service; p == nil || p.Path == nil || *p.Path != server.ServiceAccountPath {
			t.Errorf("validating webhook path %+v, want %s", p, server.ServiceAccountPath)
		}
		if len(v.MatchConditions) != 1 || !strings.Contains(v.MatchConditions[0].Expression, "has(object.metadata.annotations)") {
			t.Errorf("matchConditions %+v: serviceaccounts without annotations must not cost a call", v.MatchConditions)
		}
		type hook struct {
			name      string
			cc        admissionregv1.WebhookClientConfig
			path      string
			rules     []admissionregv1.RuleWithOperations
			side      *admissionregv1.SideEffectClass
			timeout   *int32
			objSel    *metav1.LabelSelector
			nsSel     *metav1.LabelSelector
			inject    string
			reviewVer []string
		}
		for _, h := range []hook{
			{m.Name, m.ClientConfig, server.MutatePath, m.Rules, m.SideEffects, m.TimeoutSeconds, m.ObjectSelector, m.NamespaceSelector, muts[0].Annotations["cert-manager.io/inject-ca-from"], m.AdmissionReviewVersions},
			{v.Name, v.ClientConfig, server.ServiceAccountPath, nil, v.SideEffects, v.TimeoutSeconds, v.ObjectSelector, v.NamespaceSelector, vals[0].Annotations["cert-manager.io/inject-ca-from"], v.AdmissionReviewVersions},
			{en.Name, en.ClientConfig, server.EnforcePath, nil, en.SideEffects, en.TimeoutSeconds, en.ObjectSelector, en.NamespaceSelector, enfs[0].Annotations["cert-manager.io/inject-ca-from"], en.AdmissionReviewVersions},
		} {
			s := h.cc.Service
			if s == nil || s.Name != svc.Name || s.Namespace != svc.Namespace || s.Path == nil || *s.Path != h.path || s.Port == nil || *s.Port != 443 {
				t.Errorf("%s: clientConfig.service %+v does not point at %s/%s:443%s", h.name, s, svc.Namespace, svc.Name, h.path)
			}
			if h.path == server.MutatePath && (len(h.rules) != 1 || !slices.Equal(h.rules[0].Operations, []admissionregv1.OperationType{admissionregv1.Create}) ||
				!slices.Equal(h.rules[0].Resources, []string{"pods"}) || !slices.Equal(h.rules[0].APIGroups, []string{""})) {
				t.Errorf("%s: rules %+v, want pods CREATE only", h.name, h.rules)
			}
			if h.side == nil || *h.side != admissionregv1.SideEffectClassNone {
				t.Errorf("%s: sideEffects must be None", h.name)
			}
			if h.timeout == nil || *h.timeout > 10 {
				t.Errorf("%s: timeoutSeconds must be short", h.name)
			}
			for set, want := range map[string]bool{"": true, "app=web": true, "pod-identity.io/inject=true": true, "pod-identity.io/inject=false": false} {
				if h.path != server.MutatePath {
					break // a pod label: serviceaccounts have no such opt-out
				}
				if got := selects(t, h.objSel, set); got != want {
					t.Errorf("%s: objectSelector selects pod labels {%s} = %v, want %v", h.name, set, got, want)
				}
			}
			for set, want := range map[string]bool{
				"kubernetes.io/metadata.name=team-a":                                 true,
				"kubernetes.io/metadata.name=team-a,pod-identity.io/inject=disabled": false,
				"kubernetes.io/metadata.name=kube-system":                            false,
				"kubernetes.io/metadata.name=" + svc.Namespace:                       false,
			} {
				if got := selects(t, h.nsSel, set); got != want {
					t.Errorf("%s: namespaceSelector selects namespace labels {%s} = %v, want %v", h.name, set, got, want)
				}
			}
			if !slices.Contains(h.reviewVer, "v1") {
				t.Errorf("%s: admissionReviewVersions %v lack v1 (warnings need it)", h.name, h.reviewVer)
			}
			var serving *cmv1.Certificate
			for _, c := range certs {
				if c.Namespace+"/"+c.Name == h.inject {
					serving = c
				}
			}
			if serving == nil {
				t.Fatalf("%s: cert-manager.io/inject-ca-from %q names no Certificate", h.name, h.inject)
			}
			if !slices.Contains(serving.Spec.DNSNames, svc.Name+"."+svc.Namespace+".svc") {
				t.Errorf("certificate %s lacks the service DNS name", serving.Name)
			}
			var secret string
			for _, vol := range dep.Spec.Template.Spec.Volumes {
				if vol.Secret != nil {
					secret = vol.Secret.SecretName
				}
			}
			if secret != serving.Spec.SecretName {
				t.Errorf("deployment mounts secret %q, certificate writes %q", secret, serving.Spec.SecretName)
			}
		}
		if m.ReinvocationPolicy == nil || *m.ReinvocationPolicy != admissionregv1.IfNeededReinvocationPolicy {
			t.Error("the mutating webhook must have reinvocationPolicy IfNeeded")
		}
	})

	t.Run("the deployment runs as the restricted pod security standard asks", func(t *testing.T) {
		ps := dep.Spec.Template.Spec.SecurityContext
		sc := c.SecurityContext
		if dep.Spec.Replicas == nil || *dep.Spec.Replicas < 2 {
			t.Error("want at least 2 replicas")
		}
		if ps == nil || ps.RunAsNonRoot == nil || !*ps.RunAsNonRoot || ps.SeccompProfile == nil || ps.SeccompProfile.Type != corev1.SeccompProfileTypeRuntimeDefault {
			t.Error("pod must run as non-root with the RuntimeDefault seccomp profile")
		}
		if sc == nil || sc.AllowPrivilegeEscalation == nil || *sc.AllowPrivilegeEscalation || sc.ReadOnlyRootFilesystem == nil || !*sc.ReadOnlyRootFilesystem ||
			sc.Capabilities == nil || !slices.Equal(sc.Capabilities.Drop, []corev1.Capability{"ALL"}) {
			t.Error("container must be read-only, without privilege escalation, with all capabilities dropped")
		}
		if c.Resources.Requests.Cpu().IsZero() || c.Resources.Requests.Memory().IsZero() {
			t.Error("container must request cpu and memory")
		}
		if len(dep.Spec.Template.Spec.TopologySpreadConstraints) == 0 {
			t.Error("replicas must be spread across nodes")
		}
		if len(find[*policyPDB](objs)) != 1 {
			t.Error("want a PodDisruptionBudget")
		}
		if dep.Spec.Template.Labels["pod-identity.io/inject"] != "false" {
			t.Error("the webhook's own pods must opt out")
		}
	})

	t.Run("the cluster role reads what the server watches and writes only policy status", func(t *testing.T) {
		roles := find[*rbacv1.ClusterRole](objs)
		if len(roles) != 1 {
			t.Fatal("want one ClusterRole")
		}
		type grant struct{ group, resource, verb string }
		var got []grant
		for _, r := range roles[0].Rules {
			if len(r.ResourceNames) > 0 || len(r.NonResourceURLs) > 0 {
				t.Errorf("rule %+v: unexpected resourceNames or nonResourceURLs", r)
			}
			for _, g := range r.APIGroups {
				for _, res := range r.Resources {
					for _, v := range r.Verbs {
						got = append(got, grant{g, res, v})
					}
				}
			}
		}
		want := []grant{}
		for _, res := range []struct{ group, resource string }{{"", "serviceaccounts"}, {"", "namespaces"}, {"pod-identity.io", "identitypolicies"}} {
			for _, v := range []string{"get", "list", "watch"} {
				want = append(want, grant{res.group, res.resource, v})
			}
		}
		want = append(want, grant{"pod-identity.io", "identitypolicies/status", "update"})
		sortGrants := func(gs []grant) {
			slices.SortFunc(gs, func(a, b grant) int { return strings.Compare(a.group+a.resource+a.verb, b.group+b.resource+b.verb) })
		}
		sortGrants(got)
		sortGrants(want)
		if !slices.Equal(got, want) {
			t.Errorf("grants %v, want exactly %v", got, want)
		}
	})

	t.Run("the IdentityPolicy CRD serves the API the server reads, with its status subresource", func(t *testing.T) {
		crds := find[*apiextensionsv1.CustomResourceDefinition](objs)
		if len(crds) != 1 {
			t.Fatalf("want one CRD, got %d", len(crds))
		}
		c := crds[0]
		if c.Spec.Group != v1alpha1.GroupVersion.Group || c.Spec.Names.Plural != v1alpha1.Resource || c.Spec.Names.Kind != v1alpha1.Kind ||
			c.Spec.Scope != apiextensionsv1.ClusterScoped || len(c.Spec.Versions) != 1 || c.Spec.Versions[0].Name != v1alpha1.GroupVersion.Version {
			t.Errorf("CRD %s serves %s/%s %s %s", c.Name, c.Spec.Group, c.Spec.Versions[0].Name, c.Spec.Names.Kind, c.Spec.Scope)
		}
		if v := c.Spec.Versions[0]; v.Subresources == nil || v.Subresources.Status == nil || v.Schema == nil {
			t.Error("the CRD must have a schema and the status subresource")
		}
	})
}

func selects(t *testing.T, sel *metav1.LabelSelector, set string) bool {
	t.Helper()
	s, err := metav1.LabelSelectorAsSelector(sel)
	if err != nil {
		t.Fatal(err)
	}
	ls, err := labels.ConvertSelectorToLabelsMap(set)
	if err != nil {
		t.Fatal(err)
	}
	return s.Matches(ls)
}

// TestFailClosedOverlayFlipsOnlyFailurePolicies applies each of the
// overlay's patches to the webhook configuration it targets, the pod
// webhook and the enforcement webhook, and checks that it flips
// failurePolicy and nothing else.
func TestFailClosedOverlayFlipsOnlyFailurePolicies(t *testing.T) {
	k := readKustomization(t, filepath.Join("overlays", "fail-closed"))
	want := map[string]string{"pod-identity-injector": "MutatingWebhookConfiguration", "pod-identity-injector-enforce": "ValidatingWebhookConfiguration"}
	if len(k.Patches) != len(want) {
		t.Fatalf("want %d patches, got %d", len(want), len(k.Patches))
	}
	data, _ := os.ReadFile("manifests/webhooks.yaml")
	for _, patch := range k.Patches {
		t.Run(patch.Target.Name, func(t *testing.T) {
			patchYAML, err := os.ReadFile(filepath.Join("overlays", "fail-closed", patch.Path))
			if err != nil {
				t.Fatal(err)
			}
			patchJSON, err := yaml.YAMLToJSON(patchYAML)
			if err != nil {
				t.Fatal(err)
			}
			p, err := jsonpatch.DecodePatch(patchJSON)
			if err != nil {
				t.Fatal(err)
			}
			patched := 0
			for _, doc := range strings.Split(string(data), "\n---\n") {
				js, err := yaml.YAMLToJSON([]byte(doc))
				if err != nil {
					t.Fatal(err)
				}
				var meta struct {
					Kind     string `json:"kind"`
					Metadata struct {
						Name string `json:"name"`
					} `json:"metadata"`
				}
				if err := yaml.Unmarshal(js, &meta); err != nil {
					t.Fatal(err)
				}
				if meta.Metadata.Name != patch.Target.Name {
					continue
				}
				if meta.Kind != want[patch.Target.Name] {
					t.Errorf("the overlay targets %s %s: want a %s", meta.Kind, meta.Metadata.Name, want[patch.Target.Name])
				}
				patched++
				out, err := p.Apply(js)
				if err != nil {
					t.Fatal(err)
				}
				var cfg admissionregv1.MutatingWebhookConfiguration // same webhook shape for failurePolicy
				if err := yaml.Unmarshal(out, &cfg); err != nil {
					t.Fatal(err)
				}
				if fp := cfg.Webhooks[0].FailurePolicy; fp == nil || *fp != admissionregv1.Fail {
					t.Errorf("%s: failurePolicy after the overlay = %v", cfg.Name, fp)
				}
				// Nothing else: with failurePolicy put back, the object is the base's.
				var before, after map[string]any
				if err := yaml.Unmarshal(js, &before); err != nil {
					t.Fatal(err)
				}
				if err := yaml.Unmarshal(out, &after); err != nil {
					t.Fatal(err)
				}
				webhook := func(o map[string]any) map[string]any { return o["webhooks"].([]any)[0].(map[string]any) }
				webhook(after)["failurePolicy"] = webhook(before)["failurePolicy"]
				if !reflect.DeepEqual(before, after) {
					t.Errorf("%s: the overlay changes more than failurePolicy:\nbase    %s\noverlay %s", cfg.Name, js, out)
				}
			}
			if patched != 1 {
				t.Errorf("the patch's target matches %d webhook configurations, want 1", patched)
			}
		})
	}
}

// identityNames lists the identity variables of the compiled providers
// and of the shipped provider files, and the volumes and pod annotations
// their injections add.
func identityNames(t *testing.T) (vars, added []string) {
	t.Helper()
	files, _ := filepath.Glob(filepath.Join("providers", "*.yaml"))
	var args []string
	for _, f := range files {
		args = append(args, "--provider-config="+f)
	}
	set := builtin.New().WithArgs(args)
	fs := pflag.NewFlagSet("serve", pflag.ContinueOnError)
	set.AddFlags(fs)
	if err := fs.Parse(args); err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	log := logrus.New()
	log.SetOutput(io.Discard)
	ps, err := set.Build(ctx, log)
	if err != nil {
		t.Fatal(err)
	}
	// A ServiceAccount set up for every provider.
	sa := &corev1.ServiceAccount{ObjectMeta: metav1.ObjectMeta{Namespace: "ns", Name: "sa", Annotations: map[string]string{
		"eks.amazonaws.com/role-arn":                            "arn:aws:iam::111122223333:role/app",
		"azure.workload.identity/client-id":                     "11111111-2222-3333-4444-555555555555",
		"cloud.google.com/workload-identity-provider":           "projects/1/locations/global/workloadIdentityPools/pool/providers/prov",
		"pod-identity.alibabacloud.com/role-name":               "role",
		"oci.pod-identity.io/region":                            "us-ashburn-1",
		"anthropic.pod-identity.io/federation-rule-id":          "fdrl_1",
		"anthropic.pod-identity.io/organization-id":             "3f2a9c1e-7b4d-4e8a-9c0f-1a2b3c4d5e6f",
		"openai.pod-identity.io/service-account-id":             "sa",
		"vault.pod-identity.io/role":                            "reader",
		"workload-identity.stackit.cloud/service-account-email": "app-aBc2defg@sa.stackit.cloud",
		"databricks.pod-identity.io/client-id":                  "6f1c2a3b-4d5e-4f60-8a7b-9c0d1e2f3a4b",
	}, Labels: map[string]string{"azure.workload.identity/use": "true"}}}
	req := providers.Request{Namespace: "ns", PodMeta: &metav1.ObjectMeta{}, PodSpec: &corev1.PodSpec{}, ServiceAccount: sa, ServiceAccountOnly: true}
	for _, p := range ps {
		if en, ok := p.(providers.Enforcer); ok {
			for v := range en.IdentityVariables() {
				vars = append(vars, v)
			}
		}
		inj, err := p.Inject(req)
		if err != nil || !inj.Injects() {
			t.Fatalf("provider %s injects nothing for the test serviceaccount: %v", p.Name(), err)
		}
		for _, v := range inj.Volumes {
			added = append(added, v.Name)
		}
		for k := range inj.Annotations {
			added = append(added, k)
		}
	}
	slices.Sort(vars)
	if len(vars) < 6 || len(added) < 6 {
		t.Fatalf("identity variables %v, volumes and annotations %v: expected those of aws, azure, gcp, alibaba and oci", vars, added)
	}
	return vars, added
}
