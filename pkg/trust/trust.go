// Package trust builds and checks the cloud half of the link between a
// ServiceAccount and its cloud identity: the object in the cloud that must
// trust the cluster's issuer for exactly that ServiceAccount (an IAM role's
// trust policy, an Entra federated identity credential, a Google IAM
// binding), and what an existing trust document admits. It knows no HTTP
// server and calls no cloud.
package trust

import (
	"encoding/json"
	"errors"
	"fmt"
	"net/url"
	"sort"
	"strings"

	corev1 "k8s.io/api/core/v1"

	"github.com/pod-identity/injector/internal/quote"
	"github.com/pod-identity/injector/pkg/providers"
)

// Document is the cloud-side object one ServiceAccount's identity needs.
type Document struct {
	// Provider names the provider: aws, azure or gcp.
	Provider string `json:"provider"`
	// ServiceAccount is "namespace/name".
	ServiceAccount string `json:"serviceAccount"`
	// Kind says what the object is, e.g. "IAM role trust policy".
	Kind string `json:"kind"`
	// Target is what the object belongs to: the role ARN, the client ID,
	// the Google service account or workload identity pool provider.
	Target string `json:"target"`
	// Object is the document itself, as the cloud's API takes it.
	Object any `json:"object"`
	// Command applies it with the cloud's CLI.
	Command string `json:"command"`
}

// KindPoolProvider is the Kind of a Google workload identity pool
// provider's Document: one serves every ServiceAccount that names it.
const KindPoolProvider = "workload identity pool provider"

// Subject is the token subject of a ServiceAccount, as the API server
// writes it.
func Subject(namespace, name string) string {
	return "system:serviceaccount:" + namespace + ":" + name
}

// ValidIssuer checks an issuer URL as the clouds require it: HTTPS, a
// host, no query or fragment.
func ValidIssuer(issuer string) error {
	u, err := url.Parse(issuer)
	if err != nil || u.Scheme != "https" || u.Host == "" || u.RawQuery != "" || u.Fragment != "" || u.User != nil {
		return fmt.Errorf("issuer %s: expected an https:// URL with a host and no query or fragment, as the API server's --service-account-issuer", quote.Value(issuer))
	}
	return nil
}

// For returns the documents the injections of sa (what its providers hand
// its pods, as for a ServiceAccount being written) need in their clouds,
// for the cluster's issuer. Providers with no cloud object it knows of
// (EKS Pod Identity, whose association names the role) are left out.
func For(issuer string, sa *corev1.ServiceAccount, injections []*providers.Injection) ([]Document, error) {
	if err := ValidIssuer(issuer); err != nil {
		return nil, err
	}
	var out []Document
	for _, inj := range injections {
		var docs []Document
		var err error
		switch inj.Provider {
		case "aws":
			docs, err = aws(issuer, sa, inj)
		case "azure":
			docs = azure(issuer, sa, inj)
		case "gcp":
			docs, err = gcp(issuer, sa, inj)
		}
		if err != nil {
			return nil, fmt.Errorf("serviceaccount %q: %w", sa.Namespace+"/"+sa.Name, err)
		}
		out = append(out, docs...)
	}
	return out, nil
}

// identities returns the values of an injection's identities of field.
func identities(inj *providers.Injection, field string) []string {
	var out []string
	for _, id := range inj.Identities {
		if id.Field == field && id.Value != "" {
			out = append(out, id.Value)
		}
	}
	return out
}

// audience is the audience of the injection's token.
func audience(inj *providers.Injection) string {
	for _, v := range inj.Volumes {
		if v.Projected == nil {
			continue
		}
		for _, s := range v.Projected.Sources {
			if s.ServiceAccountToken != nil {
				return s.ServiceAccountToken.Audience
			}
		}
	}
	return ""
}

// hostPath is the issuer as IAM names it: no scheme, no trailing slash.
func hostPath(issuer string) string {
	return strings.TrimSuffix(strings.TrimPrefix(issuer, "https://"), "/")
}

// IAMPolicy is an IAM policy document, as far as trust policies use it.
type IAMPolicy struct {
	Version   string         `json:"Version"`
	Statement []IAMStatement `json:"Statement"`
}

// IAMStatement is one statement of an IAM policy.
type IAMStatement struct {
	Sid       string                    `json:"Sid,omitempty"`
	Effect    string                    `json:"Effect"`
	Principal map[string]any            `json:"Principal"`
	Action    any                       `json:"Action"`
	Condition map[string]map[string]any `json:"Condition,omitempty"`
}

