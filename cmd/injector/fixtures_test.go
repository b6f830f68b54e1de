package main

import (
	"bytes"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/pod-identity/injector/pkg/providers/providertest"
)

// fixtures is where every provider's golden cases live.
var fixtures = filepath.Join("..", "..", "test", "fixtures")

// runInjector runs the injector command line as a user would and returns
// what it printed and its error.
func runInjector(args []string, stdin []byte) (stdout, stderr []byte, err error) {
	cmd := newRootCommand(args)
	var out, errOut bytes.Buffer
	cmd.SetIn(bytes.NewReader(stdin))
	cmd.SetOut(&out)
	cmd.SetErr(&errOut)
	err = cmd.Execute()
	return out.Bytes(), errOut.Bytes(), err
}

// TestFixtures runs every fixture through the `injector mutate` command
// line: the stream against expected.yaml, the warnings against
// warnings.txt, an invalid configuration's message against error.txt, and
// the conformance checks (only adds, mounts have volumes, a second pass
// adds and says nothing new).
func TestFixtures(t *testing.T) {
	providertest.Run(t, fixtures, func(file string, flags []string, patch bool) ([]byte, []byte, error) {
		args := append([]string{"mutate", "-f", file}, flags...)
		if patch {
			args = append(args, "--patch")
		}
		return runInjector(args, nil)
	})
}

// TestMutateOnlyInsertsLines: `injector mutate` keeps the user's YAML.
// For every fixture with YAML input, each input line is in the output, in
// order (comments, key order, quoting and indentation included): the
// output is the input with lines inserted. The listed cases are the
// documents written whole instead, and why.
func TestMutateOnlyInsertsLines(t *testing.T) {
	rewritten := map[string]string{
		"aws/empty-lists-are-appended-to": "its lists are flow style (`volumes: []`): nothing can be inserted into them line by line, so the document is written whole",
	}
	for _, dir := range providertest.Cases(t, fixtures) {
		name, _ := filepath.Rel(fixtures, dir)
		t.Run(filepath.ToSlash(name), func(t *testing.T) {
			in, err := os.ReadFile(filepath.Join(dir, "input.yaml"))
			if err != nil {
				t.Fatal(err)
			}
			out, err := os.ReadFile(filepath.Join(dir, "expected.yaml"))
			if os.IsNotExist(err) {
				t.Skip("the case expects an error")
			}
			if err != nil {
				t.Fatal(err)
			}
			if why, ok := rewritten[filepath.ToSlash(name)]; ok {
				t.Skip(why)
			}
			outLines := strings.Split(string(out), "\n")
			j := 0
			for i, l := range strings.Split(strings.TrimRight(string(in), "\n"), "\n") {
				if l == "---" && j < len(outLines) && outLines[j] != "---" {
					// The first document's leading separator is not written.
					if i == 0 {
						continue
					}
				}
				for j < len(outLines) && outLines[j] != l {
					j++
				}
				if j == len(outLines) {
					t.Fatalf("input line %d %q is not in the output after the lines before it: the output must be the input with lines inserted", i+1, l)
				}
				j++
			}
		})
	}
}
