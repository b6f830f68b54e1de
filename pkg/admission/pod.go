package admission

import (
	"context"
	"encoding/json"

	corev1 "k8s.io/api/core/v1"
)

// WirePod is the part of a pod that the engine and the providers read. A
// pod is decoded into it rather than into corev1.Pod: the rest (resources,
// probes, owner references, managed fields, ...) is skipped instead of
// allocated, which is most of the cost of a review.
type WirePod struct {
	Metadata struct {
		Name         string            `json:"name"`
		GenerateName string            `json:"generateName"`
		Namespace    string            `json:"namespace"`
		Labels       map[string]string `json:"labels"`
		Annotations  map[string]string `json:"annotations"`
	} `json:"metadata"`
	Spec struct {
		ServiceAccountName string            `json:"serviceAccountName"`
		NodeSelector       map[string]string `json:"nodeSelector"`
		Affinity           *corev1.Affinity  `json:"affinity"`
		Volumes            []corev1.Volume   `json:"volumes"`
		InitContainers     []wireContainer   `json:"initContainers"`
		Containers         []wireContainer   `json:"containers"`
	} `json:"spec"`
}

type wireContainer struct {
	Name         string               `json:"name"`
	Env          []corev1.EnvVar      `json:"env"`
	VolumeMounts []corev1.VolumeMount `json:"volumeMounts"`
}

type podKey struct{}

// ContextWithPod returns ctx carrying the request's pod, already decoded
// (by the HTTP handler, in the same pass as the review): the webhooks then
// use it instead of decoding the raw object again.
func ContextWithPod(ctx context.Context, w *WirePod) context.Context {
	return context.WithValue(ctx, podKey{}, w)
}

// decodePod fills pod with the fields of the request's pod that providers
// may read, from ctx or else from raw. Lists keep their order and their
// absence (nil) or emptiness, which the patch depends on.
func decodePod(ctx context.Context, raw []byte, pod *corev1.Pod) error {
	w, _ := ctx.Value(podKey{}).(*WirePod)
	if w == nil {
		w = &WirePod{}
		if err := json.Unmarshal(raw, w); err != nil {
			return err
		}
	}
	pod.Name, pod.GenerateName, pod.Namespace = w.Metadata.Name, w.Metadata.GenerateName, w.Metadata.Namespace
	pod.Labels, pod.Annotations = w.Metadata.Labels, w.Metadata.Annotations
	pod.Spec.ServiceAccountName = w.Spec.ServiceAccountName
	pod.Spec.NodeSelector = w.Spec.NodeSelector
	pod.Spec.Affinity = w.Spec.Affinity
	pod.Spec.Volumes = w.Spec.Volumes
	pod.Spec.InitContainers = containers(w.Spec.InitContainers)
	pod.Spec.Containers = containers(w.Spec.Containers)
	return nil
}

func containers(in []wireContainer) []corev1.Container {
	if in == nil {
		return nil
	}
	out := make([]corev1.Container, len(in))
	for i, c := range in {
		out[i] = corev1.Container{Name: c.Name, Env: c.Env, VolumeMounts: c.VolumeMounts}
	}
	return out
}
