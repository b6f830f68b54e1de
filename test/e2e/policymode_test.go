package e2e

import (
	"context"
	"encoding/json"
	"fmt"
	"regexp"
	"slices"
	"strings"
	gosync "sync"
	"testing"
	"time"

	corev1 "k8s.io/api/core/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/apis/meta/v1/unstructured"
	"k8s.io/client-go/dynamic"
)

// Policy mode runs beside webhook mode in the suite's cluster: `injector
// sync` writes every namespace's IdentityParameters, and the shipped
// admission policies are bound to the namespaces labelled policyModeLabel
// only (which the webhook leaves alone: they are also labelled
// pod-identity.io/inject=disabled).
const policyModeLabel = "e2e.pod-identity.io/mode"

var policyMode struct {
	once        gosync.Once
	err         error
	metricsAddr string
}

// syncArgs are the flags of `injector sync`: the providers' as the
// injector has them.
func syncArgs() []string {
	var out []string
	for _, a := range injectorArgs() {
		if !strings.HasPrefix(a, "--client-ca-file") {
			out = append(out, a)
		}
	}
	return out
}

// startPolicyMode starts `injector sync` and applies the policies, once.
func startPolicyMode(t *testing.T) {
	t.Helper()
	policyMode.once.Do(func() {
		ctx := context.Background()
		root, err := RepoRoot()
		if err != nil {
			policyMode.err = err
			return
		}
		if policyMode.metricsAddr, err = cluster.StartSync(ctx, syncArgs()...); err != nil {
			policyMode.err = err
			return
		}
		objs, err := AdmissionPolicies(root, map[string]string{policyModeLabel: "policy"})
		if err != nil {
			policyMode.err = err
			return
		}
		policyMode.err = cluster.ApplyAdmissionPolicies(ctx, objs)
	})
	if policyMode.err != nil {
		t.Fatalf("policy mode: %v\n%s", policyMode.err, cluster.SyncLog())
	}
}

// policyNamespace creates a namespace in policy mode.
func policyNamespace(t *testing.T) string {
	t.Helper()
	startPolicyMode(t)
	return namespace(t, map[string]string{policyModeLabel: "policy", "pod-identity.io/inject": "disabled"})
}

// waitForAdmission creates a ServiceAccount with an AWS role in a
// policy-mode namespace and waits until the API server's admission
// injects its pods: its informers of the policies and of the
// IdentityParameters have caught up with everything written before.
func waitForAdmission(t *testing.T, ns string) time.Duration {
	t.Helper()
	name := "marker-" + randomHex(3)
	serviceAccount(t, ns, name, awsAnnotations())
	start := time.Now()
	for {
		p, err := createPod(t, ns, podSpec("marker", name), true)
		if err == nil && envOf(p.Spec.Containers[0])["AWS_ROLE_ARN"] == roleARN {
			return time.Since(start)
		}
		if time.Since(start) > 30*time.Second {
			t.Fatalf("policy mode did not inject a pod of serviceaccount %s/%s within 30s (%v)\n%s", ns, name, err, cluster.SyncLog())
		}
		time.Sleep(5 * time.Millisecond)
	}
}

// admitted is what admission made of a pod: the stored pod (or the dry
// run's answer), the warnings, or the refusal.
type admitted struct {
	pod      *corev1.Pod
	warnings []string
	err      error
}

func admit(t *testing.T, wc *warningClient, ns string, p *corev1.Pod, dryRun bool) admitted {
	t.Helper()
	opts := metav1.CreateOptions{}
	if dryRun {
		opts.DryRun = []string{metav1.DryRunAll}
	}
	created, err := wc.CoreV1().Pods(ns).Create(context.Background(), p.DeepCopy(), opts)
	return admitted{pod: created, warnings: wc.take(), err: err}
}

// injected is the part of a pod that admission may change, with the
// namespace's name taken out, as JSON.
func injected(p *corev1.Pod, ns string) string {
	v := map[string]any{
		"labels": p.Labels, "annotations": p.Annotations, "volumes": p.Spec.Volumes,
		"initContainers": p.Spec.InitContainers, "containers": p.Spec.Containers,
	}
	b, _ := json.MarshalIndent(v, "", "  ")
	return kubeAPIAccess.ReplaceAllString(strings.ReplaceAll(string(b), ns, "<namespace>"), "kube-api-access-<random>")
}

// kubeAPIAccess is the name of the API server's token volume, random per pod.
var kubeAPIAccess = regexp.MustCompile(`kube-api-access-[a-z0-9]{5}`)

