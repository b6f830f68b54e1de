package parameters

import (
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/prometheus/client_golang/prometheus/testutil"
	"github.com/sirupsen/logrus"
	admissionregv1 "k8s.io/api/admissionregistration/v1"
	corev1 "k8s.io/api/core/v1"
	"sigs.k8s.io/yaml"

	policymanifests "github.com/pod-identity/injector/deploy/policy"
	"github.com/pod-identity/injector/pkg/parameters/v1alpha1"
)

func aws(role string) v1alpha1.Injection {
	return v1alpha1.Injection{Provider: "aws", Env: []v1alpha1.EnvGroup{{Name: "g", Vars: []corev1.EnvVar{{Name: "AWS_ROLE_ARN", Value: role}}}}}
}

func TestNamespaceRecordsSayWhatTheWrittenPolicyReads(t *testing.T) {
	spec := v1alpha1.IdentityParametersSpec{
		Templates: []v1alpha1.Injection{aws("{value:0}")},
		ServiceAccounts: map[string]v1alpha1.ServiceAccountParameters{
			"app":                   {Entries: []int32{0}, Values: []string{"arn:a|b%7C"}},
			"refused":               {Denied: []string{"no"}, Warnings: []string{"w"}, APIToken: &v1alpha1.APITokenFindings{}},
			"plain":                 {},
			"own":                   {Injections: []v1alpha1.Injection{aws("literal {value:0}")}},
			strings.Repeat("n", 64): {Entries: []int32{0}, Values: []string{"x"}},
		},
		Default:     &v1alpha1.ServiceAccountParameters{Injections: []v1alpha1.Injection{aws("d")}, Warnings: []string{"w"}},
		Enforcement: &v1alpha1.Enforcement{APIToken: &v1alpha1.APITokenFindings{Pod: &v1alpha1.Findings{Denied: []string{"d"}, Warnings: []string{"w"}}}},
	}
	r, err := NamespaceRecords(spec)
	if err != nil {
		t.Fatal(err)
	}
	templated := WrittenSet{Entries: []v1alpha1.Injection{aws("{value:0}")}}
	own := WrittenSet{Entries: []v1alpha1.Injection{aws("literal {value:0}")}, Own: 1}
	def := WrittenSet{Entries: []v1alpha1.Injection{aws("d")}, Own: 1}
	for _, tc := range []struct{ name, key, want string }{
		{"a templated serviceaccount names its set and its values, separators escaped", "app", templated.Key() + "||arn:a%7Cb%257C"},
		{"refusals, warnings and API token findings are flags", "refused", "|dwa"},
		{"a serviceaccount with nothing of its own names no set", "plain", "|"},
		{"own injections are a set of their own, apart from the same entries templated", "own", own.Key() + "|"},
		{"the default is a set with its flags", DefaultRecordKey, def.Key() + "|w"},
		{"the namespace's API token rule", EnforcementRecordKey, "DW"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			if got := r.Annotations[tc.key]; got != tc.want {
				t.Errorf("record %q = %q, want %q", tc.key, got, tc.want)
			}
		})
	}
	t.Run("a name that is not an annotation key is left out", func(t *testing.T) {
		if len(r.Left) != 1 || r.Left[0] != strings.Repeat("n", 64) {
			t.Errorf("left %v, want the 64-character name", r.Left)
		}
	})
	t.Run("the sets are those the records name", func(t *testing.T) {
		for _, s := range []WrittenSet{templated, own, def} {
			if _, ok := r.Sets[s.Key()]; !ok {
				t.Errorf("set %s missing from %v", s.Key(), r.Sets)
			}
		}
		if templated.Key() == own.Key() {
			t.Error("the same entries, templated and own, share a key")
		}
	})
}

