package parameters

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"slices"
	"strings"
	"testing"

	"github.com/prometheus/client_golang/prometheus/testutil"
	"github.com/sirupsen/logrus"
	admissionregv1 "k8s.io/api/admissionregistration/v1"
	corev1 "k8s.io/api/core/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/apis/meta/v1/unstructured"
	"k8s.io/apimachinery/pkg/runtime"
	dynamicfake "k8s.io/client-go/dynamic/fake"
	clienttesting "k8s.io/client-go/testing"

	"github.com/pod-identity/injector/pkg/parameters/v1alpha1"
)

// recordsOf is the records of a namespace with n ServiceAccounts of one
// templated identity.
func recordsOf(t *testing.T, n int) *Records {
	t.Helper()
	spec := v1alpha1.IdentityParametersSpec{Templates: []v1alpha1.Injection{aws("{value:0}")}, ServiceAccounts: map[string]v1alpha1.ServiceAccountParameters{}}
	for i := range n {
		spec.ServiceAccounts[fmt.Sprintf("user-%d", i)] = v1alpha1.ServiceAccountParameters{Entries: []int32{0}, Values: []string{fmt.Sprintf("arn:aws:iam::111122223333:role/user-%d", i)}}
	}
	r, err := NamespaceRecords(spec)
	if err != nil || len(r.Left) > 0 {
		t.Fatalf("records: %v, left %d", err, len(r.Left))
	}
	return &r
}

// recordsObjectsIn are the records objects of the namespace, by name, and
// whether every name (a recorded one or not) is in the range of one.
func recordsObjectsIn(t *testing.T, w *written, ns string) ([]string, bool) {
	t.Helper()
	list, err := w.dyn.Resource(serviceAccountsResource).Namespace(ns).List(context.Background(), metav1.ListOptions{})
	if err != nil {
		t.Fatal(err)
	}
	var names []string
	var ranges [][2]string
	for _, o := range list.Items {
		if o.GetLabels()[ManagedByLabel] != ManagedBy {
			t.Errorf("records object %s without sync's label", o.GetName())
		}
		names = append(names, o.GetName())
		a := o.GetAnnotations()
		ranges = append(ranges, [2]string{a[FromRecordKey], a[ToRecordKey]})
	}
	slices.Sort(names)
	covered := true
	for _, name := range []string{"", "a", "default", "user-1", "user-2500", "user-4999", "user-5", "zzz"} {
		holding := 0
		for _, r := range ranges {
			if (r[0] == "" || name >= r[0]) && (r[1] == "" || name < r[1]) {
				holding++
			}
		}
		covered = covered && holding >= 1
	}
	return names, covered
}

func newFakeWritten(t *testing.T) (*written, *dynamicfake.FakeDynamicClient) {
	t.Helper()
	scheme := runtime.NewScheme()
	_ = corev1.AddToScheme(scheme)
	dyn := dynamicfake.NewSimpleDynamicClient(scheme)
	log := logrus.New()
	log.SetOutput(io.Discard)
	w, err := newWritten(dyn, log)
	if err != nil {
		t.Fatal(err)
	}
	return w, dyn
}

