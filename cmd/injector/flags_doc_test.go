package main

import (
	"fmt"
	"go/ast"
	"go/parser"
	"go/token"
	"path/filepath"
	"slices"
	"strconv"
	"strings"
	"testing"

	"github.com/spf13/cobra"
	"github.com/spf13/pflag"

	"github.com/pod-identity/injector/internal/golden"
	"github.com/pod-identity/injector/pkg/providers/builtin"
)

// TestTheFlagReferenceIsCurrent: docs/flags.md is generated from the
// commands themselves (GOLDEN_UPDATE=1 go test ./cmd/injector, or make
// generate), and fails when a flag, its default or its help changed
// without it.
func TestTheFlagReferenceIsCurrent(t *testing.T) {
	golden.Check(t, filepath.Join("..", "..", "docs", "flags.md"), []byte(flagReference(newRootCommand(nil))))
}

// flagReference renders every command's flags: the provider flags once,
// then each command's own, with a note where it also takes the provider
// flags.
func flagReference(root *cobra.Command) string {
	provider := pflag.NewFlagSet("providers", pflag.ContinueOnError)
	builtin.New().AddFlags(provider)
	var b strings.Builder
	b.WriteString("# Flag reference\n\n")
	b.WriteString("Every flag of every `injector` command, generated from the commands themselves\n")
	b.WriteString("(`make generate`; a test fails when this file is not current). What the flags do in\n")
	b.WriteString("context: [clouds.md](clouds.md) for the providers', [deploying.md](deploying.md) for\n")
	b.WriteString("`serve`'s, [policy-mode.md](policy-mode.md) for `sync`'s.\n\n")
	b.WriteString("## Provider flags\n\n")
	b.WriteString("Taken by every command that injects or explains: `serve`, `sync`, `mutate`, `check`,\n")
	b.WriteString("`explain`, `audit`, `trust` and `verify`. A declarative provider file adds its own\n")
	b.WriteString("`--enable-<name>`.\n\n")
	b.WriteString("```text\n" + provider.FlagUsagesWrapped(100) + "```\n")
	var walk func(c *cobra.Command)
	walk = func(c *cobra.Command) {
		cmds := c.Commands()
		slices.SortFunc(cmds, func(a, b *cobra.Command) int { return strings.Compare(a.Name(), b.Name()) })
		for _, sub := range cmds {
			if sub.Hidden || sub.Name() == "help" || sub.Name() == "completion" {
				continue
			}
			own := pflag.NewFlagSet(sub.Name(), pflag.ContinueOnError)
			takesProviders := false
			sub.LocalFlags().VisitAll(func(f *pflag.Flag) {
				if provider.Lookup(f.Name) != nil {
					takesProviders = true
					return
				}
				own.AddFlag(f)
			})
			fmt.Fprintf(&b, "\n## %s\n\n%s.", sub.CommandPath(), strings.TrimSuffix(sub.Short, "."))
			if takesProviders {
				b.WriteString(" Also the [provider flags](#provider-flags).")
			}
			b.WriteString("\n\n")
			if own.HasFlags() {
				b.WriteString("```text\n" + own.FlagUsagesWrapped(100) + "```\n")
			} else {
				b.WriteString("No flags of its own.\n")
			}
			walk(sub)
		}
	}
	walk(root)
	return b.String()
}

// TestEachFlagIsDefinedInOnePlace: a flag name that several commands take
// is registered by one function (options.go, kubeOptions, the registry),
// not once per command: no name is passed to the flag set's Var functions
// in two places of this package.
func TestEachFlagIsDefinedInOnePlace(t *testing.T) {
	files, _ := filepath.Glob("*.go")
	seen := map[string]string{}
	fset := token.NewFileSet()
	for _, file := range files {
		if strings.HasSuffix(file, "_test.go") {
			continue
		}
		f, err := parser.ParseFile(fset, file, nil, 0)
		if err != nil {
			t.Fatal(err)
		}
		ast.Inspect(f, func(n ast.Node) bool {
			call, ok := n.(*ast.CallExpr)
			if !ok {
				return true
			}
			sel, ok := call.Fun.(*ast.SelectorExpr)
			if !ok || !strings.HasSuffix(sel.Sel.Name, "Var") && !strings.HasSuffix(sel.Sel.Name, "VarP") || len(call.Args) < 2 {
				return true
			}
			lit, ok := call.Args[1].(*ast.BasicLit)
			if !ok || lit.Kind != token.STRING {
				return true
			}
			name, _ := strconv.Unquote(lit.Value)
			at := fset.Position(call.Pos()).String()
			if prev, dup := seen[name]; dup {
				t.Errorf("flag --%s is registered at %s and at %s: define it once (options.go)", name, prev, at)
			}
			seen[name] = at
			return true
		})
	}
	if len(seen) < 20 {
		t.Fatalf("found %d flag registrations; the scan is not reading the commands", len(seen))
	}
}
