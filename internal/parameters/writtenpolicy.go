package parameters

import (
	"crypto/sha256"
	"encoding/hex"
	"encoding/json"
	"fmt"
	"maps"
	"regexp"
	"slices"
	"strings"

	admissionregv1 "k8s.io/api/admissionregistration/v1"
	"k8s.io/apimachinery/pkg/util/validation"

	"github.com/pod-identity/injector/pkg/parameters/v1alpha1"
)

// RecordsName is the ServiceAccount that holds, in each namespace, the
// records the written policy reads: an object of a built-in kind, which
// the API server hands to a policy as it is, where it encodes a custom
// resource whole at every evaluation (docs/performance.md).
const RecordsName = "pod-identity-parameters"

// WrittenPolicyName is the mutating admission policy (and its binding)
// that sync writes in written mode.
const WrittenPolicyName = "pod-identity-injector-written"

// DefaultRecordKey is the records' annotation holding the namespace's
// default (what a ServiceAccount with nothing of its own gets).
const DefaultRecordKey = "pod-identity.io/default"

// EnforcementRecordKey is the records' annotation holding the namespace's
// API token rule: 'D' where it refuses, 'W' where it warns.
const EnforcementRecordKey = "pod-identity.io/enforcement"

// MaxRecordBytes bounds the records of one records object: the API
// server refuses an object whose annotations (keys and values) total more
// than 256 KiB (apimachinery's TotalAnnotationSizeLimitB); the rest is
// room for the namespace's own keys and the object's range.
const MaxRecordBytes = 248 << 10

// MaxRecordShards bounds the records objects of one namespace; a namespace
// laid out again fills them to three quarters (shardFill), so about
// 40,000 ServiceAccounts fit.
const MaxRecordShards = 16

// shardFill is how full a namespace laid out again fills its records
// objects: room for growth before it is laid out again.
const shardFill = MaxRecordBytes * 3 / 4

// Keys of a records object's range of ServiceAccount names: from its
// FromRecordKey (inclusive; none: the first name) to its ToRecordKey
// (exclusive; none: past the last). The written policy acts on a pod
// with the one object whose range holds its ServiceAccount's name.
const (
	FromRecordKey = "pod-identity.io/from"
	ToRecordKey   = "pod-identity.io/to"
)

// setBytes is what the rules of s add to the written policy as JSON, the
// form it is sent and measured in (encoding/json writes <, > and & as
// six bytes each, and a quote or backslash of a literal as two), with
// room for their names' prefix and what dispatches to them.
func setBytes(s WrittenSet) (int, error) {
	rules, err := WrittenRules(s.Entries, s.Own)
	if err != nil {
		return 0, err
	}
	b, err := json.Marshal(rules)
	if err != nil {
		return 0, err
	}
	return len(b) + 64*len(rules), nil
}

// emptySet is the key of the set with no entries.
const emptySet = ""

// WrittenSet is the entries of a ServiceAccount (or of a namespace's
// default) as WrittenRules takes them.
type WrittenSet struct {
	// Entries are its own injections, then its templates.
	Entries []v1alpha1.Injection
	// Own is the number of its own injections.
	Own int
}

// Key is the set's key in the written policy: "k" and the first 32 hex
// digits (128 bits: no set can be made to collide with another) of the
// SHA-256 of its JSON, the same in every namespace and every
// run; empty for a set with no entries.
func (s WrittenSet) Key() string {
	if len(s.Entries) == 0 {
		return emptySet
	}
	b, err := json.Marshal(s)
	if err != nil {
		panic(err) // the parameters' own types always encode
	}
	sum := sha256.Sum256(b)
	return "k" + hex.EncodeToString(sum[:16])
}

// Records is what the written policy reads for one namespace.
type Records struct {
	// Annotations are those of the RecordsName ServiceAccount: one per
	// ServiceAccount, "set|flags|value|value...", and the namespace's
	// default and API token rule.
	Annotations map[string]string
	// Sets are the sets the records name, by key.
	Sets map[string]WrittenSet
	// Left are the listed ServiceAccounts not recorded: a name that is
	// not an annotation key (over 63 characters), or past what
	// MaxRecordShards objects hold.
	// Their pods are refused as not known.
	Left []string
}

