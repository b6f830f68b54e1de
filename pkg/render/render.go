// Package render is what `injector mutate` does, for the command and for
// tests: it reads manifest streams, runs the engine on every pod template
// exactly as the webhook would, and writes the stream back (or each pod's
// patch), with the warnings, and an error in deny mode when an identity is
// invalid.
package render

import (
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"os"
	"strings"

	"github.com/pod-identity/injector/pkg/manifest"
	"github.com/pod-identity/injector/pkg/mutate"
)

// Options says what to render and how.
type Options struct {
	// Files are the manifest streams to render; "-" is Stdin.
	Files []string
	// ServiceAccountFiles are streams whose ServiceAccounts drive the
	// injection besides those in Files.
	ServiceAccountFiles []string
	// Stdin is read for "-".
	Stdin io.Reader
	// Output is "yaml" or "json".
	Output string
	// Patch prints each pod's JSON patch instead of the manifests.
	Patch bool
	// Namespace is the namespace of objects that name none.
	Namespace string
	// InvalidIdentity is "deny" (an invalid identity is an error) or
	// "warn" (a warning, and that provider's injection is left out).
	InvalidIdentity string
}

// Run renders as opts says, writing the result to stdout and one
// "Warning: ..." line a warning to stderr. In deny mode an invalid
// identity configuration is the error, and nothing is written to stdout.
func Run(engine *mutate.Engine, opts Options, stdout, stderr io.Writer) error {
	read := func(name string) ([]*manifest.Document, error) {
		if name == "-" {
			return manifest.Read(opts.Stdin, "stdin")
		}
		f, err := os.Open(name)
		if err != nil {
			return nil, err
		}
		defer func() { _ = f.Close() }()
		return manifest.Read(f, name)
	}
	sas := manifest.ServiceAccounts{}
	for _, name := range opts.ServiceAccountFiles {
		docs, err := read(name)
		if err != nil {
			return err
		}
		if err := sas.Add(docs, opts.Namespace); err != nil {
			return err
		}
	}
	var docs []*manifest.Document
	for _, name := range opts.Files {
		d, err := read(name)
		if err != nil {
			return err
		}
		docs = append(docs, d...)
	}
	if err := sas.Add(docs, opts.Namespace); err != nil {
		return err
	}
	results, err := manifest.Mutate(engine, docs, manifest.Options{Namespace: opts.Namespace, ServiceAccounts: sas})
	if err != nil {
		return err
	}
	var invalid []string
	changed := map[*manifest.Document]bool{}
	bySource := map[string]*manifest.Document{}
	for _, d := range docs {
		bySource[d.Source] = d
	}
	for _, r := range results {
		for _, w := range r.Warnings {
			_, _ = fmt.Fprintln(stderr, "Warning:", w)
		}
		if opts.InvalidIdentity == "warn" {
			for _, w := range r.InvalidAsWarnings() {
				_, _ = fmt.Fprintln(stderr, "Warning:", w)
			}
		} else {
			for _, e := range r.Invalid {
				invalid = append(invalid, e.Error())
			}
		}
		if len(r.Patch) > 0 {
			changed[bySource[r.Source]] = true
		}
	}
	if len(invalid) > 0 {
		return errors.New(strings.Join(invalid, "\n"))
	}
	if opts.Patch {
		enc := json.NewEncoder(stdout)
		for _, r := range results {
			patch := r.Patch
			if patch == nil {
				patch = []mutate.Op{}
			}
			if err := enc.Encode(map[string]any{"kind": r.Kind, "namespace": r.Namespace, "name": r.Name, "patch": patch}); err != nil {
				return err
			}
		}
		return nil
	}
	return manifest.Write(stdout, docs, changed, opts.Output)
}
