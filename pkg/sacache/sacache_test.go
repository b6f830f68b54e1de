package sacache_test

import (
	"context"
	"testing"
	"time"

	corev1 "k8s.io/api/core/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/types"
	"k8s.io/client-go/kubernetes/fake"

	"github.com/pod-identity/injector/pkg/sacache"
)

func sa(ns, name string, ann map[string]string) *corev1.ServiceAccount {
	return &corev1.ServiceAccount{ObjectMeta: metav1.ObjectMeta{Namespace: ns, Name: name, UID: types.UID("uid-" + name), Annotations: ann,
		Labels: map[string]string{"big": "label"}, ManagedFields: []metav1.ManagedFieldsEntry{{Manager: "kubectl"}}},
		Secrets: []corev1.ObjectReference{{Name: "token"}}}
}

func TestCacheKeepsOnlyWhatProvidersReadAndFallsBackToTheAPI(t *testing.T) {
	client := fake.NewClientset(sa("a", "one", map[string]string{
		"eks.amazonaws.com/role-arn": "arn", "kubectl.kubernetes.io/last-applied-configuration": "{...}",
	}))
	c, err := sacache.New(sacache.Config{Client: client, AnnotationPrefixes: []string{"eks.amazonaws.com/"}, LookupGrace: time.Second})
	if err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	c.Start(ctx)
	if !c.WaitForSync(ctx) {
		t.Fatal("cache never synced")
	}
	got, src, err := c.Get(ctx, "a", "one")
	if err != nil || src != sacache.FromCache {
		t.Fatalf("Get = %v, %v, %v", got, src, err)
	}
	if len(got.Annotations) != 1 || got.Annotations["eks.amazonaws.com/role-arn"] != "arn" {
		t.Errorf("annotations = %v, want only the provider's", got.Annotations)
	}
	if got.Labels != nil || got.ManagedFields != nil || got.Secrets != nil || got.UID != "uid-one" {
		t.Errorf("cached object is not trimmed: %+v", got)
	}

	// A ServiceAccount the informer has not seen yet: a cache whose informer
	// has not run finds it with the direct GET.
	if err := client.Tracker().Add(sa("b", "two", map[string]string{"eks.amazonaws.com/role-arn": "x"})); err != nil {
		t.Fatal(err)
	}
	cold, err := sacache.New(sacache.Config{Client: client, AnnotationPrefixes: []string{"eks.amazonaws.com/"}})
	if err != nil {
		t.Fatal(err)
	}
	got, src, err = cold.Get(ctx, "b", "two")
	if err != nil || got == nil || src != sacache.FromAPI {
		t.Fatalf("Get of a serviceaccount missing from the cache = %v, %v, %v", got, src, err)
	}
	if len(got.Annotations) != 1 {
		t.Errorf("direct lookup is not trimmed: %v", got.Annotations)
	}

	got, src, err = c.Get(ctx, "b", "missing")
	if got != nil || src != sacache.NotFound || err != nil {
		t.Errorf("Get of a missing serviceaccount = %v, %v, %v", got, src, err)
	}
}

func TestTrimLeavesTombstonesAlone(t *testing.T) {
	obj := "not a serviceaccount"
	got, err := sacache.Trim(nil)(obj)
	if err != nil || got != obj {
		t.Errorf("Trim(%v) = %v, %v", obj, got, err)
	}
}
