package celbench

import (
	"context"
	"encoding/json"
	"fmt"
	"maps"
	"math/rand"
	"regexp"
	"slices"
	"strings"
	"testing"

	admissionregv1 "k8s.io/api/admissionregistration/v1"
	corev1 "k8s.io/api/core/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/apis/meta/v1/unstructured"
	"k8s.io/apimachinery/pkg/runtime"
	"k8s.io/apimachinery/pkg/types"
	"k8s.io/apiserver/pkg/admission"
	plugincel "k8s.io/apiserver/pkg/admission/plugin/cel"
	"k8s.io/apiserver/pkg/admission/plugin/policy/mutating/patch"
	"k8s.io/client-go/kubernetes/scheme"

	"github.com/pod-identity/injector/internal/parameters"
	"github.com/pod-identity/injector/pkg/parameters/v1alpha1"
)

// randomNamespace is a namespace's parameters as sync may write them, with
// every input the written policy takes: templates, ServiceAccounts with
// entries, values, injections of their own, refusals, warnings and API
// token findings, or nothing of their own; a default; an API token rule.
func randomNamespace(r *rand.Rand) map[string]any {
	var templates []any
	for _, e := range randomEntries(r) {
		templates = append(templates, e)
	}
	flags := func(p map[string]any) {
		if r.Intn(5) == 0 {
			p["denied"] = []any{"refused {serviceaccount}"}
		}
		if r.Intn(5) == 0 {
			p["warnings"] = []any{"warned"}
		}
		if r.Intn(6) == 0 {
			p["apiToken"] = map[string]any{"pod": map[string]any{"denied": []any{"token"}}}
		}
	}
	sas := map[string]any{}
	for i := range 5 {
		p := map[string]any{}
		switch r.Intn(4) {
		case 0: // nothing of its own: the default
		case 1, 2:
			var entries []any
			for t := range templates {
				if r.Intn(2) == 0 {
					entries = append(entries, int64(t))
				}
			}
			if len(entries) > 0 {
				p["entries"] = entries
			}
			var values []any
			for range r.Intn(5) {
				values = append(values, []string{"VAL0VAL0", "VAL1", "Q|%7C", "/v"}[r.Intn(4)])
			}
			if len(values) > 0 {
				p["values"] = values
			}
			if r.Intn(3) == 0 {
				var own []any
				for _, e := range randomEntries(r) {
					own = append(own, e)
				}
				p["injections"] = own
			}
		}
		if r.Intn(2) == 0 {
			flags(p)
		}
		sas[fmt.Sprintf("s%d", i)] = p
	}
	spec := map[string]any{"serviceAccounts": sas}
	if len(templates) > 0 {
		spec["templates"] = templates
	}
	if r.Intn(2) == 0 {
		d := map[string]any{}
		if r.Intn(3) > 0 {
			var own []any
			for _, e := range randomEntries(r) {
				own = append(own, e)
			}
			d["injections"] = own
		}
		flags(d)
		spec["default"] = d
	}
	if r.Intn(3) == 0 {
		pod := map[string]any{}
		if r.Intn(2) == 0 {
			pod["denied"] = []any{"d"}
		} else {
			pod["warnings"] = []any{"w"}
		}
		spec["enforcement"] = map[string]any{"apiToken": map[string]any{"pod": pod}}
	}
	return spec
}

