package trust

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"mime"
	"net/http"
	"net/url"
	"slices"
	"strings"

	jose "github.com/go-jose/go-jose/v4"

	"github.com/pod-identity/injector/internal/quote"
)

// DiscoveryPath is where an OIDC issuer serves its discovery document,
// under the issuer URL.
const DiscoveryPath = "/.well-known/openid-configuration"

// MaxIssuerDocumentBytes bounds what is read of a discovery document or a
// JWKS: an API server's JWKS holds a few public keys of under 1 KiB each,
// so 1 MiB holds any real one many times over and stops a hostile or
// broken host from filling memory.
const MaxIssuerDocumentBytes = 1 << 20

// ClusterIssuer is what the API server serves of its issuer and signs
// with.
type ClusterIssuer struct {
	// Discovery is its /.well-known/openid-configuration.
	Discovery []byte
	// JWKS is its /openid/v1/jwks.
	JWKS []byte
	// Token is a token it has just signed (TokenRequest), or empty when
	// none could be had: then every key it serves must be published.
	Token string
}

// Status is a verdict's outcome.
type Status int

// The outcomes, from best to worst.
const (
	// OK: what the clouds need.
	OK Status = iota
	// Warning: works today, worth fixing.
	Warning
	// Wrong: the public issuer disagrees with the cluster; the clouds
	// will refuse the cluster's tokens.
	Wrong
	// Unreachable: the public issuer could not be fetched.
	Unreachable
)

func (s Status) String() string {
	return [...]string{"ok", "warning", "wrong", "unreachable"}[s]
}

// MarshalText makes a Status read as its name in JSON.
func (s Status) MarshalText() ([]byte, error) { return []byte(s.String()), nil }

// Verdict is the outcome of one check.
type Verdict struct {
	// Check names what was checked, e.g. "issuer" or "signing key".
	Check string `json:"check"`
	// Status is the outcome.
	Status Status `json:"status"`
	// Message says what was found and what to do.
	Message string `json:"message"`
}

// IssuerReport is what `injector issuer check` found.
type IssuerReport struct {
	// Issuer is the cluster's issuer, as its tokens name it.
	Issuer string `json:"issuer"`
	// URL is where the public copy was looked for.
	URL string `json:"url"`
	// Verdicts are the checks, in order.
	Verdicts []Verdict `json:"verdicts"`
	// Clouds say, per cloud, whether it can use the issuer as it is.
	Clouds []Verdict `json:"clouds"`
}

// Worst is the worst status of the report's verdicts.
func (r *IssuerReport) Worst() Status {
	worst := OK
	for _, v := range r.Verdicts {
		worst = max(worst, v.Status)
	}
	return worst
}

func (r *IssuerReport) add(check string, s Status, format string, args ...any) {
	r.Verdicts = append(r.Verdicts, Verdict{Check: check, Status: s, Message: fmt.Sprintf(format, args...)})
}

// discovery is the part of a discovery document the clouds read.
type discovery struct {
	Issuer        string   `json:"issuer"`
	JWKSURI       string   `json:"jwks_uri"`
	Algorithms    []string `json:"id_token_signing_alg_values_supported"`
	ResponseTypes []string `json:"response_types_supported"`
}

