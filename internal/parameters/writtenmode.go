package parameters

import (
	"context"
	"encoding/json"
	"fmt"
	"maps"
	"reflect"
	"regexp"
	"slices"
	"strings"
	gosync "sync"
	"time"
	"unicode/utf8"

	"github.com/prometheus/client_golang/prometheus"
	"github.com/sirupsen/logrus"
	"golang.org/x/time/rate"
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
// known; use webhook mode there). The e2e suite's namespace of 40 kinds
// of identity (every provider, tuned and together) has 17 sets; with 16,
// one was left out, which one depending on the sets' keys.
const MaxNamespaceSets = 32

// MaxSetBytes bounds the rules of one set (setBytes): about twice those of
// three clouds' identities together (33 KB; one provider's are about
// 8 KB). A set holds the text of its ServiceAccounts' annotations that is
// not templated (an audience) as it is, which Kubernetes bounds only at
// 256 KiB of annotations: a set past the bound is left out, with its
// ServiceAccounts, as past MaxNamespaceSets. It also keeps each of its
// rules under CEL's bound on one expression (maxExpressionCodePoints),
// past which the API server would refuse the whole policy.
const MaxSetBytes = 64 << 10

// maxExpressionCodePoints is the CEL parser's bound on one expression,
// which the API server keeps (cel-go's default expression size limit).
const maxExpressionCodePoints = 100_000

// MaxPolicySets bounds the sets the written policy holds: the rules that
// pick a set's variables nest one conditional per set, and the API
// server's CEL refuses an expression nested past 250 levels (cel-go's
// default parse recursion limit) with the whole policy.
const MaxPolicySets = 200

// MaxNamespaceSetBytes bounds the rules of the sets one namespace uses
// (setBytes, summed): half of MaxPolicyBytes, so that one namespace cannot
// fill the policy every namespace shares. A namespace of many kinds of
// identity needs room: the e2e suite's, 40 cases of every provider and
// tuning, has ServiceAccounts left out at a quarter. The ServiceAccounts
// of the sets past the bound, those fewest of them share, are left out as
// past MaxNamespaceSets.
const MaxNamespaceSetBytes = MaxPolicyBytes / 2

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

// setGrace is how long the written policy keeps a set no namespace uses.
const setGrace = 10 * time.Minute

// retiredSet is a set and when a namespace last used it.
type retiredSet struct {
	set WrittenSet
	at  time.Time
}

// bindingCheck is how often sync checks that the binding still points
// at the written policy.
const bindingCheck = time.Minute

// BindingName is the mutating policy binding of policy mode: in written
// mode sync points it at the written policy (WrittenPolicyName), once
// every namespace has its records; applying deploy/policy points it back
// at the generic policy. Either policy reads what the binding selects by
// sync's label: the IdentityParameters, or the records.
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
	records map[string]string // namespace/object -> its records as last written
	layouts map[string]recordsLayout
	bound   time.Time     // when the binding was last seen pointing at the written policy
	budget  *rate.Limiter // the controller's cluster write budget
	stale   bool          // the last apply failed: byNS is ahead of the policy
	// lastUsed holds every set of the policy, and when a namespace last
	// used it.
	lastUsed map[string]retiredSet
	// considered are the keys of every set the applied policy was chosen
	// from (some may be left out of it), candidate those of the policy
	// being applied: the same sets again need no new policy.
	considered, candidate []string
	now                   func() time.Time
	// size and sets report the policy last chosen (nil: not reported).
	size prometheus.Gauge
	sets *prometheus.GaugeVec
}

