// Package explain says, in plain words, what the injector decides for a
// pod and why: each provider's decision and its reasons, what the webhook
// configuration keeps from the injector, what an identity policy says, and
// what would be added where. It asks the engine, the one place that decides.
package explain

import (
	"encoding/json"
	"errors"
	"fmt"
	"regexp"
	"slices"
	"sort"
	"strconv"
	"strings"

	corev1 "k8s.io/api/core/v1"

	"github.com/pod-identity/injector/pkg/mutate"
	"github.com/pod-identity/injector/pkg/policy"
	"github.com/pod-identity/injector/pkg/providers"
	"github.com/pod-identity/injector/pkg/providers/aws"
)

// The provider decisions.
const (
	Injects        = "injects"
	NotSetUp       = "not set up"
	Invalid        = "invalid"
	Skipped        = "skipped"
	DeniedByPolicy = "denied by policy"
	PodDenied      = "pod denied"
	// AlreadyInjected: the pod carries what the provider gives it.
	AlreadyInjected = "already injected"
	// GivesIdentity: a ServiceAccount names a valid, allowed identity.
	GivesIdentity = "gives an identity"
)

// Report is what the injector decides for one pod (template) and why.
type Report struct {
	// Object names the pod or the workload holding the template.
	Object string `json:"object"`
	// ServiceAccount is the pod's, "namespace/name"; Found says it exists.
	ServiceAccount string `json:"serviceAccount"`
	Found          bool   `json:"serviceAccountFound"`
	// NotSent lists why the shipped webhook configuration does not even
	// send the pod to the injector; empty when it does.
	NotSent []string `json:"notSentToTheInjector,omitempty"`
	// Providers has every enabled provider's decision.
	Providers []Provider `json:"providers"`
	// Adds is what the pod would get, when it would get anything.
	Adds *Additions `json:"adds,omitempty"`
	// Warnings are the warnings of no single provider (an identity
	// policy's Warn rules).
	Warnings []string `json:"warnings,omitempty"`
	// Drift, for a running pod, says where the identity it carries is not
	// the one its ServiceAccount gives now.
	Drift []string `json:"drift,omitempty"`
}

// Provider is one provider's decision about the pod.
type Provider struct {
	// Name is the provider's.
	Name string `json:"name"`
	// Decision is one of Injects, NotSetUp, Invalid, Skipped,
	// DeniedByPolicy and PodDenied.
	Decision string `json:"decision"`
	// Read holds the ServiceAccount's annotations under the provider's prefixes.
	Read map[string]string `json:"read,omitempty"`
	// Reasons explain the decision, one sentence each.
	Reasons []string `json:"reasons,omitempty"`
}

// Additions is what a pod would get.
type Additions struct {
	Volumes     []string            `json:"volumes,omitempty"`
	Env         map[string][]string `json:"env,omitempty"`
	Mounts      map[string][]string `json:"mounts,omitempty"`
	Annotations []string            `json:"annotations,omitempty"`
	Labels      []string            `json:"labels,omitempty"`
}

// Input is one pod to explain.
type Input struct {
	// Kind and Target are the object and its pod (template); Kind is "Pod"
	// for a pod.
	Kind   string
	Target mutate.Target
	// ServiceAccount is the pod's, nil when it was not found; Name is its name.
	ServiceAccount     *corev1.ServiceAccount
	ServiceAccountName string
	// NamespaceLabels are the labels of the pod's namespace, when known.
	NamespaceLabels map[string]string
	// ExcludedNamespaces are those the webhook configuration never sends.
	ExcludedNamespaces []string
	// Running says the pod exists: it already carries what it was given.
	Running bool
}

