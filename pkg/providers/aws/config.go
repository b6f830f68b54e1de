package aws

import (
	"fmt"
	"regexp"
	"strings"

	"github.com/spf13/pflag"
	"k8s.io/apimachinery/pkg/util/validation"
)

// Defaults of the AWS provider, as the EKS pod identity webhook has them.
const (
	// SkipLabel on a pod opts it out of AWS injection, whatever its value:
	// the EKS pod identity webhook's opt-out, honoured for clusters that
	// move from it.
	SkipLabel                 = "eks.amazonaws.com/skip-pod-identity-webhook"
	DefaultAnnotationPrefix   = "eks.amazonaws.com"
	DefaultAudience           = "sts.amazonaws.com"
	DefaultMountPath          = "/var/run/secrets/eks.amazonaws.com/serviceaccount"
	DefaultTokenExpiration    = 86400
	MinTokenExpiration        = 600
	MaxTokenExpiration        = 86400
	DefaultPodIdentityFullURI = "http://169.254.170.23/v1/credentials"
	PodIdentityAudience       = "pods.eks.amazonaws.com"
	PodIdentityMountPath      = "/var/run/secrets/pods.eks.amazonaws.com/serviceaccount"
	PodIdentityTokenPath      = "eks-pod-identity-token"
	PodIdentityVolumeName     = "eks-pod-identity-token"
	PodIdentityLabel          = "eks.amazonaws.com/pod-identity"
	IRSAVolumeName            = "aws-iam-token"
	IRSATokenPath             = "token"
	windowsMountPrefix        = `C:`
	accountIDPattern          = `[0-9]{12}`
	partitionPattern          = `aws|aws-cn|aws-us-gov|aws-iso|aws-iso-b|aws-iso-e|aws-iso-f|aws-eusc`
	roleNameExpected          = "arn:<partition>:iam::<12-digit account>:role/<path/name> with partition aws, aws-cn, aws-us-gov, aws-iso, aws-iso-b, aws-iso-e, aws-iso-f or aws-eusc, within IAM's limits (a path of 512 characters, a name of 64, 2048 in all)"
	// IAM's limits: an ARN is at most 2048 characters, a role's path at
	// most 512 (its leading and trailing slash included), its name at most 64.
	maxARN                     = 2048
	maxRolePath                = 512
	roleNameExpectedComposable = roleNameExpected + ", or a bare role name"
)

var (
	roleARN   = regexp.MustCompile(`^arn:(` + partitionPattern + `):iam::` + accountIDPattern + `:role/([\x21-\x7E]+/)*[\w+=,.@-]{1,64}$`)
	roleName  = regexp.MustCompile(`^([\x21-\x7E]+/)*[\w+=,.@-]{1,64}$`)
	accountID = regexp.MustCompile(`^` + accountIDPattern + `$`)
	partition = regexp.MustCompile(`^(` + partitionPattern + `)$`)
)

// Config holds the AWS provider's settings.
type Config struct {
	// AnnotationPrefix is the prefix of every annotation the provider reads.
	AnnotationPrefix string
	// Audience is the token audience when the ServiceAccount names none.
	Audience string
	// MountPath is where the IRSA token volume is mounted.
	MountPath string
	// TokenExpiration is the token lifetime in seconds when no annotation sets one.
	TokenExpiration int64
	// RegionalSTS turns on AWS_STS_REGIONAL_ENDPOINTS=regional by default.
	RegionalSTS bool
	// SessionNameFromPod sets AWS_ROLE_SESSION_NAME to the pod's name by
	// default (the role-session-name annotation overrides it).
	SessionNameFromPod bool
	// DefaultRegion, when set, is injected as AWS_REGION and AWS_DEFAULT_REGION.
	DefaultRegion string
	// ComposeRoleARN lets a role-arn annotation be a bare role name.
	ComposeRoleARN bool
	// AccountID is the account of composed role ARNs.
	AccountID string
	// Partition is the partition of composed role ARNs; derived from
	// DefaultRegion when empty.
	Partition string
	// PodIdentityConfig is the path of the EKS Pod Identity association file.
	PodIdentityConfig string
	// PodIdentityFullURI is the container credentials endpoint.
	PodIdentityFullURI string
	// IdentitiesConfig is the path of a file in the format of the EKS
	// webhook's pod-identity-webhook ConfigMap: roles of ServiceAccounts
	// that are not annotated.
	IdentitiesConfig string
	// PodIdentityAudience, PodIdentityMountPath, PodIdentityVolumeName
	// and PodIdentityTokenPath shape the EKS Pod Identity token volume.
	PodIdentityAudience, PodIdentityMountPath, PodIdentityVolumeName, PodIdentityTokenPath string
	// PodIdentityJitter spreads Pod Identity token refreshes, as the EKS
	// webhook does: the default lifetime of 86400 s becomes a value from
	// 79200 to 86400 s that depends on the ServiceAccount (see jitter).
	PodIdentityJitter bool
}