func TestNamespaceRecordsAreBounded(t *testing.T) {
	t.Run("past MaxNamespaceSets the sets fewest serviceaccounts share are left out", func(t *testing.T) {
		spec := v1alpha1.IdentityParametersSpec{ServiceAccounts: map[string]v1alpha1.ServiceAccountParameters{}}
		for i := range MaxNamespaceSets + 2 {
			spec.ServiceAccounts[fmt.Sprintf("sa-%02d", i)] = v1alpha1.ServiceAccountParameters{Injections: []v1alpha1.Injection{aws(fmt.Sprint(i))}}
		}
		// Set 0 is shared by two more.
		spec.ServiceAccounts["sa-x"] = spec.ServiceAccounts["sa-00"]
		spec.ServiceAccounts["sa-y"] = spec.ServiceAccounts["sa-00"]
		r, err := NamespaceRecords(spec)
		if err != nil {
			t.Fatal(err)
		}
		if len(r.Sets) != MaxNamespaceSets || len(r.Left) != 2 {
			t.Fatalf("%d sets, left %v: want %d sets and two left out", len(r.Sets), r.Left, MaxNamespaceSets)
		}
		for _, name := range []string{"sa-00", "sa-x", "sa-y"} {
			if _, ok := r.Annotations[name]; !ok {
				t.Errorf("%s left out, though its set is the most shared", name)
			}
		}
		for _, name := range r.Left {
			if _, ok := r.Annotations[name]; ok {
				t.Errorf("%s is left out and recorded", name)
			}
		}
	})
	// A role written as it is (an own injection) is in the set's rules:
	// its length sets the set's size.
	sized := func(t *testing.T, target int, tag string) v1alpha1.Injection {
		one, err1 := setBytes(WrittenSet{Entries: []v1alpha1.Injection{aws(strings.Repeat("r", 1000))}, Own: 1})
		two, err2 := setBytes(WrittenSet{Entries: []v1alpha1.Injection{aws(strings.Repeat("r", 2000))}, Own: 1})
		if err := errors.Join(err1, err2); err != nil {
			t.Fatal(err)
		}
		return aws(tag + strings.Repeat("r", 1000+(target-one)*1000/(two-one)-len(tag)))
	}
	t.Run("a set past MaxSetBytes is left out", func(t *testing.T) {
		spec := v1alpha1.IdentityParametersSpec{ServiceAccounts: map[string]v1alpha1.ServiceAccountParameters{
			"long": {Injections: []v1alpha1.Injection{sized(t, MaxSetBytes+1000, "long")}},
			"app":  {Injections: []v1alpha1.Injection{aws("arn:aws:iam::111122223333:role/app")}},
		}}
		r, err := NamespaceRecords(spec)
		if err != nil {
			t.Fatal(err)
		}
		if !slices.Equal(r.Left, []string{"long"}) || len(r.Sets) != 1 {
			t.Fatalf("left %v, %d sets: want long left out, app kept", r.Left, len(r.Sets))
		}
	})
	t.Run("past MaxNamespaceSetBytes the sets fewest serviceaccounts share are left out, and smaller ones still fit", func(t *testing.T) {
		spec := v1alpha1.IdentityParametersSpec{ServiceAccounts: map[string]v1alpha1.ServiceAccountParameters{
			"small": {Injections: []v1alpha1.Injection{sized(t, MaxSetBytes/8, "small")}},
		}}
		// Nine sets of 60 KiB: the one shared by two ServiceAccounts and
		// seven more fit, the ninth does not, and the small one does.
		big := func(i int) string { return fmt.Sprintf("big-%d", i) }
		for i := range 9 {
			spec.ServiceAccounts[big(i)] = v1alpha1.ServiceAccountParameters{Injections: []v1alpha1.Injection{sized(t, 60<<10, big(i))}}
		}
		spec.ServiceAccounts["big-0-again"] = spec.ServiceAccounts[big(0)]
		r, err := NamespaceRecords(spec)
		if err != nil {
			t.Fatal(err)
		}
		if len(r.Left) != 1 || !strings.HasPrefix(r.Left[0], "big-") || r.Left[0] == big(0) || len(r.Sets) != 9 {
			t.Fatalf("left %v, %d sets: want one of big-1 to big-8 left out, and the small one kept", r.Left, len(r.Sets))
		}
		size := 0
		for _, s := range r.Sets {
			n, _ := setBytes(s)
			size += n
		}
		if size > MaxNamespaceSetBytes {
			t.Errorf("the sets kept have %d bytes of rules, more than %d", size, MaxNamespaceSetBytes)
		}
	})
	t.Run("past what MaxRecordShards objects hold serviceaccounts are left out", func(t *testing.T) {
		spec := v1alpha1.IdentityParametersSpec{Templates: []v1alpha1.Injection{aws("{value:0}")}, ServiceAccounts: map[string]v1alpha1.ServiceAccountParameters{}}
		value := strings.Repeat("v", 1000)
		for i := range 4000 {
			spec.ServiceAccounts[fmt.Sprintf("sa-%04d", i)] = v1alpha1.ServiceAccountParameters{Entries: []int32{0}, Values: []string{value}}
		}
		r, err := NamespaceRecords(spec)
		if err != nil {
			t.Fatal(err)
		}
		if r.bytes() > MaxRecordShards*shardFill || len(r.Left) == 0 || len(r.Left)+len(r.Annotations) != 4000 {
			t.Errorf("records of %d bytes, %d recorded, %d left out: want within %d bytes, the rest left out", r.bytes(), len(r.Annotations), len(r.Left), MaxRecordShards*shardFill)
		}
		if shards, ok := r.Shards(r.Layout()); !ok || len(shards) > MaxRecordShards {
			t.Errorf("%d objects (fit: %t), want at most %d", len(shards), ok, MaxRecordShards)
		}
	})
	t.Run("an entry past the templates is an error naming the serviceaccount", func(t *testing.T) {
		_, err := NamespaceRecords(v1alpha1.IdentityParametersSpec{ServiceAccounts: map[string]v1alpha1.ServiceAccountParameters{"app": {Entries: []int32{3}}}})
		if err == nil || !strings.Contains(err.Error(), "serviceaccount app") {
			t.Errorf("err %v, want one naming serviceaccount app", err)
		}
	})
}

