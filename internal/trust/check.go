package trust

import (
	"bytes"
	"encoding/json"
	"errors"
	"fmt"
	"maps"
	"net/url"
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
		if moreThanOneDocument(data) {
			return nil, errors.New("more than one YAML document: give each trust document a file of its own, so that none goes unread")
		}
		var err error
		// Strict: a key given twice would leave the other copy unread.
		if js, err = yaml.YAMLToJSONStrict(data); err != nil {
			return nil, fmt.Errorf("neither JSON nor YAML, or a key given twice: %w", err)
		}
	} else if key, dup := duplicateKey(data); dup {
		return nil, fmt.Errorf("the key %s is given twice in one object: which copy the cloud reads is not this command's to guess (remove one)", quote.Value(key))
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
			var policy []byte
			switch d := role["AssumeRolePolicyDocument"].(type) {
			case string: // URL-encoded, as the IAM API returns it
				text, err := url.QueryUnescape(d)
				if err != nil {
					return nil, fmt.Errorf("Role.AssumeRolePolicyDocument: not URL-encoded JSON: %w", err)
				}
				if key, dup := duplicateKey([]byte(text)); dup {
					return nil, fmt.Errorf("Role.AssumeRolePolicyDocument: the key %s is given twice in one object: which copy the cloud reads is not this command's to guess (remove one)", quote.Value(key))
				}
				policy = []byte(text)
			case map[string]any:
				policy, _ = json.Marshal(d)
			default:
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
				Value    []json.RawMessage `json:"value"`
				NextLink string            `json:"@odata.nextLink"`
			}
			if err = json.Unmarshal(js, &page); err == nil {
				r, err = checkCredentials(page.Value, issuer)
			}
			if err == nil && page.NextLink != "" {
				r.Findings = append(r.Findings, Finding{Message: "the Graph API page has more credentials (@odata.nextLink): check them all (az ad app federated-credential list reads every page)"})
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

// moreThanOneDocument says whether a YAML stream holds several documents.
func moreThanOneDocument(data []byte) bool {
	n := 0
	for _, line := range strings.Split(string(data), "\n") {
		if strings.TrimRight(line, " \t\r") == "---" {
			n++
		}
	}
	body := strings.TrimSpace(string(data))
	return n > 1 || (n == 1 && !strings.HasPrefix(body, "---"))
}

// duplicateKey finds a key given twice in one JSON object, at any depth.
func duplicateKey(data []byte) (string, bool) {
	dec := json.NewDecoder(bytes.NewReader(data))
	type frame struct {
		keys   map[string]bool
		object bool
		key    bool // the next string token is a key
	}
	var stack []*frame
	for {
		tok, err := dec.Token()
		if err != nil {
			return "", false
		}
		var top *frame
		if len(stack) > 0 {
			top = stack[len(stack)-1]
		}
		switch t := tok.(type) {
		case json.Delim:
			switch t {
			case '{':
				if top != nil && top.object {
					top.key = true
				}
				stack = append(stack, &frame{keys: map[string]bool{}, object: true, key: true})
			case '[':
				if top != nil && top.object {
					top.key = true
				}
				stack = append(stack, &frame{})
			default:
				stack = stack[:len(stack)-1]
			}
		case string:
			if top != nil && top.object && top.key {
				// Without regard to case: encoding/json, and so this
				// command, matches fields that way.
				if top.keys[strings.ToLower(t)] {
					return t, true
				}
				top.keys[strings.ToLower(t)] = true
				top.key = false
				continue
			}
			if top != nil && top.object {
				top.key = true
			}
		default:
			if top != nil && top.object {
				top.key = true
			}
		}
	}
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

// statement is one statement of an IAM or RAM policy, any shape the
// clouds accept.
type statement struct {
	Effect       string                    `json:"Effect"`
	Principal    any                       `json:"Principal"`
	NotPrincipal any                       `json:"NotPrincipal"`
	Action       any                       `json:"Action"`
	NotAction    any                       `json:"NotAction"`
	Condition    map[string]map[string]any `json:"Condition"`
}

// principals reads a Principal: "*", or a map of kinds to a value or a
// list of values.
func principals(p any) map[string][]string {
	switch x := p.(type) {
	case string:
		return map[string][]string{"*": {x}}
	case map[string]any:
		out := map[string][]string{}
		for k, v := range x {
			out[k] = stringsOf(v)
		}
		return out
	}
	return nil
}

// statements reads a policy's Statement: a list, or one statement.
func statements(data []byte) ([]statement, error) {
	var doc struct {
		Statement json.RawMessage `json:"Statement"`
	}
	if err := json.Unmarshal(data, &doc); err != nil {
		return nil, fmt.Errorf("not an IAM policy document: %w", err)
	}
	raw := bytes.TrimSpace(doc.Statement)
	if len(raw) == 0 || string(raw) == "null" {
		return nil, errors.New("not an IAM policy document: no Statement")
	}
	if raw[0] == '{' {
		raw = append(append([]byte{'['}, raw...), ']')
	}
	var list []*statement
	if err := json.Unmarshal(raw, &list); err != nil {
		return nil, fmt.Errorf("not an IAM policy document: Statement: %w", err)
	}
	out := make([]statement, len(list))
	for i, st := range list {
		if st == nil {
			return nil, fmt.Errorf("not an IAM policy document: Statement[%d] is not an object", i)
		}
		out[i] = *st
	}
	return out, nil
}

func checkPolicy(data []byte, issuer string) (*Report, error) {
	list, err := statements(data)
	if err != nil {
		return nil, err
	}
	r := &Report{Kind: "IAM role trust policy", Provider: "aws", Field: "roleARNs"}
	hp := hostPath(issuer)
	for i, st := range list {
		at := func(format string, args ...any) {
			r.Findings = append(r.Findings, Finding{Statement: i, Message: fmt.Sprintf("Statement[%d]: ", i) + fmt.Sprintf(format, args...)})
		}
		if st.Effect != "Allow" {
			continue
		}
		if st.NotPrincipal != nil || st.NotAction != nil {
			at("uses NotPrincipal or NotAction: it admits whatever it does not exclude, which no list of ServiceAccounts describes")
			continue
		}
		ps := principals(st.Principal)
		feds, services := ps["Federated"], ps["Service"]
		var others []string
		for kind, values := range ps {
			for _, v := range values {
				if v == "*" || (kind != "Federated" && kind != "Service") {
					others = append(others, kind+" "+v)
				}
			}
		}
		slices.Sort(others)
		switch {
		case len(others) > 0:
			at("admits principals other than this cluster's ServiceAccounts (%s)", quote.Value(strings.Join(others, ", ")))
		case slices.ContainsFunc(feds, func(f string) bool { return strings.HasPrefix(f, "acs:ram:") }) && hasAction(st.Action, "sts:AssumeRole"):
			r.Kind, r.Provider, r.Field = "RAM role trust policy", "alibaba", "identities"
			iss, _ := condition(st.Condition, "oidc:iss")
			switch {
			case len(iss) == 0:
				at("has no condition on oidc:iss: tokens of any issuer the OIDC provider trusts are accepted")
			case !slices.Contains(iss, issuer):
				at("trusts the issuer %s, not this cluster's issuer %s%s", quote.Value(strings.Join(iss, ", ")), issuer, slashNote(iss, issuer))
				continue
			case len(iss) > 1:
				at("also trusts the issuer(s) %s besides this cluster's: their ServiceAccounts of the same names are admitted too", quote.Value(strings.Join(slices.DeleteFunc(slices.Clone(iss), func(s string) bool { return s == issuer }), ", ")))
			}
			r.checkSubjects(st.Condition, "oidc:sub", at)
			keyTwice(st.Condition, "oidc:aud", at)
			if aud, op := condition(st.Condition, "oidc:aud"); len(aud) == 0 {
				at("has no condition on oidc:aud: a token of any audience (one the pod projects for another service) is accepted")
			} else {
				checkAudiences(aud, op, issuer, at)
			}
		case len(feds) > 0 && hasAction(st.Action, "sts:AssumeRoleWithWebIdentity"):
			if len(feds) > 1 {
				at("trusts several identity providers (%s): tokens of each are accepted", quote.Value(strings.Join(feds, ", ")))
			}
			if !strings.HasSuffix(feds[0], ":oidc-provider/"+hp) {
				at("trusts web identities of %s, not of this cluster's issuer %s", quote.Value(feds[0]), hp)
				continue
			}
			r.checkSubjects(st.Condition, hp+":sub", at)
			keyTwice(st.Condition, hp+":aud", at)
			if aud, op := condition(st.Condition, hp+":aud"); len(aud) == 0 {
				at("has no condition on %s:aud: a token of any audience (one the pod projects for another service) is accepted", hp)
			} else {
				checkAudiences(aud, op, issuer, at)
			}
		case slices.Contains(services, PodIdentityService) && hasAction(st.Action, "sts:AssumeRole"):
			r.Kind = "IAM role trust policy (EKS Pod Identity)"
			if len(services) > 1 {
				at("also trusts the service(s) %s", quote.Value(strings.Join(slices.DeleteFunc(slices.Clone(services), func(s string) bool { return s == PodIdentityService }), ", ")))
			}
			ns, _ := condition(st.Condition, tagNamespace)
			names, _ := condition(st.Condition, tagServiceAccount)
			if len(ns) == 0 || len(names) == 0 || hasWildcard(ns) || hasWildcard(names) {
				at("does not pin the namespace and ServiceAccount (conditions on %s and %s): any EKS Pod Identity association in the account may assume the role", tagNamespace, tagServiceAccount)
				continue
			}
			clusters, _ := condition(st.Condition, tagClusterARN)
			sources, _ := condition(st.Condition, "aws:SourceArn")
			if (len(clusters) == 0 && len(sources) == 0) || hasWildcard(clusters) || hasWildcard(sources) {
				at("does not pin the cluster (a condition on %s or aws:SourceArn with no wildcard): the same namespace and ServiceAccount of any cluster in the account may assume the role", tagClusterARN)
			}
			for _, n := range ns {
				for _, s := range names {
					r.subject(Subject(n, s), at)
				}
			}
		case len(feds) > 0 || len(services) > 0:
			at("trusts %s for actions %s, which this command does not read as a ServiceAccount's: check it by hand", quote.Value(strings.Join(append(feds, services...), ", ")), quote.Value(strings.Join(stringsOf(st.Action), ", ")))
		default:
			at("is a statement this command cannot read (no Principal it knows)")
		}
	}
	return r, nil
}

// kubernetesAPIAudiences are the audiences API servers accept by default
// (--api-audiences unset: the issuer's, and these in most distributions):
// a cloud that trusts one accepts every pod's Kubernetes API token.
var kubernetesAPIAudiences = []string{"https://kubernetes.default.svc", "https://kubernetes.default.svc.cluster.local", "kubernetes.default.svc"}

// looseAudience is an audience as clouds compare it: case, scheme and
// trailing slashes aside.
func looseAudience(a string) string {
	a = strings.ToLower(strings.TrimSpace(a))
	for _, p := range []string{"https://", "http://", "//"} {
		a = strings.TrimPrefix(a, p)
	}
	return strings.TrimRight(a, "/")
}

// checkAudiences reports audiences that admit more than the cloud's own
// tokens: a wildcard, the issuer itself or an API server's audience.
func checkAudiences(values []string, op, issuer string, at func(string, ...any)) {
	for _, a := range values {
		switch {
		case op == "StringLike" && strings.ContainsAny(a, "*?"):
			at("admits the audiences %s (%s): tokens a pod projects for other services, or its API token, too", quote.Value(a), op)
		case looseAudience(a) == looseAudience(issuer) || slices.ContainsFunc(kubernetesAPIAudiences, func(k string) bool { return looseAudience(k) == looseAudience(a) }):
			at("admits the audience %s, which the Kubernetes API server accepts: every pod's API token of the ServiceAccount is accepted too", quote.Value(a))
		}
	}
}

// keyTwice reports a condition key given twice in different case under
// one operator: IAM reads condition keys without regard to case.
func keyTwice(c map[string]map[string]any, key string, at func(string, ...any)) {
	for op, conds := range c {
		n := 0
		for k := range conds {
			if strings.EqualFold(k, key) {
				n++
			}
		}
		if n > 1 {
			at("gives the condition key %s %d times in different case under %s: IAM reads keys without regard to case, and this command cannot say which copy admits what", key, n, op)
		}
	}
}

// checkSubjects records the subject condition's values: exact ones as
// subjects, a wildcard, an operator this command does not read or a
// missing condition as a finding.
func (r *Report) checkSubjects(c map[string]map[string]any, key string, at func(string, ...any)) {
	keyTwice(c, key, at)
	for op, conds := range c {
		for k := range conds {
			if strings.EqualFold(k, key) && !slices.Contains(knownOperators, op) {
				at("has a condition on %s with operator %s, which this command does not read: it may admit other ServiceAccounts", key, op)
			}
		}
	}
	values, op := condition(c, key)
	if len(values) == 0 {
		at("has no condition on %s: any ServiceAccount of the cluster, and any pod that projects its own token, may assume the role", key)
		return
	}
	for _, s := range values {
		if op != "StringEquals" && strings.ContainsAny(s, "*?") {
			at("admits the subjects %s (%s): every ServiceAccount they match, not one", quote.Value(s), op)
			continue
		}
		r.subject(s, at)
	}
}

// subject records one exact subject, or a finding when it is not one
// ServiceAccount's (a policy variable such as ${...}, an empty value).
func (r *Report) subject(s string, at func(string, ...any)) {
	if !serviceAccountSubject.MatchString(s) {
		at("admits the subject %s, which is not one ServiceAccount's (system:serviceaccount:<namespace>:<name>)", quote.Value(s))
		return
	}
	r.Subjects = append(r.Subjects, s)
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

// hasAction says whether an Action element allows want, as IAM matches
// actions: without regard to case, * and ? as wildcards.
func hasAction(action any, want string) bool {
	return slices.ContainsFunc(stringsOf(action), func(a string) bool { return glob(strings.ToLower(a), strings.ToLower(want)) })
}

// glob matches s against pattern, * matching any run and ? one character,
// in time proportional to their product (greedy with one backtrack point).
func glob(pattern, s string) bool {
	p, i, star, mark := 0, 0, -1, 0
	for i < len(s) {
		switch {
		case p < len(pattern) && (pattern[p] == '?' || pattern[p] == s[i]):
			p++
			i++
		case p < len(pattern) && pattern[p] == '*':
			star, mark = p, i
			p++
		case star >= 0:
			p = star + 1
			mark++
			i = mark
		default:
			return false
		}
	}
	for p < len(pattern) && pattern[p] == '*' {
		p++
	}
	return p == len(pattern)
}

// knownOperators are the condition operators condition reads.
var knownOperators = []string{"StringEquals", "StringLike", "ForAnyValue:StringEquals", "ForAnyValue:StringLike"}

// condition returns the values of key (matched without regard to case,
// as IAM matches condition keys) under StringEquals or StringLike (and
// their ForAnyValue forms), and the operator.
func condition(c map[string]map[string]any, key string) ([]string, string) {
	for _, op := range knownOperators {
		for k, v := range c[op] {
			if strings.EqualFold(k, key) {
				return stringsOf(v), strings.TrimPrefix(op, "ForAnyValue:")
			}
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
		checkAudiences(c.Audiences, "StringEquals", issuer, at)
	}
	return r, nil
}

// ConditionSubjects returns the subjects a pool provider's attribute
// condition admits when it only lists subjects, as `injector trust`
// writes it: terms joined by ||, each assertion.sub (or google.subject)
// == "x", or in ["x", "y"], in single or double quotes, in parentheses or
// not. ok is false for anything else, which may admit more.
func ConditionSubjects(cond string) (subjects []string, ok bool) {
	toks, ok := celTokens(cond)
	if !ok {
		return nil, false
	}
	for len(toks) > 0 {
		depth := 0
		for len(toks) > 0 && toks[0] == "(" {
			toks, depth = toks[1:], depth+1
		}
		if len(toks) < 3 || (toks[0] != "assertion.sub" && toks[0] != "google.subject") {
			return nil, false
		}
		switch toks[1] {
		case "==":
			if !isQuoted(toks[2]) {
				return nil, false
			}
			subjects, toks = append(subjects, unquoteCEL(toks[2])), toks[3:]
		case "in":
			if toks[2] != "[" {
				return nil, false
			}
			toks = toks[3:]
			for {
				if len(toks) < 2 || !isQuoted(toks[0]) {
					return nil, false
				}
				subjects = append(subjects, unquoteCEL(toks[0]))
				sep := toks[1]
				toks = toks[2:]
				if sep == "]" {
					break
				}
				if sep != "," {
					return nil, false
				}
			}
		default:
			return nil, false
		}
		for ; depth > 0; depth-- {
			if len(toks) == 0 || toks[0] != ")" {
				return nil, false
			}
			toks = toks[1:]
		}
		if len(toks) == 0 {
			break
		}
		if toks[0] != "||" || len(toks) == 1 {
			return nil, false
		}
		toks = toks[1:]
	}
	return subjects, len(subjects) > 0
}

// celTokens splits the few CEL forms ConditionSubjects reads into tokens:
// quoted strings (no escapes), identifiers with dots, == || ( ) [ ] ,.
func celTokens(s string) ([]string, bool) {
	var out []string
	for i := 0; i < len(s); {
		c := s[i]
		switch {
		case c == ' ' || c == '\t' || c == '\n' || c == '\r':
			i++
		case c == '"' || c == '\'':
			end := strings.IndexByte(s[i+1:], c)
			if end < 0 || strings.ContainsRune(s[i+1:i+1+end], '\\') {
				return nil, false
			}
			out = append(out, s[i:i+end+2])
			i += end + 2
		case strings.HasPrefix(s[i:], "==") || strings.HasPrefix(s[i:], "||"):
			out = append(out, s[i:i+2])
			i += 2
		case strings.ContainsRune("()[],", rune(c)):
			out = append(out, string(c))
			i++
		case c == '_' || c == '.' || (c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z') || (c >= '0' && c <= '9'):
			j := i
			for j < len(s) && (s[j] == '_' || s[j] == '.' || (s[j] >= 'a' && s[j] <= 'z') || (s[j] >= 'A' && s[j] <= 'Z') || (s[j] >= '0' && s[j] <= '9')) {
				j++
			}
			out = append(out, s[i:j])
			i = j
		default:
			return nil, false
		}
	}
	return out, true
}

func isQuoted(tok string) bool {
	return len(tok) >= 2 && (tok[0] == '"' || tok[0] == '\'') && tok[len(tok)-1] == tok[0]
}

func unquoteCEL(tok string) string { return tok[1 : len(tok)-1] }

func checkPoolProvider(data []byte, issuer string) (*Report, error) {
	var p PoolProvider
	if err := json.Unmarshal(data, &p); err != nil {
		return nil, fmt.Errorf("not a Google workload identity pool provider: %w", err)
	}
	if p.OIDC.IssuerURI == "" {
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
	checkAudiences(p.OIDC.AllowedAudiences, "StringEquals", issuer, at)
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

// impersonationRoles are the Google roles that let a member act as the
// service account they are granted on.
var impersonationRoles = []string{"roles/iam.workloadIdentityUser", "roles/iam.serviceAccountTokenCreator", "roles/iam.serviceAccountOpenIdTokenCreator"}

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
	pools := map[string]bool{}
	for i, b := range p.Bindings {
		at := func(format string, args ...any) {
			r.Findings = append(r.Findings, Finding{Statement: i, Message: fmt.Sprintf("bindings[%d] (%s): ", i, b.Role) + fmt.Sprintf(format, args...)})
		}
		impersonates := slices.Contains(impersonationRoles, b.Role)
		for _, m := range b.Members {
			sub, isPrincipal := strings.CutPrefix(m, "principal://iam.googleapis.com/")
			if isPrincipal && strings.Contains(sub, "/workloadIdentityPools/") && strings.Contains(sub, "/subject/") {
				pools[sub[:strings.Index(sub, "/subject/")]] = true
				sub = sub[strings.Index(sub, "/subject/")+len("/subject/"):]
				if !serviceAccountSubject.MatchString(sub) {
					at("member %s is not one ServiceAccount's subject", quote.Value(m))
					continue
				}
				r.Subjects = append(r.Subjects, sub)
				continue
			}
			switch {
			case strings.HasPrefix(m, "principalSet://"):
				at("member %s grants every identity of the set it names, not one ServiceAccount", quote.Value(m))
			case m == "allUsers" || m == "allAuthenticatedUsers":
				at("member %s grants the role to anyone", m)
			case impersonates:
				at("member %s may also act as the service account", quote.Value(m))
			default:
				// Any role on a service account lets its holder use it or
				// change who may (a custom role, serviceAccountAdmin).
				at("member %s holds a role on the service account beside its ServiceAccounts: check that it cannot act as it or grant itself that", quote.Value(m))
			}
		}
	}
	if len(pools) > 1 {
		r.Findings = append(r.Findings, Finding{Message: fmt.Sprintf("grants principals of several workload identity pools (%s): only one is this cluster's, and the same subject names another cluster's ServiceAccount in each", quote.Value(strings.Join(slices.Sorted(maps.Keys(pools)), ", ")))})
	}
	return r, nil
}
