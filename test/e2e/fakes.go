package e2e

import (
	"context"
	"crypto"
	"crypto/rsa"
	"crypto/sha256"
	"crypto/tls"
	"crypto/x509"
	"encoding/base64"
	"encoding/json"
	"encoding/xml"
	"errors"
	"fmt"
	"math/big"
	"net"
	"net/http"
	"net/http/httptest"
	"path"
	"slices"
	"strings"
	"sync"
	"time"

	"k8s.io/client-go/kubernetes"
)

// Verifier checks ServiceAccount tokens the way a cloud does: the signature
// against the cluster's published keys, the issuer from its discovery
// document, the audience, the expiry; it returns the subject.
type Verifier struct {
	issuer string
	keys   map[string]*rsa.PublicKey
}

// NewVerifier reads the cluster's OpenID discovery document and JWKS.
func NewVerifier(ctx context.Context, client kubernetes.Interface) (*Verifier, error) {
	rc := client.CoreV1().RESTClient()
	disc, err := rc.Get().AbsPath("/.well-known/openid-configuration").DoRaw(ctx)
	if err != nil {
		return nil, fmt.Errorf("openid discovery: %w", err)
	}
	var d struct {
		Issuer  string `json:"issuer"`
		JWKSURI string `json:"jwks_uri"`
	}
	if err := json.Unmarshal(disc, &d); err != nil {
		return nil, err
	}
	raw, err := rc.Get().AbsPath("/openid/v1/jwks").DoRaw(ctx)
	if err != nil {
		return nil, fmt.Errorf("jwks: %w", err)
	}
	var set struct {
		Keys []struct {
			Kty, Kid, Alg, N, E string
		} `json:"keys"`
	}
	if err := json.Unmarshal(raw, &set); err != nil {
		return nil, err
	}
	v := &Verifier{issuer: d.Issuer, keys: map[string]*rsa.PublicKey{}}
	for _, k := range set.Keys {
		if k.Kty != "RSA" {
			continue
		}
		n, err1 := base64.RawURLEncoding.DecodeString(k.N)
		e, err2 := base64.RawURLEncoding.DecodeString(k.E)
		if err := errors.Join(err1, err2); err != nil {
			return nil, err
		}
		v.keys[k.Kid] = &rsa.PublicKey{N: new(big.Int).SetBytes(n), E: int(new(big.Int).SetBytes(e).Int64())}
	}
	if len(v.keys) == 0 || v.issuer == "" {
		return nil, errors.New("the cluster publishes no RSA keys or no issuer")
	}
	return v, nil
}

// Claims are the checked claims of a token.
type Claims struct {
	Issuer   string   `json:"iss"`
	Subject  string   `json:"sub"`
	Audience audience `json:"aud"`
	Expiry   int64    `json:"exp"`
	NotAfter int64    `json:"nbf"`
	IssuedAt int64    `json:"iat"`
	// raw holds every claim, for Get.
	raw map[string]any
}

// Get returns a string claim, "" when it is absent or not a string.
func (c *Claims) Get(name string) string {
	s, _ := c.raw[name].(string)
	return s
}

type audience []string

func (a *audience) UnmarshalJSON(b []byte) error {
	var one string
	if json.Unmarshal(b, &one) == nil {
		*a = []string{one}
		return nil
	}
	var many []string
	err := json.Unmarshal(b, &many)
	*a = many
	return err
}

// Verify checks token for audience and returns its claims.
func (v *Verifier) Verify(token, aud string) (*Claims, error) {
	c, err := v.VerifyAnyAudience(token)
	if err != nil {
		return nil, err
	}
	if !slices.Contains(c.Audience, aud) {
		return nil, fmt.Errorf("audience %v does not include %q", c.Audience, aud)
	}
	return c, nil
}

