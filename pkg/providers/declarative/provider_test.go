package declarative

import (
	"context"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/sirupsen/logrus"
	"github.com/sirupsen/logrus/hooks/test"
	corev1 "k8s.io/api/core/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"

	"github.com/pod-identity/injector/pkg/providers"
)

const vault = `apiVersion: pod-identity.io/v1alpha1
kind: ProviderConfig
providers:
- name: vault
  annotationPrefix: vault.example.com/
  identity:
    annotation: vault.example.com/role
    pattern: '[a-z]+'
    expected: 'a role: lower-case letters'
  podLabel:
    name: vault.example.com/use
    values: ["true", "yes"]
  token:
    audience: AUDIENCE
    volumeName: vault-token
    mountPath: /var/run/secrets/vault
    fileName: jwt
  env:
  - name: VAULT_ROLE
    value: '{identity}@{namespace}/{serviceAccount} {{literal}}'
  - name: VAULT_JWT
    value: '{tokenPath} for {audience}'
  - name: VAULT_ADDR
    value: '{annotation:vault.example.com/addr}'
    group: address
  annotations:
    vault.example.com/addr:
      pattern: 'https://[a-z0-9.-]+(:[0-9]+)?'
      expected: 'a Vault address such as https://vault.example.com:8200'
`

func request(ann map[string]string, labels map[string]string) providers.Request {
	return providers.Request{Namespace: "ns", PodName: "web",
		PodMeta: &metav1.ObjectMeta{Labels: labels}, PodSpec: &corev1.PodSpec{},
		ServiceAccount: &corev1.ServiceAccount{ObjectMeta: metav1.ObjectMeta{Name: "sa", Namespace: "ns", Annotations: ann}}}
}

func TestInject(t *testing.T) {
	defs, err := Parse([]byte(vault))
	if err != nil {
		t.Fatal(err)
	}
	p := New(defs[0])
	use := map[string]string{"vault.example.com/use": "yes"}
	t.Run("templates fill in every placeholder and escape doubled braces", func(t *testing.T) {
		inj, err := p.Inject(request(map[string]string{"vault.example.com/role": " reader "}, use))
		if err != nil {
			t.Fatal(err)
		}
		want := []corev1.EnvVar{{Name: "VAULT_ROLE", Value: "reader@ns/sa {literal}"}, {Name: "VAULT_JWT", Value: "/var/run/secrets/vault/jwt for AUDIENCE"}}
		if len(inj.Env) != 1 || inj.Env[0].Name != providers.CredentialGroup || !equalEnv(inj.Env[0].Vars, want) {
			t.Errorf("env %+v, want one credential group %+v", inj.Env, want)
		}
		if len(inj.Identities) != 1 || inj.Identities[0].Value != "reader" || inj.Identities[0].Field != "identities" {
			t.Errorf("identities %+v", inj.Identities)
		}
		src := inj.Volumes[0].Projected.Sources[0].ServiceAccountToken
		if src.Audience != "AUDIENCE" || *src.ExpirationSeconds != DefaultTokenExpiration || src.Path != "jwt" {
			t.Errorf("token %+v", src)
		}
	})
	t.Run("a variable whose annotation is set lands in its own group", func(t *testing.T) {
		inj, _ := p.Inject(request(map[string]string{"vault.example.com/role": "reader", "vault.example.com/addr": "https://vault"}, use))
		if len(inj.Env) != 2 || inj.Env[1].Name != "address" || inj.Env[1].Vars[0].Value != "https://vault" {
			t.Errorf("env %+v", inj.Env)
		}
	})
	t.Run("an annotation placeholder with a default gives the default when the annotation is not set", func(t *testing.T) {
		cfg := strings.Replace(vault, "'{annotation:vault.example.com/addr}'", "'{annotation:vault.example.com/addr|https://vault.internal:8200}'", 1)
		defs, err := Parse([]byte(cfg))
		if err != nil {
			t.Fatal(err)
		}
		p := New(defs[0])
		for _, tc := range []struct{ name, addr, want string }{
			{"not set", "", "https://vault.internal:8200"},
			{"set", "https://vault", "https://vault"},
		} {
			ann := map[string]string{"vault.example.com/role": "reader"}
			if tc.addr != "" {
				ann["vault.example.com/addr"] = tc.addr
			}
			inj, err := p.Inject(request(ann, use))
			if err != nil || len(inj.Env) != 2 || inj.Env[1].Vars[0].Value != tc.want {
				t.Errorf("%s: env %+v, %v; want VAULT_ADDR=%s", tc.name, inj.Env, err, tc.want)
			}
		}
	})
	t.Run("a pod without the label gets nothing, unless only the serviceaccount is judged", func(t *testing.T) {
		req := request(map[string]string{"vault.example.com/role": "reader"}, map[string]string{"vault.example.com/use": "no"})
		if inj, err := p.Inject(req); inj != nil || err != nil {
			t.Errorf("got %+v, %v", inj, err)
		}
		req.ServiceAccountOnly = true
		if inj, err := p.Inject(req); !inj.Injects() || err != nil {
			t.Errorf("serviceaccount only: got %+v, %v", inj, err)
		}
	})
	t.Run("the pattern must match the whole value", func(t *testing.T) {
		_, err := p.Inject(request(map[string]string{"vault.example.com/role": "reader2"}, use))
		if !providers.IsInvalid(err) || !strings.Contains(err.Error(), "expected a role: lower-case letters") {
			t.Errorf("error %v", err)
		}
	})
	t.Run("an annotation the provider reads must match its declared pattern", func(t *testing.T) {
		_, err := p.Inject(request(map[string]string{"vault.example.com/role": "reader", "vault.example.com/addr": "http://evil"}, use))
		if !providers.IsInvalid(err) || !strings.Contains(err.Error(), `serviceaccount "ns/sa": annotation vault.example.com/addr has invalid value "http://evil": expected a Vault address`) {
			t.Errorf("error %v", err)
		}
	})
	t.Run("the cache keeps the annotations it reads", func(t *testing.T) {
		if got := strings.Join(p.ServiceAccountKeys(), ","); got != "vault.example.com/addr,vault.example.com/role" {
			t.Errorf("keys %s", got)
		}
	})
	t.Run("the pod label gate is what policy mode asks about", func(t *testing.T) {
		if got := p.PodLabels(); len(got["vault.example.com/use"]) != 2 {
			t.Errorf("PodLabels %v", got)
		}
	})
}

