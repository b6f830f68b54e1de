package mutate_test

import (
	"encoding/json"
	"strings"
	"testing"

	jsonpatch "gopkg.in/evanphx/json-patch.v4"
	corev1 "k8s.io/api/core/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"

	"github.com/pod-identity/injector/pkg/mutate"
	"github.com/pod-identity/injector/pkg/providers"
)

// cloud is a minimal provider for engine tests: it injects one token volume,
// one mount and one credential group when the ServiceAccount carries its
// annotation.
type cloud struct {
	name string
	meta map[string]string
}

func (c cloud) Name() string                 { return c.name }
func (c cloud) AnnotationPrefixes() []string { return []string{c.name + ".example.com/"} }
func (c cloud) Inject(req providers.Request) (*providers.Injection, error) {
	id, ok := req.ServiceAccount.Annotations[c.name+".example.com/id"]
	if !ok {
		return nil, nil
	}
	if id == "bad" {
		return nil, req.Invalid(c.name, c.name+".example.com/id", id, "a good id")
	}
	upper := strings.ToUpper(c.name)
	inj := &providers.Injection{
		Provider: c.name,
		Source:   "test",
		Volumes:  []corev1.Volume{providers.TokenVolume(c.name+"-token", c.name, 3600, "token")},
		Mounts:   []providers.Mount{{VolumeName: c.name + "-token", MountPath: "/var/run/" + c.name}},
		Env: []providers.EnvGroup{{Name: "credential", Vars: []corev1.EnvVar{
			{Name: upper + "_ID", Value: id}, {Name: upper + "_TOKEN_FILE", Value: "/var/run/" + c.name + "/token"},
		}}},
		Annotations: c.meta,
	}
	if v, ok := req.PodMeta.Annotations[c.name+".example.com/skip-containers"]; ok {
		inj.SkipContainers = providers.SplitList(v, ",")
	}
	return inj, nil
}

func serviceAccount(ann map[string]string) *corev1.ServiceAccount {
	return &corev1.ServiceAccount{ObjectMeta: metav1.ObjectMeta{Name: "app", Namespace: "ns", Annotations: ann}}
}

// run decodes raw as a pod, runs the engine, and applies the patch with the
// same JSON patch implementation the API server uses.
func run(t *testing.T, e *mutate.Engine, raw string, sa *corev1.ServiceAccount) (mutate.Result, string) {
	t.Helper()
	var pod corev1.Pod
	if err := json.Unmarshal([]byte(raw), &pod); err != nil {
		t.Fatal(err)
	}
	res := e.Mutate(mutate.Target{Namespace: "ns", Name: pod.Name, Meta: &pod.ObjectMeta, Spec: &pod.Spec}, sa)
	for _, op := range res.Patch {
		if op.Op != "add" {
			t.Fatalf("non-additive op %+v", op)
		}
	}
	if len(res.Patch) == 0 {
		return res, raw
	}
	pb, err := json.Marshal(res.Patch)
	if err != nil {
		t.Fatal(err)
	}
	p, err := jsonpatch.DecodePatch(pb)
	if err != nil {
		t.Fatal(err)
	}
	out, err := p.Apply([]byte(raw))
	if err != nil {
		t.Fatalf("the API server would reject the patch %s: %v", pb, err)
	}
	return res, string(out)
}

