// Package aws is the AWS identity provider: IAM Roles for Service Accounts
// (a web identity token plus AWS_ROLE_ARN) and EKS Pod Identity (container
// credentials) for the ServiceAccounts listed in an association file.
package aws

import (
	"context"
	"fmt"
	"hash/fnv"
	"path"
	"regexp"
	"strconv"
	"strings"

	"github.com/sirupsen/logrus"
	corev1 "k8s.io/api/core/v1"

	"github.com/pod-identity/injector/internal/quote"
	"github.com/pod-identity/injector/pkg/providers"
)

// Name is the provider's name.
const Name = "aws"

// NewPlugin returns the AWS plugin with default settings.
func NewPlugin() providers.Plugin {
	cfg := &Config{}
	cfg.defaults()
	return providers.FuncPlugin{ProviderName: Name, Flags: cfg.addFlags,
		New: func(ctx context.Context, log logrus.FieldLogger) (providers.Provider, error) {
			return New(ctx, *cfg, log)
		}}
}

// Provider injects AWS identities.
type Provider struct {
	cfg         Config
	podIdentity *Associations
	identities  *Identities
	keys        keys
}

type keys struct {
	roleARN, audience, regionalSTS, expiration, skip, only, sessionName, region string
}

// The values of the role-session-name annotation.
const (
	sessionNamePod  = "pod-name"
	sessionNameNone = "none"
)

// New validates cfg and returns the provider. When cfg names a Pod Identity
// association file, it is watched until ctx ends. When it composes role
// ARNs without an account, the account (and, unless given, the partition)
// comes from the EC2 instance metadata service, asked once.
func New(ctx context.Context, cfg Config, log logrus.FieldLogger) (*Provider, error) {
	return newProvider(ctx, cfg, log, instanceAccount)
}

// newProvider is New with the instance metadata service's answer given.
func newProvider(ctx context.Context, cfg Config, log logrus.FieldLogger, imds func(context.Context) (string, string, error)) (*Provider, error) {
	if err := cfg.resolveAccount(ctx, imds); err != nil {
		return nil, err
	}
	cfg.defaults()
	if err := cfg.validate(); err != nil {
		return nil, err
	}
	p := &Provider{cfg: cfg}
	pre := cfg.AnnotationPrefix + "/"
	p.keys = keys{
		roleARN:     pre + "role-arn",
		audience:    pre + "audience",
		regionalSTS: pre + "sts-regional-endpoints",
		expiration:  pre + "token-expiration",
		skip:        pre + "skip-containers",
		only:        pre + "only-containers",
		sessionName: pre + "role-session-name",
		region:      pre + "region",
	}
	if cfg.PodIdentityConfig != "" {
		a, err := WatchAssociations(ctx, cfg.PodIdentityConfig, log)
		if err != nil {
			return nil, err
		}
		p.podIdentity = a
	}
	if cfg.IdentitiesConfig != "" {
		ids, err := WatchIdentities(ctx, cfg.IdentitiesConfig, log)
		if err != nil {
			return nil, err
		}
		p.identities = ids
	}
	return p, nil
}

// Name implements providers.Provider.
func (p *Provider) Name() string { return Name }

// AnnotationPrefixes implements providers.Provider.
func (p *Provider) AnnotationPrefixes() []string { return []string{p.cfg.AnnotationPrefix + "/"} }

// ServiceAccountKeys implements providers.KeyReader.
func (p *Provider) ServiceAccountKeys() []string {
	k := p.keys
	return []string{k.roleARN, k.audience, k.regionalSTS, k.expiration, k.sessionName, k.region}
}

// TokenAudiences implements providers.Enforcer: STS's (the default, its
// China regions', or the flag's) and EKS Pod Identity's.
func (p *Provider) TokenAudiences() []string {
	return []string{DefaultAudience, DefaultAudience + ".cn", p.cfg.Audience, p.cfg.PodIdentityAudience}
}

// IdentityVariables implements providers.Enforcer.
func (p *Provider) IdentityVariables() map[string]string {
	return map[string]string{"AWS_ROLE_ARN": "roleARNs"}
}

// InjectionMarks implements providers.Marker: IRSA's token and role,
// EKS Pod Identity's token and container credentials endpoint.
func (p *Provider) InjectionMarks() []providers.Mark {
	return []providers.Mark{{Volume: IRSAVolumeName, Variable: "AWS_ROLE_ARN"}, {Volume: p.cfg.PodIdentityVolumeName, Variable: "AWS_CONTAINER_CREDENTIALS_FULL_URI"}}
}

// PodLabels implements providers.PodLabelReader: the opt-out label, any
// value, and the label the EKS webhook gives Pod Identity pods.
func (p *Provider) PodLabels() map[string][]string {
	return map[string][]string{SkipLabel: {"*"}, PodIdentityLabel: {"enabled"}}
}

