package e2e

import (
	"context"
	"crypto/tls"
	"encoding/json"
	"io"
	"net"
	"net/http"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/Azure/azure-sdk-for-go/sdk/azcore/policy"
	"github.com/Azure/azure-sdk-for-go/sdk/azidentity"
	"github.com/aws/aws-sdk-go-v2/aws"
	"github.com/aws/aws-sdk-go-v2/config"
	"golang.org/x/oauth2/google"
	admissionregv1 "k8s.io/api/admissionregistration/v1"
	corev1 "k8s.io/api/core/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/utils/ptr"
)

// --- what the API server stores -------------------------------------------------

func TestAWSPodIsInjectedAndTheSDKGetsCredentials(t *testing.T) {
	ns := namespace(t, nil)
	serviceAccount(t, ns, "reader", awsAnnotations())
	fakes.STS.Trust(roleARN, Subject(ns, "reader"))
	for _, p := range []*corev1.Pod{podSpec("web", "reader"), podSpec("batch", "reader", generated)} {
		stored := storedPod(t, ns, p)
		assertInjected(t, stored, "aws-iam-token", "/var/run/secrets/eks.amazonaws.com/serviceaccount", map[string]string{
			"AWS_ROLE_ARN": roleARN, "AWS_WEB_IDENTITY_TOKEN_FILE": "/var/run/secrets/eks.amazonaws.com/serviceaccount/token",
			"AWS_REGION": "us-west-2", "AWS_DEFAULT_REGION": "us-west-2",
		})
		if envOf(stored.Spec.Containers[0])["LOG_LEVEL"] != "info" {
			t.Error("the container's own env was not kept")
		}
		src := volume(stored, "aws-iam-token").Projected.Sources[0].ServiceAccountToken
		if src.Audience != "sts.amazonaws.com" || src.ExpirationSeconds == nil || *src.ExpirationSeconds != 86400 {
			t.Errorf("token projection %+v", src)
		}
		files := podFiles{t.TempDir()}
		projectToken(t, stored, "aws-iam-token", files)
		setContainerEnv(t, stored.Spec.Containers[0], files, map[string]string{"AWS_ENDPOINT_URL_STS": fakes.STS.URL})
		creds := awsCredentials(t)
		if want := AccessKeyFor(roleARN, Subject(ns, "reader")); creds.AccessKeyID != want || creds.SessionToken == "" {
			t.Errorf("credentials %s (from %s), want the fake's %s", creds.AccessKeyID, creds.Source, want)
		}
	}
}

func TestAzurePodIsInjectedAndTheSDKGetsAToken(t *testing.T) {
	ns := namespace(t, nil)
	serviceAccount(t, ns, "reader", azureAnnotations())
	fakes.Entra.Trust(tenantID, clientID, Subject(ns, "reader"))
	stored := storedPod(t, ns, podSpec("web", "reader", withLabels(map[string]string{"azure.workload.identity/use": "true"})))
	assertInjected(t, stored, "azure-identity-token", "/var/run/secrets/azure/tokens", map[string]string{
		"AZURE_CLIENT_ID": clientID, "AZURE_TENANT_ID": tenantID,
		"AZURE_FEDERATED_TOKEN_FILE": "/var/run/secrets/azure/tokens/azure-identity-token",
		"AZURE_AUTHORITY_HOST":       fakes.Entra.Server.URL + "/",
	})
	files := podFiles{t.TempDir()}
	projectToken(t, stored, "azure-identity-token", files)
	tok, err := azureToken(t, stored.Spec.Containers[0], files)
	if err != nil {
		t.Fatalf("azidentity could not get a token from the injected environment: %v", err)
	}
	if want := AccessTokenFor(tenantID, clientID, Subject(ns, "reader")); tok != want {
		t.Errorf("token %q, want %q", tok, want)
	}
}

func azureToken(t *testing.T, c corev1.Container, files podFiles) (string, error) {
	t.Helper()
	setContainerEnv(t, c, files, nil)
	cred, err := azidentity.NewWorkloadIdentityCredential(&azidentity.WorkloadIdentityCredentialOptions{
		ClientOptions: policy.ClientOptions{Transport: fakes.Entra.Server.Client()},
		// The fake authority is not a known Microsoft host: without this, MSAL
		// asks login.microsoftonline.com about it, as for any private cloud.
		DisableInstanceDiscovery: true,
	})
	if err != nil {
		return "", err
	}
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	tok, err := cred.GetToken(ctx, policy.TokenRequestOptions{Scopes: []string{"https://management.azure.com/.default"}})
	return tok.Token, err
}