// Explain asks the engine about the pod and words what it says.
func Explain(e *mutate.Engine, in Input) Report {
	t := in.Target
	r := Report{Object: strings.ToLower(in.Kind) + " " + strconv.Quote(t.Namespace+"/"+name(t)),
		ServiceAccount: t.Namespace + "/" + in.ServiceAccountName, Found: in.ServiceAccount != nil}
	r.NotSent = notSent(in)
	if in.ServiceAccount == nil {
		for _, p := range e.Providers() {
			r.Providers = append(r.Providers, Provider{Name: p.Name(), Decision: NotSetUp,
				Reasons: []string{fmt.Sprintf("serviceaccount %q was not found: without it no provider applies", r.ServiceAccount)}})
		}
		return r
	}
	res := e.Mutate(t, in.ServiceAccount)
	denied := len(res.Denied) > 0 || len(res.Invalid) > 0
	// The same pod without what providers add (no env, mounts, volumes):
	// which providers would inject into it, and what.
	fresh := freshTarget(t)
	freshRes := e.Mutate(fresh, in.ServiceAccount)
	attributed := map[string]bool{}
	for _, p := range e.Providers() {
		pr := Provider{Name: p.Name(), Read: read(in.ServiceAccount, p.AnnotationPrefixes())}
		pr.Reasons = warningsOf(res.Warnings, p.Name())
		for _, w := range pr.Reasons {
			attributed[w] = true
		}
		invalid, refused := messagesFor(res.Invalid, p.Name()), messagesFor(res.Denied, p.Name())
		switch {
		case invalid != nil:
			pr.Decision = Invalid
			pr.Reasons = append(invalid, pr.Reasons...)
		case refused != nil:
			pr.Decision = DeniedByPolicy
			pr.Reasons = append(refused, pr.Reasons...)
		case slices.Contains(res.Injected, p.Name()) && denied:
			pr.Decision = PodDenied
			pr.Reasons = append(pr.Reasons, "it would inject, but the pod is denied for another provider's identity, and a denied pod gets nothing")
		case slices.Contains(res.Injected, p.Name()):
			pr.Decision = Injects
		case len(pr.Reasons) == 0 && slices.Contains(freshRes.Injected, p.Name()):
			pr.Decision = AlreadyInjected
			pr.Reasons = append(pr.Reasons, "the pod already carries what this provider gives it")
		case len(pr.Reasons) > 0:
			pr.Decision = Skipped
		case len(pr.Read) > 0 && isMirror(t):
			pr.Decision = Skipped
			pr.Reasons = append(pr.Reasons, "a static pod's mirror is never mutated: the API server refuses one that mounts a token")
		case p.Name() == aws.Name && hasLabel(t, aws.SkipLabel):
			pr.Decision = Skipped
			pr.Reasons = append(pr.Reasons, "the pod carries the EKS webhook's opt-out label "+aws.SkipLabel)
		default:
			pr.Decision = NotSetUp
			if len(pr.Read) == 0 {
				pr.Reasons = append(pr.Reasons, fmt.Sprintf("serviceaccount %q has no annotation under %s", r.ServiceAccount, strings.Join(p.AnnotationPrefixes(), ", ")))
			} else {
				pr.Reasons = append(pr.Reasons, "its annotations do not ask for an identity for this pod")
			}
		}
		r.Providers = append(r.Providers, pr)
	}
	for _, w := range res.Warnings {
		if !attributed[w] {
			r.Warnings = append(r.Warnings, w)
		}
	}
	if len(res.Patch) > 0 && !denied {
		r.Adds = additions(t, res.Patch)
	}
	if in.Running {
		r.Drift = drift(e, t, fresh, freshRes.Patch)
	}
	return r
}

// freshTarget is t without env, mounts or volumes: what providers add.
func freshTarget(t mutate.Target) mutate.Target {
	meta, spec := t.Meta.DeepCopy(), t.Spec.DeepCopy()
	spec.Volumes = nil
	for _, list := range [][]corev1.Container{spec.InitContainers, spec.Containers} {
		for i := range list {
			list[i].Env, list[i].VolumeMounts = nil, nil
		}
	}
	fresh := t
	fresh.Meta, fresh.Spec, fresh.Policy = meta, spec, policy.Scope{}
	return fresh
}

// drift compares the variables each container of a running pod carries
// with those the same containers would get now, fresh: a changed
// annotation shows as a different value, a new one as a missing variable,
// a removed one as an identity the pod still carries (see removed).
func drift(engine *mutate.Engine, t, fresh mutate.Target, freshPatch []mutate.Op) []string {
	want := additionsWithValues(fresh, freshPatch)
	out := removed(engine, t, want)
	for _, list := range [][]corev1.Container{t.Spec.InitContainers, t.Spec.Containers} {
		for _, c := range list {
			have := map[string]string{}
			for _, e := range c.Env {
				have[e.Name] = e.Value
			}
			for _, v := range want[c.Name] {
				got, ok := have[v.Name]
				switch {
				case !ok:
					out = append(out, fmt.Sprintf("container %s lacks %s, which its serviceaccount now gives (%s): the pod was created before, or without, that identity",
						c.Name, v.Name, strconv.Quote(v.Value)))
				case got != v.Value:
					out = append(out, fmt.Sprintf("container %s has %s=%s; its serviceaccount now gives %s: restart the pod to take it",
						c.Name, v.Name, strconv.Quote(got), strconv.Quote(v.Value)))
				}
			}
		}
	}
	return out
}

