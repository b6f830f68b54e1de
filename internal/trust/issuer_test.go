package trust

import (
	"context"
	"crypto/rand"
	"crypto/rsa"
	"encoding/json"
	"net/http"
	"net/http/httptest"
	"strings"
	"testing"

	jose "github.com/go-jose/go-jose/v4"
)

// issuerKit is a cluster's issuer (its key, documents and a token) and a
// stand-in for its public host, whose documents each case may change.
type issuerKit struct {
	key       *rsa.PrivateKey
	kid       string
	discovery map[string]any
	jwks      []byte
	token     string
}

func newIssuerKit(t *testing.T, issuer string) *issuerKit {
	t.Helper()
	key, err := rsa.GenerateKey(rand.Reader, 2048)
	if err != nil {
		t.Fatal(err)
	}
	k := &issuerKit{key: key, kid: "current-key"}
	k.jwks = jwksOf(t, k.kid, &key.PublicKey)
	k.discovery = map[string]any{"issuer": issuer, "jwks_uri": issuer + "/openid/v1/jwks", "response_types_supported": []string{"id_token"},
		"subject_types_supported": []string{"public"}, "id_token_signing_alg_values_supported": []string{"RS256"}}
	signer, err := jose.NewSigner(jose.SigningKey{Algorithm: jose.RS256, Key: jose.JSONWebKey{Key: key, KeyID: k.kid}}, nil)
	if err != nil {
		t.Fatal(err)
	}
	jws, err := signer.Sign([]byte(`{"iss":"` + issuer + `","sub":"system:serviceaccount:default:default"}`))
	if err != nil {
		t.Fatal(err)
	}
	if k.token, err = jws.CompactSerialize(); err != nil {
		t.Fatal(err)
	}
	return k
}

func jwksOf(t *testing.T, kid string, pub *rsa.PublicKey) []byte {
	t.Helper()
	b, err := json.Marshal(jose.JSONWebKeySet{Keys: []jose.JSONWebKey{{Key: pub, KeyID: kid, Algorithm: "RS256", Use: "sig"}}})
	if err != nil {
		t.Fatal(err)
	}
	return b
}

func (k *issuerKit) cluster(t *testing.T) ClusterIssuer {
	d, err := json.Marshal(k.discovery)
	if err != nil {
		t.Fatal(err)
	}
	return ClusterIssuer{Discovery: d, JWKS: k.jwks, Token: k.token}
}

