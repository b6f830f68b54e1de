// Package declarative builds providers from configuration files instead of
// Go: a cloud that federates Kubernetes ServiceAccount tokens the way AWS,
// Azure and Google do (an annotation names the identity, the pod gets an
// audience-bound token file and a few environment variables) is a file
// given to --provider-config. The providers it builds are
// providers.Provider values like the compiled ones, so the engine applies
// them with the same rules. docs/providers.md describes the format, and
// deploy/providers holds examples.
package declarative

import (
	"errors"
	"fmt"
	"maps"
	"path"
	"regexp"
	"slices"
	"strconv"
	"strings"

	jsonv2 "github.com/go-json-experiment/json"
	"k8s.io/apimachinery/pkg/util/validation"
	"sigs.k8s.io/yaml"
)

// APIVersion and Kind identify a provider config file.
const (
	APIVersion = "pod-identity.io/v1alpha1"
	Kind       = "ProviderConfig"
)

// Token lifetimes the API server accepts in a projected volume, and the
// defaults of a provider that sets none.
const (
	MinTokenExpiration     = 600
	MaxTokenExpiration     = 1 << 32
	DefaultTokenExpiration = 3600
	defaultMaxExpiration   = 86400
)

// File is the content of a provider config file.
type File struct {
	// APIVersion is pod-identity.io/v1alpha1.
	APIVersion string `json:"apiVersion"`
	// Kind is ProviderConfig.
	Kind string `json:"kind"`
	// Providers are the providers the file declares, applied in order
	// after the compiled-in ones.
	Providers []Spec `json:"providers"`
}

// Spec declares one provider.
type Spec struct {
	// Name is the provider's short name, in messages, metrics,
	// --enable-<name> and IdentityPolicy's spec.providers: a DNS label.
	Name string `json:"name"`
	// AnnotationPrefix is the prefix of every ServiceAccount annotation the
	// provider reads, ending in "/" (the ServiceAccount cache keeps only
	// annotations under the providers' prefixes).
	AnnotationPrefix string `json:"annotationPrefix"`
	// Identity is the annotation that turns the provider on.
	Identity IdentitySpec `json:"identity"`
	// PodLabel, when set, injects only pods that carry the label with one
	// of the values.
	PodLabel *LabelGate `json:"podLabel,omitempty"`
	// Token is the projected ServiceAccount token.
	Token TokenSpec `json:"token"`
	// Env are the environment variables every injected container gets.
	Env []EnvSpec `json:"env"`
	// Containers, when set, names the pod annotations that list the
	// containers to leave out, or the only ones to inject.
	Containers *ContainersSpec `json:"containers,omitempty"`
	// Annotations declare, by key, the values allowed in every other
	// ServiceAccount annotation the provider reads (token.audienceAnnotation
	// and each {annotation:<key>} of a template): a ServiceAccount is
	// hostile input, and a value that does not match is an invalid
	// configuration, refused with Expected in the message.
	Annotations map[string]AnnotationSpec `json:"annotations,omitempty"`
	// Trust, when set, is the object the provider's cloud must hold to
	// accept one ServiceAccount's tokens, which `injector trust` prints.
	Trust *TrustSpec `json:"trust,omitempty"`
	// OverridingVariables are variables the SDKs use before the injected
	// identity (a static API key): a container that sets one is warned
	// that the identity will not be used.
	OverridingVariables []string `json:"overridingVariables,omitempty"`
}

// TrustSpec is the cloud-side object of one ServiceAccount's identity,
// as templates: besides the placeholders of env values they may use
// {issuer} (the cluster's issuer URL) and {subject} (the token subject,
// system:serviceaccount:<namespace>:<name>), and Command {document}.
type TrustSpec struct {
	// Kind says what the object is, e.g. "RAM role trust policy".
	Kind string `json:"kind"`
	// Target names what the object belongs to, e.g. the role's ARN.
	Target string `json:"target"`
	// Document is the object itself: a text template, or a JSON document
	// (written as YAML) each of whose strings, keys included, is a
	// template.
	Document any `json:"document"`
	// Command applies it with the cloud's CLI; {document} is the
	// document (as compact JSON, or the text), one shell word.
	Command string `json:"command,omitempty"`
	// Additive says that each ServiceAccount's document is added beside
	// the others of its target (policy statements, a provider's subject
	// mappings). Without it, applying a document replaces the target's
	// (a role's trust policy, a rule's one subject), so `injector trust`
	// refuses two ServiceAccounts that name one target.
	Additive bool `json:"additive,omitempty"`
}