// TestTheWrittenPolicyDecidesAsTheGenericOne holds the policy sync writes
// in written mode (parameters.WrittenPolicy, reading
// parameters.NamespaceRecords) to the shipped, generic policy reading the
// namespace's IdentityParameters: for random namespaces and random pods of
// their ServiceAccounts (and of ServiceAccounts they do not list), the
// same match (all match conditions), and for a pod both act on the same
// additions, volumes, annotations (the mark's parameters aside) and
// labels (which carry what the validating policies are asked to check).
func TestTheWrittenPolicyDecidesAsTheGenericOne(t *testing.T) {
	generic := mutatingPolicy(t)
	r := rand.New(rand.NewSource(11))
	const namespaces, pods = 40, 16
	compared, acted, quick := 0, 0, 0
	for n := range namespaces {
		spec := randomNamespace(r)
		crd, records, written := writtenFor(t, generic, spec)
		b, _ := json.Marshal(spec)
		podSeed := r.Int63()
		pr := rand.New(rand.NewSource(podSeed))
		var ps []*corev1.Pod
		for range pods {
			p := randomTenantPod(pr)
			p.Spec.ServiceAccountName = []string{"s0", "s1", "s2", "s3", "s4", "unlisted", ""}[pr.Intn(7)]
			if pr.Intn(8) == 0 {
				p.Annotations = map[string]string{"pod-identity.io/serviceaccount-not-known": "x"}
			}
			ps = append(ps, p)
		}
		a, q := compareOnPods(t, generic, written, crd, records, ps, fmt.Sprintf("namespace %d %s", n, b))
		compared += len(ps)
		acted += a
		quick += q
	}
	checkCoverage(t, compared, acted, quick)
}

// checkCoverage fails t when the policies acted on too few of the pods
// compared to say what they do, or the written policy took either of its
// ways too rarely to be held to the generic one.
func checkCoverage(t *testing.T, compared, acted, quick int) {
	t.Helper()
	if acted < compared/3 {
		t.Errorf("the policies acted on %d of %d pods: too few to compare what they do", acted, compared)
	}
	if quick < acted/8 || acted-quick < acted/8 {
		t.Errorf("of %d pods acted on, %d took the quick way: too few of one way to compare", acted, quick)
	}
	t.Logf("%d pods, %d acted on, %d of them the quick way", compared, acted, quick)
}

// evaluatorSet is a policy's match conditions and the variables the
// comparison reads, compiled once.
type evaluatorSet struct {
	conditions []evaluator
	values     map[string]evaluator
	mutation   evaluator
}

// patched is pod as the API server's JSON patcher leaves it after e's
// mutation, reading params.
func (e evaluator) patched(t testing.TB, pod *corev1.Pod, params runtime.Object) *corev1.Pod {
	t.Helper()
	va, _, namespace := creation(pod.DeepCopy())
	r := patch.Request{MatchedResource: corev1.SchemeGroupVersion.WithResource("pods"), VersionedAttributes: va,
		ObjectInterfaces: admission.NewObjectInterfacesFromScheme(scheme.Scheme), OptionalVariables: plugincel.OptionalVariableBindings{VersionedParams: params}, Namespace: namespace}
	out, err := patch.NewJSONPatcher(e.mutation).Patch(e.compiler.CreateContext(context.Background()), r, 10_000_000)
	if err != nil {
		t.Fatalf("the mutation of pod %s: %v", pod.Spec.ServiceAccountName, err)
	}
	return out.(*corev1.Pod)
}

func newEvaluatorSet(t testing.TB, p *admissionregv1.MutatingAdmissionPolicy) *evaluatorSet {
	s := &evaluatorSet{values: map[string]evaluator{}}
	for _, c := range p.Spec.MatchConditions {
		s.conditions = append(s.conditions, compileValue(t, p, c.Expression))
	}
	for _, v := range []string{"additions", "newVolumes", "newAnnotations", "newLabels"} {
		s.values[v] = compileValue(t, p, "variables."+v)
	}
	s.mutation = compile(t, p, "")
	return s
}

