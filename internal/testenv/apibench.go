package testenv

import (
	corev1 "k8s.io/api/core/v1"
	"k8s.io/apimachinery/pkg/api/resource"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/util/intstr"
	"k8s.io/utils/ptr"
)

// APIBenchServiceAccount is the ServiceAccount whose pods apibench
// (test/e2e/apibench) creates and celbench (test/celbench) evaluates.
const APIBenchServiceAccount = "app"

// APIBenchAnnotations are APIBenchServiceAccount's: AWS and Azure
// identities.
func APIBenchAnnotations() map[string]string {
	return map[string]string{
		"eks.amazonaws.com/role-arn":        "arn:aws:iam::111122223333:role/app",
		"azure.workload.identity/client-id": "11111111-2222-3333-4444-555555555555",
		"azure.workload.identity/tenant-id": "contoso.onmicrosoft.com",
	}
}

// APIBenchPod is the realistic pod apibench creates and celbench
// evaluates: an application, a mesh proxy and a log shipper, with
// resources, probes and environment, labelled for Azure, running as
// APIBenchServiceAccount.
func APIBenchPod() *corev1.Pod {
	res := corev1.ResourceRequirements{
		Requests: corev1.ResourceList{corev1.ResourceCPU: resource.MustParse("100m"), corev1.ResourceMemory: resource.MustParse("128Mi")},
		Limits:   corev1.ResourceList{corev1.ResourceMemory: resource.MustParse("256Mi")},
	}
	probe := &corev1.Probe{ProbeHandler: corev1.ProbeHandler{HTTPGet: &corev1.HTTPGetAction{Path: "/healthz", Port: intstr.FromInt(8080)}}, PeriodSeconds: 10}
	return &corev1.Pod{
		ObjectMeta: metav1.ObjectMeta{GenerateName: "web-", Labels: map[string]string{"app": "web", "azure.workload.identity/use": "true"}},
		Spec: corev1.PodSpec{
			ServiceAccountName: APIBenchServiceAccount,
			Containers: []corev1.Container{
				{Name: "app", Image: "registry.example.com/app:1.4.2", Resources: res, ReadinessProbe: probe, LivenessProbe: probe,
					Env:   []corev1.EnvVar{{Name: "LOG_LEVEL", Value: "info"}, {Name: "POD_NAME", ValueFrom: &corev1.EnvVarSource{FieldRef: &corev1.ObjectFieldSelector{FieldPath: "metadata.name"}}}},
					Ports: []corev1.ContainerPort{{Name: "http", ContainerPort: 8080}}},
				{Name: "proxy", Image: "registry.example.com/proxy:1.22", Resources: res, Ports: []corev1.ContainerPort{{Name: "admin", ContainerPort: 15000}}},
				{Name: "logs", Image: "registry.example.com/shipper:3.1", Resources: res, SecurityContext: &corev1.SecurityContext{ReadOnlyRootFilesystem: ptr.To(true)}},
			},
		},
	}
}
