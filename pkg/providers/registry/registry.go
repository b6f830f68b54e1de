// Package registry builds the enabled providers of a set of plugins from
// flags, with the declarative providers of --provider-config files after
// them. It knows no cloud: pkg/providers/builtin lists the compiled-in
// ones, so that a provider's tests build only that provider.
package registry

import (
	"context"
	"fmt"
	"os"
	"slices"
	"strings"
	"sync"

	"github.com/sirupsen/logrus"
	"github.com/spf13/pflag"

	"github.com/pod-identity/injector/pkg/providers"
	"github.com/pod-identity/injector/pkg/providers/declarative"
)

// Set is every compiled-in provider plugin and every declarative provider,
// each with its --enable-<name> switch.
type Set struct {
	plugins []providers.Plugin
	enabled map[string]*bool
	configs []string
	// declared are the declarative providers' names, read before the flags
	// are parsed (WithArgs); declareErr is why a file could not be read.
	declared   []string
	declareErr error
	// files are the config files as read once for the process.
	files *Configs
	// apiAudiences are --kubernetes-api-audiences.
	apiAudiences []string
}

// DefaultAPIAudiences are the audiences the API server accepts tokens for
// in most clusters: its in-cluster names. A cluster whose API server is
// given --api-audiences (or whose issuer differs, which is the default
// audience) names its own with --kubernetes-api-audiences.
var DefaultAPIAudiences = []string{"https://kubernetes.default.svc", "https://kubernetes.default.svc.cluster.local"}

// MaxAPIAudiences bounds --kubernetes-api-audiences: the IdentityParameters
// CRD's maxItems on spec.enforcement.apiAudiences, which sync writes them
// to (an API server accepts a handful).
const MaxAPIAudiences = 16

// APIAudiences returns the audiences of tokens the API server accepts
// (--kubernetes-api-audiences): a token a pod has with one of them is a
// Kubernetes API token, as one with no audience is.
func (s *Set) APIAudiences() []string { return slices.Clone(s.apiAudiences) }

// ConfigFlag is the flag that names a provider config file.
const ConfigFlag = "provider-config"

// WithArgs is WithConfigs(ReadConfigs(args)), for a command line that
// builds one Set.
func (s *Set) WithArgs(args []string) *Set {
	return s.WithConfigs(ReadConfigs(args))
}

// WithConfigs takes the provider config files the command line names, as
// ReadConfigs read them, so that AddFlags registers the --enable-<name>
// flag of each provider they declare, wherever it stands on the command
// line, and Build loads them without reading them again. It returns s.
func (s *Set) WithConfigs(c *Configs) *Set {
	s.files = c
	s.declared, s.declareErr = c.declaredNames()
	return s
}

// Configs are the provider config files a command line names, each read
// once: every command of a process, and Build's first load, share them
// (the file is read again only when it changes).
type Configs struct {
	names []string
	data  map[string][]byte
	errs  map[string]error
	// The provider names the files declare, parsed once for every Set.
	once       sync.Once
	declared   []string
	declareErr error
}

// declaredNames parses the files once for the provider names they
// declare.
func (c *Configs) declaredNames() ([]string, error) {
	c.once.Do(func() { c.declared, c.declareErr = declarative.Names(c.names, c.read) })
	return slices.Clone(c.declared), c.declareErr
}

// ReadFile reads a provider config file. It is a variable so that a test
// can count the reads: one per file per process.
var ReadFile = os.ReadFile

// ReadConfigs reads the provider config files args name.
func ReadConfigs(args []string) *Configs {
	c := &Configs{names: configArgs(args), data: map[string][]byte{}, errs: map[string]error{}}
	for _, f := range c.names {
		if _, done := c.data[f]; done {
			continue
		}
		if _, done := c.errs[f]; done {
			continue
		}
		if b, err := ReadFile(f); err != nil {
			c.errs[f] = err
		} else {
			c.data[f] = b
		}
	}
	return c
}

