package e2e

import (
	"context"
	"fmt"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"testing"
	"time"

	admissionregv1 "k8s.io/api/admissionregistration/v1"
	authenticationv1 "k8s.io/api/authentication/v1"
	corev1 "k8s.io/api/core/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/utils/ptr"
)

const (
	roleARN    = "arn:aws:iam::111122223333:role/e2e-reader"
	clientID   = "5b0f2d6c-3a41-4e8f-9c27-8d1e6f4a2b90"
	tenantID   = "72f988bf-86f1-41af-91ab-2d7cd011db47"
	wifProject = "123456789012"
	wifPool    = "e2e-pool"
	wifProv    = "e2e-cluster"
	gsaEmail   = "reader@e2e-project.iam.gserviceaccount.com"
)

var wifProvider = fmt.Sprintf("projects/%s/locations/global/workloadIdentityPools/%s/providers/%s", wifProject, wifPool, wifProv)

func awsAnnotations() map[string]string {
	return map[string]string{"eks.amazonaws.com/role-arn": roleARN}
}

func azureAnnotations() map[string]string {
	return map[string]string{"azure.workload.identity/client-id": clientID, "azure.workload.identity/tenant-id": tenantID}
}

func gcpAnnotations() map[string]string {
	return map[string]string{"cloud.google.com/workload-identity-provider": wifProvider, "cloud.google.com/service-account-email": gsaEmail}
}

func merge(ms ...map[string]string) map[string]string {
	out := map[string]string{}
	for _, m := range ms {
		for k, v := range m {
			out[k] = v
		}
	}
	return out
}

// namespace creates a fresh namespace for one test.
func namespace(t *testing.T, labels map[string]string) string {
	t.Helper()
	name := "e2e-" + strings.ToLower(strings.NewReplacer("/", "-", "_", "-").Replace(t.Name()))
	if len(name) > 55 {
		name = name[:55]
	}
	name = strings.TrimRight(name, "-") + "-" + randomHex(3)
	_, err := cluster.Client.CoreV1().Namespaces().Create(context.Background(), &corev1.Namespace{ObjectMeta: metav1.ObjectMeta{Name: name, Labels: labels}}, metav1.CreateOptions{})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() {
		_ = cluster.Client.CoreV1().Namespaces().Delete(context.Background(), name, metav1.DeleteOptions{})
	})
	return name
}

func serviceAccount(t *testing.T, ns, name string, ann map[string]string) *corev1.ServiceAccount {
	t.Helper()
	sa, err := cluster.Client.CoreV1().ServiceAccounts(ns).Create(context.Background(),
		&corev1.ServiceAccount{ObjectMeta: metav1.ObjectMeta{Name: name, Annotations: ann}}, metav1.CreateOptions{})
	if err != nil {
		t.Fatal(err)
	}
	return sa
}

type podOpt func(*corev1.Pod)

func withLabels(l map[string]string) podOpt { return func(p *corev1.Pod) { p.Labels = l } }

func generated(p *corev1.Pod) { p.GenerateName, p.Name = p.Name+"-", "" }

func podSpec(name, sa string, opts ...podOpt) *corev1.Pod {
	p := &corev1.Pod{
		ObjectMeta: metav1.ObjectMeta{Name: name},
		Spec: corev1.PodSpec{
			ServiceAccountName: sa,
			InitContainers:     []corev1.Container{{Name: "proxy", Image: "registry.example.com/proxy:1", RestartPolicy: ptr.To(corev1.ContainerRestartPolicyAlways)}},
			Containers: []corev1.Container{
				{Name: "app", Image: "registry.example.com/app:1", Env: []corev1.EnvVar{{Name: "LOG_LEVEL", Value: "info"}}},
				{Name: "worker", Image: "registry.example.com/worker:1"},
			},
		},
	}
	for _, o := range opts {
		o(p)
	}
	return p
}