// writtenMetrics are the written policy's gauges: how much of its bound it
// fills, and how many sets it holds and leaves out, so that an operator
// sees it fill before a ServiceAccount is refused as not known.
func writtenMetrics() (prometheus.Gauge, *prometheus.GaugeVec) {
	return prometheus.NewGauge(prometheus.GaugeOpts{
			Namespace: "pod_identity", Subsystem: "sync", Name: "written_policy_bytes",
			Help: fmt.Sprintf("Size of the written MutatingAdmissionPolicy last applied, as JSON; sets past %d bytes are left out.", MaxPolicyBytes),
		}), prometheus.NewGaugeVec(prometheus.GaugeOpts{
			Namespace: "pod_identity", Subsystem: "sync", Name: "written_policy_sets",
			Help: "Sets of rules the written policy holds (state=held, including those kept for their grace) and leaves out for its size (state=left_out: their serviceaccounts are refused as not known).",
		}, []string{"state"})
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
	// The shipped binding selects its parameters by sync's label, which
	// the records carry too: the written policy reads them through the
	// same binding.
	if sel := binding.Spec.ParamRef.Selector; sel == nil || sel.MatchLabels[ManagedByLabel] != ManagedBy {
		return nil, fmt.Errorf("the generic mutating policy's binding %s does not select its parameters by %s=%s", BindingName, ManagedByLabel, ManagedBy)
	}
	binding.Spec.PolicyName = WrittenPolicyName
	return &written{generic: &generic, binding: &binding, dyn: dyn, log: log, byNS: map[string]map[string]WrittenSet{}, records: map[string]string{}, layouts: map[string]recordsLayout{},
		lastUsed: map[string]retiredSet{}, now: time.Now}, nil
}

// chosen are the keys of the sets the policy holds, and the policy (nil
// when they are those last applied), within MaxPolicyBytes: the sets in
// use that it holds already, then new ones by the number of namespaces
// using them, most first, then those kept for their grace. Each set's
// size is its rules' once, so a policy past the bound is built once, not
// once per set left out.
func (w *written) chosen() ([]string, *admissionregv1.MutatingAdmissionPolicy, error) {
	uses := map[string]int{}
	sets := map[string]WrittenSet{}
	for _, nsSets := range w.byNS {
		for k, s := range nsSets {
			uses[k]++
			sets[k] = s
		}
	}
	// A set no namespace uses any more stays for setGrace, last in
	// line: records written before it went may still name it, and a
	// ServiceAccount that goes back and forth between two identities
	// does not rewrite the policy each time.
	now := w.now()
	for k, s := range sets {
		w.lastUsed[k] = retiredSet{set: s, at: now}
	}
	for k, r := range w.lastUsed {
		switch {
		case uses[k] > 0:
		case now.Sub(r.at) < setGrace:
			sets[k] = r.set
		default:
			delete(w.lastUsed, k)
		}
	}
	keys := slices.Collect(maps.Keys(sets))
	slices.Sort(keys)
	if w.considered != nil && slices.Equal(keys, w.considered) {
		return w.applied, nil, nil
	}
	w.candidate = slices.Clone(keys)
	held := map[string]bool{}
	for _, k := range w.applied {
		held[k] = true
	}
	// In use and held first: a set the policy holds is never pushed out
	// while a namespace uses it, whatever comes after it (however many
	// namespaces share it). Then new sets, those most namespaces use
	// first; then sets kept for their grace.
	rank := func(k string) int {
		switch {
		case uses[k] > 0 && held[k]:
			return 0
		case uses[k] > 0:
			return 1
		}
		return 2
	}
	slices.SortFunc(keys, func(a, b string) int {
		switch {
		case rank(a) != rank(b):
			return rank(a) - rank(b)
		case uses[a] != uses[b]:
			return uses[b] - uses[a]
		}
		return strings.Compare(a, b)
	})
	// The policy's own size, and each set's rules (setBytes). A set that
	// does not fit is left out, and smaller ones after it may still fit.
	base, err := WrittenPolicy(w.generic, nil)
	if err != nil {
		return nil, nil, err
	}
	b, err := json.Marshal(base)
	if err != nil {
		return nil, nil, err
	}
	size := len(b)
	var in []string
	for _, k := range keys {
		n, err := setBytes(sets[k])
		if err != nil {
			return nil, nil, fmt.Errorf("set %s: %w", k, err)
		}
		if size+n > MaxPolicyBytes*9/10 || len(in) == MaxPolicySets {
			continue
		}
		size += n
		in = append(in, k)
	}
	// What the API server would refuse the whole policy for is checked
	// on the policy built: the estimate's sets are dropped, last first,
	// until it fits. A subset of a policy this version applied before
	// always fits, so no set in use that the policy holds is dropped
	// (after an upgrade, whose generic rules may be larger, it may be).
	for {
		chosen := map[string]WrittenSet{}
		for _, k := range in {
			chosen[k] = sets[k]
		}
		p, err := WrittenPolicy(w.generic, chosen)
		if err != nil {
			return nil, nil, err
		}
		if err := admissible(p); err != nil && len(in) > 0 {
			w.log.WithError(err).WithField("set", in[len(in)-1]).Error("written policy: a set left out for what the API server would refuse")
			in = in[:len(in)-1]
			continue
		}
		if w.sets != nil {
			w.sets.WithLabelValues("held").Set(float64(len(in)))
			w.sets.WithLabelValues("left_out").Set(float64(len(keys) - len(in)))
		}
		if len(in) < len(keys) {
			w.log.WithFields(logrus.Fields{"sets": len(keys), "held": len(in), "max_bytes": MaxPolicyBytes, "max_sets": MaxPolicySets}).
				Error("written policy too large: the serviceaccounts of the sets left out are refused as not known (use webhook mode, or fewer distinct identities)")
		}
		slices.Sort(in)
		return in, p, nil
	}
}

