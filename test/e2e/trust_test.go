package e2e

import (
	"bytes"
	"context"
	"encoding/json"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"

	"github.com/aws/aws-sdk-go-v2/aws"
	"github.com/aws/aws-sdk-go-v2/config"
	corev1 "k8s.io/api/core/v1"
	"k8s.io/utils/ptr"
	"sigs.k8s.io/yaml"
)

// TestThePrintedTrustIsWhatTheCloudNeeds: `injector trust` prints each
// ServiceAccount's IAM trust policy for the cluster's issuer; the fake STS
// evaluates those documents as IAM does. A pod's injected token is
// accepted by its own ServiceAccount's role and refused by another's.
func TestThePrintedTrustIsWhatTheCloudNeeds(t *testing.T) {
	ns := namespace(t, nil)
	roleOf := map[string]string{"reports": "arn:aws:iam::111122223333:role/trust-" + ns + "-reports", "billing": "arn:aws:iam::111122223333:role/trust-" + ns + "-billing"}
	var sas []*corev1.ServiceAccount
	for name, role := range roleOf {
		sas = append(sas, serviceAccount(t, ns, name, map[string]string{"eks.amazonaws.com/role-arn": role}))
	}
	docs := printTrust(t, sas...)
	if len(docs) != 2 {
		t.Fatalf("injector trust printed %d documents, want 2", len(docs))
	}
	for _, d := range docs {
		if err := fakes.STS.TrustPolicy(d.Target, d.Object); err != nil {
			t.Fatal(err)
		}
	}

	stored := storedPod(t, ns, podSpec("web", "reports"))
	c := stored.Spec.Containers[0]
	t.Run("the pod's own token is accepted by its role's printed trust", func(t *testing.T) {
		files := podFiles{t.TempDir()}
		projectToken(t, stored, "aws-iam-token", files)
		setContainerEnv(t, c, files, map[string]string{"AWS_ENDPOINT_URL_STS": fakes.STS.URL})
		if creds := awsCredentials(t); creds.AccessKeyID != AccessKeyFor(roleOf["reports"], Subject(ns, "reports")) {
			t.Errorf("credentials %s", creds.AccessKeyID)
		}
	})
	t.Run("another serviceaccount's token is refused by it", func(t *testing.T) {
		files := podFiles{t.TempDir()}
		writeToken(t, ns, "billing", "sts.amazonaws.com", ptr.To[int64](3600), nil, "/var/run/secrets/eks.amazonaws.com/serviceaccount/token", files)
		setContainerEnv(t, c, files, map[string]string{"AWS_ENDPOINT_URL_STS": fakes.STS.URL})
		_, err := awsConfig(t).Credentials.Retrieve(context.Background())
		if err == nil || !strings.Contains(err.Error(), "AccessDenied") {
			t.Errorf("the reports role accepted billing's token: %v", err)
		}
	})
}

// TestThePrintedFederatedCredentialIsWhatEntraNeeds: the Entra fake
// matches the credential `injector trust` prints as Entra does.
func TestThePrintedFederatedCredentialIsWhatEntraNeeds(t *testing.T) {
	ns := namespace(t, nil)
	app := "7c1e4b2a-0d3f-4e6a-9b8c-" + randomHex(6)
	agent := serviceAccount(t, ns, "agent", map[string]string{"azure.workload.identity/client-id": app, "azure.workload.identity/tenant-id": tenantID})
	serviceAccount(t, ns, "other", map[string]string{"azure.workload.identity/client-id": clientID, "azure.workload.identity/tenant-id": tenantID})
	docs := printTrust(t, agent)
	if len(docs) != 1 || docs[0].Target != app {
		t.Fatalf("injector trust printed %+v, want the credential of %s", docs, app)
	}
	if err := fakes.Entra.AddCredential(app, docs[0].Object); err != nil {
		t.Fatal(err)
	}
	stored := storedPod(t, ns, podSpec("web", "agent", withLabels(map[string]string{"azure.workload.identity/use": "true"})))
	c := stored.Spec.Containers[0]
	t.Run("the pod's own token gets a token for its application", func(t *testing.T) {
		files := podFiles{t.TempDir()}
		projectToken(t, stored, "azure-identity-token", files)
		if _, err := azureToken(t, c, files); err != nil {
			t.Fatalf("azidentity with the printed credential: %v", err)
		}
	})
	t.Run("another serviceaccount's token does not", func(t *testing.T) {
		files := podFiles{t.TempDir()}
		writeToken(t, ns, "other", "api://AzureADTokenExchange", ptr.To[int64](3600), nil, "/var/run/secrets/azure/tokens/azure-identity-token", files)
		if _, err := azureToken(t, c, files); err == nil || !strings.Contains(err.Error(), "No matching federated identity record") {
			t.Errorf("error %v, want Entra's refusal", err)
		}
	})
}