func TestGooglePodIsInjectedAndTheClientLibraryGetsAToken(t *testing.T) {
	ns := namespace(t, nil)
	serviceAccount(t, ns, "reader", gcpAnnotations())
	fakes.Google.AllowImpersonation(gsaEmail, Subject(ns, "reader"))
	stored := storedPod(t, ns, podSpec("web", "reader"))
	assertInjected(t, stored, "gcp-iam-token", "/var/run/secrets/sts.googleapis.com/serviceaccount", map[string]string{
		"GOOGLE_APPLICATION_CREDENTIALS":         "/var/run/secrets/workload-identity/federation.json",
		"CLOUDSDK_AUTH_CREDENTIAL_FILE_OVERRIDE": "/var/run/secrets/workload-identity/federation.json",
		"CLOUDSDK_CORE_PROJECT":                  "e2e-project",
	})
	files := podFiles{t.TempDir()}
	projectToken(t, stored, "gcp-iam-token", files)
	tok, err := googleToken(t, stored, files)
	if err != nil {
		t.Fatalf("golang.org/x/oauth2/google could not get a token from the injected configuration: %v", err)
	}
	if want := ImpersonatedTokenFor(gsaEmail); tok != want {
		t.Errorf("token %q, want %q", tok, want)
	}
}

// googleToken reads the credential configuration from the stored pod's
// annotation, as the downwardAPI volume would mount it, and asks the
// client library for a token.
func googleToken(t *testing.T, p *corev1.Pod, files podFiles) (string, error) {
	t.Helper()
	raw := p.Annotations["cloud.google.com/external-credentials-json"]
	if raw == "" {
		t.Fatal("no cloud.google.com/external-credentials-json annotation")
	}
	var cc struct {
		CredentialSource struct {
			File string `json:"file"`
		} `json:"credential_source"`
	}
	if err := json.Unmarshal([]byte(raw), &cc); err != nil {
		t.Fatal(err)
	}
	rebased := strings.Replace(raw, `"file":"`+cc.CredentialSource.File+`"`, `"file":"`+files.path(cc.CredentialSource.File)+`"`, 1)
	path := files.path(envOf(p.Spec.Containers[0])["GOOGLE_APPLICATION_CREDENTIALS"])
	if err := os.MkdirAll(filepath.Dir(path), 0o700); err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(path, []byte(rebased), 0o600); err != nil {
		t.Fatal(err)
	}
	data, err := os.ReadFile(path)
	if err != nil {
		t.Fatal(err)
	}
	//lint:ignore SA1019 what client libraries call
	creds, err := google.CredentialsFromJSON(context.Background(), data, "https://www.googleapis.com/auth/cloud-platform")
	if err != nil {
		return "", err
	}
	tok, err := creds.TokenSource.Token()
	if err != nil {
		return "", err
	}
	return tok.AccessToken, nil
}

func TestThreeCloudServiceAccountGetsAllThreeIdentities(t *testing.T) {
	ns := namespace(t, nil)
	serviceAccount(t, ns, "analytics", merge(awsAnnotations(), azureAnnotations(), gcpAnnotations()))
	subject := Subject(ns, "analytics")
	fakes.STS.Trust(roleARN, subject)
	fakes.Entra.Trust(tenantID, clientID, subject)
	fakes.Google.AllowImpersonation(gsaEmail, subject)
	stored := storedPod(t, ns, podSpec("analytics", "analytics", generated, withLabels(map[string]string{"azure.workload.identity/use": "true"})))
	for _, v := range []string{"aws-iam-token", "azure-identity-token", "gcp-iam-token", "gcp-workload-identity"} {
		if volume(stored, v) == nil {
			t.Errorf("missing volume %s", v)
		}
	}
	files := podFiles{t.TempDir()}
	projectToken(t, stored, "aws-iam-token", files)
	projectToken(t, stored, "azure-identity-token", files)
	projectToken(t, stored, "gcp-iam-token", files)

	setContainerEnv(t, stored.Spec.Containers[0], files, map[string]string{"AWS_ENDPOINT_URL_STS": fakes.STS.URL})
	cfg, err := config.LoadDefaultConfig(context.Background())
	if err != nil {
		t.Fatal(err)
	}
	if creds, err := cfg.Credentials.Retrieve(context.Background()); err != nil || creds.AccessKeyID != AccessKeyFor(roleARN, subject) {
		t.Errorf("aws: %v %v", creds.AccessKeyID, err)
	}
	if tok, err := azureToken(t, stored.Spec.Containers[0], files); err != nil || tok != AccessTokenFor(tenantID, clientID, subject) {
		t.Errorf("azure: %q %v", tok, err)
	}
	if tok, err := googleToken(t, stored, files); err != nil || tok != ImpersonatedTokenFor(gsaEmail) {
		t.Errorf("google: %q %v", tok, err)
	}
}

