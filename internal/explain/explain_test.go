package explain_test

import (
	"os"
	"path/filepath"
	"strings"
	"testing"

	corev1 "k8s.io/api/core/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"

	"github.com/pod-identity/injector/internal/explain"
	"github.com/pod-identity/injector/pkg/mutate"
	"github.com/pod-identity/injector/pkg/providers"
	"github.com/pod-identity/injector/pkg/providers/declarative"
)

// TestADeclarativeProvidersStaleIdentityIsReported: a running pod still
// carries the Vault role its ServiceAccount no longer gives. The provider
// file says what its injection leaves in a pod (providers.Marker), so
// explain and audit report it as they do the compiled clouds'.
func TestADeclarativeProvidersStaleIdentityIsReported(t *testing.T) {
	data, err := os.ReadFile(filepath.Join("..", "..", "deploy", "providers", "vault.yaml"))
	if err != nil {
		t.Fatal(err)
	}
	defs, err := declarative.Parse(data)
	if err != nil {
		t.Fatal(err)
	}
	e := mutate.New([]providers.Provider{declarative.New(defs[0])})
	sa := &corev1.ServiceAccount{ObjectMeta: metav1.ObjectMeta{Name: "app", Namespace: "team-a"}}
	pod := &corev1.Pod{ObjectMeta: metav1.ObjectMeta{Name: "web", Namespace: "team-a"}, Spec: corev1.PodSpec{
		ServiceAccountName: "app",
		Containers: []corev1.Container{{Name: "app", Env: []corev1.EnvVar{{Name: "VAULT_ROLE", Value: "app-reader"}},
			VolumeMounts: []corev1.VolumeMount{{Name: "vault-token", MountPath: "/var/run/secrets/vault"}}}},
		Volumes: []corev1.Volume{{Name: "vault-token", VolumeSource: corev1.VolumeSource{Projected: &corev1.ProjectedVolumeSource{}}}},
	}}
	target := mutate.Target{Namespace: "team-a", Name: "web", Meta: &pod.ObjectMeta, Spec: &pod.Spec}
	r := explain.Explain(e, explain.Input{Kind: "Pod", Target: target, ServiceAccount: sa, ServiceAccountName: "app", Running: true})
	want := `container app has VAULT_ROLE="app-reader", but its serviceaccount no longer gives it an identity from vault: restart the pod to drop it`
	if len(r.Drift) != 1 || r.Drift[0] != want {
		t.Errorf("drift %q, want %q", r.Drift, want)
	}
	if !strings.Contains(r.Text(), "stale: "+want) {
		t.Errorf("the text does not say it:\n%s", r.Text())
	}
}