func aws(issuer string, sa *corev1.ServiceAccount, inj *providers.Injection) ([]Document, error) {
	var out []Document
	for _, arn := range identities(inj, "roleARNs") {
		parts := strings.SplitN(arn, ":", 6)
		if len(parts) != 6 || !strings.HasPrefix(parts[5], "role/") {
			return nil, fmt.Errorf("role %s: not an IAM role ARN", quote.Value(arn))
		}
		partition, account := parts[1], parts[4]
		hp := hostPath(issuer)
		doc := IAMPolicy{Version: "2012-10-17", Statement: []IAMStatement{{
			Effect:    "Allow",
			Principal: map[string]any{"Federated": "arn:" + partition + ":iam::" + account + ":oidc-provider/" + hp},
			Action:    "sts:AssumeRoleWithWebIdentity",
			Condition: map[string]map[string]any{"StringEquals": {
				hp + ":sub": Subject(sa.Namespace, sa.Name),
				hp + ":aud": audience(inj),
			}},
		}}}
		name := parts[5][strings.LastIndexByte(parts[5], '/')+1:]
		body, _ := json.Marshal(doc)
		out = append(out, Document{Provider: "aws", ServiceAccount: sa.Namespace + "/" + sa.Name, Kind: "IAM role trust policy", Target: arn, Object: doc,
			Command: "aws iam update-assume-role-policy --role-name " + name + " --policy-document " + shellQuote(string(body))})
	}
	return out, nil
}

// FederatedCredential is an Entra federated identity credential.
type FederatedCredential struct {
	Name      string   `json:"name"`
	Issuer    string   `json:"issuer"`
	Subject   string   `json:"subject"`
	Audiences []string `json:"audiences"`
}

func azure(issuer string, sa *corev1.ServiceAccount, inj *providers.Injection) []Document {
	var out []Document
	for _, id := range identities(inj, "clientIDs") {
		fic := FederatedCredential{Name: credentialName(sa), Issuer: issuer, Subject: Subject(sa.Namespace, sa.Name), Audiences: []string{audience(inj)}}
		body, _ := json.Marshal(fic)
		out = append(out, Document{Provider: "azure", ServiceAccount: sa.Namespace + "/" + sa.Name, Kind: "Entra federated identity credential", Target: id, Object: fic,
			Command: "az ad app federated-credential create --id " + id + " --parameters " + shellQuote(string(body))})
	}
	return out
}

// credentialName names a federated credential after the ServiceAccount:
// Entra allows 3 to 120 characters of letters, digits, - and _.
func credentialName(sa *corev1.ServiceAccount) string {
	n := strings.NewReplacer(".", "-").Replace("kubernetes-" + sa.Namespace + "-" + sa.Name)
	if len(n) > 120 {
		n = n[:120]
	}
	return n
}

// IAMBinding is a Google IAM policy binding on one resource.
type IAMBinding struct {
	Resource string `json:"resource"`
	Role     string `json:"role"`
	Member   string `json:"member"`
}

func gcp(issuer string, sa *corev1.ServiceAccount, inj *providers.Injection) ([]Document, error) {
	var out []Document
	for _, provider := range identities(inj, "workloadIdentityProviders") {
		// projects/<number>/locations/global/workloadIdentityPools/<pool>/providers/<provider>
		parts := strings.Split(provider, "/")
		if len(parts) != 8 {
			return nil, fmt.Errorf("workload identity provider %s: not a provider resource name", quote.Value(provider))
		}
		pool := strings.Join(parts[:6], "/")
		principal := "principal://iam.googleapis.com/" + pool + "/subject/" + Subject(sa.Namespace, sa.Name)
		ref := sa.Namespace + "/" + sa.Name
		mapping := map[string]any{"name": provider, "oidc": map[string]any{"issuerUri": issuer, "allowedAudiences": []string{audience(inj)}},
			"attributeMapping": map[string]string{"google.subject": "assertion.sub"}}
		out = append(out, Document{Provider: "gcp", ServiceAccount: ref, Kind: KindPoolProvider, Target: provider, Object: mapping,
			Command: fmt.Sprintf("gcloud iam workload-identity-pools providers update-oidc %s --location=global --workload-identity-pool=%s --project=%s --issuer-uri=%s --allowed-audiences=%s --attribute-mapping=google.subject=assertion.sub",
				parts[7], parts[5], parts[1], shellQuote(issuer), shellQuote(audience(inj)))})
		emails := identities(inj, "serviceAccountEmails")
		if len(emails) == 0 {
			out = append(out, Document{Provider: "gcp", ServiceAccount: ref, Kind: "Google IAM principal (grant it roles on resources directly)", Target: pool, Object: map[string]string{"member": principal},
				Command: "gcloud projects add-iam-policy-binding PROJECT --role=ROLE --member=" + shellQuote(principal)})
		}
		for _, email := range emails {
			b := IAMBinding{Resource: email, Role: "roles/iam.workloadIdentityUser", Member: principal}
			out = append(out, Document{Provider: "gcp", ServiceAccount: ref, Kind: "Google IAM binding", Target: email, Object: b,
				Command: "gcloud iam service-accounts add-iam-policy-binding " + email + " --role=roles/iam.workloadIdentityUser --member=" + shellQuote(principal)})
		}
	}
	return out, nil
}