// NamespaceRecords is the records of a namespace whose parameters are spec.
// A ServiceAccount's set is its own injections and then its templates,
// as the generic policy reads them; its flags hold 'd', 'w' and 'a' where
// its parameters refuse it, warn about it, or have findings about its
// Kubernetes API token.
func NamespaceRecords(spec v1alpha1.IdentityParametersSpec) (Records, error) {
	r := Records{Annotations: map[string]string{}, Sets: map[string]WrittenSet{}}
	size := 0
	setOf := map[string]string{} // ServiceAccount -> its set's key
	put := func(key, value string) bool {
		if size+len(key)+len(value) > MaxRecordShards*MaxRecordBytes {
			return false
		}
		size += len(key) + len(value)
		r.Annotations[key] = value
		return true
	}
	if d := spec.Default; d != nil {
		set := WrittenSet{Entries: ruled(d.Injections), Own: len(d.Injections)}
		key := set.Key()
		r.Sets[key] = set
		put(DefaultRecordKey, record(key, d))
	}
	if e := spec.Enforcement; e != nil && e.APIToken != nil && e.APIToken.Pod != nil {
		rule := ""
		if len(e.APIToken.Pod.Denied) > 0 {
			rule += "D"
		}
		if len(e.APIToken.Pod.Warnings) > 0 {
			rule += "W"
		}
		if rule != "" {
			put(EnforcementRecordKey, rule)
		}
	}
	for _, name := range slices.Sorted(maps.Keys(spec.ServiceAccounts)) {
		p := spec.ServiceAccounts[name]
		entries := slices.Clone(p.Injections)
		for _, i := range p.Entries {
			if int(i) < 0 || int(i) >= len(spec.Templates) {
				return Records{}, fmt.Errorf("serviceaccount %s: entry %d past the %d templates", name, i, len(spec.Templates))
			}
			entries = append(entries, spec.Templates[i])
		}
		if len(entries) > MaxWrittenEntries {
			r.Left = append(r.Left, name)
			continue
		}
		set := WrittenSet{Entries: ruled(entries), Own: len(p.Injections)}
		key := set.Key()
		rec := record(key, &p)
		// A record that would not fit in a records object with the
		// namespace's own keys and its range is left out.
		if len(validation.IsQualifiedName(name)) > 0 || len(name)+len(rec) > MaxRecordBytes-r.sharedBytes() || !put(name, rec) {
			r.Left = append(r.Left, name)
			continue
		}
		r.Sets[key] = set
		setOf[name] = key
	}
	// Within MaxRecordShards objects: the names past the last one's
	// range are left out.
	if b := r.Layout(); len(b) >= MaxRecordShards {
		for _, name := range r.names() {
			if name >= b[MaxRecordShards-1] {
				delete(r.Annotations, name)
				delete(setOf, name)
				r.Left = append(r.Left, name)
			}
		}
	}
	// Within MaxNamespaceSets: the sets most ServiceAccounts share (the
	// default's first, and the empty set aside) stay.
	uses := map[string]int{}
	for _, key := range setOf {
		uses[key]++
	}
	if d, ok := r.Annotations[DefaultRecordKey]; ok {
		uses[strings.SplitN(d, "|", 2)[0]] = len(spec.ServiceAccounts) + 1
	}
	maps.DeleteFunc(r.Sets, func(k string, _ WrittenSet) bool { return uses[k] == 0 })
	keys := slices.Collect(maps.Keys(r.Sets))
	keys = slices.DeleteFunc(keys, func(k string) bool { return k == emptySet })
	slices.SortFunc(keys, func(a, b string) int {
		if uses[a] != uses[b] {
			return uses[b] - uses[a]
		}
		return strings.Compare(a, b)
	})
	// And within MaxSetBytes and MaxNamespaceSetBytes of rules: a set
	// that does not fit is left out, and smaller ones after it may still
	// fit.
	kept, size := 0, 0
	for _, key := range keys {
		n, err := setBytes(r.Sets[key])
		if err != nil {
			return Records{}, fmt.Errorf("set %s: %w", key, err)
		}
		if kept == MaxNamespaceSets || n > MaxSetBytes || size+n > MaxNamespaceSetBytes {
			delete(r.Sets, key)
			continue
		}
		kept, size = kept+1, size+n
	}
	if kept == len(keys) {
		return r, nil
	}
	for _, name := range slices.Sorted(maps.Keys(setOf)) {
		if _, ok := r.Sets[setOf[name]]; !ok {
			delete(r.Annotations, name)
			r.Left = append(r.Left, name)
		}
	}
	slices.Sort(r.Left)
	return r, nil
}

