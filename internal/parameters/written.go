package parameters

import (
	"encoding/json"
	"fmt"
	"maps"
	"regexp"
	"slices"
	"strconv"
	"strings"

	admissionregv1 "k8s.io/api/admissionregistration/v1"

	"github.com/pod-identity/injector/pkg/parameters/v1alpha1"
)

// MaxWrittenEntries bounds the entries WrittenRules writes rules for: a
// ServiceAccount's own injections and entries together (the CRD's
// maxItems on each, 32).
const MaxWrittenEntries = 64

// WrittenRules writes the mutating admission policy's rules for one set of
// entries (a ServiceAccount's, in order: its own injections, the first
// own entries, whose texts are written as they are, since the generic
// policy puts values back into templates only; then its templates) with
// their constants in place: what the generic policy
// (deploy/policy/mutatingadmissionpolicy.yaml) works out by reading the
// entries from its parameters, for a policy that knows them. The
// variables it returns go after the generic policy's serviceAccount,
// labels, annotations and windows, and after these, which the caller
// defines from wherever it keeps them:
//   - values: the ServiceAccount's values, a list of strings ("{value:N}"
//     in an entry stands for values[N]);
//   - listed: whether the parameters list the ServiceAccount;
//   - own: a string holding 'd', 'w' or 'a' where the ServiceAccount's
//     parameters refuse it, warn about it or have findings about its
//     Kubernetes API token;
//   - enforcement: a string holding 'D' or 'W' where the namespace's API
//     token rule refuses or warns.
//
// They end with mayDeny. Among them, fast says the pod touches none of
// the entries' names (see writer.fast), and fastMounts and fastEnv are
// what each of its containers then gets; WrittenPolicy's newAnnotations
// and mutation read them, and otherwise are the generic policy's. Held to the generic
// policy by test/celbench (policy_test.go, random_test.go), through
// WrittenPolicy.
func WrittenRules(entries []v1alpha1.Injection, own int) ([]admissionregv1.Variable, error) {
	if len(entries) > MaxWrittenEntries {
		return nil, fmt.Errorf("%d entries, at most %d", len(entries), MaxWrittenEntries)
	}
	if own < 0 || own > len(entries) {
		return nil, fmt.Errorf("%d entries of its own among %d", own, len(entries))
	}
	w := &writer{own: own}
	for i := range entries {
		w.entry(i, &entries[i])
	}
	for i := range entries {
		w.add(fmt.Sprintf("inj%d", i), w.injects(i, entries))
	}
	w.containers()
	for i := range entries {
		w.targets(i, &entries[i])
	}
	w.lists(entries)
	w.fast(entries)
	w.additions(entries)
	w.newVolumes(entries)
	w.added(entries)
	w.mayWarn(entries)
	w.mayDeny(entries)
	return w.vars, nil
}

type writer struct {
	vars []admissionregv1.Variable
	// own is the number of leading entries that are the ServiceAccount's
	// own injections: the generic policy puts values back only into
	// templates, so their texts are written as they are.
	own int
}

// text is s, a text of entry i, as the generic policy reads it.
func (w *writer) text(i int, s string) string {
	if i < w.own {
		return q(s)
	}
	return resolved(s)
}

func (w *writer) add(name, expr string) {
	w.vars = append(w.vars, admissionregv1.Variable{Name: name, Expression: expr})
}

// q is s as a CEL string literal.
func q(s string) string { return strconv.Quote(s) }

// stringList is ss as a CEL list literal.
func stringList(ss []string) string {
	out := make([]string, len(ss))
	for i, s := range ss {
		out[i] = q(s)
	}
	return "[" + strings.Join(out, ", ") + "]"
}

// marker is what the generic policy replaces: {value:0} to {value:3}.
var marker = regexp.MustCompile(`\{value:[0-3]\}`)