func createPod(t *testing.T, ns string, p *corev1.Pod, dryRun bool) (*corev1.Pod, error) {
	t.Helper()
	opts := metav1.CreateOptions{}
	if dryRun {
		opts.DryRun = []string{metav1.DryRunAll}
	}
	created, err := cluster.Client.CoreV1().Pods(ns).Create(context.Background(), p, opts)
	if WrittenRules() {
		// As admit: retried while policy mode's written policy does not
		// know the pod's set of rules yet.
		start := time.Now()
		for err != nil && strings.Contains(err.Error(), "is not known to pod-identity-injector yet") && time.Since(start) < 30*time.Second {
			time.Sleep(20 * time.Millisecond)
			created, err = cluster.Client.CoreV1().Pods(ns).Create(context.Background(), p, opts)
		}
		notedRetry(time.Since(start))
	}
	return created, err
}

// storedPod creates the pod and reads it back from the API server.
func storedPod(t *testing.T, ns string, p *corev1.Pod) *corev1.Pod {
	t.Helper()
	created, err := createPod(t, ns, p, false)
	if err != nil {
		t.Fatalf("create pod: %v", err)
	}
	got, err := cluster.Client.CoreV1().Pods(ns).Get(context.Background(), created.Name, metav1.GetOptions{})
	if err != nil {
		t.Fatal(err)
	}
	return got
}

func envOf(c corev1.Container) map[string]string {
	m := map[string]string{}
	for _, e := range c.Env {
		m[e.Name] = e.Value
	}
	return m
}

func volume(p *corev1.Pod, name string) *corev1.Volume {
	for i := range p.Spec.Volumes {
		if p.Spec.Volumes[i].Name == name {
			return &p.Spec.Volumes[i]
		}
	}
	return nil
}

func allContainers(p *corev1.Pod) []corev1.Container {
	return append(slices.Clone(p.Spec.InitContainers), p.Spec.Containers...)
}

// assertInjected checks every container for the variables and mount, and
// the pod for the volume.
func assertInjected(t *testing.T, p *corev1.Pod, volumeName, mountPath string, env map[string]string) {
	t.Helper()
	if volume(p, volumeName) == nil {
		t.Fatalf("pod %s has no volume %s: %v", p.Name, volumeName, p.Spec.Volumes)
	}
	for _, c := range allContainers(p) {
		got := envOf(c)
		for k, v := range env {
			if got[k] != v {
				t.Errorf("container %s: %s = %q, want %q", c.Name, k, got[k], v)
			}
		}
		if !slices.ContainsFunc(c.VolumeMounts, func(m corev1.VolumeMount) bool {
			return m.Name == volumeName && m.MountPath == mountPath && m.ReadOnly
		}) {
			t.Errorf("container %s lacks the read-only mount of %s at %s", c.Name, volumeName, mountPath)
		}
	}
	if p.Spec.InitContainers[0].RestartPolicy == nil || *p.Spec.InitContainers[0].RestartPolicy != corev1.ContainerRestartPolicyAlways {
		t.Error("the native sidecar lost its restartPolicy")
	}
}

// podFiles is a pod's filesystem as the kubelet would lay it out, rebased
// into a temporary folder.
type podFiles struct{ root string }

func (f podFiles) path(p string) string { return filepath.Join(f.root, p) }

// projectToken requests the token the kubelet would: the pod's
// ServiceAccount, exactly the audience and expiration of the projected
// volume, bound to the pod, and writes it where the container's mount puts it.
func projectToken(t *testing.T, p *corev1.Pod, volumeName string, files podFiles) string {
	t.Helper()
	v := volume(p, volumeName)
	if v == nil || v.Projected == nil || len(v.Projected.Sources) == 0 || v.Projected.Sources[0].ServiceAccountToken == nil {
		t.Fatalf("volume %s is not a projected token", volumeName)
	}
	src := v.Projected.Sources[0].ServiceAccountToken
	return writeToken(t, p.Namespace, p.Spec.ServiceAccountName, src.Audience, src.ExpirationSeconds, p, mountOf(t, p, volumeName)+"/"+src.Path, files)
}

