package gcp

import (
	"context"
	"encoding/json"
	"net/http"
	"net/http/httptest"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"golang.org/x/oauth2/google"
	corev1 "k8s.io/api/core/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"

	"github.com/pod-identity/injector/pkg/providers"
)

const wif = "projects/123456789012/locations/global/workloadIdentityPools/on-prem/providers/cluster-a"

func request(ann map[string]string) providers.Request {
	return providers.Request{
		Namespace: "ns", PodName: "p",
		PodMeta:        &metav1.ObjectMeta{},
		PodSpec:        &corev1.PodSpec{Containers: []corev1.Container{{Name: "c"}}},
		ServiceAccount: &corev1.ServiceAccount{ObjectMeta: metav1.ObjectMeta{Name: "sa", Namespace: "ns", Annotations: ann}},
	}
}

// fakeGoogle serves the two endpoints an external_account credential talks
// to and records what it was asked.
type fakeGoogle struct {
	subjectToken string
	stsForm      map[string]string
	impersonated string
}

func (f *fakeGoogle) server(t *testing.T) *httptest.Server {
	mux := http.NewServeMux()
	mux.HandleFunc("POST /v1/token", func(w http.ResponseWriter, r *http.Request) {
		if err := r.ParseForm(); err != nil {
			http.Error(w, err.Error(), http.StatusBadRequest)
			return
		}
		f.stsForm = map[string]string{}
		for k := range r.PostForm {
			f.stsForm[k] = r.PostForm.Get(k)
		}
		if r.PostForm.Get("subject_token") != f.subjectToken {
			http.Error(w, `{"error":"invalid_grant"}`, http.StatusBadRequest)
			return
		}
		w.Header().Set("Content-Type", "application/json")
		_, _ = w.Write([]byte(`{"access_token":"federated-token","issued_token_type":"urn:ietf:params:oauth:token-type:access_token","token_type":"Bearer","expires_in":3600}`))
	})
	mux.HandleFunc("POST /v1/projects/-/serviceAccounts/{name}", func(w http.ResponseWriter, r *http.Request) {
		if r.Header.Get("Authorization") != "Bearer federated-token" {
			http.Error(w, "not the federated token", http.StatusUnauthorized)
			return
		}
		f.impersonated = r.PathValue("name")
		w.Header().Set("Content-Type", "application/json")
		_, _ = w.Write([]byte(`{"accessToken":"impersonated-token","expireTime":"` + time.Now().Add(time.Hour).UTC().Format(time.RFC3339) + `"}`))
	})
	s := httptest.NewServer(mux)
	t.Cleanup(s.Close)
	return s
}