// AnnotationSpec is what a ServiceAccount annotation may hold.
type AnnotationSpec struct {
	// Pattern is the regular expression (RE2) a value must match as a
	// whole, surrounding spaces trimmed.
	Pattern string `json:"pattern"`
	// Expected describes a valid value to a person.
	Expected string `json:"expected"`
}

// IdentitySpec is the ServiceAccount annotation that names the identity.
type IdentitySpec struct {
	// Annotation is its key, under AnnotationPrefix.
	Annotation string `json:"annotation"`
	// Pattern is the regular expression (RE2) a value must match as a
	// whole, surrounding spaces trimmed; a value that does not match is
	// an invalid identity, denied with Expected in the message.
	Pattern string `json:"pattern"`
	// Expected describes a valid value to a person, e.g. "a RAM role
	// name: 1 to 64 letters, digits, periods and hyphens".
	Expected string `json:"expected"`
	// CaseInsensitive says the cloud compares the value without regard to
	// case, so IdentityPolicies match it that way.
	CaseInsensitive bool `json:"caseInsensitive,omitempty"`
}

// LabelGate is a pod label that turns the provider on for a pod.
type LabelGate struct {
	// Name is the label's key.
	Name string `json:"name"`
	// Values are the values that turn it on.
	Values []string `json:"values"`
}

// TokenSpec is the projected ServiceAccount token the pod gets.
type TokenSpec struct {
	// Audience is the token's audience.
	Audience string `json:"audience"`
	// AudienceAnnotation, when set, is a ServiceAccount annotation (under
	// AnnotationPrefix) whose value replaces Audience.
	AudienceAnnotation string `json:"audienceAnnotation,omitempty"`
	// Expiration is the token's lifetime.
	Expiration ExpirationSpec `json:"expiration"`
	// VolumeName names the projected volume.
	VolumeName string `json:"volumeName"`
	// MountPath is where every injected container mounts it, read-only.
	MountPath string `json:"mountPath"`
	// FileName is the token's file in the volume.
	FileName string `json:"fileName"`
}

// ExpirationSpec is the token lifetime, in seconds.
type ExpirationSpec struct {
	// Annotation, when set, is read on the pod, then on the ServiceAccount
	// (where it must be under AnnotationPrefix).
	Annotation string `json:"annotation,omitempty"`
	// Default is the lifetime when no annotation sets one (3600).
	Default int64 `json:"default,omitempty"`
	// Min and Max bound an annotation's value (600 and 86400).
	Min int64 `json:"min,omitempty"`
	Max int64 `json:"max,omitempty"`
	// Clamp moves a value outside the bounds to the nearest one, with a
	// warning.
	Clamp bool `json:"clamp,omitempty"`
	// OnInvalid says what a value that is not a number (or, without
	// Clamp, is out of bounds) does: "deny" the pod (the default), or use
	// the "default" with a warning.
	OnInvalid string `json:"onInvalid,omitempty"`
}

// EnvSpec is an environment variable.
type EnvSpec struct {
	// Name is the variable's name.
	Name string `json:"name"`
	// Value is a template: text with placeholders {identity},
	// {namespace}, {serviceaccount}, {tokenPath}, {audience} and
	// {annotation:<key>} (a ServiceAccount annotation under
	// AnnotationPrefix; a variable whose annotation is not set is left
	// out). {{ and }} stand for { and }.
	Value string `json:"value"`
	// Group names the variables that belong together: a container that
	// sets any of a group gets none of it, and the other groups. The
	// default is "credential". A container that sets the variable whose
	// value is {tokenPath} alone (the token file) to another file gets
	// nothing from the provider: it uses another token.
	Group string `json:"group,omitempty"`
}