func TestEveryAnnotationReadNeedsAPattern(t *testing.T) {
	for _, tt := range []struct{ name, from, to, want string }{
		{"a template annotation without one", "  annotations:\n    vault.example.com/addr:\n      pattern: 'https://[a-z0-9.-]+(:[0-9]+)?'\n      expected: 'a Vault address such as https://vault.example.com:8200'\n", "",
			`providers[0].annotations["vault.example.com/addr"]: expected the pattern and expected form of annotation vault.example.com/addr`},
		{"a pattern that does not compile", "pattern: 'https://[a-z0-9.-]+(:[0-9]+)?'", "pattern: '(['", `providers[0].annotations["vault.example.com/addr"].pattern "(["`},
		{"no expected form", "expected: 'a Vault address such as https://vault.example.com:8200'", "expected: ' '", `.expected: expected a description`},
		{"a default its pattern refuses", "'{annotation:vault.example.com/addr}'", "'{annotation:vault.example.com/addr|http://plain}'",
			`providers[0].env[2].value "http://plain": expected a default for vault.example.com/addr that its annotations pattern accepts: a Vault address`},
		{"a pattern for an annotation it does not read", "    vault.example.com/addr:\n", "    vault.example.com/other:\n      pattern: x\n      expected: x\n    vault.example.com/addr:\n",
			`providers[0].annotations["vault.example.com/other"]: expected an annotation the provider reads`},
	} {
		t.Run(tt.name, func(t *testing.T) {
			cfg := strings.Replace(vault, tt.from, tt.to, 1)
			if cfg == vault {
				t.Fatal("the test changed nothing")
			}
			_, err := Parse([]byte(cfg))
			if err == nil || !strings.Contains(err.Error(), tt.want) {
				t.Errorf("error %v, want %q", err, tt.want)
			}
		})
	}
}

func equalEnv(a, b []corev1.EnvVar) bool {
	if len(a) != len(b) {
		return false
	}
	for i := range a {
		if a[i] != b[i] {
			return false
		}
	}
	return true
}

func TestTheServiceAccountPlaceholderHasOneSpellingAndReadsItsFirst(t *testing.T) {
	now, err1 := parseTemplate("{namespace}/{serviceaccount}")
	old, err2 := parseTemplate("{namespace}/{serviceAccount}")
	if err1 != nil || err2 != nil || len(now) != 3 || now[2].kind != serviceAccountPH || old[2] != now[2] {
		t.Errorf("parsed %+v (%v) and %+v (%v), want the same placeholder", now, err1, old, err2)
	}
}

func TestParseTemplate(t *testing.T) {
	for _, tc := range []struct{ name, in, err string }{
		{"an unclosed brace is refused", "a{identity", "a { with no }"},
		{"a lone closing brace is refused", "a}b", "a } with no {"},
		{"an annotation placeholder needs a key", "{annotation:}", "not {annotation:}"},
		{"an annotation placeholder with a default needs a key", "{annotation:|x}", "expected an annotation key before the |"},
		{"doubled braces are text", "{{x}}", ""},
	} {
		t.Run(tc.name, func(t *testing.T) {
			_, err := parseTemplate(tc.in)
			if (err == nil) != (tc.err == "") || (err != nil && !strings.Contains(err.Error(), tc.err)) {
				t.Errorf("parseTemplate(%q) = %v, want %q", tc.in, err, tc.err)
			}
		})
	}
}

