// Package mutate is the provider-agnostic injection engine. It asks every
// enabled provider what a pod needs and turns the answers into an additive
// JSON patch: it only ever adds volumes, mounts, environment variables,
// annotations and labels, never replaces or removes anything, so fields the
// compiled Kubernetes API does not know survive untouched.
package mutate

import (
	"errors"
	"fmt"
	"reflect"
	"slices"
	"strconv"
	"strings"

	corev1 "k8s.io/api/core/v1"
	"k8s.io/apimachinery/pkg/api/equality"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"

	"github.com/pod-identity/injector/internal/quote"
	"github.com/pod-identity/injector/pkg/policy"
	"github.com/pod-identity/injector/pkg/providers"
)

// Engine applies the enabled providers to pods.
type Engine struct {
	providers []providers.Provider
	// apiAudiences are those of tokens the API server accepts, loosely
	// compared (LooseAudience).
	apiAudiences []string
}

// WithAPIAudiences sets the audiences the API server accepts tokens for:
// a token a pod has with one of them (and no provider's) is a Kubernetes
// API token, as one with no audience is. It returns e; call it before the
// engine is used.
func (e *Engine) WithAPIAudiences(audiences []string) *Engine {
	e.apiAudiences = nil
	for _, a := range audiences {
		if a = LooseAudience(a); a != "" {
			e.apiAudiences = append(e.apiAudiences, a)
		}
	}
	return e
}

// APIAudiences are the audiences the API server accepts tokens for
// (WithAPIAudiences), loosened as LooseAudience does.
func (e *Engine) APIAudiences() []string { return slices.Clone(e.apiAudiences) }

// IsAPIAudience says whether the API server accepts tokens of audience a
// (WithAPIAudiences), compared loosely.
func (e *Engine) IsAPIAudience(a string) bool {
	return slices.Contains(e.apiAudiences, LooseAudience(a))
}

// New returns an engine for the given providers, applied in order.
func New(ps []providers.Provider) *Engine {
	return &Engine{providers: ps}
}

// Providers returns the engine's providers.
func (e *Engine) Providers() []providers.Provider { return e.providers }

// AnnotationPrefixes returns the ServiceAccount annotation prefixes that any
// provider reads.
func (e *Engine) AnnotationPrefixes() []string {
	var out []string
	for _, p := range e.providers {
		out = append(out, p.AnnotationPrefixes()...)
	}
	return out
}

// CacheKeys returns what the ServiceAccount cache must keep for the
// providers: the keys named by those that implement providers.KeyReader,
// and the prefixes of the others.
func (e *Engine) CacheKeys() (prefixes, keys []string) {
	for _, p := range e.providers {
		if kr, ok := p.(providers.KeyReader); ok {
			keys = append(keys, kr.ServiceAccountKeys()...)
			continue
		}
		prefixes = append(prefixes, p.AnnotationPrefixes()...)
	}
	return prefixes, keys
}

// ProviderNames lists the names of the engine's providers, in order.
func (e *Engine) ProviderNames() []string {
	names := make([]string, len(e.providers))
	for i, p := range e.providers {
		names[i] = p.Name()
	}
	return names
}

// Target is a pod or a pod template to mutate. The engine reads Meta and Spec
// and never changes them.
type Target struct {
	// Namespace and Name identify the pod in messages (Name may be a
	// generateName prefix or empty).
	Namespace, Name string
	// Meta and Spec are the pod's (or template's) metadata and spec.
	Meta *metav1.ObjectMeta
	Spec *corev1.PodSpec
	// Path is the JSON pointer of the pod (template) within the document:
	// "" for a Pod, "/spec/template" for a Deployment.
	Path string
	// NoMeta says the document has no metadata object at Path yet.
	NoMeta bool
	// Policy is the identity policies that apply in the namespace; the
	// zero Scope allows everything.
	Policy policy.Scope
}

// Result is what the engine decided for one pod.
type Result struct {
	// Patch holds the additive JSON patch operations, empty when nothing changes.
	Patch []Op
	// Warnings explain every skip and clamp, one line each.
	Warnings []string
	// Injected lists the providers that added something.
	Injected []string
	// Skipped lists a provider once for every pod or container it skipped
	// because of a conflict (each also has a warning).
	Skipped []string
	// Invalid holds one error per provider whose configuration for this pod
	// is invalid (each an *providers.InvalidError); that provider added nothing.
	Invalid []error
	// Denied holds the identity policy rules the pod breaks whose
	// enforcement is Deny (each a *policy.Finding), or a
	// *PatchTooLargeError. A denied pod gets nothing: Patch and Injected
	// are empty.
	Denied []error
}

