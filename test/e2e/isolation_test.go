package e2e

import (
	"context"
	"fmt"
	"strings"
	"testing"
	"time"

	corev1 "k8s.io/api/core/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/apis/meta/v1/unstructured"
	"k8s.io/apimachinery/pkg/types"
	"k8s.io/client-go/dynamic"
)

// TestIsolationHoldsAgainstWhoeverCanCreateAPod acts as a tenant with
// namespaced rights under a policy that lets the namespace use only its
// own AWS roles, no Azure client ID and its own Google pool: each way
// around the injector is refused by the enforcement webhook, with a
// message naming the pod, the container, the variable or audience and
// the policy, while a compliant pod is still injected.
func TestIsolationHoldsAgainstWhoeverCanCreateAPod(t *testing.T) {
	ctx := context.Background()
	ns := namespace(t, map[string]string{policyLabel: "true"})
	own := "arn:aws:iam::111122223333:role/tenants/" + ns + "/app"
	// Annotated before the policy existed (or while its webhook failed open).
	legacy := &corev1.ServiceAccount{ObjectMeta: metav1.ObjectMeta{Name: "legacy", Annotations: map[string]string{"eks.amazonaws.com/role-arn": adminRole}},
		AutomountServiceAccountToken: ptrBool(false)}
	if _, err := cluster.Client.CoreV1().ServiceAccounts(ns).Create(ctx, legacy, metav1.CreateOptions{}); err != nil {
		t.Fatal(err)
	}
	name := "e2e-isolation-" + randomHex(3)
	if err := createPolicy(t, identityPolicy(name, map[string]any{
		"namespaceSelector": map[string]any{"matchLabels": map[string]any{policyLabel: "true"}},
		"aws":               map[string]any{"roleARNs": []any{"arn:aws:iam::111122223333:role/tenants/{namespace}/*"}},
		"azure":             map[string]any{"clientIDs": []any{}},
		"gcp":               map[string]any{"workloadIdentityProviders": []any{wifProvider}},
		"providers":         map[string]any{"alibaba": map[string]any{"identities": []any{"*-reader"}}},
	})); err != nil {
		t.Fatal(err)
	}
	serviceAccount(t, ns, "app", map[string]string{"eks.amazonaws.com/role-arn": own})
	serviceAccount(t, ns, "plain", nil)
	serviceAccount(t, ns, "google", gcpAnnotations())
	pod := tenantPod
	until(t, "the policy is enforced", func() bool {
		_, err := createPod(t, ns, pod("probe", "legacy"), true)
		return err != nil
	})
	wantPolicy := fmt.Sprintf("identitypolicy %q", name)

	t.Run("the compliant pod is injected", func(t *testing.T) {
		got, err := createPod(t, ns, pod("web", "app"), true)
		if err != nil || envOf(got.Spec.Containers[0])["AWS_ROLE_ARN"] != own {
			t.Fatalf("compliant pod: %v", err)
		}
	})
	t.Run("a pod that projects its own AWS token and names a refused role is refused", func(t *testing.T) {
		_, err := createPod(t, ns, pod("own-aws", "plain", ownToken("sts.amazonaws.com",
			corev1.EnvVar{Name: "AWS_ROLE_ARN", Value: adminRole}, corev1.EnvVar{Name: "AWS_WEB_IDENTITY_TOKEN_FILE", Value: "/t/token"})), true)
		requireDenied(t, err, fmt.Sprintf(`pod "%s/own-aws"`, ns), `volume "mine" has a serviceaccount token for audience "sts.amazonaws.com"`,
			`container "app" env AWS_ROLE_ARN "`+adminRole+`" is not allowed by `+wantPolicy, "spec.selfProjectedTokens: Deny")
	})
	t.Run("a pod that projects its own Azure token is refused", func(t *testing.T) {
		_, err := createPod(t, ns, pod("own-azure", "plain", ownToken("api://AzureADTokenExchange",
			corev1.EnvVar{Name: "AZURE_CLIENT_ID", Value: clientID})), true)
		requireDenied(t, err, `audience "api://AzureADTokenExchange"`, `container "app" env AZURE_CLIENT_ID`, wantPolicy)
	})
	t.Run("the Azure label on a serviceaccount with no client ID is refused where client IDs are governed", func(t *testing.T) {
		azureLabel := pod("azure-label", "plain", withLabels(map[string]string{"azure.workload.identity/use": "true"}))
		_, err := createPod(t, ns, azureLabel, true)
		requireDenied(t, err, "no annotation azure.workload.identity/client-id (the workload would choose the client ID) is not allowed by "+wantPolicy)
	})
	t.Run("the opt-out label does not exempt a pod from enforcement", func(t *testing.T) {
		_, err := createPod(t, ns, pod("opted-out", "legacy", withLabels(map[string]string{"pod-identity.io/inject": "false"})), true)
		requireDenied(t, err, fmt.Sprintf(`annotation eks.amazonaws.com/role-arn "%s" is not allowed by %s`, adminRole, wantPolicy))
	})
	t.Run("the EKS Pod Identity label does not exempt a pod either", func(t *testing.T) {
		_, err := createPod(t, ns, pod("pod-identity", "legacy", withLabels(map[string]string{"eks.amazonaws.com/pod-identity": "enabled"})), true)
		requireDenied(t, err, fmt.Sprintf(`annotation eks.amazonaws.com/role-arn "%s" is not allowed by %s`, adminRole, wantPolicy))
	})
	t.Run("an audience naming another pool is refused", func(t *testing.T) {
		other := strings.Replace("https://iam.googleapis.com/"+wifProvider, wifPool, "victim", 1)
		_, err := createPod(t, ns, pod("other-pool", "plain", ownToken(other)), true)
		requireDenied(t, err, `audience "`+other+`"`, wantPolicy)
	})
	t.Run("a pod's own Google credential configuration is refused", func(t *testing.T) { ownGoogleConfigurationIsRefused(t, ns) })
	t.Run("kubectl annotate --overwrite of the Google credential configuration is refused", func(t *testing.T) {
		googleConfigurationEditIsRefused(t, ns, `{"type":"external_account","audience":"//iam.googleapis.com/projects/1/locations/global/workloadIdentityPools/victim/providers/p"}`)
	})
	hiddenIdentitiesAreRefused(t, ns, wantPolicy)
}