// CheckIssuer fetches the public issuer at publicURL (the cluster's issuer
// when empty) anonymously with client, as the clouds do, and compares it
// with what the cluster serves and signs with: the issuer string byte for
// byte, the JWKS reachable as JSON, the current signing key published. An
// error is returned only when the cluster's own documents are unusable.
func CheckIssuer(ctx context.Context, client *http.Client, c ClusterIssuer, publicURL string) (*IssuerReport, error) {
	var mine discovery
	if err := json.Unmarshal(c.Discovery, &mine); err != nil || mine.Issuer == "" {
		return nil, errors.New("the API server's /.well-known/openid-configuration names no issuer: is --service-account-issuer set?")
	}
	var keys jose.JSONWebKeySet
	if err := json.Unmarshal(c.JWKS, &keys); err != nil {
		return nil, fmt.Errorf("the API server's /openid/v1/jwks: %w", err)
	}
	if publicURL == "" {
		publicURL = mine.Issuer
	}
	r := &IssuerReport{Issuer: mine.Issuer, URL: publicURL}
	if err := ValidIssuer(publicURL); err != nil {
		r.add("issuer", Wrong, "%v: AWS and Azure fetch the issuer over HTTPS only", err)
		r.clouds(false)
		return r, nil
	}
	if publicURL != mine.Issuer {
		how := "the clouds compare it with the tokens' iss byte for byte"
		if sameIssuerButSlash(publicURL, mine.Issuer) {
			how = "they differ only by a trailing slash, and " + how
		}
		r.add("issuer", Wrong, "the cluster's tokens name the issuer %s, not %s: %s", mine.Issuer, publicURL, how)
	}
	body, err := fetch(ctx, client, strings.TrimSuffix(publicURL, "/")+DiscoveryPath, "discovery")
	if err != nil {
		r.fetchFailed("discovery", err)
		return r, nil
	}
	var pub discovery
	if err := json.Unmarshal(body, &pub); err != nil {
		r.add("discovery", Wrong, "%s%s is not a JSON discovery document: %v", strings.TrimSuffix(publicURL, "/"), DiscoveryPath, err)
		r.clouds(false)
		return r, nil
	}
	r.add("discovery", OK, "%s%s serves a discovery document", strings.TrimSuffix(publicURL, "/"), DiscoveryPath)
	switch {
	case pub.Issuer == mine.Issuer:
		r.add("issuer", OK, "the public document's issuer is %s, byte for byte the cluster's", pub.Issuer)
	case sameIssuerButSlash(pub.Issuer, mine.Issuer):
		r.add("issuer", Wrong, "the public document's issuer %s differs from the cluster's %s only by a trailing slash: the clouds compare it with the tokens' iss byte for byte, so they refuse every token (publish the API server's own document: injector issuer publish)", quote.Value(pub.Issuer), mine.Issuer)
	default:
		r.add("issuer", Wrong, "the public document's issuer is %s, not the cluster's %s: the clouds refuse every token (publish the API server's own document: injector issuer publish)", quote.Value(pub.Issuer), mine.Issuer)
	}
	if !slices.Contains(pub.Algorithms, "RS256") {
		r.add("algorithms", Warning, "id_token_signing_alg_values_supported %s lacks RS256, which AWS IAM requires of an OIDC provider", quote.Value(strings.Join(pub.Algorithms, ",")))
	}
	if u, err := url.Parse(pub.JWKSURI); err != nil || u.Scheme != "https" || u.Host == "" {
		r.add("jwks", Wrong, "jwks_uri %s is not an https URL: the clouds cannot fetch the keys", quote.Value(pub.JWKSURI))
		r.clouds(false)
		return r, nil
	}
	body, err = fetch(ctx, client, pub.JWKSURI, "jwks")
	if err != nil {
		r.fetchFailed("jwks", err)
		return r, nil
	}
	var published jose.JSONWebKeySet
	if err := json.Unmarshal(body, &published); err != nil || len(published.Keys) == 0 {
		r.add("jwks", Wrong, "%s is not a JSON Web Key Set with keys (%v)", pub.JWKSURI, err)
		r.clouds(false)
		return r, nil
	}
	r.add("jwks", OK, "%s serves %d key(s) as JSON", pub.JWKSURI, len(published.Keys))
	r.signingKey(c.Token, keys, published)
	r.clouds(true)
	return r, nil
}

// signingKey checks that the published keys verify a token the cluster
// has just signed, and that every key the cluster serves is published.
func (r *IssuerReport) signingKey(token string, cluster, published jose.JSONWebKeySet) {
	if token != "" {
		jws, err := jose.ParseSignedCompact(token, []jose.SignatureAlgorithm{jose.RS256, jose.RS384, jose.RS512, jose.ES256, jose.ES384, jose.ES512, jose.PS256})
		if err != nil || len(jws.Signatures) != 1 {
			r.add("signing key", Warning, "could not read the token the API server signed (%v): only the key sets are compared", err)
		} else {
			kid := jws.Signatures[0].Header.KeyID
			matches := published.Key(kid)
			switch {
			case len(matches) == 0:
				r.add("signing key", Wrong, "the key the API server signs with now (kid %s) is not published: the public JWKS is stale (copied before a key rotation, or the tokens come from an external signer); publish the current JWKS (injector issuer publish)", quote.Value(kid))
			case !verifies(jws, matches):
				r.add("signing key", Wrong, "the published key with kid %s does not verify the API server's tokens: the public JWKS holds another key under that ID; publish the current JWKS (injector issuer publish)", quote.Value(kid))
			default:
				r.add("signing key", OK, "a token the API server just signed (kid %s) verifies against the published key", quote.Value(kid))
			}
		}
	}
	var missing []string
	for _, k := range cluster.Keys {
		if len(published.Key(k.KeyID)) == 0 {
			missing = append(missing, k.KeyID)
		}
	}
	if len(missing) > 0 {
		status := Warning
		if token == "" {
			status = Wrong // without a token, a missing key is all there is to go by
		}
		r.add("keys", status, "the API server verifies with key(s) %s that the public JWKS lacks: tokens signed with them are refused by the clouds", quote.Value(strings.Join(missing, ", ")))
	}
}

func verifies(jws *jose.JSONWebSignature, keys []jose.JSONWebKey) bool {
	for _, k := range keys {
		if _, err := jws.Verify(k.Key); err == nil {
			return true
		}
	}
	return false
}