// ruled is entries as the written rules read them: whether an entry
// refuses or warns, not what it says (the validating policies say it,
// from the IdentityParameters), and not what gave the identity. Messages
// name the namespace: without them, namespaces share their sets.
func ruled(entries []v1alpha1.Injection) []v1alpha1.Injection {
	out := make([]v1alpha1.Injection, len(entries))
	for i, e := range entries {
		e.Source = ""
		if len(e.Denied) > 0 {
			e.Denied = []string{"d"}
		}
		if len(e.Warnings) > 0 {
			e.Warnings = []string{"w"}
		}
		out[i] = e
	}
	return out
}

// Layout is where a namespace's records split into objects: the first
// ServiceAccount name of each object after the first, each filled to
// shardFill; none when they fit in one object.
func (r Records) Layout() []string {
	var out []string
	shared, size := r.sharedBytes(), 0
	if r.bytes() <= MaxRecordBytes {
		return nil
	}
	for _, name := range r.names() {
		n := len(name) + len(r.Annotations[name])
		if size > 0 && shared+size+n > shardFill {
			out = append(out, name)
			size = 0
		}
		size += n
	}
	return out
}

// Shards are the annotations of each records object for boundaries (from
// Layout): the namespace's own keys, the object's range, and the records
// of the ServiceAccounts in it; ok is false when one is past
// MaxRecordBytes (the namespace is to be laid out again).
func (r Records) Shards(boundaries []string) (shards []map[string]string, ok bool) {
	shards = make([]map[string]string, len(boundaries)+1)
	for i := range shards {
		shards[i] = map[string]string{}
		for _, k := range []string{DefaultRecordKey, EnforcementRecordKey} {
			if v, found := r.Annotations[k]; found {
				shards[i][k] = v
			}
		}
		if i > 0 {
			shards[i][FromRecordKey] = boundaries[i-1]
		}
		if i < len(boundaries) {
			shards[i][ToRecordKey] = boundaries[i]
		}
	}
	for _, name := range r.names() {
		i, _ := slices.BinarySearch(boundaries, name)
		if i < len(boundaries) && boundaries[i] == name {
			i++
		}
		shards[i][name] = r.Annotations[name]
	}
	ok = true
	for _, sh := range shards {
		ok = ok && shardBytes(sh) <= MaxRecordBytes
	}
	return shards, ok
}

// shardBytes is the size of a records object's annotations, as the API
// server counts it.
func shardBytes(annotations map[string]string) int {
	n := 0
	for k, v := range annotations {
		n += len(k) + len(v)
	}
	return n
}

// names are the recorded ServiceAccounts, in order.
func (r Records) names() []string {
	var out []string
	for k := range r.Annotations {
		if k != DefaultRecordKey && k != EnforcementRecordKey {
			out = append(out, k)
		}
	}
	slices.Sort(out)
	return out
}

func (r Records) sharedBytes() int {
	// The range: two names, each an annotation key of at most 63 characters.
	n := len(FromRecordKey) + len(ToRecordKey) + 2*63
	for _, k := range []string{DefaultRecordKey, EnforcementRecordKey} {
		if v, ok := r.Annotations[k]; ok {
			n += len(k) + len(v)
		}
	}
	return n
}

func (r Records) bytes() int { return shardBytes(r.Annotations) }

