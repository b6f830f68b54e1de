package e2e

import (
	"encoding/base64"
	"encoding/json"
	"os"
	"strings"
	"testing"

	alibaba "github.com/aliyun/credentials-go/credentials/providers"
	"github.com/oracle/oci-go-sdk/v65/common/auth"
)

// The declarative providers of deploy/providers, as shipped, injected by
// the running injector (--provider-config), with their clouds' own SDKs
// as the clients of what they inject.

const alibabaRole = "acs:ram::1234567890123456:role/oss-reader"

func TestAlibabaPodIsInjectedAndTheSDKGetsCredentials(t *testing.T) {
	ns := namespace(t, nil)
	serviceAccount(t, ns, "reader", map[string]string{"pod-identity.alibabacloud.com/role-name": "oss-reader"})
	serviceAccount(t, ns, "intruder", map[string]string{"pod-identity.alibabacloud.com/role-name": "oss-reader"})
	fakes.Alibaba.Trust(alibabaRole, Subject(ns, "reader"))

	stored := storedPod(t, ns, podSpec("web", "reader"))
	assertInjected(t, stored, "rrsa-oidc-token", "/var/run/secrets/ack.alibabacloud.com/rrsa-tokens", map[string]string{
		"ALIBABA_CLOUD_ROLE_ARN":          alibabaRole,
		"ALIBABA_CLOUD_OIDC_PROVIDER_ARN": alibabaOIDCProvider,
		"ALIBABA_CLOUD_OIDC_TOKEN_FILE":   "/var/run/secrets/ack.alibabacloud.com/rrsa-tokens/token",
		// As ack-pod-identity-webhook 0.4.0 does by default.
		"ALIBABA_CLOUD_STS_REGION":           "cn-hangzhou",
		"ALIBABA_CLOUD_STS_ENDPOINT":         "sts-vpc.cn-hangzhou.aliyuncs.com",
		"ALIBABA_CLOUD_VPC_ENDPOINT_ENABLED": "true",
	})
	src := volume(stored, "rrsa-oidc-token").Projected.Sources[0].ServiceAccountToken
	if src.Audience != AlibabaAudience || src.ExpirationSeconds == nil || *src.ExpirationSeconds != 3600 {
		t.Errorf("token projection %+v", src)
	}
	files := podFiles{t.TempDir()}
	projectToken(t, stored, "rrsa-oidc-token", files)
	setContainerEnv(t, stored.Spec.Containers[0], files, nil)
	key, err := alibabaCredentials()
	if err != nil {
		t.Fatalf("credentials-go could not assume the role with the injected environment: %v", err)
	}
	if want := AlibabaAccessKeyFor(alibabaRole, Subject(ns, "reader")); key != want {
		t.Errorf("access key %q, want the fake's %q", key, want)
	}

	t.Run("the same role through a serviceaccount the trust policy does not name is refused", func(t *testing.T) {
		other := storedPod(t, ns, podSpec("other", "intruder"))
		files := podFiles{t.TempDir()}
		projectToken(t, other, "rrsa-oidc-token", files)
		setContainerEnv(t, other.Spec.Containers[0], files, nil)
		if _, err := alibabaCredentials(); err == nil || !strings.Contains(err.Error(), "may not assume") {
			t.Errorf("error %v, want the fake's refusal", err)
		}
	})
}

// alibabaCredentials asks Alibaba's credentials library for credentials
// as a pod would: everything from the environment but the STS endpoint,
// which is the fake.
func alibabaCredentials() (string, error) {
	// The endpoint given here wins over the one the SDK would build from
	// the injected region and VPC switch (sts-vpc.<region>.aliyuncs.com).
	p, err := alibaba.NewOIDCCredentialsProviderBuilder().WithSTSEndpoint(fakes.Alibaba.Host()).Build()
	if err != nil {
		return "", err
	}
	c, err := p.GetCredentials()
	if err != nil {
		return "", err
	}
	return c.AccessKeyId, nil
}

