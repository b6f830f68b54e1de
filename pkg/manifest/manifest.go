// Package manifest renders what the webhook would do to a stream of
// Kubernetes manifests, with no cluster: the ServiceAccounts in the stream
// drive the injection, every pod template is mutated by the engine, and every
// other document is written back as it came.
package manifest

import (
	"bufio"
	"bytes"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"strconv"
	"strings"

	corev1 "k8s.io/api/core/v1"
	utilyaml "k8s.io/apimachinery/pkg/util/yaml"
	"sigs.k8s.io/yaml"

	"github.com/pod-identity/injector/pkg/mutate"
	"github.com/pod-identity/injector/pkg/policy"
	v1alpha1 "github.com/pod-identity/injector/pkg/policy/v1alpha1"
)

// templatePaths maps a kind to the JSON pointer of its pod template.
var templatePaths = map[string]string{
	"Pod":                   "",
	"PodTemplate":           "/template",
	"Deployment":            "/spec/template",
	"StatefulSet":           "/spec/template",
	"DaemonSet":             "/spec/template",
	"ReplicaSet":            "/spec/template",
	"ReplicationController": "/spec/template",
	"Job":                   "/spec/template",
	"CronJob":               "/spec/jobTemplate/spec/template",
}

// Document is one object of a stream, with the bytes it was read from.
type Document struct {
	// Raw is the document as read.
	Raw []byte
	// Object is the decoded document; nil for an empty document.
	Object map[string]any
	// Source names where the document came from, for messages: "file.yaml#2".
	Source string
	// applied are the operations Mutate applied to Object, with paths
	// from the document's root, for Write to splice into Raw.
	applied []mutate.Op
}

// JSON reports whether the document was written in JSON.
func (d *Document) JSON() bool { return json.Valid(bytes.TrimSpace(d.Raw)) }

// Objects returns the document's object, or the items of a List.
func (d *Document) Objects() []map[string]any { return objects(d.Object) }

// Kind returns the document's kind.
func (d *Document) Kind() string { s, _ := d.Object["kind"].(string); return s }

// Read splits a YAML (multi-document) or JSON (concatenated objects) stream
// into documents. source names the stream in messages.
func Read(r io.Reader, source string) ([]*Document, error) {
	br := bufio.NewReader(r)
	first, err := peekNonSpace(br)
	if err != nil {
		return nil, err
	}
	var docs []*Document
	if first == '{' || first == '[' {
		dec := json.NewDecoder(br)
		for i := 1; ; i++ {
			var raw json.RawMessage
			if err := dec.Decode(&raw); errors.Is(err, io.EOF) {
				break
			} else if err != nil {
				return nil, fmt.Errorf("%s: document %d: %w", source, i, err)
			}
			d, err := decode(raw, fmt.Sprintf("%s#%d", source, i))
			if err != nil {
				return nil, err
			}
			docs = append(docs, d)
		}
		return docs, nil
	}
	yr := utilyaml.NewYAMLReader(br)
	for i := 1; ; i++ {
		raw, err := yr.Read()
		if errors.Is(err, io.EOF) {
			break
		} else if err != nil {
			return nil, fmt.Errorf("%s: document %d: %w", source, i, err)
		}
		if len(bytes.TrimSpace(stripComments(raw))) == 0 {
			continue
		}
		d, err := decode(raw, fmt.Sprintf("%s#%d", source, i))
		if err != nil {
			return nil, err
		}
		docs = append(docs, d)
	}
	return docs, nil
}

func peekNonSpace(br *bufio.Reader) (byte, error) {
	for i := 1; ; i++ {
		b, err := br.Peek(i)
		if len(b) < i {
			if errors.Is(err, io.EOF) || err == nil {
				return 0, nil
			}
			return 0, err
		}
		if c := b[i-1]; c != ' ' && c != '\t' && c != '\n' && c != '\r' {
			return c, nil
		}
	}
}

func stripComments(raw []byte) []byte {
	var out []byte
	for _, line := range bytes.Split(raw, []byte("\n")) {
		if t := bytes.TrimSpace(line); len(t) > 0 && t[0] != '#' {
			out = append(out, line...)
		}
	}
	return out
}