// removed reports the identities a running pod carries (a provider's
// token volume and variable) that its ServiceAccount no longer gives.
func removed(engine *mutate.Engine, t mutate.Target, want map[string][]corev1.EnvVar) []string {
	type mark struct {
		provider string
		providers.Mark
	}
	var marks []mark
	for _, p := range engine.Providers() {
		if m, ok := p.(providers.Marker); ok {
			for _, mk := range m.InjectionMarks() {
				marks = append(marks, mark{p.Name(), mk})
			}
		}
	}
	var out []string
	hasVolume := func(name string) bool {
		return slices.ContainsFunc(t.Spec.Volumes, func(v corev1.Volume) bool { return v.Name == name })
	}
	for _, list := range [][]corev1.Container{t.Spec.InitContainers, t.Spec.Containers} {
		for _, c := range list {
			for _, m := range marks {
				if !hasVolume(m.Volume) || slices.ContainsFunc(want[c.Name], func(v corev1.EnvVar) bool { return v.Name == m.Variable }) {
					continue
				}
				for _, e := range c.Env {
					if e.Name == m.Variable {
						out = append(out, fmt.Sprintf("container %s has %s=%s, but its serviceaccount no longer gives it an identity from %s: restart the pod to drop it",
							c.Name, e.Name, strconv.Quote(e.Value), m.provider))
					}
				}
			}
		}
	}
	return out
}

// additionsWithValues returns the literal variables a patch adds, by container.
func additionsWithValues(t mutate.Target, patch []mutate.Op) map[string][]corev1.EnvVar {
	out := map[string][]corev1.EnvVar{}
	for _, op := range patch {
		m := containerPath.FindStringSubmatch(op.Path)
		if m == nil || m[3] != "env" {
			continue
		}
		raw, _ := json.Marshal(op.Value)
		var vars []corev1.EnvVar
		if m[4] != "" {
			var one corev1.EnvVar
			_ = json.Unmarshal(raw, &one)
			vars = []corev1.EnvVar{one}
		} else {
			_ = json.Unmarshal(raw, &vars)
		}
		c := container(t, m[1], m[2])
		for _, v := range vars {
			if v.ValueFrom == nil {
				out[c] = append(out[c], v)
			}
		}
	}
	return out
}

func isMirror(t mutate.Target) bool {
	_, ok := t.Meta.Annotations[mutate.MirrorAnnotation]
	return ok
}

func hasLabel(t mutate.Target, key string) bool {
	_, ok := t.Meta.Labels[key]
	return ok
}

// name is the target's name as messages write it.
func name(t mutate.Target) string {
	if t.Name == "" {
		return "<generated>"
	}
	return t.Name
}

// warningsOf returns the warnings that name provider first, as the
// engine's warnings about a provider do.
func warningsOf(warnings []string, provider string) []string {
	var out []string
	for _, w := range warnings {
		if strings.HasPrefix(w, provider+" (") || strings.HasPrefix(w, provider+":") {
			out = append(out, w)
		}
	}
	return out
}

// messagesFor returns the messages of the invalid identities and policy
// findings among errs that concern provider.
func messagesFor(errs []error, provider string) []string {
	var out []string
	for _, err := range errs {
		var ie *providers.InvalidError
		var f *policy.Finding
		if (errors.As(err, &ie) && ie.Provider == provider) || (errors.As(err, &f) && f.Provider == provider) {
			out = append(out, err.Error())
		}
	}
	return out
}

// read returns the annotations of sa under prefixes.
func read(sa *corev1.ServiceAccount, prefixes []string) map[string]string {
	var out map[string]string
	for k, v := range sa.Annotations {
		for _, p := range prefixes {
			if strings.HasPrefix(k, p) {
				if out == nil {
					out = map[string]string{}
				}
				out[k] = v
			}
		}
	}
	return out
}