// record is a ServiceAccount's record: its set's key, its flags and its
// values, each with '%' and '|' escaped.
func record(key string, p *v1alpha1.ServiceAccountParameters) string {
	flags := ""
	if len(p.Denied) > 0 {
		flags += "d"
	}
	if len(p.Warnings) > 0 {
		flags += "w"
	}
	if p.APIToken != nil {
		flags += "a"
	}
	fields := []string{key, flags}
	for _, v := range p.Values {
		fields = append(fields, strings.ReplaceAll(strings.ReplaceAll(v, "%", "%25"), "|", "%7C"))
	}
	return strings.Join(fields, "|")
}

// dispatched are the variables of WrittenRules that the written policy
// picks by the pod's set; the generic policy's newAnnotations, newLabels
// and mutation read them.
var dispatched = []string{"fast", "fastMounts", "fastEnv", "additions", "newVolumes", "addedAnnotations", "addedLabels", "mayWarn", "mayDeny"}

// shared are the variables of WrittenRules that do not depend on the set.
var shared = []string{"initContainers", "containers"}

// variableRef matches a reference to a variable.
var variableRef = regexp.MustCompile(`\bvariables\.([A-Za-z_][A-Za-z0-9_]*)\b`)

// renamed is expr with its references to the variables in names given
// prefix. String literals are left as they are: they hold text from
// ServiceAccounts (an audience, a project), which may spell a reference.
// The product does not link a CEL parser, and only where a literal starts
// and ends matters here: CEL's quotes (single or double, alone or three
// in a row), its raw prefix (r or R: no escapes), and otherwise a
// backslash escaping the next character.
func renamed(expr string, names map[string]bool, prefix string) string {
	rename := func(code string) string {
		return variableRef.ReplaceAllStringFunc(code, func(ref string) string {
			if name := ref[len("variables."):]; names[name] {
				return "variables." + prefix + name
			}
			return ref
		})
	}
	var out strings.Builder
	code := 0 // where the code not yet written starts
	for i := 0; i < len(expr); {
		c := expr[i]
		if c != '\'' && c != '"' {
			i++
			continue
		}
		raw := i > 0 && (expr[i-1] == 'r' || expr[i-1] == 'R') && (i < 2 || !isIdentByte(expr[i-2]))
		quote := string(c)
		if strings.HasPrefix(expr[i:], strings.Repeat(quote, 3)) {
			quote = strings.Repeat(quote, 3)
		}
		out.WriteString(rename(expr[code:i]))
		end := i + len(quote)
		for end < len(expr) && !strings.HasPrefix(expr[end:], quote) {
			if expr[end] == '\\' && !raw {
				end++
			}
			end++
		}
		end = min(end+len(quote), len(expr))
		out.WriteString(expr[i:end])
		i, code = end, end
	}
	out.WriteString(rename(expr[code:]))
	return out.String()
}

// isIdentByte says whether b may be part of a CEL identifier.
func isIdentByte(b byte) bool {
	return b == '_' || b >= 'a' && b <= 'z' || b >= 'A' && b <= 'Z' || b >= '0' && b <= '9'
}

