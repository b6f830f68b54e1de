package mutate_test

import (
	"errors"
	"fmt"
	"strings"
	"testing"

	corev1 "k8s.io/api/core/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"

	"github.com/pod-identity/injector/pkg/mutate"
	"github.com/pod-identity/injector/pkg/policy"
	"github.com/pod-identity/injector/pkg/providers"
)

// podWith returns a pod with n containers.
func podWith(n int) (*metav1.ObjectMeta, *corev1.PodSpec) {
	spec := &corev1.PodSpec{}
	for i := range n {
		spec.Containers = append(spec.Containers, corev1.Container{Name: fmt.Sprintf("c%d", i)})
	}
	return &metav1.ObjectMeta{Name: "web"}, spec
}

func TestBounds(t *testing.T) {
	e := mutate.New([]providers.Provider{cloud{name: "a"}, cloud{name: "b"}})
	t.Run("a value over the bound makes its provider invalid and leaves the other one alone", func(t *testing.T) {
		long := strings.Repeat("x", providers.MaxValueBytes+1)
		meta, spec := podWith(1)
		res := e.Mutate(mutate.Target{Namespace: "ns", Name: "web", Meta: meta, Spec: spec},
			serviceAccount(map[string]string{"a.example.com/id": long, "b.example.com/id": "fine"}))
		if len(res.Invalid) != 1 {
			t.Fatalf("invalid: %v", res.Invalid)
		}
		var ie *providers.InvalidError
		if !errors.As(res.Invalid[0], &ie) || ie.Provider != "a" || ie.Annotation != "a.example.com/id" {
			t.Fatalf("got %#v", res.Invalid[0])
		}
		msg := res.Invalid[0].Error()
		for _, want := range []string{`serviceaccount "ns/app"`, "a.example.com/id", "at most 4096 bytes, and this one has more"} {
			if !strings.Contains(msg, want) {
				t.Errorf("message %q lacks %q", msg, want)
			}
		}
		if len(msg) > 1024 {
			t.Errorf("the message quotes the value whole: %d bytes", len(msg))
		}
		if strings.Join(res.Injected, ",") != "b" {
			t.Errorf("injected %v, want b alone", res.Injected)
		}
	})
	t.Run("a value at the bound is read as before", func(t *testing.T) {
		meta, spec := podWith(1)
		res := e.Mutate(mutate.Target{Namespace: "ns", Name: "web", Meta: meta, Spec: spec},
			serviceAccount(map[string]string{"a.example.com/id": strings.Repeat("x", providers.MaxValueBytes)}))
		if len(res.Invalid) != 0 || len(res.Injected) != 1 {
			t.Fatalf("invalid %v, injected %v", res.Invalid, res.Injected)
		}
	})
	t.Run("a long annotation outside every provider's prefix is not the engine's business", func(t *testing.T) {
		meta, spec := podWith(1)
		res := e.Mutate(mutate.Target{Namespace: "ns", Name: "web", Meta: meta, Spec: spec},
			serviceAccount(map[string]string{"a.example.com/id": "fine", "kubectl.kubernetes.io/last-applied-configuration": strings.Repeat("x", 100000)}))
		if len(res.Invalid) != 0 || len(res.Injected) != 1 {
			t.Fatalf("invalid %v, injected %v", res.Invalid, res.Injected)
		}
	})
	t.Run("a serviceaccount write with an oversized value is invalid", func(t *testing.T) {
		res := e.CheckServiceAccount(nil, serviceAccount(map[string]string{"b.example.com/audience": strings.Repeat("x", providers.MaxValueBytes+1)}), policy.Scope{})
		if len(res.Invalid) != 1 {
			t.Fatalf("invalid: %v", res.Invalid)
		}
	})
	t.Run("a patch past the etcd object limit is refused before it is encoded", func(t *testing.T) {
		// 500 containers, each given a 4 KiB identity: about 2 MB.
		meta, spec := podWith(500)
		res := e.Mutate(mutate.Target{Namespace: "ns", Name: "web", Meta: meta, Spec: spec},
			serviceAccount(map[string]string{"a.example.com/id": strings.Repeat("x", providers.MaxValueBytes)}))
		if len(res.Patch) != 0 || len(res.Injected) != 0 || len(res.Denied) != 1 {
			t.Fatalf("patch of %d ops, injected %v, denied %v", len(res.Patch), res.Injected, res.Denied)
		}
		var big *mutate.PatchTooLargeError
		if !errors.As(res.Denied[0], &big) || big.Containers != 500 || strings.Join(big.Providers, ",") != "a" {
			t.Fatalf("got %#v", res.Denied[0])
		}
		for _, want := range []string{`pod "ns/web"`, "the a identity", "500 containers", "only-containers"} {
			if !strings.Contains(big.Error(), want) {
				t.Errorf("message %q lacks %q", big.Error(), want)
			}
		}
	})
}