func TestTheWrittenPolicyIsTheGenericOneWithItsRules(t *testing.T) {
	var generic admissionregv1.MutatingAdmissionPolicy
	if err := yaml.UnmarshalStrict(policymanifests.MutatingPolicy, &generic); err != nil {
		t.Fatal(err)
	}
	set := WrittenSet{Entries: []v1alpha1.Injection{aws("{value:0}")}}
	p, err := WrittenPolicy(&generic, map[string]WrittenSet{set.Key(): set})
	if err != nil {
		t.Fatal(err)
	}
	if p.Name != WrittenPolicyName || p.Spec.ParamKind.Kind != "ServiceAccount" || len(p.Spec.Mutations) != 1 {
		t.Errorf("policy %s reading %v with %d mutations, want %s reading ServiceAccounts with the generic mutation", p.Name, p.Spec.ParamKind, len(p.Spec.Mutations), WrittenPolicyName)
	}
	if generic.Name != "pod-identity-injector" || generic.Spec.ParamKind.Kind != "IdentityParameters" {
		t.Error("the generic policy was changed")
	}
	names := map[string]bool{}
	for _, v := range p.Spec.Variables {
		if names[v.Name] {
			t.Errorf("variable %s defined twice", v.Name)
		}
		names[v.Name] = true
		if strings.Contains(v.Expression, "params.spec") {
			t.Errorf("variable %s reads the IdentityParameters: %.200s", v.Name, v.Expression)
		}
	}
	for _, want := range append(dispatched, "newAnnotations", "newLabels", "s1_on0", "s1_additions") {
		if !names[want] {
			t.Errorf("no variable %s", want)
		}
	}
	broken := generic.DeepCopy()
	broken.Spec.MatchConditions = nil
	if _, err := WrittenPolicy(broken, nil); err == nil || !strings.Contains(err.Error(), "not-a-mirror-pod") {
		t.Errorf("err %v, want the missing match condition named", err)
	}
}

