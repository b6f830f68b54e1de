package e2e

import (
	"context"
	"fmt"
	"os"
	"strconv"
	"sync"
	"testing"
	"time"

	corev1 "k8s.io/api/core/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
)

// TestMemoryWithManyServiceAccounts measures the injector's resident memory
// with E2E_SERVICEACCOUNTS (say 20000) annotated ServiceAccounts listed from
// the real API server, and requires it under E2E_MAX_RSS_MIB (default 70).
// It creates that many objects, so it runs only when asked:
//
//	E2E_SERVICEACCOUNTS=20000 go test -run MemoryWithMany -v ./test/e2e/
func TestMemoryWithManyServiceAccounts(t *testing.T) {
	n, _ := strconv.Atoi(os.Getenv("E2E_SERVICEACCOUNTS"))
	if n == 0 {
		t.Skip("set E2E_SERVICEACCOUNTS to run")
	}
	maxMiB := 70
	if v, err := strconv.Atoi(os.Getenv("E2E_MAX_RSS_MIB")); err == nil {
		maxMiB = v
	}
	ctx := context.Background()
	const namespaces = 100
	for i := range namespaces {
		if _, err := cluster.Client.CoreV1().Namespaces().Create(ctx, &corev1.Namespace{ObjectMeta: metav1.ObjectMeta{Name: fmt.Sprintf("mem-%d", i)}}, metav1.CreateOptions{}); err != nil {
			t.Fatal(err)
		}
	}
	t0 := time.Now()
	var wg sync.WaitGroup
	errs := make(chan error, 16)
	for w := range 16 {
		wg.Add(1)
		go func() {
			defer wg.Done()
			for i := w; i < n; i += 16 {
				sa := &corev1.ServiceAccount{ObjectMeta: metav1.ObjectMeta{Name: fmt.Sprintf("sa-%d", i), Annotations: map[string]string{
					"eks.amazonaws.com/role-arn":        fmt.Sprintf("arn:aws:iam::111122223333:role/workload-%d", i),
					"azure.workload.identity/client-id": clientID,
					"meta.helm.sh/release-name":         fmt.Sprintf("release-%d", i),
				}, Labels: map[string]string{"app.kubernetes.io/managed-by": "Helm"}}}
				if _, err := cluster.Client.CoreV1().ServiceAccounts(fmt.Sprintf("mem-%d", i%namespaces)).Create(ctx, sa, metav1.CreateOptions{}); err != nil {
					errs <- err
					return
				}
			}
		}()
	}
	wg.Wait()
	close(errs)
	for err := range errs {
		t.Fatal(err)
	}
	t.Logf("created %d serviceaccounts in %s", n, time.Since(t0).Round(time.Second))
	// A fresh injector lists them all at start, as after a rollout.
	cluster.StopInjector()
	err := cluster.StartInjector(ctx, cluster.Injector.CertFile, cluster.Injector.KeyFile, cluster.Injector.CAPEM, injectorArgs()...)
	if err != nil {
		t.Fatal(err)
	}
	var rss, peak int
	for _, wait := range []time.Duration{5 * time.Second, 25 * time.Second, 30 * time.Second} {
		time.Sleep(wait)
		if rss, peak, err = cluster.InjectorMemory(); err != nil {
			t.Fatal(err)
		}
		t.Logf("injector with %d serviceaccounts from the API server: RSS %.1f MiB, peak %.1f MiB", n, float64(rss)/1024, float64(peak)/1024)
	}
	if rss/1024 >= maxMiB {
		t.Errorf("resident memory %.1f MiB is over %d MiB", float64(rss)/1024, maxMiB)
	}
}
