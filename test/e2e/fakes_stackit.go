package e2e

import (
	"crypto/hmac"
	"crypto/rand"
	"crypto/sha256"
	"encoding/base64"
	"encoding/json"
	"fmt"
	"net/http"
	"slices"
	"strings"
	"sync"
	"time"
)

// STACKITAudience is the audience a STACKIT federation asserts, and
// deploy/providers/stackit.yaml's.
const STACKITAudience = "sts.accounts.stackit.cloud"

// FakeSTACKIT is STACKIT's token endpoint for workload identity federation
// (POST /oauth/v2/token, a client_credentials grant whose client assertion
// is the workload's token, as the SDK's WorkloadIdentityFederationFlow
// sends it) and one call of the service-account API (GET
// /v2/projects/<project>/service-accounts) that needs the access token the
// exchange gave. An exchange is checked against the federations as their
// fields describe them (STACKIT documents no more): the service account
// has a federated identity provider whose issuer is the token's and whose
// every assertion holds; and the token's signature, issuer and expiry are
// checked against the cluster's JWKS.
type FakeSTACKIT struct {
	// URL is the https address; CAFile holds the certificate that signs it.
	URL, CAFile string
	verifier    *Verifier
	close       func()
	key         []byte // signs the access tokens
	mu          sync.Mutex
	federations map[string][]stackitFederation // by service account email
	tokens      map[string]string              // access token -> service account email
}

// startFakeSTACKIT serves the fake over TLS (the provider file takes only
// an https token endpoint), its certificate written to a file as an
// application would be given a private CA.
func startFakeSTACKIT() (*FakeSTACKIT, error) {
	f := &FakeSTACKIT{federations: map[string][]stackitFederation{}, tokens: map[string]string{}, key: make([]byte, 32)}
	if _, err := rand.Read(f.key); err != nil {
		return nil, err
	}
	var err error
	if f.URL, f.CAFile, f.close, err = serveTLS(f, "stackit"); err != nil {
		return nil, err
	}
	return f, nil
}

// stackitFederation is a service account's federated identity provider,
// as the service-account API takes it (CreateFederatedIdentityProviderPayload).
type stackitFederation struct {
	Name       string             `json:"name"`
	Issuer     string             `json:"issuer"`
	Assertions []stackitAssertion `json:"assertions"`
}

type stackitAssertion struct {
	Item     string `json:"item"`
	Operator string `json:"operator"`
	Value    string `json:"value"`
}

// AddFederation creates a federated identity provider of the service
// account email, as POST .../service-accounts/<email>/federations would
// with the document `injector trust` prints: beside the account's others,
// under a name none of them has.
func (f *FakeSTACKIT) AddFederation(email string, document json.RawMessage) error {
	var fed stackitFederation
	dec := json.NewDecoder(strings.NewReader(string(document)))
	dec.DisallowUnknownFields()
	if err := dec.Decode(&fed); err != nil {
		return fmt.Errorf("federation of %s: %w", email, err)
	}
	switch {
	case fed.Name == "" || fed.Issuer == "":
		return fmt.Errorf("federation of %s: a name and an issuer are required", email)
	case !slices.ContainsFunc(fed.Assertions, func(a stackitAssertion) bool { return a.Item == "aud" }):
		return fmt.Errorf("federation %s of %s: an aud assertion is required", fed.Name, email)
	}
	for _, a := range fed.Assertions {
		if a.Operator != "equals" || a.Item == "" || a.Value == "" {
			// The fake evaluates "equals" only; it keeps nothing it could
			// not evaluate.
			return fmt.Errorf("federation %s of %s: assertion %+v: the fake evaluates item equals value only", fed.Name, email, a)
		}
	}
	f.mu.Lock()
	defer f.mu.Unlock()
	if slices.ContainsFunc(f.federations[email], func(o stackitFederation) bool { return o.Name == fed.Name }) {
		return fmt.Errorf("federation %s of %s exists already", fed.Name, email)
	}
	f.federations[email] = append(f.federations[email], fed)
	return nil
}