func TestNamespacesShareASetWhateverItsMessagesSay(t *testing.T) {
	entry := func(ns string) v1alpha1.Injection {
		e := aws("{value:0}")
		e.Source = "serviceaccount " + ns + "/{serviceaccount}"
		e.Warnings = []string{"in " + ns}
		return e
	}
	key := func(ns string) string {
		r, err := NamespaceRecords(v1alpha1.IdentityParametersSpec{Templates: []v1alpha1.Injection{entry(ns)},
			ServiceAccounts: map[string]v1alpha1.ServiceAccountParameters{"app": {Entries: []int32{0}, Values: []string{"v"}}}})
		if err != nil {
			t.Fatal(err)
		}
		return strings.Split(r.Annotations["app"], "|")[0]
	}
	if a, b := key("team-a"), key("team-b"); a != b || a == "" {
		t.Errorf("keys %q and %q: want one set for both namespaces", a, b)
	}
	withoutWarning := aws("{value:0}")
	r, _ := NamespaceRecords(v1alpha1.IdentityParametersSpec{Templates: []v1alpha1.Injection{withoutWarning},
		ServiceAccounts: map[string]v1alpha1.ServiceAccountParameters{"app": {Entries: []int32{0}}}})
	if strings.Split(r.Annotations["app"], "|")[0] == key("team-a") {
		t.Error("an entry that warns shares its set with one that does not")
	}
}

func TestTheWrittenPolicyHoldsTheSetsMostNamespacesUseWithinItsBound(t *testing.T) {
	w, err := newWritten(nil, logrus.New())
	if err != nil {
		t.Fatal(err)
	}
	w.log.(*logrus.Logger).SetOutput(io.Discard)
	w.size, w.sets = writtenMetrics()
	shared := WrittenSet{Entries: []v1alpha1.Injection{aws("{value:0}")}}
	own := func(i int) WrittenSet {
		return WrittenSet{Entries: []v1alpha1.Injection{aws(fmt.Sprintf("arn:aws:iam::111122223333:role/own-%d", i)), aws("{value:0}")}, Own: 1}
	}
	for i := range 400 {
		w.byNS[fmt.Sprintf("ns-%d", i)] = map[string]WrittenSet{shared.Key(): shared, own(i).Key(): own(i)}
	}
	keys, p, err := w.chosen()
	if err != nil {
		t.Fatal(err)
	}
	b, _ := json.Marshal(p)
	if len(b) > MaxPolicyBytes || len(keys) >= 401 || len(keys) < 10 {
		t.Fatalf("%d sets in a policy of %d bytes: want some of the 401 left out, within %d bytes", len(keys), len(b), MaxPolicyBytes)
	}
	if !slices.Contains(keys, shared.Key()) {
		t.Error("the set every namespace uses was left out")
	}
	if held, out := testutil.ToFloat64(w.sets.WithLabelValues("held")), testutil.ToFloat64(w.sets.WithLabelValues("left_out")); int(held) != len(keys) || int(held+out) != 401 {
		t.Errorf("written_policy_sets held %v, left_out %v: want %d and %d", held, out, len(keys), 401-len(keys))
	}
	t.Run("a new set does not push out one the policy holds", func(t *testing.T) {
		w.applied = keys
		w.byNS["ns-new"] = map[string]WrittenSet{own(1000).Key(): own(1000)}
		again, _, err := w.chosen()
		if err != nil {
			t.Fatal(err)
		}
		if !slices.Equal(again, keys) {
			t.Errorf("sets %d, were %d: a held set was replaced", len(again), len(keys))
		}
	})
	t.Run("sets more namespaces share do not push out sets in use the policy holds", func(t *testing.T) {
		w.applied = keys
		wide := WrittenSet{Entries: []v1alpha1.Injection{aws(strings.Repeat("w", 20_000))}, Own: 1}
		for i := range 50 {
			w.byNS[fmt.Sprintf("tenant-%d", i)] = map[string]WrittenSet{wide.Key(): wide}
		}
		again, _, err := w.chosen()
		if err != nil {
			t.Fatal(err)
		}
		for _, k := range keys {
			if !slices.Contains(again, k) {
				t.Fatalf("held set %s pushed out by a set 50 namespaces share", k)
			}
		}
		for i := range 50 {
			delete(w.byNS, fmt.Sprintf("tenant-%d", i))
		}
	})
	t.Run("a set that does not fit leaves room for smaller ones", func(t *testing.T) {
		w.applied = keys
		big := WrittenSet{Entries: []v1alpha1.Injection{aws(strings.Repeat("b", 200_000))}, Own: 1}
		small := WrittenSet{Entries: []v1alpha1.Injection{aws("small")}, Own: 1}
		// The big one first (three namespaces use it), then the small one
		// (two), then the sets left out so far (one each).
		for _, n := range []string{"big-1", "big-2", "big-3"} {
			w.byNS[n] = map[string]WrittenSet{big.Key(): big}
		}
		for _, n := range []string{"small-1", "small-2"} {
			w.byNS[n] = map[string]WrittenSet{small.Key(): small}
		}
		// Room for the small one: a held set goes out of use.
		freed := slices.IndexFunc(keys, func(k string) bool { return k != shared.Key() })
		var gone string
		for n, sets := range w.byNS {
			if _, ok := sets[keys[freed]]; ok {
				gone = n
			}
		}
		saved := w.byNS[gone]
		delete(w.byNS, gone)
		w.lastUsed = map[string]retiredSet{}
		again, p, err := w.chosen()
		if err != nil {
			t.Fatal(err)
		}
		b, _ := json.Marshal(p)
		if slices.Contains(again, big.Key()) || !slices.Contains(again, small.Key()) || len(b) > MaxPolicyBytes {
			t.Errorf("big held %t, small held %t, %d bytes: want only the small one, within %d", slices.Contains(again, big.Key()), slices.Contains(again, small.Key()), len(b), MaxPolicyBytes)
		}
		for _, n := range []string{"big-1", "big-2", "big-3", "small-1", "small-2"} {
			delete(w.byNS, n)
		}
		w.byNS[gone] = saved
	})
	t.Run("sets as last applied build no policy", func(t *testing.T) {
		delete(w.byNS, "ns-new")
		w.applied = nil
		for n := range w.byNS {
			if n != "ns-0" {
				delete(w.byNS, n)
			}
		}
		keys, _, _ := w.chosen()
		w.applied, w.considered = keys, w.candidate
		if _, p, err := w.chosen(); p != nil || err != nil {
			t.Errorf("policy %v, err %v: want none to write", p != nil, err)
		}
	})
}

