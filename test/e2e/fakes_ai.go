package e2e

import (
	"context"
	"crypto/sha256"
	"crypto/tls"
	"crypto/x509"
	"encoding/json"
	"fmt"
	"net"
	"net/http"
	"net/http/httptest"
	"strings"
	"sync"
	"time"

	"github.com/pod-identity/injector/internal/testpki"
)

// The AI model APIs' token exchanges, as their services document them, and
// one API call each to show the exchanged token works. Each verifies the
// ServiceAccount token as the service does: signature against the
// cluster's JWKS, issuer, audience, expiry, lifetime, and its trust (a
// federation rule, an identity provider's subject mapping).

// ClaudeAudience is the audience Anthropic's documentation gives
// Kubernetes tokens, and the provider file's.
const ClaudeAudience = "https://api.anthropic.com"

// FakeAnthropic is the Claude API's federation token endpoint (POST
// /v1/oauth/token, RFC 7523 jwt-bearer) and its Messages API.
type FakeAnthropic struct {
	URL      string
	verifier *Verifier
	mu       sync.Mutex
	rules    map[string]claudeRule // by rule ID
	tokens   map[string]string     // access token -> subject
}

// claudeRule is a federation rule: the organization and the one subject
// it admits, and the longest identity token lifetime it accepts.
type claudeRule struct {
	org, subject string
	maxLifetime  int64
}

// AddRule admits subject in organization org under rule id, with tokens of
// at most an hour (Anthropic's default maximum).
func (f *FakeAnthropic) AddRule(id, org, subject string) {
	f.mu.Lock()
	defer f.mu.Unlock()
	f.rules[id] = claudeRule{org: org, subject: subject, maxLifetime: 3600}
}

// ClaudeTokenFor is the access token the fake issues to subject.
func ClaudeTokenFor(subject string) string {
	sum := sha256.Sum256([]byte("claude|" + subject))
	return fmt.Sprintf("sk-ant-oat01-%x", sum[:12])
}

func (f *FakeAnthropic) ServeHTTP(w http.ResponseWriter, r *http.Request) {
	fail := func(status int, kind, msg string) {
		writeJSON(w, status, map[string]any{"type": "error", "error": map[string]string{"type": kind, "message": msg}})
	}
	switch {
	case r.Method == http.MethodPost && r.URL.Path == "/v1/oauth/token":
		if !strings.Contains(r.Header.Get("anthropic-beta"), "oidc-federation-") {
			fail(http.StatusBadRequest, "invalid_request_error", "the federation beta header is required")
			return
		}
		var req struct {
			GrantType        string `json:"grant_type"`
			Assertion        string `json:"assertion"`
			FederationRuleID string `json:"federation_rule_id"`
			OrganizationID   string `json:"organization_id"`
		}
		if err := json.NewDecoder(r.Body).Decode(&req); err != nil || req.GrantType != "urn:ietf:params:oauth:grant-type:jwt-bearer" {
			fail(http.StatusBadRequest, "invalid_request_error", "expected a jwt-bearer grant")
			return
		}
		f.mu.Lock()
		rule, ok := f.rules[req.FederationRuleID]
		f.mu.Unlock()
		if !ok || rule.org != req.OrganizationID {
			fail(http.StatusUnauthorized, "authentication_error", "no federation rule "+req.FederationRuleID+" in organization "+req.OrganizationID)
			return
		}
		claims, err := f.verifier.Verify(req.Assertion, ClaudeAudience)
		switch {
		case err != nil:
			fail(http.StatusUnauthorized, "authentication_error", "identity token rejected: "+err.Error())
			return
		case claims.IssuedAt == 0 || claims.Expiry-claims.IssuedAt > rule.maxLifetime:
			fail(http.StatusUnauthorized, "authentication_error", fmt.Sprintf("identity token lifetime %ds exceeds the rule's %ds", claims.Expiry-claims.IssuedAt, rule.maxLifetime))
			return
		case claims.Subject != rule.subject:
			fail(http.StatusUnauthorized, "authentication_error", "identity token subject "+claims.Subject+" does not match federation rule "+req.FederationRuleID)
			return
		}
		tok := ClaudeTokenFor(claims.Subject)
		f.mu.Lock()
		f.tokens[tok] = claims.Subject
		f.mu.Unlock()
		writeJSON(w, http.StatusOK, map[string]any{"access_token": tok, "token_type": "Bearer", "expires_in": 3600})
	case r.Method == http.MethodPost && r.URL.Path == "/v1/messages":
		f.mu.Lock()
		subject, ok := f.tokens[strings.TrimPrefix(r.Header.Get("Authorization"), "Bearer ")]
		f.mu.Unlock()
		if !ok || r.Header.Get("X-Api-Key") != "" {
			fail(http.StatusUnauthorized, "authentication_error", "invalid bearer token")
			return
		}
		writeJSON(w, http.StatusOK, map[string]any{"id": "msg_e2e", "type": "message", "role": "assistant", "model": "claude-e2e",
			"content": []map[string]any{{"type": "text", "text": "hello, " + subject}}, "stop_reason": "end_turn",
			"usage": map[string]int{"input_tokens": 1, "output_tokens": 2}})
	default:
		http.NotFound(w, r)
	}
}

// OpenAIAudience is the audience the shipped provider file gives OpenAI
// tokens; an OpenAI identity provider names the one it expects.
const OpenAIAudience = "https://api.openai.com"