func mountOf(t *testing.T, p *corev1.Pod, volumeName string) string {
	t.Helper()
	for _, m := range p.Spec.Containers[0].VolumeMounts {
		if m.Name == volumeName {
			return m.MountPath
		}
	}
	t.Fatalf("no mount of %s", volumeName)
	return ""
}

func writeToken(t *testing.T, ns, sa, aud string, exp *int64, bound *corev1.Pod, file string, files podFiles) string {
	t.Helper()
	tr := &authenticationv1.TokenRequest{Spec: authenticationv1.TokenRequestSpec{Audiences: []string{aud}, ExpirationSeconds: exp}}
	if bound != nil {
		tr.Spec.BoundObjectRef = &authenticationv1.BoundObjectReference{Kind: "Pod", APIVersion: "v1", Name: bound.Name, UID: bound.UID}
	}
	got, err := cluster.Client.CoreV1().ServiceAccounts(ns).CreateToken(context.Background(), sa, tr, metav1.CreateOptions{})
	if err != nil {
		t.Fatalf("TokenRequest for %s/%s audience %s: %v", ns, sa, aud, err)
	}
	if exp != nil {
		if lifetime := time.Until(got.Status.ExpirationTimestamp.Time); lifetime > time.Duration(*exp)*time.Second+time.Minute {
			t.Errorf("token lives %s, longer than the %d seconds asked for", lifetime, *exp)
		}
	}
	path := files.path(file)
	if err := os.MkdirAll(filepath.Dir(path), 0o700); err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(path, []byte(got.Status.Token), 0o600); err != nil {
		t.Fatal(err)
	}
	return path
}