// TestReload: a changed file replaces the definitions; a bad one, or one
// that renames a provider, is logged and the last good one is kept.
func TestReload(t *testing.T) {
	dir := t.TempDir()
	file := filepath.Join(dir, "vault.yaml")
	write := func(s string) {
		t.Helper()
		// Written aside and renamed, as a ConfigMap update swaps files.
		tmp := filepath.Join(dir, ".tmp")
		if err := os.WriteFile(tmp, []byte(s), 0o600); err != nil {
			t.Fatal(err)
		}
		if err := os.Rename(tmp, file); err != nil {
			t.Fatal(err)
		}
	}
	write(strings.Replace(vault, "AUDIENCE", "one", 1))
	log, hook := test.NewNullLogger()
	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	ps, err := Load(ctx, []string{file}, []string{"aws"}, nil, log)
	if err != nil {
		t.Fatal(err)
	}
	audience := func() string {
		inj, err := ps[0].Inject(request(map[string]string{"vault.example.com/role": "r"}, map[string]string{"vault.example.com/use": "true"}))
		if err != nil {
			t.Fatal(err)
		}
		return inj.Volumes[0].Projected.Sources[0].ServiceAccountToken.Audience
	}
	waitFor := func(what string, ok func() bool) {
		t.Helper()
		for deadline := time.Now().Add(10 * time.Second); !ok(); time.Sleep(20 * time.Millisecond) {
			if time.Now().After(deadline) {
				t.Fatalf("never saw %s", what)
			}
		}
	}
	warned := func(part string) func() bool {
		return func() bool {
			for _, e := range hook.AllEntries() {
				if e.Level == logrus.WarnLevel && strings.Contains(e.Data[logrus.ErrorKey].(error).Error(), part) {
					return true
				}
			}
			return false
		}
	}

	write(strings.Replace(vault, "AUDIENCE", "two", 1))
	waitFor("the new audience", func() bool { return audience() == "two" })

	write(strings.Replace(vault, "pattern: '[a-z]+'", "pattern: '['", 1))
	waitFor("the bad pattern logged", warned("providers[0].identity.pattern"))
	if got := audience(); got != "two" {
		t.Errorf("after a bad file the audience is %q, want the last good one", got)
	}

	write(strings.Replace(strings.Replace(vault, "name: vault\n", "name: hashicorp\n", 1), "AUDIENCE", "three", 1))
	waitFor("the rename logged", warned("takes a restart"))
	if got := audience(); got != "two" || ps[0].Name() != "vault" {
		t.Errorf("after a rename the provider is %s with audience %q, want vault with the last good one", ps[0].Name(), got)
	}

	// Reading another annotation: the cache keeps only those read at start.
	more := strings.Replace(strings.Replace(vault, "AUDIENCE", "four", 1), "  annotations:\n", "  annotations:\n    vault.example.com/ns:\n      pattern: '[a-z]+'\n      expected: a namespace\n", 1)
	more = strings.Replace(more, "  annotations:", "  - name: VAULT_NAMESPACE\n    value: '{annotation:vault.example.com/ns}'\n    group: ns\n  annotations:", 1)
	write(more)
	waitFor("the new annotation logged", warned("now reads the serviceaccount annotations"))
	if got := audience(); got != "two" {
		t.Errorf("after a file that reads another annotation the audience is %q, want the last good one", got)
	}
}

func TestLoadRefusesANameTakenInAnotherFile(t *testing.T) {
	dir := t.TempDir()
	a, b := filepath.Join(dir, "a.yaml"), filepath.Join(dir, "b.yaml")
	for _, f := range []string{a, b} {
		if err := os.WriteFile(f, []byte(vault), 0o600); err != nil {
			t.Fatal(err)
		}
	}
	log, _ := test.NewNullLogger()
	_, err := Load(context.Background(), []string{a, b}, nil, nil, log)
	if err == nil || !strings.Contains(err.Error(), b) || !strings.Contains(err.Error(), `providers[0].name "vault"`) {
		t.Errorf("error %v, want one naming %s and the field", err, b)
	}
}

// TestTheDocumentedExampleLoads: the YAML blocks of docs/providers.md,
// and the shipped examples, are provider configs that load.
func TestTheDocumentedExampleLoads(t *testing.T) {
	doc, err := os.ReadFile("../../../docs/providers.md")
	if err != nil {
		t.Fatal(err)
	}
	blocks := strings.Split(string(doc), "```yaml\n")[1:]
	if len(blocks) == 0 {
		t.Fatal("docs/providers.md has no YAML block")
	}
	for i, b := range blocks {
		b, _, _ = strings.Cut(b, "```")
		if _, err := Parse([]byte(b)); err != nil {
			t.Errorf("block %d: %v", i, err)
		}
	}
	shipped, _ := filepath.Glob("../../../deploy/providers/*.yaml")
	if len(shipped) < 2 {
		t.Fatalf("deploy/providers has %d files", len(shipped))
	}
	for _, f := range shipped {
		data, err := os.ReadFile(f)
		if err != nil {
			t.Fatal(err)
		}
		if _, err := Parse(data, "aws", "azure", "gcp"); err != nil {
			t.Errorf("%s: %v", f, err)
		}
	}
}
