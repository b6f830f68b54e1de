package mutate

import (
	"encoding/json"
	"fmt"
	"strings"
	"testing"

	corev1 "k8s.io/api/core/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"

	"github.com/pod-identity/injector/pkg/providers"
)

// TestTheSizeEstimateIsNeverBelowThePatch: the cap is only a bound if the
// estimate it compares is at least what the encoded patch will be.
func TestTheSizeEstimateIsNeverBelowThePatch(t *testing.T) {
	inj := &providers.Injection{
		Provider: "x",
		Volumes:  []corev1.Volume{providers.TokenVolume("x-token", strings.Repeat("a", 300), 3600, "token")},
		Mounts:   []providers.Mount{{VolumeName: "x-token", MountPath: "/var/run/secrets/x"}},
		Env: []providers.EnvGroup{{Name: providers.CredentialGroup, Vars: []corev1.EnvVar{
			{Name: "X_ID", Value: strings.Repeat("i", 2048)}, {Name: "X_TOKEN_FILE", Value: "/var/run/secrets/x/token"},
			{Name: "X_POD", ValueFrom: &corev1.EnvVarSource{FieldRef: &corev1.ObjectFieldSelector{APIVersion: "v1", FieldPath: "metadata.name"}}},
		}}},
		Annotations: map[string]string{"x.example.com/injected": "true"},
		Labels:      map[string]string{"x.example.com/label": "yes"},
	}
	for _, n := range []int{1, 7, 120} {
		for _, existing := range []bool{false, true} {
			t.Run(fmt.Sprintf("%d containers, lists existing %t", n, existing), func(t *testing.T) {
				spec := &corev1.PodSpec{}
				meta := &metav1.ObjectMeta{Name: "web"}
				for i := range n {
					c := corev1.Container{Name: fmt.Sprintf("container-%d", i)}
					if existing {
						c.Env = []corev1.EnvVar{{Name: "A", Value: "b"}}
						c.VolumeMounts = []corev1.VolumeMount{{Name: "v", MountPath: "/v"}}
					}
					spec.InitContainers = append(spec.InitContainers, c)
				}
				if existing {
					meta.Annotations, meta.Labels = map[string]string{"a": "b"}, map[string]string{"a": "b"}
					spec.Volumes = []corev1.Volume{{Name: "v"}}
				}
				st := newState(Target{Namespace: "ns", Name: "web", Meta: meta, Spec: spec}, 3, 1)
				if changed, _, _ := st.apply(providers.Request{}, inj); !changed {
					t.Fatal("nothing applied")
				}
				est, containers := st.size()
				b, err := json.Marshal(st.patch())
				if err != nil {
					t.Fatal(err)
				}
				if est < len(b) || containers != n {
					t.Errorf("estimate %d bytes over %d containers; the patch is %d bytes over %d", est, containers, len(b), n)
				}
			})
		}
	}
}
