package e2e

import (
	"context"
	"testing"

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
