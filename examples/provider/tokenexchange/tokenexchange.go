// Package tokenexchange is the provider that docs/providers.md builds: an
// in-house token exchange service that trades a pod's ServiceAccount token
// for credentials of the role its ServiceAccount names.
package tokenexchange

import (
	"context"
	"regexp"
	"strconv"

	"github.com/sirupsen/logrus"
	"github.com/spf13/pflag"
	corev1 "k8s.io/api/core/v1"

	"github.com/pod-identity/injector/pkg/providers"
)

// Names, annotations and paths of the provider.
const (
	Name           = "tokenexchange"
	RoleAnnotation = "sts.corp.example/role"
	SkipAnnotation = "sts.corp.example/skip-containers"
	OnlyAnnotation = "sts.corp.example/only-containers"
	ExpAnnotation  = "sts.corp.example/token-expiration"
	VolumeName     = "token-exchange-token"
	MountPath      = "/var/run/secrets/sts.corp.example"
	TokenPath      = "token"
)

var role = regexp.MustCompile(`^[a-z][a-z0-9-]{2,62}$`)

// Config is the provider's settings, one flag each.
type Config struct {
	URL      string
	Audience string
}

// NewPlugin returns the plugin with default settings.
func NewPlugin() providers.Plugin {
	cfg := &Config{}
	return providers.FuncPlugin{
		ProviderName: Name,
		Flags: func(fs *pflag.FlagSet) {
			fs.StringVar(&cfg.URL, "tokenexchange-url", "https://sts.corp.example/exchange", "token exchange endpoint")
			fs.StringVar(&cfg.Audience, "tokenexchange-audience", "sts.corp.example", "audience of the pod's token")
		},
		New: func(context.Context, logrus.FieldLogger) (providers.Provider, error) {
			return &Provider{cfg: *cfg}, nil
		},
	}
}

// Provider injects the token exchange identity.
type Provider struct{ cfg Config }

// Name implements providers.Provider.
func (p *Provider) Name() string { return Name }

// AnnotationPrefixes implements providers.Provider: the ServiceAccount
// cache keeps these annotations.
func (p *Provider) AnnotationPrefixes() []string { return []string{"sts.corp.example/"} }

// Inject implements providers.Provider.
func (p *Provider) Inject(req providers.Request) (*providers.Injection, error) {
	name, ok := req.Value(RoleAnnotation)
	if !ok {
		return nil, nil // not set up for this provider: nothing to say
	}
	if !role.MatchString(name) {
		// The identity itself is wrong: the pod is denied with this.
		return nil, req.Invalid(Name, RoleAnnotation, req.ServiceAccount.Annotations[RoleAnnotation],
			"a role name: 3 to 63 lower-case letters, digits and hyphens")
	}
	expiration, warning, err := req.TokenExpiration(Name, ExpAnnotation, 3600,
		providers.Bounds{Min: 600, Max: 86400, Clamp: true})
	if err != nil {
		return nil, err
	}
	inj := &providers.Injection{
		Provider:   Name,
		Source:     "serviceaccount " + strconv.Quote(req.SARef()) + " annotation " + RoleAnnotation,
		Identities: []providers.Identity{{Field: "identities", Source: "annotation " + RoleAnnotation, Value: name}},
		Volumes:    []corev1.Volume{providers.TokenVolume(VolumeName, p.cfg.Audience, expiration, TokenPath)},
		Mounts:     []providers.Mount{{VolumeName: VolumeName, MountPath: MountPath}},
		Env: []providers.EnvGroup{{Name: providers.CredentialGroup, Vars: []corev1.EnvVar{
			{Name: "TOKEN_EXCHANGE_ROLE", Value: name},
			{Name: "TOKEN_EXCHANGE_TOKEN_FILE", Value: MountPath + "/" + TokenPath},
			{Name: "TOKEN_EXCHANGE_URL", Value: p.cfg.URL},
		}}},
	}
	if warning != "" {
		inj.Warnings = append(inj.Warnings, warning)
	}
	if err := req.Containers(Name, SkipAnnotation, OnlyAnnotation, ",", inj); err != nil {
		return nil, err
	}
	return inj, nil
}
