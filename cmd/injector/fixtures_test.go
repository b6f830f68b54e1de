package main

import (
	"bytes"
	"encoding/json"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/pod-identity/injector/internal/golden"
)

// fixtureCases lists every test/fixtures/<provider>/<case> folder.
func fixtureCases(t *testing.T) []string {
	t.Helper()
	dirs, err := filepath.Glob(filepath.Join("..", "..", "test", "fixtures", "*", "*"))
	if err != nil {
		t.Fatal(err)
	}
	var out []string
	for _, d := range dirs {
		if _, err := os.Stat(filepath.Join(d, "input.yaml")); err == nil {
			out = append(out, d)
		}
	}
	if len(out) == 0 {
		t.Fatal("no fixture cases found")
	}
	return out
}

// caseFlags reads the case's flags file: one flag a line, $CASE standing for
// the case folder.
func caseFlags(t *testing.T, dir string) []string {
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

// runInjector runs the injector command line as a user would and returns
// what it printed and its error.
func runInjector(args []string, stdin []byte) (stdout, stderr []byte, err error) {
	cmd := newRootCommand()
	var out, errOut bytes.Buffer
	cmd.SetArgs(args)
	cmd.SetIn(bytes.NewReader(stdin))
	cmd.SetOut(&out)
	cmd.SetErr(&errOut)
	err = cmd.Execute()
	return out.Bytes(), errOut.Bytes(), err
}

// TestFixtures renders every fixture's input.yaml with `injector mutate` and
// compares the stream with expected.yaml, the warnings with warnings.txt and
// an invalid configuration's message with error.txt.
func TestFixtures(t *testing.T) {
	for _, dir := range fixtureCases(t) {
		name := strings.TrimPrefix(dir, filepath.Join("..", "..", "test", "fixtures")+string(filepath.Separator))
		t.Run(name, func(t *testing.T) {
			args := append([]string{"mutate", "-f", filepath.Join(dir, "input.yaml")}, caseFlags(t, dir)...)
			stdout, stderr, err := runInjector(args, nil)
			errText := ""
			if err != nil {
				errText = err.Error() + "\n"
			}
			golden.Check(t, filepath.Join(dir, "error.txt"), []byte(errText))
			if err != nil && len(stdout) > 0 {
				t.Errorf("a failed run printed manifests:\n%s", stdout)
			}
			golden.Check(t, filepath.Join(dir, "warnings.txt"), stderr)
			golden.Check(t, filepath.Join(dir, "expected.yaml"), stdout)
		})
	}
}

// TestFixturesAreIdempotent feeds every expected output back in: the webhook
// must then have nothing left to add, and say nothing new.
func TestFixturesAreIdempotent(t *testing.T) {
	if golden.Update {
		t.Skip("expectations are being rewritten")
	}
	for _, dir := range fixtureCases(t) {
		expected := filepath.Join(dir, "expected.yaml")
		if _, err := os.Stat(expected); err != nil {
			continue
		}
		name := strings.TrimPrefix(dir, filepath.Join("..", "..", "test", "fixtures")+string(filepath.Separator))
		t.Run(name, func(t *testing.T) {
			args := append([]string{"mutate", "--patch", "-f", expected}, caseFlags(t, dir)...)
			stdout, stderr, err := runInjector(args, nil)
			if err != nil {
				t.Fatalf("second pass failed: %v", err)
			}
			// Nothing new to say: every warning of the second pass was a
			// warning of the first (a clamped value is clamped again), and
			// none is about a conflict with what the first pass added.
			first, _ := os.ReadFile(filepath.Join(dir, "warnings.txt"))
			for _, line := range strings.Split(strings.TrimSpace(string(stderr)), "\n") {
				if line != "" && !strings.Contains(string(first), line) {
					t.Errorf("the second pass says something the first did not: %s", line)
				}
			}
			dec := json.NewDecoder(bytes.NewReader(stdout))
			for dec.More() {
				var r struct {
					Kind, Namespace, Name string
					Patch                 []json.RawMessage
				}
				if err := dec.Decode(&r); err != nil {
					t.Fatal(err)
				}
				if len(r.Patch) != 0 {
					t.Errorf("%s %s/%s: second pass patched again: %s", r.Kind, r.Namespace, r.Name, r.Patch)
				}
			}
		})
	}
}
