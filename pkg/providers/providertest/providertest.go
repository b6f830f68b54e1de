// Package providertest runs a provider's golden fixtures, for the tests of
// a provider package (ours, and those of anyone who writes one).
//
// A fixture is a folder test/fixtures/<area>/<case>/ holding input.yaml (a
// stream of ServiceAccounts and workloads), an optional flags file (one
// flag a line; $CASE is the case folder, and stands for it in error.txt)
// and the expectations:
// expected.yaml, warnings.txt and error.txt, an absent file expecting
// nothing. GOLDEN_UPDATE=1 rewrites the expectations.
//
// Besides the comparison, every case must pass the conformance checks that
// keep a patch safe to apply to a pod the injector does not fully know:
// every patch operation adds (nothing is removed or replaced), every mount
// it adds names a volume the pod has, and a second pass over the expected
// output adds nothing and says nothing the first did not.
package providertest

import (
	"bytes"
	"context"
	"encoding/json"
	"io"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/sirupsen/logrus"
	"github.com/spf13/pflag"
	jsonpatch "gopkg.in/evanphx/json-patch.v4"

	"github.com/pod-identity/injector/internal/golden"
	"github.com/pod-identity/injector/pkg/manifest"
	"github.com/pod-identity/injector/pkg/mutate"
	"github.com/pod-identity/injector/pkg/providers"
	"github.com/pod-identity/injector/pkg/providers/registry"
	"github.com/pod-identity/injector/pkg/render"
)

// Renderer renders file with the case's flags as `injector mutate` does
// (with --patch, each pod's patch as a JSON line), returning what it wrote
// to stdout and stderr and its error.
type Renderer func(file string, flags []string, patch bool) (stdout, stderr []byte, err error)

// RendererFor is the Renderer of the providers that newPlugins make (a
// package's NewPlugin functions), as `injector mutate` would render with
// only them compiled in: the fixture runner for a provider of your own.
//
//	func TestFixtures(t *testing.T) {
//		providertest.Run(t, "testdata/fixtures", providertest.RendererFor(vault.NewPlugin))
//	}
func RendererFor(newPlugins ...func() providers.Plugin) Renderer {
	return func(file string, flags []string, patch bool) ([]byte, []byte, error) {
		plugins := make([]providers.Plugin, len(newPlugins))
		for i, p := range newPlugins {
			plugins[i] = p()
		}
		return renderWith(registry.NewSet(plugins...), file, flags, patch)
	}
}

// RendererOf is the Renderer of the providers of set, as `injector mutate`
// renders with them: the flags are its own (the providers',
// --enable-<name>, --invalid-identity, -n).
func RendererOf(set func() *registry.Set) Renderer {
	return func(file string, flags []string, patch bool) ([]byte, []byte, error) {
		return renderWith(set(), file, flags, patch)
	}
}

// renderWith renders file with the providers of set and flags.
func renderWith(set *registry.Set, file string, flags []string, patch bool) (stdout, stderr []byte, err error) {
	engine, opts, cancel, err := EngineFromFlags(set, flags)
	if err != nil {
		return nil, nil, err
	}
	defer cancel()
	var out, errOut bytes.Buffer
	opts.Files, opts.Output, opts.Patch = []string{file}, "yaml", patch
	err = render.Run(engine, opts, &out, &errOut)
	return out.Bytes(), errOut.Bytes(), err
}

// EngineFromFlags builds the engine of the providers of set, and the
// rendering options, from the flags of `injector mutate`. cancel stops
// what the providers watch.
func EngineFromFlags(set *registry.Set, flags []string) (*mutate.Engine, render.Options, context.CancelFunc, error) {
	fs := pflag.NewFlagSet("mutate", pflag.ContinueOnError)
	set.WithArgs(flags).AddFlags(fs)
	var opts render.Options
	fs.StringVar(&opts.InvalidIdentity, "invalid-identity", "deny", "")
	fs.StringVarP(&opts.Namespace, "namespace", "n", "default", "")
	opts.AddPolicyFlags(fs)
	if err := fs.Parse(flags); err != nil {
		return nil, opts, nil, err
	}
	ctx, cancel := context.WithCancel(context.Background())
	log := logrus.New()
	log.SetOutput(io.Discard)
	provs, err := set.Build(ctx, log)
	if err != nil {
		cancel()
		return nil, opts, nil, err
	}
	return mutate.New(provs).WithAPIAudiences(set.APIAudiences()), opts, cancel, nil
}

