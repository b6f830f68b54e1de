// Package gcp is the Google Cloud Workload Identity Federation provider for
// clusters outside GKE. It builds the external_account credential
// configuration in the webhook (no init container, no image), stores it as a
// pod annotation and projects it, with the token it points at, into the
// containers.
package gcp

import (
	"context"
	"encoding/json"
	"fmt"
	"net/url"
	"regexp"
	"strconv"
	"strings"

	"github.com/sirupsen/logrus"
	"github.com/spf13/pflag"
	corev1 "k8s.io/api/core/v1"
	"k8s.io/apimachinery/pkg/util/validation"

	"github.com/pod-identity/injector/pkg/providers"
)

// Annotations, paths and defaults of the Google Cloud provider.
const (
	Name                    = "gcp"
	Prefix                  = "cloud.google.com/"
	ProviderAnnotation      = Prefix + "workload-identity-provider"
	EmailAnnotation         = Prefix + "service-account-email"
	AudienceAnnotation      = Prefix + "audience"
	ExpirationAnnotation    = Prefix + "token-expiration"
	LifetimeAnnotation      = Prefix + "impersonation-lifetime"
	ProjectAnnotation       = Prefix + "project-id"
	LegacyProjectAnnotation = Prefix + "project"
	SkipAnnotation          = Prefix + "skip-containers"
	OnlyAnnotation          = Prefix + "only-containers"
	CredentialsAnnotation   = Prefix + "external-credentials-json"
	TokenVolumeName         = "gcp-iam-token"
	TokenMountPath          = "/var/run/secrets/sts.googleapis.com/serviceaccount"
	TokenPath               = "token"
	ConfigVolumeName        = "gcp-workload-identity"
	ConfigMountPath         = "/var/run/secrets/workload-identity"
	ConfigPath              = "federation.json"
	// GcloudConfigVolumeName and GcloudConfigMountPath are the writable
	// directory named by CLOUDSDK_CONFIG: gcloud writes its state there,
	// and a read-only root filesystem leaves it nowhere else. The names
	// are the GCP webhook's, whose direct mode injects the same since its
	// pull request 152.
	GcloudConfigVolumeName    = "gcloud-config"
	GcloudConfigMountPath     = "/var/run/secrets/gcloud/config"
	DefaultTokenURL           = "https://sts.googleapis.com/v1/token"
	DefaultIAMCredentialsURL  = "https://iamcredentials.googleapis.com"
	DefaultUniverseDomain     = "googleapis.com"
	DefaultTokenExpiration    = 3600
	MinTokenExpiration        = 600
	MaxTokenExpiration        = 86400
	MinImpersonationLifetime  = 600
	MaxImpersonationLifetime  = 43200
	providerExpected          = "projects/<project number>/locations/global/workloadIdentityPools/<pool>/providers/<provider>"
	emailExpected             = "a service account email such as name@project.iam.gserviceaccount.com"
	projectExpected           = "a project ID: 6 to 30 lower-case letters, digits and hyphens, optionally after a domain and a colon"
	lifetimeExpectedFormat    = "a whole number of seconds from %d to %d"
	subjectTokenTypeJWT       = "urn:ietf:params:oauth:token-type:jwt"
	iamAudiencePrefix         = "//iam.googleapis.com/"
	serviceAccountEmailDomain = ".iam.gserviceaccount.com"
)

var (
	providerName = regexp.MustCompile(`^projects/[0-9]{1,20}/locations/global/workloadIdentityPools/[a-z0-9-]{4,32}/providers/[a-z0-9-]{4,32}$`)
	email        = regexp.MustCompile(`^[a-zA-Z0-9._%+-]{1,64}@[a-zA-Z0-9.-]+\.[a-z]{2,}$`)
	projectID    = regexp.MustCompile(`^([a-z0-9][a-z0-9.-]*[a-z0-9]:)?[a-z][a-z0-9-]{4,28}[a-z0-9]$`)
)