// resolved is s with its values put back as the generic policy puts them
// back (none when the ServiceAccount has no values).
func resolved(s string) string {
	if !marker.MatchString(s) {
		return q(s)
	}
	var parts []string
	last := 0
	for _, m := range marker.FindAllStringIndex(s, -1) {
		if m[0] > last {
			parts = append(parts, q(s[last:m[0]]))
		}
		parts = append(parts, "variables.values[?"+s[m[0]+7:m[0]+8]+"].orValue('')")
		last = m[1]
	}
	if last < len(s) {
		parts = append(parts, q(s[last:]))
	}
	joined := strings.Join(parts, " + ")
	if len(parts) > maxConcatenated {
		// CEL nests a chain of + one level per term, and refuses an
		// expression past 250 levels with the whole policy; a list is
		// flat.
		joined = "[" + strings.Join(parts, ", ") + "].join('')"
	}
	return "(size(variables.values) == 0 ? " + q(s) + " : " + joined + ")"
}

// maxConcatenated is the most parts resolved joins with +: a template
// made from a value its text repeats has a part for each time.
const maxConcatenated = 8

// expr is a CEL expression inside a literal that literal writes.
type expr string

// literal is v (decoded JSON, with exprs) as a CEL expression, each map
// value dyn() so that the type checker takes values of mixed types.
func literal(v any) string {
	switch v := v.(type) {
	case expr:
		return string(v)
	case map[string]any:
		keys := slices.Sorted(maps.Keys(v))
		parts := make([]string, len(keys))
		for i, k := range keys {
			parts[i] = q(k) + ": dyn(" + literal(v[k]) + ")"
		}
		return "{" + strings.Join(parts, ", ") + "}"
	case []any:
		parts := make([]string, len(v))
		for i, e := range v {
			parts[i] = "dyn(" + literal(e) + ")"
		}
		return "[" + strings.Join(parts, ", ") + "]"
	case string:
		return q(v)
	case bool:
		return strconv.FormatBool(v)
	case float64:
		return strconv.FormatInt(int64(v), 10)
	case nil:
		return "null"
	}
	return fmt.Sprint(v)
}

// decoded is v as the API server decodes it from the parameters.
func decoded(v any) any {
	b, err := json.Marshal(v)
	if err != nil {
		panic(err) // the parameters' own types always encode
	}
	var out any
	_ = json.Unmarshal(b, &out)
	return out
}

func or(terms []string) string {
	if len(terms) == 0 {
		return "false"
	}
	return "(" + strings.Join(terms, " || ") + ")"
}

func and(terms []string) string {
	if len(terms) == 0 {
		return "true"
	}
	return "(" + strings.Join(terms, " && ") + ")"
}

func concat(lists []string) string {
	if len(lists) == 0 {
		return "[]"
	}
	out := make([]string, len(lists))
	for i, l := range lists {
		out[i] = "dyn(" + l + ")"
	}
	return strings.Join(out, " + ")
}

func (w *writer) envVars(i int, e *v1alpha1.Injection) []any {
	var out []any
	for _, g := range e.Env {
		for _, v := range g.Vars {
			out = append(out, w.envVar(i, v))
		}
	}
	return out
}

// envVar is v as the generic policy adds it: its value, put back.
func (w *writer) envVar(i int, v any) any {
	m := decoded(v).(map[string]any)
	if s, ok := m["value"].(string); ok {
		m["value"] = expr(w.text(i, s))
	}
	return m
}

func envNames(e *v1alpha1.Injection) []string {
	var out []string
	for _, g := range e.Env {
		for _, v := range g.Vars {
			out = append(out, v.Name)
		}
	}
	return out
}

func mountPaths(e *v1alpha1.Injection) []string {
	var out []string
	for _, m := range e.Mounts {
		out = append(out, m.MountPath)
	}
	return out
}