func TestCheckIssuer(t *testing.T) {
	for _, tt := range []struct {
		name string
		// public changes what the public host serves.
		public       func(t *testing.T, k *issuerKit, discovery map[string]any, jwks *[]byte, jwksType *string)
		want         Status
		check, words string
	}{
		{"a copy of the API server's own documents is what the clouds need", nil, OK, "signing key", "verifies against the published key"},
		{"an issuer with a trailing slash is wrong", func(t *testing.T, k *issuerKit, d map[string]any, _ *[]byte, _ *string) {
			d["issuer"] = d["issuer"].(string) + "/"
		}, Wrong, "issuer", "only by a trailing slash"},
		{"a JWKS from before a key rotation is stale", func(t *testing.T, k *issuerKit, _ map[string]any, jwks *[]byte, _ *string) {
			old, _ := rsa.GenerateKey(rand.Reader, 2048)
			*jwks = jwksOf(t, "key-before-rotation", &old.PublicKey)
		}, Wrong, "signing key", "is not published: the public JWKS is stale"},
		{"another key under the signing key's ID is wrong", func(t *testing.T, k *issuerKit, _ map[string]any, jwks *[]byte, _ *string) {
			other, _ := rsa.GenerateKey(rand.Reader, 2048)
			*jwks = jwksOf(t, k.kid, &other.PublicKey)
		}, Wrong, "signing key", "does not verify the API server's tokens"},
		{"a JWKS served as text is wrong", func(t *testing.T, _ *issuerKit, _ map[string]any, _ *[]byte, ct *string) {
			*ct = "text/plain"
		}, Wrong, "jwks", `served as "text/plain": the clouds expect Content-Type application/json`},
		{"a jwks_uri that is not https is wrong", func(t *testing.T, _ *issuerKit, d map[string]any, _ *[]byte, _ *string) {
			d["jwks_uri"] = "http://example.com/jwks"
		}, Wrong, "jwks", "is not an https URL"},
	} {
		t.Run(tt.name, func(t *testing.T) {
			var k *issuerKit
			var discovery map[string]any
			var jwks []byte
			jwksType := "application/json"
			srv := httptest.NewTLSServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
				switch r.URL.Path {
				case DiscoveryPath:
					w.Header().Set("Content-Type", "application/json")
					_ = json.NewEncoder(w).Encode(discovery)
				case "/openid/v1/jwks":
					w.Header().Set("Content-Type", jwksType)
					_, _ = w.Write(jwks)
				default:
					http.NotFound(w, r)
				}
			}))
			defer srv.Close()
			k = newIssuerKit(t, srv.URL)
			discovery = map[string]any{}
			for key, v := range k.discovery {
				discovery[key] = v
			}
			jwks = k.jwks
			if tt.public != nil {
				tt.public(t, k, discovery, &jwks, &jwksType)
			}
			r, err := CheckIssuer(context.Background(), srv.Client(), k.cluster(t), "")
			if err != nil {
				t.Fatal(err)
			}
			if r.Worst() != tt.want {
				t.Errorf("worst %s, want %s: %+v", r.Worst(), tt.want, r.Verdicts)
			}
			found := false
			for _, v := range r.Verdicts {
				found = found || (v.Check == tt.check && strings.Contains(v.Message, tt.words))
			}
			if !found {
				t.Errorf("no %s verdict saying %q: %+v", tt.check, tt.words, r.Verdicts)
			}
			if aws := r.Clouds[0]; (aws.Status == OK) != (tt.want == OK) {
				t.Errorf("aws verdict %+v with the issuer %s", aws, tt.want)
			}
		})
	}
	t.Run("a host that does not answer is unreachable", func(t *testing.T) {
		srv := httptest.NewTLSServer(http.NotFoundHandler())
		client := srv.Client()
		url := srv.URL
		srv.Close()
		k := newIssuerKit(t, url)
		r, err := CheckIssuer(context.Background(), client, k.cluster(t), "")
		if err != nil {
			t.Fatal(err)
		}
		if r.Worst() != Unreachable || !strings.Contains(r.Verdicts[0].Message, "unreachable") {
			t.Errorf("verdicts %+v, want unreachable", r.Verdicts)
		}
	})
	t.Run("a public URL other than the tokens' issuer is wrong", func(t *testing.T) {
		k := newIssuerKit(t, "https://issuer.example.com")
		r, err := CheckIssuer(context.Background(), http.DefaultClient, k.cluster(t), "http://issuer.example.com")
		if err != nil {
			t.Fatal(err)
		}
		if r.Worst() != Wrong || !strings.Contains(r.Verdicts[0].Message, "expected an https:// URL") {
			t.Errorf("verdicts %+v", r.Verdicts)
		}
	})
}

func TestPublishWritesTheAPIServersOwnDocuments(t *testing.T) {
	k := newIssuerKit(t, "https://example.s3.amazonaws.com/clusters/prod")
	c := k.cluster(t)
	p, err := Publish(c)
	if err != nil {
		t.Fatal(err)
	}
	if got := string(p.Files["/clusters/prod/.well-known/openid-configuration"]); got != string(c.Discovery) {
		t.Errorf("discovery %q", got)
	}
	if got := string(p.Files["/clusters/prod/openid/v1/jwks"]); got != string(c.JWKS) {
		t.Errorf("jwks %q; files %v", got, p.Files)
	}
	if _, err := Publish(ClusterIssuer{Discovery: []byte(`{}`), JWKS: c.JWKS}); err == nil || !strings.Contains(err.Error(), "names no issuer") {
		t.Errorf("error %v", err)
	}
}
