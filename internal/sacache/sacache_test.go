package sacache_test

import (
	"context"
	"errors"
	"fmt"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	logtest "github.com/sirupsen/logrus/hooks/test"
	corev1 "k8s.io/api/core/v1"
	apierrors "k8s.io/apimachinery/pkg/api/errors"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/runtime"
	"k8s.io/apimachinery/pkg/types"
	"k8s.io/apimachinery/pkg/watch"
	"k8s.io/client-go/kubernetes/fake"
	k8stesting "k8s.io/client-go/testing"

	"github.com/pod-identity/injector/internal/sacache"
)

const prefix = "eks.amazonaws.com/"

// sa returns a ServiceAccount with everything the cache drops: labels,
// managed fields, secrets and an annotation no provider reads.
func sa(ns, name string, ann map[string]string) *corev1.ServiceAccount {
	all := map[string]string{"kubectl.kubernetes.io/last-applied-configuration": "{...}"}
	for k, v := range ann {
		all[k] = v
	}
	return &corev1.ServiceAccount{ObjectMeta: metav1.ObjectMeta{Namespace: ns, Name: name, UID: types.UID("uid-" + name), Annotations: all,
		Labels: map[string]string{"big": "label"}, ManagedFields: []metav1.ManagedFieldsEntry{{Manager: "kubectl"}}},
		Secrets: []corev1.ObjectReference{{Name: "token"}}}
}

func checkTrimmed(t *testing.T, got *corev1.ServiceAccount, role string) {
	t.Helper()
	if len(got.Annotations) != 1 || got.Annotations[prefix+"role-arn"] != role {
		t.Errorf("annotations = %v, want only the provider's", got.Annotations)
	}
	if got.Labels != nil || got.ManagedFields != nil || got.Secrets != nil || got.UID != types.UID("uid-"+got.Name) {
		t.Errorf("object is not trimmed to name, namespace, uid and the provider's annotations: %+v", got)
	}
}

func started(t *testing.T, cfg sacache.Config) *sacache.Cache {
	t.Helper()
	c, err := sacache.New(cfg)
	if err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithCancel(context.Background())
	t.Cleanup(cancel)
	c.Start(ctx)
	if !c.WaitForSync(ctx) {
		t.Fatal("cache never synced")
	}
	return c
}

// countGets counts the direct GETs and lets serve answer them.
func countGets(client *fake.Clientset, serve func(name string) (runtime.Object, error)) *atomic.Int32 {
	var n atomic.Int32
	client.PrependReactor("get", "serviceaccounts", func(a k8stesting.Action) (bool, runtime.Object, error) {
		n.Add(1)
		if serve == nil {
			return false, nil, nil
		}
		obj, err := serve(a.(k8stesting.GetAction).GetName())
		return true, obj, err
	})
	return &n
}

func notFound(name string) error {
	return apierrors.NewNotFound(corev1.Resource("serviceaccounts"), name)
}

func TestTheCacheKeepsOnlyWhatProvidersRead(t *testing.T) {
	client := fake.NewClientset(sa("a", "one", map[string]string{prefix + "role-arn": "arn-1"}))
	c := started(t, sacache.Config{Client: client, AnnotationPrefixes: []string{prefix}})
	got, src, err := c.Get(context.Background(), "a", "one")
	if err != nil || src != sacache.FromCache {
		t.Fatalf("Get = %v, %v, %v", got, src, err)
	}
	checkTrimmed(t, got, "arn-1")
}

func TestADirectLookupIsTrimmedLikeTheCache(t *testing.T) {
	client := fake.NewClientset()
	c := started(t, sacache.Config{Client: client, AnnotationPrefixes: []string{prefix}})
	// Served by the GET only: the informer never sees it.
	countGets(client, func(name string) (runtime.Object, error) {
		return sa("b", name, map[string]string{prefix + "role-arn": "arn-2"}), nil
	})
	got, src, err := c.Get(context.Background(), "b", "two")
	if err != nil || got == nil || src != sacache.FromAPI {
		t.Fatalf("Get of a serviceaccount missing from the cache = %v, %v, %v", got, src, err)
	}
	checkTrimmed(t, got, "arn-2")
}