// entry writes on<i> (the entry applies to the pod: its OS and labels),
// exp<i> (the pod's token expiration as the entry reads it: state and
// value), skip<i> and only<i>.
func (w *writer) entry(i int, e *v1alpha1.Injection) {
	conds := []string{}
	switch e.OS {
	case "linux":
		conds = append(conds, "!variables.windows")
	case "windows":
		conds = append(conds, "variables.windows")
	}
	for _, r := range e.PodLabels {
		k := q(r.Key)
		has := k + " in variables.labels"
		in := "(" + has + " && variables.labels[" + k + "] in " + stringList(r.Values) + ")"
		switch r.Operator {
		case "In":
			conds = append(conds, in)
		case "NotIn":
			conds = append(conds, "!"+in)
		case "Exists":
			conds = append(conds, has)
		default:
			conds = append(conds, "!("+has+")")
		}
	}
	w.add(fmt.Sprintf("on%d", i), and(conds))
	if x := e.Expiration; x != nil {
		otherwise := "[dyn('invalid'), dyn(0)]"
		if x.Lenient {
			otherwise = fmt.Sprintf("[dyn('default'), dyn(%d)]", x.Default)
		}
		out := otherwise
		if x.Clamp {
			out = fmt.Sprintf("[dyn(v < %d ? 'min' : 'max'), dyn(v < %d ? %d : %d)]", x.Min, x.Min, x.Min, x.Max)
		}
		w.add(fmt.Sprintf("exp%d", i), fmt.Sprintf(
			"[variables.annotations[?%s].orValue('').trim()].map(raw, raw == '' ? [dyn('none'), dyn(0)] : "+
				"!raw.matches('^[+-]?0*[0-9]{1,18}$') ? %s : "+
				"[int(raw)].map(v, v >= %d && v <= %d ? [dyn('ok'), dyn(v)] : %s)[0])[0]",
			q(x.Annotation), otherwise, x.Min, x.Max, out))
	}
	if e.SkipContainersAnnotation != "" {
		w.add(fmt.Sprintf("skip%d", i), fmt.Sprintf("%s in variables.annotations ? variables.annotations[%s].split(%s).map(n, n.trim()) : []",
			q(e.SkipContainersAnnotation), q(e.SkipContainersAnnotation), q(e.ContainersSeparator)))
	}
	if e.OnlyContainersAnnotation != "" {
		w.add(fmt.Sprintf("only%d", i), fmt.Sprintf("%s in variables.annotations ? variables.annotations[%s].split(%s).map(n, n.trim()).filter(n, n != '') : []",
			q(e.OnlyContainersAnnotation), q(e.OnlyContainersAnnotation), q(e.ContainersSeparator)))
	}
}

// containers writes the generic policy's initContainers and containers.
func (w *writer) containers() {
	w.add("initContainers", "object.spec.?initContainers.orValue([]).map(c, {'c': dyn(c), "+
		"'env': dyn(c.?env.orValue([]).map(v, v.name)), 'paths': dyn(c.?volumeMounts.orValue([]).map(m, m.mountPath))})")
	w.add("containers", "object.spec.containers.map(c, {'c': dyn(c), "+
		"'env': dyn(c.?env.orValue([]).map(v, v.name)), 'paths': dyn(c.?volumeMounts.orValue([]).map(m, m.mountPath))})")
}

// injects is whether entry i injects into the pod: it applies, has volumes
// or variables, no entry of its provider that applies reads an invalid
// token expiration, and the pod's volumes, annotations and labels of its
// names are as it would write them.
func (w *writer) injects(i int, entries []v1alpha1.Injection) string {
	e := &entries[i]
	if len(e.Volumes)+len(e.Env) == 0 {
		return "false"
	}
	conds := []string{fmt.Sprintf("variables.on%d", i)}
	for j := range entries {
		if entries[j].Provider == e.Provider && entries[j].Expiration != nil {
			conds = append(conds, fmt.Sprintf("!(variables.on%d && variables.exp%d[0] == 'invalid')", j, j))
		}
	}
	for _, v := range e.Volumes {
		var same string
		switch {
		case v.Projected != nil:
			var tokens []string
			for _, s := range v.Projected.Sources {
				if t := s.ServiceAccountToken; t != nil {
					tokens = append(tokens, fmt.Sprintf("s.serviceAccountToken.path == %s && s.serviceAccountToken.?audience.orValue('') == %s", q(t.Path), q(t.Audience)))
				}
			}
			same = "has(pv.projected) && pv.projected.?sources.orValue([]).exists(s, has(s.serviceAccountToken) && " + or(tokens) + ")"
		case v.EmptyDir != nil:
			same = "has(pv.emptyDir)"
		default:
			same = "has(pv.downwardAPI)"
		}
		conds = append(conds, fmt.Sprintf("object.spec.?volumes.orValue([]).all(pv, pv.name != %s || %s)", q(v.Name), same))
	}
	for _, k := range slices.Sorted(maps.Keys(e.Annotations)) {
		conds = append(conds, fmt.Sprintf("(!(%s in variables.annotations) || variables.annotations[%s] == %s)", q(k), q(k), w.text(i, e.Annotations[k])))
	}
	for _, k := range slices.Sorted(maps.Keys(e.Labels)) {
		conds = append(conds, fmt.Sprintf("(!(%s in variables.labels) || variables.labels[%s] == %s)", q(k), q(k), q(e.Labels[k])))
	}
	return and(conds)
}

