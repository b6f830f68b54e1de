package e2e

import (
	"context"
	"strings"
	"testing"
	"time"

	corev1 "k8s.io/api/core/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
)

// TestAMirrorPodIsCreatedUntouched: the API server refuses a mirror pod
// that mounts a ServiceAccount token, so a static pod's mirror in a
// namespace whose default ServiceAccount carries an identity must be left
// alone (the shipped configuration does not even call the webhook for it).
func TestAMirrorPodIsCreatedUntouched(t *testing.T) {
	ns := namespace(t, nil)
	sa, err := cluster.Client.CoreV1().ServiceAccounts(ns).Get(context.Background(), "default", metav1.GetOptions{})
	if err != nil {
		// The ServiceAccount controller does not run here: create it.
		sa = serviceAccount(t, ns, "default", nil)
	}
	sa.Annotations = awsAnnotations()
	if _, err := cluster.Client.CoreV1().ServiceAccounts(ns).Update(context.Background(), sa, metav1.UpdateOptions{}); err != nil {
		t.Fatal(err)
	}
	mirror := &corev1.Pod{
		ObjectMeta: metav1.ObjectMeta{Name: "etcd-node-1", Annotations: map[string]string{"kubernetes.io/config.mirror": "0123456789abcdef", "kubernetes.io/config.source": "file"}},
		Spec:       corev1.PodSpec{NodeName: "node-1", Containers: []corev1.Container{{Name: "etcd", Image: "registry.example.com/etcd:3"}}},
	}
	p, err := createPod(t, ns, mirror, true)
	if err != nil {
		t.Fatalf("the mirror pod was refused: %v", err)
	}
	if volume(p, "aws-iam-token") != nil {
		t.Error("the mirror pod was injected")
	}
	// The same pod without the mirror annotation is injected: the
	// namespace's default ServiceAccount does carry the identity.
	plain := mirror.DeepCopy()
	plain.Name, plain.Annotations = "plain", nil
	if p, err := createPod(t, ns, plain, true); err != nil || volume(p, "aws-iam-token") == nil {
		t.Fatalf("the same pod without the mirror annotation: injected %v, %v", err == nil && volume(p, "aws-iam-token") != nil, err)
	}
}

// TestTheEKSOptOutLabelSkipsAWS: a pod labelled with the EKS webhook's
// opt-out gets no AWS identity, whatever the label's value.
func TestTheEKSOptOutLabelSkipsAWS(t *testing.T) {
	ns := namespace(t, nil)
	serviceAccount(t, ns, "reader", awsAnnotations())
	for _, value := range []string{"true", ""} {
		p, err := createPod(t, ns, podSpec("skipped-"+randomHex(2), "reader", withLabels(map[string]string{"eks.amazonaws.com/skip-pod-identity-webhook": value})), true)
		if err != nil {
			t.Fatal(err)
		}
		if volume(p, "aws-iam-token") != nil {
			t.Errorf("label value %q: the pod got the AWS identity", value)
		}
	}
}

// TestTheAWSSessionIsNamedAfterThePod: with role-session-name: pod-name,
// aws-sdk-go-v2 assumes the role with the pod's (generated) name as its
// session name, which is what CloudTrail then shows.
func TestTheAWSSessionIsNamedAfterThePod(t *testing.T) {
	ns := namespace(t, nil)
	serviceAccount(t, ns, "reader", merge(awsAnnotations(), map[string]string{"eks.amazonaws.com/role-session-name": "pod-name"}))
	fakes.STS.Trust(roleARN, Subject(ns, "reader"))
	stored := storedPod(t, ns, podSpec("batch", "reader", generated))
	files := podFiles{t.TempDir()}
	projectToken(t, stored, "aws-iam-token", files)
	setContainerEnv(t, stored.Spec.Containers[0], files, map[string]string{"AWS_ENDPOINT_URL_STS": fakes.STS.URL, "metadata.name": stored.Name})
	creds := awsCredentials(t)
	if got := fakes.STS.SessionName(creds.AccessKeyID); got != stored.Name {
		t.Errorf("the role was assumed with session name %q, want the pod's name %q", got, stored.Name)
	}
}

