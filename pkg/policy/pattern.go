package policy

import (
	"fmt"
	"strings"

	"github.com/pod-identity/injector/internal/quote"
)

// Pattern limits, as the CustomResourceDefinition states them (a policy
// read from a file is held to the same).
const (
	maxPatternLen = 512
	maxPatterns   = 256
)

// The placeholders a pattern may hold.
const (
	namespacePlaceholder      = "{namespace}"
	serviceAccountPlaceholder = "{serviceaccount}"
)

// piece is a literal or a placeholder of a pattern segment.
type piece struct {
	lit string
	// ph is 0 for a literal, 'n' for {namespace}, 's' for {serviceaccount}.
	ph byte
}

// pattern is a compiled identity pattern: the segments between its stars.
// Matching substitutes the placeholders as it goes, so it allocates
// nothing and the pattern is compiled once per policy version.
type pattern struct {
	raw  string
	segs [][]piece
}

// compilePattern parses raw: "*" matches any run of characters, and
// {namespace} and {serviceaccount} stand for the ServiceAccount's.
func compilePattern(raw string) (pattern, error) {
	switch {
	case raw == "":
		return pattern{}, fmt.Errorf("an empty pattern: expected an identity, with * and the placeholders %s and %s", namespacePlaceholder, serviceAccountPlaceholder)
	case len(raw) > maxPatternLen:
		return pattern{}, fmt.Errorf("a pattern of %d bytes: the limit is %d", len(raw), maxPatternLen)
	}
	p := pattern{raw: raw}
	for _, seg := range strings.Split(raw, "*") {
		var pieces []piece
		for rest := seg; rest != ""; {
			i := strings.IndexAny(rest, "{}")
			if i < 0 {
				pieces = append(pieces, piece{lit: rest})
				break
			}
			if i > 0 {
				pieces = append(pieces, piece{lit: rest[:i]})
				rest = rest[i:]
			}
			switch {
			case strings.HasPrefix(rest, namespacePlaceholder):
				pieces, rest = append(pieces, piece{ph: 'n'}), rest[len(namespacePlaceholder):]
			case strings.HasPrefix(rest, serviceAccountPlaceholder):
				pieces, rest = append(pieces, piece{ph: 's'}), rest[len(serviceAccountPlaceholder):]
			default:
				return pattern{}, fmt.Errorf("pattern %s: %s is not a placeholder: the only ones are %s and %s, and braces appear nowhere else",
					quote.Value(raw), quote.Value(placeholderAt(rest)), namespacePlaceholder, serviceAccountPlaceholder)
			}
		}
		p.segs = append(p.segs, pieces)
	}
	return p, nil
}

// placeholderAt returns the brace expression rest starts with, for messages.
func placeholderAt(rest string) string {
	if i := strings.IndexByte(rest, '}'); i >= 0 && rest[0] == '{' {
		return rest[:i+1]
	}
	return rest[:1]
}

// subject is what placeholders stand for.
type subject struct{ namespace, serviceAccount string }

func (s subject) value(p piece) string {
	switch p.ph {
	case 'n':
		return s.namespace
	case 's':
		return s.serviceAccount
	}
	return p.lit
}

// expand returns the pattern with its placeholders replaced, for messages.
func (p pattern) expand(s subject) string {
	r := strings.NewReplacer(namespacePlaceholder, s.namespace, serviceAccountPlaceholder, s.serviceAccount)
	return r.Replace(p.raw)
}