// writtenFor is what the policies read for a namespace whose parameters
// are spec (as JSON): its IdentityParameters, its records
// (parameters.NamespaceRecords, none left out), and the written policy
// (parameters.WrittenPolicy) for its sets.
func writtenFor(t *testing.T, generic *admissionregv1.MutatingAdmissionPolicy, spec map[string]any) (*unstructured.Unstructured, *corev1.ServiceAccount, *admissionregv1.MutatingAdmissionPolicy) {
	t.Helper()
	crd := &unstructured.Unstructured{Object: map[string]any{
		"apiVersion": v1alpha1.GroupVersion.String(), "kind": v1alpha1.Kind,
		"metadata": map[string]any{"name": v1alpha1.Name, "namespace": ns, "uid": "u-params", "generation": int64(1)},
		"spec":     spec,
	}}
	var typedSpec v1alpha1.IdentityParametersSpec
	b, _ := json.Marshal(spec)
	if err := json.Unmarshal(b, &typedSpec); err != nil {
		t.Fatal(err)
	}
	recs, err := parameters.NamespaceRecords(typedSpec)
	if err != nil {
		t.Fatal(err)
	}
	if len(recs.Left) > 0 {
		t.Fatalf("%v left out of the records", recs.Left)
	}
	records := &corev1.ServiceAccount{ObjectMeta: metav1.ObjectMeta{Namespace: ns, Name: parameters.RecordsName, UID: "u-records", ResourceVersion: "7", Annotations: recs.Annotations}}
	written, err := parameters.WrittenPolicy(generic, recs.Sets)
	if err != nil {
		t.Fatal(err)
	}
	return crd, records, written
}

// compareOnPods compares the generic policy reading crd with the written
// one reading records, for each pod: whether they match, and what they
// do. It returns how many pods they acted on, and of those how many took
// the written policy's quick way (its variable fast).
func compareOnPods(t *testing.T, generic, written *admissionregv1.MutatingAdmissionPolicy, crd *unstructured.Unstructured, records *corev1.ServiceAccount, pods []*corev1.Pod, what string) (int, int) {
	t.Helper()
	mark := regexp.MustCompile(`;u-(params;1|records;7);`)
	matches := func(p *corev1.Pod, policy *evaluatorSet, params runtime.Object) bool {
		for _, c := range policy.conditions {
			if c.value(t, p, params) != "true" {
				return false
			}
		}
		return true
	}
	g, w := newEvaluatorSet(t, generic), newEvaluatorSet(t, written)
	fast := compileValue(t, written, "variables.fast")
	acted, quick := 0, 0
	for i, p := range pods {
		gm, wm := matches(p, g, crd), matches(p, w, records)
		if gm != wm {
			t.Fatalf("%s, pod %d of %q: the generic policy matches %t, the written one %t\n records %v", what, i, p.Spec.ServiceAccountName, gm, wm, records.Annotations)
		}
		if !gm {
			continue
		}
		acted++
		if fast.value(t, p, records) == "true" {
			quick++
		}
		for _, v := range []string{"additions", "newVolumes", "newAnnotations", "newLabels"} {
			want := canonical(v, mark.ReplaceAllString(g.values[v].value(t, p, crd), ";P;"))
			got := canonical(v, mark.ReplaceAllString(w.values[v].value(t, p, records), ";P;"))
			if got != want {
				pb, _ := json.Marshal([]any{p.Spec.ServiceAccountName, p.Labels, p.Annotations, p.Spec.NodeSelector, p.Spec.Volumes, p.Spec.Containers})
				t.Fatalf("%s: %s, pod %d: written %.600s\n generic %.600s\n records %v\n pod %.800s", what, v, i, got, want, records.Annotations, pb)
			}
		}
		// And the pod each patch leaves, as the API server applies it:
		// the written policy's mutation takes a quicker way for most
		// pods.
		want, _ := json.Marshal(g.mutation.patched(t, p, crd))
		got, _ := json.Marshal(w.mutation.patched(t, p, records))
		if string(mark.ReplaceAll(got, []byte(";P;"))) != string(mark.ReplaceAll(want, []byte(";P;"))) {
			t.Fatalf("%s: the patched pod %d of %q: written %s\n generic %s\n records %v", what, i, p.Spec.ServiceAccountName, got, want, records.Annotations)
		}
	}
	return acted, quick
}