// Cases lists the case folders below dir: dir itself when it holds an
// input.yaml, else its subfolders (one or two levels down) that do.
func Cases(t testing.TB, dir string) []string {
	t.Helper()
	var out []string
	for _, pattern := range []string{"", "*", filepath.Join("*", "*")} {
		matches, _ := filepath.Glob(filepath.Join(dir, pattern, "input.yaml"))
		for _, m := range matches {
			out = append(out, filepath.Dir(m))
		}
	}
	if len(out) == 0 {
		t.Fatalf("no fixture cases under %s", dir)
	}
	return out
}

// Flags reads a case's flags file.
func Flags(t testing.TB, dir string) []string {
	t.Helper()
	data, err := os.ReadFile(filepath.Join(dir, "flags"))
	if os.IsNotExist(err) {
		return nil
	}
	if err != nil {
		t.Fatal(err)
	}
	var flags []string
	for _, l := range strings.Split(string(data), "\n") {
		if l = strings.TrimSpace(l); l != "" && !strings.HasPrefix(l, "#") {
			flags = append(flags, strings.ReplaceAll(l, "$CASE", dir))
		}
	}
	return flags
}

// Run checks every case below dir with r: the golden comparison, then the
// conformance checks. Each case is a subtest named after its folder.
func Run(t *testing.T, dir string, r Renderer) {
	for _, c := range Cases(t, dir) {
		name, _ := filepath.Rel(dir, c)
		t.Run(filepath.ToSlash(name), func(t *testing.T) { runCase(t, c, r) })
	}
}

func runCase(t *testing.T, dir string, r Renderer) {
	flags := Flags(t, dir)
	input := filepath.Join(dir, "input.yaml")
	stdout, stderr, err := r(input, flags, false)
	errText := ""
	if err != nil {
		// A message that names a file of the case names it as the flags do.
		errText = strings.ReplaceAll(err.Error(), dir, "$CASE") + "\n"
		if len(stdout) > 0 {
			t.Errorf("a failed run printed manifests:\n%s", stdout)
		}
	}
	golden.Check(t, filepath.Join(dir, "error.txt"), []byte(errText))
	golden.Check(t, filepath.Join(dir, "warnings.txt"), stderr)
	golden.Check(t, filepath.Join(dir, "expected.yaml"), stdout)
	if err != nil || golden.Update {
		return
	}

	t.Run("every patch only adds, every mount has its volume, and applied as the API server applies it gives the expected pod", func(t *testing.T) {
		patches, _, err := r(input, flags, true)
		if err != nil {
			t.Fatal(err)
		}
		in, want := documents(t, input), documents(t, filepath.Join(dir, "expected.yaml"))
		eachPatch(t, patches, func(kind, name string, ops []op) {
			doc, ok := in[kind+" "+name]
			if ok {
				raw, _ := json.Marshal(ops)
				p, err := jsonpatch.DecodePatch(raw)
				if err != nil {
					t.Fatalf("%s %s: %v", kind, name, err)
				}
				got, err := p.Apply(doc)
				if err != nil {
					t.Fatalf("%s %s: an RFC 6902 implementation cannot apply the patch: %v", kind, name, err)
				}
				if !jsonpatch.Equal(got, want[kind+" "+name]) {
					t.Errorf("%s %s: the patch applied to the input is not expected.yaml's object\n got %s\nwant %s", kind, name, got, want[kind+" "+name])
				}
				doc = got
			}
			for _, o := range ops {
				if o.Op != "add" {
					t.Errorf("%s %s: a %q operation at %s", kind, name, o.Op, o.Path)
				}
			}
			if !ok {
				return // inside a List: its items' patches are not relative to the document
			}
			volumes := volumeNames(t, doc)
			for _, o := range ops {
				for _, m := range o.mounts() {
					if !volumes[m] {
						t.Errorf("%s %s: mounts volume %q, which the patched pod does not have", kind, name, m)
					}
				}
			}
		})
	})
	t.Run("a second pass adds nothing and says nothing new", func(t *testing.T) {
		expected := filepath.Join(dir, "expected.yaml")
		patches, stderr2, err := r(expected, flags, true)
		if err != nil {
			t.Fatalf("second pass failed: %v", err)
		}
		eachPatch(t, patches, func(kind, name string, ops []op) {
			if len(ops) != 0 {
				t.Errorf("%s %s: the second pass patched again: %+v", kind, name, ops)
			}
		})
		for _, line := range strings.Split(strings.TrimSpace(string(stderr2)), "\n") {
			if line != "" && !bytes.Contains(stderr, []byte(line)) {
				t.Errorf("the second pass says something the first did not: %s", line)
			}
		}
	})
}