// admissible says whether the API server would take p as to its size: at
// most MaxPolicyBytes as JSON, and each expression within
// maxExpressionCodePoints.
func admissible(p *admissionregv1.MutatingAdmissionPolicy) error {
	b, err := json.Marshal(p)
	if err != nil {
		return err
	}
	if len(b) > MaxPolicyBytes {
		return fmt.Errorf("mutatingadmissionpolicy %s: %d bytes as JSON, more than %d", p.Name, len(b), MaxPolicyBytes)
	}
	exprs := map[string]string{}
	for _, v := range p.Spec.Variables {
		exprs["variable "+v.Name] = v.Expression
	}
	for _, m := range p.Spec.MatchConditions {
		exprs["match condition "+m.Name] = m.Expression
	}
	for i, m := range p.Spec.Mutations {
		if m.JSONPatch != nil {
			exprs[fmt.Sprintf("mutation %d", i)] = m.JSONPatch.Expression
		}
	}
	for what, e := range exprs {
		if n := utf8.RuneCountInString(e); n > maxExpressionCodePoints {
			return fmt.Errorf("mutatingadmissionpolicy %s: %s has %d code points, more than %d", p.Name, what, n, maxExpressionCodePoints)
		}
	}
	return nil
}

// heldKeys are the keys of the sets p, a written policy, holds: those its
// variable listed names.
func heldKeys(p *unstructured.Unstructured) []string {
	vars, _, _ := unstructured.NestedSlice(p.Object, "spec", "variables")
	for _, v := range vars {
		if m, ok := v.(map[string]any); ok && m["name"] == "listed" {
			e, _ := m["expression"].(string)
			var keys []string
			for _, k := range setKeyLiteral.FindAllStringSubmatch(e, -1) {
				keys = append(keys, k[1])
			}
			slices.Sort(keys)
			return slices.Compact(keys)
		}
	}
	return nil
}

// setKeyLiteral is a set's key (WrittenSet.Key) as a literal.
var setKeyLiteral = regexp.MustCompile(`"(k[0-9a-f]{32})"`)

// begin starts a term as leader: what an earlier term kept may be out of
// date (another replica led meanwhile), so the sets in use are those the
// seeding gives, and the sets held are those of the policy in force, read
// back: it keeps them first, as if this replica had applied it.
func (w *written) begin(ctx context.Context) error {
	w.mu.Lock()
	defer w.mu.Unlock()
	w.byNS = map[string]map[string]WrittenSet{}
	w.records, w.layouts = map[string]string{}, map[string]recordsLayout{}
	w.lastUsed = map[string]retiredSet{}
	w.applied, w.considered, w.candidate, w.stale = nil, nil, nil, false
	u, err := w.dyn.Resource(mutatingPolicies).Get(ctx, WrittenPolicyName, metav1.GetOptions{})
	switch {
	case apierrors.IsNotFound(err):
		return nil
	case err != nil:
		return fmt.Errorf("get mutatingadmissionpolicy %s: %w", WrittenPolicyName, err)
	}
	w.applied = heldKeys(u)
	return nil
}

// use records the sets of namespace ns and applies the policy when the
// sets it holds change: before the records that name a new set.
func (w *written) use(ctx context.Context, ns string, sets map[string]WrittenSet) error {
	w.mu.Lock()
	defer w.mu.Unlock()
	// Most writes of a namespace name the sets it named before: nothing
	// to look at across the other namespaces then.
	if w.applied != nil && !w.stale && slices.Equal(slices.Sorted(maps.Keys(w.byNS[ns])), slices.Sorted(maps.Keys(sets))) {
		return nil
	}
	if len(sets) == 0 {
		delete(w.byNS, ns)
	} else {
		w.byNS[ns] = sets
	}
	err := w.apply(ctx)
	w.stale = err != nil
	// Records that name only sets the policy in force holds are safe to
	// write whether or not this apply went through: one namespace's
	// trouble does not hold up the others'.
	if err != nil && w.applied != nil && !slices.ContainsFunc(slices.Collect(maps.Keys(sets)), func(k string) bool { return k != emptySet && !slices.Contains(w.applied, k) }) {
		w.log.WithError(err).WithField("namespace", ns).Error("written policy not applied; the namespace's records name only sets it holds")
		return nil
	}
	return err
}