func decode(raw []byte, source string) (*Document, error) {
	js, err := yaml.YAMLToJSON(raw)
	if err != nil {
		return nil, fmt.Errorf("%s: %w", source, err)
	}
	var obj map[string]any
	if err := json.Unmarshal(js, &obj); err != nil {
		return nil, fmt.Errorf("%s: expected a Kubernetes object: %w", source, err)
	}
	return &Document{Raw: raw, Object: obj, Source: source}, nil
}

// ServiceAccounts is a lookup of ServiceAccounts by "namespace/name".
type ServiceAccounts map[string]*corev1.ServiceAccount

// Add records every ServiceAccount among docs (and inside Lists), placing
// those without a namespace in defaultNamespace.
func (s ServiceAccounts) Add(docs []*Document, defaultNamespace string) error {
	found, err := ServiceAccountsOf(docs, defaultNamespace)
	for _, sa := range found {
		s[sa.Namespace+"/"+sa.Name] = sa.ServiceAccount
	}
	return err
}

// SourcedServiceAccount is a ServiceAccount and the document it came from.
type SourcedServiceAccount struct {
	*corev1.ServiceAccount
	// Source is the document it came from.
	Source string
}

// ServiceAccountsOf returns the ServiceAccounts among docs (and inside
// Lists) in order, placing those without a namespace in defaultNamespace.
func ServiceAccountsOf(docs []*Document, defaultNamespace string) ([]SourcedServiceAccount, error) {
	var out []SourcedServiceAccount
	for _, d := range docs {
		for _, obj := range objects(d.Object) {
			if k, _ := obj["kind"].(string); k != "ServiceAccount" {
				continue
			}
			var sa corev1.ServiceAccount
			if err := convert(obj, &sa); err != nil {
				return out, fmt.Errorf("%s: serviceaccount: %w", d.Source, err)
			}
			if sa.Namespace == "" {
				sa.Namespace = defaultNamespace
			}
			out = append(out, SourcedServiceAccount{ServiceAccount: &sa, Source: d.Source})
		}
	}
	return out, nil
}

// isListKind reports whether obj is a List (or a typed list, FooList).
func isListKind(obj map[string]any) bool {
	k, _ := obj["kind"].(string)
	return strings.HasSuffix(k, "List")
}

// objects returns obj, or the items of a List.
func objects(obj map[string]any) []map[string]any {
	if isListKind(obj) {
		items, _ := obj["items"].([]any)
		var out []map[string]any
		for _, it := range items {
			if m, ok := it.(map[string]any); ok {
				out = append(out, m)
			}
		}
		return out
	}
	return []map[string]any{obj}
}

func convert(in any, out any) error {
	b, err := json.Marshal(in)
	if err != nil {
		return err
	}
	return json.Unmarshal(b, out)
}

// Options steer a Renderer.
type Options struct {
	// Namespace is the namespace of objects that name none.
	Namespace string
	// ServiceAccounts drive the injection.
	ServiceAccounts ServiceAccounts
	// Policies, when set, are the identity policies and namespace labels
	// to apply.
	Policies *policy.Store
	// InvalidAdmitted says an invalid identity configuration is admitted
	// with a warning (--invalid-identity=warn), so that the enforcement
	// step still sees the pod; in deny mode the mutating step refuses it.
	InvalidAdmitted bool
}

// PodResult is what happened to one pod template.
type PodResult struct {
	// Source is the document the pod came from.
	Source string
	// Kind, Namespace and Name identify the object that holds the pod.
	Kind, Namespace, Name string
	// Result is the engine's decision.
	mutate.Result
}

// Mutate runs the engine on every pod template of every document, patching
// the decoded documents in place, and returns one result per pod template.
// A pod whose ServiceAccount is not known is left alone with a warning.
func Mutate(e *mutate.Engine, docs []*Document, opts Options) ([]PodResult, error) {
	var out []PodResult
	for _, d := range docs {
		objs := objects(d.Object)
		isList := isListKind(d.Object)
		for i, obj := range objs {
			r, ok, err := mutateObject(e, obj, opts)
			if err != nil {
				return nil, fmt.Errorf("%s: %w", d.Source, err)
			}
			if ok {
				r.Source = d.Source
				out = append(out, r)
				for _, op := range r.Patch {
					if isList {
						op.Path = "/items/" + strconv.Itoa(i) + op.Path
					}
					d.applied = append(d.applied, op)
				}
			}
		}
	}
	return out, nil
}

