package e2e

import (
	"context"
	"encoding/json"
	"fmt"
	"slices"
	"strconv"
	"strings"
	"sync"
	"testing"
	"time"

	corev1 "k8s.io/api/core/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/client-go/dynamic"
	"k8s.io/client-go/kubernetes"
	"k8s.io/client-go/rest"
)

// TestPolicyModeServesFiveThousandIdentitiesInOneNamespace: an AI
// platform's pattern, one ServiceAccount per user in one namespace.
// 5,000 ServiceAccounts with an AWS role each are created as fast as
// the API server takes them; then a pod of the last one created, and
// one of the first, get their own role. It reports the parameters'
// size, the writes sync made, its lag to the last ServiceAccount, and
// what a pod's admission costs in that namespace next to a small one.
func TestPolicyModeServesFiveThousandIdentitiesInOneNamespace(t *testing.T) {
	const users = 5000
	ctx := context.Background()
	ns := policyNamespace(t)
	small := policyNamespace(t)
	waitForAdmission(t, ns)
	waitForAdmission(t, small)
	cfg := rest.CopyConfig(cluster.Config)
	cfg.QPS, cfg.Burst = 5000, 5000
	fast, err := kubernetes.NewForConfig(cfg)
	if err != nil {
		t.Fatal(err)
	}
	writesBefore := syncWrites(t)
	role := func(i int) string { return fmt.Sprintf("arn:aws:iam::111122223333:role/user-%04d", i) }
	name := func(i int) string { return fmt.Sprintf("user-%04d", i) }
	start := time.Now()
	var wg sync.WaitGroup
	work := make(chan int)
	errs := make(chan error, users)
	for range 8 {
		wg.Go(func() {
			for i := range work {
				sa := &corev1.ServiceAccount{ObjectMeta: metav1.ObjectMeta{Name: name(i), Annotations: map[string]string{"eks.amazonaws.com/role-arn": role(i)}}}
				if _, err := fast.CoreV1().ServiceAccounts(ns).Create(ctx, sa, metav1.CreateOptions{}); err != nil {
					errs <- err
				}
			}
		})
	}
	for i := range users - 1 {
		work <- i
	}
	close(work)
	wg.Wait()
	close(errs)
	for err := range errs {
		t.Fatal(err)
	}
	// The last one alone, after all the others: a user added to a full
	// namespace.
	lastCreated := time.Now()
	created := lastCreated.Sub(start)
	serviceAccount(t, ns, name(users-1), map[string]string{"eks.amazonaws.com/role-arn": role(users - 1)})
	lag, err := cluster.WaitForParameters(ctx, ns, name(users-1), 60*time.Second)
	if err != nil {
		t.Fatalf("%v\n%s", err, syncLog())
	}
	all := time.Since(start)
	writes := syncWrites(t) - writesBefore

	dyn, err := dynamic.NewForConfig(cluster.Config)
	if err != nil {
		t.Fatal(err)
	}
	u, err := dyn.Resource(IdentityParametersGVR).Namespace(ns).Get(ctx, "pod-identity", metav1.GetOptions{})
	if err != nil {
		t.Fatal(err)
	}
	spec, _ := json.Marshal(u.Object["spec"])
	listed, _ := u.Object["spec"].(map[string]any)["serviceAccounts"].(map[string]any)
	if len(listed) < users {
		t.Fatalf("%d serviceaccounts listed, want at least %d", len(listed), users)
	}
	for _, i := range []int{users - 1, 0, users / 2} {
		until(t, "a pod of "+name(i)+" is injected with its own role", func() bool {
			p, err := createPod(t, ns, podSpec("user", name(i)), true)
			return err == nil && envOf(p.Spec.Containers[0])["AWS_ROLE_ARN"] == role(i)
		})
	}
	// What a pod's admission costs here, next to a namespace with one
	// identity: the API server reads the whole parameters object for each
	// policy that evaluates the pod.
	latency := func(ns, sa string) time.Duration {
		var d []time.Duration
		for range 20 {
			t0 := time.Now()
			p, err := createPod(t, ns, podSpec("user", sa), true)
			if err != nil || envOf(p.Spec.Containers[0])["AWS_ROLE_ARN"] == "" {
				t.Fatalf("a pod of %s/%s was not injected: %v", ns, sa, err)
			}
			d = append(d, time.Since(t0))
		}
		slices.Sort(d)
		return d[len(d)/2]
	}
	serviceAccount(t, small, "user", awsAnnotations())
	if _, err := cluster.WaitForParameters(ctx, small, "user", 30*time.Second); err != nil {
		t.Fatal(err)
	}
	until(t, "a pod of the small namespace is injected", func() bool {
		p, err := createPod(t, small, podSpec("user", "user"), true)
		return err == nil && envOf(p.Spec.Containers[0])["AWS_ROLE_ARN"] != ""
	})
	big, little := latency(ns, name(users-1)), latency(small, "user")
	t.Logf("%d identity serviceaccounts in one namespace: created in %s (%.0f/s); parameters %d bytes (%d per serviceaccount); %d writes by sync meanwhile (%.1f/s); the last one listed %s after its creation, all %s after the first",
		users, created.Round(time.Millisecond), float64(users-1)/created.Seconds(), len(spec), len(spec)/len(listed), writes, float64(writes)/all.Seconds(), lag.Round(time.Millisecond), all.Round(time.Millisecond))
	t.Logf("a pod's admission (dry run, p50 of 20, one at a time): %s in that namespace, %s in a namespace with one identity", big.Round(100*time.Microsecond), little.Round(100*time.Microsecond))
}

// syncWrites is the number of IdentityParameters objects the running sync
// has written.
func syncWrites(t *testing.T) int {
	t.Helper()
	m, err := scrape(policyMode.sync.MetricsAddr)
	if err != nil {
		t.Fatal(err)
	}
	n := 0
	for _, l := range strings.Split(m, "; ") {
		if f := strings.Fields(l); len(f) == 2 && strings.HasPrefix(f[0], "pod_identity_sync_writes_total") {
			v, _ := strconv.ParseFloat(f[1], 64)
			n += int(v)
		}
	}
	return n
}
