package declarative

import (
	"context"
	"encoding/json"
	"fmt"
	"maps"
	"slices"
	"strconv"
	"strings"
	"sync/atomic"

	"github.com/sirupsen/logrus"
	corev1 "k8s.io/api/core/v1"

	"github.com/pod-identity/injector/internal/filewatch"
	"github.com/pod-identity/injector/internal/quote"
	"github.com/pod-identity/injector/pkg/providers"
)

// Provider is a declarative provider. Its definition is replaced when its
// file is reloaded; its name and annotation prefix stay those it started
// with.
type Provider struct {
	name, prefix string
	// keys are the ServiceAccount annotations it reads, fixed at start
	// (the ServiceAccount cache keeps those).
	keys []string
	def  atomic.Pointer[Definition]
}

// New returns the provider of a definition that is not reloaded.
func New(d *Definition) *Provider {
	p := &Provider{name: d.Name, prefix: d.AnnotationPrefix, keys: d.keys()}
	p.def.Store(d)
	return p
}

// Name implements providers.Provider.
func (p *Provider) Name() string { return p.name }

// AnnotationPrefixes implements providers.Provider.
func (p *Provider) AnnotationPrefixes() []string { return []string{p.prefix} }

// ServiceAccountKeys implements providers.KeyReader: the identity's
// annotation and every other the definition it started with reads (a
// reload that reads others takes a restart).
func (p *Provider) ServiceAccountKeys() []string { return slices.Clone(p.keys) }

// TokenAudiences implements providers.Enforcer: the fixed audience, if the
// provider has one.
func (p *Provider) TokenAudiences() []string {
	if a := p.def.Load().spec.Token.Audience; a != "" {
		return []string{a}
	}
	return nil
}

// IdentityVariables implements providers.Enforcer: the variables whose
// value holds the identity.
func (p *Provider) IdentityVariables() map[string]string {
	out := map[string]string{}
	for _, v := range p.def.Load().env {
		for _, part := range v.value {
			if part.kind == identityPH {
				out[v.name] = "identities"
			}
		}
	}
	return out
}

// IdentityAffixes implements providers.Affixer: the variables whose value
// is the identity with literal text around it and no other placeholder.
func (p *Provider) IdentityAffixes() map[string]providers.Affix {
	d := p.def.Load()
	out := map[string]providers.Affix{}
	for _, v := range d.env {
		a := providers.Affix{Pattern: d.spec.Identity.Pattern}
		identity, other := 0, false
		for i, part := range v.value {
			switch {
			case part.kind == identityPH:
				identity++
			case part.kind != "":
				other = true
			case identity == 0:
				a.Prefix += v.value[i].text
			default:
				a.Suffix += v.value[i].text
			}
		}
		if identity == 1 && !other && (a.Prefix != "" || a.Suffix != "") {
			out[v.name] = a
		}
	}
	return out
}

// InjectionMarks implements providers.Marker: the token volume, and the
// variable whose value holds the identity.
func (p *Provider) InjectionMarks() []providers.Mark {
	d := p.def.Load()
	for _, v := range d.env {
		for _, part := range v.value {
			if part.kind == identityPH {
				return []providers.Mark{{Volume: d.spec.Token.VolumeName, Variable: v.name}}
			}
		}
	}
	return nil
}

// PodLabels implements providers.PodLabelReader: the pod label gate, if
// the provider has one.
func (p *Provider) PodLabels() map[string][]string {
	g := p.def.Load().spec.PodLabel
	if g == nil {
		return nil
	}
	return map[string][]string{g.Name: slices.Clone(g.Values)}
}