// ContainersSpec names the pod annotations that list containers.
type ContainersSpec struct {
	// SkipAnnotation lists the containers that get nothing.
	SkipAnnotation string `json:"skipAnnotation"`
	// OnlyAnnotation, when set, lists the only containers that get
	// anything.
	OnlyAnnotation string `json:"onlyAnnotation,omitempty"`
	// Separator separates the names (",").
	Separator string `json:"separator,omitempty"`
}

// FieldError says which field of a provider config is wrong and why.
type FieldError struct {
	// Field is the field's path, e.g. providers[0].identity.pattern.
	Field string
	// Value is the bad value, quoted, or empty when it is missing.
	Value string
	// Expected says what the field must hold.
	Expected string
}

// Error implements error.
func (e *FieldError) Error() string {
	if e.Value == "" {
		return e.Field + ": expected " + e.Expected
	}
	return e.Field + " " + e.Value + ": expected " + e.Expected
}

func fieldErr(field string, value any, expected string, args ...any) *FieldError {
	v := ""
	switch x := value.(type) {
	case string:
		if x != "" {
			v = strconv.Quote(x)
		}
	case int64:
		v = strconv.FormatInt(x, 10)
	case nil:
	default:
		v = fmt.Sprint(x)
	}
	return &FieldError{Field: field, Value: v, Expected: fmt.Sprintf(expected, args...)}
}

// Parse reads a provider config file (YAML or JSON) and validates every
// provider it declares. reserved are names taken already (the compiled-in
// providers'). The error names the first wrong field.
func Parse(data []byte, reserved ...string) ([]*Definition, error) {
	raw, err := yaml.YAMLToJSON(data)
	if err != nil {
		return nil, fmt.Errorf("expected a YAML or JSON document: %w", err)
	}
	var f File
	if err := jsonv2.Unmarshal(raw, &f, jsonv2.RejectUnknownMembers(true)); err != nil {
		return nil, decodeError(err)
	}
	switch {
	case f.APIVersion != APIVersion:
		return nil, fieldErr("apiVersion", f.APIVersion, APIVersion)
	case f.Kind != Kind:
		return nil, fieldErr("kind", f.Kind, Kind)
	case len(f.Providers) == 0:
		return nil, fieldErr("providers", nil, "at least one provider")
	}
	defs := make([]*Definition, 0, len(f.Providers))
	for i, s := range f.Providers {
		field := fmt.Sprintf("providers[%d]", i)
		if slices.Contains(reserved, s.Name) {
			return nil, fieldErr(field+".name", s.Name, "a name no other provider has (%s are compiled in)", strings.Join(reserved, ", "))
		}
		for j, d := range defs {
			if d.Name == s.Name {
				return nil, fieldErr(field+".name", s.Name, "a name no other provider has (providers[%d] has it)", j)
			}
		}
		d, err := compile(field, s)
		if err != nil {
			return nil, err
		}
		defs = append(defs, d)
	}
	return defs, nil
}

// decodeError turns a JSON decoding error into a FieldError naming the
// field by its path.
func decodeError(err error) error {
	var se *jsonv2.SemanticError
	if !errors.As(err, &se) {
		return fmt.Errorf("expected a YAML or JSON document: %w", err)
	}
	field := fieldPath(string(se.JSONPointer))
	if errors.Is(se.Err, jsonv2.ErrUnknownName) {
		parent, name := field, field
		if i := strings.LastIndex(field, "."); i >= 0 {
			parent, name = field[:i], field[i+1:]
		}
		if parent == name {
			parent = "the file"
		}
		return &FieldError{Field: field, Expected: fmt.Sprintf("no field %s in %s (is it misspelt?)", strconv.Quote(name), parent)}
	}
	want := "another type"
	if se.GoType != nil {
		switch se.GoType.Kind().String() {
		case "string":
			want = "a string"
		case "int64":
			want = "a whole number"
		case "bool":
			want = "true or false"
		case "slice":
			want = "a list"
		case "struct", "ptr":
			want = "an object"
		}
	}
	value := string(se.JSONValue)
	if value == "" && se.JSONKind != 0 {
		value = "(a " + se.JSONKind.String() + ")"
	}
	return &FieldError{Field: field, Value: value, Expected: want}
}