func (c *Config) addFlags(fs *pflag.FlagSet) {
	fs.StringVar(&c.AnnotationPrefix, "aws-annotation-prefix", DefaultAnnotationPrefix, "prefix of the AWS ServiceAccount and pod annotations")
	fs.StringVar(&c.Audience, "aws-token-audience", DefaultAudience, "default audience of the AWS web identity token")
	fs.StringVar(&c.MountPath, "aws-token-mount-path", DefaultMountPath, "where the AWS web identity token is mounted")
	fs.Int64Var(&c.TokenExpiration, "aws-token-expiration", DefaultTokenExpiration, "default lifetime in seconds of the AWS token (600 to 86400)")
	fs.BoolVar(&c.RegionalSTS, "aws-sts-regional-endpoints", false, "inject AWS_STS_REGIONAL_ENDPOINTS=regional unless the ServiceAccount says \"false\"")
	fs.StringVar(&c.DefaultRegion, "aws-default-region", "", "inject AWS_REGION and AWS_DEFAULT_REGION with this region")
	fs.BoolVar(&c.SessionNameFromPod, "aws-role-session-name-from-pod", false, "inject AWS_ROLE_SESSION_NAME as the pod's name (CloudTrail then names the pod) unless the role-session-name annotation says \"none\"")
	fs.BoolVar(&c.ComposeRoleARN, "aws-compose-role-arn", false, "accept a bare role name in the role-arn annotation and compose the ARN from --aws-account-id (default: the account of the EC2 instance, from its metadata service) and the partition")
	fs.StringVar(&c.AccountID, "aws-account-id", "", "12-digit account of composed role ARNs")
	fs.StringVar(&c.Partition, "aws-partition", "", "partition of composed role ARNs (default: from --aws-default-region, else aws)")
	fs.StringVar(&c.PodIdentityConfig, "aws-pod-identity-config", "", "JSON file of EKS Pod Identity associations, reloaded when it changes")
	fs.StringVar(&c.IdentitiesConfig, "aws-identities-config", "", "file of roles of ServiceAccounts that are not annotated, in the format of the EKS webhook's pod-identity-webhook ConfigMap (its config key, mounted): {\"namespace/name\" or \"*/name\": {\"RoleARN\":..., \"Audience\":..., \"UseRegionalSTS\":..., \"TokenExpiration\":...}}; reloaded when it changes; an annotation wins")
	fs.StringVar(&c.PodIdentityFullURI, "aws-pod-identity-full-uri", DefaultPodIdentityFullURI, "EKS Pod Identity container credentials endpoint")
	fs.StringVar(&c.PodIdentityAudience, "aws-pod-identity-audience", PodIdentityAudience, "audience of the EKS Pod Identity token")
	fs.StringVar(&c.PodIdentityMountPath, "aws-pod-identity-mount-path", PodIdentityMountPath, "where the EKS Pod Identity token volume is mounted")
	fs.StringVar(&c.PodIdentityVolumeName, "aws-pod-identity-volume-name", PodIdentityVolumeName, "name of the EKS Pod Identity token volume")
	fs.StringVar(&c.PodIdentityTokenPath, "aws-pod-identity-token-path", PodIdentityTokenPath, "file name of the EKS Pod Identity token in its volume")
	fs.BoolVar(&c.PodIdentityJitter, "aws-pod-identity-token-jitter", true, "spread EKS Pod Identity token refreshes as the EKS webhook does: the default lifetime of 86400 s becomes 79200 to 86400 s, fixed per ServiceAccount")
}

