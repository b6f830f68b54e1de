// Package trust builds and checks the cloud half of the link between a
// ServiceAccount and its cloud identity: the object in the cloud that must
// trust the cluster's issuer for exactly that ServiceAccount (an IAM role's
// trust policy, an Entra federated identity credential, a Google IAM
// binding), and what an existing trust document admits. It knows no HTTP
// server and calls no cloud.
package trust

import (
	"encoding/json"
	"fmt"
	"net/url"
	"reflect"
	"slices"
	"strings"

	corev1 "k8s.io/api/core/v1"

	"k8s.io/apimachinery/pkg/util/validation"

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
	// Command applies it with the cloud's CLI; empty when there is none.
	Command string `json:"command,omitempty"`
	// Note says what to look at before applying it: one role trusted by
	// ServiceAccounts of several namespaces.
	Note string `json:"note,omitempty"`
	// Additive says that applying it adds to the target (an Entra
	// credential, an IAM binding, a policy statement); otherwise it
	// replaces the target's document (a role's trust policy), so Merge
	// joins or refuses the documents of one target.
	Additive bool `json:"-"`
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

// Options say what the trust is for.
type Options struct {
	// Issuer is the cluster's service account issuer: an https URL.
	Issuer string
	// EKSCluster, when set, is the ARN of the EKS cluster whose pods get
	// their AWS roles through EKS Pod Identity: each role gets a Pod
	// Identity association and its trust policy instead of an IRSA one,
	// and needs no issuer.
	EKSCluster string
	// Describers are the providers that describe their own trust (the
	// declarative ones), by name.
	Describers map[string]providers.TrustDescriber
	// APIAudience, when set, says whether the API server accepts tokens
	// of an audience: a cloud trusting that audience would accept every
	// pod's Kubernetes API token, so no such trust is printed.
	APIAudience func(string) bool
}

// Validate checks the issuer, unless only EKS Pod Identity is asked for
// (needsIssuer false), and the cluster ARN.
func (o Options) Validate(needsIssuer bool) error {
	if o.EKSCluster != "" {
		if _, _, err := eksCluster(o.EKSCluster); err != nil {
			return err
		}
	}
	if o.Issuer == "" && !needsIssuer {
		return nil
	}
	return ValidIssuer(o.Issuer)
}

// For returns the documents the injections of sa (what its providers hand
// its pods, as for a ServiceAccount being written) need in their clouds.
// An injection with no cloud object (an EKS Pod Identity association the
// injector only learns of from its file, a declarative provider whose file
// declares no trust) is left out.
func For(o Options, sa *corev1.ServiceAccount, injections []*providers.Injection) ([]Document, error) {
	ref := sa.Namespace + "/" + sa.Name
	// The subject is built from these: they must be what the API server
	// accepts, whatever a manifest file holds.
	if errs := validation.IsDNS1123Label(sa.Namespace); len(errs) > 0 {
		return nil, fmt.Errorf("serviceaccount %s: namespace %s: %s", quote.Value(ref), quote.Value(sa.Namespace), errs[0])
	}
	if errs := validation.IsDNS1123Subdomain(sa.Name); len(errs) > 0 {
		return nil, fmt.Errorf("serviceaccount %s: name %s: %s", quote.Value(ref), quote.Value(sa.Name), errs[0])
	}
	var out []Document
	for _, inj := range injections {
		if a := audience(inj); a != "" && (o.APIAudience != nil && o.APIAudience(a) || looseAudience(a) == looseAudience(o.Issuer) && o.Issuer != "") && issuerTrusted(inj) {
			return nil, fmt.Errorf("serviceaccount %q (%s): the token audience %s is one the Kubernetes API server accepts: a cloud trusting it would accept every pod's API token; give the ServiceAccount the cloud's own audience", ref, inj.Provider, quote.Value(a))
		}
		var docs []Document
		var err error
		needsIssuer := !(inj.Provider == "aws" && o.EKSCluster != "")
		if needsIssuer && len(inj.Identities) > 0 {
			if err := ValidIssuer(o.Issuer); err != nil {
				return nil, fmt.Errorf("serviceaccount %q (%s): %w", ref, inj.Provider, err)
			}
		}
		switch inj.Provider {
		case "aws":
			if o.EKSCluster != "" {
				docs, err = podIdentity(o.EKSCluster, sa, inj)
			} else {
				docs, err = aws(o.Issuer, sa, inj)
			}
		case "azure":
			docs = azure(o.Issuer, sa, inj)
		case "gcp":
			docs, err = gcp(o.Issuer, sa, inj)
		default:
			if d, ok := o.Describers[inj.Provider]; ok {
				var objs []providers.TrustObject
				objs, err = d.Trust(o.Issuer, sa, inj)
				for _, t := range objs {
					docs = append(docs, Document{Provider: inj.Provider, ServiceAccount: ref, Kind: t.Kind, Target: t.Target, Object: t.Object, Command: t.Command, Additive: t.Additive})
				}
			}
		}
		if err != nil {
			return nil, fmt.Errorf("serviceaccount %q: %w", ref, err)
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

// issuerTrusted says whether the injection's cloud trusts the issuer for
// its audience: the compiled-in clouds always, a declarative provider
// when a ServiceAccount annotation chose the audience (its file's own
// audience is the operator's choice: OKE's is the API server's, since OKE
// checks tokens with a TokenReview, not against the issuer).
func issuerTrusted(inj *providers.Injection) bool {
	switch inj.Provider {
	case "aws", "azure", "gcp":
		return true
	}
	return slices.ContainsFunc(inj.Identities, func(id providers.Identity) bool { return id.Field == "audiences" })
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
		partition, account, name, err := roleARN(arn)
		if err != nil {
			return nil, err
		}
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
		body, _ := json.Marshal(doc)
		out = append(out, Document{Provider: "aws", ServiceAccount: sa.Namespace + "/" + sa.Name, Kind: "IAM role trust policy", Target: arn, Object: doc,
			Command: updateRoleTrust(arn, name, string(body))})
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
		out = append(out, Document{Provider: "azure", ServiceAccount: sa.Namespace + "/" + sa.Name, Kind: "Entra federated identity credential", Target: id, Object: fic, Additive: true,
			Command: "az ad app federated-credential create --id " + id + " --parameters " + quote.Shell(string(body))})
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
		out = append(out, poolProviderDocument(ref, provider, issuer, audience(inj), []string{Subject(sa.Namespace, sa.Name)}))
		emails := identities(inj, "serviceAccountEmails")
		if len(emails) == 0 {
			out = append(out, Document{Provider: "gcp", ServiceAccount: ref, Kind: "Google IAM principal (grant it roles on resources directly)", Target: pool, Object: map[string]string{"member": principal}, Additive: true,
				Command: "gcloud projects add-iam-policy-binding PROJECT --role=ROLE --member=" + quote.Shell(principal)})
		}
		for _, email := range emails {
			b := IAMBinding{Resource: email, Role: "roles/iam.workloadIdentityUser", Member: principal}
			out = append(out, Document{Provider: "gcp", ServiceAccount: ref, Kind: "Google IAM binding", Target: email, Object: b, Additive: true,
				Command: "gcloud iam service-accounts add-iam-policy-binding " + email + " --role=roles/iam.workloadIdentityUser --member=" + quote.Shell(principal)})
		}
	}
	return out, nil
}

// PoolProvider is a Google workload identity pool provider, as far as
// trust goes.
type PoolProvider struct {
	Name string `json:"name"`
	OIDC struct {
		IssuerURI        string   `json:"issuerUri"`
		AllowedAudiences []string `json:"allowedAudiences"`
	} `json:"oidc"`
	AttributeMapping   map[string]string `json:"attributeMapping"`
	AttributeCondition string            `json:"attributeCondition"`
}

// poolProviderDocument is the provider that admits exactly subjects.
func poolProviderDocument(ref, provider, issuer, audience string, subjects []string) Document {
	parts := strings.Split(provider, "/")
	p := PoolProvider{Name: provider, AttributeMapping: map[string]string{"google.subject": "assertion.sub"}}
	p.OIDC.IssuerURI, p.OIDC.AllowedAudiences = issuer, []string{audience}
	quoted := make([]string, len(subjects))
	for i, s := range subjects {
		quoted[i] = `"` + s + `"`
	}
	p.AttributeCondition = "assertion.sub == " + quoted[0]
	if len(quoted) > 1 {
		p.AttributeCondition = "assertion.sub in [" + strings.Join(quoted, ", ") + "]"
	}
	return Document{Provider: "gcp", ServiceAccount: ref, Kind: KindPoolProvider, Target: provider, Object: p,
		Command: fmt.Sprintf("gcloud iam workload-identity-pools providers update-oidc %s --location=global --workload-identity-pool=%s --project=%s --issuer-uri=%s --allowed-audiences=%s --attribute-mapping=google.subject=assertion.sub --attribute-condition=%s",
			parts[7], parts[5], parts[1], quote.Shell(issuer), quote.Shell(audience), quote.Shell(p.AttributeCondition))}
}

// Merge joins the documents that ServiceAccounts naming one target need,
// where applying one would replace another's:
//   - a pool provider, which serves every ServiceAccount that names it,
//     becomes one whose attribute condition admits exactly those
//     ServiceAccounts (in the order first seen); ServiceAccounts that give
//     one provider different audiences are an error: one of them would
//     widen what the provider accepts from all the others;
//   - an IAM role's trust policy gets one statement per ServiceAccount, so
//     that applying it admits each of them, and no other;
//   - another replacing document (a declarative provider's: a RAM role's
//     trust, a rule with one subject) is an error unless the documents are
//     the same: applying the second would lock the first ServiceAccount out.
//
// Additive documents (Entra credentials, IAM bindings, Pod Identity
// associations, declared additive) stay as they are.
func Merge(docs []Document) ([]Document, error) {
	var out []Document
	at := map[string]int{}
	subjects := map[string][]string{}
	for _, d := range docs {
		p, ok := d.Object.(PoolProvider)
		if d.Kind != KindPoolProvider || !ok {
			if d.Additive {
				out = append(out, d)
				continue
			}
			// Without regard to case: IAM and RAM role names are not
			// case-sensitive, and Vault stores role names in lower case, so
			// "Billing-Reader" is the role "billing-reader" is. (A target that
			// is case-sensitive is refused for nothing, never merged wrongly.)
			key := d.Provider + "\x00" + d.Kind + "\x00" + targetKey(d)
			i, seen := at[key]
			if !seen {
				at[key] = len(out)
				out = append(out, d)
				continue
			}
			merged, err := mergeReplacing(out[i], d)
			if err != nil {
				return nil, err
			}
			out[i] = merged
			continue
		}
		subs, _ := ConditionSubjects(p.AttributeCondition)
		i, seen := at[d.Target]
		if !seen {
			at[d.Target] = len(out)
			out = append(out, d)
			subjects[d.Target] = subs
			continue
		}
		subjects[d.Target] = append(subjects[d.Target], subs...)
		first := out[i].Object.(PoolProvider)
		a, b := first.OIDC.AllowedAudiences[0], p.OIDC.AllowedAudiences[0]
		if a != b {
			return nil, fmt.Errorf("workload identity provider %s: serviceaccounts %s give it the audience %s and %s gives it %s: a provider accepts its audiences from every ServiceAccount that names it, so they must agree",
				d.Target, out[i].ServiceAccount, quote.Value(a), d.ServiceAccount, quote.Value(b))
		}
		out[i] = poolProviderDocument(out[i].ServiceAccount+", "+d.ServiceAccount, d.Target, first.OIDC.IssuerURI, a, subjects[d.Target])
	}
	return out, nil
}

// targetKey is what names a replacing document's target: an IAM role is
// its partition, account and name, whatever its path (IAM role names are
// unique in an account whatever the path, and not case-sensitive);
// another target is its text, in lower case (Vault and RAM role names).
func targetKey(d Document) string {
	if _, ok := d.Object.(IAMPolicy); ok {
		if partition, account, name, err := roleARN(d.Target); err == nil {
			return strings.ToLower(partition + ":" + account + ":" + name)
		}
	}
	return strings.ToLower(d.Target)
}

// namespacesOf lists, sorted and once each, the namespaces of a
// Document's ServiceAccount list ("ns/name, ns/name").
func namespacesOf(refs string) []string {
	var out []string
	for _, r := range strings.Split(refs, ", ") {
		ns, _, _ := strings.Cut(r, "/")
		if !slices.Contains(out, ns) {
			out = append(out, ns)
		}
	}
	slices.Sort(out)
	return out
}

// maxTrustPolicy is the largest role trust policy IAM takes (its quota
// raised from the default 2048 to the maximum).
const maxTrustPolicy = 4096

// mergeReplacing joins d into first, a document of the same target that
// applying d would replace.
func mergeReplacing(first, d Document) (Document, error) {
	if reflect.DeepEqual(first.Object, d.Object) {
		first.ServiceAccount += ", " + d.ServiceAccount
		return first, nil
	}
	policy, ok := first.Object.(IAMPolicy)
	more, ok2 := d.Object.(IAMPolicy)
	if !ok || !ok2 {
		return Document{}, fmt.Errorf("%s %s: serviceaccounts %s and %s both name it, and it admits one ServiceAccount: applying the second would replace the first (give each ServiceAccount its own)",
			d.Kind, quote.Value(d.Target), first.ServiceAccount, d.ServiceAccount)
	}
	_, _, name, err := roleARN(first.Target)
	if err != nil {
		return Document{}, err
	}
	merged := IAMPolicy{Version: policy.Version, Statement: slices.Clone(policy.Statement)}
	for _, st := range more.Statement {
		if !slices.ContainsFunc(merged.Statement, func(s IAMStatement) bool { return reflect.DeepEqual(s, st) }) {
			merged.Statement = append(merged.Statement, st)
		}
	}
	body, _ := json.Marshal(merged)
	// IAM's limit on a role trust policy: 2048 characters by default,
	// 4096 at most by quota increase (whitespace not counted; compact JSON
	// has none).
	if len(body) > maxTrustPolicy {
		return Document{}, fmt.Errorf("%s %s: one statement each for serviceaccounts %s and %s makes a trust policy of %d characters, over IAM's maximum of %d: give some of them another role",
			d.Kind, quote.Value(d.Target), first.ServiceAccount, d.ServiceAccount, len(body), maxTrustPolicy)
	}
	if ns := namespacesOf(first.ServiceAccount + ", " + d.ServiceAccount); len(ns) > 1 {
		// One team's role assumable from another team's namespace may be
		// meant (a shared reader) or a ServiceAccount naming a role it should
		// not: the policies allowed it, but a person should see it.
		first.Note = fmt.Sprintf("this role admits serviceaccounts of %d namespaces (%s): each of them may assume it; an IdentityPolicy per namespace (roleARNs) keeps a tenant from naming another's role",
			len(ns), strings.Join(ns, ", "))
	}
	first.ServiceAccount += ", " + d.ServiceAccount
	first.Object, first.Command = merged, updateRoleTrust(first.Target, name, string(body))
	return first, nil
}