// writtenForSync is what the written policy reads for crd, the
// IdentityParameters sync's controller computes: its spec, the records
// (parameters.NamespaceRecords) and the written policy for its sets.
func writtenForSync(t testing.TB, generic *admissionregv1.MutatingAdmissionPolicy, crd *unstructured.Unstructured) (v1alpha1.IdentityParametersSpec, *corev1.ServiceAccount, *admissionregv1.MutatingAdmissionPolicy) {
	t.Helper()
	var spec v1alpha1.IdentityParametersSpec
	if err := runtime.DefaultUnstructuredConverter.FromUnstructured(crd.Object["spec"].(map[string]any), &spec); err != nil {
		t.Fatal(err)
	}
	recs, err := parameters.NamespaceRecords(spec)
	if err != nil {
		t.Fatal(err)
	}
	records := &corev1.ServiceAccount{ObjectMeta: metav1.ObjectMeta{Namespace: ns, Name: parameters.RecordsName, UID: "u-records", ResourceVersion: "7", Annotations: recs.Annotations}}
	written, err := parameters.WrittenPolicy(generic, recs.Sets)
	if err != nil {
		t.Fatal(err)
	}
	return spec, records, written
}

// TestTheWrittenPolicyDecidesAsTheGenericOneForSyncsParameters compares
// them on the parameters sync's controller computes, with the providers as
// sync builds them by default: the generated cases' ServiceAccounts (each
// provider alone, tuned, and together), one with no identity (whose pods
// get the namespace's default) and one not listed, 150 random pods of
// each, with and without the labels that ask for an identity.
func TestTheWrittenPolicyDecidesAsTheGenericOneForSyncsParameters(t *testing.T) {
	generic := mutatingPolicy(t)
	sas := []*corev1.ServiceAccount{{ObjectMeta: metav1.ObjectMeta{Namespace: ns, Name: "plain", UID: "u-plain", ResourceVersion: "1"}}}
	names := []string{"plain", "unlisted"}
	for name, ann := range generatedCases {
		sas = append(sas, &corev1.ServiceAccount{ObjectMeta: metav1.ObjectMeta{Namespace: ns, Name: name, UID: types.UID("u-" + sanitize(name)), ResourceVersion: "1", Annotations: ann}})
		names = append(names, name)
	}
	slices.Sort(names)
	crd := identityParametersOf(t, sas)
	spec, records, written := writtenForSync(t, generic, crd)
	for name := range generatedCases {
		if len(spec.ServiceAccounts[name].Entries) == 0 {
			t.Fatalf("serviceaccount %s has no entries: %+v", name, spec.ServiceAccounts[name])
		}
	}
	r := rand.New(rand.NewSource(5))
	var pods []*corev1.Pod
	for i := range 150 * len(names) {
		p := generatedPod(r, names[i%len(names)])
		if r.Intn(2) == 0 {
			if p.Labels == nil {
				p.Labels = map[string]string{}
			}
			p.Labels["azure.workload.identity/use"] = []string{"true", "false"}[r.Intn(2)]
		}
		pods = append(pods, p)
	}
	acted, quick := compareOnPods(t, generic, written, crd, records, pods, "sync's parameters")
	checkCoverage(t, len(pods), acted, quick)
}