// apply writes the policy if the sets it holds changed.
func (w *written) apply(ctx context.Context) error {
	keys, p, err := w.chosen()
	if err != nil {
		return err
	}
	if p == nil {
		return nil
	}
	// Charged to the cluster's write budget, as IdentityParameters are:
	// etcd keeps every version of the policy until compaction.
	b, err := json.Marshal(p)
	if err != nil {
		return fmt.Errorf("mutatingadmissionpolicy %s: %w", p.Name, err)
	}
	if w.budget != nil {
		if err := w.budget.WaitN(ctx, min(len(b), w.budget.Burst())); err != nil {
			return fmt.Errorf("apply mutatingadmissionpolicy %s: %w", p.Name, err)
		}
	}
	if err := applyObject(ctx, w.dyn.Resource(mutatingPolicies), p, "MutatingAdmissionPolicy"); err != nil {
		return fmt.Errorf("apply mutatingadmissionpolicy %s: %w", p.Name, err)
	}
	w.applied, w.considered = keys, w.candidate
	if w.size != nil {
		w.size.Set(float64(len(b)))
	}
	w.log.WithFields(logrus.Fields{"policy": p.Name, "sets": len(keys), "bytes": len(b), "max_bytes": MaxPolicyBytes}).Info("written policy applied")
	return nil
}

// refresh applies the policy again if sets have outlived setGrace.
func (w *written) refresh(ctx context.Context) error {
	w.mu.Lock()
	defer w.mu.Unlock()
	err := w.apply(ctx)
	w.stale = err != nil
	return err
}

// bind points the binding at the written policy.
func (w *written) bind(ctx context.Context) error {
	w.mu.Lock()
	defer w.mu.Unlock()
	// Checked again now and then: `kubectl apply -k` of the overlay
	// points the binding back at the generic policy.
	if time.Since(w.bound) < bindingCheck {
		return nil
	}
	// A binding the operator applied keeps what it matches (their
	// namespaces, their opt-outs): only its policy changes, and its
	// parameters where they are not the shipped selector's (an older
	// binding that named them; replaced whole: a reference names one
	// object or selects them, not both). Without one, the shipped
	// binding.
	client := w.dyn.Resource(mutatingBindings)
	paramRef, err := runtime.DefaultUnstructuredConverter.ToUnstructured(w.binding.Spec.ParamRef)
	if err != nil {
		return err
	}
	current, err := client.Get(ctx, w.binding.Name, metav1.GetOptions{})
	switch {
	case err == nil:
		name, _, _ := unstructured.NestedString(current.Object, "spec", "policyName")
		ref, _, _ := unstructured.NestedMap(current.Object, "spec", "paramRef")
		if name == w.binding.Spec.PolicyName && reflect.DeepEqual(ref, paramRef) {
			w.bound = time.Now()
			return nil
		}
		_ = unstructured.SetNestedField(current.Object, w.binding.Spec.PolicyName, "spec", "policyName")
		_ = unstructured.SetNestedMap(current.Object, paramRef, "spec", "paramRef")
		if _, err := client.Update(ctx, current, metav1.UpdateOptions{FieldManager: ManagedBy}); err != nil {
			return fmt.Errorf("update mutatingadmissionpolicybinding %s: %w", w.binding.Name, err)
		}
	case apierrors.IsNotFound(err):
		if err := applyObject(ctx, client, w.binding, "MutatingAdmissionPolicyBinding"); err != nil {
			return fmt.Errorf("apply mutatingadmissionpolicybinding %s: %w", w.binding.Name, err)
		}
	default:
		return fmt.Errorf("get mutatingadmissionpolicybinding %s: %w", w.binding.Name, err)
	}
	w.bound = time.Now()
	w.log.WithField("binding", w.binding.Name).Info("policy mode now injects with the written policy")
	return nil
}

