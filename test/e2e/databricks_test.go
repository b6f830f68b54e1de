package e2e

import (
	"crypto/tls"
	"crypto/x509"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net/http"
	"net/url"
	"os"
	"path/filepath"
	"strings"
	"testing"
)

// TestDatabricksWorkloadIdentityWithThePodsOwnToken:
// deploy/providers/databricks.yaml, loaded by the suite's injector. The
// federation policy `injector trust` prints is added to the fake's service
// principal as `databricks account service-principal-federation-policy
// create` would; a client configured from the environment the pod gets
// exchanges the pod's token at the workspace and reads /Me with the access
// token. Another ServiceAccount's token, and a token for another audience,
// are refused by the policy.
func TestDatabricksWorkloadIdentityWithThePodsOwnToken(t *testing.T) {
	ns := namespace(t, nil)
	clientID := strings.Join([]string{randomHex(4), randomHex(2), randomHex(2), randomHex(2), randomHex(6)}, "-")
	annotations := map[string]string{
		"databricks.pod-identity.io/client-id": clientID,
		"databricks.pod-identity.io/host":      fakes.Databricks.URL,
	}
	reader := serviceAccount(t, ns, "reader", annotations)
	serviceAccount(t, ns, "intruder", annotations)
	docs := printTrustWith(t, []string{"--provider-config", filepath.Join(cluster.repoRoot, "deploy", "providers", "databricks.yaml")}, reader)
	if len(docs) != 1 || docs[0].Target != "service principal "+clientID {
		t.Fatalf("injector trust printed %+v, want the federation policy of service principal %s", docs, clientID)
	}
	if err := fakes.Databricks.AddPolicy(clientID, docs[0].Object); err != nil {
		t.Fatal(err)
	}

	stored := storedPod(t, ns, podSpec("web", "reader"))
	assertInjected(t, stored, "databricks-identity-token", "/var/run/secrets/databricks", map[string]string{
		"DATABRICKS_AUTH_TYPE":           "file-oidc",
		"DATABRICKS_CLIENT_ID":           clientID,
		"DATABRICKS_OIDC_TOKEN_FILEPATH": "/var/run/secrets/databricks/token",
		"DATABRICKS_HOST":                fakes.Databricks.URL,
	})
	if src := volume(stored, "databricks-identity-token").Projected.Sources[0].ServiceAccountToken; src.Audience != DatabricksAudience || *src.ExpirationSeconds != 3600 {
		t.Errorf("token projection %+v, want audience %s for 3600 s", src, DatabricksAudience)
	}
	exchanges(t, ns, stored, "databricks-identity-token", "/var/run/secrets/databricks/token", "reader", DatabricksAudience, 3600, nil,
		func() (string, error) { return databricksMe(fakes.Databricks.CAFile) }, clientID, []exchange{
			{name: "the pod's own token is exchanged and reads the service principal", sa: "reader", audience: DatabricksAudience},
			{name: "another serviceaccount's token is refused by the policy's subject", sa: "intruder", audience: DatabricksAudience, refusal: "subject claim sub"},
			{name: "a token for another audience is refused by the policy's audiences", sa: "reader", audience: "vault", refusal: "is not one of [databricks]"},
		})
}

// databricksMe is a minimal Databricks client, written from the documented
// protocol because the Databricks SDK for Go is not available to this
// module (the module proxy does not serve it). Like the SDK's file-oidc
// credentials, it takes everything from the environment: DATABRICKS_HOST,
// DATABRICKS_CLIENT_ID and the token file DATABRICKS_OIDC_TOKEN_FILEPATH
// names (read at each exchange), and checks DATABRICKS_AUTH_TYPE picks
// that method. It exchanges the token at <host>/oidc/v1/token (a
// workspace's endpoint; the SDK finds it through the host's
// /oidc/.well-known/oauth-authorization-server) and calls GET
// <host>/api/2.0/preview/scim/v2/Me with the access token. caFile is the
// CA a client behind a private CA would be given. It returns the user name
// /Me reports.
func databricksMe(caFile string) (string, error) {
	if got := os.Getenv("DATABRICKS_AUTH_TYPE"); got != "file-oidc" {
		return "", fmt.Errorf("DATABRICKS_AUTH_TYPE is %q, not file-oidc", got)
	}
	host := strings.TrimSuffix(os.Getenv("DATABRICKS_HOST"), "/")
	clientID, file := os.Getenv("DATABRICKS_CLIENT_ID"), os.Getenv("DATABRICKS_OIDC_TOKEN_FILEPATH")
	if host == "" || clientID == "" || file == "" {
		return "", errors.New("DATABRICKS_HOST, DATABRICKS_CLIENT_ID and DATABRICKS_OIDC_TOKEN_FILEPATH are required")
	}
	caPEM, err := os.ReadFile(caFile)
	if err != nil {
		return "", err
	}
	roots := x509.NewCertPool()
	if !roots.AppendCertsFromPEM(caPEM) {
		return "", errors.New("no certificate in " + caFile)
	}
	client := &http.Client{Transport: &http.Transport{TLSClientConfig: &tls.Config{RootCAs: roots, MinVersion: tls.VersionTLS12}}}
	idToken, err := os.ReadFile(file)
	if err != nil {
		return "", err
	}
	resp, err := client.PostForm(host+"/oidc/v1/token", url.Values{
		"grant_type":         {"urn:ietf:params:oauth:grant-type:token-exchange"},
		"subject_token_type": {"urn:ietf:params:oauth:token-type:jwt"},
		"subject_token":      {strings.TrimSpace(string(idToken))},
		"client_id":          {clientID},
		"scope":              {"all-apis"},
	})
	if err != nil {
		return "", err
	}
	var tok struct {
		AccessToken string `json:"access_token"`
		TokenType   string `json:"token_type"`
	}
	if err := readDatabricksJSON(resp, "token exchange", &tok); err != nil {
		return "", err
	}
	if tok.AccessToken == "" || !strings.EqualFold(tok.TokenType, "bearer") {
		return "", fmt.Errorf("token exchange: no bearer token in the response")
	}
	req, err := http.NewRequest(http.MethodGet, host+"/api/2.0/preview/scim/v2/Me", nil)
	if err != nil {
		return "", err
	}
	req.Header.Set("Authorization", "Bearer "+tok.AccessToken)
	resp, err = client.Do(req)
	if err != nil {
		return "", err
	}
	var me struct {
		UserName string `json:"userName"`
	}
	if err := readDatabricksJSON(resp, "scim/v2/Me", &me); err != nil {
		return "", err
	}
	return me.UserName, nil
}

// readDatabricksJSON decodes a 200 response into v; any other status is
// an error carrying the body.
func readDatabricksJSON(resp *http.Response, what string, v any) error {
	defer resp.Body.Close()
	body, err := io.ReadAll(resp.Body)
	if err != nil {
		return err
	}
	if resp.StatusCode != http.StatusOK {
		return fmt.Errorf("%s: %s: %s", what, resp.Status, body)
	}
	return json.Unmarshal(body, v)
}