// Config holds the Google Cloud provider's settings.
type Config struct {
	// TokenURL is the Security Token Service endpoint.
	TokenURL string
	// IAMCredentialsURL is the base of the service account impersonation endpoint.
	IAMCredentialsURL string
	// UniverseDomain is written as universe_domain.
	UniverseDomain string
	// DefaultRegion, when set, is injected as CLOUDSDK_COMPUTE_REGION.
	DefaultRegion string
	// AnnotationPrefix is the domain of every annotation the provider
	// reads and writes (the GCP webhook's --annotation-domain).
	AnnotationPrefix string
	// Audience is the token audience when the ServiceAccount names none;
	// empty means the workload identity provider's own audience.
	Audience string
	// TokenExpiration is the token lifetime in seconds when no annotation sets one.
	TokenExpiration int64
	// FileMode, when set, is the defaultMode of both volumes (the GCP
	// webhook's --token-default-mode).
	FileMode int32
}

// keys are the annotation keys under the configured prefix.
type keys struct {
	provider, email, audience, expiration, lifetime, project, legacyProject, skip, only, credentials string
}

func newKeys(prefix string) keys {
	pre := prefix + "/"
	return keys{
		provider: pre + "workload-identity-provider", email: pre + "service-account-email", audience: pre + "audience",
		expiration: pre + "token-expiration", lifetime: pre + "impersonation-lifetime", project: pre + "project-id",
		legacyProject: pre + "project", skip: pre + "skip-containers", only: pre + "only-containers",
		credentials: pre + "external-credentials-json",
	}
}

func (c *Config) defaults() {
	if c.TokenURL == "" {
		c.TokenURL = DefaultTokenURL
	}
	if c.IAMCredentialsURL == "" {
		c.IAMCredentialsURL = DefaultIAMCredentialsURL
	}
	c.IAMCredentialsURL = strings.TrimSuffix(c.IAMCredentialsURL, "/")
	if c.UniverseDomain == "" {
		c.UniverseDomain = DefaultUniverseDomain
	}
	if c.AnnotationPrefix == "" {
		c.AnnotationPrefix = strings.TrimSuffix(Prefix, "/")
	}
	c.AnnotationPrefix = strings.TrimSuffix(c.AnnotationPrefix, "/")
	if c.TokenExpiration == 0 {
		c.TokenExpiration = DefaultTokenExpiration
	}
}

func (c *Config) validate() error {
	for flag, v := range map[string]string{"--gcp-token-url": c.TokenURL, "--gcp-iam-credentials-url": c.IAMCredentialsURL} {
		u, err := url.Parse(v)
		if err != nil || (u.Scheme != "https" && u.Scheme != "http") || u.Host == "" {
			return fmt.Errorf("%s %q: expected an http(s) URL", flag, v)
		}
	}
	if errs := validation.IsDNS1123Subdomain(c.AnnotationPrefix); len(errs) > 0 {
		return fmt.Errorf("--gcp-annotation-prefix %q: expected a DNS subdomain such as cloud.google.com (%s)", c.AnnotationPrefix, errs[0])
	}
	if c.TokenExpiration < MinTokenExpiration || c.TokenExpiration > MaxTokenExpiration {
		return fmt.Errorf("--gcp-token-expiration %d: expected %d to %d seconds", c.TokenExpiration, MinTokenExpiration, MaxTokenExpiration)
	}
	if c.FileMode < 0 || c.FileMode > 0o777 {
		return fmt.Errorf("--gcp-token-file-mode %o: expected an octal file mode from 0 to 0777", c.FileMode)
	}
	return nil
}

// NewPlugin returns the Google Cloud plugin with default settings.
func NewPlugin() providers.Plugin {
	cfg := &Config{}
	return providers.FuncPlugin{ProviderName: Name, Flags: cfg.addFlags,
		New: func(context.Context, logrus.FieldLogger) (providers.Provider, error) { return New(*cfg) }}
}