// recordsLayout is how a namespace's records are split: the series of
// objects ("" for the one object RecordsName, "a" or "b" for
// RecordsName-a1, -a2... or -b1...), the boundaries of their ranges, and
// the objects there are.
type recordsLayout struct {
	series     string
	boundaries []string
	objects    []string
	relayout   bool
}

// recordsObjectName matches the names of records objects.
var recordsObjectName = regexp.MustCompile(`^` + RecordsName + `(-[ab]([1-9]|1[0-6]))?$`)

// isRecordsObject is whether a ServiceAccount's name is a records
// object's.
func isRecordsObject(name string) bool { return recordsObjectName.MatchString(name) }

// recordsObjects are the names of a series of n objects.
func recordsObjects(series string, n int) []string {
	if series == "" {
		return []string{RecordsName}
	}
	out := make([]string, n)
	for i := range out {
		out[i] = fmt.Sprintf("%s-%s%d", RecordsName, series, i+1)
	}
	return out
}

// writeRecords writes namespace ns's records objects (none for nil) where
// they changed. Within its layout, each object keeps its range. A records
// object past MaxRecordBytes, or a namespace that would fit in half of
// one, is laid out again in the other series: its objects are all written
// before those of the old one are deleted, so that every name is in the
// range of an object at every moment (in two for a moment, which the
// policy's idempotence allows), never in none.
func (w *written) writeRecords(ctx context.Context, ns string, recs *Records) error {
	client := w.dyn.Resource(serviceAccountsResource).Namespace(ns)
	w.mu.Lock()
	lay, known := w.layouts[ns]
	w.mu.Unlock()
	if !known {
		var err error
		if lay, err = currentLayout(ctx, client); err != nil {
			return fmt.Errorf("list serviceaccounts %s/%s*: %w", ns, RecordsName, err)
		}
	}
	var want recordsLayout
	var shards []map[string]string
	if recs != nil {
		want = recordsLayout{series: lay.series, boundaries: lay.boundaries}
		var ok bool
		shards, ok = recs.Shards(want.boundaries)
		if !ok || lay.relayout || len(want.boundaries) > 0 && recs.bytes() <= MaxRecordBytes/2 {
			want.boundaries = recs.Layout()
			switch {
			case len(want.boundaries) == 0:
				want.series = ""
			case lay.series == "a":
				want.series = "b"
			default:
				want.series = "a"
			}
			shards, _ = recs.Shards(want.boundaries)
		}
		want.objects = recordsObjects(want.series, len(shards))
		for i, name := range want.objects {
			if err := w.writeRecordsObject(ctx, client, ns, name, shards[i]); err != nil {
				if want.series != lay.series {
					w.relayoutFailed(ctx, client, ns, lay, recs, want.objects[:i+1])
				}
				return err
			}
		}
	}
	for _, name := range lay.objects {
		if slices.Contains(want.objects, name) {
			continue
		}
		if err := client.Delete(ctx, name, metav1.DeleteOptions{}); err != nil && !apierrors.IsNotFound(err) {
			return fmt.Errorf("delete serviceaccount %s/%s: %w", ns, name, err)
		}
		w.mu.Lock()
		delete(w.records, ns+"/"+name)
		w.mu.Unlock()
	}
	w.mu.Lock()
	if recs == nil {
		delete(w.layouts, ns)
	} else {
		w.layouts[ns] = want
	}
	w.mu.Unlock()
	return nil
}

// relayoutFailed keeps the layout that covers every name after a new one
// could not be written whole (a quota on ServiceAccounts, a failing API
// server): the objects it wrote are deleted after the next write, which
// lays the namespace out again; meanwhile the old objects whose records
// still fit are brought up to date in place, their ranges unchanged.
func (w *written) relayoutFailed(ctx context.Context, client dynamic.ResourceInterface, ns string, lay recordsLayout, recs *Records, written []string) {
	old, _ := recs.Shards(lay.boundaries)
	if names := recordsObjects(lay.series, len(old)); len(lay.objects) > 0 {
		for i, name := range names {
			if shardBytes(old[i]) <= MaxRecordBytes && slices.Contains(lay.objects, name) {
				_ = w.writeRecordsObject(ctx, client, ns, name, old[i])
			}
		}
	}
	for _, name := range written {
		if !slices.Contains(lay.objects, name) {
			lay.objects = append(lay.objects, name)
		}
	}
	lay.relayout = true
	w.mu.Lock()
	w.layouts[ns] = lay
	w.mu.Unlock()
}