// modeCase is a ServiceAccount and a pod that runs as it.
type modeCase struct {
	name string
	sa   map[string]string
	opts []podOpt
	// injects says whether anything is added; denied, whether the pod is refused.
	injects, denied bool
}

func withAnnotations(a map[string]string) podOpt { return func(p *corev1.Pod) { p.Annotations = a } }

func withWindows(p *corev1.Pod) {
	p.Spec.NodeSelector = map[string]string{"kubernetes.io/os": "windows"}
}

func withEnv(name, value string) podOpt {
	return func(p *corev1.Pod) {
		p.Spec.Containers[0].Env = append(p.Spec.Containers[0].Env, corev1.EnvVar{Name: name, Value: value})
	}
}

func withTokenVolume(p *corev1.Pod) {
	exp := int64(3600)
	p.Spec.Volumes = append(p.Spec.Volumes, corev1.Volume{Name: "aws-iam-token", VolumeSource: corev1.VolumeSource{Projected: &corev1.ProjectedVolumeSource{
		Sources: []corev1.VolumeProjection{{ServiceAccountToken: &corev1.ServiceAccountTokenProjection{Audience: "vault", ExpirationSeconds: &exp, Path: "token"}}}}}})
}

var azureUse = withLabels(map[string]string{"azure.workload.identity/use": "true"})

func modeCases() []modeCase {
	all := merge(awsAnnotations(), azureAnnotations(), gcpAnnotations())
	return []modeCase{
		{name: "aws", sa: awsAnnotations(), injects: true},
		{name: "azure", sa: azureAnnotations(), opts: []podOpt{azureUse}, injects: true},
		{name: "azure without the use label", sa: azureAnnotations()},
		{name: "google", sa: gcpAnnotations(), injects: true},
		{name: "three clouds", sa: all, opts: []podOpt{azureUse}, injects: true},
		{name: "skip-containers", sa: all, opts: []podOpt{azureUse, withAnnotations(map[string]string{
			"eks.amazonaws.com/skip-containers": "worker, proxy", "azure.workload.identity/skip-containers": "app",
		})}, injects: true},
		{name: "only-containers", sa: awsAnnotations(), opts: []podOpt{withAnnotations(map[string]string{"eks.amazonaws.com/only-containers": "worker"})}, injects: true},
		{name: "env already set", sa: awsAnnotations(), opts: []podOpt{withEnv("AWS_REGION", "eu-west-1")}, injects: true},
		{name: "credentials already set", sa: awsAnnotations(), opts: []podOpt{withEnv("AWS_ROLE_ARN", "arn:aws:iam::111122223333:role/own")}, injects: true},
		{name: "a different volume of the same name", sa: merge(awsAnnotations(), gcpAnnotations()), opts: []podOpt{withTokenVolume}, injects: true},
		{name: "windows", sa: awsAnnotations(), opts: []podOpt{withWindows}, injects: true},
		{name: "the EKS opt-out label", sa: all, opts: []podOpt{withLabels(map[string]string{"eks.amazonaws.com/skip-pod-identity-webhook": "yes", "azure.workload.identity/use": "true"})}, injects: true},
		{name: "the opt-out label", sa: all, opts: []podOpt{withLabels(map[string]string{"pod-identity.io/inject": "false"})}},
		{name: "an invalid identity", sa: map[string]string{"eks.amazonaws.com/role-arn": "arn:aws:iam::12345:role/app"}, denied: true},
		{name: "no identity", sa: nil},
	}
}

