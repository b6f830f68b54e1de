// Package azure is the Microsoft Entra Workload ID provider: pods labelled
// azure.workload.identity/use=true get a token with the audience
// api://AzureADTokenExchange and the AZURE_* variables the Azure SDKs read,
// as the upstream Azure Workload Identity webhook gives them.
package azure

import (
	"context"
	"errors"
	"fmt"
	"regexp"
	"strconv"
	"strings"

	"github.com/sirupsen/logrus"
	"github.com/spf13/pflag"
	corev1 "k8s.io/api/core/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/util/validation"
	"k8s.io/utils/ptr"

	"github.com/pod-identity/injector/internal/quote"
	"github.com/pod-identity/injector/pkg/providers"
)

// Annotations, labels and defaults of the Azure provider.
const (
	Name                   = "azure"
	Prefix                 = "azure.workload.identity/"
	UseLabel               = Prefix + "use"
	ClientIDAnnotation     = Prefix + "client-id"
	TenantIDAnnotation     = Prefix + "tenant-id"
	ExpirationAnnotation   = Prefix + "service-account-token-expiration"
	SkipAnnotation         = Prefix + "skip-containers"
	OnlyAnnotation         = Prefix + "only-containers"
	Audience               = "api://AzureADTokenExchange"
	VolumeName             = "azure-identity-token"
	TokenPath              = "azure-identity-token"
	MountPath              = "/var/run/secrets/azure/tokens"
	DefaultAuthorityHost   = "https://login.microsoftonline.com/"
	DefaultTokenExpiration = 3600
	MinTokenExpiration     = 3600
	MaxTokenExpiration     = 86400
	guidExpected           = "a GUID such as 00000000-0000-0000-0000-000000000000"
)

var (
	guid     = regexp.MustCompile(`^[0-9a-fA-F]{8}-[0-9a-fA-F]{4}-[0-9a-fA-F]{4}-[0-9a-fA-F]{4}-[0-9a-fA-F]{12}$`)
	tenantID = regexp.MustCompile(`^[0-9A-Za-z][0-9A-Za-z.-]*$`)
)

// Config holds the Azure provider's settings.
type Config struct {
	// TenantID is the tenant of ServiceAccounts that name none.
	TenantID string
	// AuthorityHost is the Microsoft Entra authority injected as
	// AZURE_AUTHORITY_HOST; empty means the Cloud's.
	AuthorityHost string
	// Cloud names the Azure cloud whose authority host is the default:
	// AzurePublicCloud (the default), AzureChinaCloud or AzureUSGovernmentCloud.
	Cloud string
	// Audience is the token audience (Azure Workload Identity's --audience).
	Audience string
	// TokenEndpoint is Azure Workload Identity 1.6's custom token
	// endpoint: pods annotated azure.workload.identity/use-<Suffix>: "true"
	// get a token for its audience and the variables that send the SDK to
	// its proxy instead of Microsoft Entra.
	TokenEndpoint TokenEndpoint
}

// TokenEndpoint configures the custom token endpoint.
type TokenEndpoint struct {
	// Suffix names the pod annotation azure.workload.identity/use-<Suffix>;
	// empty turns the feature off.
	Suffix string
	// Audience is the token audience for it; it must differ from Audience.
	Audience string
	// Proxy, SNIName and CAData are injected as AZURE_KUBERNETES_TOKEN_PROXY,
	// AZURE_KUBERNETES_SNI_NAME and AZURE_KUBERNETES_CA_DATA when set.
	Proxy, SNIName, CAData string
	// CAConfigMap, when set, names a ConfigMap of the pod's namespace whose
	// ca.crt is projected into the token volume and injected as
	// AZURE_KUBERNETES_CA_FILE.
	CAConfigMap string
	// CASigner, when set, projects the ClusterTrustBundles of this signer
	// (those CASelector selects, all when it is empty) there instead, as
	// Azure Workload Identity 1.6 does with its CA_CTB settings.
	CASigner, CASelector string
}

// annotation is the pod annotation that asks for the custom token endpoint.
func (t TokenEndpoint) annotation() string { return Prefix + "use-" + t.Suffix }

// caPath is where the CA certificate lands in the token volume.
const caPath = "ca-cert/ca.crt"

// authorityHosts are the Microsoft Entra authority hosts of the Azure
// clouds, by the names Azure Workload Identity's configuration uses.
var authorityHosts = map[string]string{
	"AzurePublicCloud":       DefaultAuthorityHost,
	"AzureChinaCloud":        "https://login.chinacloudapi.cn/",
	"AzureUSGovernmentCloud": "https://login.microsoftonline.us/",
}