func TestRecordsObjectsAreLaidOutWithoutAGap(t *testing.T) {
	ctx := context.Background()
	w, dyn := newFakeWritten(t)
	const ns = "users"
	big, small := recordsOf(t, 5000), recordsOf(t, 10)
	t.Run("a large namespace gets a series of objects covering every name", func(t *testing.T) {
		if err := w.writeRecords(ctx, ns, big); err != nil {
			t.Fatal(err)
		}
		names, covered := recordsObjectsIn(t, w, ns)
		if len(names) < 2 || !strings.HasPrefix(names[0], RecordsName+"-a") || !covered {
			t.Errorf("objects %v, covering every name %t: want the series a, covering", names, covered)
		}
	})
	t.Run("a namespace that shrinks gets one object, and the series goes", func(t *testing.T) {
		if err := w.writeRecords(ctx, ns, small); err != nil {
			t.Fatal(err)
		}
		if names, covered := recordsObjectsIn(t, w, ns); !slices.Equal(names, []string{RecordsName}) || !covered {
			t.Errorf("objects %v, covering %t: want %s alone", names, covered, RecordsName)
		}
	})
	t.Run("a layout that cannot be written whole leaves the old one covering, brought up to date", func(t *testing.T) {
		if err := w.writeRecords(ctx, ns, big); err != nil {
			t.Fatal(err)
		}
		grown := recordsOf(t, 5000)
		grown.Annotations["user-1"] = strings.Repeat("x", MaxRecordBytes/2) // past its object: laid out again
		grown.Annotations["user-999"] = "|d"                                // refused since
		// A quota on ServiceAccounts: the second object of the new
		// series cannot be created.
		dyn.PrependReactor("create", "serviceaccounts", func(a clienttesting.Action) (bool, runtime.Object, error) {
			if strings.HasSuffix(a.(clienttesting.CreateAction).GetObject().(interface{ GetName() string }).GetName(), "b2") {
				return true, nil, errors.New("exceeded quota")
			}
			return false, nil, nil
		})
		if err := w.writeRecords(ctx, ns, grown); err == nil {
			t.Fatal("no error from a layout that could not be written")
		}
		names, covered := recordsObjectsIn(t, w, ns)
		if !covered || !slices.Contains(names, RecordsName+"-a1") {
			t.Errorf("objects %v, covering %t: want the series a still covering", names, covered)
		}
		list, _ := w.dyn.Resource(serviceAccountsResource).Namespace(ns).List(ctx, metav1.ListOptions{})
		current := false
		for _, o := range list.Items {
			if strings.Contains(o.GetName(), "-a") && o.GetAnnotations()["user-999"] == "|d" {
				current = true
			}
		}
		if !current {
			t.Error("the series a was not brought up to date where its objects still fit")
		}
		// A sync that starts now finds both series: the one covering
		// every name is kept until the other is written whole.
		lay, err := currentLayout(ctx, w.dyn.Resource(serviceAccountsResource).Namespace(ns))
		if err != nil || lay.series != "a" || !lay.relayout {
			t.Errorf("layout %+v (err %v): want series a, to be laid out again", lay, err)
		}
		dyn.ReactionChain = dyn.ReactionChain[1:]
		if err := w.writeRecords(ctx, ns, grown); err != nil {
			t.Fatal(err)
		}
		names, covered = recordsObjectsIn(t, w, ns)
		if !covered || slices.Contains(names, RecordsName+"-a1") || !slices.Contains(names, RecordsName+"-b1") {
			t.Errorf("objects %v, covering %t: want the series b alone", names, covered)
		}
	})
	t.Run("a namespace with nothing left has no objects", func(t *testing.T) {
		if err := w.writeRecords(ctx, ns, nil); err != nil {
			t.Fatal(err)
		}
		if names, _ := recordsObjectsIn(t, w, ns); len(names) != 0 {
			t.Errorf("objects %v, want none", names)
		}
	})
}

func TestRecordsObjectsAreKnownByName(t *testing.T) {
	for _, n := range recordsObjects("a", MaxRecordShards) {
		if !isRecordsObject(n) {
			t.Errorf("%s is not taken for a records object", n)
		}
	}
	for _, n := range append(recordsObjects("b", MaxRecordShards), RecordsName) {
		if !isRecordsObject(n) {
			t.Errorf("%s is not taken for a records object", n)
		}
	}
	for _, n := range []string{RecordsName + "-a17", RecordsName + "-c1", RecordsName + "-a0", "x-" + RecordsName, RecordsName + "s"} {
		if isRecordsObject(n) {
			t.Errorf("%s is taken for a records object", n)
		}
	}
}

func TestTheWrittenPolicysGaugesSayHowFullItIs(t *testing.T) {
	w, dyn := newFakeWritten(t)
	w.size, w.sets = writtenMetrics()
	var applied []byte
	dyn.PrependReactor("patch", "mutatingadmissionpolicies", func(a clienttesting.Action) (bool, runtime.Object, error) {
		applied = a.(clienttesting.PatchAction).GetPatch()
		return true, nil, nil
	})
	shared := WrittenSet{Entries: []v1alpha1.Injection{aws("{value:0}")}}
	if err := w.use(context.Background(), "team-a", map[string]WrittenSet{shared.Key(): shared}); err != nil {
		t.Fatal(err)
	}
	var spec struct {
		Spec json.RawMessage `json:"spec"`
	}
	if err := json.Unmarshal(applied, &spec); err != nil || len(spec.Spec) < 1000 {
		t.Fatalf("applied %.200s: %v, want the policy", applied, err)
	}
	// The gauge measures the policy as JSON: its spec and a little more.
	if got := testutil.ToFloat64(w.size); got < float64(len(spec.Spec)) || got > float64(len(applied))+256 {
		t.Errorf("written_policy_bytes %v: the applied policy is %d bytes, its spec %d", got, len(applied), len(spec.Spec))
	}
	if held, out := testutil.ToFloat64(w.sets.WithLabelValues("held")), testutil.ToFloat64(w.sets.WithLabelValues("left_out")); held != 1 || out != 0 {
		t.Errorf("written_policy_sets held %v, left_out %v: want 1 and 0", held, out)
	}
}