// fieldPath turns a JSON pointer (/providers/0/token) into a field path
// (providers[0].token).
func fieldPath(pointer string) string {
	var b strings.Builder
	for _, tok := range strings.Split(strings.TrimPrefix(pointer, "/"), "/") {
		tok = strings.NewReplacer("~1", "/", "~0", "~").Replace(tok)
		if _, err := strconv.Atoi(tok); err == nil && b.Len() > 0 {
			b.WriteString("[" + tok + "]")
			continue
		}
		if b.Len() > 0 {
			b.WriteString(".")
		}
		b.WriteString(tok)
	}
	return b.String()
}

// Definition is a validated provider, ready to inject.
type Definition struct {
	// Name is the provider's name.
	Name string
	// AnnotationPrefix is the prefix of the annotations it reads.
	AnnotationPrefix string

	spec       Spec
	pattern    *regexp.Regexp
	tokenPath  string
	env        []envVar
	reads      []string // ServiceAccount annotations besides the identity's
	expiration ExpirationSpec
	// values are the compiled patterns of Spec.Annotations.
	values map[string]*regexp.Regexp
	trust  *trustTemplates
	// tokenFileVar is the variable whose value is {tokenPath} alone.
	tokenFileVar string
}

// trustTemplates are the parsed templates of a TrustSpec.
type trustTemplates struct {
	kind            string
	additive        bool
	target, command template
	// document is a template, or a JSON value whose strings are.
	document any
}

// keys lists, sorted, the ServiceAccount annotations the definition reads.
func (d *Definition) keys() []string {
	out := append([]string{d.spec.Identity.Annotation}, d.reads...)
	slices.Sort(out)
	return slices.Compact(out)
}

// envVar is a variable with its parsed template.
type envVar struct {
	name, group string
	value       template
}