// MirrorAnnotation marks the API server's mirror of a static pod. Such a
// pod is never mutated: the API server refuses a mirror pod that mounts a
// ServiceAccount token, so an injected one would never be created.
const MirrorAnnotation = "kubernetes.io/config.mirror"

func isMirror(t Target) bool {
	_, ok := t.Meta.Annotations[MirrorAnnotation]
	return ok
}

// Mutate decides what the providers add to the target running as sa.
func (e *Engine) Mutate(t Target, sa *corev1.ServiceAccount) Result {
	var res Result
	if isMirror(t) {
		return res
	}
	req := providers.Request{Namespace: t.Namespace, PodName: t.Name, PodMeta: t.Meta, PodSpec: t.Spec, ServiceAccount: sa}
	injections := make([]*providers.Injection, 0, len(e.providers))
	names := make([]string, 0, len(e.providers))
	vars, mounts := 0, 0
	for _, p := range e.providers {
		if err := oversized(p, sa); err != nil {
			res.Invalid = append(res.Invalid, err)
			continue
		}
		inj, err := p.Inject(req)
		if err != nil {
			res.Invalid = append(res.Invalid, err)
			continue
		}
		if inj == nil {
			continue
		}
		injections, names = append(injections, inj), append(names, p.Name())
		for _, g := range inj.Env {
			vars += len(g.Vars)
		}
		mounts += len(inj.Mounts)
	}
	if len(injections) == 0 {
		return res
	}
	if !t.Policy.Empty() {
		v := t.Policy.Evaluate(policy.Check{
			Namespace: sa.Namespace, ServiceAccount: sa.Name, Pod: t.Name, PodCheck: true,
			Providers: identities(injections), APIToken: apiToken(t.Spec, sa),
		})
		if res.Denied = v.Denied(); len(res.Denied) > 0 {
			res.Warnings = v.Warnings()
			return res
		}
		res.Warnings = append(res.Warnings, v.Warnings()...)
	}
	st := newState(t, vars, mounts)
	for i, inj := range injections {
		res.Warnings = append(res.Warnings, inj.Warnings...)
		changed, warnings, notes := st.apply(req, inj)
		res.Warnings = append(res.Warnings, warnings...)
		for range warnings {
			res.Skipped = append(res.Skipped, names[i])
		}
		res.Warnings = append(res.Warnings, notes...)
		if changed {
			res.Injected = append(res.Injected, names[i])
		}
	}
	if n, containers := st.size(); n > MaxPatchBytes {
		// Refused before a byte of it is encoded.
		res.Denied = []error{&PatchTooLargeError{Pod: t.Namespace + "/" + nameOr(t.Name), Providers: res.Injected, Bytes: n, Containers: containers}}
		res.Injected = nil
		return res
	}
	res.Patch = st.patch()
	return res
}

func nameOr(name string) string {
	if name == "" {
		return "<generated>"
	}
	return name
}

// InvalidAsWarnings returns the invalid configurations as admission
// warnings, for --invalid-identity=warn: the pod is admitted without the
// injection of those providers.
func (r Result) InvalidAsWarnings() []string {
	out := make([]string, 0, len(r.Invalid))
	for _, err := range r.Invalid {
		msg := err.Error()
		var ie *providers.InvalidError
		if errors.As(err, &ie) {
			msg += "; admitted without the " + ie.Provider + " identity"
		}
		out = append(out, msg)
	}
	return out
}

// containerRef addresses one container: its list ("initContainers" or
// "containers") and index.
type containerRef struct {
	list  string
	index int
}

// state is the pod as the providers see it so far: the original plus
// everything added, and the additions in order.
type state struct {
	t          Target
	containers []containerRef
	// what has been added, in order
	annotations, labels []kv
	volumes             []corev1.Volume
	// env and mounts hold what is added to containers[i], by i.
	env    [][]corev1.EnvVar
	mounts [][]corev1.VolumeMount
}

type kv struct{ k, v string }

