package e2e

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"strings"
	"sync"
	"syscall"
	"testing"
	"time"

	appsv1 "k8s.io/api/apps/v1"
	corev1 "k8s.io/api/core/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/types"
)

// TestExplainSaysWhatARunningPodLacks: `injector explain pod/NAME` against
// the real API server, after the pod's ServiceAccount was re-annotated:
// the pod still carries the old role, and explain says so and what to do.
func TestExplainSaysWhatARunningPodLacks(t *testing.T) {
	ctx := context.Background()
	ns := namespace(t, nil)
	serviceAccount(t, ns, "reader", awsAnnotations())
	p := storedPod(t, ns, podSpec("batch", "reader"))
	explainPod := func() string {
		t.Helper()
		kubeconfig, err := cluster.Kubeconfig()
		if err != nil {
			t.Fatal(err)
		}
		out, err := exec.Command(filepath.Join(cluster.Dir, "injector"), "explain", "pod/"+p.Name, "-n", ns, "--kubeconfig", kubeconfig).CombinedOutput()
		if err != nil {
			t.Fatalf("injector explain: %v\n%s", err, out)
		}
		return string(out)
	}
	if out := explainPod(); !strings.Contains(out, "aws: already injected") || strings.Contains(out, "stale:") {
		t.Errorf("a freshly injected pod:\n%s", out)
	}
	newRole := "arn:aws:iam::111122223333:role/e2e-writer"
	patch := []byte(`{"metadata":{"annotations":{"eks.amazonaws.com/role-arn":"` + newRole + `"}}}`)
	if _, err := cluster.Client.CoreV1().ServiceAccounts(ns).Patch(ctx, "reader", types.MergePatchType, patch, metav1.PatchOptions{}); err != nil {
		t.Fatal(err)
	}
	out := explainPod()
	for _, want := range []string{
		`stale: container app has AWS_ROLE_ARN="` + roleARN + `"; its serviceaccount now gives "` + newRole + `": restart the pod to take it`,
		`pod "` + ns + "/" + p.Name + `" runs as serviceaccount "` + ns + `/reader" (found)`,
	} {
		if !strings.Contains(out, want) {
			t.Errorf("explain does not say %q:\n%s", want, out)
		}
	}
}

// runInjectorCLI runs the built injector against the test cluster.
func runInjectorCLI(t *testing.T, args ...string) (string, error) {
	t.Helper()
	kubeconfig, err := cluster.Kubeconfig()
	if err != nil {
		t.Fatal(err)
	}
	out, err := exec.Command(filepath.Join(cluster.Dir, "injector"), append(args, "--kubeconfig", kubeconfig)...).CombinedOutput()
	return string(out), err
}