// hiddenIdentitiesAreRefused: in a governed namespace, a role left to
// envFrom (which the request does not show) beside the token, and a
// kubectl debug container that mounts the token and names a refused
// role, are refused; envFrom beside the injected role is not.
func hiddenIdentitiesAreRefused(t *testing.T, ns, wantPolicy string) {
	envFrom := func(p *corev1.Pod) {
		p.Spec.Containers[0].EnvFrom = []corev1.EnvFromSource{{ConfigMapRef: &corev1.ConfigMapEnvSource{LocalObjectReference: corev1.LocalObjectReference{Name: "settings"}}}}
	}
	t.Run("a role left to envFrom beside the token is refused", func(t *testing.T) {
		_, err := createPod(t, ns, tenantPod("envfrom", "app", envFrom, withEnv("AWS_WEB_IDENTITY_TOKEN_FILE", "/var/run/secrets/eks.amazonaws.com/serviceaccount/token")), true)
		requireDenied(t, err, `container "app" mounts the aws token (volume "aws-iam-token") and takes variables from envFrom without setting AWS_ROLE_ARN itself`)
	})
	t.Run("a client ID left to envFrom beside a token the pod projects itself is refused", func(t *testing.T) {
		mounted := func(p *corev1.Pod) {
			p.Spec.Containers[0].VolumeMounts = append(p.Spec.Containers[0].VolumeMounts, corev1.VolumeMount{Name: "mine", MountPath: "/var/run/secrets/azure/wi/0123abcd/token", ReadOnly: true})
		}
		_, err := createPod(t, ns, tenantPod("envfrom-own", "plain", ownToken("api://AzureADTokenExchange"), mounted, envFrom), true)
		requireDenied(t, err, `container "app" mounts the azure token the pod projects itself (volume "mine") and takes variables from envFrom without setting AZURE_CLIENT_ID itself`)
	})
	t.Run("a RAM role ARN of another account is refused, one of the provider's account is read by its name", func(t *testing.T) {
		_, err := createPod(t, ns, tenantPod("ram-other", "plain", withEnv("ALIBABA_CLOUD_ROLE_ARN", "acs:ram::999999999999999:role/billing-reader")), true)
		requireDenied(t, err, `container "app" env ALIBABA_CLOUD_ROLE_ARN "acs:ram::999999999999999:role/billing-reader" (not of the form acs:ram::1234567890123456:role/<identity>) is not allowed by `+wantPolicy)
		nested := "acs:ram::1234567890123456:role/acs:ram::999999999999999:role/billing-reader"
		_, err = createPod(t, ns, tenantPod("ram-nested", "plain", withEnv("ALIBABA_CLOUD_ROLE_ARN", nested)), true)
		requireDenied(t, err, `container "app" env ALIBABA_CLOUD_ROLE_ARN "`+nested+`" (not of the form acs:ram::1234567890123456:role/<identity>) is not allowed by `+wantPolicy)
		if _, err := createPod(t, ns, tenantPod("ram-own", "plain", withEnv("ALIBABA_CLOUD_ROLE_ARN", "acs:ram::1234567890123456:role/billing-reader")), true); err != nil {
			t.Fatalf("the provider's own account's allowed role was refused: %v", err)
		}
	})
	t.Run("envFrom beside the injected role is allowed", func(t *testing.T) {
		if _, err := createPod(t, ns, tenantPod("envfrom-ok", "app", envFrom), true); err != nil {
			t.Fatalf("refused: %v", err)
		}
	})
	t.Run("a configuration of its own mounted where the injector puts Google's is refused", func(t *testing.T) {
		own := tenantPod("evil-mount", "google", func(p *corev1.Pod) {
			p.Spec.Volumes = append(p.Spec.Volumes, corev1.Volume{Name: "evil", VolumeSource: corev1.VolumeSource{
				ConfigMap: &corev1.ConfigMapVolumeSource{LocalObjectReference: corev1.LocalObjectReference{Name: "evil"}}}})
			p.Spec.Containers[0].VolumeMounts = append(p.Spec.Containers[0].VolumeMounts, corev1.VolumeMount{Name: "evil", MountPath: "/var/run/secrets/workload-identity"})
		})
		_, err := createPod(t, ns, own, true)
		requireDenied(t, err, `container "app" mounts volume "evil" at /var/run/secrets/workload-identity, where the gcp injection puts its token or credential configuration`)
	})
	t.Run("kubectl debug with a refused role and the token is refused", func(t *testing.T) {
		ctx := context.Background()
		stored := storedPod(t, ns, tenantPod("debugged", "app"))
		stored.Spec.EphemeralContainers = append(stored.Spec.EphemeralContainers, corev1.EphemeralContainer{EphemeralContainerCommon: corev1.EphemeralContainerCommon{
			Name: "debugger", Image: "example.com/debug:1.0", Env: []corev1.EnvVar{{Name: "AWS_ROLE_ARN", Value: adminRole}},
			VolumeMounts: []corev1.VolumeMount{{Name: "aws-iam-token", MountPath: "/var/run/secrets/eks.amazonaws.com/serviceaccount", ReadOnly: true}}}})
		_, err := cluster.Client.CoreV1().Pods(ns).UpdateEphemeralContainers(ctx, stored.Name, stored, metav1.UpdateOptions{})
		requireDenied(t, err, `container "debugger" env AWS_ROLE_ARN "`+adminRole+`" is not allowed by `+wantPolicy)
	})
}