// VerifyAnyAudience checks token's signature, issuer and lifetime, and
// leaves its audience to the caller.
func (v *Verifier) VerifyAnyAudience(token string) (*Claims, error) {
	parts := strings.Split(token, ".")
	if len(parts) != 3 {
		return nil, errors.New("not a JWT")
	}
	hb, err := base64.RawURLEncoding.DecodeString(parts[0])
	if err != nil {
		return nil, errors.New("bad header encoding")
	}
	var h struct{ Alg, Kid string }
	if err := json.Unmarshal(hb, &h); err != nil {
		return nil, errors.New("bad header")
	}
	key, ok := v.keys[h.Kid]
	if !ok || h.Alg != "RS256" {
		return nil, fmt.Errorf("unknown key %q or algorithm %q", h.Kid, h.Alg)
	}
	sig, err := base64.RawURLEncoding.DecodeString(parts[2])
	if err != nil {
		return nil, errors.New("bad signature encoding")
	}
	sum := sha256.Sum256([]byte(parts[0] + "." + parts[1]))
	if err := rsa.VerifyPKCS1v15(key, crypto.SHA256, sum[:], sig); err != nil {
		return nil, errors.New("signature does not verify against the cluster's JWKS")
	}
	cb, err := base64.RawURLEncoding.DecodeString(parts[1])
	if err != nil {
		return nil, errors.New("bad claims encoding")
	}
	var c Claims
	if err := errors.Join(json.Unmarshal(cb, &c), json.Unmarshal(cb, &c.raw)); err != nil {
		return nil, errors.New("bad claims")
	}
	now := time.Now().Unix()
	switch {
	case c.Issuer != v.issuer:
		return nil, fmt.Errorf("issuer %q is not %q", c.Issuer, v.issuer)
	case c.Expiry <= now:
		return nil, errors.New("token expired")
	case c.NotAfter > now+60:
		return nil, errors.New("token not valid yet")
	}
	return &c, nil
}

// Subject is the token subject of a ServiceAccount.
func Subject(namespace, name string) string {
	return "system:serviceaccount:" + namespace + ":" + name
}

// FakeSTS is AWS STS's AssumeRoleWithWebIdentity: a role may be assumed by
// the ServiceAccount its trust policy names, with the audience sts.amazonaws.com.
type FakeSTS struct {
	URL      string
	verifier *Verifier
	mu       sync.Mutex
	trust    map[string]string // role ARN -> subject
	sessions map[string]string // access key handed out -> RoleSessionName asked for
	// policies are roles' trust policies, evaluated as IAM does; a role
	// with one is judged by it instead of trust.
	policies map[string]iamPolicy
}

// iamPolicy is the part of an IAM trust policy the fake evaluates.
type iamPolicy struct {
	Statement []struct {
		Effect    string
		Principal map[string]any
		Action    any
		Condition map[string]map[string]any
	}
}

// TrustPolicy makes role trust what the IAM trust policy doc (JSON) says.
func (f *FakeSTS) TrustPolicy(role string, doc []byte) error {
	var p iamPolicy
	if err := json.Unmarshal(doc, &p); err != nil {
		return fmt.Errorf("trust policy of %s: %w", role, err)
	}
	f.mu.Lock()
	defer f.mu.Unlock()
	if f.policies == nil {
		f.policies = map[string]iamPolicy{}
	}
	f.policies[role] = p
	return nil
}

// allows evaluates the policy as IAM does for AssumeRoleWithWebIdentity:
// some Allow statement for the action whose Federated principal is the
// token issuer's OIDC provider, and every condition of it met by the
// token's claims (StringEquals exactly, StringLike with * and ?). A
// condition on a key the fake does not know fails, as a missing context
// key does in IAM.
func (p iamPolicy) allows(c *Claims, aud string) bool {
	hp := strings.TrimSuffix(strings.TrimPrefix(c.Issuer, "https://"), "/")
	values := map[string]string{hp + ":sub": c.Subject, hp + ":aud": aud}
	for _, st := range p.Statement {
		fed, _ := st.Principal["Federated"].(string)
		if st.Effect != "Allow" || !strings.HasSuffix(fed, ":oidc-provider/"+hp) || !actionAllows(st.Action, "sts:AssumeRoleWithWebIdentity") {
			continue
		}
		ok := true
		for op, conds := range st.Condition {
			for key, want := range conds {
				have, known := values[key]
				ok = ok && known && conditionHolds(op, have, want)
			}
		}
		if ok {
			return true
		}
	}
	return false
}

func actionAllows(action any, want string) bool {
	switch a := action.(type) {
	case string:
		return a == want
	case []any:
		for _, x := range a {
			if s, _ := x.(string); s == want {
				return true
			}
		}
	}
	return false
}