// targets writes targets<i>: the names of the containers entry
// i gives the identity to (none where it does not inject): not skipped,
// named where the pod names some, whose token file variables are the
// entry's where they set them, and whose mounts at the entry's paths are
// of its volumes.
func (w *writer) targets(i int, e *v1alpha1.Injection) {
	conds := []string{}
	if e.SkipContainersAnnotation != "" {
		conds = append(conds, fmt.Sprintf("!(k.c.name in variables.skip%d)", i))
	}
	if e.OnlyContainersAnnotation != "" {
		conds = append(conds, fmt.Sprintf("(size(variables.only%d) == 0 || k.c.name in variables.only%d)", i, i))
	}
	if len(e.TokenFileVariables) > 0 {
		var same []string
		for _, g := range e.Env {
			for _, v := range g.Vars {
				if !slices.Contains(e.TokenFileVariables, v.Name) {
					continue
				}
				value := "''"
				if v.ValueFrom == nil && v.Value != "" {
					value = w.text(i, v.Value)
				}
				same = append(same, fmt.Sprintf("k.c.env.exists(ce, ce.name == %s && ce.?value.orValue('') == %s && has(ce.valueFrom) == %t)", q(v.Name), value, v.ValueFrom != nil))
			}
		}
		conds = append(conds, "(!sets.intersects(k.env, "+stringList(e.TokenFileVariables)+") || "+and(same)+")")
	}
	if len(e.Mounts) > 0 {
		var same []string
		for _, m := range e.Mounts {
			same = append(same, fmt.Sprintf("k.c.volumeMounts.all(cm, cm.mountPath != %s || cm.name == %s)", q(m.MountPath), q(m.VolumeName)))
		}
		conds = append(conds, "(!sets.intersects(k.paths, "+stringList(mountPaths(e))+") || "+and(same)+")")
	}
	w.add(fmt.Sprintf("targets%d", i), fmt.Sprintf("!variables.inj%d ? [] : (variables.initContainers + variables.containers).filter(k, %s).map(k, k.c.name)", i, and(conds)))
}

// identity is whether entry e gives an identity (adds volumes or
// variables) where it applies.
func identity(e *v1alpha1.Injection) bool { return len(e.Volumes)+len(e.Env) > 0 }

// lists writes the lists each entry adds to a container, as their own
// variables: built once for the pod (the API server keeps a variable's
// value), not once for each container. mounts<i> are entry i's mounts,
// env<i> its variables, env<i>_<j> those of its group j.
func (w *writer) lists(entries []v1alpha1.Injection) {
	for i := range entries {
		e := &entries[i]
		if len(e.Mounts) > 0 {
			w.add(fmt.Sprintf("mounts%d", i), literal(decoded(e.Mounts)))
		}
		if len(e.Env) > 0 {
			for j, g := range e.Env {
				var vars []any
				for _, v := range g.Vars {
					vars = append(vars, w.envVar(i, v))
				}
				w.add(fmt.Sprintf("env%d_%d", i, j), literal(vars))
			}
			w.add(fmt.Sprintf("env%d", i), literal(w.envVars(i, e)))
		}
	}
}

