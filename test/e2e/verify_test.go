package e2e

import (
	"encoding/json"
	"encoding/pem"
	"os"
	"path/filepath"
	"strings"
	"testing"
)

// TestVerifyExchangesEachServiceAccountsTokenAsItsPodsWould: `injector
// verify` requests a token of each annotated ServiceAccount and trades it
// with the clouds' SDKs (the fakes here, which verify it against the
// cluster's JWKS and their trust): it reports each acceptance and each
// refusal, in the cloud's words, and exits 2 on a refusal.
func TestVerifyExchangesEachServiceAccountsTokenAsItsPodsWould(t *testing.T) {
	ns := namespace(t, nil)
	suffix := randomHex(4)
	trusted := "arn:aws:iam::111122223333:role/verify-" + suffix
	untrusted := "arn:aws:iam::111122223333:role/verify-untrusted-" + suffix
	app := "0c8d2e1a-7b3f-4c5d-9e6f-" + randomHex(6)
	serviceAccount(t, ns, "reports", map[string]string{"eks.amazonaws.com/role-arn": trusted})
	serviceAccount(t, ns, "billing", map[string]string{"eks.amazonaws.com/role-arn": untrusted})
	serviceAccount(t, ns, "agent", map[string]string{"azure.workload.identity/client-id": app, "azure.workload.identity/tenant-id": tenantID})
	serviceAccount(t, ns, "reader", gcpAnnotations())
	serviceAccount(t, ns, "plain", nil)
	fakes.STS.Trust(trusted, Subject(ns, "reports"))
	fakes.Entra.Trust(tenantID, app, Subject(ns, "agent"))
	fakes.Google.AllowImpersonation(gsaEmail, Subject(ns, "reader"))

	stdout, stderr, code := runVerify(t, "-n", ns, "-o", "json")
	if code != 2 {
		t.Errorf("exit code %d, want 2 (billing's role does not trust it)\n%s%s", code, stdout, stderr)
	}
	var results []struct{ ServiceAccount, Provider, Identity, Result, Detail string }
	if err := json.Unmarshal([]byte(stdout), &results); err != nil {
		t.Fatalf("%v\n%s%s", err, stdout, stderr)
	}
	got := map[string]string{}
	for _, r := range results {
		got[strings.TrimPrefix(r.ServiceAccount, ns+"/")+" "+r.Provider] = r.Result + ": " + r.Detail
	}
	for sa, want := range map[string]string{
		"reports aws": "accepted: temporary credentials " + AccessKeyFor(trusted, Subject(ns, "reports")),
		"billing aws": "refused: ",
		"agent azure": "accepted: an access token for application " + app,
		"reader gcp":  "accepted: an access token for the Google service account",
	} {
		if !strings.HasPrefix(got[sa], want) {
			t.Errorf("%s: %q, want %q", sa, got[sa], want)
		}
	}
	if !strings.Contains(got["billing aws"], "AccessDenied") {
		t.Errorf("billing: %q, want STS's AccessDenied", got["billing aws"])
	}
	if len(results) != 4 {
		t.Errorf("%d results, want 4 (plain names no identity): %+v", len(results), results)
	}

	t.Run("a serviceaccount named alone that has no identity is said to be so", func(t *testing.T) {
		stdout, _, code := runVerify(t, "-n", ns, "plain")
		if code != 0 || !strings.Contains(stdout, "skipped") || !strings.Contains(stdout, "names no identity") {
			t.Errorf("exit %d, output %q", code, stdout)
		}
	})
}

// runVerify runs the built injector's `verify` with the e2e injector's
// provider flags, the fake STS as the AWS SDK's endpoint, and the fake
// Entra's certificate trusted.
func runVerify(t *testing.T, args ...string) (stdout, stderr string, code int) {
	t.Helper()
	kubeconfig, err := cluster.Kubeconfig()
	if err != nil {
		t.Fatal(err)
	}
	ca := filepath.Join(t.TempDir(), "entra.pem")
	if err := os.WriteFile(ca, pem.EncodeToMemory(&pem.Block{Type: "CERTIFICATE", Bytes: fakes.Entra.Server.Certificate().Raw}), 0o600); err != nil {
		t.Fatal(err)
	}
	full := append([]string{"verify", "--kubeconfig", kubeconfig}, providerArgs()...)
	return runBinary(t, []string{"AWS_ENDPOINT_URL_STS=" + fakes.STS.URL, "SSL_CERT_FILE=" + ca, "SSL_CERT_DIR=" + filepath.Dir(ca),
		"AWS_CONFIG_FILE=/dev/null", "AWS_SHARED_CREDENTIALS_FILE=/dev/null"}, append(full, args...)...)
}