// Inject implements providers.Provider.
func (p *Provider) Inject(req providers.Request) (*providers.Injection, error) {
	if _, skip := req.PodMeta.Labels[SkipLabel]; skip {
		// The EKS webhook's opt-out, whatever its value, as its objectSelector reads it.
		return nil, nil
	}
	sa := req.ServiceAccount
	podIdentity := p.podIdentity != nil && p.podIdentity.Has(sa.Namespace, sa.Name)
	arn, irsa := req.Value(p.keys.roleARN)
	// Without the annotation, the identities file (the EKS webhook's
	// ConfigMap) may name the role; the annotation wins, as there.
	var entry IdentityEntry
	source := "serviceaccount " + strconv.Quote(req.SARef()) + " annotation " + p.keys.roleARN
	idSource := "annotation " + p.keys.roleARN
	if !irsa && p.identities != nil {
		var key string
		if entry, key, irsa = p.identities.Lookup(sa.Namespace, sa.Name); irsa {
			arn = entry.RoleARN
			idSource = "--aws-identities-config entry " + strconv.Quote(key)
			source = "serviceaccount " + strconv.Quote(req.SARef()) + " in " + idSource
		}
	}
	if !podIdentity && !irsa {
		return nil, nil
	}
	defaultExpiration := p.cfg.TokenExpiration
	if entry.TokenExpiration > 0 {
		defaultExpiration = entry.TokenExpiration
	}
	expiration, warning, err := req.TokenExpiration(Name, p.keys.expiration, defaultExpiration,
		providers.Bounds{Min: MinTokenExpiration, Max: MaxTokenExpiration, Clamp: true, Lenient: true})
	if err != nil {
		return nil, err
	}
	inj := &providers.Injection{Provider: Name}
	if warning != "" {
		inj.Warnings = append(inj.Warnings, warning)
	}
	if err := req.Containers(Name, p.keys.skip, p.keys.only, ",", inj); err != nil {
		return nil, err
	}
	windows := isWindows(req.PodSpec)

	if podIdentity {
		inj.Source = "eks pod identity association for serviceaccount " + strconv.Quote(req.SARef())
		if p.cfg.PodIdentityJitter && expiration == DefaultTokenExpiration && p.expirationUnset(req) {
			expiration = jitter(req)
		}
		c := &p.cfg
		inj.Volumes = []corev1.Volume{providers.TokenVolume(c.PodIdentityVolumeName, c.PodIdentityAudience, expiration, c.PodIdentityTokenPath)}
		inj.Mounts = []providers.Mount{{VolumeName: c.PodIdentityVolumeName, MountPath: c.PodIdentityMountPath}}
		inj.Env = append(inj.Env, providers.EnvGroup{Name: providers.CredentialGroup, Vars: []corev1.EnvVar{
			{Name: "AWS_CONTAINER_CREDENTIALS_FULL_URI", Value: c.PodIdentityFullURI},
			{Name: "AWS_CONTAINER_AUTHORIZATION_TOKEN_FILE", Value: tokenFile(c.PodIdentityMountPath, c.PodIdentityTokenPath, windows)},
		}})
		inj.Labels = map[string]string{PodIdentityLabel: "enabled"}
		inj.TokenFileVariables = []string{"AWS_CONTAINER_AUTHORIZATION_TOKEN_FILE"}
	} else {
		inj.Source = source
		arn, err = p.roleARN(req, arn)
		if err != nil {
			return nil, err
		}
		if req.PodMeta.Labels[PodIdentityLabel] == "enabled" {
			// The EKS pod identity webhook (the managed one runs on every
			// EKS cluster) gave the pod EKS Pod Identity: as it does, Pod
			// Identity wins. Web identity variables added now would take
			// precedence in the SDKs' credential chain.
			return &providers.Injection{Provider: Name, Source: inj.Source, Warnings: []string{fmt.Sprintf(
				"aws (%s): pod %q already uses EKS Pod Identity (label %s=enabled, set by the EKS pod identity webhook); the role %s was not injected, as EKS does when a pod has both (remove the Pod Identity association, or the annotation)",
				inj.Source, req.PodRef(), PodIdentityLabel, quote.Value(arn))}}, nil
		}
		inj.Identities = []providers.Identity{{Field: "roleARNs", Source: idSource, Value: arn}}
		audience := p.cfg.Audience
		if entry.Audience != "" {
			audience = entry.Audience
		}
		if v, ok := req.Value(p.keys.audience); ok {
			audience = v
		}
		if audience != p.cfg.Audience {
			from := p.keys.audience
			if _, ok := req.Value(p.keys.audience); !ok {
				from = idSource // the identities file's Audience
			}
			inj.Identities = append(inj.Identities, providers.AudienceIdentity(from, audience))
		}
		inj.Volumes = []corev1.Volume{providers.TokenVolume(IRSAVolumeName, audience, expiration, IRSATokenPath)}
		inj.Mounts = []providers.Mount{{VolumeName: IRSAVolumeName, MountPath: p.cfg.MountPath}}
		// AWS_ROLE_ARN and the token file are one group, as upstream: a
		// container that sets either gets neither, and the rest.
		inj.TokenFileVariables = []string{"AWS_WEB_IDENTITY_TOKEN_FILE"}
		inj.Env = append(inj.Env, providers.EnvGroup{Name: providers.CredentialGroup, Vars: []corev1.EnvVar{
			{Name: "AWS_ROLE_ARN", Value: arn},
			{Name: "AWS_WEB_IDENTITY_TOKEN_FILE", Value: tokenFile(p.cfg.MountPath, IRSATokenPath, windows)},
		}})
		if p.sessionNameFromPod(req, inj) {
			// A group of its own: a container that names its own session
			// keeps that name and still gets the credentials.
			inj.Env = append(inj.Env, providers.EnvGroup{Name: "session name", Vars: []corev1.EnvVar{{
				Name: "AWS_ROLE_SESSION_NAME",
				// A fieldRef, so that a generated name is the one used; the
				// apiVersion as the API server defaults it, so that a second
				// pass finds it already there.
				ValueFrom: &corev1.EnvVarSource{FieldRef: &corev1.ObjectFieldSelector{APIVersion: "v1", FieldPath: "metadata.name"}},
			}}})
		}
	}
	// Both kinds of identity: the EKS webhook injects regional STS for
	// Pod Identity pods too.
	regional := p.cfg.RegionalSTS || entry.UseRegionalSTS
	if v, ok := req.Value(p.keys.regionalSTS); ok {
		if b, err := strconv.ParseBool(v); err == nil {
			regional = b
		} else {
			inj.Warnings = append(inj.Warnings, req.Ignored(Name, false, p.keys.regionalSTS, v, `"true" or "false"`, fmt.Sprintf("the default (%t)", p.cfg.RegionalSTS)))
		}
	}
	if regional {
		inj.Env = append(inj.Env, providers.EnvGroup{Name: "sts", Vars: []corev1.EnvVar{
			{Name: "AWS_STS_REGIONAL_ENDPOINTS", Value: "regional"},
		}})
	}
	if r := p.region(req, inj, arn); r != "" {
		inj.Env = append(inj.Env, providers.EnvGroup{Name: "region", Vars: []corev1.EnvVar{
			{Name: "AWS_REGION", Value: r},
			{Name: "AWS_DEFAULT_REGION", Value: r},
		}})
	}
	return inj, nil
}