// TestPolicyModeInjectsWhatTheWebhookInjects creates each case's
// ServiceAccount and pod in a webhook-mode namespace and in a policy-mode
// namespace, and compares what the API server stores (and its dry-run
// answer): the same labels, annotations, volumes and containers; the same
// refusal message; the webhook's warnings among policy mode's.
func TestPolicyModeInjectsWhatTheWebhookInjects(t *testing.T) {
	webNS, polNS := namespace(t, nil), policyNamespace(t)
	wc := newWarningClient(t)
	for i, c := range modeCases() {
		t.Run(c.name, func(t *testing.T) {
			sa := fmt.Sprintf("sa-%d", i)
			for _, ns := range []string{webNS, polNS} {
				if _, err := wc.CoreV1().ServiceAccounts(ns).Create(context.Background(), &corev1.ServiceAccount{ObjectMeta: metav1.ObjectMeta{Name: sa, Annotations: c.sa}}, metav1.CreateOptions{}); err != nil {
					if !c.denied {
						t.Fatal(err)
					}
					// Webhook mode refuses the invalid annotation on the
					// ServiceAccount: set it while the namespace is not watched.
					createUnwatched(t, ns, sa, c.sa)
				}
			}
			waitForAdmission(t, polNS)
			wc.take()
			for _, dryRun := range []bool{false, true} {
				name := fmt.Sprintf("pod-%d-%t", i, dryRun)
				web := admit(t, wc, webNS, podSpec(name, sa, c.opts...), dryRun)
				pol := admit(t, wc, polNS, podSpec(name, sa, c.opts...), dryRun)
				if c.denied {
					if web.err == nil || pol.err == nil {
						t.Fatalf("webhook mode refused: %v; policy mode refused: %v", web.err, pol.err)
					}
					webMsg := web.err.Error()[strings.Index(web.err.Error(), "denied the request: ")+len("denied the request: "):]
					if !strings.Contains(strings.ReplaceAll(pol.err.Error(), polNS, webNS), webMsg) {
						t.Errorf("policy mode's refusal\n  %v\ndoes not hold the webhook's message\n  %s", pol.err, webMsg)
					}
					return
				}
				if web.err != nil || pol.err != nil {
					t.Fatalf("webhook mode: %v; policy mode: %v\n%s", web.err, pol.err, cluster.SyncLog())
				}
				w, p := injected(web.pod, webNS), injected(pol.pod, polNS)
				if w != p {
					t.Errorf("dry run %t: policy mode stored\n%s\nwebhook mode stored\n%s\nfrom the parameters\n%s", dryRun, p, w, parametersOf(t, polNS, sa))
				}
				if got := len(web.pod.Spec.Volumes) > len(podSpec(name, sa, c.opts...).Spec.Volumes)+1; got != c.injects {
					t.Errorf("dry run %t: injected %t, want %t", dryRun, got, c.injects)
				}
				// The API server says which policy warned; the words are the webhook's.
				var polWarnings []string
				for _, w := range pol.warnings {
					polWarnings = append(polWarnings, strings.TrimPrefix(w, "Validation failed for ValidatingAdmissionPolicy 'pod-identity-warn' with binding 'pod-identity-warn': "))
				}
				for _, warning := range web.warnings {
					warning = strings.ReplaceAll(warning, webNS, polNS)
					if !slices.Contains(polWarnings, warning) {
						t.Errorf("dry run %t: webhook mode warned\n  %s\npolicy mode warned only\n  %s", dryRun, warning, strings.Join(polWarnings, "\n  "))
					}
				}
			}
		})
	}
}

// parametersOf returns the ServiceAccount's entry of the namespace's
// IdentityParameters, as JSON.
func parametersOf(t *testing.T, ns, sa string) string {
	t.Helper()
	dyn, err := dynamic.NewForConfig(cluster.Config)
	if err != nil {
		t.Fatal(err)
	}
	u, err := dyn.Resource(IdentityParametersGVR).Namespace(ns).Get(context.Background(), "pod-identity", metav1.GetOptions{})
	if err != nil {
		return err.Error()
	}
	entry, _, _ := unstructured.NestedMap(u.Object, "spec", "serviceAccounts", sa)
	b, _ := json.MarshalIndent(entry, "", "  ")
	return string(b)
}

// createUnwatched creates a ServiceAccount with annotations the
// ServiceAccount webhook would refuse, as one written before the
// injector was installed.
func createUnwatched(t *testing.T, ns, name string, ann map[string]string) {
	t.Helper()
	ctx := context.Background()
	set := func(labels map[string]string) {
		n, err := cluster.Client.CoreV1().Namespaces().Get(ctx, ns, metav1.GetOptions{})
		if err != nil {
			t.Fatal(err)
		}
		for k, v := range labels {
			if v == "" {
				delete(n.Labels, k)
			} else {
				n.Labels[k] = v
			}
		}
		if _, err := cluster.Client.CoreV1().Namespaces().Update(ctx, n, metav1.UpdateOptions{}); err != nil {
			t.Fatal(err)
		}
	}
	n, err := cluster.Client.CoreV1().Namespaces().Get(ctx, ns, metav1.GetOptions{})
	if err != nil {
		t.Fatal(err)
	}
	was := n.Labels["pod-identity.io/inject"]
	set(map[string]string{"pod-identity.io/inject": "disabled"})
	deadline := time.Now().Add(10 * time.Second)
	for {
		_, err := cluster.Client.CoreV1().ServiceAccounts(ns).Create(ctx, &corev1.ServiceAccount{ObjectMeta: metav1.ObjectMeta{Name: name, Annotations: ann}}, metav1.CreateOptions{})
		if err == nil {
			break
		}
		if time.Now().After(deadline) {
			t.Fatal(err)
		}
		time.Sleep(50 * time.Millisecond)
	}
	set(map[string]string{"pod-identity.io/inject": was})
}