func (c *Config) defaults() {
	if c.AnnotationPrefix == "" {
		c.AnnotationPrefix = DefaultAnnotationPrefix
	}
	c.AnnotationPrefix = strings.TrimSuffix(c.AnnotationPrefix, "/")
	if c.Audience == "" {
		c.Audience = DefaultAudience
	}
	if c.MountPath == "" {
		c.MountPath = DefaultMountPath
	}
	if c.TokenExpiration == 0 {
		c.TokenExpiration = DefaultTokenExpiration
	}
	if c.PodIdentityFullURI == "" {
		c.PodIdentityFullURI = DefaultPodIdentityFullURI
	}
	for _, d := range []struct {
		v   *string
		def string
	}{
		{&c.PodIdentityAudience, PodIdentityAudience}, {&c.PodIdentityMountPath, PodIdentityMountPath},
		{&c.PodIdentityVolumeName, PodIdentityVolumeName}, {&c.PodIdentityTokenPath, PodIdentityTokenPath},
	} {
		if *d.v == "" {
			*d.v = d.def
		}
	}
	if c.Partition == "" {
		c.Partition = PartitionForRegion(c.DefaultRegion)
	}
}

func (c *Config) validate() error {
	if c.TokenExpiration < MinTokenExpiration || c.TokenExpiration > MaxTokenExpiration {
		return fmt.Errorf("--aws-token-expiration %d: expected %d to %d seconds", c.TokenExpiration, MinTokenExpiration, MaxTokenExpiration)
	}
	if !partition.MatchString(c.Partition) {
		return fmt.Errorf("--aws-partition %q: expected one of aws, aws-cn, aws-us-gov, aws-iso, aws-iso-b, aws-iso-e, aws-iso-f, aws-eusc", c.Partition)
	}
	if c.ComposeRoleARN && !accountID.MatchString(c.AccountID) {
		return fmt.Errorf("--aws-account-id %q: expected 12 digits (left out, the instance metadata service's account is used)", c.AccountID)
	}
	if !strings.HasPrefix(c.MountPath, "/") {
		return fmt.Errorf("--aws-token-mount-path %q: expected an absolute path", c.MountPath)
	}
	if !strings.HasPrefix(c.PodIdentityMountPath, "/") {
		return fmt.Errorf("--aws-pod-identity-mount-path %q: expected an absolute path", c.PodIdentityMountPath)
	}
	if errs := validation.IsDNS1123Label(c.PodIdentityVolumeName); len(errs) > 0 {
		return fmt.Errorf("--aws-pod-identity-volume-name %q: expected a volume name (%s)", c.PodIdentityVolumeName, errs[0])
	}
	if strings.Contains(c.PodIdentityTokenPath, "/") || strings.HasPrefix(c.PodIdentityTokenPath, ".") {
		return fmt.Errorf("--aws-pod-identity-token-path %q: expected a file name", c.PodIdentityTokenPath)
	}
	return nil
}

// PartitionForRegion returns the AWS partition of a region by its prefix.
func PartitionForRegion(region string) string {
	switch {
	case strings.HasPrefix(region, "cn-"):
		return "aws-cn"
	case strings.HasPrefix(region, "us-gov-"):
		return "aws-us-gov"
	case strings.HasPrefix(region, "us-isob-"):
		return "aws-iso-b"
	case strings.HasPrefix(region, "eu-isoe-"):
		return "aws-iso-e"
	case strings.HasPrefix(region, "us-isof-"):
		return "aws-iso-f"
	case strings.HasPrefix(region, "us-iso-"):
		return "aws-iso"
	case strings.HasPrefix(region, "eusc-"):
		return "aws-eusc"
	default:
		return "aws"
	}
}
