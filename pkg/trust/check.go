package trust

import (
	"bytes"
	"encoding/json"
	"errors"
	"fmt"
	"regexp"
	"slices"
	"strings"

	"sigs.k8s.io/yaml"

	"github.com/pod-identity/injector/internal/quote"
)

// Finding is something a trust document admits that it should not, or
// that keeps it from admitting what it should.
type Finding struct {
	// Statement is the index of the statement, binding or credential.
	Statement int `json:"statement"`
	// Message says what and why.
	Message string `json:"message"`
}

// Report is what a trust document admits.
type Report struct {
	// Kind names the document, e.g. "IAM role trust policy".
	Kind string `json:"kind"`
	// Provider and Field are the identity policy field that governs the
	// identity the document belongs to (aws roleARNs, azure clientIDs...).
	Provider string `json:"provider"`
	Field    string `json:"field"`
	// Target is that identity, when the document names it (a role's ARN in
	// `aws iam get-role` output, a pool provider's name).
	Target string `json:"target,omitempty"`
	// Subjects are the ServiceAccount subjects it admits exactly,
	// system:serviceaccount:<namespace>:<name>, sorted.
	Subjects []string `json:"subjects"`
	// Findings are what it admits wider than they need, or gets wrong.
	Findings []Finding `json:"findings"`
}

// MaxDocumentBytes bounds a trust document read: IAM's largest trust
// policy is 4,096 characters (8,192 with a quota increase), and Google's
// IAM policies stay under 64 KiB, so 1 MiB holds any of them many times.
const MaxDocumentBytes = 1 << 20

// Check reads a trust document, in JSON or YAML as the clouds' CLIs print
// it, and says which ServiceAccounts of the cluster's issuer it admits and
// what it admits wider than one ServiceAccount needs. It knows:
//   - IAM role trust policies, alone or in `aws iam get-role` output: web
//     identities (IRSA) and EKS Pod Identity;
//   - Alibaba Cloud RAM role trust policies (RRSA);
//   - Entra federated identity credentials, one, a list, or a Graph
//     API page ({"value": [...]});
//   - Google workload identity pool providers (`gcloud iam
//     workload-identity-pools providers describe`) and IAM policies
//     (`gcloud ... get-iam-policy`).
func Check(data []byte, issuer string) (*Report, error) {
	if err := ValidIssuer(issuer); err != nil {
		return nil, err
	}
	if len(data) > MaxDocumentBytes {
		return nil, fmt.Errorf("a document of %d bytes: trust documents are at most %d", len(data), MaxDocumentBytes)
	}
	js := data
	if t := bytes.TrimSpace(data); len(t) == 0 || (t[0] != '{' && t[0] != '[') {
		var err error
		if js, err = yaml.YAMLToJSON(data); err != nil {
			return nil, fmt.Errorf("neither JSON nor YAML: %w", err)
		}
	}
	var probe any
	if err := json.Unmarshal(js, &probe); err != nil {
		var syntax *json.SyntaxError
		if errors.As(err, &syntax) {
			return nil, fmt.Errorf("malformed JSON at byte %d: %w", syntax.Offset, err)
		}
		return nil, fmt.Errorf("malformed JSON: %w", err)
	}
	var r *Report
	var err error
	switch doc := probe.(type) {
	case map[string]any:
		switch {
		case doc["Role"] != nil:
			role, _ := doc["Role"].(map[string]any)
			policy, err := json.Marshal(role["AssumeRolePolicyDocument"])
			if err != nil || role["AssumeRolePolicyDocument"] == nil {
				return nil, errors.New("aws iam get-role output with no Role.AssumeRolePolicyDocument")
			}
			if r, err = checkPolicy(policy, issuer); err != nil {
				return nil, err
			}
			r.Target, _ = role["Arn"].(string)
		case doc["Statement"] != nil:
			r, err = checkPolicy(js, issuer)
		case doc["oidc"] != nil:
			r, err = checkPoolProvider(js, issuer)
		case doc["bindings"] != nil:
			r, err = checkGoogleIAMPolicy(js)
		case doc["subject"] != nil || doc["issuer"] != nil:
			r, err = checkCredentials([]json.RawMessage{js}, issuer)
		case doc["value"] != nil:
			var page struct {
				Value []json.RawMessage `json:"value"`
			}
			if err = json.Unmarshal(js, &page); err == nil {
				r, err = checkCredentials(page.Value, issuer)
			}
		default:
			return nil, errors.New(unknownDocument)
		}
	case []any:
		var list []json.RawMessage
		if err = json.Unmarshal(js, &list); err == nil {
			r, err = checkCredentials(list, issuer)
		}
	default:
		return nil, errors.New(unknownDocument)
	}
	if err != nil {
		return nil, err
	}
	slices.Sort(r.Subjects)
	r.Subjects = slices.Compact(r.Subjects)
	return r, nil
}

