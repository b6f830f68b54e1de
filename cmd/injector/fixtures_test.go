package main

import (
	"bytes"
	"path/filepath"
	"testing"

	"github.com/pod-identity/injector/pkg/providers/providertest"
)

// fixtures is where every provider's golden cases live.
var fixtures = filepath.Join("..", "..", "test", "fixtures")

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
