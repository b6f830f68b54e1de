package e2e

import (
	"crypto/sha256"
	"encoding/json"
	"fmt"
	"net/http"
	"slices"
	"strings"
	"sync"
)

// DatabricksAudience is deploy/providers/databricks.yaml's token audience.
const DatabricksAudience = "databricks"

// databricksAccountID is the fake account's ID: the audience Databricks
// expects from a policy that lists none.
const databricksAccountID = "0d26daa6-5e44-4c97-a497-ef015f91254a"

// FakeDatabricks is a Databricks workspace's OAuth token endpoint for
// workload identity federation (POST /oidc/v1/token, an RFC 8693 token
// exchange with the service principal's application ID as client_id) and
// one API call (GET /api/2.0/preview/scim/v2/Me) that needs the access
// token the exchange gave. An exchange is checked as Databricks documents
// it: one of the service principal's federation policies has the token's
// issuer, one of its audiences (the account ID when it lists none) and its
// subject in the subject claim; the token's signature, issuer and expiry
// against the cluster's JWKS.
type FakeDatabricks struct {
	// URL is the workspace's https address; CAFile holds the certificate
	// that signs it.
	URL, CAFile string
	verifier    *Verifier
	close       func()
	mu          sync.Mutex
	policies    map[string][]databricksPolicy // by service principal application ID
	tokens      map[string]string             // access token -> application ID
}

// startFakeDatabricks serves the fake over TLS (the provider file takes
// only an https host).
func startFakeDatabricks() (*FakeDatabricks, error) {
	f := &FakeDatabricks{policies: map[string][]databricksPolicy{}, tokens: map[string]string{}}
	var err error
	if f.URL, f.CAFile, f.close, err = serveTLS(f, "databricks"); err != nil {
		return nil, err
	}
	return f, nil
}

// databricksPolicy is a federation policy as the API takes it
// (oauth2.FederationPolicy; the fields the fake does not evaluate, such as
// jwks_uri, are refused rather than ignored).
type databricksPolicy struct {
	Description string `json:"description"`
	OIDCPolicy  struct {
		Issuer       string   `json:"issuer"`
		Audiences    []string `json:"audiences"`
		Subject      string   `json:"subject"`
		SubjectClaim string   `json:"subject_claim"`
	} `json:"oidc_policy"`
}

// AddPolicy creates a federation policy of the service principal whose
// application ID is clientID, as `databricks account
// service-principal-federation-policy create <id> --json <document>` would
// with the document `injector trust` prints: beside its others, up to 20.
func (f *FakeDatabricks) AddPolicy(clientID string, document json.RawMessage) error {
	var p databricksPolicy
	dec := json.NewDecoder(strings.NewReader(string(document)))
	dec.DisallowUnknownFields()
	if err := dec.Decode(&p); err != nil {
		return fmt.Errorf("policy of %s: %w", clientID, err)
	}
	switch {
	case p.OIDCPolicy.Issuer == "":
		return fmt.Errorf("policy of %s: an issuer is required", clientID)
	case p.OIDCPolicy.Subject == "":
		return fmt.Errorf("policy of %s: a service principal policy requires a subject", clientID)
	}
	f.mu.Lock()
	defer f.mu.Unlock()
	if len(f.policies[clientID]) >= 20 {
		return fmt.Errorf("service principal %s has 20 federation policies already", clientID)
	}
	f.policies[clientID] = append(f.policies[clientID], p)
	return nil
}

// DatabricksTokenFor is the access token the fake issues to the service
// principal clientID.
func DatabricksTokenFor(clientID string) string {
	sum := sha256.Sum256([]byte("databricks|" + clientID))
	return fmt.Sprintf("dbx-oauth-%x", sum[:12])
}

