package e2e

import (
	"context"
	"fmt"
	"time"

	corev1 "k8s.io/api/core/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
)

// registerWebhooks registers the shipped configurations, pointed at the
// injector, and waits until the API server calls it.
func registerWebhooks(ctx context.Context, root string) error {
	hooks, err := ShippedWebhooks(root, "https://"+cluster.Injector.WebhookAddr, cluster.Injector.CAPEM)
	if err != nil {
		return err
	}
	ar := cluster.Client.AdmissionregistrationV1()
	if _, err := ar.MutatingWebhookConfigurations().Create(ctx, hooks.Pods, metav1.CreateOptions{}); err != nil {
		return err
	}
	if _, err := ar.ValidatingWebhookConfigurations().Create(ctx, hooks.ServiceAccounts, metav1.CreateOptions{}); err != nil {
		return err
	}
	if _, err := ar.ValidatingWebhookConfigurations().Create(ctx, hooks.Enforce, metav1.CreateOptions{}); err != nil {
		return err
	}
	// Probe with dry-run pods until the webhook's configuration is live.
	cv1 := cluster.Client.CoreV1()
	if _, err := cv1.Namespaces().Create(ctx, &corev1.Namespace{ObjectMeta: metav1.ObjectMeta{Name: "e2e-probe"}}, metav1.CreateOptions{}); err != nil {
		return err
	}
	if _, err := cv1.ServiceAccounts("e2e-probe").Create(ctx, &corev1.ServiceAccount{ObjectMeta: metav1.ObjectMeta{Name: "probe",
		Annotations: map[string]string{"eks.amazonaws.com/role-arn": roleARN}}}, metav1.CreateOptions{}); err != nil {
		return err
	}
	deadline := time.Now().Add(60 * time.Second)
	for time.Now().Before(deadline) {
		p, err := cv1.Pods("e2e-probe").Create(ctx, &corev1.Pod{ObjectMeta: metav1.ObjectMeta{GenerateName: "probe-"},
			Spec: corev1.PodSpec{ServiceAccountName: "probe", Containers: []corev1.Container{{Name: "c", Image: "i"}}}},
			metav1.CreateOptions{DryRun: []string{metav1.DryRunAll}})
		if err == nil && len(p.Spec.Containers[0].Env) > 0 {
			return nil
		}
		time.Sleep(250 * time.Millisecond)
	}
	return fmt.Errorf("the API server never called the injector")
}