// --- the fakes refuse what the clouds refuse -------------------------------------

func TestTokensOfAnotherServiceAccountOrAudienceAreRefused(t *testing.T) {
	ns := namespace(t, nil)
	serviceAccount(t, ns, "reader", merge(awsAnnotations(), azureAnnotations(), gcpAnnotations()))
	serviceAccount(t, ns, "intruder", nil)
	fakes.STS.Trust(roleARN, Subject(ns, "reader"))
	fakes.Entra.Trust(tenantID, clientID, Subject(ns, "reader"))
	fakes.Google.AllowImpersonation(gsaEmail, Subject(ns, "reader"))
	stored := storedPod(t, ns, podSpec("web", "reader", withLabels(map[string]string{"azure.workload.identity/use": "true"})))
	c := stored.Spec.Containers[0]
	for _, tc := range []struct {
		name, sa, aud string
		says          string
	}{
		{name: "aws with a token of another serviceaccount", sa: "intruder", aud: "sts.amazonaws.com", says: "AccessDenied"},
		{name: "aws with a token for another audience", sa: "reader", aud: "api://AzureADTokenExchange", says: "InvalidIdentityToken"},
		{name: "azure with a token of another serviceaccount", sa: "intruder", aud: "api://AzureADTokenExchange", says: "No matching federated identity record"},
		{name: "azure with a token for another audience", sa: "reader", aud: "sts.amazonaws.com", says: "AADSTS700211"},
		{name: "google with a token for another audience", sa: "reader", aud: "sts.amazonaws.com", says: "does not match the expected audience"},
		{name: "google impersonation by another serviceaccount", sa: "intruder", aud: "//iam.googleapis.com/" + wifProvider, says: "PERMISSION_DENIED"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			files := podFiles{t.TempDir()}
			exp := ptr.To[int64](3600)
			var err error
			switch {
			case strings.HasPrefix(tc.name, "aws"):
				writeToken(t, ns, tc.sa, tc.aud, exp, nil, "/var/run/secrets/eks.amazonaws.com/serviceaccount/token", files)
				setContainerEnv(t, c, files, map[string]string{"AWS_ENDPOINT_URL_STS": fakes.STS.URL})
				cfg, lerr := config.LoadDefaultConfig(context.Background())
				if lerr != nil {
					t.Fatal(lerr)
				}
				_, err = cfg.Credentials.Retrieve(context.Background())
			case strings.HasPrefix(tc.name, "azure"):
				writeToken(t, ns, tc.sa, tc.aud, exp, nil, "/var/run/secrets/azure/tokens/azure-identity-token", files)
				_, err = azureToken(t, c, files)
			default:
				writeToken(t, ns, tc.sa, tc.aud, exp, nil, "/var/run/secrets/sts.googleapis.com/serviceaccount/token", files)
				_, err = googleToken(t, stored, files)
			}
			if err == nil || !strings.Contains(err.Error(), tc.says) {
				t.Errorf("SDK error = %v, want the fake's refusal %q", err, tc.says)
			}
		})
	}
}

// --- admission behaviour -----------------------------------------------------------

// TestInvalidAnnotationIsDeniedWithTheWholeStory: an invalid annotation
// is refused when it is set on the ServiceAccount; one set while the
// namespace was not watched (opted out, or before the injector was
// installed) is refused when a pod runs as it, with the same message.
func TestInvalidAnnotationIsDeniedWithTheWholeStory(t *testing.T) {
	ctx := context.Background()
	story := []string{"eks.amazonaws.com/role-arn", `"arn:aws:iam::12345:role/app"`, "expected arn:<partition>:iam::<12-digit account>:role/"}
	ns := namespace(t, map[string]string{"pod-identity.io/inject": "disabled"})
	serviceAccount(t, ns, "broken", map[string]string{"eks.amazonaws.com/role-arn": "arn:aws:iam::12345:role/app"})
	setNamespaceLabel(t, ns, "pod-identity.io/inject", "")
	typo := &corev1.ServiceAccount{ObjectMeta: metav1.ObjectMeta{Name: "typo",
		Annotations: map[string]string{"eks.amazonaws.com/role-arn": "arn:aws:iam::12345:role/app"}}}
	// The API server selects webhooks by the namespace's labels as its
	// informer has them, a moment after the update: dry runs until then.
	until(t, "the namespace is watched", func() bool {
		_, err := cluster.Client.CoreV1().ServiceAccounts(ns).Create(ctx, typo, metav1.CreateOptions{DryRun: []string{metav1.DryRunAll}})
		return err != nil
	})
	_, err := cluster.Client.CoreV1().ServiceAccounts(ns).Create(ctx, typo, metav1.CreateOptions{})
	requireDenied(t, err, append([]string{`admission webhook "serviceaccounts.pod-identity.io" denied the request: serviceaccount "` + ns + `/typo"`}, story...)...)
	_, err = createPod(t, ns, podSpec("web", "broken"), false)
	requireDenied(t, err, append([]string{`serviceaccount "` + ns + `/broken"`}, story...)...)
}