// FakeOpenAI is OpenAI's token exchange (POST auth.openai.com/oauth/token,
// RFC 8693) and its models API, served with TLS for both host names.
type FakeOpenAI struct {
	Server   *httptest.Server
	verifier *Verifier
	mu       sync.Mutex
	// accounts maps a service account ID under an identity provider to
	// the one subject mapped to it.
	accounts map[string]string
	tokens   map[string]string
	roots    *x509.CertPool
	// refused is why the last exchange was refused (the SDK does not
	// show the body).
	refused string
}

// LastRefusal says why the last refused exchange was refused.
func (f *FakeOpenAI) LastRefusal() string {
	f.mu.Lock()
	defer f.mu.Unlock()
	return f.refused
}

// MapSubject maps subject to service account sa of identity provider idp.
func (f *FakeOpenAI) MapSubject(idp, sa, subject string) {
	f.mu.Lock()
	defer f.mu.Unlock()
	f.accounts[idp+"/"+sa] = subject
}

// OpenAITokenFor is the access token the fake issues to subject.
func OpenAITokenFor(subject string) string {
	sum := sha256.Sum256([]byte("openai|" + subject))
	return fmt.Sprintf("oai-wi-%x", sum[:12])
}

func (f *FakeOpenAI) ServeHTTP(w http.ResponseWriter, r *http.Request) {
	fail := func(status int, code, msg string) {
		f.mu.Lock()
		f.refused = msg
		f.mu.Unlock()
		writeJSON(w, status, map[string]any{"error": map[string]string{"code": code, "message": msg, "type": "invalid_request_error"}})
	}
	switch {
	case r.Host == "auth.openai.com" && r.Method == http.MethodPost && r.URL.Path == "/oauth/token":
		var req struct {
			GrantType          string `json:"grant_type"`
			SubjectToken       string `json:"subject_token"`
			SubjectTokenType   string `json:"subject_token_type"`
			IdentityProviderID string `json:"identity_provider_id"`
			ServiceAccountID   string `json:"service_account_id"`
		}
		if err := json.NewDecoder(r.Body).Decode(&req); err != nil || req.GrantType != "urn:ietf:params:oauth:grant-type:token-exchange" ||
			req.SubjectTokenType != "urn:ietf:params:oauth:token-type:jwt" {
			fail(http.StatusBadRequest, "invalid_request", "expected an RFC 8693 token exchange of a JWT")
			return
		}
		f.mu.Lock()
		subject, ok := f.accounts[req.IdentityProviderID+"/"+req.ServiceAccountID]
		f.mu.Unlock()
		claims, err := f.verifier.Verify(req.SubjectToken, OpenAIAudience)
		switch {
		case !ok:
			fail(http.StatusUnauthorized, "invalid_grant", "no service account "+req.ServiceAccountID+" under identity provider "+req.IdentityProviderID)
		case err != nil:
			fail(http.StatusUnauthorized, "invalid_grant", "subject token rejected: "+err.Error())
		case claims.Subject != subject:
			fail(http.StatusUnauthorized, "invalid_grant", "subject "+claims.Subject+" is not mapped to service account "+req.ServiceAccountID)
		default:
			tok := OpenAITokenFor(claims.Subject)
			f.mu.Lock()
			f.tokens[tok] = claims.Subject
			f.mu.Unlock()
			writeJSON(w, http.StatusOK, map[string]any{"access_token": tok, "issued_token_type": "urn:ietf:params:oauth:token-type:access_token", "token_type": "Bearer", "expires_in": 3600})
		}
	case r.Host == "api.openai.com" && r.Method == http.MethodGet && r.URL.Path == "/v1/models":
		f.mu.Lock()
		subject, ok := f.tokens[strings.TrimPrefix(r.Header.Get("Authorization"), "Bearer ")]
		f.mu.Unlock()
		if !ok {
			fail(http.StatusUnauthorized, "invalid_api_key", "invalid bearer token")
			return
		}
		writeJSON(w, http.StatusOK, map[string]any{"object": "list", "data": []map[string]any{{"id": "gpt-e2e", "object": "model", "created": 0, "owned_by": subject}}})
	default:
		http.NotFound(w, r)
	}
}

// startFakeOpenAI serves the fake with TLS for auth.openai.com and
// api.openai.com, from a CA of its own.
func startFakeOpenAI() (*FakeOpenAI, error) {
	ca, err := testpki.NewCA("e2e-openai")
	if err != nil {
		return nil, err
	}
	certPEM, keyPEM, err := ca.Issue("openai", "auth.openai.com", "api.openai.com")
	if err != nil {
		return nil, err
	}
	cert, err := tls.X509KeyPair(certPEM, keyPEM)
	if err != nil {
		return nil, err
	}
	f := &FakeOpenAI{accounts: map[string]string{}, tokens: map[string]string{}, roots: ca.Pool()}
	f.Server = httptest.NewUnstartedServer(f)
	f.Server.TLS = &tls.Config{Certificates: []tls.Certificate{cert}, MinVersion: tls.VersionTLS12}
	f.Server.StartTLS()
	return f, nil
}

// Client is an HTTP client that reaches the fake for OpenAI's host names,
// as DNS would send it to OpenAI: the SDK's URLs stay OpenAI's own, and
// nothing leaves loopback.
func (f *FakeOpenAI) Client() *http.Client {
	addr := f.Server.Listener.Addr().String()
	dialer := &net.Dialer{Timeout: 5 * time.Second}
	return &http.Client{Timeout: 30 * time.Second, Transport: &http.Transport{
		TLSClientConfig: &tls.Config{RootCAs: f.roots, MinVersion: tls.VersionTLS12},
		DialContext: func(ctx context.Context, network, _ string) (net.Conn, error) {
			return dialer.DialContext(ctx, network, addr)
		},
	}}
}