func conditionHolds(op, have string, want any) bool {
	var wants []string
	switch w := want.(type) {
	case string:
		wants = []string{w}
	case []any:
		for _, x := range w {
			if s, ok := x.(string); ok {
				wants = append(wants, s)
			}
		}
	}
	for _, w := range wants {
		switch op {
		case "StringEquals":
			if have == w {
				return true
			}
		case "StringLike":
			if ok, _ := path.Match(w, have); ok {
				return true
			}
		}
	}
	return false
}

// SessionName is the RoleSessionName of the request that got accessKey.
func (f *FakeSTS) SessionName(accessKey string) string {
	f.mu.Lock()
	defer f.mu.Unlock()
	return f.sessions[accessKey]
}

// Trust lets subject assume role.
func (f *FakeSTS) Trust(role, subject string) {
	f.mu.Lock()
	defer f.mu.Unlock()
	f.trust[role] = subject
}

// AccessKeyFor is the access key the fake issues to a subject for a role.
func AccessKeyFor(role, subject string) string {
	sum := sha256.Sum256([]byte(role + "|" + subject))
	return "ASIA" + strings.ToUpper(fmt.Sprintf("%x", sum[:8]))
}

func (f *FakeSTS) ServeHTTP(w http.ResponseWriter, r *http.Request) {
	if err := r.ParseForm(); err != nil || r.PostForm.Get("Action") != "AssumeRoleWithWebIdentity" {
		stsError(w, "InvalidAction", "expected AssumeRoleWithWebIdentity")
		return
	}
	role, token := r.PostForm.Get("RoleArn"), r.PostForm.Get("WebIdentityToken")
	claims, err := f.verifier.Verify(token, "sts.amazonaws.com")
	if err != nil {
		stsError(w, "InvalidIdentityToken", err.Error())
		return
	}
	f.mu.Lock()
	allowed, ok := f.trust[role]
	policy, hasPolicy := f.policies[role]
	f.mu.Unlock()
	if hasPolicy {
		allowed, ok = claims.Subject, policy.allows(claims, "sts.amazonaws.com")
	}
	if !ok || allowed != claims.Subject {
		stsError(w, "AccessDenied", fmt.Sprintf("Not authorized to perform sts:AssumeRoleWithWebIdentity: %s may not assume %s", claims.Subject, role))
		return
	}
	type creds struct {
		AccessKeyID     string `xml:"AccessKeyId"`
		SecretAccessKey string `xml:"SecretAccessKey"`
		SessionToken    string `xml:"SessionToken"`
		Expiration      string `xml:"Expiration"`
	}
	var resp struct {
		XMLName xml.Name `xml:"https://sts.amazonaws.com/doc/2011-06-15/ AssumeRoleWithWebIdentityResponse"`
		Result  struct {
			Credentials     creds  `xml:"Credentials"`
			SubjectFromWIT  string `xml:"SubjectFromWebIdentityToken"`
			AssumedRoleUser struct {
				Arn           string `xml:"Arn"`
				AssumedRoleID string `xml:"AssumedRoleId"`
			} `xml:"AssumedRoleUser"`
			Audience string `xml:"Audience"`
		} `xml:"AssumeRoleWithWebIdentityResult"`
		RequestID string `xml:"ResponseMetadata>RequestId"`
	}
	f.mu.Lock()
	if f.sessions == nil {
		f.sessions = map[string]string{}
	}
	f.sessions[AccessKeyFor(role, claims.Subject)] = r.PostForm.Get("RoleSessionName")
	f.mu.Unlock()
	resp.Result.Credentials = creds{AccessKeyID: AccessKeyFor(role, claims.Subject), SecretAccessKey: "secret-" + randomHex(8),
		SessionToken: "session-" + randomHex(16), Expiration: time.Now().Add(time.Hour).UTC().Format(time.RFC3339)}
	resp.Result.SubjectFromWIT = claims.Subject
	resp.Result.AssumedRoleUser.Arn = role + "/" + r.PostForm.Get("RoleSessionName")
	resp.Result.AssumedRoleUser.AssumedRoleID = "AROA" + randomHex(6)
	resp.Result.Audience = "sts.amazonaws.com"
	resp.RequestID = randomHex(8)
	w.Header().Set("Content-Type", "text/xml")
	_ = xml.NewEncoder(w).Encode(resp)
}