func TestASetNoNamespaceUsesStaysForItsGrace(t *testing.T) {
	w, err := newWritten(nil, logrus.New())
	if err != nil {
		t.Fatal(err)
	}
	clock := time.Unix(0, 0)
	w.now = func() time.Time { return clock }
	a, b := WrittenSet{Entries: []v1alpha1.Injection{aws("a")}, Own: 1}, WrittenSet{Entries: []v1alpha1.Injection{aws("b")}, Own: 1}
	w.byNS["ns"] = map[string]WrittenSet{a.Key(): a}
	first, _, _ := w.chosen()
	w.applied, w.considered = first, w.candidate
	// The ServiceAccount goes from one identity to another.
	w.byNS["ns"] = map[string]WrittenSet{b.Key(): b}
	clock = clock.Add(setGrace - time.Second)
	keys, _, _ := w.chosen()
	if !slices.Contains(keys, a.Key()) || !slices.Contains(keys, b.Key()) {
		t.Errorf("sets %v within the grace, want both", keys)
	}
	w.applied, w.considered = keys, w.candidate
	// And back: nothing to write.
	w.byNS["ns"] = map[string]WrittenSet{a.Key(): a}
	if _, p, _ := w.chosen(); p != nil {
		t.Error("going back to a set the policy holds rewrote the policy")
	}
	clock = clock.Add(setGrace + time.Second)
	if keys, _, _ := w.chosen(); slices.Contains(keys, b.Key()) {
		t.Errorf("sets %v past the grace, want b gone", keys)
	}
}