// shellQuote quotes s for a POSIX shell.
func shellQuote(s string) string {
	return "'" + strings.ReplaceAll(s, "'", `'\''`) + "'"
}

// Finding is something a trust document admits that it should not.
type Finding struct {
	// Statement is the index of the statement.
	Statement int `json:"statement"`
	// Message says what and why.
	Message string `json:"message"`
}

// CheckIAM reads an IAM trust policy and says what it admits wider than
// one ServiceAccount of the cluster's issuer needs: a statement for web
// identities of another issuer, no subject condition or a wildcard one,
// no audience condition. It also returns the subjects it admits exactly.
func CheckIAM(data []byte, issuer string) (subjects []string, findings []Finding, err error) {
	if err := ValidIssuer(issuer); err != nil {
		return nil, nil, err
	}
	var doc IAMPolicy
	dec := json.NewDecoder(strings.NewReader(string(data)))
	if err := dec.Decode(&doc); err != nil {
		return nil, nil, fmt.Errorf("not an IAM policy document: %w", err)
	}
	if len(doc.Statement) == 0 {
		return nil, nil, errors.New("not an IAM policy document: no Statement")
	}
	hp := hostPath(issuer)
	for i, st := range doc.Statement {
		if st.Effect != "Allow" || !hasAction(st.Action, "sts:AssumeRoleWithWebIdentity") {
			continue
		}
		fed, _ := st.Principal["Federated"].(string)
		at := func(format string, args ...any) {
			findings = append(findings, Finding{Statement: i, Message: fmt.Sprintf("Statement[%d]: ", i) + fmt.Sprintf(format, args...)})
		}
		if !strings.HasSuffix(fed, ":oidc-provider/"+hp) {
			at("trusts web identities of %s, not of this cluster's issuer %s", quote.Value(fed), hp)
			continue
		}
		sub, subOp := condition(st.Condition, hp+":sub")
		aud, _ := condition(st.Condition, hp+":aud")
		switch {
		case len(sub) == 0:
			at("has no condition on %s:sub: any ServiceAccount of the cluster, and any pod that projects its own token, may assume the role", hp)
		case subOp != "StringEquals":
			for _, s := range sub {
				if strings.ContainsAny(s, "*?") {
					at("admits the subjects %s (%s): every ServiceAccount they match, not one", quote.Value(s), subOp)
				} else {
					subjects = append(subjects, s)
				}
			}
		default:
			subjects = append(subjects, sub...)
		}
		if len(aud) == 0 {
			at("has no condition on %s:aud: a token of any audience (one the pod projects for another service) is accepted", hp)
		}
	}
	sort.Strings(subjects)
	return subjects, findings, nil
}

func hasAction(action any, want string) bool {
	switch a := action.(type) {
	case string:
		return a == want || a == "sts:*" || a == "*"
	case []any:
		for _, x := range a {
			if s, ok := x.(string); ok && hasAction(s, want) {
				return true
			}
		}
	}
	return false
}

// condition returns the values of key under StringEquals or StringLike
// (and their ForAnyValue forms), and the operator.
func condition(c map[string]map[string]any, key string) ([]string, string) {
	for _, op := range []string{"StringEquals", "StringLike", "ForAnyValue:StringEquals", "ForAnyValue:StringLike"} {
		v, ok := c[op][key]
		if !ok {
			continue
		}
		switch x := v.(type) {
		case string:
			return []string{x}, strings.TrimPrefix(op, "ForAnyValue:")
		case []any:
			var out []string
			for _, e := range x {
				if s, ok := e.(string); ok {
					out = append(out, s)
				}
			}
			return out, strings.TrimPrefix(op, "ForAnyValue:")
		}
	}
	return nil, ""
}