func stsError(w http.ResponseWriter, code, msg string) {
	w.Header().Set("Content-Type", "text/xml")
	w.WriteHeader(http.StatusBadRequest)
	_, _ = fmt.Fprintf(w, `<ErrorResponse xmlns="https://sts.amazonaws.com/doc/2011-06-15/"><Error><Type>Sender</Type><Code>%s</Code><Message>%s</Message></Error><RequestId>%s</RequestId></ErrorResponse>`,
		code, xmlEscape(msg), randomHex(8))
}

func xmlEscape(s string) string {
	var b strings.Builder
	_ = xml.EscapeText(&b, []byte(s))
	return b.String()
}

// FakeEntra is Microsoft Entra ID's token endpoint for a federated client
// assertion: an application (client ID) in a tenant trusts one subject.
type FakeEntra struct {
	Server   *httptest.Server
	verifier *Verifier
	mu       sync.Mutex
	trust    map[string]string // tenant/client -> subject
	// credentials are applications' federated identity credentials,
	// matched as Entra matches them (issuer, subject and an audience,
	// exactly); an application with any is judged by them instead of trust.
	credentials map[string][]federatedCredential // client ID -> credentials
}

// federatedCredential is what the fake reads of an Entra federated
// identity credential.
type federatedCredential struct {
	Issuer    string   `json:"issuer"`
	Subject   string   `json:"subject"`
	Audiences []string `json:"audiences"`
}

// AddCredential adds a federated identity credential (JSON, as the Graph
// API takes it) to the application clientID.
func (f *FakeEntra) AddCredential(clientID string, doc []byte) error {
	var c federatedCredential
	if err := json.Unmarshal(doc, &c); err != nil || c.Issuer == "" || c.Subject == "" || len(c.Audiences) == 0 {
		return fmt.Errorf("federated credential of %s: issuer, subject and audiences are required: %v", clientID, err)
	}
	f.mu.Lock()
	defer f.mu.Unlock()
	if f.credentials == nil {
		f.credentials = map[string][]federatedCredential{}
	}
	f.credentials[clientID] = append(f.credentials[clientID], c)
	return nil
}

// matches says whether one of the application's credentials admits the
// token's claims: the same issuer and subject, byte for byte, and one of
// its audiences among the token's.
func matches(creds []federatedCredential, c *Claims) bool {
	for _, cr := range creds {
		if cr.Issuer != c.Issuer || cr.Subject != c.Subject {
			continue
		}
		for _, a := range cr.Audiences {
			if slices.Contains(c.Audience, a) {
				return true
			}
		}
	}
	return false
}

// Trust lets subject get tokens for the application clientID of tenant.
func (f *FakeEntra) Trust(tenant, clientID, subject string) {
	f.mu.Lock()
	defer f.mu.Unlock()
	f.trust[tenant+"/"+clientID] = subject
}

// AccessTokenFor is the access token the fake issues.
func AccessTokenFor(tenant, clientID, subject string) string {
	sum := sha256.Sum256([]byte(tenant + "|" + clientID + "|" + subject))
	return "entra-" + fmt.Sprintf("%x", sum[:12])
}