// newState prepares the additions for a target, with room for vars
// variables and mounts mounts per container.
func newState(t Target, vars, mounts int) *state {
	n := len(t.Spec.InitContainers) + len(t.Spec.Containers)
	s := &state{t: t, containers: make([]containerRef, 0, n), env: make([][]corev1.EnvVar, n), mounts: make([][]corev1.VolumeMount, n)}
	envs, mnts := make([]corev1.EnvVar, 0, n*vars), make([]corev1.VolumeMount, 0, n*mounts)
	for i := range n {
		// Each container appends into its own fixed window of one array.
		s.env[i] = envs[i*vars : i*vars : (i+1)*vars]
		s.mounts[i] = mnts[i*mounts : i*mounts : (i+1)*mounts]
	}
	for i := range t.Spec.InitContainers {
		s.containers = append(s.containers, containerRef{"initContainers", i})
	}
	for i := range t.Spec.Containers {
		s.containers = append(s.containers, containerRef{"containers", i})
	}
	return s
}

func (s *state) container(r containerRef) *corev1.Container {
	if r.list == "initContainers" {
		return &s.t.Spec.InitContainers[r.index]
	}
	return &s.t.Spec.Containers[r.index]
}

func (s *state) podRef() string { return podRef(s.t) }

// podRef names the target in messages, quoted: "namespace/name".
func podRef(t Target) string {
	return strconv.Quote(t.Namespace + "/" + nameOr(t.Name))
}

// identities lists, for the policies, the identities of the injections
// that hand the pod one (not those that only warn).
func identities(injections []*providers.Injection) []policy.ProviderIdentities {
	var out []policy.ProviderIdentities
	for _, inj := range injections {
		if inj.Injects() {
			out = append(out, policy.ProviderIdentities{Provider: inj.Provider, Identities: inj.Identities})
		}
	}
	return out
}

// apiToken says whether a pod mounts a Kubernetes API token, as the API
// server decides it: the pod's automountServiceAccountToken, else its
// ServiceAccount's, else true.
func apiToken(spec *corev1.PodSpec, sa *corev1.ServiceAccount) *policy.APIToken {
	switch {
	case spec.AutomountServiceAccountToken != nil:
		return &policy.APIToken{Mounted: *spec.AutomountServiceAccountToken, Source: policy.TokenFromPod}
	case sa.AutomountServiceAccountToken != nil:
		return &policy.APIToken{Mounted: *sa.AutomountServiceAccountToken, Source: policy.TokenFromServiceAccount}
	}
	return &policy.APIToken{Mounted: true, Source: policy.TokenDefault}
}

// metaValue returns the current value of a pod annotation or label.
func (s *state) metaValue(labels bool, key string) (string, bool) {
	m, added := s.t.Meta.Annotations, s.annotations
	if labels {
		m, added = s.t.Meta.Labels, s.labels
	}
	if v, ok := m[key]; ok {
		return v, true
	}
	for _, a := range added {
		if a.k == key {
			return a.v, true
		}
	}
	return "", false
}

func (s *state) volume(name string) *corev1.Volume {
	for i := range s.t.Spec.Volumes {
		if s.t.Spec.Volumes[i].Name == name {
			return &s.t.Spec.Volumes[i]
		}
	}
	for i := range s.volumes {
		if s.volumes[i].Name == name {
			return &s.volumes[i]
		}
	}
	return nil
}

func (s *state) envVar(ci int, name string) (*corev1.EnvVar, bool) {
	c := s.container(s.containers[ci])
	for i := range c.Env {
		if c.Env[i].Name == name {
			return &c.Env[i], true
		}
	}
	for i, e := range s.env[ci] {
		if e.Name == name {
			return &s.env[ci][i], true
		}
	}
	return nil, false
}

func (s *state) mountAt(ci int, path string) (*corev1.VolumeMount, bool) {
	c := s.container(s.containers[ci])
	for i := range c.VolumeMounts {
		if cleanPath(c.VolumeMounts[i].MountPath) == path {
			return &c.VolumeMounts[i], true
		}
	}
	for i, m := range s.mounts[ci] {
		if m.MountPath == path {
			return &s.mounts[ci][i], true
		}
	}
	return nil, false
}

func cleanPath(p string) string {
	if len(p) > 1 {
		return strings.TrimRight(p, "/")
	}
	return p
}