// ownGoogleConfigurationIsRefused: a pod of the governed namespace's
// "google" ServiceAccount that brings its own credential configuration,
// as the annotation or as a volume under the injector's name, is refused.
func ownGoogleConfigurationIsRefused(t *testing.T, ns string) {
	own := tenantPod("own-config", "google", withAnnotations(map[string]string{"cloud.google.com/external-credentials-json": `{"type":"external_account","service_account_impersonation_url":"https://iamcredentials.googleapis.com/v1/projects/-/serviceAccounts/owner@victim.iam.gserviceaccount.com:generateAccessToken"}`}))
	_, err := createPod(t, ns, own, true)
	requireDenied(t, err, fmt.Sprintf(`pod "%s/own-config": annotation cloud.google.com/external-credentials-json is not the gcp credential configuration the injector writes for serviceaccount "%s/google"`, ns, ns))
	clash := tenantPod("own-volume", "google", func(p *corev1.Pod) {
		p.Spec.Volumes = append(p.Spec.Volumes, corev1.Volume{Name: "gcp-workload-identity", VolumeSource: corev1.VolumeSource{
			ConfigMap: &corev1.ConfigMapVolumeSource{LocalObjectReference: corev1.LocalObjectReference{Name: "my-config"}}}})
	})
	_, err = createPod(t, ns, clash, true)
	requireDenied(t, err, fmt.Sprintf(`pod "%s/own-volume": volume "gcp-workload-identity" has the name of the gcp injection's volume but not its content`, ns))
}