func TestADirectLookupGivesUpAfterTheGrace(t *testing.T) {
	client := fake.NewClientset()
	release := make(chan struct{})
	t.Cleanup(func() { close(release) })
	countGets(client, func(name string) (runtime.Object, error) {
		<-release // an API server that does not answer
		return nil, notFound(name)
	})
	c := started(t, sacache.Config{Client: client, LookupGrace: 50 * time.Millisecond})
	got, src, err := c.Get(context.Background(), "ns", "slow")
	if got != nil || src != sacache.Failed || !errors.Is(err, context.DeadlineExceeded) {
		t.Fatalf("Get = %v, %v, %v; want a failure when the grace ran out", got, src, err)
	}
}

func TestConcurrentLookupsOfOneMissingServiceAccountShareOneGet(t *testing.T) {
	client := fake.NewClientset()
	gate := make(chan struct{})
	gets := countGets(client, func(name string) (runtime.Object, error) {
		<-gate
		return nil, notFound(name)
	})
	c := started(t, sacache.Config{Client: client, LookupGrace: 10 * time.Second})
	var wg sync.WaitGroup
	results := make(chan sacache.Source, 50)
	for range 50 {
		wg.Go(func() {
			_, src, _ := c.Get(context.Background(), "ns", "ghost")
			results <- src
		})
	}
	// Let every caller reach the shared lookup before it answers.
	for gets.Load() == 0 {
		time.Sleep(time.Millisecond)
	}
	time.Sleep(50 * time.Millisecond)
	close(gate)
	wg.Wait()
	close(results)
	for src := range results {
		if src != sacache.NotFound {
			t.Errorf("a caller got %q, want not_found", src)
		}
	}
	if n := gets.Load(); n != 1 {
		t.Errorf("%d GETs for 50 concurrent lookups of one serviceaccount, want 1", n)
	}
	// Remembered as missing: no GET for a while.
	if _, src, _ := c.Get(context.Background(), "ns", "ghost"); src != sacache.NotFound || gets.Load() != 1 {
		t.Errorf("a lookup right after: %q with %d GETs, want not_found with no new GET", src, gets.Load())
	}
}

func TestAServiceAccountCreatedAfterItWasFoundMissingIsFoundAtOnce(t *testing.T) {
	client := fake.NewClientset()
	c := started(t, sacache.Config{Client: client, AnnotationPrefixes: []string{prefix}, MissingTTL: time.Hour})
	if _, src, _ := c.Get(context.Background(), "ns", "late"); src != sacache.NotFound {
		t.Fatalf("first lookup: %q", src)
	}
	if _, err := client.CoreV1().ServiceAccounts("ns").Create(context.Background(), sa("ns", "late", map[string]string{prefix + "role-arn": "arn"}), metav1.CreateOptions{}); err != nil {
		t.Fatal(err)
	}
	deadline := time.Now().Add(10 * time.Second)
	for {
		got, _, _ := c.Get(context.Background(), "ns", "late")
		if got != nil {
			break
		}
		if time.Now().After(deadline) {
			t.Fatal("still answered missing after it was created: the informer's add did not clear the memory of it")
		}
		time.Sleep(10 * time.Millisecond)
	}
}

func TestOneNamespaceCannotSpendTheWholeLookupBudget(t *testing.T) {
	client := fake.NewClientset(sa("attacker", "default", nil), sa("team", "default", nil))
	countGets(client, func(name string) (runtime.Object, error) {
		if name == "new-app" {
			return sa("team", name, map[string]string{prefix + "role-arn": "arn"}), nil
		}
		return nil, notFound(name)
	})
	// A budget that refills too slowly to matter during the test.
	c := started(t, sacache.Config{Client: client, AnnotationPrefixes: []string{prefix}, LookupQPS: 0.001, LookupBurst: 8, LookupGrace: 100 * time.Millisecond})
	var wg sync.WaitGroup
	for i := range 40 {
		wg.Go(func() { _, _, _ = c.Get(context.Background(), "attacker", fmt.Sprintf("made-up-%d", i)) })
	}
	for i := range 40 {
		wg.Go(func() { _, _, _ = c.Get(context.Background(), fmt.Sprintf("no-such-namespace-%d", i), "x") })
	}
	wg.Wait()
	got, src, err := c.Get(context.Background(), "team", "new-app")
	if got == nil || src != sacache.FromAPI {
		t.Fatalf("a real pod's lookup after a flood from other namespaces = %v, %v, %v; want it found by the GET", got, src, err)
	}
}