// TestEachNameIsInTheRangeOfOneRecordsObject splits a namespace of 5,000
// ServiceAccounts into records objects (Records.Layout, Shards) and holds
// the written policy's in-range condition to them: for each pod, exactly
// one object matches, whether its ServiceAccount is recorded or not, and
// with that object the written policy decides as the generic one.
func TestEachNameIsInTheRangeOfOneRecordsObject(t *testing.T) {
	generic := mutatingPolicy(t)
	r := rand.New(rand.NewSource(17))
	entries := randomEntries(r)
	var templates []any
	for _, e := range entries {
		templates = append(templates, e)
	}
	sas := map[string]any{}
	for i := range 5000 {
		sas[fmt.Sprintf("user-%d", i)] = map[string]any{"entries": []any{int64(0)}, "values": []any{fmt.Sprintf("VAL0VAL0-%d", i)}}
	}
	spec := map[string]any{"templates": templates, "serviceAccounts": sas}
	crd, all, written := writtenFor(t, generic, spec)
	var typedSpec v1alpha1.IdentityParametersSpec
	b, _ := json.Marshal(spec)
	if err := json.Unmarshal(b, &typedSpec); err != nil {
		t.Fatal(err)
	}
	recs, _ := parameters.NamespaceRecords(typedSpec)
	shards, ok := recs.Shards(recs.Layout())
	if !ok || len(shards) < 2 {
		t.Fatalf("%d records objects (fit %t): want several", len(shards), ok)
	}
	var objects []*corev1.ServiceAccount
	for i, sh := range shards {
		o := all.DeepCopy()
		o.Name, o.UID, o.Annotations = fmt.Sprintf("%s-a%d", parameters.RecordsName, i+1), types.UID(fmt.Sprintf("u-records-%d", i)), sh
		objects = append(objects, o)
	}
	var inRange evaluator
	for _, c := range written.Spec.MatchConditions {
		if c.Name == "in-range" {
			inRange = compileValue(t, written, c.Expression)
		}
	}
	if inRange.eval == nil {
		t.Fatal("the written policy has no in-range condition")
	}
	pr := rand.New(rand.NewSource(19))
	byObject := make([][]*corev1.Pod, len(objects))
	// The names at the boundaries, and random ones.
	names := recs.Layout()
	for range 120 {
		names = append(names, []string{fmt.Sprintf("user-%d", pr.Intn(5000)), fmt.Sprintf("user-%d", 5000+pr.Intn(100)), "a", "zz", ""}[pr.Intn(5)])
	}
	for i, name := range names {
		p := randomTenantPod(pr)
		p.Spec.ServiceAccountName = name
		holding := -1
		for j, o := range objects {
			if inRange.value(t, p, o) == "true" {
				if holding >= 0 {
					t.Fatalf("pod %d of %q is in the range of records objects %d and %d", i, p.Spec.ServiceAccountName, holding, j)
				}
				holding = j
			}
		}
		if holding < 0 {
			t.Fatalf("pod %d of %q is in the range of no records object", i, p.Spec.ServiceAccountName)
		}
		byObject[holding] = append(byObject[holding], p)
	}
	for j, pods := range byObject {
		_, _ = compareOnPods(t, generic, written, crd, recordsAs(objects[j]), pods, fmt.Sprintf("records object %d", j))
	}
}

// recordsAs is o with the UID and version compareOnPods takes the mark's
// parameters out of.
func recordsAs(o *corev1.ServiceAccount) *corev1.ServiceAccount {
	o = o.DeepCopy()
	o.UID, o.ResourceVersion = "u-records", "7"
	return o
}