func (c *Config) addFlags(fs *pflag.FlagSet) {
	fs.StringVar(&c.TokenURL, "gcp-token-url", DefaultTokenURL, "Security Token Service endpoint written as token_url")
	fs.StringVar(&c.IAMCredentialsURL, "gcp-iam-credentials-url", DefaultIAMCredentialsURL, "base of the service account impersonation URL")
	fs.StringVar(&c.UniverseDomain, "gcp-universe-domain", DefaultUniverseDomain, "universe_domain of the credential configuration")
	fs.StringVar(&c.DefaultRegion, "gcp-default-region", "", "inject CLOUDSDK_COMPUTE_REGION with this region")
	fs.StringVar(&c.AnnotationPrefix, "gcp-annotation-prefix", strings.TrimSuffix(Prefix, "/"), "domain of the Google ServiceAccount and pod annotations (the GCP webhook's --annotation-domain)")
	fs.StringVar(&c.Audience, "gcp-token-audience", "", "default token audience (default: the workload identity provider's, //iam.googleapis.com/<provider>; the GCP webhook's default was sts.googleapis.com)")
	fs.Int64Var(&c.TokenExpiration, "gcp-token-expiration", DefaultTokenExpiration, "default token lifetime in seconds (600 to 86400; the GCP webhook's default was 86400)")
	fs.Var(fileMode{&c.FileMode}, "gcp-token-file-mode", "octal defaultMode of the token and configuration volumes, e.g. 0440 (default: Kubernetes', 0644)")
}

// fileMode is an octal file mode flag value.
type fileMode struct{ v *int32 }

func (f fileMode) String() string {
	if f.v == nil || *f.v == 0 {
		return ""
	}
	return fmt.Sprintf("%#o", *f.v)
}

func (f fileMode) Set(s string) error {
	n, err := strconv.ParseInt(s, 8, 32)
	if err != nil || n < 0 || n > 0o777 {
		return fmt.Errorf("%q: expected an octal file mode such as 0440", s)
	}
	*f.v = int32(n)
	return nil
}

func (f fileMode) Type() string { return "mode" }

// Provider injects Google Cloud workload identities.
type Provider struct {
	cfg  Config
	keys keys
}

// New validates cfg and returns the provider.
func New(cfg Config) (*Provider, error) {
	cfg.defaults()
	if err := cfg.validate(); err != nil {
		return nil, err
	}
	return &Provider{cfg: cfg, keys: newKeys(cfg.AnnotationPrefix)}, nil
}

// Name implements providers.Provider.
func (p *Provider) Name() string { return Name }

// ServiceAccountKeys implements providers.KeyReader.
func (p *Provider) ServiceAccountKeys() []string {
	k := p.keys
	return []string{k.provider, k.email, k.audience, k.expiration, k.lifetime, k.project, k.legacyProject}
}

// TokenAudiences implements providers.Enforcer: every workload identity
// pool provider's, STS's, and the flag's.
func (p *Provider) TokenAudiences() []string {
	out := []string{iamAudiencePrefix + "*", "https://iam.googleapis.com/*", "sts.googleapis.com"}
	if p.cfg.Audience != "" {
		out = append(out, p.cfg.Audience)
	}
	return out
}

// InjectionMarks implements providers.Marker.
func (p *Provider) InjectionMarks() []providers.Mark {
	return []providers.Mark{{Volume: TokenVolumeName, Variable: "GOOGLE_APPLICATION_CREDENTIALS"}}
}

// IdentityVariables implements providers.Enforcer: a credential
// configuration file of the container's own names a provider and a
// service account the policies cannot see. (gcloud's impersonation
// variable is not one: the injector never sets it, so a container with
// envFrom could not comply, and whom an identity may impersonate is the
// service accounts' IAM policy: docs/governance.md.)
func (p *Provider) IdentityVariables() map[string]string {
	return map[string]string{"GOOGLE_APPLICATION_CREDENTIALS": "workloadIdentityProviders"}
}

// AnnotationPrefixes implements providers.Provider.
func (p *Provider) AnnotationPrefixes() []string { return []string{p.cfg.AnnotationPrefix + "/"} }

// CredentialConfig is the external_account credential configuration that
// Google's client libraries and gcloud read.
type CredentialConfig struct {
	Type                           string           `json:"type"`
	Audience                       string           `json:"audience"`
	SubjectTokenType               string           `json:"subject_token_type"`
	TokenURL                       string           `json:"token_url"`
	ServiceAccountImpersonationURL string           `json:"service_account_impersonation_url,omitempty"`
	ServiceAccountImpersonation    *Impersonation   `json:"service_account_impersonation,omitempty"`
	CredentialSource               CredentialSource `json:"credential_source"`
	UniverseDomain                 string           `json:"universe_domain"`
}

