package declarative

import (
	"errors"
	"fmt"
	"slices"
	"strings"
)

// template is an environment variable's value: literal text and
// placeholders, parsed once when the file is loaded.
type template []part

// part is literal text (kind == "") or a placeholder.
type part struct {
	kind, text string // text is the literal, or the annotation key
	// def is an annotation placeholder's default ({annotation:<key>|<def>}),
	// used when the annotation is not set; hasDef tells an empty default
	// from none.
	def    string
	hasDef bool
}

// Placeholder kinds.
const (
	identityPH       = "identity"
	namespacePH      = "namespace"
	serviceAccountPH = "serviceaccount"
	// serviceAccountOld is the placeholder's first spelling, still read:
	// IdentityPolicy patterns spell it {serviceaccount}, and so do the
	// provider files now.
	serviceAccountOld = "serviceAccount"
	tokenPathPH       = "tokenPath"
	audiencePH        = "audience"
	annotationPH      = "annotation"
	// Only in trust templates.
	issuerPH   = "issuer"
	subjectPH  = "subject"
	documentPH = "document"
)

const placeholders = "{identity}, {namespace}, {serviceaccount}, {tokenPath}, {audience}, {annotation:<key>} or {annotation:<key>|<default>}"

// parseTemplate splits s into literal text and placeholders. {{ and }}
// stand for { and }. extra names placeholders allowed besides the env
// values' ones.
func parseTemplate(s string, extra ...string) (template, error) {
	var out template
	var lit strings.Builder
	flush := func() {
		if lit.Len() > 0 {
			out = append(out, part{text: lit.String()})
			lit.Reset()
		}
	}
	for i := 0; i < len(s); i++ {
		switch c := s[i]; {
		case c == '{' && strings.HasPrefix(s[i:], "{{"), c == '}' && strings.HasPrefix(s[i:], "}}"):
			lit.WriteByte(c)
			i++
		case c == '}':
			return nil, errors.New("a } with no { before it: write }} for a literal }")
		case c == '{':
			end := strings.IndexByte(s[i:], '}')
			if end < 0 {
				return nil, errors.New("a { with no } after it: write {{ for a literal {")
			}
			name := s[i+1 : i+end]
			if name == serviceAccountOld {
				name = serviceAccountPH
			}
			p := part{kind: name}
			if key, ok := strings.CutPrefix(name, annotationPH+":"); ok && key != "" {
				// An annotation key never holds "|" (a qualified name is
				// letters, digits, "-", "_", "." and one "/"), so the first
				// one starts the default.
				key, def, hasDef := strings.Cut(key, "|")
				if key == "" {
					return nil, fmt.Errorf("{%s}: expected an annotation key before the |", name)
				}
				p = part{kind: annotationPH, text: key, def: def, hasDef: hasDef}
			} else if name != identityPH && name != namespacePH && name != serviceAccountPH && name != tokenPathPH && name != audiencePH && !slices.Contains(extra, name) {
				allowed := placeholders
				for _, e := range extra {
					allowed = "{" + e + "}, " + allowed
				}
				return nil, fmt.Errorf("a value whose placeholders are %s, not {%s}", allowed, name)
			}
			flush()
			out = append(out, p)
			i += end
		default:
			lit.WriteByte(c)
		}
	}
	flush()
	return out, nil
}

// quotedPlaceholder returns the first placeholder that stands inside
// single or double quotes of the template's literal text, or "".
func (t template) quotedPlaceholder() string {
	var quote byte
	for _, p := range t {
		if p.kind != "" {
			if quote != 0 {
				if p.kind == annotationPH {
					return annotationPH + ":" + p.text
				}
				return p.kind
			}
			continue
		}
		for i := 0; i < len(p.text); i++ {
			switch c := p.text[i]; {
			case quote == 0 && (c == '\'' || c == '"'):
				quote = c
			case quote == '"' && c == '\\':
				i++
			case c == quote:
				quote = 0
			}
		}
	}
	return ""
}

// annotations lists the annotation keys the template reads.
func (t template) annotations() []string {
	var keys []string
	for _, p := range t {
		if p.kind == annotationPH {
			keys = append(keys, p.text)
		}
	}
	return keys
}

// values are what a template's placeholders stand for in one pod: the
// fixed placeholders by kind, and the ServiceAccount's annotations.
type values struct {
	fixed      map[string]string
	annotation func(key string) (string, bool)
	// escape, when set, is applied to every value filled in.
	escape func(string) string
}

func (v values) escaped(s string) string {
	if v.escape == nil {
		return s
	}
	return v.escape(s)
}

// render fills in the placeholders; ok is false when an annotation it
// reads is not set and has no default.
func (t template) render(v values) (string, bool) {
	var b strings.Builder
	for _, p := range t {
		switch p.kind {
		case "":
			b.WriteString(p.text)
		case annotationPH:
			a, ok := v.annotation(p.text)
			switch {
			case ok:
				b.WriteString(v.escaped(a))
			case p.hasDef:
				b.WriteString(v.escaped(p.def))
			default:
				return "", false
			}
		default:
			b.WriteString(v.escaped(v.fixed[p.kind]))
		}
	}
	return b.String(), true
}