// notSent says why the shipped webhook configuration would not send the
// pod to the injector (its selectors and match condition).
func notSent(in Input) []string {
	var out []string
	t := in.Target
	if v, ok := t.Meta.Labels["pod-identity.io/inject"]; ok && v == "false" {
		out = append(out, `the pod is labelled pod-identity.io/inject: "false"`)
	}
	if in.NamespaceLabels["pod-identity.io/inject"] == "disabled" {
		out = append(out, fmt.Sprintf(`namespace %q is labelled pod-identity.io/inject: disabled`, t.Namespace))
	}
	if slices.Contains(in.ExcludedNamespaces, t.Namespace) {
		out = append(out, fmt.Sprintf("namespace %q is excluded by the webhook configuration's namespaceSelector (kube-system and the injector's own are, always)", t.Namespace))
	}
	if isMirror(t) {
		out = append(out, "the pod is a static pod's mirror ("+mutate.MirrorAnnotation+"), which the API server refuses to give a token")
	}
	return out
}

var containerPath = regexp.MustCompile(`^(?:/spec/template|/spec/jobTemplate/spec/template|/template)?/spec/(initContainers|containers)/([0-9]+)/(env|volumeMounts)(/-)?$`)

// additions reads what the patch adds, by container.
func additions(t mutate.Target, patch []mutate.Op) *Additions {
	a := &Additions{Env: map[string][]string{}, Mounts: map[string][]string{}}
	names := func(v any, key string, single bool) []string {
		raw, _ := json.Marshal(v)
		var items []map[string]any
		if single {
			var one map[string]any
			_ = json.Unmarshal(raw, &one)
			items = []map[string]any{one}
		} else {
			_ = json.Unmarshal(raw, &items)
		}
		var out []string
		for _, it := range items {
			if s, ok := it[key].(string); ok {
				out = append(out, s)
			}
		}
		return out
	}
	keys := func(v any) []string {
		raw, _ := json.Marshal(v)
		var m map[string]any
		_ = json.Unmarshal(raw, &m)
		var out []string
		for k := range m {
			out = append(out, k)
		}
		sort.Strings(out)
		return out
	}
	for _, op := range patch {
		p := op.Path
		switch {
		case strings.HasSuffix(p, "/spec/volumes"):
			a.Volumes = append(a.Volumes, names(op.Value, "name", false)...)
		case strings.HasSuffix(p, "/spec/volumes/-"):
			a.Volumes = append(a.Volumes, names(op.Value, "name", true)...)
		case strings.HasSuffix(p, "/metadata/annotations"):
			a.Annotations = append(a.Annotations, keys(op.Value)...)
		case strings.Contains(p, "/metadata/annotations/"):
			a.Annotations = append(a.Annotations, unescape(p[strings.LastIndex(p, "/")+1:]))
		case strings.HasSuffix(p, "/metadata/labels"):
			a.Labels = append(a.Labels, keys(op.Value)...)
		case strings.Contains(p, "/metadata/labels/"):
			a.Labels = append(a.Labels, unescape(p[strings.LastIndex(p, "/")+1:]))
		case strings.HasSuffix(p, "/metadata"):
			m, _ := op.Value.(map[string]any)
			a.Annotations = append(a.Annotations, keys(m["annotations"])...)
			a.Labels = append(a.Labels, keys(m["labels"])...)
		default:
			m := containerPath.FindStringSubmatch(p)
			if m == nil {
				continue
			}
			c := container(t, m[1], m[2])
			if m[3] == "env" {
				a.Env[c] = append(a.Env[c], names(op.Value, "name", m[4] != "")...)
			} else {
				a.Mounts[c] = append(a.Mounts[c], names(op.Value, "mountPath", m[4] != "")...)
			}
		}
	}
	return a
}

// container names the container at a list index.
func container(t mutate.Target, list, index string) string {
	i, _ := strconv.Atoi(index)
	cs := t.Spec.Containers
	if list == "initContainers" {
		cs = t.Spec.InitContainers
	}
	if i < len(cs) {
		return cs[i].Name
	}
	return list + "[" + index + "]"
}

func unescape(s string) string {
	return strings.ReplaceAll(strings.ReplaceAll(s, "~1", "/"), "~0", "~")
}