const unknownDocument = "not a trust document this command reads: expected an IAM or RAM role trust policy (or aws iam get-role output), Entra federated identity credentials, a Google workload identity pool provider or a Google IAM policy"

// stringsOf reads a JSON value that is a string or a list of strings.
func stringsOf(v any) []string {
	switch x := v.(type) {
	case string:
		return []string{x}
	case []any:
		var out []string
		for _, e := range x {
			if s, ok := e.(string); ok {
				out = append(out, s)
			}
		}
		return out
	}
	return nil
}

// sameIssuerButSlash says a and b differ only by a trailing slash, which
// the clouds do not forgive: they compare the token's iss byte for byte.
func sameIssuerButSlash(a, b string) bool {
	return a != b && strings.TrimSuffix(a, "/") == strings.TrimSuffix(b, "/")
}

// policy is an IAM or RAM policy as read, any shape the clouds accept.
type policy struct {
	Version   string `json:"Version"`
	Statement []struct {
		Effect    string                    `json:"Effect"`
		Principal map[string]any            `json:"Principal"`
		Action    any                       `json:"Action"`
		Condition map[string]map[string]any `json:"Condition"`
	} `json:"Statement"`
}

func checkPolicy(data []byte, issuer string) (*Report, error) {
	var doc policy
	if err := json.Unmarshal(data, &doc); err != nil {
		return nil, fmt.Errorf("not an IAM policy document: %w", err)
	}
	if len(doc.Statement) == 0 {
		return nil, errors.New("not an IAM policy document: no Statement")
	}
	r := &Report{Kind: "IAM role trust policy", Provider: "aws", Field: "roleARNs"}
	hp := hostPath(issuer)
	for i, st := range doc.Statement {
		at := func(format string, args ...any) {
			r.Findings = append(r.Findings, Finding{Statement: i, Message: fmt.Sprintf("Statement[%d]: ", i) + fmt.Sprintf(format, args...)})
		}
		if st.Effect != "Allow" {
			continue
		}
		feds := stringsOf(st.Principal["Federated"])
		switch {
		case slices.ContainsFunc(feds, func(f string) bool { return strings.HasPrefix(f, "acs:ram:") }) && hasAction(st.Action, "sts:AssumeRole"):
			r.Kind, r.Provider, r.Field = "RAM role trust policy", "alibaba", "identities"
			iss, _ := condition(st.Condition, "oidc:iss")
			switch {
			case len(iss) == 0:
				at("has no condition on oidc:iss: tokens of any issuer the OIDC provider trusts are accepted")
			case !slices.Contains(iss, issuer):
				at("trusts the issuer %s, not this cluster's issuer %s%s", quote.Value(strings.Join(iss, ", ")), issuer, slashNote(iss, issuer))
				continue
			}
			r.subjects(condition(st.Condition, "oidc:sub"))(at, "oidc:sub")
			if aud, _ := condition(st.Condition, "oidc:aud"); len(aud) == 0 {
				at("has no condition on oidc:aud: a token of any audience (one the pod projects for another service) is accepted")
			}
		case len(feds) > 0 && hasAction(st.Action, "sts:AssumeRoleWithWebIdentity"):
			fed := feds[0]
			if !strings.HasSuffix(fed, ":oidc-provider/"+hp) {
				at("trusts web identities of %s, not of this cluster's issuer %s", quote.Value(fed), hp)
				continue
			}
			r.subjects(condition(st.Condition, hp+":sub"))(at, hp+":sub")
			if aud, _ := condition(st.Condition, hp+":aud"); len(aud) == 0 {
				at("has no condition on %s:aud: a token of any audience (one the pod projects for another service) is accepted", hp)
			}
		case slices.Contains(stringsOf(st.Principal["Service"]), PodIdentityService) && hasAction(st.Action, "sts:AssumeRole"):
			r.Kind = "IAM role trust policy (EKS Pod Identity)"
			ns, _ := condition(st.Condition, tagNamespace)
			names, _ := condition(st.Condition, tagServiceAccount)
			if len(ns) == 0 || len(names) == 0 || hasWildcard(ns) || hasWildcard(names) {
				at("does not pin the namespace and ServiceAccount (conditions on %s and %s): any EKS Pod Identity association in the account may assume the role", tagNamespace, tagServiceAccount)
				continue
			}
			if c, _ := condition(st.Condition, tagClusterARN); len(c) == 0 {
				if s, _ := condition(st.Condition, "aws:SourceArn"); len(s) == 0 {
					at("does not pin the cluster (a condition on %s or aws:SourceArn): the same namespace and ServiceAccount of any cluster in the account may assume the role", tagClusterARN)
				}
			}
			for _, n := range ns {
				for _, s := range names {
					r.Subjects = append(r.Subjects, Subject(n, s))
				}
			}
		}
	}
	return r, nil
}

