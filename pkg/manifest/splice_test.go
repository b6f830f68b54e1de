package manifest

import (
	"strings"
	"testing"

	"github.com/pod-identity/injector/pkg/mutate"
)

func TestSpliceInsertsLinesAndTouchesNothingElse(t *testing.T) {
	add := func(path string, v any) mutate.Op { return mutate.Op{Op: "add", Path: path, Value: v} }
	env := map[string]any{"name": "A", "value": "1"}
	for _, c := range []struct {
		name, in string
		ops      []mutate.Op
		want     string // "" when it cannot splice
	}{
		{"a field added to a mapping goes after its last entry, at its keys' column",
			"a:\n  b: 1   # kept\n  c: 2\nd: 3\n", []mutate.Op{add("/a/e", 4)},
			"a:\n  b: 1   # kept\n  c: 2\n  e: 4\nd: 3\n"},
		{"an item appended to an indented sequence lines up with its dashes",
			"l:\n    - x\n    - y\nz: 1\n", []mutate.Op{add("/l/-", "w")},
			"l:\n    - x\n    - y\n    - w\nz: 1\n"},
		{"an item appended to a compact sequence under a mapping",
			"m:\n  env:\n  - name: B\n    value: '2'\n  image: i\n", []mutate.Op{add("/m/env/-", env)},
			"m:\n  env:\n  - name: B\n    value: '2'\n  - name: A\n    value: \"1\"\n  image: i\n"},
		{"appending at the index past the end is appending",
			"l:\n- x\n", []mutate.Op{add("/l/1", "w")},
			"l:\n- x\n- w\n"},
		{"a block scalar is part of the entry it ends",
			"a:\n  s: |\n    one\n    two\nb: 1\n", []mutate.Op{add("/a/t", "x")},
			"a:\n  s: |\n    one\n    two\n  t: x\nb: 1\n"},
		{"a comment after the last entry stays after what is inserted before it",
			"a:\n  b: 1\n  # about c\nc: 2\n", []mutate.Op{add("/a/x", 1)},
			"a:\n  b: 1\n  x: 1\n  # about c\nc: 2\n"},
		{"an inner collection's addition comes before its parent's on a shared last line",
			"c:\n  env:\n  - name: B\n", []mutate.Op{add("/c/mounts", []any{"m"}), add("/c/env/-", env)},
			"c:\n  env:\n  - name: B\n  - name: A\n    value: \"1\"\n  mounts:\n  - m\n"},
		{"a document without a final newline", "a:\n  b: 1", []mutate.Op{add("/a/c", 2)}, "a:\n  b: 1\n  c: 2\n"},
		{"a flow-style list is not spliced", "l: []\n", []mutate.Op{add("/l/-", "x")}, ""},
		{"a flow-style map is not spliced", "m: {a: 1}\n", []mutate.Op{add("/m/b", 2)}, ""},
		{"an existing field is not replaced", "a:\n  b: 1\n", []mutate.Op{add("/a/b", 2)}, ""},
		{"an item inserted in the middle is not spliced", "l:\n- x\n- y\n", []mutate.Op{add("/l/0", "w")}, ""},
		{"a missing parent is not spliced", "a:\n  b: 1\n", []mutate.Op{add("/x/y", 1)}, ""},
		{"an operation other than add is not spliced", "a:\n  b: 1\n", []mutate.Op{{Op: "replace", Path: "/a/b", Value: 2}}, ""},
		{"a scalar parent is not spliced", "a: 1\n", []mutate.Op{add("/a/b", 2)}, ""},
		{"an escaped key is found", "m:\n  a/b: 1\n  c~d: 2\n", []mutate.Op{add("/m/x~1y", 3)}, "m:\n  a/b: 1\n  c~d: 2\n  x/y: 3\n"},
	} {
		t.Run(c.name, func(t *testing.T) {
			got, ok := splice([]byte(c.in), c.ops)
			if c.want == "" {
				if ok {
					t.Errorf("spliced:\n%s", got)
				}
				return
			}
			if !ok || string(got) != c.want {
				t.Errorf("got (ok %v)\n%s\nwant\n%s", ok, got, c.want)
			}
			if !strings.HasPrefix(c.want, strings.SplitN(c.in, "\n", 2)[0]) {
				t.Fatal("a case whose expectation changes its first line")
			}
		})
	}
}