func TestEngine(t *testing.T) {
	a, b := cloud{name: "alpha"}, cloud{name: "beta", meta: map[string]string{"beta.example.com/injected": "yes"}}
	both := serviceAccount(map[string]string{"alpha.example.com/id": "a1", "beta.example.com/id": "b1"})
	tests := []struct {
		name      string
		providers []providers.Provider
		pod       string
		sa        *corev1.ServiceAccount
		contains  []string
		absent    []string
		warnings  int
		invalid   int
		injected  []string
	}{
		{
			name:      "an unrelated pod gets an empty patch",
			providers: []providers.Provider{a, b},
			pod:       `{"metadata":{"name":"p"},"spec":{"containers":[{"name":"c"}]}}`,
			sa:        serviceAccount(nil),
		},
		{
			name:      "two providers both inject into a pod that had no volumes or env",
			providers: []providers.Provider{a, b},
			pod:       `{"metadata":{"name":"p"},"spec":{"containers":[{"name":"c"}]}}`,
			sa:        both,
			contains:  []string{`"alpha-token"`, `"beta-token"`, `"ALPHA_ID","value":"a1"`, `"BETA_ID","value":"b1"`, `"beta.example.com/injected":"yes"`},
			injected:  []string{"alpha", "beta"},
		},
		{
			name:      "fields unknown to the compiled API survive at every level",
			providers: []providers.Provider{a},
			pod:       `{"metadata":{"name":"p","futureMeta":1},"spec":{"futureSpec":{"x":true},"volumes":[{"name":"v","futureVolume":"y","emptyDir":{}}],"containers":[{"name":"c","futureContainer":[1,2],"env":[{"name":"E","value":"1","futureEnv":"z"}]}]}}`,
			sa:        both,
			contains:  []string{`"futureMeta":1`, `"futureSpec":{"x":true}`, `"futureVolume":"y"`, `"futureContainer":[1,2]`, `"futureEnv":"z"`, `"ALPHA_ID"`},
			injected:  []string{"alpha"},
		},
		{
			name:      "a volume the API server defaulted is still recognised as ours",
			providers: []providers.Provider{a},
			pod:       `{"metadata":{"name":"p"},"spec":{"volumes":[{"name":"alpha-token","projected":{"defaultMode":420,"sources":[{"serviceAccountToken":{"audience":"alpha","expirationSeconds":3600,"path":"token"}}]}}],"containers":[{"name":"c","volumeMounts":[{"name":"alpha-token","mountPath":"/var/run/alpha","readOnly":true}],"env":[{"name":"ALPHA_ID","value":"a1"},{"name":"ALPHA_TOKEN_FILE","value":"/var/run/alpha/token"}]}]}}`,
			sa:        both,
		},
		{
			name:      "a mount at our path written with a trailing slash is the same path",
			providers: []providers.Provider{a},
			pod:       `{"metadata":{"name":"p"},"spec":{"volumes":[{"name":"mine","emptyDir":{}}],"containers":[{"name":"c","volumeMounts":[{"name":"mine","mountPath":"/var/run/alpha/"}]}]}}`,
			sa:        both,
			absent:    []string{`"ALPHA_ID"`, `"alpha-token"`},
			warnings:  1,
		},
		{
			name:      "a different volume with our name stops that provider only",
			providers: []providers.Provider{a, b},
			pod:       `{"metadata":{"name":"p"},"spec":{"volumes":[{"name":"alpha-token","emptyDir":{}}],"containers":[{"name":"c"}]}}`,
			sa:        both,
			contains:  []string{`"beta-token"`},
			absent:    []string{`"ALPHA_ID"`},
			warnings:  1,
			injected:  []string{"beta"},
		},
		{
			name:      "an invalid configuration adds nothing for that provider and is reported",
			providers: []providers.Provider{a, b},
			pod:       `{"metadata":{"name":"p"},"spec":{"containers":[{"name":"c"}]}}`,
			sa:        serviceAccount(map[string]string{"alpha.example.com/id": "bad", "beta.example.com/id": "b1"}),
			contains:  []string{`"BETA_ID"`},
			absent:    []string{`"ALPHA_ID"`, `"alpha-token"`},
			invalid:   1,
			injected:  []string{"beta"},
		},
		{
			name:      "a pod whose only container is skipped gets no volume either",
			providers: []providers.Provider{a},
			pod:       `{"metadata":{"name":"p","annotations":{"alpha.example.com/skip-containers":"c"}},"spec":{"containers":[{"name":"c"}]}}`,
			sa:        both,
			absent:    []string{`"alpha-token"`},
		},
		{
			name:      "annotation keys with slashes are escaped in the patch path",
			providers: []providers.Provider{b},
			pod:       `{"metadata":{"name":"p","annotations":{"keep":"me"}},"spec":{"containers":[{"name":"c"}]}}`,
			sa:        both,
			contains:  []string{`"keep":"me"`, `"beta.example.com/injected":"yes"`},
			injected:  []string{"beta"},
		},
		{
			name:      "a conflicting pod annotation stops the provider",
			providers: []providers.Provider{b},
			pod:       `{"metadata":{"name":"p","annotations":{"beta.example.com/injected":"no"}},"spec":{"containers":[{"name":"c"}]}}`,
			sa:        both,
			absent:    []string{`"BETA_ID"`},
			warnings:  1,
		},
		{
			name:      "init containers and native sidecars are injected and keep their restart policy",
			providers: []providers.Provider{a},
			pod:       `{"metadata":{"name":"p"},"spec":{"initContainers":[{"name":"i","restartPolicy":"Always"}],"containers":[{"name":"c"}]}}`,
			sa:        both,
			contains:  []string{`{"env":[{"name":"ALPHA_ID","value":"a1"},{"name":"ALPHA_TOKEN_FILE","value":"/var/run/alpha/token"}],"name":"i","restartPolicy":"Always"`},
			injected:  []string{"alpha"},
		},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			e := mutate.New(tt.providers)
			res, out := run(t, e, tt.pod, tt.sa)
			for _, s := range tt.contains {
				if !strings.Contains(out, s) {
					t.Errorf("mutated pod lacks %s:\n%s", s, out)
				}
			}
			for _, s := range tt.absent {
				if strings.Contains(out, s) {
					t.Errorf("mutated pod has %s:\n%s", s, out)
				}
			}
			if len(res.Warnings) != tt.warnings {
				t.Errorf("warnings = %q, want %d", res.Warnings, tt.warnings)
			}
			if len(res.Invalid) != tt.invalid {
				t.Errorf("invalid = %v, want %d", res.Invalid, tt.invalid)
			}
			if strings.Join(res.Injected, ",") != strings.Join(tt.injected, ",") {
				t.Errorf("injected = %v, want %v", res.Injected, tt.injected)
			}
			if len(tt.contains) == 0 && len(res.Patch) > 0 {
				t.Errorf("expected an empty patch, got %+v", res.Patch)
			}
			// Whatever came out, a second pass adds nothing.
			res2, _ := run(t, e, out, tt.sa)
			if len(res2.Patch) != 0 {
				t.Errorf("second pass patched again: %+v", res2.Patch)
			}
		})
	}
}