func TestTheWrittenPolicyIsNeverOneTheAPIServerRefusesForItsSize(t *testing.T) {
	t.Run("a set's size counts its text as JSON writes it", func(t *testing.T) {
		plain, err1 := setBytes(WrittenSet{Entries: []v1alpha1.Injection{aws(strings.Repeat("a", 10_000))}, Own: 1})
		escaped, err2 := setBytes(WrittenSet{Entries: []v1alpha1.Injection{aws(strings.Repeat("<", 10_000))}, Own: 1})
		if err := errors.Join(err1, err2); err != nil {
			t.Fatal(err)
		}
		// encoding/json writes < as \u003c: five more bytes for each of
		// the role's copies in the rules.
		if escaped-plain < 5*10_000 {
			t.Errorf("setBytes %d for a role of <, %d for one of a: want the escapes counted", escaped, plain)
		}
	})
	t.Run("a set at MaxSetBytes has no expression past CEL's bound", func(t *testing.T) {
		// The longest rule of a set grows with its role's copies; a role
		// that makes the set MaxSetBytes puts them all in one rule at most.
		set := WrittenSet{Entries: []v1alpha1.Injection{aws(strings.Repeat("r", MaxSetBytes))}, Own: 1}
		rules, err := WrittenRules(set.Entries, set.Own)
		if err != nil {
			t.Fatal(err)
		}
		n, _ := setBytes(set)
		for _, r := range rules {
			if len(r.Expression) > n {
				t.Fatalf("rule %s is %d bytes, more than its set's %d", r.Name, len(r.Expression), n)
			}
		}
		if MaxSetBytes >= maxExpressionCodePoints {
			t.Errorf("MaxSetBytes %d: a rule of a set within it may pass CEL's %d code points", MaxSetBytes, maxExpressionCodePoints)
		}
	})
	t.Run("at most MaxPolicySets sets, the others left out and counted", func(t *testing.T) {
		w, _ := newFakeWritten(t)
		w.size, w.sets = writtenMetrics()
		for i := range MaxPolicySets + 30 {
			s := WrittenSet{Entries: []v1alpha1.Injection{{Provider: "aws", Env: []v1alpha1.EnvGroup{{Name: "g", Vars: []corev1.EnvVar{{Name: "A", Value: fmt.Sprint(i)}}}}}}, Own: 1}
			w.byNS[fmt.Sprintf("ns-%d", i)] = map[string]WrittenSet{s.Key(): s}
		}
		keys, _, err := w.chosen()
		if err != nil {
			t.Fatal(err)
		}
		if len(keys) != MaxPolicySets || testutil.ToFloat64(w.sets.WithLabelValues("left_out")) != 30 {
			t.Errorf("%d sets held, %v left out: want %d and 30", len(keys), testutil.ToFloat64(w.sets.WithLabelValues("left_out")), MaxPolicySets)
		}
	})
	t.Run("admissible names what the API server would refuse", func(t *testing.T) {
		p := &admissionregv1.MutatingAdmissionPolicy{ObjectMeta: metav1.ObjectMeta{Name: WrittenPolicyName}}
		p.Spec.Variables = []admissionregv1.Variable{{Name: "long", Expression: "'" + strings.Repeat("é", maxExpressionCodePoints) + "'"}}
		if err := admissible(p); err == nil || !strings.Contains(err.Error(), "variable long has 100002 code points") {
			t.Errorf("err %v, want the long variable named", err)
		}
		p.Spec.Variables = []admissionregv1.Variable{{Name: "escaped", Expression: "'" + strings.Repeat("<", MaxPolicyBytes/6+1) + "'"}}
		if err := admissible(p); err == nil || !strings.Contains(err.Error(), "bytes as JSON") {
			t.Errorf("err %v, want the policy's JSON size", err)
		}
	})
}