func (c *Config) defaults() {
	if c.Cloud == "" {
		c.Cloud = "AzurePublicCloud"
	}
	if c.AuthorityHost == "" {
		c.AuthorityHost = authorityHosts[c.Cloud]
	}
	if c.Audience == "" {
		c.Audience = Audience
	}
}

func (c *Config) validate() error {
	if t := c.TokenEndpoint; t.Suffix != "" || t.Audience != "" {
		switch {
		case t.Suffix == "" || t.Audience == "":
			return errors.New("--azure-custom-token-endpoint-suffix and --azure-custom-token-endpoint-audience go together: set both, or neither")
		case strings.EqualFold(t.Audience, c.Audience):
			return fmt.Errorf("--azure-custom-token-endpoint-audience %q: expected another audience than the token's, %q", t.Audience, c.Audience)
		case len(validation.IsQualifiedName(strings.ToLower(t.annotation()))) > 0:
			return fmt.Errorf("--azure-custom-token-endpoint-suffix %q: %s is not a valid annotation key", t.Suffix, t.annotation())
		case t.CAConfigMap != "" && len(validation.IsDNS1123Subdomain(t.CAConfigMap)) > 0:
			return fmt.Errorf("--azure-kubernetes-ca-configmap %q: expected a ConfigMap name", t.CAConfigMap)
		case t.CASigner != "" && !validSignerName(t.CASigner):
			return fmt.Errorf("--azure-kubernetes-ca-trust-bundle-signer %q: expected a signer name such as example.com/my-ca (a domain, a slash and a path)", t.CASigner)
		case t.CASelector != "" && t.CASigner == "":
			return fmt.Errorf("--azure-kubernetes-ca-trust-bundle-selector %q: expected --azure-kubernetes-ca-trust-bundle-signer as well", t.CASelector)
		case countSet(t.CAData, t.CAConfigMap, t.CASigner) > 1:
			return errors.New("--azure-kubernetes-ca-data, --azure-kubernetes-ca-configmap and --azure-kubernetes-ca-trust-bundle-signer each give the CA: set one at most")
		}
		if t.CASelector != "" {
			if _, err := metav1.ParseToLabelSelector(t.CASelector); err != nil {
				return fmt.Errorf("--azure-kubernetes-ca-trust-bundle-selector %q: expected a label selector such as team=a (%w)", t.CASelector, err)
			}
		}
	}
	if _, ok := authorityHosts[c.Cloud]; !ok {
		return fmt.Errorf("--azure-cloud %q: expected AzurePublicCloud, AzureChinaCloud or AzureUSGovernmentCloud", c.Cloud)
	}
	if c.TenantID != "" && !tenantID.MatchString(c.TenantID) {
		return fmt.Errorf("--azure-tenant-id %q: expected a tenant GUID", c.TenantID)
	}
	if !strings.HasPrefix(c.AuthorityHost, "https://") {
		return fmt.Errorf("--azure-authority-host %q: expected an https:// URL", c.AuthorityHost)
	}
	return nil
}

// upstreamTokenFiles are the token paths of Azure Workload Identity's own
// webhook since v1.6.0 (the AKS add-on's): a fixed directory under
// /var/run/secrets/azure/wi in v1.6.0, a directory per pod (a hash of the
// pod's identity) since v1.6.1 (its pull request 1749). Up to v1.5 its path
// was ours.
var upstreamTokenFiles = []providers.KnownTokenFile{
	{Pattern: `^/var/run/secrets/azure/wi/token/azure-identity-token$`,
		Injector: "Azure Workload Identity's webhook v1.6.0 (the AKS workload identity add-on)"},
	{Pattern: `^/var/run/secrets/azure/wi/[0-9a-f]{8,64}/token/azure-identity-token$`,
		Injector: "Azure Workload Identity's webhook v1.6.1 or later (a directory per pod; the AKS workload identity add-on)"},
}

// validSignerName reports whether s is a signer name as the API server
// takes it for a ClusterTrustBundle: a DNS subdomain, a slash, and a path.
func validSignerName(s string) bool {
	domain, path, ok := strings.Cut(s, "/")
	return ok && path != "" && len(validation.IsDNS1123Subdomain(domain)) == 0 && !strings.ContainsAny(path, " \t\n")
}