// op is one patch operation, with its value kept raw.
type op struct {
	Op    string          `json:"op"`
	Path  string          `json:"path"`
	Value json.RawMessage `json:"value"`
}

// mounts names the volumes the operation mounts.
func (o op) mounts() []string {
	if !strings.Contains(o.Path, "/volumeMounts") {
		return nil
	}
	return names(o.Value)
}

// names reads the name of one object, or of each in a list.
func names(v json.RawMessage) []string {
	var one struct{ Name string }
	if json.Unmarshal(v, &one) == nil && one.Name != "" {
		return []string{one.Name}
	}
	var many []struct{ Name string }
	_ = json.Unmarshal(v, &many)
	out := make([]string, len(many))
	for i, m := range many {
		out[i] = m.Name
	}
	return out
}

func eachPatch(t *testing.T, lines []byte, f func(kind, name string, ops []op)) {
	t.Helper()
	dec := json.NewDecoder(bytes.NewReader(lines))
	for dec.More() {
		var r struct {
			Kind, Namespace, Name string
			Patch                 []op
		}
		if err := dec.Decode(&r); err != nil {
			t.Fatal(err)
		}
		f(r.Kind, r.Namespace+"/"+r.Name, r.Patch)
	}
}

// documents reads a stream's top-level objects as JSON, by "kind
// namespace/name" (Lists are left out: their items' patches are not
// relative to the document).
func documents(t *testing.T, file string) map[string][]byte {
	t.Helper()
	out := map[string][]byte{}
	for _, d := range ReadDocuments(t, file) {
		meta, _ := d.Object["metadata"].(map[string]any)
		ns, _ := meta["namespace"].(string)
		if ns == "" {
			ns = "default"
		}
		name, _ := meta["name"].(string)
		raw, err := json.Marshal(d.Object)
		if err != nil {
			t.Fatal(err)
		}
		out[d.Kind()+" "+ns+"/"+name] = raw
	}
	return out
}

// volumeNames lists the volumes a patched object declares, wherever its
// pod template sits (a Pod's spec, a workload's template, a CronJob's).
func volumeNames(t *testing.T, doc []byte) map[string]bool {
	t.Helper()
	var obj any
	if err := json.Unmarshal(doc, &obj); err != nil {
		t.Fatal(err)
	}
	out := map[string]bool{}
	var walk func(v any)
	walk = func(v any) {
		switch v := v.(type) {
		case map[string]any:
			for k, child := range v {
				if vols, ok := child.([]any); ok && k == "volumes" {
					for _, vol := range vols {
						if m, ok := vol.(map[string]any); ok {
							name, _ := m["name"].(string)
							out[name] = true
						}
					}
					continue
				}
				walk(child)
			}
		case []any:
			for _, child := range v {
				walk(child)
			}
		}
	}
	walk(obj)
	return out
}

// ReadDocuments reads a YAML or JSON stream of a fixture.
func ReadDocuments(t *testing.T, path string) []*manifest.Document {
	t.Helper()
	f, err := os.Open(path)
	if err != nil {
		t.Fatal(err)
	}
	defer func() { _ = f.Close() }()
	docs, err := manifest.Read(f, path)
	if err != nil {
		t.Fatal(err)
	}
	return docs
}
