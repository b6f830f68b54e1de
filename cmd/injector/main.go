// Command injector is the pod-identity-injector: a Kubernetes admission
// webhook that gives pods their cloud identity (`injector serve`), and an
// offline renderer of exactly what the webhook does (`injector mutate`).
package main

import (
	"context"
	"errors"
	"fmt"
	"os"
	"os/signal"
	"syscall"

	"github.com/spf13/cobra"

	"github.com/pod-identity/injector/pkg/providers/registry"
)

func main() {
	ctx, stop := signal.NotifyContext(context.Background(), syscall.SIGTERM, os.Interrupt)
	defer stop()
	if err := newRootCommand(os.Args[1:]).ExecuteContext(ctx); err != nil {
		fmt.Fprintln(os.Stderr, "error:", err)
		code := 1
		var ec *exitCodeError
		if errors.As(err, &ec) {
			code = ec.code
		}
		os.Exit(code)
	}
}

// exitCodeError is an error that ends the command with an exit code other
// than 1, for commands whose codes say what they found.
type exitCodeError struct {
	code int
	err  error
}

func (e *exitCodeError) Error() string { return e.err.Error() }
func (e *exitCodeError) Unwrap() error { return e.err }

// newRootCommand builds the command line for args: the declarative
// providers of the --provider-config files args name have their
// --enable-<name> flags before the flags are parsed.
func newRootCommand(args []string) *cobra.Command {
	root := &cobra.Command{
		Use:           "injector",
		Short:         "Give pods their cloud identity from their ServiceAccount's annotations",
		SilenceUsage:  true,
		SilenceErrors: true,
	}
	// The provider config files are read once, for every command.
	configs := registry.ReadConfigs(args)
	root.AddCommand(newMutateCommand(configs), newCheckCommand(configs), newExplainCommand(configs), newAuditCommand(configs), newServeCommand(configs), newSyncCommand(configs), newTrustCommand(configs), newIssuerCommand(), newVerifyCommand(configs), newVersionCommand())
	// main prints every error once, as "error: ...": cobra's own "Error:"
	// line is silenced on every command, not only the root.
	var silence func(*cobra.Command)
	silence = func(c *cobra.Command) {
		c.SilenceErrors = true
		for _, sub := range c.Commands() {
			silence(sub)
		}
	}
	silence(root)
	root.SetArgs(args)
	return root
}