func countSet(values ...string) int {
	n := 0
	for _, v := range values {
		if v != "" {
			n++
		}
	}
	return n
}

// NewPlugin returns the Azure plugin with default settings.
func NewPlugin() providers.Plugin {
	cfg := &Config{}
	return providers.FuncPlugin{ProviderName: Name, Flags: cfg.addFlags,
		New: func(context.Context, logrus.FieldLogger) (providers.Provider, error) { return New(*cfg) }}
}

func (c *Config) addFlags(fs *pflag.FlagSet) {
	fs.StringVar(&c.TenantID, "azure-tenant-id", "", "Microsoft Entra tenant of ServiceAccounts without the "+TenantIDAnnotation+" annotation")
	fs.StringVar(&c.AuthorityHost, "azure-authority-host", "", "Microsoft Entra authority injected as AZURE_AUTHORITY_HOST (default: the --azure-cloud's, "+DefaultAuthorityHost+" for AzurePublicCloud)")
	fs.StringVar(&c.Cloud, "azure-cloud", "AzurePublicCloud", "Azure cloud whose authority host is the default: AzurePublicCloud, AzureChinaCloud or AzureUSGovernmentCloud")
	fs.StringVar(&c.Audience, "azure-token-audience", Audience, "audience of the Azure token (Azure Workload Identity's --audience)")
	fs.StringVar(&c.TokenEndpoint.Suffix, "azure-custom-token-endpoint-suffix", "", "pods annotated "+Prefix+"use-<suffix>: \"true\" use the custom token endpoint (Azure Workload Identity 1.6's --custom-token-endpoint-annotation-suffix)")
	fs.StringVar(&c.TokenEndpoint.Audience, "azure-custom-token-endpoint-audience", "", "token audience of the custom token endpoint (required with the suffix)")
	fs.StringVar(&c.TokenEndpoint.Proxy, "azure-kubernetes-token-proxy", "", "injected as AZURE_KUBERNETES_TOKEN_PROXY into custom token endpoint pods")
	fs.StringVar(&c.TokenEndpoint.SNIName, "azure-kubernetes-sni-name", "", "injected as AZURE_KUBERNETES_SNI_NAME into custom token endpoint pods")
	fs.StringVar(&c.TokenEndpoint.CAData, "azure-kubernetes-ca-data", "", "injected as AZURE_KUBERNETES_CA_DATA into custom token endpoint pods")
	fs.StringVar(&c.TokenEndpoint.CAConfigMap, "azure-kubernetes-ca-configmap", "", "ConfigMap (in the pod's namespace) whose ca.crt is projected for custom token endpoint pods and named by AZURE_KUBERNETES_CA_FILE")
	fs.StringVar(&c.TokenEndpoint.CASigner, "azure-kubernetes-ca-trust-bundle-signer", "", "signer whose ClusterTrustBundles are projected for custom token endpoint pods and named by AZURE_KUBERNETES_CA_FILE (instead of --azure-kubernetes-ca-configmap)")
	fs.StringVar(&c.TokenEndpoint.CASelector, "azure-kubernetes-ca-trust-bundle-selector", "", "label selector of the signer's ClusterTrustBundles to project (default: all of them)")
}

// Provider injects Azure workload identities.
type Provider struct{ cfg Config }

// New validates cfg and returns the provider.
func New(cfg Config) (*Provider, error) {
	cfg.defaults()
	if err := cfg.validate(); err != nil {
		return nil, err
	}
	return &Provider{cfg: cfg}, nil
}

// Name implements providers.Provider.
func (p *Provider) Name() string { return Name }

// ServiceAccountKeys implements providers.KeyReader: the annotations and
// the use label, which the ServiceAccount may carry instead of the pod.
func (p *Provider) ServiceAccountKeys() []string {
	return []string{ClientIDAnnotation, TenantIDAnnotation, ExpirationAnnotation, UseLabel}
}

// TokenAudiences implements providers.Enforcer.
func (p *Provider) TokenAudiences() []string {
	// Entra's exchange audience in the public cloud, and in the US
	// Government and China clouds.
	out := []string{Audience, Audience + "USGov", Audience + "China", p.cfg.Audience}
	if a := p.cfg.TokenEndpoint.Audience; a != "" {
		out = append(out, a)
	}
	return out
}

// InjectionMarks implements providers.Marker.
func (p *Provider) InjectionMarks() []providers.Mark {
	return []providers.Mark{{Volume: VolumeName, Variable: "AZURE_CLIENT_ID"}}
}

