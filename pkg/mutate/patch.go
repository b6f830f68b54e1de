package mutate

import (
	"encoding/json"
	"fmt"
	"strconv"
	"strings"
)

// Op is one JSON patch (RFC 6902) operation. The engine only emits "add".
type Op struct {
	Op    string `json:"op"`
	Path  string `json:"path"`
	Value any    `json:"value"`
}

func add(path string, value any) Op { return Op{Op: "add", Path: path, Value: value} }

// escape escapes a JSON pointer reference token.
func escape(s string) string {
	return strings.ReplaceAll(strings.ReplaceAll(s, "~", "~0"), "/", "~1")
}

// patch turns the additions into operations: a whole list or map where the
// original had none, appended items or added keys where it had one.
func (s *state) patch() []Op {
	var ops []Op
	base := s.t.Path
	if s.t.NoMeta && (len(s.annotations) > 0 || len(s.labels) > 0) {
		ops = append(ops, add(base+"/metadata", map[string]any{}))
	}
	for _, labels := range []bool{false, true} {
		added, have, field := s.annotations, s.t.Meta.Annotations, "annotations"
		if labels {
			added, have, field = s.labels, s.t.Meta.Labels, "labels"
		}
		if len(added) == 0 {
			continue
		}
		path := base + "/metadata/" + field
		if have == nil {
			m := make(map[string]string, len(added))
			for _, a := range added {
				m[a.k] = a.v
			}
			ops = append(ops, add(path, m))
			continue
		}
		for _, a := range added {
			ops = append(ops, add(path+"/"+escape(a.k), a.v))
		}
	}
	ops = appendList(ops, base+"/spec/volumes", s.t.Spec.Volumes == nil, s.volumes)
	for ci, r := range s.containers {
		if len(s.mounts[ci]) == 0 && len(s.env[ci]) == 0 {
			continue
		}
		c := s.container(r)
		prefix := base + "/spec/" + r.list + "/" + strconv.Itoa(r.index)
		ops = appendList(ops, prefix+"/volumeMounts", c.VolumeMounts == nil, s.mounts[ci])
		ops = appendList(ops, prefix+"/env", c.Env == nil, s.env[ci])
	}
	return ops
}

func appendList[T any](ops []Op, path string, absent bool, items []T) []Op {
	if len(items) == 0 {
		return ops
	}
	if absent {
		return append(ops, add(path, items))
	}
	end := path + "/-"
	for _, it := range items {
		ops = append(ops, add(end, it))
	}
	return ops
}

// ApplyPatch applies add operations to a decoded JSON document (maps and
// slices as encoding/json produces them) and returns the new document. Values
// are converted to plain JSON values first, so the result marshals exactly as
// the API server would store it.
//
// Hand-written rather than gopkg.in/evanphx/json-patch.v4 (the API server's,
// which the tests compare it with): it edits the decoded document in place,
// which pkg/manifest relies on to write a manifest back with only the
// inserted lines (swapping in the library's copy left the template's empty
// lists unpatched in the output, 7 fixtures and command tests failing), and
// the library takes a negative index (/containers/-1) the API server's patch
// handler refuses.
func ApplyPatch(doc any, ops []Op) (any, error) {
	for _, op := range ops {
		if op.Op != "add" {
			return nil, fmt.Errorf("patch op %q at %s: only add is supported", op.Op, op.Path)
		}
		raw, err := json.Marshal(op.Value)
		if err != nil {
			return nil, fmt.Errorf("patch value at %s: %w", op.Path, err)
		}
		var v any
		if err := json.Unmarshal(raw, &v); err != nil {
			return nil, fmt.Errorf("patch value at %s: %w", op.Path, err)
		}
		doc, err = addAt(doc, splitPointer(op.Path), v)
		if err != nil {
			return nil, fmt.Errorf("patch add at %s: %w", op.Path, err)
		}
	}
	return doc, nil
}

func splitPointer(p string) []string {
	if p == "" {
		return nil
	}
	parts := strings.Split(strings.TrimPrefix(p, "/"), "/")
	for i, t := range parts {
		parts[i] = strings.ReplaceAll(strings.ReplaceAll(t, "~1", "/"), "~0", "~")
	}
	return parts
}

func addAt(doc any, path []string, v any) (any, error) {
	if len(path) == 0 {
		return v, nil
	}
	key, rest := path[0], path[1:]
	switch d := doc.(type) {
	case map[string]any:
		if len(rest) == 0 {
			d[key] = v
			return d, nil
		}
		child, ok := d[key]
		if !ok {
			return nil, fmt.Errorf("no member %q", key)
		}
		nc, err := addAt(child, rest, v)
		if err != nil {
			return nil, err
		}
		d[key] = nc
		return d, nil
	case []any:
		if len(rest) == 0 {
			if key == "-" {
				return append(d, v), nil
			}
			i, err := strconv.Atoi(key)
			if err != nil || i < 0 || i > len(d) {
				return nil, fmt.Errorf("bad index %q", key)
			}
			return append(d[:i], append([]any{v}, d[i:]...)...), nil
		}
		i, err := strconv.Atoi(key)
		if err != nil || i < 0 || i >= len(d) {
			return nil, fmt.Errorf("bad index %q", key)
		}
		nc, err := addAt(d[i], rest, v)
		if err != nil {
			return nil, err
		}
		d[i] = nc
		return d, nil
	default:
		return nil, fmt.Errorf("cannot add %q into a %T", key, doc)
	}
}