// trustDocument is what the tests read of `injector trust -o json`.
type trustDocument struct {
	ServiceAccount, Target string
	Object                 json.RawMessage
}

// printTrust runs the built injector's `trust` on the ServiceAccounts,
// for the cluster's issuer.
func printTrust(t *testing.T, sas ...*corev1.ServiceAccount) []trustDocument {
	t.Helper()
	return printTrustWith(t, nil, sas...)
}

// printTrustWith is printTrust with more flags.
func printTrustWith(t *testing.T, flags []string, sas ...*corev1.ServiceAccount) []trustDocument {
	t.Helper()
	var manifests []string
	for _, sa := range sas {
		sa = sa.DeepCopy()
		sa.TypeMeta.APIVersion, sa.TypeMeta.Kind = "v1", "ServiceAccount"
		b, err := yaml.Marshal(sa)
		if err != nil {
			t.Fatal(err)
		}
		manifests = append(manifests, string(b))
	}
	file := filepath.Join(t.TempDir(), "serviceaccounts.yaml")
	if err := os.WriteFile(file, []byte(strings.Join(manifests, "---\n")), 0o600); err != nil {
		t.Fatal(err)
	}
	bin, err := cluster.binary()
	if err != nil {
		t.Fatal(err)
	}
	var stdout, stderr bytes.Buffer
	cmd := exec.Command(bin, append([]string{"trust", "-f", file, "--issuer", cluster.Issuer, "-o", "json"}, flags...)...)
	cmd.Stdout, cmd.Stderr = &stdout, &stderr
	if err := cmd.Run(); err != nil {
		t.Fatalf("injector trust: %v\n%s", err, stderr.String())
	}
	var docs []trustDocument
	if err := json.Unmarshal(stdout.Bytes(), &docs); err != nil {
		t.Fatalf("injector trust printed %s: %v", stdout.String(), err)
	}
	return docs
}

// awsConfig loads the AWS SDK's configuration from the environment.
func awsConfig(t *testing.T) aws.Config {
	t.Helper()
	cfg, err := config.LoadDefaultConfig(context.Background())
	if err != nil {
		t.Fatal(err)
	}
	return cfg
}