// match reports whether v matches the pattern for s.
func (p pattern) match(v string, s subject, fold bool) bool {
	first, last := p.segs[0], p.segs[len(p.segs)-1]
	end, ok := matchAt(first, v, 0, s, fold)
	if !ok {
		return false
	}
	if len(p.segs) == 1 {
		return end == len(v)
	}
	// The last segment must end the value, after everything before it.
	tail := v[end:]
	start := len(tail) - segLen(last, s)
	if start < 0 {
		return false
	}
	// matchAt consumes exactly segLen bytes: a match ends the value.
	if _, ok := matchAt(last, tail, start, s, fold); !ok {
		return false
	}
	mid := tail[:start]
	// Middle segments, leftmost first: a star takes as little as it can.
	pos := 0
	for _, seg := range p.segs[1 : len(p.segs)-1] {
		found := false
		for i := pos; i+segLen(seg, s) <= len(mid); i++ {
			if e, ok := matchAt(seg, mid, i, s, fold); ok {
				pos, found = e, true
				break
			}
		}
		if !found {
			return false
		}
	}
	return true
}

// segLen is the length of a segment once its placeholders are replaced.
func segLen(seg []piece, s subject) int {
	n := 0
	for _, p := range seg {
		n += len(s.value(p))
	}
	return n
}

// matchAt reports whether seg matches v at i, and where the match ends.
func matchAt(seg []piece, v string, i int, s subject, fold bool) (int, bool) {
	for _, p := range seg {
		want := s.value(p)
		if len(v)-i < len(want) {
			return 0, false
		}
		got := v[i : i+len(want)]
		if got != want && (!fold || !strings.EqualFold(got, want)) {
			return 0, false
		}
		i += len(want)
	}
	return i, true
}

// Characters a namespace name (a DNS label) and a ServiceAccount name (a
// DNS subdomain) may hold.
const (
	namespaceChars      = "abcdefghijklmnopqrstuvwxyz0123456789-"
	serviceAccountChars = namespaceChars + "."
)

// ambiguity says why two subjects could fill a pattern with the same
// identity, "" when they cannot. Two variable parts (a placeholder, or a
// star) with a literal L between them are ambiguous when both could hold
// L: then "team" + "-" + "admin-deployer" and "team-admin" + "-" +
// "deployer" are one string, and namespace team's ServiceAccount
// admin-deployer gets the role meant for namespace team-admin's deployer.
func ambiguity(raw string) string {
	type item struct {
		name, chars string // chars "" stands for any (a star)
	}
	var items []item
	var lits []string // lits[i] is the literal before items[i]
	lit := ""
	for rest := raw; rest != ""; {
		switch {
		case strings.HasPrefix(rest, namespacePlaceholder):
			items, lits, lit = append(items, item{namespacePlaceholder, namespaceChars}), append(lits, lit), ""
			rest = rest[len(namespacePlaceholder):]
		case strings.HasPrefix(rest, serviceAccountPlaceholder):
			items, lits, lit = append(items, item{serviceAccountPlaceholder, serviceAccountChars}), append(lits, lit), ""
			rest = rest[len(serviceAccountPlaceholder):]
		case rest[0] == '*':
			items, lits, lit = append(items, item{"*", ""}), append(lits, lit), ""
			rest = rest[1:]
		default:
			lit += rest[:1]
			rest = rest[1:]
		}
	}
	holds := func(it item, s string) bool {
		for i := 0; i < len(s); i++ {
			if it.chars != "" && strings.IndexByte(it.chars, s[i]) < 0 {
				return false
			}
		}
		return true
	}
	for i := 1; i < len(items); i++ {
		// Lower case: a cloud that compares names without regard to case
		// (IAM's role names, Entra's GUIDs, RAM's) reads "Role" as "role".
		a, b, between := items[i-1], items[i], strings.ToLower(lits[i])
		if a.chars == "" && b.chars == "" {
			continue // two stars: no placeholder to confuse
		}
		if holds(a, between) && holds(b, between) {
			sep := "nothing"
			if between != "" {
				sep = quote.Value(lits[i])
			}
			return fmt.Sprintf("%s and %s are separated by %s, which both could hold, so two different namespaces or serviceaccounts can fill the pattern with the same identity: separate each placeholder with a character no name holds, such as \"/\" or \":\"",
				a.name, b.name, sep)
		}
	}
	return ""
}