func compile(field string, s Spec) (*Definition, error) {
	if errs := validation.IsDNS1123Label(s.Name); len(errs) > 0 {
		return nil, fieldErr(field+".name", s.Name, "a lower-case DNS label such as alibaba (%s)", errs[0])
	}
	prefix := s.AnnotationPrefix
	if domain, ok := strings.CutSuffix(prefix, "/"); !ok || len(validation.IsDNS1123Subdomain(domain)) > 0 {
		return nil, fieldErr(field+".annotationPrefix", prefix, "a DNS subdomain followed by /, such as pod-identity.alibabacloud.com/")
	}
	d := &Definition{Name: s.Name, AnnotationPrefix: prefix, spec: s}
	underPrefix := func(f, key string) error {
		if !strings.HasPrefix(key, prefix) || len(validation.IsQualifiedName(key)) > 0 {
			return fieldErr(f, key, "an annotation key under the annotationPrefix, %s", prefix)
		}
		return nil
	}
	id := s.Identity
	if err := underPrefix(field+".identity.annotation", id.Annotation); err != nil {
		return nil, err
	}
	if id.Pattern == "" {
		return nil, fieldErr(field+".identity.pattern", nil, "a regular expression (RE2 syntax) a valid identity matches as a whole")
	}
	if _, err := regexp.Compile(id.Pattern); err != nil {
		return nil, fieldErr(field+".identity.pattern", id.Pattern, "a regular expression in RE2 syntax (%v)", err)
	}
	d.pattern = regexp.MustCompile(`^(?:` + id.Pattern + `)$`)
	if strings.TrimSpace(id.Expected) == "" {
		return nil, fieldErr(field+".identity.expected", nil, "a description of a valid identity for people, shown when a value does not match the pattern")
	}
	if g := s.PodLabel; g != nil {
		if len(validation.IsQualifiedName(g.Name)) > 0 {
			return nil, fieldErr(field+".podLabel.name", g.Name, "a label key")
		}
		if len(g.Values) == 0 {
			return nil, fieldErr(field+".podLabel.values", nil, "at least one label value that turns the provider on")
		}
		for i, v := range g.Values {
			if errs := validation.IsValidLabelValue(v); len(errs) > 0 || v == "" {
				return nil, fieldErr(fmt.Sprintf("%s.podLabel.values[%d]", field, i), v, "a non-empty label value")
			}
		}
	}
	t := s.Token
	if strings.TrimSpace(t.Audience) == "" {
		return nil, fieldErr(field+".token.audience", nil, "the audience the cloud's token exchange expects, such as sts.aliyuncs.com")
	}
	if t.AudienceAnnotation != "" {
		if err := underPrefix(field+".token.audienceAnnotation", t.AudienceAnnotation); err != nil {
			return nil, err
		}
		d.reads = append(d.reads, t.AudienceAnnotation)
	}
	if err := d.compileExpiration(field+".token.expiration", t.Expiration, underPrefix); err != nil {
		return nil, err
	}
	if errs := validation.IsDNS1123Label(t.VolumeName); len(errs) > 0 {
		return nil, fieldErr(field+".token.volumeName", t.VolumeName, "a volume name: a lower-case DNS label")
	}
	if !path.IsAbs(t.MountPath) || path.Clean(t.MountPath) != t.MountPath || t.MountPath == "/" || strings.Contains(t.MountPath, ":") {
		return nil, fieldErr(field+".token.mountPath", t.MountPath, "an absolute, clean path other than / with no colon, such as /var/run/secrets/tokens")
	}
	if t.FileName == "" || path.IsAbs(t.FileName) || path.Clean(t.FileName) != t.FileName || strings.HasPrefix(t.FileName, "..") {
		return nil, fieldErr(field+".token.fileName", t.FileName, "a relative path inside the volume, such as token")
	}
	d.tokenPath = t.MountPath + "/" + t.FileName
	if err := d.compileEnv(field, s.Env, underPrefix); err != nil {
		return nil, err
	}
	if err := d.compileTrust(field+".trust", s.Trust, underPrefix); err != nil {
		return nil, err
	}
	for i, name := range s.OverridingVariables {
		if errs := validation.IsEnvVarName(name); len(errs) > 0 {
			return nil, fieldErr(fmt.Sprintf("%s.overridingVariables[%d]", field, i), name, "an environment variable name (%s)", errs[0])
		}
	}
	if err := d.compileAnnotations(field, s.Annotations); err != nil {
		return nil, err
	}
	if c := s.Containers; c != nil {
		if len(validation.IsQualifiedName(c.SkipAnnotation)) > 0 {
			return nil, fieldErr(field+".containers.skipAnnotation", c.SkipAnnotation, "a pod annotation key")
		}
		if c.OnlyAnnotation != "" && (len(validation.IsQualifiedName(c.OnlyAnnotation)) > 0 || c.OnlyAnnotation == c.SkipAnnotation) {
			return nil, fieldErr(field+".containers.onlyAnnotation", c.OnlyAnnotation, "a pod annotation key other than skipAnnotation")
		}
		if c.Separator == "" {
			d.spec.Containers = &ContainersSpec{SkipAnnotation: c.SkipAnnotation, OnlyAnnotation: c.OnlyAnnotation, Separator: ","}
		}
	}
	return d, nil
}