// fast writes fast: whether the pod touches none of the names the entries
// read or add (annotations, labels, volumes, and in any container their
// variables, the variables that override them and their mount paths) and
// has containers; most pods. For such a pod each entry that gives an
// identity does so exactly where it applies (on<i>): no token expiration
// is read, no container is skipped, left out or warned about, and every
// container gets the same additions, fastMounts and fastEnv. The other
// rules then take their quick forms, which test/celbench holds to the
// generic policy like the rest.
func (w *writer) fast(entries []v1alpha1.Injection) {
	var annotations, labels, volumes, env, paths []string
	var mounts, vars, withVolumes []string
	for i := range entries {
		e := &entries[i]
		annotations = append(annotations, e.SkipContainersAnnotation, e.OnlyContainersAnnotation)
		if e.Expiration != nil {
			annotations = append(annotations, e.Expiration.Annotation)
		}
		annotations = append(annotations, slices.Collect(maps.Keys(e.Annotations))...)
		labels = append(labels, slices.Collect(maps.Keys(e.Labels))...)
		for _, v := range e.Volumes {
			volumes = append(volumes, v.Name)
		}
		if len(e.Volumes) > 0 {
			withVolumes = append(withVolumes, fmt.Sprintf("variables.on%d", i))
		}
		env = append(append(append(env, envNames(e)...), e.OverridingVariables...), e.TokenFileVariables...)
		paths = append(paths, mountPaths(e)...)
		if !identity(e) {
			continue
		}
		if len(e.Mounts) > 0 {
			mounts = append(mounts, fmt.Sprintf("(variables.on%d ? variables.mounts%d : [])", i, i))
		}
		if len(e.Env) > 0 {
			vars = append(vars, fmt.Sprintf("(variables.on%d ? variables.env%d : [])", i, i))
		}
	}
	conds := []string{"size(object.spec.?containers.orValue([])) > 0"}
	for _, k := range distinct(annotations) {
		conds = append(conds, fmt.Sprintf("!(%s in variables.annotations)", q(k)))
	}
	for _, k := range distinct(labels) {
		conds = append(conds, fmt.Sprintf("!(%s in variables.labels)", q(k)))
	}
	// The scans of the pod's lists are variables of their own: the API
	// server bounds the cost of each variable (celconfig.PerCallLimit),
	// and a scan of one list costs less than the generic policy's own
	// variable of that list (initContainers, containers; its volumes it
	// reads for the entries that apply), so a pod the generic policy can
	// evaluate never puts the quick way over the bound. The volumes matter
	// only to entries that apply and have volumes: with none, both ways
	// give the same.
	if volumes = distinct(volumes); len(volumes) > 0 {
		w.add("fastVolumes", fmt.Sprintf("!%s || !object.spec.?volumes.orValue([]).exists(pv, pv.name in %s)", or(withVolumes), stringList(volumes)))
		conds = append(conds, "variables.fastVolumes")
	}
	var touches []string
	if env = distinct(env); len(env) > 0 {
		touches = append(touches, fmt.Sprintf("c.?env.orValue([]).exists(v, v.name in %s)", stringList(env)))
	}
	if paths = distinct(paths); len(paths) > 0 {
		touches = append(touches, fmt.Sprintf("c.?volumeMounts.orValue([]).exists(m, m.mountPath in %s)", stringList(paths)))
	}
	if len(touches) > 0 {
		w.add("fastInitContainers", fmt.Sprintf("!object.spec.?initContainers.orValue([]).exists(c, %s)", or(touches)))
		w.add("fastContainers", fmt.Sprintf("!object.spec.containers.exists(c, %s)", or(touches)))
		conds = append(conds, "variables.fastInitContainers", "variables.fastContainers")
	}
	w.add("fast", and(conds))
	w.add("fastMounts", concat(mounts))
	w.add("fastEnv", concat(vars))
}

// distinct is ss without empty strings and repeats, sorted.
func distinct(ss []string) []string {
	out := slices.DeleteFunc(slices.Clone(ss), func(s string) bool { return s == "" })
	slices.Sort(out)
	return slices.Compact(out)
}

// quick is the rule fastForm for a fast pod, otherwise general.
func quick(fastForm, general string) string {
	return "variables.fast ? " + fastForm + " : " + general
}

// additions writes what each container gets, init containers first: the
// mounts whose paths it does not use, and the variables of the groups it
// sets none of.
func (w *writer) additions(entries []v1alpha1.Injection) {
	var mounts, env []string
	for i := range entries {
		e := &entries[i]
		in := fmt.Sprintf("k.c.name in variables.targets%d", i)
		if len(e.Mounts) > 0 {
			list := fmt.Sprintf("variables.mounts%d", i)
			mounts = append(mounts, fmt.Sprintf("(%s ? (!sets.intersects(k.paths, %s) ? %s : %s.filter(m, !(m.mountPath in k.paths))) : [])",
				in, stringList(mountPaths(e)), list, list))
		}
		if len(e.Env) > 0 {
			var groups []string
			for j, g := range e.Env {
				var names []string
				for _, v := range g.Vars {
					names = append(names, v.Name)
				}
				groups = append(groups, fmt.Sprintf("(!sets.intersects(k.env, %s) ? variables.env%d_%d : [])", stringList(names), i, j))
			}
			env = append(env, fmt.Sprintf("(%s ? (!sets.intersects(k.env, %s) ? variables.env%d : %s) : [])",
				in, stringList(envNames(e)), i, concat(groups)))
		}
	}
	w.add("additions", quick(
		"lists.range(size(object.spec.?initContainers.orValue([])) + size(object.spec.containers)).map(i, {'mounts': dyn(variables.fastMounts), 'env': dyn(variables.fastEnv)})",
		"(variables.initContainers + variables.containers).map(k, {'mounts': dyn("+concat(mounts)+"), 'env': dyn("+concat(env)+")})"))
}

