package main

import (
	"bytes"
	"encoding/json"
	"maps"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/pod-identity/injector/internal/explain"
	"github.com/pod-identity/injector/internal/golden"
	"github.com/pod-identity/injector/pkg/providers/providertest"
)

// TestExplainFixtures runs `injector explain` on every case of
// test/fixtures/explain (the kind/name targets of its targets file, if
// any) and compares the text with explained.txt. The same inputs are
// mutate fixtures too, so what explain says and what mutate does are
// checked side by side.
func TestExplainFixtures(t *testing.T) {
	for _, dir := range providertest.Cases(t, filepath.Join(fixtures, "explain")) {
		t.Run(filepath.Base(dir), func(t *testing.T) {
			args := append([]string{"explain", "-f", filepath.Join(dir, "input.yaml")}, providertest.Flags(t, dir)...)
			if targets, err := os.ReadFile(filepath.Join(dir, "targets")); err == nil {
				args = append(args, strings.Fields(string(targets))...)
			}
			stdout, _, err := runInjector(args, nil)
			if err != nil {
				t.Fatal(err)
			}
			golden.Check(t, filepath.Join(dir, "explained.txt"), bytes.ReplaceAll(stdout, []byte(dir+string(filepath.Separator)), nil))
		})
	}
	if _, _, err := runInjector([]string{"explain", "-f", filepath.Join(fixtures, "explain", "injects", "input.yaml"), "deployment/nope"}, nil); err == nil ||
		!strings.Contains(err.Error(), "deployment/nope: no such pod or workload in the input") {
		t.Errorf("a target that is not there: %v", err)
	}
}

// TestExplainJSON: -o json carries the same decisions, for scripts.
func TestExplainJSON(t *testing.T) {
	out, _, err := runInjector([]string{"explain", "-o", "json", "-f", filepath.Join(fixtures, "explain", "one-invalid-cloud-denies-the-others", "input.yaml")}, nil)
	if err != nil {
		t.Fatal(err)
	}
	var reports []explain.Report
	if err := json.Unmarshal(out, &reports); err != nil || len(reports) != 1 {
		t.Fatalf("%v: %s", err, out)
	}
	got := map[string]string{}
	for _, p := range reports[0].Providers {
		got[p.Name] = p.Decision
	}
	want := map[string]string{"aws": explain.PodDenied, "azure": explain.NotSetUp, "gcp": explain.Invalid}
	if !maps.Equal(got, want) || reports[0].Adds != nil {
		t.Errorf("decisions %v and additions %+v, want %v and none", got, reports[0].Adds, want)
	}
}