// Template is one pod template of a stream, read as the engine sees it.
type Template struct {
	// Kind, Namespace and Name identify the object that holds it.
	Kind, Namespace, Name string
	// Path is the JSON pointer of the template within the object.
	Path string
	// Raw is the template as decoded; Pod is it as the engine reads it.
	Raw map[string]any
	Pod corev1.PodTemplateSpec
	// ServiceAccount is the pod's ServiceAccount name (default when unset).
	ServiceAccount string
}

// Target is the template as the engine's target.
func (t *Template) Target() mutate.Target {
	_, hasMeta := t.Raw["metadata"]
	return mutate.Target{Namespace: t.Namespace, Name: t.Name, Meta: &t.Pod.ObjectMeta, Spec: &t.Pod.Spec, NoMeta: !hasMeta}
}

// ReadTemplate reads the pod template of obj, nil when its kind holds none.
func ReadTemplate(obj map[string]any, defaultNamespace string) (*Template, error) {
	kind, _ := obj["kind"].(string)
	path, ok := templatePaths[kind]
	if !ok {
		return nil, nil
	}
	meta, _ := obj["metadata"].(map[string]any)
	name, _ := meta["name"].(string)
	if name == "" {
		name, _ = meta["generateName"].(string)
	}
	ns, _ := meta["namespace"].(string)
	if ns == "" {
		ns = defaultNamespace
	}
	t := &Template{Kind: kind, Namespace: ns, Name: name, Path: path}
	tmplAny, err := lookup(obj, path)
	if err != nil {
		return nil, fmt.Errorf("%s %s/%s: %w", strings.ToLower(kind), ns, name, err)
	}
	tmpl, ok := tmplAny.(map[string]any)
	if !ok {
		return nil, fmt.Errorf("%s %s/%s: expected a pod template at %s", strings.ToLower(kind), ns, name, path)
	}
	t.Raw = tmpl
	if err := convert(tmpl, &t.Pod); err != nil {
		return nil, fmt.Errorf("%s %s/%s: pod template: %w", strings.ToLower(kind), ns, name, err)
	}
	t.ServiceAccount = t.Pod.Spec.ServiceAccountName
	if t.ServiceAccount == "" {
		t.ServiceAccount = "default"
	}
	return t, nil
}

func mutateObject(e *mutate.Engine, obj map[string]any, opts Options) (PodResult, bool, error) {
	tp, err := ReadTemplate(obj, opts.Namespace)
	if tp == nil || err != nil {
		return PodResult{}, false, err
	}
	kind, ns, name, path, tmpl, saName := tp.Kind, tp.Namespace, tp.Name, tp.Path, tp.Raw, tp.ServiceAccount
	res := PodResult{Kind: kind, Namespace: ns, Name: name}
	sa, found := opts.ServiceAccounts[ns+"/"+saName]
	if !found {
		if len(opts.ServiceAccounts) > 0 {
			res.Warnings = append(res.Warnings, fmt.Sprintf("%s %q: serviceaccount %q is not in the input; not mutated (add it to the stream or to --serviceaccounts)",
				strings.ToLower(kind), ns+"/"+name, ns+"/"+saName))
		}
		return res, true, nil
	}
	t := tp.Target()
	if opts.Policies != nil {
		t.Policy = opts.Policies.Scope(ns)
	}
	res.Result = e.Mutate(t, sa)
	final := t
	if len(res.Patch) > 0 {
		patched, err := mutate.ApplyPatch(tmpl, res.Patch)
		if err != nil {
			return res, false, fmt.Errorf("%s %s/%s: %w", strings.ToLower(kind), ns, name, err)
		}
		if _, err := setAt(obj, path, patched); err != nil {
			return res, false, err
		}
		// Report the patch as the webhook would send it for this document.
		for i := range res.Patch {
			res.Patch[i].Path = path + res.Patch[i].Path
		}
		var pod corev1.PodTemplateSpec
		if err := convert(patched, &pod); err != nil {
			return res, false, fmt.Errorf("%s %s/%s: patched pod template: %w", strings.ToLower(kind), ns, name, err)
		}
		final.Meta, final.Spec = &pod.ObjectMeta, &pod.Spec
	}
	if len(res.Denied) == 0 && (len(res.Invalid) == 0 || opts.InvalidAdmitted) {
		// The enforcement webhook's answer, on the pod as it would be stored.
		en := e.Enforce(final, sa)
		res.Denied, res.Warnings = en.Denied, append(res.Warnings, en.Warnings...)
	}
	return res, true, nil
}