func (f *FakeEntra) ServeHTTP(w http.ResponseWriter, r *http.Request) {
	base := f.Server.URL
	parts := strings.Split(strings.Trim(r.URL.Path, "/"), "/")
	switch {
	case r.Method == http.MethodGet && len(parts) >= 3 && parts[1] == "discovery" && parts[2] == "instance":
		// The tenant is the first path element of the authorization endpoint asked about.
		tenant := "common"
		if ae := r.URL.Query().Get("authorization_endpoint"); ae != "" {
			if rest, ok := strings.CutPrefix(ae, base+"/"); ok {
				tenant, _, _ = strings.Cut(rest, "/")
			}
		}
		writeJSON(w, http.StatusOK, map[string]any{
			"tenant_discovery_endpoint": base + "/" + tenant + "/v2.0/.well-known/openid-configuration",
			"api-version":               "1.1",
			"metadata":                  []map[string]any{{"preferred_network": strings.TrimPrefix(base, "https://"), "preferred_cache": strings.TrimPrefix(base, "https://"), "aliases": []string{strings.TrimPrefix(base, "https://")}}},
		})
	case r.Method == http.MethodGet && strings.HasSuffix(r.URL.Path, "/v2.0/.well-known/openid-configuration"):
		tenant := parts[0]
		writeJSON(w, http.StatusOK, map[string]any{
			"token_endpoint":         base + "/" + tenant + "/oauth2/v2.0/token",
			"authorization_endpoint": base + "/" + tenant + "/oauth2/v2.0/authorize",
			"issuer":                 base + "/" + tenant + "/v2.0",
			"jwks_uri":               base + "/" + tenant + "/discovery/v2.0/keys",
		})
	case r.Method == http.MethodPost && strings.HasSuffix(r.URL.Path, "/oauth2/v2.0/token"):
		tenant := parts[0]
		if err := r.ParseForm(); err != nil {
			oauthError(w, "invalid_request", err.Error())
			return
		}
		if r.PostForm.Get("client_assertion_type") != "urn:ietf:params:oauth:client-assertion-type:jwt-bearer" {
			oauthError(w, "invalid_request", "expected a jwt-bearer client assertion")
			return
		}
		clientID := r.PostForm.Get("client_id")
		claims, err := f.verifier.Verify(r.PostForm.Get("client_assertion"), "api://AzureADTokenExchange")
		if err != nil {
			oauthError(w, "invalid_client", "AADSTS700211: "+err.Error())
			return
		}
		f.mu.Lock()
		allowed, ok := f.trust[tenant+"/"+clientID]
		creds, hasCreds := f.credentials[clientID]
		f.mu.Unlock()
		if hasCreds {
			allowed, ok = claims.Subject, matches(creds, claims)
		}
		if !ok || allowed != claims.Subject {
			oauthError(w, "invalid_client", fmt.Sprintf("AADSTS70021: No matching federated identity record found for presented assertion subject %q", claims.Subject))
			return
		}
		writeJSON(w, http.StatusOK, map[string]any{"token_type": "Bearer", "expires_in": 3600, "ext_expires_in": 3600,
			"access_token": AccessTokenFor(tenant, clientID, claims.Subject)})
	default:
		http.NotFound(w, r)
	}
}

func oauthError(w http.ResponseWriter, code, desc string) {
	writeJSON(w, http.StatusBadRequest, map[string]any{"error": code, "error_description": desc})
}

func writeJSON(w http.ResponseWriter, status int, v any) {
	w.Header().Set("Content-Type", "application/json")
	w.WriteHeader(status)
	_ = json.NewEncoder(w).Encode(v)
}

// FakeGoogle is Google's Security Token Service and IAM Credentials:
// a workload identity provider accepts the cluster's tokens for its own
// audience, and a Google service account lets one subject impersonate it.
type FakeGoogle struct {
	URL      string
	verifier *Verifier
	mu       sync.Mutex
	// impersonators maps a service account email to the subject allowed to impersonate it.
	impersonators map[string]string
	// federated maps an issued federated token to its subject, or to its
	// principal when a provider set by SetProvider issued it.
	federated map[string]string
	// providers are the pool providers set by SetProvider, by resource
	// name; bindings the workloadIdentityUser members by email.
	providers map[string]googleProvider
	bindings  map[string][]string
}

// googleProvider is a workload identity pool provider, as Google evaluates
// it.
type googleProvider struct {
	issuer, condition string
	audiences         []string
}

