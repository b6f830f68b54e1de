package trust

import (
	"encoding/json"
	"fmt"
	"regexp"
	"strings"

	corev1 "k8s.io/api/core/v1"

	"github.com/pod-identity/injector/internal/quote"
	"github.com/pod-identity/injector/pkg/providers"
)

// PodIdentityService is the service principal EKS Pod Identity assumes
// roles as.
const PodIdentityService = "pods.eks.amazonaws.com"

// The session tags EKS Pod Identity sets when it assumes a role, which a
// trust policy's conditions read.
const (
	tagClusterARN     = "aws:RequestTag/eks-cluster-arn"
	tagNamespace      = "aws:RequestTag/kubernetes-namespace"
	tagServiceAccount = "aws:RequestTag/kubernetes-service-account"
)

// PodIdentityAssociation is an EKS Pod Identity association, as
// `aws eks create-pod-identity-association` takes it.
type PodIdentityAssociation struct {
	ClusterName    string `json:"clusterName"`
	Namespace      string `json:"namespace"`
	ServiceAccount string `json:"serviceAccount"`
	RoleARN        string `json:"roleArn"`
}

// clusterARN is an EKS cluster ARN: EKS cluster names are 1 to 100
// letters, digits, hyphens and underscores, starting with a letter or a
// digit.
var clusterARN = regexp.MustCompile(`^arn:(aws|aws-cn|aws-us-gov|aws-iso|aws-iso-b|aws-iso-e|aws-iso-f|aws-eusc):eks:[a-z]{2}(-[a-z]+)+-[0-9]+:([0-9]{12}):cluster/([0-9A-Za-z][A-Za-z0-9_-]{0,99})$`)

// eksCluster splits an EKS cluster ARN into its account and name.
func eksCluster(arn string) (account, name string, err error) {
	m := clusterARN.FindStringSubmatch(arn)
	if m == nil {
		return "", "", fmt.Errorf("EKS cluster %s: expected an EKS cluster ARN, arn:aws:eks:<region>:<12-digit account>:cluster/<name>", quote.Value(arn))
	}
	return m[3], m[4], nil
}

// updateRoleTrust is the command that replaces a role's trust policy. The
// CLI takes the role's name, and IAM role names are unique in an account
// whatever their path: the command first checks that the role of that
// name is the one of the ARN, path included, so that an annotation with
// another path cannot retarget another team's role.
func updateRoleTrust(arn, name, policy string) string {
	return "[ \"$(aws iam get-role --role-name " + quote.Shell(name) + " --query Role.Arn --output text)\" = " + quote.Shell(arn) +
		" ] && aws iam update-assume-role-policy --role-name " + quote.Shell(name) + " --policy-document " + quote.Shell(policy)
}

// podIdentity returns, for each role of inj, the association of sa with it
// and the role's trust policy, which admits EKS Pod Identity for that
// cluster, namespace and ServiceAccount only (its session tags).
func podIdentity(cluster string, sa *corev1.ServiceAccount, inj *providers.Injection) ([]Document, error) {
	account, name, err := eksCluster(cluster)
	if err != nil {
		return nil, err
	}
	ref := sa.Namespace + "/" + sa.Name
	var out []Document
	for _, arn := range identities(inj, "roleARNs") {
		_, roleAccount, role, err := roleARN(arn)
		if err != nil {
			return nil, err
		}
		if roleAccount != account {
			return nil, fmt.Errorf("role %s: in account %s, not the cluster's %s: an EKS Pod Identity association names a role of the cluster's account", quote.Value(arn), roleAccount, account)
		}
		assoc := PodIdentityAssociation{ClusterName: name, Namespace: sa.Namespace, ServiceAccount: sa.Name, RoleARN: arn}
		out = append(out, Document{Provider: "aws", ServiceAccount: ref, Kind: "EKS Pod Identity association", Target: cluster, Object: assoc, Additive: true,
			Command: "aws eks create-pod-identity-association --cluster-name " + quote.Shell(name) + " --namespace " + quote.Shell(sa.Namespace) +
				" --service-account " + quote.Shell(sa.Name) + " --role-arn " + quote.Shell(arn)})
		doc := IAMPolicy{Version: "2012-10-17", Statement: []IAMStatement{{
			Effect:    "Allow",
			Principal: map[string]any{"Service": PodIdentityService},
			Action:    []string{"sts:AssumeRole", "sts:TagSession"},
			Condition: map[string]map[string]any{"StringEquals": {
				"aws:SourceAccount": account,
				tagClusterARN:       cluster,
				tagNamespace:        sa.Namespace,
				tagServiceAccount:   sa.Name,
			}},
		}}}
		body, _ := json.Marshal(doc)
		out = append(out, Document{Provider: "aws", ServiceAccount: ref, Kind: "IAM role trust policy (EKS Pod Identity)", Target: arn, Object: doc,
			Command: updateRoleTrust(arn, role, string(body))})
	}
	return out, nil
}

// roleARN splits an IAM role's ARN into its partition, account and name.
func roleARN(arn string) (partition, account, name string, err error) {
	parts := strings.SplitN(arn, ":", 6)
	if len(parts) != 6 || !strings.HasPrefix(parts[5], "role/") {
		return "", "", "", fmt.Errorf("role %s: not an IAM role ARN", quote.Value(arn))
	}
	return parts[1], parts[4], parts[5][strings.LastIndexByte(parts[5], '/')+1:], nil
}