// read returns a file as ReadConfigs read it, or reads it (a file the
// flags name that the pre-scan did not see).
func (c *Configs) read(file string) ([]byte, error) {
	if c != nil {
		if b, ok := c.data[file]; ok {
			return b, nil
		}
		if err, ok := c.errs[file]; ok {
			return nil, err
		}
	}
	return ReadFile(file)
}

// configArgs returns the values of --provider-config in args.
func configArgs(args []string) []string {
	var files []string
	for i := 0; i < len(args); i++ {
		a := args[i]
		if a == "--" {
			break
		}
		if v, ok := strings.CutPrefix(a, "--"+ConfigFlag+"="); ok {
			files = append(files, v)
		} else if a == "--"+ConfigFlag && i+1 < len(args) {
			files = append(files, args[i+1])
			i++
		}
	}
	return files
}

// NewSet returns a set of the given plugins, each enabled by default: for
// a binary or a test that builds other providers than the compiled-in ones.
func NewSet(plugins ...providers.Plugin) *Set {
	return &Set{plugins: plugins, enabled: map[string]*bool{}}
}

// Names lists the compiled-in providers in order (the declarative ones
// are known once Build has read their files).
func (s *Set) Names() []string {
	names := make([]string, len(s.plugins))
	for i, p := range s.plugins {
		names[i] = p.Name()
	}
	return names
}

// AddFlags registers --provider-config, --enable-<name> for every
// compiled-in provider and every declarative one WithArgs found, and the
// compiled-in providers' own flags on fs.
func (s *Set) AddFlags(fs *pflag.FlagSet) {
	enable := func(name, what string) {
		on := true
		s.enabled[name] = &on
		fs.BoolVar(&on, "enable-"+name, true, fmt.Sprintf("inject %s identities%s", name, what))
	}
	for _, p := range s.plugins {
		enable(p.Name(), "")
		p.AddFlags(fs)
	}
	fs.StringArrayVar(&s.configs, ConfigFlag, nil, "file of declarative providers (see docs/providers.md), reloaded when it changes; repeatable")
	fs.StringSliceVar(&s.apiAudiences, "kubernetes-api-audiences", DefaultAPIAudiences, "audiences the API server accepts tokens for (its --api-audiences): a token a pod projects with one counts as a Kubernetes API token for IdentityPolicy spec.apiTokenWithIdentity; serve and sync add the API server's issuer, read at start")
	for _, name := range s.declared {
		if _, ok := s.enabled[name]; !ok {
			enable(name, " (declared by --"+ConfigFlag+")")
		}
	}
	if s.declareErr != nil {
		// Build reports what is wrong with the file; a flag of a provider
		// it would have declared must not hide that behind "unknown flag".
		fs.ParseErrorsAllowlist.UnknownFlags = true
	}
}

// Build returns the enabled providers, in registry order.
func (s *Set) Build(ctx context.Context, log logrus.FieldLogger) ([]providers.Provider, error) {
	if len(s.apiAudiences) > MaxAPIAudiences {
		return nil, fmt.Errorf("--kubernetes-api-audiences names %d audiences; at most %d (what policy mode's IdentityParameters hold)", len(s.apiAudiences), MaxAPIAudiences)
	}
	var out []providers.Provider
	for _, p := range s.plugins {
		if on, ok := s.enabled[p.Name()]; ok && !*on {
			continue
		}
		pr, err := p.Build(ctx, log.WithField("provider", p.Name()))
		if err != nil {
			return nil, fmt.Errorf("provider %s: %w", p.Name(), err)
		}
		out = append(out, pr)
	}
	declared, err := declarative.Load(ctx, s.configs, s.Names(), s.files.read, log.WithField("provider", "declarative"))
	if err != nil {
		return nil, err
	}
	for _, p := range declared {
		if on, ok := s.enabled[p.Name()]; !ok || *on {
			out = append(out, p)
		}
	}
	return out, nil
}