// subjects records the subject condition's values: exact ones as
// subjects, a wildcard or a missing condition as a finding.
func (r *Report) subjects(values []string, op string) func(at func(string, ...any), key string) {
	return func(at func(string, ...any), key string) {
		if len(values) == 0 {
			at("has no condition on %s: any ServiceAccount of the cluster, and any pod that projects its own token, may assume the role", key)
			return
		}
		for _, s := range values {
			if op != "StringEquals" && strings.ContainsAny(s, "*?") {
				at("admits the subjects %s (%s): every ServiceAccount they match, not one", quote.Value(s), op)
			} else {
				r.Subjects = append(r.Subjects, s)
			}
		}
	}
}

func hasWildcard(values []string) bool {
	return slices.ContainsFunc(values, func(s string) bool { return strings.ContainsAny(s, "*?") })
}

func slashNote(have []string, issuer string) string {
	for _, h := range have {
		if sameIssuerButSlash(h, issuer) {
			return " (they differ only by a trailing slash, and the cloud compares the token's iss byte for byte)"
		}
	}
	return ""
}

func hasAction(action any, want string) bool {
	service := want[:strings.IndexByte(want, ':')+1]
	return slices.ContainsFunc(stringsOf(action), func(a string) bool { return a == want || a == service+"*" || a == "*" })
}

// condition returns the values of key under StringEquals or StringLike
// (and their ForAnyValue forms), and the operator.
func condition(c map[string]map[string]any, key string) ([]string, string) {
	for _, op := range []string{"StringEquals", "StringLike", "ForAnyValue:StringEquals", "ForAnyValue:StringLike"} {
		if v, ok := c[op][key]; ok {
			return stringsOf(v), strings.TrimPrefix(op, "ForAnyValue:")
		}
	}
	return nil, ""
}

