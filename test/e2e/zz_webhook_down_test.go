package e2e

import (
	"testing"
	"time"

	admissionregv1 "k8s.io/api/admissionregistration/v1"
	"k8s.io/utils/ptr"
)

// TestWebhookDownFollowsTheFailurePolicy stops the injector for good, so it
// lives in the file go test runs last: with the shipped failurePolicy
// Ignore the pod is created without identity; with the fail-closed
// overlay's Fail it is refused.
func TestWebhookDownFollowsTheFailurePolicy(t *testing.T) {
	ns := namespace(t, nil)
	serviceAccount(t, ns, "reader", awsAnnotations())
	cluster.StopInjector()
	p, err := createPod(t, ns, podSpec("ignored", "reader"), false)
	if err != nil {
		t.Fatalf("with failurePolicy Ignore the pod must be admitted while the webhook is down: %v", err)
	}
	if volume(p, "aws-iam-token") != nil {
		t.Error("a pod admitted while the webhook was down has an identity")
	}
	updateWebhook(t, func(m *admissionregv1.MutatingWebhook) { m.FailurePolicy = ptr.To(admissionregv1.Fail) })
	deadline := time.Now().Add(30 * time.Second)
	for {
		_, err = createPod(t, ns, podSpec("refused-"+randomHex(2), "reader"), true)
		if err != nil || time.Now().After(deadline) {
			break
		}
		time.Sleep(300 * time.Millisecond)
	}
	requireDenied(t, err, "failed calling webhook")
}