// envTaken says whether container ci already sets any variable of the
// injection's env group named group (set lists them, names are the
// group's), and whether it sets them to something else than the group
// would (taken): a group already injected exactly is neither added nor
// warned about.
func (s *state) envTaken(ci int, inj *providers.Injection, group string) (set, names []string, taken bool) {
	for _, g := range inj.Env {
		if g.Name != group {
			continue
		}
		same := true
		for _, e := range g.Vars {
			names = append(names, e.Name)
			if have, ok := s.envVar(ci, e.Name); ok {
				set = append(set, e.Name)
				same = same && reflect.DeepEqual(*have, e)
			}
		}
		return set, names, len(set) > 0 && !(len(set) == len(g.Vars) && same)
	}
	return nil, nil, false
}

// otherTokenFile says whether container ci sets one of the injection's
// token file variables to anything but what the injection gives: which,
// and to what.
func (s *state) otherTokenFile(ci int, inj *providers.Injection) (name, value string, other bool) {
	for _, name := range inj.TokenFileVariables {
		have, ok := s.envVar(ci, name)
		if !ok || setsExactly(inj, *have) {
			continue
		}
		if have.ValueFrom != nil {
			return name, "(a reference)", true
		}
		return name, have.Value, true
	}
	return "", "", false
}

// knownTokenFile names the other injector whose layout path is, or "".
func knownTokenFile(inj *providers.Injection, path string) string {
	for _, k := range inj.KnownTokenFiles {
		if wholeMatch(k.Pattern, path) {
			return k.Injector
		}
	}
	return ""
}

// apply adds one provider's injection. It reports whether anything was
// added, the warnings for everything it skipped, and notes on what it
// added that the container will not use (OverridingVariables).
func (s *state) apply(req providers.Request, inj *providers.Injection) (bool, []string, []string) {
	var warnings, notes []string
	warn := func(format string, args ...any) {
		warnings = append(warnings, fmt.Sprintf("%s (%s): ", inj.Provider, inj.Source)+fmt.Sprintf(format, args...))
	}

	// Pod-level conflicts skip the whole provider.
	var newVolumes []corev1.Volume
	for _, v := range inj.Volumes {
		have := s.volume(v.Name)
		if have == nil {
			newVolumes = append(newVolumes, v)
			continue
		}
		if !sameVolume(*have, v) {
			warn("pod %s already has a different volume named %q; nothing was injected (rename that volume)", s.podRef(), v.Name)
			return false, warnings, nil
		}
	}
	for _, labels := range [2]bool{false, true} {
		want, what := inj.Annotations, "annotation"
		if labels {
			want, what = inj.Labels, "label"
		}
		for _, k := range sortedKeys(want) {
			if v, ok := s.metaValue(labels, k); ok && v != want[k] {
				warn("pod %s already has %s %s=%s; nothing was injected (remove that %s)", s.podRef(), what, k, quote.Value(v), what)
				return false, warnings, nil
			}
		}
	}

	changed, mounted := false, false
	for ci, r := range s.containers {
		c := s.container(r)
		if slices.Contains(inj.SkipContainers, c.Name) || (len(inj.OnlyContainers) > 0 && !slices.Contains(inj.OnlyContainers, c.Name)) {
			continue
		}
		if name, have, other := s.otherTokenFile(ci, inj); other {
			if who := knownTokenFile(inj, have); who != "" {
				warn("pod %s container %s sets %s=%s, the token path of %s, as that webhook's injection does; nothing was added to it (run one of the two for %s pods, or remove %s from the container to use this injection)",
					s.podRef(), quote.Value(c.Name), name, quote.Value(have), who, inj.Provider, name)
				continue
			}
			warn("pod %s container %s sets %s=%s, another token than the one the %s injection gives; nothing was added to it (remove %s from the container to use the injected identity)",
				s.podRef(), quote.Value(c.Name), name, quote.Value(have), inj.Provider, name)
			continue
		}
		var newMounts []corev1.VolumeMount
		conflict := false
		for _, m := range inj.Mounts {
			path := cleanPath(m.MountPath)
			have, ok := s.mountAt(ci, path)
			if !ok {
				newMounts = append(newMounts, corev1.VolumeMount{Name: m.VolumeName, MountPath: m.MountPath, ReadOnly: !m.Writable})
				continue
			}
			if have.Name != m.VolumeName {
				warn("pod %s container %s already mounts volume %s at %s; the container was skipped (move that mount)", s.podRef(), quote.Value(c.Name), quote.Value(have.Name), m.MountPath)
				conflict = true
				break
			}
		}
		if conflict {
			continue
		}
		mounted = true
		for _, name := range inj.OverridingVariables {
			if _, ok := s.envVar(ci, name); ok {
				notes = append(notes, fmt.Sprintf("%s (%s): pod %s container %s sets %s, which the SDK uses before the injected identity: the identity was injected but will not be used (remove %s from the container)",
					inj.Provider, inj.Source, s.podRef(), quote.Value(c.Name), name, name))
			}
		}
		if len(newMounts) > 0 {
			s.mounts[ci] = append(s.mounts[ci], newMounts...)
			changed = true
		}
		for _, g := range inj.Env {
			set, names, taken := s.envTaken(ci, inj, g.Name)
			switch {
			case taken && len(names) == 1:
				warn("pod %s container %s keeps its own %s; the injected one was not added (remove it from the container to use the injected identity)",
					s.podRef(), quote.Value(c.Name), names[0])
			case taken:
				warn("pod %s container %s already sets %s; none of %s was added (remove %s from the container to use the injected identity)",
					s.podRef(), quote.Value(c.Name), strings.Join(set, ", "), strings.Join(names, ", "), strings.Join(set, ", "))
			case len(set) == 0:
				s.env[ci] = append(s.env[ci], g.Vars...)
				changed = true
			}
		}
	}
	if !mounted {
		return false, warnings, nil
	}
	if len(newVolumes) > 0 {
		s.volumes = append(s.volumes, newVolumes...)
		changed = true
	}
	for _, labels := range []bool{false, true} {
		want := inj.Annotations
		if labels {
			want = inj.Labels
		}
		for _, k := range sortedKeys(want) {
			if _, ok := s.metaValue(labels, k); ok {
				continue
			}
			if labels {
				s.labels = append(s.labels, kv{k, want[k]})
			} else {
				s.annotations = append(s.annotations, kv{k, want[k]})
			}
			changed = true
		}
	}
	return changed, warnings, notes
}