// Impersonation holds the impersonated access token's lifetime.
type Impersonation struct {
	TokenLifetimeSeconds int64 `json:"token_lifetime_seconds"`
}

// CredentialSource says where the subject token is read from.
type CredentialSource struct {
	File   string           `json:"file"`
	Format CredentialFormat `json:"format"`
}

// CredentialFormat is the subject token file's format.
type CredentialFormat struct {
	Type string `json:"type"`
}

// halfConfigured warns about a ServiceAccount that carries Google
// annotations but not the one that turns injection on. Nil when it has none.
func (p *Provider) halfConfigured(req providers.Request) *providers.Injection {
	return req.MissingIdentity(Name, []string{p.keys.email, p.keys.audience, p.keys.expiration, p.keys.lifetime, p.keys.project, p.keys.legacyProject},
		p.keys.provider, "Google", "its workload identity provider")
}

// projectUsed words what stands in for an invalid project annotation.
func projectUsed(derived string) string {
	if derived == "" {
		return "no CLOUDSDK_CORE_PROJECT"
	}
	return "the project of the service account email (" + derived + ")"
}

// Inject implements providers.Provider.
func (p *Provider) Inject(req providers.Request) (*providers.Injection, error) {
	sa := req.ServiceAccount
	resource, ok := req.Value(p.keys.provider)
	if !ok {
		return p.halfConfigured(req), nil
	}
	if !providerName.MatchString(resource) {
		return nil, req.Invalid(Name, p.keys.provider, sa.Annotations[p.keys.provider], providerExpected)
	}
	inj := &providers.Injection{
		Provider:   Name,
		Source:     "serviceaccount " + strconv.Quote(req.SARef()) + " annotation " + p.keys.provider,
		Identities: []providers.Identity{{Field: "workloadIdentityProviders", Source: "annotation " + p.keys.provider, Value: resource}},
	}
	// Not lenient: the GCP webhook denies an expiration that is not a number.
	expiration, warning, err := req.TokenExpiration(Name, p.keys.expiration, p.cfg.TokenExpiration,
		providers.Bounds{Min: MinTokenExpiration, Max: MaxTokenExpiration, Clamp: true})
	if err != nil {
		return nil, err
	}
	if warning != "" {
		inj.Warnings = append(inj.Warnings, warning)
	}
	stsAudience := iamAudiencePrefix + resource
	tokenAudience := stsAudience
	if p.cfg.Audience != "" {
		tokenAudience = p.cfg.Audience
	}
	if v, ok := req.Value(p.keys.audience); ok && v != tokenAudience {
		tokenAudience = v
		inj.Identities = append(inj.Identities, providers.AudienceIdentity(p.keys.audience, v))
	}
	cc := CredentialConfig{
		Type:             "external_account",
		Audience:         stsAudience,
		SubjectTokenType: subjectTokenTypeJWT,
		TokenURL:         p.cfg.TokenURL,
		CredentialSource: CredentialSource{File: TokenMountPath + "/" + TokenPath, Format: CredentialFormat{Type: "text"}},
		UniverseDomain:   p.cfg.UniverseDomain,
	}
	project := ""
	if addr, ok := req.Value(p.keys.email); ok {
		if !email.MatchString(addr) {
			return nil, req.Invalid(Name, p.keys.email, sa.Annotations[p.keys.email], emailExpected)
		}
		inj.Identities = append(inj.Identities, providers.Identity{Field: "serviceAccountEmails", Source: "annotation " + p.keys.email, Value: addr, CaseInsensitive: true})
		cc.ServiceAccountImpersonationURL = p.cfg.IAMCredentialsURL + "/v1/projects/-/serviceAccounts/" + addr + ":generateAccessToken"
		if at := strings.LastIndex(addr, "@"); strings.HasSuffix(addr, serviceAccountEmailDomain) {
			project = strings.TrimSuffix(addr[at+1:], serviceAccountEmailDomain)
		}
	}
	if v, ok := req.Value(p.keys.lifetime); ok {
		n, err := strconv.ParseInt(v, 10, 64)
		switch {
		case err != nil || n < MinImpersonationLifetime || n > MaxImpersonationLifetime:
			inj.Warnings = append(inj.Warnings, req.Ignored(Name, false, p.keys.lifetime, v,
				fmt.Sprintf(lifetimeExpectedFormat, MinImpersonationLifetime, MaxImpersonationLifetime), "Google's default of 3600 seconds"))
		case cc.ServiceAccountImpersonationURL == "":
			inj.Warnings = append(inj.Warnings, fmt.Sprintf("gcp (%s): annotation %s is ignored without %s (direct resource access has no impersonated token)",
				inj.Source, p.keys.lifetime, p.keys.email))
		default:
			cc.ServiceAccountImpersonation = &Impersonation{TokenLifetimeSeconds: n}
		}
	}
	for _, key := range []string{p.keys.project, p.keys.legacyProject} {
		if v, ok := req.Value(key); ok {
			if !projectID.MatchString(v) {
				inj.Warnings = append(inj.Warnings, req.Ignored(Name, false, key, v, projectExpected, projectUsed(project)))
			} else {
				project = v
			}
			break
		}
	}
	config, err := json.Marshal(cc)
	if err != nil {
		return nil, fmt.Errorf("encode the credential configuration of serviceaccount %q: %w", req.SARef(), err)
	}
	configFile := ConfigMountPath + "/" + ConfigPath
	inj.Annotations = map[string]string{p.keys.credentials: string(config)}
	inj.Volumes = []corev1.Volume{
		providers.TokenVolume(TokenVolumeName, tokenAudience, expiration, TokenPath),
		{Name: ConfigVolumeName, VolumeSource: corev1.VolumeSource{DownwardAPI: &corev1.DownwardAPIVolumeSource{
			Items: []corev1.DownwardAPIVolumeFile{{
				Path:     ConfigPath,
				FieldRef: &corev1.ObjectFieldSelector{APIVersion: "v1", FieldPath: "metadata.annotations['" + p.keys.credentials + "']"},
			}},
		}}},
	}
	if mode := p.cfg.FileMode; mode != 0 {
		inj.Volumes[0].Projected.DefaultMode = &mode
		inj.Volumes[1].DownwardAPI.DefaultMode = &mode
	}
	inj.Volumes = append(inj.Volumes, corev1.Volume{Name: GcloudConfigVolumeName, VolumeSource: corev1.VolumeSource{EmptyDir: &corev1.EmptyDirVolumeSource{}}})
	inj.Mounts = []providers.Mount{
		{VolumeName: TokenVolumeName, MountPath: TokenMountPath},
		{VolumeName: ConfigVolumeName, MountPath: ConfigMountPath},
		{VolumeName: GcloudConfigVolumeName, MountPath: GcloudConfigMountPath, Writable: true},
	}
	inj.Env = []providers.EnvGroup{{Name: providers.CredentialGroup, Vars: []corev1.EnvVar{
		{Name: "GOOGLE_APPLICATION_CREDENTIALS", Value: configFile},
		{Name: "CLOUDSDK_AUTH_CREDENTIAL_FILE_OVERRIDE", Value: configFile},
	}}}
	// gcloud reads its own override before the SDKs' variable.
	inj.TokenFileVariables = []string{"GOOGLE_APPLICATION_CREDENTIALS", "CLOUDSDK_AUTH_CREDENTIAL_FILE_OVERRIDE"}
	// A group of its own: a container that keeps gcloud's state elsewhere
	// keeps its directory and still gets the identity.
	inj.Env = append(inj.Env, providers.EnvGroup{Name: "gcloud config", Vars: []corev1.EnvVar{{Name: "CLOUDSDK_CONFIG", Value: GcloudConfigMountPath}}})
	if project != "" {
		inj.Env = append(inj.Env, providers.EnvGroup{Name: "project", Vars: []corev1.EnvVar{{Name: "CLOUDSDK_CORE_PROJECT", Value: project}}})
	}
	if r := p.cfg.DefaultRegion; r != "" {
		inj.Env = append(inj.Env, providers.EnvGroup{Name: "region", Vars: []corev1.EnvVar{{Name: "CLOUDSDK_COMPUTE_REGION", Value: r}}})
	}
	if err := req.Containers(Name, p.keys.skip, p.keys.only, ",", inj); err != nil {
		return nil, err
	}
	return inj, nil
}