// regionPattern is an AWS region's form: a two- to four-letter area, words,
// and a number (us-east-1, us-gov-west-1, eusc-de-east-1).
var regionPattern = regexp.MustCompile(`^[a-z]{2,4}(-[a-z]+)+-[0-9]{1,2}$`)

// region returns the region to inject: the ServiceAccount's region
// annotation (the EKS webhook's long-standing request, its issue 149: a
// role in another partition than the cluster's, or a workload in another
// region), else --aws-default-region. An invalid value falls back with a
// warning; a region outside the role's partition draws one, since STS
// there does not know the role.
func (p *Provider) region(req providers.Request, inj *providers.Injection, arn string) string {
	region := p.cfg.DefaultRegion
	if v, ok := req.Value(p.keys.region); ok {
		if regionPattern.MatchString(v) {
			region = v
		} else {
			used := "no region"
			if region != "" {
				used = "--aws-default-region " + region
			}
			inj.Warnings = append(inj.Warnings, req.Ignored(Name, false, p.keys.region, v, "an AWS region such as us-east-1", used))
		}
	}
	if region == "" || arn == "" {
		return region
	}
	if partition, _, _ := strings.Cut(strings.TrimPrefix(arn, "arn:"), ":"); partition != PartitionForRegion(region) {
		inj.Warnings = append(inj.Warnings, fmt.Sprintf("aws (%s): the role %s is in partition %s but the region injected, %s, is in %s: STS there does not know the role (set the serviceaccount annotation %s to a region of %s)",
			inj.Source, quote.Value(arn), partition, region, PartitionForRegion(region), p.keys.region, partition))
	}
	return region
}

// expirationUnset reports whether neither the pod nor the ServiceAccount
// sets the token expiration.
func (p *Provider) expirationUnset(req providers.Request) bool {
	_, onPod := req.PodMeta.Annotations[p.keys.expiration]
	_, onSA := req.Value(p.keys.expiration)
	return !onPod && !onSA
}