func TestOKEPodIsInjectedAndTheSDKGetsASessionToken(t *testing.T) {
	ns := namespace(t, nil)
	serviceAccount(t, ns, "reader", map[string]string{"oci.pod-identity.io/region": "us-ashburn-1"})
	use := withLabels(map[string]string{"oci.pod-identity.io/use": "true"})

	stored := storedPod(t, ns, podSpec("web", "reader", use))
	assertInjected(t, stored, "oci-workload-identity-token", "/var/run/secrets/oci/serviceaccount", map[string]string{
		"OCI_RESOURCE_PRINCIPAL_VERSION":            "2.2",
		"OCI_RESOURCE_PRINCIPAL_REGION":             "us-ashburn-1",
		"OCI_KUBERNETES_SERVICE_ACCOUNT_TOKEN_PATH": "/var/run/secrets/oci/serviceaccount/token",
	})
	if src := volume(stored, "oci-workload-identity-token").Projected.Sources[0].ServiceAccountToken; src.Audience != okeAudience {
		t.Errorf("token audience %q, want %q", src.Audience, okeAudience)
	}
	files := podFiles{t.TempDir()}
	projectToken(t, stored, "oci-workload-identity-token", files)
	setContainerEnv(t, stored.Spec.Containers[0], files, nil)
	// What the kubelet and OKE give every pod: the API server's address
	// (here the fake exchange's) and the cluster CA.
	ca := files.path("/var/run/secrets/kubernetes.io/serviceaccount/ca.crt")
	if err := os.MkdirAll(strings.TrimSuffix(ca, "/ca.crt"), 0o700); err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(ca, fakes.OKE.CAPEM, 0o600); err != nil {
		t.Fatal(err)
	}
	t.Setenv("KUBERNETES_SERVICE_HOST", fakes.OKE.Host)
	t.Setenv("OCI_KUBERNETES_SERVICE_ACCOUNT_CERT_PATH", ca)

	p, err := auth.OkeWorkloadIdentityConfigurationProviderWithServiceAccountTokenProvider(
		auth.NewDefaultServiceAccountTokenProvider().WithSaTokenPath(os.Getenv("OCI_KUBERNETES_SERVICE_ACCOUNT_TOKEN_PATH")))
	if err != nil {
		t.Fatalf("the OCI SDK would not start from the injected environment: %v", err)
	}
	if region, err := p.Region(); err != nil || region != "us-ashburn-1" {
		t.Errorf("region %q (%v), want us-ashburn-1", region, err)
	}
	keyID, err := p.KeyID()
	if err != nil {
		t.Fatalf("the OCI SDK got no session token: %v", err)
	}
	if sub := jwtSubject(t, strings.TrimPrefix(keyID, "ST$")); sub != OKEPrincipal(Subject(ns, "reader")) {
		t.Errorf("session token for %q, want %q", sub, OKEPrincipal(Subject(ns, "reader")))
	}

	t.Run("a token of another audience is refused by the exchange", func(t *testing.T) {
		path := os.Getenv("OCI_KUBERNETES_SERVICE_ACCOUNT_TOKEN_PATH")
		writeToken(t, ns, "reader", AlibabaAudience, nil, stored, "/var/run/secrets/oci/serviceaccount/token", files)
		p, err := auth.OkeWorkloadIdentityConfigurationProviderWithServiceAccountTokenProvider(auth.NewDefaultServiceAccountTokenProvider().WithSaTokenPath(path))
		if err != nil {
			t.Fatal(err)
		}
		if _, err := p.KeyID(); err == nil || !strings.Contains(err.Error(), "does not include") {
			t.Errorf("error %v, want the fake's audience refusal", err)
		}
	})
	t.Run("a pod without the label is not injected", func(t *testing.T) {
		plain := storedPod(t, ns, podSpec("plain", "reader"))
		if volume(plain, "oci-workload-identity-token") != nil || envOf(plain.Spec.Containers[0])["OCI_RESOURCE_PRINCIPAL_VERSION"] != "" {
			t.Errorf("pod %s was injected without oci.pod-identity.io/use=true", plain.Name)
		}
	})
}

func jwtSubject(t *testing.T, token string) string {
	t.Helper()
	parts := strings.Split(token, ".")
	if len(parts) != 3 {
		t.Fatalf("session token %q is not a JWT", token)
	}
	raw, err := base64.RawURLEncoding.DecodeString(parts[1])
	if err != nil {
		t.Fatal(err)
	}
	var c struct{ Sub string }
	if err := json.Unmarshal(raw, &c); err != nil {
		t.Fatal(err)
	}
	return c.Sub
}