// newVolumes writes the volumes to add: those of each entry that gives a
// container the identity and that the pod lacks, once for each entry of
// its provider that applies, with that entry's token expiration where
// the pod sets one.
func (w *writer) newVolumes(entries []v1alpha1.Injection) {
	var out []string
	for i := range entries {
		e := &entries[i]
		if len(e.Volumes) == 0 {
			continue
		}
		var copies []string
		for j := range entries {
			if entries[j].Provider != e.Provider {
				continue
			}
			var vols []string
			for _, v := range e.Volumes {
				plain := literal(decoded(v))
				vol := plain
				if entries[j].Expiration != nil && v.Projected != nil {
					vol = fmt.Sprintf("(variables.exp%d[0] == 'none' ? %s : %s)", j, plain, literal(withExpiration(v, expr(fmt.Sprintf("variables.exp%d[1]", j)))))
				}
				vols = append(vols, fmt.Sprintf("(!object.spec.?volumes.orValue([]).exists(pv, pv.name == %s) ? [%s] : [])", q(v.Name), vol))
			}
			copies = append(copies, fmt.Sprintf("(variables.on%d ? %s : [])", j, concat(vols)))
		}
		out = append(out, fmt.Sprintf("(%s ? %s : [])", gives(i, e), concat(copies)))
	}
	w.add("newVolumes", concat(out))
}

// withExpiration is v as the generic policy writes it for a pod that sets
// its token expiration: its name, its sources with each token's audience,
// path and the expiration seconds, and its default mode.
func withExpiration(v v1alpha1.Volume, seconds expr) any {
	var sources []any
	for _, s := range v.Projected.Sources {
		if t := s.ServiceAccountToken; t != nil {
			sources = append(sources, map[string]any{"serviceAccountToken": map[string]any{"audience": t.Audience, "expirationSeconds": seconds, "path": t.Path}})
			continue
		}
		sources = append(sources, decoded(s))
	}
	projected := map[string]any{"sources": sources}
	if v.Projected.DefaultMode != nil {
		projected["defaultMode"] = float64(*v.Projected.DefaultMode)
	}
	return map[string]any{"name": v.Name, "projected": projected}
}

// added writes addedAnnotations (the mark of a ServiceAccount the
// parameters do not list, and the entries' annotations the pod lacks) and
// addedLabels.
func (w *writer) added(entries []v1alpha1.Injection) {
	annotations := []string{"(variables.listed || 'pod-identity.io/serviceaccount-not-known' in variables.annotations ? [] : " +
		"[[dyn('pod-identity.io/serviceaccount-not-known'), dyn(variables.serviceAccount)]])"}
	var labels []string
	for i := range entries {
		e := &entries[i]
		var as, ls []string
		for _, k := range slices.Sorted(maps.Keys(e.Annotations)) {
			as = append(as, fmt.Sprintf("(!(%s in variables.annotations) ? [[dyn(%s), dyn(%s)]] : [])", q(k), q(k), w.text(i, e.Annotations[k])))
		}
		for _, k := range slices.Sorted(maps.Keys(e.Labels)) {
			ls = append(ls, fmt.Sprintf("(!(%s in variables.labels) ? [[%s, %s]] : [])", q(k), q(k), q(e.Labels[k])))
		}
		if len(as) > 0 {
			annotations = append(annotations, fmt.Sprintf("(%s ? %s : [])", gives(i, e), concat(as)))
		}
		if len(ls) > 0 {
			labels = append(labels, fmt.Sprintf("(%s ? %s : [])", gives(i, e), concat(ls)))
		}
	}
	w.add("addedAnnotations", concat(annotations))
	w.add("addedLabels", concat(labels))
}

