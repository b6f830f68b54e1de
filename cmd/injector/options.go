package main

import (
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
	fs.StringVarP(v, "output", "o", def, help)
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