// googleConfigurationEditIsRefused: kubectl annotate --overwrite of a
// stored pod's credential configuration (to value) is refused; an
// unrelated annotation still changes.
func googleConfigurationEditIsRefused(t *testing.T, ns, value string) {
	stored := storedPod(t, ns, tenantPod("google", "google"))
	key := "cloud.google.com/external-credentials-json"
	if stored.Annotations[key] == "" {
		t.Fatalf("the pod has no %s annotation to edit", key)
	}
	err := annotatePod(ns, stored.Name, key, value)
	requireDenied(t, err, fmt.Sprintf(`pod "%s/google": annotation %s is the cloud credential configuration the pod reads through the downward API`, ns, key), "cannot change once the pod exists")
	if err := annotatePod(ns, stored.Name, "team", "search"); err != nil {
		t.Errorf("an unrelated annotation was refused: %v", err)
	}
}

// tenantPod is a pod of sa that mounts no Kubernetes API token.
func tenantPod(name, sa string, opts ...podOpt) *corev1.Pod {
	p := podSpec(name, sa, opts...)
	p.Spec.AutomountServiceAccountToken = ptrBool(false)
	return p
}

// ownToken makes a pod project a token for audience itself and give its
// first container env.
func ownToken(audience string, env ...corev1.EnvVar) podOpt {
	return func(p *corev1.Pod) {
		p.Spec.Volumes = append(p.Spec.Volumes, corev1.Volume{Name: "mine", VolumeSource: corev1.VolumeSource{Projected: &corev1.ProjectedVolumeSource{
			Sources: []corev1.VolumeProjection{{ServiceAccountToken: &corev1.ServiceAccountTokenProjection{Audience: audience, Path: "token"}}}}}})
		p.Spec.Containers[0].Env = append(p.Spec.Containers[0].Env, env...)
	}
}

// setNamespaceLabel sets (or, with value "", removes) a label of ns.
func setNamespaceLabel(t *testing.T, ns, key, value string) {
	t.Helper()
	ctx := context.Background()
	n, err := cluster.Client.CoreV1().Namespaces().Get(ctx, ns, metav1.GetOptions{})
	if err != nil {
		t.Fatal(err)
	}
	if value == "" {
		delete(n.Labels, key)
	} else {
		n.Labels[key] = value
	}
	if _, err := cluster.Client.CoreV1().Namespaces().Update(ctx, n, metav1.UpdateOptions{}); err != nil {
		t.Fatal(err)
	}
}

func annotatePod(ns, name, key, value string) error {
	patch := fmt.Sprintf(`{"metadata":{"annotations":{%q:%q}}}`, key, value)
	_, err := cluster.Client.CoreV1().Pods(ns).Patch(context.Background(), name, types.MergePatchType, []byte(patch), metav1.PatchOptions{})
	return err
}