// SetProvider configures a pool provider from its description (what
// gcloud ... providers describe prints), which the exchange then
// evaluates as Google does: the token's issuer, an allowed audience (the
// provider's own resource name when none is listed), and the attribute
// condition over the mapped attributes.
func (f *FakeGoogle) SetProvider(doc []byte) error {
	var p struct {
		Name string `json:"name"`
		OIDC struct {
			IssuerURI        string   `json:"issuerUri"`
			AllowedAudiences []string `json:"allowedAudiences"`
		} `json:"oidc"`
		AttributeMapping   map[string]string `json:"attributeMapping"`
		AttributeCondition string            `json:"attributeCondition"`
	}
	if err := json.Unmarshal(doc, &p); err != nil {
		return err
	}
	if p.Name == "" || p.OIDC.IssuerURI == "" || p.AttributeMapping["google.subject"] != "assertion.sub" {
		return fmt.Errorf("pool provider %s: this fake maps google.subject from assertion.sub only", doc)
	}
	if _, err := evalCondition(p.AttributeCondition, ""); err != nil {
		return err
	}
	f.mu.Lock()
	defer f.mu.Unlock()
	f.providers[p.Name] = googleProvider{issuer: p.OIDC.IssuerURI, condition: p.AttributeCondition, audiences: p.OIDC.AllowedAudiences}
	return nil
}

// AddBinding adds an IAM binding on a Google service account
// ({resource, role, member}); only roles/iam.workloadIdentityUser lets the
// member impersonate it.
func (f *FakeGoogle) AddBinding(doc []byte) error {
	var b struct{ Resource, Role, Member string }
	if err := json.Unmarshal(doc, &b); err != nil {
		return err
	}
	if b.Role != "roles/iam.workloadIdentityUser" {
		return fmt.Errorf("binding %s: not roles/iam.workloadIdentityUser", doc)
	}
	f.mu.Lock()
	defer f.mu.Unlock()
	f.bindings[b.Resource] = append(f.bindings[b.Resource], b.Member)
	return nil
}

// evalCondition evaluates the CEL conditions this fake knows, as Google
// would: terms joined by ||, each assertion.sub == 'x' or assertion.sub
// in ['x', 'y'] (either quote). An empty condition admits everything.
func evalCondition(cond, sub string) (bool, error) {
	if strings.TrimSpace(cond) == "" {
		return true, nil
	}
	unquote := func(s string) (string, bool) {
		s = strings.TrimSpace(s)
		if len(s) >= 2 && (s[0] == '\'' || s[0] == '"') && s[len(s)-1] == s[0] {
			return s[1 : len(s)-1], true
		}
		return "", false
	}
	ok := false
	for _, term := range strings.Split(cond, "||") {
		term = strings.TrimSpace(term)
		if rest, found := strings.CutPrefix(term, "assertion.sub"); found {
			rest = strings.TrimSpace(rest)
			if v, found := strings.CutPrefix(rest, "=="); found {
				want, good := unquote(v)
				if !good {
					return false, fmt.Errorf("condition %q: a quoted string after ==", cond)
				}
				ok = ok || want == sub
				continue
			}
			if v, found := strings.CutPrefix(rest, "in"); found {
				v = strings.TrimSpace(v)
				if !strings.HasPrefix(v, "[") || !strings.HasSuffix(v, "]") {
					return false, fmt.Errorf("condition %q: a list after in", cond)
				}
				for _, item := range strings.Split(v[1:len(v)-1], ",") {
					want, good := unquote(item)
					if !good {
						return false, fmt.Errorf("condition %q: quoted strings in the list", cond)
					}
					ok = ok || want == sub
				}
				continue
			}
		}
		return false, fmt.Errorf("condition %q: this fake reads only assertion.sub == and in", cond)
	}
	return ok, nil
}

// AllowImpersonation lets subject impersonate email.
func (f *FakeGoogle) AllowImpersonation(email, subject string) {
	f.mu.Lock()
	defer f.mu.Unlock()
	f.impersonators[email] = subject
}

// FederatedTokenFor and ImpersonatedTokenFor are the tokens the fake issues.
func FederatedTokenFor(subject string) string {
	sum := sha256.Sum256([]byte("federated|" + subject))
	return "ya29.federated-" + fmt.Sprintf("%x", sum[:10])
}

// ImpersonatedTokenFor is the access token for email.
func ImpersonatedTokenFor(email string) string {
	sum := sha256.Sum256([]byte("impersonated|" + email))
	return "ya29.impersonated-" + fmt.Sprintf("%x", sum[:10])
}