func TestDryRunCreateIsMutatedAndNotStored(t *testing.T) {
	ns := namespace(t, nil)
	serviceAccount(t, ns, "reader", awsAnnotations())
	p, err := createPod(t, ns, podSpec("dry", "reader"), true)
	if err != nil {
		t.Fatal(err)
	}
	if envOf(p.Spec.Containers[0])["AWS_ROLE_ARN"] != roleARN {
		t.Errorf("dry-run result not mutated: %v", p.Spec.Containers[0].Env)
	}
	if _, err := cluster.Client.CoreV1().Pods(ns).Get(context.Background(), "dry", metav1.GetOptions{}); err == nil {
		t.Error("a dry-run pod was stored")
	}
}

func TestOptedOutPodsAndNamespacesAreUntouched(t *testing.T) {
	ns := namespace(t, nil)
	serviceAccount(t, ns, "reader", awsAnnotations())
	p := storedPod(t, ns, podSpec("optout", "reader", withLabels(map[string]string{"pod-identity.io/inject": "false"})))
	if volume(p, "aws-iam-token") != nil || envOf(p.Spec.Containers[0])["AWS_ROLE_ARN"] != "" {
		t.Error("an opted-out pod was injected")
	}
	off := namespace(t, map[string]string{"pod-identity.io/inject": "disabled"})
	serviceAccount(t, off, "reader", awsAnnotations())
	p = storedPod(t, off, podSpec("web", "reader"))
	if volume(p, "aws-iam-token") != nil {
		t.Error("a pod in an opted-out namespace was injected")
	}
	// Opted out of validation too: an invalid annotation there is not denied.
	serviceAccount(t, off, "broken", map[string]string{"eks.amazonaws.com/role-arn": "nope"})
	if _, err := createPod(t, off, podSpec("web2", "broken"), false); err != nil {
		t.Errorf("a pod in an opted-out namespace was denied: %v", err)
	}
}

// TestContainersAddedByALaterWebhookAreInjected registers a second mutating
// webhook that runs after ours and appends a container; the API server then
// reinvokes ours (reinvocationPolicy: IfNeeded) and the new container gets
// its identity too.
func TestContainersAddedByALaterWebhookAreInjected(t *testing.T) {
	ns := namespace(t, nil)
	serviceAccount(t, ns, "reader", awsAnnotations())
	registerMutator(t, "zz-e2e-append-sidecar", "append.e2e.pod-identity.io", serveAppender(t), "e2e.pod-identity.io/append-sidecar")
	var p *corev1.Pod
	deadline := time.Now().Add(30 * time.Second)
	for {
		var err error
		p, err = createPod(t, ns, podSpec("reinvoked-"+randomHex(2), "reader", withLabels(map[string]string{"e2e.pod-identity.io/append-sidecar": "true"})), false)
		if err != nil {
			t.Fatal(err)
		}
		if len(p.Spec.Containers) == 3 || time.Now().After(deadline) {
			break
		}
		time.Sleep(300 * time.Millisecond) // the new configuration is not live yet
	}
	if len(p.Spec.Containers) != 3 || p.Spec.Containers[2].Name != "late-sidecar" {
		t.Fatalf("the appending webhook did not run: %v", p.Spec.Containers)
	}
	if envOf(p.Spec.Containers[2])["AWS_ROLE_ARN"] != roleARN {
		t.Errorf("the container added after our webhook was not injected on reinvocation: %v", p.Spec.Containers[2].Env)
	}
	requireOnce(t, p, "AWS_ROLE_ARN")
}

// requireOnce fails unless every container of p sets the variable once.
func requireOnce(t *testing.T, p *corev1.Pod, name string) {
	t.Helper()
	for _, c := range allContainers(p) {
		n := 0
		for _, e := range c.Env {
			if e.Name == name {
				n++
			}
		}
		if n != 1 {
			t.Errorf("container %s has %s %d times", c.Name, name, n)
		}
	}
}