// currentLayout reads the records objects of a namespace, for a
// namespace sync has not written since it started. Objects of more than
// one series are a layout interrupted: the layout is the series whose
// ranges cover every name, the next write lays the namespace out again
// in another, and deletes the rest.
func currentLayout(ctx context.Context, client dynamic.ResourceInterface) (recordsLayout, error) {
	list, err := client.List(ctx, metav1.ListOptions{LabelSelector: ManagedByLabel + "=" + ManagedBy})
	if err != nil {
		return recordsLayout{}, err
	}
	type ranged struct{ from, to string }
	bySeries := map[string][]ranged{}
	var lay recordsLayout
	for _, o := range list.Items {
		name := o.GetName()
		if name != RecordsName && !strings.HasPrefix(name, RecordsName+"-") {
			continue
		}
		lay.objects = append(lay.objects, name)
		s := ""
		if name != RecordsName {
			s = strings.TrimRight(strings.TrimPrefix(name, RecordsName+"-"), "0123456789")
		}
		a := o.GetAnnotations()
		from, hasFrom := a[FromRecordKey]
		to, hasTo := a[ToRecordKey]
		if !hasFrom {
			from = "\x00" // the first range: from the first name
		}
		if !hasTo {
			to = "" // the last range: past the last name
		}
		bySeries[s] = append(bySeries[s], ranged{from, to})
	}
	lay.relayout = len(bySeries) > 1
	for s, rs := range bySeries {
		slices.SortFunc(rs, func(a, b ranged) int { return strings.Compare(a.from, b.from) })
		covers := rs[0].from == "\x00" && rs[len(rs)-1].to == ""
		for i := 1; i < len(rs); i++ {
			covers = covers && rs[i-1].to == rs[i].from
		}
		if !covers {
			continue
		}
		lay.series, lay.boundaries = s, nil
		for _, r := range rs[1:] {
			lay.boundaries = append(lay.boundaries, r.from)
		}
		return lay, nil
	}
	// No series covers every name (none yet, or objects deleted): laid
	// out again.
	lay.relayout = lay.relayout || len(lay.objects) > 0
	return lay, nil
}

// writeRecordsObject writes one records object unless it is as last
// written. It is replaced whole (create or update), not applied:
// annotations that another field manager wrote (a forgery from before the
// writers policy, a `kubectl annotate`) would survive an apply.
func (w *written) writeRecordsObject(ctx context.Context, client dynamic.ResourceInterface, ns, name string, annotations map[string]string) error {
	b, _ := json.Marshal(annotations)
	w.mu.Lock()
	last, ok := w.records[ns+"/"+name]
	w.mu.Unlock()
	if ok && last == string(b) {
		return nil
	}
	if w.budget != nil {
		if err := w.budget.WaitN(ctx, min(len(b), w.budget.Burst())); err != nil {
			return fmt.Errorf("write serviceaccount %s/%s: %w", ns, name, err)
		}
	}
	sa := &corev1.ServiceAccount{
		TypeMeta: metav1.TypeMeta{APIVersion: "v1", Kind: "ServiceAccount"},
		ObjectMeta: metav1.ObjectMeta{Name: name, Namespace: ns, Annotations: annotations,
			Labels: map[string]string{ManagedByLabel: ManagedBy}},
		// Pods never need this ServiceAccount's token.
		AutomountServiceAccountToken: new(bool),
	}
	m, err := runtime.DefaultUnstructuredConverter.ToUnstructured(sa)
	if err != nil {
		return err
	}
	u := &unstructured.Unstructured{Object: m}
	unstructured.RemoveNestedField(u.Object, "metadata", "creationTimestamp")
	current, err := client.Get(ctx, name, metav1.GetOptions{})
	switch {
	case apierrors.IsNotFound(err):
		_, err = client.Create(ctx, u, metav1.CreateOptions{FieldManager: ManagedBy})
	case err == nil:
		u.SetResourceVersion(current.GetResourceVersion())
		_, err = client.Update(ctx, u, metav1.UpdateOptions{FieldManager: ManagedBy})
	}
	if err != nil {
		return fmt.Errorf("write serviceaccount %s/%s: %w", ns, name, err)
	}
	w.mu.Lock()
	w.records[ns+"/"+name] = string(b)
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