// clouds says what each cloud makes of the issuer.
func (r *IssuerReport) clouds(reachable bool) {
	good := reachable && r.Worst() < Wrong
	fetched := func(cloud string) Verdict {
		if good {
			return Verdict{Check: cloud, Status: OK, Message: "fetches the public issuer: usable as it is"}
		}
		return Verdict{Check: cloud, Status: Wrong, Message: "fetches the public issuer itself, so it refuses the cluster's tokens until the checks above pass"}
	}
	r.Clouds = []Verdict{fetched("aws"), fetched("azure"), {Check: "gcp", Status: OK,
		Message: "accepts an uploaded JWKS instead of a public issuer (gcloud iam workload-identity-pools providers update-oidc --jwk-json-path): injector issuer publish writes it"}}
	if good {
		r.Clouds[2].Message = "fetches the public issuer: usable as it is (or upload the JWKS instead)"
	}
	r.Clouds = append(r.Clouds, fetched("alibaba"))
}

// fetchError is a fetch that did not get a document.
type fetchError struct {
	url   string
	cause string
	// reached says the host answered, with a status or a body that is
	// not JSON.
	reached bool
}

func (e *fetchError) Error() string { return e.url + ": " + e.cause }

func (r *IssuerReport) fetchFailed(check string, err error) {
	var fe *fetchError
	status := Unreachable
	if errors.As(err, &fe) && fe.reached {
		status = Wrong
	}
	r.add(check, status, "%v", err)
	r.clouds(false)
}

// fetch GETs u anonymously and returns its body, which must be JSON:
// application/json, or application/jwk-set+json for a JWKS.
func fetch(ctx context.Context, client *http.Client, u, what string) ([]byte, error) {
	req, err := http.NewRequestWithContext(ctx, http.MethodGet, u, nil)
	if err != nil {
		return nil, &fetchError{url: u, cause: err.Error()}
	}
	resp, err := client.Do(req)
	if err != nil {
		return nil, &fetchError{url: u, cause: "unreachable: " + err.Error()}
	}
	defer func() { _ = resp.Body.Close() }()
	if resp.StatusCode != http.StatusOK {
		return nil, &fetchError{url: u, cause: fmt.Sprintf("HTTP %d: the clouds need it served anonymously with 200", resp.StatusCode), reached: true}
	}
	ct := resp.Header.Get("Content-Type")
	mt, _, _ := mime.ParseMediaType(ct)
	if mt != "application/json" && !(what == "jwks" && mt == "application/jwk-set+json") {
		return nil, &fetchError{url: u, cause: fmt.Sprintf("served as %s: the clouds expect Content-Type application/json (set it on the object at the static host)", quote.Value(ct)), reached: true}
	}
	body, err := io.ReadAll(io.LimitReader(resp.Body, MaxIssuerDocumentBytes+1))
	if err != nil {
		return nil, &fetchError{url: u, cause: "reading: " + err.Error()}
	}
	if len(body) > MaxIssuerDocumentBytes {
		return nil, &fetchError{url: u, cause: fmt.Sprintf("larger than %d bytes: not a %s document", MaxIssuerDocumentBytes, what), reached: true}
	}
	return body, nil
}

// Published are the files `injector issuer publish` writes, by path
// relative to the host's root, and what they are served as.
type Published struct {
	// Files maps a path under the issuer's host to its content.
	Files map[string][]byte
	// Notes say what else to do, e.g. where the JWKS must be served.
	Notes []string
}

// Publish returns the documents to upload to a static host for the
// cluster's issuer: the API server's own discovery document and JWKS,
// at the paths under the issuer URL that the discovery document names.
func Publish(c ClusterIssuer) (*Published, error) {
	var d discovery
	if err := json.Unmarshal(c.Discovery, &d); err != nil || d.Issuer == "" {
		return nil, errors.New("the API server's /.well-known/openid-configuration names no issuer: is --service-account-issuer set?")
	}
	if err := ValidIssuer(d.Issuer); err != nil {
		return nil, fmt.Errorf("the API server's %w", err)
	}
	var keys jose.JSONWebKeySet
	if err := json.Unmarshal(c.JWKS, &keys); err != nil || len(keys.Keys) == 0 {
		return nil, fmt.Errorf("the API server's /openid/v1/jwks holds no keys (%v)", err)
	}
	iss, _ := url.Parse(d.Issuer)
	jwks, err := url.Parse(d.JWKSURI)
	if err != nil || jwks.Scheme != "https" {
		return nil, fmt.Errorf("the API server's jwks_uri %s is not an https URL: set --service-account-jwks-uri", quote.Value(d.JWKSURI))
	}
	base := strings.TrimSuffix(iss.Path, "/")
	p := &Published{Files: map[string][]byte{base + DiscoveryPath: c.Discovery}}
	if jwks.Host == iss.Host {
		p.Files[jwks.Path] = c.JWKS
	} else {
		p.Files[base+"/jwks.json"] = c.JWKS
		p.Notes = append(p.Notes, fmt.Sprintf("the discovery document names the JWKS at %s, another host: serve jwks.json there", d.JWKSURI))
	}
	p.Notes = append(p.Notes, fmt.Sprintf("serve every file anonymously over HTTPS at https://%s<path>, with Content-Type application/json", iss.Host),
		"publish again after every key rotation, before the API server signs with the new key: injector issuer check says when the copy is stale")
	return p, nil
}