func sortedKeys(m map[string]string) []string {
	keys := make([]string, 0, len(m))
	for k := range m {
		keys = append(keys, k)
	}
	slices.Sort(keys)
	return keys
}

// sameVolume reports whether have is the volume want, allowing for the
// defaults the API server fills in.
func sameVolume(have, want corev1.Volume) bool {
	// Semantic: an empty list or map is the same as none, as they are once
	// the API server has stored the pod (a label selector's
	// matchExpressions, say).
	return equality.Semantic.DeepEqual(normalizeVolume(have), normalizeVolume(want))
}

func normalizeVolume(v corev1.Volume) corev1.Volume {
	const defaultMode = corev1.ProjectedVolumeSourceDefaultMode
	if p := v.Projected; p != nil {
		cp := *p
		if cp.DefaultMode == nil {
			m := int32(defaultMode)
			cp.DefaultMode = &m
		}
		cp.Sources = slices.Clone(cp.Sources)
		for i, src := range cp.Sources {
			if src.DownwardAPI != nil {
				d := *src.DownwardAPI
				d.Items = defaultFieldRefs(d.Items)
				cp.Sources[i].DownwardAPI = &d
			}
		}
		v.Projected = &cp
	}
	if v.EmptyDir != nil {
		// A scratch directory is one whatever its medium or size.
		v.EmptyDir = &corev1.EmptyDirVolumeSource{}
	}
	if d := v.DownwardAPI; d != nil {
		cp := *d
		if cp.DefaultMode == nil {
			m := int32(corev1.DownwardAPIVolumeSourceDefaultMode)
			cp.DefaultMode = &m
		}
		cp.Items = defaultFieldRefs(cp.Items)
		v.DownwardAPI = &cp
	}
	return v
}

// defaultFieldRefs returns items with the API version of field references
// defaulted as the API server does.
func defaultFieldRefs(items []corev1.DownwardAPIVolumeFile) []corev1.DownwardAPIVolumeFile {
	items = slices.Clone(items)
	for j := range items {
		if f := items[j].FieldRef; f != nil && f.APIVersion == "" {
			ff := *f
			ff.APIVersion = "v1"
			items[j].FieldRef = &ff
		}
	}
	return items
}
