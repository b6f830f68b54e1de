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
	root.AddCommand(newMutateCommand(args), newCheckCommand(args), newExplainCommand(args), newAuditCommand(args), newServeCommand(args), newSyncCommand(args), newTrustCommand(args), newIssuerCommand(), newVerifyCommand(args))
	root.SetArgs(args)
	return root
}