// credential is an Entra federated identity credential as read.
type credential struct {
	Name                     string   `json:"name"`
	Issuer                   string   `json:"issuer"`
	Subject                  string   `json:"subject"`
	Audiences                []string `json:"audiences"`
	ClaimsMatchingExpression *struct {
		Value string `json:"value"`
	} `json:"claimsMatchingExpression"`
}

// serviceAccountSubject matches an exact ServiceAccount subject: a DNS
// label namespace and a DNS subdomain name.
var serviceAccountSubject = regexp.MustCompile(`^system:serviceaccount:[a-z0-9]([-a-z0-9]*[a-z0-9])?:[a-z0-9]([-a-z0-9.]*[a-z0-9])?$`)

func checkCredentials(list []json.RawMessage, issuer string) (*Report, error) {
	r := &Report{Kind: "Entra federated identity credentials", Provider: "azure", Field: "clientIDs"}
	for i, raw := range list {
		var c credential
		if err := json.Unmarshal(raw, &c); err != nil || (c.Issuer == "" && c.Subject == "") {
			return nil, fmt.Errorf("credential %d: not an Entra federated identity credential (issuer, subject, audiences)", i)
		}
		at := func(format string, args ...any) {
			r.Findings = append(r.Findings, Finding{Statement: i, Message: fmt.Sprintf("credential %s: ", quote.Value(c.Name)) + fmt.Sprintf(format, args...)})
		}
		switch {
		case sameIssuerButSlash(c.Issuer, issuer):
			at("issuer %s differs from the cluster's %s only by a trailing slash: Entra compares them byte for byte, so no token matches", quote.Value(c.Issuer), issuer)
			continue
		case c.Issuer != issuer:
			at("trusts the issuer %s, not this cluster's issuer %s", quote.Value(c.Issuer), issuer)
			continue
		}
		switch {
		case c.ClaimsMatchingExpression != nil:
			at("matches subjects by the expression %s: every ServiceAccount it matches, not one", quote.Value(c.ClaimsMatchingExpression.Value))
		case !serviceAccountSubject.MatchString(c.Subject):
			at("subject %s is not one ServiceAccount's, system:serviceaccount:<namespace>:<name>", quote.Value(c.Subject))
		default:
			r.Subjects = append(r.Subjects, c.Subject)
		}
		if len(c.Audiences) == 0 {
			at("has no audience: Entra requires one (api://AzureADTokenExchange)")
		}
	}
	return r, nil
}

// poolProvider is a Google workload identity pool provider as described.
type poolProvider struct {
	Name string `json:"name"`
	OIDC struct {
		IssuerURI        string   `json:"issuerUri"`
		AllowedAudiences []string `json:"allowedAudiences"`
	} `json:"oidc"`
	AttributeMapping   map[string]string `json:"attributeMapping"`
	AttributeCondition string            `json:"attributeCondition"`
}

// conditionSubjects reads the attribute conditions `injector trust`
// prints, and those written the same way: assertion.sub (or
// google.subject) == 'x', or in ['x', 'y'], joined by ||.
var (
	conditionEquals = regexp.MustCompile(`^(?:assertion\.sub|google\.subject)\s*==\s*['"]([^'"]+)['"]$`)
	conditionIn     = regexp.MustCompile(`^(?:assertion\.sub|google\.subject)\s+in\s*\[([^\]]*)\]$`)
	quoted          = regexp.MustCompile(`['"]([^'"]+)['"]`)
)

// ConditionSubjects returns the subjects a pool provider's attribute
// condition admits, when it only lists subjects; ok is false otherwise.
func ConditionSubjects(cond string) (subjects []string, ok bool) {
	for _, term := range strings.Split(cond, "||") {
		term = strings.TrimSpace(term)
		term = strings.TrimSpace(strings.TrimSuffix(strings.TrimPrefix(term, "("), ")"))
		if m := conditionEquals.FindStringSubmatch(term); m != nil {
			subjects = append(subjects, m[1])
			continue
		}
		m := conditionIn.FindStringSubmatch(term)
		if m == nil {
			return nil, false
		}
		for _, q := range quoted.FindAllStringSubmatch(m[1], -1) {
			subjects = append(subjects, q[1])
		}
	}
	return subjects, len(subjects) > 0
}