func (f *FakeSTACKIT) ServeHTTP(w http.ResponseWriter, r *http.Request) {
	switch {
	case r.Method == http.MethodPost && r.URL.Path == "/oauth/v2/token":
		f.token(w, r)
	case r.Method == http.MethodGet && strings.HasPrefix(r.URL.Path, "/v2/projects/") && strings.HasSuffix(r.URL.Path, "/service-accounts"):
		project := strings.TrimSuffix(strings.TrimPrefix(r.URL.Path, "/v2/projects/"), "/service-accounts")
		bearer, ok := strings.CutPrefix(r.Header.Get("Authorization"), "Bearer ")
		f.mu.Lock()
		email, known := f.tokens[bearer]
		f.mu.Unlock()
		if !ok || !known {
			writeJSON(w, http.StatusUnauthorized, map[string]string{"code": "401", "message": "unauthorized"})
			return
		}
		writeJSON(w, http.StatusOK, map[string]any{"items": []map[string]any{{"email": email, "projectId": project, "internal": false}}})
	default:
		http.NotFound(w, r)
	}
}

// token is the exchange: a client_credentials grant whose client
// assertion is the workload's token and whose client_id is the service
// account's email.
func (f *FakeSTACKIT) token(w http.ResponseWriter, r *http.Request) {
	if err := r.ParseForm(); err != nil {
		oauthError(w, "invalid_request", "expected a form")
		return
	}
	switch {
	case r.PostForm.Get("grant_type") != "client_credentials":
		oauthError(w, "unsupported_grant_type", "expected grant_type client_credentials")
		return
	case r.PostForm.Get("client_assertion_type") != "urn:schwarz:params:oauth:client-assertion-type:workload-jwt":
		oauthError(w, "invalid_request", "expected the workload-jwt client assertion type")
		return
	}
	email, assertion := r.PostForm.Get("client_id"), r.PostForm.Get("client_assertion")
	claims, err := f.verifier.VerifyAnyAudience(assertion)
	if err != nil {
		writeJSON(w, http.StatusUnauthorized, map[string]any{"error": "invalid_client", "error_description": "client assertion: " + err.Error()})
		return
	}
	f.mu.Lock()
	feds := slices.Clone(f.federations[email])
	f.mu.Unlock()
	var refusals []string
	for _, fed := range feds {
		if why := stackitRefusal(fed, claims); why != "" {
			refusals = append(refusals, fed.Name+": "+why)
			continue
		}
		access, err := f.accessToken(email)
		if err != nil {
			writeJSON(w, http.StatusInternalServerError, map[string]string{"error": "server_error"})
			return
		}
		f.mu.Lock()
		f.tokens[access] = email
		f.mu.Unlock()
		writeJSON(w, http.StatusOK, map[string]any{"access_token": access, "token_type": "Bearer", "expires_in": 3600, "scope": ""})
		return
	}
	if len(feds) == 0 {
		refusals = append(refusals, "the service account has no federated identity provider")
	}
	writeJSON(w, http.StatusUnauthorized, map[string]any{"error": "invalid_client",
		"error_description": "no federated identity provider of " + email + " accepts the assertion: " + strings.Join(refusals, "; ")})
}

// stackitRefusal says why fed does not accept the token, "" when it does:
// its issuer is the token's and every assertion holds. An aud assertion
// holds when the token's audience includes the value (aud may be a list).
func stackitRefusal(fed stackitFederation, c *Claims) string {
	if fed.Issuer != c.Issuer {
		return fmt.Sprintf("issuer %q is not %q", c.Issuer, fed.Issuer)
	}
	for _, a := range fed.Assertions {
		holds := c.Get(a.Item) == a.Value
		if a.Item == "aud" {
			holds = slices.Contains(c.Audience, a.Value)
		}
		if !holds {
			return fmt.Sprintf("assertion %s %s %q does not hold", a.Item, a.Operator, a.Value)
		}
	}
	return ""
}

// accessToken is a JWT for the service account, which the SDK reads
// (unverified) for its expiry before it reuses it.
func (f *FakeSTACKIT) accessToken(email string) (string, error) {
	enc := base64.RawURLEncoding
	header, err := json.Marshal(map[string]string{"alg": "HS256", "typ": "JWT"})
	if err != nil {
		return "", err
	}
	nonce := make([]byte, 8)
	if _, err := rand.Read(nonce); err != nil {
		return "", err
	}
	now := time.Now()
	claims, err := json.Marshal(map[string]any{"iss": "https://accounts.stackit.cloud", "sub": email, "iat": now.Unix(),
		"exp": now.Add(time.Hour).Unix(), "jti": enc.EncodeToString(nonce)})
	if err != nil {
		return "", err
	}
	signed := enc.EncodeToString(header) + "." + enc.EncodeToString(claims)
	mac := hmac.New(sha256.New, f.key)
	mac.Write([]byte(signed))
	return signed + "." + enc.EncodeToString(mac.Sum(nil)), nil
}