// gives is whether entry i, e, gives some container the identity: for a
// fast pod, whether it applies (see writer.fast).
func gives(i int, e *v1alpha1.Injection) string {
	if !identity(e) {
		return "false"
	}
	return fmt.Sprintf("(variables.fast ? variables.on%d : size(variables.targets%d) > 0)", i, i)
}

// mayWarn writes whether pod-identity-warn may have something to say about
// the pod, as the generic policy's variable of that name.
func (w *writer) mayWarn(entries []v1alpha1.Injection) {
	terms := []string{"variables.own.contains('w')", "variables.own.contains('a')"}
	// A fast pod sets no token expiration, uses none of the entries'
	// variables or paths, and gets each identity where it applies.
	var quickTerms []string
	var identities, withVolumes, injecting []string
	for i := range entries {
		e := &entries[i]
		on := fmt.Sprintf("variables.on%d", i)
		if len(e.Volumes)+len(e.Env) > 0 {
			identities = append(identities, on)
		}
		if len(e.Warnings) > 0 {
			quickTerms = append(quickTerms, on)
		}
		if x := e.Expiration; x != nil {
			states := "['min', 'max', 'default']"
			if x.WarnInvalid {
				states = "['min', 'max', 'default', 'invalid']"
			}
			terms = append(terms, fmt.Sprintf("%s && variables.exp%d[0] in %s", on, i, states))
		}
		if len(e.Volumes) > 0 {
			withVolumes = append(withVolumes, fmt.Sprintf("(%s ? 1 : 0)", on))
			injecting = append(injecting, fmt.Sprintf("(variables.inj%d ? 1 : 0)", i))
			if len(e.PodAnnotationPrefixes) > 0 {
				var prefixes []string
				for _, p := range e.PodAnnotationPrefixes {
					prefixes = append(prefixes, "k.startsWith("+q(p)+")")
				}
				own := []string{e.SkipContainersAnnotation, e.OnlyContainersAnnotation}
				if e.Expiration != nil {
					own = append(own, e.Expiration.Annotation)
				}
				own = append(own, slices.Sorted(maps.Keys(e.Annotations))...)
				quickTerms = append(quickTerms, fmt.Sprintf("%s && variables.annotations.exists(k, %s && !(k in %s))", on, or(prefixes), stringList(own)))
			}
		}
		names := append(envNames(e), e.OverridingVariables...)
		var sets []string
		if len(names) > 0 {
			sets = append(sets, "sets.intersects(k.env, "+stringList(names)+")")
		}
		if len(e.Mounts) > 0 {
			sets = append(sets, "sets.intersects(k.paths, "+stringList(mountPaths(e))+")")
		}
		if len(sets) > 0 {
			terms = append(terms, fmt.Sprintf("variables.inj%d && (variables.initContainers + variables.containers).exists(k, %s)", i, or(sets)))
		}
	}
	quickTerms = append(quickTerms, "variables.enforcement.contains('W') && "+or(identities))
	extra := terms[2:]
	if len(withVolumes) > 0 {
		extra = append(extra, strings.Join(withVolumes, " + ")+" != "+strings.Join(injecting, " + "))
	}
	w.add("mayWarn", or(append(append(terms[:2:2], quickTerms...), "(!variables.fast && "+or(extra)+")")))
}

// mayDeny writes whether pod-identity-deny may refuse the pod, as the
// generic policy's variable of that name.
func (w *writer) mayDeny(entries []v1alpha1.Injection) {
	terms := []string{"!variables.listed", "'pod-identity.io/serviceaccount-not-known' in variables.annotations",
		"variables.own.contains('d')", "variables.own.contains('a')"}
	var identities []string
	for i := range entries {
		e := &entries[i]
		if len(e.Volumes)+len(e.Env) > 0 {
			identities = append(identities, fmt.Sprintf("variables.on%d", i))
		}
		if len(e.Denied) > 0 {
			terms = append(terms, "true")
		}
		if x := e.Expiration; x != nil && !x.WarnInvalid {
			terms = append(terms, q(x.Annotation)+" in variables.annotations")
		}
	}
	terms = append(terms, "variables.enforcement.contains('D') && "+or(identities))
	w.add("mayDeny", or(terms))
}
