// Command injector is the pod-identity-injector: a Kubernetes admission
// webhook that gives pods their cloud identity (`injector serve`), and an
// offline renderer of exactly what the webhook does (`injector mutate`).
package main

import (
	"context"
	"fmt"
	"os"
	"os/signal"
	"syscall"

	"github.com/spf13/cobra"
)

func main() {
	ctx, stop := signal.NotifyContext(context.Background(), syscall.SIGTERM, os.Interrupt)
	defer stop()
	if err := newRootCommand().ExecuteContext(ctx); err != nil {
		fmt.Fprintln(os.Stderr, "error:", err)
		os.Exit(1)
	}
}

func newRootCommand() *cobra.Command {
	root := &cobra.Command{
		Use:           "injector",
		Short:         "Give pods their cloud identity from their ServiceAccount's annotations",
		SilenceUsage:  true,
		SilenceErrors: true,
	}
	root.AddCommand(newMutateCommand(), newCheckCommand(), newExplainCommand(), newAuditCommand(), newServeCommand(), newSyncCommand())
	return root
}
