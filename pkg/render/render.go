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
	"maps"
	"os"
	"slices"
	"strings"

	"github.com/pod-identity/injector/pkg/manifest"
	"github.com/pod-identity/injector/pkg/mutate"
	"github.com/pod-identity/injector/pkg/policy"
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
	// Output is "yaml" or "json"; empty writes JSON when every document
	// read was JSON, else YAML.
	Output string
	// Patch prints each pod's JSON patch instead of the manifests.
	Patch bool
	// Namespace is the namespace of objects that name none.
	Namespace string
	// InvalidIdentity is "deny" (an invalid identity is an error) or
	// "warn" (a warning, and that provider's injection is left out).
	InvalidIdentity string
	// PolicyFiles are streams whose IdentityPolicy and Namespace documents
	// apply besides those in Files.
	PolicyFiles []string
	// NamespaceLabels are namespace labels by namespace name, besides
	// those of the Namespace documents.
	NamespaceLabels map[string]map[string]string
}

// input is what a stream holds for rendering or checking.
type input struct {
	docs     []*manifest.Document
	sas      manifest.ServiceAccounts
	policies *policy.Store
}

// load reads every stream opts names: the documents, the ServiceAccounts,
// and the identity policies and namespace labels.
func load(opts Options) (*input, error) {
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
	in := &input{sas: manifest.ServiceAccounts{}}
	for _, name := range opts.ServiceAccountFiles {
		docs, err := read(name)
		if err != nil {
			return nil, err
		}
		if err := in.sas.Add(docs, opts.Namespace); err != nil {
			return nil, err
		}
	}
	for _, name := range opts.Files {
		d, err := read(name)
		if err != nil {
			return nil, err
		}
		in.docs = append(in.docs, d...)
	}
	if err := in.sas.Add(in.docs, opts.Namespace); err != nil {
		return nil, err
	}
	var err error
	if in.policies, err = PolicyStore(in.docs, opts); err != nil {
		return nil, err
	}
	return in, nil
}

// PolicyStore returns the identity policies of docs and of
// opts.PolicyFiles, with the namespace labels of their Namespace documents
// and of opts.NamespaceLabels; nil when there is no policy.
func PolicyStore(docs []*manifest.Document, opts Options) (*policy.Store, error) {
	for _, name := range opts.PolicyFiles {
		f, err := os.Open(name)
		if err != nil {
			return nil, err
		}
		d, err := manifest.Read(f, name)
		_ = f.Close()
		if err != nil {
			return nil, err
		}
		docs = append(slices.Clip(docs), d...)
	}
	policies, namespaces, err := manifest.Policies(docs)
	if err != nil || len(policies) == 0 {
		return nil, err
	}
	store := policy.NewStore()
	store.SetPolicies(policy.NewSet(policies...))
	for name, labels := range namespaces {
		store.SetNamespace(name, labels)
	}
	for name, labels := range opts.NamespaceLabels {
		labels = maps.Clone(labels)
		labels["kubernetes.io/metadata.name"] = name
		store.SetNamespace(name, labels)
	}
	return store, nil
}

// Run renders as opts says, writing the result to stdout and one
// "Warning: ..." line a warning to stderr. In deny mode an invalid
// identity configuration is the error, and nothing is written to stdout;
// so is a pod that an identity policy denies, in either mode.
func Run(engine *mutate.Engine, opts Options, stdout, stderr io.Writer) error {
	in, err := load(opts)
	if err != nil {
		return err
	}
	docs := in.docs
	results, err := manifest.Mutate(engine, docs, manifest.Options{Namespace: opts.Namespace, ServiceAccounts: in.sas, Policies: in.policies, InvalidAdmitted: opts.InvalidIdentity == "warn"})
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
		for _, e := range r.Denied {
			invalid = append(invalid, e.Error())
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
	output := opts.Output
	if output == "" {
		output = "json"
		for _, d := range docs {
			if !d.JSON() {
				output = "yaml"
				break
			}
		}
	}
	return manifest.Write(stdout, docs, changed, output)
}