// compileAnnotations requires a pattern for every annotation the provider
// reads but the identity's and the expiration's (a number, read as such),
// and no pattern for one it does not read.
func (d *Definition) compileAnnotations(field string, specs map[string]AnnotationSpec) error {
	d.values = map[string]*regexp.Regexp{}
	for _, key := range d.reads {
		if key == d.expiration.Annotation {
			continue
		}
		a, ok := specs[key]
		f := field + ".annotations[" + strconv.Quote(key) + "]"
		switch {
		case !ok:
			return fieldErr(f, nil, "the pattern and expected form of annotation %s, which the provider reads: a ServiceAccount's values are checked before they reach a pod", key)
		case a.Pattern == "":
			return fieldErr(f+".pattern", nil, "a regular expression (RE2 syntax) a valid value matches as a whole")
		case strings.TrimSpace(a.Expected) == "":
			return fieldErr(f+".expected", nil, "a description of a valid value for people, shown when a value does not match")
		}
		if _, err := regexp.Compile(a.Pattern); err != nil {
			return fieldErr(f+".pattern", a.Pattern, "a regular expression in RE2 syntax (%v)", err)
		}
		d.values[key] = regexp.MustCompile(`^(?:` + a.Pattern + `)$`)
	}
	keys := make([]string, 0, len(specs))
	for key := range specs {
		keys = append(keys, key)
	}
	slices.Sort(keys)
	for _, key := range keys {
		if _, ok := d.values[key]; !ok {
			return fieldErr(field+".annotations["+strconv.Quote(key)+"]", nil, "an annotation the provider reads (token.audienceAnnotation or an {annotation:<key>} of a template); it reads no %s", key)
		}
	}
	// A default stands where a value would: it must be one.
	for i, e := range d.env {
		for _, p := range e.value {
			if p.kind == annotationPH && p.hasDef && d.values[p.text] != nil && !d.values[p.text].MatchString(p.def) {
				return fieldErr(fmt.Sprintf("%s.env[%d].value", field, i), p.def, "a default for %s that its annotations pattern accepts: %s", p.text, specs[p.text].Expected)
			}
		}
	}
	return nil
}

func (d *Definition) compileExpiration(field string, e ExpirationSpec, underPrefix func(f, key string) error) error {
	if e.Default == 0 {
		e.Default = DefaultTokenExpiration
	}
	if e.Min == 0 {
		e.Min = MinTokenExpiration
	}
	if e.Max == 0 {
		e.Max = max(defaultMaxExpiration, e.Default)
	}
	switch {
	case e.Min < MinTokenExpiration || e.Min > MaxTokenExpiration:
		return fieldErr(field+".min", e.Min, "seconds from %d to %d (what the API server accepts)", MinTokenExpiration, int64(MaxTokenExpiration))
	case e.Max < e.Min || e.Max > MaxTokenExpiration:
		return fieldErr(field+".max", e.Max, "seconds from min (%d) to %d", e.Min, int64(MaxTokenExpiration))
	case e.Default < e.Min || e.Default > e.Max:
		return fieldErr(field+".default", e.Default, "seconds from min (%d) to max (%d)", e.Min, e.Max)
	case e.OnInvalid != "" && e.OnInvalid != "deny" && e.OnInvalid != "default":
		return fieldErr(field+".onInvalid", e.OnInvalid, "deny (refuse the pod) or default (use the default with a warning)")
	}
	if e.Annotation != "" {
		if err := underPrefix(field+".annotation", e.Annotation); err != nil {
			return err
		}
		d.reads = append(d.reads, e.Annotation)
	}
	d.expiration = e
	return nil
}