// TestAPodAnotherWebhookInjectedComesOutTheSame: on EKS the managed pod
// identity webhook runs whatever else is installed. A stand-in that
// patches pods as the EKS webhook v0.6.17 does (the whole container lists
// replaced, with the role's variables and the token mount, and the token
// volume) runs before ours. When it injected the role our ServiceAccount
// names, the stored pod has it exactly once and we say nothing; when it
// injected another role, we add nothing and say so.
func TestAPodAnotherWebhookInjectedComesOutTheSame(t *testing.T) {
	ns := namespace(t, nil)
	serviceAccount(t, ns, "reader", awsAnnotations())
	managedRole := roleARN
	url := serveMutator(t, "managed-eks", func(p *corev1.Pod) []map[string]any {
		if volume(p, "aws-iam-token") != nil {
			return nil
		}
		inject := func(cs []corev1.Container) []corev1.Container {
			for i := range cs {
				cs[i].Env = append(cs[i].Env,
					corev1.EnvVar{Name: "AWS_ROLE_ARN", Value: managedRole},
					corev1.EnvVar{Name: "AWS_WEB_IDENTITY_TOKEN_FILE", Value: "/var/run/secrets/eks.amazonaws.com/serviceaccount/token"})
				cs[i].VolumeMounts = append(cs[i].VolumeMounts, corev1.VolumeMount{Name: "aws-iam-token", ReadOnly: true, MountPath: "/var/run/secrets/eks.amazonaws.com/serviceaccount"})
			}
			return cs
		}
		vol := map[string]any{"name": "aws-iam-token", "projected": map[string]any{"sources": []any{map[string]any{"serviceAccountToken": map[string]any{
			"audience": "sts.amazonaws.com", "expirationSeconds": 86400, "path": "token"}}}}}
		ops := []map[string]any{{"op": "add", "path": "/spec/volumes", "value": []any{vol}}}
		if len(p.Spec.Volumes) > 0 {
			ops = []map[string]any{{"op": "add", "path": "/spec/volumes/-", "value": vol}}
		}
		ops = append(ops, map[string]any{"op": "add", "path": "/spec/containers", "value": inject(p.Spec.Containers)})
		if len(p.Spec.InitContainers) > 0 {
			ops = append(ops, map[string]any{"op": "add", "path": "/spec/initContainers", "value": inject(p.Spec.InitContainers)})
		}
		return ops
	})
	// Named to sort before pod-identity-injector: the API server calls it first.
	registerMutator(t, "aaa-e2e-managed-eks", "managed-eks.e2e.pod-identity.io", url, "e2e.pod-identity.io/managed-eks")
	labelled := withLabels(map[string]string{"e2e.pod-identity.io/managed-eks": "true"})
	create := func(t *testing.T, name string) (*corev1.Pod, []string) {
		t.Helper()
		wc := newWarningClient(t)
		deadline := time.Now().Add(30 * time.Second)
		for {
			p, err := wc.CoreV1().Pods(ns).Create(context.Background(), podSpec(name+"-"+randomHex(2), "reader", labelled), metav1.CreateOptions{})
			if err != nil {
				t.Fatal(err)
			}
			for _, c := range allContainers(p) {
				if envOf(c)["AWS_ROLE_ARN"] == managedRole || time.Now().After(deadline) {
					return p, wc.take()
				}
			}
			wc.take()
			time.Sleep(300 * time.Millisecond) // the stand-in's configuration is not live yet
		}
	}
	t.Run("the same role: injected once, and nothing said", func(t *testing.T) {
		p, warnings := create(t, "same")
		if len(warnings) > 0 {
			t.Errorf("warnings %q: the managed webhook injected exactly what we would", warnings)
		}
		volumes := 0
		for _, v := range p.Spec.Volumes {
			if v.Name == "aws-iam-token" {
				volumes++
			}
		}
		if volumes != 1 {
			t.Errorf("%d aws-iam-token volumes", volumes)
		}
		for _, c := range allContainers(p) {
			n, mounts := 0, 0
			for _, e := range c.Env {
				if e.Name == "AWS_ROLE_ARN" {
					n++
				}
			}
			for _, m := range c.VolumeMounts {
				if m.Name == "aws-iam-token" {
					mounts++
				}
			}
			if n != 1 || envOf(c)["AWS_ROLE_ARN"] != roleARN || mounts != 1 {
				t.Errorf("container %s: AWS_ROLE_ARN %d times, the token mounted %d times", c.Name, n, mounts)
			}
		}
	})
	t.Run("another role: nothing added, and a warning", func(t *testing.T) {
		managedRole = "arn:aws:iam::111122223333:role/old-reader"
		p, warnings := create(t, "other")
		if envOf(p.Spec.Containers[0])["AWS_ROLE_ARN"] != managedRole {
			t.Fatalf("the stored pod has AWS_ROLE_ARN %q", envOf(p.Spec.Containers[0])["AWS_ROLE_ARN"])
		}
		if w := strings.Join(warnings, "\n"); !strings.Contains(w, `already sets AWS_ROLE_ARN, AWS_WEB_IDENTITY_TOKEN_FILE; none of AWS_ROLE_ARN, AWS_WEB_IDENTITY_TOKEN_FILE was added`) {
			t.Errorf("warnings %q do not say why our identity is missing", warnings)
		}
	})
}
