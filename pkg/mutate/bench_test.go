package mutate_test

import (
	"context"
	"encoding/json"
	"testing"

	"github.com/sirupsen/logrus"
	corev1 "k8s.io/api/core/v1"

	"github.com/pod-identity/injector/pkg/mutate"
	"github.com/pod-identity/injector/pkg/providers"
	"github.com/pod-identity/injector/pkg/providers/aws"
)

// typicalPod is a realistic three-container pod: an application, a service
// mesh proxy and a log shipper, each with its own env and mounts.
const typicalPod = `{"apiVersion":"v1","kind":"Pod","metadata":{"generateName":"checkout-7d9f8b6c5-","namespace":"shop","labels":{"app":"checkout","pod-template-hash":"7d9f8b6c5","version":"v3"},"annotations":{"prometheus.io/scrape":"true","prometheus.io/port":"9090"},"ownerReferences":[{"apiVersion":"apps/v1","kind":"ReplicaSet","name":"checkout-7d9f8b6c5","uid":"0b6a7d4e-1c2f-4a8e-9a51-2f0c7d3b9e11","controller":true,"blockOwnerDeletion":true}]},"spec":{"serviceAccountName":"checkout","volumes":[{"name":"config","configMap":{"name":"checkout-config"}},{"name":"cache","emptyDir":{}},{"name":"kube-api-access-abcde","projected":{"sources":[{"serviceAccountToken":{"expirationSeconds":3607,"path":"token"}},{"configMap":{"name":"kube-root-ca.crt","items":[{"key":"ca.crt","path":"ca.crt"}]}}]}}],"containers":[{"name":"app","image":"registry.example.com/checkout:3.2.1","ports":[{"containerPort":8080,"name":"http"}],"env":[{"name":"LOG_LEVEL","value":"info"},{"name":"DB_HOST","value":"db.shop.svc"},{"name":"POD_NAME","valueFrom":{"fieldRef":{"fieldPath":"metadata.name"}}}],"resources":{"requests":{"cpu":"250m","memory":"256Mi"},"limits":{"memory":"512Mi"}},"volumeMounts":[{"name":"config","mountPath":"/etc/checkout"},{"name":"cache","mountPath":"/var/cache/checkout"}],"readinessProbe":{"httpGet":{"path":"/ready","port":8080}}},{"name":"envoy","image":"registry.example.com/envoy:1.30","args":["--config","/etc/envoy/envoy.yaml"],"env":[{"name":"ENVOY_UID","value":"1337"}],"resources":{"requests":{"cpu":"100m","memory":"128Mi"}}},{"name":"log-shipper","image":"registry.example.com/fluent-bit:3.0","volumeMounts":[{"name":"cache","mountPath":"/var/log/app","readOnly":true}]}]}}`

func benchEngine(b *testing.B) (*mutate.Engine, *corev1.ServiceAccount) {
	p, err := aws.New(context.Background(), aws.Config{DefaultRegion: "eu-west-1", RegionalSTS: true}, logrus.New())
	if err != nil {
		b.Fatal(err)
	}
	sa := serviceAccount(map[string]string{"eks.amazonaws.com/role-arn": "arn:aws:iam::111122223333:role/checkout"})
	sa.Namespace = "shop"
	return mutate.New([]providers.Provider{p}), sa
}

func decodePod(b *testing.B) *corev1.Pod {
	var pod corev1.Pod
	if err := json.Unmarshal([]byte(typicalPod), &pod); err != nil {
		b.Fatal(err)
	}
	return &pod
}

// BenchmarkMutate measures the engine's decision for one decoded pod.
func BenchmarkMutate(b *testing.B) {
	e, sa := benchEngine(b)
	pod := decodePod(b)
	b.ReportAllocs()
	for b.Loop() {
		res := e.Mutate(mutate.Target{Namespace: "shop", Name: pod.GenerateName, Meta: &pod.ObjectMeta, Spec: &pod.Spec}, sa)
		if len(res.Patch) == 0 {
			b.Fatal("nothing injected")
		}
	}
}

// BenchmarkPatch measures encoding the engine's patch as JSON.
func BenchmarkPatch(b *testing.B) {
	e, sa := benchEngine(b)
	pod := decodePod(b)
	res := e.Mutate(mutate.Target{Namespace: "shop", Meta: &pod.ObjectMeta, Spec: &pod.Spec}, sa)
	b.ReportAllocs()
	for b.Loop() {
		if _, err := json.Marshal(res.Patch); err != nil {
			b.Fatal(err)
		}
	}
}

// BenchmarkDecodeMutatePatch measures the whole admission work for a pod:
// decode its JSON, decide, encode the patch.
func BenchmarkDecodeMutatePatch(b *testing.B) {
	e, sa := benchEngine(b)
	raw := []byte(typicalPod)
	b.ReportAllocs()
	b.SetBytes(int64(len(raw)))
	for b.Loop() {
		var pod corev1.Pod
		if err := json.Unmarshal(raw, &pod); err != nil {
			b.Fatal(err)
		}
		res := e.Mutate(mutate.Target{Namespace: "shop", Meta: &pod.ObjectMeta, Spec: &pod.Spec}, sa)
		if _, err := json.Marshal(res.Patch); err != nil {
			b.Fatal(err)
		}
	}
}
