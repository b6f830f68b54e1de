// Command injector is the pod-identity-injector: a Kubernetes admission
// webhook that gives pods their cloud identity (`injector serve`), and an
// offline renderer of exactly what the webhook does (`injector mutate`).
package main

import (
	"fmt"
	"os"

	"github.com/spf13/cobra"
)

func main() {
	if err := newRootCommand().Execute(); err != nil {
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
	root.AddCommand(newMutateCommand())
	return root
}