func TestApplyPatchAgreesWithTheAPIServersImplementation(t *testing.T) {
	raw := `{"metadata":{"name":"p"},"spec":{"x":1,"containers":[{"name":"c","env":[]},{"name":"d"}]}}`
	ops := []mutate.Op{
		{Op: "add", Path: "/metadata/annotations", Value: map[string]string{"a/b": "1"}},
		{Op: "add", Path: "/metadata/annotations/c~1d", Value: "2"},
		{Op: "add", Path: "/spec/containers/0/env/-", Value: corev1.EnvVar{Name: "E", Value: "v"}},
		{Op: "add", Path: "/spec/containers/1/env", Value: []corev1.EnvVar{{Name: "F"}}},
	}
	var doc any
	if err := json.Unmarshal([]byte(raw), &doc); err != nil {
		t.Fatal(err)
	}
	got, err := mutate.ApplyPatch(doc, ops)
	if err != nil {
		t.Fatal(err)
	}
	gotJSON, _ := json.Marshal(got)
	pb, _ := json.Marshal(ops)
	p, err := jsonpatch.DecodePatch(pb)
	if err != nil {
		t.Fatal(err)
	}
	want, err := p.Apply([]byte(raw))
	if err != nil {
		t.Fatal(err)
	}
	if !jsonpatch.Equal(gotJSON, want) {
		t.Errorf("ApplyPatch = %s\nwant %s", gotJSON, want)
	}
	if _, err := mutate.ApplyPatch(doc, []mutate.Op{{Op: "remove", Path: "/spec"}}); err == nil {
		t.Error("ApplyPatch accepted a remove op")
	}
}

func TestApplyPatchRefusesWhatTheAPIServerRefuses(t *testing.T) {
	for _, tt := range []struct{ name, path string }{
		{name: "an index one past the end", path: "/spec/containers/2/env"},
		{name: "a negative index", path: "/spec/containers/-1/env"},
		{name: "an index that is not a number", path: "/spec/containers/x/env"},
	} {
		t.Run(tt.name, func(t *testing.T) {
			var doc any
			_ = json.Unmarshal([]byte(`{"spec":{"containers":[{"name":"c"},{"name":"d"}]}}`), &doc)
			if _, err := mutate.ApplyPatch(doc, []mutate.Op{{Op: "add", Path: tt.path, Value: []corev1.EnvVar{{Name: "E"}}}}); err == nil {
				t.Fatal("applied")
			}
		})
	}
}