// Pod Identity token lifetimes with jitter, as the EKS webhook spreads them.
const (
	jitterMin = 79200
	jitterMax = DefaultTokenExpiration
)

// jitter returns a Pod Identity token lifetime from jitterMin to
// jitterMax. The EKS webhook draws it at random for each pod; here it is a
// hash of the ServiceAccount's namespace and name. Random, or per pod name,
// a second pass would not find the volume it added: a reinvocation, a pod
// created from a template `injector mutate` rendered (its generated name
// is not the template's), would each get a conflicting volume and a
// warning. Workloads of different ServiceAccounts still refresh at
// different times.
func jitter(req providers.Request) int64 {
	h := fnv.New64a()
	_, _ = h.Write([]byte(req.ServiceAccount.Namespace + "/" + req.ServiceAccount.Name))
	return jitterMin + int64(h.Sum64()%uint64(jitterMax-jitterMin+1))
}

// roleARN checks the role-arn annotation and composes it from a bare role
// name when that is allowed.
func (p *Provider) roleARN(req providers.Request, v string) (string, error) {
	s := strings.TrimSpace(v)
	if p.cfg.ComposeRoleARN && !strings.HasPrefix(s, "arn:") && roleName.MatchString(s) {
		s = "arn:" + p.cfg.Partition + ":iam::" + p.cfg.AccountID + ":role/" + s
	}
	if !validRoleARN(s) {
		expected := roleNameExpected
		if p.cfg.ComposeRoleARN {
			expected = roleNameExpectedComposable
		}
		return "", req.Invalid(Name, p.keys.roleARN, v, expected)
	}
	return s, nil
}

// validRoleARN checks an ARN's form and IAM's limits on its length, the
// lengths first, so that a long value costs no pattern match.
func validRoleARN(s string) bool {
	if len(s) > maxARN {
		return false
	}
	_, rest, ok := strings.Cut(s, ":role")
	if !ok {
		return false
	}
	if path := rest[:strings.LastIndexByte(rest, '/')+1]; len(path) > maxRolePath {
		return false
	}
	return roleARN.MatchString(s)
}

// sessionNameFromPod resolves the role-session-name annotation, pod >
// ServiceAccount > flag: "pod-name" turns the pod-named session on and
// "none" off; any other value is passed over with a warning.
func (p *Provider) sessionNameFromPod(req providers.Request, inj *providers.Injection) bool {
	for _, onPod := range []bool{true, false} {
		annotations := req.ServiceAccount.Annotations
		if onPod {
			annotations = req.PodMeta.Annotations
		}
		v := strings.TrimSpace(annotations[p.keys.sessionName])
		switch v {
		case "":
			continue
		case sessionNamePod:
			return true
		case sessionNameNone:
			return false
		}
		inj.Warnings = append(inj.Warnings, req.Ignored(Name, onPod, p.keys.sessionName, v, `"pod-name" or "none"`, "what the rest of the configuration says"))
	}
	return p.cfg.SessionNameFromPod
}

func tokenFile(mountPath, file string, windows bool) string {
	p := path.Join(mountPath, file)
	if windows {
		return windowsMountPrefix + strings.ReplaceAll(p, "/", `\`)
	}
	return p
}

// isWindows reports whether the pod can only run on Windows nodes: by its
// nodeSelector, or because every required node affinity term demands it.
// legacyOSLabel is the node OS label before kubernetes.io/os, which older
// manifests (and the EKS webhook) still read.
const legacyOSLabel = "beta.kubernetes.io/os"

func isWindows(spec *corev1.PodSpec) bool {
	if spec.NodeSelector[corev1.LabelOSStable] == "windows" || spec.NodeSelector[legacyOSLabel] == "windows" {
		return true
	}
	a := spec.Affinity
	if a == nil || a.NodeAffinity == nil || a.NodeAffinity.RequiredDuringSchedulingIgnoredDuringExecution == nil {
		return false
	}
	terms := a.NodeAffinity.RequiredDuringSchedulingIgnoredDuringExecution.NodeSelectorTerms
	if len(terms) == 0 {
		return false
	}
	for _, t := range terms {
		if !termRequiresWindows(t) {
			return false
		}
	}
	return true
}

func termRequiresWindows(t corev1.NodeSelectorTerm) bool {
	for _, e := range t.MatchExpressions {
		if (e.Key == corev1.LabelOSStable || e.Key == legacyOSLabel) && e.Operator == corev1.NodeSelectorOpIn && len(e.Values) > 0 {
			all := true
			for _, v := range e.Values {
				all = all && v == "windows"
			}
			if all {
				return true
			}
		}
	}
	return false
}
