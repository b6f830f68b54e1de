package e2e

import (
	"crypto/tls"
	"crypto/x509"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net/http"
	"os"
	"path/filepath"
	"testing"

	stackitauth "github.com/stackitcloud/stackit-sdk-go/core/auth"
	stackitconfig "github.com/stackitcloud/stackit-sdk-go/core/config"
)

// stackitProject is the project the test's service account belongs to.
const stackitProject = "3f2a9c1e-7b4d-4e8a-9c0f-1a2b3c4d5e6f"

// TestSTACKITWorkloadIdentityWithThePodsOwnToken:
// deploy/providers/stackit.yaml, loaded by the suite's injector. The
// federation `injector trust` prints is added to the fake's service account
// as the service-account API would; STACKIT's own SDK (core v0.27.1),
// configured from the environment the pod gets, exchanges the pod's token
// at the ServiceAccount's token endpoint and lists the project's service
// accounts with the access token. Another ServiceAccount's token, and a
// token for another audience, are refused by the federation's assertions.
func TestSTACKITWorkloadIdentityWithThePodsOwnToken(t *testing.T) {
	ns := namespace(t, nil)
	email := "reader-" + randomHex(4) + "-aBc2defg@sa.stackit.cloud"
	endpoint := fakes.STACKIT.URL + "/oauth/v2/token"
	annotations := map[string]string{
		"workload-identity.stackit.cloud/service-account-email": email,
		"workload-identity.stackit.cloud/idp-token-endpoint":    endpoint,
		"workload-identity.stackit.cloud/project-id":            stackitProject,
	}
	reader := serviceAccount(t, ns, "reader", annotations)
	serviceAccount(t, ns, "intruder", annotations)
	docs := printTrustWith(t, []string{"--provider-config", filepath.Join(cluster.repoRoot, "deploy", "providers", "stackit.yaml")}, reader)
	if len(docs) != 1 || docs[0].Target != email {
		t.Fatalf("injector trust printed %+v, want the federation of %s", docs, email)
	}
	if err := fakes.STACKIT.AddFederation(email, docs[0].Object); err != nil {
		t.Fatal(err)
	}

	stored := storedPod(t, ns, podSpec("web", "reader"))
	assertInjected(t, stored, "stackit-workload-identity", "/var/run/secrets/stackit.cloud/serviceaccount", map[string]string{
		"STACKIT_SERVICE_ACCOUNT_EMAIL": email,
		"STACKIT_FEDERATED_TOKEN_FILE":  "/var/run/secrets/stackit.cloud/serviceaccount/token",
		"STACKIT_IDP_TOKEN_ENDPOINT":    endpoint,
	})
	if src := volume(stored, "stackit-workload-identity").Projected.Sources[0].ServiceAccountToken; src.Audience != STACKITAudience || *src.ExpirationSeconds != 600 {
		t.Errorf("token projection %+v, want audience %s for 600 s", src, STACKITAudience)
	}
	exchanges(t, ns, stored, "stackit-workload-identity", "/var/run/secrets/stackit.cloud/serviceaccount/token", "reader", STACKITAudience, 600, nil,
		func() (string, error) {
			return listSTACKITServiceAccounts(fakes.STACKIT.URL, stackitProject, fakes.STACKIT.CAFile)
		}, email, []exchange{
			{name: "the pod's own token is exchanged and lists the project's service accounts", sa: "reader", audience: STACKITAudience},
			{name: "another serviceaccount's token is refused by the federation's subject assertion", sa: "intruder", audience: STACKITAudience, refusal: "assertion sub equals"},
			{name: "a token for another audience is refused by the federation's audience assertion", sa: "reader", audience: "vault", refusal: "assertion aud equals"},
		})
}

// listSTACKITServiceAccounts makes one service-account API call as an
// application's STACKIT service client does: it gives the SDK nothing but
// an HTTP client (config.WithHTTPClient; here one that trusts the fake's CA,
// as an application behind a private CA would), and auth.SetupAuth, which
// the generated clients call, finds the workload identity flow in the
// environment alone (STACKIT_SERVICE_ACCOUNT_EMAIL,
// STACKIT_FEDERATED_TOKEN_FILE, STACKIT_IDP_TOKEN_ENDPOINT). The round
// tripper it returns exchanges the token on the first request. It returns
// the email of the first service account listed.
func listSTACKITServiceAccounts(baseURL, project, caFile string) (string, error) {
	caPEM, err := os.ReadFile(caFile)
	if err != nil {
		return "", err
	}
	roots := x509.NewCertPool()
	if !roots.AppendCertsFromPEM(caPEM) {
		return "", errors.New("no certificate in " + caFile)
	}
	client := &http.Client{Transport: &http.Transport{TLSClientConfig: &tls.Config{RootCAs: roots, MinVersion: tls.VersionTLS12}}}
	cfg := &stackitconfig.Configuration{}
	if err := stackitconfig.WithHTTPClient(client)(cfg); err != nil {
		return "", err
	}
	rt, err := stackitauth.SetupAuth(cfg)
	if err != nil {
		return "", err
	}
	client.Transport = rt
	resp, err := client.Get(baseURL + "/v2/projects/" + project + "/service-accounts")
	if err != nil {
		return "", err
	}
	defer resp.Body.Close()
	body, err := io.ReadAll(resp.Body)
	if err != nil {
		return "", err
	}
	if resp.StatusCode != http.StatusOK {
		return "", fmt.Errorf("service-account API: %s: %s", resp.Status, body)
	}
	var list struct {
		Items []struct {
			Email string `json:"email"`
		} `json:"items"`
	}
	if err := json.Unmarshal(body, &list); err != nil || len(list.Items) == 0 {
		return "", fmt.Errorf("service-account API: %s: %v", body, err)
	}
	return list.Items[0].Email, nil
}
