package main

import (
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/pod-identity/injector/internal/golden"
	"github.com/pod-identity/injector/pkg/providers/providertest"
)

const testIssuer = "https://oidc.eks.us-west-2.amazonaws.com/id/EXAMPLED539D4633E53DE1B71EXAMPLE"

// TestTrustFixtures prints the trust of every case's ServiceAccounts
// (serviceaccounts.yaml: not an input.yaml, which the mutate fixtures
// would read) and compares it with expected.txt.
func TestTrustFixtures(t *testing.T) {
	cases, _ := filepath.Glob(filepath.Join(fixtures, "trust", "*", "serviceaccounts.yaml"))
	if len(cases) == 0 {
		t.Fatal("no trust fixtures")
	}
	for _, file := range cases {
		dir := filepath.Dir(file)
		name, _ := filepath.Rel(fixtures, dir)
		t.Run(filepath.ToSlash(name), func(t *testing.T) {
			args := append([]string{"trust", "-f", file, "--issuer", testIssuer}, providertest.Flags(t, dir)...)
			stdout, stderr, err := runInjector(args, nil)
			if err != nil {
				t.Fatalf("%v\n%s", err, stderr)
			}
			golden.Check(t, filepath.Join(dir, "expected.txt"), stdout)
			if strings.Contains(string(stdout), "system:serviceaccount:*") || strings.Contains(string(stdout), ":*\"") {
				t.Error("a wildcard subject was printed")
			}
		})
	}
}

func TestTrustRefusesBadInput(t *testing.T) {
	dir := t.TempDir()
	bad := filepath.Join(dir, "bad.yaml")
	if err := os.WriteFile(bad, []byte("apiVersion: v1\nkind: ServiceAccount\nmetadata: {name: x, namespace: team, annotations: {eks.amazonaws.com/role-arn: nope}}\n"), 0o600); err != nil {
		t.Fatal(err)
	}
	good := filepath.Join(fixtures, "trust", "aws-irsa", "serviceaccounts.yaml")
	for _, tt := range []struct {
		name string
		args []string
		want string
	}{
		{"no issuer", []string{"trust", "-f", good}, "--issuer is required"},
		{"an issuer that is not HTTPS", []string{"trust", "-f", good, "--issuer", "http://oidc.example.com"}, `issuer "http://oidc.example.com": expected an https:// URL`},
		{"an invalid identity", []string{"trust", "-f", bad, "--issuer", testIssuer}, `annotation eks.amazonaws.com/role-arn has invalid value "nope"`},
		{"an unknown output", []string{"trust", "-f", good, "--issuer", testIssuer, "-o", "xml"}, `-o "xml": expected json, yaml or commands`},
		{"an identity a policy refuses", []string{"trust", "-f", good, "--issuer", testIssuer, "--policy", filepath.Join(fixtures, "policy", "isolation-own-aws-token-denied", "input.yaml")},
			`serviceaccount "acme/billing": annotation eks.amazonaws.com/role-arn "arn:aws-cn:iam::444455556666:role/billing" is not allowed by identitypolicy "tenants"`},
	} {
		t.Run(tt.name, func(t *testing.T) {
			stdout, _, err := runInjector(tt.args, nil)
			if err == nil || !strings.Contains(err.Error(), tt.want) {
				t.Errorf("error %v, want %q", err, tt.want)
			}
			if len(stdout) > 0 {
				t.Errorf("printed %q before failing: nothing is half-printed", stdout)
			}
		})
	}
}

func TestTrustCheck(t *testing.T) {
	dir := t.TempDir()
	hp := strings.TrimPrefix(testIssuer, "https://")
	fed := `"Principal":{"Federated":"arn:aws:iam::111122223333:oidc-provider/` + hp + `"},"Action":"sts:AssumeRoleWithWebIdentity"`
	for _, tt := range []struct {
		name, doc string
		want      []string
		fails     bool
	}{
		{"a minimal trust passes", `{"Version":"2012-10-17","Statement":[{"Effect":"Allow",` + fed + `,"Condition":{"StringEquals":{"` + hp + `:sub":"system:serviceaccount:acme:reports","` + hp + `:aud":"sts.amazonaws.com"}}}]}`,
			[]string{"admits system:serviceaccount:acme:reports"}, false},
		{"a wildcard subject is reported", `{"Version":"2012-10-17","Statement":[{"Effect":"Allow",` + fed + `,"Condition":{"StringLike":{"` + hp + `:sub":"system:serviceaccount:*:*"},"StringEquals":{"` + hp + `:aud":"sts.amazonaws.com"}}}]}`,
			[]string{`Statement[0]: admits the subjects "system:serviceaccount:*:*" (StringLike): every ServiceAccount they match`}, true},
		{"a missing audience condition is reported", `{"Version":"2012-10-17","Statement":[{"Effect":"Allow",` + fed + `,"Condition":{"StringEquals":{"` + hp + `:sub":"system:serviceaccount:acme:reports"}}}]}`,
			[]string{"has no condition on " + hp + ":aud"}, true},
		{"no subject condition is reported", `{"Version":"2012-10-17","Statement":[{"Effect":"Allow",` + fed + `}]}`,
			[]string{"has no condition on " + hp + ":sub: any ServiceAccount of the cluster"}, true},
		{"another issuer is reported", `{"Version":"2012-10-17","Statement":[{"Effect":"Allow","Principal":{"Federated":"arn:aws:iam::111122223333:oidc-provider/other.example.com"},"Action":["sts:AssumeRoleWithWebIdentity"],"Condition":{"StringEquals":{"other.example.com:sub":"system:serviceaccount:a:b","other.example.com:aud":"sts.amazonaws.com"}}}]}`,
			[]string{`trusts web identities of "arn:aws:iam::111122223333:oidc-provider/other.example.com", not of this cluster's issuer`}, true},
	} {
		t.Run(tt.name, func(t *testing.T) {
			f := filepath.Join(dir, strings.ReplaceAll(tt.name, " ", "-")+".json")
			if err := os.WriteFile(f, []byte(tt.doc), 0o600); err != nil {
				t.Fatal(err)
			}
			stdout, _, err := runInjector([]string{"trust", "check", "--issuer", testIssuer, f}, nil)
			if (err != nil) != tt.fails {
				t.Errorf("error %v, want failure %t", err, tt.fails)
			}
			for _, w := range tt.want {
				if !strings.Contains(string(stdout), w) {
					t.Errorf("output %q lacks %q", stdout, w)
				}
			}
		})
	}
	t.Run("malformed JSON is a clear error", func(t *testing.T) {
		f := filepath.Join(dir, "bad.json")
		_ = os.WriteFile(f, []byte(`{"Statement":`), 0o600)
		_, _, err := runInjector([]string{"trust", "check", "--issuer", testIssuer, f}, nil)
		if err == nil || !strings.Contains(err.Error(), "bad.json: not an IAM policy document") {
			t.Errorf("error %v", err)
		}
	})
}