func (f *FakeGoogle) ServeHTTP(w http.ResponseWriter, r *http.Request) {
	switch {
	case r.Method == http.MethodPost && r.URL.Path == "/v1/token":
		if err := r.ParseForm(); err != nil {
			oauthError(w, "invalid_request", err.Error())
			return
		}
		aud := r.PostForm.Get("audience")
		if !strings.HasPrefix(aud, "//iam.googleapis.com/projects/") || r.PostForm.Get("grant_type") != "urn:ietf:params:oauth:grant-type:token-exchange" ||
			r.PostForm.Get("subject_token_type") != "urn:ietf:params:oauth:token-type:jwt" {
			oauthError(w, "invalid_request", "not a workload identity token exchange")
			return
		}
		name := strings.TrimPrefix(aud, "//iam.googleapis.com/")
		f.mu.Lock()
		p, configured := f.providers[name]
		f.mu.Unlock()
		var claims *Claims
		var err error
		principal := ""
		if !configured {
			// A provider accepts tokens for its own resource name by default.
			claims, err = f.verifier.Verify(r.PostForm.Get("subject_token"), aud)
		} else {
			audiences := p.audiences
			if len(audiences) == 0 {
				audiences = []string{aud, "https://iam.googleapis.com/" + name}
			}
			for _, a := range audiences {
				if claims, err = f.verifier.Verify(r.PostForm.Get("subject_token"), a); err == nil {
					break
				}
			}
			if err == nil && claims.Issuer != p.issuer {
				err = fmt.Errorf("issuer %q is not the provider's %q", claims.Issuer, p.issuer)
			}
			if err == nil {
				if admitted, _ := evalCondition(p.condition, claims.Subject); !admitted {
					oauthError(w, "unauthorized_client", "The given credential is rejected by the attribute condition.")
					return
				}
				principal = "principal://iam.googleapis.com/" + name[:strings.Index(name, "/providers/")] + "/subject/" + claims.Subject
			}
		}
		if err != nil {
			oauthError(w, "invalid_grant", "The audience in ID Token does not match the expected audience or the token is invalid: "+err.Error())
			return
		}
		tok := FederatedTokenFor(claims.Subject)
		f.mu.Lock()
		f.federated[tok] = claims.Subject
		if principal != "" {
			f.federated[tok] = principal
		}
		f.mu.Unlock()
		writeJSON(w, http.StatusOK, map[string]any{"access_token": tok, "issued_token_type": "urn:ietf:params:oauth:token-type:access_token", "token_type": "Bearer", "expires_in": 3600})
	case r.Method == http.MethodPost && strings.HasPrefix(r.URL.Path, "/v1/projects/-/serviceAccounts/") && strings.HasSuffix(r.URL.Path, ":generateAccessToken"):
		email := strings.TrimSuffix(strings.TrimPrefix(r.URL.Path, "/v1/projects/-/serviceAccounts/"), ":generateAccessToken")
		f.mu.Lock()
		subject, ok := f.federated[strings.TrimPrefix(r.Header.Get("Authorization"), "Bearer ")]
		allowed := f.impersonators[email]
		if members := f.bindings[email]; len(members) > 0 {
			allowed = ""
			if slices.Contains(members, subject) {
				allowed = subject
			}
		}
		f.mu.Unlock()
		if !ok {
			writeJSON(w, http.StatusUnauthorized, map[string]any{"error": map[string]any{"code": 401, "message": "Request had invalid authentication credentials.", "status": "UNAUTHENTICATED"}})
			return
		}
		if allowed != subject {
			writeJSON(w, http.StatusForbidden, map[string]any{"error": map[string]any{"code": 403, "message": "Permission 'iam.serviceAccounts.getAccessToken' denied", "status": "PERMISSION_DENIED"}})
			return
		}
		writeJSON(w, http.StatusOK, map[string]any{"accessToken": ImpersonatedTokenFor(email), "expireTime": time.Now().Add(time.Hour).UTC().Format(time.RFC3339)})
	default:
		http.NotFound(w, r)
	}
}

// Fakes are the clouds' endpoints: the three compiled-in clouds' and
// those of the declarative providers in deploy/providers.
type Fakes struct {
	STS        *FakeSTS
	Entra      *FakeEntra
	Google     *FakeGoogle
	Alibaba    *FakeAlibabaSTS
	OKE        *FakeOKE
	Anthropic  *FakeAnthropic
	OpenAI     *FakeOpenAI
	Vault      *FakeVault
	STACKIT    *FakeSTACKIT
	Databricks *FakeDatabricks
	stop       []func()
}

