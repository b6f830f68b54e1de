package parameters

import (
	"encoding/json"
	"reflect"
	"slices"
	"strconv"
	"strings"

	"github.com/pod-identity/injector/pkg/parameters/v1alpha1"
)

// MaxValues bounds the values of one ServiceAccount that its templates
// stand for: the admission policies resolve "{value:N}" with one fixed
// chain of replacements, N from 0 to MaxValues-1 (CEL has no loop that
// folds a string).
const MaxValues = 4

// MaxTemplates bounds a namespace's templates (the CRD's maxItems on
// spec.templates, which bounds the policies' estimated CEL cost).
const MaxTemplates = 512

// minValueLength is the shortest value worth standing for: shorter ones
// (a "true", a region) save little and match by chance.
const minValueLength = 8

// maxValueLength bounds a value a template stands for: a ServiceAccount's
// annotations hold at most 256 KiB in all (Kubernetes' limit on an
// object's annotations), and a value that long is not an identity.
const maxValueLength = 4096

// valueMarker is what stands for value i in a template.
func valueMarker(i int) string { return "{value:" + strconv.Itoa(i) + "}" }

// templater collects the distinct entries of a namespace's ServiceAccounts.
type templater struct {
	index     map[string]int32
	templates []v1alpha1.Injection
}

func newTemplater() *templater {
	return &templater{index: map[string]int32{}}
}

// templated is a ServiceAccount's injections as templates (with their
// JSON, which identifies them) and its values; nil templates when they
// would not read back exactly as they were.
type templated struct {
	templates []v1alpha1.Injection
	keys      []string
	values    []string
}

// templatizeAll turns injections into templates: the ServiceAccount's own
// values (its annotation values and name, where they appear in a
// variable's value, an added annotation's value or a message) are
// replaced by placeholders, and its name in messages by
// "{serviceaccount}". Where an entry would not read back exactly as it
// was, it returns none.
func templatizeAll(injections []v1alpha1.Injection, ns, name string, annotations map[string]string) templated {
	if len(injections) == 0 {
		return templated{}
	}
	out := templated{values: chooseValues(injections, name, annotations)}
	for _, e := range injections {
		tpl := templatize(e, ns, name, out.values)
		if !reflect.DeepEqual(emitted(resolve(tpl, out.values), ns, name), emitted(e, ns, name)) {
			return templated{}
		}
		b, err := json.Marshal(tpl)
		if err != nil {
			return templated{}
		}
		out.templates = append(out.templates, tpl)
		out.keys = append(out.keys, string(b))
	}
	return out
}

// add moves p's injections into the namespace's templates, as tp has
// them: p then names them by index, with its values. Where they could not
// be templated, or the templates are full, p is left as it is.
func (t *templater) add(tp templated, p *v1alpha1.ServiceAccountParameters) {
	if len(p.Injections) == 0 || len(tp.templates) != len(p.Injections) {
		return
	}
	entries := make([]int32, 0, len(tp.keys))
	var fresh []v1alpha1.Injection
	pending := map[string]int32{}
	for n, key := range tp.keys {
		i, ok := t.index[key]
		if !ok {
			if i, ok = pending[key]; !ok {
				if len(t.templates)+len(fresh) >= MaxTemplates {
					return
				}
				i = int32(len(t.templates) + len(fresh))
				pending[key] = i
				fresh = append(fresh, tp.templates[n])
			}
		}
		entries = append(entries, i)
	}
	for k, v := range pending {
		t.index[k] = v
	}
	t.templates = append(t.templates, fresh...)
	p.Injections, p.Entries, p.Values = nil, entries, tp.values
}

// truncate forgets the templates from n on (those of a ServiceAccount left
// out).
func (t *templater) truncate(n int) {
	for k, i := range t.index {
		if int(i) >= n {
			delete(t.index, k)
		}
	}
	t.templates = t.templates[:n]
}

// chooseValues picks, longest first, up to MaxValues of the
// ServiceAccount's annotation values and name that appear in the text a
// template may stand for.
func chooseValues(entries []v1alpha1.Injection, name string, annotations map[string]string) []string {
	var texts []string
	for _, e := range entries {
		forEachText(&e, func(s *string) { texts = append(texts, *s) })
	}
	var candidates []string
	for _, v := range annotations {
		candidates = append(candidates, v)
	}
	candidates = append(candidates, name)
	slices.SortFunc(candidates, func(a, b string) int {
		if len(a) != len(b) {
			return len(b) - len(a)
		}
		return strings.Compare(a, b)
	})
	candidates = slices.Compact(candidates)
	var out []string
	for _, c := range candidates {
		if len(out) == MaxValues {
			break
		}
		if len(c) < minValueLength || len(c) > maxValueLength || strings.Contains(c, "{") {
			continue
		}
		if slices.ContainsFunc(texts, func(s string) bool { return strings.Contains(s, c) }) {
			out = append(out, c)
		}
	}
	return out
}

// forEachText calls f with every text of e that a template may stand for
// values in: the variables' values, the added annotations' values, and the
// messages. The admission policies resolve exactly these.
func forEachText(e *v1alpha1.Injection, f func(*string)) {
	forEachMessage(e, f)
	for gi := range e.Env {
		for vi := range e.Env[gi].Vars {
			if e.Env[gi].Vars[vi].ValueFrom == nil {
				f(&e.Env[gi].Vars[vi].Value)
			}
		}
	}
	for k, v := range e.Annotations {
		f(&v)
		e.Annotations[k] = v
	}
}

func forEachMessage(e *v1alpha1.Injection, f func(*string)) {
	f(&e.Source)
	for i := range e.Warnings {
		f(&e.Warnings[i])
	}
	for i := range e.Denied {
		f(&e.Denied[i])
	}
}

// templatize returns e with name in its messages and values everywhere a
// template may stand for them replaced by their placeholders.
func templatize(e v1alpha1.Injection, ns, name string, values []string) v1alpha1.Injection {
	e = *e.DeepCopy()
	forEachMessage(&e, func(s *string) {
		*s = strings.ReplaceAll(*s, ns+"/"+name+`"`, ns+"/"+ServiceAccountPlaceholder+`"`)
	})
	forEachText(&e, func(s *string) {
		for i, v := range values {
			*s = strings.ReplaceAll(*s, v, valueMarker(i))
		}
	})
	return e
}

// resolve is what the admission policies do to a template: the values
// put back, the last first, as the policies' chain of replacements does.
func resolve(e v1alpha1.Injection, values []string) v1alpha1.Injection {
	e = *e.DeepCopy()
	forEachText(&e, func(s *string) {
		for i := MaxValues - 1; i >= 0; i-- {
			v := ""
			if i < len(values) {
				v = values[i]
			}
			*s = strings.ReplaceAll(*s, valueMarker(i), v)
		}
	})
	return e
}

// emitted is what the admission policies show of e's messages: the
// ServiceAccount's name where they say "{serviceaccount}".
func emitted(e v1alpha1.Injection, ns, name string) v1alpha1.Injection {
	e = *e.DeepCopy()
	forEachMessage(&e, func(s *string) {
		*s = strings.ReplaceAll(*s, ns+"/"+ServiceAccountPlaceholder+`"`, ns+"/"+name+`"`)
	})
	return e
}