// Inject implements providers.Provider.
func (p *Provider) Inject(req providers.Request) (*providers.Injection, error) {
	d := p.def.Load()
	s, sa := d.spec, req.ServiceAccount
	key := s.Identity.Annotation
	identity, ok := req.Value(key)
	if !ok {
		return d.halfConfigured(req), nil
	}
	if g := s.PodLabel; g != nil && !req.ServiceAccountOnly && !slices.Contains(g.Values, req.PodMeta.Labels[g.Name]) {
		return nil, nil
	}
	if !d.pattern.MatchString(identity) {
		return nil, req.Invalid(d.Name, key, sa.Annotations[key], s.Identity.Expected)
	}
	inj := &providers.Injection{
		Provider:   d.Name,
		Source:     "serviceaccount " + strconv.Quote(req.SARef()) + " annotation " + key,
		Identities: []providers.Identity{{Field: "identities", Source: "annotation " + key, Value: identity, CaseInsensitive: s.Identity.CaseInsensitive}},
	}
	e := d.expiration
	expiration := e.Default
	if e.Annotation != "" {
		var warning string
		var err error
		expiration, warning, err = req.TokenExpiration(d.Name, e.Annotation, e.Default,
			providers.Bounds{Min: e.Min, Max: e.Max, Clamp: e.Clamp, Lenient: e.OnInvalid == "default"})
		if err != nil {
			return nil, err
		}
		if warning != "" {
			inj.Warnings = append(inj.Warnings, warning)
		}
	}
	for _, key := range d.reads {
		// Every annotation the provider reads is checked before it
		// reaches a pod: a ServiceAccount is hostile input.
		if re, ok := d.values[key]; ok {
			if v, set := req.Value(key); set && !re.MatchString(v) {
				return nil, req.Invalid(d.Name, key, sa.Annotations[key], s.Annotations[key].Expected)
			}
		}
	}
	audience := s.Token.Audience
	if a := s.Token.AudienceAnnotation; a != "" {
		if v, ok := req.Value(a); ok && v != audience {
			audience = v
			inj.Identities = append(inj.Identities, providers.AudienceIdentity(a, v))
		}
	}
	vals := values{annotation: req.Value, fixed: map[string]string{identityPH: identity, namespacePH: sa.Namespace,
		serviceAccountPH: sa.Name, tokenPathPH: d.tokenPath, audiencePH: audience}}
	for _, v := range d.env {
		value, ok := v.value.render(vals)
		if !ok {
			continue
		}
		i := slices.IndexFunc(inj.Env, func(g providers.EnvGroup) bool { return g.Name == v.group })
		if i < 0 {
			inj.Env = append(inj.Env, providers.EnvGroup{Name: v.group})
			i = len(inj.Env) - 1
		}
		inj.Env[i].Vars = append(inj.Env[i].Vars, corev1.EnvVar{Name: v.name, Value: value})
	}
	if d.tokenFileVar != "" {
		inj.TokenFileVariables = []string{d.tokenFileVar}
	}
	inj.OverridingVariables = slices.Clone(s.OverridingVariables)
	inj.Volumes = []corev1.Volume{providers.TokenVolume(s.Token.VolumeName, audience, expiration, s.Token.FileName)}
	inj.Mounts = []providers.Mount{{VolumeName: s.Token.VolumeName, MountPath: s.Token.MountPath}}
	if c := s.Containers; c != nil {
		if err := req.Containers(d.Name, c.SkipAnnotation, c.OnlyAnnotation, c.Separator, inj); err != nil {
			return nil, err
		}
	}
	return inj, nil
}

// halfConfigured warns about a ServiceAccount that has annotations the
// provider reads but not the one that turns it on. Nil when it has none.
func (d *Definition) halfConfigured(req providers.Request) *providers.Injection {
	return req.MissingIdentity(d.Name, d.reads, d.spec.Identity.Annotation, d.Name, d.spec.Identity.Expected)
}

// Load reads the provider config files and returns their providers, in
// order, reloading each file until ctx ends. A file that does not load
// at start is an error naming the file and the field. A later change
// that does not load, or that adds, removes or renames a provider or
// changes its annotation prefix (which the ServiceAccount cache and the
// --enable-<name> flags fixed at start), is logged and the file's last
// good providers are kept. reserved are the compiled-in providers' names;
// read gives each file's first contents (nil: read it).
func Load(ctx context.Context, files []string, reserved []string, read func(string) ([]byte, error), log logrus.FieldLogger) ([]*Provider, error) {
	var out []*Provider
	for _, file := range files {
		taken := append(slices.Clone(reserved), names(out)...)
		var started []*Provider
		parse := func(data []byte) ([]*Definition, error) {
			defs, err := Parse(data, taken...)
			switch {
			case err != nil:
				return nil, err
			case started == nil: // the first load, before the watch starts
				for _, d := range defs {
					started = append(started, New(d))
				}
				return defs, nil
			}
			return defs, sameShape(started, defs)
		}
		var first []byte
		if read != nil {
			b, err := read(file)
			if err != nil {
				return nil, fmt.Errorf("read provider config: %w", err)
			}
			first = b
		}
		_, err := filewatch.FileFrom(ctx, file, "provider config", first, parse, func(defs []*Definition) {
			for i, d := range defs {
				started[i].def.Store(d)
			}
		}, log)
		if err != nil {
			return nil, err // it names the file and the field
		}
		out = append(out, started...)
	}
	return out, nil
}

