package admission

import (
	"context"
	"encoding/json"

	corev1 "k8s.io/api/core/v1"

	"github.com/pod-identity/injector/internal/jsonscan"
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

// ScanPod reads the next value of s as a pod, keeping the fields WirePod
// has and skipping the rest without allocating. The lists the providers
// compare against (volumes, env, volumeMounts, affinity) are decoded by
// encoding/json from their own bytes, so they come out exactly as a full
// decode would have them.
func ScanPod(s *jsonscan.Scanner) (*WirePod, error) {
	w := &WirePod{}
	err := s.Object(func(key []byte) error {
		switch string(key) {
		case "metadata":
			return s.Object(func(key []byte) error {
				var err error
				switch string(key) {
				case "name":
					w.Metadata.Name, err = s.String()
				case "generateName":
					w.Metadata.GenerateName, err = s.String()
				case "namespace":
					w.Metadata.Namespace, err = s.String()
				case "labels":
					w.Metadata.Labels, err = s.StringMap()
				case "annotations":
					w.Metadata.Annotations, err = s.StringMap()
				default:
					err = s.SkipUnless(key, "name", "generateName", "namespace", "labels", "annotations")
				}
				return err
			})
		case "spec":
			return s.Object(func(key []byte) error {
				var err error
				switch string(key) {
				case "serviceAccountName":
					w.Spec.ServiceAccountName, err = s.String()
				case "nodeSelector":
					w.Spec.NodeSelector, err = s.StringMap()
				case "affinity":
					err = decodeRaw(s, &w.Spec.Affinity)
				case "volumes":
					err = decodeRaw(s, &w.Spec.Volumes)
				case "initContainers":
					w.Spec.InitContainers, err = scanContainers(s)
				case "containers":
					w.Spec.Containers, err = scanContainers(s)
				default:
					err = s.SkipUnless(key, "serviceAccountName", "nodeSelector", "affinity", "volumes", "initContainers", "containers")
				}
				return err
			})
		default:
			return s.SkipUnless(key, "metadata", "spec")
		}
	})
	return w, err
}

func scanContainers(s *jsonscan.Scanner) ([]wireContainer, error) {
	if s.Null() {
		return nil, nil
	}
	out := []wireContainer{}
	err := s.Array(func() error {
		var c wireContainer
		err := s.Object(func(key []byte) error {
			var err error
			switch string(key) {
			case "name":
				c.Name, err = s.String()
			case "env":
				c.Env, err = scanEnv(s)
			case "volumeMounts":
				c.VolumeMounts, err = scanMounts(s)
			default:
				err = s.SkipUnless(key, "name", "env", "volumeMounts")
			}
			return err
		})
		out = append(out, c)
		return err
	})
	return out, err
}

// scanEnv reads a container's env as encoding/json would: null or absent is
// nil, [] is empty.
func scanEnv(s *jsonscan.Scanner) ([]corev1.EnvVar, error) {
	if s.Null() {
		return nil, nil
	}
	out := []corev1.EnvVar{}
	err := s.Array(func() error {
		var e corev1.EnvVar
		err := s.Object(func(key []byte) error {
			var err error
			switch string(key) {
			case "name":
				e.Name, err = s.String()
			case "value":
				e.Value, err = s.String()
			case "valueFrom":
				err = decodeRaw(s, &e.ValueFrom)
			default:
				err = s.SkipUnless(key, "name", "value", "valueFrom")
			}
			return err
		})
		out = append(out, e)
		return err
	})
	return out, err
}

// scanMounts reads a container's volumeMounts as encoding/json would.
func scanMounts(s *jsonscan.Scanner) ([]corev1.VolumeMount, error) {
	if s.Null() {
		return nil, nil
	}
	out := []corev1.VolumeMount{}
	err := s.Array(func() error {
		var m corev1.VolumeMount
		err := s.Object(func(key []byte) error {
			var err error
			switch string(key) {
			case "name":
				m.Name, err = s.String()
			case "mountPath":
				m.MountPath, err = s.String()
			case "readOnly":
				m.ReadOnly, err = s.Bool()
			case "subPath":
				m.SubPath, err = s.String()
			case "subPathExpr":
				m.SubPathExpr, err = s.String()
			case "mountPropagation":
				err = decodeRaw(s, &m.MountPropagation)
			case "recursiveReadOnly":
				err = decodeRaw(s, &m.RecursiveReadOnly)
			default:
				err = s.SkipUnless(key, "name", "mountPath", "readOnly", "subPath", "subPathExpr", "mountPropagation", "recursiveReadOnly")
			}
			return err
		})
		out = append(out, m)
		return err
	})
	return out, err
}

// decodeRaw decodes the next value of s into v with encoding/json.
func decodeRaw(s *jsonscan.Scanner, v any) error {
	raw, err := s.Raw()
	if err != nil {
		return err
	}
	return json.Unmarshal(raw, v)
}