// WrittenPolicy is the mutating admission policy for sets: generic (the
// shipped policy, deploy/policy/mutatingadmissionpolicy.yaml) with the
// rules WrittenRules writes for each set in place of its generic ones,
// reading a namespace's records (RecordsName) in place of its
// IdentityParameters. It picks the rules of the set the pod's
// ServiceAccount's record names, or the namespace default's for a
// ServiceAccount with nothing of its own; a ServiceAccount not recorded,
// or whose set the policy does not hold yet (it is written before the
// records that name a new set, but the API server may see them in either
// order), is not known: the pod is marked, and pod-identity-deny refuses
// it.
func WrittenPolicy(generic *admissionregv1.MutatingAdmissionPolicy, sets map[string]WrittenSet) (*admissionregv1.MutatingAdmissionPolicy, error) {
	sets = maps.Clone(sets)
	if sets == nil {
		sets = map[string]WrittenSet{}
	}
	if _, ok := sets[emptySet]; !ok {
		sets[emptySet] = WrittenSet{}
	}
	keys := slices.Sorted(maps.Keys(sets))
	genericVars := map[string]string{}
	for _, v := range generic.Spec.Variables {
		genericVars[v.Name] = v.Expression
	}
	for _, name := range []string{"serviceAccount", "labels", "annotations", "windows", "newAnnotations", "newLabels"} {
		if genericVars[name] == "" {
			return nil, fmt.Errorf("mutatingadmissionpolicy %s has no variable %s", generic.Name, name)
		}
	}
	if len(generic.Spec.MatchConditions) == 0 || generic.Spec.MatchConditions[0].Name != "not-a-mirror-pod" {
		return nil, fmt.Errorf("mutatingadmissionpolicy %s does not start with the match condition not-a-mirror-pod", generic.Name)
	}
	typed := func(name string) admissionregv1.Variable {
		return admissionregv1.Variable{Name: name, Expression: strings.ReplaceAll(genericVars[name], "string(params.metadata.generation)", "params.metadata.resourceVersion")}
	}
	// The record of the pod's ServiceAccount, or of the default for one
	// with nothing of its own (or not recorded): set, flags, values.
	const records = "params.metadata.?annotations.orValue({})"
	known := stringList(keys)
	vars := []admissionregv1.Variable{typed("serviceAccount"), typed("labels"), typed("annotations"), typed("windows"),
		{Name: "recorded", Expression: "variables.serviceAccount in " + records},
		{Name: "fields", Expression: "variables.recorded ? params.metadata.annotations[variables.serviceAccount].split('|') : ['', '']"},
		{Name: "chosen", Expression: "variables.fields[0] != '' || variables.fields[1] != '' ? variables.fields : " +
			records + "[?" + q(DefaultRecordKey) + "].orValue('|').split('|')"},
		{Name: "set", Expression: "variables.chosen[0]"},
		{Name: "listed", Expression: "variables.recorded && variables.set in " + known},
		{Name: "values", Expression: "lists.range(size(variables.chosen) - 2).map(i, variables.chosen[i + 2].replace('%7C', '|').replace('%25', '%'))"},
		{Name: "own", Expression: "variables.chosen[1]"},
		{Name: "enforcement", Expression: records + "[?" + q(EnforcementRecordKey) + "].orValue('')"},
	}
	sharedDone := false
	perSet := make([]map[string]bool, len(keys))
	for j, key := range keys {
		rules, err := WrittenRules(sets[key].Entries, sets[key].Own)
		if err != nil {
			return nil, fmt.Errorf("set %q: %w", key, err)
		}
		names := map[string]bool{}
		for _, v := range rules {
			if !slices.Contains(shared, v.Name) {
				names[v.Name] = true
			}
		}
		prefix := fmt.Sprintf("s%d_", j)
		for _, v := range rules {
			if slices.Contains(shared, v.Name) {
				if !sharedDone {
					vars = append(vars, v)
				}
				continue
			}
			v.Expression = renamed(v.Expression, names, prefix)
			v.Name = prefix + v.Name
			vars = append(vars, v)
		}
		sharedDone = true
		perSet[j] = names
	}
	empty := slices.Index(keys, emptySet)
	for _, name := range dispatched {
		expr := fmt.Sprintf("variables.s%d_%s", empty, name)
		for j := len(keys) - 1; j >= 0; j-- {
			if j != empty {
				expr = fmt.Sprintf("variables.set == %s ? variables.s%d_%s : %s", q(keys[j]), j, name, expr)
			}
		}
		vars = append(vars, admissionregv1.Variable{Name: name, Expression: expr})
	}
	// For a fast pod (see WrittenRules) every container gets the same
	// additions, so the mark and the patch read the pod's containers
	// themselves, not the generic policy's per-container variables.
	newAnnotations := typed("newAnnotations")
	newAnnotations.Expression = "variables.fast ? " + quickMark + " : " + newAnnotations.Expression
	vars = append(vars, newAnnotations, typed("newLabels"))

	// The match conditions, which cannot read variables: the generic
	// policy's, on the records.
	const mark = "'" + v1alpha1.PolicyCheckedContainersAnnotation + "'"
	const notKnown = "'pod-identity.io/serviceaccount-not-known'"
	const podAnnotations = "object.metadata.?annotations.orValue({})"
	chosenKey := "(f[0] != '' || f[1] != '' ? f[0] : " + records + "[?" + q(DefaultRecordKey) + "].orValue('|').split('|')[0])"
	volumes := map[string]any{}
	mayAct := "d[0] != ''"
	for j := len(keys) - 1; j >= 0; j-- {
		var names []any
		var acts []string
		for _, e := range sets[keys[j]].Entries {
			for _, v := range e.Volumes {
				names = append(names, v.Name)
			}
			acts = append(acts, defaultMayAct(&e))
		}
		volumes[keys[j]] = names
		mayAct = fmt.Sprintf("d[0] == %s ? %s : %s", q(keys[j]), or(acts), mayAct)
	}
	counts := "c.name + ':' + string(size(c.?env.orValue([]))) + ':' + string(size(c.?volumeMounts.orValue([])))"
	serviceAccount := genericVars["serviceAccount"]
	p := generic.DeepCopy()
	p.Name = WrittenPolicyName
	p.Spec.Variables = vars
	if len(p.Spec.Mutations) != 1 || p.Spec.Mutations[0].JSONPatch == nil {
		return nil, fmt.Errorf("mutatingadmissionpolicy %s does not have one JSON patch mutation", generic.Name)
	}
	patch := p.Spec.Mutations[0].JSONPatch.Expression
	at := strings.Index(patch, containersPatch)
	if at < 0 {
		return nil, fmt.Errorf("mutatingadmissionpolicy %s: its mutation does not patch containers with %q", generic.Name, containersPatch)
	}
	p.Spec.Mutations[0].JSONPatch.Expression = patch[:at] + "(variables.fast ? " + quickContainersPatch + " : " + patch[at:] + ")"
	p.Spec.ParamKind = &admissionregv1.ParamKind{APIVersion: "v1", Kind: "ServiceAccount"}
	p.Spec.MatchConditions = []admissionregv1.MatchCondition{
		generic.Spec.MatchConditions[0],
		// Of the namespace's records objects, the one whose range holds
		// the name acts (see Records.Shards).
		{Name: "in-range", Expression: "[" + serviceAccount + "].all(n, [" + records + "].all(a, " +
			"(!(" + q(FromRecordKey) + " in a) || n >= a[" + q(FromRecordKey) + "]) && (!(" + q(ToRecordKey) + " in a) || n < a[" + q(ToRecordKey) + "])))"},
		{Name: "not-checked-yet", Expression: "!(" + mark + " in " + podAnnotations + ") || [" + serviceAccount + "].all(n, " +
			"object.metadata.annotations[" + mark + "] != " +
			"object.spec.?initContainers.orValue([]).map(c, " + counts + ").join(',') + '|' + object.spec.containers.map(c, " + counts + ").join(',') + " +
			"';' + n + ';' + params.metadata.uid + ';' + params.metadata.resourceVersion + ';' + string(size(object.metadata.?labels.orValue({}))) + ';' + string(size(object.metadata.?annotations.orValue({}))) || " +
			"!(n in " + records + ") || " + notKnown + " in " + podAnnotations + " || " +
			"[params.metadata.annotations[n].split('|')].all(f, [" + chosenKey + "].all(k, !(k in " + known + ") || " +
			"!object.spec.?volumes.orValue([]).exists(v, v.name in " + literal(volumes) + "[k]))))"},
		{Name: "may-act", Expression: notKnown + " in " + podAnnotations + " || [" + serviceAccount + "].all(n, " +
			"!(n in " + records + ") || [params.metadata.annotations[n].split('|')].all(f, f[0] != '' || f[1] != '' || " +
			"[" + records + "[?" + q(DefaultRecordKey) + "].orValue('|').split('|')].all(d, d[1] != '' || (" + mayAct + "))))"},
	}
	return p, nil
}

