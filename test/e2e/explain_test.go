package e2e

import (
	"context"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"

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
