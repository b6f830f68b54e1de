package e2e

import (
	"crypto/sha256"
	"encoding/json"
	"encoding/pem"
	"fmt"
	"net/http"
	"net/http/httptest"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"sync"
)

// FakeVault is Vault's JWT auth method (POST /v1/auth/<mount>/login) and
// a KV read (GET /v1/secret/data/<path>) that needs the Vault token the
// login gave. A login is checked as the method does: the role exists and
// is a jwt role, the token's signature against the cluster's JWKS, its
// issuer, expiry, audience (bound_audiences, required when the token has
// one), subject (bound_subject) and claims (bound_claims, string type).
type FakeVault struct {
	// URL is the https address; CAFile holds the certificate that signs it.
	URL, CAFile string
	verifier    *Verifier
	close       func()
	mu          sync.Mutex
	roles       map[string]vaultRole // by "mount/role"
	tokens      map[string]string    // Vault token -> subject
}

// startFakeVault serves the fake over TLS (the provider file takes only
// an https address), its certificate written for VAULT_CACERT.
func startFakeVault() (*FakeVault, error) {
	f := &FakeVault{roles: map[string]vaultRole{}, tokens: map[string]string{}}
	var err error
	if f.URL, f.CAFile, f.close, err = serveTLS(f, "vault"); err != nil {
		return nil, err
	}
	return f, nil
}

// vaultRole is the part of a JWT auth role that decides a login, as
// `vault read auth/<mount>/role/<name>` shows it.
type vaultRole struct {
	RoleType        string            `json:"role_type"`
	UserClaim       string            `json:"user_claim"`
	BoundAudiences  []string          `json:"bound_audiences"`
	BoundSubject    string            `json:"bound_subject"`
	BoundClaimsType string            `json:"bound_claims_type"`
	BoundClaims     map[string]string `json:"bound_claims"`
}

// WriteRole stores a role document, as `vault write auth/<mount>/role/<name> -`
// would (the document `injector trust` prints).
func (f *FakeVault) WriteRole(mount, name string, document json.RawMessage) error {
	var r vaultRole
	dec := json.NewDecoder(strings.NewReader(string(document)))
	dec.DisallowUnknownFields()
	if err := dec.Decode(&r); err != nil {
		return fmt.Errorf("role %s/%s: %w", mount, name, err)
	}
	switch {
	case r.UserClaim == "":
		return fmt.Errorf("role %s/%s: a user_claim is required", mount, name)
	case r.RoleType != "jwt":
		// Vault's default role type is oidc, which refuses JWT logins; the
		// fake only keeps roles that can log in.
		return fmt.Errorf("role %s/%s: role_type %q cannot log in with a JWT", mount, name, r.RoleType)
	case r.BoundClaimsType != "" && r.BoundClaimsType != "string":
		return fmt.Errorf("role %s/%s: the fake reads string bound_claims only", mount, name)
	case len(r.BoundAudiences) == 0 && r.BoundSubject == "" && len(r.BoundClaims) == 0:
		return fmt.Errorf("role %s/%s: a jwt role needs a bound audience, subject or claim", mount, name)
	}
	f.mu.Lock()
	defer f.mu.Unlock()
	f.roles[mount+"/"+name] = r
	return nil
}

// VaultTokenFor is the Vault token the fake issues to subject.
func VaultTokenFor(subject string) string {
	sum := sha256.Sum256([]byte("vault|" + subject))
	return fmt.Sprintf("hvs.%x", sum[:12])
}