// TestThePrintedPoolProviderAndBindingAreWhatGoogleNeeds: the Google fake
// evaluates the pool provider and the IAM binding `injector trust` prints
// as Google does (issuer, audience, attribute condition, binding member).
// The client library gets a token with the pod's own token; another
// ServiceAccount that names the same provider and service account is
// refused by the provider's condition.
func TestThePrintedPoolProviderAndBindingAreWhatGoogleNeeds(t *testing.T) {
	ns := namespace(t, nil)
	provider := "projects/123456789012/locations/global/workloadIdentityPools/e2e-trust/providers/p-" + randomHex(4)
	email := "trust-" + randomHex(4) + "@e2e-project.iam.gserviceaccount.com"
	annotations := map[string]string{"cloud.google.com/workload-identity-provider": provider, "cloud.google.com/service-account-email": email}
	reader := serviceAccount(t, ns, "reader", annotations)
	serviceAccount(t, ns, "other", annotations)
	docs := printTrust(t, reader)
	if len(docs) != 2 {
		t.Fatalf("injector trust printed %d documents, want the provider and the binding", len(docs))
	}
	for _, d := range docs {
		var err error
		if d.Target == provider {
			err = fakes.Google.SetProvider(d.Object)
		} else {
			err = fakes.Google.AddBinding(d.Object)
		}
		if err != nil {
			t.Fatal(err)
		}
	}
	stored := storedPod(t, ns, podSpec("web", "reader"))
	t.Run("the pod's own token gets the service account's access token", func(t *testing.T) {
		files := podFiles{t.TempDir()}
		projectToken(t, stored, "gcp-iam-token", files)
		tok, err := googleToken(t, stored, files)
		if err != nil {
			t.Fatalf("the client library with the printed trust: %v", err)
		}
		if tok != ImpersonatedTokenFor(email) {
			t.Errorf("token %q", tok)
		}
	})
	t.Run("another serviceaccount's token is refused by the provider's condition", func(t *testing.T) {
		files := podFiles{t.TempDir()}
		writeToken(t, ns, "other", "//iam.googleapis.com/"+provider, ptr.To[int64](3600), nil, "/var/run/secrets/sts.googleapis.com/serviceaccount/token", files)
		if _, err := googleToken(t, stored, files); err == nil || !strings.Contains(err.Error(), "rejected by the attribute condition") {
			t.Errorf("error %v, want the condition's refusal", err)
		}
	})
}

// TestThePrintedRAMTrustIsWhatAlibabaNeeds: the trust policy that
// deploy/providers/alibaba-rrsa.yaml declares, as `injector trust` prints
// it, evaluated by the fake RAM as RAM does; Alibaba's credentials library
// assumes the role with the pod's token, and another ServiceAccount naming
// the same role is refused.
func TestThePrintedRAMTrustIsWhatAlibabaNeeds(t *testing.T) {
	ns := namespace(t, nil)
	name := "trust-" + randomHex(4)
	role := "acs:ram::1234567890123456:role/" + name
	reader := serviceAccount(t, ns, "reader", map[string]string{"pod-identity.alibabacloud.com/role-name": name})
	serviceAccount(t, ns, "intruder", map[string]string{"pod-identity.alibabacloud.com/role-name": name})
	docs := printTrustWith(t, []string{"--provider-config", filepath.Join(cluster.repoRoot, "deploy", "providers", "alibaba-rrsa.yaml")}, reader)
	if len(docs) != 1 || docs[0].Target != role {
		t.Fatalf("injector trust printed %+v, want the trust policy of %s", docs, role)
	}
	if err := fakes.Alibaba.TrustPolicy(role, docs[0].Object); err != nil {
		t.Fatal(err)
	}
	for _, tt := range []struct {
		name, sa string
		admitted bool
	}{{"the pod's own token assumes the role", "reader", true}, {"another serviceaccount's token is refused", "intruder", false}} {
		t.Run(tt.name, func(t *testing.T) {
			stored := storedPod(t, ns, podSpec("web-"+tt.sa, tt.sa))
			files := podFiles{t.TempDir()}
			projectToken(t, stored, "rrsa-oidc-token", files)
			setContainerEnv(t, stored.Spec.Containers[0], files, nil)
			key, err := alibabaCredentials()
			switch {
			case tt.admitted && (err != nil || key != AlibabaAccessKeyFor(role, Subject(ns, tt.sa))):
				t.Errorf("credentials-go with the printed trust: %q, %v", key, err)
			case !tt.admitted && (err == nil || !strings.Contains(err.Error(), "may not assume")):
				t.Errorf("error %v, want the fake's refusal", err)
			}
		})
	}
}