func (d *Definition) compileTrust(field string, t *TrustSpec, underPrefix func(f, key string) error) error {
	if t == nil {
		return nil
	}
	if strings.TrimSpace(t.Kind) == "" {
		return fieldErr(field+".kind", nil, "what the object is, such as RAM role trust policy")
	}
	tt := &trustTemplates{kind: t.Kind, additive: t.Additive}
	parse := func(f, value string) (template, error) {
		extra := []string{issuerPH, subjectPH}
		if f == field+".command" {
			extra = append(extra, documentPH)
		}
		tmpl, err := parseTemplate(value, extra...)
		if err != nil {
			return nil, fieldErr(f, value, "%v", err)
		}
		for _, key := range tmpl.annotations() {
			if err := underPrefix(f, key); err != nil {
				return nil, fieldErr(f, value, "{annotation:<key>} placeholders whose key is under the annotationPrefix, %s (the ServiceAccount cache keeps no other)", d.AnnotationPrefix)
			}
			if !slices.Contains(d.reads, key) {
				d.reads = append(d.reads, key)
			}
		}
		return tmpl, nil
	}
	var err error
	if strings.TrimSpace(t.Target) == "" {
		return fieldErr(field+".target", nil, "a template of what the object belongs to, such as acs:ram::<account>:role/{identity}")
	}
	if tt.target, err = parse(field+".target", t.Target); err != nil {
		return err
	}
	if tt.command, err = parse(field+".command", t.Command); err != nil {
		return err
	}
	if quoted := tt.command.quotedPlaceholder(); quoted != "" {
		// Each value is quoted as one shell word; inside the template's
		// own quotes that quoting would be undone.
		return fieldErr(field+".command", t.Command, "placeholders outside quotes (each value is quoted for the shell): {%s} is inside quotes", quoted)
	}
	switch t.Document.(type) {
	case string, map[string]any, []any:
	default:
		return fieldErr(field+".document", t.Document, "the object: text, or a JSON document (an object or a list) written as YAML")
	}
	if t.Document == "" {
		return fieldErr(field+".document", nil, "the object: text, or a JSON document written as YAML")
	}
	if tt.document, err = parseDocument(field+".document", t.Document, parse); err != nil {
		return err
	}
	d.trust = tt
	return nil
}

// parseDocument parses every string of a document, keys included, as a
// template.
func parseDocument(field string, v any, parse func(f, value string) (template, error)) (any, error) {
	switch x := v.(type) {
	case string:
		return parse(field, x)
	case map[string]any:
		out := make(map[string]any, len(x))
		keys := slices.Sorted(maps.Keys(x))
		for _, k := range keys {
			f := field + "." + k
			kt, err := parse(f, k)
			if err != nil {
				return nil, err
			}
			vt, err := parseDocument(f, x[k], parse)
			if err != nil {
				return nil, err
			}
			out[k] = keyed{key: kt, value: vt}
		}
		return out, nil
	case []any:
		out := make([]any, len(x))
		for i, e := range x {
			var err error
			if out[i], err = parseDocument(fmt.Sprintf("%s[%d]", field, i), e, parse); err != nil {
				return nil, err
			}
		}
		return out, nil
	}
	return v, nil // numbers, booleans and null stay as they are
}

// keyed is an object member whose key and value are templates.
type keyed struct {
	key   template
	value any
}

func (d *Definition) compileEnv(field string, vars []EnvSpec, underPrefix func(f, key string) error) error {
	if len(vars) == 0 {
		return fieldErr(field+".env", nil, "at least one environment variable: the SDKs find the identity and the token through them")
	}
	credential := false
	for i, e := range vars {
		f := fmt.Sprintf("%s.env[%d]", field, i)
		if errs := validation.IsEnvVarName(e.Name); len(errs) > 0 {
			return fieldErr(f+".name", e.Name, "an environment variable name (%s)", errs[0])
		}
		for j := range i {
			if vars[j].Name == e.Name {
				return fieldErr(f+".name", e.Name, "a name no other variable has (env[%d] has it)", j)
			}
		}
		tmpl, err := parseTemplate(e.Value)
		if err != nil {
			return fieldErr(f+".value", e.Value, "%v", err)
		}
		for _, key := range tmpl.annotations() {
			if err := underPrefix(f+".value", key); err != nil {
				return fieldErr(f+".value", e.Value, "{annotation:<key>} placeholders whose key is under the annotationPrefix, %s (the ServiceAccount cache keeps no other)", d.AnnotationPrefix)
			}
			if !slices.Contains(d.reads, key) {
				d.reads = append(d.reads, key)
			}
		}
		group := e.Group
		if group == "" {
			group = "credential"
		}
		credential = credential || group == "credential"
		d.env = append(d.env, envVar{name: e.Name, group: group, value: tmpl})
		if len(tmpl) == 1 && tmpl[0].kind == tokenPathPH && d.tokenFileVar == "" {
			d.tokenFileVar = e.Name
		}
	}
	if !credential {
		return fieldErr(field+".env", nil, "at least one variable in the credential group (a variable with no group is in it)")
	}
	return nil
}