// TestTheQuickWayScansEachListForLessThanTheGenericPolicy holds the cost of
// the written policy's scans of a pod's lists (the variables fast reads)
// under the generic policy's cost of the same list. The API server bounds
// each variable's cost (1,000,000, celconfig.PerCallLimit): a scan of two
// lists in one variable refused a pod with 70,000 variables in each of two
// containers, which the generic policy admits. The pod here, of each
// generated case's ServiceAccount, has 3,000 variables and mounts in an
// init container and in a container, and 3,000 volumes; the costs grow
// with the lists, so what holds at this size holds at the API server's
// request limit.
func TestTheQuickWayScansEachListForLessThanTheGenericPolicy(t *testing.T) {
	generic := mutatingPolicy(t)
	var sas []*corev1.ServiceAccount
	for name, ann := range generatedCases {
		sas = append(sas, &corev1.ServiceAccount{ObjectMeta: metav1.ObjectMeta{Namespace: ns, Name: name, UID: types.UID("u-" + sanitize(name)), ResourceVersion: "1", Annotations: ann}})
	}
	crd := identityParametersOf(t, sas)
	_, records, written := writtenForSync(t, generic, crd)
	const n = 3000
	big := pod()
	init := corev1.Container{Name: "init", Image: "registry.example.com/init:1"}
	for i := range n {
		init.Env = append(init.Env, corev1.EnvVar{Name: fmt.Sprintf("E%d", i), Value: "x"})
		init.VolumeMounts = append(init.VolumeMounts, corev1.VolumeMount{Name: "data", MountPath: fmt.Sprintf("/m/%d", i)})
		big.Spec.Volumes = append(big.Spec.Volumes, corev1.Volume{Name: fmt.Sprintf("v%d", i), VolumeSource: corev1.VolumeSource{EmptyDir: &corev1.EmptyDirVolumeSource{}}})
	}
	big.Spec.InitContainers = []corev1.Container{init}
	big.Spec.Containers[0].Env = append(big.Spec.Containers[0].Env, init.Env...)
	big.Spec.Containers[0].VolumeMounts = append(big.Spec.Containers[0].VolumeMounts, init.VolumeMounts...)
	compiled := map[string]evaluator{}
	cost := func(p *admissionregv1.MutatingAdmissionPolicy, params runtime.Object, pod *corev1.Pod, expression string) int64 {
		e, ok := compiled[p.Name+" "+expression]
		if !ok {
			e = compileValue(t, p, "size([dyn("+expression+")]) >= 0")
			compiled[p.Name+" "+expression] = e
		}
		va, req, namespace := creation(pod)
		res, left, err := e.eval.ForInput(e.compiler.CreateContext(context.Background()), va, req, plugincel.OptionalVariableBindings{VersionedParams: params}, namespace, 10_000_000)
		if err != nil || res[0].Error != nil {
			t.Fatalf("%s: %v %v", expression, err, res[0].Error)
		}
		return 10_000_000 - left
	}
	for name := range generatedCases {
		p := big.DeepCopy()
		p.Spec.ServiceAccountName = name
		limits := map[string]int64{
			"fastInitContainers": cost(generic, crd, p, "variables.initContainers"),
			"fastContainers":     cost(generic, crd, p, "variables.containers"),
			// The generic policy reads the volumes for the entries that
			// apply (apibench's pod is labelled for Azure).
			"fastVolumes": cost(generic, crd, p, "variables.injecting"),
		}
		scans := map[string][]string{}
		for _, v := range written.Spec.Variables {
			set, list, ok := strings.Cut(v.Name, "_")
			limit, scan := limits[list]
			if !ok || !scan {
				continue
			}
			scans[set] = append(scans[set], "dyn(variables."+v.Name+")")
			if got := cost(written, records, p, "variables."+v.Name); got >= limit {
				t.Errorf("serviceaccount %s: %s costs %d, the generic policy's scan of that list %d", name, v.Name, got, limit)
			}
		}
		if len(scans) == 0 {
			t.Fatalf("the written policy has none of the scans %v", slices.Collect(maps.Keys(limits)))
		}
		// And fast itself scans nothing: what it adds to its scans does
		// not grow with the lists.
		for set, vars := range scans {
			before := cost(written, records, p, "["+strings.Join(vars, ", ")+"]")
			if own := cost(written, records, p, "["+strings.Join(vars, ", ")+", dyn(variables."+set+"_fast)]") - before; own > 1000 {
				t.Errorf("serviceaccount %s: %s_fast costs %d besides its scans", name, set, own)
			}
		}
		t.Logf("serviceaccount %s: the generic policy's scans cost %v", name, limits)
	}
}