// TestCredentialConfigurationIsAcceptedByGoogleOAuth2 checks that the JSON the
// provider writes is read by golang.org/x/oauth2/google and leads it to the
// token URL with the provider's audience, then to the impersonation URL.
func TestCredentialConfigurationIsAcceptedByGoogleOAuth2(t *testing.T) {
	tests := []struct {
		name         string
		ann          map[string]string
		wantToken    string
		impersonated string
	}{
		{name: "direct resource access uses the federated token", ann: map[string]string{ProviderAnnotation: wif}, wantToken: "federated-token"},
		{name: "an email makes it impersonate that service account", ann: map[string]string{ProviderAnnotation: wif, EmailAnnotation: "reader@my-project.iam.gserviceaccount.com", LifetimeAnnotation: "1800"},
			wantToken: "impersonated-token", impersonated: "reader@my-project.iam.gserviceaccount.com:generateAccessToken"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			fake := &fakeGoogle{subjectToken: "kubernetes-token"}
			srv := fake.server(t)
			p, err := New(Config{TokenURL: srv.URL + "/v1/token", IAMCredentialsURL: srv.URL})
			if err != nil {
				t.Fatal(err)
			}
			inj, err := p.Inject(request(tt.ann))
			if err != nil {
				t.Fatal(err)
			}
			raw := inj.Annotations[CredentialsAnnotation]
			var cc CredentialConfig
			if err := json.Unmarshal([]byte(raw), &cc); err != nil {
				t.Fatal(err)
			}
			if cc.CredentialSource.File != "/var/run/secrets/sts.googleapis.com/serviceaccount/token" {
				t.Fatalf("credential_source.file = %q", cc.CredentialSource.File)
			}
			// Rebase the token file into the test's directory, as the kubelet would mount it.
			tokenFile := filepath.Join(t.TempDir(), "token")
			if err := os.WriteFile(tokenFile, []byte(fake.subjectToken), 0o600); err != nil {
				t.Fatal(err)
			}
			rebased := strings.Replace(raw, cc.CredentialSource.File, tokenFile, 1)

			//lint:ignore SA1019 the API cloud clients call
			creds, err := google.CredentialsFromJSON(context.Background(), []byte(rebased), "https://www.googleapis.com/auth/cloud-platform")
			if err != nil {
				t.Fatalf("google.CredentialsFromJSON refused the configuration: %v\n%s", err, raw)
			}
			tok, err := creds.TokenSource.Token()
			if err != nil {
				t.Fatalf("Token(): %v", err)
			}
			if tok.AccessToken != tt.wantToken {
				t.Errorf("access token = %q, want %q", tok.AccessToken, tt.wantToken)
			}
			if got := fake.stsForm["audience"]; got != "//iam.googleapis.com/"+wif {
				t.Errorf("STS audience = %q", got)
			}
			if got := fake.stsForm["subject_token_type"]; got != "urn:ietf:params:oauth:token-type:jwt" {
				t.Errorf("subject_token_type = %q", got)
			}
			if fake.impersonated != tt.impersonated {
				t.Errorf("impersonated %q, want %q", fake.impersonated, tt.impersonated)
			}
		})
	}
}

func TestProviderAnnotationValidation(t *testing.T) {
	for name, tt := range map[string]struct {
		ann   map[string]string
		valid bool
	}{
		"a full provider resource is accepted":                              {map[string]string{ProviderAnnotation: wif}, true},
		"a provider with a location other than global":                      {map[string]string{ProviderAnnotation: strings.Replace(wif, "global", "europe-west1", 1)}, false},
		"a project ID instead of a number":                                  {map[string]string{ProviderAnnotation: strings.Replace(wif, "123456789012", "my-project", 1)}, false},
		"a missing providers segment":                                       {map[string]string{ProviderAnnotation: "projects/1/locations/global/workloadIdentityPools/pool"}, false},
		"an email that is not one":                                          {map[string]string{ProviderAnnotation: wif, EmailAnnotation: "reader"}, false},
		"an impersonation lifetime above twelve hours is only warned about": {map[string]string{ProviderAnnotation: wif, EmailAnnotation: "a@b.iam.gserviceaccount.com", LifetimeAnnotation: "86400"}, true},
		"an impersonation lifetime of exactly ten minutes":                  {map[string]string{ProviderAnnotation: wif, EmailAnnotation: "a@b.iam.gserviceaccount.com", LifetimeAnnotation: "600"}, true},
		"an impersonation lifetime of exactly twelve hours":                 {map[string]string{ProviderAnnotation: wif, EmailAnnotation: "a@b.iam.gserviceaccount.com", LifetimeAnnotation: "43200"}, true},
		"a domain-scoped project id is accepted":                            {map[string]string{ProviderAnnotation: wif, ProjectAnnotation: "example.com:my-project"}, true},
		"a project derived from the email is not needed":                    {map[string]string{ProviderAnnotation: wif, EmailAnnotation: "a@example.com"}, true},
	} {
		t.Run(name, func(t *testing.T) {
			p, _ := New(Config{})
			_, err := p.Inject(request(tt.ann))
			if tt.valid && err != nil {
				t.Errorf("refused: %v", err)
			}
			if !tt.valid && !providers.IsInvalid(err) {
				t.Errorf("error = %v, want an invalid-configuration error", err)
			}
		})
	}
}