// containersPatch begins the generic policy's patch of the containers,
// which ends its mutation.
const containersPatch = "['initContainers', 'containers'].map(l,"

// quickCounts is what the mark says of container c of a fast pod: its
// name, its variables and its mounts, with those it gets.
const quickCounts = "c.name + ':' + string(size(c.?env.orValue([])) + size(variables.fastEnv)) + ':' + " +
	"string(size(c.?volumeMounts.orValue([])) + size(variables.fastMounts))"

// quickMark is the generic policy's newAnnotations for a fast pod.
const quickMark = "[object.spec.?initContainers.orValue([]).map(c, " + quickCounts + ").join(',') + '|' + " +
	"object.spec.containers.map(c, " + quickCounts + ").join(',') + " +
	"';' + variables.serviceAccount + ';' + params.metadata.uid + ';' + params.metadata.resourceVersion + " +
	"';' + string(size(variables.labels) + size(variables.addedLabels) + ('" + v1alpha1.PolicyChecksLabel + "' in variables.labels ? 0 : 1)) + " +
	"';' + string(size(variables.annotations) + size(variables.addedAnnotations) + ('" + v1alpha1.PolicyCheckedContainersAnnotation + "' in variables.annotations ? 0 : 1))]" +
	".map(seen, variables.annotations[?'" + v1alpha1.PolicyCheckedContainersAnnotation + "'].orValue('') == seen ? [] : " +
	"[[dyn('" + v1alpha1.PolicyCheckedContainersAnnotation + "'), dyn(seen)]])[0] + variables.addedAnnotations"