func TestTheCacheRelistsAsSoonAsTheAPIServerIsBack(t *testing.T) {
	client := fake.NewClientset(sa("ns", "app", map[string]string{prefix + "role-arn": "old"}))
	var down atomic.Bool
	var watchers []*watch.RaceFreeFakeWatcher
	var mu sync.Mutex
	outage := func(a k8stesting.Action) (bool, runtime.Object, error) {
		if down.Load() {
			return true, nil, errors.New("connection refused")
		}
		return false, nil, nil
	}
	client.PrependReactor("list", "serviceaccounts", outage)
	client.PrependWatchReactor("serviceaccounts", func(a k8stesting.Action) (bool, watch.Interface, error) {
		if down.Load() {
			return true, nil, errors.New("connection refused")
		}
		w := watch.NewRaceFreeFake()
		mu.Lock()
		watchers = append(watchers, w)
		mu.Unlock()
		return true, w, nil
	})
	log, hook := logtest.NewNullLogger()
	c := started(t, sacache.Config{Client: client, AnnotationPrefixes: []string{prefix}, ReconnectAfter: 300 * time.Millisecond, Log: log})

	down.Store(true)
	mu.Lock()
	for _, w := range watchers {
		w.Stop()
	}
	mu.Unlock()
	// Re-annotated while the cache cannot see it (through another API server, say).
	updated := sa("ns", "app", map[string]string{prefix + "role-arn": "new"})
	if err := client.Tracker().Update(corev1.SchemeGroupVersion.WithResource("serviceaccounts"), updated, "ns"); err != nil {
		t.Fatal(err)
	}
	// Long enough for client-go's reflector to back off for several seconds.
	time.Sleep(6 * time.Second)
	if got, _, _ := c.Get(context.Background(), "ns", "app"); got == nil || got.Annotations[prefix+"role-arn"] != "old" {
		t.Fatalf("during the outage the cache answers %v, want the last known identity", got)
	}
	if c.Age() < 5*time.Second {
		t.Errorf("cache age during the outage = %s, want the time since it last heard from the API server", c.Age())
	}
	down.Store(false)
	back := time.Now()
	for {
		got, _, _ := c.Get(context.Background(), "ns", "app")
		if got.Annotations[prefix+"role-arn"] == "new" {
			break
		}
		if time.Since(back) > 2*time.Second {
			t.Fatalf("still the old identity %s after the API server came back", time.Since(back))
		}
		time.Sleep(20 * time.Millisecond)
	}
	if c.Age() > time.Second {
		t.Errorf("cache age after relisting = %s", c.Age())
	}
	// The cache's own relist did it, not client-go's backoff.
	relisted := false
	for _, e := range hook.AllEntries() {
		relisted = relisted || e.Message == "serviceaccount cache relisted after the watch broke"
	}
	if !relisted {
		t.Error("the cache never relisted by itself")
	}
}

func TestTrimLeavesTombstonesAlone(t *testing.T) {
	obj := "not a serviceaccount"
	got, err := sacache.Trim(nil)(obj)
	if err != nil || got != obj {
		t.Errorf("Trim(%v) = %v, %v", obj, got, err)
	}
}

func TestTheCacheKeepsProviderLabelsToo(t *testing.T) {
	obj := sa("ns", "app", map[string]string{"azure.workload.identity/client-id": "id"})
	obj.Labels["azure.workload.identity/use"] = "true"
	got, err := sacache.Trim([]string{"azure.workload.identity/"})(obj)
	if err != nil {
		t.Fatal(err)
	}
	labels := got.(*corev1.ServiceAccount).Labels
	if len(labels) != 1 || labels["azure.workload.identity/use"] != "true" {
		t.Errorf("labels %v, want only the provider's (a label put on the serviceaccount instead of the pod is worth a warning)", labels)
	}
}