// IdentityVariables implements providers.Enforcer.
func (p *Provider) IdentityVariables() map[string]string {
	return map[string]string{"AZURE_CLIENT_ID": "clientIDs", "AZURE_TENANT_ID": "tenantIDs"}
}

// AnnotationPrefixes implements providers.Provider.
func (p *Provider) AnnotationPrefixes() []string { return []string{Prefix} }

// halfConfigured warns about a pod that is not labelled for Azure although
// its ServiceAccount is set up for it: the most common reason an Azure
// identity is missing. Nil when there is nothing to say.
func halfConfigured(req providers.Request) *providers.Injection {
	sa := req.ServiceAccount
	_, hasClient := req.Value(ClientIDAnnotation)
	onSA := sa.Labels[UseLabel] == "true"
	if !hasClient && !onSA {
		return nil
	}
	var why string
	switch value, labelled := req.PodMeta.Labels[UseLabel]; {
	case labelled && strings.EqualFold(strings.TrimSpace(value), "false"):
		return nil // opted out, on purpose
	case labelled:
		why = fmt.Sprintf("its label %s is %s, not \"true\"", UseLabel, quote.Value(value))
	case onSA:
		why = fmt.Sprintf("the label %s=true is on serviceaccount %q, not on the pod", UseLabel, req.SARef())
	default:
		why = fmt.Sprintf("it is not labelled %s=true", UseLabel)
	}
	return &providers.Injection{Provider: Name, Source: "serviceaccount " + strconv.Quote(req.SARef()), Warnings: []string{
		fmt.Sprintf("azure: pod %q runs as serviceaccount %q, which is set up for Azure Workload Identity, but %s: no Azure identity was injected (label the pod, or its template, %s: \"true\")",
			req.PodRef(), req.SARef(), why, UseLabel)}}
}

// setUp reports whether a ServiceAccount is set up for Azure Workload
// Identity: an annotation of its, or the use label on it.
func setUp(sa *corev1.ServiceAccount) bool {
	for k := range sa.Annotations {
		if strings.HasPrefix(k, Prefix) {
			return true
		}
	}
	return sa.Labels[UseLabel] == "true"
}

// PodLabels implements providers.PodLabelReader: the label that turns
// the injection on.
func (p *Provider) PodLabels() map[string][]string {
	return map[string][]string{UseLabel: {"true"}}
}