// TestALongRoleARNIsRefusedAndTheInjectorStaysUp: a ServiceAccount
// written while the webhooks did not look (its namespace excluded) holds
// a well-formed role ARN of 250 KB; a pod at the container cap that runs
// as it would have made a patch of over 100 MB. It is refused with a
// message naming the annotation and IAM's limit, and the injector's peak
// resident memory stays under its 256 MiB limit.
func TestALongRoleARNIsRefusedAndTheInjectorStaysUp(t *testing.T) {
	ns := namespace(t, map[string]string{"pod-identity.io/inject": "disabled"})
	long := "arn:aws:iam::111122223333:role/tenants/" + ns + "/" + strings.Repeat("a/", 125000) + "app"
	serviceAccount(t, ns, "big", map[string]string{"eks.amazonaws.com/role-arn": long})
	setNamespaceLabel(t, ns, "pod-identity.io/inject", "")
	p := &corev1.Pod{ObjectMeta: metav1.ObjectMeta{Name: "wide"}, Spec: corev1.PodSpec{ServiceAccountName: "big", AutomountServiceAccountToken: ptrBool(false)}}
	for i := range 500 {
		p.Spec.Containers = append(p.Spec.Containers, corev1.Container{Name: fmt.Sprintf("c%d", i), Image: "registry.example.com/app:1"})
	}
	var lastErr error
	until(t, "the pod is refused", func() bool {
		_, lastErr = createPod(t, ns, p, true)
		return lastErr != nil
	})
	// The cache keeps no more of the value than shows it is over the
	// engine's bound, which says why.
	requireDenied(t, lastErr, fmt.Sprintf(`serviceaccount "%s/big": annotation eks.amazonaws.com/role-arn has invalid value "arn:aws:iam::111122223333:role/tenants/`, ns),
		"at most 4096 bytes, and this one has more", "2048 characters")
	if len(lastErr.Error()) > 4096 {
		t.Errorf("the denial is %d bytes long: it must quote a prefix of the value, not the value", len(lastErr.Error()))
	}
	rss, peak, err := cluster.InjectorMemory()
	if err != nil {
		t.Fatal(err)
	}
	t.Logf("injector after the refusal: RSS %.1f MiB, peak %.1f MiB", float64(rss)/1024, float64(peak)/1024)
	if peak/1024 >= 256 {
		t.Errorf("peak resident memory %.1f MiB is over the 256 MiB limit", float64(peak)/1024)
	}
}