// TestAuditFindsPodsWhoseIdentityChanged: `injector audit` pages through
// the pods, says nothing (exit 0) while they carry their ServiceAccount's
// identity, and after one annotation changes and another is removed lists
// each pod under the workload that owns it (a Deployment through its
// ReplicaSet), with the command that restarts it, and exits 1.
func TestAuditFindsPodsWhoseIdentityChanged(t *testing.T) {
	ctx := context.Background()
	ns := namespace(t, nil)
	serviceAccount(t, ns, "reader", awsAnnotations())
	apps := cluster.Client.AppsV1()
	// No controller manager runs here: the Deployment, its ReplicaSet and
	// their pods are created as the controllers would.
	dep, err := apps.Deployments(ns).Create(ctx, &appsv1.Deployment{ObjectMeta: metav1.ObjectMeta{Name: "web"}, Spec: appsv1.DeploymentSpec{
		Selector: &metav1.LabelSelector{MatchLabels: map[string]string{"app": "web"}},
		Template: corev1.PodTemplateSpec{ObjectMeta: metav1.ObjectMeta{Labels: map[string]string{"app": "web"}},
			Spec: corev1.PodSpec{ServiceAccountName: "reader", Containers: []corev1.Container{{Name: "app", Image: "i"}}}}}}, metav1.CreateOptions{})
	if err != nil {
		t.Fatal(err)
	}
	rs, err := apps.ReplicaSets(ns).Create(ctx, &appsv1.ReplicaSet{ObjectMeta: metav1.ObjectMeta{Name: "web-5d8f7", OwnerReferences: []metav1.OwnerReference{{
		APIVersion: "apps/v1", Kind: "Deployment", Name: dep.Name, UID: dep.UID, Controller: ptrBool(true)}}}, Spec: appsv1.ReplicaSetSpec{
		Selector: dep.Spec.Selector, Template: dep.Spec.Template}}, metav1.CreateOptions{})
	if err != nil {
		t.Fatal(err)
	}
	for i := range 3 {
		p := podSpec(fmt.Sprintf("web-5d8f7-%d", i), "reader")
		p.OwnerReferences = []metav1.OwnerReference{{APIVersion: "apps/v1", Kind: "ReplicaSet", Name: rs.Name, UID: rs.UID, Controller: ptrBool(true)}}
		storedPod(t, ns, p)
	}
	storedPod(t, ns, podSpec("debug", "reader"))
	serviceAccount(t, ns, "former", awsAnnotations())
	storedPod(t, ns, podSpec("former", "former"))
	if out, err := runInjectorCLI(t, "explain", "deploy/web", "sa/reader", "-n", ns); err != nil ||
		!strings.Contains(out, `deployment "`+ns+`/web" runs as serviceaccount "`+ns+`/reader" (found)`) ||
		!strings.Contains(out, `serviceaccount "`+ns+`/reader", as the serviceaccount webhook checks it`) {
		t.Errorf("explain of a deployment and a serviceaccount in the cluster: %v\n%s", err, out)
	}
	if out, err := runInjectorCLI(t, "audit", "-n", ns); err != nil || !strings.Contains(out, "5 pods: every one carries the identity its serviceaccount gives") {
		t.Fatalf("before the change: %v\n%s", err, out)
	}
	newRole := "arn:aws:iam::111122223333:role/e2e-writer"
	patch := []byte(`{"metadata":{"annotations":{"eks.amazonaws.com/role-arn":"` + newRole + `"}}}`)
	if _, err := cluster.Client.CoreV1().ServiceAccounts(ns).Patch(ctx, "reader", types.MergePatchType, patch, metav1.PatchOptions{}); err != nil {
		t.Fatal(err)
	}
	// And the other ServiceAccount loses its role.
	if _, err := cluster.Client.CoreV1().ServiceAccounts(ns).Patch(ctx, "former", types.MergePatchType,
		[]byte(`{"metadata":{"annotations":{"eks.amazonaws.com/role-arn":null}}}`), metav1.PatchOptions{}); err != nil {
		t.Fatal(err)
	}
	out, err := runInjectorCLI(t, "audit", "-n", ns)
	var exit *exec.ExitError
	if !errors.As(err, &exit) || exit.ExitCode() != 1 {
		t.Errorf("audit exited with %v, want 1", err)
	}
	for _, want := range []string{
		"kubectl -n " + ns + " rollout restart deployment/web\n  pod web-5d8f7-0: container ",
		`pod web-5d8f7-2: container app has AWS_ROLE_ARN="` + roleARN + `"; its serviceaccount now gives "` + newRole + `": restart the pod to take it`,
		"pod " + ns + "/debug (no controller: delete and recreate it)",
		`pod former: container app has AWS_ROLE_ARN="` + roleARN + `", but its serviceaccount no longer gives it an identity from aws: restart the pod to drop it`,
		"5 of 5 pods carry an identity their serviceaccount no longer gives",
	} {
		if !strings.Contains(out, want) {
			t.Errorf("audit does not say %q:\n%s", want, out)
		}
	}
}

// TestAuditMemoryOver10000Pods is an opt-in measurement
// (E2E_AUDIT_PODS=10000 ./hack/e2e.sh -run TestAuditMemory): it creates
// that many injected pods, re-annotates their ServiceAccount, and reports
// how long `injector audit` takes and its peak resident memory.
func TestAuditMemoryOver10000Pods(t *testing.T) {
	n, _ := strconv.Atoi(os.Getenv("E2E_AUDIT_PODS"))
	if n == 0 {
		t.Skip("set E2E_AUDIT_PODS to measure")
	}
	ctx := context.Background()
	ns := namespace(t, nil)
	serviceAccount(t, ns, "reader", awsAnnotations())
	var wg sync.WaitGroup
	next := make(chan int)
	for range 16 {
		wg.Add(1)
		go func() {
			defer wg.Done()
			for i := range next {
				p := podSpec(fmt.Sprintf("p-%d", i), "reader")
				if _, err := cluster.Client.CoreV1().Pods(ns).Create(ctx, p, metav1.CreateOptions{}); err != nil {
					t.Error(err)
				}
			}
		}()
	}
	for i := range n {
		next <- i
	}
	close(next)
	wg.Wait()
	patch := []byte(`{"metadata":{"annotations":{"eks.amazonaws.com/role-arn":"arn:aws:iam::111122223333:role/e2e-writer"}}}`)
	if _, err := cluster.Client.CoreV1().ServiceAccounts(ns).Patch(ctx, "reader", types.MergePatchType, patch, metav1.PatchOptions{}); err != nil {
		t.Fatal(err)
	}
	kubeconfig, err := cluster.Kubeconfig()
	if err != nil {
		t.Fatal(err)
	}
	cmd := exec.Command(filepath.Join(cluster.Dir, "injector"), "audit", "--kubeconfig", kubeconfig)
	var out bytes.Buffer
	cmd.Stdout = &out
	t0 := time.Now()
	err = cmd.Run()
	took := time.Since(t0)
	peak := cmd.ProcessState.SysUsage().(*syscall.Rusage).Maxrss
	if !strings.Contains(err.Error(), "exit status 1") || !strings.Contains(out.String(), fmt.Sprintf("pod p-%d:", n-1)) {
		t.Fatalf("audit: %v", err)
	}
	t.Logf("audit of %d pods (and the suite's others): %s, peak RSS %.1f MiB, %d bytes of report", n, took.Round(time.Millisecond), float64(peak)/1024, out.Len())
}