func (f *FakeDatabricks) ServeHTTP(w http.ResponseWriter, r *http.Request) {
	switch {
	case r.Method == http.MethodPost && r.URL.Path == "/oidc/v1/token":
		f.token(w, r)
	case r.Method == http.MethodGet && r.URL.Path == "/api/2.0/preview/scim/v2/Me":
		bearer, ok := strings.CutPrefix(r.Header.Get("Authorization"), "Bearer ")
		f.mu.Lock()
		clientID, known := f.tokens[bearer]
		f.mu.Unlock()
		if !ok || !known {
			writeJSON(w, http.StatusUnauthorized, map[string]string{"error_code": "401", "message": "Credential was not sent or was of an unsupported type for this API."})
			return
		}
		writeJSON(w, http.StatusOK, map[string]any{"schemas": []string{"urn:ietf:params:scim:schemas:core:2.0:ServicePrincipal"},
			"applicationId": clientID, "userName": clientID, "active": true})
	default:
		http.NotFound(w, r)
	}
}

// token is the token exchange of a service principal's workload identity.
func (f *FakeDatabricks) token(w http.ResponseWriter, r *http.Request) {
	if err := r.ParseForm(); err != nil {
		oauthError(w, "invalid_request", "expected a form")
		return
	}
	form := r.PostForm
	switch {
	case form.Get("grant_type") != "urn:ietf:params:oauth:grant-type:token-exchange":
		oauthError(w, "unsupported_grant_type", "expected a token exchange")
		return
	case form.Get("subject_token_type") != "urn:ietf:params:oauth:token-type:jwt":
		oauthError(w, "invalid_request", "expected subject_token_type urn:ietf:params:oauth:token-type:jwt")
		return
	case form.Get("client_id") == "":
		// Account-wide federation, which the fake does not model.
		oauthError(w, "invalid_request", "expected the service principal's client_id")
		return
	case !slices.Contains(strings.Fields(form.Get("scope")), "all-apis"):
		oauthError(w, "invalid_scope", "expected scope all-apis")
		return
	}
	clientID := form.Get("client_id")
	claims, err := f.verifier.VerifyAnyAudience(form.Get("subject_token"))
	if err != nil {
		writeJSON(w, http.StatusUnauthorized, map[string]any{"error": "invalid_grant", "error_description": "subject token: " + err.Error()})
		return
	}
	f.mu.Lock()
	policies := slices.Clone(f.policies[clientID])
	f.mu.Unlock()
	var refusals []string
	for _, p := range policies {
		if why := databricksRefusal(p, claims); why != "" {
			refusals = append(refusals, why)
			continue
		}
		access := DatabricksTokenFor(clientID)
		f.mu.Lock()
		f.tokens[access] = clientID
		f.mu.Unlock()
		writeJSON(w, http.StatusOK, map[string]any{"access_token": access, "token_type": "Bearer", "expires_in": 3600, "scope": "all-apis"})
		return
	}
	if len(policies) == 0 {
		refusals = append(refusals, "the service principal has no federation policy")
	}
	writeJSON(w, http.StatusUnauthorized, map[string]any{"error": "invalid_grant",
		"error_description": "no federation policy of " + clientID + " matches the token: " + strings.Join(refusals, "; ")})
}

// databricksRefusal says why p does not accept the token, "" when it does.
func databricksRefusal(p databricksPolicy, c *Claims) string {
	o := p.OIDCPolicy
	audiences, claim := o.Audiences, o.SubjectClaim
	if len(audiences) == 0 {
		audiences = []string{databricksAccountID}
	}
	if claim == "" {
		claim = "sub"
	}
	switch {
	case o.Issuer != c.Issuer:
		return fmt.Sprintf("issuer %q is not %q", c.Issuer, o.Issuer)
	case !slices.ContainsFunc(c.Audience, func(a string) bool { return slices.Contains(audiences, a) }):
		return fmt.Sprintf("audience %v is not one of %v", []string(c.Audience), audiences)
	case c.Get(claim) != o.Subject:
		return fmt.Sprintf("subject claim %s %q is not %q", claim, c.Get(claim), o.Subject)
	}
	return ""
}