// Text writes the report as an operator reads it.
func (r Report) Text() string {
	var b strings.Builder
	state := "found"
	if !r.Found {
		state = "not found"
	}
	if r.Object == "serviceaccount "+strconv.Quote(r.ServiceAccount) {
		fmt.Fprintf(&b, "%s, as the serviceaccount webhook checks it when it is written\n", r.Object)
	} else {
		fmt.Fprintf(&b, "%s runs as serviceaccount %q (%s)\n", r.Object, r.ServiceAccount, state)
	}
	for _, n := range r.NotSent {
		fmt.Fprintf(&b, "  not sent to the injector: %s\n", n)
	}
	for _, p := range r.Providers {
		fmt.Fprintf(&b, "  %s: %s\n", p.Name, p.Decision)
		for _, k := range sortedKeys(p.Read) {
			fmt.Fprintf(&b, "    read %s=%s\n", k, strconv.Quote(p.Read[k]))
		}
		for _, reason := range p.Reasons {
			fmt.Fprintf(&b, "    because %s\n", reason)
		}
	}
	for _, w := range r.Warnings {
		fmt.Fprintf(&b, "  warning: %s\n", w)
	}
	for _, d := range r.Drift {
		fmt.Fprintf(&b, "  stale: %s\n", d)
	}
	if a := r.Adds; a != nil {
		if len(a.Volumes) > 0 {
			fmt.Fprintf(&b, "  adds volumes %s\n", strings.Join(a.Volumes, ", "))
		}
		for _, c := range sortedKeys(a.Env) {
			fmt.Fprintf(&b, "  adds to container %s: env %s\n", c, strings.Join(a.Env[c], ", "))
		}
		for _, c := range sortedKeys(a.Mounts) {
			fmt.Fprintf(&b, "  adds to container %s: mounts at %s\n", c, strings.Join(a.Mounts[c], ", "))
		}
		if len(a.Annotations) > 0 {
			fmt.Fprintf(&b, "  adds pod annotations %s\n", strings.Join(a.Annotations, ", "))
		}
		if len(a.Labels) > 0 {
			fmt.Fprintf(&b, "  adds pod labels %s\n", strings.Join(a.Labels, ", "))
		}
	}
	return b.String()
}

func sortedKeys[V any](m map[string]V) []string {
	out := make([]string, 0, len(m))
	for k := range m {
		out = append(out, k)
	}
	sort.Strings(out)
	return out
}

// ServiceAccountInput is one ServiceAccount to explain.
type ServiceAccountInput struct {
	// ServiceAccount is the one to explain.
	ServiceAccount *corev1.ServiceAccount
	// Policy holds the identity policies of its namespace.
	Policy policy.Scope
}

// ExplainServiceAccount says which identity each provider reads from a
// ServiceAccount, as the ServiceAccount webhook checks it when it is
// written: given, invalid, refused by an identity policy, or none.
func ExplainServiceAccount(e *mutate.Engine, in ServiceAccountInput) Report {
	sa := in.ServiceAccount
	ref := sa.Namespace + "/" + sa.Name
	r := Report{Object: "serviceaccount " + strconv.Quote(ref), ServiceAccount: ref, Found: true}
	res := e.CheckServiceAccount(nil, sa, in.Policy)
	for _, p := range e.Providers() {
		pr := Provider{Name: p.Name(), Read: read(sa, p.AnnotationPrefixes()), Reasons: warningsOf(res.Warnings, p.Name())}
		invalid, refused := messagesFor(res.Invalid, p.Name()), messagesFor(res.Denied, p.Name())
		switch {
		case invalid != nil:
			pr.Decision, pr.Reasons = Invalid, append(invalid, pr.Reasons...)
		case refused != nil:
			pr.Decision, pr.Reasons = DeniedByPolicy, append(refused, pr.Reasons...)
		case len(pr.Read) > 0 && len(pr.Reasons) == 0:
			pr.Decision = GivesIdentity
		case len(pr.Reasons) > 0:
			pr.Decision = Skipped
		default:
			pr.Decision = NotSetUp
			pr.Reasons = append(pr.Reasons, fmt.Sprintf("serviceaccount %q has no annotation under %s", ref, strings.Join(p.AnnotationPrefixes(), ", ")))
		}
		r.Providers = append(r.Providers, pr)
	}
	return r
}