// TestOnlySyncWritesIdentityParameters: in policy mode the API server
// injects whatever a namespace's IdentityParameters say, so the shipped
// writers' policy refuses a forged write by anyone else (here a
// cluster administrator, whom RBAC would let do anything), while sync,
// running as its shipped ServiceAccount, keeps writing.
func TestOnlySyncWritesIdentityParameters(t *testing.T) {
	startPolicyMode(t)
	ctx := context.Background()
	ns := policyNamespace(t)
	serviceAccount(t, ns, "app", awsAnnotations())
	if _, err := cluster.WaitForParameters(ctx, ns, "app", 30*time.Second); err != nil {
		t.Fatalf("sync, as its own serviceaccount, did not write the parameters: %v\n%s", err, syncLog())
	}
	dyn, err := dynamic.NewForConfig(cluster.Config)
	if err != nil {
		t.Fatal(err)
	}
	params := dyn.Resource(IdentityParametersGVR).Namespace(ns)
	// The entry sync wrote, with another role: a well-formed forgery.
	cur, err := params.Get(ctx, "pod-identity", metav1.GetOptions{})
	if err != nil {
		t.Fatal(err)
	}
	raw, err := cur.MarshalJSON()
	if err != nil {
		t.Fatal(err)
	}
	if !strings.Contains(string(raw), roleARN) {
		t.Fatalf("the parameters do not hold the role %s: %s", roleARN, raw)
	}
	forged := &unstructured.Unstructured{}
	if err := forged.UnmarshalJSON([]byte(strings.ReplaceAll(string(raw), roleARN, adminRole))); err != nil {
		t.Fatal(err)
	}
	// The API server takes a moment to see a policy just applied: probe
	// with dry runs, which run admission and write nothing.
	until(t, "the writers' policy is in force", func() bool {
		_, err := params.Update(ctx, forged.DeepCopy(), metav1.UpdateOptions{DryRun: []string{metav1.DryRunAll}})
		return err != nil
	})
	_, err = params.Update(ctx, forged, metav1.UpdateOptions{})
	requireDenied(t, err, fmt.Sprintf("identityparameters %s/pod-identity: only injector sync (serviceaccount pod-identity-system/pod-identity-sync) writes IdentityParameters, not e2e-admin", ns))
	err = params.Delete(ctx, "pod-identity", metav1.DeleteOptions{})
	requireDenied(t, err, "only injector sync")
	other := namespace(t, nil)
	_, err = dyn.Resource(IdentityParametersGVR).Namespace(other).Create(ctx, &unstructured.Unstructured{Object: map[string]any{
		"apiVersion": "pod-identity.io/v1alpha1", "kind": "IdentityParameters", "metadata": map[string]any{"name": "pod-identity"}, "spec": map[string]any{}}}, metav1.CreateOptions{})
	requireDenied(t, err, "only injector sync")
	// Sync still writes: a second identity reaches the parameters.
	serviceAccount(t, ns, "second", awsAnnotations())
	if _, err := cluster.WaitForParameters(ctx, ns, "second", 30*time.Second); err != nil {
		t.Fatalf("sync's later write: %v\n%s", err, syncLog())
	}
}