func lookup(obj map[string]any, path string) (any, error) {
	var cur any = obj
	for _, k := range strings.Split(strings.TrimPrefix(path, "/"), "/") {
		if k == "" {
			continue
		}
		m, ok := cur.(map[string]any)
		if !ok {
			return nil, fmt.Errorf("expected an object above %s", path)
		}
		if cur, ok = m[k]; !ok {
			return nil, fmt.Errorf("no %s in the object", path)
		}
	}
	return cur, nil
}

func setAt(obj map[string]any, path string, v any) (map[string]any, error) {
	if path == "" {
		// The patch was applied to obj itself.
		return obj, nil
	}
	keys := strings.Split(strings.TrimPrefix(path, "/"), "/")
	parent, err := lookup(obj, "/"+strings.Join(keys[:len(keys)-1], "/"))
	if err != nil {
		return nil, err
	}
	parent.(map[string]any)[keys[len(keys)-1]] = v
	return obj, nil
}

// Write writes docs to w as YAML (a "---"-separated stream) or JSON (one
// indented object per document). Documents that were not changed are
// written as they were read when the format allows.
func Write(w io.Writer, docs []*Document, changed map[*Document]bool, format string) error {
	for i, d := range docs {
		switch format {
		case "json":
			b, err := json.MarshalIndent(d.Object, "", "  ")
			if err != nil {
				return err
			}
			if _, err := fmt.Fprintf(w, "%s\n", b); err != nil {
				return err
			}
		case "yaml":
			if i > 0 {
				if _, err := io.WriteString(w, "---\n"); err != nil {
					return err
				}
			}
			out := d.Raw
			spliced := false
			if changed[d] && !d.JSON() {
				// The user's YAML, with only the additions inserted.
				out, spliced = splice(d.Raw, d.applied)
			}
			if !spliced && (changed[d] || d.JSON()) {
				b, err := yaml.Marshal(d.Object)
				if err != nil {
					return err
				}
				out = b
			}
			if !bytes.HasSuffix(out, []byte("\n")) {
				out = append(out, '\n')
			}
			if _, err := w.Write(out); err != nil {
				return err
			}
		default:
			return fmt.Errorf("output format %q: expected yaml or json", format)
		}
	}
	return nil
}

// Policies collects the IdentityPolicy documents (and those inside Lists)
// of docs and the labels of their Namespace documents. A policy is decoded
// strictly: a misspelt field would otherwise allow what it meant to forbid.
func Policies(docs []*Document) ([]*v1alpha1.IdentityPolicy, map[string]map[string]string, error) {
	var policies []*v1alpha1.IdentityPolicy
	namespaces := map[string]map[string]string{}
	for _, d := range docs {
		for _, obj := range objects(d.Object) {
			switch k, _ := obj["kind"].(string); k {
			case "Namespace":
				meta, _ := obj["metadata"].(map[string]any)
				name, _ := meta["name"].(string)
				labels := map[string]string{}
				raw, _ := meta["labels"].(map[string]any)
				for k, v := range raw {
					s, ok := v.(string)
					if !ok {
						return nil, nil, fmt.Errorf("%s: namespace %q: label %s: expected a string value", d.Source, name, k)
					}
					labels[k] = s
				}
				// The API server labels every namespace with its name.
				labels["kubernetes.io/metadata.name"] = name
				namespaces[name] = labels
			case v1alpha1.Kind:
				if api, _ := obj["apiVersion"].(string); api != v1alpha1.GroupVersion.String() {
					return nil, nil, fmt.Errorf("%s: %s of apiVersion %q: expected %s", d.Source, k, api, v1alpha1.GroupVersion)
				}
				ip := &v1alpha1.IdentityPolicy{}
				if err := convertStrict(obj, ip); err != nil {
					return nil, nil, fmt.Errorf("%s: identitypolicy: %w", d.Source, err)
				}
				policies = append(policies, ip)
			}
		}
	}
	return policies, namespaces, nil
}

// convertStrict is convert, refusing fields that out does not have.
func convertStrict(in any, out any) error {
	b, err := json.Marshal(in)
	if err != nil {
		return err
	}
	dec := json.NewDecoder(bytes.NewReader(b))
	dec.DisallowUnknownFields()
	return dec.Decode(out)
}