func TestAFailedApplyDoesNotHoldUpRecordsOfSetsInForce(t *testing.T) {
	w, dyn := newFakeWritten(t)
	dyn.PrependReactor("patch", "mutatingadmissionpolicies", func(clienttesting.Action) (bool, runtime.Object, error) {
		return true, nil, nil
	})
	held := WrittenSet{Entries: []v1alpha1.Injection{aws("held")}, Own: 1}
	if err := w.use(context.Background(), "team-a", map[string]WrittenSet{held.Key(): held}); err != nil {
		t.Fatal(err)
	}
	dyn.PrependReactor("patch", "mutatingadmissionpolicies", func(clienttesting.Action) (bool, runtime.Object, error) {
		return true, nil, errors.New("the API server is away")
	})
	fresh := WrittenSet{Entries: []v1alpha1.Injection{aws("new")}, Own: 1}
	if err := w.use(context.Background(), "team-b", map[string]WrittenSet{fresh.Key(): fresh}); err == nil {
		t.Error("a namespace with a set the policy does not hold: no error, its records would name a set not in force")
	}
	if err := w.use(context.Background(), "team-c", map[string]WrittenSet{held.Key(): held}); err != nil {
		t.Errorf("a namespace whose set the policy holds: %v, want its records written", err)
	}
}

func TestANewTermAsLeaderStartsFromThePolicyInForce(t *testing.T) {
	w, dyn := newFakeWritten(t)
	k1 := WrittenSet{Entries: []v1alpha1.Injection{aws("one")}, Own: 1}
	k2 := WrittenSet{Entries: []v1alpha1.Injection{aws("two")}, Own: 1}
	k3 := WrittenSet{Entries: []v1alpha1.Injection{aws("three")}, Own: 1}
	// This replica's last term: it applied k1 and k2, and knew a
	// namespace that has gone since.
	w.byNS["gone"] = map[string]WrittenSet{k2.Key(): k2}
	w.applied = slices.Sorted(slices.Values([]string{k1.Key(), k2.Key()}))
	w.considered = w.applied
	// Meanwhile another replica applied k1 and k3.
	p, err := WrittenPolicy(w.generic, map[string]WrittenSet{k1.Key(): k1, k3.Key(): k3})
	if err != nil {
		t.Fatal(err)
	}
	m, err := runtime.DefaultUnstructuredConverter.ToUnstructured(p)
	if err != nil {
		t.Fatal(err)
	}
	if _, err := dyn.Resource(mutatingPolicies).Create(context.Background(), &unstructured.Unstructured{Object: m}, metav1.CreateOptions{}); err != nil {
		t.Fatal(err)
	}
	if err := w.begin(context.Background()); err != nil {
		t.Fatal(err)
	}
	if want := slices.Sorted(slices.Values([]string{k1.Key(), k3.Key()})); !slices.Equal(w.applied, want) {
		t.Errorf("held %v, want the policy in force's %v", w.applied, want)
	}
	if len(w.byNS) != 0 || w.considered != nil {
		t.Errorf("namespaces %v, considered %v: want the last term's forgotten", w.byNS, w.considered)
	}
}

func TestRecordsWaitForAPolicyOfTheirTermWhenSeedingFailsToApply(t *testing.T) {
	scheme := runtime.NewScheme()
	_ = corev1.AddToScheme(scheme)
	dyn := dynamicfake.NewSimpleDynamicClient(scheme)
	// The policy in force holds some other set.
	other := WrittenSet{Entries: []v1alpha1.Injection{aws("other")}, Own: 1}
	w, _ := newFakeWritten(t)
	p, err := WrittenPolicy(w.generic, map[string]WrittenSet{other.Key(): other})
	if err != nil {
		t.Fatal(err)
	}
	m, _ := runtime.DefaultUnstructuredConverter.ToUnstructured(p)
	if _, err := dyn.Resource(mutatingPolicies).Create(context.Background(), &unstructured.Unstructured{Object: m}, metav1.CreateOptions{}); err != nil {
		t.Fatal(err)
	}
	dyn.PrependReactor("patch", "mutatingadmissionpolicies", func(clienttesting.Action) (bool, runtime.Object, error) {
		return true, nil, errors.New("the API server is away")
	})
	log := logrus.New()
	log.SetOutput(io.Discard)
	sas := serviceAccounts{"team-x": {named("team-x", "app", map[string]string{"eks.amazonaws.com/role-arn": "arn:aws:iam::111122223333:role/app"})}}
	c, err := New(Config{Engine: engine(t), ServiceAccounts: sas, Dynamic: dyn, Written: true, Log: log})
	if err != nil {
		t.Fatal(err)
	}
	if err := c.seedWritten(context.Background(), []string{"team-x"}); err == nil {
		t.Fatal("seeding applied a policy through a failing API server")
	}
	spec, _, err := c.Desired("team-x")
	if err != nil {
		t.Fatal(err)
	}
	recs, err := NamespaceRecords(spec)
	if err != nil {
		t.Fatal(err)
	}
	if err := c.written.use(context.Background(), "team-x", recs.Sets); err == nil {
		t.Error("records naming a set the policy in force lacks may be written: use returned no error")
	}
}