// TestTextThatSpellsAVariableIsLeftAsWritten: a ServiceAccount's text
// reaches the written rules as literals (an audience is never templated;
// the Google project comes from the email's domain). Where it spells one
// of a set's variables, the policy writes it as the ServiceAccount does,
// and a pod that brings the very volume the identity would add is treated
// as by the generic policy.
func TestTextThatSpellsAVariableIsLeftAsWritten(t *testing.T) {
	generic := mutatingPolicy(t)
	const audience = "https://variables.on0.example.com"
	provider := "projects/123456789/locations/global/workloadIdentityPools/pool/providers/provider"
	cases := map[string]map[string]string{
		"aws-spelled": {"eks.amazonaws.com/role-arn": "arn:aws:iam::111122223333:role/app", "eks.amazonaws.com/audience": audience},
		"gcp-spelled": {"cloud.google.com/workload-identity-provider": provider, "cloud.google.com/service-account-email": "app@variables.fast.iam.gserviceaccount.com",
			"cloud.google.com/audience": "variables.mayDeny"},
	}
	var sas []*corev1.ServiceAccount
	for name, ann := range cases {
		sas = append(sas, &corev1.ServiceAccount{ObjectMeta: metav1.ObjectMeta{Namespace: ns, Name: name, UID: types.UID("u-" + sanitize(name)), ResourceVersion: "1", Annotations: ann}})
	}
	crd := identityParametersOf(t, sas)
	_, records, written := writtenForSync(t, generic, crd)
	var pods []*corev1.Pod
	for _, name := range slices.Sorted(maps.Keys(cases)) {
		p := pod()
		p.Spec.ServiceAccountName = name
		pods = append(pods, p)
	}
	own := pod()
	own.Spec.ServiceAccountName = "aws-spelled"
	expiration := int64(86400)
	own.Spec.Volumes = append(own.Spec.Volumes, corev1.Volume{Name: "aws-iam-token", VolumeSource: corev1.VolumeSource{Projected: &corev1.ProjectedVolumeSource{
		Sources: []corev1.VolumeProjection{{ServiceAccountToken: &corev1.ServiceAccountTokenProjection{Audience: audience, ExpirationSeconds: &expiration, Path: "token"}}}}}})
	pods = append(pods, own)
	if acted, _ := compareOnPods(t, generic, written, crd, records, pods, "text that spells a variable"); acted != len(pods) {
		t.Fatalf("the policies acted on %d of %d pods", acted, len(pods))
	}
	// And the text is there, as written.
	patched, _ := json.Marshal(newEvaluatorSet(t, written).mutation.patched(t, pods[0], records))
	if !strings.Contains(string(patched), `"audience":"`+audience+`"`) {
		t.Errorf("the written policy's pod of aws-spelled lacks the audience %q: %s", audience, patched)
	}
}

// TestTheAPIServerCompilesAPolicyOfMaxPolicySets: the rules that pick a
// set's variables nest one conditional per set, and CEL refuses an
// expression nested too deep, with the whole policy. The policy of
// parameters.MaxPolicySets sets compiles and evaluates, for a pod of the
// last set (one of 250 sets fails to compile: recursion limit exceeded).
func TestTheAPIServerCompilesAPolicyOfMaxPolicySets(t *testing.T) {
	generic := mutatingPolicy(t)
	evaluate := func(n int) string {
		sets := map[string]parameters.WrittenSet{}
		var last string
		for i := range n {
			s := parameters.WrittenSet{Entries: []v1alpha1.Injection{{Provider: "aws", Env: []v1alpha1.EnvGroup{{Name: "g", Vars: []corev1.EnvVar{{Name: "A", Value: fmt.Sprint(i)}}}}}}, Own: 1}
			sets[s.Key()] = s
			last = max(last, s.Key())
		}
		written, err := parameters.WrittenPolicy(generic, sets)
		if err != nil {
			t.Fatal(err)
		}
		expr := "size([dyn(variables.fast), dyn(variables.fastEnv), dyn(variables.additions), dyn(variables.newVolumes), dyn(variables.mayWarn), dyn(variables.mayDeny), dyn(variables.newAnnotations), dyn(variables.newLabels)]) == 8"
		for _, m := range written.Spec.MatchConditions {
			expr += " && (" + m.Expression + ")"
		}
		records := &corev1.ServiceAccount{ObjectMeta: metav1.ObjectMeta{Namespace: ns, Name: parameters.RecordsName, UID: "u-records", ResourceVersion: "7", Annotations: map[string]string{"app": last + "|"}}}
		p := pod()
		p.Spec.ServiceAccountName = "app"
		return compileValue(t, written, expr).value(t, p, records)
	}
	if got := evaluate(parameters.MaxPolicySets); got != "true" {
		t.Errorf("a policy of %d sets: %.300s, want true", parameters.MaxPolicySets, got)
	}
}