// Inject implements providers.Provider.
func (p *Provider) Inject(req providers.Request) (*providers.Injection, error) {
	sa := req.ServiceAccount
	source := "pod label " + UseLabel + "=true, serviceaccount " + strconv.Quote(req.SARef())
	switch {
	case req.ServiceAccountOnly && !setUp(sa):
		return nil, nil
	case req.ServiceAccountOnly:
		source = "serviceaccount " + strconv.Quote(req.SARef())
	case req.PodMeta.Labels[UseLabel] != "true":
		return halfConfigured(req), nil
	}
	inj := &providers.Injection{Provider: Name, Source: source}
	clientID, hasClient := req.Value(ClientIDAnnotation)
	if hasClient && !guid.MatchString(clientID) {
		return nil, req.Invalid(Name, ClientIDAnnotation, sa.Annotations[ClientIDAnnotation], guidExpected)
	}
	if hasClient {
		inj.Identities = append(inj.Identities, providers.Identity{Field: "clientIDs", Source: "annotation " + ClientIDAnnotation, Value: clientID, CaseInsensitive: true})
	} else {
		// The pod gets the federated token and chooses the client ID
		// itself: under a policy that governs client IDs, that is no
		// client ID it allows.
		inj.Identities = append(inj.Identities, providers.Identity{Field: "clientIDs", Source: "no annotation " + ClientIDAnnotation + " (the workload would choose the client ID)", Value: ""})
	}
	tenant, tenantSource := p.cfg.TenantID, "the default tenant (--azure-tenant-id)"
	if v, ok := req.Value(TenantIDAnnotation); ok {
		tenant, tenantSource = v, "annotation "+TenantIDAnnotation
		if !tenantID.MatchString(tenant) {
			return nil, req.Invalid(Name, TenantIDAnnotation, sa.Annotations[TenantIDAnnotation], guidExpected)
		}
	}
	if tenant != "" {
		inj.Identities = append(inj.Identities, providers.Identity{Field: "tenantIDs", Source: tenantSource, Value: tenant, CaseInsensitive: true})
	}
	// Not lenient: Azure Workload Identity's webhook denies an expiration
	// that is not a number or is out of range.
	expiration, _, err := req.TokenExpiration(Name, ExpirationAnnotation, DefaultTokenExpiration,
		providers.Bounds{Min: MinTokenExpiration, Max: MaxTokenExpiration})
	if err != nil {
		return nil, err
	}
	var vars []corev1.EnvVar
	if hasClient {
		vars = append(vars, corev1.EnvVar{Name: "AZURE_CLIENT_ID", Value: clientID})
	} else {
		inj.Warnings = append(inj.Warnings, fmt.Sprintf("azure (%s): serviceaccount %q has no %s annotation; AZURE_CLIENT_ID was not injected (annotate the serviceaccount or set it in the container)",
			inj.Source, req.SARef(), ClientIDAnnotation))
	}
	if tenant != "" {
		vars = append(vars, corev1.EnvVar{Name: "AZURE_TENANT_ID", Value: tenant})
	} else {
		inj.Warnings = append(inj.Warnings, fmt.Sprintf("azure (%s): serviceaccount %q has no %s annotation and the webhook has no --azure-tenant-id; AZURE_TENANT_ID was not injected",
			inj.Source, req.SARef(), TenantIDAnnotation))
	}
	vars = append(vars,
		corev1.EnvVar{Name: "AZURE_FEDERATED_TOKEN_FILE", Value: MountPath + "/" + TokenPath},
		corev1.EnvVar{Name: "AZURE_AUTHORITY_HOST", Value: p.cfg.AuthorityHost},
	)
	audience := p.cfg.Audience
	volume := providers.TokenVolume(VolumeName, audience, expiration, TokenPath)
	if t := p.cfg.TokenEndpoint; t.Suffix != "" && strings.EqualFold(strings.TrimSpace(req.PodMeta.Annotations[t.annotation()]), "true") {
		volume.Projected.Sources[0].ServiceAccountToken.Audience = t.Audience
		for _, e := range []corev1.EnvVar{
			{Name: "AZURE_KUBERNETES_TOKEN_PROXY", Value: t.Proxy},
			{Name: "AZURE_KUBERNETES_SNI_NAME", Value: t.SNIName},
			{Name: "AZURE_KUBERNETES_CA_DATA", Value: t.CAData},
		} {
			if e.Value != "" {
				vars = append(vars, e)
			}
		}
		switch {
		case t.CAConfigMap != "":
			vars = append(vars, corev1.EnvVar{Name: "AZURE_KUBERNETES_CA_FILE", Value: MountPath + "/" + caPath})
			volume.Projected.Sources = append(volume.Projected.Sources, corev1.VolumeProjection{ConfigMap: &corev1.ConfigMapProjection{
				LocalObjectReference: corev1.LocalObjectReference{Name: t.CAConfigMap},
				Items:                []corev1.KeyToPath{{Key: "ca.crt", Path: caPath}},
				Optional:             ptr.To(false),
			}})
		case t.CASigner != "":
			vars = append(vars, corev1.EnvVar{Name: "AZURE_KUBERNETES_CA_FILE", Value: MountPath + "/" + caPath})
			ctb := &corev1.ClusterTrustBundleProjection{SignerName: ptr.To(t.CASigner), Path: caPath, Optional: ptr.To(false)}
			if t.CASelector != "" {
				// Validated when the provider was made.
				ctb.LabelSelector, _ = metav1.ParseToLabelSelector(t.CASelector)
			} else {
				// An empty selector selects every bundle of the signer; none
				// would select none.
				ctb.LabelSelector = &metav1.LabelSelector{}
			}
			volume.Projected.Sources = append(volume.Projected.Sources, corev1.VolumeProjection{ClusterTrustBundle: ctb})
		}
	}
	// Each variable is added unless the container sets it, as Azure
	// Workload Identity's webhook does: a container may name another
	// application federated with the same ServiceAccount.
	for _, v := range vars {
		inj.Env = append(inj.Env, providers.EnvGroup{Name: v.Name, Vars: []corev1.EnvVar{v}})
	}
	inj.TokenFileVariables = []string{"AZURE_FEDERATED_TOKEN_FILE"}
	inj.KnownTokenFiles = upstreamTokenFiles
	inj.Volumes = []corev1.Volume{volume}
	inj.Mounts = []providers.Mount{{VolumeName: VolumeName, MountPath: MountPath}}
	if err := req.Containers(Name, SkipAnnotation, OnlyAnnotation, ";", inj); err != nil {
		return nil, err
	}
	return inj, nil
}