func TestRecordsSplitIntoObjectsByRangesOfNames(t *testing.T) {
	spec := v1alpha1.IdentityParametersSpec{Templates: []v1alpha1.Injection{aws("{value:0}")}, ServiceAccounts: map[string]v1alpha1.ServiceAccountParameters{},
		Default: &v1alpha1.ServiceAccountParameters{Injections: []v1alpha1.Injection{aws("d")}}}
	for i := range 5000 {
		spec.ServiceAccounts[fmt.Sprintf("user-%d", i)] = v1alpha1.ServiceAccountParameters{Entries: []int32{0}, Values: []string{fmt.Sprintf("arn:aws:iam::111122223333:role/user-%d", i)}}
	}
	r, err := NamespaceRecords(spec)
	if err != nil || len(r.Left) > 0 {
		t.Fatalf("err %v, left %d", err, len(r.Left))
	}
	boundaries := r.Layout()
	shards, ok := r.Shards(boundaries)
	if !ok || len(shards) < 2 || !slices.IsSorted(boundaries) {
		t.Fatalf("%d objects (fit: %t), boundaries sorted %t: want several, each within the bound", len(shards), ok, slices.IsSorted(boundaries))
	}
	inRange := func(sh map[string]string, name string) bool {
		from, hasFrom := sh[FromRecordKey]
		to, hasTo := sh[ToRecordKey]
		return (!hasFrom || name >= from) && (!hasTo || name < to)
	}
	for name, rec := range r.Annotations {
		if name == DefaultRecordKey {
			continue
		}
		holding := 0
		for _, sh := range shards {
			if inRange(sh, name) {
				holding++
				if sh[name] != rec {
					t.Fatalf("%s: the object whose range holds it records %q, want %q", name, sh[name], rec)
				}
			}
		}
		if holding != 1 {
			t.Fatalf("%s is in the range of %d objects, want 1", name, holding)
		}
	}
	for i, sh := range shards {
		if sh[DefaultRecordKey] != r.Annotations[DefaultRecordKey] {
			t.Errorf("object %d lacks the namespace's default", i)
		}
	}
	// A name no object records (a ServiceAccount created since) is in
	// one range too: that object marks its pods not known.
	for _, name := range []string{"", "a", "user-5000", "zzz"} {
		holding := 0
		for _, sh := range shards {
			if inRange(sh, name) {
				holding++
			}
		}
		if holding != 1 {
			t.Errorf("%q is in the range of %d objects, want 1", name, holding)
		}
	}
	small, _ := NamespaceRecords(v1alpha1.IdentityParametersSpec{ServiceAccounts: map[string]v1alpha1.ServiceAccountParameters{"app": {}}})
	if b := small.Layout(); b != nil {
		t.Errorf("a small namespace laid out as %v, want one object", b)
	}
}

func TestASetsVariablesAreRenamedOutsideStringLiteralsOnly(t *testing.T) {
	names := map[string]bool{"on0": true, "fast": true}
	for _, c := range []struct{ name, expr, want string }{
		{"references are renamed", `variables.on0 && !variables.fast`, `variables.s3_on0 && !variables.s3_fast`},
		{"shared variables keep their names", `variables.on0 || variables.containers`, `variables.s3_on0 || variables.containers`},
		{"longer names are not parts of shorter ones", `variables.on01 || variables.fastEnv`, `variables.on01 || variables.fastEnv`},
		{"a double-quoted audience is left as written", `variables.on0 ? "https://variables.on0.example.com" : ''`, `variables.s3_on0 ? "https://variables.on0.example.com" : ''`},
		{"a single-quoted literal is left as written", `'variables.fast' == variables.fast`, `'variables.fast' == variables.s3_fast`},
		{"an escaped quote does not end a literal", `"a\"variables.on0" + variables.on0`, `"a\"variables.on0" + variables.s3_on0`},
		{"an escaped backslash before the quote ends it", `"a\\" + variables.on0`, `"a\\" + variables.s3_on0`},
		{"a quote of the other kind does not end a literal", `"it's variables.on0" + variables.on0`, `"it's variables.on0" + variables.s3_on0`},
		{"triple quotes hold single ones", `'''a ' variables.on0''' + variables.on0`, `'''a ' variables.on0''' + variables.s3_on0`},
		{"a raw literal's backslash escapes nothing", `r"a\" + variables.on0`, `r"a\" + variables.s3_on0`},
		{"an identifier ending in r does not make a literal raw", `var"\"variables.on0" + variables.on0`, `var"\"variables.on0" + variables.s3_on0`},
		{"an unterminated literal is left as written", `variables.on0 + "variables.on0`, `variables.s3_on0 + "variables.on0`},
	} {
		t.Run(c.name, func(t *testing.T) {
			if got := renamed(c.expr, names, "s3_"); got != c.want {
				t.Errorf("renamed(%s)\n got %s\nwant %s", c.expr, got, c.want)
			}
		})
	}
}