func checkPoolProvider(data []byte, issuer string) (*Report, error) {
	var p poolProvider
	if err := json.Unmarshal(data, &p); err != nil || p.OIDC.IssuerURI == "" {
		return nil, errors.New("not a Google workload identity pool provider: no oidc.issuerUri")
	}
	r := &Report{Kind: "Google workload identity pool provider", Provider: "gcp", Field: "workloadIdentityProviders", Target: p.Name}
	at := func(format string, args ...any) {
		r.Findings = append(r.Findings, Finding{Message: fmt.Sprintf(format, args...)})
	}
	switch {
	case sameIssuerButSlash(p.OIDC.IssuerURI, issuer):
		at("oidc.issuerUri %s differs from the cluster's %s only by a trailing slash: Google compares the token's iss byte for byte, so no token matches", quote.Value(p.OIDC.IssuerURI), issuer)
		return r, nil
	case p.OIDC.IssuerURI != issuer:
		at("trusts the issuer %s, not this cluster's issuer %s", quote.Value(p.OIDC.IssuerURI), issuer)
		return r, nil
	}
	if m := p.AttributeMapping["google.subject"]; m != "assertion.sub" {
		at("maps google.subject from %s, not assertion.sub: principals no longer name one ServiceAccount", quote.Value(m))
	}
	if strings.TrimSpace(p.AttributeCondition) == "" {
		at("has no attributeCondition: every ServiceAccount of the issuer, and any pod that projects its own token, gets a federated token (only the IAM bindings then decide)")
		return r, nil
	}
	subjects, ok := ConditionSubjects(p.AttributeCondition)
	if !ok {
		at("attributeCondition %s is not a list of subjects this command can read: check that it admits only the ServiceAccounts that need the provider", quote.Value(p.AttributeCondition))
	}
	for _, s := range subjects {
		if serviceAccountSubject.MatchString(s) {
			r.Subjects = append(r.Subjects, s)
		} else {
			at("attributeCondition admits %s, not one ServiceAccount's subject", quote.Value(s))
		}
	}
	return r, nil
}

func checkGoogleIAMPolicy(data []byte) (*Report, error) {
	var p struct {
		Bindings []struct {
			Role    string   `json:"role"`
			Members []string `json:"members"`
		} `json:"bindings"`
	}
	if err := json.Unmarshal(data, &p); err != nil {
		return nil, fmt.Errorf("not a Google IAM policy: %w", err)
	}
	r := &Report{Kind: "Google IAM policy", Provider: "gcp", Field: "serviceAccountEmails"}
	for i, b := range p.Bindings {
		for _, m := range b.Members {
			switch {
			case strings.HasPrefix(m, "principal://iam.googleapis.com/") && strings.Contains(m, "/workloadIdentityPools/"):
				sub := m[strings.Index(m, "/subject/")+len("/subject/"):]
				if !strings.Contains(m, "/subject/") || !serviceAccountSubject.MatchString(sub) {
					r.Findings = append(r.Findings, Finding{Statement: i, Message: fmt.Sprintf("bindings[%d] (%s): member %s is not one ServiceAccount's subject", i, b.Role, quote.Value(m))})
					continue
				}
				r.Subjects = append(r.Subjects, sub)
			case strings.HasPrefix(m, "principalSet://iam.googleapis.com/") && strings.Contains(m, "/workloadIdentityPools/"):
				r.Findings = append(r.Findings, Finding{Statement: i, Message: fmt.Sprintf("bindings[%d] (%s): member %s grants every identity of the set it names, not one ServiceAccount", i, b.Role, quote.Value(m))})
			}
		}
	}
	return r, nil
}
