package main

import (
	"fmt"
	"slices"
	"strings"
	"time"

	"github.com/spf13/pflag"
)

// The flags that several commands take, each defined here once: its name,
// shorthand, type and the form of its help. A command says only what the
// flag applies to for it and its default. The kubeconfig flags are
// kubeOptions', the provider flags the registry's, the policy flags
// policyFlags'.

// addFilenameFlag registers -f/--filename: files to read, - for stdin.
func addFilenameFlag(fs *pflag.FlagSet, v *[]string, what string) {
	fs.StringArrayVarP(v, "filename", "f", nil, what+", - for stdin (repeatable)")
}

// addServiceAccountsFlag registers --serviceaccounts: files of
// ServiceAccounts beside the manifests.
func addServiceAccountsFlag(fs *pflag.FlagSet, v *[]string, what string) {
	fs.StringArrayVar(v, "serviceaccounts", nil, "file of ServiceAccounts "+what+" (repeatable)")
}

// addNamespaceFlag registers -n/--namespace.
func addNamespaceFlag(fs *pflag.FlagSet, v *string, def, what string) {
	fs.StringVarP(v, "namespace", "n", def, what)
}

// addAllNamespacesFlag registers -A/--all-namespaces.
func addAllNamespacesFlag(fs *pflag.FlagSet, v *bool, what string) {
	fs.BoolVarP(v, "all-namespaces", "A", false, what)
}

// addOutputFlag registers -o/--output with the formats the command
// writes; def is the default ("" when the command picks one itself, said
// in note).
func addOutputFlag(fs *pflag.FlagSet, v *string, def, note string, formats ...string) {
	help := "output format: " + orList(formats)
	if note != "" {
		help += " (" + note + ")"
	}
	*v = def
	fs.VarP(&choice{v: v, allowed: formats}, "output", "o", help)
}

// addChoiceFlag registers a string flag that takes one of allowed.
func addChoiceFlag(fs *pflag.FlagSet, v *string, name, def, help string, allowed ...string) {
	*v = def
	fs.Var(&choice{v: v, allowed: allowed}, name, help)
}

// choice is a string flag that takes one of a few values. Every command
// checks its enumerated flags the same way, when the flags are parsed:
// `invalid argument "xml" for "-o, --output" flag: expected json or yaml`.
type choice struct {
	v       *string
	allowed []string
}

func (c *choice) String() string { return *c.v }

// Type names the value in the flags' help.
func (c *choice) Type() string { return "string" }

// Set takes s when it is one of the allowed values.
func (c *choice) Set(s string) error {
	if !slices.Contains(c.allowed, s) {
		return fmt.Errorf("expected %s", orList(c.allowed))
	}
	*c.v = s
	return nil
}

// addTimeoutFlag registers --timeout.
func addTimeoutFlag(fs *pflag.FlagSet, v *time.Duration, def time.Duration, what string) {
	fs.DurationVar(v, "timeout", def, "time allowed for "+what)
}

// addMetricsAddressFlag registers --metrics-address.
func addMetricsAddressFlag(fs *pflag.FlagSet, v *string) {
	fs.StringVar(v, "metrics-address", ":8080", "plain HTTP address of /metrics, /healthz and /readyz")
}

// addIssuerFlag registers --issuer.
func addIssuerFlag(fs *pflag.FlagSet, v *string, note string) {
	help := "the cluster's service account issuer URL"
	if note != "" {
		help += " (" + note + ")"
	}
	fs.StringVar(v, "issuer", "", help)
}

// orList writes "a", "a or b", "a, b or c".
func orList(items []string) string {
	if len(items) < 2 {
		return strings.Join(items, "")
	}
	return strings.Join(items[:len(items)-1], ", ") + " or " + items[len(items)-1]
}