// The OIDC provider ARN and the OKE audience of deploy/providers' examples.
const (
	alibabaOIDCProvider = "acs:ram::1234567890123456:oidc-provider/ack-rrsa-c0123456789abcdef0123456789abcdef"
	okeAudience         = "https://kubernetes.default.svc.cluster.local"
)

// StartFakes serves the fakes on loopback; their verifier is set later by
// SetVerifier, once the cluster is up.
func StartFakes() (*Fakes, error) {
	f := &Fakes{
		STS:    &FakeSTS{trust: map[string]string{}},
		Entra:  &FakeEntra{trust: map[string]string{}},
		Google: &FakeGoogle{impersonators: map[string]string{}, federated: map[string]string{}, providers: map[string]googleProvider{}, bindings: map[string][]string{}},
	}
	for _, h := range []struct {
		handler http.Handler
		url     *string
	}{{f.STS, &f.STS.URL}, {f.Google, &f.Google.URL}} {
		l, err := net.Listen("tcp", "127.0.0.1:0")
		if err != nil {
			return nil, err
		}
		srv := &http.Server{Handler: h.handler, ReadHeaderTimeout: 10 * time.Second}
		go func() { _ = srv.Serve(l) }()
		*h.url = "http://" + l.Addr().String()
		f.stop = append(f.stop, func() { _ = srv.Close() })
	}
	f.Entra.Server = httptest.NewTLSServer(f.Entra)
	f.stop = append(f.stop, f.Entra.Server.Close)
	f.Alibaba = &FakeAlibabaSTS{provider: alibabaOIDCProvider, trust: map[string]string{}}
	f.Alibaba.Server = httptest.NewTLSServer(f.Alibaba)
	f.stop = append(f.stop, f.Alibaba.Server.Close)
	// Alibaba's credentials library takes no HTTP client: it clones
	// http.DefaultTransport, so that transport trusts the fake, besides
	// the system's roots. Nothing in this process leaves loopback.
	roots, err := x509.SystemCertPool()
	if err != nil {
		roots = x509.NewCertPool()
	}
	roots.AddCert(f.Alibaba.Server.Certificate())
	http.DefaultTransport.(*http.Transport).TLSClientConfig = &tls.Config{RootCAs: roots, MinVersion: tls.VersionTLS12}
	if f.OKE, err = startFakeOKE(okeAudience); err != nil {
		return nil, err
	}
	f.stop = append(f.stop, func() { _ = f.OKE.srv.Close() })
	// The Anthropic SDK sends tokens over plain HTTP to loopback only.
	f.Anthropic = &FakeAnthropic{rules: map[string]claudeRule{}, tokens: map[string]string{}}
	anthropicServer := httptest.NewServer(f.Anthropic)
	f.Anthropic.URL = anthropicServer.URL
	f.stop = append(f.stop, anthropicServer.Close)
	if f.OpenAI, err = startFakeOpenAI(); err != nil {
		return nil, err
	}
	f.stop = append(f.stop, f.OpenAI.Server.Close)
	if f.Vault, err = startFakeVault(); err != nil {
		return nil, err
	}
	f.stop = append(f.stop, f.Vault.close)
	if f.STACKIT, err = startFakeSTACKIT(); err != nil {
		return nil, err
	}
	f.stop = append(f.stop, f.STACKIT.close)
	if f.Databricks, err = startFakeDatabricks(); err != nil {
		return nil, err
	}
	f.stop = append(f.stop, f.Databricks.close)
	return f, nil
}

// SetVerifier makes the fakes check tokens against the cluster.
func (f *Fakes) SetVerifier(v *Verifier) {
	f.STS.verifier, f.Entra.verifier, f.Google.verifier, f.Alibaba.verifier, f.OKE.verifier = v, v, v, v, v
	f.Anthropic.verifier, f.OpenAI.verifier, f.Vault.verifier = v, v, v
	f.STACKIT.verifier, f.Databricks.verifier = v, v
}

// Close stops the fakes.
func (f *Fakes) Close() {
	for _, s := range f.stop {
		s()
	}
}