// TestPolicyModeIsolationHolds: the same tenant in policy mode, where the
// ValidatingAdmissionPolicy pod-identity-enforce checks the pod as it
// will be stored, from what sync writes for the governed namespace.
func TestPolicyModeIsolationHolds(t *testing.T) {
	ns := policyNamespace(t)
	setNamespaceLabel(t, ns, policyLabel+"-policy-mode", "true")
	own := "arn:aws:iam::111122223333:role/tenants/" + ns + "/app"
	serviceAccount(t, ns, "legacy", map[string]string{"eks.amazonaws.com/role-arn": adminRole})
	serviceAccount(t, ns, "app", map[string]string{"eks.amazonaws.com/role-arn": own})
	serviceAccount(t, ns, "plain", nil)
	serviceAccount(t, ns, "google", gcpAnnotations())
	waitForAdmission(t, ns)
	name := "e2e-policy-isolation-" + randomHex(3)
	if err := createPolicy(t, identityPolicy(name, map[string]any{
		"namespaceSelector": map[string]any{"matchLabels": map[string]any{policyLabel + "-policy-mode": "true"}},
		"aws":               map[string]any{"roleARNs": []any{"arn:aws:iam::111122223333:role/tenants/{namespace}/*", "arn:aws:iam::*:role/e2e-*"}},
		"azure":             map[string]any{"clientIDs": []any{}},
		"gcp":               map[string]any{"workloadIdentityProviders": []any{wifProvider}},
		"providers":         map[string]any{"alibaba": map[string]any{"identities": []any{"*-reader"}}},
	})); err != nil {
		t.Fatal(err)
	}
	pod := tenantPod
	ownAWS := pod("own-aws", "plain", ownToken("sts.amazonaws.com",
		corev1.EnvVar{Name: "AWS_ROLE_ARN", Value: adminRole}, corev1.EnvVar{Name: "AWS_WEB_IDENTITY_TOKEN_FILE", Value: "/t/token"}))
	var denial error
	took := until(t, "the enforcement policy refuses a pod's own token", func() bool {
		_, denial = createPod(t, ns, ownAWS, true)
		return denial != nil
	})
	t.Logf("policy created: enforced in policy mode %s later", took.Round(time.Millisecond))
	wantPolicy := fmt.Sprintf("identitypolicy %q", name)

	t.Run("a pod that projects its own AWS token and names a refused role is refused", func(t *testing.T) {
		requireDenied(t, denial, "pod-identity-enforce", fmt.Sprintf(`pod "%s/own-aws" (serviceaccount "%s/plain")`, ns, ns),
			`volume "mine" has a serviceaccount token for audience "sts.amazonaws.com"`, "spec.selfProjectedTokens: Deny",
			`container "app" env AWS_ROLE_ARN "`+adminRole+`" is not allowed by `+wantPolicy)
	})
	t.Run("the compliant pod is injected", func(t *testing.T) {
		got, err := createPod(t, ns, pod("web", "app"), true)
		if err != nil || envOf(got.Spec.Containers[0])["AWS_ROLE_ARN"] != own {
			t.Fatalf("compliant pod: %v", err)
		}
	})
	t.Run("a pod that projects its own Azure token is refused", func(t *testing.T) {
		_, err := createPod(t, ns, pod("own-azure", "plain", ownToken("api://AzureADTokenExchange",
			corev1.EnvVar{Name: "AZURE_CLIENT_ID", Value: clientID})), true)
		requireDenied(t, err, `audience "api://AzureADTokenExchange"`, `container "app" env AZURE_CLIENT_ID`, wantPolicy)
	})
	t.Run("an audience naming another pool is refused, in another spelling too", func(t *testing.T) {
		other := strings.Replace("https://IAM.googleapis.com/"+wifProvider+"/", wifPool, "victim", 1)
		_, err := createPod(t, ns, pod("other-pool", "plain", ownToken(other)), true)
		requireDenied(t, err, `audience "`+other+`"`, wantPolicy)
	})
	t.Run("the Azure label on a serviceaccount with no client ID is refused where client IDs are governed", func(t *testing.T) {
		azureLabel := pod("azure-label", "plain", withLabels(map[string]string{"azure.workload.identity/use": "true"}))
		err := refusedByDeny(t, ns, azureLabel)
		requireDenied(t, err, fmt.Sprintf(`pod "%s/azure-label" (serviceaccount "%s/plain"): no annotation azure.workload.identity/client-id (the workload would choose the client ID) is not allowed by %s`, ns, ns, wantPolicy))
	})
	t.Run("a mesh's token is not a cloud's", func(t *testing.T) {
		if _, err := createPod(t, ns, pod("mesh", "plain", ownToken("istio-ca")), true); err != nil {
			t.Fatalf("a token for istio-ca was refused: %v", err)
		}
	})
	t.Run("the opt-out label does not exempt a pod from enforcement", func(t *testing.T) {
		_, err := createPod(t, ns, pod("opted-out", "legacy", withLabels(map[string]string{"pod-identity.io/inject": "false"})), true)
		requireDenied(t, err, "pod-identity-enforce", fmt.Sprintf(`annotation eks.amazonaws.com/role-arn "%s" is not allowed by %s`, adminRole, wantPolicy))
	})
	t.Run("a pod's own Google credential configuration is refused", func(t *testing.T) { ownGoogleConfigurationIsRefused(t, ns) })
	t.Run("kubectl annotate --overwrite of the Google credential configuration is refused", func(t *testing.T) {
		googleConfigurationEditIsRefused(t, ns, `{"type":"external_account"}`)
	})
	hiddenIdentitiesAreRefused(t, ns, wantPolicy)
}

// refusedByDeny creates p, which policy mode refuses, and returns the
// refusal. The written policy reads the records, pod-identity-enforce the
// IdentityParameters: for a moment after the policy, the former may still
// inject what the latter then refuses as the pod's own token (refused
// either way). Once they agree, pod-identity-deny refuses with the
// webhook's words: in written mode it waits for that refusal.
func refusedByDeny(t *testing.T, ns string, p *corev1.Pod) error {
	t.Helper()
	_, err := createPod(t, ns, p, true)
	if WrittenRules() {
		until(t, "the refusal comes from pod-identity-deny", func() bool {
			_, err = createPod(t, ns, p, true)
			return err != nil && strings.Contains(err.Error(), "pod-identity-deny")
		})
	}
	return err
}
