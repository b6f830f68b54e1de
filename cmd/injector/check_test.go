package main

import (
	"bytes"
	"path/filepath"
	"strings"
	"testing"

	"github.com/pod-identity/injector/internal/golden"
	"github.com/pod-identity/injector/pkg/providers/providertest"
)

// TestCheckFixtures runs `injector check` on every identity policy and
// explain fixture and compares what it prints with check.txt (documents named
// relative to the case folder): every ServiceAccount whose identity a
// policy refuses, and every pod template the webhook would deny. It exits
// non-zero exactly when it prints something.
func TestCheckFixtures(t *testing.T) {
	var cases []string
	for _, area := range []string{"policy", "explain"} {
		cases = append(cases, providertest.Cases(t, filepath.Join(fixtures, area))...)
	}
	for _, dir := range cases {
		name, _ := filepath.Rel(fixtures, dir)
		t.Run(filepath.ToSlash(name), func(t *testing.T) {
			args := append([]string{"check", "-f", filepath.Join(dir, "input.yaml")}, providertest.Flags(t, dir)...)
			stdout, _, err := runInjector(args, nil)
			got := bytes.ReplaceAll(stdout, []byte(dir+string(filepath.Separator)), nil)
			golden.Check(t, filepath.Join(dir, "check.txt"), got)
			if (err != nil) != (len(stdout) > 0) {
				t.Errorf("check printed %d bytes and returned %v: it must fail exactly when it reports something", len(stdout), err)
			}
			if err != nil && !strings.Contains(err.Error(), "problem(s) found") {
				t.Errorf("check failed for another reason: %v", err)
			}
		})
	}
}

func TestCheckReportsAmbiguousPlaceholders(t *testing.T) {
	dir := filepath.Join(fixtures, "policy", "isolation-ambiguous-placeholders-are-reported")
	_, stderr, err := runInjector([]string{"check", "-f", filepath.Join(dir, "input.yaml")}, nil)
	if err != nil {
		t.Fatalf("an ambiguous pattern is a warning, not a problem: %v", err)
	}
	want := `Warning: identitypolicy "flat-roles": spec.aws.roleARNs[0] "arn:aws:iam::111122223333:role/{namespace}-{serviceaccount}": {namespace} and {serviceaccount} are separated by "-", which both could hold`
	if !strings.Contains(string(stderr), want) {
		t.Errorf("stderr %q lacks %q", stderr, want)
	}
}

func TestServeRefusesClientNamesWithoutAClientCA(t *testing.T) {
	_, _, err := runInjector([]string{"serve", "--tls-cert-file=x", "--tls-key-file=y", "--client-names=kube-apiserver"}, nil)
	if err == nil || !strings.Contains(err.Error(), "--client-names needs --client-ca-file") {
		t.Fatalf("serve = %v", err)
	}
}