func (f *FakeVault) ServeHTTP(w http.ResponseWriter, r *http.Request) {
	fail := func(status int, msg string) { writeJSON(w, status, map[string]any{"errors": []string{msg}}) }
	path := strings.TrimPrefix(r.URL.Path, "/v1/")
	switch {
	case r.Method == http.MethodPut || r.Method == http.MethodPost:
		mount, ok := strings.CutSuffix(strings.TrimPrefix(path, "auth/"), "/login")
		if !ok || !strings.HasPrefix(path, "auth/") {
			fail(http.StatusNotFound, "no handler for route "+path)
			return
		}
		var req struct {
			Role string `json:"role"`
			JWT  string `json:"jwt"`
		}
		if err := json.NewDecoder(r.Body).Decode(&req); err != nil || req.JWT == "" {
			fail(http.StatusBadRequest, "missing jwt")
			return
		}
		f.mu.Lock()
		role, ok := f.roles[mount+"/"+req.Role]
		f.mu.Unlock()
		if !ok {
			fail(http.StatusBadRequest, fmt.Sprintf("role %q could not be found", req.Role))
			return
		}
		sub, err := f.login(role, req.JWT)
		if err != nil {
			fail(http.StatusBadRequest, err.Error())
			return
		}
		token := VaultTokenFor(sub)
		f.mu.Lock()
		f.tokens[token] = sub
		f.mu.Unlock()
		writeJSON(w, http.StatusOK, map[string]any{"auth": map[string]any{
			"client_token": token, "lease_duration": 600, "renewable": true, "policies": []string{"default"},
			"metadata": map[string]string{"role": req.Role}}})
	case r.Method == http.MethodGet && strings.HasPrefix(path, "secret/data/"):
		f.mu.Lock()
		sub, ok := f.tokens[r.Header.Get("X-Vault-Token")]
		f.mu.Unlock()
		if !ok {
			fail(http.StatusForbidden, "permission denied")
			return
		}
		writeJSON(w, http.StatusOK, map[string]any{"data": map[string]any{"data": map[string]string{"reader": sub}}})
	default:
		fail(http.StatusNotFound, "no handler for route "+path)
	}
}

// login checks jwt against role and returns its user claim.
func (f *FakeVault) login(role vaultRole, jwt string) (string, error) {
	// The signature, issuer and expiry; the audience is the role's to
	// check, below.
	claims, err := f.verifier.VerifyAnyAudience(jwt)
	if err != nil {
		return "", fmt.Errorf("error validating token: %w", err)
	}
	switch {
	case len(role.BoundAudiences) == 0 && len(claims.Audience) > 0:
		return "", fmt.Errorf("audience claim found in JWT but no audiences bound to the role")
	case len(role.BoundAudiences) > 0 && !slices.ContainsFunc(claims.Audience, func(a string) bool { return slices.Contains(role.BoundAudiences, a) }):
		return "", fmt.Errorf("error validating token: invalid audience (aud) claim: audience claim does not match any expected audience")
	case role.BoundSubject != "" && claims.Subject != role.BoundSubject:
		return "", fmt.Errorf("sub claim does not match bound subject")
	}
	for k, want := range role.BoundClaims {
		if got := claims.Get(k); got != want {
			return "", fmt.Errorf("claim %q does not match any associated bound claim values", k)
		}
	}
	if v := claims.Get(role.UserClaim); v == "" {
		return "", fmt.Errorf("claim %q not found in token", role.UserClaim)
	}
	return claims.Subject, nil
}

// serveTLS serves h over TLS on loopback and writes the certificate that
// signs it to a file, as an application would be given a private CA. It
// returns the URL, the file and what stops both.
func serveTLS(h http.Handler, name string) (url, caFile string, stop func(), err error) {
	srv := httptest.NewTLSServer(h)
	dir, err := os.MkdirTemp("", "fake-"+name+"-")
	if err != nil {
		srv.Close()
		return "", "", nil, err
	}
	stop = func() { srv.Close(); _ = os.RemoveAll(dir) }
	caFile = filepath.Join(dir, "ca.pem")
	if err := os.WriteFile(caFile, pem.EncodeToMemory(&pem.Block{Type: "CERTIFICATE", Bytes: srv.Certificate().Raw}), 0o600); err != nil {
		stop()
		return "", "", nil, err
	}
	return srv.URL, caFile, stop, nil
}