// sameShape says why a reloaded file cannot replace the running one.
func sameShape(running []*Provider, defs []*Definition) error {
	was, now := names(running), make([]string, len(defs))
	for i, d := range defs {
		now[i] = d.Name
	}
	if !slices.Equal(was, now) {
		return fmt.Errorf("the providers changed from %s to %s: adding, removing, renaming or reordering providers takes a restart",
			strings.Join(was, ", "), strings.Join(now, ", "))
	}
	for i, d := range defs {
		if d.AnnotationPrefix != running[i].prefix {
			return fmt.Errorf("providers[%d].annotationPrefix changed from %q to %q: that takes a restart", i, running[i].prefix, d.AnnotationPrefix)
		}
		if was, now := running[i].keys, d.keys(); !slices.Equal(was, now) {
			return fmt.Errorf("providers[%d] now reads the serviceaccount annotations %s instead of %s: that takes a restart (the serviceaccount cache keeps only those read at start)",
				i, strings.Join(now, ", "), strings.Join(was, ", "))
		}
	}
	return nil
}

func names(ps []*Provider) []string {
	out := make([]string, len(ps))
	for i, p := range ps {
		out[i] = p.name
	}
	return out
}

// Names reads the names the provider config files declare, for the
// --enable-<name> flags, which exist before the flags are parsed. It
// returns the names of the files it could read and the first error.
func Names(files []string, read func(string) ([]byte, error)) ([]string, error) {
	var out []string
	for _, file := range files {
		data, err := read(file)
		if err != nil {
			return out, err
		}
		defs, err := Parse(data)
		if err != nil {
			return out, err
		}
		for _, d := range defs {
			out = append(out, d.Name)
		}
	}
	return out, nil
}

// Trust implements providers.TrustDescriber from the file's trust
// templates; nil when the file declares none.
func (p *Provider) Trust(issuer string, sa *corev1.ServiceAccount, inj *providers.Injection) ([]providers.TrustObject, error) {
	d := p.def.Load()
	t := d.trust
	if t == nil || inj == nil || len(inj.Identities) == 0 {
		return nil, nil
	}
	audience := d.spec.Token.Audience
	for _, id := range inj.Identities {
		if id.Field == "audiences" {
			audience = id.Value
		}
	}
	fixed := map[string]string{identityPH: inj.Identities[0].Value, namespacePH: sa.Namespace, serviceAccountPH: sa.Name,
		tokenPathPH: d.tokenPath, audiencePH: audience, issuerPH: issuer, subjectPH: "system:serviceaccount:" + sa.Namespace + ":" + sa.Name}
	annotation := func(key string) (string, bool) {
		v, ok := sa.Annotations[key]
		return strings.TrimSpace(v), ok
	}
	v := values{fixed: fixed, annotation: annotation}
	target, ok := t.target.render(v)
	if !ok {
		return nil, fmt.Errorf("%s trust: the target reads an annotation serviceaccount %q does not set", d.Name, sa.Namespace+"/"+sa.Name)
	}
	object, ok := renderDocument(t.document, v)
	if !ok {
		return nil, fmt.Errorf("%s trust: for serviceaccount %q, the document reads an annotation it does not set, or two of its keys come out the same", d.Name, sa.Namespace+"/"+sa.Name)
	}
	doc, isText := object.(string)
	if !isText {
		compact, err := json.Marshal(object)
		if err != nil {
			return nil, fmt.Errorf("%s trust for serviceaccount %q: %w", d.Name, sa.Namespace+"/"+sa.Name, err)
		}
		doc = string(compact)
	}
	withDoc := maps.Clone(fixed)
	withDoc[documentPH] = doc
	// Every value is one word of the command, whatever it holds.
	command, _ := t.command.render(values{fixed: withDoc, annotation: annotation, escape: quote.Shell})
	return []providers.TrustObject{{Kind: t.kind, Target: target, Object: object, Command: command, Additive: t.additive}}, nil
}

// renderDocument fills in a parsed document's templates.
func renderDocument(doc any, v values) (any, bool) {
	switch x := doc.(type) {
	case template:
		return x.render(v)
	case map[string]any:
		out := make(map[string]any, len(x))
		for _, m := range x {
			kv := m.(keyed)
			k, ok := kv.key.render(v)
			if !ok {
				return nil, false
			}
			if _, dup := out[k]; dup {
				// Two templated keys that came out the same: which value
				// wins would be chance.
				return nil, false
			}
			if out[k], ok = renderDocument(kv.value, v); !ok {
				return nil, false
			}
		}
		return out, true
	case []any:
		out := make([]any, len(x))
		for i, e := range x {
			var ok bool
			if out[i], ok = renderDocument(e, v); !ok {
				return nil, false
			}
		}
		return out, true
	}
	return doc, true
}