// setContainerEnv sets the container's injected environment in this process
// (file paths rebased into files) and clears everything else the SDKs read.
func setContainerEnv(t *testing.T, c corev1.Container, files podFiles, extra map[string]string) {
	t.Helper()
	for _, k := range []string{"AWS_ACCESS_KEY_ID", "AWS_SECRET_ACCESS_KEY", "AWS_SESSION_TOKEN", "AWS_PROFILE", "AWS_ROLE_ARN", "AWS_ROLE_SESSION_NAME",
		"AWS_WEB_IDENTITY_TOKEN_FILE", "AWS_CONTAINER_CREDENTIALS_FULL_URI", "AWS_CONTAINER_AUTHORIZATION_TOKEN_FILE",
		"AZURE_CLIENT_ID", "AZURE_TENANT_ID", "AZURE_FEDERATED_TOKEN_FILE", "AZURE_AUTHORITY_HOST", "GOOGLE_APPLICATION_CREDENTIALS",
		"ALIBABA_CLOUD_ROLE_ARN", "ALIBABA_CLOUD_OIDC_PROVIDER_ARN", "ALIBABA_CLOUD_OIDC_TOKEN_FILE", "ALIBABA_CLOUD_OIDC_TOKEN", "ALIBABA_CLOUD_STS_REGION", "ALIBABA_CLOUD_STS_ENDPOINT", "ALIBABA_CLOUD_VPC_ENDPOINT_ENABLED",
		"OCI_RESOURCE_PRINCIPAL_VERSION", "OCI_RESOURCE_PRINCIPAL_REGION", "OCI_KUBERNETES_SERVICE_ACCOUNT_TOKEN_PATH", "OCI_KUBERNETES_SERVICE_ACCOUNT_CERT_PATH", "KUBERNETES_SERVICE_HOST",
		"ANTHROPIC_API_KEY", "ANTHROPIC_AUTH_TOKEN", "ANTHROPIC_PROFILE", "ANTHROPIC_BASE_URL", "ANTHROPIC_IDENTITY_TOKEN_FILE", "ANTHROPIC_IDENTITY_TOKEN",
		"ANTHROPIC_FEDERATION_RULE_ID", "ANTHROPIC_ORGANIZATION_ID", "ANTHROPIC_SERVICE_ACCOUNT_ID", "ANTHROPIC_WORKSPACE_ID",
		"OPENAI_API_KEY", "OPENAI_BASE_URL", "OPENAI_ORG_ID", "OPENAI_PROJECT_ID", "OPENAI_IDENTITY_TOKEN_FILE", "OPENAI_SERVICE_ACCOUNT_ID", "OPENAI_IDENTITY_PROVIDER_ID",
		"VAULT_ADDR", "VAULT_TOKEN", "VAULT_NAMESPACE", "VAULT_CACERT", "VAULT_ROLE", "VAULT_JWT_FILE", "VAULT_AUTH_MOUNT",
		"STACKIT_SERVICE_ACCOUNT_EMAIL", "STACKIT_FEDERATED_TOKEN_FILE", "STACKIT_IDP_TOKEN_ENDPOINT", "STACKIT_IDP_TOKEN_EXPIRATION_SECONDS",
		"STACKIT_SERVICE_ACCOUNT_TOKEN", "STACKIT_SERVICE_ACCOUNT_KEY", "STACKIT_SERVICE_ACCOUNT_KEY_PATH", "STACKIT_PRIVATE_KEY", "STACKIT_PRIVATE_KEY_PATH",
		"STACKIT_CREDENTIALS_PATH", "STACKIT_TOKEN_BASEURL",
		"DATABRICKS_AUTH_TYPE", "DATABRICKS_CLIENT_ID", "DATABRICKS_OIDC_TOKEN_FILEPATH", "DATABRICKS_HOST", "DATABRICKS_ACCOUNT_ID",
		"DATABRICKS_TOKEN", "DATABRICKS_CLIENT_SECRET", "DATABRICKS_TOKEN_AUDIENCE", "DATABRICKS_CONFIG_PROFILE"} {
		t.Setenv(k, "")
		_ = os.Unsetenv(k)
	}
	t.Setenv("AWS_CONFIG_FILE", files.path("nonexistent/config"))
	t.Setenv("AWS_SHARED_CREDENTIALS_FILE", files.path("nonexistent/credentials"))
	t.Setenv("AWS_EC2_METADATA_DISABLED", "true")
	for _, e := range c.Env {
		v := e.Value
		if strings.HasPrefix(v, "/var/run/secrets/") {
			v = files.path(v)
		}
		if e.ValueFrom != nil && e.ValueFrom.FieldRef != nil && e.ValueFrom.FieldRef.FieldPath == "metadata.name" {
			// As the kubelet resolves it: extra["metadata.name"] is the pod's name.
			v = extra["metadata.name"]
		}
		t.Setenv(e.Name, v)
	}
	for k, v := range extra {
		if k != "metadata.name" {
			t.Setenv(k, v)
		}
	}
}

func requireDenied(t *testing.T, err error, parts ...string) {
	t.Helper()
	if err == nil {
		t.Fatal("the API server admitted it")
	}
	for _, p := range parts {
		if !strings.Contains(err.Error(), p) {
			t.Errorf("error %q does not say %q", err, p)
		}
	}
}

// updateWebhook changes the registered configuration.
func updateWebhook(t *testing.T, f func(*admissionregv1.MutatingWebhook)) {
	t.Helper()
	ctx := context.Background()
	ar := cluster.Client.AdmissionregistrationV1()
	m, err := ar.MutatingWebhookConfigurations().Get(ctx, "pod-identity-injector", metav1.GetOptions{})
	if err != nil {
		t.Fatal(err)
	}
	f(&m.Webhooks[0])
	if _, err := ar.MutatingWebhookConfigurations().Update(ctx, m, metav1.UpdateOptions{}); err != nil {
		t.Fatal(err)
	}
}
