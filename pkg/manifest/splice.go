package manifest

import (
	"bytes"
	"slices"
	"strconv"
	"strings"

	yamlv3 "go.yaml.in/yaml/v3"
	"sigs.k8s.io/yaml"

	"github.com/pod-identity/injector/pkg/mutate"
)

// splice writes what ops add into a YAML document as new lines, and leaves
// every other byte of raw as it was: comments, key order, quoting and
// indentation, so that a diff of the output shows exactly what the webhook
// adds. It handles the operations the engine makes: a field added to a
// block mapping, an item appended to a block sequence. It reports false
// for anything else (a flow-style collection such as `env: []`, a parent
// that an earlier operation added), and the caller writes the document
// whole instead.
func splice(raw []byte, ops []mutate.Op) ([]byte, bool) {
	var doc yamlv3.Node
	if err := yamlv3.Unmarshal(raw, &doc); err != nil || len(doc.Content) != 1 {
		return nil, false
	}
	lines := strings.SplitAfter(string(raw), "\n")
	// inserts holds, by the 0-based line they follow, the text to insert.
	inserts := map[int][]insert{}
	for _, op := range ops {
		if op.Op != "add" {
			return nil, false
		}
		segs := strings.Split(strings.TrimPrefix(op.Path, "/"), "/")
		parent := doc.Content[0]
		for _, s := range segs[:len(segs)-1] {
			if parent = child(parent, unescape(s)); parent == nil {
				return nil, false
			}
		}
		if parent.Style&yamlv3.FlowStyle != 0 || len(parent.Content) == 0 {
			return nil, false
		}
		last := unescape(segs[len(segs)-1])
		var text []byte
		var col int // 0-based column of the new lines
		switch parent.Kind {
		case yamlv3.MappingNode:
			if child(parent, last) != nil {
				return nil, false
			}
			b, err := yaml.Marshal(map[string]any{last: op.Value})
			if err != nil {
				return nil, false
			}
			text, col = b, parent.Content[0].Column-1
		case yamlv3.SequenceNode:
			if last != "-" && last != strconv.Itoa(len(parent.Content)) {
				return nil, false
			}
			b, err := yaml.Marshal([]any{op.Value})
			if err != nil {
				return nil, false
			}
			text, col = b, dashColumn(lines, parent.Content[0])
		default:
			return nil, false
		}
		if col < 0 {
			return nil, false
		}
		end := blockEnd(lines, parent)
		if end < 0 {
			return nil, false
		}
		inserts[end] = append(inserts[end], insert{len(segs) - 1, indent(text, col)})
	}
	var out bytes.Buffer
	for i, l := range lines {
		out.WriteString(l)
		if add, ok := inserts[i]; ok {
			if !strings.HasSuffix(l, "\n") {
				out.WriteByte('\n')
			}
			// Where an inner collection ends on the same line as the one
			// holding it, its additions come first: they belong inside.
			slices.SortStableFunc(add, func(a, b insert) int { return b.depth - a.depth })
			for _, a := range add {
				out.WriteString(a.text)
			}
		}
	}
	return out.Bytes(), true
}

// insert is text to insert into the collection at depth (the number of
// steps from the document's root).
type insert struct {
	depth int
	text  string
}

// child returns the value of key in a mapping, or the item at index key
// in a sequence; nil when there is none.
func child(n *yamlv3.Node, key string) *yamlv3.Node {
	switch n.Kind {
	case yamlv3.MappingNode:
		for i := 0; i+1 < len(n.Content); i += 2 {
			if n.Content[i].Value == key {
				return n.Content[i+1]
			}
		}
	case yamlv3.SequenceNode:
		if i, err := strconv.Atoi(key); err == nil && i >= 0 && i < len(n.Content) {
			return n.Content[i]
		}
	}
	return nil
}

// blockEnd returns the 0-based index of the last line that holds content
// of a block collection: from its last entry on, every line indented more
// than the collection's entries (or, under a compact sequence, a further
// dash at their column) belongs to it; blank and comment lines count only
// when content follows them.
func blockEnd(lines []string, n *yamlv3.Node) int {
	lastEntry := n.Content[len(n.Content)-1]
	col := n.Content[0].Column - 1 // a mapping's keys
	if n.Kind == yamlv3.MappingNode {
		lastEntry = n.Content[len(n.Content)-2]
	} else if col = dashColumn(lines, n.Content[0]); col < 0 {
		return -1
	}
	start := lastEntry.Line - 1
	if start < 0 || start >= len(lines) {
		return -1
	}
	end := start
	for i := start + 1; i < len(lines); i++ {
		t := strings.TrimRight(lines[i], "\r\n")
		trimmed := strings.TrimLeft(t, " ")
		if trimmed == "" || strings.HasPrefix(trimmed, "#") {
			continue
		}
		ind := len(t) - len(trimmed)
		if ind > col || (ind == col && n.Kind == yamlv3.MappingNode && strings.HasPrefix(trimmed, "- ") && compactSeqValue(n)) {
			end = i
			continue
		}
		break
	}
	return end
}

// compactSeqValue reports whether a mapping's last value is a block
// sequence whose dashes sit at the keys' column.
func compactSeqValue(n *yamlv3.Node) bool {
	v := n.Content[len(n.Content)-1]
	return v.Kind == yamlv3.SequenceNode && v.Style&yamlv3.FlowStyle == 0 && len(v.Content) > 0 &&
		v.Content[0].Column-3 == n.Content[0].Column-1
}

// dashColumn returns the 0-based column of the dash before a block
// sequence's item, -1 when there is none on its line.
func dashColumn(lines []string, item *yamlv3.Node) int {
	if item.Line < 1 || item.Line > len(lines) {
		return -1
	}
	l := lines[item.Line-1]
	for i := min(item.Column-2, len(l)-1); i >= 0; i-- {
		switch l[i] {
		case ' ':
			continue
		case '-':
			return i
		}
		return -1
	}
	return -1
}

// indent prefixes every line of text with col spaces.
func indent(text []byte, col int) string {
	pad := strings.Repeat(" ", col)
	var b strings.Builder
	for _, l := range strings.SplitAfter(string(text), "\n") {
		if l != "" {
			b.WriteString(pad + l)
		}
	}
	return b.String()
}

// unescape decodes a JSON pointer reference token.
func unescape(s string) string {
	return strings.ReplaceAll(strings.ReplaceAll(s, "~1", "/"), "~0", "~")
}