// quickContainerPatch is the patch of container c, at index i of list l,
// of a fast pod: the mounts ms and the variables it gets.
func quickContainerPatch(l string) string {
	at := "'/spec/" + l + "/' + string(i)"
	return "(size(ms) == 0 ? [] : has(c.volumeMounts) ? " +
		"ms.map(m, JSONPatch{op: 'add', path: " + at + " + '/volumeMounts/-', value: m}) : " +
		"[JSONPatch{op: 'add', path: " + at + " + '/volumeMounts', value: ms}]) + " +
		"(size(variables.fastEnv) == 0 ? [] : has(c.env) ? " +
		"variables.fastEnv.map(v, JSONPatch{op: 'add', path: " + at + " + '/env/-', value: v}) : " +
		"[JSONPatch{op: 'add', path: " + at + " + '/env', value: variables.fastEnv}])"
}

// quickContainersPatch is the patch of the containers of a fast pod.
var quickContainersPatch = "(size(variables.fastMounts) + size(variables.fastEnv) == 0 ? [] : " +
	"[variables.fastMounts.map(m, Object.spec.containers.volumeMounts{name: m.volumeName, mountPath: m.mountPath, readOnly: !m.?writable.orValue(false)})].map(ms, " +
	"object.spec.?initContainers.orValue([]).transformList(i, c, " + quickContainerPatch("initContainers") + ").flatten() + " +
	"object.spec.containers.transformList(i, c, " + quickContainerPatch("containers") + ").flatten())[0])"

// defaultMayAct is whether the generic policy's may-act condition holds
// for a pod of a ServiceAccount with nothing of its own, whose default
// has entry e: e refuses, reads a token expiration the pod sets, or its
// pod labels that must be present are.
func defaultMayAct(e *v1alpha1.Injection) string {
	terms := []string{}
	if len(e.Denied) > 0 {
		terms = append(terms, "true")
	}
	if x := e.Expiration; x != nil && !x.WarnInvalid {
		terms = append(terms, q(x.Annotation)+" in object.metadata.?annotations.orValue({})")
	}
	var present []string
	for _, r := range e.PodLabels {
		if r.Operator == "In" || r.Operator == "Exists" {
			present = append(present, q(r.Key)+" in object.metadata.?labels.orValue({})")
		}
	}
	terms = append(terms, and(present))
	return or(terms)
}