// registerMutator registers a stand-in mutating webhook at url for pods
// labelled selector=true (failurePolicy Fail, never reinvoked), in a
// configuration whose name places it among the others (the API server
// calls them in the order of their names), until the test ends.
func registerMutator(t *testing.T, configName, webhookName, url, selector string) {
	t.Helper()
	ar := cluster.Client.AdmissionregistrationV1()
	cfg := &admissionregv1.MutatingWebhookConfiguration{
		ObjectMeta: metav1.ObjectMeta{Name: configName},
		Webhooks: []admissionregv1.MutatingWebhook{{
			Name:                    webhookName,
			AdmissionReviewVersions: []string{"v1"},
			ClientConfig:            admissionregv1.WebhookClientConfig{URL: &url, CABundle: webCA.PEM},
			Rules: []admissionregv1.RuleWithOperations{{Operations: []admissionregv1.OperationType{admissionregv1.Create},
				Rule: admissionregv1.Rule{APIGroups: []string{""}, APIVersions: []string{"v1"}, Resources: []string{"pods"}}}},
			ObjectSelector:     &metav1.LabelSelector{MatchLabels: map[string]string{selector: "true"}},
			SideEffects:        ptr.To(admissionregv1.SideEffectClassNone),
			FailurePolicy:      ptr.To(admissionregv1.Fail),
			ReinvocationPolicy: ptr.To(admissionregv1.NeverReinvocationPolicy),
			TimeoutSeconds:     ptr.To[int32](5),
		}},
	}
	if _, err := ar.MutatingWebhookConfigurations().Create(context.Background(), cfg, metav1.CreateOptions{}); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() {
		_ = ar.MutatingWebhookConfigurations().Delete(context.Background(), cfg.Name, metav1.DeleteOptions{})
	})
}

// serveAppender serves a mutating webhook that appends a container.
func serveAppender(t *testing.T) string {
	t.Helper()
	return serveMutator(t, "appender", func(p *corev1.Pod) []map[string]any {
		if n := len(p.Spec.Containers); n > 0 && p.Spec.Containers[n-1].Name != "late-sidecar" {
			return []map[string]any{{"op": "add", "path": "/spec/containers/-", "value": map[string]any{"name": "late-sidecar", "image": "registry.example.com/late:1"}}}
		}
		return nil
	})
}

// serveMutator serves a mutating webhook that answers each pod with the
// JSON patch patch returns (none when it returns nil), and returns its URL.
func serveMutator(t *testing.T, name string, patch func(*corev1.Pod) []map[string]any) string {
	t.Helper()
	certPEM, keyPEM, err := webCA.Issue(name)
	if err != nil {
		t.Fatal(err)
	}
	cert, err := tls.X509KeyPair(certPEM, keyPEM)
	if err != nil {
		t.Fatal(err)
	}
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	srv := &http.Server{ReadHeaderTimeout: 5 * time.Second, TLSConfig: &tls.Config{Certificates: []tls.Certificate{cert}}, Handler: http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		body, _ := io.ReadAll(r.Body)
		var rev struct {
			APIVersion string `json:"apiVersion"`
			Kind       string `json:"kind"`
			Request    struct {
				UID    string     `json:"uid"`
				Object corev1.Pod `json:"object"`
			} `json:"request"`
		}
		if err := json.Unmarshal(body, &rev); err != nil {
			http.Error(w, err.Error(), http.StatusBadRequest)
			return
		}
		resp := map[string]any{"uid": rev.Request.UID, "allowed": true}
		if ops := patch(&rev.Request.Object); ops != nil {
			p, _ := json.Marshal(ops)
			resp["patch"], resp["patchType"] = p, "JSONPatch"
		}
		out, _ := json.Marshal(map[string]any{"apiVersion": rev.APIVersion, "kind": rev.Kind, "response": resp})
		w.Header().Set("Content-Type", "application/json")
		_, _ = w.Write(out)
	})}
	go func() { _ = srv.ServeTLS(l, "", "") }()
	t.Cleanup(func() { _ = srv.Close() })
	return "https://" + l.Addr().String() + "/" + name
}

// awsCredentials has aws-sdk-go-v2 get credentials from the environment
// setContainerEnv set up, as the application in the pod would.
func awsCredentials(t *testing.T) aws.Credentials {
	t.Helper()
	creds, err := awsConfig(t).Credentials.Retrieve(context.Background())
	if err != nil {
		t.Fatalf("aws-sdk-go-v2 could not get credentials from the injected environment: %v", err)
	}
	return creds
}
